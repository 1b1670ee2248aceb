# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn per-node host variables into per-host, per-network and per-edge views."""

from __future__ import annotations

from typing import Any

DOCUMENTATION_TEXT = """
node_builds(hosts, hostvars): unique {host, implementation, version} images the hosts need.
network_hosts(hosts, hostvars): unique {network, host} pairs (a Docker network on a Docker host).
docker_hosts(hosts, hostvars): unique Docker hosts that run the given nodes.
stale_containers(results, groups): node containers whose network no longer lists them.
edge_problems(hosts, hostvars, state_var): unverified links, seen from both ends.
network_tips(hosts, hostvars, mined_var, state_var): network -> tip every node must reach.
summary_table(hosts, hostvars, state_var): the table a deploy prints.
"""


def _vars(hosts: list[str], hostvars: Any) -> list[tuple[str, Any]]:
    return [(host, hostvars[host]) for host in hosts]


def node_builds(hosts: list[str], hostvars: Any) -> list[dict[str, str]]:
    builds = {(v["peerlab_docker_host"], v["peerlab_implementation"], v["peerlab_version"]) for _host, v in _vars(hosts, hostvars)}
    return [{"host": h, "implementation": i, "version": ver} for h, i, ver in sorted(builds)]


def network_hosts(hosts: list[str], hostvars: Any) -> list[dict[str, str]]:
    pairs = {(v["peerlab_network"], v["peerlab_docker_host"]) for _host, v in _vars(hosts, hostvars)}
    return [{"network": n, "host": h} for n, h in sorted(pairs)]


def docker_hosts(hosts: list[str], hostvars: Any) -> list[str]:
    return sorted({v["peerlab_docker_host"] for _host, v in _vars(hosts, hostvars)})


def stale_containers(results: list[dict[str, Any]], groups: Any) -> list[dict[str, str]]:
    """Node containers found on a Docker host whose network no longer lists them."""
    stale = []
    for result in results:
        if result.get("skipped") or "containers" not in result:
            continue
        wanted = set(groups.get(result["item"]["network"], []))
        for container in result["containers"]:
            name = container["Names"][0].lstrip("/")
            if name not in wanted:
                stale.append({"host": result["item"]["host"], "name": name})
    return stale


def _state(variables: Any, state_var: str) -> dict[str, Any]:
    state = variables.get(state_var) or {}
    return state if not state.get("skipped") and not state.get("failed") else {}


def edge_problems(hosts: list[str], hostvars: Any, state_var: str = "__network_state") -> list[str]:
    """Every edge among `hosts` must show as manual outbound at its source and inbound at its target."""
    problems = []
    nodes = dict(_vars(hosts, hostvars))
    for source, variables in nodes.items():
        for target in variables["peerlab_peers_out"]:
            address = f"{target}:{variables['peerlab_p2p_port']}"
            out_ok = any(not p["inbound"] and p["addr"] == address for p in _state(variables, state_var).get("peers", []))
            if not out_ok:
                problems.append(f"{source} -> {target}: {source} has no outbound link to {address}")
            if target not in nodes:
                continue
            source_ip = variables.get("_network_ip")
            in_ok = any(p["inbound"] and p["addr"].rsplit(":", 1)[0] == source_ip
                        for p in _state(nodes[target], state_var).get("peers", []))
            if not in_ok:
                problems.append(f"{source} -> {target}: {target} has no inbound link from {source} ({source_ip})")
    return problems


def network_tips(hosts: list[str], hostvars: Any, mined_var: str = "__network_mined",
                 state_var: str = "__network_state") -> dict[str, str]:
    """The tip each network must agree on: the miner's after mining, else the highest node's."""
    tips: dict[str, str] = {}
    best: dict[str, int] = {}
    for _host, variables in _vars(hosts, hostvars):
        network = variables["peerlab_network"]
        mined = variables.get(mined_var) or {}
        if mined.get("tip"):
            tips[network] = mined["tip"]
            best[network] = 1 << 62
            continue
        state = _state(variables, state_var)
        if state.get("bestblockhash") and state.get("blocks", -1) > best.get(network, -1):
            tips[network] = state["bestblockhash"]
            best[network] = state["blocks"]
    return tips


def summary_table(hosts: list[str], hostvars: Any, state_var: str = "__network_tip") -> str:
    header = ("node", "host", "address", "in", "out", "height", "tip")
    rows = [header]
    for host, variables in sorted(_vars(hosts, hostvars)):
        state = _state(variables, state_var)
        rows.append((host, str(variables["peerlab_docker_host"]), str(variables.get("_network_ip") or "-"),
                     str(state.get("connections_in", "-")), str(state.get("connections_out", "-")),
                     str(state.get("blocks", "-")), str(state.get("bestblockhash", "-"))[:16]))
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "node_builds": node_builds,
            "network_hosts": network_hosts,
            "docker_hosts": docker_hosts,
            "edge_problems": edge_problems,
            "stale_containers": stale_containers,
            "network_tips": network_tips,
            "summary_table": summary_table,
        }
