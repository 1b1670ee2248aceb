"""peerlab portal: see and shape a running network in a browser (docs/portal.md).

Reads: the topology files of the inventory (the same model as the inventory plugin) and the
observer's /state (each node's latest poll: chain, peers, mempool, alerts). Writes: a change is made
on the topology file (ruamel.yaml round trip, validated by the model, lock + atomic replace,
refused when the file changed since the page read it), then applied in one job: first at once by
the quick apply (quick.py: the engine's own code, in this process, on the portal's Docker host),
then by the repository's own playbooks/apply.yml (the roles deploy.yml runs for nodes, links and
the monitoring's view of them; deploy.yml itself for a node on a new Docker host), which confirms
it. One job at a time; the portal never has a second way to make containers or links.

Runs in the peerlab-portal container on the controller's Docker engine with the host's network
(listening on 127.0.0.1 unless asked), the repository, inventory, secrets and state directories at
their own paths, and the Docker socket: what it runs is what `ansible-playbook deploy.yml` runs.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG = os.environ.get("PORTAL_CONFIG", "/etc/peerlab/portal.json")
HERE = Path(__file__).resolve().parent
VENDOR = Path(os.environ.get("PORTAL_VENDOR", str(HERE / "vendor")))
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
TOPOLOGY_SUFFIXES = (".peerlab.yml", ".peerlab.yaml")


def load_config(path: str = CONFIG) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        config: dict[str, Any] = json.load(handle)
    collections = config.get("collections")
    if collections and collections not in sys.path:
        sys.path.insert(0, collections)  # the repository's collection: the topology model and its edits
    return config


# ---------------------------------------------------------------------------------------------
# CSRF (the login's hash is checked by the collection's _login, shared with the deploy)

def csrf_ok(sent: str | None, expected: str | None) -> bool:
    return bool(sent) and bool(expected) and hmac.compare_digest(str(sent), str(expected))


# ---------------------------------------------------------------------------------------------
# The inventory: its Docker hosts (from ansible-inventory, as the plugin sees them) and topology files

@dataclass
class Inventory:
    sources: list[str]
    root: str
    hosts: set[str] = field(default_factory=set)         # Docker hosts (inventory hosts that are not nodes)
    taken: set[str] = field(default_factory=set)         # names a network may not take
    swarm: set[str] = field(default_factory=set)
    read_at: float = 0.0
    stamp: tuple[Any, ...] = ()
    problem: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def topology_files(self) -> list[str]:
        files: list[str] = []
        for source in self.sources:
            path = Path(source)
            if path.is_dir():
                files += sorted(str(item) for item in path.iterdir() if item.name.endswith(TOPOLOGY_SUFFIXES))
            elif path.name.endswith(TOPOLOGY_SUFFIXES):
                files.append(str(path))
        return files

    def _stamp(self) -> tuple[Any, ...]:
        """The inventory's files other than topology files (and hidden ones: locks, temporary
        files): what ansible-inventory is read again for. A topology file is parsed at each read
        (networks()), and an edit of one changes none of the Docker hosts or reserved names."""
        stamps = []
        for source in self.sources:
            path = Path(source)
            for item in [path] if not path.is_dir() else sorted(path.rglob("*")):
                if item.name.endswith(TOPOLOGY_SUFFIXES) or item.name.startswith(".") or item.is_dir():
                    continue
                try:
                    stamps.append((str(item), item.stat().st_mtime_ns))
                except OSError:
                    continue
        return tuple(stamps)

    def refresh(self) -> None:
        """Docker hosts, reserved names and Swarm hosts as the inventory plugin is given them (read
        again when a file of the inventory changes)."""
        with self.lock:
            stamp = self._stamp()
            if stamp != self.stamp or not self.read_at:
                self._read(stamp)

    def _read(self, stamp: tuple[Any, ...]) -> None:
        command = ["ansible-inventory", "--list"]
        for source in self.sources:
            command += ["-i", source]
        result = subprocess.run(command, cwd=self.root, env=ansible_env(self.root), capture_output=True, text=True,
                                timeout=120, check=False)
        self.stamp, self.read_at = stamp, time.time()
        if result.returncode != 0:
            self.problem = (result.stderr or result.stdout).strip()[-2000:]
            return
        self.problem = ""
        listing = json.loads(result.stdout)
        entries = {name: value for name, value in listing.items() if isinstance(value, dict) and name != "_meta"}
        groups = {name: set(value.get("hosts", [])) for name, value in entries.items()}
        children = {name: set(value.get("children", [])) for name, value in entries.items()}
        # Each node is a group of its Docker host (plugins/inventory/topology.py), each network a group of node groups.
        nodes = children.get("peerlab_nodes", set())
        networks = {name for name, members in children.items() if members and members <= nodes and not name.startswith("peerlab")}
        self.hosts = set(listing.get("_meta", {}).get("hostvars", {})) | {host for members in groups.values() for host in members}
        self.swarm = groups.get("peerlab_swarm_managers", set()) | groups.get("peerlab_swarm_workers", set())
        self.taken = self.hosts | (set(groups) - networks - nodes - {"peerlab_nodes", "peerlab_miners", "peerlab_engines",
                                                                     "peerlab_monitoring"})

    def networks(self) -> tuple[dict[str, Any], list[str]]:
        """name -> (model Network, its file); and the problems of files that do not parse."""
        from ansible_collections.peerlab.bitcoin.plugins.module_utils import _edit
        from ansible_collections.peerlab.bitcoin.plugins.module_utils._topology import TopologyError, parse

        found: dict[str, Any] = {}
        problems: list[str] = []
        for path in self.topology_files():
            try:
                document = _edit.load(path)
                for network in parse(_edit.plain(document.networks()), path, known_hosts=self.hosts or None,
                                     swarm_hosts=self.swarm):
                    found[network.name] = {"model": network, "file": path, "version": document.version}
            except (TopologyError, OSError, ValueError) as error:
                problems.append(str(error))
        return found, problems

    def validator(self) -> Any:
        from ansible_collections.peerlab.bitcoin.plugins.module_utils import _edit

        return _edit.model_validator(known_hosts=self.hosts or None, taken_names=self.taken, swarm_hosts=self.swarm)


def apply_playbook(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The playbook that applies an edit: playbooks/apply.yml (the network and the monitoring's
    view of it) while every node runs on a Docker host that ran nodes before; deploy.yml when a
    node lands on a new one (that host needs its collector)."""
    def hosts(networks: dict[str, Any]) -> set[str]:
        return {node.host for network in networks.values() for node in network["model"].nodes}

    return "playbooks/apply.yml" if hosts(after) <= hosts(before) else "deploy.yml"


