# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which nodes a run acts on: `--limit` read at the level of nodes.

The plays run on Docker hosts; the inventory plugin makes each node a group holding its Docker
host (and, on a Swarm, the manager that runs its service), and each network a group of its nodes'
groups, so `--limit lab` and `--limit lab-n3` choose the Docker hosts that do the work. Which of
their nodes to touch is decided here from the same pattern: node names, network names and the
groups peerlab_nodes and peerlab_miners select nodes; any other inventory name (a Docker host, a
group of them) selects the nodes placed on its hosts. `&` intersects and `!` excludes, as Ansible
does; globs (`lab-n*`) and regular expressions (`~lab-n[0-9]+`) work on all of these names.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping


def _terms(pattern: str) -> list[str]:
    """A host pattern's terms, split as Ansible splits them (`,` or `:`; brackets and IPv6 aside)."""
    try:
        from ansible.inventory.manager import split_host_pattern
    except ImportError:  # the portal's image has Ansible too; this keeps the function usable without it
        return [term.strip() for term in re.split(r"[,:]", pattern) if term.strip()]
    return [str(term) for term in split_host_pattern(pattern)]


def _matches(term: str, names: Iterable[str]) -> list[str]:
    if term.startswith("~"):
        expression = re.compile(term[1:])
        return [name for name in names if expression.search(name)]
    if any(special in term for special in "*?["):
        return [name for name in names if fnmatch.fnmatchcase(name, term)]
    return [name for name in names if name == term]


def select(pattern: str | None, node_groups: Mapping[str, Iterable[str]], hosts_of: Mapping[str, str],
           inventory_groups: Mapping[str, Iterable[str]]) -> set[str]:
    """The node containers `pattern` selects (every node when there is no pattern).

    node_groups: names that stand for nodes (each node's own name, each network, peerlab_nodes,
    peerlab_miners) -> their node containers; hosts_of: node container -> the Docker host it is
    placed on; inventory_groups: Ansible's `groups` (group -> hosts), for names that are not nodes'.
    """
    every = set(hosts_of)
    if not pattern or pattern.strip() in ("all", "*"):
        return every
    groups = {name: set(members) for name, members in node_groups.items()}

    def matched(term: str) -> set[str]:
        names = _matches(term, groups)
        if names:
            return set().union(*(groups[name] for name in names))
        hosts: set[str] = set()
        for name in _matches(term, inventory_groups):
            hosts |= set(inventory_groups[name])
        hosts |= set(_matches(term, {host for members in inventory_groups.values() for host in members}))
        return {node for node, host in hosts_of.items() if host in hosts}

    terms = _terms(pattern)
    chosen: set[str] = set()
    for term in [term for term in terms if term[:1] not in ("&", "!")]:
        chosen |= matched(term)
    if not any(term[:1] not in ("&", "!") for term in terms):
        chosen = set(every)
    for term in [term for term in terms if term.startswith("&")]:
        chosen &= matched(term[1:])
    for term in [term for term in terms if term.startswith("!")]:
        chosen -= matched(term[1:])
    return chosen
