#!/usr/bin/python
# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: scenario
short_description: Run a scenario's timeline on one regtest network and report what the chain did
version_added: 0.5.0
description:
  - Runs the steps of a scenario (validated by C(plugins/module_utils/_scenario.py)) on the nodes of
    one network on this Docker host - mine (by hashrate share or on a node), traffic, fault and
    clear, kill and restart, wait for a condition, assert, sleep - while watching every node's tip
    (every O(poll) seconds) and, with O(observer_url), the Observer's alerts.
  - Returns the report, which holds per block who mined it and when each node had it, the forks and
    reorganisations with their depth, observed against declared mining shares, the faults applied
    and cleared and when, and the alerts raised. Faults go through the same fault holders as
    M(peerlab.bitcoin.faults).
  - At the end, passed or not, the scenario's faults are cleared (the topology's stay), killed nodes
    are started again and links the faults cut are reopened.
author: peerlab developers (@peerlab)
attributes:
  check_mode:
    support: none
    description: A scenario acts on the nodes; there is nothing to plan.
  diff_mode:
    support: none
    description: Nothing to compare.
  idempotent:
    support: none
    description: Each run mines blocks.
options:
  nodes:
    description: The network's nodes.
    type: list
    elements: dict
    required: true
    suboptions:
      node:
        description: The node's name in its network.
        type: str
        required: true
      name:
        description: Its container.
        type: str
        required: true
      rpc_host:
        description: Address of its RPC; empty - read from the Docker engine.
        type: str
        default: ""
      swarm:
        description: Whether it runs as a Swarm service.
        type: bool
        default: false
      network:
        description: Its network (the same as O(network); its Docker network is peerlab-<network>).
        type: str
        default: ""
      rpc_port:
        description: RPC port.
        type: int
        required: true
      rpc_user:
        description: RPC user.
        type: str
        default: peerlab
      rpc_password:
        description: RPC password.
        type: str
        required: true
      address:
        description: Its address as its peers see it (default O(nodes[].rpc_host)).
        type: str
      peers:
        description: Its outbound peers as C(container:port).
        type: list
        elements: str
        default: []
  network:
    description: The network's name.
    type: str
    required: true
  p2p_port:
    description: The chain's P2P port.
    type: int
    required: true
  faults:
    description: The topology's faults (they stay; the scenario's come and go).
    type: list
    elements: dict
    default: []
  shares:
    description: Hashrate shares of the miners by node name (equal shares of O(miners) when empty).
    type: dict
    default: {}
  miners:
    description: The topology's miners by node name.
    type: list
    elements: str
    default: []
  scenario:
    description: The validated scenario (name, description, network, seed, steps).
    type: dict
    required: true
  observer_url:
    description: The Observer's HTTP address (its /state lists alerts); empty - no alerts in the report.
    type: str
    default: ""
  poll:
    description: Seconds between two reads of every node's tip.
    type: float
    default: 0.1
  wallet:
    description: Wallet name on every node.
    type: str
    default: peerlab
  docker_socket:
    description: The Docker Engine's Unix socket.
    type: str
    default: /var/run/docker.sock
requirements:
  - Python 3.9 or later on the Docker host (standard library only)
"""

EXAMPLES = r"""
- name: Split brain
  peerlab.bitcoin.scenario:
    nodes: "{{ scenario_nodes }}"
    network: lab
    p2p_port: 18444
    scenario: "{{ checked_scenario }}"
  register: run
"""

RETURN = r"""
report:
  description: The report (docs/experiments.md describes every key).
  returned: always
  type: dict
markdown:
  description: The report as Markdown.
  returned: always
  type: str
