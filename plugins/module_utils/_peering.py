# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Peer-link reconciliation: desired manual peers versus bitcoind's added-node list.

`plan`, `diff` and `unverified` are pure, so check mode, diff and the real run share one plan;
`apply`, `wait_connected` and `drop_duplicates` carry a plan out on anything with an
`call(method, *params)` (the RPC wrapper), for both the peer and the links modules.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ._rpc import RPC_CLIENT_NODE_ALREADY_ADDED, RPC_CLIENT_NODE_NOT_ADDED, RPC_CLIENT_NODE_NOT_CONNECTED, RpcError
from ._status import Caller


@dataclass
class PeerPlan:
    add: list[str] = field(default_factory=list)        # addnode add (and connect now)
    reconnect: list[str] = field(default_factory=list)  # added but not connected: connect now
    remove: list[str] = field(default_factory=list)     # addnode remove + disconnectnode

    @property
    def changed(self) -> bool:
        return bool(self.add or self.reconnect or self.remove)


def plan(added: dict[str, bool], peers: list[str], state: str, exclusive: bool) -> PeerPlan:
    """`added` maps each added-node address to whether it is connected now."""
    result = PeerPlan()
    wanted = list(dict.fromkeys(peers))
    if state == "present":
        result.add = [peer for peer in wanted if peer not in added]
        result.reconnect = [peer for peer in wanted if peer in added and not added[peer]]
        if exclusive:
            result.remove = sorted(peer for peer in added if peer not in wanted)
    else:
        result.remove = [peer for peer in wanted if peer in added]
    return result


def diff(added: dict[str, bool], result: PeerPlan) -> dict[str, str]:
    """before/after text in `address (state)` lines, the form --diff prints."""
    before = {peer: ("connected" if ok else "not connected") for peer, ok in added.items()}
    after = dict(before)
    for peer in result.remove:
        after.pop(peer, None)
    for peer in result.add + result.reconnect:
        after[peer] = "connected"

    def text(peers: dict[str, str]) -> str:
        return "".join(f"{peer} ({status})\n" for peer, status in sorted(peers.items()))

    return {"before": text(before), "after": text(after)}


def unverified(nodes: list[dict[str, Any]], states: dict[str, dict[str, Any]], tip: str | None = None) -> list[str]:
    """Links (and tips) not confirmed by getpeerinfo, one sentence each.

    `nodes` are {name, rpc_host, peers, address} as given to peerlab.bitcoin.links (`address`, the
    node's address as its peers see it, defaults to `rpc_host`); `states` map a node's name to its
    state with `peers` (getpeerinfo entries) and `bestblockhash`. A link must show as outbound at
    its source and, when its target is among `nodes`, as inbound from the source's address at the
    target.
    """
    by_name = {node["name"]: node for node in nodes}
    by_address = {node.get("address") or node["rpc_host"]: node["name"] for node in nodes}
    problems = []
    for node in nodes:
        peers = states.get(node["name"], {}).get("peers", [])
        outbound = {peer["addr"] for peer in peers if not peer["inbound"]}
        for address in node["peers"]:
            if address not in outbound:
                problems.append(f"{node['name']} -> {address}: not connected at {node['name']}")
                continue
            target = by_name.get(address.rsplit(":", 1)[0])
            if target is None:
                continue
            inbound = {by_address.get(peer["addr"].rsplit(":", 1)[0])
                       for peer in states.get(target["name"], {}).get("peers", []) if peer["inbound"]}
            if node["name"] not in inbound:
                problems.append(f"{node['name']} -> {address}: {target['name']} has no inbound link from {node['name']}")
    if tip:
        for node in nodes:
            state = states.get(node["name"], {})
            if state.get("bestblockhash") != tip:
                problems.append(f"{node['name']}: at height {state.get('blocks')} ({state.get('bestblockhash')}), not at {tip}")
    return problems


def added(rpc: Caller) -> dict[str, bool]:
    """bitcoind's added-node list: address -> connected now."""
    return {entry["addednode"]: bool(entry["connected"]) for entry in rpc.call("getaddednodeinfo")}


