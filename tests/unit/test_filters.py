"""Filters that turn per-node facts into edge checks, tips, stale containers and the summary."""

from __future__ import annotations

from typing import Any

from ansible_collections.peerlab.bitcoin.plugins.filter.lab import (
    attached,
    collector_config,
    container_ip,
    container_named,
    container_state,
    disk_needs,
    disk_shortfalls,
    down_reasons,
    link_specs,
    link_states,
    network_hosts,
    network_tips,
    node_builds,
    not_running,
    stale_containers,
    strangers,
    summary_table,
)


def node(network: str, peers_out: list[str], ip: str, peers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"peerlab_network": network, "peerlab_docker_host": "localhost", "peerlab_implementation": "knots",
            "peerlab_version": "29.5", "peerlab_peers_out": peers_out, "peerlab_p2p_port": 18444,
            "_network_ip": ip, "__network_state": {"peers": peers}, **extra}


def linked() -> dict[str, dict[str, Any]]:
    return {
        "lab-a": node("lab", ["lab-b"], "10.0.0.1", [{"addr": "lab-b:18444", "inbound": False}]),
        "lab-b": node("lab", [], "10.0.0.2", [{"addr": "10.0.0.1:51000", "inbound": True}]),
    }


def test_link_specs_select_one_network_on_one_docker_host() -> None:
    hostvars = linked()
    hostvars["lab-a"]["_network_password"] = "pa"
    hostvars["lab-b"]["_network_password"] = "pb"
    hostvars["lab-a"]["peerlab_rpc_port"] = hostvars["lab-b"]["peerlab_rpc_port"] = 18443
    hostvars["other-x"] = node("other", [], "10.0.1.1", [])
    specs = link_specs(["lab-a", "lab-b", "other-x"], hostvars, "lab", "localhost")
    assert specs == [
        {"name": "lab-a", "rpc_host": "10.0.0.1", "rpc_port": 18443, "rpc_password": "pa", "peers": ["lab-b:18444"]},
        {"name": "lab-b", "rpc_host": "10.0.0.2", "rpc_port": 18443, "rpc_password": "pb", "peers": []},
    ]


def test_link_states_merge_looped_results() -> None:
    results: list[dict[str, Any]] = [{"nodes": {"lab-a": {"blocks": 1}}}, {"nodes": {"lab-b": {"blocks": 2}}}, {"skipped": True}]
    assert link_states(results) == {"lab-a": {"blocks": 1}, "lab-b": {"blocks": 2}}


def test_tip_comes_from_the_miner_else_the_highest_node() -> None:
    hostvars = linked()
    hostvars["lab-a"]["__network_state"].update(blocks=5, bestblockhash="five")
    hostvars["lab-b"]["__network_state"].update(blocks=7, bestblockhash="seven")
    assert network_tips(["lab-a", "lab-b"], hostvars, states="__network_state") == {"lab": "seven"}
    states = {"lab-a": {"blocks": 9, "bestblockhash": "nine"}}
    assert network_tips(["lab-a", "lab-b"], hostvars, states=states) == {"lab": "nine"}
    hostvars["lab-a"]["__network_mined"] = {"tip": "mined"}
    assert network_tips(["lab-a", "lab-b"], hostvars) == {"lab": "mined"}


def test_unique_builds_and_network_hosts() -> None:
    hostvars = linked()
    assert node_builds(["lab-a", "lab-b"], hostvars) == [{"host": "localhost", "implementation": "knots", "version": "29.5"}]
    assert network_hosts(["lab-a", "lab-b"], hostvars) == [{"network": "lab", "host": "localhost"}]


def test_stale_containers_are_those_the_network_no_longer_lists() -> None:
    found = [{"Names": ["/lab-a"]}, {"Names": ["/lab-z"]}]
    results: list[dict[str, Any]] = [
        {"item": {"network": "lab", "host": "h1"}, "containers": found},
        {"item": {"network": "gone", "host": "h1"}, "skipped": True},
    ]
    assert stale_containers(results, {"lab": ["lab-a"]}) == [{"host": "h1", "name": "lab-z"}]


