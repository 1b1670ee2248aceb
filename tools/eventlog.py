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
tx, poll, alert, propagation, reorg), --json (one JSON event per line), --count N / --seconds S (stop after).
websockets (requirements.txt) for the feed; the event schema is in docs/events.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "images" / "collector"))
import events


def stream(url: str, network: str = "", nodes: str = "", types: str = "",
           timeout: float | None = None) -> Iterator[dict[str, Any] | None]:
    """Events from the websocket feed, filtered by the observer: a None first, once the feed has
    taken the subscription (what follows is everything published from then on), then each event,
    and None after `timeout` seconds without one (timeout None: wait for ever)."""
    parts = urlsplit(url)
    query = urlencode({key: value for key, value in (("network", network), ("node", nodes), ("type", types)) if value})
    address = f"ws://{parts.netloc}{parts.path or '/events'}" + (f"?{query}" if query else "")
    try:
        connection = connect(address, open_timeout=10, max_size=None, compression=None)
    except InvalidStatus as refused:
        raise ConnectionError(f"{url}: not a websocket feed (HTTP {refused.response.status_code})") from None
    except (OSError, WebSocketException, TimeoutError) as error:  # a refused handshake, or one the server closed (a restart)
        raise ConnectionError(f"{url}: {error}") from None
    with connection:
        yield None  # subscribed
        while True:
            try:
                message = connection.recv(timeout=timeout)
            except TimeoutError:
                yield None  # nothing for `timeout` seconds
                continue
            except ConnectionClosed:
                return
            yield json.loads(message)


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
    except ConnectionError as error:  # it names the feed
        print(f"peerlab events: {error} (is the lab deployed with monitoring? `make deploy`)", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"peerlab events: {args.url}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
