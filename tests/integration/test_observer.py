"""The Observer as a user meets it, on the default lab's shape (5 nodes, a ring with two chords):
live events from `make events` and the websocket feed, quiet traffic without an alert (a minute
here, five in `make soak`), then each real attack and the detector that must fire within two
collection intervals."""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from .conftest import BIN, ROOT, Lab, cli, remove_docker_network, remove_network, wait_for

sys.path.insert(0, str(ROOT / "tools"))
import eventlog as logger

# Measures time (detectors must fire within two collection intervals): make test runs it alone (tests/together.sh).
pytestmark = pytest.mark.timing

NETWORK = "obs"
NODES = ["n1", "n2", "n3", "n4", "n5"]
INTERVAL = 10  # the collector's default poll interval
QUIET_SECONDS = int(os.environ.get("QUIET_SECONDS", "60"))  # of ordinary traffic that must raise no alert
FEED = "ws://127.0.0.1:18091/events"
OBSERVER_METRICS = "http://127.0.0.1:19333/metrics"
ADDRESS = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
# Names of their own, so the test never touches a lab (or its monitoring) the user runs here.
MONITORING = {
    "peerlab_monitoring": True,
    "graphite_container": "peerlab-obs-graphite",
    "graphite_volume": "peerlab-obs-graphite-data",
    "graphite_network": "peerlab-obs-monitoring",
    "graphite_publish": "",
    "collector_container": "peerlab-obs-collector",
    "collector_prometheus_publish": "",
    "observer_bus_container": "peerlab-obs-bus",
    "observer_container": "peerlab-obs-observer",
    "observer_events_volume": "peerlab-obs-events",
    "observer_events_publish": "127.0.0.1:18091",
    "observer_prometheus_publish": "127.0.0.1:19333",
    "grafana_container": "peerlab-obs-grafana",
    "grafana_volume": "peerlab-obs-grafana-data",
    "grafana_publish": "",
    "alertmanager_container": "peerlab-obs-alertmanager",
    "alertmanager_volume": "peerlab-obs-alertmanager-data",
    "alertmanager_publish": "127.0.0.1:19093",
    # a webhook receiver this test runs (it prints what it is sent), alerts grouped for 2 s only
    "alertmanager_receivers": [{"name": "test-hook",
                                "webhook_configs": [{"url": "http://peerlab-obs-webhook:8080/", "send_resolved": False}]}],
    "alertmanager_route": {"group_wait": "2s"},
}
ALERTMANAGER = "http://127.0.0.1:19093"
WEBHOOK = """
import http.server, sys
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        sys.stdout.write(body.decode() + "\\n")
        sys.stdout.flush()
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("0.0.0.0", 8080), Hook).serve_forever()
"""


def default_topology() -> dict[str, Any]:
    """The default lab (inventories/local), under this test's network name."""
    document = yaml.safe_load((ROOT / "inventories" / "local" / "02-topology.peerlab.yml").read_text())
    return {NETWORK: document["networks"]["lab"]}


def remove_monitoring(client: docker.DockerClient) -> None:
    for name in ("peerlab-obs-observer", "peerlab-obs-bus", "peerlab-obs-collector", "peerlab-obs-graphite", "peerlab-obs-grafana",
                 "peerlab-obs-alertmanager", "peerlab-obs-webhook"):
        for container in client.containers.list(all=True, filters={"name": f"^{name}$"}):
            container.remove(force=True, v=True)
    for volume in client.volumes.list(filters={"name": "peerlab-obs-"}):
        volume.remove(force=True)
    for network in client.networks.list(names=["peerlab-obs-monitoring"]):
        remove_docker_network(network)


