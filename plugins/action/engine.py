# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's controller side: the run's Deployment (plugin_utils/_deployment.py), this Docker
host's desired state (module_utils/_desired.py), the run lock, the refusals that span Docker hosts,
then the engine module on the host with its part. Also the steps that need every host's answer
(multi-host chains, links checked at both ends across hosts), which run here without a module.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _faults, _names
from ansible_collections.peerlab.bitcoin.plugins.module_utils._chain import best_tip
from ansible_collections.peerlab.bitcoin.plugins.module_utils._desired import host_spec
from ansible_collections.peerlab.bitcoin.plugins.module_utils._facts import EngineFacts
from ansible_collections.peerlab.bitcoin.plugins.module_utils._images import builds
from ansible_collections.peerlab.bitcoin.plugins.module_utils._lock import LockBusy, hold_run
from ansible_collections.peerlab.bitcoin.plugins.module_utils._peering import unverified
from ansible_collections.peerlab.bitcoin.plugins.module_utils._plan import plan
from ansible_collections.peerlab.bitcoin.plugins.module_utils._spec import HostSpec
from ansible_collections.peerlab.bitcoin.plugins.module_utils._typed import dump, load
from ansible_collections.peerlab.bitcoin.plugins.plugin_utils._deployment import Context, DeploymentError, build

