"""Topology edits written back: the file keeps its comments and order, bad changes are refused with
the inventory plugin's words and leave the file as it was, and concurrent editors lose nothing."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _edit
from ansible_collections.peerlab.bitcoin.plugins.module_utils._topology import parse

DEFAULT_LAB = Path(__file__).resolve().parents[2] / "inventories" / "local" / "02-topology.peerlab.yml"
VALIDATE = _edit.model_validator(known_hosts={"localhost"})


@pytest.fixture
def topology(tmp_path: Path) -> Path:
    path = tmp_path / "02-topology.peerlab.yml"
    path.write_text(DEFAULT_LAB.read_text())
    path.chmod(0o640)
    return path


def edges(path: Path) -> set[frozenset[str]]:
    network = parse(_edit.plain(_edit.load(str(path)).networks()), str(path))[0]
    return {frozenset(edge) for edge in network.edges}


def test_connect_appends_one_line_and_keeps_everything_else(topology: Path) -> None:
    before = topology.read_text()
    version = _edit.version_of(before)
    _edit.change(str(topology), version, lambda data: _edit.connect(data, "lab", "n2", "n4"), VALIDATE)
    after = topology.read_text()
    assert after == before.replace("      - {from: n2, to: n5}\n", "      - {from: n2, to: n5}\n      - {from: n2, to: n4}\n")
    assert frozenset({"n2", "n4"}) in edges(topology) and len(edges(topology)) == 8
    assert oct(topology.stat().st_mode & 0o777) == "0o640"
    assert sorted(os.listdir(topology.parent)) == [".02-topology.peerlab.yml.lock", "02-topology.peerlab.yml"], \
        "no temporary file left; the lock is hidden (an inventory directory's plugins skip hidden files)"


def test_disconnect_removes_exactly_the_declared_edge_and_refuses_a_generated_one(topology: Path) -> None:
    before = topology.read_text()
    _edit.change(str(topology), None, lambda data: _edit.connect(data, "lab", "n2", "n4"), VALIDATE)
    _edit.change(str(topology), None, lambda data: _edit.disconnect(data, "lab", "n4", "n2"), VALIDATE)
    assert topology.read_text() == before
    with pytest.raises(_edit.EditError, match="edge n1 - n2 is made by a generator"):
        _edit.change(str(topology), None, lambda data: _edit.disconnect(data, "lab", "n1", "n2"), VALIDATE)
    with pytest.raises(_edit.EditError, match="there is no edge between n1 and n4"):
        _edit.change(str(topology), None, lambda data: _edit.disconnect(data, "lab", "n1", "n4"), VALIDATE)
    assert topology.read_text() == before


def test_add_node_with_links_is_one_node_entry_and_its_edges(topology: Path) -> None:
    _edit.change(str(topology), None, lambda data: _edit.add_node(data, "lab", "n6", {"resources": {"memory": "300m"}}, ["n1", "n4"]),
                 VALIDATE)
    text = topology.read_text()
    assert "    nodes:\n      - {name: n6, resources: {memory: 300m}}\n" in text
    assert "      - {from: n6, to: n1}\n      - {from: n6, to: n4}\n" in text
    network = parse(_edit.plain(_edit.load(str(topology)).networks()), str(topology))[0]
    n6 = next(node for node in network.nodes if node.name == "n6")
    assert n6.peers_out == ("n1", "n4") and n6.resources["memory"] == "300m" and n6.resources["cpus"] == 0.5
    assert "# The default lab: five regtest nodes" in text, "comments are kept"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda data: _edit.connect(data, "lab", "n2", "n2"), "network 'lab': edge n2 -> n2: self-loop: a node cannot connect to itself"),
    (lambda data: _edit.connect(data, "lab", "n3", "n1"), "network 'lab': edge n3 -> n1: duplicate edge"),
    (lambda data: _edit.connect(data, "lab", "n2", "n9"), "network 'lab': edge n2 -> n9: unknown node 'n9'"),
    (lambda data: _edit.add_node(data, "lab", "n3"), "network 'lab': node 'n3': duplicate node name"),
    (lambda data: _edit.add_node(data, "lab", "N 7"), "node name 'N 7' must be 1-32 lowercase letters"),
    (lambda data: _edit.add_node(data, "lab", "n6", {"host": "elsewhere"}), "host 'elsewhere' is not in the inventory"),
    (lambda data: _edit.add_node(data, "lab", "n6", {"colour": "red"}), "unknown key 'colour'"),
    (lambda data: _edit.connect(data, "net2", "n1", "n2"), "network 'net2' is not in this topology"),
], ids=["self-loop", "duplicate-edge", "unknown-node", "duplicate-name", "bad-name", "unknown-host", "unknown-key", "unknown-network"])
def test_a_bad_change_is_refused_with_the_models_words_and_the_file_unchanged(topology: Path, edit: _edit.Callable[..., None],
                                                                              message: str) -> None:
    before = topology.read_text()
    with pytest.raises(_edit.EditError) as refused:
        _edit.change(str(topology), None, edit, VALIDATE)
    assert message in str(refused.value)
    assert topology.read_text() == before


def test_a_ninth_outbound_link_is_refused(topology: Path) -> None:
    before = topology.read_text()

    def grow(data: object) -> None:
        for index in range(6, 13):
            _edit.add_node(data, "lab", f"n{index}")
        for index in range(6, 12):  # n1 initiates n1 -> n2 (the ring) and n1 -> n3: six more make 8, the limit
            _edit.connect(data, "lab", "n1", f"n{index}")

    _edit.change(str(topology), None, grow, VALIDATE)
    with pytest.raises(_edit.EditError, match="node 'n1': initiates 9 edges; addnode allows at most 8"):
        _edit.change(str(topology), None, lambda data: _edit.connect(data, "lab", "n1", "n12"), VALIDATE)
    assert topology.read_text() != before and "{from: n1, to: n12}" not in topology.read_text()


def test_an_editor_with_an_old_version_is_told_to_reload(topology: Path) -> None:
    old = _edit.load(str(topology)).version
    _edit.change(str(topology), old, lambda data: _edit.connect(data, "lab", "n2", "n4"), VALIDATE)
    between = topology.read_text()
    with pytest.raises(_edit.Conflict, match=r"changed since it was read .*reload"):
        _edit.change(str(topology), old, lambda data: _edit.connect(data, "lab", "n3", "n5"), VALIDATE)
    assert topology.read_text() == between


def test_concurrent_editors_lose_nothing(topology: Path) -> None:
    # Eight writers at once, each re-reading after a conflict: every change lands, the file parses.
    errors: list[BaseException] = []

    def add(index: int) -> None:
        try:
            for _attempt in range(50):
                version = _edit.load(str(topology)).version
                try:
                    _edit.change(str(topology), version, lambda data: _edit.add_node(data, "lab", f"m{index}", links=["n1"]), VALIDATE)
                    return
                except _edit.Conflict:
                    continue
            raise AssertionError(f"m{index} never landed")
        except BaseException as error:  # reported by the test thread
            errors.append(error)

    threads = [threading.Thread(target=add, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    network = parse(_edit.plain(_edit.load(str(topology)).networks()), str(topology))[0]
    assert sorted(node.name for node in network.nodes if node.name.startswith("m")) == [f"m{index}" for index in range(8)]
    assert all(frozenset({f"m{index}", "n1"}) in {frozenset(edge) for edge in network.edges} for index in range(8))


def test_faults_on_a_link_are_set_replaced_and_cleared_with_the_file_kept(topology: Path) -> None:
    before = topology.read_text()

    def edit(change: Any) -> None:
        _edit.change(str(topology), None, change, VALIDATE)
    edit(lambda data: _edit.set_fault(data, "lab", {"kind": "latency", "from": "n1", "to": "n2", "delay": "100ms"}))
    edit(lambda data: _edit.set_fault(data, "lab", {"kind": "loss", "from": "n2", "to": "n1", "percent": 10}))
    edit(lambda data: _edit.set_fault(data, "lab", {"kind": "latency", "from": "n1", "to": "n2", "delay": "50ms"}))  # replaces
    network = parse(_edit.plain(_edit.load(str(topology)).networks()), str(topology))[0]
    assert [fault.describe() for fault in network.faults] == ["loss 10% on n2 -> n1", "latency 50ms on n1 -> n2"]
    assert topology.read_text().startswith(before.rstrip("\n")), "everything before stays, the faults come after"
    with pytest.raises(_edit.EditError, match="loss 'percent' must be a number above 0 and at most 100, got 300"):
        edit(lambda data: _edit.set_fault(data, "lab", {"kind": "loss", "node": "n3", "percent": 300}))
    edit(lambda data: _edit.clear_faults(data, "lab", source="n1", target="n2"))  # both directions
    assert topology.read_text() == before
    with pytest.raises(_edit.EditError, match="no fault is declared on the link n1 - n2"):
        edit(lambda data: _edit.clear_faults(data, "lab", source="n1", target="n2"))


def test_a_generated_link_goes_once_its_generator_is_written_out_and_the_rest_stays_the_same(topology: Path) -> None:
    before = topology.read_text()
    network = parse(_edit.plain(_edit.load(str(topology)).networks()), str(topology))[0]

    def expand_and_remove(data: Any) -> None:
        _edit.expand_generator(data, "lab", "n2", "n1")
        _edit.disconnect(data, "lab", "n1", "n2")
    _edit.change(str(topology), None, expand_and_remove, VALIDATE)
    after = parse(_edit.plain(_edit.load(str(topology)).networks()), str(topology))[0]
    assert [node.name for node in after.nodes] == [node.name for node in network.nodes] == ["n1", "n2", "n3", "n4", "n5"]
    assert list(after.edges) == [edge for edge in network.edges if set(edge) != {"n1", "n2"}], "same links, same directions, same order"
    assert after.miners == network.miners and after.nodes[0].resources == network.nodes[0].resources
    text = topology.read_text()
    assert "generators" not in text and text.startswith(before.split("    generators:")[0]), "the comments and the head stay"
    assert "      - {name: n1}\n" in text and "      - {from: n2, to: n3}\n" in text and "{from: n1, to: n2}" not in text
    with pytest.raises(_edit.EditError, match="no generator makes the link n1 - n3"):
        _edit.change(str(topology), None, lambda data: _edit.expand_generator(data, "lab", "n1", "n3"), VALIDATE)


def test_partition_sides_are_set_node_by_node_and_the_partition_goes_with_the_last_side(topology: Path) -> None:
    before = topology.read_text()

    def side(node: str, number: int | None) -> list[list[str]]:
        said: list[list[list[str]]] = []
        _edit.change(str(topology), None, lambda data: said.append(_edit.set_side(data, "lab", node, number)), VALIDATE)
        network = parse(_edit.plain(_edit.load(str(topology)).networks()), str(topology))[0]
        written = [list(fault.groups) for fault in network.faults if fault.kind == "partition"]
        assert [[list(group) for group in groups] for groups in written] == ([said[0]] if said[0] else [])
        return said[0]

    assert side("n1", 0) == [["n1"], ["n2", "n3", "n4", "n5"]], "one side: cut off from the rest"
    assert side("n2", 0) == [["n1", "n2"], ["n3", "n4", "n5"]]
    assert "      - {kind: partition, groups: [[n1, n2], [n3, n4, n5]]}\n" in topology.read_text()
    assert side("n5", 2) == [["n1", "n2"], ["n3", "n4"], ["n5"]], "a new side"
    assert side("n5", None) == [["n1", "n2"], ["n3", "n4"]], "on no side: linked to every side"
    with pytest.raises(_edit.EditError, match="side 4 does not exist"):
        _edit.change(str(topology), None, lambda data: _edit.set_side(data, "lab", "n1", 3), VALIDATE)
    assert side("n3", None) == [["n1", "n2"], ["n4"]]
    assert side("n4", None) == [], "one side left: no partition"
    assert topology.read_text() == before, "the file as it was"
