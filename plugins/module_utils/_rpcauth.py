# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""rpcauth credentials: bitcoind stores a salted HMAC, only the controller keeps the password."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Any

USER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# The controller's credentials file (network_secrets_file): node -> user -> {password, salt}.
HEADER = ("# peerlab RPC credentials, generated. Keep private (mode 0600).\n"
          "# `ansible-vault encrypt` this file if you like; peerlab keeps it encrypted.\n")


def new_password() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")


def new_salt() -> str:
    return secrets.token_hex(16)


def rpcauth_line(user: str, salt: str, password: str) -> str:
    """The value of an `rpcauth=` line, as share/rpcauth/rpcauth.py in Bitcoin Core computes it."""
    if not USER.match(user):
        raise ValueError(f"RPC user name {user!r} must be letters, digits, '_' or '-'")
    digest = hmac.new(salt.encode("utf-8"), password.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{user}:{salt}${digest}"


def verify(rpcauth: str, password: str) -> bool:
    """True when `password` matches the rpcauth value (what bitcoind checks on every request)."""
    user, _colon, rest = rpcauth.partition(":")
    salt, _dollar, _digest = rest.partition("$")
    return hmac.compare_digest(rpcauth_line(user, salt, password), rpcauth)


def fill(stored: dict[str, Any], nodes: list[str], users: list[str]) -> list[str]:
    """Generate what the credentials file lacks for these nodes and users, in place; the
    `node/user` pairs made."""
    created = []
    for node in nodes:
        entry = stored.setdefault(node, {})
        for user in users:
            if not isinstance(entry.get(user), dict) or not {"password", "salt"} <= set(entry[user]):
                entry[user] = {"password": new_password(), "salt": new_salt()}
                created.append(f"{node}/{user}")
    return created


def dump(stored: dict[str, Any]) -> str:
    """The credentials file's text (before any vault encryption)."""
    import yaml  # on the controller only

    return HEADER + yaml.safe_dump(stored, default_flow_style=False, sort_keys=True)
