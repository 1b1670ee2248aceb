# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A scenario across Docker hosts: the conductor and its agents.

A Swarm network's nodes run on several Docker hosts, and a host reaches only its own nodes (their
RPC through its docker_gwbridge, their fault holders through its engine). So the scenario module
runs on every Docker host of the network at once: on a Swarm manager as the conductor (it runs the
timeline and writes the report), on each other host as an agent that does, on its own nodes, what
the conductor asks: an RPC call, the fault holders of a step, a container's state.

The agents reach the conductor over HTTP on the address its host advertises to the Swarm (the one
address every host of a Swarm reaches), on one port (the playbook's `scenario_hub_port`). Every
request and every answer is signed with this run's token (HMAC-SHA256 over the path, a time, a
nonce and the body); the token itself never travels, an answer is bound to its request's nonce, a
message older than SLACK seconds is refused, and the listener lives as long as the run. Nothing an
agent is sent can make it do more than its module could on its own host.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import itertools
import json
import queue
import secrets
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SLACK = 30.0  # seconds a signed message stays good (the hosts' clocks may differ by less)
POLL = 1.0  # seconds an agent's request for work waits on the conductor when there is none
LOST = 60.0  # seconds without the other side before a conductor or an agent gives up
MAX_BODY = 8 << 20


