#!/usr/bin/env python3
"""Run one seeded scenario on networks that differ only in their implementation and put the runs
side by side (docs/experiments.md, "Differential runs"):

    make differential                     (inventories/differential: knots against statoshi)
    python tools/differential.py --inventory INV --scenario FILE --networks a,b [--out FILE.md]

For each network in turn it subscribes to the Observer's event feed, runs the scenario (the same
file, its `network:` set to that network) with playbooks/scenario.yml, and keeps the scenario's
JSON report and the network's events of the run. The report compares: block propagation (the
scenario's per-node arrival times and the Observer's first-to-last `propagation` events), forks
and reorganisations, mempool convergence (each transaction's acceptance by the nodes it reached:
how many, and the spread from the first to the last), P2P message counts per type, and the
detectors' alerts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import eventlog


def percentile(values: list[float], fraction: float) -> float | None:
    """The value at `fraction` (0-1) of the sorted values, nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def fault_windows(report: dict[str, Any]) -> list[tuple[float, float]]:
    """When the scenario held a fault: (applied, cleared) in seconds from its start; a fault never
    cleared lasts to the end of the run."""
    windows: list[tuple[float, float]] = []
    open_since: dict[Any, float] = {}
    for entry in report.get("faults") or []:
        if entry.get("action") == "applied":
            open_since.setdefault(entry.get("fault"), float(entry.get("at", 0)))
        elif entry.get("fault") in open_since:
            windows.append((open_since.pop(entry.get("fault")), float(entry.get("at", 0))))
    return windows + [(start, float(report.get("seconds") or 0)) for start in open_since.values()]


def spread(values: list[float]) -> dict[str, Any]:
    return {"p50": percentile(values, 0.5), "p90": percentile(values, 0.9), "max": max(values, default=None), "count": len(values)}


