# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The topology model: parse and validate a peerlab topology, all errors at once.

Used by the inventory plugin (and later the portal) so every consumer refuses the same input with
the same words. Every message names the file, the network and the node or edge at fault, and
unknown keys come with the closest valid spelling.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from . import _activity, _faults, _geography
from ._conf import CHAINS, KNOWN_KEYS, MANAGED_KEYS, chain_defaults, key_problem, render_lines, value_problem
from ._generators import GENERATOR_COMMON, GENERATOR_PARAMS, MAX_OUTBOUND, GeneratorError, generate
from ._names import container as container_name
from ._names import data_volume

NETWORK_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
NODE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
MEMORY = re.compile(r"^[0-9]+[bkmg]?$")

IMPLEMENTATIONS: dict[str, dict[str, str]] = {
    # implementation -> its default version and what a version of it looks like (what the image
    # build pins: a Debian package version, a release number, a commit)
    "knots": {"version": "29.5", "versions": r"^[0-9]+(\.[0-9]+){1,2}([.-][A-Za-z0-9]+){0,3}$",
              "looks": "a Debian version of bitcoin-knots such as 29.5 or 29.1.knots20250903"},
    "core": {"version": "29.1", "versions": r"^([0-9]+\.[0-9]+(\.[0-9]+)?(rc[0-9]+)?|[0-9a-f]{40})$",
             "looks": "a Bitcoin Core release such as 29.1, 28.2 or 30.0rc1, or a commit built by `make node-image`"},
    "statoshi": {"version": "277036f30ce47da59164337f556b917d45e4a797", "versions": r"^[0-9a-f]{40}$",
                 "looks": "a 40-digit commit of jlopp/statoshi (or a tree's hash) built by `make statoshi`"},
}

NETWORK_KEYS = frozenset({"chain", "defaults", "nodes", "edges", "generators", "miners", "faults", "geography", "activity"})
SETTING_KEYS = frozenset({"implementation", "version", "host", "conf", "conf_unchecked", "resources"})
NODE_KEYS = SETTING_KEYS | {"name", "publish_p2p", "region"}
RESOURCE_KEYS = frozenset({"memory", "cpus"})
RESERVED_GROUPS = frozenset({"all", "ungrouped"})
DEFAULT_RESOURCES: dict[str, object] = {"memory": "512m", "cpus": 1.0}
DEFAULT_HOST = "localhost"


class TopologyError(ValueError):
    """Raised with every problem found; `problems` holds one message per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid topology:\n  - " + "\n  - ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Node:
    network: str
    name: str
    chain: str
    host: str
    implementation: str
    version: str
    conf: dict[str, object]
    conf_unchecked: dict[str, object]
    resources: dict[str, object]
    publish_p2p: int | None
    miner: bool
    peers_out: tuple[str, ...]

    @property
    def container(self) -> str:
        return container_name(self.network, self.name)

    @property
    def volume(self) -> str:
        return data_volume(self.container)


@dataclass(frozen=True)
class Network:
    name: str
    chain: str
    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str], ...]
    miners: tuple[str, ...]
    p2p_port: int = field(default=0)
    faults: tuple[_faults.Fault, ...] = field(default=())
    shares: dict[str, float] = field(default_factory=dict)  # miner -> percent of the blocks (sums to 100)
    rpc_port: int = field(default=0)
    swarm: bool = field(default=False)  # its nodes are Swarm services on an overlay network
    activity: _activity.Activity | None = field(default=None)  # background payments and blocks (a container)


def host_vars(network: Network, node: Node) -> dict[str, Any]:
    """A node's host variables, as the inventory plugin publishes them (and the portal's quick
    apply plans a node from)."""
    return {
        "peerlab_network": network.name,
        "peerlab_node": node.name,
        "peerlab_container": node.container,
        "peerlab_volume": node.volume,
        "peerlab_chain": node.chain,
        "peerlab_docker_host": node.host,
        "peerlab_implementation": node.implementation,
        "peerlab_version": node.version,
        "peerlab_conf": node.conf,
        "peerlab_conf_lines": render_lines({**node.conf, **node.conf_unchecked}),
        "peerlab_resources": node.resources,
        "peerlab_publish_p2p": node.publish_p2p,
        "peerlab_miner": node.miner,
        "peerlab_peers_out": [container_name(network.name, peer) for peer in node.peers_out],
        "peerlab_p2p_port": network.p2p_port,
        "peerlab_rpc_port": network.rpc_port,
        "peerlab_swarm": network.swarm,
    }


def _typename(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "empty"}.get(type(value), type(value).__name__)


def _suggest(key: str, valid: frozenset[str] | set[str], what: str = "valid keys") -> str:
    close = difflib.get_close_matches(str(key), sorted(valid), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else f" ({what}: {', '.join(sorted(valid))})"


class _Checker:
    """Collects problems with a location prefix instead of stopping at the first."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{self.source}: {where}: {message}")

    def mapping(self, where: str, value: object, what: str) -> dict[str, Any] | None:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(where, f"{what} must be a mapping, got {_typename(value)}")
            return None
        return value

    def keys(self, where: str, value: dict[str, Any], valid: frozenset[str], what: str) -> None:
        for key in value:
            if key not in valid:
                self.fail(where, f"unknown key '{key}' in {what}{_suggest(key, valid)}")


