"""The detectors' proving ground: each attack several times, with seeded variations, between
stretches of quiet traffic; per detector its recall, its precision and its time to detect.

Deploys the default lab's shape (5 nodes, a ring with two chords) as network `score` with the
monitoring stack under the bench's names, reads every alert of the websocket feed, then:
  - SCORE_QUIET seconds (default 60) of `make traffic`: any alert here is a false one;
  - SCORE_RUNS rounds (default 3): every P2P attack and a crash, two or three per node in turn (each
    node's detectors are its own), on nodes that change each round, with options drawn from a
    seeded generator (rate, count, duration; the source address is the one Docker hands each
    attack container, which may be a freed one again),
    while payments flow (the spy takes their announcements); then quiet traffic again.
An attack is detected when its detector fires on its node from its start to two collection
intervals after its end. An alert that no attack explains (its detector on its node during one, or
a detector the attack is documented to raise as well) is a false one.
`make score`: prints the table for docs/events.md and writes docs/score.json. SCORE_SEED changes
the draw (default 1); SCORE_FROM=docs/score.json scores a recorded run again (after a change of
what an attack is documented to raise), without running it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import eventlog  # the logger's websocket client

_bench = importlib.util.spec_from_file_location("peerlab_bench", ROOT / "bench" / "bench.py")
assert _bench and _bench.loader
bench = importlib.util.module_from_spec(_bench)
_bench.loader.exec_module(bench)

NETWORK = "score"
NODES = ["n1", "n2", "n3", "n4", "n5"]
INTERVAL = 10.0  # the collector's poll interval
FEED = "127.0.0.1:18291"
SETTINGS = {**bench.BENCH_STACK, "peerlab_monitoring": True, "observer_events_publish": FEED}

# attack -> (the detector it proves, detectors it is documented to raise as well; docs/events.md).
# Every attack connection that finishes the handshake and relays no inv or tx is short and silent,
# and Docker gives a freed address to the next attack container: attacks from one address add up
# to connect-and-listen, as they would from one host on a public network.
SILENT = ("connect-listen",)
ATTACKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "addr-flood": ("addr-flood", SILENT),
    "addr-oversized": ("misbehaving", SILENT),
    "ping-spam": ("ping-spam", SILENT),
    "subnet-flood": ("subnet-inbound", (*SILENT, "inbound-drop")),  # its connections leave together
    "inbound-flood": ("inbound-drop", ("subnet-inbound", *SILENT)),
    "connect-listen": ("connect-listen", ()),
    "inv-flood": ("inv-flood", ()),
    "spy-peer": ("spy-peer", SILENT),
    "unknown-messages": ("unknown-messages", SILENT),
    "handshake-churn": ("handshake-churn", ()),
    "kill": ("restart", ("lagging", "slow-block")),
}


def options(kind: str, rng: random.Random) -> dict[str, Any]:
    """One seeded variation of an attack: how many, how fast, how long."""
    draws: dict[str, Callable[[], dict[str, Any]]] = {
        "addr-flood": lambda: {"messages": rng.randint(2, 5)},
        "ping-spam": lambda: {"pings": rng.randint(5, 10), "every": round(rng.uniform(0.3, 1.5), 1)},
        "subnet-flood": lambda: {"connections": rng.randint(4, 8), "hold": rng.randint(25, 40)},
        "inbound-flood": lambda: {"connections": rng.randint(4, 8), "hold": rng.randint(20, 30)},
        "connect-listen": lambda: {"connections": rng.randint(3, 5), "hold": rng.randint(2, 8)},
        "inv-flood": lambda: {"messages": rng.randint(2, 5)},
        "spy-peer": lambda: {"hold": rng.randint(30, 45)},
        "unknown-messages": lambda: {"messages": rng.randint(10, 30)},
        "handshake-churn": lambda: {"connections": rng.randint(10, 20)},
    }
    return {**draws.get(kind, dict)(), **({"seed": rng.randrange(2**16)} if kind in ("inv-flood", "unknown-messages") else {})}


@dataclass
class Attempt:
    kind: str
    node: str
    options: dict[str, Any]
    started: float
    ended: float


def score(attempts: list[Attempt], alerts: list[dict[str, Any]], interval: float = INTERVAL) -> dict[str, dict[str, Any]]:
    """Per detector: runs, detected, recall, false alerts, precision, time to detect (median, p95).
    `alerts` are the feed's alert events (their `time` is when the detector raised them)."""
    rows: dict[str, dict[str, Any]] = {}
    for kind, (detector, _also) in ATTACKS.items():
        if any(attempt.kind == kind for attempt in attempts):
            rows.setdefault(detector, {"attack": kind, "runs": 0, "detected": 0, "times": [], "true": 0, "false": 0})

    def explains(attempt: Attempt, alert: dict[str, Any]) -> bool:
        detector, also = ATTACKS[attempt.kind]
        return (alert["detector"] in (detector, *also) and alert["node"] == attempt.node
                and attempt.started <= float(alert["time"]) <= attempt.ended + 2 * interval)

    for attempt in attempts:
        detector = ATTACKS[attempt.kind][0]
        row = rows[detector]
        row["runs"] += 1
        fired = [float(alert["time"]) for alert in alerts if alert["detector"] == detector and explains(attempt, alert)]
        if fired:
            row["detected"] += 1
            row["times"].append(max(0.0, min(fired) - attempt.started))
    for alert in alerts:
        row = rows.setdefault(alert["detector"], {"attack": "", "runs": 0, "detected": 0, "times": [], "true": 0, "false": 0})
        row["true" if any(explains(attempt, alert) for attempt in attempts) else "false"] += 1
    out = {}
    for detector, row in sorted(rows.items()):
        times = sorted(row["times"])
        out[detector] = {
            "attack": row["attack"], "runs": row["runs"], "detected": row["detected"],
            "recall": round(row["detected"] / row["runs"], 3) if row["runs"] else None,
            "alerts": row["true"] + row["false"], "false_alerts": row["false"],
            "precision": round(row["true"] / (row["true"] + row["false"]), 3) if row["true"] + row["false"] else None,
            "detect_median_s": round(statistics.median(times), 1) if times else None,
            "detect_p95_s": round(times[min(len(times) - 1, int(len(times) * 0.95))], 1) if times else None,
        }
    return out


