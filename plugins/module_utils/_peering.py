# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Peer-link reconciliation: desired manual peers versus bitcoind's added-node list.

Pure logic (no RPC here) so that check mode, diff and the real run share one plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