class Alerts:
    """Every alert of the feed, with the time it arrived, collected by a websocket client."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                for event in logger.stream(FEED, NETWORK, types="alert", timeout=5):
                    if event is not None:
                        with self.lock:
                            self.seen.append((time.time(), event))
            except OSError:
                time.sleep(1)

    def since(self, start: float) -> list[tuple[float, dict[str, Any]]]:
        with self.lock:
            return [(when, alert) for when, alert in self.seen if when >= start]

    def fired(self, detector: str, node: str, start: float) -> float | None:
        """When `detector` first fired for `node` after `start` (None: not yet)."""
        return next((when for when, alert in self.since(start) if alert["detector"] == detector and alert["node"] == node), None)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    client = docker.from_env()
    remove_network(client, NETWORK)
    remove_monitoring(client)
    directory: Path = tmp_path_factory.mktemp("observer")
    made = Lab(directory, default_topology(), dict(MONITORING, peerlab_state_dir=str(directory / "state")))
    deployed = made.playbook("deploy.yml")
    assert deployed.rc == 0, deployed.output[-3000:]
    collector_image = client.containers.get("peerlab-obs-collector").image
    client.containers.run(collector_image, entrypoint=["python3", "-u", "-c", WEBHOOK], name="peerlab-obs-webhook",
                          network="peerlab-obs-monitoring", labels={"peerlab.test": "observer"}, healthcheck={"Test": ["NONE"]},
                          detach=True)
    yield made
    remove_network(client, NETWORK)
    remove_monitoring(client)
    client.close()


@pytest.fixture(scope="module")
def alerts(lab: Lab) -> Alerts:
    assert wait_for(healthy, timeout=60), "the observer answers /healthz once the bus is up"
    return Alerts()


def healthy() -> bool:
    try:
        with urllib.request.urlopen(OBSERVER_METRICS.replace("/metrics", "/healthz"), timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def observer_metrics() -> dict[str, float]:
    with urllib.request.urlopen(OBSERVER_METRICS, timeout=10) as response:
        text = response.read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}


def notified(client: docker.DockerClient) -> list[dict[str, Any]]:
    """Every alert the webhook receiver was sent by Alertmanager, one entry per notification."""
    logs = client.containers.get("peerlab-obs-webhook").logs(stdout=True, stderr=False).decode()
    return [alert for line in logs.splitlines() if line.startswith("{") for alert in json.loads(line)["alerts"]]


def alertmanager(lab: Lab, method: str, path: str, body: Any = None) -> Any:
    """Alertmanager's API as a person uses it: user peerlab, the password generated into the secrets."""
    stored = yaml.safe_load((lab.directory / "secrets" / "alertmanager.yml").read_text())
    password = stored["alertmanager"]["peerlab"]["password"]
    request = urllib.request.Request(f"{ALERTMANAGER}/api/v2{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json", "Authorization": "Basic " + base64.b64encode(
                                         f"peerlab:{password}".encode()).decode()})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return json.loads(text) if text else None


def attack(lab: Lab, kind: str, node: str, *extra: str) -> tuple[float, float]:
    started = time.time()
    run = lab.playbook("playbooks/attack.yml", "-e", f"attack={kind}", "--limit", f"{NETWORK}-{node}", *extra)
    assert run.rc == 0, run.output[-3000:]
    return started, time.time()


