# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A run's Deployment (module_utils/_desired.py) from Ansible: the only code that knows Ansible's
variables and groups. The engine's action plugins (engine, traffic, scenario) build one per task;
everything after it is typed.

What it reads: the roles' settings (module_utils/_settings.py names them), the inventory's groups
(Docker hosts, Swarm managers and workers, peerlab_monitoring), the topology files the inventory
plugin parsed (read again here: a file an edit changed while this run waited for its lock counts
as it is now), `--limit` (read per node, plugin_utils/_selection.py), and the controller's
credentials files (under their lock).
"""

from __future__ import annotations

import os
import secrets as random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _alertmanager, _credentials, _images
from ansible_collections.peerlab.bitcoin.plugins.module_utils._desired import Deployment, Hosts, Owner, Paths
from ansible_collections.peerlab.bitcoin.plugins.module_utils._lock import locked
from ansible_collections.peerlab.bitcoin.plugins.module_utils._login import hash_password
from ansible_collections.peerlab.bitcoin.plugins.module_utils._rpcauth import rpcauth_line
from ansible_collections.peerlab.bitcoin.plugins.module_utils._settings import Settings, SettingsError
from ansible_collections.peerlab.bitcoin.plugins.module_utils._settings import problems as setting_problems
from ansible_collections.peerlab.bitcoin.plugins.module_utils._topology import TopologyError, parse
from ansible_collections.peerlab.bitcoin.plugins.plugin_utils import _selection

# One run at a time per inventory: this file in its secrets directory (module_utils/_lock.py).
RUN_LOCK = ".peerlab-run.lock"
# The collection's root: plugins/plugin_utils/ is two levels down.
ROOT = Path(__file__).resolve().parents[2]
SWARM_GROUPS = ("peerlab_swarm_managers", "peerlab_swarm_workers")

# Variables earlier versions read, and what took their place. Set by a user (host or group vars,
# -e), they would be silently ignored: refused instead, by name.
RETIRED: dict[str, str] = {
    "peerlab_conf_lines": "a node's bitcoin.conf lines are rendered from its topology entry (conf:) and checked there",
    "peerlab_conf": "a node's bitcoin.conf keys come from its topology entry (conf:)",
    "peerlab_container": "a node's container is named <network>-<node> by the topology",
    "peerlab_docker_host": "a node's Docker host is its topology entry's host:",
    "peerlab_peers_out": "a node's links are the topology's edges",
    "images_node_image": "node images are tagged by what goes into them (module_utils/_images.py)",
    "graphite_host": "the monitoring host is the first host of group peerlab_monitoring",
    "grafana_host": "the monitoring host is the first host of group peerlab_monitoring",
    "portal_host": "the monitoring host is the first host of group peerlab_monitoring",
    "images_monitoring_host": "the monitoring host is the first host of group peerlab_monitoring",
    "network_swarm_manager": "the Swarm manager is the first host of group peerlab_swarm_managers",
    "network_peers_dir": "peers files live under peerlab_state_dir",
    "collector_dir": "the collectors' configuration lives under peerlab_state_dir",
    "grafana_dir": "Grafana's provisioning lives under peerlab_state_dir",
    "portal_dir": "the portal's configuration lives under peerlab_state_dir",
    "collector_network": "the collectors use graphite_network",
    "grafana_network": "Grafana uses graphite_network",
    "collector_carbon": "the collectors send to graphite_container",
    "graphite_image": "the images role builds Graphite's image (images_graphite_repository)",
    "collector_image": "the images role builds the collector's image (images_collector_repository)",
    "portal_image": "the images role builds the portal's image (images_portal_repository)",
    # The bus's and the observer's variables, once the collector role's.
    **{f"collector_{old}": f"renamed observer_{new} (the bus and the observer have their own role, peerlab.bitcoin.observer)"
       for old, new in (("bus_container", "bus_container"), ("observer_container", "container"), ("events_publish", "events_publish"),
                        ("observer_prometheus_publish", "prometheus_publish"), ("bus_memory", "bus_memory"),
                        ("observer_memory", "memory"), ("events_volume", "events_volume"), ("archive_hours", "archive_hours"),
                        ("detectors", "detectors"))},
}


class DeploymentError(ValueError):
    """The run cannot go on: every problem, in words."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n  - ".join(["peerlab cannot run:", *problems]))
        self.problems = problems


