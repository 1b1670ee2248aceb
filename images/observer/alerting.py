"""The observer's alerts sent to Alertmanager (its API v2), which routes them to people.

Each detector alert becomes one Alertmanager alert: labels alertname (the detector), detector,
network, node and, for a peer's misdeed, peer and addr; the message as its summary. Sending never
holds up the bus's reader: alerts wait in a bounded queue for a thread that posts them in batches,
and keeps them (retrying, with a growing pause) while Alertmanager does not answer.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from typing import Any

import events

KEEP = 1000          # alerts waiting at most (the oldest go first when Alertmanager is away that long)
BATCH = 100
RESOLVE_SECONDS = 300  # an alert resolves this long after it was raised (one episode, one notification)


def stamp(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1000):03d}Z"


def to_alertmanager(alert: dict[str, Any]) -> dict[str, Any]:
    """One detector alert event as an Alertmanager alert."""
    labels = {"alertname": str(alert["detector"]), "detector": str(alert["detector"]), "network": str(alert["network"]),
              "node": str(alert["node"]), "source": "peerlab"}
    if isinstance(alert.get("peer"), int):
        labels["peer"] = str(alert["peer"])
    if alert.get("addr"):
        labels["addr"] = str(alert["addr"])
    when = float(alert["time"])
    return {"labels": labels, "annotations": {"summary": str(alert.get("message", "")), "description": events.describe(alert)},
            "startsAt": stamp(when), "endsAt": stamp(when + RESOLVE_SECONDS)}


class Alerting:
    def __init__(self) -> None:
        self.url = ""
        self.user = ""
        self.password_file = ""
        self.waiting: deque[dict[str, Any]] = deque(maxlen=KEEP)
        self.wake = threading.Condition()
        self.sent = 0
        self.errors = 0
        self.dropped = 0
        self.last_error = ""
        self.thread: threading.Thread | None = None

    def configure(self, config: dict[str, Any] | None) -> None:
        config = config or {}
        self.url, self.user = str(config.get("url", "")), str(config.get("user", ""))
        self.password_file = str(config.get("password_file", ""))
        if self.url and self.thread is None:
            self.thread = threading.Thread(target=self.run, daemon=True)
            self.thread.start()

    def add(self, alert: dict[str, Any]) -> None:
        if not self.url:
            return
        with self.wake:
            if len(self.waiting) == KEEP:
                self.dropped += 1
            self.waiting.append(to_alertmanager(alert))
            self.wake.notify()

    def _authorization(self) -> str:
        with open(self.password_file, encoding="utf-8") as handle:
            password = handle.read().strip()
        return events.basic_auth(self.user, password)

    def post(self, batch: list[dict[str, Any]]) -> None:
        request = urllib.request.Request(f"{self.url}/api/v2/alerts", data=json.dumps(batch).encode(), method="POST",
                                         headers={"Content-Type": "application/json", "Authorization": self._authorization()})
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def run(self) -> None:
        pause = 1.0
        while True:
            with self.wake:
                while not self.waiting:
                    self.wake.wait()
                batch = [self.waiting.popleft() for _count in range(min(BATCH, len(self.waiting)))]
            try:
                self.post(batch)
            except (OSError, ValueError, urllib.error.URLError) as error:  # HTTPError is an OSError too
                self.errors += 1
                self.last_error = f"{type(error).__name__}: {error}"[:200]
                with self.wake:  # back in front, in order; the oldest go if the queue is full
                    for item in reversed(batch):
                        if len(self.waiting) == KEEP:
                            self.dropped += 1
                            continue
                        self.waiting.appendleft(item)
                time.sleep(pause)
                pause = min(30.0, pause * 2)
                continue
            self.sent += len(batch)
            pause = 1.0
