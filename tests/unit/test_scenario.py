"""Scenario files: checked whole against the inventory; the chain bookkeeping behind a report; its Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.peerlab.bitcoin.plugins.module_utils._scenario import NodeChain, connect, markdown, parse, summarize

NETWORKS = {"lab": ["n1", "n2", "n3", "n4", "n5"]}


@pytest.mark.parametrize("name", ["split-brain.yml", "slow-link.yml", "latency.yml"])
def test_shipped_scenarios_pass(name: str) -> None:
    document = yaml.safe_load((Path("scenarios") / name).read_text())
    checked = parse(document, name, NETWORKS)
    assert checked["network"] == "lab" and checked["steps"] and checked["name"] in ("split brain", "slow link", "latency")


def test_the_swarm_split_brain_passes_on_the_swarm_lab() -> None:
    document = yaml.safe_load((Path("scenarios") / "split-brain-swarm.yml").read_text())
    checked = parse(document, "split-brain-swarm.yml", {"sw": ["a", "b", "c", "d"]})
    assert checked["network"] == "sw" and {"fault": {"kind": "partition", "groups": [["a", "b"], ["c", "d"]]}} in checked["steps"]


def test_the_continents_scenario_passes_on_its_inventory() -> None:
    document = yaml.safe_load((Path("scenarios") / "continents.yml").read_text())
    assert parse(document, "continents.yml", {"world": [f"w{index}" for index in range(1, 11)]})["network"] == "world"


def test_a_traffic_step_takes_its_own_hashrate_shares() -> None:
    assert parse({"steps": [{"traffic": {"blocks": 3, "shares": {"n1": 70, "n3": 30}}}]}, "s.yml", NETWORKS)
    with pytest.raises(ValueError) as caught:
        parse({"steps": [{"traffic": {"blocks": 3, "shares": {"n1": 0, "n9": 5}}}]}, "s.yml", NETWORKS)
    assert "traffic 'shares' maps miners to hashrate shares (positive numbers), got {'n1': 0, 'n9': 5}" in str(caught.value)
    with pytest.raises(ValueError, match="node 'n9' is not a node of this network"):
        parse({"steps": [{"traffic": {"blocks": 3, "shares": {"n9": 5}}}]}, "s.yml", NETWORKS)


def test_every_problem_is_listed_at_once() -> None:
    document = {"nmae": "x", "network": "lab", "seed": "seven", "steps": [
        {"mine": {"node": "n9", "blocks": 0}}, {"fault": {"kind": "loss", "node": "n1", "percent": 300}},
        {"wiat": {"agree": True}}, {"wait": {"timeout": 5}}, {"assert": {"reorg": {"depth": 2}}},
        {"clear": "everything"}, {"kill": "n7"}, {"traffic": {"pairs": [["n1", "x"]], "fee_rates": [20, 1]}},
        {"sleep": -1}, {"mine": {}, "wait": {}}]}
    with pytest.raises(ValueError) as caught:
        parse(document, "bad.yml", NETWORKS)
    problems = str(caught.value).splitlines()[1:]
    expected = [
        "bad.yml: scenario: unknown key 'nmae' (did you mean 'name'?)",
        "bad.yml: scenario: 'seed' must be an integer, got 'seven'",
        "bad.yml: steps[0]: node 'n9' is not a node of this network (nodes: n1, n2, n3, n4, n5)",
        "bad.yml: steps[0]: mine 'blocks' must be a whole number of at least 1, got 0",
        "bad.yml: steps[1]: loss 'percent' must be a number above 0 and at most 100, got 300",
        "bad.yml: steps[2]: unknown step 'wiat' (did you mean 'wait'?)",
        "bad.yml: steps[3]: wait needs a condition: agree, tips, height, alert",
        "bad.yml: steps[4]: 'reorg' is {min_depth: N, max_depth: N}, got {'depth': 2}",
        "bad.yml: steps[5]: clear takes a fault kind (bandwidth, latency, loss, partition, pause) or all, got 'everything'",
        "bad.yml: steps[6]: node 'n7' is not a node of this network (nodes: n1, n2, n3, n4, n5)",
        "bad.yml: steps[7]: traffic needs 'seconds' (a positive number) or 'blocks'",
        "bad.yml: steps[7]: node 'x' is not a node of this network (nodes: n1, n2, n3, n4, n5)",
        "bad.yml: steps[7]: traffic 'fee_rates' is [low, high] in sat/vB (at least 1), got [20, 1]",
        "bad.yml: steps[8]: sleep takes seconds, got -1",
    ]
    assert [line.strip().removeprefix("- ") for line in problems[:len(expected)]] == expected
    assert "steps[9]: a step is a mapping with one key" in str(caught.value)


def test_network_must_be_named_when_the_inventory_has_several() -> None:
    with pytest.raises(ValueError, match="network None is not in the inventory"):
        parse({"steps": [{"sleep": 1}]}, "s.yml", {"a": ["n1"], "b": ["n1"]})
    assert parse({"network": "b", "steps": [{"sleep": 1}]}, "s.yml", {"a": ["n1"], "b": ["n1"]})["network"] == "b"


def chain_of(blocks: dict[str, tuple[str, int]]) -> Any:
    return lambda block: (blocks[block][0], blocks[block][1] - 1)


def test_connect_follows_extensions_and_measures_reorganisations() -> None:
    # 100 <- a101 <- a102 (the node's chain); 100 <- b101 <- b102 <- b103 (the other side's)
    blocks = {"g100": ("g99", 100), "a101": ("g100", 101), "a102": ("a101", 102),
              "b101": ("g100", 101), "b102": ("b101", 102), "b103": ("b102", 103)}
    chain = NodeChain()
    assert connect(chain, "g100", 100, chain_of(blocks)) == ([("g100", 100)], 0)  # the starting point
    assert connect(chain, "a102", 102, chain_of(blocks)) == ([("a101", 101), ("a102", 102)], 0)
    joined, depth = connect(chain, "b103", 103, chain_of(blocks))
    assert joined == [("b101", 101), ("b102", 102), ("b103", 103)] and depth == 2
    assert chain.heights == {100: "g100", 101: "b101", 102: "b102", 103: "b103"}


def test_summary_and_markdown_say_what_happened() -> None:
    report: dict[str, Any] = {
        "name": "t", "description": "", "network": "lab", "seed": 1, "started_utc": "2026-12-02 00:00:00 UTC", "seconds": 9.0,
        "ok": True, "error": "", "nodes": ["n1", "n2"],
        "steps": [{"at": 0.5, "step": "mine {}", "seconds": 0.1, "result": "1 block(s)", "ok": True}],
        "blocks": [{"hash": "aa" * 32, "height": 5, "miner": "n1", "ours": True, "at": 1.0, "propagation": {"n1": 0.0, "n2": 0.25},
                    "stale": False},
                   {"hash": "bb" * 32, "height": 6, "miner": "n2", "ours": True, "at": 2.0, "propagation": {"n2": 0.0, "n1": 0.75},
                    "stale": True}],
        "reorgs": [{"at": 3.0, "node": "n1", "depth": 1, "old_tip": "bb" * 32, "new_tip": "cc" * 32}],
        "max_tips": 2, "faults": [{"at": 1.5, "action": "applied", "fault": "partition n1 | n2"}], "alerts": [], "observer": False,
        "final": {"n1": {"hash": "cc" * 32, "height": 6}, "n2": {"hash": "cc" * 32, "height": 6}}}
    summarize(report, {"n1": 60.0, "n2": 40.0})
    assert report["propagation"]["n2"] == {"blocks": 2, "median": 0.125, "max": 0.25}
    assert report["shares"] == {"n1": {"blocks": 1, "observed": 50.0, "declared": 60.0},
                                "n2": {"blocks": 1, "observed": 50.0, "declared": 40.0}}
    assert report["reorg_depth"] == 1
    text = markdown(report)
    assert "| 6 | `bbbbbbbbbbbb` (stale) | n2 | 0.75 | 0.00 |" in text
    assert "Most distinct tips at once: 2. Deepest reorganisation: 1 block(s)." in text
    assert "- 1.5 s: applied partition n1 | n2" in text and "no Observer was given" in text