@dataclass
class Context:
    """What the action plugin needs besides the Deployment: the secrets for one host, and where things are."""
    deployment: Deployment
    passwords: dict[str, str]          # node container -> its peerlab RPC password
    grafana_password: str
    secrets_dir: str
    lock_file: str
    alertmanager_password: str = ""


def value_reader(templar: Any, task_vars: dict[str, Any]) -> Any:
    """value_of(name): a variable's templated value, KeyError when it is not defined."""
    engine = templar.copy_with_new_env(available_variables=task_vars)

    def value_of(name: str) -> Any:
        if name not in task_vars:
            raise KeyError(name)
        return engine.template(task_vars[name])

    return value_of


def retired(task_vars: dict[str, Any]) -> list[str]:
    return [f"{name} is set (by -e, host or group variables) but peerlab no longer reads it: {why}"
            for name, why in RETIRED.items() if name in task_vars]


def hosts_of(task_vars: dict[str, Any], value_of: Any) -> Hosts:
    groups = task_vars.get("groups") or {}
    hostvars = task_vars.get("hostvars") or {}
    names = tuple(sorted(groups.get("all") or []))
    leaving = tuple(sorted(host for host in names if not _bool(hostvars.get(host, {}).get("swarm_member", True))))
    local = tuple(sorted(host for host in names if hostvars.get(host, {}).get("ansible_connection") == "local"
                         or host in ("localhost", "127.0.0.1")))
    return Hosts(names=names, managers=tuple(groups.get("peerlab_swarm_managers") or ()),
                 workers=tuple(groups.get("peerlab_swarm_workers") or ()), leaving=leaving,
                 monitoring=tuple(groups.get("peerlab_monitoring") or ()), local=local)


def _bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("true", "yes", "on", "1")


def topology(task_vars: dict[str, Any], hosts: Hosts) -> tuple[Any, ...]:
    """Every network of the inventory, read from the topology files its inventory plugin parsed."""
    files = [str(path) for path in task_vars.get("peerlab_topology_files") or []]
    if not files:
        raise DeploymentError(["the inventory has no peerlab topology file (a *.peerlab.yml with plugin: peerlab.bitcoin.topology); "
                               "docs/topology.md"])
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._edit import load, plain

    networks: list[Any] = []
    problems: list[str] = []
    for path in files:
        try:
            document = load(path)
            networks += parse(plain(document.networks()), path, known_hosts=set(hosts.names), taken_names=set(hosts.names),
                              swarm_hosts=set(hosts.managers + hosts.workers))
        except TopologyError as error:
            problems += error.problems
        except (OSError, ValueError) as error:
            problems.append(f"{path}: {error}")
    if problems:
        raise DeploymentError(problems)
    return tuple(networks)


def selection(task_vars: dict[str, Any], networks: tuple[Any, ...]) -> tuple[frozenset[str], bool]:
    """The node containers `--limit` selects (every node without it) and whether a limit applies."""
    limit = task_vars.get("ansible_limit")
    node_groups: dict[str, set[str]] = {"peerlab_nodes": set(), "peerlab_miners": set()}
    placed = {}
    for network in networks:
        node_groups.setdefault(network.name, set())
        for node in network.nodes:
            node_groups[node.container] = {node.container}
            node_groups[network.name].add(node.container)
            node_groups["peerlab_nodes"].add(node.container)
            if node.miner:
                node_groups["peerlab_miners"].add(node.container)
            placed[node.container] = node.host
    groups = {name: list(members) for name, members in (task_vars.get("groups") or {}).items() if name not in node_groups}
    chosen = _selection.select(str(limit) if limit else None, node_groups, placed, groups)
    return frozenset(chosen), bool(limit) and chosen != set(placed)


