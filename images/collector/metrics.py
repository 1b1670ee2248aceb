"""What the collector and the observer share: samples and their two outputs (carbon's plaintext
protocol, Prometheus' text format), the network-wide view from node states, the configuration file
a role writes (reread when it changes), and a stop on SIGTERM.

Standard library only; in the collector's image, which the observer's is built on.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Cumulative series: Prometheus counters; Graphite dashboards take perSecond()/nonNegativeDerivative().
COUNTERS = frozenset({
    "bandwidth.bytes_sent", "bandwidth.bytes_received", "message.received", "message.sent",
    "transactions.accepted", "mining.blocks_mined", "restarts", "system.disk_read_bytes",
    "system.disk_write_bytes", "system.net_rx_bytes", "system.net_tx_bytes", "blocks.propagated",
    "net_rx_bytes", "net_tx_bytes", "traffic", "connections", "alerts", "observer.events_dropped",
    "observer.handler_errors", "observer.websocket_slow_dropped", "observer.alertmanager_sent", "observer.alertmanager_errors",
    "observer.alertmanager_dropped",
})


# The label a keyed metric's last Graphite path segment becomes in Prometheus.
KEY_LABELS: dict[str, str | tuple[str, ...]] = {
    "peers.type": "type", "peers.network": "net", "bandwidth.sent_by_msg": "msg",
    "bandwidth.received_by_msg": "msg", "message.received": "msg", "message.sent": "msg",
    "ping.peer": "peer", "minping.peer": "peer", "connections": "event", "traffic": ("source", "target"),
    "alerts": "detector", "observer.events_dropped": "reason", "build": ("implementation", "version"),
}


SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe(part: str) -> str:
    """One Graphite path segment: no dots, no spaces."""
    return SAFE.sub("_", part).strip("_") or "_"


@dataclass(frozen=True)
class Sample:
    """One value. scope: ("node", network, node) | ("network", network) | ("host", host)."""

    scope: tuple[str, ...]
    name: str
    value: float
    key: str | tuple[str, ...] | None = None

    def keys(self) -> tuple[str, ...]:
        return () if self.key is None else (self.key,) if isinstance(self.key, str) else self.key

    def graphite(self) -> str:
        kind = self.scope[0]
        if kind == "node":
            prefix = f"peerlab.{safe(self.scope[1])}.nodes.{safe(self.scope[2])}"
        elif kind == "network":
            prefix = f"peerlab.{safe(self.scope[1])}.network"
        else:
            prefix = f"peerlab.hosts.{safe(self.scope[1])}"
        return ".".join([f"{prefix}.{self.name}", *(safe(key) for key in self.keys())])

    def prometheus(self) -> tuple[str, dict[str, str]]:
        kind = self.scope[0]
        labels = ({"network": self.scope[1], "node": self.scope[2]} if kind == "node" else
                  {"network": self.scope[1]} if kind == "network" else {"host": self.scope[1]})
        names = KEY_LABELS.get(self.name, ("key",))
        for label, key in zip(names if isinstance(names, tuple) else (names,), self.keys(), strict=False):
            labels[label] = key
        name = f"peerlab_{'' if kind == 'node' else kind + '_'}{self.name.replace('.', '_')}"
        return name, labels


def prometheus_text(samples: Iterable[Sample]) -> str:
    """Samples in the Prometheus text exposition format, one TYPE line per family."""
    families: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for sample in samples:
        name, labels = sample.prometheus()
        kinds[name] = "counter" if sample.name in COUNTERS else "gauge"
        rendered = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
        families.setdefault(name, []).append(f"{name}{{{rendered}}} {number(sample.value)}")
    lines = []
    for name in sorted(families):
        lines.append(f"# TYPE {name} {kinds[name]}")
        lines.extend(families[name])
    return "\n".join(lines) + "\n"


def number(value: float) -> str:
    """A value as text without losing precision (48-bit tip ids, byte counters)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def carbon_lines(samples: Iterable[Sample], when: int) -> str:
    return "".join(f"{sample.graphite()} {number(sample.value)} {when}\n" for sample in samples)


