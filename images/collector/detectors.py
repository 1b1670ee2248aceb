"""peerlab detectors: a tool on the event bus whose alerts are events (kind "alert"), metrics
(`alerts.<detector>`, counted by the observer) and log lines. Pure logic: events in, alerts out.

Each detector raises one alert per episode: when its condition starts (a peer starts flooding, a
subnet reaches the limit, a node starts lagging), not on every event while it lasts. Thresholds come
from the inventory (`collector_detectors`), defaults below with where they come from; docs/events.md.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import events

NETWORK_NODE = "_network"  # the node of a network-wide alert (no topology node name starts with "_")

# Default thresholds, in detectors.json (the collector role checks the inventory's names against
# the same file). Where they come from (docs/events.md has the table):
# - addr_rate 0.1/s, addr_burst 1000: Bitcoin Core's own addr rate limit (net_processing.cpp,
#   MAX_ADDR_RATE_PER_SECOND and MAX_ADDR_PROCESSING_TOKEN_BUCKET);
# - ping_count 3 in ping_window 120 s: Bitcoin Core pings each peer every 2 minutes (PING_INTERVAL);
# - subnet24_inbound 4, subnet16_inbound 8: inbound peers from one /24 or /16 that are not the lab's
#   own nodes (Bitcoin Core's eviction protects by netgroup, /16 for IPv4);
# - listen_seconds 60, listen_connections 3, listen_window 600: connect-and-listen (LinkingLion-like);
# - lag_blocks 3: behind the network's best for longer than one poll interval;
# - inbound_drop 3: inbound peers lost between two polls;
# - slow_block_seconds 2: from a block's data arriving to the node taking it as tip;
# - inv_rate 500/s, inv_burst 5000: an honest Bitcoin Core peer announces at most
#   INVENTORY_BROADCAST_MAX (1000) transactions per announcement, at most one every 2 s on average
#   (OUTBOUND_INVENTORY_BROADCAST_INTERVAL), and a node tracks at most MAX_PEER_TX_ANNOUNCEMENTS
#   (5000) announcements per peer (net_processing.cpp, txrequest.h);
# - spy_invs 50: transactions announced to a peer that in all its connection asked for none of them
#   (getdata) and announced or sent none itself (peer-observer #43: it only listens);
# - unknown_count 10 in unknown_window 60 s: messages of a type bitcoind does not know (it ignores
#   them "for extensibility"; an honest peer sends a few feature-negotiation ones, once);
# - churn_connections 10 in churn_window 60 s: connections that sent `version` and left before
#   `verack` (scanners collecting user agents and heights).
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "detectors.json"), encoding="utf-8") as _defaults:
    DEFAULTS: dict[str, float] = {key: float(value) for key, value in json.load(_defaults).items()}
RELAYING = frozenset({"inv", "tx"})
ANSWERING = frozenset({"inv", "tx", "getdata", "notfound"})  # a peer that sends one of these is no spy


def netgroups(addr: str) -> list[str]:
    """The /24 and /16 of an IPv4 peer address ('' parts for anything else)."""
    try:
        ip = ipaddress.ip_address(events.peer_host(addr))
    except ValueError:
        return []
    if ip.version != 4:
        return [str(ipaddress.ip_network(f"{ip}/48", strict=False)), str(ipaddress.ip_network(f"{ip}/32", strict=False))]
    return [str(ipaddress.ip_network(f"{ip}/24", strict=False)), str(ipaddress.ip_network(f"{ip}/16", strict=False))]


@dataclass
class Connection:
    addr: str
    opened: float
    relayed: bool = False


@dataclass
class NodeWatch:
    restarts: int | None = None
    inbound: int | None = None
    behind_since: float | None = None
    buckets: dict[int, tuple[float, float]] = field(default_factory=dict)  # peer -> (tokens, at)
    pings: dict[int, deque[float]] = field(default_factory=dict)
    connections: dict[int, Connection] = field(default_factory=dict)
    short_silent: dict[str, deque[float]] = field(default_factory=dict)  # address host -> close times
    inv_buckets: dict[int, tuple[float, float]] = field(default_factory=dict)  # peer -> (inv entries allowed, at)
    announced: dict[int, int] = field(default_factory=dict)  # peer -> entries announced to it, while it answered nothing
    answered: dict[int, bool] = field(default_factory=dict)  # peers that asked for or announced something
    unknown: dict[int, deque[float]] = field(default_factory=dict)  # peer -> times of messages of unknown types
    versions: dict[int, float] = field(default_factory=dict)  # peers that sent version and no verack yet
    churn: deque[float] = field(default_factory=deque)  # times peers left between version and verack

    def per_peer(self) -> tuple[dict[int, Any], ...]:
        return (self.buckets, self.pings, self.connections, self.inv_buckets, self.announced, self.answered, self.unknown,
                self.versions)


PER_PEER = ("addr-flood", "ping-spam", "misbehaving", "inv-flood", "spy-peer", "unknown-messages")  # episodes of a peer


def inv_entries(size: int) -> int:
    """Entries of an inv message of `size` bytes: a compact size (1, 3, 5 or 9 bytes) and 36 bytes each."""
    return max(0, size) // 36


def forget(watch: NodeWatch, connected: set[int]) -> set[int]:
    """Drop what is kept per peer for peers getpeerinfo no longer lists. Peer ids only grow while
    bitcoind runs, so an id above the highest listed may be a peer that connected after the poll:
    kept. Without debug=net no "Cleared nodestate" line says a peer left; this bounds the state."""
    if not connected:
        return set()
    newest = max(connected)
    gone: set[int] = set()
    for table in watch.per_peer():
        for peer in [peer for peer in table if peer not in connected and peer < newest]:
            del table[peer]
            gone.add(peer)
    return gone


class Detectors:
    def __init__(self, settings: dict[str, Any] | None = None, interval: float = 10.0) -> None:
        self.configure(settings or {}, interval)
        self.nodes: dict[tuple[str, str], NodeWatch] = {}
        self.heights: dict[str, dict[str, int]] = {}        # network -> node -> height (last poll)
        self.tips_at: dict[str, dict[int, str]] = {}        # network -> height -> first hash seen there
        self.active: set[tuple[str, ...]] = set()           # episodes under way
        self.watched: set[tuple[str, str]] | None = None   # the configured nodes (None: any)

    def watch(self, nodes: set[tuple[str, str]]) -> None:
        """Watch these (network, node) pairs only, the observer's configuration: events of any
        other are ignored, and what was kept about a node or network no longer configured is
        forgotten (a network torn down and made again starts with no forks or heights of its past)."""
        self.watched = set(nodes)
        networks = {network for network, _node in nodes}
        for key in [key for key in self.nodes if key not in self.watched]:
            del self.nodes[key]
        for table in (self.heights, self.tips_at):
            for network in [network for network in table if network not in networks]:
                del table[network]
        for network, heights in self.heights.items():
            for gone in [node for node in heights if (network, node) not in self.watched]:
                del heights[gone]
        self.active = {key for key in self.active if key[1] in networks}

    def configure(self, settings: dict[str, Any], interval: float) -> None:
        """Thresholds: the defaults, overridden by the inventory's (unknown names are refused by the role)."""
        self.settings = {**DEFAULTS, **{key: float(value) for key, value in settings.items() if key in DEFAULTS}}
        self.interval = interval

    def alert(self, event: dict[str, Any], detector: str, message: str, node: str | None = None,
              **fields: Any) -> dict[str, Any]:
        return events.make("alert", event["network"], node or event["node"], float(event["time"]), detector=detector,
                           message=message, **fields)

    def episode(self, key: tuple[str, ...], condition: bool) -> bool:
        """True when a condition starts; it must clear before the same key fires again."""
        if not condition:
            self.active.discard(key)
            return False
        if key in self.active:
            return False
        self.active.add(key)
        return True

    def take(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("kind")
        if kind not in ("msg", "conn", "block", "poll", "addr"):
            return []
        network, node = event.get("network", ""), event.get("node", "")
        if self.watched is not None and (network, node) not in self.watched:
            return []
        watch = self.nodes.setdefault((network, node), NodeWatch())
        when = float(event.get("time", 0))
        s = self.settings
        out: list[dict[str, Any]] = []
        if kind == "addr":
            peer = int(event.get("peer", -1))
            tokens, at = watch.buckets.get(peer, (s["addr_burst"], when))
            # Lines can arrive out of order (Docker's timestamps on a busy host): an earlier time
            # refills nothing, and the bucket's clock never goes back.
            tokens = min(s["addr_burst"], tokens + max(0.0, when - at) * s["addr_rate"]) - int(event.get("addresses", 0))
            watch.buckets[peer] = (tokens, max(at, when))
            if self.episode(("addr-flood", network, node, str(peer)), tokens < 0):
                out.append(self.alert(event, "addr-flood", f"peer {peer} ({event.get('addr') or '?'}) sent more addresses than "
                                      f"{s['addr_burst']:.0f} at once plus {s['addr_rate']}/s (bitcoind rate-limited "
                                      f"{event.get('rate_limited', 0)} of this message's {event.get('addresses', 0)})",
                                      peer=peer, addr=event.get("addr", "")))
        elif kind == "msg" and event.get("dir") == "out":
            out += self._sent(event, watch)
        elif kind == "msg" and event.get("dir") == "in":
            peer = int(event.get("peer", -1))
            out += self._received(event, watch, when, peer)
            if event.get("type") == "ping":
                times = watch.pings.setdefault(peer, deque())
                times.append(when)
                while times and (when - times[0] > s["ping_window"] or len(times) > s["ping_count"] + 1):
                    times.popleft()
                if self.episode(("ping-spam", network, node, str(peer)), len(times) > s["ping_count"]):
                    out.append(self.alert(event, "ping-spam", f"peer {peer} ({event.get('addr') or '?'}) sent {len(times)} pings "
                                          f"in {s['ping_window']:.0f} s (more than {s['ping_count']:.0f})",
                                          peer=peer, addr=event.get("addr", "")))
            if event.get("type") in RELAYING and peer in watch.connections:
                watch.connections[peer].relayed = True
        elif kind == "conn":
            out += self._connection(event, watch, when)
        elif kind == "block":
            out += self._block(event)
        elif kind == "poll":
            out += self._poll(event, watch, when)
        return out

    def _received(self, event: dict[str, Any], watch: NodeWatch, when: float, peer: int) -> list[dict[str, Any]]:
        """inv floods, unknown message types, and what tells a spy from a peer (it answers)."""
        s = self.settings
        kind, network, node = event.get("type"), event["network"], event["node"]
        who = f"peer {peer} ({event.get('addr') or '?'})"
        out: list[dict[str, Any]] = []
        if kind in ANSWERING:
            watch.answered[peer] = True
            watch.announced.pop(peer, None)
        if kind == "inv":
            entries = inv_entries(int(event.get("size", 0)))
            tokens, at = watch.inv_buckets.get(peer, (s["inv_burst"], when))
            tokens = min(s["inv_burst"], tokens + max(0.0, when - at) * s["inv_rate"]) - entries
            watch.inv_buckets[peer] = (tokens, max(at, when))
            if self.episode(("inv-flood", network, node, str(peer)), tokens < 0):
                out.append(self.alert(event, "inv-flood", f"{who} announced more than {s['inv_burst']:.0f} inventory entries "
                                      f"at once plus {s['inv_rate']:.0f}/s (its last inv: {entries})",
                                      peer=peer, addr=event.get("addr") or ""))
        elif kind == "version":
            watch.versions[peer] = when
        elif kind == "verack":
            watch.versions.pop(peer, None)
        elif kind == "other":
            times = watch.unknown.setdefault(peer, deque())
            times.append(when)
            # the newest unknown_count are all the condition needs: a flood keeps no more
            while times and (when - times[0] > s["unknown_window"] or len(times) > s["unknown_count"]):
                times.popleft()
            if self.episode(("unknown-messages", network, node, str(peer)), len(times) >= s["unknown_count"]):
                command = str(event.get("command") or "")
                out.append(self.alert(event, "unknown-messages", f"{who} sent {len(times)} messages of types bitcoind does not "
                                      f"know in {s['unknown_window']:.0f} s (one: '{command}')",
                                      peer=peer, addr=event.get("addr") or "", command=command))
        return out

    def _sent(self, event: dict[str, Any], watch: NodeWatch) -> list[dict[str, Any]]:
        """A spy peer: it takes the node's announcements and never asks for one nor announces any."""
        peer = int(event.get("peer", -1))
        if event.get("type") != "inv" or watch.answered.get(peer):
            return []
        announced = watch.announced.get(peer, 0) + inv_entries(int(event.get("size", 0)))
        watch.announced[peer] = announced
        if self.episode(("spy-peer", event["network"], event["node"], str(peer)), announced >= self.settings["spy_invs"]):
            return [self.alert(event, "spy-peer", f"peer {peer} ({event.get('addr') or '?'}) was sent {announced} "
                               f"announcements and asked for none, nor announced anything",
                               peer=peer, addr=event.get("addr") or "")]
        return []

    def _connection(self, event: dict[str, Any], watch: NodeWatch, when: float) -> list[dict[str, Any]]:
        s = self.settings
        peer = int(event.get("peer", -1))
        if event.get("event") == "opened" and event.get("conn_type") == "inbound" and not event.get("peer_node"):
            watch.connections[peer] = Connection(str(event.get("addr", "")), when)
            return []
        if event.get("event") == "misbehaving":
            # bitcoind found the peer breaking the protocol (an oversized message, an invalid
            # block...): it discourages the address and disconnects it. Once per connection.
            if self.episode(("misbehaving", event["network"], event["node"], str(peer)), True):
                reason = str(event.get("reason") or "no reason logged")
                return [self.alert(event, "misbehaving", f"peer {peer} ({event.get('addr') or '?'}) misbehaved: {reason}",
                                   peer=peer, addr=event.get("addr") or "", reason=reason)]
            return []
        if event.get("event") != "closed":
            return []
        out = self._churn(event, watch, when, peer in watch.versions)
        for table in watch.per_peer():
            if table is not watch.connections:
                table.pop(peer, None)
        for detector in PER_PEER:  # the peer's episodes end with its connection
            self.active.discard((detector, event["network"], event["node"], str(peer)))
        connection = watch.connections.pop(peer, None)
        if connection is None or connection.relayed or when - connection.opened > s["listen_seconds"]:
            return out
        # Without logips bitcoind names no address: then each peer is its own source (peer ids are
        # never reused while bitcoind runs), never one source "" for every peer.
        host = events.peer_host(connection.addr) or f"peer {peer}"
        closes = watch.short_silent.setdefault(host, deque())
        closes.append(when)
        while closes and when - closes[0] > s["listen_window"]:
            closes.popleft()
        for other in [key for key, times in watch.short_silent.items() if not times or when - times[-1] > s["listen_window"]]:
            del watch.short_silent[other]  # sources quiet for a whole window are forgotten
        if self.episode(("connect-listen", event["network"], event["node"], host), len(closes) >= s["listen_connections"]):
            out.append(self.alert(event, "connect-listen", f"{host} made {len(closes)} connections shorter than "
                                  f"{s['listen_seconds']:.0f} s without relaying an inv or tx within {s['listen_window']:.0f} s",
                                  addr=host))
        return out

    def _churn(self, event: dict[str, Any], watch: NodeWatch, when: float, before_verack: bool) -> list[dict[str, Any]]:
        """Peers that sent version and left before verack, counted per node over a window."""
        s = self.settings
        if before_verack:
            watch.churn.append(when)
        while watch.churn and (when - watch.churn[0] > s["churn_window"] or len(watch.churn) > s["churn_connections"]):
            watch.churn.popleft()
        key = ("handshake-churn", event["network"], event["node"])
        if not before_verack:
            if not watch.churn:
                self.active.discard(key)
            return []
        if self.episode(key, len(watch.churn) >= s["churn_connections"]):
            return [self.alert(event, "handshake-churn", f"{len(watch.churn)} peers sent version and left before verack "
                               f"in {s['churn_window']:.0f} s (the last: peer {event.get('peer')}, "
                               f"{event.get('addr') or '?'})", count=len(watch.churn))]
        return []

    def _block(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        s = self.settings
        out = []
        network, height, block = event["network"], int(event["height"]), event["hash"]
        tips = self.tips_at.setdefault(network, {})
        first = tips.setdefault(height, block)
        if first != block and self.episode(("fork", network, str(height)), True):
            out.append(self.alert(event, "fork", f"two blocks at height {height}: {first[:16]}... and {block[:16]}... "
                                  f"(seen by {event['node']})", node=NETWORK_NODE, height=height, hashes=[first, block]))
        while len(tips) > 1000:
            oldest = min(tips)
            del tips[oldest]
            self.active.discard(("fork", network, str(oldest)))
        connect = event.get("connect_seconds")
        if connect is not None and connect > s["slow_block_seconds"]:
            out.append(self.alert(event, "slow-block", f"block {height} took {connect:.2f} s from its arrival to the tip "
                                  f"(more than {s['slow_block_seconds']} s)", height=height, seconds=connect))
        return out

    def _poll(self, event: dict[str, Any], watch: NodeWatch, when: float) -> list[dict[str, Any]]:
        s = self.settings
        network, node = event["network"], event["node"]
        out: list[dict[str, Any]] = []
        if not event.get("up"):
            return out
        restarts = event.get("restarts")
        restarted = False
        if restarts is not None:
            if watch.restarts is not None and restarts > watch.restarts:
                restarted = True
                out.append(self.alert(event, "restart", f"bitcoind started again ({restarts - watch.restarts} time(s); "
                                      f"{restarts} in all)", restarts=restarts))
                # A new bitcoind numbers its peers from 0 again: nothing about the old ones carries over.
                for table in watch.per_peer():
                    table.clear()
                for key in [key for key in self.active if key[1:3] == (network, node) and key[0] in PER_PEER]:
                    self.active.discard(key)
            watch.restarts = restarts
        peers = event.get("peers") or []
        gone = {str(peer) for peer in forget(watch, {peer["id"] for peer in peers if isinstance(peer.get("id"), int)})}
        for key in [key for key in self.active if key[0] in PER_PEER and key[1:3] == (network, node) and key[3] in gone]:
            self.active.discard(key)
        inbound = sum(1 for peer in peers if peer.get("inbound"))
        # A restart drops every inbound peer: the restart alert says why; no inbound-drop besides.
        if watch.inbound is not None and watch.inbound - inbound >= s["inbound_drop"] and not restarted:
            out.append(self.alert(event, "inbound-drop", f"inbound peers fell from {watch.inbound} to {inbound} in one poll",
                                  before=watch.inbound, after=inbound))
        watch.inbound = inbound
        groups: dict[str, int] = {}
        for peer in peers:
            if peer.get("inbound") and not peer.get("node"):
                for group in netgroups(peer.get("addr", "")):
                    groups[group] = groups.get(group, 0) + 1
        for group, count in sorted(groups.items()):
            limit = s["subnet24_inbound"] if group.endswith(("/24", "/48")) else s["subnet16_inbound"]
            if self.episode(("subnet-inbound", network, node, group), count >= limit):
                out.append(self.alert(event, "subnet-inbound", f"{count} inbound peers from {group} (limit {limit:.0f})",
                                      subnet=group, count=count))
        for key in [key for key in self.active if key[:3] == ("subnet-inbound", network, node) and key[3] not in groups]:
            self.active.discard(key)
        heights = self.heights.setdefault(network, {})
        if "height" in event:
            heights[node] = int(event["height"])
            best = max(heights.values())
            behind = best - heights[node]
            if behind >= s["lag_blocks"]:
                watch.behind_since = watch.behind_since if watch.behind_since is not None else when
                if self.episode(("lagging", network, node), when - watch.behind_since >= self.interval):
                    out.append(self.alert(event, "lagging", f"{behind} blocks behind the network's best ({best}) for "
                                          f"{when - watch.behind_since:.0f} s", behind=behind, best=best))
            else:
                watch.behind_since = None
                self.episode(("lagging", network, node), False)
        return out