def table(scores: dict[str, dict[str, Any]]) -> str:
    def cell(value: Any, unit: str = "") -> str:
        return "-" if value is None else f"{value}{unit}"

    lines = ["| detector | attack | runs | detected | recall | alerts | false | precision | detect median | detect p95 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for detector, row in scores.items():
        attack = f"`{row['attack']}`" if row["attack"] else "-"
        lines.append(f"| `{detector}` | {attack} | {row['runs']} | {row['detected']} | "
                     f"{cell(row['recall'])} | {row['alerts']} | {row['false_alerts']} | {cell(row['precision'])} | "
                     f"{cell(row['detect_median_s'], ' s')} | {cell(row['detect_p95_s'], ' s')} |")
    return "\n".join(lines)


def plan(rounds: int, seed: int) -> list[dict[str, list[tuple[str, dict[str, Any]]]]]:
    """Per round, per node, the attacks it takes one after the other (two per node; the nodes
    each attack meets turn round by round)."""
    rng = random.Random(seed)
    kinds = list(ATTACKS)
    out = []
    for index in range(rounds):
        shift = index % len(NODES)
        round_plan: dict[str, list[tuple[str, dict[str, Any]]]] = {node: [] for node in NODES}
        for position, kind in enumerate(kinds):
            node = NODES[(position + shift) % len(NODES)]
            round_plan[node].append((kind, options(kind, rng)))
        out.append(round_plan)
    return out


def attack_times(output: str) -> tuple[float, float] | None:
    """The attack tool's own start and end (its JSON summary, as the playbook shows it)."""
    started, ended = re.search(r'started\\*": ([0-9.]+)', output), re.search(r'ended\\*": ([0-9.]+)', output)
    return (float(started[1]), float(ended[1])) if started and ended else None


class Alerts:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self) -> None:
        while True:
            try:
                for event in eventlog.stream(f"ws://{FEED}/events", NETWORK, types="alert", timeout=5):
                    if event is not None:
                        with self.lock:
                            self.seen.append(event)
            except OSError:
                time.sleep(1)


