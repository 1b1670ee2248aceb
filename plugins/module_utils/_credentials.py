# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's credentials files (each node's RPC users, the Grafana admin, the portal's login):
generated once, mode 0600, vault-compatible, and read, changed and written under one lock, which the
deploy's action plugin and the portal both take. Two writers at once (a portal edit and a deploy)
each add their users to what the other wrote; neither loses the other's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ._atomic import replace_file
from ._lock import locked
from ._rpcauth import dump, fill

Loader = Callable[[str], dict[str, Any]]
Saver = Callable[[str, dict[str, Any]], None]


class CredentialsError(ValueError):
    """The file cannot be used (its mode, its shape): the message says how to fix it."""


def check_mode(path: str) -> None:
    mode = os.stat(path).st_mode
    if mode & 0o077:
        raise CredentialsError(f"{path} is readable by group or others (mode {oct(mode & 0o777)}); run: chmod 600 {path}")


def load_plain(path: str) -> dict[str, Any]:
    """A credentials file that is not vault-encrypted ({} when there is none)."""
    import yaml

    if not os.path.exists(path):
        return {}
    check_mode(path)
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw.lstrip().startswith(b"$ANSIBLE_VAULT"):
        raise CredentialsError(f"{path} is vault-encrypted: only a playbook given the vault password can read it")
    data = yaml.safe_load(raw) or {}
    if not isinstance(data, dict):
        raise CredentialsError(f"{path} must hold a mapping of node -> user -> password")
    return data


def save_plain(path: str, data: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    replace_file(path, dump(data).encode(), 0o600, prefix=".credentials-")


def update(path: str, nodes: list[str], users: list[str], load: Loader = load_plain, save: Saver = save_plain,
           write: bool = True) -> tuple[dict[str, Any], list[str]]:
    """Every node's users' credentials, made where missing: (the file's content, the `node/user`
    pairs made). The read, the change and the write happen under the file's lock; with `write`
    false (check mode) nothing is written."""
    with locked(path):
        stored = load(path)
        created = fill(stored, nodes, users)
        if created and write:
            save(path, stored)
    return stored, created