def summarize(report: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """What the comparison shows of one run: its scenario report and its network's events."""
    nodes = list(report.get("nodes") or [])
    windows = fault_windows(report)
    arrivals: dict[bool, list[float]] = {False: [], True: []}  # by: mined while a fault was held
    for block in report.get("blocks") or []:
        held = any(start <= block.get("at", 0) <= end for start, end in windows)
        arrivals[held] += [seconds for node, seconds in (block.get("propagation") or {}).items() if node != block.get("miner")]
    received: Counter[str] = Counter()
    sent: Counter[str] = Counter()
    accepted: dict[str, dict[str, float]] = defaultdict(dict)
    rejected: Counter[str] = Counter()
    alerts: Counter[str] = Counter()
    reorgs: list[int] = []
    spreads: list[float] = []
    for event in events:
        kind = event.get("kind")
        if kind == "msg":
            (received if event.get("dir") == "in" else sent)[str(event.get("type"))] += 1
        elif kind == "tx" and event.get("event") == "accepted":
            accepted[str(event.get("txid"))].setdefault(str(event.get("node")), float(event.get("time", 0)))
        elif kind == "tx":
            rejected[str(event.get("reason") or "?")] += 1
        elif kind == "alert":
            alerts[str(event.get("detector"))] += 1
        elif kind == "reorg":
            reorgs.append(int(event.get("depth", 0)))
        elif kind == "propagation":
            spreads.append(float(event.get("seconds", 0)))
    # A transaction is accepted from a peer by every node but the one whose wallet made it.
    others = max(1, len(nodes) - 1)
    reach = [len(times) for times in accepted.values()]
    tx_spread = [round(max(times.values()) - min(times.values()), 3) for times in accepted.values() if len(times) > 1]
    return {
        "network": report.get("network"), "ok": report.get("ok"), "seconds": report.get("seconds"), "nodes": nodes,
        "blocks": len(report.get("blocks") or []), "stale": sum(1 for block in report.get("blocks") or [] if block.get("stale")),
        "arrival": spread(arrivals[False]), "arrival_faulted": spread(arrivals[True]),
        "propagation": {"p50": percentile(spreads, 0.5), "p90": percentile(spreads, 0.9), "max": max(spreads, default=None),
                        "count": len(spreads)},
        "max_tips": report.get("max_tips"), "reorg_depth": report.get("reorg_depth"),
        "reorgs": {"scenario": len(report.get("reorgs") or []), "observer": len(reorgs), "deepest": max(reorgs, default=0)},
        "mempool": {"transactions": len(accepted), "reached_all": sum(1 for count in reach if count >= others),
                    "mean_reach": round(statistics.fmean(reach) / others, 3) if reach else None,
                    "spread_p50": percentile(tx_spread, 0.5), "spread_p90": percentile(tx_spread, 0.9),
                    "rejected": sum(rejected.values()), "rejected_for": dict(rejected.most_common())},
        "received": dict(received.most_common()), "sent": dict(sent.most_common()),
        "alerts": dict(alerts.most_common()),
        "scenario_alerts": sorted({str(alert.get("detector")) for alert in report.get("alerts") or []}),
        "steps_failed": [step["step"] for step in report.get("steps") or [] if not step.get("ok")],
    }


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def render(scenario: dict[str, Any], runs: dict[str, dict[str, Any]], implementations: dict[str, str]) -> str:
    """The side-by-side markdown report."""
    names = list(runs)
    head = "| | " + " | ".join(f"{name} ({implementations.get(name, '?')})" for name in names) + " |\n|---|" + "---|" * len(names) + "\n"

    def row(label: str, cell: Any) -> str:
        return f"| {label} | " + " | ".join(str(cell(runs[name])) for name in names) + " |\n"

    text = [f"# Differential run: {scenario.get('name', '?')}\n\n",
            f"{scenario.get('description', '').strip()}\n\n" if scenario.get("description") else "",
            f"The same scenario (seed {scenario.get('seed')}) on {len(names)} networks that differ only in their "
            f"implementation, one after the other ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
            "`tools/differential.py`).\n\n## Blocks and forks\n\n", head,
            row("scenario passed", lambda r: "yes" if r["ok"] else f"no ({', '.join(r['steps_failed'])})"),
            row("run length", lambda r: seconds(r["seconds"])),
            row("blocks seen (stale)", lambda r: f"{r['blocks']} ({r['stale']})"),
            row("block arrival at a node after its miner, p50 (no fault held)", lambda r: seconds(r["arrival"]["p50"])),
            row("block arrival, p90 (no fault held)", lambda r: seconds(r["arrival"]["p90"])),
            row("block arrival, max (no fault held; arrivals)", lambda r: f"{seconds(r['arrival']['max'])} ({r['arrival']['count']})"),
            row("block arrival, blocks mined while a fault was held: p50, max (arrivals)",
                lambda r: f"{seconds(r['arrival_faulted']['p50'])}, {seconds(r['arrival_faulted']['max'])} "
                          f"({r['arrival_faulted']['count']})"),
            row("Observer propagation (first to last node), p50", lambda r: seconds(r["propagation"]["p50"])),
            row("Observer propagation, p90 (blocks)", lambda r: f"{seconds(r['propagation']['p90'])} ({r['propagation']['count']})"),
            row("most competing tips", lambda r: r["max_tips"]),
            row("reorganisations (scenario / Observer)", lambda r: f"{r['reorgs']['scenario']} / {r['reorgs']['observer']}"),
            row("deepest reorganisation", lambda r: r["reorg_depth"] or r["reorgs"]["deepest"]),
            "\n## Mempool convergence\n\n", head,
            row("transactions accepted from peers", lambda r: r["mempool"]["transactions"]),
            row("reached every other node", lambda r: r["mempool"]["reached_all"]),
            row("mean share of the other nodes reached", lambda r: r["mempool"]["mean_reach"]),
            row("first to last acceptance, p50", lambda r: seconds(r["mempool"]["spread_p50"])),
            row("first to last acceptance, p90", lambda r: seconds(r["mempool"]["spread_p90"])),
            row("rejected (bitcoind's reasons)", lambda r: f"{r['mempool']['rejected']}" + (
                f" ({', '.join(f'{reason}: {count}' for reason, count in r['mempool']['rejected_for'].items())})"
                if r["mempool"]["rejected"] else "")),
            "\n## Messages received, per type (all nodes)\n\n", head]
    types = sorted({kind for run in runs.values() for kind in run["received"]},
                   key=lambda kind: -max(run["received"].get(kind, 0) for run in runs.values()))
    text += [row(f"`{kind}`", lambda r, kind=kind: r["received"].get(kind, 0)) for kind in types]
    text += ["\n## Detector alerts\n\n", head]
    detectors = sorted({detector for run in runs.values() for detector in run["alerts"]})
    text += [row(f"`{detector}`", lambda r, detector=detector: r["alerts"].get(detector, 0)) for detector in detectors]
    if not detectors:
        text.append(row("(none)", lambda r: 0))
    return "".join(text)


def collect(url: str, network: str, into: list[dict[str, Any]], ready: threading.Event, stop: threading.Event) -> None:
    """Events of the network into `into` until `stop` is set and no log event came for 2 s (a run's last
    blocks reach the Observer through the collectors' log tail a moment after the scenario ends)."""
    last = time.monotonic()
    for event in eventlog.stream(url, network=network, timeout=0.5):
        if event is None:
            ready.set()
        else:
            into.append(event)
            if event.get("kind") != "poll":
                last = time.monotonic()
        if stop.is_set() and time.monotonic() - last > 2:
            return


def run_one(inventory: str, scenario_path: Path, scenario: dict[str, Any], network: str, url: str,
            reports: Path, work: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    copy = work / f"{scenario_path.stem}-{network}.yml"
    copy.write_text(yaml.safe_dump({**scenario, "network": network}, sort_keys=False))
    before = set(reports.glob(f"{copy.stem}-*.json")) if reports.is_dir() else set()
    events: list[dict[str, Any]] = []
    ready, stop = threading.Event(), threading.Event()
    watcher = threading.Thread(target=collect, args=(url, network, events, ready, stop), daemon=True)
    watcher.start()
    if not ready.wait(30):
        raise SystemExit(f"peerlab: the Observer's feed {url} did not answer: is {inventory}'s monitoring stack deployed?")
    print(f"peerlab: running {scenario_path} on {network}", file=sys.stderr)
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", inventory, str(ROOT / "playbooks" / "scenario.yml"),
                           "-e", f"scenario={copy}"], cwd=ROOT, check=False, capture_output=True, text=True)
    stop.set()
    watcher.join(60)
    made = sorted(set(reports.glob(f"{copy.stem}-*.json")) - before) if reports.is_dir() else []
    if not made:
        raise SystemExit(f"peerlab: the scenario on {network} wrote no report:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return json.loads(made[-1].read_text()), list(events)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inventory", default="inventories/differential")
    parser.add_argument("--scenario", default="scenarios/differential.yml")
    parser.add_argument("--networks", default="knots,statoshi", help="comma-separated, run in this order")
    parser.add_argument("--url", default=os.environ.get("PEERLAB_EVENTS_URL", "ws://127.0.0.1:8192/events"),
                        help="the Observer's event feed of the inventory's monitoring stack")
    parser.add_argument("--reports", default=".state/differential/reports", help="where playbooks/scenario.yml writes reports")
    parser.add_argument("--out", default="", help="the markdown report (default: <reports>/differential-<UTC>.md)")
    arguments = parser.parse_args(argv)
    scenario_path = Path(arguments.scenario)
    scenario = yaml.safe_load(scenario_path.read_text())
    reports = Path(arguments.reports)
    networks = [name for name in arguments.networks.split(",") if name]
    inventory = yaml.safe_load(next(Path(arguments.inventory).glob("*.peerlab.yml")).read_text())
    implementations = {}
    for name in networks:
        spec = (inventory.get("networks") or {}).get(name)
        if spec is None:
            known = ", ".join(inventory.get("networks") or {})
            raise SystemExit(f"peerlab: {arguments.inventory} has no network {name!r} (it has {known})")
        defaults = spec.get("defaults") or {}
        implementations[name] = f"{defaults.get('implementation', 'knots')} {str(defaults.get('version', ''))[:12]}".strip()
    runs: dict[str, dict[str, Any]] = {}
    raw: dict[str, Any] = {}
    work = reports.parent / "differential"
    work.mkdir(parents=True, exist_ok=True)
    for network in networks:
        report, events = run_one(arguments.inventory, scenario_path, scenario, network, arguments.url, reports, work)
        runs[network] = summarize(report, events)
        raw[network] = {"report": report, "events": len(events)}
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = Path(arguments.out) if arguments.out else reports / f"differential-{stamp}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(scenario, runs, implementations))
    out.with_suffix(".json").write_text(json.dumps({"runs": runs, "raw": raw}, indent=1, default=str))
    print(f"peerlab: wrote {out} and {out.with_suffix('.json')}")
    return 0 if all(run["ok"] for run in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
