"""peerlab sweeps: one scenario run over a grid of parameters and seeds, to a CSV and plots.

  make sweep SWEEP=sweeps/partition.yml                  (INVENTORY=inventories/local by default)
  .venv/bin/python tools/sweep.py sweeps/partition.yml [--inventory DIR] [--out DIR] [--fresh]

A sweep file names a scenario template (docs/experiments.md, "Sweeps"), each parameter's values and
the seeds. Every combination is one run of playbooks/scenario.yml on the deployed lab with the
template rendered by Jinja2 (`{{ hold }}`, `{{ 100 - split }}`, `{{ seed }}`: every name must be a
parameter and every parameter used). Each run's report goes to
<out>/reports/, its numbers to <out>/results.csv, one row per run, written as the run ends: a sweep
that stops (Ctrl-C, a failed run) goes on where it stopped when started again (--fresh: from the
start). A progress line per run. At the end, plots of each metric against each parameter (one line
per value of the other parameter, the mean over the seeds with their range) as PNG and SVG in <out>.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
METRICS = {
    "reorg_depth": "deepest reorganisation (blocks)",
    "stale": "stale blocks",
    "p50": "block arrival, median (s)",
    "p95": "block arrival, 95th percentile (s)",
    "shares_gap": "observed vs declared share, largest gap (points)",
}
KEYS = frozenset({"name", "description", "scenario", "parameters", "seeds", "plots"})


class SweepError(Exception):
    """A sweep file that cannot run; every problem in one message."""


def load(path: Path) -> dict[str, Any]:
    """The sweep file, checked whole (every problem at once, nothing run)."""
    raw = yaml.safe_load(path.read_text())
    problems = []
    if not isinstance(raw, dict):
        raise SweepError(f"{path}: a sweep is a mapping (name, scenario, parameters, seeds), got {raw!r}")
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        problems.append(f"unknown key '{unknown[0]}' (valid keys: {', '.join(sorted(KEYS))})")
    parameters = raw.get("parameters")
    if not isinstance(parameters, dict) or not parameters or not all(isinstance(values, list) and values for values in parameters.values()):
        problems.append(f"'parameters' maps each parameter to a list of its values, got {parameters!r}")
        parameters = {}
    if "seed" in parameters:
        problems.append("'seed' is not a parameter: list the seeds under 'seeds'")
    seeds = raw.get("seeds", [1])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(seed, int) and not isinstance(seed, bool) for seed in seeds):
        problems.append(f"'seeds' is a list of whole numbers, got {seeds!r}")
    template = ""
    scenario = (path.parent / str(raw.get("scenario", ""))).resolve() if raw.get("scenario") else None
    if scenario is None or not scenario.is_file():
        problems.append(f"'scenario' must name a scenario template file (relative to the sweep file), got {raw.get('scenario')!r}")
    else:
        template = scenario.read_text()
        used = names_in(template)
        for name in sorted(used - set(parameters) - {"seed"}):
            problems.append(f"the template uses {{{{ {name} }}}}, which is not a parameter ({', '.join(parameters) or 'none'})")
        for name in sorted(set(parameters) - used):
            problems.append(f"parameter '{name}' is not used in the template (write {{{{ {name} }}}} where it goes)")
    plots = raw.get("plots", list(METRICS))
    for metric in plots if isinstance(plots, list) else [plots]:
        if metric not in METRICS and not re.match(r"^p(50|95)_[A-Za-z0-9_-]+$", str(metric)):
            problems.append(f"plot {metric!r} is not a metric ({', '.join(METRICS)}, or p50_<node>, p95_<node>)")
    if problems:
        raise SweepError(f"{path}:\n  - " + "\n  - ".join(problems))
    return {"name": str(raw.get("name") or path.stem), "description": str(raw.get("description", "")), "template": template,
            "scenario": scenario, "parameters": parameters, "seeds": seeds, "plots": plots}


def grid(parameters: dict[str, list[Any]], seeds: list[int]) -> list[dict[str, Any]]:
    """Every combination of the parameters' values, each with every seed, in a stable order."""
    names = list(parameters)
    return [dict(zip(names, values, strict=True), seed=seed)
            for values in itertools.product(*(parameters[name] for name in names)) for seed in seeds]


