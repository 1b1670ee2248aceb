#!/usr/bin/env python3
"""peerlab collector: one per Docker host. Polls the host's Bitcoin nodes and the Docker engine,
and is the host's extractor of events.

Every `interval` seconds it asks each node on its host for its state over RPC (one batched call),
reads the Docker engine's stats and inspect data, then writes everything to carbon (Graphite's
plaintext protocol), keeps it for Prometheus at /metrics and publishes a `poll` event per node.
One thread reads every node's log file as Docker writes it (json-file, under the engine's data
directory, mounted read-only) ten times a second and publishes its events (messages, connections,
blocks, transactions) on the bus (NATS; events.py, docs/events.md).
A statsd intake (UDP) forwards what Statoshi nodes send to carbon under
`peerlab.<network>.nodes.<node>.statoshi.`, named after the sender's address.

Standard library only. The configuration file (JSON, written by the engine, no secrets)
is reread when it changes:
  {"host": "localhost", "interval": 10, "carbon": "peerlab-graphite:2003",
   "networks": {"lab": {"chain": "regtest", "edges": [["n1", "n2"]],
                        "nodes": {"n1": {"container": "lab-n1", "rpc_port": 18443,
                                         "cookie": "/home/bitcoin/.bitcoin/regtest/.cookie"}}}}}
A node's container is found by its labels (peerlab.network, peerlab.node): a Swarm task's name is
generated. RPC goes to the node's name (Docker's DNS: the container, or the Swarm service) and
authenticates with bitcoind's own cookie, read from the container through the Docker API, so no
RPC password is stored on the Docker host. Metric names: docs/metrics.md.
"""

from __future__ import annotations

import http.client
import http.server
import io
import ipaddress
import json
import os
import re
import socket
import statistics
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import events
from dockerapi import Docker, DockerError
from metrics import (
    STOPPING,
    Carbon,
    ConfigFile,
    QuietServer,
    Sample,
    carbon_lines,
    log,
    number,
    prometheus_text,
    safe,
    stop_on_sigterm,
)

CONFIG = os.environ.get("PEERLAB_COLLECTOR_CONFIG", "/etc/peerlab/collector.json")
DOCKER_SOCKET = os.environ.get("PEERLAB_DOCKER_SOCKET", "/var/run/docker.sock")
HOST_PROC = os.environ.get("PEERLAB_HOST_PROC", "/host/proc")
HOST_DISK = os.environ.get("PEERLAB_HOST_DISK", "/host/docker")
HOST_CGROUP = os.environ.get("PEERLAB_HOST_CGROUP", "/host/cgroup")
PROMETHEUS_PORT = int(os.environ.get("PEERLAB_PROMETHEUS_PORT", "9332"))
STATSD_PORT = int(os.environ.get("PEERLAB_STATSD_PORT", "8125"))


# --------------------------------------------------------------------------------------------
# Pure computations from RPC answers and log lines (unit-tested)


CATCH_UP = 0.5       # seconds between polls while a node the configuration just added does not answer
CATCH_UP_FOR = 60.0  # for at most this long after the configuration changed


def catching_up(samples: list[Sample], since_change: float) -> bool:
    """Poll again soon: the configuration changed less than CATCH_UP_FOR ago and a node is not up
    (a deploy or the portal wrote it before the node's container or its bitcoind was ready)."""
    return since_change < CATCH_UP_FOR and any(sample.name == "up" and not sample.value for sample in samples)


def peer_samples(scope: tuple[str, ...], peers: list[dict[str, Any]], names: dict[str, str]) -> list[Sample]:
    """Peers by direction, connection type and network; bytes per message; ping per peer."""
    out = [Sample(scope, "peers.total", len(peers)),
           Sample(scope, "peers.inbound", sum(1 for peer in peers if peer.get("inbound"))),
           Sample(scope, "peers.outbound", sum(1 for peer in peers if not peer.get("inbound")))]
    types: dict[str, int] = {}
    networks: dict[str, int] = {}
    sent: dict[str, int] = {}
    received: dict[str, int] = {}
    pings, minpings = [], []
    for peer in peers:
        kind = peer.get("connection_type") or ("inbound" if peer.get("inbound") else "outbound")
        types[kind] = types.get(kind, 0) + 1
        network = peer.get("network", "unknown")
        networks[network] = networks.get(network, 0) + 1
        for message, count in (peer.get("bytessent_per_msg") or {}).items():
            sent[message] = sent.get(message, 0) + int(count)
        for message, count in (peer.get("bytesrecv_per_msg") or {}).items():
            received[message] = received.get(message, 0) + int(count)
        name = peer_name(peer.get("addr", ""), names)
        if "pingtime" in peer:
            pings.append(peer["pingtime"] * 1000)
            out.append(Sample(scope, "ping.peer", peer["pingtime"] * 1000, name))
        if "minping" in peer:
            minpings.append(peer["minping"] * 1000)
            out.append(Sample(scope, "minping.peer", peer["minping"] * 1000, name))
    out += [Sample(scope, "peers.type", count, kind) for kind, count in sorted(types.items())]
    out += [Sample(scope, "peers.network", count, net) for net, count in sorted(networks.items())]
    out += [Sample(scope, "bandwidth.sent_by_msg", count, msg) for msg, count in sorted(sent.items())]
    out += [Sample(scope, "bandwidth.received_by_msg", count, msg) for msg, count in sorted(received.items())]
    if pings:
        out.append(Sample(scope, "ping.median", statistics.median(pings)))
    if minpings:
        out.append(Sample(scope, "minping.median", statistics.median(minpings)))
    return out


