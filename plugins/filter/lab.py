# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn per-node host variables into per-host, per-network and per-edge views."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ansible_collections.peerlab.bitcoin.plugins.filter.faults import network_faults
from ansible_collections.peerlab.bitcoin.plugins.module_utils import _faults
from ansible_collections.peerlab.bitcoin.plugins.module_utils._conf import unpruned_need_gib
from ansible_collections.peerlab.bitcoin.plugins.module_utils._names import data_volume, docker_network, labelled_container
from ansible_collections.peerlab.bitcoin.plugins.module_utils._plan import node_plan, outdated

DOCUMENTATION_TEXT = """
node_builds(hosts, hostvars): unique {host, implementation, version} images the hosts need.
network_hosts(hosts, hostvars): unique {network, host} pairs (the nodes of a network on one Docker host).
docker_networks(hosts, hostvars, manager): the Docker networks to make, {network, name, host, swarm}: a bridge
  network per network and Docker host, or one overlay network per Swarm network, made on `manager`.
stale_containers(results, groups): standalone node containers whose network no longer lists them.
stale_services(results, groups): Swarm node services whose network no longer lists them.
container_named(results, name): node `name`'s container from looped docker_host_info results (the
  running one of a Swarm service's task containers, else the newest).
container_ip(container): a container's address, from inspect or list output.
gateway_ips(results): container id -> address on its Docker host's docker_gwbridge, from looped
  docker_network_info results (how a Swarm host reaches its tasks).
swarm_pending(result, item, hosts, hostvars, run): the Swarm nodes of item's network and Docker host that do
  not yet run a container with their current settings (peerlab.spec), from docker_host_info's result.
link_problems(hosts, hostvars, states, extra): links not seen at both ends, across every Docker host (cut links skipped).
link_specs(hosts, hostvars, network, docker_host, extra, paused_now): the nodes option of peerlab.bitcoin.links (paused
  nodes left out, links across a partition `cut`, to a paused node `frozen`); extra: ad hoc faults, network -> fault
  entries (fault.yml); paused_now: nodes a check run would unpause (planned as new).
link_states(results): node -> state from a looped peerlab.bitcoin.links task.
network_tips(hosts, hostvars, mined_var, states): network -> tip every node must reach.
summary_table(hosts, hostvars, states): the table a deploy prints.
attached(names): docker_container's networks option for these network names.
strangers(network_info, ours): names of containers on a Docker network that peerlab does not manage.
not_running(results): {host, name, status} of node containers that are not running, from looped docker_host_info.
down_reasons(results): one sentence per such node: its state and the errors bitcoind last logged.
disk_needs(hosts, hostvars): per Docker host, the unpruned public-chain nodes on it and the GiB they need.
disk_shortfalls(needs, results): the needs a Docker host has no room for, as messages.
monitoring_host(groups, node_host): the Docker host of Graphite and Grafana.
image_needs(hosts, hostvars, build_host, monitoring): per Docker host but the build host, the images it needs.
missing_images(results): {host, images, archive} per Docker host lacking images (one archive per set).
collector_config(hosts, hostvars, docker_host, interval, carbon, bus): one collector's configuration (the
  nodes on its Docker host and their expected edges, the event bus; no secret); docker_host '': the observer's.
"""


def _vars(hosts: list[str], hostvars: Any) -> list[tuple[str, Any]]:
    return [(host, hostvars[host]) for host in hosts]


def node_builds(hosts: list[str], hostvars: Any) -> list[dict[str, str]]:
    builds = {(v["peerlab_docker_host"], v["peerlab_implementation"], v["peerlab_version"]) for _host, v in _vars(hosts, hostvars)}
    return [{"host": h, "implementation": i, "version": ver} for h, i, ver in sorted(builds)]


