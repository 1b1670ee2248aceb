# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A node's state as peerlab reports it, shared by the node_info and links modules."""

from __future__ import annotations

import time
from typing import Any, Protocol

PEER_FIELDS = ("id", "addr", "inbound", "connection_type", "network", "pingtime", "minping",
               "synced_blocks", "subver", "conntime", "bytessent", "bytesrecv")


class Caller(Protocol):
    def call(self, method: str, *params: Any) -> Any: ...


def chain_and_peers(chain: dict[str, Any], peers: list[dict[str, Any]]) -> dict[str, Any]:
    """Chain tip, sync progress and peers (in/out counts, each peer trimmed to what identifies the link)."""
    return {
        "chain": chain["chain"],
        "blocks": chain["blocks"],
        "bestblockhash": chain["bestblockhash"],
        "headers": chain.get("headers"),
        "verificationprogress": chain.get("verificationprogress"),
        "initialblockdownload": chain.get("initialblockdownload"),
        "connections_in": sum(1 for peer in peers if peer["inbound"]),
        "connections_out": sum(1 for peer in peers if not peer["inbound"]),
        "peers": [{key: peer.get(key) for key in PEER_FIELDS} for peer in peers],
    }


def wait_for_tip(rpc: Caller, tip: str, timeout: float) -> dict[str, Any]:
    """Poll getblockchaininfo until the best block is `tip` or the timeout passes; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        chain: dict[str, Any] = rpc.call("getblockchaininfo")
        if chain["bestblockhash"] == tip or time.monotonic() > deadline:
            return chain
        time.sleep(0.05)