def _check_settings(check: _Checker, where: str, raw: dict[str, Any], valid: frozenset[str]) -> None:
    """Type-check node settings (used for `defaults` and each node) without merging them."""
    check.keys(where, raw, valid, "node settings" if "name" in valid else "defaults")
    implementation = raw.get("implementation")
    if implementation is not None and (not isinstance(implementation, str) or implementation not in IMPLEMENTATIONS):
        hint = _suggest(str(implementation), set(IMPLEMENTATIONS), "implementations")
        check.fail(where, f"unknown implementation {implementation!r}{hint}")
    for key in ("version", "host"):
        if key in raw and not isinstance(raw[key], str):
            check.fail(where, f"'{key}' must be a string, got {_typename(raw[key])} (quote versions: \"29.1\")")
    for key in ("conf", "conf_unchecked"):
        conf = check.mapping(where, raw.get(key), f"'{key}'")
        for conf_key, conf_value in (conf or {}).items():
            if not isinstance(conf_value, (str, int, float, bool, list)) or isinstance(conf_value, dict):
                check.fail(where, f"{key} '{conf_key}' must be a string, number, boolean or list, got {_typename(conf_value)}")
                continue
            problem = key_problem(conf_key) or value_problem(conf_value)
            if problem:
                check.fail(where, f"{key} '{conf_key}' {problem}")
    resources = check.mapping(where, raw.get("resources"), "'resources'")
    if resources:
        check.keys(where, resources, RESOURCE_KEYS, "resources")
        memory = resources.get("memory")
        if memory is not None and not ((isinstance(memory, int) and not isinstance(memory, bool)) or
                                       (isinstance(memory, str) and MEMORY.match(memory.lower()))):
            check.fail(where, f"resources.memory must look like 512m or 2g, got {memory!r}")
        cpus = resources.get("cpus")
        if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or cpus <= 0):
            check.fail(where, f"resources.cpus must be a positive number, got {cpus!r}")


def _part(settings: dict[str, Any], key: str) -> dict[str, Any]:
    """A mapping-valued setting, or nothing (a value of another type is one of the problems already listed)."""
    value = settings.get(key)
    return value if isinstance(value, dict) else {}


def _check_conf_keys(check: _Checker, where: str, implementation: str, conf: dict[str, Any]) -> None:
    known = KNOWN_KEYS[implementation]
    for key in conf:
        if key not in known and key not in MANAGED_KEYS:
            check.fail(where, f"unknown bitcoin.conf key '{key}' for {implementation}{_suggest(key, known)}"
                       " (put options peerlab does not know under conf_unchecked)")


def _generate(check: _Checker, where: str, raw: object) -> tuple[list[str], list[tuple[str, str]]]:
    spec = check.mapping(where, raw, "a generator")
    if spec is None:
        return [], []
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in GENERATOR_PARAMS:
        check.fail(where, f"unknown generator type {kind!r}{_suggest(str(kind), set(GENERATOR_PARAMS), 'types')}")
        return [], []
    required, optional = GENERATOR_PARAMS[kind]
    check.keys(where, spec, GENERATOR_COMMON | required | optional, f"a {kind} generator")
    missing = sorted((required | {"nodes"}) - set(spec))
    if missing:
        check.fail(where, f"{kind} generator needs {', '.join(missing)}")
        return [], []
    for key in ("nodes", "degree", "attach", "seed"):
        if key in spec and (isinstance(spec[key], bool) or not isinstance(spec[key], int)):
            check.fail(where, f"generator '{key}' must be an integer, got {_typename(spec[key])}")
            return [], []
    prefix = spec.get("prefix", "n")
    if not isinstance(prefix, str) or not NODE_NAME.match(f"{prefix}1"):
        check.fail(where, f"generator prefix {prefix!r} must be lowercase letters, digits or '-'")
        return [], []
    try:
        generated = generate(kind, spec["nodes"], prefix, spec)
    except GeneratorError as error:
        check.fail(where, f"impossible generator parameters: {error}")
        return [], []
    return generated.names, generated.edges