def test_summary_table_aligns_columns() -> None:
    hostvars = linked()
    hostvars["lab-a"]["__network_tip"] = {"connections_in": 0, "connections_out": 1, "blocks": 101, "bestblockhash": "ab" * 32}
    lines = summary_table(["lab-b", "lab-a"], hostvars, "__network_tip").splitlines()
    assert summary_table(["lab-b", "lab-a"], hostvars, {"lab-a": hostvars["lab-a"]["__network_tip"]}).splitlines() == lines
    assert lines[0].split() == ["node", "host", "address", "in", "out", "height", "tip"]
    assert lines[1].split() == ["lab-a", "localhost", "10.0.0.1", "0", "1", "101", "ab" * 8]
    assert lines[2].split()[0] == "lab-b" and lines[2].split()[-1] == "-"


def test_summary_table_says_which_nodes_are_paused_or_stopped() -> None:
    hostvars = linked()
    hostvars["lab-a"]["_network_state"] = container_state({"State": "paused"})  # a container list's entry
    hostvars["lab-b"]["_network_state"] = container_state({"State": {"Status": "exited", "Running": False}})  # inspect's
    lines = summary_table(["lab-a", "lab-b"], hostvars, {}).splitlines()
    assert [line.split()[-1] for line in lines[1:]] == ["(paused)", "(exited)"]
    hostvars["lab-a"]["_network_state"] = container_state(None)
    assert summary_table(["lab-a"], hostvars, {}).splitlines()[1].split()[-1] == "-", "no state known: no claim"


def test_containers_are_found_by_name_and_give_their_address() -> None:
    listed = {"Names": ["/lab-a"], "NetworkSettings": {"Networks": {"peerlab-lab": {"IPAddress": "10.0.0.1"}}}}
    results: list[dict[str, Any]] = [{"containers": [{"Names": ["/lab-b"]}, listed]}, {"skipped": True}]
    assert container_named(results, "lab-a") is listed
    assert container_named(results, "lab-z") is None
    assert container_ip(listed) == "10.0.0.1"
    assert container_ip(None) == "" and container_ip({"NetworkSettings": {"Networks": {"x": {"IPAddress": ""}}}}) == ""


def test_collector_config_holds_its_host_nodes_and_edges_by_node_name() -> None:
    hostvars = {
        "lab-a": node("lab", ["lab-b"], "", [], peerlab_node="a", peerlab_container="lab-a", peerlab_chain="regtest",
                      peerlab_rpc_port=18443),
        "lab-b": node("lab", [], "", [], peerlab_node="b", peerlab_container="lab-b", peerlab_chain="regtest",
                      peerlab_rpc_port=18443, peerlab_docker_host="other"),
    }
    config = collector_config(list(hostvars), hostvars, "localhost", 10, "g:2003")
    assert config == {"host": "localhost", "interval": 10, "carbon": "g:2003", "networks": {"lab": {
        "chain": "regtest", "edges": [["a", "b"]], "nodes": {"a": {"container": "lab-a", "rpc_port": 18443}},
        "docker_network": "peerlab-lab"}}}
    # the observer's: every Docker host's nodes, and the bus
    everything = collector_config(list(hostvars), hostvars, "", 10, "g:2003", "peerlab-bus:4222")
    assert everything["bus"] == "peerlab-bus:4222" and everything["host"] == "observer"
    assert sorted(everything["networks"]["lab"]["nodes"]) == ["a", "b"]
    assert everything["networks"]["lab"]["edges"] == [["a", "b"]]
    assert attached(["x", "y"]) == [{"name": "x"}, {"name": "y"}]


