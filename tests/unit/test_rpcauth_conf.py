"""rpcauth values, bitcoin.conf rendering in peerlab and in the image's entrypoint."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import os

import pytest

from ansible_collections.peerlab.bitcoin.plugins.module_utils._conf import render_lines
from ansible_collections.peerlab.bitcoin.plugins.module_utils._rpcauth import new_password, new_salt, rpcauth_line, verify


def load_entrypoint():
    path = os.path.join("images", "bitcoin-node", "entrypoint.py")
    spec = importlib.util.spec_from_file_location("entrypoint", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rpcauth_is_the_salted_hmac_bitcoind_checks() -> None:
    line = rpcauth_line("peerlab", "00ff", "secret")
    expected = hmac.new(b"00ff", b"secret", hashlib.sha256).hexdigest()
    assert line == f"peerlab:00ff${expected}"
    assert verify(line, "secret") and not verify(line, "Secret")


def test_generated_secrets_are_long_and_distinct() -> None:
    assert len(new_password()) >= 43 and new_password() != new_password()
    assert len(new_salt()) == 32


def test_rpc_user_names_are_restricted() -> None:
    with pytest.raises(ValueError, match="must be letters"):
        rpcauth_line("a:b", "00", "x")


def test_conf_lines_are_sorted_and_typed() -> None:
    assert render_lines({"txindex": True, "dbcache": 50, "debug": ["net", "mempool"]}) == [
        "dbcache=50", "debug=net", "debug=mempool", "txindex=1"]


def test_entrypoint_renders_chain_section_rpc_and_user_lines() -> None:
    entrypoint = load_entrypoint()
    text = entrypoint.render({"PEERLAB_CHAIN": "testnet4", "PEERLAB_RPCAUTH": "a:1$2 b:3$4",
                              "PEERLAB_RPCALLOWIP": "172.19.0.0/16", "PEERLAB_CONF": "dbcache=50\nprune=550\n"})
    lines = text.splitlines()
    assert lines[1] == "chain=testnet4" and "[testnet4]" in lines
    assert lines.index("[testnet4]") < lines.index("rpcbind=0.0.0.0")
    assert {"rpcallowip=172.19.0.0/16", "rpcauth=a:1$2", "rpcauth=b:3$4", "dbcache=50", "listenonion=0"} <= set(lines)
    assert not any(line.startswith(("rpcpassword", "rpcuser")) for line in lines)


def test_entrypoint_without_allowed_networks_keeps_rpc_on_localhost() -> None:
    text = load_entrypoint().render({"PEERLAB_CHAIN": "mainnet"})
    assert "chain=main" in text and "rpcbind" not in text


def test_entrypoint_refuses_unknown_chain() -> None:
    with pytest.raises(SystemExit, match="unknown PEERLAB_CHAIN"):
        load_entrypoint().render({"PEERLAB_CHAIN": "testnet9"})
