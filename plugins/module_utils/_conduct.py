# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A scenario's run: the timeline's steps, the watchers of every node's tip and the Observer's
alerts, the cleanup, and the report's facts (plugins/module_utils/_scenario.py turns them into
the report). The scenario module is only its entry point.

Steps are handlers registered by kind in STEPS (`@step("mine")`): a new kind of step is a handler
here and its keys in _scenario.STEP_KEYS (a unit test holds the two equal).

A run acts on nodes through the hands of their Docker host: LocalHands on the host the module runs
on (its engine, its nodes' RPC), RemoteHands on another host of a Swarm, through that host's agent
(plugins/module_utils/_hub.py). The timeline does not know the difference.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible.module_utils.urls import ConnectionError as UrlError
from ansible.module_utils.urls import open_url

from . import _faults
from ._docker import Docker, DockerError
from ._hub import Hub, HubError
from ._netfault import holders, kill, node_containers, reconcile
from ._peering import added, apply, close, drop_duplicates, wait_connected
from ._peering import plan as peer_plan
from ._rpc import Rpc, RpcAuthError, RpcError, RpcUnavailable, plain
from ._scenario import DEFAULT_TIMEOUT, NodeChain, connect, summarize
from ._schedule import Miners, Payments
from ._traffic import Traffic


class StepFailed(Exception):
    """A wait that timed out or an assertion that did not hold."""


class LocalHands:
    """This Docker host's nodes: their RPC, their containers and their fault holders, through its engine."""

    def __init__(self, docker: Docker, network: str, specs: dict[str, dict[str, Any]], wallet: str) -> None:
        self.docker = docker
        self.network = network
        self.specs = specs
        self.wallet = wallet

    def rpc(self, name: str, wallet: bool, timeout: float) -> Rpc:
        spec = self.specs[name]
        return Rpc(spec["rpc_host"], spec["rpc_port"], spec["rpc_user"], spec["rpc_password"], timeout,
                   wallet=self.wallet if wallet else None)

    def hold(self, plans: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Give each node its fault plan; every node's container state here, and what failed."""
        found = node_containers(self.docker, self.network)
        held = holders(self.docker)
        failures = []
        for name, plan in plans.items():
            container = self.specs[name]["name"]
            try:
                reconcile(self.docker, dict(plan, network=self.network, node=name), found.get(container), held.get(container), False)
            except (DockerError, OSError) as error:
                failures.append(f"{name}: faults: {error}")
        return {"states": {name: (found.get(spec["name"]) or {}).get("State", "missing") for name, spec in self.specs.items()},
                "failures": failures}

    def kill(self, name: str) -> None:
        node = node_containers(self.docker, self.network).get(self.specs[name]["name"])
        if node is None:
            raise StepFailed(f"{name} has no container")
        kill(self.docker, node)

    def start(self, name: str) -> None:
        self.docker.request("POST", f"/containers/{self.specs[name]['name']}/start")

    def do(self, job: dict[str, Any]) -> Any:
        """A job from the conductor, on an agent's host."""
        if job["do"] != "hold" and job.get("node") not in self.specs:
            raise ValueError(f"{job['node']} is not a node of this host")
        if job["do"] == "rpc":
            rpc = self.rpc(job["node"], bool(job.get("wallet")), float(job.get("timeout", 30)))
            return rpc.call(str(job["method"]), *job.get("params", []))
        if job["do"] == "hold":
            return self.hold({name: plan for name, plan in job["plans"].items() if name in self.specs})
        if job["do"] == "kill":
            return self.kill(job["node"])
        if job["do"] == "start":
            return self.start(job["node"])
        raise ValueError(f"unknown job {job['do']!r}")


# An agent's failure comes back by its exception's name; the conductor raises the same kind.
_ERRORS: dict[str, type[Exception]] = {"RpcError": RpcError, "RpcUnavailable": RpcUnavailable, "RpcAuthError": RpcAuthError,
                                       "DockerError": DockerError, "StepFailed": StepFailed}


class RemoteHands:
    """Another Docker host's nodes, through its agent."""

    def __init__(self, hub: Hub, host: str) -> None:
        self.hub = hub
        self.host = host

    def ask(self, job: dict[str, Any], timeout: float, unreachable: type[Exception] = DockerError) -> Any:
        try:
            return self.hub.ask(self.host, job, timeout)
        except HubError as error:
            kind = _ERRORS.get(error.kind, unreachable)
            if issubclass(kind, RpcError):  # with its code: a caller tells "wallet not found" from the rest
                raise kind(f"{self.host}: {error}", error.code) from None
            raise kind(f"{self.host}: {error}") from None

    def rpc(self, name: str, wallet: bool, timeout: float) -> Rpc:
        return RemoteRpc(self, name, wallet, timeout)

    def hold(self, plans: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return self.ask({"do": "hold", "plans": plans}, 300.0)  # type: ignore[no-any-return]

    def kill(self, name: str) -> None:
        self.ask({"do": "kill", "node": name}, 60.0)

    def start(self, name: str) -> None:
        self.ask({"do": "start", "node": name}, 60.0)


class RemoteRpc(Rpc):
    """A node's RPC on another Docker host, called by its agent (the same answers and errors)."""

    def __init__(self, hands: RemoteHands, name: str, wallet: bool, timeout: float) -> None:  # pylint: disable=super-init-not-called
        self.where = f"{name} on {hands.host}"
        self._hands = hands
        self._job = {"do": "rpc", "node": name, "wallet": wallet, "timeout": timeout}
        self._timeout = timeout

    def call(self, method: str, *params: Any) -> Any:
        job = dict(self._job, method=method, params=plain(list(params)))
        return self._hands.ask(job, self._timeout + 10.0, RpcUnavailable)


STEPS: dict[str, Callable[[Run, Any], str]] = {}


def step(kind: str) -> Callable[[Callable[[Run, Any], str]], Callable[[Run, Any], str]]:
    """Register the handler of a kind of step: it acts, and says in a few words what happened."""
    def register(handler: Callable[[Run, Any], str]) -> Callable[[Run, Any], str]:
        STEPS[kind] = handler
        return handler
    return register


class Run:
    def __init__(self, params: dict[str, Any], hands: dict[str, LocalHands | RemoteHands], ways: dict[str, str]) -> None:
        """`params` are the scenario module's; `hands` act on each Docker host's nodes (by the host
        a node spec names, '' for this one), `ways` say how each host delays packets."""
        self.params = params
        self.t0 = time.monotonic()
        self.started = time.time()
        self.specs = {spec["node"]: spec for spec in params["nodes"]}
        self.names = list(self.specs)
        self.hands = hands
        self.ways = ways
        self.host_of = {name: spec.get("host") or "" for name, spec in self.specs.items()}
        self.topology = _faults.from_dicts(params["faults"])
        self.active: list[_faults.Fault] = []
        self.cleanup_failures: list[str] = []
        self.down: set[str] = set()
        self.lock = threading.Lock()
        self.chains = {name: NodeChain() for name in self.names}
        self.tips: dict[str, tuple[str, int]] = {}
        self.blocks: dict[str, dict[str, Any]] = {}
        self.reorgs: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.fault_log: list[dict[str, Any]] = []
        self.step_log: list[dict[str, Any]] = []
        self.max_tips = 1
        self.stop = threading.Event()
        scenario = params["scenario"]
        shares = {name: float(share) for name, share in params["shares"].items()}
        self.draw = Miners(shares, params["miners"] or self.names[:1], scenario.get("seed"))
        self.traffic = Traffic(self.names, self.rpc, params["wallet"], self.draw, Payments(self.names, seed=scenario.get("seed")))

    def at(self) -> float:
        return round(time.monotonic() - self.t0, 3)

    def rpc(self, name: str, wallet: bool = False, timeout: float = 30.0) -> Rpc:
        return self.hands[self.host_of[name]].rpc(name, wallet, timeout)

    # -- watching ------------------------------------------------------------------------------
    def faults(self) -> list[_faults.Fault]:
        return _faults.merge(self.topology, self.active)

    def live(self) -> list[str]:
        """Nodes that answer: not killed, not paused."""
        paused = _faults.paused(self.faults())
        return [name for name in self.names if name not in self.down and name not in paused]

    def watch(self, name: str) -> None:
        rpc = self.rpc(name, timeout=2.0)
        headers: dict[str, tuple[str, int]] = {}

        def parents(block: str) -> tuple[str, int]:
            if block not in headers:
                header = rpc.call("getblockheader", block)
                headers[block] = (header.get("previousblockhash", ""), int(header["height"]) - 1)
            return headers[block]

        while not self.stop.is_set():
            try:
                tip = rpc.call("getbestblockhash")
                if tip != self.chains[name].tip:
                    seen = self.at()
                    height = int(rpc.call("getblockheader", tip)["height"])
                    with self.lock:  # the chains are read together (competing branches)
                        chain = self.chains[name]
                        old, first = chain.tip, not chain.heights
                        joined, depth = connect(chain, tip, height, parents)
                        self.saw(name, seen, tip, height, old, [] if first else joined, depth)
            except RpcError:
                pass  # paused, killed or restarting: read again later
            self.stop.wait(self.params["poll"])

    def saw(self, name: str, seen: float, tip: str, height: int, old: str, joined: list[tuple[str, int]], depth: int) -> None:
        """Record a node's new tip (self.lock held)."""
        for block, block_height in joined:
            record = self.blocks.setdefault(block, {"hash": block, "first": seen, "arrivals": {}})
            record["height"] = block_height
            record["arrivals"].setdefault(name, seen)
            record["first"] = min(record["first"], seen)
        if depth:
            self.reorgs.append({"at": seen, "node": name, "depth": depth, "old_tip": old, "new_tip": tip})
        self.tips[name] = (tip, height)
        self.max_tips = max(self.max_tips, len(self.branches()))

    def branches(self) -> set[str]:
        """The tips of the competing chains the live nodes hold (self.lock held): a tip that another
        live node's chain passes through is behind, not competing."""
        live = [name for name in self.live() if name in self.tips]
        tips = {self.tips[name] for name in live}
        return {tip for tip, height in tips
                if not any(self.chains[other].heights.get(height) == tip and self.tips[other][1] > height for other in live)}

    def watch_alerts(self) -> None:
        url = self.params["observer_url"].rstrip("/") + "/state"
        seen: set[tuple[str, str, float]] = set()
        while not self.stop.is_set():
            try:
                state = json.loads(open_url(url, timeout=2).read())
                network = state.get(self.params["network"]) or {}
                raised = [(node, alert) for node, info in (network.get("nodes") or {}).items() for alert in info.get("alerts") or []]
                raised += [("network", alert) for alert in network.get("alerts") or []]  # fork: the network's, not a node's
                for node, alert in raised:
                    key = (node, alert["detector"], float(alert["time"]))
                    if key not in seen and float(alert["time"]) >= self.started - 1:
                        seen.add(key)
                        with self.lock:
                            self.alerts.append({"at": round(float(alert["time"]) - self.started, 3), "node": node,
                                                "detector": alert["detector"], "message": alert.get("message", "")})
            except (OSError, UrlError, ValueError, KeyError):
                pass  # the Observer restarting: ask again
            self.stop.wait(1.0)

    # -- acting --------------------------------------------------------------------------------
    def hold(self) -> None:
        """Give every node the faults in force now (the topology's and the scenario's), then close the
        links a partition cuts and reopen the others. Every node is tried; what failed, node by
        node, is raised together at the end (StepFailed)."""
        faults = self.faults()
        addresses = {name: spec.get("address") or spec["rpc_host"] for name, spec in self.specs.items()}
        plans: dict[str, dict[str, dict[str, Any]]] = {}
        for name in self.names:
            if name in self.down:
                continue
            way = self.ways.get(self.host_of[name]) or _faults.NETEM
            plan = _faults.node_plan(faults, name, addresses[name], addresses, self.params["p2p_port"], way)
            plans.setdefault(self.host_of[name], {})[name] = {"commands": plan.commands, "spec": plan.spec, "faults": list(plan.faults),
                                                              "pause": name in _faults.paused(faults)}
        failures: list[str] = []
        state: dict[str, str] = {}

        def hold_on(host: str) -> dict[str, Any] | str:
            try:
                return self.hands[host].hold(plans[host])
            except (DockerError, OSError) as error:
                return f"{host or 'this host'}: faults: {error}"

        with ThreadPoolExecutor(max_workers=max(1, len(plans))) as pool:  # every host at once: the two ends of a cut together
            for done in pool.map(hold_on, plans):
                if isinstance(done, str):
                    failures.append(done)
                    continue
                state.update(done["states"])
                failures += done["failures"]
        by_container = {spec["name"]: name for name, spec in self.specs.items()}
        stopped = [name for name in self.live() if state.get(name, "unknown") != "running"]
        failures += [f"{name}: its container is {state[name]} (stopped outside the scenario): its links are left to the next deploy"
                     for name in stopped if name in state]
        running = [name for name in self.live() if name not in stopped]
        reopened = {}
        for name in running:
            peers = self.specs[name]["peers"]
            cut = [peer for peer in peers if _faults.cut(faults, name, by_container.get(peer.rsplit(":", 1)[0], ""))]
            reachable = [peer for peer in peers if peer not in cut and by_container.get(peer.rsplit(":", 1)[0], "") in running]
            unheard = [addresses[other] for other, spec in self.specs.items()
                       if f"{self.specs[name]['name']}:{self.params['p2p_port']}" in spec["peers"] and _faults.cut(faults, other, name)]
            try:
                rpc = self.rpc(name)
                close(rpc, cut, unheard)
                todo = peer_plan(added(rpc), reachable, "present", exclusive=False)
                apply(rpc, todo)  # the links module's way: onetry first, so the added-node thread finds them made
                reopened[name] = (rpc, reachable)
            except (RpcError, OSError) as error:
                failures.append(f"{name}: links: {error}")
        for name, (rpc, reachable) in reopened.items():
            try:
                now = wait_connected(rpc, reachable, 30)
                drop_duplicates(rpc, reachable)
            except (RpcError, OSError) as error:
                failures.append(f"{name}: links: {error}")
                continue
            missing = [peer for peer in reachable if not now.get(peer)]
            if missing:
                failures.append(f"{name}: links: not connected to {', '.join(missing)} after 30 s")
        if failures:
            raise StepFailed("; ".join(failures))

    def note_fault(self, action: str, fault: _faults.Fault) -> None:
        with self.lock:
            self.fault_log.append({"at": self.at(), "action": action, "fault": fault.describe()})

    def mined(self, miner: str, block: str) -> None:
        now = self.at()
        with self.lock:
            record = self.blocks.setdefault(block, {"hash": block, "first": now, "arrivals": {}})
            record.update(miner=miner, ours=True)
            record["first"] = min(record["first"], now)

    def condition(self, body: dict[str, Any]) -> tuple[bool, str]:
        """Whether a wait's or an assertion's conditions hold now, and what was found."""
        with self.lock:
            tips = self.branches()
            agreed = len({tip for name, (tip, _height) in self.tips.items() if name in self.live()})
            heights = {name: height for name, (_tip, height) in self.tips.items() if name in self.live()}
            alerts = {alert["detector"] for alert in self.alerts}
            depth = max([reorg["depth"] for reorg in self.reorgs], default=0)
            unseen = sum(1 for record in self.blocks.values()
                         if record.get("ours") and not record["arrivals"] and record["first"] > self.at() - 2.0)
        found = []
        ok = True
        if body.get("agree"):
            # A block mined in the last 2 s that no watcher has seen yet: the nodes only seem to agree.
            ok &= agreed == 1 and len(heights) == len(self.live()) and not unseen
            found.append(f"{agreed} tip(s)" + (f", {unseen} block(s) mined and not seen yet" if unseen else ""))
        if "tips" in body:
            ok &= len(tips) == body["tips"]
            found.append(f"{len(tips)} competing tip(s)")
        if "height" in body:
            ok &= bool(heights) and min(heights.values()) >= body["height"]
            found.append(f"lowest height {min(heights.values(), default=-1)}")
        if "alert" in body and not self.params["observer_url"]:
            found.append(f"alert {body['alert']} not watched: no Observer (peerlab_monitoring off)")
        elif "alert" in body:
            ok &= body["alert"] in alerts
            found.append(f"alerts {', '.join(sorted(alerts)) or 'none'}")
        if "reorg" in body:
            ok &= body["reorg"].get("min_depth", 0) <= depth <= body["reorg"].get("max_depth", depth)
            found.append(f"deepest reorganisation {depth}")
        if "shares" in body:
            mined = list(self.traffic.mined)
            observed = {name: 100.0 * mined.count(name) / len(mined) for name in self.draw.names} if mined else {}
            gaps = {name: abs(observed.get(name, 0.0) - share) for name, share in self.draw.declared.items()}
            ok &= bool(mined) and max(gaps.values()) <= body["shares"]["within"]
            found.append("shares " + ", ".join(f"{name} {observed.get(name, 0.0):.1f}%" for name in self.draw.names))
        return bool(ok), "; ".join(dict.fromkeys(found))

    def execute(self) -> dict[str, Any]:
        watchers = [threading.Thread(target=self.watch, args=(name,), daemon=True) for name in self.names]
        if self.params["observer_url"]:
            watchers.append(threading.Thread(target=self.watch_alerts, daemon=True))
        for thread in watchers:
            thread.start()
        time.sleep(max(0.5, 3 * self.params["poll"]))  # every watcher has its starting tip
        error = ""
        for step in self.params["scenario"]["steps"]:
            began = self.at()
            ((kind, body),) = step.items()
            text = f"{kind} {json.dumps(body, sort_keys=True) if isinstance(body, dict) else body}"
            try:
                result = STEPS[kind](self, body)
                self.step_log.append({"at": began, "step": text, "seconds": round(self.at() - began, 3), "result": result, "ok": True})
            except Exception as failure:  # a failed step, or anything unforeseen: the cleanup and the report still come
                kind_of = "" if isinstance(failure, (StepFailed, RpcError, DockerError, ValueError)) else f"{failure.__class__.__name__}: "
                error = f"step {len(self.step_log)} ({text}): {kind_of}{failure}"
                took = round(self.at() - began, 3)
                self.step_log.append({"at": began, "step": text, "seconds": took, "result": str(failure), "ok": False})
                break
        self.cleanup_failures = self.cleanup()
        if self.cleanup_failures:  # said with the step that failed, if one did
            error = (f"{error}; " if error else "") + "cleanup: " + "; ".join(self.cleanup_failures)
        time.sleep(max(0.5, 3 * self.params["poll"]))
        self.stop.set()
        for thread in watchers:
            thread.join(timeout=5)
        return self.report(error)

    def cleanup(self) -> list[str]:
        """The scenario's faults go, killed nodes start again, cut links reopen (the topology's faults
        stay). Node by node: one that fails is reported, the others are still cleaned up."""
        for fault in self.active:
            self.note_fault("cleared", fault)
        self.active = []
        failures = []
        for name in sorted(self.down):
            try:
                self.hands[self.host_of[name]].start(name)
                self.rpc(name).wait_ready(120)
                self.down.discard(name)
            except (RpcError, DockerError, OSError) as error:
                failures.append(f"{name}: start: {error}")
        try:
            self.hold()
        except StepFailed as error:
            failures += str(error).split("; ")
        return failures

    def report(self, error: str) -> dict[str, Any]:
        with self.lock:
            final_chain = {block for chain in self.chains.values() for block in chain.heights.values()}
            blocks = []
            for record in sorted(self.blocks.values(), key=lambda r: (r["first"], r.get("height", 0))):
                if "height" not in record and not record.get("ours"):
                    continue
                # A block the scenario mined that no node held when its tip was read: replaced at once, stale.
                blocks.append({"hash": record["hash"], "height": record.get("height"), "miner": record.get("miner"),
                               "ours": bool(record.get("ours")), "at": record["first"],
                               "propagation": {node: round(seen - record["first"], 3) for node, seen in sorted(record["arrivals"].items())},
                               "stale": record["hash"] not in final_chain})
            report = {
                "name": self.params["scenario"]["name"], "description": self.params["scenario"].get("description", ""),
                "network": self.params["network"], "seed": self.params["scenario"].get("seed"),
                "started": self.started, "started_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started)),
                "seconds": self.at(), "ok": not error, "error": error, "nodes": self.names, "steps": self.step_log,
                "blocks": blocks, "reorgs": self.reorgs, "max_tips": self.max_tips, "faults": self.fault_log,
                "alerts": sorted(self.alerts, key=lambda alert: alert["at"]), "observer": bool(self.params["observer_url"]),
                "cleanup": list(self.cleanup_failures),
                "final": {name: {"hash": tip, "height": height} for name, (tip, height) in self.tips.items()},
            }
        return summarize(report, self.draw.declared)


@step("mine")
def _mine(run: Run, body: dict[str, Any]) -> str:
    run.traffic.ready([body["node"]] if body.get("node") else run.draw.names)
    for index in range(int(body.get("blocks", 1))):
        miner, block = run.traffic.mine(body.get("node"))
        run.mined(miner, block)
        if body.get("interval") and index + 1 < int(body.get("blocks", 1)):
            time.sleep(float(body["interval"]))
    return f"{body.get('blocks', 1)} block(s)"


@step("traffic")
def _traffic(run: Run, body: dict[str, Any]) -> str:
    if body.get("shares"):  # this step's hashrate shares (the report declares the last ones)
        shares = {name: float(share) for name, share in body["shares"].items()}
        run.draw = Miners(shares, None, run.params["scenario"].get("seed"))
        run.traffic.draw = run.draw
    run.traffic.payments = Payments(run.names, body.get("pairs"), body.get("fee_rates"), run.params["scenario"].get("seed"))
    run.traffic.ready()
    before = (len(run.traffic.mined), run.traffic.transactions)
    run.traffic.run(float(body.get("seconds", 0)), float(body.get("block_interval", 10)), float(body.get("tx_interval", 1)),
                    int(body.get("blocks", 0)), on_block=run.mined)
    return f"{len(run.traffic.mined) - before[0]} block(s), {run.traffic.transactions - before[1]} payment(s)"


@step("fault")
def _fault(run: Run, body: dict[str, Any]) -> str:
    fault = _faults.from_dicts([body])[0]
    run.active = [f for f in run.active if (f.kind, f.node, f.target) != (fault.kind, fault.node, fault.target)] + [fault]
    run.hold()
    run.note_fault("applied", fault)
    return fault.describe()


@step("clear")
def _clear(run: Run, body: str) -> str:
    gone = [f for f in run.active if body == "all" or f.kind == body]
    run.active = [f for f in run.active if f not in gone]
    run.hold()
    for fault in gone:
        run.note_fault("cleared", fault)
    return ", ".join(fault.describe() for fault in gone) or "nothing to clear"


@step("kill")
def _kill(run: Run, body: str) -> str:
    run.hands[run.host_of[body]].kill(body)
    run.down.add(body)
    run.note_fault("applied", _faults.Fault(kind="kill", node=body))
    return f"{body} killed"


@step("restart")
def _restart(run: Run, body: str) -> str:
    run.hands[run.host_of[body]].start(body)
    run.rpc(body).wait_ready(120)
    run.down.discard(body)
    run.hold()  # a new start has a new network namespace: its faults again, its links again
    run.note_fault("cleared", _faults.Fault(kind="kill", node=body))
    return f"{body} running"


@step("sleep")
def _sleep(run: Run, body: float) -> str:
    time.sleep(float(body))
    return f"{body:g} s"


@step("wait")
def _wait(run: Run, body: dict[str, Any]) -> str:
    deadline = time.monotonic() + float(body.get("timeout", DEFAULT_TIMEOUT))
    while True:
        ok, found = run.condition(body)
        if ok:
            return found
        if time.monotonic() > deadline:
            raise StepFailed(f"waited {float(body.get('timeout', DEFAULT_TIMEOUT)):g} s: {found}")
        time.sleep(0.1)


@step("assert")
def _assert(run: Run, body: dict[str, Any]) -> str:
    ok, found = run.condition(body)
    if not ok:
        raise StepFailed(f"assertion failed: {found}")
    return found