def peer_name(addr: str, names: dict[str, str]) -> str:
    """A peer's node name when its address is a known container's, else its address."""
    return names.get(events.peer_host(addr), safe(addr) if addr else "unknown")


def tip_id(block_hash: str) -> float:
    """A block hash as a number Graphite can store exactly (its last 48 bits)."""
    return float(int(block_hash[-12:], 16))


# A fork is current while its tip is within this many blocks of the active tip (Bitcoin Core's
# own notion of a recent reorg risk is 6 confirmations); older branches stay in getchaintips forever.
FORK_WINDOW = 6


def chain_tip_samples(scope: tuple[str, ...], tips: list[dict[str, Any]]) -> list[Sample]:
    """Chain tips the node knows; forks: other tips within FORK_WINDOW blocks of the active one
    (chain.forks_known counts every branch ever seen, which only grows)."""
    active = max((tip.get("height", 0) for tip in tips if tip.get("status") == "active"), default=0)
    known = [tip for tip in tips if tip.get("status") != "active"]
    forks = [tip for tip in known if tip.get("height", 0) > active - FORK_WINDOW]
    return [Sample(scope, "chain.tips", len(tips)), Sample(scope, "chain.forks", len(forks)),
            Sample(scope, "chain.forks_known", len(known)),
            Sample(scope, "chain.fork_branchlen_max", max((tip.get("branchlen", 0) for tip in forks), default=0))]


@dataclass
class Restarts:
    """How often a node's bitcoind started again: Docker restarting its container (RestartCount
    grows), or bitcoind starting again inside the same run (its uptime drops). One crash is one
    restart, whichever of the two shows it; a container made anew (a deploy) is not a restart."""

    total: int = 0
    container: str = ""
    docker: int = 0
    uptime: float | None = None

    def observe(self, container_id: str, docker_count: int, uptime: float | None) -> int:
        new_run = container_id != self.container or docker_count != self.docker
        if not self.container:
            self.total = docker_count
        elif container_id == self.container and docker_count > self.docker:
            self.total += docker_count - self.docker
        elif not new_run and uptime is not None and self.uptime is not None and uptime < self.uptime:
            self.total += 1
        if new_run or uptime is not None:
            self.uptime = uptime  # a new run's uptime is the reference, even unknown
        self.container, self.docker = container_id, docker_count
        return self.total


