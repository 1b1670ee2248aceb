"""A Docker engine restart, on an engine this test starts itself (never the machine's own daemon):
a Docker host in a container (images/docker-host), reached by Ansible through the Docker API.

Everything comes back by Docker's restart policy with its chain state; the peer links, which
bitcoind does not persist, are restored by a re-run that changes exactly those.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from .conftest import ROOT, Lab, Run, wait_for

ENGINE = "peerlab-test-engine"
NETWORK = "eng"
NODES = ["a", "b", "c"]
TOPOLOGY = {NETWORK: {"chain": "regtest", "defaults": {"host": "engine", "resources": {"memory": "256m", "cpus": 0.5}},
                      "nodes": [{"name": n} for n in NODES], "edges": [["a", "b"], ["b", "c"], ["c", "a"]]}}
# What a Docker engine needs, named one by one: this machine's engine refuses --privileged ("unable
# to apply caps: operation not permitted"), as it cannot grant every capability (docs/environment.md).
CAPABILITIES = ["SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYS_RAWIO", "IPC_LOCK", "SYS_NICE", "DAC_READ_SEARCH",
                "LINUX_IMMUTABLE", "NET_BROADCAST", "IPC_OWNER", "AUDIT_CONTROL", "MAC_ADMIN", "MAC_OVERRIDE", "SYSLOG",
                "LEASE"]
HOSTS = {"all": {"children": {"peerlab_docker_hosts": {"hosts": {"engine": {
    "ansible_connection": "community.docker.docker_api", "ansible_host": ENGINE,
    "ansible_python_interpreter": "/usr/bin/python3"}}}}}}


class EngineHost:
    """The Docker host container and `docker ...` inside it."""

    def __init__(self, container: Any) -> None:
        self.container = container

    def docker(self, *command: str) -> str:
        result = self.container.exec_run(["docker", *command])
        assert result.exit_code == 0, result.output.decode()
        return str(result.output.decode().strip())

    def cli(self, node: str, *command: str) -> Any:
        text = self.docker("exec", f"{NETWORK}-{node}", "bitcoin-cli", *command)
        return json.loads(text) if text[:1] in ("[", "{") else text

    def answers(self) -> bool:
        return self.container.exec_run(["docker", "version"]).exit_code == 0

    def nodes_running(self) -> bool:
        states = self.docker("ps", "-a", "--filter", f"label=peerlab.network={NETWORK}", "--format", "{{.State}}").split()
        return states == ["running"] * len(NODES)

    def outbound(self, node: str) -> int:
        return sum(1 for peer in self.cli(node, "getpeerinfo") if not peer["inbound"])


def tagged(client: docker.DockerClient, repository: str) -> str:
    """A tag of an image of this repository on the machine's engine."""
    for image in client.images.list(name=repository):
        for tag in image.tags:
            return str(tag)
    raise AssertionError(f"no {repository} image: the images playbook should have built it")


