# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who mines the next block, and who pays whom at which fee rate: seeded, so a run can be repeated.

Pure: the traffic module and the scenario module draw from these; the unit tests check that the
observed shares converge to the declared ones.
"""

from __future__ import annotations

import random
from typing import Any


class Miners:
    """Picks each block's miner with probability proportional to its hashrate share (seeded).

    `shares` maps a node to its share (any positive numbers); empty or None with `names` given
    means equal shares."""

    def __init__(self, shares: dict[str, float] | None, names: list[str] | None = None, seed: int | None = None) -> None:
        shares = dict(shares or {}) or {name: 1.0 for name in names or []}
        if not shares or any(share <= 0 for share in shares.values()):
            raise ValueError(f"miners need positive hashrate shares, got {shares!r}")
        total = float(sum(shares.values()))
        self.names = list(shares)
        self.weights = [shares[name] / total for name in self.names]
        self.random = random.Random(seed)

    @property
    def declared(self) -> dict[str, float]:
        """Each miner's declared share in percent."""
        return {name: round(100.0 * self.weights[index], 2) for index, name in enumerate(self.names)}

    def next(self) -> str:
        return self.random.choices(self.names, weights=self.weights)[0]


def observed(miners: list[str]) -> dict[str, float]:
    """Each miner's share in percent of the blocks listed (one entry per block: who mined it)."""
    counts: dict[str, int] = {}
    for miner in miners:
        counts[miner] = counts.get(miner, 0) + 1
    return {name: round(100.0 * count / len(miners), 2) for name, count in sorted(counts.items())} if miners else {}


class Payments:
    """Who pays whom, how much and at which fee rate (sat/vB), seeded.

    `pairs` are [payer, payee] pairs to draw from (empty: any node pays any other); `fee_rates` is
    [low, high] sat/vB drawn uniformly (empty: the wallet's own estimate)."""

    def __init__(self, names: list[str], pairs: list[list[str]] | None = None, fee_rates: list[float] | None = None,
                 seed: int | None = None) -> None:
        self.pairs = [tuple(pair) for pair in pairs or []] or [(a, b) for a in names for b in names if a != b] or [(n, n) for n in names]
        self.fee_rates = list(fee_rates or [])
        self.random = random.Random(None if seed is None else seed + 1)

    def next(self) -> dict[str, Any]:
        payer, payee = self.random.choice(self.pairs)
        payment: dict[str, Any] = {"payer": payer, "payee": payee, "amount": round(self.random.uniform(0.001, 0.05), 8)}
        if self.fee_rates:
            low, high = self.fee_rates[0], self.fee_rates[-1]
            payment["fee_rate"] = round(self.random.uniform(low, high), 3)
        return payment
