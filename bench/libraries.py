"""The observer's protocol code against kept libraries: CPU per event of each.

Two comparisons, each in processes of their own on this machine, the same events (a typical
`msg` event, 200 bytes of JSON) at the same rate:
  - the bus: a NATS subscriber taking every event, the hand-written client (images/collector/
    events.py `Bus`) against nats-py (asyncio; PyPI's, installed at image build if chosen);
  - the feed: a websocket server sending every event to one reader: the observer's (images/
    collector/observer.py `FeedServer`, on websockets since commit d41007a, where this bench also
    ran the hand-written server it replaced) and websockets' threaded server alone (Debian
    trixie's python3-websockets 15.0.1).
CPU is the measured process's own (every thread), from its first event to its last. The NATS server
runs in a container of the observer image (Debian's nats-server), published on 127.0.0.1 only,
labelled and removed. `make bench-libraries` (BENCH_EVENTS, BENCH_RATE); docs/events.md records it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
EVENTS = int(os.environ.get("BENCH_EVENTS", "20000"))
RATE = float(os.environ.get("BENCH_RATE", "1000"))   # events a second (bursts of RATE/100 every 10 ms)
OBSERVED_RATE = 90.0                                  # events a second of 20 nodes under traffic (make bench-observer)
NATS_PORT, FEED_PORT = 14322, 14323
EVENT = {"v": 1, "kind": "msg", "network": "lab", "node": "n1", "time": 1764617621.481234, "dir": "in", "type": "inv",
         "size": 37, "peer": 3, "addr": "172.18.0.3:18444", "conn_type": "outbound-full-relay", "peer_node": "n2"}
PAYLOAD = json.dumps(EVENT, separators=(",", ":")).encode()

# Each measured program prints {"cpu": seconds, "wall": seconds, "events": n} when it has taken EVENTS.
COMMON = f"""
import json, os, sys, threading, time
sys.path[:0] = [{str(ROOT / "images" / "collector")!r}, {str(ROOT / "images" / "observer")!r}]
EVENTS, PAYLOAD = {EVENTS}, {PAYLOAD!r}
state = {{"n": 0, "cpu": 0.0, "wall": 0.0}}
done = threading.Event()
def took():
    if state["n"] == 0:
        state["cpu"], state["wall"] = time.process_time(), time.monotonic()
    state["n"] += 1
    if state["n"] == EVENTS:
        print(json.dumps({{"cpu": time.process_time() - state["cpu"], "wall": time.monotonic() - state["wall"], "events": EVENTS}}),
              flush=True)
        done.set()
def paced(send):
    burst = max(1, int({RATE} / 100))
    start = time.monotonic()
    for index in range(0, EVENTS + burst, burst):
        for _ in range(burst):
            send()
        delay = start + (index + burst) / {RATE} - time.monotonic()
        if delay > 0:
            time.sleep(delay)
"""

PROGRAMS = {
    "bus-handwritten": """
import events
bus = events.Bus("127.0.0.1:%(nats)d", "bench", lambda subject, payload: took())
bus.subscribe("peerlab.>")
bus.start()
print("ready", flush=True)
done.wait()
""",
    "bus-nats-py": """
import asyncio, nats
async def main():
    client = await nats.connect("nats://127.0.0.1:%(nats)d", name="bench")
    async def on(message):
        took()
    await client.subscribe("peerlab.>", cb=on)
    await client.flush()
    print("ready", flush=True)
    while not done.is_set():
        await asyncio.sleep(0.1)
    await client.close()
asyncio.run(main())
""",
    "bus-publisher": """
import events
bus = events.Bus("127.0.0.1:%(nats)d", "bench-publisher").start()
bus.connected.wait(10)
paced(lambda: bus.publish("peerlab.lab.n1.msg", PAYLOAD))
time.sleep(2)
""",
    "feed-observer": """
import observer
obs = observer.Observer()
obs.config = {"feed_origins": []}
observer.FeedServer(obs, ("127.0.0.1", %(feed)d)).start()
print("ready", flush=True)
while not obs.feed.subscribers:
    time.sleep(0.01)
event = json.loads(PAYLOAD)
def send():
    obs.feed.broadcast(event, PAYLOAD)
    took()
paced(send)
done.wait()
""",
    "feed-websockets": """
import queue, events
from websockets.sync.server import serve
readers = []
def handler(connection):
    frames = queue.Queue(maxsize=10000)
    readers.append(frames)
    try:
        while True:
            connection.send(frames.get().decode())
    except Exception:  # the reader left
        pass
server = serve(handler, "127.0.0.1", %(feed)d, origins=[None], max_size=4096, compression=None)
threading.Thread(target=server.serve_forever, daemon=True).start()
print("ready", flush=True)
while not readers:
    time.sleep(0.01)
event = json.loads(PAYLOAD)
def send():
    if events.matches(event):
        readers[0].put_nowait(PAYLOAD)
    took()
paced(send)
done.wait()
""",
    "feed-reader": """
from websockets.sync.client import connect
with connect("ws://127.0.0.1:%(feed)d/events", max_size=None, compression=None) as connection:
    for _ in range(EVENTS):
        connection.recv()
""",
}


def start(name: str) -> subprocess.Popen[str]:
    code = COMMON + PROGRAMS[name] % {"nats": NATS_PORT, "feed": FEED_PORT}
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def ready(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError(f"a measured program did not start: {line!r}")


def result(process: subprocess.Popen[str]) -> dict[str, float]:
    assert process.stdout is not None
    found: dict[str, float] = json.loads(process.stdout.readline())
    process.wait(timeout=30)
    return found


def bus(name: str) -> dict[str, float]:
    subscriber = start(name)
    ready(subscriber)
    time.sleep(0.5)  # its subscription reached the server
    publisher = start("bus-publisher")
    measured = result(subscriber)
    publisher.wait(timeout=60)
    return measured


def feed(name: str) -> dict[str, float]:
    server = start(name)
    ready(server)
    reader = start("feed-reader")
    measured = result(server)
    reader.wait(timeout=60)
    return measured


def main() -> int:
    client = docker.from_env()
    images = sorted((tag for image in client.images.list(name="peerlab/observer") for tag in image.tags), reverse=True)
    if not images:
        print("no peerlab/observer image here (it carries nats-server): `make deploy` (or the images role) builds it", file=sys.stderr)
        return 2
    nats = client.containers.run(images[0], entrypoint=["nats-server", "-a", "0.0.0.0", "-p", "4222"], detach=True,
                                 name=f"peerlab-bench-libraries-{os.getpid()}", labels={"peerlab.role": "bench"},
                                 ports={"4222/tcp": ("127.0.0.1", NATS_PORT)})
    rows = {}
    try:
        time.sleep(1)
        for name in ("bus-handwritten", "bus-nats-py"):
            rows[name] = bus(name)
        for name in ("feed-observer", "feed-websockets"):
            rows[name] = feed(name)
    finally:
        nats.remove(force=True)
        client.close()
    out = {}
    for name, measured in rows.items():
        per_event = measured["cpu"] / measured["events"]
        out[name] = {"cpu_us_per_event": round(per_event * 1e6, 1), "events_per_s": round(measured["events"] / measured["wall"]),
                     "core_pct_at_90_events_per_s": round(per_event * OBSERVED_RATE * 100, 3)}
    print(json.dumps({"events": EVENTS, "rate": RATE, "results": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
