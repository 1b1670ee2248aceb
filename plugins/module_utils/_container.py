# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A container's or a Swarm service's settings as the Docker Engine API takes them, and what a
running container lacks of them. Pure functions: the engine sends what they build; unit tests check
them alone. Every container peerlab runs (nodes, Graphite, the collector, the bus, the observer,
Grafana, the portal) goes through `create_body`, every Swarm service through `service_body`.
"""

from __future__ import annotations

import re
from typing import Any

from ._names import SPEC
from ._spec import ContainerSpec, Mount, ServiceSpec

_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)([bkmg]?)b?$")
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def memory_bytes(value: object) -> int:
    """`512m`, `2g`, `1048576` -> bytes (Docker's binary units)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    found = _MEMORY.match(str(value).strip().lower())
    if not found:
        raise ValueError(f"memory must look like 512m or 2g, got {value!r}")
    return int(float(found.group(1)) * _UNITS[found.group(2)])


def port_bindings(published: tuple[str, ...] | list[str]) -> dict[str, list[dict[str, str]]]:
    """`[ip:]host:container[/proto]` entries -> the API's PortBindings."""
    bindings: dict[str, list[dict[str, str]]] = {}
    for entry in published:
        parts = str(entry).split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"published port must look like [ip:]host_port:container_port, got {entry!r}")
        host_ip = parts[0] if len(parts) == 3 else ""
        port = parts[-1] if "/" in parts[-1] else f"{parts[-1]}/tcp"
        bindings.setdefault(port, []).append({"HostIp": host_ip, "HostPort": parts[-2]})
    return bindings


def _source(mount: Mount, docker_root: str) -> str:
    return mount.source.replace("{docker_root}", docker_root)


def api_mounts(mounts: tuple[Mount, ...], docker_root: str) -> list[dict[str, Any]]:
    return [{"Type": mount.type, "Source": _source(mount, docker_root), "Target": mount.target, "ReadOnly": mount.read_only,
             **({"VolumeOptions": {"Labels": dict(mount.labels)}} if mount.labels else {})} for mount in mounts]


def create_body(spec: ContainerSpec, docker_root: str = "/var/lib/docker") -> dict[str, Any]:
    """POST /containers/create's body. A container on several networks is created on the first
    and connected to the others before it starts (`extra_networks`)."""
    bindings = port_bindings(spec.published)
    host_network = spec.networks[:1] == ("host",)
    network = spec.networks[0] if spec.networks else "bridge"
    body: dict[str, Any] = {
        "Hostname": "" if host_network else spec.name,
        "Image": spec.image,
        "Env": [f"{key}={value}" for key, value in sorted(spec.env.items())],
        "Labels": {**spec.labels, SPEC: spec.spec},
        "StopTimeout": int(spec.stop_timeout),
        "ExposedPorts": {port: {} for port in bindings},
        "HostConfig": {
            "Memory": memory_bytes(spec.memory) if spec.memory else 0,
            "NanoCpus": int(float(spec.cpus) * 1e9) if spec.cpus else 0,
            "CpuShares": int(spec.cpu_shares),
            "RestartPolicy": {"Name": spec.restart_policy or "no"},
            "Mounts": api_mounts(spec.mounts, docker_root),
            "NetworkMode": network,
            "PortBindings": bindings,
            "LogConfig": {"Type": "json-file", "Config": {key: str(value) for key, value in spec.log_options.items()}},
        },
        "NetworkingConfig": {"EndpointsConfig": {} if host_network else {network: {}}},
    }
    if spec.entrypoint:
        body["Entrypoint"] = list(spec.entrypoint)
    if spec.command:
        body["Cmd"] = list(spec.command)
    if spec.user:
        body["User"] = spec.user
    if spec.groups:
        body["HostConfig"]["GroupAdd"] = list(spec.groups)
    if spec.tmpfs:
        body["HostConfig"]["Tmpfs"] = dict(spec.tmpfs)
    if spec.healthcheck:
        body["Healthcheck"] = dict(spec.healthcheck)
    return body


def extra_networks(spec: ContainerSpec) -> list[str]:
    return [] if spec.networks[:1] == ("host",) else list(spec.networks[1:])


