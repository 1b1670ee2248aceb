"""Mining in batches survives a call that gets no answer in time, and mines nothing twice."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _chain as mine
from ansible_collections.peerlab.bitcoin.plugins.module_utils._rpc import RpcUnavailable


class SlowNode:
    """A regtest node whose second generatetoaddress call mines its blocks but answers too late."""

    def __init__(self) -> None:
        self.height = 0
        self.calls: list[int] = []

    def call(self, method: str, *args: Any) -> Any:
        if method == "generatetoaddress":
            count = args[0]
            self.calls.append(count)
            mined = [f"h{self.height + i + 1}" for i in range(count)]
            self.height += count
            if len(self.calls) == 2:
                raise RpcUnavailable("generatetoaddress: no answer within 30s (node hung or overloaded)")
            return mined
        if method == "getblockcount":
            return self.height
        raise AssertionError(method)

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        return {"blocks": self.height}


def test_a_late_answer_counts_the_blocks_the_height_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mine.time, "sleep", lambda seconds: None)
    node = SlowNode()
    hashes, unseen = mine.mine_blocks(node, 101, 0, "bcrt1q", 120)  # type: ignore[arg-type]
    assert node.height == 101, "exactly the blocks asked for, none twice"
    assert unseen == 10 and len(hashes) == 91 and node.calls == [10] * 10 + [1]
