# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A scenario file checked against the inventory (every problem at once, before anything
changes), then run by the scenario module on the Docker host of its network, with that network's
nodes (names, ports, passwords; their addresses are read on the host), topology faults, miners and
hashrate shares. A Swarm network on several Docker hosts runs on all of them at once: the first
Swarm manager of the play conducts, every other host of the network is its agent
(plugins/module_utils/_hub.py). The other Docker hosts of the play skip."""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _scenario
from ansible_collections.peerlab.bitcoin.plugins.plugin_utils._deployment import DeploymentError, build, node_access


def run_token(secrets: list[str], run: int) -> str:
    """This run's token for the conductor and its agents: every host's action plugin runs in a
    worker forked by the same ansible-playbook process (`run`, its pid, with its start time), so
    each derives the same token, from the network's RPC passwords (secret, on the controller
    only); another run, or anyone without the passwords, gets another."""
    try:
        with open(f"/proc/{run}/stat", encoding="ascii") as handle:
            started = handle.read().rsplit(")", 1)[1].split()[19]  # field 22: the start time, in clock ticks
    except (OSError, IndexError):
        started = ""
    key = hashlib.sha256("\n".join(sorted(secrets)).encode()).digest()
    return hmac.new(key, f"peerlab-scenario-hub:{run}:{started}".encode(), hashlib.sha256).hexdigest()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("scenario", "source", "poll", "wallet", "hub_port"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        host = str(task_vars["inventory_hostname"])
        source = str(args.get("source") or "the scenario")
        try:
            context = build(task_vars, self._templar, self._loader, check=bool(self._task.check_mode))
        except DeploymentError as error:
            return dict(result, failed=True, msg=str(error))
        d = context.deployment
        names = {network.name: [node.name for node in network.nodes] for network in d.networks}
        try:
            checked = _scenario.parse(args.get("scenario"), source, names)
        except ValueError as error:
            return dict(result, failed=True, msg=str(error))
        network = next(network for network in d.networks if network.name == checked["network"])
        hosts = sorted({node.host for node in network.nodes})
        if network.chain != "regtest":
            return dict(result, failed=True, msg=f"{source}: scenarios run on regtest networks; '{network.name}' is {network.chain}")
        steps = {kind for step in checked["steps"] for kind in step}
        hub: dict[str, Any] = {"role": "alone"}
        nodes = node_access(context, network, host)
        conductor = hosts[0]
        if len(hosts) > 1:
            managers = [name for name in task_vars.get("ansible_play_hosts") or []
                        if name in (task_vars.get("groups") or {}).get("peerlab_swarm_managers", [])]
            if not network.swarm or not managers:
                return dict(result, failed=True, msg=f"{source}: network '{network.name}' spans Docker hosts {', '.join(hosts)}: "
                                                     "a scenario across hosts is conducted from a Swarm manager of the play "
                                                     "(peerlab_swarm_managers)")
            if steps & {"kill", "restart"}:
                return dict(result, failed=True, msg=f"{source}: kill and restart steps act on one Docker host's containers; on a "
                                                     "Swarm a killed task is replaced at once (pause a node with a fault instead)")
            conductor = sorted(managers)[0]
            if host == conductor:
                nodes = [dict(node, host=other) for other in hosts for node in node_access(context, network, other)]
                hub = {"role": "conductor", "agents": [other for other in hosts if other != host]}
            elif host in hosts:
                hub = {"role": "agent"}
            secrets = [context.passwords.get(node.container, "") for node in network.nodes]
            hub.update(port=int(args.get("hub_port") or 18450), token=run_token(secrets, os.getppid()))
        if host != conductor and hub["role"] != "agent":
            return dict(result, skipped=True, skip_reason=f"network {network.name} runs on {', '.join(hosts)}")
        module_args = {
            "nodes": nodes, "network": network.name, "p2p_port": network.p2p_port, "host": host, "hub": hub,
            "faults": [fault.as_dict() for fault in network.faults], "miners": list(network.miners), "shares": dict(network.shares),
            "scenario": checked, "observer_url": d.urls()["observer"] if d.settings.common.monitoring else "",
            "poll": float(args.get("poll", 0.1)), "docker_socket": d.settings.network.docker_socket}
        if args.get("wallet"):
            module_args["wallet"] = args["wallet"]
        answer = self._execute_module(module_name="peerlab.bitcoin.scenario", module_args=module_args, task_vars=task_vars)
        answer.pop("invocation", None)
        return dict(result, scenario=checked, **answer)
