# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each Docker host must hold for its nodes, decided in one place.

From a node's host variables (what the inventory plugin published from the topology model) and
what this run learned (the node image, the RPC credentials, the Docker network's subnet), the plan
gives the node's container settings and their hash (the container's `peerlab.spec` label), and
whether a container found on the engine must be made again. The network role hands these plans to
the `containers` module (one run per Docker host) or, on a Swarm, to docker_swarm_service.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ._names import data_volume, docker_network

DATA_DIR = "/home/bitcoin/.bitcoin"
PEERS_FILE = "/etc/peerlab/peers"
# bitcoind logs to stdout (the collector reads it); Docker keeps at most 5 x 10 MB of it.
LOG_OPTIONS = {"max-size": "10m", "max-file": "5"}


def node_settings(node: Mapping[str, Any], *, image: str, rpcauth: str, rpcallowip: str,
                  restart_policy: str, stop_timeout: int) -> dict[str, Any]:
    """A node's container as docker_container would take it (the hash covers all of it)."""
    network, name, container = node["peerlab_network"], node["peerlab_node"], node["peerlab_container"]
    labels = {"peerlab.network": network, "peerlab.node": name, "peerlab.role": "node",
              "peerlab.chain": node["peerlab_chain"], "peerlab.implementation": node["peerlab_implementation"]}
    publish = node.get("peerlab_publish_p2p")
    return {
        "image": image,
        "restart_policy": restart_policy,
        "stop_timeout": stop_timeout,
        "memory": str(node["peerlab_resources"]["memory"]),
        "cpus": float(node["peerlab_resources"]["cpus"]),
        "network": docker_network(network),
        "labels": labels,
        "env": {
            "PEERLAB_CHAIN": node["peerlab_chain"],
            "PEERLAB_RPCAUTH": rpcauth,
            "PEERLAB_RPCALLOWIP": rpcallowip,
            "PEERLAB_CONF": "\n".join(node["peerlab_conf_lines"]),
        },
        # The volume is created with these labels on first use and kept when the container goes.
        "mounts": [{"type": "volume", "source": data_volume(container), "target": DATA_DIR,
                    "labels": {"peerlab.network": network, "peerlab.node": name, "peerlab.role": "node-data"}}],
        "log_options": dict(LOG_OPTIONS),
        "published_ports": [f"{publish}:{node['peerlab_p2p_port']}"] if publish else [],
    }


def peers_mount(peers_dir: str, container: str) -> dict[str, Any]:
    """A Swarm node's file of outbound peers, read by the node at its start."""
    return {"type": "bind", "source": f"{peers_dir}/{container}", "target": PEERS_FILE, "readonly": True}


def settings_hash(settings: Mapping[str, Any]) -> str:
    """16 hex digits of the SHA-256 of the settings as sorted JSON (what the peerlab.spec label holds)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def looped(results: Any) -> list[dict[str, Any]]:
    """The per-item results of a looped task, given its registered variable or the list itself."""
    return list(results.get("results", [])) if isinstance(results, Mapping) else list(results or [])


def subnet(created: Any, engines: Any, network: str, host: str) -> str:
    """The subnet of a network's Docker network on a Docker host: from this run's creation, else the engine read."""
    for result in looped(created):
        item = result.get("item") or {}
        if item.get("network") == network and item.get("host") == host and result.get("network"):
            configs = ((result["network"].get("IPAM") or {}).get("Config")) or [{}]
            return str(configs[0].get("Subnet") or "")
    for result in looped(engines):
        if result.get("item") == host and not result.get("skipped") and not result.get("failed"):
            subnets = ((result.get("networks") or {}).get(docker_network(network)) or {}).get("subnets") or [""]
            return str(subnets[0])
    return ""


def node_plan(node: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    """A node's container (or Swarm service) settings with `name`, `hostname` and `spec` (its hash).

    `node` is the node's host variables plus what earlier steps set on it (images_node_image,
    _network_rpcauth); `run` holds the role's settings (restart_policy, stop_timeout, peers_dir) and
    this run's results (created: the Docker networks made; engines: the engine read at the start).
    A Swarm node's hash also covers its placement and its peers file; its RPC is allowed from the
    networks its task is attached to.
    """
    swarm = bool(node.get("peerlab_swarm"))
    container = node["peerlab_container"]
    rpcallowip = "attached" if swarm else subnet(run.get("created"), run.get("engines"),
                                                 node["peerlab_network"], node["peerlab_docker_host"])
    settings = node_settings(node, image=node["images_node_image"], rpcauth=node["_network_rpcauth"], rpcallowip=rpcallowip,
                             restart_policy=run["restart_policy"], stop_timeout=int(run["stop_timeout"]))
    hashed = {**settings, "placement": node["peerlab_docker_host"],
              "peers": peers_mount(run["peers_dir"], container)} if swarm else settings
    plan = {**settings, "name": container, "hostname": container, "spec": settings_hash(hashed)}
    if swarm:
        plan["placement"] = node["peerlab_docker_host"]
        plan["mounts"] = [*settings["mounts"], peers_mount(run["peers_dir"], container)]
    return plan


def outdated(plan: Mapping[str, Any], found: Mapping[str, Any] | None, compare: str = "hash") -> bool:
    """Whether the container (or Swarm task) found must be made again: missing, not running, other settings."""
    found = found or {}
    state = found.get("State")
    running = (state.get("Status") if isinstance(state, Mapping) else state) == "running"
    return compare == "full" or not running or (found.get("Labels") or {}).get("peerlab.spec") != plan["spec"]