def test_disk_needs_count_unpruned_public_chain_nodes_per_docker_host() -> None:
    hostvars = {
        "m-a": {"peerlab_chain": "mainnet", "peerlab_conf": {"prune": 0}, "peerlab_docker_host": "h1"},
        "m-b": {"peerlab_chain": "mainnet", "peerlab_conf": {"prune": 550}, "peerlab_docker_host": "h1"},
        "m-c": {"peerlab_chain": "mainnet", "peerlab_conf": {"prune": "1"}, "peerlab_docker_host": "h1"},
        "s-a": {"peerlab_chain": "signet", "peerlab_conf": {}, "peerlab_docker_host": "h2"},
        "r-a": {"peerlab_chain": "regtest", "peerlab_conf": {}, "peerlab_docker_host": "h2"},
    }
    needs = disk_needs(list(hostvars), hostvars)
    assert [(need["host"], [node["name"] for node in need["nodes"]], need["gib"]) for need in needs] == [
        ("h1", ["m-a", "m-c"], 1800), ("h2", ["s-a"], 40)]


def test_disk_shortfalls_name_the_nodes_and_skip_those_whose_volume_exists() -> None:
    need = {"host": "h1", "gib": 1800, "nodes": [{"name": "m-a", "chain": "mainnet", "gib": 900},
                                                 {"name": "m-c", "chain": "mainnet", "gib": 900}]}
    info = {"item": need, "host_info": {"DockerRootDir": "/var/lib/docker"}, "volumes": [{"Name": "m-c-data"}]}
    small = {"stdout": "     Avail\n85899345920"}
    (message,) = disk_shortfalls([info], [small])
    assert "m-a (mainnet, about 900 GiB)" in message and "m-c" not in message
    assert "need about 900 GiB" in message and "has 80 GiB free" in message and "prune: 550" in message
    assert disk_shortfalls([info], [{"stdout": str(1000 * 2**30)}]) == []


def test_nodes_that_are_not_running_are_explained_with_what_bitcoind_logged() -> None:
    listing = [{"item": {"network": "lab", "host": "h1"}, "containers": [
        {"Names": ["/lab-a"], "State": "restarting", "Status": "Restarting (1) 5 seconds ago"},
        {"Names": ["/lab-b"], "State": "running", "Status": "Up 2 minutes"}]}]
    down = not_running(listing)
    assert down == [{"host": "h1", "containers": ["lab-a"], "status": {"lab-a": "Restarting (1) 5 seconds ago"}}]
    logs = ["2026-11-22T02:26:56Z [error] FindNextBlockPos failed while writing block",
            "2026-11-22T02:26:56Z [error] A fatal internal error occurred, see debug.log for details: Disk space is too low!",
            "2026-11-22T02:26:56Z Shutdown: done", "Error: Error initializing block database",
            "PermissionError: [Errno 13] Permission denied: '/home/bitcoin/.bitcoin/bitcoin.conf.tmp'"]
    (reason,) = down_reasons([{"item": down[0], "logs": {"lab-a": logs}}])
    assert reason.startswith("lab-a on h1 is not running (Restarting (1) 5 seconds ago); bitcoind logged: A fatal")
    assert "Error initializing block database" in reason and "PermissionError" in reason and "Shutdown" not in reason
    assert down_reasons([{"item": down[0]}]) == ["lab-a on h1 is not running (Restarting (1) 5 seconds ago)."]


def test_strangers_are_containers_peerlab_does_not_manage() -> None:
    info = {"network": {"Containers": {"1": {"Name": "peerlab-collector"}, "2": {"Name": "someone-else"}}}}
    assert strangers(info, ["peerlab-collector"]) == ["someone-else"]
    assert strangers({"network": {"Containers": None}}, []) == []


def test_docker_networks_are_per_host_standalone_and_once_on_the_manager_for_a_swarm() -> None:
    from ansible_collections.peerlab.bitcoin.plugins.filter.lab import docker_networks

    hostvars = {"lab-a": node("lab", [], "", []), "lab-b": node("lab", [], "", [], peerlab_docker_host="h2"),
                "sw-a": node("sw", [], "", [], peerlab_docker_host="w1", peerlab_swarm=True),
                "sw-b": node("sw", [], "", [], peerlab_docker_host="w2", peerlab_swarm=True)}
    assert docker_networks(list(hostvars), hostvars, "m1") == [
        {"network": "lab", "name": "peerlab-lab", "host": "h2", "swarm": False},
        {"network": "lab", "name": "peerlab-lab", "host": "localhost", "swarm": False},
        {"network": "sw", "name": "peerlab-sw", "host": "m1", "swarm": True}]