class LogFile:
    """One node's log as Docker writes it (the json-file driver peerlab gives every node: one JSON
    object per line, {"log": ..., "stream": ..., "time": ...}), read from where the last read ended.
    The file rotates at its size limit (Docker renames it and starts a new one): the old one is read
    to its end before the new one is opened from its start."""

    def __init__(self, path: str, since: float) -> None:
        self.path = path
        self.since = since  # lines Docker stamped before this were taken by an earlier read (or are old)
        self.handle: int | None = None
        self.inode = 0
        self.position = 0  # bytes read from the open file
        self.partial = b""

    def read(self) -> list[tuple[str, str]]:
        """The new complete lines: [(Docker's timestamp, the line)]. OSError when the file cannot be read."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            now = None  # between Docker's rename and its new file, or the container is gone
        if self.handle is not None and now is not None and (now.st_ino, now.st_size) == (self.inode, self.position):
            return []  # nothing new: one stat, no read (most passes of most files)
        if self.handle is None:
            self._open()
        lines = self._lines(self._drain())
        if now is not None and now.st_ino != self.inode:  # rotated
            lines += self._lines(self._drain())  # what came before the rename
            self.close()
            self._open()
            self.partial = b""
            lines += self._lines(self._drain())
        return lines

    def close(self) -> None:
        if self.handle is not None:
            os.close(self.handle)
        self.handle = None

    def _open(self) -> None:
        self.handle = os.open(self.path, os.O_RDONLY)
        self.inode, self.position = os.fstat(self.handle).st_ino, 0

    def _drain(self) -> bytes:
        assert self.handle is not None
        chunks = []
        while chunk := os.read(self.handle, 1 << 20):
            chunks.append(chunk)
            self.position += len(chunk)
        return b"".join(chunks)

    def _lines(self, data: bytes) -> list[tuple[str, str]]:
        if not data:
            return []
        *complete, self.partial = (self.partial + data).split(b"\n")
        lines = []
        for raw in complete:
            try:
                stamp, line = docker_line(raw)
            except (ValueError, KeyError, TypeError):
                continue  # not one of Docker's lines
            if self.since:
                if (events.epoch(stamp) or 0.0) < self.since:
                    continue
                self.since = 0.0  # the file is in time order: the rest is newer
            lines.append((stamp, line.rstrip("\r\n")))
        return lines


def docker_line(raw: bytes) -> tuple[str, str]:
    """One line of Docker's json-file log -> (its time, the line). Docker writes the fields in one
    order ({"log":...,"stream":...,"time":...}): a line with no escape but its newline is cut out
    directly (a third of the CPU of a JSON parse, which the other lines get)."""
    end = raw.rfind(b'","stream":"')
    stamp = raw.rfind(b'","time":"')
    if raw.startswith(b'{"log":"') and raw.endswith(b'"}') and 0 < end < stamp and raw.find(b"\\", 8, end) == end - 2:
        return raw[stamp + 10:-2].decode("ascii"), raw[8:end - 2].decode("utf-8", "replace")
    entry = json.loads(raw)
    return str(entry["time"]), str(entry["log"]).rstrip("\r\n")


class LogTail:
    """Every followed node's log file, read by one thread every TICK seconds; new lines become
    events on the bus. Docker's data directory is mounted read-only (HOST_DISK): no stream
    through the engine per node, no thread per node."""

    TICK = 0.1

    def __init__(self, root: str, publish: Any) -> None:
        self.root = root
        self.publish = publish
        self.files: dict[str, tuple[str, LogFile, events.NodeLog]] = {}  # network/node -> container id, file, its events
        self.lock = threading.Lock()
        self.complained: set[str] = set()

    def follow(self, key: str, container_id: str, nodelog: events.NodeLog, since: float) -> bool:
        """Read this container's log from now on (from `since`, a time, when it was not read
        before); True when it is not the container read until now."""
        with self.lock:
            current = self.files.get(key)
            if current is not None and current[0] == container_id:
                return False
            if current is not None:
                current[1].close()
            path = os.path.join(self.root, "containers", container_id, f"{container_id}-json.log")
            self.files[key] = (container_id, LogFile(path, since), nodelog)
            return True

    def drop(self, key: str) -> None:
        with self.lock:
            current = self.files.pop(key, None)
            if current is not None:
                current[1].close()

    def read(self) -> int:
        """One pass over every file (the poll's follow and drop wait for it); the number of lines read."""
        count = 0
        with self.lock:
            for key, (_container, logfile, nodelog) in self.files.items():
                try:
                    lines = logfile.read()
                except OSError as error:
                    if key not in self.complained:
                        self.complained.add(key)
                        log(f"{key}: cannot read its log {logfile.path} ({error.strerror or error}): no events from it")
                    continue
                self.complained.discard(key)
                count += len(lines)
                for stamp, line in lines:
                    for event in nodelog.feed(stamp, None, line):
                        self.publish(event)
        return count

    def run(self) -> None:
        while not STOPPING.is_set():
            self.read()
            STOPPING.wait(self.TICK)


def cookie_from_archive(archive: bytes) -> tuple[str, str]:
    """The (user, password) of a cookie file from Docker's archive endpoint (a tar of that one file)."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = next(member for member in tar.getmembers() if member.isfile())
        handle = tar.extractfile(member)
        text = handle.read().decode().strip() if handle else ""
    user, _sep, password = text.partition(":")
    if not password:
        raise ValueError("the cookie file is not user:password")
    return user, password


def best_containers(summaries: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(network, node) -> its container: the running one, else the newest (Swarm keeps exited tasks)."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for summary in summaries:
        labels = summary.get("Labels") or {}
        key = (labels.get("peerlab.network", ""), labels.get("peerlab.node", ""))
        rank = (summary.get("State") == "running", summary.get("Created", 0))
        current = best.get(key)
        if current is None or rank > (current.get("State") == "running", current.get("Created", 0)):
            best[key] = summary
    return best


def container_samples(scope: tuple[str, ...], stats: dict[str, Any], previous: tuple[float, float] | None,
                      now: float) -> tuple[list[Sample], tuple[float, float]]:
    """CPU (percent of one core, from the previous poll), memory, block I/O and network."""
    cpu_ns = float(stats.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage", 0))
    memory = stats.get("memory_stats", {})
    inner = memory.get("stats", {})
    rss = inner.get("rss", inner.get("anon", 0))
    out = [Sample(scope, "system.memory_rss", rss), Sample(scope, "system.memory_usage", memory.get("usage", 0))]
    if previous is not None and now > previous[1]:
        out.append(Sample(scope, "system.cpu_percent", max(0.0, (cpu_ns - previous[0]) / 1e9 / (now - previous[1]) * 100)))
    read = write = 0
    for entry in (stats.get("blkio_stats", {}).get("io_service_bytes_recursive") or []):
        if entry.get("op", "").lower() == "read":
            read += entry.get("value", 0)
        elif entry.get("op", "").lower() == "write":
            write += entry.get("value", 0)
    out += [Sample(scope, "system.disk_read_bytes", read), Sample(scope, "system.disk_write_bytes", write)]
    networks = stats.get("networks") or {}
    out += [Sample(scope, "system.net_rx_bytes", sum(n.get("rx_bytes", 0) for n in networks.values())),
            Sample(scope, "system.net_tx_bytes", sum(n.get("tx_bytes", 0) for n in networks.values()))]
    return out, (cpu_ns, now)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _number(path: str) -> int:
    """A cgroup file holding one number; 0 when it cannot be read."""
    text = (_read(path) or "").strip()
    return int(text) if text.isdigit() else 0


def _keyed(text: str | None) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat) as a dict."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _space, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def cgroup_stats(pid: int, proc: str = HOST_PROC, root: str = HOST_CGROUP) -> dict[str, Any]:
    """A container's CPU, memory, block I/O and network, shaped like Docker's stats, read from its cgroup
    (v1 or v2) and its network namespace's /proc/<pid>/net/dev.

    For engines whose stats endpoint answers empty: containerd's cgroup v1 loader gives up ("cannot find
    cgroup mount destination") when /proc/<pid>/cgroup names a hierarchy the host does not mount."""
    paths: dict[str, str] = {}
    for line in (_read(f"{proc}/{pid}/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                paths[controller] = parts[2]

    def folder(controller: str, probe: str) -> str | None:
        path = paths.get(controller)
        if path is None:
            return None
        mounts = [controller, "cpu,cpuacct", "cpuacct,cpu"] if controller else ["", "unified"]
        for mount in mounts:
            candidate = "/".join(part.strip("/") for part in (root, mount, path) if part.strip("/"))
            if os.path.exists(f"/{candidate}/{probe}"):
                return f"/{candidate}"
        return None

    stats: dict[str, Any] = {}
    memory, cpu, blkio = folder("memory", "memory.usage_in_bytes"), folder("cpuacct", "cpuacct.usage"), folder(
        "blkio", "blkio.throttle.io_service_bytes")
    unified = folder("", "memory.current")
    if memory:
        inner = _keyed(_read(f"{memory}/memory.stat"))
        stats["memory_stats"] = {"usage": _number(f"{memory}/memory.usage_in_bytes"),
                                 "stats": {"rss": inner.get("total_rss", inner.get("rss", 0))}}
    elif unified:
        stats["memory_stats"] = {"usage": _number(f"{unified}/memory.current"),
                                 "stats": {"anon": _keyed(_read(f"{unified}/memory.stat")).get("anon", 0)}}
    if cpu:
        stats["cpu_stats"] = {"cpu_usage": {"total_usage": _number(f"{cpu}/cpuacct.usage")}}
    elif unified:
        stats["cpu_stats"] = {"cpu_usage": {"total_usage": _keyed(_read(f"{unified}/cpu.stat")).get("usage_usec", 0) * 1000}}
    entries: list[dict[str, Any]] = []
    if blkio:
        for line in (_read(f"{blkio}/blkio.throttle.io_service_bytes") or "").splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[1] in ("Read", "Write") and fields[2].isdigit():
                entries.append({"op": fields[1], "value": int(fields[2])})
    elif unified:
        for line in (_read(f"{unified}/io.stat") or "").splitlines():
            pairs = dict(field.split("=", 1) for field in line.split()[1:] if "=" in field)
            entries += [{"op": op, "value": int(pairs.get(key, "0"))} for op, key in (("Read", "rbytes"), ("Write", "wbytes"))]
    stats["blkio_stats"] = {"io_service_bytes_recursive": entries}
    networks: dict[str, dict[str, int]] = {}
    for line in (_read(f"{proc}/{pid}/net/dev") or "").splitlines()[2:]:
        name, _colon, counters = line.partition(":")
        fields = counters.split()
        if name.strip() != "lo" and len(fields) >= 9:
            networks[name.strip()] = {"rx_bytes": int(fields[0]), "tx_bytes": int(fields[8])}
    stats["networks"] = networks
    return stats


def host_samples(host: str, proc: str, disk: str, previous: dict[str, float]) -> list[Sample]:
    """The Docker host: CPU (percent of all cores), load, memory, the Docker disk, network."""
    scope = ("host", host)
    out: list[Sample] = []
    try:
        with open(os.path.join(proc, "stat"), encoding="ascii") as handle:
            fields = [float(value) for value in handle.readline().split()[1:]]
        busy, total = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0), sum(fields)
        if "cpu_total" in previous and total > previous["cpu_total"]:
            out.append(Sample(scope, "cpu_percent", (busy - previous["cpu_busy"]) / (total - previous["cpu_total"]) * 100))
        previous.update(cpu_busy=busy, cpu_total=total)
        with open(os.path.join(proc, "loadavg"), encoding="ascii") as handle:
            out.append(Sample(scope, "load1", float(handle.read().split()[0])))
        meminfo = {}
        with open(os.path.join(proc, "meminfo"), encoding="ascii") as handle:
            for line in handle:
                key, _sep, value = line.partition(":")
                meminfo[key] = int(value.split()[0]) * 1024
        out += [Sample(scope, "memory_total", meminfo["MemTotal"]),
                Sample(scope, "memory_used", meminfo["MemTotal"] - meminfo.get("MemAvailable", meminfo["MemFree"]))]
        rx = tx = 0
        with open(os.path.join(proc, "1", "net", "dev"), encoding="ascii") as handle:
            for line in handle.readlines()[2:]:
                name, _sep, values = line.partition(":")
                if name.strip() != "lo":
                    numbers = values.split()
                    rx, tx = rx + int(numbers[0]), tx + int(numbers[8])
        out += [Sample(scope, "net_rx_bytes", rx), Sample(scope, "net_tx_bytes", tx)]
    except (OSError, ValueError, KeyError, IndexError) as error:
        log(f"host metrics from {proc}: {error}")
    try:
        stat = os.statvfs(disk)
        out += [Sample(scope, "disk_total", stat.f_blocks * stat.f_frsize),
                Sample(scope, "disk_free", stat.f_bavail * stat.f_frsize)]
    except OSError as error:
        log(f"disk metrics from {disk}: {error}")
    return out


# --------------------------------------------------------------------------------------------
# I/O: Docker engine, bitcoind RPC, carbon, Prometheus, statsd


# The Docker engine, through peerlab's one client (dockerapi.py, also the engine's); a request is a
# connection of its own, so the poll's threads share it.
DOCKER = Docker(DOCKER_SOCKET, timeout=20.0)


def docker(path: str, raw: bool = False) -> Any:
    return DOCKER.request("GET", path, raw=raw)


class RpcAuthError(OSError):
    """bitcoind refused the credentials (a cookie changes when bitcoind restarts)."""


def rpc_batch(host: str, port: int, user: str, password: str, calls: list[tuple[str, list[Any]]],
              timeout: float = 8.0) -> list[Any]:
    """One HTTP request carrying several calls; a failed call's result is None."""
    body = json.dumps([{"jsonrpc": "1.0", "id": index, "method": method, "params": params}
                       for index, (method, params) in enumerate(calls)])
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("POST", "/", body, {"Authorization": events.basic_auth(user, password), "Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
        if response.status in (401, 403):
            raise RpcAuthError(f"RPC {host}:{port} refused the node's cookie (HTTP {response.status})")
        answers = {answer["id"]: answer for answer in json.loads(payload)}
    finally:
        connection.close()
    return [answers.get(index, {}).get("result") if not answers.get(index, {}).get("error") else None
            for index in range(len(calls))]


# A statsd name peerlab forwards: dot-separated words of letters, digits, '_' and '-' (no empty part,
# no '/', no space), at most 200 characters; anything else is dropped and counted.
STATSD_NAME = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")


def in_subnets(address: str, subnets: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
               gateways: frozenset[str] = frozenset()) -> bool:
    """Whether an address is in one of the subnets and is not one of their gateways (the Docker
    host itself: a published port reaches the container from the gateway of one of its networks)."""
    if address in gateways:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in subnet for subnet in subnets if subnet.version == ip.version)


class Statsd:
    """statsd intake: counters (per-second rate), gauges (last value), timers (mean, count). Only
    Statoshi nodes may send (`senders`: their addresses and (network, node), refreshed every poll),
    only sane names; each name goes under its sender's node."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counters: dict[str, float] = {}
        self.gauges: dict[str, float] = {}
        self.timers: dict[str, list[float]] = {}
        self.senders: dict[str, tuple[str, str]] = {}
        self.refused = 0

    def set_senders(self, senders: dict[str, tuple[str, str]]) -> None:
        """The Statoshi nodes now (address -> (network, node)); the values of a node that is gone are
        forgotten, so its last gauges do not go on being written as if it still reported them."""
        prefixes = tuple(f"peerlab.{network}.nodes.{node}.statoshi." for network, node in senders.values())
        with self.lock:
            self.senders = dict(senders)
            for kept in (self.counters, self.gauges, self.timers):
                for name in [name for name in kept if not name.startswith(prefixes)]:
                    del kept[name]

    def feed(self, packet: str, sender: str) -> None:
        if sender not in self.senders:
            self.refused += 1
            return
        network, node = self.senders[sender]
        prefix = f"peerlab.{network}.nodes.{node}.statoshi."
        for line in packet.splitlines():
            name, _sep, rest = line.partition(":")
            parts = rest.split("|")
            if not name or len(parts) < 2:
                continue
            if len(name) > 200 or not STATSD_NAME.match(name):
                self.refused += 1
                continue
            try:
                value = float(parts[0])
                rate = float(parts[2][1:]) if len(parts) > 2 and parts[2].startswith("@") else 1.0
            except ValueError:
                continue
            name = prefix + name
            with self.lock:
                if parts[1] == "c":
                    self.counters[name] = self.counters.get(name, 0.0) + value / (rate or 1.0)
                elif parts[1] == "g":
                    if parts[0][:1] in "+-" and name in self.gauges:
                        self.gauges[name] += value
                    else:
                        self.gauges[name] = value
                elif parts[1] == "ms":
                    self.timers.setdefault(name, []).append(value)

    def flush(self, interval: float) -> list[tuple[str, float]]:
        with self.lock:
            out = [(name, count / interval) for name, count in self.counters.items()]
            out += list(self.gauges.items())
            for name, values in self.timers.items():
                out += [(f"{name}.mean", statistics.fmean(values)), (f"{name}.count", len(values))]
            self.counters = {name: 0.0 for name in self.counters}
            self.timers = {}
        return out


# --------------------------------------------------------------------------------------------
# The loop

RPC_CALLS = [("getblockchaininfo", []), ("getpeerinfo", []), ("getnettotals", []), ("getmempoolinfo", []),
             ("getrawmempool", []), ("getchaintips", []), ("uptime", []), ("getchaintxstats", [1])]


class Collector:
    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.loaded_at = 0.0  # when the configuration last changed (monotonic)
        self.config_file = ConfigFile(CONFIG)
        self.latest: list[Sample] = []
        self.logs: dict[str, events.NodeLog] = {}
        self.tail = LogTail(HOST_DISK, self.publish)  # every node's log file, read by one thread
        self.cpu: dict[str, tuple[float, float]] = {}
        self.mempools: dict[str, set[str]] = {}
        self.accepted: dict[str, int] = {}
        self.restarts: dict[str, Restarts] = {}
        self.host_previous: dict[str, float] = {}
        self.carbon = Carbon()
        self.statsd = Statsd()
        self.bus: events.Bus | None = None
        self.self_cpu: tuple[float, float] | None = None
        self.cookies: dict[str, tuple[str, str]] = {}  # container id -> bitcoind's cookie
        self.cgroup_fallback = False  # said once: the engine's stats are empty, cgroups are read directly
        self.node_subnets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []  # no Prometheus from there
        self.node_gateways: frozenset[str] = frozenset()  # but from their gateways: the host
        self.polled_at = time.monotonic()  # when the last poll ended (from the start: a first poll's grace)

    def cookie(self, container_id: str, path: str, fresh: bool = False) -> tuple[str, str]:
        """bitcoind's cookie (user, password), read from its container at `path` (the configuration's:
        the engine knows where each chain keeps it)."""
        if fresh or container_id not in self.cookies:
            path = quote(path, safe="")
            self.cookies[container_id] = cookie_from_archive(docker(f"/containers/{container_id}/archive?path={path}", raw=True))
        return self.cookies[container_id]

    def rpc(self, spec: dict[str, Any], container_id: str, address: str) -> list[Any]:
        """The node's state in one batched call, as bitcoind's cookie user; a refused cookie is read again once."""
        for fresh in (False, True):
            user, password = self.cookie(container_id, spec["cookie"], fresh)
            try:
                return rpc_batch(address, int(spec["rpc_port"]), user, password, RPC_CALLS)
            except RpcAuthError:
                if fresh:
                    raise
        raise AssertionError("unreachable")

    def reload(self) -> None:
        config = self.config_file.changed()
        if config is not None:
            self.config, self.loaded_at = config, time.monotonic()
            log(f"configuration loaded: {sum(len(n['nodes']) for n in self.config.get('networks', {}).values())} nodes")
            if self.config.get("bus") and (self.bus is None or self.bus.address != self.config["bus"]):
                self.bus = events.Bus(self.config["bus"], f"peerlab-collector-{self.config.get('host', '')}").start()

    def publish(self, event: dict[str, Any]) -> None:
        if self.bus is not None:
            self.bus.publish_event(event)

    def poll_node(self, network: str, node: str, spec: dict[str, Any], container: dict[str, Any] | None,
                  names: dict[str, str], now: float, state: str = "", docker_network: str = "") -> list[Sample]:
        """One node's samples and its poll event; `container` is its inspect output when it runs, else
        None and `state` says what it is (paused, exited, created; '' when there is none)."""
        scope = ("node", network, node)
        key = f"{network}/{node}"
        out: list[Sample] = [Sample(scope, "up", 0)]
        if container is None:
            self.publish(events.make("poll", network, node, now, up=False, container=state or "absent"))
            return out
        nodelog = self.logs.setdefault(key, events.NodeLog(network, node))
        nodelog.names = names
        # A container not read before: from the last line an earlier container's read took, or from
        # two intervals ago (a collector that just started: the lines that made its first events).
        since = (events.epoch(nodelog.read_to) or 0.0) if nodelog.read_to else time.time() - 2 * self.interval
        if self.tail.follow(key, container["Id"], nodelog, since) and nodelog.read_to:
            nodelog.peers = {}  # another container: its peer ids are new
        # Its address on its network, from the inspect: no name lookup through Docker's DNS per poll.
        address = ((container.get("NetworkSettings", {}).get("Networks") or {}).get(docker_network) or {}).get("IPAddress")
        try:
            results = self.rpc(spec, container["Id"], address or spec["container"])
        except (OSError, DockerError, ValueError, StopIteration, tarfile.TarError, http.client.HTTPException) as error:
            log(f"{key}: RPC: {error}")
            results = [None] * len(RPC_CALLS)
        chain, peers, totals, mempool, rawmempool, tips, uptime, txstats = results
        restarts = self.restarts.setdefault(key, Restarts()).observe(container["Id"], int(container.get("RestartCount", 0)), uptime)
        # The node's own addresses: peers on other Docker hosts know it by these (the observer names them).
        addresses = sorted(net["IPAddress"] for net in (container.get("NetworkSettings", {}).get("Networks") or {}).values()
                           if net.get("IPAddress"))
        poll: dict[str, Any] = {"up": bool(chain), "container": "running", "restarts": restarts, "addresses": addresses}
        if chain:
            out[0] = Sample(scope, "up", 1)
            poll.update(tip=chain["bestblockhash"], height=chain["blocks"], headers=chain["headers"],
                        progress=chain.get("verificationprogress"))
            out += [Sample(scope, "chain.height", chain["blocks"]), Sample(scope, "chain.headers", chain["headers"]),
                    Sample(scope, "chain.tip", tip_id(chain["bestblockhash"])),
                    Sample(scope, "system.disk_size", chain.get("size_on_disk", 0))]
        if peers is not None:
            out += peer_samples(scope, peers, names)
            nodelog.learn_peers(peers)
            poll["peers"] = [{"id": peer.get("id"), "addr": peer.get("addr", ""), "node": names.get(events.peer_host(peer.get("addr", ""))),
                              "inbound": bool(peer.get("inbound")), "conn_type": peer.get("connection_type", ""),
                              "subver": peer.get("subver", ""), "bytessent": peer.get("bytessent", 0),
                              "bytesrecv": peer.get("bytesrecv", 0), "pingtime": peer.get("pingtime"),
                              "conntime": peer.get("conntime")}
                             for peer in peers]
        if totals:
            poll["bytes"] = {"sent": totals["totalbytessent"], "received": totals["totalbytesrecv"]}
            out += [Sample(scope, "bandwidth.bytes_sent", totals["totalbytessent"]),
                    Sample(scope, "bandwidth.bytes_received", totals["totalbytesrecv"])]
        if mempool:
            poll["mempool"] = {"size": mempool["size"], "bytes": mempool["bytes"]}
            out += [Sample(scope, "mempool.size", mempool["size"]), Sample(scope, "mempool.bytes", mempool["bytes"]),
                    Sample(scope, "mempool.usage", mempool["usage"]),
                    Sample(scope, "mempool.min_fee", mempool["mempoolminfee"])]
        if rawmempool is not None:
            current = set(rawmempool)
            before = self.mempools.get(key)
            self.accepted[key] = self.accepted.get(key, 0) + (len(current - before) if before is not None else 0)
            self.mempools[key] = current
            out.append(Sample(scope, "transactions.accepted", self.accepted[key]))
        if tips is not None:
            out += chain_tip_samples(scope, tips)
        if uptime is not None:
            poll["uptime"] = uptime
            out.append(Sample(scope, "uptime", uptime))
        out.append(Sample(scope, "restarts", restarts))
        labels = (container.get("Config") or {}).get("Labels") or {}
        if labels.get("peerlab.implementation"):  # which bitcoind this is, as the topology named it
            out.append(Sample(scope, "build", 1, (labels["peerlab.implementation"], labels.get("peerlab.version", ""))))
        if txstats:
            out.append(Sample(scope, "chain.transactions", txstats["txcount"]))
        self.publish(events.make("poll", network, node, now, **poll))
        try:
            # Once the engine's stats answered empty, the cgroups are read directly: the engine is not asked again.
            # (A container being removed can answer with an empty body.)
            stats = {} if self.cgroup_fallback else docker(f"/containers/{container['Id']}/stats?stream=false&one-shot=true") or {}
            if not stats.get("memory_stats"):  # the engine could not read the container's cgroup
                if not self.cgroup_fallback:
                    log("the engine's stats endpoint answers empty: reading containers' cgroups from " + HOST_CGROUP)
                    self.cgroup_fallback = True
                stats = cgroup_stats(int(container.get("State", {}).get("Pid", 0)))
            if stats.get("memory_stats"):  # nothing, rather than zeros, for a container that just went away
                samples, self.cpu[key] = container_samples(scope, stats, self.cpu.get(key), time.monotonic())
                out += samples
        except (OSError, DockerError) as error:
            log(f"{key}: stats: {error}")
        return out

    def health(self, now: float) -> str:
        """'' when the collector works: a poll ended within three intervals (a poll that hangs on the
        engine, or fails at every turn, shows here); else what is wrong."""
        quiet = now - self.polled_at
        if quiet > 3 * self.interval:
            return f"no poll for {quiet:.0f} s" if self.config else "no configuration"
        return ""

    @property
    def interval(self) -> float:
        return float(self.config.get("interval", 10))

    def poll(self) -> list[Sample]:
        now = time.time()
        containers = best_containers(docker("/containers/json?all=1&filters=" + quote(json.dumps({"label": ["peerlab.role=node"]}))))
        current = {summary["Id"] for summary in containers.values()}
        self.cookies = {container_id: cookie for container_id, cookie in self.cookies.items() if container_id in current}
        names: dict[str, str] = {}
        statoshi: dict[str, tuple[str, str]] = {}
        for (network, node), summary in containers.items():
            names[summary["Names"][0].lstrip("/")] = node
            for net in (summary.get("NetworkSettings", {}).get("Networks") or {}).values():
                if net.get("IPAddress"):
                    names[net["IPAddress"]] = node
                    if (summary.get("Labels") or {}).get("peerlab.implementation") == "statoshi":
                        statoshi[net["IPAddress"]] = (network, node)
        self.statsd.set_senders(statoshi)
        subnets, gateways = [], set()
        for spec in self.config.get("networks", {}).values():
            try:
                ipam = docker(f"/networks/{quote(spec.get('docker_network', ''), safe='')}").get("IPAM", {}).get("Config") or []
                subnets += [ipaddress.ip_network(entry["Subnet"], strict=False) for entry in ipam if entry.get("Subnet")]
                gateways |= {entry["Gateway"] for entry in ipam if entry.get("Gateway")}
            except (OSError, DockerError, ValueError) as error:
                log(f"network {spec.get('docker_network')}: {error}")
        self.node_subnets, self.node_gateways = subnets, frozenset(gateways)
        jobs = []
        with ThreadPoolExecutor(max_workers=16) as pool:
            for network, spec in self.config.get("networks", {}).items():
                for node, node_spec in spec.get("nodes", {}).items():
                    found = containers.get((network, node))
                    container = None
                    if found is not None and found.get("State") == "running":
                        try:
                            container = docker(f"/containers/{found['Id']}/json")
                        except (OSError, DockerError) as error:
                            log(f"{network}/{node}: inspect: {error}")
                    if container is None:
                        self.tail.drop(f"{network}/{node}")
                    job = pool.submit(self.poll_node, network, node, node_spec, container, names, now,
                                      (found or {}).get("State", ""), spec.get("docker_network", ""))
                    jobs.append(((network, node), job))
            samples = []
            for (network, node), job in jobs:
                try:
                    samples += job.result()
                except Exception as error:  # what the engine or a node answered is input: one node's poll never stops the rest
                    log(f"{network}/{node}: poll failed: {type(error).__name__}: {error}")
        host = self.config.get("host", socket.gethostname())
        samples += host_samples(host, HOST_PROC, HOST_DISK, self.host_previous)
        samples += self.self_samples(host)
        return samples

    def self_samples(self, host: str) -> list[Sample]:
        scope = ("host", host)
        times = os.times()
        cpu, now = times.user + times.system, time.monotonic()
        out = []
        if self.self_cpu is not None and now > self.self_cpu[1]:
            out.append(Sample(scope, "collector.cpu_percent", (cpu - self.self_cpu[0]) / (now - self.self_cpu[1]) * 100))
        self.self_cpu = (cpu, now)
        if self.bus is not None:  # events the bus could not take (its queue full while NATS was away)
            out += [Sample(scope, "collector.events_published", self.bus.published),
                    Sample(scope, "collector.events_dropped", self.bus.dropped)]
        try:
            with open("/proc/self/status", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        out.append(Sample(scope, "collector.memory_rss", int(line.split()[1]) * 1024))
        except OSError:
            pass
        return out

    def run(self) -> None:
        threading.Thread(target=serve_prometheus, args=(self,), daemon=True).start()
        threading.Thread(target=serve_statsd, args=(self.statsd,), daemon=True).start()
        threading.Thread(target=self.tail.run, name="logs", daemon=True).start()
        while not STOPPING.is_set():
            started = time.monotonic()
            self.reload()
            if self.config:
                try:
                    samples = self.poll()
                    took = time.monotonic() - started
                    samples.append(Sample(("host", self.config.get("host", "")), "collector.poll_seconds", took))
                    self.latest, self.polled_at = samples, time.monotonic()
                    when = int(time.time())
                    text = carbon_lines(samples, when)
                    text += "".join(f"{name} {number(value)} {when}\n" for name, value in self.statsd.flush(self.interval))
                    self.carbon.send(self.config.get("carbon", "peerlab-graphite:2003"), text)
                except Exception as error:  # a defect, or an answer not foreseen: said, and the next poll comes
                    log(f"poll failed: {type(error).__name__}: {error}")
            wait = self.interval
            if catching_up(self.latest, time.monotonic() - self.loaded_at):
                wait = CATCH_UP  # a node the configuration just added is not answering yet
            self.config_file.wait(max(0.5, wait - (time.monotonic() - started)))


def serve_prometheus(collector: Collector) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if in_subnets(self.client_address[0], collector.node_subnets, collector.node_gateways):
                self.send_error(403, "not from a node network")  # only the monitoring network and the host
                return
            path = self.path.split("?")[0]
            if path == "/healthz":  # the image's health check
                problem = collector.health(time.monotonic())
                status, body, kind = (503, f"{problem}\n".encode(), "text/plain") if problem else (200, b"ok\n", "text/plain")
            elif path == "/metrics":
                status, body, kind = 200, prometheus_text(collector.latest).encode(), "text/plain; version=0.0.4"
            else:
                self.send_error(404)
                return
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    QuietServer(("0.0.0.0", PROMETHEUS_PORT), Handler).serve_forever()


def serve_statsd(statsd: Statsd) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", STATSD_PORT))
    while True:
        packet, sender = sock.recvfrom(65535)
        statsd.feed(packet.decode("utf-8", "replace"), sender[0])


if __name__ == "__main__":
    stop_on_sigterm()
    log(f"starting; configuration {CONFIG}")
    while not os.path.exists(CONFIG) and not STOPPING.is_set():
        time.sleep(0.5)
    if not STOPPING.is_set():
        Collector().run()
    log("stopped")
