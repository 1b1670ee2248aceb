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


ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth1\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0001000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth1\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
"""


def test_entrypoint_allows_the_networks_a_swarm_task_is_attached_to(tmp_path) -> None:
    routes = tmp_path / "route"
    routes.write_text(ROUTES)
    text = load_entrypoint().render({"PEERLAB_RPCALLOWIP": "attached"}, routes_path=str(routes),
                                    peers_path=str(tmp_path / "none"))
    # The overlay network and the host's docker_gwbridge; never the default route (0.0.0.0/0).
    assert "rpcallowip=10.0.1.0/24\nrpcallowip=172.18.0.0/16\n" in text
    assert "0.0.0.0/0" not in text


def test_entrypoint_renders_the_peers_file_as_addnode_lines(tmp_path) -> None:
    peers = tmp_path / "peers"
    peers.write_text("# lab-n1's peers\nlab-n2:18444\n\nlab-n3:18444\n")
    text = load_entrypoint().render({}, peers_path=str(peers))
    assert text.endswith("addnode=lab-n2:18444\naddnode=lab-n3:18444\n")
    assert "addnode" not in load_entrypoint().render({}, peers_path=str(tmp_path / "absent"))


def test_the_statsd_relay_forwards_datagrams_to_the_collector_by_name() -> None:
    """Statoshi sends to 127.0.0.1:8125 only; the entrypoint's relay carries each datagram on."""
    import socket
    import threading

    entrypoint = load_entrypoint()
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(5)
    inbound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    inbound.bind(("127.0.0.1", 0))
    threading.Thread(target=entrypoint.relay_statsd, args=(f"localhost:{collector.getsockname()[1]}", inbound),
                     daemon=True).start()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for packet in (b"peers.totalConnections:4|g", b"message.received.inv:1|c"):
        sender.sendto(packet, inbound.getsockname())
        assert collector.recv(65535) == packet


def test_the_statsd_relay_joins_a_burst_into_few_datagrams() -> None:
    """A block makes Statoshi send a thousand fee estimates at once: they travel in 8 KiB batches."""
    import socket

    entrypoint = load_entrypoint()
    inbound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    inbound.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lines = [f"estimates.fee.block{i}:1000|g".encode() for i in range(1, 201)]
    for line in lines[1:]:
        sender.sendto(line, inbound.getsockname())
    batches = entrypoint.drain(inbound, lines[0])
    assert b"\n".join(batches).split(b"\n") == lines, "every value, in order"
    assert len(batches) == 1 and len(batches[0]) <= entrypoint.STATSD_BATCH, "200 values: one datagram"
    assert inbound.getblocking()
    entrypoint.STATSD_BATCH = 1000
    for line in lines[1:]:
        sender.sendto(line, inbound.getsockname())
    batches = entrypoint.drain(inbound, lines[0])
    assert b"\n".join(batches).split(b"\n") == lines and len(batches) == 6 and max(map(len, batches)) <= 1000
