"""Generated graphs: connected, deterministic for a seed, nobody initiates more than 8 links."""

from __future__ import annotations

from collections import Counter

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.peerlab.bitcoin.plugins.module_utils._generators import (
    MAX_OUTBOUND,
    GeneratorError,
    generate,
    orient,
)


def check_graph(names: list[str], edges: list[tuple[str, str]]) -> None:
    graph = nx.Graph()
    graph.add_nodes_from(names)
    graph.add_edges_from(edges)
    assert nx.is_connected(graph)
    assert len({frozenset(e) for e in edges}) == len(edges), "no edge twice, in either direction"
    assert all(a != b for a, b in edges)
    assert max(Counter(source for source, _target in edges).values(), default=0) <= MAX_OUTBOUND


SPECS = st.one_of(
    st.builds(lambda n: ("ring", n, {}), st.integers(3, 120)),
    st.builds(lambda n: ("star", n, {}), st.integers(2, 120)),
    st.builds(lambda n: ("full", n, {}), st.integers(2, 17)),
    st.builds(lambda n, d, s: ("random-regular", n, {"degree": d, "seed": s}),
              st.integers(8, 100), st.sampled_from([3, 4, 6]), st.integers(0, 1000)),
    st.builds(lambda n, m, s: ("scale-free", n, {"attach": m, "seed": s}),
              st.integers(5, 100), st.integers(1, 3), st.integers(0, 1000)),
    st.builds(lambda n, k, s: ("small-world", n, {"degree": k, "seed": s, "rewire": 0.2}),
              st.integers(8, 100), st.sampled_from([2, 4, 6]), st.integers(0, 1000)),
)


@settings(max_examples=150, deadline=None)
@given(SPECS)
def test_every_generated_graph_is_valid(spec: tuple[str, int, dict[str, object]]) -> None:
    kind, count, params = spec
    try:
        generated = generate(kind, count, "n", params)
    except GeneratorError as error:
        # The only acceptable refusals say why; a hub of scale-free may exceed the outbound limit.
        assert any(reason in str(error) for reason in ("initiate", "disconnected", "must be even")), error
        return
    assert len(generated.names) == count
    check_graph(generated.names, generated.edges)


def test_same_seed_same_graph_other_seed_other_graph() -> None:
    first = generate("random-regular", 20, "n", {"degree": 4, "seed": 7})
    assert first == generate("random-regular", 20, "n", {"degree": 4, "seed": 7})
    assert first.edges != generate("random-regular", 20, "n", {"degree": 4, "seed": 8}).edges
    assert len(first.edges) == 40


def test_orientation_balances_a_complete_graph() -> None:
    edges = orient(17, [(a, b) for a in range(17) for b in range(a + 1, 17)])
    assert max(Counter(source for source, _target in edges).values()) == 8


def test_full_graph_too_large_is_refused() -> None:
    with pytest.raises(GeneratorError, match="initiate 9 edges; addnode allows at most 8"):
        generate("full", 19, "n", {})