def _edge_pair(check: _Checker, where: str, raw: object) -> tuple[str, str] | None:
    if isinstance(raw, dict):
        check.keys(where, raw, frozenset({"from", "to"}), "an edge")
        pair = (raw.get("from"), raw.get("to"))
    elif isinstance(raw, list) and len(raw) == 2:
        pair = (raw[0], raw[1])
    else:
        check.fail(where, f"an edge is {{from: a, to: b}} or [a, b], got {raw!r}")
        return None
    if not all(isinstance(end, str) for end in pair):
        check.fail(where, f"edge ends must be node names, got {pair!r}")
        return None
    return pair  # type: ignore[return-value]


def _network(check: _Checker, name: str, raw: dict[str, Any], known_hosts: set[str] | None,
             swarm_hosts: set[str]) -> Network | None:
    where = f"network '{name}'"
    check.keys(where, raw, NETWORK_KEYS, "a network")
    chain = raw.get("chain")
    if not isinstance(chain, str) or chain not in CHAINS:
        check.fail(where, f"unknown chain {chain!r}{_suggest(str(chain), set(CHAINS), 'chains')}")
        return None
    defaults = check.mapping(f"{where}: defaults", raw.get("defaults"), "'defaults'") or {}
    _check_settings(check, f"{where}: defaults", defaults, SETTING_KEYS)

    # Nodes: generated first, explicit entries override generated ones of the same name.
    order: list[str] = []
    generated_edges: list[tuple[str, str]] = []
    generators = raw.get("generators") or []
    if not isinstance(generators, list):
        check.fail(where, f"'generators' must be a list, got {_typename(generators)}")
        generators = []
    for index, spec in enumerate(generators):
        names, new_edges = _generate(check, f"{where}: generators[{index}]", spec)
        for generated_name in names:
            if generated_name in order:
                check.fail(f"{where}: generators[{index}]", f"duplicate node name '{generated_name}' (give generators different prefixes)")
        order.extend(n for n in names if n not in order)
        generated_edges.extend(new_edges)
    explicit: dict[str, dict[str, Any]] = {}
    nodes_raw = raw.get("nodes") or []
    if not isinstance(nodes_raw, list):
        check.fail(where, f"'nodes' must be a list, got {_typename(nodes_raw)}")
        nodes_raw = []
    for index, node_raw in enumerate(nodes_raw):
        node_where = f"{where}: nodes[{index}]"
        node_map = check.mapping(node_where, node_raw, "a node")
        if node_map is None:
            continue
        node_name = node_map.get("name")
        if not isinstance(node_name, str) or not NODE_NAME.match(node_name):
            check.fail(node_where, f"node name {node_name!r} must be 1-32 lowercase letters, digits or '-', "
                                   "starting and ending with a letter or digit")
            continue
        node_where = f"{where}: node '{node_name}'"
        if node_name in explicit:
            check.fail(node_where, "duplicate node name")
            continue
        _check_settings(check, node_where, node_map, NODE_KEYS)
        explicit[node_name] = node_map
        if node_name not in order:
            order.append(node_name)
    if not order:
        check.fail(where, "has no nodes (add nodes or a generator)")
        return None

    edges: list[tuple[str, str]] = list(generated_edges)
    edges_raw = raw.get("edges") or []
    if not isinstance(edges_raw, list):
        check.fail(where, f"'edges' must be a list, got {_typename(edges_raw)}")
        edges_raw = []
    for index, edge_raw in enumerate(edges_raw):
        pair = _edge_pair(check, f"{where}: edges[{index}]", edge_raw)
        if pair is not None:
            edges.append(pair)
    seen: set[frozenset[str]] = set()
    outbound: dict[str, list[str]] = {n: [] for n in order}
    for source, target in edges:
        edge_where = f"{where}: edge {source} -> {target}"
        unknown = [end for end in (source, target) if end not in outbound]
        if unknown:
            check.fail(edge_where, f"unknown node '{unknown[0]}'{_suggest(unknown[0], set(order), 'nodes')}")
            continue
        if source == target:
            check.fail(edge_where, "self-loop: a node cannot connect to itself")
            continue
        if frozenset((source, target)) in seen:
            check.fail(edge_where, "duplicate edge (a link is bidirectional once made; list it once)")
            continue
        seen.add(frozenset((source, target)))
        outbound[source].append(target)
    for node_name, targets in outbound.items():
        if len(targets) > MAX_OUTBOUND:
            check.fail(f"{where}: node '{node_name}'",
                       f"initiates {len(targets)} edges; addnode allows at most {MAX_OUTBOUND} "
                       "(reverse some edges so their other end initiates)")

    miners_raw = raw.get("miners", order[:1] if chain == "regtest" else [])
    shares: dict[str, float] = {}
    if isinstance(miners_raw, dict):
        # {n1: 50, n2: 30, n3: 20}: hashrate shares (any positive numbers; made percentages)
        bad = {name: share for name, share in miners_raw.items()
               if isinstance(share, bool) or not isinstance(share, (int, float)) or share <= 0}
        if bad:
            check.fail(where, "miners' hashrate shares must be positive numbers, got "
                              + ", ".join(f"{name}: {share!r}" for name, share in bad.items()))
        else:
            total = float(sum(miners_raw.values()))
            shares = {str(name): round(100.0 * share / total, 6) for name, share in miners_raw.items()}
        miners_raw = list(miners_raw)
    if not isinstance(miners_raw, list) or not all(isinstance(m, str) for m in miners_raw):
        check.fail(where, f"'miners' must be a list of node names or a mapping of node names to hashrate shares, got {miners_raw!r}")
        miners_raw = []
    for miner in miners_raw:
        if miner not in outbound:
            check.fail(where, f"miner '{miner}' is not a node of this network{_suggest(miner, set(order), 'nodes')}")
    if miners_raw and chain != "regtest":
        check.fail(where, f"miners are for regtest only; {chain} blocks come from the real network")
    placed = {name: node_raw["region"] for name, node_raw in explicit.items() if "region" in node_raw}
    faults = _geography.merge(_geography.parse(raw.get("geography"), order, check.fail, where, placed),
                              _faults.parse(raw.get("faults"), order, check.fail, where))
    activity = _activity.parse(raw.get("activity"), order, chain, check.fail, where)

    ports = CHAINS[chain]
    nodes = []
    for node_name in order:
        node_raw = explicit.get(node_name, {})
        merged = {**defaults, **node_raw}
        implementation = merged.get("implementation", "knots")
        if not isinstance(implementation, str) or implementation not in IMPLEMENTATIONS:
            continue
        version = merged.get("version", IMPLEMENTATIONS[implementation]["version"])
        if not isinstance(version, str):
            continue  # said by _check_settings
        if not re.match(IMPLEMENTATIONS[implementation]["versions"], version):
            check.fail(f"{where}: node '{node_name}'", f"version {version!r} is not {IMPLEMENTATIONS[implementation]['looks']}")
            continue
        conf = {**chain_defaults(chain), **_part(defaults, "conf"), **_part(node_raw, "conf")}
        _check_conf_keys(check, f"{where}: node '{node_name}'", implementation, conf)
        host = merged.get("host", DEFAULT_HOST)
        if not isinstance(host, str):
            continue  # said by _check_settings
        if known_hosts is not None and host not in known_hosts:
            check.fail(f"{where}: node '{node_name}'",
                       f"host '{host}' is not in the inventory{_suggest(str(host), known_hosts, 'inventory hosts')}")
        publish = node_raw.get("publish_p2p")
        if publish is not None and (isinstance(publish, bool) or not isinstance(publish, int) or not 1 <= publish <= 65535):
            check.fail(f"{where}: node '{node_name}'", f"publish_p2p must be a port number 1-65535, got {publish!r}")
            publish = None
        nodes.append(Node(
            network=name, name=node_name, chain=chain, host=str(host), implementation=implementation,
            version=version,
            conf=conf,
            conf_unchecked={**_part(defaults, "conf_unchecked"), **_part(node_raw, "conf_unchecked")},
            resources={**DEFAULT_RESOURCES, **_part(defaults, "resources"), **_part(node_raw, "resources")},
            publish_p2p=publish, miner=node_name in miners_raw, peers_out=tuple(outbound[node_name]),
        ))
    on_swarm = sorted({node.host for node in nodes if node.host in swarm_hosts})
    standalone = sorted({node.host for node in nodes if node.host not in swarm_hosts})
    if on_swarm and standalone:
        check.fail(where, f"mixes Swarm hosts ({', '.join(on_swarm)}) and standalone Docker hosts ({', '.join(standalone)}): "
                          "a network runs on one Swarm (an overlay network) or on standalone hosts; "
                          "put every node of it on the one kind")
    if activity is not None and on_swarm:
        check.fail(f"{where}: activity", "activity runs beside a network on standalone Docker hosts; a Swarm network has none yet")
    if activity is not None and len({node.host for node in nodes}) > 1:
        check.fail(f"{where}: activity", "activity runs on one Docker host: put the network's nodes on one host")
    elif standalone:
        host_of = {node.name: node.host for node in nodes}
        for source, target in edges:
            if frozenset((source, target)) in seen and host_of.get(source, host_of.get(target)) != host_of.get(target, host_of.get(source)):
                check.fail(f"{where}: edge {source} -> {target}",
                           f"crosses Docker hosts '{host_of[source]}' and '{host_of[target]}', which only a Swarm connects "
                           "(put both hosts in peerlab_swarm_managers or peerlab_swarm_workers, or both nodes on one host)")
    return Network(name=name, chain=chain, nodes=tuple(nodes), edges=tuple(e for e in edges if frozenset(e) in seen),
                   miners=tuple(miners_raw), p2p_port=int(ports["p2p"]), rpc_port=int(ports["rpc"]),  # type: ignore[call-overload]
                   swarm=bool(on_swarm), faults=tuple(faults), shares=shares, activity=activity)


