"""peerlab events: the schema, the extractor's reading of a node's log, and a NATS client.

Standard library only; shared by the collector (extractor, publisher) and the observer (tools on
the bus). The schema is documented in docs/events.md; SCHEMA changes when a field changes meaning.

An event is one flat JSON object:
  {"v": 1, "kind": "msg", "network": "lab", "node": "n1", "time": 1764617621.48, ...kind's fields}
published on the subject peerlab.<network>.<node>.<kind> (network and node names are topology
names: [a-z0-9_-], so they never contain NATS's separators or wildcards).
"""

from __future__ import annotations

import calendar
import json
import math
import queue
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SCHEMA = 1

# The schema: the fields every event has, then each kind's required and optional fields with the
# types they may hold. One table for the extractor (its tests check what it makes against it), the
# observer (it drops and counts what does not fit, before any detector sees it), the detectors and
# the logger.
_NUMBER: tuple[type, ...] = (int, float)
_TEXT_OR_NONE: tuple[type, ...] = (str, type(None))
_NUMBER_OR_NONE: tuple[type, ...] = (int, float, type(None))
COMMON: dict[str, Any] = {"v": int, "kind": str, "network": str, "node": str, "time": _NUMBER}
_PEER_FIELDS: dict[str, Any] = {"peer": int, "addr": _TEXT_OR_NONE, "conn_type": _TEXT_OR_NONE, "peer_node": _TEXT_OR_NONE}
FIELDS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "msg": ({"dir": str, "type": str, "size": int, "peer": int}, {**_PEER_FIELDS, "command": str}),
    "conn": ({"event": str}, {**_PEER_FIELDS, "reason": str, "transport": str, "version": int, "blocks": int}),
    "block": ({"hash": str, "height": int}, {"mined": bool, "connect_seconds": _NUMBER, "made": _NUMBER}),
    "tx": ({"event": str, "txid": str}, {**_PEER_FIELDS, "reason": str}),
    "addr": ({"addresses": int, "peer": int}, {**_PEER_FIELDS, "processed": int, "rate_limited": int}),
    "poll": ({"up": bool}, {"container": str, "restarts": int, "addresses": list, "tip": str, "height": int, "headers": int,
                            "progress": _NUMBER_OR_NONE, "peers": list, "bytes": dict, "mempool": dict, "uptime": int}),
    "alert": ({"detector": str, "message": str}, {"peer": int, "addr": str, "height": int, "reason": str, "command": str}),
    "propagation": ({"hash": str, "height": int, "seconds": _NUMBER}, {"first": str, "last": str}),
    "reorg": ({"hash": str, "height": int, "depth": int, "old": str}, {"old_height": int, "fork": str, "fork_height": int}),
}
KINDS = tuple(FIELDS)
_POLL_PEER: dict[str, Any] = {"id": (int, type(None)), "addr": str, "node": _TEXT_OR_NONE, "inbound": bool, "conn_type": str}
# A node or network name as the subject carries it (topology names; "_network" for network-wide alerts).
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")  # block hashes and txids as bitcoind logs them
_HASHES = {"block": ("hash",), "propagation": ("hash",), "tx": ("txid",), "poll": ("tip",), "reorg": ("hash", "old", "fork")}
MAX_EVENT_BYTES = 1 << 20  # a NATS payload's default limit: no event of peerlab's comes near it
# P2P message types (Bitcoin Core's protocol.h, ALL_NET_MESSAGE_TYPES). bitcoind logs a received
# message's type before it knows it, so a peer can name any: anything else is "other" (its name in
# `command`, for the feed), and peers cannot make new metric series.
MESSAGE_TYPES = frozenset({
    "version", "verack", "addr", "addrv2", "sendaddrv2", "inv", "getdata", "merkleblock", "getblocks", "getheaders", "tx",
    "headers", "block", "getaddr", "mempool", "ping", "pong", "notfound", "filterload", "filteradd", "filterclear",
    "sendheaders", "feefilter", "sendcmpct", "cmpctblock", "getblocktxn", "blocktxn", "getcfilters", "cfilter",
    "getcfheaders", "cfheaders", "getcfcheckpt", "cfcheckpt", "wtxidrelay", "sendtxrcncl",
})


