"""The portal's pure logic: the network view it draws, the login hash, the CSRF check, the mounts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "images" / "portal"))
import portal

from ansible_collections.peerlab.bitcoin.plugins.filter.portal import portal_login, portal_mounts
from ansible_collections.peerlab.bitcoin.plugins.module_utils._login import check_password, hash_password
from ansible_collections.peerlab.bitcoin.plugins.module_utils._topology import parse

LAB = {"lab": {"chain": "regtest", "generators": [{"type": "ring", "nodes": 3, "prefix": "n"}], "miners": ["n1"]}}


def node(up: bool, peers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"up": up, "fresh": up, "height": 5 if up else None, "peers": peers, **extra}


def test_view_marks_edges_externals_and_undeclared_links() -> None:
    network = parse(LAB, "t.peerlab.yml")[0]  # ring: n1 -> n2, n2 -> n3, n3 -> n1
    foreign = {"addr": "172.18.0.99:41000", "node": None, "inbound": True, "conn_type": "inbound", "subver": "/Satoshi:27.0.0/"}
    state = {"nodes": {
        "n1": node(True, [{"node": "n2", "addr": "lab-n2:18444"}, foreign]),
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


def test_view_shows_links_nobody_declared_and_works_without_the_observer() -> None:
    network = parse(LAB, "t.peerlab.yml")[0]
    state = {"nodes": {"n1": node(True, [{"node": "n3"}]), "n3": node(True, [{"node": "n1"}])}}
    lab4 = parse({"lab": {"chain": "regtest", "nodes": [{"name": "a"}, {"name": "b"}], "edges": []}}, "t.peerlab.yml")[0]
    undeclared = portal.network_view(lab4, {"nodes": {"a": node(True, [{"node": "b"}])}}, "v")["edges"]
    assert undeclared == [{"id": "a|b", "from": "a", "to": "b", "kind": "undeclared", "connected": True}]
    blind = portal.network_view(network, None, "v")
    assert not blind["observed"] and {n["status"] for n in blind["nodes"]} == {"unknown"} and blind["external"] == []
    assert all(not edge["connected"] for edge in blind["edges"])
    seen = {edge["id"]: edge["connected"] for edge in portal.network_view(network, state, "v")["edges"]}
    assert seen == {"n1|n2": False, "n2|n3": False, "n1|n3": True}


def test_login_hash_is_salted_and_checked() -> None:
    stored = portal_login("correct horse", "salt1")
    assert stored.startswith("pbkdf2_sha256$200000$salt1$") and "correct horse" not in stored
    assert check_password("correct horse", stored) and not check_password("correct hors", stored)
    assert portal_login("correct horse", "salt2") != stored
    assert not check_password("x", "plain") and not check_password("x", "md5$1$s$h") and not check_password("x", "pbkdf2_sha256$x$s$h")
    assert hash_password("p", "s", 1000) != hash_password("p", "s", 2000)


def test_csrf_token_must_be_present_and_equal() -> None:
    assert portal.csrf_ok("abc", "abc")
    assert not portal.csrf_ok(None, "abc") and not portal.csrf_ok("", "") and not portal.csrf_ok("abd", "abc")


def test_mounts_show_each_directory_at_its_own_path_once() -> None:
    mounts = portal_mounts(["/work/main", "/work/main/inventories/local/../../.secrets/local", "/work/main/.state/local",
                            "/tmp/lab/inventory", "/tmp/lab/inventory/x", "", "/tmp/lab2"])
    assert [(m["source"], m["target"]) for m in mounts] == [
        ("/tmp/lab/inventory", "/tmp/lab/inventory"), ("/tmp/lab2", "/tmp/lab2"), ("/work/main", "/work/main")]
    assert portal_mounts(["/work/mainly", "/work/main"])[1]["source"] == "/work/mainly", "a prefix of a name is not a parent"


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
