"""Real Docker, real bitcoind: helpers to run peerlab's playbooks the way a user does."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


@dataclass
class Run:
    rc: int
    output: str

    @property
    def changed(self) -> dict[str, int]:
        return {host: int(changed) for host, _ok, changed, _unreachable, _failed in RECAP.findall(self.output)}

    @property
    def changed_tasks(self) -> list[str]:
        """Names of the tasks that reported a change (once per task), in order."""
        names: list[str] = []
        task = ""
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                task = line[len("TASK ["):].split("]", 1)[0]
            elif line.startswith("changed:") and task and (not names or names[-1] != task):
                names.append(task)
        return names

    @property
    def total_changed(self) -> int:
        return sum(self.changed.values())

    @property
    def changes(self) -> dict[str, list[str]]:
        """What the run changed, per node (or monitoring container, Docker network, file), as its
        "Say what changed, per node" task printed it: `<host>: <name>: <what>`."""
        found: dict[str, list[str]] = {}
        for block in re.split(r"^TASK \[", self.output, flags=re.MULTILINE):
            if not block.startswith("peerlab.bitcoin.engine : Say what changed"):
                continue
            for result in re.split(r"^(?:ok|changed): \[[^\]]+\] => *$", block, flags=re.MULTILINE)[1:]:
                said = yaml.safe_load(result.split("\n\n")[0]) or {}
                for line in said.get("msg") or []:
                    _host, _colon, rest = str(line).partition(": ")
                    name, colon, what = rest.partition(": ")
                    if colon and not name.startswith(("missing images", "Grafana", "kept")):
                        found.setdefault(name, []).append(what)
        return found


def ansible_playbook(playbook: str, inventory: Path, *args: str, timeout: float = 900) -> Run:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{BIN}:{os.environ['PATH']}")
    result = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), playbook, *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=timeout, check=False)
    return Run(result.returncode, result.stdout + result.stderr)


class Lab:
    """A temporary inventory (hosts + topology + secrets dir) and cleanup of what it deployed."""

    def __init__(self, directory: Path, networks: dict[str, Any], settings: dict[str, Any] | None = None) -> None:
        self.directory = directory
        self.inventory = directory / "inventory"
        self.inventory.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "inventories" / "local" / "01-hosts.yml", self.inventory / "01-hosts.yml")
        (self.inventory / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
        # The monitoring stack is off unless a test asks for it with names of its own.
        (self.inventory / "group_vars" / "all" / "peerlab.yml").write_text(yaml.safe_dump(
            {"peerlab_secrets_dir": str(directory / "secrets"), "peerlab_state_dir": str(directory / "state"),
             "peerlab_monitoring": False, **(settings or {})}))
        self.networks = networks
        self.write(networks)

    def write(self, networks: dict[str, Any]) -> None:
        self.networks = networks
        document = {"plugin": "peerlab.bitcoin.topology", "networks": networks}
        self.topology.write_text(yaml.safe_dump(document, sort_keys=False))

    def playbook(self, playbook: str, *args: str) -> Run:
        return ansible_playbook(playbook, self.inventory, *args)

    @property
    def topology(self) -> Path:
        return self.inventory / "02-topology.peerlab.yml"

    @property
    def secrets(self) -> dict[str, Any]:
        return yaml.safe_load((self.directory / "secrets" / "rpc.yml").read_text())


def containers(client: docker.DockerClient, network: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"peerlab.network={network}"})


def remove_network(client: docker.DockerClient, network: str) -> None:
    """Remove every container, volume and Docker network labelled with this Bitcoin network."""
    for container in containers(client, network):
        with contextlib.suppress(docker.errors.NotFound):  # gone meanwhile (a fault holder that ended with its scenario)
            container.remove(force=True, v=True)
    for volume in client.volumes.list(filters={"label": f"peerlab.network={network}"}):
        volume.remove(force=True)
    for docker_network in client.networks.list(filters={"label": f"peerlab.network={network}"}):
        remove_docker_network(docker_network)


def remove_docker_network(docker_network: Any) -> None:
    """Remove a Docker network; one Docker 20.10 keeps for a stale endpoint (nothing attached) stays."""
    try:
        docker_network.remove()
    except docker.errors.APIError as error:
        if "active endpoints" not in str(error.explanation):
            raise


def exec_run(container: Any, command: list[str]) -> Any:
    """`docker exec`, tried again when the runtime itself failed to start the process (runc's
    "OCI runtime exec failed ... read init-p: connection reset by peer", seen now and then under
    load): that says nothing about the node. Any other failure is returned as it is."""
    for _attempt in range(3):
        result = container.exec_run(command)
        if not (result.exit_code == 126 and b"OCI runtime exec failed" in result.output):
            return result
        time.sleep(1)
    return result


def cli(client: docker.DockerClient, container: str, *command: str) -> Any:
    """`docker exec <container> bitcoin-cli <command>` as a user types it; JSON answers are parsed."""
    result = exec_run(client.containers.get(container), ["bitcoin-cli", *command])
    assert result.exit_code == 0, result.output.decode()
    text = result.output.decode().strip()
    return json.loads(text) if text[:1] in ("[", "{") else text


def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@pytest.fixture(scope="session")
def client() -> Iterator[docker.DockerClient]:
    handle = docker.from_env()
    yield handle
    handle.close()


@pytest.fixture
def make_lab(tmp_path: Path, client: docker.DockerClient) -> Iterator[Any]:
    made: list[Lab] = []

    def factory(networks: dict[str, Any]) -> Lab:
        for name in networks:
            remove_network(client, name)
        lab = Lab(tmp_path / f"lab{len(made)}", networks)
        made.append(lab)
        return lab

    yield factory
    for lab in made:
        for name in lab.networks:
            remove_network(client, name)
