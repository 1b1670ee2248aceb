# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A node container's settings as the Docker Engine API takes them, and what a running one lacks.

Pure functions: the containers module sends what they build; the unit tests check them alone.
"""

from __future__ import annotations

import re
from typing import Any

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


def port_bindings(published: list[str]) -> dict[str, list[dict[str, str]]]:
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


def create_body(spec: dict[str, Any]) -> dict[str, Any]:
    """POST /containers/create's body for one node (`spec` as the containers module takes it)."""
    labels = dict(spec["labels"], **{"peerlab.spec": spec["spec"]})
    mounts = [{"Type": mount["type"], "Source": mount["source"], "Target": mount["target"],
               "ReadOnly": bool(mount.get("read_only") or mount.get("readonly")),
               **({"VolumeOptions": {"Labels": mount["labels"]}} if mount.get("labels") else {})}
              for mount in spec.get("mounts", [])]
    bindings = port_bindings(spec.get("published_ports", []))
    return {
        "Hostname": spec.get("hostname") or spec["name"],
        "Image": spec["image"],
        "Env": [f"{key}={value}" for key, value in sorted(spec.get("env", {}).items())],
        "Labels": labels,
        "StopTimeout": int(spec.get("stop_timeout", 10)),
        "ExposedPorts": {port: {} for port in bindings},
        "HostConfig": {
            "Memory": memory_bytes(spec["memory"]) if spec.get("memory") else 0,
            "NanoCpus": int(float(spec["cpus"]) * 1e9) if spec.get("cpus") else 0,
            "RestartPolicy": {"Name": spec.get("restart_policy", "no")},
            "Mounts": mounts,
            "NetworkMode": spec["network"],
            "PortBindings": bindings,
            "LogConfig": {"Type": "json-file", "Config": {key: str(value) for key, value in spec.get("log_options", {}).items()}},
        },
        "NetworkingConfig": {"EndpointsConfig": {spec["network"]: {}}},
    }


def differences(spec: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """What a container (its inspect answer) lacks of `spec`, in full; [] when it matches.
    Used with compare=full: it also sees out-of-band changes (docker update) the hash cannot."""
    wanted = create_body(spec)
    config, host = found.get("Config") or {}, found.get("HostConfig") or {}
    problems = []
    if config.get("Image") != wanted["Image"]:
        problems.append(f"image {config.get('Image')} -> {wanted['Image']}")
    if not set(wanted["Env"]) <= set(config.get("Env") or []):
        problems.append("environment")
    labels = config.get("Labels") or {}
    if any(labels.get(key) != value for key, value in wanted["Labels"].items()):
        problems.append("labels")
    for key in ("Memory", "NanoCpus"):
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
    if spec["network"] not in ((found.get("NetworkSettings") or {}).get("Networks") or {}):
        problems.append(f"not on network {spec['network']}")
    return problems


def plan(spec: dict[str, Any], found: dict[str, Any] | None, compare: str = "hash") -> tuple[str, str]:
    """(action, why) for one container: create, recreate, start or none."""
    if found is None:
        return "create", "missing"
    labels = (found.get("Config") or {}).get("Labels") or {}
    if labels.get("peerlab.spec") != spec["spec"]:
        return "recreate", f"settings changed (spec {labels.get('peerlab.spec') or '-'} -> {spec['spec']})"
    if compare == "full":
        problems = differences(spec, found)
        if problems:
            return "recreate", "differs: " + ", ".join(problems)
    if not (found.get("State") or {}).get("Running"):
        return "start", f"{(found.get('State') or {}).get('Status', 'stopped')}"
    return "none", "running, up to date"


def plan_state(state: str, found: dict[str, Any] | None) -> tuple[str, str]:
    """(action, why) for one existing container under `state` started, stopped or absent.

    started: start a stopped container (a missing one is an error: deploy.yml makes containers);
    stopped: stop a running one; absent: stop and remove. A missing container is already stopped
    and absent.
    """
    if found is None:
        if state == "started":
            raise ValueError("no such container (deploy.yml makes it)")
        return "none", "missing"
    status = (found.get("State") or {}).get("Status", "stopped")
    running = bool((found.get("State") or {}).get("Running"))
    if state == "absent":
        return "remove", status
    if state == "stopped":
        return ("stop", status) if running else ("none", status)
    return ("none", status) if running else ("start", status)
