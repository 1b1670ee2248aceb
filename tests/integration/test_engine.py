"""A Docker engine restart, on an engine this test starts itself (never the machine's own daemon):
a bare Debian host in a container (images/docker-host) on which deploy.yml installs Docker Engine
(role docker) and carries the images (no registry), reached by Ansible through the Docker API.

Everything comes back by Docker's restart policy with its chain state, and the peer links (which
bitcoind does not persist) from each node's peers file: a re-run then has nothing to change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import docker
import pytest
import yaml

from .conftest import ROOT, Lab, Run, ansible_playbook, exec_run, wait_for

ENGINE = "peerlab-test-engine"
NETWORK = "eng"
NODES = ["a", "b", "c"]
TOPOLOGY = {NETWORK: {"chain": "regtest", "defaults": {"host": "engine", "resources": {"memory": "256m", "cpus": 0.5}},
                      "nodes": [{"name": n} for n in NODES], "edges": [["a", "b"], ["b", "c"], ["c", "a"]]}}
# A bare Debian host (tests/hosts/docker-hosts.yml): deploy.yml installs its engine (group
# peerlab_engines, role docker) and carries the images built on this machine to it.
HOSTS = {"all": {"children": {"peerlab_docker_hosts": {"children": {"peerlab_engines": {"hosts": {"engine": {
    "ansible_connection": "community.docker.docker_api", "ansible_host": ENGINE,
    "ansible_python_interpreter": "/usr/bin/python3"}}}}}}}}


class EngineHost:
    """The Docker host container and `docker ...` inside it."""

    def __init__(self, container: Any) -> None:
        self.container = container

    def docker(self, *command: str) -> str:
        result = exec_run(self.container, ["docker", *command])
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


def hosts(state: str) -> Run:
    """Start (present) or remove (absent) this test's Docker host with tests/hosts/docker-hosts.yml."""
    settings = {"test_hosts_names": ["engine"], "test_hosts_label": "engine", "test_hosts_state": state}
    return ansible_playbook("tests/hosts/docker-hosts.yml", ROOT / "inventories" / "local", "-e", json.dumps(settings))


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, EngineHost]]:
    client = docker.from_env()
    directory = tmp_path_factory.mktemp("engine")
    assert hosts("absent").rc == 0
    started = hosts("present")
    assert started.rc == 0, started.output[-3000:]
    host = EngineHost(client.containers.get(ENGINE))
    try:
        lab = Lab(directory / "lab", TOPOLOGY, {"images_build_host": "localhost",
                                                "images_archive_dir": str(directory / "archives"), "docker_become": False})
        (lab.inventory / "01-hosts.yml").write_text(yaml.safe_dump(HOSTS))
        run = lab.playbook("deploy.yml")
        assert run.rc == 0, run.output[-3000:]
        assert host.answers(), "the docker role installed and started an engine"
        yield lab, host
    finally:
        hosts("absent")
        client.close()


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
    # Each node reads its outbound peers from its peers file at its start: the links come back
    # with no run, and a run then has nothing to change. (Every node starts at once here: one that
    # tried a peer still starting tries again a minute later, bitcoind's pace for added nodes.)
    assert wait_for(lambda: all(host.outbound(node) == 1 for node in NODES), timeout=90), [host.outbound(n) for n in NODES]
    check = lab.playbook("deploy.yml", "--check", "--diff")
    assert check.rc == 0 and check.changes == {}, check.output[-3000:]
    again = lab.playbook("deploy.yml")
    assert again.rc == 0 and again.total_changed == 0 and again.changes == {}, again.output[-3000:]
