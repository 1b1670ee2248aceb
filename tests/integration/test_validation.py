"""Bad topologies are refused by deploy.yml with a message naming the problem, before any change."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import Lab, containers

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
    pytest.param(network(nodes=[{"name": "a", "version": "../../x y;$(id)"}, {"name": "b"}]),
                 "node 'a': version '../../x y;$(id)' is not a Debian version of bitcoin-knots", id="version-injection"),
    pytest.param(network(chain=["regtest"]), "unknown chain ['regtest']", id="chain-as-a-list"),
    pytest.param(network(defaults={"implementation": ["knots"], "host": ["localhost"]}),
                 "unknown implementation ['knots']", id="implementation-as-a-list"),
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


def test_every_problem_of_a_topology_is_listed_at_once(make_lab: Any, client: Any) -> None:
    lab = make_lab({NETWORK: {}})
    other = {"chain": "regtest", "nodes": [{"name": "a", "version": "../../x y;$(id)"}], "generators": [{"type": ["ring"], "nodes": 3}]}
    lab.write(network(chain=["regtest"]) | {"other": other})
    run = lab.playbook("deploy.yml")
    said = " ".join(run.output.split())
    assert run.rc != 0 and "Traceback" not in said and "TypeError" not in said, said[-2000:]
    for expected in ("unknown chain ['regtest']", "version '../../x y;$(id)' is not", "unknown generator type ['ring']"):
        assert expected in said, said[-2000:]
    assert not (lab.directory / "secrets").exists()


def test_a_rendered_conf_line_set_from_outside_the_topology_is_refused(make_lab: Any, client: Any) -> None:
    """bitcoin.conf lines come from the topology, checked where they are rendered; a variable that
    once carried them, set with -e or in host or group variables, is refused by name."""
    lab = make_lab({NETWORK: {}})
    lab.write(network())
    run = lab.playbook("deploy.yml", "-e", json.dumps({"peerlab_conf_lines": ["uacomment=x\nrpcallowip=0.0.0.0/0"]}))
    said = " ".join(run.output.split())
    assert run.rc != 0 and "peerlab_conf_lines is set (by -e, host or group variables) but peerlab no longer reads it" in said
    assert containers(client, NETWORK) == [] and not (lab.directory / "secrets").exists()


def test_unpruned_mainnet_on_a_small_disk_is_refused(make_lab: Any, client: Any) -> None:
    """900 GiB of mainnet do not fit this machine's disk: refused by name, before any container or image."""
    lab = make_lab({NETWORK: {}})
    lab.write({NETWORK: {"chain": "mainnet", "nodes": [{"name": "a", "conf": {"prune": 0}}, {"name": "b"}]}})
    run = lab.playbook("deploy.yml")
    said = " ".join(run.output.split())
    assert run.rc != 0
    assert f"Not enough disk on localhost for unpruned nodes {NETWORK}-a (about 900 GiB)" in said, said[-2000:]
    sentence = said.split("Not enough disk")[1].split("network_disk_check=false")[0]
    assert "prune: 550" in sentence and f"{NETWORK}-b" not in sentence, "b is pruned by default"
    assert containers(client, NETWORK) == [] and not client.volumes.list(filters={"label": f"peerlab.network={NETWORK}"})
    assert "Build each image" not in said and "Provide the base image" not in said, "refused before the images role"


def test_a_container_peerlab_did_not_make_keeps_its_name_and_the_deploy_is_refused(make_lab: Any, client: Any) -> None:
    """`docker run -d --name lab-n1 busybox sleep 1d` before a deploy: the deploy names it and
    refuses, before any change; the container still runs."""
    image = client.images.list(name="peerlab/bitcoin-node")[0]
    stranger = client.containers.run(image.id, ["sleep", "86400"], entrypoint=[], name=f"{NETWORK}-a", detach=True,
                                     labels={"peerlab.test": "stranger"})
    try:
        lab = make_lab({NETWORK: {}})
        lab.write(network())
        run = lab.playbook("deploy.yml")
        said = " ".join(run.output.split())
        assert run.rc != 0 and f"container {NETWORK}-a exists on localhost and peerlab did not make it" in said, said[-2000:]
        stranger.reload()
        assert stranger.status == "running" and stranger.image.id == image.id
        assert [c.name for c in containers(client, NETWORK)] == [], f"refused before any change: no {NETWORK}-b either"
        assert not client.networks.list(names=[f"peerlab-{NETWORK}"])
    finally:
        stranger.remove(force=True, v=True)  # the node image declares a volume: its anonymous one goes too


def test_a_second_inventory_declaring_the_same_network_is_refused(make_lab: Any, client: Any) -> None:
    first = make_lab(network())
    assert first.playbook("deploy.yml").rc == 0
    made = {c.name: c.id for c in containers(client, NETWORK)}
    # Not make_lab: it clears the network's name on the engine first.
    declared = network(nodes=[{"name": "a"}, {"name": "b"}, {"name": "c"}], edges=[["a", "b"], ["c", "a"]])
    second = Lab(first.directory.parent / "second", declared)
    run = second.playbook("deploy.yml")
    said = " ".join(run.output.split())
    assert run.rc != 0, said[-2000:]
    assert f"Docker network peerlab-{NETWORK} on localhost belongs to the inventory at {first.inventory}" in said, said[-2000:]
    assert f"container {NETWORK}-a on localhost belongs to the inventory at {first.inventory}" in said
    assert {c.name: c.id for c in containers(client, NETWORK)} == made, "the first inventory's nodes are untouched"
    down = second.playbook("playbooks/teardown.yml", "-e", "peerlab_purge=true")
    assert down.rc == 0 and {c.name: c.id for c in containers(client, NETWORK)} == made, "nor removed by the other's purge"
    assert f"kept container {NETWORK}-a: container {NETWORK}-a on localhost belongs to the inventory" in " ".join(down.output.split())
    assert len(client.volumes.list(filters={"label": f"peerlab.network={NETWORK}"})) == 2


@pytest.mark.parametrize(("settings", "expected"), [
    pytest.param({"observer_detectors": {"ping_count": 0, "pign_window": 60}},
                 "observer_detectors: unknown threshold(s) pign_window; known: ", id="detectors"),
    pytest.param({"graphite_retention": "forever"}, "graphite_retention must be like 10s:6h,1m:7d,10m:5y, got 'forever'", id="graphite"),
    pytest.param({"alertmanager_route": {"receiver": "phone"}},
                 "alertmanager_route: receiver 'phone' is none of alertmanager_receivers (none given)", id="alertmanager"),
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


def test_a_node_compiled_from_source_without_its_image_is_refused_with_the_command(make_lab: Any, client: Any) -> None:
    """A deploy never compiles (many minutes, the source on the controller): it names `make statoshi`."""
    missing = "0" * 40
    lab = make_lab(network(nodes=[{"name": "a"}, {"name": "b", "implementation": "statoshi", "version": missing}]))
    run = lab.playbook("deploy.yml")
    said = " ".join(run.output.split())
    assert run.rc != 0
    assert f"lacks peerlab/bitcoin-node:statoshi-{missing}-" in said and "run `make statoshi SOURCE=" in said, said[-2000:]
    assert "nothing was changed" in said
    assert containers(client, NETWORK) == []
    assert client.networks.list(filters={"label": f"peerlab.network={NETWORK}"}) == []