def test_swarm_task_containers_are_found_by_label_and_never_pruned_as_containers() -> None:
    def task(name: str, node: str, state: str, created: int, spec: str = "s1") -> dict[str, Any]:
        return {"Id": name, "Names": [f"/{name}"], "State": state, "Created": created,
                "Labels": {"peerlab.network": "sw", "peerlab.node": node, "peerlab.spec": spec,
                           "com.docker.swarm.service.name": f"sw-{node}"}}

    from test_plan import RUN, variables

    from ansible_collections.peerlab.bitcoin.plugins.filter.lab import swarm_pending
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._plan import node_plan

    hostvars = {name: variables(peerlab_network="sw", peerlab_node=name[3:], peerlab_container=name, peerlab_docker_host="w1",
                                peerlab_swarm=True) for name in ("sw-a", "sw-b")}
    spec = node_plan(hostvars["sw-a"], RUN)["spec"]  # sw-a's running task has its current settings
    result: dict[str, Any] = {"item": {"network": "sw", "host": "w1"},
                              "containers": [task("sw-a.1.old", "a", "exited", 1), task("sw-a.1.new", "a", "running", 2, spec),
                                             task("sw-z.1.x", "z", "running", 3)]}
    assert container_named([result], "sw-a")["Id"] == "sw-a.1.new"  # type: ignore[index]
    assert stale_containers([result], {"sw": ["sw-a"]}) == []
    assert swarm_pending(result, {"network": "sw", "host": "w1"}, list(hostvars), hostvars, RUN) == ["sw-b"]
    hostvars["sw-a"]["peerlab_conf_lines"] = ["dbcache=60"]  # settings changed: the running task is outdated
    assert swarm_pending(result, {"network": "sw", "host": "w1"}, list(hostvars), hostvars, RUN) == ["sw-a", "sw-b"]


def test_stale_services_gateway_addresses_and_image_needs() -> None:
    from ansible_collections.peerlab.bitcoin.plugins.filter.lab import (
        gateway_ips,
        image_needs,
        missing_images,
        monitoring_host,
        stale_services,
    )

    services = [{"Spec": {"Name": "sw-a", "Labels": {"peerlab.role": "node"}}},
                {"Spec": {"Name": "sw-z", "Labels": {"peerlab.role": "node"}}},
                {"Spec": {"Name": "peerlab-collector", "Labels": {"peerlab.role": "collector"}}}]
    assert stale_services([{"item": {"network": "sw", "host": "m1"}, "services": services}], {"sw": ["sw-a"]}) == [
        {"host": "m1", "name": "sw-z"}]
    gateways = [{"network": {"Containers": {"abc": {"IPv4Address": "172.18.0.3/16"}, "ingress-sbox": {"IPv4Address": ""}}}}]
    assert gateway_ips(gateways) == {"abc": "172.18.0.3"}
    hostvars = {"sw-a": node("sw", [], "", [], peerlab_docker_host="m1", images_node_image="node:1"),
                "sw-b": node("sw", [], "", [], peerlab_docker_host="w1", images_node_image="node:1")}
    needs = image_needs(list(hostvars), hostvars, "m1", {"collector": "col:1", "graphite": "gr:1", "host": "m1"})
    assert needs == [{"host": "w1", "images": ["col:1", "node:1"]}]
    # a monitoring host without nodes gets Graphite and the collector image (bus, observer)
    elsewhere = image_needs(list(hostvars), hostvars, "m1", {"collector": "col:1", "graphite": "gr:1", "host": "g1"})
    assert {"host": "g1", "images": ["col:1", "gr:1"]} in elsewhere
    # the portal's image goes to the monitoring host; without monitoring no collector image travels
    portal_only = image_needs(list(hostvars), hostvars, "m1", {"collector": "", "graphite": "", "portal": "portal:1", "host": "g1"})
    assert portal_only == [{"host": "g1", "images": ["portal:1"]}, {"host": "w1", "images": ["node:1"]}]
    assert image_needs(list(hostvars), hostvars, "m1", {}) == [{"host": "w1", "images": ["node:1"]}]
    found: list[dict[str, Any]] = [
        {"item": needs[0], "images": [{"RepoTags": ["col:1"]}]},
        {"item": {"host": "w2", "images": ["node:1"]}, "images": []},
    ]
    missing = missing_images(found)
    assert [(entry["host"], entry["images"]) for entry in missing] == [("w1", ["node:1"]), ("w2", ["node:1"])]
    assert missing[0]["archive"] == missing[1]["archive"], "hosts lacking the same images share an archive"
    assert monitoring_host({"peerlab_swarm_managers": ["m1"]}, "w1") == "m1"
    assert monitoring_host({"peerlab_monitoring": ["g"], "peerlab_swarm_managers": ["m1"]}, "w1") == "g"
    assert monitoring_host({"peerlab_swarm_managers": []}, "w1") == "w1"


