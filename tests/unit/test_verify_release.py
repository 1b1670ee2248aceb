"""Bitcoin Core release verification fails closed (real gpg, throwaway keys)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = os.path.abspath("images/bitcoin-node/install/verify-release.py")
TARBALL = "bitcoin-99.0-x86_64-linux-gnu.tar.gz"


def gpg(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--no-tty", "--quiet", "--passphrase", "",
                           "--pinentry-mode", "loopback", *args], check=True, capture_output=True, text=True)


def make_signer(root: Path, name: str) -> Path:
    home = root / f"gnupg-{name}"
    home.mkdir(mode=0o700)
    gpg(home, "--quick-gen-key", f"{name} <{name}@example.invalid>", "ed25519", "sign", "never")
    return home


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("release")
    trusted, stranger = make_signer(root, "builder"), make_signer(root, "stranger")
    keys = root / "keys"
    keys.mkdir()
    (keys / "builder.asc").write_text(gpg(trusted, "--armor", "--export").stdout)
    return {"root": root, "trusted": trusted, "stranger": stranger, "keys": keys}


def stage(release: dict[str, Path], case: str, signer: str = "trusted") -> Path:
    work = release["root"] / case
    work.mkdir()
    (work / TARBALL).write_bytes(b"pretend bitcoind")
    digest = hashlib.sha256(b"pretend bitcoind").hexdigest()
    (work / "SHA256SUMS").write_text(f"{digest}  {TARBALL}\n{'0' * 64}  other.tar.gz\n")
    gpg(release[signer], "--armor", "--detach-sign", "--output", str(work / "SHA256SUMS.asc"), str(work / "SHA256SUMS"))
    return work


def verify(work: Path, keys: Path, minimum: int = 1) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, SCRIPT, "--sums", str(work / "SHA256SUMS"), "--signatures",
                           str(work / "SHA256SUMS.asc"), "--keys", str(keys), "--min-signatures", str(minimum),
                           str(work / TARBALL)], capture_output=True, text=True, check=False)


def test_a_signed_and_matching_release_passes(release: dict[str, Path]) -> None:
    result = verify(stage(release, "good"), release["keys"])
    assert result.returncode == 0, result.stderr
    assert "verified (1 builder signatures)" in result.stdout


def test_tampered_sha256sums_fails(release: dict[str, Path]) -> None:
    work = stage(release, "tampered-sums")
    sums = work / "SHA256SUMS"
    sums.write_text(sums.read_text().replace("0" * 64, "1" * 64))
    result = verify(work, release["keys"])
    assert result.returncode == 1
    assert "0 good signature(s)" in result.stderr


def test_missing_signature_file_fails(release: dict[str, Path]) -> None:
    work = stage(release, "unsigned")
    (work / "SHA256SUMS.asc").unlink()
    result = verify(work, release["keys"])
    assert result.returncode == 1 and "SHA256SUMS.asc is missing" in result.stderr


def test_signature_from_an_unknown_key_fails(release: dict[str, Path]) -> None:
    result = verify(stage(release, "stranger", signer="stranger"), release["keys"])
    assert result.returncode == 1 and "0 good signature(s)" in result.stderr


def test_too_few_signatures_fails(release: dict[str, Path]) -> None:
    result = verify(stage(release, "few"), release["keys"], minimum=2)
    assert result.returncode == 1 and "1 good signature(s) on" in result.stderr and "2 required" in result.stderr


def test_tampered_tarball_fails(release: dict[str, Path]) -> None:
    work = stage(release, "tampered-tarball")
    (work / TARBALL).write_bytes(b"evil bitcoind")
    result = verify(work, release["keys"])
    assert result.returncode == 1 and "does not match its SHA-256" in result.stderr


def test_no_builder_keys_fails(release: dict[str, Path], tmp_path: Path) -> None:
    result = verify(stage(release, "nokeys"), tmp_path)
    assert result.returncode == 1 and "no builder keys" in result.stderr
