"""How fast the portal draws a big network in headless Chromium (Debian's chromium and its driver),
and how the page holds up while that network changes.

Runs the portal's own image (built by `make deploy`) against a 200-node topology that is never
deployed (BENCH_NODES, random-regular degree 4: 400 links), logs in, and loads the network's page
BENCH_LOADS times (default 6). For each load: milliseconds from the navigation to the graph drawn
(layout computed and shown: the page's `renderedAt`), and the layout's own share. The first load
includes the portal reading the inventory (ansible-inventory); the others are warm.

Then **live** (BENCH_LIVE seconds, default 60; 0 skips it): the observer's own image and its bus
run beside the portal, and this script reports the 200 nodes on the bus as their collectors would
(the events are made here, to the schema of docs/events.md: a minute's run, no deploy): each
node's poll every 10 s (its peers, tip, mempool, traffic), a block
every 10 s reaching every node within 1.5 s, every third block a competing one that a fifth of
the nodes take and leave again (a reorganisation: the fork view moves), a link closed and opened
again every 5 s (the graph's links come and go: the layout moves), and BENCH_MESSAGES (400) P2P
message events a second. The page polls the portal every 3 s as a user's does. Measured over the
window: the page's frame times (requestAnimationFrame) and long tasks (over 50 ms), its refreshes
(fetch and draw), the size of the view it reads, and the CPU of Chromium, the portal and the
observer (% of one core).

BENCH_REAL=1: the same page on a deployed network instead: BENCH_NODES bitcoinds (256 MB, half a
core each) with the monitoring stack, the portal and background activity (a payment a second, a
block every 10 s), under the bench's own names, and a node restarted every 15 s (its links go and
come back); the CPU of the collector, bus and observer too. About ten minutes at 200 nodes (the
deploy and its teardown).

Prints one JSON line; docs/benchmarks.md records it. `make bench-portal`; screenshots go to
bench/results/.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import docker
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))
sys.path.insert(0, str(ROOT / "images" / "collector"))  # events: the schema and the bus client the collectors use
import events

from ansible_collections.peerlab.bitcoin.plugins.module_utils._login import hash_password
from ansible_collections.peerlab.bitcoin.plugins.module_utils._topology import parse

_bench = importlib.util.spec_from_file_location("peerlab_bench", ROOT / "bench" / "bench.py")
assert _bench and _bench.loader
bench = importlib.util.module_from_spec(_bench)
_bench.loader.exec_module(bench)  # its inventory, playbook runner, patience and the bench's monitoring names

NODES = int(os.environ.get("BENCH_NODES", "200"))
LOADS = int(os.environ.get("BENCH_LOADS", "6"))
LIVE = int(os.environ.get("BENCH_LIVE", "60"))
REAL = os.environ.get("BENCH_REAL", "") == "1"  # a deployed network of BENCH_NODES bitcoinds instead of made reports
REAL_PORTAL = "peerlab-bench-portal-web"
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "400"))
LISTEN = "127.0.0.1:18490"
NAME = "peerlab-bench-portal"
LABEL = {"peerlab.role": "portal-bench"}
BUS_PUBLISH, OBSERVER_PUBLISH = 18422, 18491
INTERVAL = 10.0  # the collectors' poll interval


def newest_image(client: docker.DockerClient, repository: str) -> str:
    images = sorted(client.images.list(name=repository), key=lambda image: image.attrs["Created"], reverse=True)
    tags = [tag for image in images for tag in image.tags]
    if not tags:
        raise SystemExit(f"no {repository} image: run `make deploy` first (the local inventory builds it)")
    return str(tags[0])


def process_cpu(root: int) -> float:
    """CPU seconds so far of a process and everything under it (Chromium: browser, GPU, renderers)."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        ticks[int(entry)] = int(fields[11]) + int(fields[12])  # utime, stime
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo += children.get(pid, [])
    return total / os.sysconf("SC_CLK_TCK")


