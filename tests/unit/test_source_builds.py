"""Node images from source (tools/build_node.py): which version a source is, what is refused before
anything is built; and the differential report (tools/differential.py) from known runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import build_node
import differential

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _images
from ansible_collections.peerlab.bitcoin.plugins.module_utils._scenario import parse
from ansible_collections.peerlab.bitcoin.plugins.module_utils._settings import ImageSettings
from ansible_collections.peerlab.bitcoin.plugins.module_utils._topology import parse as parse_topology


def git(directory: Path, *arguments: str) -> str:
    return subprocess.run(["git", "-C", str(directory), "-c", "user.name=t", "-c", "user.email=t@t", *arguments],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    source = tmp_path / "statoshi"
    (source / "src").mkdir(parents=True)
    (source / "CMakeLists.txt").write_text("project(x)\n")
    (source / "src" / "statsd_client.cpp").write_text("// one\n")
    return source


def test_a_git_directory_is_built_at_its_commit_and_a_bare_one_too(tree: Path, tmp_path: Path) -> None:
    git(tree, "init", "-q")
    git(tree, "add", ".")
    git(tree, "commit", "-q", "-m", "one")
    head = git(tree, "rev-parse", "HEAD")
    found = build_node.resolve(str(tree))
    assert (found.version, found.commit, found.git_dir) == (head, head, str(tree / ".git"))
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(tree), str(bare)], check=True)
    assert build_node.resolve(str(bare)).version == head
    assert build_node.resolve(str(bare), "HEAD").version == head
    with pytest.raises(build_node.BuildError, match="no-such-branch"):
        build_node.resolve(str(bare), "no-such-branch")


def test_a_url_is_fetched_once_at_its_pinned_commit(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git(tree, "init", "-q")
    git(tree, "add", ".")
    git(tree, "commit", "-q", "-m", "one")
    git(tree, "config", "uploadpack.allowReachableSHA1InWant", "true")
    head = git(tree, "rev-parse", "HEAD")
    monkeypatch.setattr(build_node, "CACHE", tmp_path / "cache")
    with pytest.raises(build_node.BuildError, match="give the commit to build as --ref"):
        build_node.resolve(f"file://{tree}")
    found = build_node.resolve(f"file://{tree}", head)
    assert found.version == head and Path(found.git_dir).parent == tmp_path / "cache"
    archived = subprocess.run(["git", "--git-dir", found.git_dir, "archive", head, "src/statsd_client.cpp"],
                              capture_output=True, check=True).stdout
    assert b"// one" in archived


def test_a_plain_tree_is_versioned_by_its_content(tree: Path) -> None:
    first = build_node.resolve(str(tree))
    assert first.tree == str(tree) and len(first.version) == 40
    (tree / "build").mkdir()
    (tree / "build" / "out.o").write_text("ignored")
    assert build_node.resolve(str(tree)).version == first.version, "a build directory is not the source"
    (tree / "src" / "statsd_client.cpp").write_text("// two\n")
    assert build_node.resolve(str(tree)).version != first.version
    with pytest.raises(build_node.BuildError, match="--ref has no meaning"):
        build_node.resolve(str(tree), "main")


def test_what_is_not_a_source_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(build_node.BuildError, match="no such directory"):
        build_node.resolve(str(tmp_path / "nowhere"))
    with pytest.raises(build_node.BuildError, match=r"has no CMakeLists\.txt"):
        build_node.resolve(str(tmp_path))
    (tmp_path / "bitcoin-31.0.tar.gz").write_bytes(b"")
    with pytest.raises(build_node.BuildError, match="is a file: unpack a source tarball"):
        build_node.resolve(str(tmp_path / "bitcoin-31.0.tar.gz"))


def test_the_image_gets_the_tag_a_topology_node_asks_for() -> None:
    networks = parse_topology(yaml.safe_load((ROOT / "inventories" / "mixed" / "02-topology.peerlab.yml").read_text())["networks"],
                              "mixed", {"localhost"})
    s1 = next(node for node in networks[0].nodes if node.name == "s1")
    known = _images.tags(str(ROOT / "images"), ImageSettings())
    assert known.node(s1.implementation, s1.version) == f"peerlab/bitcoin-node:statoshi-{s1.version}-{known.node_hash}"
    assert {node.implementation for node in networks[0].nodes} == {"knots", "statoshi"}
    assert build_node.builder_tag(known.base).startswith("peerlab/node-builder:")


def run(network: str, ok: bool = True, arrival: float = 0.5) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    report: dict[str, Any] = {
        "network": network, "ok": ok, "seconds": 50.0, "nodes": ["n1", "n2", "n3"], "max_tips": 2, "reorg_depth": 2,
        "steps": [{"step": "wait tips 2", "ok": ok}],
        "blocks": [{"miner": "n1", "at": 5.0, "stale": False, "propagation": {"n1": 0.0, "n2": arrival, "n3": 2 * arrival}},
                   {"miner": "n3", "at": 21.0, "stale": True, "propagation": {"n3": 0.0}},
                   {"miner": "n3", "at": 22.0, "stale": False, "propagation": {"n3": 0.0, "n1": 8.0, "n2": 8.1}}],
        "reorgs": [{"node": "n1", "depth": 2}], "alerts": [{"detector": "fork"}],
        "faults": [{"action": "applied", "at": 20.0, "fault": "partition"}, {"action": "cleared", "at": 30.0, "fault": "partition"}]}
    events: list[dict[str, Any]] = [
        {"kind": "msg", "dir": "in", "type": "inv"}, {"kind": "msg", "dir": "in", "type": "inv"},
        {"kind": "msg", "dir": "out", "type": "headers"},
        {"kind": "tx", "event": "accepted", "txid": "a", "node": "n2", "time": 10.0},
        {"kind": "tx", "event": "accepted", "txid": "a", "node": "n3", "time": 10.4},
        {"kind": "tx", "event": "accepted", "txid": "b", "node": "n2", "time": 11.0},
        {"kind": "tx", "event": "rejected", "txid": "c", "node": "n2", "reason": "txn-already-known"},
        {"kind": "alert", "detector": "fork"}, {"kind": "reorg", "depth": 2},
        {"kind": "propagation", "seconds": 2 * arrival}]
    return report, events


def test_a_runs_summary_counts_what_the_report_compares() -> None:
    summary = differential.summarize(*run("knots"))
    assert summary["arrival"] == {"p50": 0.5, "p90": 1.0, "max": 1.0, "count": 2}, "the miner's own zero is not an arrival"
    assert summary["arrival_faulted"] == {"p50": 8.0, "p90": 8.1, "max": 8.1, "count": 2}, "held back by the partition"
    assert summary["blocks"] == 3 and summary["stale"] == 1
    assert summary["mempool"] == {"transactions": 2, "reached_all": 1, "mean_reach": 0.75, "spread_p50": 0.4,
                                  "spread_p90": 0.4, "rejected": 1, "rejected_for": {"txn-already-known": 1}}
    assert summary["received"] == {"inv": 2} and summary["sent"] == {"headers": 1}
    assert summary["alerts"] == {"fork": 1} and summary["reorgs"] == {"scenario": 1, "observer": 1, "deepest": 2}


def test_the_report_puts_the_runs_side_by_side() -> None:
    nodes = ["n1", "n2", "n3", "n4", "n5"]
    scenario = parse({**yaml.safe_load((ROOT / "scenarios" / "differential.yml").read_text()), "network": "knots"}, "differential.yml",
                     {"knots": nodes, "statoshi": nodes})
    runs = {"knots": differential.summarize(*run("knots")), "statoshi": differential.summarize(*run("statoshi", ok=False, arrival=1.5))}
    text = differential.render(scenario, runs, {"knots": "knots 29.5", "statoshi": "statoshi 277036f30ce4"})
    assert "| | knots (knots 29.5) | statoshi (statoshi 277036f30ce4) |" in text
    assert "| block arrival at a node after its miner, p50 (no fault held) | 0.50 s | 1.50 s |" in text
    assert "| block arrival, blocks mined while a fault was held: p50, max (arrivals) | 8.00 s, 8.10 s (2) | 8.00 s, 8.10 s (2) |" in text
    assert "| scenario passed | yes | no (wait tips 2) |" in text
    assert "| rejected (bitcoind's reasons) | 1 (txn-already-known: 1) | 1 (txn-already-known: 1) |" in text
    assert "| `inv` | 2 | 2 |" in text and "| `fork` | 1 | 1 |" in text


def test_a_table_names_a_commit_built_node_by_its_short_commit() -> None:
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._names import build_label

    assert build_label("statoshi", "277036f30ce47da59164337f556b917d45e4a797") == "statoshi 277036f30ce4"
    assert build_label("knots", "29.5") == "knots 29.5"


def test_only_source_builds_carry_the_command_that_makes_them() -> None:
    known = _images.tags(str(ROOT / "images"), ImageSettings())
    commit = "a" * 40
    described = {build["implementation"] + " " + build["version"]: build["from_source"] for build in _images.builds(
        [known.node("statoshi", commit), known.node("core", commit), known.node("core", "29.1"), known.node("knots", "29.5")], known)}
    assert described[f"statoshi {commit}"].startswith("make statoshi SOURCE=")
    assert described[f"core {commit}"].startswith("make node-image SOURCE=") and commit in described[f"core {commit}"]
    assert described["core 29.1"] == "" and described["knots 29.5"] == ""
