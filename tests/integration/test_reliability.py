"""Drift and faults on a live network: --check --diff names what drifted, a re-run repairs exactly
that, and nothing a user cares about (chain state, wallets, strangers' containers) is lost.

Every case runs on one 4-node ring and leaves it healthy for the next; docs/reliability.md lists
them with what happens.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from .conftest import Lab, cli, containers, remove_network, wait_for
from .test_network import expected, links

NETWORK = "fault"
TOPOLOGY: dict[str, Any] = {NETWORK: {
    "chain": "regtest", "defaults": {"resources": {"memory": "256m", "cpus": 0.5}},
    "nodes": [{"name": n} for n in "abcd"], "edges": [["a", "b"], ["b", "c"], ["c", "d"], ["d", "a"]]}}
STRANGER = "fault-stranger"


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    handle = docker.from_env()
    yield handle
    handle.close()


def remove_stranger(client: docker.DockerClient) -> None:
    for container in client.containers.list(all=True, filters={"label": "peerlab.test=stranger"}):
        container.remove(force=True, v=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, client: docker.DockerClient) -> Iterator[Lab]:
    remove_stranger(client)
    remove_network(client, NETWORK)
    made = Lab(tmp_path_factory.mktemp("reliability"), TOPOLOGY)
    deployed = made.playbook("deploy.yml")
    assert deployed.rc == 0, deployed.output[-3000:]
    try:
        yield made
    finally:
        remove_stranger(client)
        remove_network(client, NETWORK)


def healthy(client: docker.DockerClient) -> None:
    assert links(client, NETWORK) == expected(TOPOLOGY, NETWORK)
    assert len({cli(client, f"{NETWORK}-{n}", "getbestblockhash") for n in "abcd"}) == 1


def about(changes: dict[str, list[str]], node: str) -> bool:
    """Whether every change of a run concerns `node`: its own, or another node's link to it."""
    return node in changes and all(name == node or all(node in what for what in whats) for name, whats in changes.items())


def check_then_repair(lab: Lab, client: docker.DockerClient, node: str, first: str) -> None:
    """--check --diff reports exactly the drift, against the node that drifted, and changes nothing;
    a re-run repairs just that and says the same; a third run changes nothing."""
    state = {c.name: (c.id, c.status) for c in containers(client, NETWORK)}
    check = lab.playbook("deploy.yml", "--check", "--diff")
    assert check.rc == 0, check.output[-3000:]
    assert about(check.changes, node) and check.changes[node][0].startswith(first), check.changes
    assert {c.name: (c.id, c.status) for c in containers(client, NETWORK)} == state, "check mode touched a container"
    repair = lab.playbook("deploy.yml")
    assert repair.rc == 0, repair.output[-3000:]
    assert about(repair.changes, node) and repair.changes[node][0].startswith(first), repair.changes
    healthy(client)
    again = lab.playbook("deploy.yml")
    assert again.rc == 0 and again.total_changed == 0 and again.changes == {}, again.output[-3000:]


def test_a_killed_node_is_drift_and_a_rerun_starts_it(lab: Lab, client: docker.DockerClient) -> None:
    # docker kill counts as a manual stop: the restart policy leaves the node down.
    client.containers.get("fault-a").kill()
    assert wait_for(lambda: client.containers.get("fault-a").status == "exited", timeout=30)
    check_then_repair(lab, client, "fault-a", "started: exited")


def test_a_stopped_node_is_drift_and_a_rerun_starts_it(lab: Lab, client: docker.DockerClient) -> None:
    client.containers.get("fault-b").stop(timeout=60)
    check_then_repair(lab, client, "fault-b", "started: exited")


def test_a_removed_container_comes_back_with_its_chain_and_wallet(lab: Lab, client: docker.DockerClient) -> None:
    cli(client, "fault-c", "createwallet", "keep")
    address = cli(client, "fault-c", "-rpcwallet=keep", "getnewaddress")
    cli(client, "fault-c", "generatetoaddress", "3", address)
    tip = cli(client, "fault-c", "getbestblockhash")
    assert wait_for(lambda: {cli(client, f"fault-{n}", "getbestblockhash") for n in "abcd"} == {tip}, timeout=60)
    client.containers.get("fault-c").remove(force=True)  # the volume stays
    check_then_repair(lab, client, "fault-c", "created: missing")
    assert cli(client, "fault-c", "getbestblockhash") == tip
    cli(client, "fault-c", "loadwallet", "keep")
    assert cli(client, "fault-c", "-rpcwallet=keep", "getaddressinfo", address)["ismine"] is True


