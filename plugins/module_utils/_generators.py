# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seeded graph generators for topologies: an undirected shape, then a balanced orientation.

An edge's direction says which node runs `addnode`. bitcoind allows at most 8 manual outbound
connections, so the orientation spreads initiators (see `orient`).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_OUTBOUND = 8

# type -> (required parameters, optional parameters)
GENERATOR_PARAMS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "ring": (frozenset(), frozenset()),
    "star": (frozenset(), frozenset()),
    "full": (frozenset(), frozenset()),
    "random-regular": (frozenset({"degree"}), frozenset({"seed"})),
    "scale-free": (frozenset({"attach"}), frozenset({"seed"})),
    "small-world": (frozenset({"degree"}), frozenset({"seed", "rewire"})),
}
GENERATOR_COMMON = frozenset({"type", "nodes", "prefix"})


class GeneratorError(ValueError):
    """The parameters cannot produce a valid peerlab graph; the message says why."""


@dataclass(frozen=True)
class Generated:
    names: list[str]
    edges: list[tuple[str, str]]


def node_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{index}" for index in range(1, count + 1)]


def _undirected(kind: str, count: int, params: dict[str, object]) -> list[tuple[int, int]]:
    # networkx is a controller-side dependency; import late so modules never need it.
    import networkx as nx  # type: ignore[import-untyped]

    seed = params.get("seed", 0)
    if kind == "ring":
        if count < 3:
            raise GeneratorError("a ring needs at least 3 nodes")
        graph = nx.cycle_graph(count)
    elif kind == "star":
        if count < 2:
            raise GeneratorError("a star needs at least 2 nodes")
        graph = nx.star_graph(count - 1)
    elif kind == "full":
        if count < 2:
            raise GeneratorError("a full graph needs at least 2 nodes")
        graph = nx.complete_graph(count)
    elif kind == "random-regular":
        degree = int(params["degree"])  # type: ignore[call-overload]
        if degree < 1 or degree >= count:
            raise GeneratorError(f"degree {degree} must be between 1 and nodes-1 ({count - 1})")
        if (degree * count) % 2:
            raise GeneratorError(f"degree x nodes must be even (got {degree} x {count})")
        graph = nx.random_regular_graph(degree, count, seed=seed)
    elif kind == "scale-free":
        attach = int(params["attach"])  # type: ignore[call-overload]
        if attach < 1 or attach >= count:
            raise GeneratorError(f"attach {attach} must be between 1 and nodes-1 ({count - 1})")
        graph = nx.barabasi_albert_graph(count, attach, seed=seed)
    elif kind == "small-world":
        degree = int(params["degree"])  # type: ignore[call-overload]
        rewire = float(params.get("rewire", 0.1))  # type: ignore[arg-type]
        if degree < 2 or degree >= count:
            raise GeneratorError(f"degree {degree} must be between 2 and nodes-1 ({count - 1})")
        if not 0.0 <= rewire <= 1.0:
            raise GeneratorError(f"rewire {rewire} must be between 0 and 1")
        graph = nx.connected_watts_strogatz_graph(count, degree, rewire, tries=100, seed=seed)
    else:
        raise GeneratorError(f"unknown generator type {kind!r}")
    if count > 1 and not nx.is_connected(graph):
        raise GeneratorError(f"{kind} with these parameters gives a disconnected graph; change the seed")
    return sorted((min(a, b), max(a, b)) for a, b in graph.edges())


def orient(count: int, undirected: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Direct each edge so initiators are balanced.

    First greedily out of the endpoint with fewer initiated edges so far (ties: lower index), then
    reverse any edge whose source initiates at least two more edges than its target until none
    is left. Each reversal lowers the sum of squared out-degrees, so this ends, and it ends with a
    complete graph on n nodes at ceil((n-1)/2) per node and a ring as a directed cycle.
    """
    outbound = [0] * count
    directed = []
    for a, b in undirected:
        source, target = (a, b) if outbound[a] <= outbound[b] else (b, a)
        outbound[source] += 1
        directed.append((source, target))
    improved = True
    while improved:
        improved = False
        for index, (source, target) in enumerate(directed):
            if outbound[source] >= outbound[target] + 2:
                directed[index] = (target, source)
                outbound[source] -= 1
                outbound[target] += 1
                improved = True
    return directed


def generate(kind: str, count: int, prefix: str, params: dict[str, object]) -> Generated:
    """Names and directed edges for one generator; raises GeneratorError on impossible input."""
    if count < 1:
        raise GeneratorError("nodes must be at least 1")
    names = node_names(prefix, count)
    directed = orient(count, _undirected(kind, count, params))
    busiest = max((sum(1 for source, _target in directed if source == i), i) for i in range(count))
    if busiest[0] > MAX_OUTBOUND:
        raise GeneratorError(
            f"{kind} with {count} nodes makes {names[busiest[1]]} initiate {busiest[0]} edges; "
            f"addnode allows at most {MAX_OUTBOUND}"
        )
    return Generated(names=names, edges=[(names[s], names[t]) for s, t in directed])
