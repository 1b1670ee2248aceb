# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small Docker Engine API client over the engine's Unix socket, standard library only.

peerlab's one Docker client: the engine's node modules run it on each Docker host with nothing but
Python there (plugins/module_utils/_docker.py is a link to this file), and the collector runs it in
its container (this folder is the collector image's build context). Each request is a connection
of its own, so threads share a client. Errors carry the engine's own message.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import tarfile
import time
from typing import Any
from urllib.parse import quote


class DockerError(Exception):
    """The engine refused a request; `status` is its HTTP status (404: no such object)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._socket_path)


class Docker:
    """One engine; `request` returns the decoded JSON answer (None for an empty body)."""

    def __init__(self, socket_path: str = "/var/run/docker.sock", timeout: float = 120.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None, timeout: float | None = None, raw: bool = False,
                data: Any = None) -> Any:
        """`body` goes as JSON; `data` (bytes or a file) as it is (an image archive to load)."""
        connection = _UnixConnection(self.socket_path, timeout or self.timeout)
        try:
            payload = json.dumps(body) if body is not None else data
            headers = {"Content-Type": "application/json"} if body is not None else ({"Content-Type": "application/x-tar"} if data else {})
            connection.request(method, path, payload, headers)
            response = connection.getresponse()
            data = response.read()
        except OSError as error:
            raise DockerError(f"{method} {path}: cannot reach the Docker engine at {self.socket_path} "
                              f"({error.strerror or error})") from None
        finally:
            connection.close()
        if response.status >= 400:
            try:
                message = json.loads(data).get("message", "")
            except ValueError:
                message = data[:300].decode(errors="replace")
            raise DockerError(f"{method} {path}: {message or response.reason}", response.status)
        if raw:
            return data
        return json.loads(data) if data.strip() else None

    def logs(self, name: str, tail: int = 50) -> str:
        """A container's last output lines, stdout and stderr (the engine's multiplexed stream, unframed)."""
        data = self.request("GET", f"/containers/{quote(name, safe='')}/logs?stdout=1&stderr=1&tail={tail}", raw=True)
        text, offset = [], 0
        while offset + 8 <= len(data) and data[offset] in (0, 1, 2) and data[offset + 1:offset + 4] == b"\0\0\0":
            size = int.from_bytes(data[offset + 4:offset + 8], "big")
            text.append(data[offset + 8:offset + 8 + size])
            offset += 8 + size
        return (b"".join(text) if text else data).decode(errors="replace")

    def inspect(self, name: str) -> dict[str, Any] | None:
        """A container's inspect answer, or None when there is no such container."""
        try:
            answer: dict[str, Any] = self.request("GET", f"/containers/{quote(name, safe='')}/json")
        except DockerError as error:
            if error.status == 404:
                return None
            raise
        return answer

    def wait_output(self, container_id: str, marker: str | None, timeout: float) -> tuple[bool, str]:
        """Wait for `marker` in a container's output (or, without one, for it to exit); (success, output)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.inspect(container_id) or {}
            state = found.get("State") or {}
            output = self.logs(container_id)
            if marker and marker in output:
                return True, output
            if not state.get("Running"):
                return (not marker and state.get("ExitCode") == 0), output
            if time.monotonic() > deadline:
                return False, output + f"\n(no answer within {timeout:g} s)"
            time.sleep(0.1)

    def run_once(self, body: dict[str, Any], files: dict[str, tuple[bytes, int]] | None = None,
                 timeout: float = 30.0) -> tuple[bool, str]:
        """Run a throwaway container (`body`: its create request) to its end and remove it; (exited 0,
        its output). `files` (path -> (content, owner uid), mode 0600) are put into it before it starts:
        no copy on the host, nothing on its command line or in its environment."""
        created = self.request("POST", "/containers/create", body)
        try:
            if files:
                self.request("PUT", f"/containers/{created['Id']}/archive?path=/", data=_archive(files))
            self.request("POST", f"/containers/{created['Id']}/start")
            return self.wait_output(created["Id"], None, timeout)
        finally:
            self.request("DELETE", f"/containers/{created['Id']}?force=1&v=1")


def _archive(files: dict[str, tuple[bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, (content, uid) in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.uid, info.gid = len(content), 0o600, max(uid, 0), max(uid, 0)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()