def container_cpu(container: Any) -> float:
    """A container's CPU seconds so far, from its cgroup (cgroup v1's cpuacct, or v2's cpu.stat)."""
    container.reload()
    for path, scale in ((f"/sys/fs/cgroup/cpuacct/docker/{container.id}/cpuacct.usage", 1e9),
                        (f"/sys/fs/cgroup/system.slice/docker-{container.id}.scope/cpu.stat", 1e6)):
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError:
            continue
        return int(text.split()[1] if text.startswith("usage_usec") else text) / scale
    stats = container.stats(stream=False)
    return float(stats["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9


class LiveNetwork:
    """The 200 nodes as their collectors report them on the bus: polls, blocks (with a competing
    block now and then, and the reorganisations it causes), links closing and opening, messages."""

    def __init__(self, bus: events.Bus, name: str, nodes: list[str], edges: list[tuple[str, str]]) -> None:
        self.bus, self.name, self.nodes = bus, name, nodes
        self.address = {node: f"10.77.{index // 250}.{index % 250 + 2}" for index, node in enumerate(nodes)}
        self.links: list[tuple[str, str]] = sorted({(min(edge), max(edge)) for edge in edges})
        self.initiator = {(min(edge), max(edge)): edge[0] for edge in edges}
        self.neighbours: dict[str, list[str]] = {node: [] for node in nodes}
        for one, other in self.links:
            self.neighbours[one].append(other)
            self.neighbours[other].append(one)
        self.ids = {(node, peer): index for node in nodes for index, peer in enumerate(self.neighbours[node])}
        self.closed: set[tuple[str, str]] = set()
        self.random = random.Random(7)
        self.height, self.tip = 200, {node: "" for node in nodes}
        self.chain: dict[int, str] = {self.height: self.hash()}
        for node in nodes:
            self.tip[node] = self.chain[self.height]
        self.published = 0
        self.stop = threading.Event()

    def hash(self) -> str:
        return f"{self.random.getrandbits(256):064x}"

    def send(self, kind: str, node: str, **fields: Any) -> None:
        self.bus.publish_event(events.make(kind, self.name, node, time.time(), **fields))
        self.published += 1

    def poll(self, node: str) -> None:
        peers = [{"id": self.ids[(node, peer)], "addr": f"{self.address[peer]}:18444", "node": peer,
                  "inbound": self.initiator[(min(node, peer), max(node, peer))] != node, "conn_type": "manual",
                  "subver": "/Satoshi:29.1.0/Knots:20250305/", "bytessent": 10_000, "bytesrecv": 12_000, "pingtime": 0.0004,
                  "conntime": int(time.time()) - 600}
                 for peer in self.neighbours[node] if (min(node, peer), max(node, peer)) not in self.closed]
        self.send("poll", node, up=True, container="running", restarts=0, addresses=[self.address[node]], tip=self.tip[node],
                  height=self.height_of(node), headers=self.height, progress=1.0, peers=peers,
                  bytes={"sent": 1_000_000, "received": 1_200_000}, mempool={"size": 12, "bytes": 4000}, uptime=600)

    def height_of(self, node: str) -> int:
        return next((height for height, block in self.chain.items() if block == self.tip[node]), self.height)

    def block(self) -> None:
        """A block every node takes within 1.5 s; every third, a competing one a fifth of the nodes
        take first and leave for the next block on the other (a reorganisation of one block)."""
        parent_height = self.height
        self.height += 1
        block = self.chain[self.height] = self.hash()
        miner = self.random.choice(self.nodes)
        minority: list[str] = []
        if self.height % 3 == 0:
            minority = self.random.sample([node for node in self.nodes if node != miner], len(self.nodes) // 5)
            rival = self.hash()
            for node in minority:
                self.send("block", node, hash=rival, height=self.height, mined=node == minority[0])
                self.tip[node] = rival
        order = [node for node in self.nodes if node not in minority]
        self.random.shuffle(order)
        started = time.monotonic()
        for index, node in enumerate([miner] + [node for node in order if node != miner]):
            if self.stop.wait(max(0.0, started + 1.5 * index / len(order) - time.monotonic())):
                return
            self.send("block", node, hash=block, height=self.height, mined=node == miner)
            self.tip[node] = block
        for node in minority:  # the next block comes on the majority's chain: the rival's nodes reorganise
            self.send("block", node, hash=self.chain[parent_height], height=parent_height)
            self.send("block", node, hash=block, height=self.height)
            self.tip[node] = block

    def messages(self, count: int) -> None:
        for _message in range(count):
            node = self.random.choice(self.nodes)
            peer = self.random.choice(self.neighbours[node])
            self.send("msg", node, dir=self.random.choice(("in", "out")), type=self.random.choice(("inv", "ping", "pong", "tx", "getdata")),
                      size=61, peer=self.ids[(node, peer)], addr=f"{self.address[peer]}:18444", conn_type="manual", peer_node=peer)

    def flap(self) -> None:
        """A link closes (both ends log it), and the one closed before opens again."""
        for link in list(self.closed):
            self.closed.discard(link)
            for node, peer in (link, (link[1], link[0])):
                self.send("conn", node, event="opened", peer=self.ids[(node, peer)], addr=f"{self.address[peer]}:18444",
                          conn_type="inbound" if self.initiator[link] != node else "manual", peer_node=peer)
        link = self.random.choice(self.links)
        self.closed.add(link)
        for node, peer in (link, (link[1], link[0])):
            self.send("conn", node, event="closed", peer=self.ids[(node, peer)], addr=f"{self.address[peer]}:18444", peer_node=peer)

    def run(self) -> None:
        """Polls spread over the interval, a block every 10 s, a flap every 5 s, messages every 0.1 s."""
        started = time.monotonic()
        tick = 0
        while not self.stop.is_set():
            for index in range(tick % 100, len(self.nodes), 100):  # each node once every 100 ticks (10 s)
                self.poll(self.nodes[index])
            self.messages(MESSAGES // 10)
            if tick % 50 == 0:
                self.flap()
            if tick % 100 == 50:
                threading.Thread(target=self.block, daemon=True).start()
            tick += 1
            self.stop.wait(max(0.0, started + tick * 0.1 - time.monotonic()))


PAGE_PROBE = """
window.__bench = {frames: [], long: []};
(function frame(t) { window.__bench.frames.push(t); requestAnimationFrame(frame); })(performance.now());
new PerformanceObserver((list) => { for (const entry of list.getEntries()) window.__bench.long.push(entry.duration); })
  .observe({entryTypes: ["longtask"]});
window.peerlab.timings.fetch.length = 0; window.peerlab.timings.render.length = 0;
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


class Churn:
    """A real network's changes beside its background activity: every 15 s a node restarted (its
    links go, and come back from its peers file when bitcoind starts)."""

    def __init__(self, client: docker.DockerClient, containers: list[str]) -> None:
        self.client, self.containers = client, containers
        self.random = random.Random(7)
        self.stop = threading.Event()
        self.restarts = 0

    def run(self) -> None:
        while not self.stop.wait(15):
            self.client.containers.get(self.random.choice(self.containers)).restart(timeout=10)
            self.restarts += 1


def synthetic(client: docker.DockerClient, work: Path, network: Any, made: list[Any]) -> None:
    """The observer's image and its bus beside the portal, for the reports LiveNetwork makes."""
    observer_image = newest_image(client, "peerlab/observer")
    bridge = client.networks.create("peerlab-bench-portal", labels=LABEL)
    (work / "observer").mkdir()
    (work / "observer" / "observer.json").write_text(json.dumps({
        "bus": "peerlab-bench-portal-bus:4222", "carbon": "127.0.0.1:2003", "interval": INTERVAL, "host": "bench",
        "networks": {"big": {"chain": "regtest", "edges": [list(edge) for edge in network.edges],
                             "nodes": {node.name: {"container": node.container} for node in network.nodes}}}}))
    made.append(client.containers.run(
        observer_image, name="peerlab-bench-portal-bus", detach=True, labels=LABEL, network=bridge.name,
        entrypoint=["nats-server", "--addr", "0.0.0.0", "--port", "4222", "--http_port", "8222"],
        environment={"GOMAXPROCS": "1"}, ports={"4222/tcp": ("127.0.0.1", BUS_PUBLISH)}, healthcheck={"Test": ["NONE"]}))
    made.append(client.containers.run(
        observer_image, name="peerlab-bench-portal-observer", detach=True, labels=LABEL, network=bridge.name,
        environment={"PEERLAB_OBSERVER_CONFIG": "/etc/peerlab/observer.json"}, healthcheck={"Test": ["NONE"]},
        volumes={str(work / "observer"): {"bind": "/etc/peerlab", "mode": "ro"}},
        ports={"9333/tcp": ("127.0.0.1", OBSERVER_PUBLISH)}))


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    client = docker.from_env()
    image = newest_image(client, "peerlab/portal")
    work = Path(tempfile.mkdtemp(prefix="peerlab-bench-portal-"))
    generator = {"type": "random-regular", "nodes": NODES, "degree": 4, "seed": 1, "prefix": "n"}
    topology: dict[str, Any] = {"big": {"chain": "regtest", "generators": [generator]}}
    for old in client.containers.list(all=True, filters={"label": "peerlab.role=portal-bench"}):
        old.remove(force=True)
    for old_network in client.networks.list(filters={"label": "peerlab.role=portal-bench"}):
        old_network.remove()
    made: list[Any] = []
    driver = None
    inventory = None
    try:
        if REAL:
            # 200 bitcoinds with the monitoring stack, the portal and background activity, under the
            # bench's own names: the portal's container is the deploy's.
            topology["big"].update(defaults={"resources": {"memory": "256m", "cpus": 0.5}},
                                   activity={"tx_per_second": 1, "block_interval": 10, "seed": 3})
            patience = bench.patience(NODES)
            inventory = bench.write_inventory(work, {
                **bench.BENCH_STACK, "peerlab_monitoring": True, "peerlab_portal": True, "portal_container": REAL_PORTAL,
                "portal_listen": LISTEN, "observer_prometheus_publish": f"127.0.0.1:{OBSERVER_PUBLISH}",
                "network_rpc_timeout": patience, "network_link_timeout": patience, "network_tip_timeout": patience}, topology)
            deployed, _report = bench.playbook(inventory, "deploy.yml")
            print(f"bench-portal: {NODES} nodes deployed with the monitoring stack and the portal in {deployed:.0f} s", file=sys.stderr)
            password = yaml.safe_load((work / "secrets" / "portal.yml").read_text())["portal"]["admin"]["password"]
            container = client.containers.get(REAL_PORTAL)
        else:
            inventory_dir = work / "inventory"
            inventory_dir.mkdir()
            shutil.copy(ROOT / "inventories" / "local" / "01-hosts.yml", inventory_dir / "01-hosts.yml")
            (inventory_dir / "02-topology.peerlab.yml").write_text(yaml.safe_dump({"plugin": "peerlab.bitcoin.topology",
                                                                                   "networks": topology}))
            password = secrets.token_urlsafe(16)
            config = {"listen": LISTEN, "root": str(ROOT), "collections": str(ROOT / "collections"), "inventory": [str(inventory_dir)],
                      "user": "admin", "login": hash_password(password, secrets.token_hex(8)),
                      "observer": f"http://127.0.0.1:{OBSERVER_PUBLISH}" if LIVE else "", "feed": "",
                      "graphite": "", "grafana": "", "playbook_args": []}
            (work / "portal.json").write_text(json.dumps(config))
            if LIVE:
                synthetic(client, work, parse(topology, "bench")[0], made)
            volumes = {str(ROOT): {"bind": str(ROOT), "mode": "ro"}, str(work): {"bind": str(work), "mode": "rw"}}
            container = client.containers.run(image, name=NAME, detach=True, network_mode="host", labels=LABEL,
                                              environment={"PORTAL_CONFIG": str(work / "portal.json")}, volumes=volumes)
            made.append(container)
        network = parse(topology, "bench")[0]
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://{LISTEN}/healthz", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the portal did not answer: {container.logs()[-2000:].decode()}") from None
                time.sleep(0.5)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        driver.get(f"http://{LISTEN}/login")
        driver.find_element(By.NAME, "password").send_keys(password)
        driver.find_element(By.ID, "login").click()
        loads: list[dict[str, Any]] = []
        for _load in range(LOADS):
            driver.get(f"http://{LISTEN}/network/big")
            deadline = time.monotonic() + 120
            while not driver.execute_script("return window.peerlab && window.peerlab.graph.renderedAt"):
                if time.monotonic() > deadline:
                    shown = driver.find_element(By.TAG_NAME, "body").text[:1500]
                    raise SystemExit(f"the graph was not drawn within 120 s; the page says:\n{shown}\n"
                                     f"the portal's log ends:\n{container.logs()[-2000:].decode()}")
                time.sleep(0.05)
            loads.append(dict(driver.execute_script(
                "const g = window.peerlab.graph; return {rendered_ms: g.renderedAt, layout_ms: g.layoutMs,"
                " vertices: document.querySelectorAll('#canvas g[data-id]').length,"
                " links: document.querySelectorAll('#canvas line').length};")))
            if LIVE:
                break  # the live run's observer reports from the start: its loads are not the quiet draw's
        out = ROOT / "bench" / "results"
        out.mkdir(parents=True, exist_ok=True)
        warm = [load["rendered_ms"] for load in loads[1:]] or [loads[0]["rendered_ms"]]
        result: dict[str, Any] = {
            "nodes": NODES, "vertices": loads[-1]["vertices"], "links": loads[-1]["links"], "loads": len(loads),
            "first_load_ms": round(loads[0]["rendered_ms"]), "warm_median_ms": round(statistics.median(warm)),
            "warm_max_ms": round(max(warm)),
            "layout_median_ms": round(statistics.median(load["layout_ms"] for load in loads)), "image": image,
            "chromium": driver.capabilities.get("browserVersion"), "mode": "real" if REAL else "synthetic" if LIVE else "quiet",
        }
        if REAL and LIVE:
            churn = Churn(client, [node.container for node in network.nodes])
            parts = {"portal": container, **{part: client.containers.get(str(bench.BENCH_STACK[key])) for part, key in
                                             (("observer", "observer_container"), ("collector", "collector_container"),
                                              ("bus", "observer_bus_container"))}}
            result["live"] = measure_live(driver, parts, churn.run, churn.stop, lambda: None, out, "real")
            result["live"]["node_restarts"] = churn.restarts
        elif LIVE:
            bus = events.Bus(f"127.0.0.1:{BUS_PUBLISH}", "peerlab-bench-portal").start()
            if not bus.connected.wait(30):
                raise SystemExit("the bench's bus did not answer")
            live = LiveNetwork(bus, "big", [node.name for node in network.nodes], [(edge[0], edge[1]) for edge in network.edges])
            parts = {"portal": container, "observer": next(item for item in made if item.name == "peerlab-bench-portal-observer")}
            result["live"] = measure_live(driver, parts, live.run, live.stop, lambda: live.published, out, "live")
        else:
            driver.save_screenshot(str(out / f"portal-{NODES}.png"))
        print(json.dumps(result))
    finally:
        if driver is not None:
            driver.quit()
        for item in made:
            item.remove(force=True, v=True)
        for old_network in client.networks.list(filters={"label": "peerlab.role=portal-bench"}):
            old_network.remove()
        if inventory is not None:
            bench.playbook(inventory, "playbooks/teardown.yml", "-e", "peerlab_purge=true")
        shutil.rmtree(work, ignore_errors=True)
        client.close()


def measure_live(driver: Any, parts: dict[str, Any], changes: Any, stop: threading.Event, published: Any, out: Path,
                 name: str) -> dict[str, Any]:
    """The live window: `changes` runs (in a thread) while the page polls; what the page costs, and
    the CPU of Chromium and of each container in `parts`, meanwhile."""
    feeder = threading.Thread(target=changes, daemon=True)
    feeder.start()
    try:
        # every node reported up, and the page showing it, before the window opens
        deadline = time.monotonic() + 180
        while driver.execute_script("return document.querySelectorAll('#canvas g.vertex.down').length") > 0:
            if time.monotonic() > deadline:
                raise SystemExit("the page did not show every node up within 180 s")
            time.sleep(0.5)
        driver.execute_script(PAGE_PROBE)
        chromium = driver.service.process.pid

        def cpu() -> dict[str, float]:
            return {"chromium": process_cpu(chromium), **{part: container_cpu(container) for part, container in parts.items()}}
        before, sent, started = cpu(), published(), time.monotonic()
        time.sleep(LIVE)
        seconds = time.monotonic() - started
        after, sent_after = cpu(), published()
        page = driver.execute_script(
            "const b = window.__bench, t = window.peerlab.timings, f = window.peerlab.forks || {};"
            "const entries = performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/networks/'));"
            "return {frames: b.frames, long: b.long, fetch: t.fetch, render: t.render,"
            " bytes: entries.length ? entries[entries.length - 1].decodedBodySize : 0,"
            " branches: f.branches, reorgs: (f.reorgs || []).length, links: document.querySelectorAll('#canvas line').length};")
        driver.save_screenshot(str(out / f"portal-{NODES}-{name}.png"))
    finally:
        stop.set()
        feeder.join(timeout=20)
    frames = [later - earlier for earlier, later in zip(page["frames"], page["frames"][1:], strict=False)]
    return {
        "seconds": round(seconds), **({"events_per_second": round((sent_after - sent) / seconds)} if sent is not None else {}),
        "refreshes": len(page["render"]), "view_kib": round(page["bytes"] / 1024),
        "fetch_ms_median": round(statistics.median(page["fetch"]), 1) if page["fetch"] else None,
        "render_ms_median": round(statistics.median(page["render"]), 1) if page["render"] else None,
        "render_ms_max": round(max(page["render"]), 1) if page["render"] else None,
        "frames": len(frames), "frame_ms_p50": round(percentile(frames, 0.5), 1), "frame_ms_p95": round(percentile(frames, 0.95), 1),
        "frame_ms_p99": round(percentile(frames, 0.99), 1), "frame_ms_max": round(max(frames, default=0.0), 1),
        "frames_over_50ms": sum(1 for frame in frames if frame > 50),
        "long_tasks": len(page["long"]), "long_task_ms_total": round(sum(page["long"])),
        "cpu_percent": {part: round(100 * (after[part] - before[part]) / seconds, 1) for part in before},
        "fork_view": {"branches": page["branches"], "reorgs": page["reorgs"]},
    }


if __name__ == "__main__":
    main()
