# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a Docker engine holds, read once: images, networks, containers, volumes, and on a Swarm
manager its services and tasks. The plan compares a host's desired state with this; the engine's
module reads it on the Docker host itself, the portal through its own socket, and a multi-host run
reads every host first so that a refusal on one stops every host before anything changes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from urllib.parse import quote

from ._docker import Docker, DockerError


@dataclass(frozen=True)
class ContainerFact:
    id: str
    name: str
    image: str
    labels: dict[str, str]
    state: str                    # running, paused, exited, created, restarting, dead
    status: str                   # Docker's words ("Up 3 minutes")
    created: int
    networks: dict[str, str] = field(default_factory=dict)   # Docker network -> this container's address on it
    volumes: tuple[str, ...] = ()                             # the named volumes it mounts

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class NetworkFact:
    name: str
    id: str
    driver: str
    labels: dict[str, str]
    subnets: tuple[str, ...] = ()


@dataclass(frozen=True)
class VolumeFact:
    name: str
    labels: dict[str, str]


@dataclass(frozen=True)
class TaskFact:
    id: str
    service: str                  # the service's name
    state: str                    # running, failed, shutdown, ...
    desired: str
    spec: str                     # the peerlab.spec its container was made with
    message: str = ""             # the task's status message or error
    created: str = ""


@dataclass(frozen=True)
class ServiceFact:
    id: str
    name: str
    version: int
    labels: dict[str, str]
    spec: str                     # peerlab.spec of its tasks' containers
    replicas: int = -1            # -1: a global service


@dataclass(frozen=True)
class EngineFacts:
    images: tuple[str, ...] = ()
    networks: dict[str, NetworkFact] = field(default_factory=dict)
    containers: dict[str, ContainerFact] = field(default_factory=dict)
    volumes: dict[str, VolumeFact] = field(default_factory=dict)
    services: dict[str, ServiceFact] = field(default_factory=dict)
    tasks: tuple[TaskFact, ...] = ()
    root_dir: str = "/var/lib/docker"
    swarm: str = "inactive"
    manager: bool = False
    free_gib: int = -1            # free disk of the engine's data directory (-1: unknown)
    gateways: dict[str, str] = field(default_factory=dict)   # container id -> its address on docker_gwbridge

    def node_containers(self, network: str | None = None) -> list[ContainerFact]:
        """Node containers (standalone, or a Swarm service's tasks), of one network or all."""
        return [found for found in self.containers.values() if found.labels.get("peerlab.role") == "node"
                and (network is None or found.labels.get("peerlab.network") == network)]

    def node_container(self, name: str) -> ContainerFact | None:
        """A node's container: a standalone node's has its name; a Swarm node's tasks carry its
        labels and generated names, the running one counts, else the newest."""
        from ._names import labelled_container

        found = [item for item in self.containers.values()
                 if item.name == name or (item.labels.get("peerlab.role") == "node" and labelled_container(item.labels) == name)]
        found.sort(key=lambda item: (item.name == name, item.state == "running", item.created), reverse=True)
        return found[0] if found else None


def _filters(**values: list[str]) -> str:
    return quote(json.dumps(values), safe="")


