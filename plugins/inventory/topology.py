# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: topology
short_description: Bitcoin networks from a peerlab topology file
version_added: 0.1.0
description:
  - Reads a topology file (name ending in C(.peerlab.yml) or C(.peerlab.yaml)) that describes
    Bitcoin networks, with their chain, nodes, directed peer links and seeded graph generators.
  - Validates the whole file first and refuses it with every problem listed (file, network and
    node or edge named) before any host is created.
  - Makes one inventory host per Bitcoin node (named C(<network>-<node>), also its container
    name), one group per network, and the groups C(peerlab_nodes) and C(peerlab_miners).
  - The Docker hosts that run nodes must already be in the inventory; put them in a source that
    sorts before the topology file (for example C(01-hosts.yml)).
  - A network whose nodes are on hosts of the groups C(peerlab_swarm_managers) and
    C(peerlab_swarm_workers) runs as Swarm services (C(peerlab_swarm) is true for its nodes); a
    network cannot mix Swarm hosts and standalone Docker hosts.
  - Makes sure the groups C(peerlab_engines), C(peerlab_swarm_managers) and
    C(peerlab_swarm_workers) exist (empty unless the hosts file fills them), so playbooks that
    target them skip quietly.
  - See docs/topology.md for the format and docs/topology.schema.json for its JSON Schema.
author: peerlab developers (@peerlab)
requirements:
  - networkx (for generators)
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description: Marks the file as a peerlab topology.
    type: str
    required: true
    choices: [peerlab.bitcoin.topology]
  networks:
    description: Network name -> network definition (see docs/topology.md).
    type: dict
    required: true
"""

EXAMPLES = r"""
# inventories/local/02-topology.peerlab.yml
plugin: peerlab.bitcoin.topology
networks:
  lab:
    chain: regtest
    generators:
      - {type: ring, nodes: 5, prefix: n}
    edges:
      - [n1, n3]
"""

import os
from typing import Any

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable
from ansible.utils.unsafe_proxy import wrap_var

from ..module_utils._names import container as container_name
from ..module_utils._topology import Network, TopologyError, host_vars, parse

SWARM_GROUPS = ("peerlab_swarm_managers", "peerlab_swarm_workers")


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = "peerlab.bitcoin.topology"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and os.path.basename(path).endswith((".peerlab.yml", ".peerlab.yaml"))

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        known_hosts = set(inventory.hosts)
        swarm_hosts = {host.name for group in SWARM_GROUPS if group in inventory.groups
                       for host in inventory.groups[group].get_hosts()}
        try:
            networks = parse(self.get_option("networks"), path, known_hosts=known_hosts,
                             taken_names=known_hosts | set(inventory.groups), swarm_hosts=swarm_hosts)
        except TopologyError as error:
            if not known_hosts:
                error.problems.append(f"{path}: no Docker hosts were in the inventory when this file was read; "
                                      "define them in a source that sorts before it (e.g. 01-hosts.yml)")
            raise AnsibleParserError("\n  - ".join([f"peerlab topology {path} is invalid:", *error.problems])) from None
        for group in ("peerlab_nodes", "peerlab_miners", "peerlab_engines", *SWARM_GROUPS):
            inventory.add_group(group)
        for network in networks:
            self._add_network(network)

    def _add_network(self, network: Network) -> None:
        inventory = self.inventory
        group = inventory.add_group(network.name)
        edges = [[container_name(network.name, a), container_name(network.name, b)] for a, b in network.edges]
        group_vars: dict[str, object] = {
            "peerlab_network_chain": network.chain,
            "peerlab_network_nodes": [node.container for node in network.nodes],
            "peerlab_network_edges": edges,
            "peerlab_network_miners": [container_name(network.name, m) for m in network.miners],
            "peerlab_network_swarm": network.swarm,
            "peerlab_network_faults": [fault.as_dict() for fault in network.faults],
            "peerlab_network_shares": {container_name(network.name, m): share for m, share in network.shares.items()},
        }
        for key, value in group_vars.items():
            inventory.set_variable(group, key, wrap_var(value))
        strict = self.get_option("strict")
        for node in network.nodes:
            host = inventory.add_host(node.container, group=group)
            inventory.add_child("peerlab_nodes", host)
            if node.miner:
                inventory.add_child("peerlab_miners", host)
            hostvars = host_vars(network, node)
            for key, value in hostvars.items():
                inventory.set_variable(host, key, wrap_var(value))
            variables = inventory.get_host(host).get_vars()
            self._set_composite_vars(self.get_option("compose"), variables, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), variables, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, host, strict=strict)
