# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""peerlab's naming rules, each written once.

The inventory plugin, the plan, the filters, the modules and the tests take names from here; the
roles take them from the host variables the inventory plugin publishes (peerlab_container,
peerlab_volume, peerlab_docker_network) or from the plan.
"""

from __future__ import annotations

from typing import Any


def container(network: str, node: str) -> str:
    """A node's container (or Swarm service) and its host name: <network>-<node>."""
    return f"{network}-{node}"


def data_volume(container_name: str) -> str:
    """The volume with a node's data directory: <container>-data."""
    return f"{container_name}-data"


def docker_network(network: str) -> str:
    """The Docker network a network's nodes share: peerlab-<network> (a bridge, or an overlay on a Swarm)."""
    return f"peerlab-{network}"


def fault_holder(container_name: str) -> str:
    """The container that holds a node's network faults in its namespace: peerlab-fault-<container>.
    (No network name starts with peerlab, so no node container can take this name.)"""
    return f"peerlab-fault-{container_name}"


def labelled_container(labels: dict[str, Any] | None) -> str:
    """The node container name a container's peerlab labels stand for ('' if it is not a node's)."""
    labels = labels or {}
    if "peerlab.node" not in labels:
        return ""
    return container(str(labels.get("peerlab.network")), str(labels["peerlab.node"]))
