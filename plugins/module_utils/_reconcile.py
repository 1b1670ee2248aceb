# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make a container or a Swarm service what its plan step says, on one Docker engine: create the
missing, start the stopped, stop and make again one made from other settings (its volumes kept),
remove one that left the topology; update a service, scale it, remove it; wait until a service's
task runs its current settings.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from typing import Any
from urllib.parse import quote

from ._container import create_body, differences, extra_networks, service_body
from ._docker import Docker, DockerError
from ._names import fault_holder
from ._spec import ContainerSpec, ServiceSpec


def stop(docker: Docker, name: str, timeout: int | None = None) -> None:
    """Stop a container, giving bitcoind its stop timeout (the container's own, unless given) to
    flush its chainstate. A container already stopped is fine."""
    query = f"?t={timeout}" if timeout is not None else ""
    wait = timeout if timeout is not None else int(((docker.inspect(name) or {}).get("Config") or {}).get("StopTimeout") or 10)
    try:
        docker.request("POST", f"/containers/{quote(name, safe='')}/stop{query}", timeout=wait + 60)
    except DockerError as error:
        if error.status not in (304, 404):
            raise


def remove(docker: Docker, name: str, volumes: bool = False) -> bool:
    """Remove a container (and its anonymous volumes with `volumes`); False when there was none."""
    return _delete(docker, f"/containers/{quote(name, safe='')}?force=1{'&v=1' if volumes else ''}")


def _delete(docker: Docker, path: str) -> bool:
    """DELETE an Engine API object; False when it was not there."""
    try:
        docker.request("DELETE", path)
    except DockerError as error:
        if error.status == 404:
            return False
        raise
    return True


def remove_node(docker: Docker, name: str) -> None:
    """Stop a node's container with its stop timeout, then remove it and its fault holder (which
    holds rules in the namespace that goes with it)."""
    remove(docker, fault_holder(name), volumes=True)
    stop(docker, name)
    remove(docker, name)


def create(docker: Docker, spec: ContainerSpec, docker_root: str) -> str:
    """Create a container (on its first network, connected to the others) and start it; its id."""
    created = docker.request("POST", f"/containers/create?name={quote(spec.name, safe='')}", create_body(spec, docker_root))
    for network in extra_networks(spec):
        docker.request("POST", f"/networks/{quote(network, safe='')}/connect", {"Container": created["Id"]})
    docker.request("POST", f"/containers/{created['Id']}/start")
    return str(created["Id"])


def converge(docker: Docker, spec: ContainerSpec, action: str, docker_root: str) -> str:
    """Carry out one container's step (create, recreate, start, compare); what was done ('' nothing)."""
    if action == "compare":
        found = docker.inspect(spec.name) or {}
        problems = differences(spec, found, docker_root)
        if not problems:
            if not (found.get("State") or {}).get("Running"):
                docker.request("POST", f"/containers/{quote(spec.name, safe='')}/start")
                return "started"
            return ""
        action = "recreate"
    if action == "start":
        docker.request("POST", f"/containers/{quote(spec.name, safe='')}/start")
        return "started"
    if action == "recreate":
        if spec.role == "node":
            remove_node(docker, spec.name)
        else:
            stop(docker, spec.name)
            remove(docker, spec.name)
        create(docker, spec, docker_root)
        return "made again"
    if action == "create":
        create(docker, spec, docker_root)
        return "created"
    return ""


def _answers(url: str) -> bool:
    """Whether a plain HTTP URL (a published port on this host) answers 200 to a GET."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=3)
    try:
        connection.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def wait_healthy(docker: Docker, name: str, timeout: float, url: str = "") -> None:
    """Wait until a container's health check passes (or, given a URL, until it answers 200)."""
    deadline = time.monotonic() + timeout
    while True:
        if url:
            if _answers(url):
                return
        else:
            found = docker.inspect(name) or {}
            health = ((found.get("State") or {}).get("Health") or {}).get("Status")
            if health in ("healthy", None) and (found.get("State") or {}).get("Running"):
                return
        if time.monotonic() > deadline:
            raise DockerError(f"{name} did not become healthy within {timeout:g} s ({url or 'its health check'})")
        time.sleep(0.5)


# ---------------------------------------------------------------------------------------------
# Swarm services (on a manager)

def service_apply(docker: Docker, spec: ServiceSpec, action: str, docker_root: str) -> str:
    body = service_body(spec, docker_root)
    if action == "create":
        docker.request("POST", "/services/create", body)
        return "created"
    if action == "update":
        found = docker.request("GET", f"/services/{quote(spec.name, safe='')}") or {}
        version = int((found.get("Version") or {}).get("Index") or 0)
        docker.request("POST", f"/services/{found.get('ID', spec.name)}/update?version={version}", body)
        return "updated"
    return ""


def service_scale(docker: Docker, name: str, replicas: int) -> bool:
    """Set a replicated service's task count; False when it had that many already."""
    found = docker.request("GET", f"/services/{quote(name, safe='')}") or {}
    spec = found.get("Spec") or {}
    mode = spec.get("Mode") or {}
    if int((mode.get("Replicated") or {}).get("Replicas", -1)) == replicas:
        return False
    spec["Mode"] = {"Replicated": {"Replicas": replicas}}
    version = int((found.get("Version") or {}).get("Index") or 0)
    docker.request("POST", f"/services/{found['ID']}/update?version={version}", spec)
    return True


def service_remove(docker: Docker, name: str) -> bool:
    return _delete(docker, f"/services/{quote(name, safe='')}")


def service_tasks(docker: Docker, name: str) -> list[dict[str, Any]]:
    filters = quote(json.dumps({"service": [name], "desired-state": ["running"]}), safe="")
    return list(docker.request("GET", f"/tasks?filters={filters}") or [])


def service_running(docker: Docker, spec: ServiceSpec) -> tuple[bool, str]:
    """Whether the service's tasks run its current settings (one task, or for a global service
    every task it wants); and, if not, what its tasks say (an image missing, a placement unmet)."""
    tasks = service_tasks(docker, spec.name)
    current = [task for task in tasks
               if (((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}).get("peerlab.spec") == spec.spec]
    running = [task for task in current if (task.get("Status") or {}).get("State") == "running"]
    if running and len(running) == len(tasks):
        return True, ""
    said = sorted({str((task.get("Status") or {}).get("Err") or (task.get("Status") or {}).get("Message") or
                       (task.get("Status") or {}).get("State")) for task in tasks}) or ["no task yet"]
    return False, "; ".join(said)
