"""The mixed lab for real: Knots 29.5 and Statoshi (Bitcoin Core v31 with statsd) in one network,
linked, on one tip, paying each other; Statoshi's own statsd series in Graphite, equal to what its
RPC says and to peerlab's series for the same thing.

Runs where the Statoshi image exists (`make statoshi SOURCE=<a jlopp/statoshi git directory>`,
docs/images.md); elsewhere it is reported as skipped with that command.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _images
from ansible_collections.peerlab.bitcoin.plugins.module_utils._settings import ImageSettings

from .conftest import ROOT, Lab, cli, remove_docker_network, remove_network, wait_for

NETWORK = "mixedtest"
SHIPPED = yaml.safe_load((ROOT / "inventories" / "mixed" / "02-topology.peerlab.yml").read_text())["networks"]["mixed"]
STATOSHI_VERSION = next(node["version"] for node in SHIPPED["nodes"] if node.get("implementation") == "statoshi")
TAG = _images.tags(str(ROOT / "images"), ImageSettings()).node("statoshi", STATOSHI_VERSION)
GRAPHITE = "http://127.0.0.1:18180"
PREFIX = "peerlab-stest-"
MONITORING = {
    "peerlab_monitoring": True,
    "graphite_container": f"{PREFIX}graphite", "graphite_volume": f"{PREFIX}graphite-data",
    "graphite_network": f"{PREFIX}monitoring", "graphite_publish": "127.0.0.1:18180",
    "collector_container": f"{PREFIX}collector", "collector_prometheus_publish": "127.0.0.1:19342",
    "observer_bus_container": f"{PREFIX}bus", "observer_container": f"{PREFIX}observer",
    "observer_events_volume": f"{PREFIX}events", "observer_events_publish": "", "observer_prometheus_publish": "127.0.0.1:19343",
    "grafana_container": f"{PREFIX}grafana", "grafana_volume": f"{PREFIX}grafana-data", "grafana_publish": "",
    "alertmanager_container": f"{PREFIX}alertmanager", "alertmanager_volume": f"{PREFIX}alertmanager-data",
    "alertmanager_publish": "",
}


def _have_image() -> bool:
    return subprocess.run(["docker", "image", "inspect", TAG], capture_output=True, check=False).returncode == 0


pytestmark = pytest.mark.skipif(not _have_image(), reason=(
    f"no Statoshi image {TAG} on this Docker engine: build it with `make statoshi SOURCE=<a jlopp/statoshi git directory>` "
    "(docs/images.md; about 40 min on 2 cores, minutes with the compiler cache)"))


def remove_monitoring(client: docker.DockerClient) -> None:
    for container in client.containers.list(all=True, filters={"name": PREFIX}):
        if container.name.startswith(PREFIX):
            container.remove(force=True, v=True)
    for volume in client.volumes.list(filters={"name": PREFIX}):
        if volume.name.startswith(PREFIX):
            volume.remove(force=True)
    for network in client.networks.list(names=[f"{PREFIX}monitoring"]):
        remove_docker_network(network)


def values(target: str) -> list[float]:
    """Every value Graphite holds for the target's series in the last 3 minutes."""
    query = urllib.parse.urlencode({"format": "json", "from": "-3min", "target": target})
    with urllib.request.urlopen(f"{GRAPHITE}/render?{query}", timeout=30) as response:
        return [value for item in json.load(response) for value, _stamp in item["datapoints"] if value is not None]


def last(target: str) -> float | None:
    """The newest value of one series in the last 3 minutes."""
    found = values(target)
    return found[-1] if found else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, client: docker.DockerClient) -> Iterator[Lab]:
    remove_network(client, NETWORK)
    remove_monitoring(client)
    directory: Path = tmp_path_factory.mktemp("statoshi")
    made = Lab(directory, {NETWORK: SHIPPED}, dict(MONITORING, peerlab_state_dir=str(directory / "state")))
    deployed = made.playbook("deploy.yml")
    assert deployed.rc == 0, deployed.output[-3000:]
    try:
        yield made
    finally:
        remove_monitoring(client)
        remove_network(client, NETWORK)


def container(node: str) -> str:
    return f"{NETWORK}-{node}"


def tips(client: docker.DockerClient) -> set[str]:
    return {cli(client, container(node["name"]), "getbestblockhash") for node in SHIPPED["nodes"]}


