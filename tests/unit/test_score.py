"""The proving ground's arithmetic (bench/score.py): which alerts an attack explains, recall,
precision and time to detect."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("peerlab_score", ROOT / "bench" / "score.py")
assert _spec and _spec.loader
score = importlib.util.module_from_spec(_spec)
sys.modules["peerlab_score"] = score  # its dataclasses look their module up
_spec.loader.exec_module(score)


def alert(detector: str, node: str, when: float) -> dict[str, Any]:
    return {"kind": "alert", "detector": detector, "node": node, "time": when}


def test_recall_precision_and_time_to_detect() -> None:
    attempts = [score.Attempt("spy-peer", "n5", {"hold": 30}, 100.0, 130.0),
                score.Attempt("spy-peer", "n1", {"hold": 30}, 200.0, 230.0),
                score.Attempt("spy-peer", "n2", {"hold": 30}, 300.0, 330.0),
                score.Attempt("subnet-flood", "n4", {}, 100.0, 140.0)]
    alerts = [alert("spy-peer", "n5", 112.0),      # detected in 12 s
              alert("spy-peer", "n1", 249.0),      # 19 s after the end: within two intervals
              alert("spy-peer", "n3", 310.0),      # another node than the attack's: false, and n2's is missed
              alert("connect-listen", "n4", 141.0),  # documented as raised by subnet-flood as well: true
              alert("subnet-inbound", "n4", 125.0),
              alert("ping-spam", "n2", 500.0)]     # no attack explains it
    rows = score.score(attempts, alerts)
    assert rows["spy-peer"] == {"attack": "spy-peer", "runs": 3, "detected": 2, "recall": 0.667, "alerts": 3, "false_alerts": 1,
                                "precision": 0.667, "detect_median_s": 30.5, "detect_p95_s": 49.0}
    assert rows["subnet-inbound"]["recall"] == 1.0 and rows["subnet-inbound"]["detect_median_s"] == 25.0
    assert rows["connect-listen"] == {"attack": "", "runs": 0, "detected": 0, "recall": None, "alerts": 1, "false_alerts": 0,
                                      "precision": 1.0, "detect_median_s": None, "detect_p95_s": None}
    assert rows["ping-spam"]["false_alerts"] == 1 and rows["ping-spam"]["precision"] == 0.0
    table = score.table(rows)
    assert "| `spy-peer` | `spy-peer` | 3 | 2 | 0.667 | 3 | 1 | 0.667 | 30.5 s | 49.0 s |" in table


def test_a_late_alert_is_no_detection() -> None:
    rows = score.score([score.Attempt("inv-flood", "n1", {}, 0.0, 5.0)], [alert("inv-flood", "n1", 26.0)])
    assert rows["inv-flood"]["recall"] == 0.0 and rows["inv-flood"]["false_alerts"] == 1


def test_the_plan_turns_nodes_and_its_draw_is_seeded() -> None:
    first, second = score.plan(2, seed=1)
    assert sum(len(attacks) for attacks in first.values()) == len(score.ATTACKS)
    where = {kind: node for node, attacks in first.items() for kind, _options in attacks}
    again = {kind: node for node, attacks in second.items() for kind, _options in attacks}
    assert all(where[kind] != again[kind] for kind in where)
    assert json.dumps(score.plan(2, seed=1)) == json.dumps([first, second]) != json.dumps(score.plan(2, seed=2))


def test_the_attack_tools_own_times_are_read_from_the_playbooks_report() -> None:
    report = {"msg": ['{"attack": "spy-peer", "target": "score-n5:18444", "started": 1765000000.5, "ended": 1765000040.25}']}
    assert score.attack_times(json.dumps(report)) == (1765000000.5, 1765000040.25)
    assert score.attack_times("{}") is None
