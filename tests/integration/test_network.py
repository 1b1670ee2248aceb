"""Deploy, re-run, edit, check, apply, tear down: the life of a network, with real bitcoind."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import docker

from .conftest import BIN, cli, containers, wait_for

SMALL = {"drift": {"chain": "regtest",
                   "defaults": {"resources": {"memory": "256m", "cpus": 0.5}},
                   "nodes": [{"name": n} for n in "abcd"],
                   "edges": [["a", "b"], ["b", "c"], ["c", "d"], ["d", "a"], ["a", "c"]]}}


def links(client: docker.DockerClient, network: str) -> set[tuple[str, str]]:
    """Directed links as bitcoind sees them: outbound manual peers of every node, by container name."""
    found = set()
    addresses = {}
    for container in containers(client, network):
        addresses[container.attrs["NetworkSettings"]["Networks"][f"peerlab-{network}"]["IPAddress"]] = container.name
    for container in containers(client, network):
        for peer in cli(client, container.name, "getpeerinfo"):
            host = peer["addr"].rsplit(":", 1)[0]
            if peer["inbound"]:
                found.add((addresses[host], container.name, "in"))
            else:
                assert peer["connection_type"] == "manual"
                found.add((container.name, host, "out"))
    outbound = {(a, b) for a, b, kind in found if kind == "out"}
    inbound = {(a, b) for a, b, kind in found if kind == "in"}
    assert outbound == inbound, "every link must show at both ends"
    return outbound


def expected(networks: dict[str, Any], name: str) -> set[tuple[str, str]]:
    return {(f"{name}-{a}", f"{name}-{b}") for a, b in networks[name]["edges"]}


def test_deploy_rerun_edit_check_apply_teardown(make_lab: Any, client: docker.DockerClient) -> None:
    lab = make_lab(SMALL)
    first = lab.playbook("deploy.yml")
    assert first.rc == 0, first.output[-3000:]
    assert links(client, "drift") == expected(SMALL, "drift")
    tips = {cli(client, c.name, "getbestblockhash") for c in containers(client, "drift")}
    assert len(tips) == 1 and cli(client, "drift-d", "getblockcount") == "101"
    for container in containers(client, "drift"):
        labels = container.labels
        assert labels["peerlab.role"] == "node" and labels["peerlab.network"] == "drift"
        assert labels["peerlab.node"] == container.name.removeprefix("drift-")

    again = lab.playbook("deploy.yml")
    assert again.rc == 0 and again.total_changed == 0 and again.changes == {}, again.output[-3000:]
    # The plays run on Docker hosts; --limit still chooses a node (its Docker host does the work).
    limited = lab.playbook("deploy.yml", "--limit", "drift-b")
    assert limited.rc == 0 and set(limited.changed) == {"localhost"} and limited.total_changed == 0, limited.output[-3000:]

    # A stopped node is drift: check mode names it, start.yml brings it back, deploy re-links.
    stopped = lab.playbook("playbooks/stop.yml", "--limit", "drift-c", "-e", "network_stop_timeout=60")
    assert stopped.rc == 0 and stopped.changes == {"drift-c": ["stopped"]}, stopped.output[-3000:]
    assert not client.containers.get("drift-c").attrs["State"]["Running"]
    assert lab.playbook("playbooks/stop.yml", "--limit", "drift-c").total_changed == 0, "a stopped node is not stopped again"
    drift = lab.playbook("deploy.yml", "--check", "--diff")
    assert drift.rc == 0 and drift.changes["drift-c"][0] == "started: exited", drift.output[-3000:]
    assert "-drift-c: exited" in drift.output and "+drift-c: running" in drift.output, drift.output[-3000:]
    assert not client.containers.get("drift-c").attrs["State"]["Running"], "check mode must not start it"
    started = lab.playbook("playbooks/start.yml", "--limit", "drift", "-e", "network_link_timeout=90")
    assert started.rc == 0 and started.changes["drift-c"] == ["started"], started.output[-3000:]
    assert links(client, "drift") == expected(SMALL, "drift")
    mined = lab.playbook("playbooks/mine.yml", "-e", "blocks=2", "--limit", "drift-b")
    assert mined.rc == 0 and mined.changes == {"drift-b": ["mined 2 blocks (height 103)"]}, mined.output[-3000:]
    assert {cli(client, c.name, "getblockcount") for c in containers(client, "drift")} == {"103"}
    status = lab.playbook("playbooks/status.yml", "--limit", "drift")
    assert status.rc == 0 and status.total_changed == 0
    assert re.search(r"drift-d\s+localhost\s+knots 29.5\s+\S+\s+1\s+1\s+103\s", status.output), status.output[-3000:]

    edited = {"drift": dict(SMALL["drift"], nodes=[{"name": n} for n in "abcde"],
                            edges=[["a", "b"], ["b", "c"], ["c", "d"], ["d", "a"], ["e", "b"]])}
    lab.write(edited)
    check = lab.playbook("deploy.yml", "--check", "--diff")
    assert check.rc == 0, check.output[-3000:]
    # Each change is reported against its node: a new container and its link; a link removed.
    assert {"created: missing", "+drift-b:18444"} <= set(check.changes["drift-e"]), check.output[-3000:]
    assert {"-drift-c:18444", "peers file rewritten"} == set(check.changes["drift-a"]), check.output[-3000:]
    assert set(check.changes) == {"drift-a", "drift-e"}, check.output[-3000:]
    assert links(client, "drift") == expected(SMALL, "drift"), "check mode must not touch anything"
    assert len(containers(client, "drift")) == 4

    applied = lab.playbook("deploy.yml")
    assert applied.rc == 0, applied.output[-3000:]
    assert applied.changes == check.changes, "the run does what check mode said, no more"
    assert links(client, "drift") == expected(edited, "drift")
    assert lab.playbook("deploy.yml").total_changed == 0

    dry = lab.playbook("playbooks/teardown.yml", "--check", "--diff")
    assert dry.rc == 0 and "-drift-e: running" in dry.output and "+drift-e: removed" in dry.output, dry.output[-3000:]
    assert len(containers(client, "drift")) == 5, "check mode must not remove anything"
    down = lab.playbook("playbooks/teardown.yml")
    assert down.rc == 0 and containers(client, "drift") == []
    assert set(down.changes) == {"drift-a", "drift-b", "drift-c", "drift-d", "drift-e", "peerlab-drift"}, down.output[-3000:]
    orphan = lab.playbook("playbooks/start.yml")
    assert orphan.rc != 0 and "drift-a: no such container (deploy.yml makes it)" in orphan.output
    assert {v.name for v in client.volumes.list(filters={"label": "peerlab.network=drift"})} == {
        f"drift-{n}-data" for n in "abcde"}, "teardown keeps chain state unless peerlab_purge"
    redeployed = lab.playbook("deploy.yml")
    assert redeployed.rc == 0 and cli(client, "drift-e", "getblockcount") == "103", "chain state survived"


def test_twenty_node_random_regular_network_agrees_on_the_tip(make_lab: Any, client: docker.DockerClient) -> None:
    networks = {"rr": {"chain": "regtest", "defaults": {"resources": {"memory": "256m", "cpus": 0.5}},
                       "generators": [{"type": "random-regular", "nodes": 20, "degree": 4, "seed": 7, "prefix": "n"}]}}
    lab = make_lab(networks)
    run = lab.playbook("deploy.yml")
    assert run.rc == 0, run.output[-3000:]
    nodes = [f"rr-n{i}" for i in range(1, 21)]
    tips = {cli(client, node, "getbestblockhash") for node in nodes}
    assert len(tips) == 1
    assert all(len(cli(client, node, "getpeerinfo")) == 4 for node in nodes), "degree 4 everywhere"
    # A block mined on the last node reaches all twenty.
    cli(client, "rr-n20", "createwallet", "probe")
    address = cli(client, "rr-n20", "getnewaddress")
    (block,) = cli(client, "rr-n20", "generatetoaddress", "1", address)
    assert wait_for(lambda: all(cli(client, node, "getbestblockhash") == block for node in nodes), timeout=60)

    # A container peerlab did not make still uses one node's volume: the purge removes everything
    # else, keeps that container, and fails naming the volume; once it is gone, a purge ends it.
    stranger = client.containers.create(_node_image(client, "rr-n1"), command="true",
                                        name="peerlab-test-stranger", labels={"peerlab.test": "stranger"},
                                        volumes={"rr-n3-data": {"bind": "/data", "mode": "ro"}})
    try:
        purge = lab.playbook("playbooks/teardown.yml", "-e", "peerlab_purge=true")
        assert purge.rc != 0 and "volume rr-n3-data" in purge.output and "in use" in purge.output, purge.output[-3000:]
        assert containers(client, "rr") == []
        assert [v.name for v in client.volumes.list(filters={"label": "peerlab.network=rr"})] == ["rr-n3-data"]
        assert client.containers.get("peerlab-test-stranger").id == stranger.id
    finally:
        stranger.remove(force=True, v=True)  # its image declares a volume: the anonymous one goes with it
    purge = lab.playbook("playbooks/teardown.yml", "-e", "peerlab_purge=true")
    assert purge.rc == 0, purge.output[-3000:]
    assert containers(client, "rr") == [] and client.volumes.list(filters={"label": "peerlab.network=rr"}) == []


def _node_image(client: docker.DockerClient, name: str) -> str:
    return str(client.containers.get(name).image.id)


def test_secrets_file_stays_vault_encrypted(make_lab: Any, client: docker.DockerClient) -> None:
    networks = {"vault": {"chain": "regtest", "nodes": [{"name": "a"}, {"name": "b"}], "edges": [["a", "b"]]}}
    lab = make_lab(networks)
    assert lab.playbook("deploy.yml").rc == 0
    secrets = lab.directory / "secrets" / "rpc.yml"
    password_file = lab.directory / "vault-password"
    password_file.write_text("test-only vault password\n")
    vault = ["--vault-password-file", str(password_file)]
    encrypt = subprocess.run([str(BIN / "ansible-vault"), "encrypt", *vault, str(secrets)], capture_output=True, text=True,
                             check=False)
    assert encrypt.returncode == 0, encrypt.stderr
    secrets.chmod(0o600)
    lab.write({"vault": dict(networks["vault"], nodes=[{"name": n} for n in "abc"], edges=[["a", "b"], ["c", "a"]])})
    grown = lab.playbook("deploy.yml", *vault)
    assert grown.rc == 0, grown.output[-3000:]
    assert set(grown.changes) == {"vault-c"}, "existing nodes keep their credentials (and their containers)"
    text = secrets.read_text()
    assert text.startswith("$ANSIBLE_VAULT;") and "password" not in text
    assert oct(secrets.stat().st_mode & 0o777) == "0o600"
    assert lab.playbook("deploy.yml", *vault).total_changed == 0


def test_public_chain_deploy_verifies_links_and_reports_sync_progress(make_lab: Any, client: docker.DockerClient) -> None:
    """Signet nodes in initial sync (offline here) have no tip to agree on: deploy verifies links, reports progress."""
    networks = {"sig": {"chain": "signet", "nodes": [{"name": "a"}, {"name": "b"}], "edges": [["a", "b"]]}}
    lab = make_lab(networks)
    run = lab.playbook("deploy.yml")
    assert run.rc == 0, run.output[-3000:]
    said = " ".join(run.output.split())
    assert "% verified, initial sync" in said and "headers 0" in said, said[-3000:]
    assert [peer["addr"].split(":")[1] for peer in cli(client, "sig-a", "getpeerinfo")] == ["38333"], "a -> b on signet's port"
    assert len(cli(client, "sig-b", "getpeerinfo")) == 1
    assert lab.playbook("deploy.yml").total_changed == 0
    assert lab.playbook("playbooks/teardown.yml", "-e", "peerlab_purge=true").rc == 0