def quick_module() -> Any:
    """quick.py beside this file: the quick apply (the portal's image holds both)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import quick

    return quick


def ansible_env(root: str) -> dict[str, str]:
    return dict(os.environ, ANSIBLE_CONFIG=str(Path(root) / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                ANSIBLE_FORCE_COLOR="0", PYTHONUNBUFFERED="1")


# ---------------------------------------------------------------------------------------------
# The view of a network (pure: the model's network and the observer's state in, the page's JSON out)

def external_id(addr: str) -> str:
    host = addr.rsplit(":", 1)[0].strip("[]") if addr else ""
    return f"ext:{host}"


def node_status(live: dict[str, Any]) -> str:
    """up, down, paused (a fault froze it), stopped, or unknown (the observer has not polled it)."""
    if not live:
        return "unknown"
    if live.get("up") and live.get("fresh"):
        return "up"
    return {"paused": "paused", "exited": "stopped", "created": "stopped"}.get(live.get("container") or "", "down")


def network_view(network: Any, state: dict[str, Any] | None, version: str) -> dict[str, Any]:
    """Managed nodes with their live numbers, declared edges (connected or not), links between
    managed nodes nobody declared, and every other peer a node has (external: one vertex per address)."""
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._names import build_label

    live_nodes = (state or {}).get("nodes", {})
    faults = list(getattr(network, "faults", ()))
    sides = {member: index for fault in faults if fault.kind == "partition" for index, group in enumerate(fault.groups) for member in group}
    nodes = []
    managed = {node.name for node in network.nodes}
    links: set[frozenset[str]] = set()
    externals: dict[str, dict[str, Any]] = {}
    external_edges: list[dict[str, Any]] = []
    for node in network.nodes:
        live = live_nodes.get(node.name) or {}
        for peer in live.get("peers") or []:
            if peer.get("node") in managed:
                links.add(frozenset((node.name, peer["node"])))
                continue
            vertex = external_id(peer.get("addr", ""))
            entry = externals.setdefault(vertex, {"id": vertex, "addr": peer.get("addr", ""), "subver": peer.get("subver", ""),
                                                  "peers": []})
            entry["subver"] = entry["subver"] or peer.get("subver", "")  # a connection still in its handshake has none
            entry["peers"].append({"node": node.name, "addr": peer.get("addr", ""), "inbound": bool(peer.get("inbound")),
                                   "conn_type": peer.get("conn_type", "")})
            external_edges.append({"id": f"{node.name}|{vertex}", "from": node.name, "to": vertex, "kind": "external",
                                   "inbound": bool(peer.get("inbound"))})
        nodes.append({
            "id": node.name, "container": node.container, "host": node.host, "implementation": node.implementation,
            "version": node.version, "build": build_label(node.implementation, node.version), "miner": node.miner,
            "chain": network.chain, "peers_declared": list(node.peers_out),
            "status": node_status(live),
            "live": live,
            "faults": [fault_label(fault) for fault in faults if fault.node == node.name and not fault.target],
            "side": sides.get(node.name),
        })
    edges = []
    declared = set()
    for source, target in network.edges:
        pair = frozenset((source, target))
        declared.add(pair)
        edges.append({"id": "|".join(sorted(pair)), "from": source, "to": target, "kind": "declared",
                      "connected": pair in links, "faults": edge_faults(faults, source, target)})
    for pair in sorted(links - declared, key=sorted):
        source, target = sorted(pair)
        edges.append({"id": f"{source}|{target}", "from": source, "to": target, "kind": "undeclared", "connected": True,
                      "faults": edge_faults(faults, source, target)})
    return {"name": network.name, "chain": network.chain, "file_version": version, "nodes": nodes,
            "edges": edges + external_edges, "external": sorted(externals.values(), key=lambda item: item["id"]),
            "hosts": sorted({node.host for node in network.nodes}), "observed": state is not None,
            "sides": max((len(fault.groups) for fault in faults if fault.kind == "partition"), default=0),
            "activity": activity_view(network, live_nodes), "forks": fork_view((state or {}).get("blocks"), sorted(managed))}


def fault_label(fault: Any) -> str:
    """A fault as the graph labels it: its kind and setting, without the place (the graph shows that)."""
    return {"loss": f"loss {fault.percent:g}%", "bandwidth": f"{fault.rate}",
            "latency": f"{fault.delay:g} ms" + (f" ±{fault.jitter:g}" if fault.jitter else "")}.get(fault.kind, fault.kind)


def edge_faults(faults: list[Any], one: str, other: str) -> list[dict[str, str]]:
    """The faults on a link, each direction's: [{from, to, kind, label}]."""
    return [{"from": fault.node, "to": fault.target, "kind": fault.kind, "label": f"{fault.node}→{fault.target} {fault_label(fault)}"}
            for fault in faults if fault.target and {fault.node, fault.target} == {one, other}]


