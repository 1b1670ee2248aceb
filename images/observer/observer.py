#!/usr/bin/env python3
"""peerlab observer: the tools on the event bus, one process on the monitoring host.

It subscribes to every event the extractors (one collector per Docker host) publish on NATS and
  - computes the metrics that need events or more than one Docker host: messages by type, blocks
    mined, the traffic matrix (bytes between each pair of nodes), and the network-wide view (nodes
    up, tips, edges connected, heights, propagation of each block to every node) over all of a
    network's nodes wherever they run; written to carbon and served for Prometheus at /metrics;
  - serves the events as a websocket feed (JSON, one event per text frame):
      ws://<observer>:8091/events?network=lab&node=n1,n2&type=inv,ping,conn
    and publishes what it computes (per-block propagation) back on the bus.

Configuration (JSON, written by the engine from the observer role's settings, no secrets; reread when it changes):
  {"bus": "peerlab-bus:4222", "carbon": "peerlab-graphite:2003", "interval": 10,
   "networks": {"lab": {"chain": "regtest", "edges": [["n1", "n2"]], "nodes": {"n1": {...}}}}}
Standard library and Debian's python3-websockets (the feed). Event schema and subjects: docs/events.md; metric names: docs/metrics.md.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import gzip
import http.server
import json
import logging
import os
import queue
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import alerting
import detectors
import events
import metrics
from forks import BlockTree
from metrics import Sample, log
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

CONFIG = os.environ.get("PEERLAB_OBSERVER_CONFIG", "/etc/peerlab/observer.json")
ARCHIVE = os.environ.get("PEERLAB_EVENTS_ARCHIVE", "/var/lib/peerlab/events")
WEBSOCKET_PORT = int(os.environ.get("PEERLAB_WEBSOCKET_PORT", "8091"))
PROMETHEUS_PORT = int(os.environ.get("PEERLAB_PROMETHEUS_PORT", "9333"))
EXTERNAL = "external"


# --------------------------------------------------------------------------------------------
# Metrics from events (pure; unit-tested)


class Propagation:
    """Each block's arrival at each node (the time the node took it as its tip), reported once when
    every node of the network has it. The last `keep` blocks are remembered; a block and the note
    that it was reported are forgotten together, so nothing is ever counted twice."""

    def __init__(self, keep: int = 2000) -> None:
        self.keep = keep
        self.arrivals: dict[str, dict[str, float]] = {}  # first arrival order
        self.heights: dict[str, int] = {}
        self.reported: set[str] = set()

    def arrive(self, block: str, height: int, node: str, when: float) -> None:
        seen = self.arrivals.setdefault(block, {})
        seen[node] = min(when, seen.get(node, when))
        self.heights[block] = height
        while len(self.arrivals) > self.keep:
            oldest = next(iter(self.arrivals))
            del self.arrivals[oldest]
            self.heights.pop(oldest, None)
            self.reported.discard(oldest)

    def complete(self, nodes: list[str]) -> list[dict[str, Any]]:
        """Blocks that reached every node since the last call, oldest first: hash, height, seconds
        from the first node to the last, and which nodes those were."""
        out = []
        for block, seen in self.arrivals.items():
            if block in self.reported or not nodes or any(node not in seen for node in nodes):
                continue
            self.reported.add(block)
            first = min(nodes, key=lambda node: seen[node])
            last = max(nodes, key=lambda node: seen[node])
            out.append({"hash": block, "height": self.heights[block], "seconds": round(seen[last] - seen[first], 6),
                        "first": first, "last": last})
        return out

    def incomplete(self, nodes: list[str], heights: dict[str, int], now: float, grace: float) -> int:
        """Blocks seen more than `grace` seconds ago that some node, still below them, lacks: the
        lagging nodes' share of propagation (a node that moved past a block on another branch does not count)."""
        count = 0
        for block, seen in self.arrivals.items():
            if block in self.reported or now - min(seen.values()) < grace:
                continue
            height = self.heights[block]
            if any(node not in seen and heights.get(node, -1) < height for node in nodes):
                count += 1
        return count