def run_id(point: dict[str, Any]) -> str:
    return ",".join(f"{name}={value}" for name, value in point.items())


def _environment() -> Any:
    import jinja2

    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)  # YAML, not HTML


def names_in(template: str) -> set[str]:
    import jinja2.meta

    environment = _environment()
    return set(jinja2.meta.find_undeclared_variables(environment.parse(template)))


def render(template: str, point: dict[str, Any]) -> str:
    """The template with the point's values (Jinja2: `{{ hold }}`, `{{ 100 - split }}`)."""
    return str(_environment().from_string(template).render(**point))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def metrics(report: dict[str, Any]) -> dict[str, Any]:
    """A report's numbers: fork depth, stale blocks, block arrival (every node but the block's miner)
    overall and per node, the largest gap between observed and declared mining shares."""
    arrivals: list[float] = []
    per_node: dict[str, list[float]] = {}
    for block in report["blocks"]:
        for node, seconds in block["propagation"].items():
            if node != block.get("miner"):
                arrivals.append(seconds)
                per_node.setdefault(node, []).append(seconds)
    gaps = [abs(share["observed"] - share["declared"]) for share in report.get("shares", {}).values()
            if share.get("declared") is not None]
    found: dict[str, Any] = {
        "ok": bool(report.get("ok")), "seconds": report.get("seconds"), "blocks": len(report["blocks"]),
        "reorg_depth": report.get("reorg_depth", 0), "stale": sum(1 for block in report["blocks"] if block.get("stale")),
        "p50": round(statistics.median(arrivals), 3) if arrivals else None,
        "p95": round(percentile(arrivals, 0.95), 3) if arrivals else None,
        "shares_gap": round(max(gaps), 2) if gaps else None,
    }
    for node, values in sorted(per_node.items()):
        found[f"p50_{node}"] = round(statistics.median(values), 3)
        found[f"p95_{node}"] = round(percentile(values, 0.95), 3)
    return found


