# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Carry out a node's fault plan (`_faults.NodePlan`) on its Docker host, over the Engine API.

A node's network faults live in its network namespace. A *fault holder* container
(peerlab-fault-<node container>, the node's own image, NET_ADMIN and no other capability, a
read-only root, `--network container:<node>`)
applies the plan's script and then holds it: its labels say which plan (peerlab.spec) for which
start of the node (peerlab.target), so reading the state is two container listings, and stopping
the holder undoes its rules. Node containers never get NET_ADMIN. A node that restarts gets a new
namespace without faults; its holder no longer matches and the next run makes a new one.
Pausing is the engine's own pause. Used by the faults module and the scenario module alike.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from ._docker import Docker, DockerError
from ._faults import CLEAR, NETEM, NETEM_MISSING, QUEUE, Delays, NodePlan, holder_command
from ._names import DATA_DIR, container, fault_holder, labelled_container

READY = "peerlab-fault-ready"


def _filters(**labels: str) -> str:
    return quote(json.dumps({"label": [f"{key}={value}" for key, value in labels.items()]}), safe="")


def node_containers(docker: Docker, network: str | None = None) -> dict[str, dict[str, Any]]:
    """Running (or paused) node containers by node container name (<network>-<node>), standalone or Swarm tasks."""
    labels = {"peerlab.role": "node", **({"peerlab.network": network} if network else {})}
    found: dict[str, dict[str, Any]] = {}
    for entry in docker.request("GET", f"/containers/json?all=1&filters={_filters(**labels)}") or []:
        tags = entry.get("Labels") or {}
        name = labelled_container(tags)
        if name not in found or entry.get("State") in ("running", "paused"):
            found[name] = entry
    return found


def holders(docker: Docker) -> dict[str, dict[str, Any]]:
    """Fault holders by the node container they serve."""
    answer = docker.request("GET", f"/containers/json?all=1&filters={_filters(**{'peerlab.role': 'fault'})}") or []
    return {(entry.get("Labels") or {}).get("peerlab.fault_of", ""): entry for entry in answer}


def target(docker: Docker, container_id: str) -> str:
    """Which start of a node a holder serves: its container id and start time."""
    found = docker.inspect(container_id) or {}
    return f"{str(found.get('Id', ''))[:12]}@{(found.get('State') or {}).get('StartedAt', '')}"


# A holder or probe: NET_ADMIN and no other capability, no new privileges, a read-only root file
# system. The node image declares its data directory a volume: a holder made from it would leave an
# anonymous volume behind on every removal; a small tmpfs there makes none (and /run holds
# iptables' lock).
CONFINED = {"CapDrop": ["ALL"], "CapAdd": ["NET_ADMIN"], "SecurityOpt": ["no-new-privileges"], "ReadonlyRootfs": True,
            "Tmpfs": {DATA_DIR: "size=1m", "/run": "size=1m", "/tmp": "size=1m"}}


def current(holder: dict[str, Any] | None, node_target: str) -> tuple[str, list[str]]:
    """(spec, fault descriptions) a holder holds for this start of its node; ('', []) when none does."""
    labels = (holder or {}).get("Labels") or {}
    if not holder or holder.get("State") != "running" or labels.get("peerlab.target") != node_target:
        return "", []
    return labels.get("peerlab.spec", ""), [line for line in labels.get("peerlab.faults", "").split("; ") if line]


def remove_holder(docker: Docker, holder: dict[str, Any]) -> None:
    """Stop (its SIGTERM trap undoes the rules) and remove a holder."""
    if holder.get("State") == "running":
        try:
            docker.request("POST", f"/containers/{holder['Id']}/stop?t=10", timeout=70)
        except DockerError as error:
            if error.status not in (304, 404):
                raise
    try:
        docker.request("DELETE", f"/containers/{holder['Id']}?force=1&v=1")
    except DockerError as error:
        if error.status != 404:
            raise


def _throwaway(image: str, script: str, network_mode: str) -> dict[str, Any]:
    """A one-shot shell script as root in `image`, as confined as a holder (the probe and the sweep)."""
    return {"Image": image, "User": "root", "Entrypoint": ["/bin/sh", "-c"], "Cmd": [script], "Healthcheck": {"Test": ["NONE"]},
            "Labels": {"peerlab.role": "probe"},
            "HostConfig": {"NetworkMode": network_mode, "RestartPolicy": {"Name": "no"}, **CONFINED}}


# What a holder that is gone without its EXIT trap (SIGKILL, `docker rm -f`) may have left in its
# node's namespace: the PEERLAB chains, an htb root on an interface. Removed, and said whether any was.
SWEEP = "\n".join([
    "found=0",
    "iptables -w -S 2>/dev/null | grep -q PEERLAB && found=1",
    "for dev in $(ls /sys/class/net); do",
    "  if tc qdisc show dev \"$dev\" root 2>/dev/null | grep -q '^qdisc htb 1: root'; then",
    "    found=1; tc qdisc del dev \"$dev\" root",
    "  fi",
    "done",
    "dev=lo",
    *[line for line in CLEAR.splitlines() if line.startswith("iptables")],
    "echo swept=$found",
])


def sweep(docker: Docker, node: dict[str, Any]) -> bool:
    """Remove what a vanished holder left in a running node's namespace; whether there was anything."""
    ok, output = docker.run_once(_throwaway(node["Image"], SWEEP, f"container:{node['Id']}"))
    if not ok:
        raise DockerError(f"could not sweep {labelled_container(node.get('Labels') or {})}'s namespace: {output.strip()[-300:]}")
    return "swept=1" in output


