# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Link the nodes of a network and verify every link from both ends: the links module runs it
for a network's nodes on one Docker host, the portal's quick apply for a network on its own host.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

from ._peering import PeerPlan, added, apply, close, cut_inbound, drop_duplicates, plan, unverified, wait_connected
from ._rpc import Rpc, RpcError
from ._status import chain_and_peers, wait_for_tip

# The links module's defaults, for callers that give fewer settings.
DEFAULTS: dict[str, Any] = {"rpc_timeout": 30.0, "ready_timeout": 120.0, "link_timeout": 60.0, "wait_for_tip": None,
                            "tip_timeout": 120.0, "verify": True}


def _rpc(node: dict[str, Any], timeout: float) -> Rpc:
    return Rpc(node["rpc_host"], node["rpc_port"], node.get("rpc_user") or "peerlab", node["rpc_password"], timeout)


class LinkedNode:
    """One node's run: plan, apply, wait; each runs in its own thread with its own connection."""

    def __init__(self, spec: dict[str, Any], params: dict[str, Any], check_mode: bool) -> None:
        self.spec = spec
        self.params = params
        self.check_mode = check_mode
        self.rpc = _rpc(spec, params["rpc_timeout"]) if spec["rpc_host"] else None
        self.before: dict[str, bool] = {}
        self.plan = PeerPlan()
        self.result: dict[str, Any] = {}
        self.deduplicated: list[str] = []
        self.closed: list[str] = []
        self.reachable = [peer for peer in spec["peers"] if peer not in (spec.get("cut") or []) + (spec.get("frozen") or [])]

    @property
    def changed(self) -> bool:
        return self.plan.changed or bool(self.deduplicated) or bool(self.closed)

    def ready(self) -> None:
        if self.rpc is not None:
            self.rpc.wait_ready(self.params["ready_timeout"])

    def run(self) -> None:
        if self.rpc is None:
            self.plan = plan({}, self.spec["peers"], "present", exclusive=True)
            return
        self.before = added(self.rpc)
        self.plan = plan(self.before, self.spec["peers"], "present", exclusive=True)
        self.plan.reconnect = [peer for peer in self.plan.reconnect if peer in self.reachable]
        unheard = self.spec.get("unheard") or []
        self.closed = [peer for peer in self.spec.get("cut") or [] if self.before.get(peer)]
        if self.check_mode:
            self.closed += cut_inbound(self.rpc.call("getpeerinfo"), unheard) if unheard else []
            return
        apply(self.rpc, self.plan)
        self.closed = close(self.rpc, self.spec.get("cut") or [], unheard)
        wait_connected(self.rpc, self.reachable, self.params["link_timeout"])
        self.deduplicated = drop_duplicates(self.rpc, self.reachable)
        if self.params["wait_for_tip"]:
            wait_for_tip(self.rpc, self.params["wait_for_tip"], self.params["tip_timeout"])

    def read(self) -> None:
        if self.rpc is not None:
            chain = self.rpc.call("getblockchaininfo")
            self.result = dict(chain_and_peers(chain, self.rpc.call("getpeerinfo")), addednodes=added(self.rpc))


def each(nodes: list[LinkedNode], step: str) -> list[str]:
    """Run one step on every node at once; the failures, one per node."""
    failures = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(32, max(1, len(nodes)))) as pool:
        for node, future in [(node, pool.submit(getattr(node, step))) for node in nodes]:
            try:
                future.result()
            except RpcError as error:
                failures.append(f"{node.spec['name']}: {error}")
            except Exception as error:  # every failure names its node, no traceback
                failures.append(f"{node.spec['name']}: {step} failed on an unexpected answer ({error.__class__.__name__}: {error}); "
                                "check the node's log (docker logs) and report this with the node's version")
    return failures


def verified(nodes: list[LinkedNode], params: dict[str, Any], settle: float = 5.0) -> list[str]:
    """Read every node after all have linked and check each link at both ends. A link's far end
    registers its inbound side a moment after the near end sees it connected: re-read for up to
    `settle` seconds before calling a link missing."""
    deadline = time.monotonic() + settle
    while True:
        failures = each(nodes, "read")
        reachable = [dict(node.spec, peers=node.reachable) for node in nodes]
        problems = failures or unverified(reachable, {node.spec["name"]: node.result for node in nodes},
                                          params["wait_for_tip"] if params["verify"] else None)
        if not params["verify"] and not failures:
            return []
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.2)


def link(specs: list[dict[str, Any]], params: dict[str, Any], check_mode: bool = False) -> tuple[list[LinkedNode], list[str], list[str]]:
    """Plan, apply and wait on every node at once, then verify: the nodes' runs, the failures (a
    node that did not answer) and the links not verified."""
    params = {**DEFAULTS, **params}
    nodes = [LinkedNode(spec, params, check_mode) for spec in specs]
    # Every node answers first: a link opened to a bitcoind still starting fails, and bitcoind
    # tries an added node again only about once a minute.
    failures = each(nodes, "ready") or each(nodes, "run")
    problems = [] if failures else verified(nodes, params, settle=0.0 if check_mode else 5.0)
    return nodes, failures, problems