def test_make_events_and_the_websocket_feed_show_the_labs_messages(lab: Lab, alerts: Alerts, client: docker.DockerClient) -> None:
    # `make events` (the logger), filtered to two nodes and three types, while n1 mines one block;
    # a websocket client reads the unfiltered feed at the same time.
    env = dict(os.environ, NETWORK=NETWORK, NODE="n2,n4", TYPE="block,cmpctblock,headers", DURATION="12",
               PEERLAB_EVENTS_URL=FEED, PATH=f"{BIN}:{os.environ['PATH']}")
    make = subprocess.Popen(["make", "-s", "events"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    feed: list[dict[str, Any]] = []
    subscribed = threading.Event()

    def read_feed() -> None:
        deadline = time.monotonic() + 12
        for event in logger.stream(FEED, NETWORK, timeout=1):
            subscribed.set()  # the feed's first answer: subscribed
            if time.monotonic() > deadline:
                break
            if event is not None:
                feed.append(event)

    reader = threading.Thread(target=read_feed)
    reader.start()
    assert make.stdout is not None
    first = make.stdout.readline()  # the logger says so once the feed has its subscription
    assert first.startswith(f"peerlab events: following {FEED}"), first
    assert subscribed.wait(timeout=30)
    mined = cli(client, f"{NETWORK}-n1", "generatetoaddress", "1", ADDRESS)[0]
    height = int(cli(client, f"{NETWORK}-n1", "getblockcount"))
    output = first + make.communicate(timeout=60)[0]
    reader.join(timeout=30)
    assert make.returncode == 0, output
    lines = output.splitlines()
    # the logger: the block on both chosen nodes, the messages that carried it between real peers
    assert any(f"{NETWORK}/n2 # BLOCK {height} {mined}" in line for line in lines), output
    assert any(f"{NETWORK}/n4 # BLOCK {height} {mined}" in line for line in lines), output
    assert any(f"{NETWORK}/n2 <-- from n1 (" in line and ": cmpctblock (" in line for line in lines), output
    assert not any(f"{NETWORK}/n1 " in line or f"{NETWORK}/n3 " in line for line in lines), "the node filter holds"
    # the websocket feed: every node took the block, n1 mined it, and cmpctblock went only along edges
    blocks = {event["node"]: event for event in feed if event["kind"] == "block" and event["hash"] == mined}
    assert sorted(blocks) == NODES and blocks["n1"]["mined"] and not any(blocks[node]["mined"] for node in NODES[1:])
    edges = {tuple(sorted((node, f"n{int(node[1]) % 5 + 1}"))) for node in NODES} | {("n1", "n3"), ("n2", "n5")}
    relayed = {tuple(sorted((event["node"], event["peer_node"]))) for event in feed
               if event["kind"] == "msg" and event["type"] in ("cmpctblock", "headers") and event.get("peer_node")}
    assert relayed and relayed <= edges, relayed
    # the same events reach both: every block line the logger printed is one the feed carried
    assert {(event["node"], event["height"]) for event in feed if event["kind"] == "block" and event["node"] in ("n2", "n4")} == {
        ("n2", height), ("n4", height)}
    propagation = [event for event in feed if event["kind"] == "propagation" and event["hash"] == mined]
    assert len(propagation) == 1 and propagation[0]["first"] == "n1" and 0 <= propagation[0]["seconds"] < 10


def test_nothing_in_a_lab_can_reach_the_bus(lab: Lab, alerts: Alerts, client: docker.DockerClient) -> None:
    # a node (like an attack container joined to the lab's network) has no route to the bus or the
    # observer: they are on the monitoring network only, so nothing in the lab can publish
    probe = ("import socket, sys\n"
             "for host, port in (('peerlab-obs-bus', 4222), ('peerlab-obs-observer', 8091)):\n"
             "    try:\n"
             "        socket.create_connection((host, port), timeout=3).close()\n"
             "    except OSError as error:\n"
             "        print(host, type(error).__name__)\n"
             "    else:\n"
             "        sys.exit(host + ' reachable')\n")
    result = client.containers.get(f"{NETWORK}-n1").exec_run(["python3", "-c", probe])
    assert result.exit_code == 0, result.output.decode()
    assert result.output.decode().split() == ["peerlab-obs-bus", "gaierror", "peerlab-obs-observer", "gaierror"]


def test_network_metrics_from_the_observer_are_true(lab: Lab, alerts: Alerts, client: docker.DockerClient) -> None:
    # its own traffic (a quiet lab sends a ping every two minutes): n1 sends a new block to its peers
    cli(client, f"{NETWORK}-n1", "generatetoaddress", "1", ADDRESS)

    def settled() -> dict[str, float] | None:
        # /metrics is the observer's last interval's samples: one taken while the block was still
        # on its way shows part of the network on the old tip, so wait for the network to agree.
        values = observer_metrics()
        sent = [key for key in values if key.startswith(f'peerlab_network_traffic{{network="{NETWORK}",source="n1",')]
        agreed = values.get(f'peerlab_network_tip_agreement{{network="{NETWORK}"}}') == 1
        return values if values.get(f'peerlab_network_edges_connected{{network="{NETWORK}"}}') == 7 and sent and agreed else None

    values = wait_for(settled, timeout=4 * INTERVAL, interval=2)
    observer = client.containers.get("peerlab-obs-observer").attrs
    assert values, (observer_metrics(), observer["RestartCount"], observer["State"]["StartedAt"])
    assert values[f'peerlab_network_nodes_up{{network="{NETWORK}"}}'] == 5
    assert values[f'peerlab_network_tip_agreement{{network="{NETWORK}"}}'] == 1
    assert values[f'peerlab_network_edges_expected{{network="{NETWORK}"}}'] == 7
    traffic = {key: value for key, value in values.items() if key.startswith("peerlab_network_traffic{")}
    assert traffic and all(value > 0 for value in traffic.values())


def replayed(block: str) -> set[str]:
    """The nodes whose taking `block` as tip `make replay` finds in the archive."""
    env = dict(os.environ, OBSERVER="peerlab-obs-observer", SINCE="-900", TYPE="block", JSON="1", NETWORK=NETWORK,
               PATH=f"{BIN}:{os.environ['PATH']}")
    result = subprocess.run(["make", "-s", "replay"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    found = [json.loads(line) for line in result.stdout.splitlines()]
    return {event["node"] for event in found if event["kind"] == "block" and event["hash"] == block}  # TYPE=block: messages too


def test_replay_gives_back_the_archived_events(lab: Lab, alerts: Alerts, client: docker.DockerClient) -> None:
    best = cli(client, f"{NETWORK}-n1", "getbestblockhash")
    # the archive is written once per interval: the block every node took is in it by then
    assert wait_for(lambda: replayed(best) == set(NODES), timeout=3 * INTERVAL, interval=3), replayed(best)


def block_on_the_feed(client: docker.DockerClient) -> tuple[str, set[str]]:
    """Mine a block on n1: its hash, and the nodes the feed showed taking it (live)."""
    seen: set[str] = set()
    events = logger.stream(FEED, NETWORK, types="block", timeout=1)
    next(events)  # subscribed
    mined = cli(client, f"{NETWORK}-n1", "generatetoaddress", "1", ADDRESS)[0]
    deadline = time.monotonic() + 3 * INTERVAL
    for event in events:
        if event is not None and event.get("hash") == mined:
            seen.add(event["node"])
        if seen == set(NODES) or time.monotonic() > deadline:
            break
    events.close()
    return mined, seen


def test_after_the_bus_restarts_events_flow_again_by_themselves(lab: Lab, alerts: Alerts, client: docker.DockerClient) -> None:
    bus = client.containers.get("peerlab-obs-bus")
    bus.restart(timeout=2)
    assert wait_for(healthy, timeout=30), "the observer is connected again"
    # The collector connects again on its own (an attempt a second); until then what it reads waits
    # in its queue. A block seen live on the feed by every node proves the whole path is back.
    mined, seen = block_on_the_feed(client)
    assert seen == set(NODES), seen
    assert wait_for(lambda: replayed(mined) == set(NODES), timeout=3 * INTERVAL, interval=3), replayed(mined)


# Published on the bus from the collector's container (on the monitoring network, like any client of
# the bus): a block without its height (it once ended the observer's reader), payloads that are no
# object, a null peer, bytes that are no JSON; then PING, and its PONG says the server has them all.
PUBLISH_BAD = r"""
import socket
bad = [b'{"v":1,"kind":"block","network":"obs","node":"n1","time":1}', b'[]', b'1',
       b'{"v":1,"kind":"msg","network":"obs","node":"n1","time":1,"dir":"in","type":"inv","size":1,"peer":null}',
       bytes(range(256))]
sock = socket.create_connection(("peerlab-obs-bus", 4222), timeout=10)
reader = sock.makefile("rb")
reader.readline()
frames = b"".join(b"PUB peerlab.obs.n1.block %d\r\n%s\r\n" % (len(each), each) for each in bad)
sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n' + frames + b"PING\r\n")
while not reader.readline().startswith(b"PONG"):
    pass
print("published", len(bad))
"""

# Then 10,000 seeded random payloads on every kind's subject (and others): random bytes, random
# JSON, and events of every kind with fields given values of other types. Of another network
# ("fuzz"): the few that fit the schema must not change what the lab's detectors know.
FUZZ = r"""
import json, random, socket
rng = random.Random(25)
kinds = ["msg", "conn", "block", "tx", "addr", "poll", "alert", "propagation", "other"]
values = [None, True, -1, 2**70, 1.5, "", "x" * 300, [], [None], {}, {"a": [1]}, "n1.>", "ab" * 32]
fields = ["v", "kind", "network", "node", "time", "dir", "type", "size", "peer", "addr", "event", "hash", "height",
          "txid", "addresses", "up", "peers", "detector", "message", "seconds", "tip", "restarts"]
frames = []
for index in range(10000):
    kind = rng.choice(kinds)
    choice = rng.random()
    if choice < 0.2:
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    elif choice < 0.4:
        payload = json.dumps(rng.choice(values)).encode()
    else:
        event = {"v": 1, "kind": kind, "network": "fuzz", "node": "n1", "time": 1.0}
        event.update({rng.choice(fields): rng.choice(values) for _ in range(rng.randrange(1, 6))})
        payload = json.dumps(event).encode()
    frames.append(b"PUB peerlab.fuzz.n%d.%s %d\r\n%s\r\n" % (rng.randrange(1, 6), kind.encode(), len(payload), payload))
sock = socket.create_connection(("peerlab-obs-bus", 4222), timeout=30)
reader = sock.makefile("rb")
reader.readline()
sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n' + b"".join(frames) + b"PING\r\n")
while not reader.readline().startswith(b"PONG"):
    pass
print("published", len(frames))
"""


def events_taken() -> float:
    return sum(value for key, value in observer_metrics().items() if key.startswith("peerlab_host_observer_events{"))


def dropped() -> dict[str, float]:
    return {key.split('reason="')[1].split('"')[0]: value for key, value in observer_metrics().items()
            if key.startswith("peerlab_host_observer_events_dropped{")}


def test_malformed_events_on_the_bus_are_dropped_and_the_feed_goes_on(lab: Lab, alerts: Alerts, client: docker.DockerClient) -> None:
    observer = client.containers.get("peerlab-obs-observer")
    started = observer.attrs["State"]["StartedAt"]
    before = dropped()
    publisher = client.containers.get("peerlab-obs-collector")
    result = publisher.exec_run(["python3", "-c", PUBLISH_BAD])
    assert result.exit_code == 0 and result.output.decode().strip() == "published 5", result.output.decode()
    expected = {"missing-field": 1, "not-an-object": 2, "wrong-type": 1, "not-json": 1}
    assert wait_for(lambda: all(dropped().get(reason, 0) - before.get(reason, 0) >= count for reason, count in expected.items()),
                    timeout=3 * INTERVAL), (before, dropped())
    fuzz = publisher.exec_run(["python3", "-c", FUZZ])
    assert fuzz.exit_code == 0 and fuzz.output.decode().strip() == "published 10000", fuzz.output.decode()
    # Most of them do not fit and are counted; the observer never restarted and still delivers.
    assert wait_for(lambda: sum(dropped().values()) - sum(before.values()) >= 5 + 9000, timeout=3 * INTERVAL), dropped()
    errors = [value for key, value in observer_metrics().items() if key.startswith("peerlab_host_observer_handler_errors{")]
    assert errors == [0], "what fits the schema, every handler takes"
    assert healthy()
    mined, seen = block_on_the_feed(client)
    assert seen == set(NODES), f"after the bad events, the feed showed {mined} on {seen}"
    observer.reload()
    assert observer.attrs["State"]["StartedAt"] == started and observer.attrs["RestartCount"] == 0


def handshake_status(origin: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", int(FEED.split(":")[2].split("/")[0]), timeout=10)
    try:
        connection.request("GET", "/events", headers={"Upgrade": "websocket", "Connection": "Upgrade", "Origin": origin,
                                                      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})
        return connection.getresponse().status
    finally:
        connection.close()


def test_only_the_portals_pages_may_read_the_feed_from_a_browser(lab: Lab, alerts: Alerts) -> None:
    # The feed carries peers' addresses: a page of another site the user has open may not read it.
    assert handshake_status("https://evil.example") == 403
    assert handshake_status("http://127.0.0.1:8090") == 101  # the portal's own origin (its default listen)


@pytest.mark.slow
def test_quiet_traffic_raises_no_alert(lab: Lab, alerts: Alerts, client: docker.DockerClient) -> None:
    """A minute of blocks and payments in `make test`; five (QUIET_SECONDS=300) in `make soak`.
    No alert counts only if the observer was there to raise one: it stays up and healthy all along,
    takes the traffic's events, and the feed the alerts come by delivers them."""
    observer = client.containers.get("peerlab-obs-observer")
    started_at = observer.attrs["State"]["StartedAt"]
    taken = events_taken()
    health: list[bool] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(2):
            health.append(healthy())

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.time()
    traffic = lab.playbook("playbooks/traffic.yml", "-e", f"duration={QUIET_SECONDS}")
    assert traffic.rc == 0, traffic.output[-3000:]
    time.sleep(2 * INTERVAL)  # what the last polls saw
    stop.set()
    watcher.join()
    assert alerts.since(start) == [], alerts.since(start)
    assert health and all(health), f"/healthz failed {health.count(False)} of {len(health)} times"
    observer.reload()
    assert observer.attrs["State"]["StartedAt"] == started_at and observer.attrs["RestartCount"] == 0
    assert events_taken() - taken >= QUIET_SECONDS * len(NODES), "the traffic's events reached the observer"
    # the feed the alerts come by delivers: the next block's events reach a new reader of it
    nodes: set[str] = set()
    mined = False
    for event in logger.stream(FEED, NETWORK, types="block", timeout=2 * INTERVAL):
        if event is None:  # first: subscribed; later: nothing for two intervals
            if mined:
                break
            cli(client, f"{NETWORK}-n1", "generatetoaddress", "1", ADDRESS)
            mined = True
            continue
        nodes.add(event["node"])
        if nodes == set(NODES):
            break
    assert nodes == set(NODES), nodes


@pytest.mark.slow
def test_each_p2p_attack_fires_its_detector_within_two_intervals(lab: Lab, alerts: Alerts, client: docker.DockerClient) -> None:
    # The nodes at once, each node's attacks one after the other (each node's detectors are its own).
    plan = {"n1": [("addr-flood", ["addr-flood"]), ("inv-flood", ["inv-flood"])],
            "n2": [("ping-spam", ["ping-spam"]), ("addr-oversized", ["misbehaving"])],
            "n3": [("connect-listen", ["connect-listen"]), ("handshake-churn", ["handshake-churn"])],
            "n4": [("subnet-flood", ["subnet-inbound"]), ("unknown-messages", ["unknown-messages"])],
            "n5": [("spy-peer", ["spy-peer"]), ("inbound-flood", ["inbound-drop"])]}
    times: dict[tuple[str, str], tuple[float, float]] = {}

    def run(node: str) -> None:
        for kind, _detectors in plan[node]:
            times[node, kind] = attack(lab, kind, node)

    # the spy takes announcements of the payments the lab makes meanwhile (five a second)
    payments = threading.Thread(target=lambda: lab.playbook("playbooks/traffic.yml", "-e", "duration=40", "-e", "tx_interval=0.2"))
    threads = [payments] + [threading.Thread(target=run, args=(node,)) for node in plan]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    def late() -> list[tuple[str, str, str, float | None]]:
        missing = []
        for node, attacks in plan.items():
            for kind, detectors in attacks:
                started, ended = times[node, kind]
                for detector in detectors:
                    fired = alerts.fired(detector, node, started)
                    if fired is None or fired > ended + 2 * INTERVAL:
                        missing.append((kind, node, detector, fired and round(fired - ended, 1)))
        return missing

    # Each has two collection intervals from the end of its attack (a little more for the feed).
    wait_for(lambda: not late(), timeout=2 * INTERVAL + 2, interval=0.5)
    assert late() == [], (late(), [alert for _when, alert in alerts.since(min(start for start, _end in times.values()))])
    # The oversized addr message's alert names the peer bitcoind disconnected, and why.
    (misbehaving,) = [alert for _when, alert in alerts.since(times["n2", "addr-oversized"][0]) if alert["detector"] == "misbehaving"]
    assert misbehaving["node"] == "n2" and misbehaving["reason"] == "addr message size = 1001" and misbehaving["peer"] >= 0, misbehaving
    # Alerts of a peer's misdeed name the peer: the spy, the flooder, the one making up message types.
    for node, kind in (("n5", "spy-peer"), ("n1", "inv-flood"), ("n4", "unknown-messages")):
        (raised,) = [alert for _when, alert in alerts.since(times[node, kind][0]) if alert["detector"] == kind]
        assert raised["node"] == node and raised["peer"] >= 0, raised
    # Each reached the webhook through Alertmanager, once, with its detector, node and peer.
    expected = {(detector, node) for node, attacks in plan.items() for _kind, detectors in attacks for detector in detectors}

    def delivered() -> dict[tuple[str, str], list[dict[str, str]]]:
        out: dict[tuple[str, str], list[dict[str, str]]] = {}
        for alert in notified(client):
            out.setdefault((alert["labels"]["detector"], alert["labels"]["node"]), []).append(alert["labels"])
        return out

    assert wait_for(lambda: expected <= set(delivered()), timeout=30), sorted(expected - set(delivered()))
    for key in sorted(expected):
        labels = delivered()[key]
        assert len(labels) == len({json.dumps(label, sort_keys=True) for label in labels}), (key, labels)  # each alert once
        assert all(label["network"] == NETWORK and label["alertname"] == key[0] for label in labels), labels
    (spy,) = delivered()["spy-peer", "n5"]
    assert int(spy["peer"]) >= 0, spy


@pytest.mark.slow
def test_a_silence_set_through_alertmanager_holds_an_alert_back(lab: Lab, alerts: Alerts, client: docker.DockerClient) -> None:
    now = time.time()
    silence = alertmanager(lab, "POST", "/silences", {
        "matchers": [{"name": "detector", "value": "ping-spam", "isRegex": False}, {"name": "node", "value": "n3", "isRegex": False}],
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60)),
        "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)),
        "createdBy": "test_observer", "comment": "held back"})["silenceID"]
    try:
        before = len(notified(client))
        started, _ended = attack(lab, "ping-spam", "n3")
        assert wait_for(lambda: alerts.fired("ping-spam", "n3", started), timeout=2 * INTERVAL), alerts.since(started)
        # Alertmanager has it, silenced by this silence; the webhook never hears of it
        held = wait_for(lambda: [alert for alert in alertmanager(lab, "GET", "/alerts?filter=detector%3D%22ping-spam%22")
                                 if alert["labels"]["node"] == "n3" and silence in alert["status"]["silencedBy"]], timeout=20)
        assert held and held[0]["status"]["state"] == "suppressed", held
        time.sleep(5)  # group_wait (2 s) and more: a notification would have come by now
        assert [alert for alert in notified(client)[before:] if alert["labels"]["detector"] == "ping-spam"] == []
    finally:
        alertmanager(lab, "DELETE", f"/silence/{silence}")


@pytest.mark.slow
def test_a_crashed_node_fires_restart(lab: Lab, alerts: Alerts, client: docker.DockerClient) -> None:
    started, ended = attack(lab, "kill", "n2")
    assert wait_for(lambda: alerts.fired("restart", "n2", started), timeout=4 * INTERVAL), alerts.since(started)
    fired = alerts.fired("restart", "n2", started)
    assert fired is not None and fired - ended <= 2 * INTERVAL + 15, "within two intervals of bitcoind answering again"


@pytest.mark.slow
def test_an_isolated_node_that_mines_makes_a_fork_and_lags(lab: Lab, alerts: Alerts, client: docker.DockerClient) -> None:
    done: list[tuple[float, float]] = []
    start = time.time()
    isolation = threading.Thread(target=lambda: done.append(attack(lab, "isolate", "n5", "-e", "attack_seconds=45")))
    isolation.start()
    assert wait_for(lambda: cli(client, f"{NETWORK}-n5", "getnetworkinfo")["networkactive"] is False, timeout=60)
    assert wait_for(lambda: int(cli(client, f"{NETWORK}-n5", "getconnectioncount")) == 0, timeout=30)
    # another payee than n1's: two nodes mining on one parent in the same second to one address
    # make the very same block (no fork at all)
    descriptor = "wpkh(02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5)"  # 2G; G is ADDRESS
    checksum = cli(client, f"{NETWORK}-n5", "getdescriptorinfo", descriptor)["checksum"]
    elsewhere = cli(client, f"{NETWORK}-n5", "deriveaddresses", f"{descriptor}#{checksum}")[0]
    cli(client, f"{NETWORK}-n5", "generatetoaddress", "1", elsewhere)
    mined = time.time()
    cli(client, f"{NETWORK}-n1", "generatetoaddress", "4", ADDRESS)
    assert wait_for(lambda: alerts.fired("fork", "_network", start), timeout=2 * INTERVAL), alerts.since(start)
    assert wait_for(lambda: alerts.fired("lagging", "n5", start), timeout=4 * INTERVAL), alerts.since(start)
    assert (alerts.fired("lagging", "n5", start) or 0) - mined <= 3 * INTERVAL  # behind for one interval, seen at the next poll
    isolation.join(timeout=120)
    # healed: every node on one tip again
    best = cli(client, f"{NETWORK}-n1", "getbestblockhash")
    assert wait_for(lambda: all(cli(client, f"{NETWORK}-{node}", "getbestblockhash") == best for node in NODES), timeout=60)


def test_alerts_are_metrics_too(lab: Lab, alerts: Alerts) -> None:
    raised = alerts.since(0)
    assert raised, "the attacks above raised alerts"
    values = observer_metrics()
    for _when, alert in raised:
        if alert["node"] == "_network":
            key = f'peerlab_network_alerts{{detector="{alert["detector"]}",network="{NETWORK}"}}'
        else:
            key = f'peerlab_alerts{{detector="{alert["detector"]}",network="{NETWORK}",node="{alert["node"]}"}}'
        assert values.get(key, 0) >= 1, (key, {k: v for k, v in values.items() if "alerts" in k})
