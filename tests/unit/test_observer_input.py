"""The Observer against input from the network: events on the bus and clients of its feed.

Nothing a peer, a bus client or a web page sends may stop it; what does not fit is dropped and
counted. The feed is served by the observer's own HTTP handler on a loopback socket."""

from __future__ import annotations

import base64
import json
import os
import queue
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "images" / "collector"))  # events, metrics
sys.path.insert(0, str(ROOT / "images" / "observer"))
import detectors
import events
import observer

GOOD_MSG = events.make("msg", "lab", "n1", 1.0, dir="in", type="inv", size=61, peer=3, addr="172.18.0.9:18444",
                       conn_type="inbound", peer_node=None)


def payload(event: Any) -> bytes:
    return json.dumps(event).encode()


def test_what_the_extractor_the_collector_and_the_detectors_make_fits_the_schema() -> None:
    nodelog = events.NodeLog("lab", "n2", names={"172.18.0.2": "n1"})
    made: list[dict[str, Any]] = []
    lines = [
        "2026-12-01T19:33:39Z New inbound v2 peer connected: version: 70016, blocks=0, peer=1, peeraddr=172.18.0.2:52258",
        "2026-12-01T19:33:41Z [net] received: inv (61 bytes) peer=1",
        "2026-12-01T19:33:41Z [net] sending ping (8 bytes) peer=1",
        "2026-12-01T19:33:41Z [net] Received addr: 12 addresses (10 processed, 2 rate-limited) from peer=1",
        "2026-12-01T19:33:42Z Misbehaving: peer=1: too many addresses",
        f"2026-12-01T19:33:42Z UpdateTip: new best={'ab' * 32} height=102 version=0x20000000 log2_work=7.68 tx=103",
        f"2026-12-01T19:33:43Z [mempool] AcceptToMemoryPool: peer=1: accepted {'cd' * 32} (poolsz 1 txn, 1 kB)",
        "2026-12-01T19:34:16Z [net] Cleared nodestate for peer=1",
    ]
    for index, line in enumerate(lines):
        made += nodelog.feed(f"2026-12-01T19:33:{index:02d}.0Z", float(index), line)
    assert {event["kind"] for event in made} == {"conn", "msg", "addr", "block", "tx"}
    poll = events.make("poll", "lab", "n2", 9.0, up=True, container="running", restarts=0, addresses=["172.18.0.3"],
                       tip="ab" * 32, height=102, headers=102, progress=1.0, uptime=30, bytes={"sent": 1, "received": 2},
                       mempool={"size": 0, "bytes": 0},
                       peers=[{"id": 1, "addr": "172.18.0.2:52258", "node": "n1", "inbound": True, "conn_type": "inbound",
                               "subver": "/Satoshi:29.0.0/", "bytessent": 1, "bytesrecv": 2, "pingtime": None, "conntime": 1}])
    alert = detectors.Detectors().detector("restart").alert(made[0], "bitcoind started again", restarts=1)
    propagation = events.make("propagation", "lab", "n2", 9.0, hash="ab" * 32, height=102, seconds=0.2, first="n1", last="n2")
    for event in [*made, poll, alert, propagation]:
        assert events.check(payload(event)) == event


@pytest.mark.parametrize(("raw", "reason"), [
    (b'{"v":1,"kind":"block","network":"lab","node":"n1","time":1}', "missing-field"),  # a block without height
    (b"[]", "not-an-object"),
    (b"1", "not-an-object"),
    (b'"text"', "not-an-object"),
    (b"\xff\xfe not json", "not-json"),
    (b"[" * 100_000, "not-json"),  # deep nesting
    (payload({**GOOD_MSG, "peer": None}), "wrong-type"),
    (payload({**GOOD_MSG, "peer": True}), "wrong-type"),  # a bool is not a peer id
    (payload({**GOOD_MSG, "size": "61"}), "wrong-type"),
    (b'{"v":1,"kind":"msg","network":"lab","node":"n1","time":NaN,"dir":"in","type":"inv","size":1,"peer":1}', "wrong-type"),
    (payload({**GOOD_MSG, "v": 2}), "schema-version"),
    (payload({**GOOD_MSG, "kind": "gossip"}), "unknown-kind"),
    (payload({**GOOD_MSG, "node": "n1.>"}), "bad-name"),  # NATS's wildcards in a name
    (payload(events.make("block", "lab", "n1", 1.0, hash="x" * 64, height=1)), "bad-value"),
    (payload(events.make("msg", "lab", "n1", 1.0, dir="sideways", type="inv", size=1, peer=1)), "bad-value"),
    (payload(events.make("msg", "lab", "n1", 1.0, dir="in", type="inv", size=-1, peer=1)), "bad-value"),
    (payload({**events.make("poll", "lab", "n1", 1.0, up=True), "peers": [None]}), "wrong-type"),
    (payload({**events.make("poll", "lab", "n1", 1.0, up=True), "peers": [{"inbound": "yes"}]}), "wrong-type"),
    (b'{"v":1,"kind":"msg","pad":"' + b"x" * events.MAX_EVENT_BYTES + b'"}', "too-large"),
])
def test_a_bad_event_names_why(raw: bytes, reason: str) -> None:
    with pytest.raises(events.BadEvent) as bad:
        events.check(raw)
    assert bad.value.reason == reason


