"""The portal's quick apply: an edit of a network on the portal's own Docker host made in one
process, in a second or two, before the playbook that confirms it (docs/portal.md).

It is the deploy's own engine, called the way the engine's action plugin calls it: the network's
model (the portal reads the topology files), the settings the last deploy wrote into the portal's
configuration, the credentials (under their lock), the engine read from the Docker socket, then
module_utils/_desired.host_spec, _plan and _apply. No Ansible shape is imitated; nothing is read
from containers to guess settings. playbooks/apply.yml runs right after and finds nothing left to
change when this did its part.

Left to the playbook: Swarm networks, nodes on other Docker hosts, images not built yet, a
vault-encrypted credentials file, a run of the inventory already under way (it holds the run lock).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The collection's code (load_config puts its path on sys.path before this is used).
COLLECTION = "ansible_collections.peerlab.bitcoin.plugins"


class NotHere(Exception):
    """The edit is the playbook's alone (the reason, in words)."""


@dataclass
class Settings:
    docker_host: str                # the inventory name of the portal's own Docker host
    root: str                       # the repository (its images/ give the image tags)
    inventory: list[str]
    owner: dict[str, Any]
    hosts: dict[str, Any]
    settings: dict[str, Any]        # module_utils/_settings.Settings as the deploy wrote it

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Settings | None:
        quick = config.get("quick") or {}
        if not quick.get("docker_host") or not quick.get("settings") or not quick.get("owner"):
            return None
        return cls(str(quick["docker_host"]), str(config.get("root", "")), list(config.get("inventory") or []),
                   dict(quick["owner"]), dict(quick.get("hosts") or {}), dict(quick["settings"]))


def why_not(network: Any, docker_host: str) -> str:
    """Why the model's network is the playbook's alone; '' when the quick apply may try."""
    if network.swarm:
        return "a Swarm network"
    elsewhere = sorted({node.host for node in network.nodes} - {docker_host})
    if elsewhere:
        return f"nodes on {', '.join(elsewhere)}, not the portal's Docker host {docker_host}"
    return ""


class QuickApply:
    def __init__(self, settings: Settings, say: Callable[[str], None], lock_wait: float = 2.0) -> None:
        self.settings = settings
        self.say = say
        self.lock_wait = lock_wait

    def __call__(self, network: Any, networks: list[Any]) -> bool:
        """Apply the network (of the inventory's `networks`): False (said why) when the playbook
        must do it alone. Raises nothing the portal must handle."""
        started = time.monotonic()
        try:
            done = self.apply(network, networks)
        except NotHere as reason:
            self.say(f"quick apply: left to the playbook ({reason})")
            return False
        except Exception as error:  # the playbook that follows applies the edit anyway
            self.say(f"quick apply: stopped ({error.__class__.__name__}: {error}); the playbook applies the edit")
            return False
        self.say(f"quick apply: {done} in {time.monotonic() - started:.1f} s; the playbook confirms")
        return True

    def apply(self, network: Any, networks: list[Any]) -> str:
        from ansible_collections.peerlab.bitcoin.plugins.module_utils import _apply, _credentials, _images
        from ansible_collections.peerlab.bitcoin.plugins.module_utils._desired import Deployment, Hosts, Owner, host_spec
        from ansible_collections.peerlab.bitcoin.plugins.module_utils._docker import Docker
        from ansible_collections.peerlab.bitcoin.plugins.module_utils._lock import LockBusy, holding
        from ansible_collections.peerlab.bitcoin.plugins.module_utils._rpcauth import rpcauth_line
        from ansible_collections.peerlab.bitcoin.plugins.module_utils._settings import Settings as RunSettings
        from ansible_collections.peerlab.bitcoin.plugins.module_utils._typed import load

        reason = why_not(network, self.settings.docker_host)
        if reason:
            raise NotHere(reason)
        settings = RunSettings.from_dict(self.settings.settings)
        secrets_dir = os.path.expanduser(settings.common.secrets_dir)
        try:
            with holding(os.path.join(secrets_dir, ".peerlab-run.lock"), "the portal's quick apply", self.lock_wait):
                nodes = [node.container for node in network.nodes]
                users = list(settings.network.rpc_users)
                try:
                    stored, _made = _credentials.update(os.path.expanduser(settings.network.secrets_file), nodes, users)
                except _credentials.CredentialsError as error:
                    raise NotHere(str(error)) from None
                deployment = Deployment(
                    networks=tuple(networks), selected=frozenset(nodes), hosts=load(Hosts, self.settings.hosts),
                    owner=load(Owner, self.settings.owner), settings=settings,
                    tags=_images.tags(os.path.join(self.settings.root, "images"), settings.images),
                    rpcauth={name: " ".join(rpcauth_line(user, stored[name][user]["salt"], stored[name][user]["password"])
                                            for user in users) for name in nodes},
                    limited=True, nodes_only=True)
                spec = host_spec(deployment, self.settings.docker_host, whole_stack=False)
                secrets = {"rpc": {name: str(stored[name]["peerlab"]["password"]) for name in nodes if "peerlab" in stored[name]}}
                report = _apply.converge(Docker(settings.network.docker_socket, timeout=60.0), spec, secrets, check=False)
        except LockBusy as busy:
            raise NotHere(str(busy)) from None
        if report.missing_images:
            raise NotHere(f"it needs the image{'s' if len(report.missing_images) > 1 else ''} {', '.join(report.missing_images)}, "
                          "which the playbook builds")
        if report.refusals:
            raise NotHere("refused: " + " ".join(report.refusals))
        if report.failures:
            raise RuntimeError(" ".join(report.failures))
        return said(report.changes) or "nothing to change"


def said(changes: dict[str, list[str]]) -> str:
    """What the quick apply did to nodes and links, shortly: `lab-n6 created, lab-n6 +lab-n1:18444`
    (the files it wrote for them are the engine's report's, not the page's)."""
    shown = []
    for name, whats in sorted(changes.items()):
        if name.startswith("/"):
            continue  # a configuration file
        for what in whats:
            if what == "peers file rewritten":
                continue
            shown.append(f"{name} {what.split(':', 1)[0] if what.startswith(('created', 'made again', 'started')) else what}")
    return ", ".join(shown)