def message_type(name: str) -> dict[str, str]:
    """The event's `type` for a logged message type (and `command` for an unknown one)."""
    return {"type": name} if name in MESSAGE_TYPES else {"type": "other", "command": name[:12]}


class BadEvent(ValueError):
    """An event that does not fit the schema; `reason` is a short, bounded name to count it by."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _fits(value: Any, types: Any) -> bool:
    accepted = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in accepted:
        return False  # True is an int to Python, not to the schema
    if isinstance(value, float) and not math.isfinite(value):
        return False  # NaN and Infinity parse as JSON here, and no comparison holds on them
    return isinstance(value, accepted)


def check(payload: bytes) -> dict[str, Any]:
    """The event in a bus payload, if it fits the schema; else BadEvent naming why (the reason is
    one of a few fixed words: a payload cannot make new metric names)."""
    if len(payload) > MAX_EVENT_BYTES:
        raise BadEvent("too-large", f"{len(payload)} bytes")
    try:
        event = json.loads(payload)
    except (ValueError, RecursionError) as error:
        raise BadEvent("not-json", str(error)[:80]) from None
    if not isinstance(event, dict):
        raise BadEvent("not-an-object", type(event).__name__)
    if event.get("v") != SCHEMA or isinstance(event.get("v"), bool):
        raise BadEvent("schema-version", repr(event.get("v"))[:20])
    if not isinstance(event.get("kind"), str) or event["kind"] not in FIELDS:
        raise BadEvent("unknown-kind", repr(event.get("kind"))[:40])
    required, optional = FIELDS[event["kind"]]
    for name, types in {**COMMON, **required}.items():
        if name not in event:
            raise BadEvent("missing-field", name)
        if not _fits(event[name], types):
            raise BadEvent("wrong-type", name)
    for name, types in optional.items():
        if name in event and not _fits(event[name], types):
            raise BadEvent("wrong-type", name)
    for name in ("network", "node"):
        if not _NAME.match(event[name]):
            raise BadEvent("bad-name", name)
    for name in _HASHES.get(event["kind"], ()):
        if name in event and not _HASH.match(event[name]):
            raise BadEvent("bad-value", name)
    if event["kind"] == "msg" and (event["dir"] not in ("in", "out") or event["size"] < 0
                                   or (event["type"] not in MESSAGE_TYPES and event["type"] != "other")):
        raise BadEvent("bad-value", "dir, size or type")
    if event["kind"] == "poll":
        for peer in event.get("peers") or []:
            if not isinstance(peer, dict) or any(key in peer and not _fits(peer[key], types) for key, types in _POLL_PEER.items()):
                raise BadEvent("wrong-type", "peers")
        if not all(isinstance(address, str) for address in event.get("addresses") or []):
            raise BadEvent("wrong-type", "addresses")
    return event


# bitcoind's own timestamp at the start of a line (Docker adds its own before it).
SUPPRESSING = "[*] "
_BITCOIND_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) ")
_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z")
_PEER = r"peer=(\d+)(?:, peeraddr=(\S+))?"
_RECEIVED = re.compile(r"^\[net\] received: (\S+) \((\d+) bytes\) " + _PEER)
_SENDING = re.compile(r"^\[net\] sending (\S+) \((\d+) bytes\) " + _PEER)
_CONNECTED = re.compile(r"^New (\S+) (v\d) peer connected: version: (\d+), blocks=(\d+), " + _PEER)
_CLEARED = re.compile(r"^\[net\] Cleared nodestate for peer=(\d+)")
_DISCONNECTING = re.compile(r"^\[net\] (.*?),? ?disconnecting peer=(\d+)")
_EVICTED = re.compile(r"for eviction peer=(\d+)")
_MISBEHAVING = re.compile(r"Misbehaving: peer=(\d+)(?:, peeraddr=\S+)?:? ?(.*)$")
_UPDATE_TIP = re.compile(r"^UpdateTip: new best=([0-9a-f]{64}) height=(\d+)")
_CREATE_BLOCK = re.compile(r"^CreateNewBlock\(\)")
_SAW_HEADER = re.compile(r"^Saw new (?:cmpctblock )?header hash=([0-9a-f]{64})(?: height=\d+)?(?: peer=(\d+))?")
_BLOCK_MESSAGE = re.compile(r"^\[net\] received: (?:cmpctblock|block|blocktxn|headers) ")
_BLOCK_DATA = re.compile(r"^\[net\] received: (?:cmpctblock|block|blocktxn) ")
_ADDR = re.compile(r"^\[net\] Received addr: (\d+) addresses \((\d+) processed, (\d+) rate-limited\) from " + _PEER)
_TX_ACCEPTED = re.compile(r"^\[mempool\] AcceptToMemoryPool: peer=(\d+): accepted ([0-9a-f]{64})")
_TX_REJECTED = re.compile(r"^\[mempoolrej\] ([0-9a-f]{64}) \(wtxid=[0-9a-f]{64}\) from peer=(\d+) was not accepted: (.*)$")


def peer_host(addr: str) -> str:
    """The host part of a peer address (IPv4:port, [IPv6]:port or name:port)."""
    return addr.rsplit(":", 1)[0].strip("[]") if addr else ""


_SECONDS: dict[str, float] = {}  # a timestamp's whole-second part -> its epoch: lines come many to a second


def epoch(stamp: str) -> float | None:
    """An RFC 3339 UTC timestamp (Docker's, bitcoind's) -> seconds since the epoch; None if it is not one."""
    match = _RFC3339.match(stamp)
    if not match:
        return None
    whole = _SECONDS.get(stamp[:19])
    if whole is None:
        if len(_SECONDS) > 256:
            _SECONDS.clear()
        parts = [int(part) for part in match.groups()[:6]]
        whole = _SECONDS[stamp[:19]] = float(calendar.timegm((*parts, 0, 0, 0)))
    return whole + float("0." + (match[7] or "0"))


def basic_auth(user: str, password: str) -> str:
    """An HTTP Authorization header's value for basic auth (bitcoind's RPC, Alertmanager's API)."""
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def subject(network: str, node: str, kind: str) -> str:
    return f"peerlab.{network}.{node}.{kind}"


