# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""peerlab's naming rules, labels and ports, each written once.

The inventory plugin, the engine (its desired state, plan and apply), the portal, the collector's
configuration and the tests take names from here.
"""

from __future__ import annotations

from typing import Any

# Labels every object peerlab makes carries (docs/architecture.md, "Ownership").
NETWORK = "peerlab.network"    # the Bitcoin network (a comma-separated list on shared monitoring containers)
NODE = "peerlab.node"          # a node's name within its network
ROLE = "peerlab.role"          # node, node-data, fault, network, monitoring, graphite, collector, bus, observer, ...
SPEC = "peerlab.spec"          # the hash of the settings an object was made from
OWNER = "peerlab.owner"        # the id of the inventory that made it (peerlab_lab_id)
INVENTORY = "peerlab.inventory"  # where that inventory is, for messages that name the owner
# The roles of what peerlab makes: an object with one of them and no owner label was made before
# owners were recorded (a container also carries its image's labels: the base image says "base").
MADE_ROLES = frozenset({"node", "node-data", "network", "monitoring", "graphite", "graphite-data", "collector", "bus", "observer",
                        "events-archive", "grafana", "grafana-data", "portal", "fault", "alertmanager", "alertmanager-data",
                        "activity"})

# Ports inside the containers (published addresses are settings of the roles).
CARBON_PORT = 2003          # Graphite's plaintext intake
GRAPHITE_WEB_PORT = 8080    # graphite-web's render and find API
COLLECTOR_METRICS_PORT = 9332   # each collector's Prometheus /metrics
STATSD_PORT = 8125          # the collector's statsd intake (Statoshi nodes), UDP
BUS_PORT = 4222             # NATS
BUS_MONITOR_PORT = 8222     # NATS's monitoring endpoint (health check)
FEED_PORT = 8091            # the observer's websocket feed
OBSERVER_METRICS_PORT = 9333    # the observer's /metrics, /healthz and /state
GRAFANA_PORT = 3000

# Paths inside a node container.
DATA_DIR = "/home/bitcoin/.bitcoin"
PEERS_FILE = "/etc/peerlab/peers"


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


def activity(network: str) -> str:
    """A network's background activity container: peerlab-activity-<network>."""
    return f"peerlab-activity-{network}"


def peers_file(state_dir: str, container_name: str) -> str:
    """A node's file of outbound peers on its Docker host, read by the node at each start."""
    return f"{state_dir}/peers/{container_name}"


def labelled_container(labels: dict[str, Any] | None) -> str:
    """The node container name a container's peerlab labels stand for ('' if it is not a node's)."""
    labels = labels or {}
    if NODE not in labels:
        return ""
    return container(str(labels.get(NETWORK)), str(labels[NODE]))


def build_label(implementation: str, version: str) -> str:
    """A node's implementation and version for a table: a commit (40 hex digits) shortened to 12."""
    short = version[:12] if len(version) == 40 and all(c in "0123456789abcdef" for c in version) else version
    return f"{implementation} {short}".strip()