def disk_needs(hosts: list[str], hostvars: Any) -> list[dict[str, Any]]:
    needs: dict[str, dict[str, Any]] = {}
    for host, variables in _vars(hosts, hostvars):
        gib = unpruned_need_gib(variables["peerlab_chain"], variables["peerlab_conf"])
        if gib:
            need = needs.setdefault(variables["peerlab_docker_host"], {"host": variables["peerlab_docker_host"], "nodes": [], "gib": 0})
            need["nodes"].append({"name": host, "chain": variables["peerlab_chain"], "gib": gib})
            need["gib"] += gib
    return [needs[host] for host in sorted(needs)]


def disk_shortfalls(infos: list[dict[str, Any]], frees: list[dict[str, Any]]) -> list[str]:
    """Messages for the needs a Docker host has no room for.

    infos: looped docker_host_info results (item = a disk_needs entry); frees: the matching looped
    `df --output=avail -B1 <DockerRootDir>` results.
    """
    messages = []
    for info, free in zip(infos, frees, strict=True):
        need = info["item"]
        existing = {volume["Name"] for volume in info.get("volumes", [])}
        # A node whose volume exists already holds its chain (or part of it): only new nodes claim room.
        nodes = [node for node in need["nodes"] if data_volume(node['name']) not in existing]
        gib = sum(node["gib"] for node in nodes)
        free_gib = int(free["stdout"].split()[-1]) // 2**30
        if nodes and gib > free_gib:
            listed = ", ".join(f"{node['name']} ({node['chain']}, about {node['gib']} GiB)" for node in nodes)
            messages.append(
                f"Not enough disk on {need['host']} for unpruned nodes {listed}: they need about {gib} GiB and "
                f"Docker's data directory {info['host_info']['DockerRootDir']} has {free_gib} GiB free. Set conf "
                f"prune (for example prune: 550) on these nodes, give Docker more disk, or skip this check with "
                f"-e network_disk_check=false.")
    return messages


def strangers(network_info: dict[str, Any], ours: list[str]) -> list[str]:
    """Containers attached to a docker_network_info result that are neither nodes (gone by now) nor ours."""
    attached = (network_info.get("network") or {}).get("Containers") or {}
    return sorted(entry["Name"] for entry in attached.values() if entry["Name"] not in ours)


