# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over peerlab.bitcoin.engine_info results: what each Docker host already holds."""

from __future__ import annotations

from typing import Any

from ansible_collections.peerlab.bitcoin.plugins.module_utils._names import docker_network
from ansible_collections.peerlab.bitcoin.plugins.module_utils._plan import looped

DOCUMENTATION_TEXT = """
engine(results, host): one Docker host's engine_info answer ({} when it was not read).
lacking_image(hosts, results, tag): the hosts whose engine lacks the image tag (all of them when unread).
unbuilt_nodes(builds, results, repository, digest): node image builds whose tag is missing on their host.
unbuilt_pairs(pairs, results, repositories, tags): [host, kind] monitoring builds whose tag is missing.
engine_existing(pairs, results): docker_host_info-shaped results per {network, host}: the network's
  node containers and volumes.
engine_container(results, host, name): a container by name on one Docker host ({} when absent).
stack_users(results, stack): networks a monitoring stack (its container names) serves, per its
  containers' peerlab.network labels, that still have node containers on the hosts.
missing_networks(items, results): the {network, host, swarm} Docker networks the engines lack.
"""


def engine(results: Any, host: str) -> dict[str, Any]:
    for result in looped(results):
        if result.get("item") == host and not result.get("skipped") and not result.get("failed"):
            return result  # type: ignore[no-any-return]
    return {}


def _has(results: Any, host: str, tag: str) -> bool:
    return tag in (engine(results, host).get("images") or [])


def lacking_image(hosts: list[str], results: Any, tag: str) -> list[str]:
    return [host for host in hosts if not _has(results, host, tag)]


def unbuilt_nodes(builds: list[dict[str, Any]], results: Any, repository: str, digest: str) -> list[dict[str, Any]]:
    """Node image builds ({host, implementation, version}) whose content-hash tag is missing on their host."""
    return [build for build in builds
            if not _has(results, build["host"], f"{repository}:{build['implementation']}-{build['version']}-{digest}")]


def unbuilt_pairs(pairs: list[list[str]], results: Any, repositories: dict[str, str], tags: dict[str, str]) -> list[list[str]]:
    """[host, kind] builds (collector, graphite) whose tag is missing on their host."""
    return [pair for pair in pairs if not _has(results, pair[0], f"{repositories[pair[1]]}:{tags[pair[1]]}")]


def engine_existing(pairs: list[dict[str, str]], results: Any) -> list[dict[str, Any]]:
    """What docker_host_info (verbose, filtered by the network's labels) would answer, per {network, host}."""
    found = []
    for pair in pairs:
        state = engine(results, pair["host"])
        found.append({
            "item": pair,
            "containers": [container for container in state.get("containers") or []
                           if (container.get("Labels") or {}).get("peerlab.network") == pair["network"]
                           and (container.get("Labels") or {}).get("peerlab.role") == "node"],
            "volumes": [volume for volume in state.get("volumes") or []
                        if (volume.get("Labels") or {}).get("peerlab.network") == pair["network"]],
        })
    return found


def engine_container(results: Any, host: str, name: str) -> dict[str, Any]:
    """A container by name on one Docker host ({} when absent or unread)."""
    for container in engine(results, host).get("containers") or []:
        if f"/{name}" in (container.get("Names") or []):
            return container  # type: ignore[no-any-return]
    return {}


def stack_users(results: Any, stack: list[str]) -> list[str]:
    containers = [container for result in looped(results) for container in result.get("containers") or []]
    names = {f"/{name}" for name in stack}
    served = {network for container in containers if names & set(container.get("Names") or [])
              for network in str((container.get("Labels") or {}).get("peerlab.network", "")).split(",") if network}
    present = {(container.get("Labels") or {}).get("peerlab.network") for container in containers
               if (container.get("Labels") or {}).get("peerlab.role") == "node"}
    return sorted(served & present)


def missing_networks(items: list[dict[str, Any]], results: Any) -> list[dict[str, Any]]:
    return [item for item in items if docker_network(item['network']) not in (engine(results, item["host"]).get("networks") or {})]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "engine": engine,
            "lacking_image": lacking_image,
            "unbuilt_nodes": unbuilt_nodes,
            "unbuilt_pairs": unbuilt_pairs,
            "engine_existing": engine_existing,
            "engine_container": engine_container,
            "missing_networks": missing_networks,
            "stack_users": stack_users,
        }