def network_samples(network: str, states: dict[str, dict[str, Any]], expected: list[list[str]],
                    expected_nodes: int) -> list[Sample]:
    """Network-wide view from each node's tip and peer names (nodes that answered only)."""
    scope = ("network", network)
    tips = [state["tip"] for state in states.values() if state.get("tip")]
    heights = [state["height"] for state in states.values() if "height" in state]
    counts: dict[str, int] = {}
    for tip in tips:
        counts[tip] = counts.get(tip, 0) + 1
    connected = sum(1 for a, b in expected
                    if b in states.get(a, {}).get("peers", ()) or a in states.get(b, {}).get("peers", ()))
    out = [Sample(scope, "nodes.up", len(states)), Sample(scope, "nodes.expected", expected_nodes),
           Sample(scope, "tips.distinct", len(counts)),
           Sample(scope, "tip_agreement", max(counts.values()) / expected_nodes if counts and expected_nodes else 0),
           Sample(scope, "edges.connected", connected), Sample(scope, "edges.expected", len(expected))]
    if heights:
        out += [Sample(scope, "height.max", max(heights)), Sample(scope, "height.min", min(heights))]
        out += [Sample(("node", network, node), "chain.blocks_behind", max(heights) - state["height"])
                for node, state in sorted(states.items()) if "height" in state]
    return out


def log(message: str) -> None:
    """One line on stderr (the container's log), named after the program: peerlab-collector, peerlab-observer."""
    print(f"peerlab-{os.path.basename(sys.argv[0]).removesuffix('.py')}: {message}", file=sys.stderr, flush=True)


# Set by SIGTERM: a program's main loop ends after its current step. Python as a container's PID 1
# ignores SIGTERM otherwise, and `docker stop` waits its whole timeout (10 s) before it kills.
STOPPING = threading.Event()


def stop_on_sigterm() -> None:
    signal.signal(signal.SIGTERM, lambda _signum, _frame: STOPPING.set())


class QuietServer(http.server.ThreadingHTTPServer):
    """The collector's and the observer's HTTP port: a client that leaves before its answer is
    written (a health check that reads only the status line) is no traceback in the log; any other
    error in a handler still is."""

    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ConfigFile:
    """A JSON configuration file written by a role, read again when its modification time changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stamp = 0.0

    def changed(self) -> dict[str, Any] | None:
        """The configuration when it is new or changed since the last call, else None."""
        try:
            stamp = os.stat(self.path).st_mtime
        except OSError:
            return None
        if stamp == self.stamp:
            return None
        with open(self.path, encoding="utf-8") as handle:
            config: dict[str, Any] = json.load(handle)
        self.stamp = stamp
        return config

    def wait(self, seconds: float, step: float = 0.5, clock: Any = time.monotonic, sleep: Any = time.sleep) -> None:
        """Sleep for `seconds`, or less: until the file changes (a deploy added or removed a node,
        and the portal waits to see it). One stat() per step."""
        deadline = clock() + seconds
        while not STOPPING.is_set() and (left := deadline - clock()) > 0:
            try:
                if os.stat(self.path).st_mtime != self.stamp:
                    return
            except OSError:
                pass
            sleep(min(step, left))


class Carbon:
    def __init__(self) -> None:
        self._socket: socket.socket | None = None
        self._where = ""

    def send(self, where: str, text: str) -> None:
        if self._where != where:
            self.close()
        host, _sep, port = where.rpartition(":")
        for attempt in (1, 2):
            try:
                if self._socket is None:
                    self._socket = socket.create_connection((host, int(port)), timeout=10)
                    self._where = where
                self._socket.sendall(text.encode())
                return
            except OSError as error:
                self.close()
                if attempt == 2:
                    log(f"carbon {where}: {error}")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket = None