def make(kind: str, network: str, node: str, when: float, **fields: Any) -> dict[str, Any]:
    return {"v": SCHEMA, "kind": kind, "network": network, "node": node, "time": round(when, 6), **fields}


@dataclass
class Peer:
    addr: str = ""
    conn_type: str = ""
    inbound: bool = False


@dataclass
class NodeLog:
    """One node's log read as events. names: peer address host -> managed node name (container
    names and addresses), refreshed by the collector; peers: bitcoind's peer id -> what is known."""

    network: str
    node: str
    names: dict[str, str] = field(default_factory=dict)
    peers: dict[int, Peer] = field(default_factory=dict)
    read_to: str = ""  # Docker's timestamp of the last line read (a new container of the node is read from there)
    pending_create: bool = False  # this node assembled a block (CreateNewBlock) not yet seen as header
    claims: list[str] = field(default_factory=list)  # headers taken as this node's, until a peer's line or their tip settles it
    block_message: bool = False   # a block-carrying message arrived since the last new header
    data_at: float | None = None  # when block data (cmpctblock, block, blocktxn) last arrived, if it was the last block message
    arrived: dict[str, float] = field(default_factory=dict)  # new header -> when its block's data arrived
    mined: dict[str, float | None] = field(default_factory=dict)  # headers this node made itself -> when (recent)
    from_peers: dict[str, float | None] = field(default_factory=dict)  # headers a peer announced (recent)

    def learn_peers(self, peers: list[dict[str, Any]]) -> None:
        """getpeerinfo's answer: every current peer's address and connection type."""
        for info in peers:
            if "id" in info:
                self.peers[int(info["id"])] = Peer(str(info.get("addr", "")),
                                                   str(info.get("connection_type") or ("inbound" if info.get("inbound") else "")),
                                                   bool(info.get("inbound")))

    def peer_fields(self, peer_id: int, addr: str | None = None) -> dict[str, Any]:
        known = self.peers.setdefault(peer_id, Peer())
        if addr:
            known.addr = addr
        out: dict[str, Any] = {"peer": peer_id, "addr": known.addr, "conn_type": known.conn_type}
        out["peer_node"] = self.names.get(peer_host(known.addr)) if known.addr else None
        return out

    def _remember(self, table: dict[str, float | None], block: str, when: float | None = None) -> None:
        table[block] = when
        while len(table) > 200:
            del table[next(iter(table))]

    def feed(self, stamp: str, when: float | None, line: str) -> list[dict[str, Any]]:
        """Events in one log line ([] for most lines). `when`: the line's time; None: Docker's
        `stamp`, read only when the line has no time of bitcoind's own (now, if neither can be read)."""
        self.read_to = stamp
        if line.startswith(SUPPRESSING):
            # Bitcoin Core 29.1+ and Knots mark every line with "[*] " while some source location's
            # unconditional logging is suppressed (-logratelimit: over 1 MiB an hour, e.g. the
            # wallet under heavy traffic); the lines themselves are unchanged.
            line = line[len(SUPPRESSING):]
        if own := _BITCOIND_TIME.match(line):
            # With logtimemicros (the regtest default) bitcoind's own time is the one to trust:
            # Docker stamps a line when dockerd reads it, and on a busy host a node's lines can be
            # read late, so two nodes' Docker times may disagree with the order things happened.
            if "." in own[1]:
                when = epoch(own[1]) or when
            line = line[own.end():]
        if when is None:
            when = epoch(stamp) or time.time()
        if line.startswith("[net] "):
            if match := _RECEIVED.match(line):
                if _BLOCK_MESSAGE.match(line):
                    self.block_message = True
                    self.data_at = when if _BLOCK_DATA.match(line) else None
                return [make("msg", self.network, self.node, when, dir="in", **message_type(match[1]), size=int(match[2]),
                             **self.peer_fields(int(match[3]), match[4]))]
            if match := _SENDING.match(line):
                return [make("msg", self.network, self.node, when, dir="out", **message_type(match[1]), size=int(match[2]),
                             **self.peer_fields(int(match[3]), match[4]))]
            if match := _ADDR.match(line):
                return [make("addr", self.network, self.node, when, addresses=int(match[1]), processed=int(match[2]),
                             rate_limited=int(match[3]), **self.peer_fields(int(match[4]), match[5]))]
            if match := _CLEARED.match(line):
                peer_id = int(match[1])
                out = make("conn", self.network, self.node, when, event="closed", **self.peer_fields(peer_id))
                self.peers.pop(peer_id, None)
                return [out]
            if match := _MISBEHAVING.search(line):
                return [make("conn", self.network, self.node, when, event="misbehaving", reason=match[2],
                             **self.peer_fields(int(match[1])))]
            if match := _EVICTED.search(line):
                return [make("conn", self.network, self.node, when, event="evicted", **self.peer_fields(int(match[1])))]
            if match := _DISCONNECTING.match(line):
                return [make("conn", self.network, self.node, when, event="disconnecting",
                             reason=match[1], **self.peer_fields(int(match[2])))]
            return []
        if match := _CONNECTED.match(line):
            peer_id = int(match[5])
            known = self.peers.setdefault(peer_id, Peer())
            known.conn_type, known.inbound = match[1], match[1] == "inbound"
            return [make("conn", self.network, self.node, when, event="opened", transport=match[2],
                         version=int(match[3]), blocks=int(match[4]), **self.peer_fields(peer_id, match[6]))]
        if _CREATE_BLOCK.match(line):
            self.pending_create, self.claims = True, []
            self.block_message = False  # a block message before this does not carry the block made now
            return []
        if match := _SAW_HEADER.match(line):
            block = match[1]
            if self.data_at is not None:
                self.arrived[block] = self.data_at
                while len(self.arrived) > 200:
                    del self.arrived[next(iter(self.arrived))]
            if match[2] is not None:
                # Validation's line (no peer) comes first, then the peer's: a peer's header that took
                # this node's pending block gives it back to the header still to come.
                self._remember(self.from_peers, block)
                if block in self.claims:
                    self.claims.remove(block)
                    self.mined.pop(block, None)
                    self.pending_create = not self.claims
            elif block in self.from_peers:
                pass
            elif self.pending_create or len(self.claims) == 1:
                # The second: this node's own header may come between a peer's two lines.
                self._remember(self.mined, block, when)
                self.pending_create = False
                self.claims.append(block)
            elif self.block_message:
                self._remember(self.from_peers, block)
            self.block_message = False
            return []
        if match := _UPDATE_TIP.match(line):
            block = match[1]
            # A block counts as mined here once: a reorg that connects it again is not a new block.
            mined = block in self.mined and block not in self.from_peers
            if block in self.claims:  # no peer's line came before its tip: this node's, settled
                self.claims.remove(block)
            made = self.mined.pop(block, None)
            timing = {}
            arrived = self.arrived.pop(block, None)
            if not mined and arrived is not None:  # from the block's data arriving to this tip
                timing["connect_seconds"] = round(max(0.0, when - arrived), 6)
            if mined and made is not None:
                # The miner has the block from its header line on: it sends the block to its peers
                # (NewPoWValidBlock) before connecting it, so a peer's tip can come first.
                timing["made"] = round(made, 6)
            return [make("block", self.network, self.node, when, hash=block, height=int(match[2]), mined=mined, **timing)]
        if match := _TX_ACCEPTED.match(line):
            return [make("tx", self.network, self.node, when, event="accepted", txid=match[2], **self.peer_fields(int(match[1])))]
        if match := _TX_REJECTED.match(line):
            return [make("tx", self.network, self.node, when, event="rejected", txid=match[1], reason=match[3],
                         **self.peer_fields(int(match[2])))]
        return []


