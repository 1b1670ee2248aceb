"""The per-Docker-host plan: a node's container settings, their hash and when a container is made again."""

from __future__ import annotations

from typing import Any

from ansible_collections.peerlab.bitcoin.plugins.filter.plan import host_containers, host_nodes, swarm_hosts
from ansible_collections.peerlab.bitcoin.plugins.module_utils import _names
from ansible_collections.peerlab.bitcoin.plugins.module_utils._plan import node_plan, outdated

ENGINES = {"results": [{"item": "localhost", "networks": {"peerlab-lab": {"subnets": ["172.20.0.0/16"]}}}]}
RUN = {"restart_policy": "unless-stopped", "stop_timeout": 600, "peers_dir": "/var/lib/peerlab/peers",
       "created": {"results": []}, "engines": ENGINES}


def variables(**extra: Any) -> dict[str, Any]:
    """A node's host variables as the inventory plugin publishes them, plus what the run set on it."""
    return {"peerlab_network": "lab", "peerlab_node": "n1", "peerlab_container": "lab-n1", "peerlab_chain": "regtest",
            "peerlab_implementation": "knots", "peerlab_docker_host": "localhost", "peerlab_resources": {"memory": "512m", "cpus": 1},
            "peerlab_conf_lines": ["dbcache=50", "txindex=1"], "peerlab_publish_p2p": None, "peerlab_p2p_port": 18444,
            "images_node_image": "peerlab/bitcoin-knots:29.5-abc", "_network_rpcauth": "peerlab:salt$hash", **extra}


def test_the_hash_is_the_one_containers_already_carry() -> None:
    # Computed on 2026-12-01 by the Jinja this plan replaced (roles/network/vars/main.yml at 5638fdb,
    # to_json(sort_keys=true) | hash('sha256') | truncate(16)): a lab deployed before the change is
    # not made again after it.
    assert node_plan(variables(), RUN)["spec"] == "a871099c3b0c0a1c"
    assert node_plan(variables(peerlab_publish_p2p=18555), RUN)["spec"] == "8942ec2850728793"
    assert node_plan(variables(peerlab_swarm=True, peerlab_docker_host="dind2"), RUN)["spec"] == "b21bc9e4adab5b44"


def test_a_node_plan_holds_what_users_see_on_the_container() -> None:
    plan = node_plan(variables(peerlab_publish_p2p=18555), RUN)
    assert (plan["name"], plan["hostname"], plan["network"]) == ("lab-n1", "lab-n1", "peerlab-lab")
    assert plan["labels"] == {"peerlab.network": "lab", "peerlab.node": "n1", "peerlab.role": "node",
                              "peerlab.chain": "regtest", "peerlab.implementation": "knots"}
    assert plan["env"]["PEERLAB_RPCALLOWIP"] == "172.20.0.0/16"
    assert plan["env"]["PEERLAB_CONF"] == "dbcache=50\ntxindex=1"
    assert plan["mounts"][0]["source"] == "lab-n1-data" and plan["published_ports"] == ["18555:18444"]
    assert (plan["memory"], plan["cpus"], plan["stop_timeout"]) == ("512m", 1.0, 600)


def test_a_subnet_made_this_run_wins_over_the_engine_read() -> None:
    created = {"results": [{"item": {"network": "lab", "host": "localhost"},
                            "network": {"IPAM": {"Config": [{"Subnet": "10.9.0.0/24"}]}}}]}
    assert node_plan(variables(), {**RUN, "created": created})["env"]["PEERLAB_RPCALLOWIP"] == "10.9.0.0/24"
    assert node_plan(variables(), {**RUN, "engines": {}})["env"]["PEERLAB_RPCALLOWIP"] == ""


def test_a_swarm_node_is_placed_reads_its_peers_file_and_allows_its_attached_networks() -> None:
    plan = node_plan(variables(peerlab_swarm=True, peerlab_docker_host="dind2"), RUN)
    assert plan["placement"] == "dind2" and plan["env"]["PEERLAB_RPCALLOWIP"] == "attached"
    assert plan["mounts"][1] == {"type": "bind", "source": "/var/lib/peerlab/peers/lab-n1", "target": "/etc/peerlab/peers",
                                 "readonly": True}


def test_each_setting_changes_the_hash() -> None:
    base = node_plan(variables(), RUN)["spec"]
    changed = [variables(images_node_image="peerlab/bitcoin-knots:29.5-def"), variables(peerlab_conf_lines=["dbcache=51"]),
               variables(peerlab_resources={"memory": "512m", "cpus": 2}), variables(_network_rpcauth="other"),
               variables(peerlab_publish_p2p=18444)]
    assert all(node_plan(v, RUN)["spec"] != base for v in changed)
    assert node_plan(variables(), {**RUN, "stop_timeout": 60})["spec"] != base
    assert node_plan(variables(), RUN)["spec"] == base  # and nothing else does


def test_a_container_is_made_again_when_missing_stopped_or_made_from_other_settings() -> None:
    plan = node_plan(variables(), RUN)
    running = {"State": "running", "Labels": {"peerlab.spec": plan["spec"]}}
    assert not outdated(plan, running)
    assert not outdated(plan, {"State": {"Status": "running"}, "Labels": {"peerlab.spec": plan["spec"]}})  # inspect format
    assert outdated(plan, None) and outdated(plan, {})
    assert outdated(plan, {**running, "State": "exited"})
    assert outdated(plan, {**running, "Labels": {"peerlab.spec": "0" * 16}})
    assert outdated(plan, running, compare="full")


def test_host_containers_are_the_standalone_nodes_of_one_docker_host() -> None:
    hostvars = {"lab-n1": variables(), "lab-n2": variables(peerlab_node="n2", peerlab_container="lab-n2", peerlab_docker_host="other"),
                "sw-n1": variables(peerlab_network="sw", peerlab_container="sw-n1", peerlab_swarm=True, peerlab_docker_host="dind2")}
    assert [plan["name"] for plan in host_containers(list(hostvars), hostvars, "localhost", RUN)] == ["lab-n1"]
    assert host_containers(list(hostvars), hostvars, "dind2", RUN) == []
    hostvars["lab-n1"]["peerlab_volume"] = "lab-n1-data"
    assert host_nodes(list(hostvars), hostvars, "localhost") == [{"name": "lab-n1", "volume": "lab-n1-data"}]
    assert host_nodes(list(hostvars), hostvars, "dind2") == [], "a Swarm node is a service: teardown removes it as one"
    assert swarm_hosts(list(hostvars), hostvars) == ["dind2"]


def test_naming_rules() -> None:
    assert _names.container("lab", "n1") == "lab-n1"
    assert _names.data_volume("lab-n1") == "lab-n1-data"
    assert _names.docker_network("lab") == "peerlab-lab"
    assert _names.labelled_container({"peerlab.network": "lab", "peerlab.node": "n1"}) == "lab-n1"
    assert _names.labelled_container({"peerlab.role": "collector"}) == "" and _names.labelled_container(None) == ""