def lab_id(settings: Settings, secrets_dir: str, write: bool) -> str:
    """The inventory's owner id: peerlab_lab_id, else the one kept in its secrets directory (made
    on first use: it survives moving the repository; a new clone is a new owner)."""
    if settings.common.lab_id:
        return settings.common.lab_id
    path = os.path.join(secrets_dir, "lab-id")
    with locked(path):
        try:
            with open(path, encoding="ascii") as handle:
                found = handle.read().strip()
            if found:
                return found
        except FileNotFoundError:
            pass
        made = random.token_hex(6)
        if write:
            os.makedirs(secrets_dir, mode=0o700, exist_ok=True)
            with open(path, "w", encoding="ascii") as handle:
                handle.write(made + "\n")
            os.chmod(path, 0o600)
        return made


def adhoc(networks: tuple[Any, ...], network: str, entries: list[Any]) -> tuple[dict[str, Any], list[str]]:
    """A fault.yml run's faults ({network: entries} beside the topology's) and kills (node
    containers), validated with the topology's words, every problem at once."""
    from ansible_collections.peerlab.bitcoin.plugins.module_utils import _faults

    if not entries:
        return {}, []
    names = sorted(item.name for item in networks)
    if not network and len(names) == 1:
        network = names[0]
    if network not in names:
        raise DeploymentError([f"fault.yml: network {network!r} is not in this inventory (give -e network=NAME; networks: "
                               f"{', '.join(names)})"])
    nodes = [node.name for item in networks if item.name == network for node in item.nodes]
    problems: list[str] = []
    faults = _faults.parse(entries, nodes, lambda where, message: problems.append(f"{where}: {message}"),
                           f"fault.yml: network '{network}'", adhoc=True)
    if problems:
        raise DeploymentError(problems)
    return ({network: [fault.as_dict() for fault in faults if fault.kind != "kill"]},
            [f"{network}-{fault.node}" for fault in faults if fault.kind == "kill"])