def test_bad_events_are_dropped_and_counted_and_good_ones_still_flow() -> None:
    """The reproduction from the issue: a block without height used to end the bus's reader
    thread (KeyError in the detectors) while /healthz said all was well."""
    obs = observer.Observer()
    obs.config = {"interval": 10}
    bad = [b'{"v":1,"kind":"block","network":"lab","node":"n1","time":1}', b"[]", b"1", payload({**GOOD_MSG, "peer": None})]
    for raw in bad:
        obs.on_message("peerlab.lab.n1.block", raw)
    for index in range(3):
        obs.on_message("peerlab.lab.n1.msg", payload({**GOOD_MSG, "time": 2.0 + index}))
    assert obs.dropped == {"missing-field": 1, "not-an-object": 2, "wrong-type": 1}
    assert obs.received == 3 and obs.handler_errors == 0
    samples = {sample.graphite().removeprefix("peerlab.hosts.observer.observer."): sample.value for sample in obs.own_samples(10.0)}
    assert samples["events_dropped.not-an-object"] == 2 and samples["events"] == 3
    text = observer.metrics.prometheus_text(obs.own_samples(10.0))
    assert 'peerlab_host_observer_events_dropped{host="observer",reason="missing-field"} 1' in text


def test_a_handlers_failure_is_counted_and_the_next_event_is_handled(monkeypatch: pytest.MonkeyPatch) -> None:
    obs = observer.Observer()
    taken: list[dict[str, Any]] = []
    real = obs.detectors.take

    def take(event: dict[str, Any]) -> list[dict[str, Any]]:
        if not taken:
            taken.append(event)
            raise KeyError("a defect in a detector")
        return real(event)

    monkeypatch.setattr(obs.detectors, "take", take)
    obs.on_message("peerlab.lab.n1.msg", payload(GOOD_MSG))
    obs.on_message("peerlab.lab.n1.msg", payload({**GOOD_MSG, "time": 2.0}))
    assert obs.handler_errors == 1 and obs.received == 2


def test_the_bus_reader_goes_on_after_its_handler_fails() -> None:
    seen: list[bytes] = []

    def handler(_subject: str, data: bytes) -> None:
        if data == b"bad":
            raise TypeError("unhashable")
        seen.append(data)

    bus = events.Bus("127.0.0.1:1", "test", handler)
    for data in (b"bad", b"good", b"bad", b"good"):
        bus._deliver("peerlab.lab.n1.msg", data)
    assert seen == [b"good", b"good"] and bus.handler_errors == 2


def test_health_needs_the_bus_and_an_event_within_two_intervals() -> None:
    obs = observer.Observer()
    obs.config = {"interval": 10}
    assert obs.health(obs.started) == "bus not connected"
    obs.bus = events.Bus("127.0.0.1:1", "test")
    obs.bus.connected.set()
    assert obs.health(obs.last_event + 19) == ""
    assert obs.health(obs.last_event + 21) == "no event from the bus for 21 s"
    obs.on_message("peerlab.lab.n1.msg", b"[]")  # even a dropped event shows the bus delivers
    assert obs.health(obs.last_event + 1) == ""


def wait_until(condition: Any, seconds: float = 10.0) -> bool:
    """Whether `condition()` came true within `seconds` (the feed's threads act on their own time)."""
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def feed() -> Iterator[tuple[observer.Observer, int]]:
    obs = observer.Observer()
    obs.config = {"interval": 10, "feed_origins": ["http://127.0.0.1:8090"]}
    server = observer.FeedServer(obs, ("127.0.0.1", 0)).start()
    try:
        yield obs, server.port
    finally:
        server.stop()


def handshake(port: int, origin: str | None = None) -> tuple[socket.socket, str]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET /events?network=lab HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"] + ([f"Origin: {origin}"] if origin else [])
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return sock, answer.split(b"\r\n", 1)[0].decode()


def text_frame(sock: socket.socket) -> bytes:
    """One server frame (unmasked text, RFC 6455)."""
    data = b""
    while True:
        data += sock.recv(65536)
        if len(data) >= 2:
            assert data[0] == 0x81
            size, start = data[1], 2
            if size == 126:
                size, start = int.from_bytes(data[2:4], "big"), 4
            if len(data) >= start + size:
                return data[start:start + size]


def test_the_feed_refuses_other_sites_and_serves_the_portal_and_programs(feed: tuple[observer.Observer, int]) -> None:
    obs, port = feed
    _sock, status = handshake(port, "https://evil.example")
    assert status.startswith("HTTP/1.1 403")
    assert not obs.feed.subscribers
    for origin in ("http://127.0.0.1:8090", None):  # the portal's page; make events sends no Origin
        sock, status = handshake(port, origin)
        assert status.startswith("HTTP/1.1 101"), origin
        obs.on_message("peerlab.lab.n1.msg", payload(GOOD_MSG))
        assert json.loads(text_frame(sock)) == GOOD_MSG
        sock.close()


