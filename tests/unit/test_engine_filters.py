"""What the deploy skips from one engine read: images present, node containers and volumes by network."""

from __future__ import annotations

from typing import Any

from ansible_collections.peerlab.bitcoin.plugins.filter.engine import (
    engine,
    engine_container,
    engine_existing,
    lacking_image,
    unbuilt_nodes,
    unbuilt_pairs,
)

NODE = {"Names": ["/lab-n1"], "Labels": {"peerlab.network": "lab", "peerlab.role": "node"}, "State": "running"}
COLLECTOR = {"Names": ["/peerlab-collector"], "Labels": {"peerlab.network": "lab", "peerlab.role": "collector"}, "State": "running"}
OTHER = {"Names": ["/other-a"], "Labels": {"peerlab.network": "other", "peerlab.role": "node"}, "State": "exited"}
ENGINES: dict[str, Any] = {"results": [
    {"item": "h1", "images": ["peerlab/base:trixie-1", "peerlab/bitcoin-node:knots-29.5-abc", "peerlab/collector:c1"],
     "containers": [NODE, COLLECTOR, OTHER], "volumes": [{"Name": "lab-n1-data", "Labels": {"peerlab.network": "lab"}}],
     "root_dir": "/var/lib/docker"},
    {"item": "h2", "skipped": True},
]}


def test_engine_by_host_and_unread_hosts_are_empty() -> None:
    assert engine(ENGINES, "h1")["root_dir"] == "/var/lib/docker"
    assert engine(ENGINES, "h2") == {} and engine(ENGINES, "h3") == {} and engine({}, "h1") == {}


def test_images_missing_where_the_tag_is_not_held_or_the_engine_unread() -> None:
    assert lacking_image(["h1", "h2"], ENGINES, "peerlab/base:trixie-1") == ["h2"]
    assert lacking_image(["h1"], ENGINES, "peerlab/base:trixie-2") == ["h1"]
    builds = [{"host": "h1", "implementation": "knots", "version": "29.5"}, {"host": "h1", "implementation": "knots", "version": "29.1"}]
    assert unbuilt_nodes(builds, ENGINES, "peerlab/bitcoin-node", "abc") == [builds[1]]
    pairs = [["h1", "collector"], ["h1", "graphite"], ["h2", "collector"]]
    assert unbuilt_pairs(pairs, ENGINES, {"collector": "peerlab/collector", "graphite": "peerlab/graphite"},
                         {"collector": "c1", "graphite": "g1"}) == [["h1", "graphite"], ["h2", "collector"]]


def test_existing_node_containers_and_volumes_per_network() -> None:
    found = engine_existing([{"network": "lab", "host": "h1"}, {"network": "other", "host": "h1"}, {"network": "lab", "host": "h2"}],
                            ENGINES)
    assert found[0]["containers"] == [NODE], "the collector is not a node"
    assert [v["Name"] for v in found[0]["volumes"]] == ["lab-n1-data"]
    assert found[1]["containers"] == [OTHER] and found[1]["volumes"] == []
    assert found[2] == {"item": {"network": "lab", "host": "h2"}, "containers": [], "volumes": []}
    assert engine_container(ENGINES, "h1", "peerlab-collector") is COLLECTOR and engine_container(ENGINES, "h1", "nope") == {}


def test_a_stack_is_used_by_the_networks_it_serves_that_still_have_nodes() -> None:
    from ansible_collections.peerlab.bitcoin.plugins.filter.engine import stack_users

    graphite = {"Names": ["/peerlab-graphite"], "Labels": {"peerlab.role": "graphite", "peerlab.network": "lab,gone,other"}}
    mine = {"Names": ["/test-graphite"], "Labels": {"peerlab.role": "graphite", "peerlab.network": "mon"}}
    looped = {"results": [{"containers": [NODE, OTHER, COLLECTOR, graphite, mine]}, {"skipped": True}]}
    assert stack_users(looped, ["peerlab-graphite", "peerlab-collector"]) == ["lab", "other"], "'gone' has no node left"
    assert stack_users(looped, ["test-graphite"]) == [], "a stack of other names is not used by this host's labs"
    assert stack_users({}, ["peerlab-graphite"]) == []


def test_a_networks_subnet_comes_from_its_creation_else_from_the_engine_read() -> None:
    from ansible_collections.peerlab.bitcoin.plugins.filter.engine import missing_networks
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._plan import subnet as network_subnet

    engines = {"results": [{"item": "h1", "networks": {"peerlab-lab": {"subnets": ["172.19.0.0/16"]}}}]}
    created = {"results": [{"item": {"network": "new", "host": "h1"},
                            "network": {"IPAM": {"Config": [{"Subnet": "172.20.0.0/16"}]}}}]}
    assert network_subnet(created, engines, "new", "h1") == "172.20.0.0/16"
    assert network_subnet({"skipped": True, "results": []}, engines, "lab", "h1") == "172.19.0.0/16"
    assert network_subnet({}, engines, "gone", "h1") == ""
    wanted = [{"network": "lab", "host": "h1", "swarm": False}, {"network": "new", "host": "h1", "swarm": False}]
    assert missing_networks(wanted, engines) == [wanted[1]]