def parse(data: object, source: str, known_hosts: set[str] | None = None,
          taken_names: set[str] | None = None, swarm_hosts: set[str] | None = None) -> list[Network]:
    """Validate a topology document's `networks` mapping; return the networks or raise TopologyError.

    `known_hosts` are the inventory hosts that may run nodes (None skips that check); `taken_names`
    are inventory names a network or container name must not reuse; `swarm_hosts` are the hosts of
    a Swarm (its managers and workers): a network on them runs as Swarm services.
    """
    check = _Checker(source)
    networks_raw = check.mapping("networks", data, "'networks'")
    if networks_raw is not None and not networks_raw:
        check.fail("networks", "no networks defined")
    networks = []
    for name, raw in (networks_raw or {}).items():
        if not isinstance(name, str) or not NETWORK_NAME.match(name):
            check.fail(f"network {name!r}", "name must be 1-31 lowercase letters, digits or '_', starting with a letter")
            continue
        if name in RESERVED_GROUPS or name.startswith("peerlab") or name in (taken_names or set()):
            check.fail(f"network '{name}'", "name is already used in the inventory or reserved")
            continue
        network_map = check.mapping(f"network '{name}'", raw, "a network")
        if network_map is not None:
            network = _network(check, name, network_map, known_hosts, swarm_hosts or set())
            if network is not None:
                networks.append(network)
    _check_across(check, networks, taken_names or set())
    if check.problems:
        raise TopologyError(check.problems)
    return networks


def _check_across(check: _Checker, networks: list[Network], taken_names: set[str]) -> None:
    """Checks that span networks: container names and published ports share one Docker host."""
    containers: dict[str, str] = {}
    published: dict[tuple[str, int], str] = {}
    for network in networks:
        for node in network.nodes:
            where = f"network '{network.name}': node '{node.name}'"
            other = containers.get(node.container)
            if other is not None or node.container in taken_names:
                check.fail(where, f"container name '{node.container}' collides with {other or 'an inventory name'}")
            containers[node.container] = where
            if node.publish_p2p is not None:
                key = (node.host, node.publish_p2p)
                if key in published:
                    check.fail(where, f"port collision: host port {node.publish_p2p} on '{node.host}' "
                                      f"is already published by {published[key]}")
                published[key] = where