def not_running(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per Docker host, its node containers that are not running and their Docker status (for a
    Swarm node: its newest task container, when none of them runs)."""
    down = []
    for result in results:
        nodes = {_node_name(container) or container["Names"][0].lstrip("/") for container in result.get("containers", [])}
        newest = [container_named([result], node) for node in sorted(nodes)]
        stopped = {container["Names"][0].lstrip("/"): container.get("Status", "")
                   for container in newest if container and container.get("State") != "running"}
        if stopped:
            down.append({"host": result["item"]["host"], "containers": sorted(stopped), "status": stopped})
    return down


# The image's entrypoint is Python: its failures end in a line like "PermissionError: ...".
_PYTHON_ERROR = re.compile(r"^[A-Za-z]+(Error|Exception): ")


def _logged_errors(lines: list[str], keep: int = 4) -> list[str]:
    """bitcoind's last distinct error lines, timestamps and prefixes dropped, fatal ones first."""
    errors = []
    for line in lines:
        text = line.split(" ", 1)[1] if line[:4].isdigit() and " " in line else line
        if "[error]" in text or text.startswith(("Error", "EXCEPTION")) or _PYTHON_ERROR.match(text):
            errors.append(text.replace("[error] ", "").removeprefix("Error: ").strip())
    recent = list(dict.fromkeys(reversed(errors)))[:keep]
    return sorted(recent, key=lambda text: "fatal" not in text)


def down_reasons(results: list[dict[str, Any]]) -> list[str]:
    """One sentence per node container that is not running: its status and what bitcoind logged."""
    reasons = []
    for result in results:
        item = result["item"]
        for name in item["containers"]:
            said = _logged_errors(result.get("logs", {}).get(name, []))
            detail = f"; bitcoind logged: {' | '.join(said)}" if said else ""
            reasons.append(f"{name} on {item['host']} is not running ({item['status'][name]}){detail}.")
    return reasons


def network_hosts(hosts: list[str], hostvars: Any) -> list[dict[str, str]]:
    pairs = {(v["peerlab_network"], v["peerlab_docker_host"]) for _host, v in _vars(hosts, hostvars)}
    return [{"network": n, "host": h} for n, h in sorted(pairs)]


def docker_networks(hosts: list[str], hostvars: Any, manager: str) -> list[dict[str, Any]]:
    """A bridge network per network and Docker host; a Swarm network is one overlay network, made on a manager."""
    made = {(v["peerlab_network"], manager if v.get("peerlab_swarm") else v["peerlab_docker_host"], bool(v.get("peerlab_swarm")))
            for _host, v in _vars(hosts, hostvars)}
    return [{"network": n, "name": docker_network(n), "host": h, "swarm": swarm} for n, h, swarm in sorted(made)]


# Swarm labels the containers of its services' tasks; such a container is never removed directly.
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"


def stale_containers(results: list[dict[str, Any]], groups: Any) -> list[dict[str, str]]:
    """Standalone node containers found on a Docker host whose network no longer lists them."""
    stale = []
    for result in results:
        if result.get("skipped") or "containers" not in result:
            continue
        wanted = set(groups.get(result["item"]["network"], []))
        for container in result["containers"]:
            name = container["Names"][0].lstrip("/")
            if name not in wanted and SWARM_SERVICE_LABEL not in (container.get("Labels") or {}):
                stale.append({"host": result["item"]["host"], "name": name})
    return stale


def stale_services(results: list[dict[str, Any]], groups: Any) -> list[dict[str, str]]:
    """Swarm node services (looped docker_swarm_info services results, verbose) whose network no longer lists them."""
    stale = []
    for result in results:
        wanted = set(groups.get(result.get("item", {}).get("network"), []))
        for service in result.get("services") or []:
            spec = service.get("Spec") or {}
            name = spec.get("Name", "")
            if name and name not in wanted and (spec.get("Labels") or {}).get("peerlab.role") == "node":
                stale.append({"host": result["item"]["host"], "name": name})
    return stale


def _node_name(container: dict[str, Any]) -> str:
    return labelled_container(container.get("Labels"))


def _listed(containers: Any) -> list[dict[str, Any]]:
    """docker_host_info lists containers; peerlab.bitcoin.containers maps names to them."""
    return list(containers.values()) if isinstance(containers, dict) else list(containers or [])


def container_hosts(hosts: list[str], hostvars: Any) -> list[str]:
    """The Docker hosts that run standalone node containers of the play (Swarm nodes are services)."""
    return sorted({v["peerlab_docker_host"] for _host, v in _vars(hosts, hostvars) if not v.get("peerlab_swarm")})


def container_named(results: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """Node `name`'s container in looped docker_host_info results (list format), if any.

    A standalone node's container has the node's name. A Swarm node's task containers carry its
    labels and a generated name, and Swarm keeps the exited ones of earlier tasks: the running one
    counts, else the newest.
    """
    found = [container for result in results for container in _listed(result.get("containers"))
             if f"/{name}" in container.get("Names", []) or _node_name(container) == name]
    found.sort(key=lambda container: (container.get("State") == "running", container.get("Created", 0)), reverse=True)
    return found[0] if found else None


def gateway_ips(results: list[dict[str, Any]]) -> dict[str, str]:
    """Container id -> its address on the docker_gwbridge of its Docker host (looped docker_network_info)."""
    addresses = {}
    for result in results:
        for container_id, endpoint in ((result.get("network") or {}).get("Containers") or {}).items():
            if endpoint.get("IPv4Address"):
                addresses[container_id] = endpoint["IPv4Address"].split("/")[0]
    return addresses


def swarm_pending(result: dict[str, Any], item: dict[str, str], hosts: list[str], hostvars: Any, run: dict[str, Any]) -> list[str]:
    """The Swarm nodes of one network on one Docker host (`item`: {network, host}) that do not yet
    run a container with their current settings (the plan's, given the role's `run`); `result` is
    that host's docker_host_info result (inside `until`, a looped result does not hold its item yet)."""
    return [host for host, variables in _vars(hosts, hostvars)
            if variables["peerlab_network"] == item.get("network") and variables["peerlab_docker_host"] == item.get("host")
            and outdated(node_plan(variables, run), container_named([result], host))]


def collector_config(hosts: list[str], hostvars: Any, docker_host: str, interval: int, carbon: str,
                     bus: str = "") -> dict[str, Any]:
    """The collector's configuration file for one Docker host: its nodes and their expected edges,
    and where the event bus is. With docker_host '' it is the observer's: every host's nodes.
    No secret: the collector authenticates with each node's own RPC cookie."""
    networks: dict[str, Any] = {}
    nodes_of: dict[str, str] = {}
    for _host, variables in _vars(hosts, hostvars):
        nodes_of[variables["peerlab_container"]] = variables["peerlab_node"]
    for _host, variables in _vars(hosts, hostvars):
        if docker_host and variables["peerlab_docker_host"] != docker_host:
            continue
        network = networks.setdefault(variables["peerlab_network"],
                                      {"chain": variables["peerlab_chain"], "edges": [], "nodes": {},
                                       "docker_network": docker_network(variables["peerlab_network"])})
        network["nodes"][variables["peerlab_node"]] = {"container": variables["peerlab_container"],
                                                       "rpc_port": variables["peerlab_rpc_port"]}
        network["edges"] += [[variables["peerlab_node"], nodes_of[peer]]
                             for peer in variables["peerlab_peers_out"] if peer in nodes_of]
    config = {"host": docker_host or "observer", "interval": interval, "carbon": carbon, "networks": networks}
    return {**config, "bus": bus} if bus else config


def monitoring_host(groups: Any, node_host: str) -> str:
    """The Docker host of Graphite and Grafana: the first of group peerlab_monitoring, else the
    first Swarm manager, else the Docker host of the play's first node."""
    for group in ("peerlab_monitoring", "peerlab_swarm_managers"):
        if groups.get(group):
            return str(groups[group][0])
    return node_host


def image_needs(hosts: list[str], hostvars: Any, build_host: str, monitoring: dict[str, str]) -> list[dict[str, Any]]:
    """Per Docker host other than the build host, the images it must hold: its nodes' images, and
    with monitoring ({collector, graphite, portal, host}; an image left out or '' is not deployed)
    the collector (every node host and the monitoring host: the bus and the observer run from its
    image), Graphite and the portal on the monitoring host."""
    needs: dict[str, set[str]] = {}
    collector = monitoring.get("collector") or ""
    for _host, variables in _vars(hosts, hostvars):
        wanted = needs.setdefault(variables["peerlab_docker_host"], set())
        wanted.add(variables["images_node_image"])
        if collector:
            wanted.add(collector)
    central = {monitoring.get(name) or "" for name in ("collector", "graphite", "portal")} - {""}
    if central:
        needs.setdefault(monitoring["host"], set()).update(central)
    return [{"host": host, "images": sorted(images)} for host, images in sorted(needs.items()) if host != build_host]


def missing_images(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """{host, images, archive} per Docker host that lacks images, from looped docker_image_info
    results (item: an image_needs entry). Hosts lacking the same images share one archive: one
    `docker save` of several images stores their common layers once."""
    missing = []
    for result in results:
        found = {tag for image in result.get("images") or [] for tag in image.get("RepoTags") or []}
        images = [image for image in result["item"]["images"] if image not in found]
        if images:
            digest = hashlib.sha256("\n".join(images).encode()).hexdigest()[:16]
            missing.append({"host": result["item"]["host"], "images": images, "archive": f"peerlab-images-{digest}.tar"})
    return missing


def attached(names: list[str]) -> list[dict[str, str]]:
    return [{"name": name} for name in names]


def container_ip(container: dict[str, Any] | None) -> str:
    """A container's address on its first network with one, from inspect or list output; '' if none."""
    networks = ((container or {}).get("NetworkSettings") or {}).get("Networks") or {}
    return next((network["IPAddress"] for network in networks.values() if network.get("IPAddress")), "")


def container_state(container: dict[str, Any] | None) -> str:
    """A container's state (running, paused, exited, ...) from inspect or list output; '' if none."""
    state = (container or {}).get("State") or ""
    return str(state.get("Status", "") if isinstance(state, dict) else state)


def _state(variables: Any, state_var: str) -> dict[str, Any]:
    state = variables.get(state_var) or {}
    return state if not state.get("skipped") and not state.get("failed") else {}


def _states(hosts: list[str], hostvars: Any, states: str | dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Node name -> state, from a per-host registered variable's name or from a dict of states."""
    if isinstance(states, str):
        return {host: _state(hostvars[host], states) for host in hosts}
    return {host: states.get(host) or {} for host in hosts}


def link_specs(hosts: list[str], hostvars: Any, network: str, docker_host: str,
               extra: dict[str, Any] | None = None, paused_now: list[str] | None = None) -> list[dict[str, Any]]:
    """The `nodes` option of peerlab.bitcoin.links for one network on one Docker host. A paused
    node is left out; a link across a partition is `cut` (kept as an added node, closed while the
    partition holds, and its far end closes it too: the source's address is `unheard` there), one
    to a paused node `frozen` (kept, neither closed nor waited for).
    `paused_now`: nodes still paused that this run would unpause (check mode): planned as new."""
    specs = []
    for host, variables in _vars(hosts, hostvars):
        if variables["peerlab_network"] == network and variables["peerlab_docker_host"] == docker_host:
            faults = network_faults(hostvars, host, extra)
            if faults and variables["peerlab_node"] in _faults.paused(faults):
                continue
            port = variables["peerlab_p2p_port"]
            address = "" if host in (paused_now or []) else variables.get("_network_ip") or ""
            specs.append({"name": host, "rpc_host": address, "rpc_port": variables["peerlab_rpc_port"],
                          "rpc_password": variables["_network_password"],
                          "peers": [f"{peer}:{port}" for peer in variables["peerlab_peers_out"]]})
            for key, test in (("cut", _faults.cut), ("frozen", _faults.frozen)) if faults else ():
                peers = [f"{peer}:{port}" for peer in variables["peerlab_peers_out"]
                         if test(faults, variables["peerlab_node"], hostvars[peer]["peerlab_node"])]
                if peers:
                    specs[-1][key] = peers
            sources = [hostvars[other] for other in hosts if faults and host in hostvars[other].get("peerlab_peers_out", [])]
            unheard = [source.get("_network_address") or source.get("_network_ip") for source in sources
                       if _faults.cut(faults, source["peerlab_node"], variables["peerlab_node"])]
            if any(unheard):
                specs[-1]["unheard"] = sorted(filter(None, unheard))
            if variables.get("_network_address") and variables["_network_address"] != variables.get("_network_ip"):
                specs[-1]["address"] = variables["_network_address"]
    return specs


def link_problems(hosts: list[str], hostvars: Any, states: dict[str, Any], extra: dict[str, Any] | None = None) -> list[str]:
    """Every link checked at both ends with the states the links tasks of all Docker hosts read.
    A links task sees both ends only of links within its Docker host; this sees across them.
    Links a fault cuts, and paused nodes, are not checked."""
    nodes = []
    for host, variables in _vars(hosts, hostvars):
        faults = network_faults(hostvars, host, extra)
        if faults and variables["peerlab_node"] in _faults.paused(faults):
            continue
        me = variables.get("peerlab_node")
        nodes.append({"name": host, "rpc_host": variables.get("_network_address") or variables.get("_network_ip") or "",
                      "peers": [f"{peer}:{variables['peerlab_p2p_port']}" for peer in variables["peerlab_peers_out"]
                                if not faults or not (_faults.cut(faults, me, hostvars[peer]["peerlab_node"])
                                                      or _faults.frozen(faults, me, hostvars[peer]["peerlab_node"]))]})
    # Imported here: _peering brings the RPC client (http.client, ssl), and Ansible imports every
    # filter file of the collection in every task's worker.
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._peering import unverified

    return unverified(nodes, states)


def link_states(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Node name -> state, merged from a looped peerlab.bitcoin.links task's results."""
    return {name: state for result in results for name, state in (result.get("nodes") or {}).items()}


def network_tips(hosts: list[str], hostvars: Any, mined_var: str = "__network_mined",
                 states: str | dict[str, Any] | None = None) -> dict[str, str]:
    """The tip each regtest network must agree on: the miner's after mining, else the highest node's.

    Public chains have none: a node in initial sync, or a block landing mid-check, would never let
    every node hold the same tip; their links are verified and their sync progress reported instead."""
    tips: dict[str, str] = {}
    best: dict[str, int] = {}
    known = _states(hosts, hostvars, states or {})
    for host, variables in _vars(hosts, hostvars):
        network = variables["peerlab_network"]
        if variables.get("peerlab_chain", "regtest") != "regtest":
            continue
        mined = variables.get(mined_var) or {}
        if mined.get("tip"):
            tips[network] = mined["tip"]
            best[network] = 1 << 62
            continue
        state = known[host]
        if state.get("bestblockhash") and state.get("blocks", -1) > best.get(network, -1):
            tips[network] = state["bestblockhash"]
            best[network] = state["blocks"]
    return tips


def sync_progress(state: dict[str, Any]) -> str:
    """`headers 880000, 12.34% verified, initial sync` for a public-chain node; '-' for regtest or unknown."""
    if state.get("chain") in (None, "regtest") or "verificationprogress" not in state:
        return "-"
    said = f"headers {state.get('headers', '?')}, {100 * float(state['verificationprogress']):.2f}% verified"
    return said + (", initial sync" if state.get("initialblockdownload") else "")


def summary_table(hosts: list[str], hostvars: Any, states: str | dict[str, Any]) -> str:
    """The deploy's closing table; `states` is a per-host variable's name or node name -> state.
    A node of a public chain shows its sync progress (headers, verification progress) after its tip."""
    header = ("node", "host", "address", "in", "out", "height", "tip", "sync")
    rows: list[tuple[str, ...]] = [header]
    known = _states(hosts, hostvars, states)
    for host, variables in sorted(_vars(hosts, hostvars)):
        state = known[host]
        address = variables.get("_network_address") or variables.get("_network_ip") or "-"
        container = variables.get("_network_state") or "running"
        tip = str(state.get("bestblockhash", "-"))[:16] if state or container == "running" else f"({container})"
        rows.append((host, str(variables["peerlab_docker_host"]), str(address),
                     str(state.get("connections_in", "-")), str(state.get("connections_out", "-")),
                     str(state.get("blocks", "-")), tip, sync_progress(state)))
    if all(row[-1] == "-" for row in rows[1:]):
        rows = [row[:-1] for row in rows]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "node_builds": node_builds,
            "network_hosts": network_hosts,
            "docker_networks": docker_networks,
            "stale_services": stale_services,
            "gateway_ips": gateway_ips,
            "swarm_pending": swarm_pending,
            "link_problems": link_problems,
            "disk_needs": disk_needs,
            "not_running": not_running,
            "down_reasons": down_reasons,
            "strangers": strangers,
            "disk_shortfalls": disk_shortfalls,
            "stale_containers": stale_containers,
            "link_specs": link_specs,
            "container_named": container_named,
            "container_hosts": container_hosts,
            "container_ip": container_ip,
            "container_state": container_state,
            "collector_config": collector_config,
            "attached": attached,
            "monitoring_host": monitoring_host,
            "image_needs": image_needs,
            "missing_images": missing_images,
            "link_states": link_states,
            "network_tips": network_tips,
            "summary_table": summary_table,
        }
