#!/usr/bin/env python3
"""peerlab events: the logger. Prints a lab's events as they happen, read from the observer's
websocket feed (`make events NETWORK=lab NODE=n1 TYPE=addr,ping`).

  <-- from n3 (inbound): inv (37 bytes)       a message the node received (--> to: one it sent)
  # CONN opened n1 (inbound)                  connections opened, closed, evicted, misbehaving
  # BLOCK 102 605e31af... (mined here)        a node took a block as its tip
  # TX accepted / rejected ...                transactions from peers (mempool, mempoolrej)
  # ALERT ...                                 detectors

Options: --url (default ws://127.0.0.1:8091/events, or PEERLAB_EVENTS_URL), --network, --node and
--type (comma-separated; a type is a message type such as inv, or an event kind: msg, conn, block,
tx, poll, alert, propagation), --json (one JSON event per line), --count N / --seconds S (stop after).
Standard library only; the event schema is in docs/events.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "images" / "collector"))
import events


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the feed closed the connection")
        data += chunk
    return data


def stream(url: str, network: str = "", nodes: str = "", types: str = "",
           timeout: float | None = None) -> Iterator[dict[str, Any] | None]:
    """Events from the websocket feed, filtered by the observer: a None first, once the feed has
    taken the subscription (what follows is everything published from then on), then each event,
    and None after `timeout` seconds without one (timeout None: wait for ever)."""
    parts = urlsplit(url)
    query = urlencode({key: value for key, value in (("network", network), ("node", nodes), ("type", types)) if value})
    path = (parts.path or "/events") + (f"?{query}" if query else "")
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=10)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += _read_exact(sock, 1)
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 101 " not in status + " ":
            raise ConnectionError(f"{url}: not a websocket feed ({status})")
        yield None  # subscribed
        while True:
            sock.settimeout(timeout)
            try:
                first, second = _read_exact(sock, 2)
            except TimeoutError:
                yield None  # nothing for `timeout` seconds
                continue
            sock.settimeout(10)
            size = second & 0x7F
            if size == 126:
                size = int.from_bytes(_read_exact(sock, 2), "big")
            elif size == 127:
                size = int.from_bytes(_read_exact(sock, 8), "big")
            payload = _read_exact(sock, size)
            if first & 0x0F == 0x8:
                return
            if first & 0x0F == 0x1:
                yield json.loads(payload)
    finally:
        with contextlib.suppress(OSError):
            sock.sendall(b"\x88\x80" + os.urandom(4))  # a masked close frame
        sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--url", default=os.environ.get("PEERLAB_EVENTS_URL", "ws://127.0.0.1:8091/events"))
    parser.add_argument("--network", default="")
    parser.add_argument("--node", default="")
    parser.add_argument("--type", default="")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=0)
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    shown = 0
    following = False
    try:
        for event in stream(args.url, args.network, args.node, args.type, timeout=1.0):
            if not following:
                print(f"peerlab events: following {args.url} (Ctrl-C ends)", file=sys.stderr, flush=True)
                following = True
            if deadline and time.monotonic() > deadline:
                break
            if event is None:
                continue
            print(json.dumps(event, sort_keys=True) if args.json else
                  f"{time.strftime('%H:%M:%S', time.localtime(event.get('time', 0)))} {events.describe(event)}", flush=True)
            shown += 1
            if args.count and shown >= args.count:
                break
    except (ConnectionError, OSError) as error:
        print(f"peerlab events: {args.url}: {error} (is the lab deployed with monitoring? `make deploy`)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
