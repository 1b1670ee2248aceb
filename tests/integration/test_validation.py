"""Bad topologies are refused by deploy.yml with a message naming the problem, before any change."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import containers

NETWORK = "badlab"


def network(**overrides: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {"chain": "regtest", "nodes": [{"name": "a"}, {"name": "b"}], "edges": [["a", "b"]]}
    definition.update(overrides)
    return {NETWORK: definition}


CASES = [
    pytest.param(network(edges=[["a", "zz"]]), "edge a -> zz: unknown node 'zz'", id="unknown-node-in-edge"),
    pytest.param(network(nodes=[{"name": "a"}, {"name": "a"}], edges=[]), "node 'a': duplicate node name", id="duplicate-name"),
    pytest.param(network(edges=[["a", "a"]]), "edge a -> a: self-loop", id="self-loop"),
    pytest.param(network(edges=[["a", "b"], ["a", "b"]]), "edge a -> b: duplicate edge", id="duplicate-edge"),
    pytest.param(network(nodes=[{"name": f"m{i}"} for i in range(10)], edges=[["m0", f"m{i}"] for i in range(1, 10)]),
                 "node 'm0': initiates 9 edges; addnode allows at most 8", id="more-than-8-outbound"),
    pytest.param(network(chain="regtets"), "unknown chain 'regtets' (did you mean 'regtest'?)", id="unknown-chain"),
    pytest.param(network(defaults={"implementation": "btcd"}), "unknown implementation 'btcd'", id="unknown-implementation"),
    pytest.param(network(nodes=[{"name": "a", "resources": {"cpus": "two"}}, {"name": "b"}]),
                 "resources.cpus must be a positive number, got 'two'", id="wrong-type"),
    pytest.param(network(egdes=[]), "unknown key 'egdes' in a network (did you mean 'edges'?)", id="unknown-key"),
    pytest.param(network(defaults={"host": "far-away"}), "host 'far-away' is not in the inventory", id="host-not-in-inventory"),
    pytest.param(network(nodes=[{"name": "a", "publish_p2p": 28444}, {"name": "b", "publish_p2p": 28444}]),
                 "port collision: host port 28444 on 'localhost'", id="port-collision"),
    pytest.param(network(nodes=[], edges=[], generators=[{"type": "random-regular", "nodes": 5, "degree": 3, "seed": 1}]),
                 "impossible generator parameters: degree x nodes must be even", id="impossible-generator"),
    pytest.param(network(nodes=[{"name": "a", "conf": {"maxmempol": 50}}, {"name": "b"}]),
                 "unknown bitcoin.conf key 'maxmempol' for knots (did you mean 'maxmempool'?)", id="invalid-conf-key"),
    pytest.param(network(nodes=[{"name": "a", "conf": {"rpcbind": "0.0.0.0"}}, {"name": "b"}]),
                 "conf 'rpcbind' is managed by peerlab and cannot be set", id="managed-conf-key"),
    pytest.param(network(nodes=[{"name": "a", "conf": {"uacomment": "x\nrpcallowip=0.0.0.0/0"}},
                                {"name": "b", "conf_unchecked": {"regtest.rpcallowip": "0.0.0.0/0"}}]),
                 "node 'a': conf 'uacomment' has a value", id="newline-in-conf-value"),
    pytest.param({"Bad-Lab": {"chain": "regtest", "nodes": [{"name": "a"}]}}, "network 'Bad-Lab': name must be", id="unsafe-name"),
]


@pytest.mark.parametrize(("networks", "expected"), CASES)
def test_refused_before_any_change(make_lab: Any, client: Any, networks: dict[str, Any], expected: str) -> None:
    lab = make_lab({NETWORK: {}})
    lab.write(networks)
    run = lab.playbook("deploy.yml")
    said = " ".join(run.output.split())
    assert run.rc != 0
    assert "02-topology.peerlab.yml" in said and expected in said, said[-2000:]
    assert containers(client, NETWORK) == []
    assert not (lab.directory / "secrets").exists(), "nothing may be written before validation passes"


def test_malformed_yaml_is_refused(make_lab: Any, client: Any) -> None:
    lab = make_lab({NETWORK: {}})
    (lab.inventory / "02-topology.peerlab.yml").write_text("plugin: peerlab.bitcoin.topology\nnetworks:\n  badlab: [unclosed\n")
    run = lab.playbook("deploy.yml")
    assert run.rc != 0
    assert "02-topology.peerlab.yml" in run.output
    assert containers(client, NETWORK) == []


def test_unpruned_mainnet_on_a_small_disk_is_refused(make_lab: Any, client: Any) -> None:
    """900 GiB of mainnet do not fit this machine's disk: refused by name, before images or credentials."""
    lab = make_lab({NETWORK: {}})
    lab.write({NETWORK: {"chain": "mainnet", "nodes": [{"name": "a", "conf": {"prune": 0}}, {"name": "b"}]}})
    run = lab.playbook("deploy.yml")
    said = " ".join(run.output.split())
    assert run.rc != 0
    assert f"Not enough disk on localhost for unpruned nodes {NETWORK}-a (mainnet, about 900 GiB)" in said, said[-2000:]
    assert "prune: 550" in said and f"{NETWORK}-b" not in said.split("Not enough disk")[1], "b is pruned by default"
    assert containers(client, NETWORK) == [] and not (lab.directory / "secrets").exists()
    assert "Build" not in said and "Provide the base image" not in said, "refused before the images role"


@pytest.mark.parametrize(("settings", "expected"), [
    pytest.param({"collector_detectors": {"ping_count": 0, "pign_window": 60}},
                 "collector_detectors: unknown threshold(s) ['pign_window'] or a value that is not a positive number", id="detectors"),
    pytest.param({"graphite_retention": "forever"}, "graphite_retention must look like 10s:6h,1m:7d,10m:5y (got 'forever')", id="graphite"),
])
def test_bad_monitoring_settings_are_refused_before_any_change(
        make_lab: Any, client: Any, settings: dict[str, Any], expected: str) -> None:
    # These were checked by the monitoring roles, after the nodes had been deployed.
    lab = make_lab({NETWORK: {}})
    lab.write(network())
    run = lab.playbook("deploy.yml", "-e", json.dumps({"peerlab_monitoring": True, **settings}))
    said = " ".join(run.output.split())
    assert run.rc != 0 and expected in said, said[-2000:]
    assert containers(client, NETWORK) == [] and not (lab.directory / "secrets").exists()
    assert "Build" not in said and "Provide the base image" not in said, "refused before the images role"
