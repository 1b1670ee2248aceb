"""The peer module's plan: add, reconnect, remove, and the diff --diff prints."""

from __future__ import annotations

from ansible_collections.peerlab.bitcoin.plugins.module_utils._peering import diff, plan


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
