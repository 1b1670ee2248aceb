# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One Docker host's plan: its desired state (`_spec.HostSpec`) against what its engine holds
(`_facts.EngineFacts`): what to create, make again, start or remove, and why; and every reason to
refuse before anything changes (an object of the same name that peerlab did not make or that
another inventory owns, missing images, no disk for unpruned nodes).

Pure: the engine module and the portal apply it (`_apply.py`); unit tests check it alone.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from . import _names
from ._facts import EngineFacts
from ._spec import OVERLAY_POOL, ContainerSpec, HostSpec, NetworkSpec, ServiceSpec

# Swarm labels the containers of its services' tasks; such a container is never removed directly.
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"


@dataclass(frozen=True)
class Step:
    action: str          # create, recreate, start, update, remove, none
    name: str            # the container, service or network
    why: str
    node: str = ""       # the node container it concerns ('' for the monitoring stack)


@dataclass
class HostPlan:
    refusals: list[str] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)
    networks: list[tuple[NetworkSpec, str]] = field(default_factory=list)      # to create, with the subnet chosen
    removals: list[Step] = field(default_factory=list)                         # containers and services that left the topology
    containers: list[tuple[ContainerSpec, Step]] = field(default_factory=list)
    services: list[tuple[ServiceSpec, Step]] = field(default_factory=list)

    @property
    def changes(self) -> list[Step]:
        return [step for _spec, step in self.containers + self.services if step.action != "none"] + self.removals


def owner_problem(kind: str, name: str, labels: dict[str, str] | None, owner_id: str, host: str) -> str:
    """Why an object found under a name this run wants must not be touched ('' when it is ours).
    An object with peerlab's role label and no owner label was made before owners were recorded:
    the inventory that deploys it first takes it."""
    labels = labels or {}
    # An image's labels reach its containers (peerlab's base image says peerlab.role=base): only the
    # roles peerlab gives what it makes count.
    if _names.OWNER not in labels and labels.get(_names.ROLE) not in _names.MADE_ROLES:
        return (f"{kind} {name} exists on {host} and peerlab did not make it (no {_names.OWNER} label, nor a "
                f"{_names.ROLE} peerlab gives): peerlab will not replace or remove it; rename or remove it yourself, or choose "
                "another network name")
    found = labels.get(_names.OWNER)
    if found and found != owner_id:
        inventory = labels.get(_names.INVENTORY) or "another inventory"
        return (f"{kind} {name} on {host} belongs to the inventory at {inventory} ({_names.OWNER}={found}), not this one "
                f"({owner_id}): each inventory acts only on what it made; give this network another name, "
                "or tear it down from that inventory")
    return ""


def container_step(spec: ContainerSpec, found: object, compare: str) -> Step:
    """What one container needs: create (missing), recreate (made from other settings), start
    (stopped), or nothing. A paused container is the faults step's to unpause."""
    node = spec.node
    if found is None:
        return Step("create", spec.name, "missing", node)
    labels = getattr(found, "labels", {}) or {}
    state = getattr(found, "state", "")
    have = labels.get(_names.SPEC)
    if have != spec.spec:
        return Step("recreate", spec.name, f"settings changed (spec {have or '-'} -> {spec.spec})", node)
    if compare == "full":
        return Step("compare", spec.name, "compare: full", node)
    if state not in ("running", "paused", "restarting"):
        return Step("start", spec.name, state or "stopped", node)
    return Step("none", spec.name, "running, up to date", node)


def service_step(spec: ServiceSpec, found: object) -> Step:
    if found is None:
        return Step("create", spec.name, "missing", spec.node)
    have = getattr(found, "spec", "")
    if have != spec.spec:
        return Step("update", spec.name, f"settings changed (spec {have or '-'} -> {spec.spec})", spec.node)
    if getattr(found, "replicas", -1) == 0:
        return Step("update", spec.name, "scaled to no task (stopped)", spec.node)
    return Step("none", spec.name, "up to date", spec.node)


def free_subnet(prefix: str, taken: list[str], pool: str = OVERLAY_POOL) -> str:
    """The first block of size `prefix` ('/22') in `pool` that overlaps none of the `taken` subnets."""
    length = int(prefix.lstrip("/"))
    used = [ipaddress.ip_network(subnet, strict=False) for subnet in taken if subnet]
    for candidate in ipaddress.ip_network(pool).subnets(new_prefix=length):
        if not any(candidate.overlaps(other) for other in used):
            return str(candidate)
    raise ValueError(f"no free {prefix} left in {pool}: remove unused networks")


