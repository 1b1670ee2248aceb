"""The delay program (latency without netem): how many packets a second it holds, at what CPU, how exact.

Runs the program the fault holders run (plugins/module_utils/_delayer.py, the same source) in a
throwaway container of the node image, confined as a holder is (NET_ADMIN only, read-only root), on
its own loopback: an iptables rule sends UDP datagrams to port 9 into queue 1 (BENCH_DELAY ms,
default 10). A sender paces datagrams at each of BENCH_RATES packets/s for BENCH_SECONDS (3)
each; a receiver counts them and times each one's trip. For each rate it reports the packets that
arrived per second, those lost, the added delay (median, 99th percentile) and the delay program's
CPU (% of one core, from /proc over the run). `make bench-delay`; prints one JSON line per rate;
docs/benchmarks.md records it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))
from ansible_collections.peerlab.bitcoin.plugins.module_utils import _delayer, _netfault

# Inside the container: start the program, send to it, measure. Standard library only.
MEASURE = r'''
import json, os, socket, statistics, subprocess, sys, threading, time
delay, seconds, rates = float(sys.argv[1]), float(sys.argv[2]), [int(r) for r in sys.argv[3].split(",")]
program = subprocess.Popen(["python3", "-I", "/tmp/delayer.py", f"1:{delay:g}:0", "1"], stdout=subprocess.PIPE)
while not os.path.exists("/tmp/peerlab-delay-ready"):
    time.sleep(0.02)
subprocess.run(["iptables", "-w", "-A", "OUTPUT", "-o", "lo", "-p", "udp", "--dport", "9", "-j", "NFQUEUE",
                "--queue-num", "1", "--queue-bypass"], check=True)
def cpu():
    with open(f"/proc/{program.pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
receiver.bind(("127.0.0.1", 9))
for rate in rates:
    trips = []
    done = threading.Event()
    def receive():
        receiver.settimeout(0.2)
        while not done.is_set():
            try:
                data = receiver.recv(2048)
            except socket.timeout:
                continue
            trips.append(time.monotonic() - float(data[:20]))
    thread = threading.Thread(target=receive)
    thread.start()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    padding = b"x" * 80
    before, began = cpu(), time.monotonic()
    sent = 0
    while True:
        now = time.monotonic()
        if now - began >= seconds:
            break
        due = int((now - began) * rate) + 1
        while sent < due:
            sender.sendto(b"%20.6f" % time.monotonic() + padding, ("127.0.0.1", 9))
            sent += 1
        time.sleep(0.0005)
    time.sleep(delay / 1000 + 0.5)
    used = cpu() - before
    wall = time.monotonic() - began
    done.set()
    thread.join()
    trips.sort()
    print(json.dumps({"rate": rate, "sent": sent, "received": len(trips), "per_second": round(len(trips) / seconds),
                      "lost": sent - len(trips), "delay_median_ms": round(statistics.median(trips) * 1000, 2) if trips else None,
                      "delay_p99_ms": round(trips[int(len(trips) * 0.99) - 1] * 1000, 2) if trips else None,
                      "program_cpu_percent": round(100 * used / wall, 1)}), flush=True)
program.terminate()
'''


def main() -> None:
    client = docker.from_env()
    images = [tag for image in client.images.list() for tag in image.tags if tag.startswith("peerlab/bitcoin-node:")]
    if not images:
        sys.exit("no peerlab/bitcoin-node image: make images")
    delay = float(os.environ.get("BENCH_DELAY", "10"))
    seconds = float(os.environ.get("BENCH_SECONDS", "3"))
    rates = os.environ.get("BENCH_RATES", "1000,5000,10000,20000")
    source = Path(_delayer.__file__).read_text()
    script = (f"cat > /tmp/delayer.py <<'PEERLAB_DELAY'\n{source}PEERLAB_DELAY\n"
              f"python3 -I - {delay:g} {seconds:g} {rates} <<'EOF'\n{MEASURE}\nEOF\n")
    confined = dict(_netfault.CONFINED)
    output = client.containers.run(
        images[0], ["-c", script], entrypoint=["/bin/sh"], user="root", network_mode="none", remove=True,
        cap_drop=confined["CapDrop"], cap_add=confined["CapAdd"], security_opt=confined["SecurityOpt"],
        read_only=True, tmpfs=confined["Tmpfs"], labels={"peerlab.role": "bench"})
    for line in output.decode().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            entry.update({"bench": "delay", "declared_ms": delay, "image": images[0]})
            print(json.dumps(entry))


if __name__ == "__main__":
    main()