"""

import json
import socket
import threading
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import ConnectionError as UrlError
from ansible.module_utils.urls import open_url

from ..module_utils import _faults
from ..module_utils._access import resolve
from ..module_utils._docker import Docker, DockerError
from ..module_utils._netfault import delay_probe, holders, kill, node_containers, reconcile
from ..module_utils._peering import added, apply, close, drop_duplicates, wait_connected
from ..module_utils._peering import plan as peer_plan
from ..module_utils._rpc import Rpc, RpcError
from ..module_utils._scenario import DEFAULT_TIMEOUT, NodeChain, connect, markdown, summarize
from ..module_utils._schedule import Miners, Payments
from ..module_utils._traffic import Traffic


class StepFailed(Exception):
    """A wait that timed out or an assertion that did not hold."""


class Run:
    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.t0 = time.monotonic()
        self.started = time.time()
        self.specs = {spec["node"]: spec for spec in params["nodes"]}
        self.names = list(self.specs)
        self.docker = Docker(params["docker_socket"])
        self.topology = _faults.from_dicts(params["faults"])
        self.active: list[_faults.Fault] = []
        self.delay_way = params.get("delay_way") or _faults.NETEM
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
        spec = self.specs[name]
        return Rpc(spec["rpc_host"], spec["rpc_port"], spec["rpc_user"], spec["rpc_password"], timeout,
                   wallet=self.params["wallet"] if wallet else None)

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
        found = node_containers(self.docker, self.params["network"])
        held = holders(self.docker)
        failures: list[str] = []
        for name, spec in self.specs.items():
            if name in self.down:
                continue
            plan = _faults.node_plan(faults, name, addresses[name], addresses, self.params["p2p_port"], self.delay_way)
            try:
                reconcile(self.docker, {"network": self.params["network"], "node": name, "commands": plan.commands, "spec": plan.spec,
                                        "faults": list(plan.faults), "pause": name in _faults.paused(faults)},
                          found.get(spec["name"]), held.get(spec["name"]), False)
            except (DockerError, OSError) as error:
                failures.append(f"{name}: faults: {error}")
        by_container = {spec["name"]: name for name, spec in self.specs.items()}
        state = {name: (found.get(spec["name"]) or {}).get("State", "missing") for name, spec in self.specs.items()}
        stopped = [name for name in self.live() if state[name] != "running"]
        failures += [f"{name}: its container is {state[name]} (stopped outside the scenario): its links are left to the next deploy"
                     for name in stopped]
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

    def step(self, step: dict[str, Any]) -> str:
        ((kind, body),) = step.items()
        if kind == "mine":
            self.traffic.ready([body["node"]] if body.get("node") else self.draw.names)
            for index in range(int(body.get("blocks", 1))):
                miner, block = self.traffic.mine(body.get("node"))
                self.mined(miner, block)
                if body.get("interval") and index + 1 < int(body.get("blocks", 1)):
                    time.sleep(float(body["interval"]))
            return f"{body.get('blocks', 1)} block(s)"
        if kind == "traffic":
            if body.get("shares"):  # this step's hashrate shares (the report declares the last ones)
                shares = {name: float(share) for name, share in body["shares"].items()}
                self.draw = Miners(shares, None, self.params["scenario"].get("seed"))
                self.traffic.draw = self.draw
            self.traffic.payments = Payments(self.names, body.get("pairs"), body.get("fee_rates"), self.params["scenario"].get("seed"))
            self.traffic.ready()
            before = (len(self.traffic.mined), self.traffic.transactions)
            self.traffic.run(float(body.get("seconds", 0)), float(body.get("block_interval", 10)), float(body.get("tx_interval", 1)),
                             int(body.get("blocks", 0)), on_block=self.mined)
            return f"{len(self.traffic.mined) - before[0]} block(s), {self.traffic.transactions - before[1]} payment(s)"
        if kind == "fault":
            fault = _faults.from_dicts([body])[0]
            self.active = [f for f in self.active if (f.kind, f.node, f.target) != (fault.kind, fault.node, fault.target)] + [fault]
            self.hold()
            self.note_fault("applied", fault)
            return fault.describe()
        if kind == "clear":
            gone = [f for f in self.active if body == "all" or f.kind == body]
            self.active = [f for f in self.active if f not in gone]
            self.hold()
            for fault in gone:
                self.note_fault("cleared", fault)
            return ", ".join(fault.describe() for fault in gone) or "nothing to clear"
        if kind == "kill":
            node = node_containers(self.docker, self.params["network"]).get(self.specs[body]["name"])
            if node is None:
                raise StepFailed(f"{body} has no container")
            kill(self.docker, node)
            self.down.add(body)
            self.note_fault("applied", _faults.Fault(kind="kill", node=body))
            return f"{body} killed"
        if kind == "restart":
            self.docker.request("POST", f"/containers/{self.specs[body]['name']}/start")
            self.rpc(body).wait_ready(120)
            self.down.discard(body)
            self.hold()  # a new start has a new network namespace: its faults again, its links again
            self.note_fault("cleared", _faults.Fault(kind="kill", node=body))
            return f"{body} running"
        if kind == "sleep":
            time.sleep(float(body))
            return f"{body:g} s"
        if kind == "wait":
            deadline = time.monotonic() + float(body.get("timeout", DEFAULT_TIMEOUT))
            while True:
                ok, found = self.condition(body)
                if ok:
                    return found
                if time.monotonic() > deadline:
                    raise StepFailed(f"waited {float(body.get('timeout', DEFAULT_TIMEOUT)):g} s: {found}")
                time.sleep(0.1)
        ok, found = self.condition(body)  # assert
        if not ok:
            raise StepFailed(f"assertion failed: {found}")
        return found

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
                result = self.step(step)
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
                self.docker.request("POST", f"/containers/{self.specs[name]['name']}/start")
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


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            nodes=dict(type="list", elements="dict", required=True, options=dict(
                node=dict(type="str", required=True),
                name=dict(type="str", required=True),
                rpc_host=dict(type="str", default=""),
                swarm=dict(type="bool", default=False),
                network=dict(type="str", default=""),
                rpc_port=dict(type="int", required=True),
                rpc_user=dict(type="str", default="peerlab"),
                rpc_password=dict(type="str", required=True, no_log=True),
                address=dict(type="str"),
                peers=dict(type="list", elements="str", default=[]),
            )),
            network=dict(type="str", required=True),
            p2p_port=dict(type="int", required=True),
            faults=dict(type="list", elements="dict", default=[]),
            shares=dict(type="dict", default={}),
            miners=dict(type="list", elements="str", default=[]),
            scenario=dict(type="dict", required=True),
            observer_url=dict(type="str", default=""),
            poll=dict(type="float", default=0.1),
            wallet=dict(type="str", default="peerlab"),
            docker_socket=dict(type="str", default="/var/run/docker.sock"),
        ),
        supports_check_mode=False,
    )
    for node in module.params["nodes"]:
        node["network"] = module.params["network"]
    missing = resolve(Docker(module.params["docker_socket"]), module.params["nodes"])
    if missing:
        module.fail_json(msg="the scenario needs every node of its network running: " + "; ".join(missing))
    latency = [step["fault"] for step in module.params["scenario"]["steps"]
               if isinstance(step.get("fault"), dict) and step["fault"].get("kind") == "latency"]
    if latency or _faults.latency(_faults.from_dicts(module.params["faults"])):
        docker = Docker(module.params["docker_socket"])
        images = [entry["Image"] for entry in node_containers(docker, module.params["network"]).values()]
        module.params["delay_way"], refusal = delay_probe(docker, images[0], socket.gethostname())
        if refusal:
            module.fail_json(msg=refusal)
    try:
        run = Run(module.params)
    except ValueError as error:
        module.fail_json(msg=str(error))
    report = run.execute()
    text = markdown(report)
    if not report["ok"]:
        module.fail_json(msg=f"scenario '{report['name']}' failed at {report['error']}", report=report, markdown=text, changed=True)
    module.exit_json(changed=True, report=report, markdown=text)


if __name__ == "__main__":
    main()
