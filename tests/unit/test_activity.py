"""Background activity: validation in the topology's words, the container the deploy reconciles,
and its removal when the topology drops it (the container itself runs in tests/integration/test_monitoring.py)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _activity
from ansible_collections.peerlab.bitcoin.plugins.module_utils._desired import Deployment, Hosts, Owner, host_spec
from ansible_collections.peerlab.bitcoin.plugins.module_utils._facts import ContainerFact, EngineFacts
from ansible_collections.peerlab.bitcoin.plugins.module_utils._images import Tags
from ansible_collections.peerlab.bitcoin.plugins.module_utils._plan import stale
from ansible_collections.peerlab.bitcoin.plugins.module_utils._settings import Common, Settings
from ansible_collections.peerlab.bitcoin.plugins.module_utils._topology import TopologyError, parse

KINDS = ("collector", "graphite", "observer", "alertmanager", "portal")
TAGS = Tags("h", "b", {"node": "peerlab/bitcoin-node", **{kind: f"peerlab/{kind}" for kind in KINDS}},
            {kind: "c1" for kind in KINDS})


def network(activity: object, chain: str = "regtest") -> dict[str, object]:
    return {"lab": {"chain": chain, "generators": [{"type": "ring", "nodes": 3, "prefix": "n"}], "miners": {"n1": 60, "n2": 40},
                    **({"activity": activity} if activity is not None else {})}}


def spec_of(activity: object, monitoring: bool = False) -> object:
    model = parse(network(activity), "t.yml", known_hosts={"localhost"})
    d = Deployment(networks=tuple(model), selected=frozenset(node.container for node in model[0].nodes), hosts=Hosts(names=("localhost",)),
                   owner=Owner("o", "i"), settings=Settings(common=Common(monitoring=monitoring)), tags=TAGS, rpcauth={})
    return host_spec(d, "localhost")


def test_activity_becomes_a_container_that_runs_the_traffic_code_with_the_topologys_words() -> None:
    spec = spec_of({"tx_per_second": 4, "block_interval": 5, "fee_rates": [1, 20], "pairs": [["n1", "n2"], ["n3", "n1"]], "seed": 9})
    (activity,) = [container for container in spec.containers if container.role == "activity"]  # type: ignore[attr-defined]
    assert activity.name == "peerlab-activity-lab" and activity.image == "peerlab/collector:c1"
    assert activity.labels["peerlab.network"] == "lab" and activity.labels["peerlab.role"] == "activity"
    assert activity.entrypoint[:3] == ("python3", "-u", "/usr/local/lib/peerlab/activity.py")
    config = json.loads(activity.entrypoint[3])
    assert config["tx_interval"] == 0.25 and config["block_interval"] == 5.0 and config["fee_rates"] == [1.0, 20.0]
    assert config["pairs"] == [["n1", "n2"], ["n3", "n1"]] and config["shares"] == {"n1": 60.0, "n2": 40.0} and config["seed"] == 9
    assert [node["container"] for node in config["nodes"]] == ["lab-n1", "lab-n2", "lab-n3"]
    assert config["nodes"][0]["cookie"] == "/home/bitcoin/.bitcoin/regtest/.cookie" and config["carbon"] == ""
    assert "password" not in activity.entrypoint[3] and activity.env == {}, "nothing secret: cookies are read through the engine"
    assert activity.networks == ("peerlab-lab",) and activity.healthcheck == {"Test": ["NONE"]}
    assert "peerlab/collector:c1" in spec.images  # type: ignore[attr-defined]
    # Another rate is another container (the deploy remakes it); none without `activity:`.
    other = spec_of({"tx_per_second": 2})
    assert [c.spec for c in other.containers if c.role == "activity"] != [activity.spec]  # type: ignore[attr-defined]
    assert [c for c in spec_of(None).containers if c.role == "activity"] == []  # type: ignore[attr-defined]
    with_monitoring = [c for c in spec_of({}, monitoring=True).containers if c.role == "activity"]  # type: ignore[attr-defined]
    assert json.loads(with_monitoring[0].entrypoint[3])["carbon"].endswith(":2003")


def test_an_activity_the_topology_dropped_is_removed_and_nothing_else() -> None:
    spec = spec_of(None)
    labels = {"peerlab.role": "activity", "peerlab.network": "lab", "peerlab.owner": "o"}
    facts = EngineFacts(containers={
        "peerlab-activity-lab": ContainerFact("1", "peerlab-activity-lab", "i", labels, "running", "Up", 0),
        "peerlab-activity-other": ContainerFact("2", "peerlab-activity-other", "i", {**labels, "peerlab.network": "other",
                                                                                     "peerlab.owner": "someone"}, "running", "Up", 0)})
    assert [(step.name, step.why) for step in stale(spec, facts)] == [  # type: ignore[arg-type]
        ("peerlab-activity-lab", "network lab's topology has no activity")]
    assert stale(spec_of({}), facts) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(("activity", "chain", "problem"), [
    ({"tx_per_second": 90}, "regtest", "tx_per_second must be a number from 0 to 50, got 90"),
    ({"block_interval": 0.1}, "regtest", "block_interval must be 0 (no blocks) or at least 0.5 seconds, got 0.1"),
    ({"fee_rates": [20, 1]}, "regtest", "fee_rates must be [lowest, highest] in sat/vB, each at least 1, got [20, 1]"),
    ({"pairs": [["n1", "n9"]]}, "regtest", "pairs: 'n9' is not a node of this network (nodes: n1, n2, n3)"),
    ({"pairs": [["n1", "n1"]]}, "regtest", "pairs: n1 cannot pay itself"),
    ({"rate": 1}, "regtest", "unknown key 'rate' (valid keys: block_interval, fee_rates, pairs, seed, tx_per_second)"),
    ({}, "signet", "activity is for regtest only; signet has its own transactions and blocks"),
    ([1], "regtest", "activity is a mapping"),
])
def test_bad_activity_is_refused_naming_the_problem(activity: object, chain: str, problem: str) -> None:
    raw = network(activity, chain)
    if chain != "regtest":
        del raw["lab"]["miners"]  # type: ignore[attr-defined]
    with pytest.raises(TopologyError) as caught:
        parse(raw, "t.yml", known_hosts={"localhost"})
    assert problem in str(caught.value)


def test_defaults() -> None:
    assert _activity.parse({}, ["n1"], "regtest", lambda where, message: None, "lab") == _activity.Activity()
    assert _activity.config(_activity.Activity(tx_per_second=0), "lab", [], {}, [], "")["tx_interval"] == 0.0
