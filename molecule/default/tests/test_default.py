"""The default lab as a user checks it: running labelled containers, exactly the topology's links
at both ends, and a block mined on any node reaching every node."""

from __future__ import annotations

import base64
import json
import os
import shlex
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
import yaml

# Everything runs on this machine: the nodes are containers of its Docker engine.
testinfra_hosts = ["local://"]

PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.getcwd())


def trusted(value: Any) -> Any:
    """ansible-inventory marks the topology's strings unsafe as {"__ansible_unsafe": value}."""
    if isinstance(value, dict):
        return value["__ansible_unsafe"] if set(value) == {"__ansible_unsafe"} else {k: trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [trusted(item) for item in value]
    return value


def inventory(host: Any) -> dict[str, Any]:
    command = host.run(f"ansible-inventory -i {PROJECT}/inventories/local --list")
    assert command.rc == 0, command.stderr
    return trusted(json.loads(command.stdout))  # type: ignore[no-any-return]


def cli(host: Any, container: str, *args: str) -> Any:
    command = host.run(" ".join(shlex.quote(word) for word in ("docker", "exec", container, "bitcoin-cli", *args)))
    assert command.rc == 0, command.stderr
    text = command.stdout.strip()
    return json.loads(text) if text[:1] in "[{" else text


def nodes(host: Any) -> dict[str, list[str]]:
    """Node container -> its outbound peers' containers, as the topology model reads the default lab."""
    sys.path.insert(0, os.path.join(PROJECT, "collections"))
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._topology import parse

    with open(os.path.join(PROJECT, "inventories", "local", "02-topology.peerlab.yml"), encoding="utf-8") as handle:
        (network,) = parse(yaml.safe_load(handle)["networks"], "02-topology.peerlab.yml")
    return {node.container: [f"{network.name}-{peer}" for peer in node.peers_out] for node in network.nodes}


NODES = [f"lab-n{i}" for i in range(1, 6)]
# The default lab's links: a ring of five and two chords (inventories/local/02-topology.peerlab.yml).
EDGES_OF_THE_DEFAULT_LAB = [("n1", "n2"), ("n2", "n3"), ("n3", "n4"), ("n4", "n5"), ("n5", "n1"), ("n1", "n3"), ("n2", "n5")]


def test_inventory_is_the_default_lab(host: Any) -> None:
    listing = inventory(host)
    # Each node is a group holding its Docker host; the network is the group of its nodes.
    assert sorted(listing["lab"]["children"]) == NODES == sorted(nodes(host))
    assert all(listing[name]["hosts"] == ["localhost"] for name in NODES)


@pytest.mark.parametrize("name", NODES)
def test_container_runs_with_labels(host: Any, name: str) -> None:
    container = host.docker(name)
    assert container.is_running
    labels = container.inspect()["Config"]["Labels"]
    assert labels["peerlab.network"] == "lab"
    assert labels["peerlab.node"] == name.removeprefix("lab-")
    assert labels["peerlab.role"] == "node"


@pytest.mark.parametrize("name", NODES)
def test_rpc_is_not_published_on_the_host(host: Any, name: str) -> None:
    ports = host.docker(name).inspect()["NetworkSettings"]["Ports"] or {}
    assert all(not bindings for bindings in ports.values())


@pytest.mark.parametrize("name", NODES)
def test_getpeerinfo_matches_the_topology_at_both_ends(host: Any, name: str) -> None:
    topology = nodes(host)
    addresses = {other: host.docker(other).inspect()["NetworkSettings"]["Networks"]["peerlab-lab"]["IPAddress"]
                 for other in topology}
    peers = cli(host, name, "getpeerinfo")
    outbound = {peer["addr"] for peer in peers if not peer["inbound"]}
    inbound = {peer["addr"].rsplit(":", 1)[0] for peer in peers if peer["inbound"]}
    assert outbound == {f"{target}:18444" for target in topology[name]}
    initiators = {source for source, variables in topology.items() if name in variables}
    assert inbound == {addresses[source] for source in initiators}


@pytest.mark.parametrize("miner", NODES)
def test_a_block_mined_on_any_node_reaches_every_node(host: Any, miner: str) -> None:
    wallets = cli(host, miner, "listwallets")
    if "verify" not in wallets:
        cli(host, miner, "-named", "createwallet", "wallet_name=verify", "load_on_startup=false")
    address = cli(host, miner, "-rpcwallet=verify", "getnewaddress")
    (block,) = cli(host, miner, "generatetoaddress", "1", address)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tips = {name: cli(host, name, "getbestblockhash") for name in NODES}
        if set(tips.values()) == {block}:
            return
        time.sleep(0.2)
    pytest.fail(f"block {block} from {miner} did not reach every node: {tips}")


MONITORING = [("peerlab-graphite", "graphite"), ("peerlab-collector", "collector"), ("peerlab-bus", "bus"),
              ("peerlab-observer", "observer"), ("peerlab-portal", "portal"), ("peerlab-alertmanager", "alertmanager")]


@pytest.mark.parametrize(("name", "role"), MONITORING)
def test_monitoring_runs_with_labels(host: Any, name: str, role: str) -> None:
    container = host.docker(name)
    assert container.is_running
    labels = container.inspect()["Config"]["Labels"]
    assert labels["peerlab.role"] == role and labels["peerlab.network"] == "lab"


def latest(target: str) -> dict[str, float]:
    """The last value of each series in Graphite over the last two minutes, by the series' name."""
    query = urllib.parse.urlencode({"target": target, "from": "-2min", "format": "json"})
    with urllib.request.urlopen(f"http://127.0.0.1:8080/render?{query}", timeout=10) as response:
        series = json.load(response)
    return {item["target"]: values[-1] for item in series
            if (values := [value for value, _stamp in item["datapoints"] if value is not None])}


def test_graphite_holds_the_true_peers_heights_and_edges(host: Any) -> None:
    """Values, not names: each node's peers are its topology degree, its height is the tip, and the
    observer's network view has every edge connected."""
    declared = nodes(host)
    degree = {name: 0 for name in declared}
    for name, peers in declared.items():
        for peer in peers:
            degree[name] += 1
            degree[peer] += 1
    tip = int(cli(host, "lab-n1", "getblockcount"))
    want = {"peers": {f"peerlab.lab.nodes.{name[4:]}.peers.total": float(count) for name, count in degree.items()},
            "height": {f"peerlab.lab.nodes.{name[4:]}.chain.height": float(tip) for name in declared},
            "edges": {"peerlab.lab.network.edges.connected": float(len(EDGES_OF_THE_DEFAULT_LAB)),
                      "peerlab.lab.network.edges.expected": float(len(EDGES_OF_THE_DEFAULT_LAB))}}
    targets = {"peers": "peerlab.lab.nodes.*.peers.total", "height": "peerlab.lab.nodes.*.chain.height",
               "edges": "peerlab.lab.network.edges.*"}
    got: dict[str, dict[str, float]] = {}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            got = {key: latest(target) for key, target in targets.items()}
        except OSError:
            got = {}
        if got == want:
            break
        time.sleep(3)
    assert got == want


def test_graphite_has_every_lab_node(host: Any) -> None:
    """The default lab is watched out of the box: Graphite on loopback knows every node."""
    url = "http://127.0.0.1:8080/metrics/find?query=peerlab.lab.nodes.*"
    deadline = time.monotonic() + 60
    found: set[str] = set()
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                found = {entry["text"] for entry in json.load(response)}
        except OSError:
            pass
        if found == {f"n{i}" for i in range(1, 6)}:
            break
        time.sleep(2)
    assert found == {f"n{i}" for i in range(1, 6)}
    grafana = f"{PROJECT}/.state/local/grafana"
    assert len(host.file(f"{grafana}/dashboards").listdir()) == 7, "six for every lab and Statoshi's"
    config = host.file(f"{PROJECT}/.state/local/collector/collector.json")
    assert "password" not in config.content_string, "the collector uses each node's cookie: no secret on the host"


def test_the_portal_answers_on_loopback_and_wants_a_login(host: Any) -> None:
    # the default lab's portal (peerlab_portal: true in inventories/local): a page without a login
    # goes to the login form, the API answers 401
    with urllib.request.urlopen("http://127.0.0.1:8090/login", timeout=10) as response:
        assert response.status == 200 and b'name="password"' in response.read()
    try:
        urllib.request.urlopen("http://127.0.0.1:8090/api/networks/lab", timeout=10)
        pytest.fail("the API answered without a login")
    except urllib.error.HTTPError as error:
        assert error.code == 401
    secrets = host.file(os.path.join(PROJECT, ".secrets", "local", "portal.yml"))
    assert secrets.exists and secrets.mode == 0o600


def test_alertmanager_answers_on_loopback_to_its_generated_login_only(host: Any) -> None:
    secrets = host.file(os.path.join(PROJECT, ".secrets", "local", "alertmanager.yml"))
    assert secrets.exists and secrets.mode == 0o600
    password = yaml.safe_load(secrets.content_string)["alertmanager"]["peerlab"]["password"]
    try:
        urllib.request.urlopen("http://127.0.0.1:9093/api/v2/status", timeout=10)
        pytest.fail("Alertmanager answered without a login")
    except urllib.error.HTTPError as error:
        assert error.code == 401
    request = urllib.request.Request("http://127.0.0.1:9093/api/v2/status",
                                     headers={"Authorization": "Basic " + base64.b64encode(f"peerlab:{password}".encode()).decode()})
    with urllib.request.urlopen(request, timeout=10) as response:
        status = json.load(response)
    # no receiver in the default inventory: alerts are kept and shown, nobody is notified
    assert status["config"]["original"].count("peerlab-none") == 2, status["config"]["original"]