def _tolerating(rpc: Caller, code: int, method: str, *params: Any) -> None:
    try:
        rpc.call(method, *params)
    except RpcError as error:
        if error.code != code:
            raise


def apply(rpc: Caller, todo: PeerPlan) -> None:
    """Carry out a plan. New links are opened with `onetry` before `add`: the added-node thread
    then finds them connected, whereas `add` first races it into a duplicate connection."""
    for peer in todo.remove:
        _tolerating(rpc, RPC_CLIENT_NODE_NOT_ADDED, "addnode", peer, "remove")
        _tolerating(rpc, RPC_CLIENT_NODE_NOT_CONNECTED, "disconnectnode", peer)
    connected = {p["addr"] for p in rpc.call("getpeerinfo") if not p["inbound"]} if todo.add or todo.reconnect else set()
    for peer in todo.add + todo.reconnect:
        if peer not in connected:
            rpc.call("addnode", peer, "onetry")
    for peer in todo.add:
        _tolerating(rpc, RPC_CLIENT_NODE_ALREADY_ADDED, "addnode", peer, "add")


def cut_inbound(info: list[dict[str, Any]], inbound_from: list[str]) -> list[str]:
    """`from <address>` for each address of `inbound_from` with an inbound connection in getpeerinfo."""
    return [f"from {address}" for address in sorted({p["addr"].rsplit(":", 1)[0] for p in info if p["inbound"]} & set(inbound_from))]


def close(rpc: Caller, peers: list[str], inbound_from: list[str] | None = None) -> list[str]:
    """Close the links a fault cuts: the outbound connections to `peers`, and the inbound ones
    from the addresses `inbound_from` (a cut link's far end: the partition drops the closing
    side's FIN, so without this the far end lists the link until its own next send fails).
    What was closed: each outbound peer, and `from <address>` for each inbound one."""
    if not peers and not inbound_from:
        return []
    info = rpc.call("getpeerinfo")
    connected = sorted({p["addr"] for p in info if not p["inbound"] and p["addr"] in peers})
    for peer in connected:
        _tolerating(rpc, RPC_CLIENT_NODE_NOT_CONNECTED, "disconnectnode", peer)
    far = set(inbound_from or [])
    for peer in info:
        if peer["inbound"] and peer["addr"].rsplit(":", 1)[0] in far:
            _tolerating(rpc, RPC_CLIENT_NODE_NOT_CONNECTED, "disconnectnode", "", peer["id"])
    return connected + cut_inbound(info, inbound_from or [])


def wait_connected(rpc: Caller, peers: list[str], timeout: float, retry: float = 3.0) -> dict[str, bool]:
    """Poll until every peer is connected or the timeout passes; the last added-node list. A peer
    still not connected after `retry` seconds is tried again at once (a peer on another Docker host
    may have been starting): bitcoind itself tries an added node only about once a minute."""
    deadline = time.monotonic() + timeout
    again = time.monotonic() + retry
    while True:
        now = added(rpc)
        if all(now.get(peer) for peer in peers) or time.monotonic() > deadline:
            return now
        if time.monotonic() > again:
            for peer in peers:
                if not now.get(peer):
                    # Tried again at the next round, or reported when the wait ends.
                    with contextlib.suppress(RpcError):
                        rpc.call("addnode", peer, "onetry")
            again = time.monotonic() + retry
        time.sleep(0.1)


def drop_duplicates(rpc: Caller, peers: list[str]) -> list[str]:
    """Close all but the oldest outbound connection to each managed peer; the peers that had extras."""
    outbound = [p for p in rpc.call("getpeerinfo") if not p["inbound"] and p["addr"] in peers]
    extra = [peer for peer, count in Counter(p["addr"] for p in outbound).items() if count > 1]
    for peer in extra:
        for duplicate in sorted((p for p in outbound if p["addr"] == peer), key=lambda p: p["id"])[1:]:
            _tolerating(rpc, RPC_CLIENT_NODE_NOT_CONNECTED, "disconnectnode", "", duplicate["id"])
    return extra
