# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the portal role.

portal_login(password, salt): the login hash the portal checks (never the password).
portal_mounts(paths): bind mounts that show each path at its own path, one per outermost directory.
"""

from __future__ import annotations

import os
from typing import Any

from ansible_collections.peerlab.bitcoin.plugins.module_utils._login import hash_password


def portal_login(password: str, salt: str) -> str:
    return hash_password(str(password), str(salt))


def portal_mounts(paths: list[str]) -> list[dict[str, Any]]:
    """The repository, the inventory, the secrets and the state directories at their own paths in
    the portal's container, so the deploy it runs reads and writes what the controller's would.
    A path inside another is covered by the outer one's mount."""
    cleaned = sorted({os.path.normpath(os.path.abspath(str(path))) for path in paths if path})
    outer: list[str] = []
    for path in cleaned:
        if not any(path == kept or path.startswith(kept.rstrip("/") + "/") for kept in outer):
            outer.append(path)
    return [{"type": "bind", "source": path, "target": path, "read_only": False} for path in outer]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"portal_login": portal_login, "portal_mounts": portal_mounts}
