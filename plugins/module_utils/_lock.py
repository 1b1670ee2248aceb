# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Locks on the controller, shared by the playbooks' action plugins and the portal.

* `locked(path)`: a file's read-modify-write (the credentials file, a topology file) under an
  exclusive lock beside it (`.<file>.lock`, hidden so no inventory plugin reads it).
* `hold_run(...)`: one run at a time per inventory. A run's first engine task takes the lock; a
  small helper process keeps it until the run's main process (ansible-playbook) ends, however it
  ends, so a killed run never leaves it behind. A second run waits a bounded time, then says who
  holds it. flock works across the portal's container and the host: both open the same file.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class LockBusy(Exception):
    """Another run holds the lock; the message says which."""


def lock_path(path: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.lock")


def _open(path: str) -> int:
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def _take(handle: int, timeout: float, busy: Callable[[], str]) -> None:
    """flock the handle, trying again until `timeout`; then LockBusy with what `busy` says."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                raise LockBusy(busy()) from None
            time.sleep(0.05)


@contextmanager
def locked(path: str, timeout: float = 60.0) -> Iterator[None]:
    """An exclusive lock beside `path`, held while the file is read, changed and written."""
    handle = _open(lock_path(path))
    try:
        _take(handle, timeout, lambda: f"{path} is locked by another process for more than {timeout:g} s")
        yield
    finally:
        os.close(handle)


def start_time(pid: int) -> str:
    """A process's start time (clock ticks since boot; '' where /proc has none): a PID and its start
    name one process, even after the PID is used again."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not started or start_time(pid) in ("", started)


# The helper: take the lock without waiting, say so, keep it while the run's process lives.
_HELPER = r"""
import fcntl, json, os, sys, time
path, pid, started, info = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
try:
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    print("busy", flush=True)
    sys.exit(0)
os.ftruncate(handle, 0)
os.write(handle, info.encode())
print("held", flush=True)
sys.stdout.close()
def alive():
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return not started or stat.read().rsplit(")", 1)[1].split()[19] == started
    except (OSError, IndexError):
        return True
while alive():
    time.sleep(0.3)
"""


def holder(path: str) -> dict[str, Any]:
    """What the holder of a run lock wrote about itself ({} when nothing readable)."""
    try:
        with open(path, encoding="utf-8") as handle:
            found = json.load(handle)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def describe(found: dict[str, Any]) -> str:
    if not found:
        return "another run (it wrote nothing about itself)"
    started = time.strftime("%H:%M:%S", time.localtime(float(found.get("since", 0))))
    return f"{found.get('what', 'a run')} (process {found.get('pid')} on {found.get('host')}, since {started})"


def hold_run(path: str, run_pid: int, what: str, timeout: float, poll: float = 0.5) -> bool:
    """Take the run lock `path` for the run whose main process is `run_pid` (and keep it until that
    process ends). True when this call took it, False when the run held it already. Raises LockBusy
    naming the holder after waiting `timeout` seconds."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    started = start_time(run_pid)
    info = json.dumps({"pid": run_pid, "started": started, "what": what, "host": socket.gethostname(), "since": time.time()})
    deadline = time.monotonic() + timeout
    while True:
        # Several hosts' tasks of one run ask at once: one of them starts the helper.
        with locked(path + ".take"):
            found = holder(path)
            if found.get("pid") == run_pid and found.get("started", "") == started and _held(path):
                return False
            if _start_helper(path, run_pid, started, info) == "held":
                return True
        if time.monotonic() > deadline:
            raise LockBusy(f"another run holds {path}: {describe(holder(path))}; waited {timeout:g} s "
                           "(peerlab_lock_timeout). Let it finish, or stop it; the lock goes with its process.")
        time.sleep(poll)


def _held(path: str) -> bool:
    """Whether some process holds the run lock now."""
    try:
        handle = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(handle)
    return False


def _start_helper(path: str, run_pid: int, started: str, info: str) -> str:
    """Start the helper detached (its own session: it outlives the task's worker) and read its answer."""
    process = subprocess.Popen([sys.executable, "-S", "-c", _HELPER, path, str(run_pid), started, info],
                               stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True, close_fds=True, text=True)
    if process.stdout is None:
        raise RuntimeError("the lock helper has no output pipe")
    answer = process.stdout.readline().strip()
    process.stdout.close()
    if answer != "held":
        process.wait(timeout=10)
    return answer


@contextmanager
def holding(path: str, what: str, timeout: float) -> Iterator[None]:
    """The run lock held by this process for a while (the portal's quick apply): waits up to
    `timeout` seconds, says who it is for a run that waits in turn, lets go at the end. Raises
    LockBusy naming the holder."""
    handle = _open(path)
    try:
        _take(handle, timeout, lambda: f"another run holds {path}: {describe(holder(path))}")
        os.ftruncate(handle, 0)
        os.write(handle, json.dumps({"pid": os.getpid(), "started": start_time(os.getpid()), "what": what,
                                     "host": socket.gethostname(), "since": time.time()}).encode())
        yield
    finally:
        os.close(handle)
