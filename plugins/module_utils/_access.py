# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a module on a Docker host reaches its nodes: each node's RPC address (its container's,
or for a Swarm task its address on the host's docker_gwbridge) and the address its peers see,
read from the engine once. The traffic and scenario modules take nodes without addresses (their
action plugins know names, ports and passwords, not addresses) and fill them in here.
"""

from __future__ import annotations

from typing import Any

from ._docker import Docker
from ._facts import address, read
from ._names import docker_network


def resolve(docker: Docker, nodes: list[dict[str, Any]]) -> list[str]:
    """Fill in each node's `rpc_host` (and `address` where its peers see another one) from the
    engine; the nodes that are not running here, in words."""
    facts = read(docker)
    missing = []
    for node in nodes:
        if node.get("rpc_host"):
            continue
        found = facts.node_container(node["name"])
        if found is None or found.state != "running":
            missing.append(f"{node['name']} is {found.state if found else 'not deployed'}")
            node["rpc_host"] = ""
            continue
        seen, rpc_host = address(facts, found, docker_network(str(node.get("network", ""))), bool(node.get("swarm")))
        node["rpc_host"] = rpc_host
        if seen and seen != rpc_host:
            node["address"] = seen
    return missing
