"""The portal's quick apply: an edit of a network on the portal's own Docker host made in one
process, in a second or two, before the playbook that confirms it (docs/portal.md).

`playbooks/apply.yml` pays Ansible's cost per task (5-8 s for a new node on this machine); this
runs the same engine code once: the plan of each node (module_utils/_plan), the containers
module's reconcile (module_utils/_reconcile), the links module's linking and verification
(module_utils/_linking), the credentials action's generation (module_utils/_rpcauth) and the
collectors' configuration (the collector_config filter). What the playbook takes from its roles'
settings (the node image, restart policy, stop timeout, RPC allowance) is read from the network's
running containers, and trusted only when the plan computed from it gives every one of them the
settings hash (label peerlab.spec) the playbook gave it: otherwise nothing is done here and the
playbook alone applies the edit. It never replaces the playbook: the job runs apply.yml right
after, which finds nothing left to change when this did its part (the portal's test checks that).

Left to the playbook: Swarm networks, nodes on other Docker hosts, networks with faults (declared
or held), a network with a node not running, a node image not built yet, a vault-encrypted
credentials file, and removing nodes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

# The collection's code (load_config puts its path on sys.path before this is used).
COLLECTION = "ansible_collections.peerlab.bitcoin.plugins"


class NotHere(Exception):
    """The edit is the playbook's alone (the reason, in words)."""


@dataclass
class Settings:
    docker_host: str      # the inventory name of the portal's own Docker host
    secrets_file: str     # the RPC credentials (network_secrets_file)
    collector_dir: str    # where that host's collector and the observer read their configuration
    docker_socket: str = "/var/run/docker.sock"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Settings | None:
        quick = config.get("quick") or {}
        if not quick.get("docker_host") or not quick.get("secrets_file"):
            return None
        return cls(str(quick["docker_host"]), os.path.expanduser(str(quick["secrets_file"])), str(quick.get("collector_dir") or ""),
                   str(quick.get("docker_socket") or "/var/run/docker.sock"))


def why_not(network: Any, docker_host: str) -> str:
    """Why the model's network is the playbook's alone; '' when the quick apply may try."""
    if network.swarm:
        return "a Swarm network"
    elsewhere = sorted({node.host for node in network.nodes} - {docker_host})
    if elsewhere:
        return f"nodes on {', '.join(elsewhere)}, not the portal's Docker host {docker_host}"
    if network.faults:
        return "faults are declared"
    return ""


def run_inputs(found: dict[str, Any]) -> dict[str, Any]:
    """What the playbook took from its roles' settings, as a node container it made shows it:
    {image_repository, image_hash, restart_policy, stop_timeout, rpcallowip, users}."""
    config, host = found.get("Config") or {}, found.get("HostConfig") or {}
    labels = config.get("Labels") or {}
    env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
    repository, _colon, tag = str(config.get("Image") or "").rpartition(":")
    return {"image_repository": repository, "image_tag": tag, "implementation": labels.get("peerlab.implementation", ""),
            "restart_policy": (host.get("RestartPolicy") or {}).get("Name") or "no",
            "stop_timeout": config.get("StopTimeout"), "rpcallowip": env.get("PEERLAB_RPCALLOWIP", ""),
            "users": [entry.split(":", 1)[0] for entry in env.get("PEERLAB_RPCAUTH", "").split()]}


def image_for(inputs: dict[str, Any], version_of_found: str, implementation: str, version: str) -> str:
    """The image of a node of this implementation and version: the playbook tags node images
    `<implementation>-<version>-<content hash>` (one hash for all: it covers the build context);
    the hash is read from a container it made, of version `version_of_found`."""
    prefix = f"{inputs['implementation']}-{version_of_found}-"
    if not inputs["image_tag"].startswith(prefix) or not inputs["image_repository"]:
        raise NotHere(f"its node image {inputs['image_repository']}:{inputs['image_tag']} is not named as the playbook names them")
    return f"{inputs['image_repository']}:{implementation}-{version}-{inputs['image_tag'][len(prefix):]}"


