# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for experiments: network faults (plugins/module_utils/_faults.py) - per Docker host plans,
the networks a fault splits, ad hoc faults from playbooks/fault.yml - and scenarios
(plugins/module_utils/_scenario.py). docs/experiments.md."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _faults, _scenario
from ansible_collections.peerlab.bitcoin.plugins.module_utils._names import container as container_name

DOCUMENTATION_TEXT = """
network_faults(hostvars, host, extra): a node's network's faults (topology's plus extra: network -> entries).
split_networks(hosts, hostvars, extra): networks whose faults keep them from one tip (partition, pause).
fault_specs(hosts, hostvars, docker_host, extra): the nodes option of peerlab.bitcoin.faults for one Docker host.
latency_hosts(hosts, hostvars, extra): {host, image} per Docker host whose kernel must have netem.
fault_hosts(hosts, hostvars, engines, extra): the Docker hosts with faults to hold or holders to remove.
adhoc_faults(hosts, hostvars, network, entries): a fault.yml run's faults validated like the topology's,
  as {network: entries} (kill entries apart, under the key '_kill': node containers).
paused_now(results): node containers a faults task would unpause (still paused in check mode).
scenario_check(document, source, hosts, hostvars): a scenario validated against the inventory (every problem at once).
scenario_settings(hosts, hostvars, network): peerlab.bitcoin.scenario's options from the inventory, and the Docker host.
"""


def _vars(hosts: list[str], hostvars: Any) -> list[tuple[str, Any]]:
    return [(host, hostvars[host]) for host in hosts]


def network_faults(hostvars: Any, host: str, extra: dict[str, Any] | None = None) -> list[_faults.Fault]:
    """A node's network's faults: its topology's, plus those a fault.yml run adds (`extra`: network -> entries)."""
    variables = hostvars[host]
    network = variables["peerlab_network"]
    return _faults.merge(_faults.from_dicts(variables.get("peerlab_network_faults") or []),
                         _faults.from_dicts((extra or {}).get(network) or []))


def split_networks(hosts: list[str], hostvars: Any, extra: dict[str, Any] | None = None) -> list[str]:
    """The networks whose faults keep their nodes from one tip (a partition, a paused node): no tip wait."""
    return sorted({hostvars[host]["peerlab_network"] for host in hosts if _faults.split(network_faults(hostvars, host, extra))})