def build(task_vars: dict[str, Any], templar: Any, loader: Any, *, check: bool, faults_extra: dict[str, Any] | None = None,
          kill: list[str] | None = None, nodes_only: bool = False, need_credentials: bool = True,
          adhoc_faults: tuple[str, list[Any]] | None = None, lock: Callable[[str, Settings], None] | None = None) -> Context:
    """The run's Deployment (and this host's secrets) from the task's variables. `lock(path,
    settings)` is called with the inventory's run lock before the topology and the credentials are
    read: a run that waited for another reads what that one left."""
    problems = retired(task_vars)
    value_of = value_reader(templar, task_vars)
    try:
        settings = Settings.from_variables(value_of)
    except SettingsError as error:
        problems += error.problems
        settings = Settings()
    if problems:
        raise DeploymentError(problems)
    problems += setting_problems(settings, _detectors())
    hosts = hosts_of(task_vars, value_of)
    asked_faults, asked_kill = dict(faults_extra or {}), list(kill or [])

    def model() -> tuple[tuple[Any, ...], frozenset[str], bool, dict[str, Any], list[str]]:
        """The topology as its files are now, checked with this run's inputs (every problem at once)."""
        networks = topology(task_vars, hosts)
        selected, limited = selection(task_vars, networks)
        found = list(problems)
        leaving = sorted(node.container for network in networks for node in network.nodes
                         if node.container in selected and node.host in hosts.leaving)
        if leaving:
            found.append(f"{', '.join(leaving)} are placed on hosts that leave the Swarm (swarm_member: false): place them "
                         "on another host in the topology, or keep their host in the Swarm")
        found += placement_problems(settings, hosts, networks)
        found += fault_problems(networks, asked_faults, asked_kill)
        extra, killed = adhoc(networks, *adhoc_faults) if adhoc_faults and adhoc_faults[1] else ({}, [])
        if found:
            raise DeploymentError(found)
        return networks, selected, limited, {**asked_faults, **extra}, [*asked_kill, *killed]

    # Everything is checked before anything is written (the lock file included); the topology is
    # read again once the run holds the inventory's lock.
    networks, selected, limited, faults_extra, kill = model()
    secrets_dir = os.path.expanduser(settings.common.secrets_dir)
    lock_file = os.path.join(secrets_dir, RUN_LOCK)
    if lock is not None:
        lock(lock_file, settings)
        networks, selected, limited, faults_extra, kill = model()
    owner = Owner(lab_id(settings, secrets_dir, write=not check), _inventory_name(task_vars))
    vault = _Vault(loader)
    rpcauth: dict[str, str] = {}
    passwords: dict[str, str] = {}
    grafana_password = ""
    alertmanager_password = alertmanager_login = ""
    login = ""
    if need_credentials:
        nodes = sorted(node.container for network in networks for node in network.nodes if node.container in selected)
        stored, _made = _credentials.update(os.path.expanduser(settings.network.secrets_file), nodes, list(settings.network.rpc_users),
                                            vault.load, vault.save, write=not check)
        for name in nodes:
            rpcauth[name] = " ".join(rpcauth_line(user, stored[name][user]["salt"], stored[name][user]["password"])
                                     for user in settings.network.rpc_users)
            passwords[name] = str(stored[name]["peerlab"]["password"]) if "peerlab" in stored[name] else ""
        if settings.common.monitoring and not settings.common.portal_apply:
            grafana, _made = _credentials.update(os.path.expanduser(settings.grafana.secrets_file), ["grafana"], ["admin"],
                                                 vault.load, vault.save, write=not check)
            grafana_password = str(grafana["grafana"]["admin"]["password"])
            alerting, _made = _credentials.update(os.path.expanduser(settings.alertmanager.secrets_file), ["alertmanager"],
                                                  [_alertmanager.USER], vault.load, vault.save, write=not check)
            entry = alerting["alertmanager"][_alertmanager.USER]
            alertmanager_password = str(entry["password"])
            alertmanager_login = _alertmanager.login_hash(alertmanager_password, str(entry["salt"]))
        if settings.common.portal and not settings.common.portal_apply:
            portal, _made = _credentials.update(os.path.expanduser(settings.portal.secrets_file), ["portal"], [settings.portal.user],
                                                vault.load, vault.save, write=not check)
            entry = portal["portal"][settings.portal.user]
            login = hash_password(str(entry["password"]), str(entry["salt"]))
    tags = _images.tags(str(ROOT / "images"), settings.images)
    deployment = Deployment(networks=networks, selected=selected, hosts=hosts, owner=owner, settings=settings, tags=tags,
                            rpcauth=rpcauth, portal_login=login, alertmanager_login=alertmanager_login,
                            faults_extra={name: tuple(entries) for name, entries in (faults_extra or {}).items()},
                            kill=tuple(kill or ()), limited=limited, nodes_only=nodes_only, paths=_paths(task_vars))
    return Context(deployment, passwords, grafana_password, secrets_dir, lock_file, alertmanager_password)


def _detectors() -> set[str]:
    import json

    with open(ROOT / "images" / "observer" / "detectors.json", encoding="utf-8") as handle:
        return {threshold for thresholds in json.load(handle).values() for threshold in thresholds}


def placement_problems(settings: Settings, hosts: Hosts, networks: tuple[Any, ...]) -> list[str]:
    """Where the monitoring stack and the portal run must suit them."""
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._desired import Deployment

    probe = Deployment(networks=networks, selected=frozenset(), hosts=hosts, owner=Owner("", ""), settings=settings,
                       tags=None, rpcauth={})  # type: ignore[arg-type]
    found = []
    host = probe.monitoring_host()
    if settings.common.monitoring and probe.swarm() and host not in hosts.managers:
        found.append(f"On a Swarm the monitoring stack runs on a manager: its network is an overlay network, which a plain "
                     f"container finds on managers only. Put a manager first in group peerlab_monitoring (got {host}).")
    if settings.common.portal and not settings.common.portal_apply and host not in hosts.local:
        found.append(f"The portal edits this inventory's topology files and runs its playbooks, so it runs on the controller's "
                     f"own Docker engine; the monitoring host {host} is not the controller (ansible_connection: local). Put "
                     "the controller first in group peerlab_monitoring, or set peerlab_portal: false.")
    return found