def rpcauth(stored: dict[str, Any], container: str, users: list[str]) -> str:
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._rpcauth import rpcauth_line

    return " ".join(rpcauth_line(user, stored[container][user]["salt"], stored[container][user]["password"]) for user in users)


def read_credentials(path: str) -> dict[str, Any]:
    import yaml

    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise NotHere(f"no credentials file at {path}") from None
    if raw.lstrip().startswith(b"$ANSIBLE_VAULT"):
        raise NotHere("the credentials file is vault-encrypted (the playbook has the vault password)")
    if os.stat(path).st_mode & 0o077:
        raise NotHere(f"{path} is readable by group or others")
    data = yaml.safe_load(raw) or {}
    if not isinstance(data, dict):
        raise NotHere(f"{path} is not a mapping of node -> user -> password")
    return data


def nice_json(value: Any) -> str:
    """What the playbook writes for a configuration (Ansible's to_nice_json with sort_keys)."""
    return json.dumps(value, indent=4, sort_keys=True, separators=(",", ": "))


class QuickApply:
    def __init__(self, settings: Settings, say: Callable[[str], None]) -> None:
        from ansible_collections.peerlab.bitcoin.plugins.module_utils._docker import Docker

        self.settings = settings
        self.say = say
        self.docker = Docker(settings.docker_socket, timeout=60.0)

    def __call__(self, network: Any) -> bool:
        """Apply the network's nodes, the collectors' view and links; False (said why) when the
        playbook must do it alone. Raises nothing the portal must handle."""
        started = time.monotonic()
        try:
            done = self.apply(network)
        except NotHere as reason:
            self.say(f"quick apply: left to the playbook ({reason})")
            return False
        except Exception as error:  # the playbook that follows applies the edit anyway
            self.say(f"quick apply: stopped ({error.__class__.__name__}: {error}); the playbook applies the edit")
            return False
        self.say(f"quick apply: {done} in {time.monotonic() - started:.1f} s; the playbook confirms")
        return True

    def apply(self, network: Any) -> str:
        from ansible_collections.peerlab.bitcoin.plugins.filter.lab import container_ip, link_specs
        from ansible_collections.peerlab.bitcoin.plugins.module_utils._atomic import replace_file
        from ansible_collections.peerlab.bitcoin.plugins.module_utils._linking import link
        from ansible_collections.peerlab.bitcoin.plugins.module_utils._names import docker_network
        from ansible_collections.peerlab.bitcoin.plugins.module_utils._plan import node_plan
        from ansible_collections.peerlab.bitcoin.plugins.module_utils._reconcile import reconcile
        from ansible_collections.peerlab.bitcoin.plugins.module_utils._rpcauth import dump, fill
        from ansible_collections.peerlab.bitcoin.plugins.module_utils._topology import host_vars

        settings = self.settings
        reason = why_not(network, settings.docker_host)
        if reason:
            raise NotHere(reason)
        # Everything is read and checked before anything changes.
        labelled = quote(json.dumps({"label": [f"peerlab.network={network.name}"]}), safe="")
        listed = self.docker.request("GET", f"/containers/json?all=1&filters={labelled}") or []
        roles = {(item.get("Labels") or {}).get("peerlab.role") for item in listed}
        if "fault" in roles:
            raise NotHere("faults are held on its nodes")
        found = {item["Names"][0].lstrip("/"): item for item in listed if (item.get("Labels") or {}).get("peerlab.role") == "node"}
        hostvars = {node.container: dict(host_vars(network, node)) for node in network.nodes}
        made = [name for name in hostvars if name in found]
        if not made:
            raise NotHere("none of its nodes runs yet")
        stopped = sorted(name for name in made if found[name].get("State") != "running")
        if stopped:
            raise NotHere(f"{', '.join(stopped)} not running")
        stored = read_credentials(settings.secrets_file)
        inspected = {name: self.docker.inspect(name) or {} for name in made}
        inputs = run_inputs(inspected[made[0]])
        if "peerlab" not in inputs["users"] or not inputs["rpcallowip"]:
            raise NotHere(f"{made[0]} does not show its RPC settings")
        sample = hostvars[made[0]]
        run = {"restart_policy": inputs["restart_policy"], "stop_timeout": inputs["stop_timeout"], "peers_dir": "",
               "created": [], "engines": [{"item": settings.docker_host,
                                           "networks": {docker_network(network.name): {"subnets": [inputs["rpcallowip"]]}}}]}
        if run["stop_timeout"] is None:
            raise NotHere(f"{made[0]} has no stop timeout")

        def planned(name: str) -> dict[str, Any]:
            variables = hostvars[name]
            image = image_for(inputs, sample["peerlab_version"], variables["peerlab_implementation"], variables["peerlab_version"])
            return node_plan({**variables, "images_node_image": image, "_network_rpcauth": rpcauth(stored, name, inputs["users"])}, run)

        for name in made:
            if name not in stored or any(user not in stored[name] for user in inputs["users"]):
                raise NotHere(f"{name} has no credentials in {settings.secrets_file}")
            spec = planned(name)["spec"]
            label = ((inspected[name].get("Config") or {}).get("Labels") or {}).get("peerlab.spec")
            if spec != label:
                raise NotHere(f"{name}'s settings hash {label} is not the {spec} computed here (settings the portal cannot see)")
        new = [name for name in hostvars if name not in found]
        created = fill(stored, new, inputs["users"])
        plans = {name: planned(name) for name in hostvars}
        for name in new:
            image = plans[name]["image"]
            try:
                self.docker.request("GET", f"/images/{quote(image, safe='')}/json")
            except Exception:
                raise NotHere(f"{name} needs the image {image}, which the playbook builds") from None

        # Then what the playbook does, in its order.
        if created:
            replace_file(settings.secrets_file, dump(stored).encode(), 0o600, prefix=".credentials-")
        self._tell_collectors(hostvars)
        results = {name: reconcile(self.docker, plans[name], "hash", "present", False) for name in plans}
        done = {"create": "created", "recreate": "made again", "start": "started"}
        actions = sorted(f"{name} {done.get(result['action'], result['action'])}" for name, result in results.items()
                         if result["action"] != "none")
        for name in hostvars:
            address = container_ip(results[name])  # reconcile's answer holds the container's networks
            hostvars[name].update(_network_ip=address, _network_address=address,
                                  _network_password=stored[name]["peerlab"]["password"])
        specs = link_specs(list(hostvars), hostvars, network.name, settings.docker_host)
        nodes, failures, problems = link(specs, {})
        if failures or problems:
            raise RuntimeError("; ".join(failures + problems))
        linked = sorted(f"{node.spec['name']} +{peer}" for node in nodes for peer in node.plan.add) + \
            sorted(f"{node.spec['name']} -{peer}" for node in nodes for peer in node.plan.remove)
        return ", ".join(actions + linked) or "nothing to change"

    def _tell_collectors(self, hostvars: dict[str, Any]) -> None:
        """Replace the network's part (its nodes' host variables) of the collector's and the
        observer's configuration, as the playbook would write it (each rereads its file within
        half a second)."""
        from ansible_collections.peerlab.bitcoin.plugins.filter.lab import collector_config
        from ansible_collections.peerlab.bitcoin.plugins.module_utils._atomic import replace_file

        if not self.settings.collector_dir:
            return
        for name, docker_host in (("collector.json", self.settings.docker_host), ("observer.json", "")):
            path = os.path.join(self.settings.collector_dir, name)
            try:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
                current = json.loads(text)
            except (OSError, ValueError):
                continue  # monitoring is off, or another host's
            if docker_host and current.get("host") != docker_host:
                continue
            part = collector_config(list(hostvars), hostvars, docker_host, current.get("interval"), current.get("carbon", ""))["networks"]
            wanted = nice_json(dict(current, networks={**(current.get("networks") or {}), **part}))
            if wanted != text:
                replace_file(path, wanted.encode(), 0o644)
