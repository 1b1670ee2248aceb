#!/usr/bin/env python3
"""Render bitcoin.conf from the container's settings, then become bitcoind.

Settings (environment):
  PEERLAB_CHAIN       regtest | signet | testnet4 | testnet3 | mainnet   (default regtest)
  PEERLAB_RPCAUTH     space-separated rpcauth values (salted hashes; no password ever)
  PEERLAB_RPCALLOWIP  space-separated networks allowed to call RPC (default: none but localhost);
                      `attached`: the networks this container is attached to (a Swarm task: its
                      overlay network and its host's docker_gwbridge, through which the host calls)
  PEERLAB_CONF        extra bitcoin.conf lines, newline-separated, already validated by peerlab
  PEERLAB_STATSD      host:port of the collector's statsd intake (Statoshi nodes): Statoshi always
                      sends to 127.0.0.1:8125, so a relay process forwards what arrives there
/etc/peerlab/peers, when mounted: the node's own outbound peers (host:port per line), rendered as
addnode lines, so a node restarted by its orchestrator reconnects without a deploy. peerlab
rewrites the file when the topology changes and applies the change through RPC at the same time.
Arguments are passed on to bitcoind. Inside the container `bitcoin-cli <command>` works with no
extra arguments: it reads this bitcoin.conf (chain) and bitcoind's cookie from the data directory.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import sys
import time

SECTIONS = {"mainnet": "main", "testnet3": "test", "testnet4": "testnet4", "signet": "signet", "regtest": "regtest"}
# Keys peerlab writes itself (plugins/module_utils/_conf.py MANAGED_KEYS; a unit test keeps the two
# equal): PEERLAB_CONF may not set them, nor their negation, whatever produced it.
MANAGED = frozenset({
    "chain", "regtest", "testnet", "testnet4", "signet", "datadir", "conf", "includeconf",
    "daemon", "daemonwait", "pid", "server", "rpcauth", "rpcuser", "rpcpassword", "rpcbind",
    "rpcallowip", "rpcport", "rpccookiefile", "port", "bind", "listenonion", "printtoconsole",
})
KEY = re.compile(r"^[a-z0-9][a-z0-9-]*$")
BREAKERS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029#]")
DATADIR = os.path.expanduser("~/.bitcoin")
PEERS_FILE = "/etc/peerlab/peers"
ROUTES = "/proc/net/route"


def attached_networks(routes: str) -> list[str]:
    """The networks of the container's interfaces: /proc/net/route's directly connected routes
    (no gateway, not the default route), as CIDR."""
    networks = []
    for line in routes.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[0] == "lo" or int(fields[2], 16) != 0 or int(fields[1], 16) == 0:
            continue
        # /proc/net/route writes addresses as little-endian hex.
        address = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
        mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
        networks.append(str(ipaddress.IPv4Network(f"{address}/{mask}", strict=False)))
    return sorted(set(networks))


def allowed_networks(setting: str, routes_path: str = ROUTES) -> list[str]:
    if setting.strip() != "attached":
        return setting.split()
    with open(routes_path, encoding="ascii") as handle:
        return attached_networks(handle.read())


def peer_lines(path: str = PEERS_FILE) -> list[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return [f"addnode={line.strip()}" for line in handle if line.strip() and not line.startswith("#")]
    except FileNotFoundError:
        return []


def conf_problems(text: str) -> list[str]:
    """Lines of PEERLAB_CONF that are not one `key=value` bitcoin.conf line of a key peerlab does not manage."""
    problems = []
    for line in text.split("\n"):
        key, equals, value = line.partition("=")
        if not line.strip():
            continue
        if not equals or not KEY.match(key):
            problems.append(f"{line!r} is not key=value with a plain key")
        elif key in MANAGED or (key.startswith("no") and key[2:] in MANAGED):
            problems.append(f"{line!r} sets {key}, which peerlab manages")
        elif BREAKERS.search(value):
            problems.append(f"{line!r} has a control character or '#' in its value")
    return problems


def render(environ: dict[str, str], routes_path: str = ROUTES, peers_path: str = PEERS_FILE) -> str:
    chain = environ.get("PEERLAB_CHAIN", "regtest")
    if chain not in SECTIONS:
        raise SystemExit(f"peerlab-entrypoint: unknown PEERLAB_CHAIN {chain!r} ({', '.join(SECTIONS)})")
    section = SECTIONS[chain]
    lines = ["# Written by peerlab-entrypoint at container start. Change the topology, not this file.",
             f"chain={section}", "", f"[{section}]", "server=1", "listenonion=0", "printtoconsole=1"]
    allowed = allowed_networks(environ.get("PEERLAB_RPCALLOWIP", ""), routes_path)
    if allowed:
        # Reachable on the container's own network only (localhost is always allowed); the image
        # never publishes RPC. Without PEERLAB_RPCALLOWIP, bitcoind's default binds localhost only.
        lines += ["rpcbind=0.0.0.0"] + [f"rpcallowip={network}" for network in allowed]
    lines += [f"rpcauth={entry}" for entry in environ.get("PEERLAB_RPCAUTH", "").split()]
    conf = environ.get("PEERLAB_CONF", "")
    problems = conf_problems(conf)
    if problems:
        raise SystemExit("peerlab-entrypoint: refusing PEERLAB_CONF: " + "; ".join(problems))
    lines += [line.strip() for line in conf.split("\n") if line.strip()]
    lines += peer_lines(peers_path)
    return "\n".join(lines) + "\n"


STATSD_LISTEN = ("127.0.0.1", 8125)   # where Statoshi sends (its StatsdClient's default; no option moves it)


STATSD_BATCH = 8192   # bytes of metric lines per datagram to the collector


def drain(inbound: socket.socket, first: bytes) -> list[bytes]:
    """`first` and every datagram already waiting, joined into newline-separated batches of at most
    STATSD_BATCH bytes: Statoshi sends one datagram per value, a thousand at once for each block
    (its fee estimates), and one datagram per batch keeps the collector's socket from overflowing."""
    batches, current = [], first
    inbound.setblocking(False)
    try:
        while True:
            try:
                data = inbound.recv(65535)
            except BlockingIOError:
                break
            if len(current) + 1 + len(data) > STATSD_BATCH:
                batches.append(current)
                current = data
            else:
                current += b"\n" + data
    finally:
        inbound.setblocking(True)
    return [*batches, current]


