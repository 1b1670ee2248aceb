# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network faults: what a topology, `playbooks/fault.yml` or a scenario declares, and what makes it so.

Pure: the validation (the topology model's words, every problem at once), each node's plan (the
iptables rules and tc qdiscs in its network namespace, whether it is paused), the links a fault
cuts, and the hash a node's fault holder carries. `_netfault.py` carries a plan out.

The kinds (partition, loss, bandwidth, latency, pause; kill ad hoc only) are declared once, in
DECLARED: their settings, where they act and their row of the docs table.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import inspect
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    """A kind of fault, declared once: the validation, the topology schema's enum
    (docs/topology.schema.json), fault.yml's -e settings and the docs table (docs/experiments.md)
    come from DECLARED; tools/declared.py writes the two files and a unit test holds them equal."""
    keys: frozenset[str]   # its settings besides kind, node, from and to
    place: str             # where it acts: "groups", "node", or "node or edge"
    what: str              # the docs table: what it does,
    how: str               # how the holder does it,
    needs: str             # and what it needs from the Docker host's kernel
    adhoc: bool = False    # fault.yml and scenarios only, never in a topology


DECLARED: dict[str, Kind] = {
    "partition": Kind(
        frozenset({"groups"}), "groups",
        ('nodes of different groups cannot reach each other; links across are closed at once at both ends (the far end '
         'drops the inbound connection too: the partition would drop the FIN), kept as added nodes, reopened and '
         'verified when the partition goes'),
        ("iptables in each grouped node's namespace: TCP to the other side refused with a reset (an open connection "
         "breaks on its next send), everything else dropped both ways"),
        'netfilter (`iptables`, nf_tables or legacy), `REJECT`'),
    "loss": Kind(
        frozenset({"percent"}), "node or edge",
        '`percent` of P2P packets dropped',
        'iptables `-m statistic --mode random` on P2P ports, out and in (an edge: out, to that peer)',
        '`xt_statistic`'),
    "bandwidth": Kind(
        frozenset({"rate"}), "node or edge",
        'P2P traffic limited to `rate` (`8kbit` and up: `64kbit`, `10mbit`)',
        ("out: an htb class with u32 filters on the P2P port (an edge: and the peer's address); in (a node): iptables "
         "`hashlimit` drops what exceeds the rate, and TCP backs off to it"),
        '`sch_htb`, `cls_u32`, `xt_hashlimit` (this machine has no `act_police`, so ingress is policed by netfilter)'),
    "latency": Kind(
        frozenset({"delay", "jitter"}), "node or edge",
        '`delay` (and `jitter`) on P2P packets: a round trip through the node (or along the edge) takes `delay` ± `jitter` longer',
        ('with netem: a netem leaf under the htb class (a node: on what it sends); without: iptables `NFQUEUE` rules and'
         ' the **delay program** in the holder (below)'),
        '`sch_netem`, or else `nfnetlink_queue` and `xt_NFQUEUE`'),
    "pause": Kind(
        frozenset(), "node",
        'the node freezes: no RPC, no P2P; its links are neither closed nor waited for; the deploy leaves it paused',
        "the engine's pause (cgroup freezer)",
        'cgroup freezer'),
    "kill": Kind(
        frozenset(), "node",
        ("SIGKILL; the engine counts it as stopped by the user, so the restart policy leaves it down until "
         "`playbooks/start.yml`, the next deploy, or the scenario's end starts it (on a Swarm, Swarm starts a new task "
         "at once: a crash and its repair)"),
        '`POST /containers/<id>/kill`',
        '-', adhoc=True),
}
KINDS: dict[str, frozenset[str]] = {name: kind.keys for name, kind in DECLARED.items() if not kind.adhoc}
ADHOC_KINDS = frozenset(DECLARED)
NODE_ONLY = frozenset(name for name, kind in DECLARED.items() if kind.place == "node")
SETTINGS = sorted(frozenset().union(*(kind.keys for kind in DECLARED.values())))  # fault.yml's -e keys besides kind and place


def docs_table() -> list[str]:
    """The kinds' table in docs/experiments.md."""
    lines = ["| kind | what it does | how | needs from the Docker host's kernel |", "|---|---|---|---|"]
    return lines + [f"| `{name}`{' (ad hoc only)' if kind.adhoc else ''} | {kind.what} | {kind.how} | {kind.needs} |"
                    for name, kind in DECLARED.items()]


def from_settings(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The fault an -e fault=KIND run names, from its other -e settings (a partition's groups as
    `sides`: `groups` is Ansible's own variable); what is not set stays out."""
    names = {"node": "node", "from": "from", "to": "to", "groups": "sides", **{key: key for key in SETTINGS if key != "groups"}}
    return {"kind": kind, **{key: settings[name] for key, name in names.items() if settings.get(name) is not None}}


RATE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(bit|kbit|mbit|gbit)$")
DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s)?$")
RATE_UNITS = {"bit": 1, "kbit": 1000, "mbit": 1000 ** 2, "gbit": 1000 ** 3}
NETEM_MISSING = ("latency needs the kernel's netem queueing discipline (sch_netem, CONFIG_NET_SCH_NETEM) or its "
                 "netfilter queues (CONFIG_NETFILTER_NETLINK_QUEUE and iptables' NFQUEUE target), and the kernel of "
                 "Docker host '{host}' has neither ({answer}); loss, bandwidth, partition and pause work without them")
NETEM, QUEUE = "netem", "queue"   # the two ways to delay packets (`_netfault.delay_probe` finds which one a host has)
UNLIMITED = "10gbit"


@dataclass(frozen=True)
class Fault:
    kind: str
    node: str = ""                              # the node (every P2P link of it) or an edge's source
    target: str = ""                            # an edge's target: only what `node` sends to it
    groups: tuple[tuple[str, ...], ...] = ()   # partition
    percent: float = 0.0                        # loss
    rate: str = ""                              # bandwidth, as tc takes it (64kbit)
    delay: float = 0.0                          # latency, milliseconds
    jitter: float = 0.0

    def describe(self) -> str:
        where = f"{self.node} -> {self.target}" if self.target else self.node
        if self.kind == "partition":
            return "partition " + " | ".join(",".join(group) for group in self.groups)
        what = {"loss": f"loss {self.percent:g}%", "bandwidth": f"bandwidth {self.rate}",
                "latency": f"latency {self.delay:g}ms" + (f" ±{self.jitter:g}ms" if self.jitter else "")}.get(self.kind, self.kind)
        return f"{what} on {where}"

    def as_dict(self) -> dict[str, Any]:
        """The fault as a topology entry (what the inventory publishes and the portal writes)."""
        entry: dict[str, Any] = {"kind": self.kind}
        if self.target:
            entry.update({"from": self.node, "to": self.target})
        elif self.node:
            entry["node"] = self.node
        if self.groups:
            entry["groups"] = [list(group) for group in self.groups]
        for key in ("percent", "rate", "delay", "jitter"):
            value = asdict(self)[key]
            if value:
                entry[key] = value
        return entry


def rate_bits(rate: str) -> int:
    found = RATE.match(rate)
    return int(float(found.group(1)) * RATE_UNITS[found.group(2)]) if found else 0


def _milliseconds(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    found = DURATION.match(str(value).strip())
    if not found:
        return None
    return float(found.group(1)) * (1000.0 if found.group(2) == "s" else 1.0)


def parse(raw: object, nodes: list[str], fail: Callable[[str, str], None], where: str, adhoc: bool = False) -> list[Fault]:
    """A network's `faults` list -> Faults; every problem goes to `fail(where, message)`.

    `nodes` are the network's node names. `adhoc` also allows kill (fault.yml, scenarios)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        fail(where, f"'faults' must be a list, got {type(raw).__name__}")
        return []
    faults: list[Fault] = []
    seen: dict[tuple[str, str, str], int] = {}
    kinds = ADHOC_KINDS if adhoc else frozenset(KINDS)
    for index, entry in enumerate(raw):
        at = f"{where}: faults[{index}]"
        fault = _one(entry, nodes, kinds, functools.partial(fail, at))
        if fault is None:
            continue
        key = (fault.kind, fault.node, fault.target)
        if key in seen:
            fail(at, f"duplicate fault: faults[{seen[key]}] is already a {fault.kind} on "
                     f"{'the partition' if fault.kind == 'partition' else fault.node + (' -> ' + fault.target if fault.target else '')}")
            continue
        seen[key] = index
        faults.append(fault)
    return faults


def node_name(value: object, nodes: list[str], what: str, fail: Callable[[str], None]) -> str:
    """`value` when it names one of `nodes`, else '' after telling `fail` (with the closest name)."""
    if not isinstance(value, str) or value not in nodes:
        close = difflib.get_close_matches(str(value), nodes, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (nodes: {', '.join(nodes)})"
        fail(f"{what} {value!r} is not a node of this network{hint}")
        return ""
    return value


def _one(entry: object, nodes: list[str], kinds: frozenset[str], fail: Callable[[str], None]) -> Fault | None:
    if not isinstance(entry, dict):
        fail(f"a fault is a mapping with a 'kind', got {entry!r}")
        return None
    kind = entry.get("kind")
    if not isinstance(kind, str) or kind not in kinds:
        close = difflib.get_close_matches(str(kind), sorted(kinds), n=1, cutoff=0.6)
        extra = " (kill is ad hoc only: playbooks/fault.yml or a scenario step)" if kind == "kill" else ""
        hint = f" (did you mean '{close[0]}'?)" if close else f" (kinds: {', '.join(sorted(kinds))})"
        fail(f"unknown fault kind {kind!r}{hint}{extra}")
        return None
    place = {"groups": set(), "node": {"node"}, "node or edge": {"node", "from", "to"}}[DECLARED[kind].place]
    allowed = DECLARED[kind].keys | {"kind"} | place
    unknown = sorted(set(entry) - allowed)
    if unknown:
        fail(f"unknown key '{unknown[0]}' in a {kind} fault (valid keys: {', '.join(sorted(allowed))})")
        return None
    problems: list[str] = []

    def bad(message: str) -> None:
        problems.append(message)
        fail(message)

    if kind == "partition":
        return _partition(entry.get("groups"), nodes, bad)
    node = target = ""
    if "node" in entry and ("from" in entry or "to" in entry):
        bad("give either 'node' (all its links) or 'from' and 'to' (one directed edge), not both")
    elif "node" in entry:
        node = node_name(entry["node"], nodes, "node", bad)
    elif "from" in entry and "to" in entry:
        node = node_name(entry["from"], nodes, "from", bad)
        target = node_name(entry["to"], nodes, "to", bad)
        if node and node == target:
            bad(f"an edge fault needs two different nodes, got {node} -> {target}")
    else:
        bad(f"a {kind} fault needs 'node'" + ("" if kind in NODE_ONLY else " or 'from' and 'to'"))
    fault = Fault(kind=kind, node=node, target=target)
    if kind == "loss":
        percent = entry.get("percent")
        if isinstance(percent, str) and re.match(r"^[0-9]+(\.[0-9]+)?%?$", percent.strip()):
            percent = float(percent.strip().rstrip("%"))  # -e percent=30 on the command line is a string
        if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 < percent <= 100:
            bad(f"loss 'percent' must be a number above 0 and at most 100, got {percent!r}")
        else:
            fault = Fault(kind=kind, node=node, target=target, percent=float(percent))
    elif kind == "bandwidth":
        rate = str(entry.get("rate", "")).strip().lower().replace("bps", "bit")
        if not RATE.match(rate) or rate_bits(rate) < 8000:
            bad(f"bandwidth 'rate' must look like 64kbit or 10mbit (at least 8kbit), got {entry.get('rate')!r}")
        else:
            fault = Fault(kind=kind, node=node, target=target, rate=rate)
    elif kind == "latency":
        delay, jitter = _milliseconds(entry.get("delay")), _milliseconds(entry.get("jitter", 0))
        if not delay:
            bad(f"latency 'delay' must be a duration above 0 like 100ms or 0.5s, got {entry.get('delay')!r}")
        elif jitter is None or jitter > delay:
            bad(f"latency 'jitter' must be a duration from 0 to the delay ({delay:g}ms), got {entry.get('jitter')!r}")
        else:
            fault = Fault(kind=kind, node=node, target=target, delay=delay, jitter=jitter)
    return None if problems else fault


def _partition(groups: object, nodes: list[str], bad: Callable[[str], None]) -> Fault | None:
    if (not isinstance(groups, list) or len(groups) < 2
            or not all(isinstance(group, list) and group for group in groups)):
        bad(f"a partition needs 'groups': two or more non-empty lists of nodes, got {groups!r}")
        return None
    placed: dict[str, int] = {}
    ok = True
    for index, group in enumerate(groups):
        for name in group:
            if not node_name(name, nodes, f"partition group {index + 1}'s node", bad):
                ok = False
            elif name in placed:
                bad(f"node '{name}' is in partition groups {placed[name] + 1} and {index + 1}; a node is on one side")
                ok = False
            else:
                placed[name] = index
    return Fault(kind="partition", groups=tuple(tuple(group) for group in groups)) if ok else None


def from_dicts(entries: list[dict[str, Any]]) -> list[Fault]:
    """Faults as the inventory published them (already valid)."""
    faults = []
    for entry in entries or []:
        faults.append(Fault(kind=entry["kind"], node=entry.get("node") or entry.get("from") or "", target=entry.get("to") or "",
                            groups=tuple(tuple(group) for group in entry.get("groups") or ()),
                            percent=float(entry.get("percent") or 0), rate=str(entry.get("rate") or ""),
                            delay=float(entry.get("delay") or 0), jitter=float(entry.get("jitter") or 0)))
    return faults


def merge(declared: list[Fault], added: list[Fault]) -> list[Fault]:
    """The topology's faults with those of a fault.yml run or a scenario: one of the same kind and
    place replaces the declared one."""
    return list({(fault.kind, fault.node, fault.target): fault for fault in [*declared, *added]}.values())


def side(faults: list[Fault], node: str) -> int | None:
    """The partition group a node is in (None: no partition, or in no group)."""
    for fault in faults:
        if fault.kind == "partition":
            for index, group in enumerate(fault.groups):
                if node in group:
                    return index
    return None


def paused(faults: list[Fault]) -> set[str]:
    return {fault.node for fault in faults if fault.kind == "pause"}


def cut(faults: list[Fault], a: str, b: str) -> bool:
    """Whether a partition separates two nodes (their link is closed while it holds)."""
    sides = side(faults, a), side(faults, b)
    return None not in sides and sides[0] != sides[1]


def frozen(faults: list[Fault], a: str, b: str) -> bool:
    """Whether an end of the link between two nodes is paused (its kernel still accepts the
    connection, its bitcoind answers nothing: neither closed nor waited for)."""
    return bool({a, b} & paused(faults))


def split(faults: list[Fault]) -> bool:
    """Whether the network cannot agree on one tip while the faults hold (a partition or a paused node)."""
    return any(fault.kind in ("partition", "pause") for fault in faults)


def latency(faults: list[Fault]) -> list[Fault]:
    return [fault for fault in faults if fault.kind == "latency"]


@dataclass(frozen=True)
class NodePlan:
    """What one node's network namespace holds: `commands` (a shell script, '' for nothing) and its hash."""
    node: str
    commands: str
    spec: str
    faults: tuple[str, ...]  # the faults' descriptions, for diffs and reports


# A node on another Docker host of a Swarm is known by name; its address is read in the node's own
# namespace when the holder starts, from Docker's DNS. A task being replaced has no address for a
# moment: ask again for up to 30 s, then fail naming it (never a rule without an address).
RESOLVE = ("resolve() { for _try in $(seq 60); do found=$(getent ahostsv4 \"$1\" | awk 'NR==1 {print $1}'); "
           "[ -n \"$found\" ] && { echo \"$found\"; return 0; }; sleep 0.5; done; "
           "echo \"peerlab: $1 does not resolve\" >&2; return 1; }")


def _resolved(addresses: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Each node's address as the script uses it (an IPv4 address as it is, a name as a shell
    variable), and for each variable the line that sets it."""
    literal: dict[str, str] = {}
    setting: dict[str, str] = {}
    for name, where in sorted(addresses.items()):
        if not where or re.match(r"^[0-9.]+$", where):
            literal[name] = where
            continue
        variable = f"peer_{len(setting) + 1}"
        setting[variable] = f"{variable}=$(resolve {shlex.quote(where)}) || exit 4"
        literal[name] = f"${{{variable}}}"
    return literal, setting


def node_plan(faults: list[Fault], node: str, address: str, addresses: dict[str, str], p2p_port: int,
              delay_way: str = NETEM) -> NodePlan:
    """The script that gives `node` (own `address`) its network faults; `addresses` maps every node
    of its network to the address its peers see (or, for a node on another Docker host, its name).
    Only P2P traffic (the chain's P2P port, either direction) is touched: RPC, the collector and the
    Docker host's own traffic stay as they were. `delay_way` (NETEM or QUEUE) is how this node's
    Docker host delays packets."""
    mine = [fault for fault in faults if fault.kind != "pause" and (
        fault.node == node or (fault.kind == "partition" and side([fault], node) is not None))]
    if not mine:
        return NodePlan(node, "", "", ())
    port = int(p2p_port)
    p2p = [f"-p tcp --dport {port}", f"-p tcp --sport {port}"]
    addresses, resolving = _resolved(addresses)
    rules: list[str] = []
    tc: list[str] = []
    delays = Delays()
    classes = 0
    for fault in mine:
        peer = addresses.get(fault.target, "") if fault.target else ""
        if fault.kind == "partition":
            me = side([fault], node)
            for other, where in sorted(addresses.items()):
                if other != node and side([fault], other) not in (None, me) and where:
                    # Refused at once on this side (an open connection breaks on its next send,
                    # a new one fails fast), silently dropped from the other.
                    rules += [f"-A PEERLAB_OUT -d {where} -p tcp -j REJECT --reject-with tcp-reset",
                              f"-A PEERLAB_OUT -d {where} -j DROP", f"-A PEERLAB_IN -s {where} -j DROP"]
        elif fault.kind == "loss":
            chance = f"-m statistic --mode random --probability {fault.percent / 100:.4f} -j DROP"
            if fault.target:
                rules += [f"-A PEERLAB_OUT -d {peer} {match} {chance}" for match in p2p]
            else:
                rules += [f"-A PEERLAB_{chain} {match} {chance}" for chain in ("OUT", "IN") for match in p2p]
        elif fault.kind == "latency" and delay_way == QUEUE:
            delays.add(fault, peer, p2p)
        elif fault.kind in ("bandwidth", "latency"):
            classes += 1
            classid = f"1:{10 + classes}"
            rate = fault.rate or UNLIMITED
            burst = max(1600, rate_bits(rate) // 8 // 10)  # a tenth of a second of the rate, at least one packet
            tc.append(f"tc class add dev $dev parent 1: classid {classid} htb rate {rate} ceil {rate} burst {burst} quantum 1514")
            if fault.kind == "latency":
                jitter = f" {fault.jitter:g}ms" if fault.jitter else ""
                tc.append(f"tc qdisc add dev $dev parent {classid} handle {10 + classes}: netem delay {fault.delay:g}ms{jitter}")
            matches = ([f"match ip dst {peer}/32 match ip dport {port} 0xffff", f"match ip dst {peer}/32 match ip sport {port} 0xffff"]
                       if fault.target else [f"match ip dport {port} 0xffff", f"match ip sport {port} 0xffff"])
            tc += [f"tc filter add dev $dev parent 1: protocol ip prio {1 if fault.target else 2} u32 {match} flowid {classid}"
                   for match in matches]
            if fault.kind == "bandwidth" and not fault.target:
                # What the node receives: packets above the rate dropped at its input (TCP backs off to it).
                kib = max(1, round(rate_bits(rate) / 8 / 1024))
                rules += [f"-A PEERLAB_IN -p tcp --{way}port {port} -m hashlimit --hashlimit-above {kib}kb/s "
                          f"--hashlimit-burst {max(8, kib)}kb --hashlimit-name peerlab_{way} -j DROP" for way in ("s", "d")]
    lines = [f"dev=$(ip -o -4 addr show | awk '$4 ~ /^{re.escape(address)}\\// {{print $2; exit}}')",
             f"[ -n \"$dev\" ] || {{ echo 'peerlab: no interface holds {address}' >&2; exit 3; }}",
             CLEAR]
    rules += delays.rules()
    used = [line for variable, line in resolving.items() if "${" + variable + "}" in "\n".join(rules + tc)]
    lines += [RESOLVE, *used] if used else []
    lines += delays.program(node)
    if rules:
        lines += ["iptables -w -N PEERLAB_IN", "iptables -w -N PEERLAB_OUT",
                  "iptables -w -I INPUT -j PEERLAB_IN", "iptables -w -I OUTPUT -j PEERLAB_OUT"]
        lines += [f"iptables -w {rule}" for rule in rules]
    if tc:
        lines.append("tc qdisc add dev $dev root handle 1: htb default 99 r2q 1")
        lines.append(f"tc class add dev $dev parent 1: classid 1:99 htb rate {UNLIMITED} quantum 60000")
        lines += tc
    script = "\n".join(lines) + "\n"
    described = tuple(fault.describe() for fault in mine)
    return NodePlan(node, script, hashlib.sha256(script.encode()).hexdigest()[:16], described)


class Delays:
    """A node's latency faults as netfilter queues: each (delay, jitter) pair one queue, held by the
    delay program (`_delayer.py`). A node's own latency is split between its two directions (what
    it receives waits (delay - jitter) / 2, what it sends (delay + jitter) / 2 ± jitter), so a round
    trip through it grows by delay ± jitter, as along an edge (what `from` sends waits delay ±
    jitter). The queue rules come after every drop (a packet let go by the program skips the rest
    of the chain), an edge's before its node's."""

    def __init__(self) -> None:
        self.queues: dict[tuple[float, float], int] = {}
        self.edges: list[str] = []
        self.nodes: list[str] = []

    def queue(self, delay: float, jitter: float) -> int:
        return self.queues.setdefault((round(delay, 3), round(jitter, 3)), len(self.queues) + 1)

    def add(self, fault: Fault, peer: str, p2p: list[str]) -> None:
        to = "-j NFQUEUE --queue-num {} --queue-bypass"
        if fault.target:
            queue = self.queue(fault.delay, fault.jitter)
            self.edges += [f"-A PEERLAB_OUT -d {peer} {match} {to.format(queue)}" for match in p2p]
            return
        queue = self.queue((fault.delay + fault.jitter) / 2, fault.jitter)
        self.nodes += [f"-A PEERLAB_OUT {match} {to.format(queue)}" for match in p2p]
        if fault.delay > fault.jitter:
            queue = self.queue((fault.delay - fault.jitter) / 2, 0.0)
            self.nodes += [f"-A PEERLAB_IN {match} {to.format(queue)}" for match in p2p]

    def rules(self) -> list[str]:
        return self.edges + self.nodes

    def program(self, node: str) -> list[str]:
        """The lines that start the delay program and wait until it holds its queues (before any
        rule sends a packet to them). The draws' seed comes from the node's name."""
        if not self.queues:
            return []
        arguments = " ".join(f"{queue}:{delay:g}:{jitter:g}" for (delay, jitter), queue in self.queues.items())
        return self.start(f"{arguments} {int(hashlib.sha256(node.encode()).hexdigest()[:8], 16)}")

    @staticmethod
    def start(arguments: str) -> list[str]:
        return [f"python3 -I - {arguments} <<'PEERLAB_DELAY' &", delayer_source().rstrip("\n"), "PEERLAB_DELAY",
                "delayer=$!",
                "tries=0; while [ ! -e /tmp/peerlab-delay-ready ]; do",
                "  if ! kill -0 \"$delayer\" 2>/dev/null || [ $tries -ge 200 ]; then",
                "    echo 'peerlab: the delay program did not start' >&2; exit 5",
                "  fi",
                "  tries=$((tries + 1)); sleep 0.05",
                "done"]


@functools.lru_cache(maxsize=1)
def delayer_source() -> str:
    from . import _delayer
    return inspect.getsource(_delayer)


# Undo everything a plan made (run before applying one, and when the holder stops). `$dev` is set.
CLEAR = "\n".join([
    "iptables -w -D INPUT -j PEERLAB_IN 2>/dev/null || true",
    "iptables -w -D OUTPUT -j PEERLAB_OUT 2>/dev/null || true",
    "iptables -w -F PEERLAB_IN 2>/dev/null && iptables -w -X PEERLAB_IN || true",
    "iptables -w -F PEERLAB_OUT 2>/dev/null && iptables -w -X PEERLAB_OUT || true",
    "tc qdisc del dev $dev root 2>/dev/null || true",
])


def holder_command(plan: NodePlan) -> str:
    """The fault holder's shell program: apply under a trap that undoes whatever was applied when
    any command fails (or the holder is killed while applying), say so, hold the namespace; undo on
    SIGTERM, and when the delay program stops."""
    undo = CLEAR.replace("'", "'\\''").replace("\n", "; ")
    return ("trap '" + undo + "' EXIT\nset -e\n" + plan.commands + "set +e\necho peerlab-fault-ready\n"
            "trap 'exit 0' TERM\n"   # the EXIT trap undoes
            # A delay program that stops ends the holder (its rules undone): the next run makes a new one.
            "if [ -n \"${delayer:-}\" ]; then wait \"$delayer\"; echo \"peerlab: the delay program stopped ($?)\" >&2; exit 6; fi\n"
            "sleep infinity & wait\n")


def summary(faults: list[Fault]) -> str:
    return json.dumps([fault.as_dict() for fault in faults], sort_keys=True)