def fork_view(blocks: dict[str, Any] | None, nodes: list[str], shown: int = 12) -> dict[str, Any]:
    """The fork view: the observer's recent block tree (images/observer/forks.py) laid out in lanes.
    Lane 0 is the chain of the best tip a node holds (the highest; then the one more nodes hold);
    each other branch gets the next lane, from its newest block back to where it leaves a laned
    one. Every block says which nodes sit on it and whether it is stale (on no node's chain). The
    columns are the last `shown` heights, or from two below the lowest fork point when that is
    older (at most the observer's window). `branches` counts competing tips: tips nodes hold that
    no other held tip descends from (a node behind on the same chain is not a branch)."""
    blocks = blocks or {}
    tree = {block["hash"]: block for block in blocks.get("blocks") or []}
    tips = {node: tip["hash"] for node, tip in (blocks.get("tips") or {}).items() if node in nodes}
    reorgs = [dict(reorg) for reorg in reversed(blocks.get("reorgs") or [])]
    if not tree:
        return {"blocks": [], "lanes": 0, "branches": 0, "from": None, "to": None, "behind": {}, "unknown": sorted(nodes),
                "reorgs": reorgs}

    def chain(block: str) -> list[str]:
        out = []
        while block in tree and block not in out:
            out.append(block)
            block = tree[block]["parent"]
        return out

    held: set[str] = set()
    chains = {node: chain(tip) for node, tip in tips.items()}
    for path in chains.values():
        held.update(path)
    on: dict[str, list[str]] = {}
    for node, tip in sorted(tips.items()):
        on.setdefault(tip, []).append(node)
    held_tips = set(on) & set(tree)
    competing = {tip for tip in held_tips if not any(tip != other and tip in chains[on[other][0]] for other in held_tips)}
    children: dict[str, list[str]] = {}
    for block in tree.values():
        if block["parent"] in tree:
            children.setdefault(block["parent"], []).append(block["hash"])
    leaves = [block for block in tree if block not in children]
    best = max(held_tips or leaves, key=lambda block: (tree[block]["height"], len(on.get(block, [])), -tree[block]["seen"]))
    lane: dict[str, int] = {block: 0 for block in chain(best)}
    order = sorted(leaves, key=lambda block: (block not in held, -tree[block]["height"], tree[block]["seen"]))
    forks: list[int] = []
    for leaf in order:
        if leaf in lane:
            continue
        number = max(lane.values()) + 1
        for block in chain(leaf):
            if block in lane:
                forks.append(tree[block]["height"])
                break
            lane[block] = number
        else:
            forks.append(tree[chain(leaf)[-1]]["height"] - 1)
    top = max(block["height"] for block in tree.values())
    bottom = min(block["height"] for block in tree.values())
    start = max(bottom, min([top - shown + 1] + [height - 2 for height in forks]))
    out = [{"hash": block["hash"], "height": block["height"], "lane": lane.get(block["hash"], 0),
            "parent": block["parent"] if block["parent"] in tree and tree[block["parent"]]["height"] >= start else None,
            "miner": block.get("miner"), "stale": block["hash"] not in held, "nodes": on.get(block["hash"], []),
            "tip": block["hash"] in competing}
           for block in sorted(tree.values(), key=lambda item: (item["height"], lane.get(item["hash"], 0))) if block["height"] >= start]
    placed = {node for block in out for node in block["nodes"]}
    behind = {node: (blocks.get("tips") or {})[node]["height"] for node in tips if node not in placed}
    return {"blocks": out, "lanes": max(block["lane"] for block in out) + 1 if out else 0, "branches": len(competing),
            "from": start, "to": top, "behind": behind, "unknown": sorted(set(nodes) - set(tips)), "reorgs": reorgs}


