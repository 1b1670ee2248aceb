# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario files: validation (every problem at once, in the topology's manner), the chain
bookkeeping a run's report is made of, and the report's Markdown. Pure; the scenario module runs it.

A scenario is a timeline of steps on one network (docs/experiments.md):

    name: split brain
    seed: 7
    steps:
      - mine: {blocks: 1}                       # by the topology's hashrate shares, or node: n1
      - fault: {kind: partition, groups: [[n1, n2], [n3, n4, n5]]}
      - mine: {node: n1, blocks: 2}
      - wait: {tips: 2, timeout: 30}            # agree: true | tips: N | height: N | alert: DETECTOR
      - clear: partition                        # a kind, or all
      - wait: {agree: true}
      - assert: {agree: true, reorg: {min_depth: 2}}
"""

from __future__ import annotations

import difflib
import functools
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import _faults

STEP_KEYS: dict[str, frozenset[str]] = {
    "mine": frozenset({"node", "blocks", "interval"}),
    "traffic": frozenset({"seconds", "blocks", "block_interval", "tx_interval", "pairs", "fee_rates", "shares"}),
    "fault": frozenset({"kind", "node", "from", "to"}).union(*_faults.KINDS.values()),
    "clear": frozenset(),
    "kill": frozenset(),
    "restart": frozenset(),
    "wait": frozenset({"agree", "tips", "height", "alert", "timeout"}),
    "sleep": frozenset(),
    "assert": frozenset({"agree", "tips", "height", "alert", "reorg", "shares"}),
}
SCENARIO_KEYS = frozenset({"name", "description", "network", "seed", "steps"})
DEFAULT_TIMEOUT = 120.0


def _number(value: object, low: float = 0.0) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value >= low


def _suggest(key: str, valid: frozenset[str]) -> str:
    close = difflib.get_close_matches(str(key), sorted(valid), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else f" (valid: {', '.join(sorted(valid))})"


def parse(document: object, source: str, networks: dict[str, list[str]]) -> dict[str, Any]:
    """Validate a scenario; the scenario with `network` filled in, or ValueError listing every problem.

    `networks` maps each network of the inventory to its node names."""
    problems: list[str] = []

    def fail(where: str, message: str) -> None:
        problems.append(f"{source}: {where}: {message}")

    if not isinstance(document, dict):
        raise ValueError(f"invalid scenario:\n  - {source}: a scenario is a mapping with 'steps', got {type(document).__name__}")
    for key in document:
        if key not in SCENARIO_KEYS:
            fail("scenario", f"unknown key '{key}'{_suggest(key, SCENARIO_KEYS)}")
    network = document.get("network") or (next(iter(networks)) if len(networks) == 1 else None)
    if network not in networks:
        fail("scenario", f"network {network!r} is not in the inventory (networks: {', '.join(sorted(networks))})")
        nodes: list[str] = []
    else:
        nodes = networks[network]
    seed = document.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int):
        fail("scenario", f"'seed' must be an integer, got {seed!r}")
    steps = document.get("steps")
    if not isinstance(steps, list) or not steps:
        fail("scenario", "'steps' must be a non-empty list")
        steps = []
    checked = []
    for index, raw in enumerate(steps):
        where = f"steps[{index}]"
        if not isinstance(raw, dict) or len(raw) != 1:
            fail(where, f"a step is a mapping with one key (one of {', '.join(STEP_KEYS)}), got {raw!r}")
            continue
        ((kind, body),) = raw.items()
        if kind not in STEP_KEYS:
            fail(where, f"unknown step '{kind}'{_suggest(kind, frozenset(STEP_KEYS))}")
            continue
        step = _step(kind, body, nodes, functools.partial(fail, where))
        if step is not None:
            checked.append(step)
    if problems:
        raise ValueError("invalid scenario:\n  - " + "\n  - ".join(problems))
    return {"name": str(document.get("name") or source), "description": str(document.get("description") or ""),
            "network": network, "seed": seed, "steps": checked}


def _node(value: object, nodes: list[str], fail: Callable[[str], None]) -> str:
    return _faults.node_name(value, nodes, "node", fail)


def _step(kind: str, body: object, nodes: list[str], fail: Callable[[str], None]) -> dict[str, Any] | None:
    bad: list[str] = []

    def refuse(message: str) -> None:
        bad.append(message)
        fail(message)

    if kind in ("kill", "restart"):
        name = _node(body, nodes, refuse)
        return {kind: name} if name else None
    if kind == "sleep":
        if not _number(body, 0.0):
            refuse(f"sleep takes seconds, got {body!r}")
            return None
        return {"sleep": float(body)}  # type: ignore[arg-type]
    if kind == "clear":
        if body not in (None, "all") and body not in _faults.KINDS:
            refuse(f"clear takes a fault kind ({', '.join(sorted(_faults.KINDS))}) or all, got {body!r}")
            return None
        return {"clear": body or "all"}
    if not isinstance(body, dict):
        refuse(f"{kind} takes a mapping, got {body!r}")
        return None
    unknown = sorted(set(body) - STEP_KEYS[kind])
    for key in unknown:
        refuse(f"unknown key '{key}' in a {kind} step{_suggest(key, STEP_KEYS[kind])}")
    if kind == "fault":
        found = _faults.parse([body], nodes, lambda _where, message: refuse(message), "fault")
        return {"fault": found[0].as_dict()} if found and not bad else None
    if kind == "mine":
        if "node" in body:
            _node(body["node"], nodes, refuse)
        if not (isinstance(body.get("blocks", 1), int) and _number(body.get("blocks", 1), 1)):
            refuse(f"mine 'blocks' must be a whole number of at least 1, got {body.get('blocks')!r}")
        if not _number(body.get("interval", 0), 0):
            refuse(f"mine 'interval' must be seconds, got {body.get('interval')!r}")
    if kind == "traffic":
        if not _number(body.get("seconds", 0), 0) or not (body.get("seconds") or body.get("blocks")):
            refuse("traffic needs 'seconds' (a positive number) or 'blocks'")
        for pair in body.get("pairs") or []:
            if not isinstance(pair, list) or len(pair) != 2:
                refuse(f"traffic 'pairs' are [payer, payee] lists, got {pair!r}")
            else:
                for name in pair:
                    _node(name, nodes, refuse)
        shares = body.get("shares")
        if shares is not None:
            if not isinstance(shares, dict) or not shares or not all(_number(share, 0) and share for share in shares.values()):
                refuse(f"traffic 'shares' maps miners to hashrate shares (positive numbers), got {shares!r}")
            else:
                for name in shares:
                    _node(name, nodes, refuse)
        rates = body.get("fee_rates") or []
        if rates and (len(rates) != 2 or not all(_number(rate, 1) for rate in rates) or rates[0] > rates[1]):
            refuse(f"traffic 'fee_rates' is [low, high] in sat/vB (at least 1), got {rates!r}")
    if kind in ("wait", "assert"):
        conditions = sorted(set(body) - {"timeout"})
        if not conditions:
            refuse(f"{kind} needs a condition: agree, tips, height, alert" + (", reorg, shares" if kind == "assert" else ""))
        if "agree" in body and body["agree"] is not True:
            refuse(f"'agree' takes true, got {body['agree']!r}")
        for key in ("tips", "height"):
            if key in body and not (isinstance(body[key], int) and _number(body[key], 1)):
                refuse(f"'{key}' must be a whole number of at least 1, got {body[key]!r}")
        if "alert" in body and not isinstance(body["alert"], str):
            refuse(f"'alert' names a detector (fork, restart, ...), got {body['alert']!r}")
        if "timeout" in body and not _number(body["timeout"], 0):
            refuse(f"'timeout' must be seconds, got {body['timeout']!r}")
        reorg = body.get("reorg")
        if reorg is not None and not (isinstance(reorg, dict) and set(reorg) <= {"min_depth", "max_depth"}
                                      and all(_number(v, 0) for v in reorg.values())):
            refuse(f"'reorg' is {{min_depth: N, max_depth: N}}, got {reorg!r}")
        shares = body.get("shares")
        if shares is not None and not (isinstance(shares, dict) and set(shares) == {"within"} and _number(shares["within"], 0)):
            refuse(f"'shares' is {{within: POINTS}}, got {shares!r}")
    return None if bad else {kind: dict(body)}


@dataclass
class NodeChain:
    """One node's active chain as a run saw it: height -> hash, from its tips."""
    heights: dict[int, str] = field(default_factory=dict)
    tip: str = ""
    height: int = -1


