# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Regtest traffic on this Docker host's networks: the run's nodes (names, ports, passwords; their
addresses are read on the host), each network's miners and hashrate shares from the topology (or
this run's `shares`), then the traffic module once per network."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.peerlab.bitcoin.plugins.module_utils._names import container
from ansible_collections.peerlab.bitcoin.plugins.plugin_utils._deployment import DeploymentError, build, node_access

PASSED = ("seed", "blocks", "fee_rates", "duration", "block_interval", "tx_interval", "wallet", "rpc_timeout")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset((*PASSED, "shares", "pairs"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        host = str(task_vars["inventory_hostname"])
        try:
            context = build(task_vars, self._templar, self._loader, check=bool(self._task.check_mode))
        except DeploymentError as error:
            return dict(result, failed=True, msg=str(error))
        runs = []
        for network in context.deployment.networks:
            nodes = node_access(context, network, host)
            if network.chain != "regtest" or not nodes:
                continue
            if len({node.host for node in network.nodes}) > 1:
                return dict(result, failed=True, msg=f"network {network.name} spans Docker hosts: traffic runs on one Docker host's nodes")
            shares = args.get("shares")
            module_args = {key: args[key] for key in PASSED if args.get(key) is not None}
            module_args.update(
                nodes=nodes, miners=[container(network.name, miner) for miner in network.miners],
                shares={container(network.name, name): share for name, share in (shares if shares is not None else network.shares).items()},
                pairs=[[container(network.name, name) for name in pair] for pair in args.get("pairs") or []],
                docker_socket=context.deployment.settings.network.docker_socket)
            answer = self._execute_module(module_name="peerlab.bitcoin.traffic", module_args=module_args, task_vars=task_vars)
            answer.pop("invocation", None)
            runs.append(dict(answer, network=network.name))
            if answer.get("failed"):
                break
        failed = [run for run in runs if run.get("failed")]
        summary = ([f"{run['network']}: {run.get('summary') or run.get('msg')}" for run in runs]
                   or [f"{host}: no regtest node of this run here"])
        return dict(result, changed=any(run.get("changed") for run in runs), failed=bool(failed), runs=runs, summary=summary,
                    msg="; ".join(str(run.get("msg")) for run in failed) if failed else "")
