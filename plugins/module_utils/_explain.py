# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Why a node does not answer: which node containers are not running, and the errors bitcoind
last logged (read through the Docker API: a restarting container cannot be exec'd into)."""

from __future__ import annotations

import calendar
import re
import time
from typing import Any

from ._docker import Docker, DockerError

# The image's entrypoint is Python: its failures end in a line like "PermissionError: ...".
_PYTHON_ERROR = re.compile(r"^[A-Za-z]+(Error|Exception): ")


def logged_errors(lines: list[str], keep: int = 4) -> list[str]:
    """bitcoind's last distinct error lines, timestamps and prefixes dropped, fatal ones first."""
    errors = []
    for line in lines:
        text = line.split(" ", 1)[1] if line[:4].isdigit() and " " in line else line
        if "[error]" in text or text.startswith(("Error", "EXCEPTION")) or _PYTHON_ERROR.match(text):
            errors.append(text.replace("[error] ", "").removeprefix("Error: ").strip())
    recent = list(dict.fromkeys(reversed(errors)))[:keep]
    return sorted(recent, key=lambda text: "fatal" not in text)


_STARTED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$")


def crash_loop(inspected: dict[str, Any], within: float, now: float | None = None) -> str:
    """Docker's words for a container its restart policy brought back within the last `within`
    seconds ('' otherwise): caught between two crashes it shows as running, yet it is not."""
    count = int(inspected.get("RestartCount") or 0)
    started = _STARTED.match(str((inspected.get("State") or {}).get("StartedAt") or ""))
    if not count or not started:
        return ""
    age = (time.time() if now is None else now) - calendar.timegm(time.strptime(started[1], "%Y-%m-%dT%H:%M:%S"))
    return f"Restarting: {count} restarts, the last {max(0.0, age):.0f} s ago" if age < within else ""


def down_reasons(docker: Docker, host: str, containers: dict[str, tuple[str, str]], lines: int = 200) -> list[str]:
    """One sentence per node container that is not running: its status and what bitcoind logged.
    `containers`: node container -> (its container's name or id, Docker's status words)."""
    reasons = []
    for name, (target, status) in sorted(containers.items()):
        try:
            said = logged_errors(docker.logs(target, lines).splitlines())
        except DockerError:
            said = []
        detail = f"; bitcoind logged: {' | '.join(said)}" if said else ""
        reasons.append(f"{name} on {host} is not running ({status}){detail}.")
    return reasons
