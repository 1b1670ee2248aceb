# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Background activity: a regtest network's steady payments and blocks, as a reconciled container.

A network's `activity:` (docs/experiments.md) is validated here, in the topology's words, and
becomes the configuration of the activity container (peerlab-activity-<network>, the collector's
image, images/collector/activity.py), which runs the same traffic code as `playbooks/traffic.yml`
(images/collector/lab/_traffic.py) until the deploy removes it. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KEYS = frozenset({"tx_per_second", "block_interval", "fee_rates", "pairs", "seed"})


@dataclass(frozen=True)
class Activity:
    tx_per_second: float = 1.0
    block_interval: float = 10.0                       # seconds; 0: no blocks
    fee_rates: tuple[float, float] | None = None       # sat/vB, each payment's drawn between them
    pairs: tuple[tuple[str, str], ...] = ()            # who pays whom; () every node pays every other
    seed: int | None = None


def parse(raw: object, nodes: list[str], chain: str, fail: Callable[[str, str], None], where: str) -> Activity | None:
    """A network's `activity:` -> Activity (None: none); every problem to `fail`."""
    if raw is None:
        return None
    at = f"{where}: activity"
    if not isinstance(raw, dict):
        fail(at, f"activity is a mapping (tx_per_second, block_interval, fee_rates, pairs, seed), got {raw!r}")
        return None
    problems = []

    def bad(message: str) -> None:
        problems.append(message)
        fail(at, message)

    if chain != "regtest":
        bad(f"activity is for regtest only; {chain} has its own transactions and blocks")
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        bad(f"unknown key '{unknown[0]}' (valid keys: {', '.join(sorted(KEYS))})")
    rate = raw.get("tx_per_second", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 50:
        bad(f"tx_per_second must be a number from 0 to 50, got {rate!r}")
    interval = raw.get("block_interval", 10.0)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not (interval == 0 or interval >= 0.5):
        bad(f"block_interval must be 0 (no blocks) or at least 0.5 seconds, got {interval!r}")
    fee_rates = raw.get("fee_rates")
    if fee_rates is not None and (not isinstance(fee_rates, list) or len(fee_rates) != 2
                                  or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 1 for x in fee_rates)
                                  or fee_rates[0] > fee_rates[1]):
        bad(f"fee_rates must be [lowest, highest] in sat/vB, each at least 1, got {fee_rates!r}")
    pairs = raw.get("pairs") or []
    if not isinstance(pairs, list) or not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
        bad(f"pairs must be a list of [payer, payee], got {pairs!r}")
        pairs = []
    for pair in pairs:
        for name in pair:
            if name not in nodes:
                bad(f"pairs: {name!r} is not a node of this network (nodes: {', '.join(nodes)})")
        if len(set(pair)) == 1:
            bad(f"pairs: {pair[0]} cannot pay itself")
    seed = raw.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        bad(f"seed must be a whole number, got {seed!r}")
    if problems:
        return None
    return Activity(tx_per_second=float(rate), block_interval=float(interval),
                    fee_rates=(float(fee_rates[0]), float(fee_rates[1])) if fee_rates else None,
                    pairs=tuple((str(a), str(b)) for a, b in pairs), seed=seed)


def config(activity: Activity, network: str, nodes: list[dict[str, Any]], shares: dict[str, float], miners: list[str],
           carbon: str, wallet: str = "peerlab", interval: float = 10.0) -> dict[str, Any]:
    """What the activity container runs with (its command line: nothing secret; each node's RPC
    cookie is read through the engine, as the collector reads it). `nodes`: name, container, rpc_port,
    cookie (path in the node's container)."""
    return {"network": network, "nodes": nodes, "wallet": wallet,
            "tx_interval": round(1.0 / activity.tx_per_second, 6) if activity.tx_per_second else 0.0,
            "block_interval": activity.block_interval, "fee_rates": list(activity.fee_rates) if activity.fee_rates else None,
            "pairs": [list(pair) for pair in activity.pairs] or None, "shares": shares or None, "miners": miners,
            "seed": activity.seed, "carbon": carbon, "prefix": f"peerlab.{network}.activity", "interval": interval}
