"""Events from node logs, and the observer's metrics computed from them (pure logic)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "images" / "collector"))
import events
import observer

PEER_BLOCK = "605e31af5fdfa47fa96dbfe04827fd6ad63b61a32b53c273f38fed554b43bc7c"
OWN_BLOCK = "0b3773fad8f9d4299cee87464b1e0f7841dcebc3e45225b1c6d041d9437e5f05"
NAMES = {"lab-n3": "n3", "172.18.0.2": "n1"}


def read(nodelog: events.NodeLog, lines: list[str], start: float = 0.0) -> list[dict[str, Any]]:
    """Lines as Docker gives them (its own timestamp first, one per line here)."""
    out: list[dict[str, Any]] = []
    for index, line in enumerate(lines):
        stamp = f"2026-12-01T19:33:{index:02d}.000000000Z"
        out += nodelog.feed(stamp, start + index, line)
    return out


def test_messages_connections_and_blocks_from_real_log_lines() -> None:
    # Lines as Knots 29.5 writes them with debug=net (taken from a lab node's log).
    nodelog = events.NodeLog("lab", "n2", names=NAMES)
    nodelog.learn_peers([{"id": 0, "addr": "lab-n3:18444", "connection_type": "manual", "inbound": False}])
    got = read(nodelog, [
        "2026-12-01T19:33:39Z New inbound v2 peer connected: version: 70016, blocks=0, peer=1, peeraddr=172.18.0.2:52258",
        "2026-12-01T19:33:41Z [net] received: cmpctblock (259 bytes) peer=1",
        f"2026-12-01T19:33:41Z Saw new header hash={PEER_BLOCK} height=102",
        f"2026-12-01T19:33:41Z Saw new cmpctblock header hash={PEER_BLOCK} peer=1",
        f"2026-12-01T19:33:41Z [net] PeerManager::NewPoWValidBlock sending header-and-ids {PEER_BLOCK} to peer=0",
        "2026-12-01T19:33:41Z [net] sending cmpctblock (262 bytes) peer=0",
        f"2026-12-01T19:33:41Z UpdateTip: new best={PEER_BLOCK} height=102 version=0x20000000 log2_work=7.686501 tx=103",
        "2026-12-01T19:34:16Z [net] disconnect by id, disconnecting peer=0",
        "2026-12-01T19:34:16Z [net] Resetting socket for peer=0",
        "2026-12-01T19:34:16Z [net] Cleared nodestate for peer=0",
        "2026-12-01T19:34:17Z [net] Added time offset +0s, total samples 2",
    ])
    summary = [(e["kind"], e.get("event") or e.get("dir"), e.get("type"), e.get("peer_node"), e.get("conn_type")) for e in got]
    assert summary == [
        ("conn", "opened", None, "n1", "inbound"),
        ("msg", "in", "cmpctblock", "n1", "inbound"),
        ("msg", "out", "cmpctblock", "n3", "manual"),
        ("block", None, None, None, None),
        ("conn", "disconnecting", None, "n3", "manual"),
        ("conn", "closed", None, "n3", "manual"),
    ]
    assert got[1]["size"] == 259 and got[1]["addr"] == "172.18.0.2:52258" and got[1]["time"] == 1.0
    assert got[3]["height"] == 102 and got[3]["hash"] == PEER_BLOCK and got[3]["mined"] is False
    assert got[4]["reason"] == "disconnect by id"
    assert all(event["v"] == events.SCHEMA and event["network"] == "lab" and event["node"] == "n2" for event in got)
    assert 0 not in nodelog.peers  # a closed peer's id is forgotten
    assert events.describe(got[1]) == "lab/n2 <-- from n1 (inbound): cmpctblock (259 bytes)"
    assert events.describe(got[2]) == "lab/n2 --> to n3 (manual): cmpctblock (262 bytes)"
    assert events.describe(got[0]).startswith("lab/n2 # CONN opened n1 (inbound)")


def test_a_block_is_mined_here_only_when_this_node_made_it() -> None:
    # Before the fix, a CreateNewBlock() followed by a peer's block becoming the tip counted as mined.
    nodelog = events.NodeLog("lab", "n1")
    got = read(nodelog, [
        "2026-12-01T19:33:59Z CreateNewBlock(): total size: 252 block weight: 900 txs: 0 fees: 0 sigops 400",
        "2026-12-01T19:33:59Z [net] received: cmpctblock (262 bytes) peer=1",
        f"2026-12-01T19:33:59Z Saw new header hash={PEER_BLOCK} height=102",
        f"2026-12-01T19:33:59Z Saw new cmpctblock header hash={PEER_BLOCK} peer=1",
        f"2026-12-01T19:33:59Z UpdateTip: new best={PEER_BLOCK} height=102 version=0x20000000",
        "2026-12-01T19:33:59Z [net] received: headers (82 bytes) peer=0",  # a header this node already has
        "2026-12-01T19:34:00Z CreateNewBlock(): total size: 249 block weight: 888 txs: 0 fees: 0 sigops 400",
        f"2026-12-01T19:34:00Z Saw new header hash={OWN_BLOCK} height=103",
        f"2026-12-01T19:34:00Z [net] PeerManager::NewPoWValidBlock sending header-and-ids {OWN_BLOCK} to peer=0",
        f"2026-12-01T19:34:00Z UpdateTip: new best={OWN_BLOCK} height=103 version=0x20000000",
    ])
    blocks = [(e["height"], e["mined"]) for e in got if e["kind"] == "block"]
    assert blocks == [(102, False), (103, True)]


def test_lines_sharing_a_timestamp_are_all_read_once() -> None:
    # Before the fix the second of two lines with one timestamp was dropped.
    nodelog = events.NodeLog("lab", "n1")
    stamp = "2026-12-01T19:33:41.482736647Z"
    lines = ["[net] received: inv (37 bytes) peer=3", "[net] received: inv (37 bytes) peer=3"]
    assert len([e for line in lines for e in nodelog.feed(stamp, 1.0, line)]) == 2
    # a new read from that timestamp (Docker's `since` is inclusive) repeats both, then a third
    nodelog.cursor.rewind()
    again = [*lines, "[net] received: ping (8 bytes) peer=3"]
    assert [e["type"] for line in again for e in nodelog.feed(stamp, 1.0, line)] == ["ping"]
    nodelog.cursor.rewind()
    assert [e for line in ["[net] received: tx (200 bytes) peer=3"] for e in nodelog.feed("2026-12-01T19:33:40Z", 0.0, line)] == []


def test_filters_of_the_logger_and_the_feed() -> None:
    inv = events.make("msg", "lab", "n1", 1.0, dir="in", type="inv", size=37)
    block = events.make("block", "lab", "n2", 1.0, hash=OWN_BLOCK, height=3, mined=True)
    assert events.matches(inv) and events.matches(inv, "lab", frozenset({"n1"}), frozenset({"inv", "ping"}))
    assert not events.matches(inv, "other") and not events.matches(inv, "lab", frozenset({"n2"}))
    assert events.matches(block, types=frozenset({"block"})) and not events.matches(block, types=frozenset({"inv"}))
    assert events.subject("lab", "n1", "msg") == "peerlab.lab.n1.msg"


def config(nodes: list[str], edges: list[list[str]]) -> dict[str, Any]:
    return {"networks": {"lab": {"chain": "regtest", "edges": edges, "nodes": {node: {} for node in nodes}}}}


def block(node: str, block_hash: str, height: int, when: float, mined: bool = False) -> dict[str, Any]:
    return events.make("block", "lab", node, when, hash=block_hash, height=height, mined=mined)


def poll(node: str, height: int, tip: str, peers: list[str]) -> dict[str, Any]:
    return events.make("poll", "lab", node, 0.0, up=True, height=height, tip=tip, peers=[{"node": peer} for peer in peers])


def values(metrics: observer.Metrics, now: float = 100.0) -> dict[str, float]:
    return {sample.graphite(): sample.value for sample in metrics.samples(now, 10)}


def test_propagation_counts_each_block_once_however_many_blocks_pass() -> None:
    # Before the fix the "already reported" set was cleared at 4,000 while 2,000 blocks were still
    # remembered: 4,100 blocks gave 6,099.
    propagation = observer.Propagation(keep=2000)
    reported = 0
    for height in range(4100):
        block_hash = f"{height:064x}"
        propagation.arrive(block_hash, height, "n1", float(height))
        reported += len(propagation.complete(["n1", "n2"]))
        propagation.arrive(block_hash, height, "n2", height + 0.5)
        reported += len(propagation.complete(["n1", "n2"]))
    assert reported == 4100
    assert len(propagation.arrivals) == 2000 and len(propagation.reported) <= 2000


def test_propagation_is_per_block_and_waits_for_the_lagging_node() -> None:
    # Before the fix the time reported was an arbitrary block's of the poll, and a node that did not
    # answer was left out, so a lagging node made propagation look faster.
    metrics = observer.Metrics()
    metrics.configure(config(["n1", "n2", "n3"], []))
    fast, slow = "a" * 64, "b" * 64
    for event in (block("n1", fast, 1, 10.0, mined=True), block("n2", fast, 1, 10.2), block("n3", fast, 1, 10.3),
                  block("n1", slow, 2, 20.0, mined=True), block("n2", slow, 2, 24.0)):
        assert all(e["kind"] == "propagation" for e in metrics.take(event, 30.0))
    metrics.take(poll("n1", 2, slow, []), 99.0)
    metrics.take(poll("n2", 2, slow, []), 99.0)
    metrics.take(poll("n3", 1, fast, []), 99.0)  # n3 lags: the slow block is not propagated yet
    seen = values(metrics)
    assert seen["peerlab.lab.network.blocks.propagated"] == 1
    assert round(seen["peerlab.lab.network.blocks.propagation_seconds"], 3) == 0.3
    assert seen["peerlab.lab.network.blocks.incomplete"] == 1 and seen["peerlab.lab.network.nodes.lagging"] == 1
    produced = metrics.take(block("n3", slow, 2, 29.0), 100.0)
    assert [(e["kind"], e["height"], e["seconds"], e["first"], e["last"]) for e in produced] == [("propagation", 2, 9.0, "n1", "n3")]
    seen = values(metrics)
    assert seen["peerlab.lab.network.blocks.propagated"] == 2 and seen["peerlab.lab.network.blocks.propagation_seconds"] == 9.0
    assert seen["peerlab.lab.nodes.n1.mining.blocks_mined"] == 2 and seen["peerlab.lab.nodes.n2.mining.blocks_mined"] == 0
    assert "peerlab.lab.network.blocks.propagation_seconds" not in values(metrics)  # nothing completed since


def test_network_view_covers_every_docker_hosts_nodes() -> None:
    # On a Swarm each host's collector used to write the network paths from its own nodes only
    # (edges.connected 1 of 3 with every link up). The observer sees every host's polls.
    metrics = observer.Metrics()
    metrics.configure(config(["n1", "n2", "n3"], [["n1", "n2"], ["n2", "n3"], ["n3", "n1"]]))
    tip = "c" * 64
    metrics.take(poll("n1", 5, tip, ["n2", "n3"]), 99.0)   # host A
    metrics.take(poll("n2", 5, tip, ["n1", "n3"]), 99.0)   # host B
    metrics.take(poll("n3", 5, tip, ["n1", "n2"]), 99.0)   # host C
    seen = values(metrics)
    assert seen["peerlab.lab.network.edges.connected"] == 3 and seen["peerlab.lab.network.edges.expected"] == 3
    assert seen["peerlab.lab.network.nodes.up"] == 3 and seen["peerlab.lab.network.tip_agreement"] == 1.0
    # a node whose last poll is older than three intervals is not up
    assert values(metrics, now=99.0 + 31)["peerlab.lab.network.nodes.up"] == 0


def test_traffic_matrix_and_message_counts_from_events() -> None:
    metrics = observer.Metrics()
    metrics.configure(config(["n1", "n2"], [["n1", "n2"]]))
    for event in (events.make("msg", "lab", "n1", 1.0, dir="out", type="inv", size=61, peer_node="n2"),
                  events.make("msg", "lab", "n2", 1.1, dir="in", type="inv", size=61, peer_node="n1"),
                  events.make("msg", "lab", "n1", 2.0, dir="out", type="ping", size=32, peer_node="n2"),
                  events.make("msg", "lab", "n1", 3.0, dir="in", type="addr", size=500, peer_node=None, addr="10.9.0.7:40000"),
                  events.make("msg", "lab", "n1", 4.0, dir="out", type="pong", size=32, peer_node=None),
                  events.make("msg", "other", "n1", 4.0, dir="out", type="pong", size=32, peer_node=None)):
        metrics.take(event, 5.0)
    seen = values(metrics)
    assert seen["peerlab.lab.network.traffic.n1.n2"] == 93  # each byte once: where it was sent
    assert "peerlab.lab.network.traffic.n2.n1" not in seen
    assert seen["peerlab.lab.network.traffic.external.n1"] == 500 and seen["peerlab.lab.network.traffic.n1.external"] == 32
    assert seen["peerlab.lab.nodes.n1.message.sent.inv"] == 1 and seen["peerlab.lab.nodes.n2.message.received.inv"] == 1


def test_websocket_handshake_and_frames() -> None:
    assert observer.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455's example
    assert observer.text_frame(b"hi") == b"\x81\x02hi"
    assert observer.text_frame(b"x" * 300)[:4] == b"\x81\x7e\x01\x2c"
    assert observer.text_frame(b"x" * 70000)[:10] == b"\x81\x7f" + (70000).to_bytes(8, "big")
    sub = observer.subscription("/events?network=lab&node=n1,n2&type=inv&type=conn")
    assert (sub.network, sub.nodes, sub.types) == ("lab", frozenset({"n1", "n2"}), frozenset({"inv", "conn"}))