def make_holder(docker: Docker, node: dict[str, Any], network: str, plan: NodePlan) -> None:
    """Create and start a node's holder; wait until its rules are in place (or fail with its output)."""
    node_name = container(network, plan.node)
    name = fault_holder(node_name)
    body = {
        "Image": node["Image"],
        "User": "root",
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": [holder_command(plan)],
        "Labels": {"peerlab.network": network, "peerlab.role": "fault", "peerlab.fault_of": node_name,
                   "peerlab.spec": plan.spec, "peerlab.target": target(docker, node["Id"]),
                   "peerlab.faults": "; ".join(plan.faults)},
        "Healthcheck": {"Test": ["NONE"]},
        "StopTimeout": 10,
        "HostConfig": {"NetworkMode": f"container:{node['Id']}", "RestartPolicy": {"Name": "no"},
                       "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "1"}}, **CONFINED},
    }
    try:
        docker.request("DELETE", f"/containers/{name}?force=1&v=1")
    except DockerError as error:
        if error.status != 404:
            raise
    created = docker.request("POST", f"/containers/create?name={name}", body)
    docker.request("POST", f"/containers/{created['Id']}/start")
    ok, output = docker.wait_output(created["Id"], READY, 45.0)  # past the 30 s a name may take to resolve
    if not ok:
        docker.request("DELETE", f"/containers/{created['Id']}?force=1&v=1")
        raise DockerError(f"{name} could not apply {', '.join(plan.faults)}: {output.strip()[-600:]}")


def set_paused(docker: Docker, node: dict[str, Any], pause: bool) -> bool:
    """Pause or unpause a node's container; whether that changed anything."""
    if (node.get("State") == "paused") == pause:
        return False
    docker.request("POST", f"/containers/{node['Id']}/{'pause' if pause else 'unpause'}")
    return True


def kill(docker: Docker, node: dict[str, Any]) -> bool:
    """SIGKILL a node's container (the engine counts it as stopped by the user: it stays down)."""
    if node.get("State") not in ("running", "paused"):
        return False
    docker.request("POST", f"/containers/{node['Id']}/kill")
    return True


def delay_probe(docker: Docker, image: str, host: str) -> tuple[str, str]:
    """How this engine's kernel can delay packets: (NETEM, '') with netem, (QUEUE, '') with netfilter
    queues (the delay program binds one), else ('', the refusal naming both missing features).
    Tried in a throwaway namespace of its own: nothing of any node is touched."""
    program = "\n".join(Delays.start("1:1:0 1"))
    script = ("if tc qdisc add dev lo root netem delay 1ms 2>/tmp/netem; then echo way=netem; exit 0; fi\n"
              "iptables -w -A OUTPUT -o lo -j NFQUEUE --queue-num 1 --queue-bypass 2>/tmp/queue "
              "|| { echo \"tc: $(cat /tmp/netem); iptables: $(cat /tmp/queue)\"; exit 1; }\n"
              f"{program}\necho way=queue\n")
    ok, output = docker.run_once(_throwaway(image, script, "none"))
    for way in (NETEM, QUEUE):
        if ok and f"way={way}" in output:
            return way, ""
    answer = " ".join(output.split()) or "no answer"
    return "", NETEM_MISSING.format(host=host, answer=answer)


def reconcile(docker: Docker, spec: dict[str, Any], node: dict[str, Any] | None,
              holder: dict[str, Any] | None, check_mode: bool) -> dict[str, Any]:
    """Bring one node to its spec ({network, node, commands, spec, faults, pause}); what was done
    (`actions`: clear, apply, pause, unpause), the state `before` and the faults it holds now."""
    name = container(spec["network"], spec["node"])
    have_spec, have_faults = current(holder, target(docker, node["Id"])) if node and holder else ("", [])
    before = {"faults": have_faults, "paused": bool(node and node.get("State") == "paused")}
    actions = []
    if have_spec != spec["spec"] or (holder and not have_spec):
        if holder:
            actions.append("clear")
        if spec["commands"]:
            actions.append("apply")
    if node is None and (spec["commands"] or spec["pause"]):
        if not check_mode:
            raise DockerError(f"{name} is not running here: its faults need its container (deploy.yml makes it)")
        actions = ["apply"] if spec["commands"] else []
    if spec["pause"] != before["paused"]:
        actions.append("pause" if spec["pause"] else "unpause")
    # A holder that stopped without its trap, or none while a clear was asked for: its rules may be left.
    stale = bool(holder and holder.get("State") != "running") or (spec.get("sweep") and not holder)
    running = bool(node and node.get("State") == "running")
    if not check_mode:
        if "clear" in actions and holder:
            remove_holder(docker, holder)
        if stale and running and not spec["commands"] and sweep(docker, node):  # type: ignore[arg-type]
            actions.append("swept")
        if "apply" in actions and node is not None:
            make_holder(docker, node, spec["network"],
                        NodePlan(spec["node"], spec["commands"], spec["spec"], tuple(spec["faults"])))
        if node is not None and ("pause" in actions or "unpause" in actions):
            set_paused(docker, node, spec["pause"])
    return {"actions": actions, "before": before, "faults": list(spec["faults"]), "paused": spec["pause"]}