def activity_view(network: Any, live_nodes: dict[str, Any]) -> dict[str, Any] | None:
    """The network's background activity as declared (its container keeps it running), with what
    the nodes hold now (the largest mempool, the highest tip) and its Graphite counters' names."""
    activity = getattr(network, "activity", None)
    if activity is None:
        return None
    mempools = [(live.get("mempool") or {}).get("size") for live in live_nodes.values()]
    heights = [live.get("height") for live in live_nodes.values()]
    return {"tx_per_second": activity.tx_per_second, "block_interval": activity.block_interval,
            "fee_rates": list(activity.fee_rates) if activity.fee_rates else None,
            "pairs": [list(pair) for pair in activity.pairs],
            "mempool": max((size for size in mempools if isinstance(size, int)), default=None),
            "height": max((height for height in heights if isinstance(height, int)), default=None),
            "metrics": {kind: f"peerlab.{network.name}.network.activity.{kind}" for kind in ("payments", "failed", "blocks")}}


# ---------------------------------------------------------------------------------------------
# Jobs: one at a time, each a playbook run of the repository

@dataclass
class Job:
    id: int
    title: str
    command: list[str]
    state: str = "queued"  # queued, running, ok, failed
    output: deque[str] = field(default_factory=lambda: deque(maxlen=400))
    queued: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    changed: int | None = None
    # Run first, in the worker (the quick apply of a network): key -> callable given the job; what
    # they say stays at the top of the output shown.
    before: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    applied: float | None = None  # when a step made the edit (the playbook then confirms it)

    def summary(self, lines: int = 40) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "state": self.state, "queued": self.queued, "started": self.started,
                "finished": self.finished, "changed": self.changed,
                "seconds": round((self.finished or time.time()) - (self.started or self.queued), 1),
                "applied": round(self.applied - self.started, 1) if self.applied and self.started else None,
                "output": self.notes + list(self.output)[-lines:]}


