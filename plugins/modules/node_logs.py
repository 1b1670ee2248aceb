#!/usr/bin/python
# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_logs
short_description: Read the last log lines of node containers from the Docker API
version_added: 0.3.0
description:
  - Reads the last O(lines) lines each container logged (stdout and stderr), also from a container
    that is restarting or has exited, which C(docker exec) cannot reach. A failed deploy uses it to
    quote the errors bitcoind logged.
  - Talks to the Docker Engine API over its unix socket with the Python standard library.
author: peerlab developers (@peerlab)
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: full
    description: Reads only; never reports a change.
options:
  containers:
    description: Container names.
    type: list
    elements: str
    required: true
  lines:
    description: How many of the last lines to read per container.
    type: int
    default: 200
  socket:
    description: Path of the Docker API socket.
    type: path
    default: /var/run/docker.sock
requirements:
  - Python 3.9 or later on the Docker host (standard library only)
"""

EXAMPLES = r"""
- name: Read what a restarting node said
  peerlab.bitcoin.node_logs:
    containers: [lab-n1]
  register: logs
"""

RETURN = r"""
logs:
  description: Container name -> its last lines, oldest first (empty when Docker does not know it).
  returned: always
  type: dict
"""

import http.client
import socket
import struct
from urllib.parse import quote

from ansible.module_utils.basic import AnsibleModule


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self._path)


def _demultiplex(body: bytes) -> bytes:
    """Docker frames a non-TTY container's log as [stream, 0, 0, 0, size (4 bytes)] + payload."""
    out = bytearray()
    offset = 0
    while offset + 8 <= len(body) and body[offset] in (0, 1, 2) and body[offset + 1:offset + 4] == b"\0\0\0":
        (size,) = struct.unpack(">I", body[offset + 4:offset + 8])
        out += body[offset + 8:offset + 8 + size]
        offset += 8 + size
    return bytes(out) if offset else body


def read_logs(path: str, name: str, lines: int) -> list[str]:
    connection = _UnixConnection(path)
    try:
        connection.request("GET", f"/containers/{quote(name, safe='')}/logs?stdout=1&stderr=1&tail={lines}")
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status == 404:
        return []
    if response.status != 200:
        raise OSError(f"Docker answered {response.status} for {name}'s logs: {body[:200].decode(errors='replace')}")
    return _demultiplex(body).decode("utf-8", errors="replace").splitlines()


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            containers=dict(type="list", elements="str", required=True),
            lines=dict(type="int", default=200),
            socket=dict(type="path", default="/var/run/docker.sock"),
        ),
        supports_check_mode=True,
    )
    try:
        logs = {name: read_logs(module.params["socket"], name, module.params["lines"]) for name in module.params["containers"]}
    except OSError as error:
        module.fail_json(msg=f"cannot read container logs through {module.params['socket']}: {error}")
    module.exit_json(changed=False, logs=logs)


if __name__ == "__main__":
    main()
