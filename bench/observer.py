"""Observer and collector cost per 20 nodes under traffic, and the latency of events.

Deploys an N-node regtest network (random-regular, degree 4) with the monitoring stack under
names of its own, runs `playbooks/traffic.yml` for BENCH_SECONDS (default 180) while a websocket
client reads every event of the feed, then reports:
  - latency from a log line (Docker's timestamp) to the websocket client: median, 99th percentile;
  - events per second;
  - CPU (% of one core, from each container's cgroup over the traffic window) and memory of the
    bus, the observer and the collector (poller and extractor in one process), and their sum;
  - the collector's own series from Graphite (cpu, rss, poll time), as before.
Tears everything down. `make bench-observer` (and `make bench-collector`, the same run),
BENCH_NODES=20. Prints one JSON line; docs/benchmarks.md records it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import docker

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("collector", ROOT / "images" / "collector" / "collector.py")
assert _spec and _spec.loader
collector = importlib.util.module_from_spec(_spec)
sys.modules["collector"] = collector  # its dataclasses look their module up
sys.path.insert(0, str(ROOT / "images" / "collector"))  # its own imports (events)
_spec.loader.exec_module(collector)
sys.path.insert(0, str(ROOT / "tools"))
import eventlog  # the logger's websocket client

_bench = importlib.util.spec_from_file_location("peerlab_bench", ROOT / "bench" / "bench.py")
assert _bench and _bench.loader
bench = importlib.util.module_from_spec(_bench)
_bench.loader.exec_module(bench)

BIN = ROOT / ".venv" / "bin"
NETWORK = "cbench"
# The bench's own monitoring stack (names, volumes and network of its own: never a lab's), with
# the ports this bench reads published on the loopback.
SETTINGS = {**bench.BENCH_STACK, "peerlab_monitoring": True, "graphite_publish": "127.0.0.1:18081",
            "observer_events_publish": "127.0.0.1:18191", "observer_prometheus_publish": "127.0.0.1:19433"}


def playbook(inventory: Path, name: str, *args: str) -> None:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PATH=f"{BIN}:{os.environ['PATH']}")
    result = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), name, *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"{name} failed:\n{(result.stdout + result.stderr)[-3000:]}")


def series(target: str, since: str) -> list[float]:
    query = urllib.parse.urlencode({"target": target, "from": since, "format": "json"})
    with urllib.request.urlopen(f"http://{SETTINGS['graphite_publish']}/render?{query}", timeout=30) as response:
        data: list[dict[str, Any]] = json.load(response)
    return [value for item in data for value, _stamp in item["datapoints"] if value is not None]


def cpu_and_memory(client: docker.DockerClient, name: str) -> tuple[float, float]:
    """A container's CPU time so far (s) and memory usage (bytes), from Docker's stats or its cgroup."""
    container = client.containers.get(name)
    stats = container.stats(stream=False)
    if not stats.get("memory_stats"):  # an engine that cannot read cgroups: as the collector does
        stats = collector.cgroup_stats(container.attrs["State"]["Pid"], "/proc", "/sys/fs/cgroup")
    return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9, float(stats["memory_stats"]["usage"])


class Feed:
    """Every event of the websocket feed: the delay from its log line to here, and a count."""

    def __init__(self, url: str) -> None:
        self.delays: list[float] = []
        self.count = 0
        self.running = True
        self.thread = threading.Thread(target=self.read, args=(url,), daemon=True)
        self.thread.start()

    def read(self, url: str) -> None:
        for event in eventlog.stream(url, timeout=1):
            if not self.running:
                return
            if event is None:
                continue
            self.count += 1
            if event["kind"] in ("msg", "conn", "block", "tx", "addr"):
                self.delays.append(time.time() - float(event["time"]))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


PARTS = {"bus": "observer_bus_container", "observer": "observer_container", "collector": "collector_container"}


def main() -> None:
    nodes = int(os.environ.get("BENCH_NODES", "20"))
    seconds = int(os.environ.get("BENCH_SECONDS", "180"))
    client = docker.from_env()
    with tempfile.TemporaryDirectory() as work:
        inventory = bench.write_inventory(Path(work), SETTINGS, {NETWORK: {
            "chain": "regtest", "miners": ["n1", "n2"], "defaults": {"host": "localhost", "resources": {"memory": "256m", "cpus": 0.5}},
            "generators": [{"type": "random-regular", "nodes": nodes, "degree": 4, "seed": 7, "prefix": "n"}]}})
        try:
            playbook(inventory, "deploy.yml")
            feed = Feed(f"ws://{SETTINGS['observer_events_publish']}/events")
            before = {part: cpu_and_memory(client, str(SETTINGS[key])) for part, key in PARTS.items()}
            started = time.monotonic()
            playbook(inventory, "playbooks/traffic.yml", "-e", f"duration={seconds}")
            took = time.monotonic() - started
            after = {part: cpu_and_memory(client, str(SETTINGS[key])) for part, key in PARTS.items()}
            feed.running = False
            since = f"-{seconds}s"
            host = "peerlab.hosts.localhost.collector"
            cpu, rss, poll = (series(f"{host}.{name}", since) for name in ("cpu_percent", "memory_rss", "poll_seconds"))
            container = client.containers.get(SETTINGS["collector_container"])
            stats = container.stats(stream=False)
            if not stats.get("memory_stats"):  # an engine that cannot read cgroups: as the collector does
                stats = collector.cgroup_stats(container.attrs["State"]["Pid"], "/proc", "/sys/fs/cgroup")
            result = {"nodes": nodes, "seconds": seconds, "interval": 10,
                      "collector_cpu_percent_mean": round(statistics.fmean(cpu), 2),
                      "collector_cpu_percent_max": round(max(cpu), 2),
                      "collector_rss_mib_max": round(max(rss) / 2**20, 1),
                      "collector_container_memory_mib": round(stats["memory_stats"]["usage"] / 2**20, 1),
                      "poll_seconds_median": round(statistics.median(poll), 2),
                      "series": len(series(f"peerlab.{NETWORK}.nodes.*.*", "-1min")),
                      "events": feed.count, "events_per_second": round(feed.count / took, 1),
                      "latency_median_s": round(statistics.median(feed.delays), 3),
                      "latency_p99_s": round(percentile(feed.delays, 0.99), 3),
                      **{f"{part}_cpu_percent": round((after[part][0] - before[part][0]) / took * 100, 2) for part in PARTS},
                      **{f"{part}_memory_mib": round(after[part][1] / 2**20, 1) for part in PARTS},
                      "observer_parts_cpu_percent": round(sum(after[part][0] - before[part][0] for part in PARTS) / took * 100, 2)}
            print(json.dumps(result))
        finally:
            playbook(inventory, "playbooks/teardown.yml", "-e", "peerlab_purge=true")
            client.close()


if __name__ == "__main__":
    main()
