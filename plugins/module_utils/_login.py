# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The portal's login: a salted PBKDF2 hash of the generated password. The deploy writes the hash
(never the password) into the portal's configuration; the portal checks a login against it."""

from __future__ import annotations

import base64
import hashlib
import hmac

ITERATIONS = 200_000


def hash_password(password: str, salt: str, iterations: int = ITERATIONS) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, _digest = stored.split("$", 3)
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256" or not iterations.isdigit():
        return False
    return hmac.compare_digest(hash_password(password, salt, int(iterations)), stored)