def done(path: Path) -> dict[str, dict[str, str]]:
    """The runs a results file already holds, by run id (a sweep goes on where it stopped)."""
    if not path.exists():
        return {}
    with path.open(newline="") as handle:
        return {row["run"]: row for row in csv.DictReader(handle)}


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    temporary = path.with_suffix(".tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def plot(sweep: dict[str, Any], rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """For each parameter, one figure: a panel per metric against it, a line per value of another
    parameter, the mean over the seeds with their range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(sweep["parameters"])
    made = []
    for axis in names:
        others = [name for name in names if name != axis]
        legend = others[0] if others else None
        panels = [metric for metric in sweep["plots"] if any(row.get(metric) not in (None, "") for row in rows)]
        columns = min(3, len(panels))
        rows_of = -(-len(panels) // columns)
        figure, axes = plt.subplots(rows_of, columns, figsize=(4.4 * columns, 3.4 * rows_of), squeeze=False)
        flat = [panel for row in axes for panel in row]
        for panel in flat[len(panels):]:
            panel.set_visible(False)
        for panel, metric in zip(flat, panels, strict=False):
            series = sorted({row[legend] for row in rows}, key=_order) if legend else [None]
            for value in series:
                xs, means, lows, highs = [], [], [], []
                for x in sorted({row[axis] for row in rows}, key=_order):
                    found = [float(row[metric]) for row in rows if row[axis] == x and (legend is None or row[legend] == value)
                             and row.get(metric) not in (None, "")]
                    if found:
                        xs.append(_number(x))
                        means.append(statistics.mean(found))
                        lows.append(statistics.mean(found) - min(found))
                        highs.append(max(found) - statistics.mean(found))
                label = f"{legend}={value}" if legend else None
                panel.errorbar(xs, means, yerr=[lows, highs], marker="o", capsize=3, label=label)
            panel.set_xlabel(axis)
            panel.set_title(METRICS[metric] if metric in METRICS else _node_metric(metric), fontsize=9)
            panel.grid(alpha=0.3)
        if legend:
            flat[0].legend(fontsize=8)
        figure.suptitle(f"{sweep['name']}: against {axis} (mean over seeds {', '.join(map(str, sweep['seeds']))}, bars: range)",
                        fontsize=10)
        figure.tight_layout()
        for suffix in ("png", "svg"):
            target = out / f"{axis}.{suffix}"
            figure.savefig(target, dpi=110)
            made.append(target)
        plt.close(figure)
    return made


def _node_metric(metric: str) -> str:
    kind, node = metric.split("_", 1)
    return f"block arrival at {node}, {'median' if kind == 'p50' else '95th percentile'} (s)"


def _number(value: Any) -> Any:
    """A parameter's value on an axis: a number where it is one (64kbit -> 64000)."""
    text = str(value)
    units = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "ms": 1, "s": 1000}
    found = re.match(r"^([0-9.]+)\s*([a-z]*)$", text)
    if found and found.group(2) in units:
        return float(found.group(1)) * units[found.group(2)]
    try:
        return float(text)
    except ValueError:
        return text


def _order(value: Any) -> tuple[int, Any]:
    number = _number(value)
    return (0, number) if isinstance(number, float) else (1, str(number))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--inventory", default=os.environ.get("INVENTORY", "inventories/local"))
    parser.add_argument("--out", type=Path, help="default .state/sweeps/<sweep file's name>")
    parser.add_argument("--fresh", action="store_true", help="forget the runs a results file holds")
    parser.add_argument("--plot", action="store_true", help="only draw the plots again from the results file")
    args = parser.parse_args()
    try:
        sweep = load(args.sweep)
    except SweepError as error:
        sys.exit(str(error))
    out = (args.out or ROOT / ".state" / "sweeps" / args.sweep.stem).resolve()
    (out / "runs").mkdir(parents=True, exist_ok=True)
    results = out / "results.csv"
    kept = {} if args.fresh else done(results)
    points = grid(sweep["parameters"], sweep["seeds"])
    rows: list[dict[str, Any]] = [kept[run_id(point)] for point in points if run_id(point) in kept]
    print(f"sweep {sweep['name']}: {len(points)} runs ({len(rows)} already in {results})", flush=True)
    playbook = ROOT / ".venv" / "bin" / "ansible-playbook"
    for index, point in enumerate(points, 1):
        name = run_id(point)
        if name in kept or args.plot:
            continue
        stem = f"{args.sweep.stem}-{index:03d}"
        scenario = out / "runs" / f"{stem}.yml"
        scenario.write_text(render(sweep["template"], point))
        began = time.monotonic()
        run = subprocess.run([str(playbook if playbook.exists() else "ansible-playbook"), "-i", args.inventory, "playbooks/scenario.yml",
                              "-e", f"scenario={scenario}", "-e", f"scenario_reports_dir={out / 'reports'}"],
                             cwd=ROOT, capture_output=True, text=True, check=False)
        reports = sorted((out / "reports").glob(f"{stem}-*.json"))
        if not reports:
            sys.exit(f"[{index}/{len(points)}] {name}: no report (ansible-playbook exited {run.returncode}):\n{run.stdout[-3000:]}")
        found = metrics(json.loads(reports[-1].read_text()))
        rows.append({"run": name, **point, **found, "report": str(reports[-1].relative_to(out))})
        write(results, rows)
        print(f"[{index}/{len(points)}] {name}: {time.monotonic() - began:.0f} s, {'passed' if found['ok'] else 'FAILED'}, "
              f"reorg {found['reorg_depth']}, stale {found['stale']}, p50 {found['p50']} s, p95 {found['p95']} s", flush=True)
    wanted = {run_id(point) for point in points}
    rows = [row for name, row in done(results).items() if name in wanted]  # as written: one type for every value
    made = plot(sweep, rows, out)
    print(f"results: {results}\nplots: {', '.join(str(path) for path in made)}")


if __name__ == "__main__":
    main()