def test_a_removed_peer_link_is_drift_and_a_rerun_relinks(lab: Lab, client: docker.DockerClient) -> None:
    # d initiates d -> a: drop it the two ways an operator would.
    cli(client, "fault-d", "addnode", "fault-a:18444", "remove")
    cli(client, "fault-d", "disconnectnode", "fault-a:18444")
    assert wait_for(lambda: not any(not p["inbound"] for p in cli(client, "fault-d", "getpeerinfo")), timeout=30)
    check_then_repair(lab, client, "fault-d", "+fault-a:18444")


def test_a_crashed_bitcoind_relinks_itself_and_the_next_run_changes_nothing(lab: Lab, client: docker.DockerClient) -> None:
    before = client.containers.get("fault-b")
    pid = before.attrs["State"]["Pid"]
    assert pid > 0, "fault-b must be running"  # os.kill(0, ...) would signal this test's own process group
    os.kill(pid, signal.SIGKILL)  # a crash, not a stop: the restart policy applies
    crashed = time.monotonic()
    assert wait_for(lambda: client.containers.get("fault-b").attrs["RestartCount"] == 1, timeout=60)
    # Its own outbound link (b -> c) comes back with no run: it reads its peers file at its start.
    assert wait_for(lambda: outbound(client, "fault-b") == {"fault-c:18444"}, timeout=30, interval=0.2), outbound(client, "fault-b")
    relinked = time.monotonic() - crashed
    assert relinked < 30, f"relinked after {relinked:.1f} s"
    # a -> b is a's: bitcoind tries an added node again about once a minute; the run need not.
    assert wait_for(lambda: any(p["inbound"] for p in cli(client, "fault-b", "getpeerinfo")), timeout=150)
    repair = lab.playbook("deploy.yml")
    assert repair.rc == 0 and repair.total_changed == 0 and repair.changes == {}, repair.output[-3000:]
    healthy(client)


def outbound(client: docker.DockerClient, node: str) -> set[str]:
    try:
        return {p["addr"] for p in cli(client, node, "getpeerinfo") if not p["inbound"]}
    except AssertionError:
        return set()  # still starting


def test_a_stranger_on_the_network_is_left_alone(lab: Lab, client: docker.DockerClient) -> None:
    image = client.containers.get("fault-a").image
    stranger = client.containers.run(image, ["sleep", "infinity"], entrypoint=[], name=STRANGER, detach=True,
                                     network=f"peerlab-{NETWORK}", labels={"peerlab.test": "stranger"})
    run = lab.playbook("deploy.yml")
    assert run.rc == 0 and run.total_changed == 0, run.output[-3000:]
    check = lab.playbook("deploy.yml", "--check", "--diff")
    assert check.rc == 0 and check.total_changed == 0, check.output[-3000:]
    stranger.reload()
    assert stranger.status == "running" and f"peerlab-{NETWORK}" in stranger.attrs["NetworkSettings"]["Networks"]


def test_changed_settings_keep_the_chain(lab: Lab, client: docker.DockerClient) -> None:
    tip = cli(client, "fault-a", "getbestblockhash")
    before = client.containers.get("fault-a").id
    lab.write({NETWORK: dict(TOPOLOGY[NETWORK], nodes=[{"name": "a", "conf": {"maxmempool": 60}}, *TOPOLOGY[NETWORK]["nodes"][1:]])})
    run = lab.playbook("deploy.yml")
    assert run.rc == 0 and about(run.changes, "fault-a") and run.changes["fault-a"][0].startswith("made again: settings changed")
    assert client.containers.get("fault-a").id != before
    assert cli(client, "fault-a", "getmempoolinfo")["maxmempool"] == 60_000_000
    assert cli(client, "fault-a", "getbestblockhash") == tip, "the new container found the old chain"
    lab.write(TOPOLOGY)
    back = lab.playbook("deploy.yml")
    assert back.rc == 0 and about(back.changes, "fault-a") and back.changes["fault-a"][0].startswith("made again"), back.changes


