# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Alertmanager's configuration from the inventory's settings, and its login: what the engine
writes on the monitoring host (docs/events.md, "Alerts that reach people")."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from ._rpc import basic_auth

USER = "peerlab"            # the basic-auth user of its API and page
NONE = "peerlab-none"       # the receiver when the inventory names none: alerts kept, nobody notified
UID = 9093                  # its user in images/alertmanager (owns the configuration, which may hold receivers' secrets)
PORT = 9093
CHECK = ("/usr/bin/amtool", "check-config", "{file}")   # the program of its image that checks a configuration
ROUTE_DEFAULTS: dict[str, Any] = {"group_by": ["detector", "network", "node"], "group_wait": "10s", "group_interval": "1m",
                                  "repeat_interval": "4h"}
_STANDARD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def bcrypt_salt(salt: str, cost: int = 10) -> bytes:
    """A bcrypt salt drawn from the stored salt: the same file gives the same hash, so a second run
    writes nothing (a random salt would change the web configuration every run)."""
    raw = base64.b64encode(hashlib.sha256(salt.encode()).digest()[:16]).decode().rstrip("=")
    return f"$2b${cost:02d}${raw.translate(str.maketrans(_STANDARD, _BCRYPT))}".encode()


def login_hash(password: str, salt: str) -> str:
    """The bcrypt hash Alertmanager's web configuration wants (controller only: bcrypt from PyPI)."""
    import bcrypt

    return str(bcrypt.hashpw(password.encode(), bcrypt_salt(salt)).decode())


def config(receivers: tuple[dict[str, Any], ...], route: dict[str, Any]) -> dict[str, Any]:
    """alertmanager.yml: the inventory's receivers (or one that notifies nobody) and its route over
    peerlab's defaults. Grouped by detector, network and node, an alert reaches its receiver once."""
    chosen = [dict(receiver) for receiver in receivers] or [{"name": NONE}]
    return {"route": {**ROUTE_DEFAULTS, "receiver": chosen[0]["name"], **route}, "receivers": chosen}


def web_config(hashed: str) -> dict[str, Any]:
    return {"basic_auth_users": {USER: hashed}}


def authorization(password: str) -> str:
    """The Authorization header's value for the API (the observer, the tests)."""
    return basic_auth(USER, password)


def values(receivers: tuple[dict[str, Any], ...]) -> tuple[str, ...]:
    """The receivers' string values that may be secrets (URLs with tokens, passwords, keys): hidden in
    anything peerlab prints about the configuration (amtool's answer)."""
    found: list[str] = []

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for inner, item in value.items():
                walk(item, str(inner))
        elif isinstance(value, list):
            for item in value:
                walk(item, key)
        elif isinstance(value, str) and key != "name" and len(value) >= 6:
            found.append(value)

    walk(list(receivers))
    return tuple(sorted(set(found), key=len, reverse=True))