def connect(chain: NodeChain, tip: str, height: int, parents: Callable[[str], tuple[str, int]]) -> tuple[list[tuple[str, int]], int]:
    """A node's new tip: the blocks that joined its active chain (oldest first) and the depth of the
    reorganisation it took (0 when the old tip is an ancestor of the new one). `parents(hash)` gives
    a block's (previous hash, its height). The first tip a run sees is its starting point."""
    if not chain.heights:
        chain.heights[height] = tip
        chain.tip, chain.height = tip, height
        return [(tip, height)], 0
    floor = min(chain.heights)
    joined: list[tuple[str, int]] = []
    cursor, at = tip, height
    while at >= floor and chain.heights.get(at) != cursor:
        joined.append((cursor, at))
        cursor, at = parents(cursor)
    depth = max(0, chain.height - at)  # `at` is the last block both chains share
    for stale in [h for h in chain.heights if h > at]:
        del chain.heights[stale]
    for block, block_height in joined:
        chain.heights[block_height] = block
    chain.tip, chain.height = tip, height
    return list(reversed(joined)), depth


def summarize(report: dict[str, Any], declared: dict[str, float]) -> dict[str, Any]:
    """Fill in what a report derives: per node propagation, mining shares, forks."""
    blocks = report["blocks"]
    nodes = report["nodes"]
    per_node: dict[str, list[float]] = {node: [] for node in nodes}
    for block in blocks:
        for node, seconds in block["propagation"].items():
            per_node.setdefault(node, []).append(seconds)
    report["propagation"] = {node: ({"blocks": len(times), "median": round(statistics.median(times), 3), "max": round(max(times), 3)}
                                    if times else {"blocks": 0}) for node, times in per_node.items()}
    mined = [block["miner"] for block in blocks if block.get("miner") and block.get("ours")]
    counts = {name: mined.count(name) for name in sorted(set(mined) | set(declared))}
    total = len(mined)
    report["shares"] = {name: {"blocks": count, "observed": round(100.0 * count / total, 2) if total else 0.0,
                               "declared": declared.get(name)} for name, count in counts.items()}
    report["reorg_depth"] = max([reorg["depth"] for reorg in report["reorgs"]], default=0)
    return report


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: what a person reads after a run."""
    lines = [f"# Scenario: {report['name']}", ""]
    if report.get("description"):
        lines += [report["description"], ""]
    lines += [f"Network `{report['network']}`, seed {report['seed']}, started {report['started_utc']}, "
              f"{report['seconds']:.1f} s, **{'passed' if report['ok'] else 'failed'}**"
              + (f": {report['error']}" if report.get("error") else "."), ""]
    lines += ["## Steps", "", "| # | at (s) | step | took (s) | result |", "|---|---|---|---|---|"]
    for index, step in enumerate(report["steps"]):
        lines.append(f"| {index} | {step['at']:.1f} | `{step['step']}` | {step['seconds']:.1f} | {step['result']} |")
    lines += ["", "## Blocks", "", "Propagation: seconds from the block's first sighting (its miner) to each node's tip.", ""]
    nodes = report["nodes"]
    lines += ["| height | block | miner | " + " | ".join(nodes) + " |", "|---|---|---|" + "---|" * len(nodes)]
    for block in report["blocks"]:
        cells = [(f"{block['propagation'][node]:.2f}" if node in block["propagation"] else "-") for node in nodes]
        stale = " (stale)" if block.get("stale") else ""
        height = "?" if block.get("height") is None else block["height"]
        lines.append(f"| {height} | `{block['hash'][:12]}`{stale} | {block.get('miner') or '?'} | " + " | ".join(cells) + " |")
    hosts = report.get("hosts") or {}  # a network across Docker hosts: where each node ran
    lines += ["", "| node |" + (" Docker host |" if hosts else "") + " blocks seen | median (s) | max (s) |",
              "|---|" + ("---|" if hosts else "") + "---|---|---|"]
    for node, stats in report["propagation"].items():
        where = f" {hosts.get(node, '?')} |" if hosts else ""
        lines.append(f"| {node} |{where} {stats['blocks']} | {stats.get('median', '-')} | {stats.get('max', '-')} |")
    lines += ["", "## Forks and reorganisations", ""]
    lines.append(f"Most distinct tips at once: {report['max_tips']}. Deepest reorganisation: {report['reorg_depth']} block(s).")
    if report["reorgs"]:
        lines += ["", "| at (s) | node | depth | from | to |", "|---|---|---|---|---|"]
        for reorg in report["reorgs"]:
            old, new = reorg["old_tip"][:12], reorg["new_tip"][:12]
            lines.append(f"| {reorg['at']:.1f} | {reorg['node']} | {reorg['depth']} | `{old}` | `{new}` |")
    lines += ["", "## Mining shares", "", "| miner | blocks | observed % | declared % |", "|---|---|---|---|"]
    for name, share in report["shares"].items():
        declared = "-" if share["declared"] is None else f"{share['declared']:g}"
        lines.append(f"| {name} | {share['blocks']} | {share['observed']:g} | {declared} |")
    lines += ["", "## Faults", ""]
    lines += [f"- {entry['at']:.1f} s: {entry['action']} {entry['fault']}" for entry in report["faults"]] or ["None."]
    lines += ["", "## Alerts", ""]
    lines += [f"- {alert['at']:.1f} s: {alert['node']} {alert['detector']}: {alert['message']}" for alert in report["alerts"]] or [
        "None raised" + ("" if report.get("observer") else " (no Observer was given: peerlab_monitoring off)") + "."]
    if report.get("cleanup"):
        lines += ["", "## Cleanup", "", "What could not be undone at the end (the rest was):", ""]
        lines += [f"- {failure}" for failure in report["cleanup"]]
    lines += ["", "## End", ""]
    lines += [f"- {node}: height {tip['height']}, `{tip['hash'][:16]}`" for node, tip in sorted(report["final"].items())]
    return "\n".join(lines) + "\n"
