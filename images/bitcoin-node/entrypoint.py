#!/usr/bin/env python3
"""Render bitcoin.conf from the container's settings, then become bitcoind.

Settings (environment):
  PEERLAB_CHAIN       regtest | signet | testnet4 | testnet3 | mainnet   (default regtest)
  PEERLAB_RPCAUTH     space-separated rpcauth values (salted hashes; no password ever)
  PEERLAB_RPCALLOWIP  space-separated networks allowed to call RPC (default: none but localhost)
  PEERLAB_CONF        extra bitcoin.conf lines, newline-separated, already validated by peerlab
Arguments are passed on to bitcoind. Inside the container `bitcoin-cli <command>` works with no
extra arguments: it reads this bitcoin.conf (chain) and bitcoind's cookie from the data directory.
"""

from __future__ import annotations

import os
import sys

SECTIONS = {"mainnet": "main", "testnet3": "test", "testnet4": "testnet4", "signet": "signet", "regtest": "regtest"}
DATADIR = os.path.expanduser("~/.bitcoin")


def render(environ: dict[str, str]) -> str:
    chain = environ.get("PEERLAB_CHAIN", "regtest")
    if chain not in SECTIONS:
        raise SystemExit(f"peerlab-entrypoint: unknown PEERLAB_CHAIN {chain!r} ({', '.join(SECTIONS)})")
    section = SECTIONS[chain]
    lines = ["# Written by peerlab-entrypoint at container start. Change the topology, not this file.",
             f"chain={section}", "", f"[{section}]", "server=1", "listenonion=0", "printtoconsole=1"]
    allowed = environ.get("PEERLAB_RPCALLOWIP", "").split()
    if allowed:
        # Reachable on the container's own network only (localhost is always allowed); the image
        # never publishes RPC. Without PEERLAB_RPCALLOWIP, bitcoind's default binds localhost only.
        lines += ["rpcbind=0.0.0.0"] + [f"rpcallowip={network}" for network in allowed]
    lines += [f"rpcauth={entry}" for entry in environ.get("PEERLAB_RPCAUTH", "").split()]
    lines += [line.strip() for line in environ.get("PEERLAB_CONF", "").splitlines() if line.strip()]
    return "\n".join(lines) + "\n"


def main() -> None:
    os.makedirs(DATADIR, exist_ok=True)
    path = os.path.join(DATADIR, "bitcoin.conf")
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(render(dict(os.environ)))
    os.chmod(path + ".tmp", 0o600)
    os.replace(path + ".tmp", path)
    os.execvp("bitcoind", ["bitcoind", f"-datadir={DATADIR}", *sys.argv[1:]])


if __name__ == "__main__":
    main()
