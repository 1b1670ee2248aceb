# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over Swarm state, for the swarm role."""

from __future__ import annotations

from typing import Any

DOCUMENTATION_TEXT = """
ready_hosts(nodes): sorted inventory names (label peerlab.host) of the Swarm nodes that are ready,
  from docker_node_info's nodes.
"""


def ready_hosts(nodes: list[dict[str, Any]]) -> list[str]:
    return sorted({str(node["Spec"]["Labels"]["peerlab.host"]) for node in nodes
                   if (node.get("Status") or {}).get("State") == "ready"
                   and "peerlab.host" in ((node.get("Spec") or {}).get("Labels") or {})})


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"ready_hosts": ready_hosts}
