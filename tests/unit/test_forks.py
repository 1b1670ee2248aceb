"""The Observer's block tree (the portal's fork view): parents from each node's successive tips,
reorganisations from its disconnects, polls for what the log missed, and the Observer's state and
events built from it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "images" / "collector"))  # events, metrics
sys.path.insert(0, str(ROOT / "images" / "observer"))
import events
import observer
from forks import BlockTree


def h(name: str) -> str:
    """A block hash named for a test: 'a3' -> 64 hex digits, distinct per name."""
    return name.encode().hex().ljust(64, "0")


def split_brain(tree: BlockTree) -> list[dict[str, object]]:
    """The default lab's split brain as the logs tell it: everyone at b1; n1 and n2 mine a2, a3;
    n3, n4 and n5 mine c2, c3, c4; then n1 and n2 walk back to b1 and onto c2..c4."""
    finished = []
    for node in ("n1", "n2", "n3", "n4", "n5"):
        tree.block(node, h("b1"), 1, 10.0, mined=node == "n1")
    for height, block in ((2, "a2"), (3, "a3")):
        for node in ("n1", "n2"):
            tree.block(node, h(block), height, 20.0 + height, mined=node == "n1")
    for height, block in ((2, "c2"), (3, "c3"), (4, "c4")):
        for node in ("n3", "n4", "n5"):
            tree.block(node, h(block), height, 30.0 + height, mined=node == "n3")
    for node in ("n1", "n2"):
        for height, block in ((2, "a2"), (1, "b1"), (2, "c2"), (3, "c3"), (4, "c4")):
            done = tree.block(node, h(block), height, 40.0 + height)
            if done:
                finished.append(done)
    return finished


def test_the_split_brain_gives_two_branches_from_b1_and_each_nodes_reorganisation() -> None:
    tree = BlockTree()
    # during the split: two branches, each side on its own tip
    for node in ("n1", "n2", "n3", "n4", "n5"):
        tree.block(node, h("b1"), 1, 10.0)
    for node in ("n1", "n2"):
        tree.block(node, h("a2"), 2, 12.0, mined=node == "n1")
    for node in ("n3", "n4", "n5"):
        tree.block(node, h("c2"), 2, 13.0, mined=node == "n3")
    view = tree.view()
    assert {block["hash"]: block["parent"] for block in view["blocks"]} == {h("b1"): None, h("a2"): h("b1"), h("c2"): h("b1")}
    assert {node: tip["hash"] for node, tip in view["tips"].items()} == {"n1": h("a2"), "n2": h("a2"), "n3": h("c2"),
                                                                         "n4": h("c2"), "n5": h("c2")}
    assert {block["hash"]: block["miner"] for block in view["blocks"]}[h("c2")] == "n3"


def test_a_reorganisation_is_reported_once_with_its_depth_old_tip_and_fork_point() -> None:
    tree = BlockTree()
    finished = split_brain(tree)
    assert [(item["node"], item["depth"], item["old"], item["old_height"], item["fork"], item["fork_height"], item["hash"])
            for item in finished] == [("n1", 2, h("a3"), 3, h("b1"), 1, h("c2")), ("n2", 2, h("a3"), 3, h("b1"), 1, h("c2"))]
    view = tree.view()
    parents = {block["hash"]: block["parent"] for block in view["blocks"]}
    assert parents[h("a3")] == h("a2") and parents[h("a2")] == h("b1") and parents[h("c4")] == h("c3")
    assert {tip["hash"] for tip in view["tips"].values()} == {h("c4")}
    assert [item["node"] for item in view["reorgs"]] == ["n1", "n2"]


def test_a_poll_gives_a_missed_tip_but_never_overrides_a_newer_log_line() -> None:
    tree = BlockTree()
    tree.block("n1", h("b1"), 1, 10.0)
    tree.poll("n1", h("b0"), 0, 9.0)  # a poll that began before the line: older news
    assert tree.view()["tips"]["n1"]["hash"] == h("b1")
    tree.poll("n2", h("b1"), 1, 11.0)  # n2's log said nothing (its collector started late)
    tree.poll("n1", h("x5"), 5, 20.0)  # lines missed: the tip jumps, its parent unknown
    view = tree.view()
    assert view["tips"] == {"n1": {"hash": h("x5"), "height": 5}, "n2": {"hash": h("b1"), "height": 1}}
    assert {block["hash"]: block["parent"] for block in view["blocks"]}[h("x5")] is None
    tree.block("n1", h("x6"), 6, 21.0)
    assert {block["hash"]: block["parent"] for block in tree.view()["blocks"]}[h("x6")] is None, "the log jumped from b1"
    tree.block("n1", h("x7"), 7, 22.0)
    assert {block["hash"]: block["parent"] for block in tree.view()["blocks"]}[h("x7")] == h("x6")


def test_a_poll_that_answers_before_the_log_line_is_read_leaves_the_parent_to_the_log() -> None:
    tree = BlockTree()
    tree.block("n3", h("b1"), 1, 10.0)
    tree.poll("n3", h("c2"), 2, 11.0)  # RPC already has c2; its UpdateTip line comes next
    assert tree.view()["tips"]["n3"]["hash"] == h("c2")
    tree.block("n3", h("c2"), 2, 10.9)
    assert {block["hash"]: block["parent"] for block in tree.view()["blocks"]}[h("c2")] == h("b1")


def test_only_the_latest_heights_are_kept_and_shown() -> None:
    tree = BlockTree(keep=10)
    for height in range(1, 101):
        tree.block("n1", h(f"m{height}"), height, float(height))
    assert min(block.height for block in tree.blocks.values()) == 90
    shown = tree.view(heights=5)["blocks"]
    assert [block["height"] for block in shown] == [96, 97, 98, 99, 100]
    tree.forget({"n2"})
    assert tree.view()["tips"] == {}


def test_the_observer_publishes_a_reorg_event_that_fits_the_schema_and_serves_the_tree() -> None:
    metrics = observer.Metrics()
    metrics.configure({"networks": {"lab": {"nodes": {name: {} for name in ("n1", "n2", "n3", "n4", "n5")}, "edges": []}}})
    made = []
    # the same story as split_brain(), as block events on the bus
    story = BlockTree()
    original = story.block

    def record(node: str, block: str, height: int, when: float, mined: bool = False) -> dict[str, object] | None:
        event = events.make("block", "lab", node, when, hash=block, height=height, mined=mined)
        made.extend(metrics.take(events.check(json.dumps(event).encode()), when))
        return original(node, block, height, when, mined)

    story.block = record  # type: ignore[method-assign]
    split_brain(story)
    reorgs = [event for event in made if event["kind"] == "reorg"]
    assert [(event["node"], event["depth"], event["fork_height"]) for event in reorgs] == [("n1", 2, 1), ("n2", 2, 1)]
    for event in reorgs:
        events.check(json.dumps(event).encode())
    assert "# REORG 2 block(s): 3 " in events.describe(reorgs[0])
    state = metrics.state(now=50.0, interval=10)["lab"]["blocks"]
    assert {tip["hash"] for tip in state["tips"].values()} == {h("c4")} and len(state["blocks"]) == 6


def test_the_portal_draws_the_split_in_two_lanes_with_each_sides_nodes_then_one_chain_and_a_stale_branch() -> None:
    sys.path.insert(0, str(ROOT / "images" / "portal"))
    import portal

    nodes = ["n1", "n2", "n3", "n4", "n5"]
    tree = BlockTree()
    for height in range(1, 30):  # a long common chain before the split
        for node in nodes:
            tree.block(node, h(f"b{height}"), height, float(height))
    for height, block in ((30, "a30"), (31, "a31")):
        for node in ("n1", "n2"):
            tree.block(node, h(block), height, 100.0 + height, mined=node == "n1")
    for height, block in ((30, "c30"), (31, "c31"), (32, "c32")):
        for node in ("n3", "n4"):
            tree.block(node, h(block), height, 110.0 + height, mined=node == "n3")
    # n5 is behind on the longer side: not a branch of its own
    tree.block("n5", h("c30"), 30, 140.0)
    split = portal.fork_view(tree.view(), nodes)
    assert split["branches"] == 2 and split["lanes"] == 2
    lanes = {block["hash"]: (block["lane"], block["nodes"], block["stale"]) for block in split["blocks"]}
    assert lanes[h("c32")] == (0, ["n3", "n4"], False) and lanes[h("c30")] == (0, ["n5"], False)
    assert lanes[h("a31")] == (1, ["n1", "n2"], False) and lanes[h("a30")] == (1, [], False)
    assert split["from"] == 21 and split["to"] == 32, "the last 12 heights (the fork point, 29, is among them)"
    assert {block["hash"]: block["parent"] for block in split["blocks"]}[h("a30")] == h("b29")
    # healed: n1 and n2 reorganise onto c; a30..a31 are stale, the reorganisations listed newest first
    for node in ("n1", "n2", "n5"):
        for height, block in (((31, "a31"), (30, "a30"), (29, "b29")) if node != "n5" else ()) + ((30, "c30"), (31, "c31"), (32, "c32")):
            tree.block(node, h(block), height, 200.0 + height)
    healed = portal.fork_view(tree.view(), nodes)
    assert healed["branches"] == 1 and healed["lanes"] == 2
    lanes = {block["hash"]: (block["lane"], block["nodes"], block["stale"]) for block in healed["blocks"]}
    assert lanes[h("c32")] == (0, nodes, False) and lanes[h("a31")] == (1, [], True) and lanes[h("a30")] == (1, [], True)
    assert [(reorg["node"], reorg["depth"]) for reorg in healed["reorgs"]] == [("n2", 2), ("n1", 2)]
    nothing = {"blocks": [], "lanes": 0, "branches": 0, "from": None, "to": None, "behind": {}, "unknown": nodes, "reorgs": []}
    assert portal.fork_view(None, nodes) == nothing


def test_a_fork_older_than_the_last_twelve_heights_is_shown_from_two_below_its_fork_point() -> None:
    sys.path.insert(0, str(ROOT / "images" / "portal"))
    import portal

    tree = BlockTree()
    for height in range(1, 11):
        for node in ("n1", "n2"):
            tree.block(node, h(f"b{height}"), height, float(height))
    for height in range(11, 31):  # n2 mines alone for 20 blocks, n1 stays on a block of its own at 11
        tree.block("n2", h(f"c{height}"), height, 100.0 + height)
    tree.block("n1", h("a11"), 11, 200.0)
    view = portal.fork_view(tree.view(), ["n1", "n2", "n3"])
    assert view["from"] == 8 and view["to"] == 30 and view["branches"] == 2
    assert view["unknown"] == ["n3"] and view["behind"] == {}
