# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests on inventory hosts."""

from __future__ import annotations

from typing import Any


def is_local(host: str, hostvars: Any) -> bool:
    """True when the host is the controller itself (local connection), so files need no copying."""
    variables = hostvars.get(host, {})
    return variables.get("ansible_connection") == "local" or host in ("localhost", "127.0.0.1")


class TestModule:
    def tests(self) -> dict[str, Any]:
        return {"is_local": is_local}
