# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A regtest chain's blocks: mining on a node (in batches, counting what a slow answer still
mined), the tip a network must agree on, and how far a public-chain node has synced."""

from __future__ import annotations

import time
from typing import Any

from ._rpc import Rpc, RpcUnavailable, ensure_wallet

# Blocks per generatetoaddress call. Larger batches hold bitcoind's lock long enough to starve
# peers, and on a loaded machine (200 nodes on 2 cores) 50 blocks took longer than the RPC timeout.
BATCH = 10


def settled_height(rpc: Rpc, timeout: float) -> int:
    """The node's height once it answers and the height has not moved for two seconds."""
    deadline = time.monotonic() + timeout
    height = int(rpc.wait_ready(timeout)["blocks"])
    while time.monotonic() < deadline:
        time.sleep(2)
        now = int(rpc.call("getblockcount"))
        if now == height:
            break
        height = now
    return height


def mine_blocks(rpc: Rpc, count: int, start: int, address: str, patience: float) -> tuple[list[str], int]:
    """Mine `count` blocks from height `start` in batches: the hashes seen, and how many blocks
    were mined by calls that got no answer in time (the height says; nothing is mined twice)."""
    hashes: list[str] = []
    unseen = 0
    while len(hashes) + unseen < count:
        height = start + len(hashes) + unseen
        try:
            hashes.extend(rpc.call("generatetoaddress", min(BATCH, count - len(hashes) - unseen), address))
        except RpcUnavailable:
            # No answer within the RPC timeout: the node may still be mining that call's blocks.
            # Wait until it answers and its height holds still, count what it mined, go on.
            unseen += max(0, settled_height(rpc, patience) - height)
    return hashes, unseen


def mine(rpc: Rpc, wallet_rpc: Rpc, count: int, patience: float, wallet: str = "peerlab") -> dict[str, Any]:
    """Mine `count` blocks to a new address of the node's wallet (made if missing): {mined, hashes,
    height, tip, address}. Refuses a chain other than regtest."""
    chain = rpc.call("getblockchaininfo")
    if chain["chain"] != "regtest":
        raise ValueError(f"refusing to mine on {chain['chain']}: mining is for regtest networks")
    ensure_wallet(rpc, wallet)
    address = wallet_rpc.call("getnewaddress", "coinbase", "bech32")
    hashes, unseen = mine_blocks(rpc, count, chain["blocks"], address, patience)
    after = rpc.call("getblockchaininfo")
    return {"mined": len(hashes) + unseen, "hashes": hashes, "height": after["blocks"], "tip": after["bestblockhash"],
            "address": address}


def best_tip(states: dict[str, dict[str, Any]]) -> tuple[str, int]:
    """The highest node's tip and height among node states ('' and -1 when none answered)."""
    best, height = "", -1
    for state in states.values():
        if state.get("bestblockhash") and int(state.get("blocks", -1)) > height:
            best, height = str(state["bestblockhash"]), int(state["blocks"])
    return best, height


def sync_progress(state: dict[str, Any]) -> str:
    """`headers 880000, 12.34% verified, initial sync` for a public-chain node; '-' for regtest or unknown."""
    if state.get("chain") in (None, "regtest") or state.get("verificationprogress") is None:
        return "-"
    said = f"headers {state.get('headers', '?')}, {100 * float(state['verificationprogress']):.2f}% verified"
    return said + (", initial sync" if state.get("initialblockdownload") else "")


def summary_table(rows: list[dict[str, Any]]) -> str:
    """The table a deploy and `make status` print: one row per node, {node, host, address, state, ...}."""
    header = ("node", "host", "implementation", "address", "in", "out", "height", "tip", "sync")
    table: list[tuple[str, ...]] = [header]
    for row in sorted(rows, key=lambda item: str(item["node"])):
        state = row.get("state") or {}
        container = row.get("container_state") or "running"
        tip = str(state.get("bestblockhash", "-"))[:16] if state or container == "running" else f"({container})"
        table.append((str(row["node"]), str(row.get("host", "-")), str(row.get("implementation", "-")),
                      str(row.get("address") or "-"), str(state.get("connections_in", "-")), str(state.get("connections_out", "-")),
                      str(state.get("blocks", "-")), tip, sync_progress(state)))
    if all(line[-1] == "-" for line in table[1:]):
        table = [line[:-1] for line in table]
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in table)