def test_the_mixed_lab_links_two_implementations_agrees_and_deploys_again_unchanged(lab: Lab, client: docker.DockerClient) -> None:
    agents = {node["name"]: cli(client, container(node["name"]), "getnetworkinfo")["subversion"] for node in SHIPPED["nodes"]}
    assert "Knots" in agents["k1"] and "Knots" in agents["k2"], agents
    assert agents["s1"].startswith("/Satoshi:31.") and "Knots" not in agents["s1"], agents
    for edge in SHIPPED["edges"]:
        def connected(edge: dict[str, str] = edge) -> bool:
            added = cli(client, container(edge["from"]), "getaddednodeinfo")
            return any(entry["addednode"].startswith(container(edge["to"]) + ":") and entry["connected"] for entry in added)

        assert wait_for(connected, timeout=60), f"{edge['from']} -> {edge['to']} is not connected"
    anyone = cli(client, container("k1"), "getdescriptorinfo", "raw(51)")["descriptor"]  # anyone can spend: no wallet needed
    cli(client, container("k1"), "generatetodescriptor", "1", anyone)
    assert wait_for(lambda: len(tips(client)) == 1, timeout=60), tips(client)
    cli(client, container("s1"), "generatetodescriptor", "1", anyone)
    assert wait_for(lambda: len(tips(client)) == 1, timeout=60), tips(client)
    heights = {cli(client, container(node["name"]), "getblockcount") for node in SHIPPED["nodes"]}
    assert len(heights) == 1, heights
    again = lab.playbook("deploy.yml")
    assert again.rc == 0 and again.total_changed == 0, (again.changes, again.output[-2000:])
    labels = client.containers.get(container("s1")).labels
    assert (labels["peerlab.implementation"], labels["peerlab.version"]) == ("statoshi", STATOSHI_VERSION)


def test_payments_flow_from_knots_to_statoshi_and_back(lab: Lab, client: docker.DockerClient) -> None:
    for node in ("k1", "s1"):
        wallets = cli(client, container(node), "listwallets")
        if "pay" not in wallets:
            cli(client, container(node), "-named", "createwallet", "wallet_name=pay")
    k1_address = cli(client, container("k1"), "-rpcwallet=pay", "getnewaddress")
    s1_address = cli(client, container("s1"), "-rpcwallet=pay", "getnewaddress")
    cli(client, container("k1"), "generatetoaddress", "101", k1_address)
    assert wait_for(lambda: len(tips(client)) == 1, timeout=90), tips(client)
    to_statoshi = cli(client, container("k1"), "-rpcwallet=pay", "sendtoaddress", s1_address, "5")
    for node in ("s1", "s2", "k2"):  # through the ring: k1 -> s1 and s2 directly, k2 behind them
        assert wait_for(lambda node=node: to_statoshi in cli(client, container(node), "getrawmempool"), timeout=60), node
    cli(client, container("s1"), "generatetoaddress", "1", s1_address)
    assert wait_for(lambda: cli(client, container("k1"), "-rpcwallet=pay", "gettransaction", to_statoshi)["confirmations"] == 1,
                    timeout=60)
    back = cli(client, container("s1"), "-rpcwallet=pay", "sendtoaddress", k1_address, "1")
    for node in ("k1", "k2", "s2"):
        assert wait_for(lambda node=node: back in cli(client, container(node), "getrawmempool"), timeout=60), node


def test_statoshis_statsd_series_are_in_graphite_and_agree_with_rpc_and_peerlabs_own(lab: Lab, client: docker.DockerClient) -> None:
    base = f"peerlab.{NETWORK}.nodes"
    for node in ("s1", "s2"):
        def found(node: str = node) -> tuple[Any, ...]:
            """(Statoshi's connections, RPC's, peerlab's; Statoshi's height, RPC's, peerlab's)"""
            return (last(f"{base}.{node}.statoshi.peers.totalConnections"), int(cli(client, container(node), "getconnectioncount")),
                    last(f"{base}.{node}.peers.total"), last(f"{base}.{node}.statoshi.blocks.currentHeight"),
                    int(cli(client, container(node), "getblockcount")), last(f"{base}.{node}.chain.height"))

        def agree(node: str = node) -> bool:
            seen = found(node)
            return seen[0] == seen[1] == seen[2] and seen[3] == seen[4] == seen[5] and seen[1] >= 3

        assert wait_for(agree, timeout=120, interval=2), (node, found(node))
    # Statoshi's message counters, partitioned per node by its address; Knots nodes send nothing.
    assert last(f"{base}.s1.statoshi.message.received.*") is not None
    assert last(f"{base}.k1.statoshi.*") is None


def test_the_statoshi_dashboard_draws_every_panel(lab: Lab, client: docker.DockerClient) -> None:
    anyone = cli(client, container("s2"), "getdescriptorinfo", "raw(51)")["descriptor"]
    cli(client, container("s2"), "generatetodescriptor", "1", anyone)  # a block connected within the window
    dashboard = json.loads((lab.directory / "state" / "grafana" / "dashboards" / "peerlab-statoshi.json").read_text())

    def empty() -> list[str]:
        return [f"{panel['title']}: {target['target']}" for panel in dashboard["panels"] for target in panel["targets"]
                if not values(target["target"].replace("$network", NETWORK).replace("$node", "*"))]

    assert wait_for(lambda: not empty(), timeout=60, interval=5), empty()
