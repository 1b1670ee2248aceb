"""peerlab benchmark: time to a converged network against the bare-container floor.

For each size N (5, 20, 50; 100 with BENCH_MAX=100) and shape (ring, random-regular degree 4):

* floor: the same node image, started straight through the Docker SDK (threads), the same edges
  made over RPC, one block mined, tip agreement awaited: the fastest any tool could do it here;
* peerlab: `ansible-playbook deploy.yml` on the same topology (images prebuilt), split by phase
  from the task timings, then a no-op re-run, then teardown;
* bitcoind RSS per node (median) after convergence.

Writes bench/results/<date>-<commit>.json and appends a table to docs/benchmarks.md.
Environment: BENCH_SIZES="5 20" to choose sizes, BENCH_SHAPES="ring", BENCH_MAX=100, BENCH_NOTE.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.peerlab.bitcoin.plugins.module_utils._generators import generate
from ansible_collections.peerlab.bitcoin.plugins.module_utils._rpc import Rpc, RpcError
from ansible_collections.peerlab.bitcoin.plugins.module_utils._rpcauth import new_password, new_salt, rpcauth_line

BIN = ROOT / ".venv" / "bin"
LABEL = "peerlab.bench"
SHAPES: dict[str, dict[str, Any]] = {"ring": {"type": "ring"}, "rr4": {"type": "random-regular", "degree": 4, "seed": 7}}
# The engine reports when each of its phases ended (module_utils/_apply.Report.timings).
ENGINE_TASK = "Make every Docker host hold its part of the topology"
ENGINE_PHASES = {"containers": "containers", "links": "links", "chain": "chain"}


def now() -> float:
    return time.monotonic()


def edges_for(shape: str, count: int) -> tuple[list[str], list[tuple[str, str]]]:
    spec = dict(SHAPES[shape])
    generated = generate(str(spec.pop("type")), count, "n", spec)
    return generated.names, generated.edges


def node_image(client: docker.DockerClient) -> str:
    tags = sorted((tag for image in client.images.list(name="peerlab/bitcoin-node") for tag in image.tags
                   if tag.startswith("peerlab/bitcoin-node:knots-")), key=lambda tag: client.images.get(tag).attrs["Created"])
    if not tags:
        raise SystemExit("bench: no peerlab/bitcoin-node:knots-* image; run `make images` first")
    return tags[-1]


def wait_until(predicate: Any, timeout: float, interval: float = 0.02) -> None:
    """Poll until the predicate holds; an RPC that fails meanwhile (200 nodes on 2 cores: now and
    then a "No route to host") counts as "not yet", until the timeout."""
    deadline = now() + timeout
    while True:
        try:
            if predicate():
                return
            problem = "condition not reached"
        except RpcError as error:
            problem = str(error)
        if now() > deadline:
            raise TimeoutError(problem)
        time.sleep(interval)


def patience(count: int) -> int:
    """Seconds to wait for RPC, links or a tip: 200 bitcoind starting at once on 2 cores need minutes."""
    return max(120, 3 * count)


def floor(client: docker.DockerClient, image: str, shape: str, count: int) -> dict[str, float]:
    """Bare containers through the Docker SDK: the fastest anything can converge here."""
    names, edges = edges_for(shape, count)
    wait = patience(count)
    password, salt = new_password(), new_salt()
    # Named per run: Docker 20.10 can keep a stale endpoint after 200 removals, and with it the network.
    network = client.networks.create(f"bench-floor-{shape}-{count}-{os.getpid()}", labels={LABEL: "floor"})
    subnet = network.attrs["IPAM"]["Config"][0]["Subnet"]
    env = {"PEERLAB_CHAIN": "regtest", "PEERLAB_RPCAUTH": rpcauth_line("bench", salt, password),
           "PEERLAB_RPCALLOWIP": subnet, "PEERLAB_CONF": "dbcache=50\nmaxmempool=50"}
    marks: dict[str, float] = {}
    started = now()
    try:
        def run(name: str) -> Any:
            return client.containers.run(image, detach=True, name=f"floor-{name}", hostname=f"floor-{name}", environment=env,
                                         network=network.name, labels={LABEL: "floor"}, mem_limit="256m", nano_cpus=500_000_000)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            containers = list(pool.map(run, names))
        marks["containers"] = now() - started
        addresses = {}
        for name, container in zip(names, containers, strict=True):
            container.reload()
            addresses[name] = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]

        def ready(name: str) -> None:
            Rpc(addresses[name], 18443, "bench", password, timeout=30).wait_ready(wait)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(ready, names))
        marks["rpc"] = now() - started

        def link(name: str) -> None:
            rpc = Rpc(addresses[name], 18443, "bench", password, timeout=30)
            targets = [f"floor-{target}:18444" for source, target in edges if source == name]
            for target in targets:
                rpc.call("addnode", target, "add")
                rpc.call("addnode", target, "onetry")
            wait_until(lambda: all(entry["connected"] for entry in rpc.call("getaddednodeinfo")), wait)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(link, names))
        marks["links"] = now() - started

        miner = Rpc(addresses[names[0]], 18443, "bench", password, timeout=30)
        descriptor = miner.call("getdescriptorinfo", "raw(51)")["descriptor"]
        (tip,) = miner.call("generatetodescriptor", 1, descriptor)
        clients = [Rpc(addresses[name], 18443, "bench", password, timeout=30) for name in names]
        wait_until(lambda: all(rpc.call("getbestblockhash") == tip for rpc in clients), wait)
        marks["chain"] = now() - started
        marks["rss_mb"] = median_rss(containers)
        # Teardown: every bitcoind stopped (its chainstate flushed) and its container removed, at once.
        stopping = now()

        def gone(container: Any) -> None:
            container.stop(timeout=600)
            container.remove(v=True)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(gone, containers))
        remove_network(network)
        marks["teardown"] = now() - stopping
    finally:
        for container in client.containers.list(all=True, filters={"label": f"{LABEL}=floor"}):
            container.remove(force=True, v=True)
        if client.networks.list(ids=[network.id]):
            remove_network(network)
    return marks


def remove_network(network: Any) -> None:
    """Docker 20.10 can keep a stale endpoint after 200 removals: it then refuses; say so and go on."""
    try:
        network.remove()
    except docker.errors.APIError as error:
        print(f"bench: {network.name} kept: {error.explanation}", file=sys.stderr, flush=True)


def median_rss(containers: list[Any]) -> float:
    def rss(container: Any) -> float:
        stats = container.stats(stream=False)["memory_stats"]
        extra = stats.get("stats", {})
        if extra.get("rss") or stats.get("usage"):
            return float(extra.get("rss") or stats["usage"] - extra.get("cache", 0)) / 2**20
        # Some engines answer stats empty (seen here on Docker 20.10, cgroup v1): read the cgroup.
        for path in (f"/sys/fs/cgroup/memory/docker/{container.id}/memory.stat",
                     f"/sys/fs/cgroup/system.slice/docker-{container.id}.scope/memory.stat"):
            try:
                with open(path, encoding="utf-8") as handle:
                    fields = dict(line.split() for line in handle if line.strip())
                return float(fields.get("total_rss") or fields.get("rss") or fields.get("anon") or 0) / 2**20
            except OSError:
                continue
        return float("nan")
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        return round(statistics.median(pool.map(rss, containers)), 1)


def playbook(inventory: Path, playbook_path: str, *args: str) -> tuple[float, dict[str, Any]]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               PATH=f"{BIN}:{os.environ['PATH']}")
    started = now()
    result = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), playbook_path, *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=False)
    elapsed = now() - started
    if result.returncode != 0:
        raise SystemExit(f"bench: {playbook_path} failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    return elapsed, json.loads(result.stdout)


def phases(report: dict[str, Any]) -> dict[str, float]:
    """Seconds from the playbook's first task to the end of each phase: the images role's last
    task, and the engine's own phases (from the start of its last run, which did the work)."""
    def stamp(text: str) -> float:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    tasks = [task for play in report["plays"] for task in play["tasks"]]
    first = min(stamp(task["task"]["duration"]["start"]) for task in tasks)
    ends: dict[str, float] = {}
    images = [task for task in tasks if task["task"]["name"].split(" : ", 1)[-1].startswith(("Build each image", "Look for the base"))
              and "end" in task["task"]["duration"]]
    ends["images"] = max(stamp(task["task"]["duration"]["end"]) - first for task in images) if images else 0.0
    for task in tasks:
        if not task["task"]["name"].split(" : ", 1)[-1].startswith(ENGINE_TASK):
            continue
        for result in task["hosts"].values():
            timings = result.get("timings") or {}
            if not timings.get("containers"):
                continue  # the run that found images missing changed nothing
            began = stamp(task["task"]["duration"]["start"]) - first
            for phase, key in ENGINE_PHASES.items():
                if key in timings:
                    ends[phase] = max(ends.get(phase, 0.0), began + float(timings[key]))
    return {phase: round(value, 2) for phase, value in ends.items()}


