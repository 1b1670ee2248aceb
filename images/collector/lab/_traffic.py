# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Regtest blocks and payments on a set of nodes: what the traffic module and scenarios share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ._rpc import Rpc, RpcError, ensure_wallet
from ._schedule import Miners, Payments


class Traffic:
    """The nodes' wallets and a mining address each; blocks drawn by share, payments by pair and fee rate.

    `rpc(name, wallet)` gives a fresh RPC client for a node (one per thread)."""

    def __init__(self, names: list[str], rpc: Callable[[str, bool], Rpc], wallet: str, draw: Miners, payments: Payments) -> None:
        self.names = names
        self.rpc = rpc
        self.wallet = wallet
        self.draw = draw
        self.payments = payments
        self.addresses: dict[str, str] = {}
        self.mined: list[str] = []
        self.transactions = 0
        self.failed = 0

    def ready(self, names: list[str] | None = None) -> None:
        """Refuse any chain but regtest; give every node (or `names`) a wallet and a mining address."""
        for name in names or self.names:
            chain = self.rpc(name, False).call("getblockchaininfo")["chain"]
            if chain != "regtest":
                raise RpcError(f"refusing to mine or pay on {chain} ({name}): traffic is for regtest")
            ensure_wallet(self.rpc(name, False), self.wallet)
            if name not in self.addresses:
                self.addresses[name] = self.rpc(name, True).call("getnewaddress", "traffic", "bech32")

    def mine(self, miner: str | None = None) -> tuple[str, str]:
        """One block on `miner` (else drawn by share); (miner, block hash)."""
        miner = miner or self.draw.next()
        if miner not in self.addresses:
            self.ready([miner])
        (block,) = self.rpc(miner, False).call("generatetoaddress", 1, self.addresses[miner])
        self.mined.append(miner)
        return miner, block

    def pay(self) -> None:
        """One payment; a payer without funds yet hands over to the richest wallet (not an error if none can)."""
        payment = self.payments.next()
        payer, payee, amount = payment["payer"], payment["payee"], payment["amount"]
        try:
            for name in (payer, payee):
                if name not in self.addresses:
                    self.ready([name])
            wallets = {name: self.rpc(name, True) for name in self.addresses}
            if wallets[payer].call("getbalance") <= amount + 0.001:
                payer = max(wallets, key=lambda name: wallets[name].call("getbalance"))
            # sendtoaddress address amount comment comment_to subtractfee replaceable conf_target estimate_mode avoid_reuse fee_rate
            extra = [None, None, None, None, None, "unset", None, payment["fee_rate"]] if "fee_rate" in payment else []
            wallets[payer].call("sendtoaddress", self.addresses[payee], amount, *extra)
            self.transactions += 1
        except RpcError:
            self.failed += 1  # no mature coins yet, or a chain of unconfirmed payments too long

    def run(self, seconds: float, block_interval: float, tx_interval: float, blocks: int = 0,
            on_block: Callable[[str, str], Any] | None = None) -> None:
        """Blocks every `block_interval` s and payments every `tx_interval` s (0: none) for `seconds`
        or until `blocks` blocks (whichever comes first; 0 seconds with blocks: until the blocks)."""
        start = time.monotonic()
        limit = seconds if seconds > 0 else (float("inf") if blocks else 0.0)
        next_block = start if block_interval > 0 else float("inf")
        next_tx = start if tx_interval > 0 else float("inf")
        made = 0
        while time.monotonic() - start < limit and not (blocks and made >= blocks):
            now = time.monotonic()
            if now >= next_block:
                miner, block = self.mine()
                made += 1
                if on_block:
                    on_block(miner, block)
                next_block += block_interval
            if now >= next_tx:
                self.pay()
                next_tx += tx_interval
            wake = min(next_block, next_tx)
            if wake == float("inf"):
                return
            time.sleep(max(0.0, wake - time.monotonic()))
