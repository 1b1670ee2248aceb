"""Topology validation: every refusal names the file, the network and the node or edge."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from ansible_collections.peerlab.bitcoin.plugins.module_utils._topology import TopologyError, parse

SOURCE = "topo.peerlab.yml"
HOSTS = frozenset({"localhost", "host2"})


def lab(**overrides: Any) -> dict[str, Any]:
    network = {
        "chain": "regtest",
        "generators": [{"type": "ring", "nodes": 5, "prefix": "n"}],
        "edges": [{"from": "n1", "to": "n3"}],
    }
    network.update(overrides)
    return {"lab": network}


def problems(networks: Any, hosts: frozenset[str] | set[str] | None = HOSTS) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        parse(networks, SOURCE, known_hosts=set(hosts) if hosts is not None else None, taken_names=set(hosts or ()))
    return caught.value.problems


def test_default_inventory_parses() -> None:
    with open("inventories/local/02-topology.peerlab.yml", encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    (network,) = parse(document["networks"], SOURCE, known_hosts={"localhost"})
    assert [node.container for node in network.nodes] == [f"lab-n{i}" for i in range(1, 6)]
    assert len(network.edges) == 7
    assert network.miners == ("n1",)
    assert network.p2p_port == 18444 and network.rpc_port == 18443


def test_ring_is_a_directed_cycle_and_explicit_edges_add() -> None:
    (network,) = parse(lab(), SOURCE, known_hosts=set(HOSTS))
    assert set(network.edges) == {("n1", "n2"), ("n2", "n3"), ("n3", "n4"), ("n4", "n5"), ("n5", "n1"), ("n1", "n3")}
    n1 = network.nodes[0]
    assert n1.peers_out == ("n2", "n3")
    assert n1.miner is True


def test_explicit_node_overrides_generated_settings() -> None:
    networks = lab(nodes=[{"name": "n2", "conf": {"dbcache": 8}, "resources": {"memory": "1g"}}],
                   defaults={"conf": {"maxmempool": 20}})
    (network,) = parse(networks, SOURCE, known_hosts=set(HOSTS))
    n2 = network.nodes[1]
    assert n2.conf["dbcache"] == 8 and n2.conf["maxmempool"] == 20 and n2.conf["fallbackfee"] == "0.0002"
    assert n2.resources == {"memory": "1g", "cpus": 1.0}
    assert len(network.nodes) == 5


def test_mainnet_is_pruned_by_default_and_has_no_miners() -> None:
    (network,) = parse({"main": {"chain": "mainnet", "nodes": [{"name": "a"}]}}, SOURCE, known_hosts=set(HOSTS))
    assert network.nodes[0].conf["prune"] == 550
    assert network.miners == ()
    assert network.p2p_port == 8333


@pytest.mark.parametrize(
    ("networks", "expected"),
    [
        pytest.param(lab(edges=[["n1", "n9"]]), "network 'lab': edge n1 -> n9: unknown node 'n9'", id="unknown-node-in-edge"),
        pytest.param(lab(nodes=[{"name": "x"}, {"name": "x"}]), "network 'lab': node 'x': duplicate node name", id="duplicate-name"),
        pytest.param(lab(generators=[{"type": "ring", "nodes": 3}, {"type": "star", "nodes": 3}]),
                     "duplicate node name 'n1' (give generators different prefixes)", id="duplicate-generated-name"),
        pytest.param(lab(edges=[["n2", "n2"]]), "edge n2 -> n2: self-loop", id="self-loop"),
        pytest.param(lab(edges=[["n1", "n3"], ["n3", "n1"]]), "edge n3 -> n1: duplicate edge", id="duplicate-edge-reversed"),
        pytest.param(lab(edges=[["n1", "n2"]]), "edge n1 -> n2: duplicate edge", id="duplicate-edge-of-generated"),
        pytest.param({"lab": {"chain": "regtest", "nodes": [{"name": f"m{i}"} for i in range(10)],
                              "edges": [["m0", f"m{i}"] for i in range(1, 10)]}},
                     "network 'lab': node 'm0': initiates 9 edges; addnode allows at most 8", id="more-than-8-outbound"),
        pytest.param(lab(chain="testnet5"), "network 'lab': unknown chain 'testnet5' (did you mean 'testnet4'?)", id="unknown-chain"),
        pytest.param(lab(defaults={"implementation": "knotts"}),
                     "network 'lab': defaults: unknown implementation 'knotts' (did you mean 'knots'?)", id="unknown-implementation"),
        pytest.param(lab(nodes=[{"name": "n1", "version": 29.1}]), "node 'n1': 'version' must be a string, got a number",
                     id="wrong-type-version"),
        pytest.param(lab(generators=[{"type": "ring", "nodes": "5"}]), "generator 'nodes' must be an integer, got a string",
                     id="wrong-type-generator"),
        pytest.param(lab(nodes="n1"), "network 'lab': 'nodes' must be a list, got a string", id="wrong-type-nodes"),
        pytest.param(lab(edgez=[]), "network 'lab': unknown key 'edgez' in a network (did you mean 'edges'?)", id="unknown-network-key"),
        pytest.param(lab(nodes=[{"name": "n1", "hots": "localhost"}]),
                     "node 'n1': unknown key 'hots' in node settings (did you mean 'host'?)", id="unknown-node-key"),
        pytest.param(lab(nodes=[{"name": "n1", "host": "nowhere"}]),
                     "network 'lab': node 'n1': host 'nowhere' is not in the inventory", id="host-not-in-inventory"),
        pytest.param(lab(nodes=[{"name": "n1", "publish_p2p": 18444}, {"name": "n2", "publish_p2p": 18444}]),
                     "node 'n2': port collision: host port 18444 on 'localhost' is already published by network 'lab': node 'n1'",
                     id="port-collision"),
        pytest.param(lab(generators=[{"type": "random-regular", "nodes": 5, "degree": 3}]),
                     "impossible generator parameters: degree x nodes must be even", id="impossible-random-regular"),
        pytest.param(lab(generators=[{"type": "full", "nodes": 20}]),
                     "impossible generator parameters: full with 20 nodes makes", id="impossible-full"),
        pytest.param(lab(generators=[{"type": "ring", "nodes": 2}]), "a ring needs at least 3 nodes", id="impossible-ring"),
        pytest.param(lab(generators=[{"type": "scale-free", "nodes": 5}]), "scale-free generator needs attach", id="missing-param"),
        pytest.param(lab(generators=[{"type": "mesh", "nodes": 5}]), "unknown generator type 'mesh'", id="unknown-generator"),
        pytest.param({"Lab!": lab()["lab"]}, "network 'Lab!': name must be 1-31 lowercase letters", id="unsafe-network-name"),
        pytest.param(lab(nodes=[{"name": "n_1/.."}]), "node name 'n_1/..' must be 1-32 lowercase letters", id="unsafe-node-name"),
        pytest.param(lab(nodes=[{"name": "n1", "conf": {"rpcpassword": "x"}}]),
                     "conf 'rpcpassword' is managed by peerlab and cannot be set", id="managed-conf-key"),
        pytest.param(lab(nodes=[{"name": "n1", "conf": {"uacomment": "x\nrpcallowip=0.0.0.0/0"}}]),
                     "node 'n1': conf 'uacomment' has a value 'x\\nrpcallowip=0.0.0.0/0' that contains '\\n'",
                     id="newline-in-value"),
        pytest.param(lab(nodes=[{"name": "n1", "conf_unchecked": {"foo": "a\rrpcbind=0.0.0.0"}}]),
                     "node 'n1': conf_unchecked 'foo' has a value", id="cr-in-unchecked-value"),
        pytest.param(lab(defaults={"conf": {"uacomment": ["ok", "x\x00y"]}}),
                     "network 'lab': defaults: conf 'uacomment' has a value 'x\\x00y'", id="nul-in-list-item"),
        pytest.param(lab(nodes=[{"name": "n1", "conf": {"uacomment": "a\u2028b"}}]), "conf 'uacomment' has a value",
                     id="unicode-line-separator"),
        pytest.param(lab(nodes=[{"name": "n1", "conf": {"uacomment": "a#b"}}]), "contains '#' (starts a comment)",
                     id="hash-in-value"),
        pytest.param(lab(nodes=[{"name": "n1", "conf_unchecked": {"regtest.rpcallowip": "0.0.0.0/0"}}]),
                     "conf_unchecked 'regtest.rpcallowip' must be lowercase letters, digits and dashes", id="section-key"),
        pytest.param(lab(nodes=[{"name": "n1", "conf_unchecked": {"rpcallowip=0.0.0.0/0\nx": 1}}]),
                     "must be lowercase letters, digits and dashes", id="key-with-newline"),
        pytest.param(lab(nodes=[{"name": "n1", "conf_unchecked": {"norpcbind": 1}}]),
                     "conf_unchecked 'norpcbind' is managed by peerlab", id="negated-managed-key"),
        pytest.param(lab(nodes=[{"name": "n1", "conf": {"dbcach": 10}}]),
                     "unknown bitcoin.conf key 'dbcach' for knots (did you mean 'dbcache'?)", id="unknown-conf-key"),
        pytest.param(lab(miners=["n9"]), "miner 'n9' is not a node of this network", id="unknown-miner"),
        pytest.param({"m": {"chain": "mainnet", "nodes": [{"name": "a"}], "miners": ["a"]}},
                     "miners are for regtest only", id="miner-on-mainnet"),
        pytest.param({"lab": {"chain": "regtest"}}, "network 'lab': has no nodes", id="empty-network"),
        pytest.param({}, "networks: no networks defined", id="no-networks"),
        pytest.param(lab(nodes=[{"name": "n1", "resources": {"memory": "lots"}}]), "resources.memory must look like 512m",
                     id="bad-memory"),
        pytest.param({"localhost": lab()["lab"]}, "network 'localhost': name is already used in the inventory", id="name-taken"),
    ],
)
def test_refusals_name_the_problem(networks: Any, expected: str) -> None:
    found = problems(copy.deepcopy(networks))
    assert any(expected in problem for problem in found), found
    assert all(problem.startswith(f"{SOURCE}: ") for problem in found)


def test_every_problem_is_reported_at_once() -> None:
    found = problems(lab(edges=[["n1", "n9"], ["n2", "n2"]], chainx=1))
    assert len(found) == 3


def test_container_name_must_not_reuse_an_inventory_name() -> None:
    found = problems(lab(), hosts={"localhost", "lab-n2"})
    assert any("node 'n2': container name 'lab-n2' collides with an inventory name" in p for p in found), found


def test_a_network_on_swarm_hosts_is_a_swarm_network() -> None:
    placed = lab(nodes=[{"name": "n1", "host": "host2"}])
    (network,) = parse(placed, SOURCE, known_hosts=set(HOSTS), swarm_hosts={"localhost", "host2"})
    assert network.swarm and {node.host for node in network.nodes} == {"localhost", "host2"}
    (standalone,) = parse(lab(), SOURCE, known_hosts=set(HOSTS), swarm_hosts=set())
    assert not standalone.swarm


def test_a_network_cannot_mix_swarm_and_standalone_hosts() -> None:
    placed = lab(nodes=[{"name": "n1", "host": "host2"}])
    with pytest.raises(TopologyError) as caught:
        parse(placed, SOURCE, known_hosts=set(HOSTS), swarm_hosts={"host2"})
    assert any("mixes Swarm hosts (host2) and standalone Docker hosts (localhost)" in p for p in caught.value.problems)


def test_an_edge_between_standalone_hosts_is_refused() -> None:
    found = problems(lab(nodes=[{"name": "n1", "host": "host2"}]))
    assert any("edge n1 -> n2: crosses Docker hosts 'host2' and 'localhost', which only a Swarm connects" in p for p in found), found