class Jobs:
    def __init__(self, root: str, sources: list[str], extra: list[str], worker: bool = True) -> None:
        self.root, self.sources, self.extra = root, sources, extra
        self.items: dict[int, Job] = {}
        self.pending: deque[Job] = deque()
        self.lock = threading.Condition()
        self.next_id = 1
        if worker:
            threading.Thread(target=self._work, daemon=True, name="jobs").start()

    def playbook(self, title: str, playbook: str, *args: str, before: tuple[str, Any] | None = None) -> Job:
        """Queue a playbook run; `before` (key, callable) runs first, in the same job (once per
        key when jobs are shared)."""
        command = ["ansible-playbook"]
        for source in self.sources:
            command += ["-i", source]
        command += [playbook, *self.extra, *args]
        with self.lock:
            for job in self.pending:  # a deploy or apply already waiting will apply this change too
                if job.command == command and playbook in ("deploy.yml", "playbooks/apply.yml"):
                    if before:
                        job.before.setdefault(*before)
                    return job
            job = Job(self.next_id, title, command, before=dict([before]) if before else {})
            self.next_id += 1
            self.items[job.id] = job
            self.pending.append(job)
            self.lock.notify()
            return job

    def _work(self) -> None:
        while True:
            with self.lock:
                while not self.pending:
                    self.lock.wait()
                job = self.pending.popleft()
            self.run(job)

    def run(self, job: Job) -> None:
        """The job's steps (each may fail: the playbook applies the edit anyway), then its playbook."""
        job.state, job.started = "running", time.time()
        for step in list(job.before.values()):
            try:
                step(job)
            except Exception as error:
                job.notes.append(f"{error.__class__.__name__}: {error}")
        try:
            process = subprocess.Popen(job.command, cwd=self.root, env=ansible_env(self.root), stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)
            text = []
            for line in process.stdout or []:
                job.output.append(line.rstrip("\n"))
                text.append(line)
            code = process.wait()
            job.changed = sum(int(match[2]) for match in RECAP.findall("".join(text)))
            job.state = "ok" if code == 0 else "failed"
        except Exception as error:  # the worker must outlive any one job
            job.output.append(f"could not run {job.command[0]}: {error}")
            job.state = "failed"
        job.finished = time.time()
        log(f"job {job.id} {job.title}: {job.state} in {job.finished - job.started:.1f} s, changed={job.changed}")


def log(message: str) -> None:
    print(f"peerlab-portal: {message}", file=sys.stderr, flush=True)


def observer_state(url: str) -> dict[str, Any] | None:
    if not url:
        return None
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/state", timeout=3) as response:
            state: dict[str, Any] = json.load(response)
            return state
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# The web application

