"""The portal's pure logic: the network view it draws, the login hash, the CSRF check, the mounts,
its jobs and the quick apply's decisions."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "images" / "portal"))
import portal
import quick

from ansible_collections.peerlab.bitcoin.plugins.module_utils._desired import portal_mounts
from ansible_collections.peerlab.bitcoin.plugins.module_utils._login import check_password, hash_password
from ansible_collections.peerlab.bitcoin.plugins.module_utils._settings import Settings
from ansible_collections.peerlab.bitcoin.plugins.module_utils._topology import parse

LAB = {"lab": {"chain": "regtest", "generators": [{"type": "ring", "nodes": 3, "prefix": "n"}], "miners": ["n1"]}}


def node(up: bool, peers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"up": up, "fresh": up, "height": 5 if up else None, "peers": peers, **extra}


def test_view_marks_edges_externals_and_undeclared_links() -> None:
    network = parse(LAB, "t.peerlab.yml")[0]  # ring: n1 -> n2, n2 -> n3, n3 -> n1
    foreign = {"addr": "172.18.0.99:41000", "node": None, "inbound": True, "conn_type": "inbound", "subver": "/Satoshi:27.0.0/"}
    state = {"nodes": {
        "n1": node(True, [{"node": "n2", "addr": "lab-n2:18444"}, {**foreign, "subver": ""}]),  # still in its handshake
        "n2": node(True, [{"node": "n1", "addr": "172.18.0.2:5000"}, {"node": "n3", "addr": "x"},
                          {**foreign, "addr": "172.18.0.99:41001"}]),
        "n3": node(False, []),
    }}
    view = portal.network_view(network, state, "v1")
    assert [(n["id"], n["status"], n["miner"]) for n in view["nodes"]] == [("n1", "up", True), ("n2", "up", False), ("n3", "down", False)]
    declared = {edge["id"]: edge["connected"] for edge in view["edges"] if edge["kind"] == "declared"}
    assert declared == {"n1|n2": True, "n2|n3": True, "n1|n3": False}, "n2 sees n3; n3 -> n1 is declared but nobody sees it"
    assert [(e["id"], e["addr"], e["subver"], [p["node"] for p in e["peers"]]) for e in view["external"]] == [
        ("ext:172.18.0.99", "172.18.0.99:41000", "/Satoshi:27.0.0/", ["n1", "n2"])], "one vertex per foreign address"
    assert sorted(edge["id"] for edge in view["edges"] if edge["kind"] == "external") == ["n1|ext:172.18.0.99", "n2|ext:172.18.0.99"]
    assert view["file_version"] == "v1" and view["observed"] and view["hosts"] == ["localhost"]
    assert view["nodes"][0]["build"] == "knots 29.5", "the hover's implementation and version"


def test_view_shows_links_nobody_declared_and_works_without_the_observer() -> None:
    network = parse(LAB, "t.peerlab.yml")[0]
    state = {"nodes": {"n1": node(True, [{"node": "n3"}]), "n3": node(True, [{"node": "n1"}])}}
    lab4 = parse({"lab": {"chain": "regtest", "nodes": [{"name": "a"}, {"name": "b"}], "edges": []}}, "t.peerlab.yml")[0]
    undeclared = portal.network_view(lab4, {"nodes": {"a": node(True, [{"node": "b"}])}}, "v")["edges"]
    assert undeclared == [{"id": "a|b", "from": "a", "to": "b", "kind": "undeclared", "connected": True, "faults": []}]
    blind = portal.network_view(network, None, "v")
    assert not blind["observed"] and {n["status"] for n in blind["nodes"]} == {"unknown"} and blind["external"] == []
    assert all(not edge["connected"] for edge in blind["edges"])
    seen = {edge["id"]: edge["connected"] for edge in portal.network_view(network, state, "v")["edges"]}
    assert seen == {"n1|n2": False, "n2|n3": False, "n1|n3": True}


def test_login_hash_is_salted_and_checked() -> None:
    stored = hash_password("correct horse", "salt1")
    assert stored.startswith("pbkdf2_sha256$200000$salt1$") and "correct horse" not in stored
    assert check_password("correct horse", stored) and not check_password("correct hors", stored)
    assert hash_password("correct horse", "salt2") != stored
    assert not check_password("x", "plain") and not check_password("x", "md5$1$s$h") and not check_password("x", "pbkdf2_sha256$x$s$h")
    assert hash_password("p", "s", 1000) != hash_password("p", "s", 2000)


def test_csrf_token_must_be_present_and_equal() -> None:
    assert portal.csrf_ok("abc", "abc")
    assert not portal.csrf_ok(None, "abc") and not portal.csrf_ok("", "") and not portal.csrf_ok("abd", "abc")


def test_mounts_show_each_directory_at_its_own_path_once() -> None:
    mounts = portal_mounts(["/work/main", "/work/main/inventories/local/../../.secrets/local", "/work/main/.state/local",
                            "/tmp/lab/inventory", "/tmp/lab/inventory/x", "", "/tmp/lab2"])
    assert [(m.source, m.target) for m in mounts] == [
        ("/tmp/lab/inventory", "/tmp/lab/inventory"), ("/tmp/lab2", "/tmp/lab2"), ("/work/main", "/work/main")]
    assert portal_mounts(["/work/mainly", "/work/main"])[1].source == "/work/mainly", "a prefix of a name is not a parent"


def test_an_edit_is_applied_by_apply_yml_unless_a_node_lands_on_a_new_docker_host() -> None:
    def networks(spec: dict[str, Any]) -> dict[str, Any]:
        return {network.name: {"model": network} for network in parse(spec, "t.peerlab.yml", known_hosts={"localhost", "h2"})}

    lab = networks(LAB)
    linked = networks({"lab": dict(LAB["lab"], nodes=[{"name": "n9"}], edges=[{"from": "n9", "to": "n1"}])})
    grown = networks({"lab": dict(LAB["lab"], nodes=[{"name": "n9"}])})
    elsewhere = networks({"lab": dict(LAB["lab"], nodes=[{"name": "n9", "host": "h2"}])})
    assert portal.apply_playbook(lab, linked) == "playbooks/apply.yml"
    assert portal.apply_playbook(lab, grown) == "playbooks/apply.yml"
    assert portal.apply_playbook(lab, elsewhere) == "deploy.yml", "h2 runs no node yet: its collector must be deployed"
    assert portal.apply_playbook(elsewhere, lab) == "playbooks/apply.yml", "a node removed from h2 leaves nothing new"


def test_a_node_that_does_not_answer_says_whether_it_is_paused_or_stopped() -> None:
    network = parse(LAB, "t.peerlab.yml")[0]
    state = {"nodes": {"n1": node(True, [], container="running"), "n2": node(False, [], container="paused"),
                       "n3": node(False, [], container="exited")}}
    assert [n["status"] for n in portal.network_view(network, state, "v")["nodes"]] == ["up", "paused", "stopped"]
    state["nodes"]["n2"] = node(False, [], container="running")  # its container runs, bitcoind does not answer
    assert portal.network_view(network, state, "v")["nodes"][1]["status"] == "down"


# --- the quick apply's pure parts (images/portal/quick.py); tests/integration/test_portal.py runs it for real


def test_quick_apply_leaves_swarm_networks_and_other_hosts_to_the_playbook() -> None:
    hosts = {"localhost", "h2"}
    lab = parse(LAB, "t.peerlab.yml", known_hosts=hosts)[0]
    assert quick.why_not(lab, "localhost") == ""
    elsewhere = parse({"lab": {**LAB["lab"], "defaults": {"host": "h2"}}}, "t.peerlab.yml", known_hosts=hosts)[0]
    assert quick.why_not(elsewhere, "localhost") == "nodes on h2, not the portal's Docker host localhost"
    faulty = parse({"lab": {**LAB["lab"], "faults": [{"kind": "pause", "node": "n2"}]}}, "t.peerlab.yml", known_hosts=hosts)[0]
    assert quick.why_not(faulty, "localhost") == "", "faults are the engine's to hold, in the quick apply too"


def test_a_jobs_steps_run_once_before_its_playbook_and_a_failing_step_does_not_stop_it(tmp_path: Path) -> None:
    jobs = portal.Jobs(str(tmp_path), ["inv"], [], worker=False)  # the test runs the job
    seen: list[str] = []

    def broken(job: Any) -> None:
        seen.append("web")
        raise RuntimeError("engine gone")

    first = jobs.playbook("apply", "playbooks/apply.yml", before=("lab", lambda job: seen.append("lab")))
    again = jobs.playbook("apply", "playbooks/apply.yml", before=("lab", lambda job: seen.append("lab twice")))
    other = jobs.playbook("apply", "playbooks/apply.yml", before=("web", broken))
    assert first is again is other and list(first.before) == ["lab", "web"], "a waiting apply takes the next edits' steps"
    fake = tmp_path / "ansible-playbook"
    fake.write_text("#!/bin/sh\necho 'PLAY RECAP'\necho 'lab-n1 : ok=3 changed=0 unreachable=0 failed=0'\n")
    fake.chmod(0o755)
    first.command[0] = str(fake)
    jobs.run(first)
    assert seen == ["lab", "web"] and first.state == "ok" and first.changed == 0
    shown = first.summary(lines=1)["output"]
    assert shown == ["RuntimeError: engine gone", "lab-n1 : ok=3 changed=0 unreachable=0 failed=0"], "the steps' words stay on top"
    assert first.summary()["applied"] is None, "no step made the edit: the page waits for the playbook"
    first.applied = (first.started or 0) + 1.5
    assert first.summary()["applied"] == 1.5, "seconds from the job's start until a step made the edit"


def test_the_inventory_is_read_again_for_its_hosts_not_for_a_topology_edit(tmp_path: Path) -> None:
    (tmp_path / "group_vars" / "all").mkdir(parents=True)
    hosts, topology = tmp_path / "01-hosts.yml", tmp_path / "02-topology.peerlab.yml"
    hosts.write_text("all: {hosts: {localhost: {}}}\n")
    topology.write_text("plugin: peerlab.bitcoin.topology\n")
    inventory = portal.Inventory([str(tmp_path)], str(tmp_path))
    before = inventory._stamp()
    topology.write_text("plugin: peerlab.bitcoin.topology\n# an edge more\n")
    (tmp_path / ".02-topology.peerlab.yml.lock").write_text("")
    (tmp_path / ".peerlab-x1y2").write_text("half")
    assert inventory._stamp() == before, "a topology edit (its lock, its temporary file) changes no Docker host"
    (tmp_path / "group_vars" / "all" / "peerlab.yml").write_text("peerlab_monitoring: false\n")
    assert inventory._stamp() != before, "a new variables file is read"
    after = inventory._stamp()
    hosts.write_text("all: {hosts: {localhost: {}, h2: {}}}\n")
    os.utime(hosts, ns=(1, 1))
    assert inventory._stamp() != after, "a changed hosts file is read"


def quick_settings(tmp_path: Path) -> Any:
    run = Settings()
    run = Settings.from_dict({**run.as_dict(), "common": {**run.as_dict()["common"], "secrets_dir": str(tmp_path / "secrets"),
                                                          "state_dir": str(tmp_path / "state")},
                              "network": {**run.as_dict()["network"], "secrets_file": str(tmp_path / "secrets" / "rpc.yml"),
                                          "docker_socket": str(tmp_path / "no.sock")}})
    return quick.Settings.from_config({"root": str(ROOT), "quick": {"docker_host": "localhost", "owner": {"id": "o1", "inventory": "i"},
                                                                    "hosts": {"names": ["localhost"]}, "settings": run.as_dict()}})


def test_quick_apply_says_why_it_leaves_an_edit_to_the_playbook_and_touches_nothing(tmp_path: Path) -> None:
    said: list[str] = []
    settings = quick_settings(tmp_path)
    swarm = parse(LAB, "t.peerlab.yml", known_hosts={"localhost"}, swarm_hosts={"localhost"})[0]
    assert quick.QuickApply(settings, said.append)(swarm, [swarm]) is False
    assert said == ["quick apply: left to the playbook (a Swarm network)"] and list(tmp_path.iterdir()) == []
    lab = parse(LAB, "t.peerlab.yml", known_hosts={"localhost"})[0]
    assert quick.QuickApply(settings, said.append)(lab, [lab]) is False, "no engine at the socket"
    assert said[1].startswith("quick apply: stopped (DockerError: ") and said[1].endswith("the playbook applies the edit")
    assert not (tmp_path / "state").exists(), "nothing was written on the Docker host's side"


def test_quick_apply_waits_for_a_run_only_a_moment_and_says_who_holds_the_lock(tmp_path: Path) -> None:
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._lock import holding

    said: list[str] = []
    lab = parse(LAB, "t.peerlab.yml", known_hosts={"localhost"})[0]
    with holding(str(tmp_path / "secrets" / ".peerlab-run.lock"), "ansible-playbook deploy.yml", 1.0):
        assert quick.QuickApply(quick_settings(tmp_path), said.append, lock_wait=0.2)(lab, [lab]) is False
    assert "left to the playbook (another run holds" in said[0] and "ansible-playbook deploy.yml (process" in said[0]


def test_quick_apply_is_off_without_its_settings() -> None:
    assert quick.Settings.from_config({}) is None
    assert quick.Settings.from_config({"quick": {"docker_host": "localhost"}}) is None


def test_view_shows_the_declared_activity_and_what_the_nodes_hold_now() -> None:
    declared = {"tx_per_second": 2, "block_interval": 5, "fee_rates": [1, 20]}
    network = parse({"lab": {**LAB["lab"], "activity": declared}}, "t.peerlab.yml")[0]
    state = {"nodes": {"n1": node(True, [], mempool={"size": 7, "bytes": 900}), "n2": node(True, [], mempool={"size": 3}, height=9),
                       "n3": node(False, [])}}
    activity = portal.network_view(network, state, "v")["activity"]
    assert activity == {"tx_per_second": 2.0, "block_interval": 5.0, "fee_rates": [1.0, 20.0], "pairs": [], "mempool": 7, "height": 9,
                        "metrics": {"payments": "peerlab.lab.network.activity.payments", "failed": "peerlab.lab.network.activity.failed",
                                    "blocks": "peerlab.lab.network.activity.blocks"}}
    assert portal.network_view(parse(LAB, "t.peerlab.yml")[0], state, "v")["activity"] is None


def test_view_labels_faults_on_links_and_nodes_and_marks_partition_sides() -> None:
    faults = [{"kind": "latency", "from": "n1", "to": "n2", "delay": "100ms", "jitter": "10ms"},
              {"kind": "loss", "from": "n2", "to": "n1", "percent": 5},
              {"kind": "bandwidth", "node": "n3", "rate": "1mbit"}, {"kind": "partition", "groups": [["n1"], ["n2", "n3"]]}]
    view = portal.network_view(parse({"lab": {**LAB["lab"], "faults": faults}}, "t.peerlab.yml")[0], None, "v")
    by_id = {edge["id"]: edge for edge in view["edges"]}
    assert [fault["label"] for fault in by_id["n1|n2"]["faults"]] == ["n1→n2 100 ms ±10", "n2→n1 loss 5%"]
    assert by_id["n2|n3"]["faults"] == [] and by_id["n1|n3"]["faults"] == []
    assert [(node["id"], node["faults"], node["side"]) for node in view["nodes"]] == [("n1", [], 0), ("n2", [], 1), ("n3", ["1mbit"], 1)]
