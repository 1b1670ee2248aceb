# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make a node container what its plan says, on one Docker engine: create the missing, start the
stopped, stop and remake one made from other settings (its volume kept). The containers module
runs it for every node of a Docker host; the portal's quick apply for the nodes of one network.
"""

from __future__ import annotations

from typing import Any

from ._container import create_body, plan, plan_state
from ._docker import Docker, DockerError
from ._names import fault_holder


def brief(found: dict[str, Any] | None) -> dict[str, Any]:
    if not found:
        return {}
    return {"Id": found.get("Id"), "Names": [found.get("Name", "")],
            "State": (found.get("State") or {}).get("Status"), "Labels": (found.get("Config") or {}).get("Labels") or {},
            "NetworkSettings": {"Networks": (found.get("NetworkSettings") or {}).get("Networks") or {}}}


def stop(docker: Docker, found: dict[str, Any], timeout: int | None) -> None:
    """Stop a running container, giving bitcoind its stop timeout (the container's own, unless given)."""
    wait = timeout if timeout is not None else int((found.get("Config") or {}).get("StopTimeout") or 10)
    query = f"?t={timeout}" if timeout is not None else ""
    docker.request("POST", f"/containers/{found['Id']}/stop{query}", timeout=wait + 60)


def reconcile(docker: Docker, spec: dict[str, Any], compare: str, state: str, check_mode: bool) -> dict[str, Any]:
    name = spec["name"]
    found = docker.inspect(name)
    action, why = plan(spec, found, compare) if state == "present" else plan_state(state, found)
    result: dict[str, Any] = {"action": action, "why": why, "before": brief(found)}
    if check_mode or action == "none":
        result.update(brief(found))
        return result
    if state == "absent":
        # A node's fault holder (docs/experiments.md) goes with it.
        try:
            docker.request("DELETE", f"/containers/{fault_holder(name)}?force=1&v=1")
        except DockerError as error:
            if error.status != 404:
                raise
    timeout = int(spec["stop_timeout"]) if spec.get("stop_timeout") is not None else None
    if found and action in ("recreate", "stop", "remove") and (found.get("State") or {}).get("Running"):
        stop(docker, found, timeout)
    if found and action in ("recreate", "remove"):
        docker.request("DELETE", f"/containers/{found['Id']}?force=1")
    if action == "remove":
        return result
    if action in ("create", "recreate"):
        created = docker.request("POST", f"/containers/create?name={name}", create_body(spec))
        target = created["Id"]
    else:
        target = found["Id"] if found else name
    if action != "stop":
        docker.request("POST", f"/containers/{target}/start")
    result.update(brief(docker.inspect(name)))
    return result
