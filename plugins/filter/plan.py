# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that hand the per-Docker-host plan (plugins/module_utils/_plan.py) to the roles."""

from __future__ import annotations

from typing import Any

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _names, _plan

DOCUMENTATION_TEXT = """
node_plan(host, hostvars, run): a node's container or Swarm service settings with name, hostname and spec.
host_containers(hosts, hostvars, docker_host, run): the plans of the standalone nodes on one Docker host
  (the containers option of peerlab.bitcoin.containers).
host_nodes(hosts, hostvars, docker_host): the standalone nodes on one Docker host as {name, volume}.
outdated(plan, found, compare): whether the container or Swarm task found must be made again.
swarm_hosts(hosts, hostvars): the Docker hosts that run nodes of Swarm networks.
docker_network(network): the Docker network of a network (peerlab-<network>).
"""


def node_plan(host: str, hostvars: Any, run: dict[str, Any]) -> dict[str, Any]:
    return _plan.node_plan(hostvars[host], run)


def _standalone(hosts: list[str], hostvars: Any, docker_host: str) -> list[Any]:
    """The host variables of the nodes that run as plain containers on one Docker host."""
    return [hostvars[host] for host in hosts
            if hostvars[host]["peerlab_docker_host"] == docker_host and not hostvars[host].get("peerlab_swarm")]


def host_containers(hosts: list[str], hostvars: Any, docker_host: str, run: dict[str, Any]) -> list[dict[str, Any]]:
    return [_plan.node_plan(node, run) for node in _standalone(hosts, hostvars, docker_host)]


def host_nodes(hosts: list[str], hostvars: Any, docker_host: str) -> list[dict[str, str]]:
    """The standalone nodes on one Docker host as {name, volume} (start, stop and teardown need no more)."""
    return [{"name": node["peerlab_container"], "volume": node["peerlab_volume"]} for node in _standalone(hosts, hostvars, docker_host)]


def outdated(plan: dict[str, Any], found: dict[str, Any] | None, compare: str = "hash") -> bool:
    return _plan.outdated(plan, found, compare)


def _swarm_nodes(hosts: list[str], hostvars: Any) -> list[str]:
    return [host for host in hosts if hostvars[host].get("peerlab_swarm")]


def swarm_hosts(hosts: list[str], hostvars: Any) -> list[str]:
    return sorted({hostvars[host]["peerlab_docker_host"] for host in _swarm_nodes(hosts, hostvars)})


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "node_plan": node_plan,
            "host_containers": host_containers,
            "host_nodes": host_nodes,
            "outdated": outdated,
            "swarm_hosts": swarm_hosts,
            "docker_network": _names.docker_network,
        }
