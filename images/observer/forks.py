"""A network's recent block tree, from its nodes' own tips (the portal's fork view; docs/portal.md).

bitcoind logs `UpdateTip: new best=<hash> height=<n>` for each block it connects and, with the
parent as the new best, for each block it disconnects (a reorganisation walks back to the fork
point, then forward on the other branch). The collector turns each line into a `block` event. So a
node's successive tips give every block's parent, with no RPC call:
  - a tip one higher than the node's previous one is its child;
  - a tip one lower is its parent (a disconnect: a reorganisation has begun);
and a node's first connect after disconnects ends its reorganisation, reported once as a `reorg`
event (the old tip, the fork point, the first block of the new branch, the depth).

A poll (the node's RPC every collector interval) gives the node's tip when a log line was missed
(a collector that started late): such a block is kept without a parent until a node connects a
child onto it or moves from it. Only the last `keep` heights below the highest block are kept.
Pure: unit-tested (tests/unit/test_forks.py).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Block:
    hash: str
    height: int
    seen: float  # when a node first took it as its tip
    parent: str | None = None
    miner: str | None = None  # the node whose log says it mined it


@dataclass
class Tip:
    hash: str
    height: int
    time: float  # of the event that said so (the collector's clock on the node's host)


@dataclass
class BlockTree:
    keep: int = 100  # heights kept below the highest block
    limit: int = 5000  # blocks kept at most (many branches at once: the oldest heights go first)
    blocks: dict[str, Block] = field(default_factory=dict)
    tips: dict[str, Tip] = field(default_factory=dict)  # each node's latest tip, from its log or its poll
    # Each node's latest tip from its log alone: the next block event's parent or child. A poll can
    # answer with a tip before the log line of it is read; such a tip says nothing of parents.
    logged: dict[str, Tip] = field(default_factory=dict)
    # A reorganisation under way: node -> the tip it left (hash, height) and the time it began.
    leaving: dict[str, tuple[str, int, float]] = field(default_factory=dict)
    reorgs: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))

    def block(self, node: str, block: str, height: int, when: float, mined: bool = False) -> dict[str, Any] | None:
        """A node took `block` as its tip (a `block` event). Returns the node's finished
        reorganisation (old tip, fork point, new branch's first block, depth) when this ends one."""
        entry = self._add(block, height, when)
        if mined:
            entry.miner = node
        previous = self.logged.get(node)
        finished = None
        if previous is not None and previous.hash != block:
            if height == previous.height + 1:
                entry.parent = previous.hash
                if node in self.leaving:
                    old, old_height, began = self.leaving.pop(node)
                    finished = {"node": node, "time": when, "began": began, "old": old, "old_height": old_height,
                                "fork": previous.hash, "fork_height": previous.height, "hash": block, "height": height,
                                "depth": old_height - previous.height}
                    self.reorgs.append(finished)
            elif height == previous.height - 1:
                left = self.blocks.get(previous.hash)
                if left is not None:
                    left.parent = block
                self.leaving.setdefault(node, (previous.hash, previous.height, when))
            else:  # a jump (lines missed, or a node made anew): nothing is known of how the two join
                self.leaving.pop(node, None)
        self.tips[node] = self.logged[node] = Tip(block, height, when)
        self._prune()
        return finished

    def poll(self, node: str, block: str, height: int, when: float) -> None:
        """A node's tip as its RPC answered at `when`: shown when no block event said more since
        (the log's own order still gives the parents)."""
        previous = self.tips.get(node)
        if previous is not None and (previous.time >= when or previous.hash == block):
            return
        self._add(block, height, when)
        if node not in self.leaving:
            self.tips[node] = Tip(block, height, when)
        self._prune()

    def forget(self, nodes: set[str]) -> None:
        """Nodes no longer in the network's configuration."""
        for node in (set(self.tips) | set(self.logged)) - nodes:
            self.tips.pop(node, None)
            self.logged.pop(node, None)
            self.leaving.pop(node, None)

    def _add(self, block: str, height: int, when: float) -> Block:
        entry = self.blocks.get(block)
        if entry is None:
            entry = self.blocks[block] = Block(block, height, when)
        entry.seen = min(entry.seen, when)
        return entry

    def _prune(self) -> None:
        if not self.blocks:
            return
        top = max(entry.height for entry in self.blocks.values())
        floor = top - self.keep
        if len(self.blocks) > self.limit:
            heights = sorted((entry.height for entry in self.blocks.values()), reverse=True)
            floor = max(floor, heights[self.limit - 1])
        for block in [block for block, entry in self.blocks.items() if entry.height < floor]:
            del self.blocks[block]

    def view(self, heights: int = 30, reorgs: int = 10) -> dict[str, Any]:
        """What the portal draws: the blocks of the last `heights` heights (each with its parent,
        miner and the nodes whose tip it is), every node's tip, the latest reorganisations."""
        if not self.blocks:
            return {"blocks": [], "tips": {}, "reorgs": []}
        top = max(entry.height for entry in self.blocks.values())
        shown = [entry for entry in self.blocks.values() if entry.height > top - heights]
        return {"blocks": [{"hash": entry.hash, "height": entry.height, "parent": entry.parent, "miner": entry.miner,
                            "seen": round(entry.seen, 3)} for entry in sorted(shown, key=lambda item: (item.height, item.seen))],
                "tips": {node: {"hash": tip.hash, "height": tip.height} for node, tip in sorted(self.tips.items())},
                "reorgs": list(self.reorgs)[-reorgs:]}
