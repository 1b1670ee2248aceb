# -*- coding: utf-8 -*-
# Copyright: peerlab developers
# MIT License (see galaxy.yml)
"""Tests on inventory hosts."""

from __future__ import annotations

from typing import Any


def is_local(host: str, hostvars: Any) -> bool:
    """True when the host is the controller itself (local connection), so files need no copying."""
    variables = hostvars[host] if host in hostvars else {}
    return variables.get("ansible_connection") == "local" or host in ("localhost", "127.0.0.1")


class TestModule:
    def tests(self) -> dict[str, Any]:
        return {"is_local": is_local}