def write_inventory(work: Path, settings: dict[str, Any], networks: dict[str, Any]) -> Path:
    """An inventory of its own under `work` (the bench tools'): this machine's Docker host, these
    settings (secrets and state under `work` too) and these networks."""
    inventory = work / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    shutil.copy(ROOT / "inventories" / "local" / "01-hosts.yml", inventory / "01-hosts.yml")
    (inventory / "group_vars" / "all" / "peerlab.yml").write_text(yaml.safe_dump(
        {"peerlab_secrets_dir": str(work / "secrets"), "peerlab_state_dir": str(work / "state"), **settings}))
    (inventory / "02-topology.peerlab.yml").write_text(yaml.safe_dump({"plugin": "peerlab.bitcoin.topology", "networks": networks},
                                                                      sort_keys=False))
    return inventory


def peerlab(client: docker.DockerClient, shape: str, count: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="peerlab-bench-"))
    # A network name of this run's: a Docker network the engine could not remove (Docker 20.10 may
    # keep one with phantom endpoints until the daemon restarts) never blocks the next run.
    name = f"bench{os.getpid()}"
    label = f"peerlab.network={name}"
    try:
        generator = {**SHAPES[shape], "nodes": count, "prefix": "n"}
        # The network alone by default (the collector's cost is measured by bench/observer.py);
        # BENCH_MONITORING=on adds the monitoring stack, as `make deploy` runs it.
        inventory = write_inventory(work, {
            "peerlab_monitoring": os.environ.get("BENCH_MONITORING", "off") == "on",
            # Timeouts only (the same for every code version): waits end as soon as the nodes answer.
            "network_rpc_timeout": patience(count), "network_link_timeout": patience(count), "network_tip_timeout": patience(count)},
            {name: {"chain": "regtest", "defaults": {"resources": {"memory": "256m", "cpus": 0.5}}, "generators": [generator]}})
        cold, report = playbook(inventory, "deploy.yml")
        result: dict[str, Any] = {"total": round(cold, 2), **phases(report)}
        result["rss_mb"] = median_rss(client.containers.list(filters={"label": label}))
        noop, report = playbook(inventory, "deploy.yml")
        changed = sum(host.get("changed", 0) for host in report["stats"].values())
        result.update(noop=round(noop, 2), noop_changed=changed, trivial=trivial(inventory))
        # Teardown of the network alone: what the floor's teardown does.
        down, _report = playbook(inventory, "playbooks/teardown.yml", "-e", "peerlab_purge=true")
        result["teardown"] = round(down, 2)
        # The same network with the monitoring stack on, as `make deploy` runs it (names of its own).
        stack = ["-e", json.dumps({"peerlab_monitoring": True, **BENCH_STACK})]
        cold_on, _report = playbook(inventory, "deploy.yml", *stack)
        noop_on, report = playbook(inventory, "deploy.yml", *stack)
        result.update(cold_monitoring=round(cold_on, 2), noop_monitoring=round(noop_on, 2),
                      noop_monitoring_changed=sum(host.get("changed", 0) for host in report["stats"].values()))
        down_on, _report = playbook(inventory, "playbooks/teardown.yml", "-e", "peerlab_purge=true", *stack)
        result["teardown_monitoring"] = round(down_on, 2)
        return result
    finally:
        for container in client.containers.list(all=True, filters={"label": label}):
            container.remove(force=True, v=True)
        for volume in client.volumes.list(filters={"label": label}):
            volume.remove(force=True)
        for network in client.networks.list(filters={"label": label}):
            remove_network(network)
        shutil.rmtree(work, ignore_errors=True)


