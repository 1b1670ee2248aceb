# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Latency without netem: hold packets in user space and let them go later.

A fault holder runs this file's source as a program (`python3 - QUEUE:DELAY:JITTER ... SEED`, the
standard library only) in the node's network namespace, before its iptables rules send P2P
packets to netfilter queues (`-j NFQUEUE --queue-num QUEUE --queue-bypass`). Each packet of queue
QUEUE waits DELAY ms plus a uniform draw in [-JITTER, +JITTER] ms; the kernel keeps the packet, the
program only keeps its id and tells the kernel when to accept it. A packet never leaves before an
earlier one of its queue, so the delay does not reorder a TCP stream (netem's jitter does) and one
batch verdict lets every due packet of a queue go at once.

The netlink protocol (nfnetlink_queue) is written out here: nothing to install in the node images.
Kernel: CONFIG_NETFILTER_NETLINK_QUEUE and iptables' NFQUEUE target; CAP_NET_ADMIN to bind a queue.
"""

from __future__ import annotations

import collections
import os
import random
import select
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
MSG_PACKET, MSG_CONFIG, MSG_VERDICT_BATCH = 0, 2, 3
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
CFG_CMD, CFG_PARAMS, CFG_QUEUE_MAXLEN = 1, 2, 3
CMD_BIND = 1
COPY_META = 1
PACKET_HDR, VERDICT_HDR = 1, 2
NF_ACCEPT = 1
QUEUE_LENGTH = 20000   # packets the kernel keeps per queue (netem's default limit is 1000)
READY = "/tmp/peerlab-delay-ready"


def attribute(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to four bytes."""
    body = struct.pack("=HH", 4 + len(payload), kind) + payload
    return body + b"\0" * (-len(body) % 4)


def message(kind: int, queue: int, attributes: bytes, flags: int = NLM_F_REQUEST, sequence: int = 0) -> bytes:
    """An nfnetlink_queue message: the netlink header, nfgenmsg (AF_UNSPEC, version 0, the queue
    number big-endian) and the attributes."""
    body = struct.pack("!BBH", 0, 0, queue) + attributes
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, sequence, 0) + body


def bind(queue: int) -> bytes:
    return message(MSG_CONFIG, queue, attribute(CFG_CMD, struct.pack("!BBH", CMD_BIND, 0, 0)), NLM_F_REQUEST | NLM_F_ACK, queue)


def params(queue: int) -> bytes:
    """Copy only the packet's metadata (its id): the program never reads a payload; a long queue."""
    return message(MSG_CONFIG, queue, attribute(CFG_PARAMS, struct.pack("!IB", 0, COPY_META))
                   + attribute(CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_LENGTH)), NLM_F_REQUEST | NLM_F_ACK, queue)


def verdict(queue: int, packet_id: int) -> bytes:
    """Accept every packet of `queue` up to `packet_id` (a batch verdict)."""
    return message(MSG_VERDICT_BATCH, queue, attribute(VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)))


def packets(data: bytes) -> list[tuple[int, int]]:
    """(queue, packet id) of each queued packet in a datagram from the kernel; an error answer
    other than an acknowledgement raises OSError."""
    found = []
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _flags, _sequence, _port = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            break
        if kind == NLMSG_ERROR:
            code = struct.unpack_from("=i", data, offset + 16)[0]
            if code:
                raise OSError(-code, os.strerror(-code))
        elif kind == (NFNL_SUBSYS_QUEUE << 8) | MSG_PACKET:
            queue = struct.unpack_from("!H", data, offset + 18)[0]
            at = offset + 20
            while at + 4 <= offset + length:
                size, attr = struct.unpack_from("=HH", data, at)
                if size < 4:
                    break
                if attr & 0x7FFF == PACKET_HDR:
                    found.append((queue, struct.unpack_from("!I", data, at + 4)[0]))
                at += (size + 3) & ~3
        offset += (length + 3) & ~3
    return found


class Schedule:
    """When each queued packet goes: its queue's delay plus a uniform draw in ±jitter (seconds),
    never before an earlier packet of its queue."""

    def __init__(self, delays: dict[int, tuple[float, float]], seed: int) -> None:
        self.delays = delays
        self.random = random.Random(seed)
        self.waiting: dict[int, collections.deque[tuple[float, int]]] = {queue: collections.deque() for queue in delays}
        self.last: dict[int, float] = dict.fromkeys(delays, 0.0)

    def add(self, queue: int, packet_id: int, now: float) -> None:
        delay, jitter = self.delays[queue]
        due = max(now + max(0.0, delay + (self.random.uniform(-jitter, jitter) if jitter else 0.0)), self.last[queue])
        self.last[queue] = due
        self.waiting[queue].append((due, packet_id))

    def due(self, now: float) -> list[tuple[int, int]]:
        """(queue, highest packet id) for each queue with packets whose time has come."""
        going = []
        for queue, waiting in self.waiting.items():
            last = None
            while waiting and waiting[0][0] <= now:
                last = waiting.popleft()[1]
            if last is not None:
                going.append((queue, last))
        return going

    def next(self) -> float | None:
        heads = [waiting[0][0] for waiting in self.waiting.values() if waiting]
        return min(heads) if heads else None


def parse(arguments: list[str]) -> tuple[dict[int, tuple[float, float]], int]:
    """QUEUE:DELAY_MS:JITTER_MS ... SEED -> ({queue: (delay s, jitter s)}, seed)."""
    *queues, seed = arguments
    delays = {}
    for entry in queues:
        queue, delay, jitter = entry.split(":")
        delays[int(queue)] = (float(delay) / 1000.0, float(jitter) / 1000.0)
    return delays, int(seed)


def say(line: str) -> None:
    """A line for the holder's log (this program runs outside Ansible, in the holder)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run(arguments: list[str]) -> None:
    delays, seed = parse(arguments)
    schedule = Schedule(delays, seed)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE (CAP_NET_ADMIN): room for bursts
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((0, 0))
    for queue in delays:
        for request in (bind(queue), params(queue)):
            sock.send(request)
            packets(sock.recv(65536))  # the acknowledgement, or OSError naming why not
    with open(READY, "w") as handle:
        handle.write(" ".join(arguments) + "\n")
    held = ", ".join(f"{queue} ({delay * 1000:g} ms ±{jitter * 1000:g})" for queue, (delay, jitter) in sorted(delays.items()))
    say(f"peerlab-delay: holding queues {held}")
    sock.setblocking(False)
    while True:
        coming = schedule.next()
        timeout = None if coming is None else max(0.0, coming - time.monotonic())
        if select.select([sock], [], [], timeout)[0]:
            while True:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    break
                except OSError as error:  # ENOBUFS: the kernel dropped messages (their packets with them)
                    say(f"peerlab-delay: {error}")
                    break
                now = time.monotonic()
                for queue, packet_id in packets(data):
                    if queue in delays:
                        schedule.add(queue, packet_id, now)
        for queue, packet_id in schedule.due(time.monotonic()):
            sock.send(verdict(queue, packet_id))


if __name__ == "__main__":
    run(sys.argv[1:])