def create_app(config: dict[str, Any]) -> Any:
    from flask import Flask, abort, jsonify, redirect, render_template, request, send_from_directory, session, url_for

    from ansible_collections.peerlab.bitcoin.plugins.module_utils import _edit
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._login import check_password

    app = Flask(__name__, template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"))
    app.secret_key = secrets.token_bytes(32)  # sessions end when the portal restarts
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict", MAX_CONTENT_LENGTH=64 * 1024)
    inventory = Inventory(list(config["inventory"]), config["root"])
    jobs = Jobs(config["root"], list(config["inventory"]), list(config.get("playbook_args", [])))
    user = config.get("user", "admin")
    feed = config.get("feed", "")
    # One login checked at a time, and a wrong one holds the next for a second: guesses cost a
    # second each in total, however many requests run at once (the server is threaded).
    limiter = threading.Lock()
    # Sessions the portal issued and has not ended: a cookie names one, logout ends it (a copy of
    # the cookie is refused from then on); a restart ends them all.
    sessions: set[str] = set()

    def current() -> tuple[dict[str, Any], list[str]]:
        inventory.refresh()
        return inventory.networks()

    quick = quick_module().Settings.from_config(config)
    grafana_seen = {"at": 0.0, "up": False}

    def shown() -> dict[str, Any]:
        """The configuration as pages use it: Grafana's link only while Grafana answers (its image
        may be missing on a machine without a registry; checked at most every 30 s)."""
        if config.get("grafana") and time.monotonic() - grafana_seen["at"] > 30:
            grafana_seen["at"] = time.monotonic()
            try:
                with urllib.request.urlopen(config["grafana"] + "/api/health", timeout=1) as response:
                    grafana_seen["up"] = response.status == 200
            except OSError:
                grafana_seen["up"] = False
        return dict(config, grafana=config.get("grafana", "") if grafana_seen["up"] else "")

    def quick_apply(job: Job, name: str) -> None:
        """The edit made on the portal's own Docker host at once (quick.py), the playbook after."""
        if quick is None:
            return
        networks, _problems = current()
        every = [entry["model"] for entry in networks.values()]
        if name in networks and quick_module().QuickApply(quick, job.notes.append)(networks[name]["model"], every):
            job.applied = time.time()

    @app.after_request
    def headers(response: Any) -> Any:
        origins = " ".join(origin for origin in (feed.split("/events")[0] if feed else "",) if origin)
        images = " ".join(url for url in (config.get("graphite", ""),) if url)
        response.headers["Content-Security-Policy"] = (
            f"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: {images}; "
            f"connect-src 'self' {origins}; frame-ancestors 'none'; form-action 'self'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    @app.before_request
    def guard() -> Any:
        if request.endpoint in ("static", "vendor", "healthz", "favicon"):
            return None
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        if request.method == "POST" and not csrf_ok(request.headers.get("X-CSRF-Token") or request.form.get("csrf"), session.get("csrf")):
            return (jsonify(error="refused: the request has no valid CSRF token (reload the page)"), 403)
        if request.endpoint == "login" or (session.get("user") == user and session.get("sid") in sessions):
            return None
        if request.path.startswith("/api/"):
            return (jsonify(error="login required"), 401)
        return redirect(url_for("login", next=request.path))

    @app.errorhandler(400)
    def bad_request(error: Any) -> Any:
        return jsonify(error=str(getattr(error, "description", error))), 400

    @app.get("/healthz")
    def healthz() -> Any:
        return "ok\n"

    @app.get("/favicon.ico")
    def favicon() -> Any:
        return "", 204

    @app.get("/vendor/<path:name>")
    def vendor(name: str) -> Any:
        return send_from_directory(VENDOR, name)

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        error = ""
        if request.method == "POST":
            with limiter:
                # Both compared whatever the user name, each in constant time: no answer says which was wrong.
                user_ok = hmac.compare_digest(str(request.form.get("user", "")).encode(), str(user).encode())
                password_ok = check_password(str(request.form.get("password", "")), config["login"])
                if not (user_ok and password_ok):
                    time.sleep(1.0)
            if user_ok and password_ok:
                session.clear()
                sid = secrets.token_urlsafe(32)
                sessions.add(sid)
                session["user"], session["sid"], session["csrf"] = user, sid, secrets.token_urlsafe(32)
                target = request.args.get("next", "/")
                return redirect(target if target.startswith("/") and not target.startswith("//") else "/")
            error = "wrong user or password"
        return render_template("login.html", error=error, csrf=session.get("csrf", ""), user=user), (401 if error else 200)

    @app.post("/logout")
    def logout() -> Any:
        sessions.discard(str(session.get("sid", "")))
        session.clear()
        return redirect(url_for("login"))

    @app.get("/")
    def index() -> Any:
        networks, problems = current()
        state = observer_state(config.get("observer", "")) or {}
        rows = []
        for name, found in sorted(networks.items()):
            live = state.get(name, {}).get("nodes", {})
            heights = sorted({node.get("height") for node in live.values() if node.get("height") is not None})
            up = sum(1 for node in live.values() if node.get("up") and node.get("fresh"))
            rows.append({"name": name, "chain": found["model"].chain, "nodes": len(found["model"].nodes),
                         "edges": len(found["model"].edges), "up": up, "heights": heights, "file": found["file"]})
        return render_template("index.html", networks=rows, problems=problems + ([inventory.problem] if inventory.problem else []),
                               csrf=session["csrf"], config=shown())

    @app.get("/network/<name>")
    def network_page(name: str) -> Any:
        networks, _problems = current()
        if name not in networks:
            abort(404)
        return render_template("network.html", name=name, chain=networks[name]["model"].chain, csrf=session["csrf"],
                               config=shown(), file=networks[name]["file"])

    @app.get("/network/<name>/node/<node>")
    def node_page(name: str, node: str) -> Any:
        networks, _problems = current()
        if name not in networks or node not in {item.name for item in networks[name]["model"].nodes}:
            abort(404)
        return render_template("node.html", name=name, node=node, csrf=session["csrf"], config=shown())

    @app.get("/api/networks/<name>")
    def network_api(name: str) -> Any:
        networks, problems = current()
        if name not in networks:
            return jsonify(error=f"network '{name}' is not in the inventory", problems=problems), 404
        found = networks[name]
        view = network_view(found["model"], (observer_state(config.get("observer", "")) or {}).get(name), found["version"])
        view["file"] = found["file"]
        view["graphite"], view["grafana"], view["feed"] = config.get("graphite", ""), shown()["grafana"], feed
        view["implementations"] = implementations()
        view["docker_hosts"] = sorted(inventory.hosts)
        return jsonify(view)

    @app.get("/api/jobs/<int:job_id>")
    def job_api(job_id: int) -> Any:
        job = jobs.items.get(job_id)
        return (jsonify(job.summary()), 200) if job else (jsonify(error="no such job"), 404)

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}

    def edit(name: str, change: Any) -> Any:
        networks, _problems = current()
        if name not in networks:
            return jsonify(error=f"network '{name}' is not in the inventory"), 404
        version = body().get("file_version")  # the file as the page read it (a node's "version" is its software's)
        if not isinstance(version, str) or not version:
            return jsonify(error="give file_version, the topology file's version the page read (GET /api/networks/<name>): "
                                 "without it an edit could overwrite a change made since", reload=True), 400
        try:
            document = _edit.change(networks[name]["file"], version, change, inventory.validator())
        except _edit.Conflict as conflict:
            return jsonify(error=str(conflict), reload=True), 409
        except _edit.EditError as refused:
            generated = any("is made by a generator" in problem for problem in refused.problems)
            return jsonify(error=str(refused), problems=refused.problems, expand=generated), 400
        playbook = apply_playbook(networks, current()[0])
        job = jobs.playbook(f"apply the topology ({playbook})", playbook, before=(name, lambda job: quick_apply(job, name)))
        return jsonify(file_version=document.version, job=job.summary()), 202

    def names(*keys: str) -> list[str]:
        data = body()
        values = [data.get(key) for key in keys]
        if not all(isinstance(value, str) and value for value in values):
            abort(400, description=f"give {', '.join(keys)}")
        return [str(value) for value in values]

    @app.post("/api/networks/<name>/connect")
    def connect(name: str) -> Any:
        source, target = names("from", "to")
        return edit(name, lambda data: _edit.connect(data, name, source, target))

    @app.post("/api/networks/<name>/disconnect")
    def disconnect(name: str) -> Any:
        source, target = names("from", "to")
        if body().get("expand") is True:  # a generator's link: the generator written out first
            def expand_and_disconnect(data: Any) -> None:
                _edit.expand_generator(data, name, source, target)
                _edit.disconnect(data, name, source, target)
            return edit(name, expand_and_disconnect)
        return edit(name, lambda data: _edit.disconnect(data, name, source, target))

    @app.post("/api/networks/<name>/faults")
    def set_fault(name: str) -> Any:
        fault = body().get("fault")
        if isinstance(fault, dict) and isinstance(fault.get("kind"), str):
            entry = {key: value for key, value in fault.items() if value not in (None, "")}
            return edit(name, lambda data: _edit.set_fault(data, name, entry))
        return jsonify(error="give fault: {kind, node | from and to, its settings} (docs/experiments.md)"), 400

    @app.post("/api/networks/<name>/faults/clear")
    def clear_faults(name: str) -> Any:
        data = body()
        if data.get("node"):
            (node,) = names("node")
            return edit(name, lambda document: _edit.clear_faults(document, name, node=node))
        source, target = names("from", "to")
        return edit(name, lambda document: _edit.clear_faults(document, name, source=source, target=target))

    @app.post("/api/networks/<name>/partition")
    def partition_side(name: str) -> Any:
        (node,) = names("node")
        side = body().get("side")
        if side is not None and (isinstance(side, bool) or not isinstance(side, int)):
            return jsonify(error="give side: a side's number from 0 (the number of sides: a new side), or null for no side"), 400
        return edit(name, lambda document: _edit.set_side(document, name, node, side))

    @app.post("/api/networks/<name>/nodes")
    def add_node(name: str) -> Any:
        (node,) = names("name")
        data = body()
        settings = {key: data[key] for key in ("implementation", "version", "host") if data.get(key)}
        links = [str(link) for link in data.get("links") or [] if isinstance(link, str)]
        return edit(name, lambda document: _edit.add_node(document, name, node, settings, links))

    def operate(name: str, playbook: str, title: str, *args: str) -> Any:
        networks, _problems = current()
        if name not in networks:
            return jsonify(error=f"network '{name}' is not in the inventory"), 404
        node = body().get("node")
        target = name
        if node:
            if node not in {item.name for item in networks[name]["model"].nodes}:
                return jsonify(error=f"network '{name}': unknown node '{node}'"), 400
            target = next(item.container for item in networks[name]["model"].nodes if item.name == node)
        job = jobs.playbook(f"{title} {target}", playbook, "--limit", target, *args)
        return jsonify(job=job.summary()), 202

    @app.post("/api/networks/<name>/stop")
    def stop(name: str) -> Any:
        return operate(name, "playbooks/stop.yml", "stop")

    @app.post("/api/networks/<name>/start")
    def start(name: str) -> Any:
        return operate(name, "playbooks/start.yml", "start")

    @app.post("/api/networks/<name>/mine")
    def mine(name: str) -> Any:
        networks, _problems = current()
        if name in networks and networks[name]["model"].chain != "regtest":
            return jsonify(error=f"network '{name}' is on {networks[name]['model'].chain}: blocks are mined on regtest only"), 400
        blocks = body().get("blocks", 1)
        if isinstance(blocks, bool) or not isinstance(blocks, int) or not 1 <= blocks <= 1000:
            return jsonify(error="blocks must be a whole number from 1 to 1000"), 400
        return operate(name, "playbooks/mine.yml", f"mine {blocks} on", "-e", f"blocks={blocks}")

    return app


def implementations() -> dict[str, str]:
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._topology import IMPLEMENTATIONS

    return {name: spec["version"] for name, spec in IMPLEMENTATIONS.items()}


def main() -> None:
    config = load_config()
    app = create_app(config)
    host, port = config.get("listen", "127.0.0.1:8090").rsplit(":", 1)
    from werkzeug.serving import make_server

    server = make_server(host.strip("[]"), int(port), app, threaded=True)
    log(f"listening on http://{config.get('listen')} (inventory {', '.join(config['inventory'])})")
    # Python as a container's PID 1 ignores SIGTERM: without this, `docker stop` waits 10 s and kills.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    server.serve_forever()


if __name__ == "__main__":
    main()