def run_round(inventory: Path, round_plan: dict[str, list[tuple[str, dict[str, Any]]]]) -> list[Attempt]:
    attempts: list[Attempt] = []
    lock = threading.Lock()

    def attack(node: str) -> None:
        for kind, chosen in round_plan[node]:
            started = time.time()
            extra = ["-e", json.dumps({"attack_options": chosen})] if chosen else []
            try:
                _seconds, report = bench.playbook(inventory, "playbooks/attack.yml", "-e", f"attack={kind}",
                                                  "--limit", f"{NETWORK}-{node}", *extra)
            except SystemExit as failed:  # counted as run and not detected, and said
                print(f"score: {kind} on {node} failed: {failed}", flush=True)
                report = {}
            times = attack_times(json.dumps(report)) or (started, time.time())
            with lock:
                attempts.append(Attempt(kind, node, chosen, *times))

    threads = [threading.Thread(target=attack, args=(node,)) for node in NODES]

    def payments() -> None:  # five a second while any attack runs (the spy takes their announcements)
        while any(thread.is_alive() for thread in threads):
            bench.playbook(inventory, "playbooks/traffic.yml", "-e", "duration=20", "-e", "tx_interval=0.2")

    for thread in threads:
        thread.start()
    paying = threading.Thread(target=payments)
    paying.start()
    for thread in [*threads, paying]:
        thread.join()
    return attempts


def rescore(path: Path) -> None:
    """SCORE_FROM=docs/score.json: the table again from a recorded run's attempts and alerts."""
    result = json.loads(path.read_text())
    result["scores"] = score([Attempt(**attempt) for attempt in result["attempts"]], result["alerts"])
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result["scores"]))


def main() -> None:
    if os.environ.get("SCORE_FROM"):
        rescore(Path(os.environ["SCORE_FROM"]))
        return
    rounds = int(os.environ.get("SCORE_RUNS", "3"))
    quiet = int(os.environ.get("SCORE_QUIET", "60"))
    seed = int(os.environ.get("SCORE_SEED", "1"))
    out = Path(os.environ.get("SCORE_JSON", str(ROOT / "docs" / "score.json")))
    with tempfile.TemporaryDirectory() as work:
        lab = yaml.safe_load((ROOT / "inventories" / "local" / "02-topology.peerlab.yml").read_text())["networks"]["lab"]
        inventory = bench.write_inventory(Path(work), SETTINGS, {NETWORK: lab})
        started = time.time()
        try:
            bench.playbook(inventory, "deploy.yml")
            alerts = Alerts()
            attempts: list[Attempt] = []
            quiet_windows = []
            for round_plan in [None, *plan(rounds, seed)]:
                if round_plan is not None:
                    attempts += run_round(inventory, round_plan)
                    time.sleep(2 * INTERVAL)  # detection's own time after the last attack, before quiet counts
                begun = time.time()
                bench.playbook(inventory, "playbooks/traffic.yml", "-e", f"duration={quiet}")
                quiet_windows.append((begun, time.time()))
                print(f"score: {'quiet' if round_plan is None else 'round'} done at +{time.time() - started:.0f} s", flush=True)
            with alerts.lock:
                seen = list(alerts.seen)
            scores = score(attempts, seen)
            quiet_alerts = [alert for alert in seen if any(begin <= float(alert["time"]) <= end for begin, end in quiet_windows)]
            client = bench.docker.from_env()
            result = {"machine": bench.machine(client), "rounds": rounds, "seed": seed, "quiet_seconds": quiet,
                      "quiet_windows": len(quiet_windows), "quiet_alerts": quiet_alerts, "scores": scores, "alerts": seen,
                      "attempts": [asdict(attempt) for attempt in attempts], "seconds": round(time.time() - started)}
            client.close()
            out.write_text(json.dumps(result, indent=1) + "\n")
            print(table(scores))
            print(f"quiet traffic: {len(quiet_windows)} x {quiet} s, {len(quiet_alerts)} alert(s); written to {out}")
        finally:
            bench.playbook(inventory, "playbooks/teardown.yml", "-e", "peerlab_purge=true")


if __name__ == "__main__":
    main()
