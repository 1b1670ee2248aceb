# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""rpcauth credentials: bitcoind stores a salted HMAC, only the controller keeps the password."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

USER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


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