def docker_host_image(client: docker.DockerClient) -> str:
    """Build images/docker-host FROM peerlab's base image; the tag is the content's hash."""
    base = tagged(client, "peerlab/base")
    context = ROOT / "images" / "docker-host"
    digest = hashlib.sha256(base.encode())
    for path in sorted(context.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    tag = f"peerlab/docker-host:{digest.hexdigest()[:12]}"
    if not client.images.list(name=tag):
        client.images.build(path=str(context), tag=tag, buildargs={"BASE_IMAGE": base}, rm=True, pull=False)
    return tag


def load_images(client: docker.DockerClient, host: EngineHost, names: list[str], scratch: Path) -> None:
    """No registry: carry the images over as `docker save` archives (what a user does for a far host)."""
    for number, name in enumerate(names):
        archive = scratch / f"image{number}.tar"
        with archive.open("wb") as handle:
            for chunk in client.images.get(name).save(named=True):
                handle.write(chunk)
        wrapped = scratch / f"image{number}.wrapped.tar"
        with tarfile.open(wrapped, "w") as tar:
            tar.add(archive, arcname=archive.name)
        with wrapped.open("rb") as handle:
            assert host.container.put_archive("/tmp", handle)
        host.docker("load", "-i", f"/tmp/{archive.name}")
        host.container.exec_run(["rm", f"/tmp/{archive.name}"])
        archive.unlink()
        wrapped.unlink()


def remove_engine(client: docker.DockerClient) -> None:
    for container in client.containers.list(all=True, filters={"label": "peerlab.test=engine"}):
        container.remove(force=True, v=True)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, EngineHost]]:
    client = docker.from_env()
    remove_engine(client)
    directory = tmp_path_factory.mktemp("engine")
    # The images, built on this machine's engine as `make images` does (a no-op when they exist).
    local = Lab(directory / "local", {NETWORK: dict(TOPOLOGY[NETWORK], defaults={"host": "localhost"})})
    built = local.playbook("playbooks/images.yml", "-e", '{"images_monitoring": false}')
    assert built.rc == 0, built.output[-3000:]
    node_image = tagged(client, "peerlab/bitcoin-node")
    base_image = tagged(client, "peerlab/base")
    container = client.containers.run(
        docker_host_image(client), name=ENGINE, hostname="engine", detach=True, cap_add=CAPABILITIES,
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        labels={"peerlab.test": "engine", "peerlab.role": "docker-host"})
    host = EngineHost(container)
    try:
        assert wait_for(host.answers, timeout=60), container.logs().decode()[-2000:]
        load_images(client, host, [base_image, node_image], directory)
        lab = Lab(directory / "lab", TOPOLOGY)
        (lab.inventory / "01-hosts.yml").write_text(yaml.safe_dump(HOSTS))
        run = lab.playbook("deploy.yml")
        assert run.rc == 0, run.output[-3000:]
        yield lab, host
    finally:
        remove_engine(client)
        client.close()


def changed_hosts(run: Run) -> dict[str, int]:
    return {host: count for host, count in run.changed.items() if count}


def test_the_lab_runs_on_the_engine_in_a_container(deployed: tuple[Lab, EngineHost]) -> None:
    _lab, host = deployed
    assert {host.cli(node, "getblockcount") for node in NODES} == {"101"}
    assert all(host.outbound(node) == 1 for node in NODES)
    labels = json.loads(host.docker("inspect", "--format", "{{json .Config.Labels}}", f"{NETWORK}-a"))
    assert labels["peerlab.role"] == "node" and labels["peerlab.node"] == "a" and labels["peerlab.network"] == NETWORK


def test_an_engine_restart_brings_everything_back_and_a_rerun_relinks(deployed: tuple[Lab, EngineHost]) -> None:
    lab, host = deployed
    tip = host.cli("a", "getbestblockhash")
    host.container.restart(timeout=120)
    assert wait_for(host.answers, timeout=60)
    assert wait_for(host.nodes_running, timeout=60), "the restart policy brings every node back"
    assert wait_for(lambda: host.container.exec_run(
        ["docker", "exec", f"{NETWORK}-c", "bitcoin-cli", "getblockcount"]).exit_code == 0, timeout=120)
    assert {host.cli(node, "getbestblockhash") for node in NODES} == {tip}, "chain state survived"
    assert all(host.outbound(node) == 0 for node in NODES), "bitcoind does not persist addnode links"

    # One links task per network, run once (its change counts on the first node): three links back.
    check = lab.playbook("deploy.yml", "--check", "--diff")
    assert check.rc == 0 and changed_hosts(check) == {f"{NETWORK}-a": 1}, check.output[-3000:]
    assert "+eng-a eng-b:18444 (connected)" in check.output and "+eng-c eng-a:18444 (connected)" in check.output
    assert all(host.outbound(node) == 0 for node in NODES), "check mode relinks nothing"
    repair = lab.playbook("deploy.yml")
    assert repair.rc == 0 and changed_hosts(repair) == {f"{NETWORK}-a": 1}, repair.output[-3000:]
    assert all(host.outbound(node) == 1 for node in NODES)
    again = lab.playbook("deploy.yml")
    assert again.rc == 0 and again.total_changed == 0, again.output[-3000:]
