"""Geography: regions to edge latency faults, the default round trips, every problem at once."""

from __future__ import annotations

import pytest

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _faults, _geography
from ansible_collections.peerlab.bitcoin.plugins.module_utils._topology import TopologyError, parse

NODES = ["n1", "n2", "n3", "n4", "n5"]


def geography(raw: object) -> tuple[list[_faults.Fault], list[str]]:
    problems: list[str] = []
    found = _geography.parse(raw, NODES, lambda where, message: problems.append(f"{where}: {message}"), "lab")
    return found, problems


def test_the_default_round_trips_follow_the_rule_of_thumb() -> None:
    # Frankfurt-Ashburn: 6,530 km great circle; x 2.1 route, there and back at 204 km/ms.
    assert _geography.distance_km("europe", "north-america") == pytest.approx(6530, rel=0.01)
    assert _geography.default_rtt("europe", "north-america") == 135.0
    assert _geography.default_rtt("north-america", "europe") == 135.0 and _geography.default_rtt("asia", "asia") == 0.0
    table = _geography.table()
    assert len(table) == 21 and min(table.values()) > 100 and max(table.values()) < 400


def test_every_pair_across_regions_gets_half_the_round_trip_each_way() -> None:
    found, problems = geography({"regions": {"europe": ["n1", "n2"], "north-america": ["n3"], "mars": ["n4"]},
                                 "latency": {"europe/mars": "2s", "mars/north-america": 2400, "europe/europe": "20ms"}})
    assert problems == []
    edges = {(fault.node, fault.target): fault.delay for fault in found}
    assert edges[("n1", "n3")] == edges[("n3", "n1")] == 67.5          # the default 135 ms round trip
    assert edges[("n1", "n4")] == edges[("n4", "n2")] == 1000.0          # given: 2 s
    assert edges[("n3", "n4")] == 1200.0 and edges[("n1", "n2")] == 10.0  # given both ways; within a region when given
    assert not any("n5" in pair for pair in edges), "a node in no region gets nothing"
    assert all(fault.kind == "latency" and not fault.jitter for fault in found) and len(found) == 12


def test_a_declared_fault_replaces_geographys_on_its_edge() -> None:
    found, _problems = geography({"regions": {"europe": ["n1"], "asia": ["n2"]}})
    declared = [_faults.Fault(kind="latency", node="n1", target="n2", delay=5.0)]
    merged = _geography.merge(found, declared)
    assert [(fault.node, fault.target, fault.delay) for fault in merged] == [("n2", "n1", 105.5), ("n1", "n2", 5.0)]


def test_every_problem_is_named_at_once() -> None:
    raw = {"regions": {"europe": ["n1", "n9"], "asia": ["n1"], "moon": ["n3"]}, "latency": {"europe-asia": 5}, "jitter": 1}
    _found, problems = geography(raw)
    assert problems == [
        "lab: geography: unknown key 'jitter' (valid keys: latency, regions)",
        "lab: geography: region 'europe': 'n9' is not a node of this network (nodes: n1, n2, n3, n4, n5)",
        "lab: geography: node 'n1' is in regions 'europe' and 'asia'; a node is in one region",
        "lab: geography: latency key 'europe-asia' must be two of this geography's regions as 'a/b' (asia, europe, moon)",
    ]
    _found, problems = geography({"regions": {"europe": ["n1"], "moon": ["n3"]}})
    assert problems == ["lab: geography: no round trip between 'europe' and 'moon': give it in 'latency' (europe/moon: 120ms); "
                        "the regions with a default are europe, north-america, south-america, africa, asia, east-asia, oceania"]
    assert geography({"nodes": ["n1"]})[1] == [
        "lab: geography: geography needs 'regions': a mapping of region names to lists of nodes (or a 'region' on nodes), "
        "got {'nodes': ['n1']}"]


def test_the_topology_carries_geographys_faults_with_its_own() -> None:
    (network,) = parse({"lab": {"chain": "regtest", "generators": [{"type": "ring", "nodes": 5, "prefix": "n"}],
                                "geography": {"regions": {"europe": ["n1", "n2"], "asia": ["n3", "n4", "n5"]}},
                                "faults": [{"kind": "latency", "from": "n1", "to": "n3", "delay": "10ms"}]}},
                       "t.yml", known_hosts={"localhost"})
    edges = {(fault.node, fault.target): fault.delay for fault in network.faults}
    assert len(edges) == 12 and edges[("n1", "n3")] == 10.0 and edges[("n3", "n1")] == edges[("n2", "n5")] == 105.5
    with pytest.raises(TopologyError) as caught:
        parse({"lab": {"chain": "regtest", "generators": [{"type": "ring", "nodes": 3, "prefix": "n"}],
                       "geography": {"regions": {"europe": ["n7"]}}}}, "t.yml", known_hosts={"localhost"})
    assert "region 'europe': 'n7' is not a node of this network" in str(caught.value)


def test_the_docs_table_is_the_codes() -> None:
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / "docs" / "experiments.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| **")]
    printed = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        region = cells[0].split("**")[1]
        printed[region] = [float(cell) if cell else 0.0 for cell in cells[1:]]
    assert printed == {a: [_geography.default_rtt(a, b) for b in _geography.HUBS] for a in _geography.HUBS}


def test_a_nodes_own_region_places_it_beside_or_instead_of_the_networks_regions() -> None:
    def lab(**extra: object) -> dict[str, object]:
        return {"lab": {"chain": "regtest", "edges": [["a", "b"], ["b", "c"]], **extra, "nodes": [
            {"name": "a", "region": "europe"}, {"name": "b", "region": "east-asia"}, {"name": "c"}]}}
    (network,) = parse(lab(), "t.peerlab.yml")
    half = _geography.default_rtt("europe", "east-asia") / 2
    assert {(f.node, f.target): f.delay for f in network.faults} == {("a", "b"): half, ("b", "a"): half}
    (network,) = parse(lab(geography={"regions": {"europe": ["c"]}, "latency": {"europe/east-asia": "230ms"}}), "t.peerlab.yml")
    assert {(f.node, f.target): f.delay for f in network.faults} == {
        ("a", "b"): 115.0, ("b", "a"): 115.0, ("c", "b"): 115.0, ("b", "c"): 115.0}, "a and c in europe, one by each way"
    with pytest.raises(TopologyError) as caught:
        parse({"lab": {"chain": "regtest", "geography": {"regions": {"asia": ["a"]}},
                       "nodes": [{"name": "a", "region": "europe"}, {"name": "b", "region": "Mars!"}]}}, "t.peerlab.yml")
    assert "node 'a': its region is 'europe' but geography.regions puts it in 'asia'" in str(caught.value)
    assert "node 'b': 'region' must be a region name such as europe or east-asia, got 'Mars!'" in str(caught.value)
