"""The delay program's netlink messages and its schedule (the program runs for real in
tests/integration/test_experiments.py)."""

from __future__ import annotations

import errno
import struct

import pytest

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _delayer


def kernel_packet(queue: int, packet_id: int, hook: int = 3) -> bytes:
    """What the kernel sends for a queued packet, written out byte by byte: nlmsghdr (native order),
    nfgenmsg, NFQA_PACKET_HDR (id big-endian, hw protocol, hook), NFQA_MARK."""
    header_attr = struct.pack("=HH", 4 + 7, 1) + struct.pack("!IHB", packet_id, 0x0800, hook) + b"\0"
    mark = struct.pack("=HH", 8, 3) + struct.pack("!I", 0)
    body = struct.pack("!BBH", 2, 0, queue) + header_attr + mark
    return struct.pack("=IHHII", 16 + len(body), 3 << 8, 0, 0, 0) + body


def test_packets_reads_queue_and_id_from_every_message_of_a_datagram() -> None:
    data = kernel_packet(4, 17) + kernel_packet(2, 0xFFFFFFF0)
    assert _delayer.packets(data) == [(4, 17), (2, 0xFFFFFFF0)]
    assert _delayer.packets(b"") == [] and _delayer.packets(b"\0" * 16) == []


def test_an_acknowledgement_passes_and_a_refusal_raises_naming_the_errno() -> None:
    ack = struct.pack("=IHHII", 36, 2, 0, 1, 0) + struct.pack("=i", 0) + b"\0" * 16
    assert _delayer.packets(ack) == []
    refused = struct.pack("=IHHII", 36, 2, 0, 1, 0) + struct.pack("=i", -errno.EPERM) + b"\0" * 16
    with pytest.raises(OSError) as caught:
        _delayer.packets(refused)
    assert caught.value.errno == errno.EPERM


def test_messages_are_laid_out_as_nfnetlink_queue_wants() -> None:
    verdict = _delayer.verdict(5, 1234)
    length, kind, flags = struct.unpack_from("=IHH", verdict)
    assert (length, kind, flags) == (len(verdict), (3 << 8) | 3, 1)           # NFQNL_MSG_VERDICT_BATCH, request
    assert struct.unpack_from("!BBH", verdict, 16) == (0, 0, 5)                # the queue, big-endian
    assert struct.unpack_from("=HH", verdict, 20) == (12, 2)                   # NFQA_VERDICT_HDR
    assert struct.unpack_from("!II", verdict, 24) == (1, 1234)                 # NF_ACCEPT, up to this id
    bind = _delayer.bind(7)
    assert struct.unpack_from("=IHHI", bind) == (len(bind), (3 << 8) | 2, 1 | 4, 7) and bind[-4:] == bytes([1, 0, 0, 0])
    assert len(_delayer.params(7)) % 4 == 0


def test_a_queue_waits_its_delay_within_the_jitter_and_never_reorders() -> None:
    schedule = _delayer.Schedule({1: (0.2, 0.02), 2: (0.05, 0.0)}, seed=7)
    for packet_id in range(200):
        schedule.add(1, packet_id, now=packet_id * 1.0)  # far apart: each draw is its own
    dues = [due for due, _packet in schedule.waiting[1]]
    waits = [due - index for index, due in enumerate(dues)]
    assert all(0.18 <= wait <= 0.22 for wait in waits) and max(waits) - min(waits) > 0.03
    assert sorted(dues) == dues
    # Packets closer together than the jitter: one never leaves before an earlier one.
    burst = _delayer.Schedule({1: (0.2, 0.1)}, seed=1)
    for packet_id in range(50):
        burst.add(1, packet_id, now=packet_id * 0.001)
    dues = [due for due, _packet in burst.waiting[1]]
    assert dues == sorted(dues)
    # Due packets go as one batch per queue: the highest id; the next wake-up is the earliest head.
    two = _delayer.Schedule({1: (0.2, 0.0), 2: (0.05, 0.0)}, seed=7)
    for queue, packet_id, now in ((1, 5, 0.0), (2, 900, 0.0), (2, 901, 0.01), (2, 902, 0.2)):
        two.add(queue, packet_id, now)
    assert two.next() == pytest.approx(0.05)
    assert two.due(0.1) == [(2, 901)] and two.due(0.1) == []
    assert two.due(0.26) == [(1, 5), (2, 902)] and two.next() is None


def test_arguments_are_queues_then_the_seed() -> None:
    assert _delayer.parse(["1:110:20", "3:90:0", "42"]) == ({1: (0.11, 0.02), 3: (0.09, 0.0)}, 42)