def describe(event: dict[str, Any]) -> str:
    """One event as a line for people (the logger, `make events`)."""
    who = f"{event.get('network')}/{event.get('node')}"
    peer = event.get("peer_node") or event.get("addr") or f"peer {event.get('peer')}"
    conn = f" ({event['conn_type']})" if event.get("conn_type") else ""
    kind = event.get("kind")
    if kind == "msg":
        arrow = "<-- from" if event.get("dir") == "in" else "--> to"
        return f"{who} {arrow} {peer}{conn}: {event.get('type')} ({event.get('size')} bytes)"
    if kind == "conn":
        extra = f": {event['reason']}" if event.get("reason") else ""
        return f"{who} # CONN {event.get('event')} {peer}{conn}{extra}"
    if kind == "block":
        mined = " (mined here)" if event.get("mined") else ""
        return f"{who} # BLOCK {event.get('height')} {event.get('hash')}{mined}"
    if kind == "tx":
        extra = f": {event['reason']}" if event.get("reason") else ""
        return f"{who} # TX {event.get('event')} {event.get('txid')} from {peer}{extra}"
    if kind == "alert":
        return f"{who} # ALERT {event.get('detector')}: {event.get('message')}"
    if kind == "addr":
        return f"{who} <-- from {peer}{conn}: {event.get('addresses')} addresses ({event.get('rate_limited')} rate-limited)"
    if kind == "propagation":
        return f"{who} # PROPAGATION {event.get('height')} {event.get('hash')}: {event.get('seconds')} s"
    if kind == "reorg":
        return (f"{who} # REORG {event.get('depth')} block(s): {event.get('old_height')} {event.get('old')} -> "
                f"{event.get('height')} {event.get('hash')} (fork at {event.get('fork_height')})")
    if kind == "poll":
        return f"{who} # POLL height {event.get('height')}, {len(event.get('peers') or [])} peers"
    return f"{who} # {kind} {json.dumps(event, sort_keys=True)}"


