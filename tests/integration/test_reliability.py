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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from .conftest import Lab, Run, cli, containers, remove_network, wait_for
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


def changed_hosts(run: Run) -> dict[str, int]:
    return {host: count for host, count in run.changed.items() if count}


def check_then_repair(lab: Lab, client: docker.DockerClient, drifted: dict[str, int]) -> None:
    """--check --diff reports exactly the drift and changes nothing; a re-run repairs just that.

    The one containers task per Docker host and the one links task per network run once and count
    on the network's first node (fault-a), whichever containers and links they restored.
    """
    state = {c.name: (c.id, c.status) for c in containers(client, NETWORK)}
    check = lab.playbook("deploy.yml", "--check", "--diff")
    assert check.rc == 0, check.output[-3000:]
    assert changed_hosts(check) == drifted, check.changed_tasks
    assert {c.name: (c.id, c.status) for c in containers(client, NETWORK)} == state, "check mode touched a container"
    repair = lab.playbook("deploy.yml")
    assert repair.rc == 0, repair.output[-3000:]
    assert changed_hosts(repair) == drifted, repair.changed_tasks
    healthy(client)
    again = lab.playbook("deploy.yml")
    assert again.rc == 0 and again.total_changed == 0, again.output[-3000:]


def test_a_killed_node_is_drift_and_a_rerun_starts_it(lab: Lab, client: docker.DockerClient) -> None:
    # docker kill counts as a manual stop: the restart policy leaves the node down.
    client.containers.get("fault-a").kill()
    assert wait_for(lambda: client.containers.get("fault-a").status == "exited", timeout=30)
    check_then_repair(lab, client, {"fault-a": 2})


def test_a_stopped_node_is_drift_and_a_rerun_starts_it(lab: Lab, client: docker.DockerClient) -> None:
    client.containers.get("fault-b").stop(timeout=60)
    check_then_repair(lab, client, {"fault-a": 2})


def test_a_removed_container_comes_back_with_its_chain_and_wallet(lab: Lab, client: docker.DockerClient) -> None:
    cli(client, "fault-c", "createwallet", "keep")
    address = cli(client, "fault-c", "-rpcwallet=keep", "getnewaddress")
    cli(client, "fault-c", "generatetoaddress", "3", address)
    tip = cli(client, "fault-c", "getbestblockhash")
    assert wait_for(lambda: {cli(client, f"fault-{n}", "getbestblockhash") for n in "abcd"} == {tip}, timeout=60)
    client.containers.get("fault-c").remove(force=True)  # the volume stays
    check_then_repair(lab, client, {"fault-a": 2})
    assert cli(client, "fault-c", "getbestblockhash") == tip
    cli(client, "fault-c", "loadwallet", "keep")
    assert cli(client, "fault-c", "-rpcwallet=keep", "getaddressinfo", address)["ismine"] is True


def test_a_removed_peer_link_is_drift_and_a_rerun_relinks(lab: Lab, client: docker.DockerClient) -> None:
    # d initiates d -> a: drop it the two ways an operator would.
    cli(client, "fault-d", "addnode", "fault-a:18444", "remove")
    cli(client, "fault-d", "disconnectnode", "fault-a:18444")
    assert wait_for(lambda: not any(not p["inbound"] for p in cli(client, "fault-d", "getpeerinfo")), timeout=30)
    check_then_repair(lab, client, {"fault-a": 1})


def test_a_crashed_bitcoind_is_restarted_by_docker(lab: Lab, client: docker.DockerClient) -> None:
    before = client.containers.get("fault-b")
    pid = before.attrs["State"]["Pid"]
    assert pid > 0, "fault-b must be running"  # os.kill(0, ...) would signal this test's own process group
    os.kill(pid, signal.SIGKILL)  # a crash, not a stop: the restart policy applies
    assert wait_for(lambda: client.containers.get("fault-b").attrs["RestartCount"] == 1, timeout=60)
    assert wait_for(lambda: client.containers.get("fault-b").exec_run(["bitcoin-cli", "getblockcount"]).exit_code == 0,
                    timeout=120)
    # Links b initiated are the deployment's to restore; c's link to b comes back on its own.
    assert wait_for(lambda: any(p["inbound"] for p in cli(client, "fault-b", "getpeerinfo")), timeout=150)
    repair = lab.playbook("deploy.yml")
    assert repair.rc == 0 and changed_hosts(repair) == {"fault-a": 1}, repair.output[-3000:]
    healthy(client)


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


# A node made again: its container, then its links (the links step, and sometimes the tip check,
# when a peer's connection to the new container came back between the two); nothing else.
REMADE = "peerlab.bitcoin.network : Run every Docker host's node containers in one run (create, start, remake on changed settings)"
RELINKED = {"peerlab.bitcoin.network : Link every node and verify each link from both ends",
            "peerlab.bitcoin.network : Wait until every node has its network's tip (regtest) and verify every link"}


def resettled(run: Run) -> bool:
    return set(changed_hosts(run)) == {"fault-a"} and REMADE in run.changed_tasks and set(run.changed_tasks) <= {REMADE, *RELINKED}


def test_changed_settings_keep_the_chain(lab: Lab, client: docker.DockerClient) -> None:
    tip = cli(client, "fault-a", "getbestblockhash")
    before = client.containers.get("fault-a").id
    lab.write({NETWORK: dict(TOPOLOGY[NETWORK], nodes=[{"name": "a", "conf": {"maxmempool": 60}}, *TOPOLOGY[NETWORK]["nodes"][1:]])})
    run = lab.playbook("deploy.yml")
    assert run.rc == 0 and resettled(run), run.changed_tasks
    assert client.containers.get("fault-a").id != before
    assert cli(client, "fault-a", "getmempoolinfo")["maxmempool"] == 60_000_000
    assert cli(client, "fault-a", "getbestblockhash") == tip, "the new container found the old chain"
    lab.write(TOPOLOGY)
    back = lab.playbook("deploy.yml")
    assert back.rc == 0 and resettled(back), back.changed_tasks


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