def test_link_problems_check_both_ends_across_docker_hosts() -> None:
    from ansible_collections.peerlab.bitcoin.plugins.filter.lab import link_problems

    hostvars = {"sw-a": node("sw", ["sw-b"], "172.18.0.3", [], peerlab_docker_host="m1", _network_address="10.0.1.2"),
                "sw-b": node("sw", [], "172.18.0.4", [], peerlab_docker_host="w1", _network_address="10.0.1.3")}
    linked = {"sw-a": {"peers": [{"addr": "sw-b:18444", "inbound": False}]},
              "sw-b": {"peers": [{"addr": "10.0.1.2:40000", "inbound": True}]}}
    assert link_problems(list(hostvars), hostvars, linked) == []
    half = {"sw-a": linked["sw-a"], "sw-b": {"peers": []}}
    assert link_problems(list(hostvars), hostvars, half) == ["sw-a -> sw-b:18444: sw-b has no inbound link from sw-a"]


def test_ready_hosts_are_the_inventory_names_of_ready_swarm_nodes() -> None:
    from ansible_collections.peerlab.bitcoin.plugins.filter.swarm import ready_hosts

    nodes = [{"Status": {"State": "ready"}, "Spec": {"Labels": {"peerlab.host": "w1"}}},
             {"Status": {"State": "down"}, "Spec": {"Labels": {"peerlab.host": "w2"}}},
             {"Status": {"State": "ready"}, "Spec": {"Labels": {}}}]
    assert ready_hosts(nodes) == ["w1"]


def test_public_chains_have_no_tip_to_agree_on_and_show_sync_progress() -> None:
    hostvars = linked()
    for host, blocks in (("lab-a", 5), ("lab-b", 7)):
        hostvars[host]["peerlab_chain"] = "signet"
        hostvars[host]["__network_state"].update(blocks=blocks, bestblockhash=f"tip{blocks}")
    assert network_tips(["lab-a", "lab-b"], hostvars, states="__network_state") == {}
    states = {"lab-a": {"chain": "signet", "blocks": 5, "headers": 270000, "verificationprogress": 0.01234,
                        "initialblockdownload": True, "bestblockhash": "ab" * 32},
              "lab-b": {"chain": "signet", "blocks": 7, "headers": 7, "verificationprogress": 1.0, "initialblockdownload": False}}
    lines = summary_table(["lab-a", "lab-b"], hostvars, states).splitlines()
    assert lines[0].split()[-1] == "sync"
    assert lines[1].endswith("headers 270000, 1.23% verified, initial sync")
    assert lines[2].endswith("headers 7, 100.00% verified")