def relay_statsd(target: str, inbound: socket.socket) -> None:
    """Forward what arrives on `inbound` to target (host:port), in batches, resolving the host again
    every 30 s and after an error (the collector may be recreated with a new address). A lost
    datagram is lost: statsd is best effort."""
    host, _colon, port = target.rpartition(":")
    outbound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    address: tuple[str, int] | None = None
    resolved = 0.0
    while True:
        batches = drain(inbound, inbound.recv(65535))
        if address is None or time.monotonic() - resolved > 30:
            try:
                address, resolved = (socket.gethostbyname(host), int(port)), time.monotonic()
            except (OSError, ValueError):
                address = None
                continue
        try:
            for batch in batches:
                outbound.sendto(batch, address)
        except OSError:
            address = None


def start_statsd_relay(target: str) -> None:
    """A child process that outlives the exec below: bitcoind becomes PID 1, the relay its sibling."""
    inbound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    inbound.bind(STATSD_LISTEN)
    if os.fork() == 0:
        try:
            relay_statsd(target, inbound)
        finally:
            os._exit(0)
    inbound.close()


def main() -> None:
    if os.environ.get("PEERLAB_STATSD"):
        start_statsd_relay(os.environ["PEERLAB_STATSD"])
    os.makedirs(DATADIR, exist_ok=True)
    path = os.path.join(DATADIR, "bitcoin.conf")
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(render(dict(os.environ)))
    os.chmod(path + ".tmp", 0o600)
    os.replace(path + ".tmp", path)
    os.execvp("bitcoind", ["bitcoind", f"-datadir={DATADIR}", *sys.argv[1:]])


if __name__ == "__main__":
    main()