def matches(event: dict[str, Any], network: str = "", nodes: frozenset[str] = frozenset(),
            types: frozenset[str] = frozenset()) -> bool:
    """The logger's and the websocket feed's filter: network, nodes, and types (a message type such
    as inv, or an event kind such as conn or block)."""
    if network and event.get("network") != network:
        return False
    if nodes and event.get("node") not in nodes:
        return False
    return not types or event.get("kind") in types or (event.get("kind") == "msg" and event.get("type") in types)


# --------------------------------------------------------------------------------------------
# NATS (its text protocol: INFO, CONNECT, PUB, SUB, MSG, PING/PONG), enough for peerlab's tools


def _log(message: str) -> None:
    print(f"peerlab-bus: {message}", file=sys.stderr, flush=True)


class Bus:
    """A NATS connection that survives the server going away: publish() never blocks (events wait
    in a bounded queue; the oldest are dropped and counted when it is full), subscriptions are made
    again on every reconnect, and on_message(subject, payload) runs on the reader thread."""

    def __init__(self, address: str, name: str, on_message: Callable[[str, bytes], None] | None = None,
                 limit: int = 100_000) -> None:
        self.address = address
        self.name = name
        self.on_message = on_message
        self.subjects: list[str] = []
        self.pending: queue.Queue[bytes] = queue.Queue(maxsize=limit)
        self.dropped = 0
        self.published = 0
        self.connected = threading.Event()
        self.handler_errors = 0
        self._complained = 0.0
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()

    def subscribe(self, subject_pattern: str) -> None:
        self.subjects.append(subject_pattern)

    def publish(self, subject_name: str, payload: bytes) -> None:
        frame = b"PUB %s %d\r\n%s\r\n" % (subject_name.encode(), len(payload), payload)
        while True:
            try:
                self.pending.put_nowait(frame)
                return
            except queue.Full:
                try:
                    self.pending.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def publish_event(self, event: dict[str, Any]) -> None:
        self.publish(subject(event["network"], event["node"], event["kind"]),
                     json.dumps(event, separators=(",", ":")).encode())

    def start(self) -> Bus:
        threading.Thread(target=self._run, name="bus", daemon=True).start()
        return self

    def _run(self) -> None:
        while True:
            try:
                self._session()
            except Exception as error:  # whatever broke this session, the next one starts clean
                _log(f"{self.address}: {type(error).__name__}: {error}; connecting again")
            self.connected.clear()
            time.sleep(1)

    def _session(self) -> None:
        host, _sep, port = self.address.rpartition(":")
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.settimeout(None)
        reader = sock.makefile("rb")
        info = reader.readline()
        if not info.startswith(b"INFO "):
            raise ValueError(f"not a NATS server: {info[:40]!r}")
        hello = {"verbose": False, "pedantic": False, "name": self.name, "lang": "python", "version": "1",
                 "protocol": 1, "headers": False, "no_responders": False}
        greeting = b"CONNECT " + json.dumps(hello).encode() + b"\r\n"
        greeting += b"".join(b"SUB %s %d\r\n" % (pattern.encode(), index) for index, pattern in enumerate(self.subjects, 1))
        sock.sendall(greeting + b"PING\r\n")
        self._socket = sock
        writer = threading.Thread(target=self._write, args=(sock,), name="bus-writer", daemon=True)
        writer.start()
        try:
            while True:
                line = reader.readline()
                if not line:
                    raise OSError("the server closed the connection")
                if line.startswith(b"MSG "):
                    parts = line.split()
                    size = int(parts[-1])
                    payload = reader.read(size + 2)[:size]
                    if self.on_message is not None:
                        self._deliver(parts[1].decode(errors="replace"), payload)
                elif line.startswith(b"PING"):
                    with self._lock:
                        sock.sendall(b"PONG\r\n")
                elif line.startswith(b"PONG"):
                    self.connected.set()
                elif line.startswith(b"-ERR"):
                    _log(f"{self.address}: {line.decode(errors='replace').strip()}")
        finally:
            self._socket = None
            sock.close()

    def _deliver(self, subject_name: str, payload: bytes) -> None:
        """A message to on_message: its failure is counted and logged (once a second at most), and
        the reader goes on with the next message."""
        assert self.on_message is not None
        try:
            self.on_message(subject_name, payload)
        except Exception as error:
            self.handler_errors += 1
            now = time.monotonic()
            if now - self._complained >= 1.0:
                self._complained = now
                _log(f"a message on {subject_name[:80]} failed in its handler: {type(error).__name__}: {error}")

    def _write(self, sock: socket.socket) -> None:
        while self._socket is sock:
            try:
                frame = self.pending.get(timeout=1)
            except queue.Empty:
                continue
            time.sleep(0.005)  # events come in bursts (a block reaches every node at once): one write for a burst
            frames = [frame]
            while len(frames) < 512:
                try:
                    frames.append(self.pending.get_nowait())
                except queue.Empty:
                    break
            try:
                with self._lock:
                    sock.sendall(b"".join(frames))
                self.published += len(frames)
            except OSError:
                for frame in frames:  # kept for the next connection
                    self.publish_raw(frame)
                return

    def publish_raw(self, frame: bytes) -> None:
        try:
            self.pending.put_nowait(frame)
        except queue.Full:
            self.dropped += 1
