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
    node or edge named) before any group is created.
  - The plays run on Docker hosts. Each node becomes a group named C(<network>-<node>) (also its
    container's name) holding the Docker host it runs on (and, for a Swarm network, the Swarm
    manager that runs its service); each network a group of its nodes' groups; C(peerlab_nodes)
    and C(peerlab_miners) group them all. So C(--limit lab) and C(--limit lab-n3) choose the
    Docker hosts that do the work, and the engine reads the same pattern per node.
  - Publishes the topology files it read as C(peerlab_topology_files); the engine reads them again
    when it runs (the file as it is then, validated by the same model).
  - The Docker hosts that run nodes must already be in the inventory; put them in a source that
    sorts before the topology file (for example C(01-hosts.yml)).
  - A network whose nodes are on hosts of the groups C(peerlab_swarm_managers) and
    C(peerlab_swarm_workers) runs as Swarm services; a network cannot mix Swarm hosts and
    standalone Docker hosts.
  - Makes sure the groups C(peerlab_engines), C(peerlab_monitoring), C(peerlab_swarm_managers)
    and C(peerlab_swarm_workers) exist (empty unless the hosts file fills them), so playbooks that
    target them skip quietly.
  - Node group names hold C(-), which Ansible calls invalid in group names; the repository's
    ansible.cfg sets C(force_valid_group_names = ignore) so it neither warns nor renames them.
  - The C(constructed) options are not offered, as nodes are groups, not hosts; host variables
    and keyed groups of nodes would have nothing to attach to.
  - See docs/topology.md for the format and docs/topology.schema.json for its JSON Schema.
author: peerlab developers (@peerlab)
requirements:
  - networkx (for generators)
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
from ansible.plugins.inventory import BaseInventoryPlugin
from ansible.utils.unsafe_proxy import wrap_var

from ..module_utils._topology import Network, TopologyError, parse

SWARM_GROUPS = ("peerlab_swarm_managers", "peerlab_swarm_workers")
FILES = "peerlab_topology_files"


class InventoryModule(BaseInventoryPlugin):
    NAME = "peerlab.bitcoin.topology"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and os.path.basename(path).endswith((".peerlab.yml", ".peerlab.yaml"))

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        known_hosts = set(inventory.hosts)
        swarm_hosts = {host.name for group in SWARM_GROUPS if group in inventory.groups
                       for host in inventory.groups[group].get_hosts()}
        managers = [host.name for host in inventory.groups["peerlab_swarm_managers"].get_hosts()] \
            if "peerlab_swarm_managers" in inventory.groups else []
        try:
            networks = parse(self.get_option("networks"), path, known_hosts=known_hosts,
                             taken_names=known_hosts | set(inventory.groups), swarm_hosts=swarm_hosts)
        except TopologyError as error:
            if not known_hosts:
                error.problems.append(f"{path}: no Docker hosts were in the inventory when this file was read; "
                                      "define them in a source that sorts before it (e.g. 01-hosts.yml)")
            raise AnsibleParserError("\n  - ".join([f"peerlab topology {path} is invalid:", *error.problems])) from None
        for group in ("peerlab_nodes", "peerlab_miners", "peerlab_engines", "peerlab_monitoring", *SWARM_GROUPS):
            inventory.add_group(group)
        for network in networks:
            self._add_network(network, managers[:1])
        files = list(inventory.groups["all"].get_vars().get(FILES) or [])
        inventory.set_variable("all", FILES, wrap_var([*files, os.path.realpath(path)]))

    def _add_network(self, network: Network, manager: list[str]) -> None:
        inventory = self.inventory
        group = inventory.add_group(network.name)
        for node in network.nodes:
            own = inventory.add_group(node.container)
            inventory.add_child(group, own)
            inventory.add_child("peerlab_nodes", own)
            if node.miner:
                inventory.add_child("peerlab_miners", own)
            for host in dict.fromkeys([node.host, *(manager if network.swarm else [])]):
                inventory.add_host(host, group=own)
