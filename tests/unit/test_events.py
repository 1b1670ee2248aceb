"""Events from node logs, and the observer's metrics computed from them (pure logic)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "images" / "collector"))  # events, metrics
sys.path.insert(0, str(ROOT / "images" / "observer"))
import detectors
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


def test_lines_marked_while_bitcoind_suppresses_a_noisy_source_are_read_the_same() -> None:
    # -logratelimit (Bitcoin Core 29.1+, Knots 29.x): once a source location logs over 1 MiB an hour
    # (the wallet under heavy traffic), every line carries "[*] " until the window resets.
    nodelog = events.NodeLog("lab", "n1")
    got = read(nodelog, [
        "[*] 2026-12-01T19:33:41.123456Z [warning] Excessive logging detected from ./src/wallet/wallet.h:978 (...)",
        f"[*] 2026-12-01T19:33:41.873730Z UpdateTip: new best={PEER_BLOCK} height=213 version=0x30000000",
        "[*] 2026-12-01T19:33:42.315634Z [net] received: cmpctblock (260 bytes) peer=21",
    ])
    assert [(event["kind"], event.get("height"), event.get("type")) for event in got] == [("block", 213, None), ("msg", None, "cmpctblock")]


def test_misbehaving_and_evicted_peers() -> None:
    # Bitcoin Core 29's wording (net_processing.cpp Misbehaving, net.cpp AttemptToEvictConnection)
    nodelog = events.NodeLog("lab", "n1")
    got = read(nodelog, ["2026-12-01T19:33:41Z [net] Misbehaving: peer=7: addr message size = 1001",
                         "2026-12-01T19:33:42Z [net] selected inbound connection for eviction peer=9; disconnecting"])
    assert [(e["event"], e["peer"], e.get("reason")) for e in got] == [("misbehaving", 7, "addr message size = 1001"),
                                                                       ("evicted", 9, None)]


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


def test_a_peers_block_between_assembling_and_the_header_does_not_take_this_nodes_block() -> None:
    # CI (busy machine, a block every 0.3 s): a peer's block arrived after this node's CreateNewBlock
    # and before its own header line; the peer's header took the pending block and this node's own
    # block was then counted as no one's.
    nodelog = events.NodeLog("lab", "n2")
    got = read(nodelog, [
        "2026-12-01T19:34:00Z CreateNewBlock(): total size: 249 block weight: 888 txs: 0 fees: 0 sigops 400",
        "2026-12-01T19:34:00Z [net] received: cmpctblock (262 bytes) peer=1",
        f"2026-12-01T19:34:00Z Saw new header hash={PEER_BLOCK} height=103",
        f"2026-12-01T19:34:00Z Saw new cmpctblock header hash={PEER_BLOCK} peer=1",
        f"2026-12-01T19:34:00Z Saw new header hash={OWN_BLOCK} height=103",
        f"2026-12-01T19:34:00Z UpdateTip: new best={OWN_BLOCK} height=103 version=0x20000000",
        f"2026-12-01T19:34:00Z UpdateTip: new best={PEER_BLOCK} height=103 version=0x20000000",
    ])
    assert [(e["hash"], e["mined"]) for e in got if e["kind"] == "block"] == [(OWN_BLOCK, True), (PEER_BLOCK, False)]


def test_this_nodes_header_between_a_peers_two_header_lines_is_this_nodes() -> None:
    nodelog = events.NodeLog("lab", "n2")
    got = read(nodelog, [
        "2026-12-01T19:34:00Z CreateNewBlock(): total size: 249 block weight: 888 txs: 0 fees: 0 sigops 400",
        "2026-12-01T19:34:00Z [net] received: cmpctblock (262 bytes) peer=1",
        f"2026-12-01T19:34:00Z Saw new header hash={PEER_BLOCK} height=103",
        f"2026-12-01T19:34:00Z Saw new header hash={OWN_BLOCK} height=103",
        f"2026-12-01T19:34:00Z Saw new cmpctblock header hash={PEER_BLOCK} peer=1",
        f"2026-12-01T19:34:00Z UpdateTip: new best={OWN_BLOCK} height=103 version=0x20000000",
        f"2026-12-01T19:34:01Z UpdateTip: new best={PEER_BLOCK} height=103 version=0x20000000",
        f"2026-12-01T19:34:02Z Saw new header hash={'d' * 64} height=104",  # a header batch's: not this node's
        f"2026-12-01T19:34:02Z Saw new header hash={'e' * 64} height=105 peer=1",
        f"2026-12-01T19:34:03Z UpdateTip: new best={'d' * 64} height=104 version=0x20000000",
    ])
    assert [(e["hash"], e["mined"]) for e in got if e["kind"] == "block"] == [(OWN_BLOCK, True), (PEER_BLOCK, False), ("d" * 64, False)]
    assert nodelog.claims == [] and not nodelog.pending_create


def test_a_block_connected_again_by_a_reorg_counts_as_mined_once() -> None:
    # CI counted n2's blocks up to 10 times too often: forks at a block every 0.3 s made nodes
    # switch branches back and forth, and every UpdateTip of an own block counted again.
    nodelog = events.NodeLog("lab", "n2")
    other = "c" * 64
    got = read(nodelog, [
        "2026-12-01T19:34:00Z CreateNewBlock(): total size: 249 block weight: 888 txs: 0 fees: 0 sigops 400",
        f"2026-12-01T19:34:00Z Saw new header hash={OWN_BLOCK} height=103",
        f"2026-12-01T19:34:00Z UpdateTip: new best={OWN_BLOCK} height=103 version=0x20000000",
        f"2026-12-01T19:34:01Z Saw new cmpctblock header hash={other} peer=1",
        f"2026-12-01T19:34:01Z UpdateTip: new best={other} height=103 version=0x20000000",
        f"2026-12-01T19:34:02Z UpdateTip: new best={OWN_BLOCK} height=103 version=0x20000000",
    ])
    assert [(e["hash"], e["mined"]) for e in got if e["kind"] == "block"] == [(OWN_BLOCK, True), (other, False), (OWN_BLOCK, False)]


def test_lines_sharing_a_timestamp_are_all_read_and_the_last_ones_time_is_kept() -> None:
    nodelog = events.NodeLog("lab", "n1")
    stamp = "2026-12-01T19:33:41.1Z"
    lines = ["[net] received: inv (37 bytes) peer=3", "[net] received: inv (37 bytes) peer=3"]
    assert len([e for line in lines for e in nodelog.feed(stamp, 1.0, line)]) == 2
    # Docker trims a fraction's trailing zeros: .12 comes after .1 but is the smaller string, and is read
    assert [e["type"] for e in nodelog.feed("2026-12-01T19:33:41.12Z", None, "[net] received: ping (8 bytes) peer=3")] == ["ping"]
    assert nodelog.read_to == "2026-12-01T19:33:41.12Z"


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


def test_peers_on_other_docker_hosts_are_named_by_the_observer() -> None:
    # A collector names only its own host's containers: a peer elsewhere is its service name
    # (outbound, addnode) or its overlay address (inbound). The observer knows both.
    metrics = observer.Metrics()
    network = config(["a", "b", "c"], [["a", "b"], ["b", "c"], ["c", "a"]])
    for node, spec in network["networks"]["lab"]["nodes"].items():
        spec["container"] = f"lab-{node}"
    metrics.configure(network)
    tip = "c" * 64

    def remote(addr: str) -> dict[str, Any]:
        return {"node": None, "addr": addr}

    for node, addresses, peers in (("a", ["10.0.1.2"], [remote("lab-b:18444"), remote("10.0.1.4:40000")]),
                                   ("b", ["10.0.1.3"], [remote("10.0.1.2:40001"), remote("lab-c:18444")]),
                                   ("c", ["10.0.1.4"], [remote("10.0.1.3:40002"), remote("lab-a:18444")])):
        metrics.take(events.make("poll", "lab", node, 0.0, up=True, height=5, tip=tip, peers=peers, addresses=addresses), 99.0)
    assert values(metrics)["peerlab.lab.network.edges.connected"] == 3
    metrics.take(events.make("msg", "lab", "a", 1.0, dir="out", type="inv", size=61, peer_node=None, addr="lab-b:18444"), 99.0)
    assert values(metrics)["peerlab.lab.network.traffic.a.b"] == 61


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


def test_a_feed_subscription_is_read_from_its_path() -> None:
    sub = observer.subscription("/events?network=lab&node=n1,n2&type=inv&type=conn")
    assert (sub.network, sub.nodes, sub.types) == ("lab", frozenset({"n1", "n2"}), frozenset({"inv", "conn"}))


def at(kind: str, node: str, when: float, **fields: Any) -> dict[str, Any]:
    return events.make(kind, "lab", node, when, **fields)


def fired(watch: detectors.Detectors, stream: list[dict[str, Any]]) -> list[tuple[str, str, float]]:
    return [(alert["detector"], alert["node"], alert["time"]) for event in stream for alert in watch.take(event)]


def test_addr_flood_is_bitcoin_cores_token_bucket() -> None:
    watch = detectors.Detectors()
    # 1000 at once is within the burst; 0.1/s refills: 10 more after 100 s are fine too
    assert fired(watch, [at("addr", "n1", 0.0, peer=7, addresses=1000, processed=1000, rate_limited=0),
                         at("addr", "n1", 100.0, peer=7, addresses=10, processed=10, rate_limited=0)]) == []
    # one more address than the bucket holds: an alert, once for this peer's connection
    assert fired(watch, [at("addr", "n1", 100.0, peer=7, addresses=1, processed=0, rate_limited=1),
                         at("addr", "n1", 101.0, peer=7, addresses=500, processed=0, rate_limited=500)]) == [("addr-flood", "n1", 100.0)]
    assert fired(watch, [at("addr", "n1", 102.0, peer=8, addresses=999)]) == []  # another peer has its own bucket
    # bitcoind's log line gives the counts
    nodelog = events.NodeLog("lab", "n1")
    line = ("2026-12-01T19:33:41Z [net] Received addr: 1000 addresses (21 processed, 979 rate-limited) "
            "from peer=12, peeraddr=172.18.0.9:40002")
    got = nodelog.feed("s", 3.0, line)
    assert [(e["kind"], e["addresses"], e["rate_limited"], e["peer"], e["addr"]) for e in got] == [
        ("addr", 1000, 979, 12, "172.18.0.9:40002")]


def test_ping_spam_is_more_than_three_pings_in_two_minutes_from_one_peer() -> None:
    watch = detectors.Detectors()
    normal = [at("msg", "n2", t, dir="in", type="ping", peer=3, size=8) for t in (0.0, 120.5, 241.0, 361.5, 482.0)]
    assert fired(watch, normal) == []  # bitcoind's own rhythm: one every 2 minutes
    spam = [at("msg", "n2", 500.0 + t, dir="in", type="ping", peer=4, size=8) for t in range(6)]
    assert fired(watch, spam) == [("ping-spam", "n2", 503.0)]


def test_the_ping_windows_edge_counts_a_ping_exactly_two_minutes_old_and_not_one_older() -> None:
    at_edge = [at("msg", "n2", t, dir="in", type="ping", peer=5, size=8) for t in (0.0, 40.0, 80.0, 120.0)]
    assert fired(detectors.Detectors(), at_edge) == [("ping-spam", "n2", 120.0)], "four pings within 120 s inclusive"
    past_edge = [at("msg", "n2", t, dir="in", type="ping", peer=5, size=8) for t in (0.0, 40.0, 80.0, 120.001)]
    assert fired(detectors.Detectors(), past_edge) == [], "the first has left the window: three in 120 s"


def test_eight_inbound_peers_from_one_16_in_different_24s_reach_the_16s_limit() -> None:
    watch = detectors.Detectors()  # the defaults: 4 per /24, 8 per /16
    seven = [{"inbound": True, "addr": f"10.9.{i}.7:5000", "node": None} for i in range(7)]
    assert fired(watch, [at("poll", "n1", 0.0, up=True, height=5, peers=seven)]) == [], "seven /24s, one each: below both limits"
    eighth = [*seven, {"inbound": True, "addr": "10.9.200.7:5000", "node": None}]
    alerts = watch.take(at("poll", "n1", 10.0, up=True, height=5, peers=eighth))
    assert [(a["detector"], a["subnet"], a["count"]) for a in alerts] == [("subnet-inbound", "10.9.0.0/16", 8)]


def test_many_inbound_peers_from_one_subnet_but_never_the_labs_own_nodes() -> None:
    watch = detectors.Detectors({"subnet24_inbound": 4, "subnet16_inbound": 8})
    own = [{"inbound": True, "addr": f"172.18.0.{i}:4000{i}", "node": f"n{i}"} for i in range(2, 9)]
    strangers = [{"inbound": True, "addr": f"172.18.0.40:5000{i}", "node": None} for i in range(4)]
    assert fired(watch, [at("poll", "n1", 0.0, up=True, height=5, peers=own)]) == []
    alerts = watch.take(at("poll", "n1", 10.0, up=True, height=5, peers=own + strangers))
    assert [(a["detector"], a["subnet"], a["count"]) for a in alerts] == [("subnet-inbound", "172.18.0.0/24", 4)]
    assert fired(watch, [at("poll", "n1", 20.0, up=True, height=5, peers=own + strangers)]) == []  # the same episode
    # they leave: the subnet episode ends, and 4 inbound peers lost at once is its own alert
    assert fired(watch, [at("poll", "n1", 30.0, up=True, height=5, peers=own)]) == [("inbound-drop", "n1", 30.0)]
    again = watch.take(at("poll", "n1", 40.0, up=True, height=5, peers=own + strangers))
    assert [a["detector"] for a in again] == ["subnet-inbound"]  # a new episode
    assert detectors.netgroups("[2001:db8::1]:8333") == ["2001:db8::/48", "2001:db8::/32"]


def test_inbound_peers_dropping_and_restarts_from_polls() -> None:
    watch = detectors.Detectors()
    peers = [{"inbound": True, "addr": f"10.{i}.0.1:1", "node": None} for i in range(10, 16)]  # each its own /16
    assert fired(watch, [at("poll", "n3", 0.0, up=True, height=1, restarts=0, peers=peers),
                         at("poll", "n3", 10.0, up=True, height=1, restarts=0, peers=peers[:4])]) == []  # 2 fewer: normal
    assert fired(watch, [at("poll", "n3", 20.0, up=True, height=1, restarts=0, peers=peers[:1])]) == [("inbound-drop", "n3", 20.0)]
    assert fired(watch, [at("poll", "n3", 30.0, up=False),
                         at("poll", "n3", 40.0, up=True, height=1, restarts=1, peers=[])]) == [("restart", "n3", 40.0)]
    # a crash drops every inbound peer at once: the restart says why, no inbound-drop besides
    assert fired(watch, [at("poll", "n3", 50.0, up=True, height=1, restarts=1, peers=peers),
                         at("poll", "n3", 60.0, up=True, height=1, restarts=2, peers=[])]) == [("restart", "n3", 60.0)]


def test_connect_and_listen_is_short_silent_connections_from_one_address() -> None:
    watch = detectors.Detectors()
    stream = []
    for index in range(3):
        start = index * 30.0
        stream += [at("conn", "n1", start, event="opened", peer=20 + index, addr="172.18.0.50:4000", conn_type="inbound", peer_node=None),
                   at("msg", "n1", start + 1, dir="in", type="ping", peer=20 + index, size=8),
                   at("conn", "n1", start + 10, event="closed", peer=20 + index, addr="172.18.0.50:4000", conn_type="inbound")]
    assert fired(watch, stream) == [("connect-listen", "n1", 70.0)]
    relaying = detectors.Detectors()
    stream = []
    for index in range(3):  # the same rhythm from a peer that relays: nothing
        start = index * 30.0
        stream += [at("conn", "n1", start, event="opened", peer=20 + index, addr="172.18.0.51:4000", conn_type="inbound", peer_node=None),
                   at("msg", "n1", start + 1, dir="in", type="inv", peer=20 + index, size=37),
                   at("conn", "n1", start + 10, event="closed", peer=20 + index, addr="172.18.0.51:4000", conn_type="inbound")]
    assert fired(relaying, stream) == []


def test_lagging_tip_fork_and_slow_block() -> None:
    watch = detectors.Detectors(interval=10)
    tip = "d" * 64
    stream = [at("poll", "n1", 0.0, up=True, height=10, tip=tip), at("poll", "n2", 0.0, up=True, height=7, tip=tip),
              at("poll", "n2", 5.0, up=True, height=7, tip=tip)]
    assert fired(watch, stream) == []  # 3 behind, but not for a whole interval yet
    assert fired(watch, [at("poll", "n2", 10.0, up=True, height=7, tip=tip)]) == [("lagging", "n2", 10.0)]
    assert fired(watch, [at("poll", "n2", 20.0, up=True, height=10, tip=tip),
                         at("poll", "n1", 20.0, up=True, height=11, tip=tip)]) == []  # caught up
    assert fired(watch, [at("block", "n1", 30.0, hash="e" * 64, height=12, mined=True),
                         at("block", "n2", 30.5, hash="e" * 64, height=12, mined=False, connect_seconds=0.01)]) == []
    assert fired(watch, [at("block", "n3", 31.0, hash="f" * 64, height=12, mined=True)]) == [("fork", detectors.NETWORK_NODE, 31.0)]
    assert fired(watch, [at("block", "n4", 31.0, hash="f" * 64, height=12, mined=False, connect_seconds=3.5)]) == [
        ("slow-block", "n4", 31.0)]


def test_block_connect_time_is_from_the_blocks_data_to_the_tip() -> None:
    nodelog = events.NodeLog("lab", "n2")
    got = read(nodelog, [
        "2026-12-01T19:33:41Z [net] received: cmpctblock (259 bytes) peer=1",
        f"2026-12-01T19:33:41Z Saw new header hash={PEER_BLOCK} height=102",
        "2026-12-01T19:33:41Z [net] received: cmpctblock (259 bytes) peer=0",  # the same block again
        f"2026-12-01T19:33:41Z UpdateTip: new best={PEER_BLOCK} height=102 version=0x20000000",
        "2026-12-01T19:33:50Z [net] received: cmpctblock (259 bytes) peer=2",  # and again, much later
        "2026-12-01T19:34:00Z [net] received: headers (82 bytes) peer=0",
        f"2026-12-01T19:34:00Z Saw new header hash={OWN_BLOCK} height=103",
        "2026-12-01T19:34:00Z [net] received: block (300 bytes) peer=0",
        f"2026-12-01T19:34:00Z UpdateTip: new best={OWN_BLOCK} height=103 version=0x20000000",
    ])
    blocks = [(e["height"], e.get("connect_seconds")) for e in got if e["kind"] == "block"]
    assert blocks == [(102, 3.0), (103, None)]  # lines 0 -> 3; a block fetched after its header: not measured


def test_block_times_are_bitcoinds_own_when_it_logs_microseconds() -> None:
    # CI caught n5 reported as the first to have a block n1 mined: Docker stamps a line when dockerd
    # reads it, and on a busy host n1's lines were read after n5's. With logtimemicros (the regtest
    # default) bitcoind's own time is used; a line without a fraction keeps Docker's.
    mined, took = events.NodeLog("lab", "n1"), events.NodeLog("lab", "n5")
    n1 = mined.feed("2026-12-01T19:33:41.900000000Z", 1_796_153_621.9,
                    f"2026-12-01T19:33:41.100200Z UpdateTip: new best={PEER_BLOCK} height=102 version=0x20000000")
    n5 = took.feed("2026-12-01T19:33:41.300000000Z", 1_796_153_621.3,
                   f"2026-12-01T19:33:41.140000Z UpdateTip: new best={PEER_BLOCK} height=102 version=0x20000000")
    assert (n1[0]["time"], n5[0]["time"]) == (1_796_153_621.1002, 1_796_153_621.14)
    metrics = observer.Metrics()
    metrics.configure(config(["n1", "n5"], []))
    metrics.take(n5[0], 0.0)
    produced = metrics.take(n1[0], 0.0)
    assert [(e["first"], e["last"], e["seconds"]) for e in produced] == [("n1", "n5", 0.0398)]
    plain = took.feed("2026-12-01T19:34:00.250000000Z", 1_796_153_640.25,
                      f"2026-12-01T19:34:00Z UpdateTip: new best={OWN_BLOCK} height=103")
    assert plain[0]["time"] == 1_796_153_640.25
    assert events.epoch("2026-12-01T19:33:41Z") == 1_796_153_621.0 and events.epoch("n/a") is None


def test_the_miner_has_its_block_from_its_header_line_not_its_tip() -> None:
    # CI caught it twice: n5 reported as the first to have a block n1 mined. A miner sends the
    # block to its peers (NewPoWValidBlock) before it connects it, so a peer's UpdateTip can be
    # logged before the miner's own. The miner's arrival is its header line (`made`).
    miner, peer = events.NodeLog("lab", "n1"), events.NodeLog("lab", "n5")
    mined = [miner.feed(f"2026-12-01T19:34:00.{index:06d}000Z", 0.0, line)
             for index, line in enumerate([
                 "2026-12-01T19:34:00.100000Z CreateNewBlock(): total size: 249 block weight: 888 txs: 0 fees: 0 sigops 400",
                 f"2026-12-01T19:34:00.110000Z Saw new header hash={OWN_BLOCK} height=103",
                 f"2026-12-01T19:34:00.111000Z [net] PeerManager::NewPoWValidBlock sending header-and-ids {OWN_BLOCK} to peer=0",
                 f"2026-12-01T19:34:00.190000Z UpdateTip: new best={OWN_BLOCK} height=103 version=0x20000000"])]
    took = [peer.feed(f"2026-12-01T19:34:00.{index:06d}000Z", 0.0, line)
            for index, line in enumerate([
                "2026-12-01T19:34:00.120000Z [net] received: cmpctblock (259 bytes) peer=3",
                f"2026-12-01T19:34:00.121000Z Saw new cmpctblock header hash={OWN_BLOCK} peer=3",
                f"2026-12-01T19:34:00.150000Z UpdateTip: new best={OWN_BLOCK} height=103 version=0x20000000"])]
    n1, n5 = mined[-1][0], took[-1][0]
    assert (n1["mined"], n1["made"], n1["time"]) == (True, 1_796_153_640.11, 1_796_153_640.19) and "made" not in n5
    metrics = observer.Metrics()
    metrics.configure(config(["n1", "n5"], []))
    metrics.take(n5, 0.0)
    produced = metrics.take(n1, 0.0)
    assert [(e["first"], e["last"], e["seconds"]) for e in produced] == [("n1", "n5", 0.04)]


def test_archive_keeps_every_event_and_replays_a_window(tmp_path: Path) -> None:
    archive = observer.Archive(str(tmp_path), keep_hours=2)
    hour = 1_796_151_600.0  # 2026-12-01T19:00:00Z
    for index in range(3):  # three intervals: three gzip members in one file
        archive.add(json.dumps(events.make("msg", "lab", "n1", hour + index, dir="in", type="inv", size=37)).encode())
        archive.flush(hour + index)
    archive.add(json.dumps(events.make("block", "lab", "n2", hour + 3600, hash="a" * 64, height=1, mined=False)).encode())
    archive.flush(hour + 3600)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["events-20261201T19.jsonl.gz", "events-20261201T20.jsonl.gz"]
    assert [event["time"] for event in observer.replay(str(tmp_path))] == [hour, hour + 1, hour + 2, hour + 3600]
    assert [event["kind"] for event in observer.replay(str(tmp_path), since=hour + 1.5, until=hour + 7200)] == ["msg", "block"]
    os.utime(tmp_path / "events-20261201T19.jsonl.gz", (hour + 2, hour + 2))
    os.utime(tmp_path / "events-20261201T20.jsonl.gz", (hour + 3600, hour + 3600))
    archive.flush(hour + 3 * 3600 - 1)  # the 19h file, last written almost three hours ago, goes
    assert [path.name for path in tmp_path.iterdir()] == ["events-20261201T20.jsonl.gz"]


def test_state_names_managed_peers_lists_foreign_ones_and_marks_edges_connected() -> None:
    # The portal's view: n1 sees n2 and a foreign bitcoind; n2 sees n1 by address; n3 never answered.
    metrics = observer.Metrics()
    metrics.configure(config(["n1", "n2", "n3"], [["n1", "n2"], ["n2", "n3"]]))
    foreign = {"id": 7, "addr": "172.18.0.99:41000", "node": None, "inbound": True, "conn_type": "inbound",
               "subver": "/Satoshi:27.0.0/", "pingtime": 0.004}
    metrics.take(events.make("poll", "lab", "n1", 90.0, up=True, addresses=["172.18.0.2"]), 80.0)
    metrics.take(events.make("poll", "lab", "n2", 90.0, up=True, height=5, tip="a" * 64, addresses=["172.18.0.3"],
                             peers=[{"id": 3, "addr": "172.18.0.2:50000", "inbound": True}]), 95.0)
    metrics.take(events.make("poll", "lab", "n1", 99.0, up=True, height=5, headers=5, tip="a" * 64, uptime=69, restarts=1,
                             mempool={"size": 2, "bytes": 400}, bytes={"sent": 10, "received": 20},
                             peers=[{"id": 1, "addr": "lab-n2:18444", "node": "n2", "inbound": False, "pingtime": 0.001}, foreign]), 99.0)
    metrics.take(events.make("alert", "lab", "n1", 96.0, detector="ping_spam", message="peer 7: 4 pings in 120 s"), 96.0)
    metrics.take(events.make("alert", "lab", "n2", -600.0, detector="restart", message="long ago"), 96.0)
    state = metrics.state(now=100.0, interval=10.0)["lab"]
    n1, n2, n3 = (state["nodes"][node] for node in ("n1", "n2", "n3"))
    assert (n1["fresh"], n1["height"], n1["uptime"], n1["restarts"]) == (True, 5, 69, 1)
    assert (n1["mempool"]["size"], n1["bytes"]["received"]) == (2, 20)
    assert (n1["peers_in"], n1["peers_out"], n1["median_ping"]) == (1, 1, 0.004)
    assert [peer["node"] for peer in n1["peers"]] == ["n2", None] and n1["peers"][1]["subver"] == "/Satoshi:27.0.0/"
    assert [peer["node"] for peer in n2["peers"]] == ["n1"], "named by n1's own address from its earlier poll"
    assert n1["alerts"] == [{"detector": "ping_spam", "time": 96.0, "message": "peer 7: 4 pings in 120 s"}] and n2["alerts"] == []
    assert (n3["fresh"], n3["up"], n3["peers"]) == (False, False, [])
    assert state["edges"] == [{"from": "n1", "to": "n2", "connected": True}, {"from": "n2", "to": "n3", "connected": False}]
    later = metrics.state(now=128.0, interval=10.0)["lab"]["nodes"]
    assert (later["n1"]["fresh"], later["n2"]["fresh"], later["n1"]["alerts"][0]["detector"]) == (True, False, "ping_spam")


def test_state_shows_a_link_when_the_log_opens_it_and_drops_it_when_the_log_closes_it() -> None:
    # n1 polled at 100 with n2 as its only peer; at 101 its log says n3 connected (inbound), at 102
    # that n2's connection closed: the portal's view has both changes before the next poll.
    metrics = observer.Metrics()
    metrics.configure(config(["n1", "n2", "n3"], [["n1", "n2"], ["n3", "n1"]]))
    metrics.take(events.make("poll", "lab", "n3", 99.0, up=True, addresses=["172.18.0.4"]), 99.0)
    n2 = {"id": 1, "addr": "lab-n2:18444", "node": "n2", "inbound": False}
    metrics.take(events.make("poll", "lab", "n1", 100.0, up=True, peers=[n2]), 100.2)

    def view() -> tuple[list[Any], list[bool]]:
        lab = metrics.state(now=103.0, interval=10.0)["lab"]
        return [peer["node"] for peer in lab["nodes"]["n1"]["peers"]], [edge["connected"] for edge in lab["edges"]]

    opened = events.make("conn", "lab", "n1", 101.0, event="opened", peer=4, addr="172.18.0.4:40000", conn_type="inbound", peer_node=None)
    metrics.take(opened, 101.0)
    assert view() == (["n2", "n3"], [True, True]), "named by n3's address from its poll"
    metrics.take(events.make("conn", "lab", "n1", 102.0, event="closed", peer=1, addr="lab-n2:18444", conn_type="manual"), 102.0)
    assert view() == (["n3"], [False, True])
    # a poll that asked before the close still lists n2: the close, later, wins; one after it replaces both
    both = [{"id": 1, "addr": "lab-n2:18444", "node": "n2"}, {"id": 4, "addr": "172.18.0.4:40000", "inbound": True}]
    metrics.take(events.make("poll", "lab", "n1", 101.5, up=True, peers=both), 103.0)
    assert view() == (["n3"], [False, True])
    metrics.take(events.make("poll", "lab", "n1", 104.0, up=True, peers=[{"id": 5, "addr": "lab-n2:18444", "node": "n2"}]), 104.0)
    assert view() == (["n2"], [True, False])


def test_every_configured_nodes_mined_counter_starts_at_zero() -> None:
    # A counter first written at 1 (the node's first event after the observer started was its own
    # block) has no point before it: Graphite's derivative lost that block (199 of 200 in a CI run).
    metrics = observer.Metrics()
    metrics.configure(config(["n1", "n2", "n3"], []))
    seen = values(metrics)
    assert [seen[f"peerlab.lab.nodes.{node}.mining.blocks_mined"] for node in ("n1", "n2", "n3")] == [0, 0, 0]
    metrics.take(block("n3", "c" * 64, 1, 10.0, mined=True), 11.0)
    assert values(metrics)["peerlab.lab.nodes.n3.mining.blocks_mined"] == 1


def test_out_of_order_addr_events_never_refill_negatively() -> None:
    watch = detectors.Detectors()
    # 900 at t=100, then a line stamped earlier (t=50) with 0 addresses: no refill below zero, no alert
    assert fired(watch, [at("addr", "n1", 100.0, peer=7, addresses=900),
                         at("addr", "n1", 50.0, peer=7, addresses=0)]) == []
    tokens, clock = watch.detector("addr-flood").nodes[("lab", "n1")][7]
    assert (tokens, clock) == (100.0, 100.0), "the late line changed neither the tokens nor the bucket's clock"


def test_short_connections_without_addresses_are_each_their_own_source() -> None:
    """Without logips the address is "": three short connections of three different peers are
    three sources, not one source "" reaching the limit."""
    watch = detectors.Detectors()
    stream = []
    for index in range(3):
        stream += [at("conn", "n1", index * 30.0, event="opened", peer=20 + index, addr="", conn_type="inbound", peer_node=None),
                   at("conn", "n1", index * 30.0 + 10, event="closed", peer=20 + index, addr="", conn_type="inbound")]
    assert fired(watch, stream) == []


def test_a_restart_forgets_the_old_bitcoinds_peers_and_a_new_peer_floods_alone() -> None:
    watch = detectors.Detectors()
    poll = {"up": True, "peers": [{"id": 3, "inbound": True, "addr": "172.18.0.9:1"}]}
    assert fired(watch, [at("poll", "n1", 0.0, restarts=0, **poll),
                         at("addr", "n1", 1.0, peer=3, addresses=9_940)]) == [("addr-flood", "n1", 1.0)]
    # bitcoind restarts; its new peer 3 is another peer, with a full bucket: its own flood alerts
    assert fired(watch, [at("poll", "n1", 10.0, restarts=1, **poll)]) == [("restart", "n1", 10.0)]
    assert fired(watch, [at("addr", "n1", 11.0, peer=3, addresses=500)]) == []
    assert fired(watch, [at("addr", "n1", 12.0, peer=3, addresses=600)]) == [("addr-flood", "n1", 12.0)]


def test_per_peer_state_is_pruned_to_the_peers_a_poll_lists() -> None:
    """On a public chain (no debug=net, so no "Cleared nodestate" line) the peers that left are
    forgotten at the next poll; a peer newer than every listed one may have connected since: kept."""
    watch = detectors.Detectors()
    stream = [at("addr", "n1", 1.0, peer=peer, addresses=1) for peer in range(50)]
    stream += [at("msg", "n1", 1.0, dir="in", type="ping", size=8, peer=peer) for peer in range(50)]
    stream.append(at("poll", "n1", 5.0, restarts=0, up=True, peers=[{"id": 10, "inbound": False, "addr": "a:1"},
                                                                    {"id": 40, "inbound": False, "addr": "b:1"}]))
    fired(watch, stream)
    kept = [watch.detector(name).nodes[("lab", "n1")] for name in ("addr-flood", "ping-spam")]
    assert sorted(kept[0]) == sorted(kept[1]) == [10, *range(40, 50)]


def test_message_types_a_peer_makes_up_are_other_and_make_no_new_series() -> None:
    nodelog = events.NodeLog("lab", "n1")
    made = []
    for index in range(1000):
        made += nodelog.feed(f"s{index:05d}", float(index), f"2026-12-01T19:33:41Z [net] received: zz{index:04d} (0 bytes) peer=5")
    made += nodelog.feed("s99999", 1000.0, "2026-12-01T19:33:41Z [net] received: inv (37 bytes) peer=5")
    assert {e["type"] for e in made} == {"other", "inv"} and made[0]["command"] == "zz0000" and "command" not in made[-1]
    metrics = observer.Metrics()
    metrics.configure({"networks": {"lab": {"nodes": {"n1": {}}, "edges": []}}})
    for event in made:
        metrics.take(event, event["time"])
    assert set(metrics.networks["lab"].counts["n1"].received) == {"other", "inv"}
    assert metrics.networks["lab"].counts["n1"].received["other"] == 1000


def test_a_misbehaving_peer_raises_one_alert_naming_it_per_connection() -> None:
    nodelog = events.NodeLog("lab", "n1")
    nodelog.learn_peers([{"id": 7, "addr": "172.18.0.9:40002", "connection_type": "inbound", "inbound": True}])
    (event,) = read(nodelog, ["2026-12-01T19:33:41Z [net] Misbehaving: peer=7: addr message size = 1001"])
    watch = detectors.Detectors()
    (alert,) = watch.take(event)
    assert (alert["detector"], alert["peer"], alert["addr"], alert["reason"]) == ("misbehaving", 7, "172.18.0.9:40002",
                                                                                  "addr message size = 1001")
    assert events.check(json.dumps(alert).encode()) == alert
    assert watch.take(event) == [], "one alert for the connection"
    assert fired(watch, [at("conn", "n1", 2.0, event="closed", peer=7, addr="172.18.0.9:40002"),
                         at("conn", "n1", 3.0, event="misbehaving", peer=8, reason="x")]) == [("misbehaving", "n1", 3.0)]


def test_the_detectors_watch_the_configured_nodes_and_a_network_made_again_starts_clean() -> None:
    watch = detectors.Detectors()
    watch.watch({("lab", "n1"), ("lab", "n2")})
    assert fired(watch, [at("addr", "n9", 1.0, peer=1, addresses=5000),  # not configured: ignored
                         events.make("addr", "other", "n1", 1.0, peer=1, addresses=5000)]) == []
    assert ("lab", "n9") not in watch.known() and ("other", "n1") not in watch.known()
    first, second = "aa" * 32, "bb" * 32
    assert fired(watch, [at("block", "n1", 1.0, hash=first, height=5), at("poll", "n1", 2.0, up=True, height=5)]) == []
    # The network is torn down (the configuration loses it), then made again: its new chain's block
    # at height 5 is no fork of the old one's.
    watch.watch(set())
    assert watch.detector("fork").networks == {} and watch.detector("lagging").networks == {} and watch.known() == set()
    watch.watch({("lab", "n1"), ("lab", "n2")})
    assert fired(watch, [at("block", "n2", 3.0, hash=second, height=5)]) == []
    # while it lives, two blocks at one height are a fork
    assert fired(watch, [at("block", "n1", 4.0, hash=first, height=5)]) == [("fork", "_network", 4.0)]


def inv(node: str, when: float, peer: int, entries: int, direction: str = "in") -> dict[str, Any]:
    """An inv message of `entries` entries as bitcoind logs its size (compact size + 36 bytes each)."""
    return at("msg", node, when, dir=direction, type="inv", peer=peer, size=(1 if entries < 253 else 3) + 36 * entries)


def test_inv_entries_are_read_from_the_logged_size() -> None:
    assert [detectors.inv_entries(size) for size in (1, 37, 1 + 36 * 252, 3 + 36 * 253, 3 + 36 * 5000, 5 + 36 * 70000)] == [
        0, 1, 252, 253, 5000, 70000]


def test_inv_flood_is_more_than_bitcoin_cores_announcement_limits() -> None:
    watch = detectors.Detectors()
    # an honest Core peer under a backlog: 1000 entries every 2 s, for a minute
    honest = [inv("n1", 2.0 * index, 3, 1000) for index in range(30)]
    assert fired(watch, honest) == []
    # 5000 at once (the most a node tracks per peer) is within the burst; the next 5000 a second later is not
    flood = [inv("n1", 100.0, 4, 5000), inv("n1", 101.0, 4, 5000), inv("n1", 101.5, 4, 5000)]
    assert fired(watch, flood) == [("inv-flood", "n1", 101.0)], "once per episode"
    # the peer's episode ends with its connection; another peer has its own bucket
    assert fired(watch, [inv("n1", 101.6, 5, 4999)]) == []
    events_closed = at("conn", "n1", 102.0, event="closed", peer=4)
    fired(watch, [events_closed])
    assert 4 not in watch.detector("inv-flood").nodes[("lab", "n1")]


def test_a_spy_takes_announcements_and_never_asks_or_announces() -> None:
    watch = detectors.Detectors()
    # peer 3 asks for a transaction now and then; peer 4 announces its own; peer 5 only listens
    stream = []
    for index in range(40):
        stream += [inv("n2", float(index), peer, 2, "out") for peer in (3, 4, 5)]
        if index % 10 == 0:
            stream += [at("msg", "n2", index + 0.5, dir="in", type="getdata", peer=3, size=37),
                       inv("n2", index + 0.5, 4, 1)]
    assert fired(watch, stream) == [("spy-peer", "n2", 24.0)], "50 announcements (25 invs of 2) and not one answer"
    # a spy that asks once is a peer again; its count starts over
    fired(watch, [at("msg", "n2", 50.0, dir="in", type="getdata", peer=5, size=37)])
    assert fired(watch, [inv("n2", 51.0 + index, 5, 2, "out") for index in range(40)]) == []


def test_unknown_message_types_from_one_peer_within_a_minute() -> None:
    watch = detectors.Detectors()
    once = [at("msg", "n3", float(index), dir="in", type="other", command="sendfoo", peer=3, size=0) for index in range(3)]
    assert fired(watch, once) == []  # an honest peer's few feature negotiations
    slow = [at("msg", "n3", 100.0 + 10 * index, dir="in", type="other", command="zz", peer=4, size=0) for index in range(20)]
    assert fired(watch, slow) == [], "one every 10 s: never ten in a minute"
    many = [at("msg", "n3", 400.0 + index / 10, dir="in", type="other", command=f"zz{index}", peer=5, size=0) for index in range(20)]
    alerts = [alert for event in many for alert in watch.take(event)]
    assert [(alert["detector"], alert["peer"], alert["command"]) for alert in alerts] == [("unknown-messages", 5, "zz9")]


def test_handshake_churn_is_peers_leaving_between_version_and_verack() -> None:
    watch = detectors.Detectors()
    stream = []
    # honest peers: version, verack, then they leave (even quickly): no churn
    for peer in range(20):
        stream += [at("msg", "n4", float(peer), dir="in", type="version", peer=peer, size=102),
                   at("msg", "n4", peer + 0.1, dir="in", type="verack", peer=peer, size=0),
                   at("conn", "n4", peer + 0.2, event="closed", peer=peer)]
    # a peer that closed without ever sending version (a port scan) is no handshake either
    stream += [at("conn", "n4", 30.0 + index, event="closed", peer=100 + index) for index in range(20)]
    assert fired(watch, stream) == []
    # ten that send version and leave, within a minute; nine an hour later are not ten in a minute
    churn = []
    for index in range(10):
        churn += [at("msg", "n4", 100.0 + 5 * index, dir="in", type="version", peer=200 + index, size=102),
                  at("conn", "n4", 100.5 + 5 * index, event="closed", peer=200 + index)]
    assert fired(watch, churn) == [("handshake-churn", "n4", 145.5)]
    later = []
    for index in range(9):
        later += [at("msg", "n4", 4000.0 + index, dir="in", type="version", peer=300 + index, size=102),
                  at("conn", "n4", 4000.5 + index, event="closed", peer=300 + index)]
    assert fired(watch, later) == []


def test_new_detectors_forget_peers_that_left_and_a_restart() -> None:
    watch = detectors.Detectors()
    stream = [inv("n1", 1.0, peer, 1, "out") for peer in range(20)]
    stream += [at("msg", "n1", 1.0, dir="in", type=kind, peer=peer, size=0, **({"command": "x"} if kind == "other" else {}))
               for peer in range(20) for kind in ("version", "other")]
    stream += [inv("n1", 1.0, peer, 1) for peer in range(20)]
    stream.append(at("poll", "n1", 5.0, restarts=0, up=True, peers=[{"id": 15, "inbound": True, "addr": "a:1"}]))
    fired(watch, stream)
    tables = [table for one in watch.detectors if ("lab", "n1") in one.nodes for table in one.peers(one.nodes[("lab", "n1")])]
    inv_flood, unknown = (watch.detector(name).nodes[("lab", "n1")] for name in ("inv-flood", "unknown-messages"))
    versions = watch.detector("handshake-churn").nodes[("lab", "n1")].versions
    answered = watch.detector("spy-peer").nodes[("lab", "n1")].answered
    assert sorted(inv_flood) == sorted(unknown) == sorted(versions) == sorted(answered) == [15, 16, 17, 18, 19]
    fired(watch, [at("poll", "n1", 15.0, restarts=1, up=True, peers=[{"id": 15, "inbound": True, "addr": "a:1"}])])
    assert len(tables) >= 6 and not any(tables)


def test_a_flood_of_pings_unknown_messages_or_churn_keeps_no_more_than_the_condition_needs() -> None:
    watch = detectors.Detectors()
    stream = [at("msg", "n1", i / 1000, dir="in", type="ping", peer=3, size=8) for i in range(5000)]
    stream += [at("msg", "n1", i / 1000, dir="in", type="other", command="zz", peer=4, size=0) for i in range(5000)]
    for i in range(5000):
        stream += [at("msg", "n1", i / 1000, dir="in", type="version", peer=100 + i, size=102),
                   at("conn", "n1", i / 1000, event="closed", peer=100 + i)]
    assert sorted({detector for detector, _node, _when in fired(watch, stream)}) == ["handshake-churn", "ping-spam", "unknown-messages"]
    kept = {name: watch.detector(name).nodes[("lab", "n1")] for name in ("ping-spam", "unknown-messages", "handshake-churn")}
    assert (len(kept["ping-spam"][3]), len(kept["unknown-messages"][4]), len(kept["handshake-churn"].churn)) == (4, 10, 10)


def test_every_detector_is_one_class_with_its_defaults_and_its_row_in_the_docs() -> None:
    """A new detector is one class, its entry in detectors.json, its attack and its docs: the
    registry, the defaults and the docs' table name the same detectors and thresholds."""
    with open(ROOT / "images" / "observer" / "detectors.json", encoding="utf-8") as handle:
        defaults = json.load(handle)
    assert set(detectors.REGISTRY) == set(defaults)
    thresholds = [name for entry in defaults.values() for name in entry]
    assert len(thresholds) == len(set(thresholds)), "a threshold name belongs to one detector (the inventory's names are flat)"
    section = (ROOT / "docs" / "events.md").read_text(encoding="utf-8").split("\n## Detectors\n")[1].split("\n## ")[0]
    rows = {line.split("|")[1].strip().strip("`"): line for line in section.splitlines() if line.startswith("| `")}
    for name, entry in defaults.items():
        assert name in rows, f"docs/events.md has no row for {name}"
        assert all(f"`{threshold}`" in rows[name] for threshold in entry), f"docs/events.md's {name} row names its thresholds"
    every = detectors.Detectors()
    assert set(every.by_kind) <= set(events.KINDS) and {one.name for one in every.detectors} == set(defaults)