def fault_specs(hosts: list[str], hostvars: Any, docker_host: str, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The `nodes` option of peerlab.bitcoin.faults for one Docker host: each node's fault plan
    (from every node's address as its peers see it) and whether it is paused."""
    specs = []
    for host, variables in _vars(hosts, hostvars):
        if variables["peerlab_docker_host"] != docker_host:
            continue
        faults = network_faults(hostvars, host, extra)
        addresses = {hostvars[peer]["peerlab_node"]: hostvars[peer].get("_network_address") or hostvars[peer].get("_network_ip") or ""
                     for peer in hostvars[host].get("peerlab_network_nodes") or [] if peer in hostvars}
        node = variables["peerlab_node"]
        plan = _faults.node_plan(faults, node, addresses.get(node, ""), addresses, variables["peerlab_p2p_port"])
        specs.append({"network": variables["peerlab_network"], "node": node, "commands": plan.commands, "spec": plan.spec,
                      "faults": list(plan.faults), "pause": node in _faults.paused(faults)})
    return specs


def fault_hosts(hosts: list[str], hostvars: Any, engines: Any = None, extra: dict[str, Any] | None = None) -> list[str]:
    """The Docker hosts the faults task must visit: those with a node that has a fault or a pause, and,
    from the engines read at a deploy's start, those holding a fault holder or a paused node container
    of these networks (every Docker host of the play when the engines were not read)."""
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._plan import looped

    every = sorted({hostvars[host]["peerlab_docker_host"] for host in hosts})
    if not engines:
        return every
    networks = {hostvars[host]["peerlab_network"] for host in hosts}
    wanted = {hostvars[host]["peerlab_docker_host"] for host in hosts
              if hostvars[host]["peerlab_node"] in {fault.node for fault in network_faults(hostvars, host, extra)}
              or _faults.side(network_faults(hostvars, host, extra), hostvars[host]["peerlab_node"]) is not None}
    for result in looped(engines):
        for container in result.get("containers") or []:
            labels = container.get("Labels") or {}
            if labels.get("peerlab.network") in networks and (
                    labels.get("peerlab.role") == "fault" or (labels.get("peerlab.role") == "node" and container.get("State") == "paused")):
                wanted.add(result.get("item"))
    return [host for host in every if host in wanted]


def latency_hosts(hosts: list[str], hostvars: Any, extra: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """{host, image} per Docker host where a latency fault applies (its kernel must have netem)."""
    found: dict[str, str] = {}
    for host, variables in _vars(hosts, hostvars):
        faults = _faults.latency(network_faults(hostvars, host, extra))
        if any(fault.node == variables["peerlab_node"] for fault in faults):
            found.setdefault(variables["peerlab_docker_host"], variables.get("images_node_image") or "auto")
    return [{"host": host, "image": image} for host, image in sorted(found.items())]


def adhoc_faults(hosts: list[str], hostvars: Any, network: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Validate a fault.yml run's faults with the topology's words; every problem at once. No
    entries (clear=true): every network back to its topology's faults."""
    if not entries:
        return {"_kill": []}
    networks = sorted({hostvars[host]["peerlab_network"] for host in hosts})
    if not network and len(networks) == 1:
        network = networks[0]
    if network not in networks:
        raise AnsibleFilterError(f"fault.yml: network {network!r} is not in this inventory's play "
                                 f"(give -e network=NAME; networks: {', '.join(networks)})")
    nodes = [hostvars[host]["peerlab_node"] for host in hosts if hostvars[host]["peerlab_network"] == network]
    problems: list[str] = []
    faults = _faults.parse(entries, nodes, lambda where, message: problems.append(f"{where}: {message}"),
                           f"fault.yml: network '{network}'", adhoc=True)
    if problems:
        raise AnsibleFilterError("invalid fault:\n  - " + "\n  - ".join(problems))
    return {network: [fault.as_dict() for fault in faults if fault.kind != "kill"],
            "_kill": [container_name(network, fault.node) for fault in faults if fault.kind == "kill"]}


def paused_now(results: Any) -> list[str]:
    """Node containers a faults task (looped results) would unpause: in check mode, still paused."""
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._plan import looped

    return sorted(name for result in looped(results) for name, node in (result.get("nodes") or {}).items()
                  if "unpause" in node.get("actions", []))


def scenario_check(document: Any, source: str, hosts: list[str], hostvars: Any) -> dict[str, Any]:
    networks: dict[str, list[str]] = {}
    for host in hosts:
        networks.setdefault(hostvars[host]["peerlab_network"], []).append(hostvars[host]["peerlab_node"])
    try:
        checked = _scenario.parse(document, source, networks)
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from None
    members = [hostvars[host] for host in hosts if hostvars[host]["peerlab_network"] == checked["network"]]
    chains = {variables["peerlab_chain"] for variables in members}
    docker_hosts = sorted({variables["peerlab_docker_host"] for variables in members})
    if chains != {"regtest"}:
        raise AnsibleFilterError(f"{source}: scenarios run on regtest networks; '{checked['network']}' is {', '.join(sorted(chains))}")
    if len(docker_hosts) != 1:
        raise AnsibleFilterError(f"{source}: network '{checked['network']}' spans Docker hosts {', '.join(docker_hosts)}; a scenario "
                                 "runs on one Docker host's nodes (its faults and kills act through that host's engine)")
    return checked


def scenario_settings(hosts: list[str], hostvars: Any, network: str) -> dict[str, Any]:
    """What peerlab.bitcoin.scenario takes from the inventory for one network: its nodes (by node
    name, with RPC access and outbound peers), P2P port, topology faults, miners and hashrate shares
    (by node name), and the Docker host they share."""
    nodes = []
    members = [(host, variables) for host, variables in _vars(hosts, hostvars) if variables["peerlab_network"] == network]
    for host, variables in members:
        entry = {"node": variables["peerlab_node"], "name": host, "rpc_host": variables.get("_network_ip") or "",
                 "rpc_port": variables["peerlab_rpc_port"], "rpc_password": variables["_network_password"],
                 "peers": [f"{peer}:{variables['peerlab_p2p_port']}" for peer in variables["peerlab_peers_out"]]}
        if variables.get("_network_address"):
            entry["address"] = variables["_network_address"]
        nodes.append(entry)
    first = members[0][1]
    short = {host: variables["peerlab_node"] for host, variables in members}
    return {"nodes": nodes, "p2p_port": first["peerlab_p2p_port"], "docker_host": first["peerlab_docker_host"],
            "faults": list(first.get("peerlab_network_faults") or []),
            "miners": [short[miner] for miner in first.get("peerlab_network_miners") or [] if miner in short],
            "shares": {short[miner]: share for miner, share in (first.get("peerlab_network_shares") or {}).items() if miner in short}}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "network_faults": network_faults,
            "split_networks": split_networks,
            "fault_specs": fault_specs,
            "latency_hosts": latency_hosts,
            "fault_hosts": fault_hosts,
            "adhoc_faults": adhoc_faults,
            "paused_now": paused_now,
            "scenario_check": scenario_check,
            "scenario_settings": scenario_settings,
        }