def plan(spec: HostSpec, facts: EngineFacts) -> HostPlan:
    """The host's plan. Refusals come first: when there is any, nothing else is meant to happen."""
    result = HostPlan()
    host, owner = spec.host, spec.owner.id

    def refuse(kind: str, name: str, labels: dict[str, str] | None) -> bool:
        problem = owner_problem(kind, name, labels, owner, host)
        if problem:
            result.refusals.append(problem)
        return bool(problem)

    for network in spec.docker_networks:
        made = facts.networks.get(network.name)
        if made is not None:
            refuse("Docker network", network.name, made.labels)
            continue
        subnet = network.subnet
        if subnet.startswith("/"):
            try:
                subnet = free_subnet(subnet, [item for other in facts.networks.values() for item in other.subnets])
            except ValueError as error:
                result.refusals.append(f"Docker network {network.name}: {error}")
                continue
        result.networks.append((network, subnet))
    for container in spec.containers:
        found = facts.containers.get(container.name)
        if found is not None and refuse("container", container.name, found.labels):
            continue
        for mount in container.mounts:
            volume = facts.volumes.get(mount.source) if mount.type == "volume" else None
            if volume is not None:
                refuse("volume", mount.source, volume.labels)
        result.containers.append((container, container_step(container, found, spec.engine.compare)))
    for node in spec.nodes:
        holder = facts.containers.get(_names.fault_holder(node.container))
        if holder is not None:
            refuse("container", holder.name, holder.labels)
        if node.swarm:
            volume = facts.volumes.get(_names.data_volume(node.container))
            if volume is not None:
                refuse("volume", volume.name, volume.labels)
    for service in spec.services:
        found_service = facts.services.get(service.name)
        if found_service is not None and refuse("Swarm service", service.name, found_service.labels):
            continue
        result.services.append((service, service_step(service, found_service)))
    result.removals = stale(spec, facts)
    result.missing_images = sorted(set(spec.images) - set(facts.images))
    result.refusals += room(spec, facts)
    return result


def stale(spec: HostSpec, facts: EngineFacts) -> list[Step]:
    """Node containers and services this owner made here that left the topology: those of a network
    this run acts on that its topology no longer lists, and (on a run of the whole inventory) those of
    networks no longer in it. Their volumes stay."""
    steps = []
    for network in spec.networks:
        if not network.keep:
            continue
        for found in facts.node_containers(network.name):
            if found.name not in network.keep and SWARM_SERVICE_LABEL not in found.labels and _ours(found.labels, spec.owner.id):
                steps.append(Step("remove", found.name, f"not in network {network.name}'s topology", found.name))
        for service in facts.services.values():
            if (service.labels.get(_names.NETWORK) == network.name and service.labels.get(_names.ROLE) == "node"
                    and service.name not in network.keep and _ours(service.labels, spec.owner.id)):
                steps.append(Step("remove", service.name, f"not in network {network.name}'s topology", service.name))
    # A network's activity container that its topology no longer declares.
    wanted = {container.name for container in spec.containers}
    acted = {network.name for network in spec.networks}
    for found in facts.containers.values():
        if found.labels.get(_names.ROLE) != "activity" or found.name in wanted or not _ours(found.labels, spec.owner.id):
            continue
        gone = found.labels.get(_names.NETWORK, "")
        if gone in acted:
            steps.append(Step("remove", found.name, f"network {gone}'s topology has no activity", found.name))
        elif spec.whole and gone not in spec.owned_networks:
            steps.append(Step("remove", found.name, f"its network {gone} is no longer in the topology", found.name))
    if spec.whole:
        kept = set(spec.owned_networks)
        for found in facts.node_containers():
            gone = found.labels.get(_names.NETWORK, "")
            if gone not in kept and found.labels.get(_names.OWNER) == spec.owner.id and SWARM_SERVICE_LABEL not in found.labels:
                steps.append(Step("remove", found.name, f"its network {gone} is no longer in the topology", found.name))
        for service in facts.services.values():
            gone = service.labels.get(_names.NETWORK, "")
            if service.labels.get(_names.ROLE) == "node" and gone not in kept and service.labels.get(_names.OWNER) == spec.owner.id:
                steps.append(Step("remove", service.name, f"its network {gone} is no longer in the topology", service.name))
    return steps


def _ours(labels: dict[str, str], owner: str) -> bool:
    return labels.get(_names.OWNER) in (None, "", owner)


def room(spec: HostSpec, facts: EngineFacts) -> list[str]:
    """Unpruned public-chain nodes need hundreds of GiB: refuse new ones the Docker host has no room
    for, rather than fail days into the initial block download. A node whose volume exists already
    holds its chain (or part of it): only new nodes claim room."""
    if not spec.engine.disk_check or not spec.disk_needs or facts.free_gib < 0:
        return []
    new = {name: gib for name, gib in spec.disk_needs.items() if _names.data_volume(name) not in facts.volumes}
    need = sum(new.values())
    if not new or need <= facts.free_gib:
        return []
    listed = ", ".join(f"{name} (about {gib} GiB)" for name, gib in sorted(new.items()))
    return [f"Not enough disk on {spec.host} for unpruned nodes {listed}: they need about {need} GiB and Docker's data "
            f"directory {facts.root_dir} has {facts.free_gib} GiB free. Set conf prune (for example prune: 550) on these "
            "nodes, give Docker more disk, or skip this check with -e network_disk_check=false."]