CHANGING = ("present", "absent", "started", "stopped")
FACT = "peerlab_engine"
READ = "peerlab_engine_facts"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("state", "faults", "kill", "nodes_only", "blocks", "after", "adhoc", "network", "sweep"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        state = str(args.get("state", "present"))
        check = bool(self._task.check_mode)
        host = str(task_vars["inventory_hostname"])

        def lock(path: str, settings: Any) -> None:
            if state in CHANGING and not check:
                hold_run(path, os.getppid(), f"ansible-playbook on {self._task.get_name()!r}", settings.common.lock_timeout)

        try:
            context = build(task_vars, self._templar, self._loader, check=check, faults_extra=args.get("faults") or {}, lock=lock,
                            kill=list(args.get("kill") or []), nodes_only=bool(args.get("nodes_only")),
                            adhoc_faults=(str(args.get("network") or ""), list(args.get("adhoc") or [])),
                            need_credentials=state not in ("verify", "check", "access"))
        except DeploymentError as error:
            return dict(result, failed=True, msg=str(error))
        except LockBusy as busy:
            return dict(result, failed=True, msg=str(busy))
        except OSError as error:
            return dict(result, failed=True, msg=f"peerlab cannot read its inputs: {error}")
        if state == "verify":
            return dict(result, **verify(context, task_vars))
        if state == "check":
            return dict(result, changed=False, msg="settings and topology checked")
        if state == "access":
            return dict(result, changed=False, nodes=access(context, host))
        spec = host_spec(context.deployment, host, whole_stack=not args.get("nodes_only"))
        if args.get("sweep"):
            spec = dataclasses.replace(spec, sweep=True)
        hostvars = task_vars.get("hostvars") or {}
        read = {}
        for name in task_vars.get("ansible_play_hosts_all") or []:
            found = hostvars[name].get(READ) if name in hostvars else None
            if found:
                read[name] = load(EngineFacts, found)
        if state == "present" and read:
            refusals = cross_host_refusals(context, read)
            if refusals:
                return dict(result, failed=True, msg="refused before any change: " + "; ".join(refusals), refusals=refusals)
        module_args: dict[str, Any] = {"state": state, "spec": dump(spec), "secrets": secrets(context, spec),
                                       "remote": remote_addresses(read, host)}
        if state == "chain":
            work = chain_work(spec, context, task_vars)
            if not work:
                return dict(result, changed=False, skipped_reason="nothing to mine here")
            module_args.update(state="mine", miners=[work[0]], blocks=work[1])
        elif state == "tip":
            tips = tips_for(spec, task_vars, str(args.get("after", "chain")))
            if not tips:
                return dict(result, changed=False, skipped_reason="no tip to wait for on this host")
            module_args.update(state="tip", tips=tips, timeout=context.deployment.settings.network.tip_timeout)
        elif state == "mine":
            miners = chosen_miners(context, spec)
            if not miners:
                return dict(result, changed=False, skipped_reason="no miner of this run on this host")
            module_args.update(miners=miners, blocks=int(args.get("blocks", 1)))
        answer = self._execute_module(module_name="peerlab.bitcoin.engine", module_args=module_args, task_vars=task_vars)
        answer.pop("invocation", None)
        answer["builds"] = builds(answer.get("missing_images") or [], context.deployment.tags)
        compiled = [build for build in answer["builds"] if build.get("from_source")]
        build_host = str(task_vars.get("images_build_host") or "")
        if compiled and not answer.get("failed") and build_host in ("", host):
            # Compiling takes many minutes and needs the source on the controller: refused here,
            # while nothing has changed, with the command that makes the image.
            return dict(result, failed=True, changed=False, msg="; ".join(
                f"{host} lacks {build['tag']}, which is compiled from source: run `{build['from_source']}` on the controller "
                "(docs/images.md); nothing was changed" for build in compiled))
        key = FACT if state in ("present", "started", "status") else f"{FACT}_{state}"
        urls = context.deployment.urls()
        if any(note.startswith("Grafana skipped") for note in answer.get("notes") or []):
            urls["grafana"] = ""
        answer["ansible_facts"] = {key: {"host": host, "state": state, **{name: answer.get(name) for name in (
            "changes", "nodes", "tips", "addresses", "container_states", "notes", "missing_images", "builds", "rows")}},
            "peerlab_urls": urls, "peerlab_monitoring_host": context.deployment.monitoring_host()}
        answer["summary"] = summary(host, answer.get("changes") or {}, answer.get("notes") or [], answer.get("missing_images") or [])
        if answer.get("failed"):
            # A failure says what failed and what had changed by then, not every node's state.
            kept = ("failed", "msg", "changed", "changes", "refusals", "notes", "summary", "diff", "exception")
            answer = {key: value for key, value in answer.items() if key in kept}
        return dict(result, **answer)


def secrets(context: Context, spec: HostSpec) -> dict[str, Any]:
    """This host's secrets only: its nodes' RPC passwords (and the Grafana admin's and Alertmanager's
    where they run)."""
    here = {node.container for node in spec.nodes}
    return {"rpc": {name: password for name, password in context.passwords.items() if name in here},
            "grafana": context.grafana_password if any(entry.secret == "grafana" for entry in spec.files) else "",
            "alertmanager": context.alertmanager_password if any(entry.secret == "alertmanager" for entry in spec.files) else ""}


def cross_host_refusals(context: Context, read: dict[str, EngineFacts]) -> list[str]:
    """Every host's refusals, from what each engine held when the run read them all: one host's
    conflict stops every host before anything changes."""
    refusals = []
    for name, facts in sorted(read.items()):
        refusals += plan(host_spec(context.deployment, name), facts).refusals
    return sorted(set(refusals))


def remote_addresses(read: dict[str, EngineFacts], host: str) -> dict[str, str]:
    """Node containers on the other Docker hosts -> the address their peers see (their task's overlay address)."""
    addresses = {}
    for name, facts in read.items():
        if name == host:
            continue
        for found in facts.node_containers():
            network = found.labels.get(_names.NETWORK, "")
            where = found.networks.get(_names.docker_network(network), "")
            if where and found.running:
                addresses[_names.labelled_container(found.labels)] = where
    return addresses


def _facts_of(task_vars: dict[str, Any], key: str = FACT) -> dict[str, dict[str, Any]]:
    hostvars = task_vars.get("hostvars") or {}
    return {host: dict(hostvars[host].get(key) or {}) for host in task_vars.get("ansible_play_hosts") or [] if host in hostvars}


def _states(task_vars: dict[str, Any], key: str = FACT) -> dict[str, dict[str, Any]]:
    states: dict[str, dict[str, Any]] = {}
    for found in _facts_of(task_vars, key).values():
        states.update(found.get("nodes") or {})
    return states


def chain_work(spec: HostSpec, context: Context, task_vars: dict[str, Any]) -> tuple[str, int] | None:
    """(miner, blocks) when this host has the first miner of a regtest network that spans Docker
    hosts and that network is below its initial height (every host's links are verified by now)."""
    states = _states(task_vars)
    here = {node.container for node in spec.nodes}
    for part in spec.networks:
        if part.chain != "regtest" or len(part.hosts) < 2 or part.miner not in here or _faults.split(_faults.from_dicts(list(part.faults))):
            continue
        _tip, height = best_tip({name: state for name, state in states.items() if name in part.nodes})
        if 0 <= height < context.deployment.settings.network.initial_height:
            return part.miner, context.deployment.settings.network.initial_height - height
    return None


def chosen_miners(context: Context, spec: HostSpec) -> list[str]:
    """The node that mines in each network of the run (its first chosen miner, else its first chosen
    node), where that node is on this host."""
    here = {node.container for node in spec.nodes}
    chosen = []
    for network in context.deployment.networks:
        if network.chain != "regtest":
            continue
        members = [node.container for node in network.nodes if node.container in context.deployment.selected]
        miners = [_names.container(network.name, miner) for miner in network.miners]
        pick = next((name for name in miners if name in members), members[0] if members else "")
        if pick in here:
            chosen.append(pick)
    return chosen


def tips_for(spec: HostSpec, task_vars: dict[str, Any], after: str) -> dict[str, str]:
    """The tip each network of this host's nodes must reach: after `mine`, what its miner mined;
    after `chain` (networks that span Docker hosts), its first miner's, else its highest node's."""
    mined: dict[str, str] = {}
    for found in _facts_of(task_vars, f"{FACT}_{after if after == 'mine' else 'chain'}").values():
        mined.update(found.get("tips") or {})
    if after == "mine":
        return {part.name: mined[part.name] for part in spec.networks if part.name in mined}
    states = _states(task_vars)
    tips = {}
    for part in spec.networks:
        if part.chain != "regtest" or len(part.hosts) < 2 or _faults.split(_faults.from_dicts(list(part.faults))):
            continue
        tip = mined.get(part.name) or best_tip({name: state for name, state in states.items() if name in part.nodes})[0]
        if tip:
            tips[part.name] = tip
    return tips


def access(context: Context, host: str) -> list[dict[str, Any]]:
    """This run's nodes on this Docker host, for playbooks that act on them with modules of their
    own (attack.yml): names, chain, P2P port, Docker network. No secret."""
    found = []
    for network in context.deployment.networks:
        for node in network.nodes:
            if node.host == host and node.container in context.deployment.selected:
                found.append({"container": node.container, "network": network.name, "node": node.name, "chain": network.chain,
                              "p2p_port": network.p2p_port, "docker_network": _names.docker_network(network.name),
                              "swarm": network.swarm})
    return found


def verify(context: Context, task_vars: dict[str, Any]) -> dict[str, Any]:
    """Every link checked at both ends across Docker hosts, from what each host's engine read: a
    host sees both ends only of the links within it. Links a fault cuts, and paused nodes, are not
    checked; a multi-host regtest network's nodes share one tip."""
    reports = _facts_of(task_vars)
    states = {**_states(task_vars), **_states(task_vars, f"{FACT}_tip")}
    addresses: dict[str, str] = {}
    for found in reports.values():
        addresses.update(found.get("addresses") or {})
    d = context.deployment
    nodes = []
    problems: list[str] = []
    for network in d.networks:
        if len({node.host for node in network.nodes}) < 2:
            continue  # its host checked both ends
        faults = d.network_faults(network)
        paused = _faults.paused(faults)
        chosen = [node.container for node in network.nodes if node.container in d.selected]
        tips = {states.get(name, {}).get("bestblockhash") for name in chosen}
        if network.chain == "regtest" and not _faults.split(faults) and len(tips) > 1:
            problems.append(f"network {network.name}: its nodes are on {len(tips)} tips: "
                            + ", ".join(f"{name} at {states.get(name, {}).get('blocks')}" for name in chosen))
        for node in network.nodes:
            if node.container not in d.selected or node.name in paused:
                continue
            peers = [f"{_names.container(network.name, peer)}:{network.p2p_port}" for peer in node.peers_out
                     if not (_faults.cut(faults, node.name, peer) or _faults.frozen(faults, node.name, peer))]
            nodes.append({"name": node.container, "rpc_host": addresses.get(node.container, ""), "peers": peers})
    problems += unverified(nodes, states) if nodes else []
    return {"changed": False, "failed": bool(problems), "msg": "links not verified: " + "; ".join(problems) if problems else "ok"}


def summary(host: str, changes: dict[str, list[str]], notes: list[str], missing: list[str]) -> list[str]:
    lines = [f"{host}: {name}: {what}" for name, whats in sorted(changes.items()) for what in whats]
    lines += [f"{host}: {note}" for note in notes]
    if missing:
        lines.append(f"{host}: missing images {', '.join(missing)} (the images role builds or carries them)")
    return lines or [f"{host}: nothing to change"]
