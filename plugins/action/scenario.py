# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A scenario file checked against the inventory (every problem at once, before anything
changes), then run by the scenario module on the Docker host of its network, with that network's
nodes (names, ports, passwords; their addresses are read on the host), topology faults, miners and
hashrate shares. The other Docker hosts of the play skip."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _scenario
from ansible_collections.peerlab.bitcoin.plugins.plugin_utils._deployment import DeploymentError, build, node_access


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("scenario", "source", "poll", "wallet"))

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
        if len(hosts) != 1:
            return dict(result, failed=True, msg=f"{source}: network '{network.name}' spans Docker hosts {', '.join(hosts)}; a scenario "
                                                 "runs on one Docker host's nodes (its faults and kills act through that host's engine)")
        if hosts[0] != host:
            return dict(result, skipped=True, skip_reason=f"network {network.name} runs on {hosts[0]}")
        module_args = {
            "nodes": node_access(context, network, host), "network": network.name, "p2p_port": network.p2p_port,
            "faults": [fault.as_dict() for fault in network.faults], "miners": list(network.miners), "shares": dict(network.shares),
            "scenario": checked, "observer_url": d.urls()["observer"] if d.settings.common.monitoring else "",
            "poll": float(args.get("poll", 0.1)), "docker_socket": d.settings.network.docker_socket}
        if args.get("wallet"):
            module_args["wallet"] = args["wallet"]
        answer = self._execute_module(module_name="peerlab.bitcoin.scenario", module_args=module_args, task_vars=task_vars)
        answer.pop("invocation", None)
        return dict(result, scenario=checked, **answer)