def machine(client: docker.DockerClient) -> dict[str, Any]:
    with open("/proc/meminfo", encoding="utf-8") as handle:
        memory = int(handle.readline().split()[1]) // 2**20
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    return {"cores": os.cpu_count(), "memory_gib": memory, "kernel": platform.release(), "docker": client.version()["Version"],
            "date": datetime.date.today().isoformat(), "commit": commit or "unknown"}


# The monitoring stack of the bench's own inventory: names and ports of its own, so it never meets a lab's.
BENCH_STACK = {"graphite_container": "peerlab-bench-graphite", "graphite_volume": "peerlab-bench-graphite-data",
               "graphite_network": "peerlab-bench-monitoring", "graphite_publish": "", "collector_container": "peerlab-bench-collector",
               "collector_prometheus_publish": "", "observer_bus_container": "peerlab-bench-bus",
               "observer_container": "peerlab-bench-observer", "observer_events_volume": "peerlab-bench-events",
               "observer_events_publish": "", "observer_prometheus_publish": "", "grafana_container": "peerlab-bench-grafana",
               "grafana_volume": "peerlab-bench-grafana-data", "grafana_publish": "",
               "alertmanager_container": "peerlab-bench-alertmanager", "alertmanager_volume": "peerlab-bench-alertmanager-data",
               "alertmanager_publish": ""}


