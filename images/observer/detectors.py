"""peerlab detectors: a tool on the event bus whose alerts are events (kind "alert"), metrics
(`alerts.<detector>`, counted by the observer) and log lines. Pure logic: events in, alerts out.

Each detector is one class in REGISTRY: the event kinds it takes, what it keeps per node (or per
network), and its thresholds, whose defaults are its entry in detectors.json (the role checks the
inventory's names against that file; docs/events.md has the table with where each default comes
from). A new detector is one class here, its entry there, its attack (attack.py) and its docs.

Each detector raises one alert per episode: when its condition starts (a peer starts flooding, a
subnet reaches the limit, a node starts lagging), not on every event while it lasts. `Detectors`
runs them all and keeps what they share: episodes, the configured nodes, and each node's life
(a restart or a peer that left ends the episodes and state of its peers in every detector).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

import events

NETWORK_NODE = "_network"  # the node of a network-wide alert (no topology node name starts with "_")
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "detectors.json"), encoding="utf-8") as _defaults:
    DEFAULTS: dict[str, dict[str, float]] = {name: {key: float(value) for key, value in thresholds.items()}
                                             for name, thresholds in json.load(_defaults).items()}
Key = tuple[str, str]  # (network, node)
Alert = dict[str, Any]


def netgroups(addr: str) -> list[str]:
    """The /24 and /16 of an IPv4 peer address ('' parts for anything else)."""
    try:
        ip = ipaddress.ip_address(events.peer_host(addr))
    except ValueError:
        return []
    if ip.version != 4:
        return [str(ipaddress.ip_network(f"{ip}/48", strict=False)), str(ipaddress.ip_network(f"{ip}/32", strict=False))]
    return [str(ipaddress.ip_network(f"{ip}/24", strict=False)), str(ipaddress.ip_network(f"{ip}/16", strict=False))]


def inv_entries(size: int) -> int:
    """Entries of an inv message of `size` bytes: a compact size (1, 3, 5 or 9 bytes) and 36 bytes each."""
    return max(0, size) // 36


def who(event: dict[str, Any]) -> str:
    return f"peer {event.get('peer', -1)} ({event.get('addr') or '?'})"


def refill(bucket: dict[int, tuple[float, float]], peer: int, when: float, rate: float, burst: float, taken: float) -> float:
    """A token bucket per peer: its tokens after taking `taken` at `when`. Lines can arrive out of
    order (Docker's timestamps on a busy host): an earlier time refills nothing, and the bucket's
    clock never goes back."""
    tokens, at = bucket.get(peer, (burst, when))
    tokens = min(burst, tokens + max(0.0, when - at) * rate) - taken
    bucket[peer] = (tokens, max(at, when))
    return tokens


def window(times: deque[float], when: float, seconds: float, most: float) -> int:
    """Add `when` to `times` and keep those within `seconds` of it, at most `most` (all a count
    condition needs: a flood keeps no more). The count kept."""
    times.append(when)
    while times and (when - times[0] > seconds or len(times) > most):
        times.popleft()
    return len(times)


@dataclass(frozen=True)
class Seen:
    """What `Detectors` worked out about an event before the detectors see it."""
    when: float
    restarted: int = 0                  # a poll: bitcoind started again this many times since the last poll


class Detector:
    """One detector. `kinds`: the event kinds it takes. `peer_episodes`: its episodes are keyed by
    peer (ended when the peer leaves or bitcoind restarts). `peers(state)`: its tables keyed by
    peer id, which `Detectors` prunes (peers gone from getpeerinfo), pops (a peer's connection
    closed) and clears (a restart). `state()` makes what it keeps per node."""
    name: ClassVar[str] = ""
    kinds: ClassVar[frozenset[str]] = frozenset()
    peer_episodes: ClassVar[bool] = False

    def __init__(self, hub: Detectors) -> None:
        self.hub = hub
        self.nodes: dict[Key, Any] = {}
        self.networks: dict[str, Any] = {}

    @property
    def s(self) -> dict[str, float]:
        return self.hub.settings

    def state(self) -> Any:
        return {}

    def peers(self, state: Any) -> tuple[dict[int, Any], ...]:
        return (state,) if self.peer_episodes else ()

    def at(self, event: dict[str, Any]) -> Any:
        key = (event["network"], event["node"])
        found = self.nodes.get(key)
        if found is None:
            found = self.nodes[key] = self.state()
        return found

    def episode(self, event: dict[str, Any], condition: bool, *more: str) -> bool:
        """An episode of this detector on the event's node (and peer, for per-peer detectors)."""
        scope = (str(event.get("peer", -1)),) if self.peer_episodes else ()
        return self.hub.episode((self.name, event["network"], event["node"], *scope, *more), condition)

    def alert(self, event: dict[str, Any], message: str, node: str | None = None, **fields: Any) -> Alert:
        return events.make("alert", event["network"], node or event["node"], float(event["time"]), detector=self.name,
                           message=message, **fields)

    def peer_alert(self, event: dict[str, Any], message: str, **fields: Any) -> Alert:
        return self.alert(event, f"{who(event)} {message}", peer=int(event.get("peer", -1)), addr=event.get("addr") or "", **fields)

    def take(self, event: dict[str, Any], seen: Seen) -> list[Alert]:
        raise NotImplementedError

    def keep(self, watched: set[Key]) -> None:
        """Forget the nodes and networks no longer watched."""
        for key in [key for key in self.nodes if key not in watched]:
            del self.nodes[key]
        networks = {network for network, _node in watched}
        for network in [network for network in self.networks if network not in networks]:
            del self.networks[network]


REGISTRY: dict[str, type[Detector]] = {}


def detector(cls: type[Detector]) -> type[Detector]:
    if cls.name not in DEFAULTS:
        raise ValueError(f"detector {cls.name}: no entry in detectors.json")
    REGISTRY[cls.name] = cls
    return cls


def received(event: dict[str, Any], *types: str) -> bool:
    return event["kind"] == "msg" and event.get("dir") == "in" and event.get("type") in types


@detector
class AddrFlood(Detector):
    """More addresses than Bitcoin Core's own rate limit lets through: addr_burst at once plus
    addr_rate a second (net_processing.cpp, MAX_ADDR_PROCESSING_TOKEN_BUCKET, MAX_ADDR_RATE_PER_SECOND)."""
    name, kinds, peer_episodes = "addr-flood", frozenset({"addr"}), True

    def take(self, event: dict[str, Any], seen: Seen) -> list[Alert]:
        s = self.s
        tokens = refill(self.at(event), int(event.get("peer", -1)), seen.when, s["addr_rate"], s["addr_burst"],
                        int(event.get("addresses", 0)))
        if not self.episode(event, tokens < 0):
            return []
        return [self.peer_alert(event, f"sent more addresses than {s['addr_burst']:.0f} at once plus {s['addr_rate']}/s "
                                       f"(bitcoind rate-limited {event.get('rate_limited', 0)} of this message's "
                                       f"{event.get('addresses', 0)})")]


@detector
class SpyPeer(Detector):
    """A peer sent spy_invs inventory entries that in all its connection asked for none (getdata)
    and announced or sent none itself (inv, tx, notfound): it only listens (peer-observer #43)."""
    name, kinds, peer_episodes = "spy-peer", frozenset({"msg"}), True
    ANSWERING = frozenset({"inv", "tx", "getdata", "notfound"})

    @dataclass
    class State:
        announced: dict[int, int] = field(default_factory=dict)  # entries announced to a peer that answered nothing
        answered: dict[int, bool] = field(default_factory=dict)  # peers that asked for or announced something

    def state(self) -> State:
        return self.State()

    def peers(self, state: State) -> tuple[dict[int, Any], ...]:
        return (state.announced, state.answered)

    def take(self, event: dict[str, Any], seen: Seen) -> list[Alert]:
        peer, state = int(event.get("peer", -1)), self.at(event)
        if received(event, *self.ANSWERING):
            state.answered[peer] = True
            state.announced.pop(peer, None)
            return []
        if event.get("dir") != "out" or event.get("type") != "inv" or state.answered.get(peer):
            return []
        announced = state.announced[peer] = state.announced.get(peer, 0) + inv_entries(int(event.get("size", 0)))
        if not self.episode(event, announced >= self.s["spy_invs"]):
            return []
        return [self.peer_alert(event, f"was sent {announced} announcements and asked for none, nor announced anything")]


@detector
class InvFlood(Detector):
    """More inventory entries than Bitcoin Core sends: at most INVENTORY_BROADCAST_MAX (1000) per
    announcement, one every 2 s on average (OUTBOUND_INVENTORY_BROADCAST_INTERVAL), and a node
    tracks at most MAX_PEER_TX_ANNOUNCEMENTS (5000) per peer: inv_rate 500/s, inv_burst 5000."""
    name, kinds, peer_episodes = "inv-flood", frozenset({"msg"}), True

    def take(self, event: dict[str, Any], seen: Seen) -> list[Alert]:
        if not received(event, "inv"):
            return []
        s, entries = self.s, inv_entries(int(event.get("size", 0)))
        tokens = refill(self.at(event), int(event.get("peer", -1)), seen.when, s["inv_rate"], s["inv_burst"], entries)
        if not self.episode(event, tokens < 0):
            return []
        return [self.peer_alert(event, f"announced more than {s['inv_burst']:.0f} inventory entries at once plus "
                                       f"{s['inv_rate']:.0f}/s (its last inv: {entries})")]


@detector
class UnknownMessages(Detector):
    """unknown_count messages of types bitcoind does not know within unknown_window seconds (it
    ignores them "for extensibility"; an honest peer sends a few feature negotiations, once)."""
    name, kinds, peer_episodes = "unknown-messages", frozenset({"msg"}), True

    def take(self, event: dict[str, Any], seen: Seen) -> list[Alert]:
        if not received(event, "other"):
            return []
        s = self.s
        count = window(self.at(event).setdefault(int(event.get("peer", -1)), deque()), seen.when, s["unknown_window"],
                       s["unknown_count"])
        if not self.episode(event, count >= s["unknown_count"]):
            return []
        command = str(event.get("command") or "")
        return [self.peer_alert(event, f"sent {count} messages of types bitcoind does not know in "
                                       f"{s['unknown_window']:.0f} s (one: '{command}')", command=command)]


@detector
class PingSpam(Detector):
    """More than ping_count pings within ping_window seconds: Bitcoin Core pings each peer every 2
    minutes (PING_INTERVAL)."""
    name, kinds, peer_episodes = "ping-spam", frozenset({"msg"}), True

    def take(self, event: dict[str, Any], seen: Seen) -> list[Alert]:
        if not received(event, "ping"):
            return []
        s = self.s
        count = window(self.at(event).setdefault(int(event.get("peer", -1)), deque()), seen.when, s["ping_window"],
                       s["ping_count"] + 1)
        if not self.episode(event, count > s["ping_count"]):
            return []
        return [self.peer_alert(event, f"sent {count} pings in {s['ping_window']:.0f} s (more than {s['ping_count']:.0f})")]


@detector
class Misbehaving(Detector):
    """bitcoind found a peer breaking the protocol (an oversized message, an invalid block...) and
    discourages and disconnects it: once per connection."""
    name, kinds, peer_episodes = "misbehaving", frozenset({"conn"}), True

    def take(self, event: dict[str, Any], seen: Seen) -> list[Alert]:
        if event.get("event") != "misbehaving" or not self.episode(event, True):
            return []
        reason = str(event.get("reason") or "no reason logged")
        return [self.peer_alert(event, f"misbehaved: {reason}", reason=reason)]


@detector
class HandshakeChurn(Detector):
    """churn_connections peers that sent `version` and left before `verack` within churn_window
    seconds on one node (scanners collecting user agents and heights)."""
    name, kinds = "handshake-churn", frozenset({"msg", "conn"})

    @dataclass
    class State:
        versions: dict[int, float] = field(default_factory=dict)  # peers that sent version and no verack yet
        churn: deque[float] = field(default_factory=deque)        # times peers left between version and verack

    def state(self) -> State:
        return self.State()

    def peers(self, state: State) -> tuple[dict[int, Any], ...]:
        return (state.versions,)

    def take(self, event: dict[str, Any], seen: Seen) -> list[Alert]:
        state, peer = self.at(event), int(event.get("peer", -1))
        if received(event, "version"):
            state.versions[peer] = seen.when
        elif received(event, "verack"):
            state.versions.pop(peer, None)
        if event["kind"] != "conn" or event.get("event") != "closed":
            return []
        s = self.s
        if peer not in state.versions:
            while state.churn and seen.when - state.churn[0] > s["churn_window"]:
                state.churn.popleft()
            if not state.churn:
                self.episode(event, False)
            return []
        count = window(state.churn, seen.when, s["churn_window"], s["churn_connections"])
        if not self.episode(event, count >= s["churn_connections"]):
            return []
        return [self.alert(event, f"{count} peers sent version and left before verack in {s['churn_window']:.0f} s "
                                  f"(the last: {who(event)})", count=count)]


@dataclass
class Connection:
    addr: str
    opened: float
    relayed: bool = False


@detector
class ConnectListen(Detector):
    """One source made listen_connections inbound connections shorter than listen_seconds that
    relayed no inv or tx within listen_window seconds (LinkingLion-like)."""
    name, kinds = "connect-listen", frozenset({"msg", "conn"})
    RELAYING = frozenset({"inv", "tx"})

    @dataclass
    class State:
        connections: dict[int, Connection] = field(default_factory=dict)
        short_silent: dict[str, deque[float]] = field(default_factory=dict)  # source -> close times

    def state(self) -> State:
        return self.State()

    def peers(self, state: State) -> tuple[dict[int, Any], ...]:
        return (state.connections,)

    def take(self, event: dict[str, Any], seen: Seen) -> list[Alert]:
        state, peer, when, s = self.at(event), int(event.get("peer", -1)), seen.when, self.s
        if event["kind"] == "msg":
            if received(event, *self.RELAYING) and peer in state.connections:
                state.connections[peer].relayed = True
            return []
        if event.get("event") == "opened" and event.get("conn_type") == "inbound" and not event.get("peer_node"):
            state.connections[peer] = Connection(str(event.get("addr", "")), when)
            return []
        connection = state.connections.pop(peer, None) if event.get("event") == "closed" else None
        if connection is None or connection.relayed or when - connection.opened > s["listen_seconds"]:
            return []
        # Without logips bitcoind names no address: then each peer is its own source (peer ids are
        # never reused while bitcoind runs), never one source "" for every peer.
        host = events.peer_host(connection.addr) or f"peer {peer}"
        count = window(state.short_silent.setdefault(host, deque()), when, s["listen_window"], float("inf"))
        for other in [key for key, times in state.short_silent.items() if not times or when - times[-1] > s["listen_window"]]:
            del state.short_silent[other]  # sources quiet for a whole window are forgotten
        if not self.episode(event, count >= s["listen_connections"], host):
            return []
        return [self.alert(event, f"{host} made {count} connections shorter than {s['listen_seconds']:.0f} s without "
                                  f"relaying an inv or tx within {s['listen_window']:.0f} s", addr=host)]


@detector
class Fork(Detector):
    """Two blocks at one height in a network (the first hash seen at each of the last 1000 heights)."""
    name, kinds = "fork", frozenset({"block"})

    def take(self, event: dict[str, Any], seen: Seen) -> list[Alert]:
        network, height, block = event["network"], int(event["height"]), event["hash"]
        tips = self.networks.setdefault(network, {})
        first = tips.setdefault(height, block)
        out = []
        if first != block and self.hub.episode((self.name, network, str(height)), True):
            out.append(self.alert(event, f"two blocks at height {height}: {first[:16]}... and {block[:16]}... "
                                         f"(seen by {event['node']})", node=NETWORK_NODE, height=height, hashes=[first, block]))
        while len(tips) > 1000:
            oldest = min(tips)
            del tips[oldest]
            self.hub.episode((self.name, network, str(oldest)), False)
        return out


@detector
class SlowBlock(Detector):
    """A block took more than slow_block_seconds from its data arriving to the node taking it as tip."""
    name, kinds = "slow-block", frozenset({"block"})

    def take(self, event: dict[str, Any], seen: Seen) -> list[Alert]:
        connect, limit = event.get("connect_seconds"), self.s["slow_block_seconds"]
        if connect is None or connect <= limit:
            return []
        height = int(event["height"])
        return [self.alert(event, f"block {height} took {connect:.2f} s from its arrival to the tip (more than {limit} s)",
                           height=height, seconds=connect)]


@detector
class Restart(Detector):
    """bitcoind started again (the container's restart count grew between two polls)."""
    name, kinds = "restart", frozenset({"poll"})

    def take(self, event: dict[str, Any], seen: Seen) -> list[Alert]:
        if not seen.restarted:
            return []
        return [self.alert(event, f"bitcoind started again ({seen.restarted} time(s); {event['restarts']} in all)",
                           restarts=event["restarts"])]


@detector
class InboundDrop(Detector):
    """inbound_drop inbound peers lost between two polls (not by a restart: that alert says why)."""
    name, kinds = "inbound-drop", frozenset({"poll"})

    def take(self, event: dict[str, Any], seen: Seen) -> list[Alert]:
        key = (event["network"], event["node"])
        inbound = sum(1 for peer in event.get("peers") or [] if peer.get("inbound"))
        before = self.nodes.get(key)
        self.nodes[key] = inbound
        if before is None or before - inbound < self.s["inbound_drop"] or seen.restarted:
            return []
        return [self.alert(event, f"inbound peers fell from {before} to {inbound} in one poll", before=before, after=inbound)]


@detector
class SubnetInbound(Detector):
    """Inbound peers from one /24 (subnet24_inbound) or /16 (subnet16_inbound) that are not the
    lab's own nodes (Bitcoin Core's eviction protects by netgroup, /16 for IPv4)."""
    name, kinds = "subnet-inbound", frozenset({"poll"})

    def take(self, event: dict[str, Any], seen: Seen) -> list[Alert]:
        groups: dict[str, int] = {}
        for peer in event.get("peers") or []:
            if peer.get("inbound") and not peer.get("node"):
                for group in netgroups(peer.get("addr", "")):
                    groups[group] = groups.get(group, 0) + 1
        out = []
        for group, count in sorted(groups.items()):
            limit = self.s["subnet24_inbound"] if group.endswith(("/24", "/48")) else self.s["subnet16_inbound"]
            if self.episode(event, count >= limit, group):
                out.append(self.alert(event, f"{count} inbound peers from {group} (limit {limit:.0f})", subnet=group, count=count))
        scope = (self.name, event["network"], event["node"])
        self.hub.end(lambda key: key[:3] == scope and key[3] not in groups)
        return out


@detector
class Lagging(Detector):
    """lag_blocks behind the network's best (from every node's last poll) for longer than one poll interval."""
    name, kinds = "lagging", frozenset({"poll"})

    def take(self, event: dict[str, Any], seen: Seen) -> list[Alert]:
        if "height" not in event:
            return []
        network, node = event["network"], event["node"]
        heights = self.networks.setdefault(network, {})
        heights[node] = int(event["height"])
        best = max(heights.values())
        behind = best - heights[node]
        if behind < self.s["lag_blocks"]:
            self.nodes.pop((network, node), None)
            self.episode(event, False)
            return []
        since = self.nodes.setdefault((network, node), seen.when)
        if not self.episode(event, seen.when - since >= self.hub.interval):
            return []
        return [self.alert(event, f"{behind} blocks behind the network's best ({best}) for {seen.when - since:.0f} s",
                           behind=behind, best=best)]

    def keep(self, watched: set[Key]) -> None:
        super().keep(watched)
        for network, heights in self.networks.items():
            for gone in [node for node in heights if (network, node) not in watched]:
                del heights[gone]


class Detectors:
    """Every detector of REGISTRY over the events of the configured nodes."""

    def __init__(self, settings: dict[str, Any] | None = None, interval: float = 10.0) -> None:
        self.configure(settings or {}, interval)
        self.detectors = [cls(self) for cls in REGISTRY.values()]
        self.by_kind: dict[str, list[Detector]] = {}
        for one in self.detectors:
            for kind in one.kinds:
                self.by_kind.setdefault(kind, []).append(one)
        self.per_peer = frozenset(one.name for one in self.detectors if one.peer_episodes)
        self.restarts: dict[Key, int] = {}                 # each node's container restarts at its last poll
        self.active: set[tuple[str, ...]] = set()          # episodes under way: (detector, network, node, ...)
        self.watched: set[Key] | None = None               # the configured nodes (None: any)

    def configure(self, settings: dict[str, Any], interval: float) -> None:
        """Thresholds: the defaults, overridden by the inventory's (unknown names are refused by the role)."""
        defaults = {key: value for thresholds in DEFAULTS.values() for key, value in thresholds.items()}
        self.settings = {**defaults, **{key: float(value) for key, value in settings.items() if key in defaults}}
        self.interval = interval

    def detector(self, name: str) -> Detector:
        return next(one for one in self.detectors if one.name == name)

    def known(self) -> set[Key]:
        """The nodes anything is kept about."""
        return {key for one in self.detectors for key in one.nodes} | set(self.restarts)

    def watch(self, nodes: set[Key]) -> None:
        """Watch these (network, node) pairs only, the observer's configuration: events of any
        other are ignored, and what was kept about a node or network no longer configured is
        forgotten (a network torn down and made again starts with no forks or heights of its past)."""
        self.watched = set(nodes)
        for one in self.detectors:
            one.keep(self.watched)
        for key in [key for key in self.restarts if key not in self.watched]:
            del self.restarts[key]
        networks = {network for network, _node in nodes}
        self.end(lambda key: key[1] not in networks)

    def episode(self, key: tuple[str, ...], condition: bool) -> bool:
        """True when a condition starts; it must clear before the same key fires again."""
        if not condition:
            self.active.discard(key)
            return False
        if key in self.active:
            return False
        self.active.add(key)
        return True

    def end(self, which: Any) -> None:
        """End the episodes `which(key)` selects."""
        self.active = {key for key in self.active if not which(key)}

    def forget_peers(self, key: Key, peers: set[int] | None) -> None:
        """Forget these peers of a node (None: all of them) in every detector, and end their episodes."""
        for one in self.detectors:
            state = one.nodes.get(key)
            if state is None:
                continue
            for table in one.peers(state):
                if peers is None:
                    table.clear()
                else:
                    for peer in peers:
                        table.pop(peer, None)
        names = None if peers is None else {str(peer) for peer in peers}
        self.end(lambda episode: episode[0] in self.per_peer and episode[1:3] == key and (names is None or episode[3] in names))

    def connected(self, key: Key, connected: set[int]) -> None:
        """Drop what is kept for peers getpeerinfo no longer lists. Peer ids only grow while bitcoind
        runs, so an id above the highest listed may be a peer that connected after the poll: kept.
        Without debug=net no "Cleared nodestate" line says a peer left; this bounds the state."""
        if not connected:
            return
        newest = max(connected)
        kept: set[int] = set()
        for one in self.detectors:
            state = one.nodes.get(key)
            for table in one.peers(state) if state is not None else ():
                kept.update(peer for peer in table if peer not in connected and peer < newest)
        if kept:
            self.forget_peers(key, kept)

    def take(self, event: dict[str, Any]) -> list[Alert]:
        kind = event.get("kind")
        takers = self.by_kind.get(kind) if isinstance(kind, str) else None
        if not takers:
            return []
        key = (event.get("network", ""), event.get("node", ""))
        if self.watched is not None and key not in self.watched:
            return []
        seen = Seen(float(event.get("time", 0)))
        if kind == "poll":
            if not event.get("up"):
                return []
            seen = Seen(seen.when, self._restarted(key, event.get("restarts")))
            self.connected(key, {peer["id"] for peer in event.get("peers") or [] if isinstance(peer.get("id"), int)})
        out = [alert for one in takers for alert in one.take(event, seen)]
        if kind == "conn" and event.get("event") == "closed":  # the peer's state and episodes end with its connection
            self.forget_peers(key, {int(event.get("peer", -1))})
        return out

    def _restarted(self, key: Key, restarts: int | None) -> int:
        """How many times bitcoind started again since the node's last poll. A new bitcoind numbers
        its peers from 0 again: nothing about the old ones carries over."""
        if restarts is None:
            return 0
        before = self.restarts.get(key)
        self.restarts[key] = restarts
        if before is None or restarts <= before:
            return 0
        self.forget_peers(key, None)
        return restarts - before