def differences(spec: ContainerSpec, found: dict[str, Any], docker_root: str = "/var/lib/docker") -> list[str]:
    """What a container (its inspect answer) lacks of `spec`, in full; [] when it matches.
    Used with compare=full: it also sees out-of-band changes (docker update) the hash cannot."""
    wanted = create_body(spec, docker_root)
    config, host = found.get("Config") or {}, found.get("HostConfig") or {}
    problems = []
    if config.get("Image") != wanted["Image"]:
        problems.append(f"image {config.get('Image')} -> {wanted['Image']}")
    if not set(wanted["Env"]) <= set(config.get("Env") or []):
        problems.append("environment")
    labels = config.get("Labels") or {}
    if any(labels.get(key) != value for key, value in wanted["Labels"].items()):
        problems.append("labels")
    for key in ("Memory", "NanoCpus", "CpuShares"):
        if (host.get(key) or 0) != wanted["HostConfig"][key]:
            problems.append(f"{key} {host.get(key) or 0} -> {wanted['HostConfig'][key]}")
    if (host.get("RestartPolicy") or {}).get("Name") != wanted["HostConfig"]["RestartPolicy"]["Name"]:
        problems.append("restart policy")
    have = sorted((mount.get("Type"), mount.get("Name") or mount.get("Source"), mount.get("Destination"))
                  for mount in found.get("Mounts") or [])
    if have != sorted((mount["Type"], mount["Source"], mount["Target"]) for mount in wanted["HostConfig"]["Mounts"]):
        problems.append("mounts")
    if (host.get("PortBindings") or {}) != wanted["HostConfig"]["PortBindings"]:
        problems.append("published ports")
    attached = set((found.get("NetworkSettings") or {}).get("Networks") or {})
    if spec.networks[:1] != ("host",) and attached != set(spec.networks):
        problems.append(f"networks {sorted(attached)} -> {sorted(spec.networks)}")
    return problems


def service_body(spec: ServiceSpec, docker_root: str = "/var/lib/docker") -> dict[str, Any]:
    """POST /services/create's (and /services/<id>/update's) body: one task of a node placed on
    its host (or a task on every host for a global service), DNS round robin rather than a virtual
    IP (peers see each other's own addresses; no IPVS needed), stop-first updates (one bitcoind per
    data directory)."""
    container: dict[str, Any] = {
        "Image": spec.image,
        "Labels": {**spec.labels, SPEC: spec.spec},
        "Env": [f"{key}={value}" for key, value in sorted(spec.env.items())],
        "Mounts": api_mounts(spec.mounts, docker_root),
        "StopGracePeriod": int(spec.stop_timeout) * 10**9,
    }
    if spec.mode != "global":
        container["Hostname"] = spec.name
    if spec.entrypoint:
        container["Command"] = list(spec.entrypoint)
    resources = {}
    if spec.memory:
        resources["MemoryBytes"] = memory_bytes(spec.memory)
    if spec.cpus:
        resources["NanoCPUs"] = int(float(spec.cpus) * 1e9)
    body: dict[str, Any] = {
        "Name": spec.name,
        "Labels": dict(spec.labels),
        "TaskTemplate": {
            "ContainerSpec": container,
            "Resources": {"Limits": resources},
            "RestartPolicy": {"Condition": "any", "Delay": 2 * 10**9},
            "Placement": {"Constraints": list(spec.placement)},
            "Networks": [{"Target": network} for network in spec.networks],
            "LogDriver": {"Name": "json-file", "Options": {key: str(value) for key, value in spec.log_options.items()}}
            if spec.log_options else None,
        },
        "Mode": {"Global": {}} if spec.mode == "global" else {"Replicated": {"Replicas": 1}},
        "UpdateConfig": {"Order": "stop-first", "Parallelism": 1},
        "EndpointSpec": {"Mode": "dnsrr", "Ports": [{"Protocol": port.get("protocol", "tcp"), "TargetPort": int(port["target_port"]),
                                                     "PublishedPort": int(port["published_port"]), "PublishMode": "host"}
                                                    for port in spec.published]},
    }
    if body["TaskTemplate"]["LogDriver"] is None:
        del body["TaskTemplate"]["LogDriver"]
    return body