class HubError(Exception):
    """The other side could not be reached, refused us, or failed what it was asked (`kind`: the
    name of the agent's exception, or hub, timeout, lost)."""

    def __init__(self, message: str, kind: str = "hub", code: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code  # an RPC error's code (wallet not found, ...), as the agent got it


def sign(token: str, path: str, stamp: str, nonce: str, body: bytes) -> str:
    return hmac.new(token.encode(), f"{path}\n{stamp}\n{nonce}\n".encode() + body, hashlib.sha256).hexdigest()


def signed(token: str, path: str, body: bytes, nonce: str | None = None) -> dict[str, str]:
    stamp = f"{time.time():.3f}"
    nonce = nonce or secrets.token_hex(12)
    return {"X-Peerlab-Time": stamp, "X-Peerlab-Nonce": nonce, "X-Peerlab-Signature": sign(token, path, stamp, nonce, body)}


def genuine(token: str, path: str, headers: Any, body: bytes, nonce: str | None = None) -> bool:
    """Whether a message was signed with the token, recently, and (an answer) for our nonce."""
    stamp, their_nonce = headers.get("X-Peerlab-Time", ""), headers.get("X-Peerlab-Nonce", "")
    try:
        fresh = abs(time.time() - float(stamp)) <= SLACK
    except ValueError:
        return False
    if not fresh or (nonce is not None and their_nonce != nonce):
        return False
    return hmac.compare_digest(sign(token, path, stamp, their_nonce, body), headers.get("X-Peerlab-Signature", ""))


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


class Hub:
    """The conductor's side: a listener the agents ask for work and answer to."""

    def __init__(self, address: str, port: int, token: str, agents: list[str]) -> None:
        self.token = token
        self.agents = list(agents)
        self.work: dict[str, queue.Queue[dict[str, Any]]] = {host: queue.Queue() for host in agents}
        self.answers: dict[int, tuple[threading.Event, list[Any]]] = {}
        self.hellos: dict[str, dict[str, Any]] = {}
        self.heard: dict[str, float] = {}
        self.ended: set[str] = set()
        self.greeted = threading.Condition()
        self.ids = itertools.count(1)
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 <= length <= MAX_BODY:
                    self.send_error(413 if length > MAX_BODY else 400)
                    return
                body = self.rfile.read(length)
                if not genuine(hub.token, self.path, self.headers, body):
                    self.send_error(403, "not signed with this run's token")
                    return
                try:
                    payload = json.loads(body)
                    answer = hub.receive(self.path, payload)
                except (ValueError, KeyError, TypeError) as error:  # a malformed message: refused, the hub goes on
                    self.send_error(400, str(error)[:200])
                    return
                out = json.dumps(answer).encode()
                self.send_response(200)
                for key, value in signed(hub.token, "answer:" + self.path, out, self.headers["X-Peerlab-Nonce"]).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(out)))
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(out)

        self.server = _Server((address, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    def receive(self, path: str, payload: dict[str, Any]) -> Any:
        host = str(payload["host"])
        if host not in self.work:
            raise ValueError(f"{host} is not an agent of this run")
        self.heard[host] = time.monotonic()
        if path == "/hello":
            with self.greeted:
                self.hellos[host] = payload
                self.greeted.notify_all()
            return {"ok": True}
        if path == "/work":
            jobs = []
            try:
                jobs.append(self.work[host].get(timeout=POLL))
                while True:
                    jobs.append(self.work[host].get_nowait())
            except queue.Empty:
                pass
            if any(job.get("do") == "end" for job in jobs):
                self.ended.add(host)
            return {"jobs": jobs}
        if path == "/answer":
            waiting = self.answers.get(int(payload["id"]))
            if waiting is not None:
                waiting[1].append(payload)
                waiting[0].set()
            return {"ok": True}
        raise ValueError(f"no such path {path}")

    def wait_hellos(self, timeout: float) -> dict[str, dict[str, Any]]:
        """Every agent's hello; HubError naming the agents not heard from."""
        deadline = time.monotonic() + timeout
        with self.greeted:
            while len(self.hellos) < len(self.agents):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = ", ".join(host for host in self.agents if host not in self.hellos)
                    raise HubError(f"no word within {timeout:g} s from the agent(s) on {missing}")
                self.greeted.wait(left)
        return dict(self.hellos)

    def ask(self, host: str, job: dict[str, Any], timeout: float) -> Any:
        """Have the agent on `host` do `job`; its value, or its failure raised as
        HubError whose kind names its exception (the caller turns it back into its own)."""
        ident = next(self.ids)
        waiting: tuple[threading.Event, list[Any]] = (threading.Event(), [])
        self.answers[ident] = waiting
        try:
            self.work[host].put(dict(job, id=ident))
            deadline = time.monotonic() + timeout
            while not waiting[0].wait(0.5):
                if time.monotonic() > deadline:
                    raise HubError(f"the agent on {host} did not answer {job.get('do')} within {timeout:g} s", "timeout")
                if time.monotonic() - self.heard.get(host, 0.0) > LOST:
                    raise HubError(f"the agent on {host} has not asked for work for {LOST:g} s", "lost")
            answer = waiting[1][0]
        finally:
            self.answers.pop(ident, None)
        if not answer.get("ok"):
            raise HubError(str(answer.get("error") or "failed"), str(answer.get("type") or "error"), answer.get("code"))
        return answer.get("value")

    def close(self, timeout: float = 5.0) -> None:
        """Tell every agent the run is over (they end when they next ask), then stop listening."""
        for host in self.agents:
            self.work[host].put({"do": "end"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not set(self.hellos) <= self.ended:
            time.sleep(0.05)
        self.server.shutdown()
        self.server.server_close()


class Agent:
    """An agent's side: says hello to the conductor, then does what it is asked until told the run is over."""

    def __init__(self, candidates: list[str], port: int, token: str, host: str) -> None:
        self.candidates = list(candidates)
        self.port = port
        self.token = token
        self.host = host
        self.address = ""

    def post(self, path: str, payload: dict[str, Any], address: str | None = None, timeout: float = POLL + 10) -> Any:
        body = json.dumps(dict(payload, host=self.host)).encode()
        headers = signed(self.token, path, body)
        connection = http.client.HTTPConnection(address or self.address, self.port, timeout=timeout)
        try:
            connection.request("POST", path, body, {**headers, "Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise HubError(f"{path} answered HTTP {response.status} {response.reason}")
        if not genuine(self.token, "answer:" + path, response.headers, answer, headers["X-Peerlab-Nonce"]):
            raise HubError(f"{path}: an answer not signed with this run's token")
        return json.loads(answer)

    def hello(self, payload: dict[str, Any], timeout: float = LOST) -> str:
        """Find the conductor among the candidates (it may not listen yet) and greet it; its address."""
        deadline = time.monotonic() + timeout
        tried: dict[str, str] = {}
        while time.monotonic() < deadline:
            for address in self.candidates:
                try:
                    self.post("/hello", payload, address, timeout=5)
                    self.address = address
                    return address
                except (OSError, HubError, ValueError) as error:
                    tried[address] = str(error) or error.__class__.__name__
            time.sleep(0.5)
        said = "; ".join(f"{address}:{self.port}: {error}" for address, error in tried.items()) or "no Swarm manager address"
        raise HubError(f"the scenario's conductor could not be reached within {timeout:g} s ({said})")

    def serve(self, do: Callable[[dict[str, Any]], Any]) -> int:
        """Ask for work and do each job in a thread of its own (a watcher's RPC does not wait behind a
        fault step) until the conductor says the run is over; the number of jobs done. HubError when
        the conductor has not answered for LOST seconds."""
        done = 0
        last = time.monotonic()
        while True:
            try:
                jobs = self.post("/work", {})["jobs"]
                last = time.monotonic()
            except (OSError, HubError, ValueError) as error:
                if time.monotonic() - last > LOST:
                    raise HubError(f"the conductor at {self.address}:{self.port} has not answered for {LOST:g} s ({error})") from None
                time.sleep(0.5)
                continue
            for job in jobs:
                if job.get("do") == "end":
                    return done
                done += 1
                threading.Thread(target=self.answer, args=(do, job), daemon=True).start()

    def answer(self, do: Callable[[dict[str, Any]], Any], job: dict[str, Any]) -> None:
        try:
            reply = {"id": job["id"], "ok": True, "value": do(job)}
        except Exception as error:  # its failure goes back to the conductor, whose step reports it
            code = getattr(error, "code", None)
            reply = {"id": job["id"], "ok": False, "type": error.__class__.__name__, "error": str(error),
                     "code": code if isinstance(code, int) else None}
        for _attempt in range(3):
            try:
                self.post("/answer", reply)
                return
            except (OSError, HubError, ValueError):
                time.sleep(0.5)