@dataclass
class NodeCounts:
    received: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    mined: int = 0
    last_block: float | None = None
    connections: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)
    last_alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # detector -> its latest alert event


@dataclass
class NetworkState:
    nodes: list[str]
    edges: list[list[str]]
    names: dict[str, str] = field(default_factory=dict)  # a node's container name or address -> the node
    polls: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)  # node -> (received at, event)
    counts: dict[str, NodeCounts] = field(default_factory=dict)
    traffic: dict[tuple[str, str], int] = field(default_factory=dict)  # (from, to) -> bytes
    propagation: Propagation = field(default_factory=Propagation)
    tree: BlockTree = field(default_factory=BlockTree)  # recent blocks from the nodes' tips (the portal's fork view)
    propagated: int = 0
    slowest: float | None = None  # the slowest block completed since the last samples
    alerts: dict[str, int] = field(default_factory=dict)  # network-wide alerts by detector
    last_alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # detector -> its latest network-wide alert
    # Connections a node's log opened or closed since its latest poll (peer id -> peer, or the
    # time it closed): the portal sees a link come and go when it happens, not at the next poll.
    opened: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    closed: dict[str, dict[int, float]] = field(default_factory=dict)

    def live_peers(self, node: str, polled: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A node's peers: its latest poll's, less those closed since, plus those opened since."""
        gone = self.closed.get(node, {})
        peers = [peer for peer in polled if peer.get("id") not in gone]
        known = {peer.get("id") for peer in peers}
        return peers + [peer for peer_id, peer in sorted(self.opened.get(node, {}).items()) if peer_id not in known]


class Metrics:
    """Events in, samples out. Nodes and edges come from the configuration: every node of a
    network counts, on whichever Docker host it runs, answering or not."""

    def __init__(self) -> None:
        self.networks: dict[str, NetworkState] = {}
        self.lock = threading.Lock()

    def configure(self, config: dict[str, Any]) -> None:
        with self.lock:
            for name, spec in config.get("networks", {}).items():
                state = self.networks.setdefault(name, NetworkState(sorted(spec.get("nodes", {})), spec.get("edges", [])))
                state.nodes, state.edges = sorted(spec.get("nodes", {})), spec.get("edges", [])
                state.tree.forget(set(state.nodes))
                # on a Swarm a peer on another host shows as its service name or its overlay address
                state.names.update({node_spec["container"]: node for node, node_spec in spec.get("nodes", {}).items()
                                    if isinstance(node_spec, dict) and node_spec.get("container")})
            for name in set(self.networks) - set(config.get("networks", {})):
                del self.networks[name]

    def take(self, event: dict[str, Any], received: float) -> list[dict[str, Any]]:
        """Account one event; returns the events this produces (per-block propagation, a node's reorganisation)."""
        with self.lock:
            state = self.networks.get(event.get("network", ""))
            node = event.get("node", "")
            if state is not None and event.get("kind") == "alert" and node == detectors.NETWORK_NODE:
                state.alerts[event["detector"]] = state.alerts.get(event["detector"], 0) + 1
                state.last_alerts[event["detector"]] = event
                return []
            if state is None or node not in state.nodes:
                return []
            counts = state.counts.setdefault(node, NodeCounts())
            kind = event.get("kind")
            if kind == "msg":
                table = counts.received if event.get("dir") == "in" else counts.sent
                table[event["type"]] = table.get(event["type"], 0) + 1
                peer = event.get("peer_node") or state.names.get(events.peer_host(event.get("addr", ""))) or EXTERNAL
                if event.get("dir") == "out":
                    pair = (node, peer)
                elif peer == EXTERNAL:  # a managed peer's bytes are counted where it sends them
                    pair = (EXTERNAL, node)
                else:
                    return []
                state.traffic[pair] = state.traffic.get(pair, 0) + int(event.get("size", 0))
            elif kind == "block":
                counts.mined += 1 if event.get("mined") else 0
                counts.last_block = max(counts.last_block or 0.0, float(event["time"]))
                state.propagation.arrive(event["hash"], int(event["height"]), node, float(event.get("made", event["time"])))
                out = []
                reorg = state.tree.block(node, event["hash"], int(event["height"]), float(event["time"]), bool(event.get("mined")))
                if reorg is not None:
                    out.append(events.make("reorg", event["network"], node, float(event["time"]),
                                           **{key: reorg[key] for key in ("hash", "height", "depth", "old", "old_height", "fork",
                                                                          "fork_height")}))
                for block in state.propagation.complete(state.nodes):
                    state.propagated += 1
                    state.slowest = max(state.slowest or 0.0, block["seconds"])
                    out.append(events.make("propagation", event["network"], block["last"], received, **block))
                return out
            elif kind == "poll":
                state.polls[node] = (received, event)
                if event.get("tip") and isinstance(event.get("height"), int):
                    state.tree.poll(node, event["tip"], event["height"], float(event["time"]))
                state.names.update({address: node for address in event.get("addresses") or []})
                # what the log said before this poll asked for its peers, the poll already knows
                polled = float(event.get("time", received))
                state.opened[node] = {peer_id: peer for peer_id, peer in state.opened.get(node, {}).items() if peer["time"] > polled}
                state.closed[node] = {peer_id: at for peer_id, at in state.closed.get(node, {}).items() if at > polled}
            elif kind == "conn":
                counts.connections[event["event"]] = counts.connections.get(event["event"], 0) + 1
                if isinstance(event.get("peer"), int) and event["event"] in ("opened", "closed"):
                    self._connection(state, node, event)
            elif kind == "alert":
                counts.alerts[event["detector"]] = counts.alerts.get(event["detector"], 0) + 1
                counts.last_alerts[event["detector"]] = event
            return []

    @staticmethod
    def _connection(state: NetworkState, node: str, event: dict[str, Any]) -> None:
        peer_id, when = int(event["peer"]), float(event["time"])
        if event["event"] == "opened":
            state.closed.get(node, {}).pop(peer_id, None)
            state.opened.setdefault(node, {})[peer_id] = {
                "id": peer_id, "addr": event.get("addr") or "", "node": event.get("peer_node"),
                "inbound": event.get("conn_type") == "inbound", "conn_type": event.get("conn_type") or "", "time": when}
        else:
            state.opened.get(node, {}).pop(peer_id, None)
            state.closed.setdefault(node, {})[peer_id] = when

    def state(self, now: float, interval: float, active: float = 600.0) -> dict[str, Any]:
        """What each network looks like now, from its nodes' latest polls and the connections their
        logs opened or closed since (the portal's view): per
        node its chain, peers (managed ones named, others as addresses with their user agent),
        mempool, traffic totals, uptime, restarts and alerts raised in the last `active` seconds;
        each declared edge with whether both ends see it; the network-wide alerts (fork) of the last
        `active` seconds."""
        out: dict[str, Any] = {}
        with self.lock:
            for network, state in sorted(self.networks.items()):
                nodes: dict[str, Any] = {}
                links: set[frozenset[str]] = set()
                for node in state.nodes:
                    received, poll = state.polls.get(node, (None, {}))
                    counts = state.counts.get(node, NodeCounts())
                    peers = []
                    for peer in state.live_peers(node, poll.get("peers") or []):
                        name = peer.get("node") or state.names.get(events.peer_host(peer.get("addr", "")))
                        peers.append({**peer, "node": name})
                        if name:
                            links.add(frozenset((node, name)))
                    pings = sorted(peer["pingtime"] for peer in peers if isinstance(peer.get("pingtime"), (int, float)))
                    nodes[node] = {
                        "fresh": received is not None and now - received <= 3 * interval,
                        "up": bool(poll.get("up")), "polled": received,
                        **{key: poll.get(key) for key in ("height", "headers", "tip", "progress", "uptime", "restarts",
                                                          "mempool", "bytes", "container")},
                        "peers": peers,
                        "peers_in": sum(1 for peer in peers if peer.get("inbound")),
                        "peers_out": sum(1 for peer in peers if not peer.get("inbound")),
                        "median_ping": pings[len(pings) // 2] if pings else None,
                        "mined": counts.mined,
                        "alerts": _recent(counts.last_alerts, now, active),
                    }
                out[network] = {"nodes": nodes,
                                "alerts": _recent(state.last_alerts, now, active),
                                "blocks": state.tree.view(),
                                "edges": [{"from": a, "to": b, "connected": frozenset((a, b)) in links} for a, b in state.edges]}
        return out

    def samples(self, now: float, interval: float) -> list[Sample]:
        out: list[Sample] = []
        with self.lock:
            for network, state in sorted(self.networks.items()):
                scope = ("network", network)
                fresh = {node: poll for node, (at, poll) in state.polls.items() if now - at <= 3 * interval}
                answered = {node: {"tip": poll["tip"], "height": poll["height"],
                                   "peers": {peer.get("node") or state.names.get(events.peer_host(peer.get("addr", "")))
                                             or peer.get("addr", "") for peer in poll.get("peers") or []}}
                            for node, poll in fresh.items() if poll.get("up") and poll.get("tip")}
                out += metrics.network_samples(network, answered, state.edges, len(state.nodes))
                out.append(Sample(scope, "blocks.propagated", state.propagated))
                if state.slowest is not None:
                    out.append(Sample(scope, "blocks.propagation_seconds", state.slowest))
                    state.slowest = None
                heights = {node: state["height"] for node, state in answered.items()}
                out.append(Sample(scope, "blocks.incomplete", state.propagation.incomplete(state.nodes, heights, now, 2 * interval)))
                out.append(Sample(scope, "nodes.lagging", sum(1 for node in state.nodes
                                                              if heights and heights.get(node, -1) < max(heights.values()))))
                out += [Sample(scope, "alerts", count, detector) for detector, count in sorted(state.alerts.items())]
                for (source, target), size in sorted(state.traffic.items()):
                    out.append(Sample(scope, "traffic", size, (source, target)))
                # Every configured node from the start, counted or not: a counter's first point must
                # be its 0, or a derivative loses the first block a node mines after an observer start.
                for node in sorted(set(state.nodes) | set(state.counts)):
                    counts = state.counts.get(node) or NodeCounts()
                    node_scope = ("node", network, node)
                    out += [Sample(node_scope, "message.received", count, msg) for msg, count in sorted(counts.received.items())]
                    out += [Sample(node_scope, "message.sent", count, msg) for msg, count in sorted(counts.sent.items())]
                    out += [Sample(node_scope, "connections", count, what) for what, count in sorted(counts.connections.items())]
                    out += [Sample(node_scope, "alerts", count, detector) for detector, count in sorted(counts.alerts.items())]
                    out.append(Sample(node_scope, "mining.blocks_mined", counts.mined))
                    if counts.last_block is not None:
                        out.append(Sample(node_scope, "chain.seconds_since_block", max(0.0, now - counts.last_block)))
        return out


# --------------------------------------------------------------------------------------------
# The websocket feed: websockets' threaded server (Debian's python3-websockets), one JSON event per
# text frame; what a client sends is read and dropped. Its plain HTTP answers (/metrics, /state,
# /healthz) are the metrics port's too.

# A client's own messages (it has nothing to send but a close or a pong) and how many may read at once.
MAX_CLIENT_FRAME = 4096
MAX_SUBSCRIBERS = 64
JOINING = 10.0  # seconds from a 101 answer to its handler, at most
QUIET = logging.getLogger("peerlab.feed")  # a client's reset or bad handshake is its own affair, not the log's
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


@dataclass(eq=False)  # each subscriber is itself (hashable by identity)
class Subscriber:
    network: str
    nodes: frozenset[str]
    types: frozenset[str]
    frames: queue.Queue[bytes | None] = field(default_factory=lambda: queue.Queue(maxsize=10_000))


def subscription(path: str) -> Subscriber:
    query = parse_qs(urlsplit(path).query)

    def listed(name: str) -> frozenset[str]:
        return frozenset(item for value in query.get(name, []) for item in value.split(",") if item)

    return Subscriber(network=(query.get("network") or [""])[0], nodes=listed("node"), types=listed("type"))


class Feed:
    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        self.lock = threading.Lock()
        self.sent = 0
        self.slow = 0  # subscribers dropped for not reading

    def broadcast(self, event: dict[str, Any], payload: bytes) -> None:
        with self.lock:
            targets = [sub for sub in self.subscribers if events.matches(event, sub.network, sub.nodes, sub.types)]
        for sub in targets:
            try:
                sub.frames.put_nowait(payload)
                self.sent += 1
            except queue.Full:
                # 10,000 events behind: a client that does not read. It leaves the feed (counted);
                # its connection ends when its writer gets the end mark.
                with self.lock:
                    self.subscribers.discard(sub)
                self.slow += 1
                end(sub)

    def join(self, sub: Subscriber) -> bool:
        """Take a subscriber unless the feed has MAX_SUBSCRIBERS already."""
        with self.lock:
            if len(self.subscribers) >= MAX_SUBSCRIBERS:
                return False
            self.subscribers.add(sub)
            return True

    def leave(self, sub: Subscriber) -> None:
        with self.lock:
            self.subscribers.discard(sub)


def end(sub: Subscriber) -> None:
    """Mark a subscription's end in its queue, making room if it is full."""
    while True:
        try:
            sub.frames.put_nowait(None)
            return
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                sub.frames.get_nowait()


def _recent(last_alerts: dict[str, dict[str, Any]], now: float, active: float) -> list[dict[str, Any]]:
    """Each detector's latest alert if it was raised in the last `active` seconds."""
    return [{"detector": detector, "time": alert["time"], "message": alert.get("message", "")}
            for detector, alert in sorted(last_alerts.items()) if now - float(alert["time"]) <= active]


def http_answer(observer: Observer, target: str) -> tuple[int, bytes, str]:
    """The observer's plain HTTP answers: (status, body, content type)."""
    path = urlsplit(target).path
    if path == "/metrics":
        return 200, metrics.prometheus_text(observer.latest).encode(), "text/plain; version=0.0.4"
    if path == "/state":
        return 200, json.dumps(observer.metrics.state(time.time(), float(observer.config.get("interval", 10)))).encode(), "application/json"
    if path == "/healthz":
        problem = observer.health(time.monotonic())
        return (503 if problem else 200), f"{problem or 'ok'}\n".encode(), "text/plain"
    return 404, b"not found: /events (websocket), /metrics, /state, /healthz\n", "text/plain"


def _response(status: int, body: bytes, kind: str = "text/plain") -> Response:
    return Response(status, http.HTTPStatus(status).phrase, Headers([("Content-Type", kind), ("Content-Length", str(len(body))),
                                                                     ("Connection", "close")]), body)


class FeedServer:
    """The websocket feed on its port. A browser always sends Origin: only the portal's pages may
    read the feed (it carries peers' addresses), never another site the user has open; programs
    (make events) send none. The subscriber is taken before the 101 answer goes out: a client that
    has read it gets every event from then on."""

    def __init__(self, observer: Observer, address: tuple[str, int]) -> None:
        self.observer = observer
        self.joining: dict[ServerConnection, tuple[Subscriber, float]] = {}  # handshakes answered, handler not yet run
        self.server = serve(self._connection, *address, process_request=self._request, process_response=self._accepted,
                            max_size=MAX_CLIENT_FRAME, compression=None, logger=QUIET, server_header=None, close_timeout=2)
        self.port = self.server.socket.getsockname()[1]

    def start(self) -> FeedServer:
        threading.Thread(target=self.server.serve_forever, name="feed", daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def _request(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path != "/events":
            return _response(*http_answer(self.observer, request.path))
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.observer.config.get("feed_origins", []):
            return _response(403, b"this Origin may not read the feed\n")
        return None

    def _accepted(self, connection: ServerConnection, request: Request, response: Response) -> Response | None:
        if response.status_code != 101:
            return None
        # A client that reset its connection before the 101 reached it never gets to the handler:
        # its subscription goes after JOINING seconds (it must not hold a place for ever).
        now = time.monotonic()
        for stale in [other for other, (_sub, since) in list(self.joining.items()) if now - since > JOINING]:
            gone = self.joining.pop(stale, None)
            if gone is not None:
                self.observer.feed.leave(gone[0])
        sub = subscription(request.path)
        if not self.observer.feed.join(sub):
            return _response(503, f"the feed has {MAX_SUBSCRIBERS} subscribers already\n".encode())
        self.joining[connection] = (sub, now)
        return None

    def _connection(self, connection: ServerConnection) -> None:
        joined = self.joining.pop(connection, None)
        if joined is None:
            return
        sub = joined[0]
        threading.Thread(target=self._drain, args=(connection, sub), daemon=True).start()
        try:
            while (payload := sub.frames.get()) is not None:
                connection.send(payload, text=True)
        except Exception:  # the client went away: its subscription ends, the feed goes on
            pass
        finally:
            self.observer.feed.leave(sub)

    @staticmethod
    def _drain(connection: ServerConnection, sub: Subscriber) -> None:
        """Read (and drop) what the client sends; its close, a message above MAX_CLIENT_FRAME or
        anything unexpected ends the subscription."""
        with contextlib.suppress(Exception):
            for _message in connection:
                pass
        end(sub)


class Handler(http.server.BaseHTTPRequestHandler):
    """The metrics port: the same answers as the feed's port, for Prometheus and health checks."""
    observer: Observer

    def do_GET(self) -> None:
        status, body, kind = http_answer(self.observer, self.path)
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


# --------------------------------------------------------------------------------------------
# The archive: every event, one gzip file per hour (events-YYYYmmddTHH.jsonl.gz, UTC), in a volume


class Archive:
    """Events appended once per interval as one gzip member (a file of several members is one
    valid gzip stream); files older than `keep_hours` are deleted."""

    def __init__(self, directory: str, keep_hours: float = 168) -> None:
        self.directory = directory
        self.keep_hours = keep_hours
        self.pending: list[bytes] = []
        self.lock = threading.Lock()
        self.written = 0

    @staticmethod
    def name(when: float) -> str:
        return time.strftime("events-%Y%m%dT%H.jsonl.gz", time.gmtime(when))

    def add(self, payload: bytes) -> None:
        with self.lock:
            self.pending.append(payload)

    def flush(self, now: float) -> None:
        with self.lock:
            batch, self.pending = self.pending, []
        if batch:
            os.makedirs(self.directory, exist_ok=True)
            with gzip.open(os.path.join(self.directory, self.name(now)), "ab", compresslevel=6) as handle:
                handle.write(b"\n".join(batch) + b"\n")
            self.written += len(batch)
        for entry in os.listdir(self.directory) if os.path.isdir(self.directory) else []:
            path = os.path.join(self.directory, entry)
            if entry.startswith("events-") and now - os.stat(path).st_mtime > self.keep_hours * 3600:
                os.remove(path)


def replay(directory: str, since: float = 0.0, until: float = float("inf")) -> Iterator[dict[str, Any]]:
    """Archived events between two times, oldest file first (within a file, in arrival order)."""
    for entry in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        if not (entry.startswith("events-") and entry.endswith(".jsonl.gz")):
            continue
        hour = calendar.timegm(time.strptime(entry[len("events-"):-len(".jsonl.gz")], "%Y%m%dT%H"))
        if hour + 3600 < since or hour > until:
            continue
        with gzip.open(os.path.join(directory, entry), "rb") as handle:
            for line in handle:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if since <= float(event.get("time", 0)) <= until:
                    yield event


def replay_main(argv: list[str]) -> int:
    """`observer.py replay`: archived events as lines (or JSON), paced like they happened with --speed."""
    parser = argparse.ArgumentParser(prog="observer.py replay", description="Replay archived events")
    parser.add_argument("--since", default="", help="start: seconds since the epoch, or -<seconds> from now (default: all)")
    parser.add_argument("--until", default="", help="end: the same forms (default: now)")
    parser.add_argument("--network", default="")
    parser.add_argument("--node", default="")
    parser.add_argument("--type", default="")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--speed", type=float, default=0.0, help="1: as fast as it happened, 10: ten times faster, 0: at once")
    args = parser.parse_args(argv)

    def moment(text: str, default: float) -> float:
        if not text:
            return default
        value = float(text)
        return time.time() + value if value < 0 else value

    nodes = frozenset(item for item in args.node.split(",") if item)
    types = frozenset(item for item in args.type.split(",") if item)
    previous: float | None = None
    shown = 0
    for event in replay(ARCHIVE, moment(args.since, 0.0), moment(args.until, time.time())):
        if not events.matches(event, args.network, nodes, types):
            continue
        when = float(event.get("time", 0))
        if args.speed > 0 and previous is not None and when > previous:
            time.sleep((when - previous) / args.speed)
        previous = when
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when))
        print(json.dumps(event, sort_keys=True) if args.json else f"{stamp} {events.describe(event)}", flush=True)
        shown += 1
    print(f"peerlab replay: {shown} events", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------
# The loop


class Observer:
    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.config_file = metrics.ConfigFile(CONFIG)
        self.metrics = Metrics()
        self.detectors = detectors.Detectors()
        self.alerting = alerting.Alerting()
        self.feed = Feed()
        self.latest: list[Sample] = []
        self.carbon = metrics.Carbon()
        self.archive = Archive(ARCHIVE)
        self.bus: events.Bus | None = None
        self.received = 0
        self.lock = threading.Lock()
        self.latency: list[float] = []  # seconds from the log line to here, since the last samples
        self.dropped: dict[str, int] = {}  # events that did not fit the schema, by reason (events.BadEvent)
        self.handler_errors = 0
        self.complained = 0.0
        self.started = self.last_event = time.monotonic()

    def reload(self) -> None:
        config = self.config_file.changed()
        if config is not None:
            self.config = config
            self.metrics.configure(self.config)
            self.archive.keep_hours = float(self.config.get("archive_hours", 168))
            self.alerting.configure(self.config.get("alertmanager"))
            with self.lock:
                self.detectors.configure(self.config.get("detectors") or {}, float(self.config.get("interval", 10)))
                self.detectors.watch({(network, node) for network, spec in self.config.get("networks", {}).items()
                                      for node in spec.get("nodes", {})})
            log(f"configuration loaded: {len(self.config.get('networks', {}))} networks")

    def on_message(self, _subject: str, payload: bytes) -> None:
        """One payload from the bus. What does not fit the schema is dropped and counted by reason;
        an error in any handler is logged and counted: no input stops the observer."""
        self.last_event = time.monotonic()
        try:
            event = events.check(payload)
        except events.BadEvent as bad:
            self.dropped[bad.reason] = self.dropped.get(bad.reason, 0) + 1
            self._complain(f"dropped an event: {bad}")
            return
        try:
            self._take(event, payload)
        except Exception as error:  # a handler's defect must not end the bus's reader
            self.handler_errors += 1
            self._complain(f"an event's handling failed ({type(error).__name__}: {error}); kind {event['kind']}, "
                           f"{event['network']}/{event['node']}")

    def health(self, now: float) -> str:
        """'' when the observer works: connected to the bus, and an event arrived within two
        collection intervals (the collectors poll every node each interval); else what is wrong."""
        if self.bus is None or not self.bus.connected.is_set():
            return "bus not connected"
        quiet = now - self.last_event
        if quiet > 2 * float(self.config.get("interval", 10)):
            return f"no event from the bus for {quiet:.0f} s"
        return ""

    def _complain(self, message: str) -> None:
        """Log a problem, at most once a second (a flood of bad events must not flood the log)."""
        now = time.monotonic()
        if now - self.complained >= 1.0:
            self.complained = now
            log(message)

    def _take(self, event: dict[str, Any], payload: bytes) -> None:
        now = time.time()
        self.received += 1
        if event.get("kind") in ("msg", "conn", "block", "tx"):
            self.latency.append(now - float(event.get("time", now)))
        self.feed.broadcast(event, payload)
        self.archive.add(payload)
        produced = self.metrics.take(event, now)
        with self.lock:  # the detectors keep state across events
            alerts = self.detectors.take(event)
        for alert in alerts:
            log(f"ALERT {events.describe(alert)}")
            self.alerting.add(alert)
        for made in produced + alerts:
            if self.bus is not None:
                self.bus.publish_event(made)

    def own_samples(self, interval: float) -> list[Sample]:
        scope = ("host", self.config.get("host", "observer"))
        latency, self.latency = self.latency, []
        out = [Sample(scope, "observer.events", self.received), Sample(scope, "observer.websocket_frames", self.feed.sent),
               Sample(scope, "observer.websocket_clients", len(self.feed.subscribers)),
               Sample(scope, "observer.archived", self.archive.written),
               Sample(scope, "observer.handler_errors", self.handler_errors),
               Sample(scope, "observer.websocket_slow_dropped", self.feed.slow),
               Sample(scope, "observer.alertmanager_sent", self.alerting.sent),
               Sample(scope, "observer.alertmanager_errors", self.alerting.errors),
               Sample(scope, "observer.alertmanager_dropped", self.alerting.dropped)]
        out += [Sample(scope, "observer.events_dropped", count, key=reason) for reason, count in sorted(self.dropped.items())]
        if latency:
            latency.sort()
            out += [Sample(scope, "observer.latency_median", statistics.median(latency)),
                    Sample(scope, "observer.latency_p99", latency[min(len(latency) - 1, int(len(latency) * 0.99))])]
        return out

    def run(self) -> None:
        Handler.observer = self
        FeedServer(self, ("0.0.0.0", WEBSOCKET_PORT)).start()
        metrics_server = metrics.QuietServer(("0.0.0.0", PROMETHEUS_PORT), Handler)
        threading.Thread(target=metrics_server.serve_forever, daemon=True).start()
        while not self.config and not metrics.STOPPING.is_set():
            self.reload()
            time.sleep(0.5)
        if not self.config:
            return
        self.bus = events.Bus(self.config.get("bus", "peerlab-bus:4222"), "peerlab-observer", self.on_message)
        self.bus.subscribe("peerlab.>")
        self.bus.start()
        while True:
            started = time.monotonic()
            self.reload()
            interval = float(self.config.get("interval", 10))
            try:
                self.archive.flush(time.time())
            except OSError as error:
                log(f"archive {ARCHIVE}: {error}")
            if metrics.STOPPING.is_set():
                return  # what arrived until now is archived
            samples = self.metrics.samples(time.time(), interval) + self.own_samples(interval)
            self.latest = samples
            self.carbon.send(self.config.get("carbon", "peerlab-graphite:2003"), metrics.carbon_lines(samples, int(time.time())))
            self.config_file.wait(max(0.5, interval - (time.monotonic() - started)))


if __name__ == "__main__":
    if sys.argv[1:2] == ["replay"]:
        sys.exit(replay_main(sys.argv[2:]))
    metrics.stop_on_sigterm()
    log(f"starting; configuration {CONFIG}")
    Observer().run()
    log("stopped")
