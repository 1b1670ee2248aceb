"""The peer module's plan: add, reconnect, remove, and the diff --diff prints."""

from __future__ import annotations

from typing import Any

from ansible_collections.peerlab.bitcoin.plugins.module_utils._peering import (
    apply,
    close,
    cut_inbound,
    diff,
    drop_duplicates,
    plan,
    unverified,
)


def test_nothing_to_do_when_links_are_up() -> None:
    result = plan({"b:1": True}, ["b:1"], "present", exclusive=True)
    assert not result.changed


def test_missing_down_and_extra_links() -> None:
    result = plan({"b:1": False, "c:1": True}, ["a:1", "b:1"], "present", exclusive=True)
    assert (result.add, result.reconnect, result.remove) == (["a:1"], ["b:1"], ["c:1"])


def test_not_exclusive_keeps_other_links() -> None:
    assert plan({"c:1": True}, ["a:1"], "present", exclusive=False).remove == []


def test_absent_removes_only_listed_added_links() -> None:
    result = plan({"b:1": True, "c:1": True}, ["b:1", "z:1"], "absent", exclusive=False)
    assert (result.add, result.remove) == ([], ["b:1"])


def test_diff_shows_before_and_after() -> None:
    added = {"b:1": True, "c:1": True}
    shown = diff(added, plan(added, ["a:1", "b:1"], "present", exclusive=True))
    assert shown == {"before": "b:1 (connected)\nc:1 (connected)\n", "after": "a:1 (connected)\nb:1 (connected)\n"}


NODES = [{"name": "a", "rpc_host": "10.0.0.1", "peers": ["b:18444"]}, {"name": "b", "rpc_host": "10.0.0.2", "peers": []}]


def test_a_link_seen_from_both_ends_is_verified() -> None:
    states = {"a": {"peers": [{"addr": "b:18444", "inbound": False}]},
              "b": {"peers": [{"addr": "10.0.0.1:51000", "inbound": True}]}}
    assert unverified(NODES, states) == []


def test_each_missing_end_is_named() -> None:
    states: dict[str, dict[str, Any]] = {"a": {"peers": [{"addr": "b:18444", "inbound": False}]}, "b": {"peers": []}}
    assert unverified(NODES, states) == ["a -> b:18444: b has no inbound link from a"]
    assert unverified(NODES, {}) == ["a -> b:18444: not connected at a"]


def test_a_node_off_the_tip_is_named() -> None:
    states = {"a": {"peers": [{"addr": "b:18444", "inbound": False}], "bestblockhash": "t", "blocks": 5},
              "b": {"peers": [{"addr": "10.0.0.1:1", "inbound": True}], "bestblockhash": "s", "blocks": 4}}
    assert unverified(NODES, states, tip="t") == ["b: at height 4 (s), not at t"]


class Recorder:
    """Answers getpeerinfo from a fixed list and records every other call, in order."""

    def __init__(self, peers: list[dict[str, Any]]) -> None:
        self.peers = peers
        self.calls: list[tuple[Any, ...]] = []

    def call(self, method: str, *params: Any) -> Any:
        if method == "getpeerinfo":
            return self.peers
        self.calls.append((method, *params))
        return None


def test_new_links_are_opened_before_they_are_added() -> None:
    rpc = Recorder(peers=[{"id": 1, "addr": "c:1", "inbound": False}])
    apply(rpc, plan({"c:1": False, "d:1": True}, ["a:1", "c:1"], "present", exclusive=True))
    assert rpc.calls == [("addnode", "d:1", "remove"), ("disconnectnode", "d:1"), ("addnode", "a:1", "onetry"),
                         ("addnode", "a:1", "add")], "c:1 is already connected: no second onetry"


def test_duplicate_connections_keep_the_oldest() -> None:
    rpc = Recorder(peers=[{"id": 7, "addr": "a:1", "inbound": False}, {"id": 3, "addr": "a:1", "inbound": False},
                          {"id": 4, "addr": "a:1", "inbound": True}, {"id": 5, "addr": "b:1", "inbound": False}])
    assert drop_duplicates(rpc, ["a:1", "b:1"]) == ["a:1"]
    assert rpc.calls == [("disconnectnode", "", 7)]


def test_a_cut_link_is_closed_at_both_ends() -> None:
    """The near end closes its outbound link; the far end drops what comes in from the near end's
    address (a partition drops the FIN, so the far end would not learn by itself)."""
    peers = [{"id": 2, "addr": "b:1", "inbound": False}, {"id": 3, "addr": "c:1", "inbound": False},
             {"id": 8, "addr": "10.0.0.5:40112", "inbound": True}, {"id": 9, "addr": "10.0.0.6:40113", "inbound": True},
             {"id": 10, "addr": "10.0.0.5:40999", "inbound": True}]
    rpc = Recorder(peers)
    assert close(rpc, ["c:1", "d:1"], ["10.0.0.5", "10.0.0.7"]) == ["c:1", "from 10.0.0.5"]
    assert rpc.calls == [("disconnectnode", "c:1"), ("disconnectnode", "", 8), ("disconnectnode", "", 10)]
    assert cut_inbound(peers, ["10.0.0.6"]) == ["from 10.0.0.6"] and cut_inbound(peers, ["b"]) == []
    assert close(Recorder(peers), [], []) == []
