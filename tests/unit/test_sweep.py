"""Sweeps (tools/sweep.py): the file checked whole, the grid, the template, a report's numbers, a
sweep that goes on where it stopped, real plots. The runs themselves are scenario runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import sweep

from ansible_collections.peerlab.bitcoin.plugins.module_utils._scenario import parse


@pytest.mark.parametrize("name", ["partition.yml", "latency-bandwidth.yml"])
def test_shipped_sweeps_render_valid_scenarios_for_every_point(name: str) -> None:
    loaded = sweep.load(ROOT / "sweeps" / name)
    points = sweep.grid(loaded["parameters"], loaded["seeds"])
    assert len(points) == len(loaded["seeds"]) * 9
    for point in points:
        parse(yaml.safe_load(sweep.render(loaded["template"], point)), name, {"lab": ["n1", "n2", "n3", "n4", "n5"]})


def test_the_grid_runs_every_combination_with_every_seed_and_names_each_run() -> None:
    points = sweep.grid({"hold": [4, 8], "split": [50, 90]}, [1, 2])
    assert len(points) == 8 and points[0] == {"hold": 4, "split": 50, "seed": 1} and points[-1] == {"hold": 8, "split": 90, "seed": 2}
    assert sweep.run_id(points[1]) == "hold=4,split=50,seed=2"
    assert sweep.render("seed: {{ seed }}\nshares: {n1: {{ split }}, n3: {{ 100 - split }}}\n", points[2]) == (
        "seed: 1\nshares: {n1: 90, n3: 10}\n")


def test_a_sweep_file_is_checked_whole(tmp_path: Path) -> None:
    (tmp_path / "t.yml").write_text("seed: {{ seed }}\nhold: {{ hold }}\nrate: {{ speed }}\n")
    (tmp_path / "s.yml").write_text(yaml.safe_dump({"scenario": "t.yml", "parameters": {"hold": [1], "unused": [2], "seed": [3]},
                                                    "seeds": ["x"], "plots": ["reorg_depth", "p50_n5", "colour"], "colour": 1}))
    with pytest.raises(sweep.SweepError) as caught:
        sweep.load(tmp_path / "s.yml")
    assert str(caught.value).splitlines()[1:] == [
        "  - unknown key 'colour' (valid keys: description, name, parameters, plots, scenario, seeds)",
        "  - 'seed' is not a parameter: list the seeds under 'seeds'",
        "  - 'seeds' is a list of whole numbers, got ['x']",
        "  - the template uses {{ speed }}, which is not a parameter (hold, seed, unused)",
        "  - parameter 'unused' is not used in the template (write {{ unused }} where it goes)",
        "  - plot 'colour' is not a metric (reorg_depth, stale, p50, p95, shares_gap, or p50_<node>, p95_<node>)",
    ]


def report() -> dict[str, Any]:
    return {"ok": True, "seconds": 12.5, "reorg_depth": 2, "reorgs": [],
            "blocks": [{"miner": "n1", "stale": False, "propagation": {"n1": 0.05, "n2": 0.1, "n3": 0.3}},
                       {"miner": "n3", "stale": True, "propagation": {"n3": 0.0, "n1": 0.2}},
                       {"miner": "n1", "stale": False, "propagation": {"n1": 0.0, "n2": 0.4, "n3": 1.0}}],
            "shares": {"n1": {"observed": 66.67, "declared": 70.0}, "n3": {"observed": 33.33, "declared": 30.0}}}


def test_a_reports_numbers_leave_out_the_miners_own_sighting() -> None:
    found = sweep.metrics(report())
    assert found["reorg_depth"] == 2 and found["stale"] == 1 and found["blocks"] == 3
    assert found["p50"] == 0.3 and found["p95"] == 1.0          # of 0.1, 0.3, 0.2, 0.4, 1.0
    assert found["p50_n3"] == 0.65 and found["p50_n1"] == 0.2 and "p50_n4" not in found
    assert found["shares_gap"] == 3.33


def test_a_sweep_goes_on_where_it_stopped_and_draws_real_plots(tmp_path: Path) -> None:
    results = tmp_path / "results.csv"
    rows = [{"run": sweep.run_id(point), **point, **sweep.metrics(report())}
            for point in sweep.grid({"hold": [4, 8], "bandwidth": ["64kbit", "1mbit"]}, [1, 2])[:5]]
    sweep.write(results, rows)
    kept = sweep.done(results)
    assert list(kept) == [row["run"] for row in rows] and kept["hold=4,bandwidth=64kbit,seed=1"]["p50"] == "0.3"
    loaded = {"name": "t", "parameters": {"hold": [4, 8], "bandwidth": ["64kbit", "1mbit"]}, "seeds": [1, 2],
              "plots": ["reorg_depth", "p50", "p95_n3", "p50_n9"]}
    made = sweep.plot(loaded, list(kept.values()), tmp_path)
    assert sorted(path.name for path in made) == ["bandwidth.png", "bandwidth.svg", "hold.png", "hold.svg"]
    assert (tmp_path / "hold.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in (tmp_path / "hold.svg").read_bytes()[:400]
    assert sweep._number("64kbit") == 64000.0 and sweep._number("300") == 300.0 and sweep._order("1mbit") > sweep._order("64kbit")