def fault_problems(networks: tuple[Any, ...], extra: dict[str, Any], kill: list[str]) -> list[str]:
    """A fault.yml run's faults (network -> entries), checked with the topology's words."""
    from ansible_collections.peerlab.bitcoin.plugins.module_utils import _faults

    found: list[str] = []
    names = {network.name: [node.name for node in network.nodes] for network in networks}
    if not isinstance(extra, dict):
        return [f"network_faults_extra must map network names to lists of faults, got {extra!r}"]
    for network, entries in extra.items():
        if network not in names:
            found.append(f"network_faults_extra: network {network!r} is not in this inventory ({', '.join(sorted(names))})")
            continue
        _faults.parse(entries, names[network], lambda where, message: found.append(f"{where}: {message}"),
                      f"fault.yml: network '{network}'")
    containers = {node.container for network in networks for node in network.nodes}
    found += [f"network_kill: {name} is not a node of this inventory" for name in kill if name not in containers]
    return found


def _inventory_name(task_vars: dict[str, Any]) -> str:
    sources = [str(source) for source in task_vars.get("ansible_inventory_sources") or []]
    return ",".join(os.path.realpath(source) for source in sources)[:200] or "an inventory"


def _paths(task_vars: dict[str, Any]) -> Paths:
    root = os.path.realpath(str(task_vars.get("playbook_dir") or ROOT))
    # A playbook under playbooks/ runs from the repository above it.
    if os.path.basename(root) == "playbooks":
        root = os.path.dirname(root)
    try:
        socket_gid = os.stat("/var/run/docker.sock").st_gid
    except OSError:
        socket_gid = 0
    sources = tuple(os.path.realpath(str(source)) for source in task_vars.get("ansible_inventory_sources") or [])
    return Paths(root=root, inventory=sources, uid=os.getuid(), gid=os.getgid(), socket_gid=socket_gid)


class _Vault:
    """The credentials files through Ansible's loader: vault-encrypted ones stay encrypted."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.vaulted: dict[str, bool] = {}

    def load(self, path: str) -> dict[str, Any]:
        from ansible.parsing.vault import is_encrypted

        if not os.path.exists(path):
            return {}
        _credentials.check_mode(path)
        with open(path, "rb") as handle:
            self.vaulted[path] = is_encrypted(handle.read())
        try:
            data = self.loader.load_from_file(path, cache="none")
        except Exception as error:  # vault password missing, bad YAML: say which file
            raise DeploymentError([f"cannot read {path}: {error}"]) from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise DeploymentError([f"{path} must hold a mapping of node -> user -> password"])
        return _plain(data)

    def save(self, path: str, data: dict[str, Any]) -> None:
        from ansible.module_utils.common.text.converters import to_bytes

        from ansible_collections.peerlab.bitcoin.plugins.module_utils._atomic import replace_file
        from ansible_collections.peerlab.bitcoin.plugins.module_utils._rpcauth import dump

        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        content = to_bytes(dump(data))
        if self.vaulted.get(path):
            content = self.loader._vault.encrypt(content)  # pylint: disable=protected-access
        replace_file(path, content, 0o600, prefix=".credentials-")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return str(value) if isinstance(value, str) else value


def node_access(context: Context, network: Any, host: str) -> list[dict[str, Any]]:
    """This run's nodes of `network` on `host`, as the traffic and scenario modules take them
    (their RPC addresses are read on the host): {name, node, network, swarm, rpc_port, rpc_password, peers}."""
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._names import container

    return [{"name": node.container, "node": node.name, "network": network.name, "swarm": network.swarm, "rpc_port": network.rpc_port,
             "rpc_password": context.passwords.get(node.container, ""),
             "peers": [f"{container(network.name, peer)}:{network.p2p_port}" for peer in node.peers_out]}
            for node in network.nodes if node.host == host and node.container in context.deployment.selected]