def trivial(inventory: Path) -> float:
    """Ansible's own floor on this inventory: one ping on its Docker hosts, median of three."""
    plays = inventory.parent / "trivial.yml"
    plays.write_text("- hosts: peerlab_docker_hosts\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n")
    return round(statistics.median(playbook(inventory, str(plays))[0] for _run in range(3)), 2)


def seconds(result: dict[str, Any], key: str) -> str:
    return f"{result[key]:.2f}" if key in result else "-"


def cell(phases_of: dict[str, Any], phase: str) -> str:
    """A phase's end time, or '-' when the playbook has no separate task for it."""
    return f"{phases_of[phase]:.1f}" if phase in phases_of else "-"


def table(run: dict[str, Any]) -> str:
    info = run["machine"]
    lines = [f"\n### {info['date']}, commit {info['commit']}: {info['cores']} cores, {info['memory_gib']} GiB, "
             f"Docker {info['docker']}, kernel {info['kernel']}{' - ' + run['note'] if run.get('note') else ''}\n",
             "| shape | N | floor (s) | peerlab cold (s) | ratio | images | containers | links | chain | no-op re-run (s) "
             "| no-op changed | trivial playbook (s) | teardown floor, peerlab (s) "
             "| monitoring on: cold, no-op, teardown (s) | RSS/node floor, peerlab (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in run["rows"]:
        fl, pl = row["floor"], row["peerlab"]
        lines.append(f"| {row['shape']} | {row['n']} | {fl['chain']:.2f} | {pl['total']:.2f} | {pl['total'] / fl['chain']:.1f}x "
                     f"| {cell(pl, 'images')} | {cell(pl, 'containers')} | {cell(pl, 'links')} "
                     f"| {cell(pl, 'chain')} | {pl['noop']:.2f} "
                     f"| {pl['noop_changed']}, {pl.get('noop_monitoring_changed', '-')} | {pl.get('trivial', float('nan')):.2f} "
                     f"| {fl.get('teardown', float('nan')):.2f}, {pl['teardown']:.2f} "
                     f"| {seconds(pl, 'cold_monitoring')}, {seconds(pl, 'noop_monitoring')}, {seconds(pl, 'teardown_monitoring')} "
                     f"| {fl['rss_mb']}, {pl['rss_mb']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    client = docker.from_env()
    sizes = [int(n) for n in os.environ.get("BENCH_SIZES", "5 20 50").split()]
    if os.environ.get("BENCH_MAX") and int(os.environ["BENCH_MAX"]) not in sizes:
        sizes.append(int(os.environ["BENCH_MAX"]))
    shapes = os.environ.get("BENCH_SHAPES", "ring rr4").split()
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        container.remove(force=True, v=True)
    image = node_image(client)
    run: dict[str, Any] = {"machine": machine(client), "image": image, "note": os.environ.get("BENCH_NOTE", ""), "rows": []}
    for count in sizes:
        for shape in shapes:
            print(f"bench: {shape} N={count} floor ...", flush=True)
            bare = floor(client, image, shape, count)
            print(f"bench: {shape} N={count} peerlab ...", flush=True)
            ours = peerlab(client, shape, count)
            run["rows"].append({"shape": shape, "n": count, "floor": {k: round(v, 2) for k, v in bare.items()}, "peerlab": ours})
            print(json.dumps(run["rows"][-1]), flush=True)
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    out = results / f"{run['machine']['date']}-{run['machine']['commit']}.json"
    out.write_text(json.dumps(run, indent=2) + "\n")
    with open(ROOT / "docs" / "benchmarks.md", "a", encoding="utf-8") as handle:
        handle.write(table(run))
    print(table(run))
    print(f"bench: results in {out.relative_to(ROOT)}, table appended to docs/benchmarks.md")


if __name__ == "__main__":
    try:
        main()
    except (RpcError, TimeoutError) as error:
        raise SystemExit(f"bench: {error}") from None
