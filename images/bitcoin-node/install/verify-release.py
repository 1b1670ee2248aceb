#!/usr/bin/env python3
"""Verify a Bitcoin Core release the way its release notes ask, and fail closed.

1. SHA256SUMS.asc must carry at least --min-signatures good signatures made by distinct keys
   from --keys (the builders' public keys, ASCII-armoured, one or more per file).
2. Each given file's SHA-256 must be listed in SHA256SUMS, and match.
Any doubt (no keys, no signature file, too few good signatures, a file missing from SHA256SUMS,
a mismatch) exits non-zero with a message saying which.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile


def fail(message: str) -> None:
    print(f"verify-release: {message}", file=sys.stderr)
    sys.exit(1)


def good_signers(sums: str, signatures: str, key_files: list[str]) -> set[str]:
    with tempfile.TemporaryDirectory() as home:
        os.chmod(home, 0o700)
        gpg = ["gpg", "--homedir", home, "--batch", "--no-tty", "--quiet"]
        for key_file in key_files:
            subprocess.run([*gpg, "--import", key_file], check=False, capture_output=True)
        # gpg exits non-zero when any signature is from an unknown key; count VALIDSIG lines instead.
        verify = subprocess.run([*gpg, "--status-fd", "1", "--verify", signatures, sums],
                                capture_output=True, text=True, check=False)
        return {line.split()[2] for line in verify.stdout.splitlines() if line.startswith("[GNUPG:] VALIDSIG ")}


def listed_hashes(sums: str) -> dict[str, str]:
    hashes = {}
    with open(sums, encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 2:
                hashes[parts[1].lstrip("*")] = parts[0].lower()
    return hashes


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sums", required=True)
    parser.add_argument("--signatures", required=True)
    parser.add_argument("--keys", required=True, help="directory of builder public keys (*.asc, *.gpg)")
    parser.add_argument("--min-signatures", type=int, default=3)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    if args.min_signatures < 1:
        fail("--min-signatures must be at least 1")
    for path in (args.sums, args.signatures):
        if not os.path.isfile(path):
            fail(f"{path} is missing")
    key_files = sorted(os.path.join(args.keys, name) for name in os.listdir(args.keys)
                       if name.endswith((".asc", ".gpg"))) if os.path.isdir(args.keys) else []
    if not key_files:
        fail(f"no builder keys in {args.keys}: add the builders' public keys (see keys/core/README.md)")
    signers = good_signers(args.sums, args.signatures, key_files)
    if len(signers) < args.min_signatures:
        fail(f"{len(signers)} good signature(s) on {args.sums} from known builders, "
             f"{args.min_signatures} required")
    hashes = listed_hashes(args.sums)
    for path in args.files:
        name = os.path.basename(path)
        if name not in hashes:
            fail(f"{name} is not listed in {args.sums}")
        if sha256(path) != hashes[name]:
            fail(f"{name} does not match its SHA-256 in {args.sums}: the download is corrupt or tampered with")
    print(f"verify-release: {', '.join(os.path.basename(f) for f in args.files)} verified "
          f"({len(signers)} builder signatures)")


if __name__ == "__main__":
    main()