def read(docker: Docker) -> EngineFacts:
    """Everything the plan needs from one engine, in a handful of requests."""
    info = docker.request("GET", "/info") or {}
    swarm = info.get("Swarm") or {}
    state = str(swarm.get("LocalNodeState") or "inactive")
    manager = bool(swarm.get("ControlAvailable"))
    images = sorted({tag for image in docker.request("GET", "/images/json") or [] for tag in image.get("RepoTags") or []
                     if tag != "<none>:<none>"})
    networks = {}
    for network in docker.request("GET", "/networks") or []:
        configs = (network.get("IPAM") or {}).get("Config") or []
        networks[network["Name"]] = NetworkFact(network["Name"], network.get("Id", ""), network.get("Driver", ""),
                                                network.get("Labels") or {},
                                                tuple(config["Subnet"] for config in configs if config.get("Subnet")))
    containers = {}
    for entry in docker.request("GET", "/containers/json?all=1") or []:
        name = (entry.get("Names") or ["/"])[0].lstrip("/")
        addresses = {network: settings.get("IPAddress", "") for network, settings
                     in ((entry.get("NetworkSettings") or {}).get("Networks") or {}).items()}
        mounted = tuple(mount["Name"] for mount in entry.get("Mounts") or [] if mount.get("Type") == "volume" and mount.get("Name"))
        containers[name] = ContainerFact(entry.get("Id", ""), name, entry.get("Image", ""), entry.get("Labels") or {},
                                         entry.get("State", ""), entry.get("Status", ""), int(entry.get("Created") or 0), addresses,
                                         mounted)
    volumes = {volume["Name"]: VolumeFact(volume["Name"], volume.get("Labels") or {})
               for volume in (docker.request("GET", "/volumes") or {}).get("Volumes") or []}
    services: dict[str, ServiceFact] = {}
    tasks: list[TaskFact] = []
    if manager:
        names = {}
        for entry in docker.request("GET", f"/services?filters={_filters(label=['peerlab.role'])}") or []:
            spec = entry.get("Spec") or {}
            template = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
            mode = spec.get("Mode") or {}
            replicas = int((mode.get("Replicated") or {}).get("Replicas", 1)) if "Replicated" in mode else -1
            services[spec.get("Name", "")] = ServiceFact(entry.get("ID", ""), spec.get("Name", ""),
                                                         int((entry.get("Version") or {}).get("Index") or 0),
                                                         spec.get("Labels") or {}, (template.get("Labels") or {}).get("peerlab.spec", ""),
                                                         replicas)
            names[entry.get("ID", "")] = spec.get("Name", "")
        if names:
            for entry in docker.request("GET", f"/tasks?filters={_filters(service=sorted(names.values()))}") or []:
                status = entry.get("Status") or {}
                template = ((entry.get("Spec") or {}).get("ContainerSpec") or {})
                tasks.append(TaskFact(entry.get("ID", ""), names.get(entry.get("ServiceID", ""), ""), str(status.get("State", "")),
                                      str(entry.get("DesiredState", "")), (template.get("Labels") or {}).get("peerlab.spec", ""),
                                      str(status.get("Err") or status.get("Message") or ""), str(entry.get("CreatedAt", ""))))
    gateways: dict[str, str] = {}
    if state == "active" and "docker_gwbridge" in networks:
        bridge = docker.request("GET", "/networks/docker_gwbridge") or {}
        gateways = {key: str(value.get("IPv4Address", "")).split("/", maxsplit=1)[0]
                    for key, value in (bridge.get("Containers") or {}).items() if value.get("IPv4Address")}
    root = str(info.get("DockerRootDir") or "/var/lib/docker")
    return EngineFacts(images=tuple(images), networks=networks, containers=containers, volumes=volumes, services=services,
                       tasks=tuple(tasks), root_dir=root, swarm=state, manager=manager, free_gib=free_gib(root),
                       gateways=gateways)


def free_gib(path: str) -> int:
    """Free GiB of the file system holding `path` (-1 when it cannot be seen from here)."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return -1
    return int(stat.f_bavail * stat.f_frsize // 2**30)


def safe_read(docker: Docker) -> tuple[EngineFacts | None, str]:
    """(facts, '') or (None, the engine's refusal in words)."""
    try:
        return read(docker), ""
    except DockerError as error:
        return None, str(error)


def address(facts: EngineFacts, found: ContainerFact, docker_network: str, swarm: bool) -> tuple[str, str]:
    """(the address its peers see, the address its Docker host calls RPC on) of a node's container:
    the same for a standalone container; a Swarm task is reached through its host's
    docker_gwbridge, as an overlay address is not routed from the host."""
    seen = found.networks.get(docker_network, "") or next((ip for ip in found.networks.values() if ip), "")
    if swarm:
        return seen, facts.gateways.get(found.id, "")
    return seen, seen