def test_a_frame_claiming_two_to_the_62_bytes_ends_only_its_subscription(feed: tuple[observer.Observer, int]) -> None:
    obs, port = feed
    sock, status = handshake(port)
    assert status.startswith("HTTP/1.1 101") and len(obs.feed.subscribers) == 1
    sock.sendall(bytes([0x82, 0xFF]) + (2**62).to_bytes(8, "big") + b"\x00" * 4)  # masked binary frame, huge
    answer = b""
    while chunk := sock.recv(4096):
        answer += chunk
    assert answer[:1] == b"\x88" and int.from_bytes(answer[2:4], "big") == 1009, "closed as too big (RFC 6455's 1009)"
    sock.close()
    assert wait_until(lambda: not obs.feed.subscribers)
    other, status = handshake(port)
    assert status.startswith("HTTP/1.1 101"), "the feed goes on"
    other.close()


def test_subscribers_are_capped_and_a_client_that_does_not_read_is_dropped(
        feed: tuple[observer.Observer, int], monkeypatch: pytest.MonkeyPatch) -> None:
    obs, port = feed
    monkeypatch.setattr(observer, "MAX_SUBSCRIBERS", 2)
    held = [handshake(port)[0] for _client in range(2)]
    _sock, status = handshake(port)
    assert status.startswith("HTTP/1.1 503")
    # A subscriber 10,000 frames behind leaves the feed, counted, and makes room.
    slow = next(iter(obs.feed.subscribers))
    frame = b"x" * 16384  # its writer blocks once the socket's buffers are full; then its queue fills
    for _attempt in range(100):  # (until the writer is blocked: while the kernel grows its buffers it takes a frame more)
        while True:
            try:
                slow.frames.put_nowait(frame)
            except queue.Full:
                break
        obs.on_message("peerlab.lab.n1.msg", payload(GOOD_MSG))
        if slow not in obs.feed.subscribers:
            break
    assert obs.feed.slow == 1 and len(obs.feed.subscribers) == 1
    sock, status = handshake(port)
    assert status.startswith("HTTP/1.1 101")
    for each in [*held, sock]:
        each.close()


def test_a_client_that_left_before_its_101_arrived_holds_no_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its subscription is taken before the answer goes out; it never reaches the handler, so it
    goes at the next handshake once JOINING seconds have passed."""
    from websockets.datastructures import Headers
    from websockets.http11 import Request, Response

    obs = observer.Observer()
    server = observer.FeedServer(obs, ("127.0.0.1", 0))
    try:
        upgraded = Response(101, "Switching Protocols", Headers())
        assert server._accepted(object(), Request("/events", Headers()), upgraded) is None  # type: ignore[arg-type]
        assert len(obs.feed.subscribers) == 1
        monkeypatch.setattr(observer, "JOINING", -1.0)
        assert server._accepted(object(), Request("/events?network=lab", Headers()), upgraded) is None  # type: ignore[arg-type]
        assert [sub.network for sub in obs.feed.subscribers] == ["lab"], "the one that left is gone"
    finally:
        server.server.socket.close()


def test_ten_thousand_random_and_malformed_payloads_leave_the_observer_working() -> None:
    """Random bytes, random JSON, and good events of every kind with a field removed or given a
    value of another type: each is handled or dropped, none raises, and a good event after them
    still reaches a feed subscriber."""
    import random

    rng = random.Random(24)
    kinds = {kind: {**{name: 1 for name in required}, **events.make(kind, "lab", "n1", 1.0)}
             for kind, (required, _optional) in events.FIELDS.items()}
    values: list[Any] = [None, True, -1, 2**70, 1.5, float("inf"), "", "x" * 300, [], [None], {}, {"a": [1]}, "n1.>"]
    obs = observer.Observer()
    obs.config = {"interval": 10}
    for _payload in range(10_000):
        choice = rng.random()
        if choice < 0.2:
            raw = bytes(rng.randrange(256) for _byte in range(rng.randrange(64)))
        elif choice < 0.4:
            raw = json.dumps(rng.choice(values)).encode()
        else:
            event = dict(kinds[rng.choice(sorted(kinds))])
            name = rng.choice(sorted(event))
            if rng.random() < 0.3:
                del event[name]
            else:
                event[name] = rng.choice(values)
            raw = json.dumps(event).encode()
        obs.on_message("peerlab.lab.n1.msg", raw)
    assert sum(obs.dropped.values()) + obs.received == 10_000
    assert obs.handler_errors == 0, "what fits the schema, every handler takes"
    reasons = {"not-json", "not-an-object", "schema-version", "unknown-kind", "missing-field", "wrong-type", "bad-name", "bad-value"}
    assert sum(obs.dropped.values()) > 5_000 and set(obs.dropped) <= reasons
    sub = observer.subscription("/events?network=lab")
    obs.feed.subscribers.add(sub)
    obs.on_message("peerlab.lab.n1.msg", payload(GOOD_MSG))
    assert sub.frames.get_nowait() == payload(GOOD_MSG)