def test_a_hung_node_fails_the_run_with_a_clear_error(lab: Lab, client: docker.DockerClient) -> None:
    # bitcoind stopped by SIGSTOP from outside its namespace: RPC connects but never answers, and the
    # container still looks running. (A paused container is a state deploy.yml manages: it unpauses
    # one the topology does not declare paused.)
    client.containers.get("fault-d").kill(signal="SIGSTOP")
    try:
        run = lab.playbook("deploy.yml", "-e", "network_rpc_timeout=20")  # a hang would hit the run's own timeout
        said = " ".join(run.output.split())
        assert run.rc != 0
        assert "fault-d: getblockchaininfo on" in said and "no answer within 30s (node hung or overloaded)" in said, said[-3000:]
    finally:
        client.containers.get("fault-d").kill(signal="SIGCONT")
    repaired = lab.playbook("deploy.yml")
    assert repaired.rc == 0, repaired.output[-3000:]
    healthy(client)


def test_teardown_leaves_a_strangers_network_and_keeps_volumes(lab: Lab, client: docker.DockerClient) -> None:
    down = lab.playbook("playbooks/teardown.yml")
    assert down.rc == 0, down.output[-3000:]
    assert containers(client, NETWORK) == []
    assert client.containers.get(STRANGER).status == "running", "teardown must not touch a stranger"
    assert client.networks.get(f"peerlab-{NETWORK}"), "the network stays while a stranger uses it"
    assert f"peerlab-{NETWORK} kept: {STRANGER} still uses it" in " ".join(down.output.split())
    assert {v.name for v in client.volumes.list(filters={"label": f"peerlab.network={NETWORK}"})} == {
        f"fault-{n}-data" for n in "abcd"}


@pytest.fixture
def small_disk(tmp_path: Path, client: docker.DockerClient) -> Iterator[str]:
    """A Docker volume on a 64 MiB ext4 file system with 11 MiB free (a loop device)."""
    if not Path("/dev/loop-control").exists() or shutil.which("losetup") is None or shutil.which("mkfs.ext4") is None:
        pytest.skip("needs loop devices, losetup and mkfs.ext4 to make a small file system")
    content = tmp_path / "content"
    content.mkdir()
    (content / "ballast").write_bytes(b"\0" * 40 * 2**20)
    image = tmp_path / "small.ext4"
    subprocess.run(["truncate", "-s", "64M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(content), str(image)], check=True)
    device = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True, check=False)
    if device.returncode != 0:
        pytest.skip(f"losetup refused: {device.stderr.strip()}")
    loop = device.stdout.strip()
    try:
        client.volumes.create("full-a-data", driver="local", driver_opts={"type": "ext4", "device": loop},
                              labels={"peerlab.network": "full", "peerlab.node": "a", "peerlab.role": "node-data"})
        node_image = client.images.list(name="peerlab/bitcoin-node")[0]
        helper = client.containers.run(node_image.id, ["1777", "/data"], entrypoint=["chmod"], user="root", detach=True,
                                       volumes={"full-a-data": {"bind": "/data", "mode": "rw"}},
                                       labels={"peerlab.network": "full"})
        helper.wait()
        helper.remove(v=True)
        yield loop
    finally:
        remove_network(client, "full")
        subprocess.run(["losetup", "-d", loop], check=False)


def test_a_full_volume_fails_its_node_by_name_and_the_others_run(small_disk: str, tmp_path: Path,
                                                                 client: docker.DockerClient) -> None:
    lab = Lab(tmp_path / "full", {"full": {"chain": "regtest", "defaults": {"resources": {"memory": "256m", "cpus": 0.5}},
                                           "nodes": [{"name": "a"}, {"name": "b"}], "edges": [["b", "a"]]}})
    run = lab.playbook("deploy.yml", "-e", "network_rpc_timeout=30")
    said = " ".join(run.output.split())
    assert run.rc != 0
    assert "full-a on localhost is not running (Restarting" in said, said[-3000:]
    reason = said[said.find("full-a on localhost"):][:800]
    assert "bitcoind logged: A fatal internal error occurred, see debug.log for details: Disk space is too low!" in said, reason
    assert "full-b on localhost is not running" not in said
    assert cli(client, "full-b", "getblockcount") == "0", "the other node runs and answers"
