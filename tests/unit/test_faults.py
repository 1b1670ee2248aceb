"""Faults: validation in the topology's words, each node's plan, what a fault cuts; mining shares and payments."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _faults
from ansible_collections.peerlab.bitcoin.plugins.module_utils._apply import _link_specs
from ansible_collections.peerlab.bitcoin.plugins.module_utils._desired import Deployment, Hosts, Owner, host_spec
from ansible_collections.peerlab.bitcoin.plugins.module_utils._facts import ContainerFact, EngineFacts
from ansible_collections.peerlab.bitcoin.plugins.module_utils._images import Tags
from ansible_collections.peerlab.bitcoin.plugins.module_utils._schedule import Miners, Payments, observed
from ansible_collections.peerlab.bitcoin.plugins.module_utils._settings import Common, Settings
from ansible_collections.peerlab.bitcoin.plugins.module_utils._spec import NetworkPart, NodePart
from ansible_collections.peerlab.bitcoin.plugins.module_utils._topology import TopologyError, parse
from ansible_collections.peerlab.bitcoin.plugins.plugin_utils._deployment import DeploymentError, adhoc

NODES = ["n1", "n2", "n3", "n4", "n5"]
ADDRESSES = {name: f"172.20.0.{index + 2}" for index, name in enumerate(NODES)}
SPLIT = {"kind": "partition", "groups": [["n1", "n2"], ["n3", "n4", "n5"]]}
TAGS = Tags("h", "b", {"node": "peerlab/bitcoin-node"}, {})


def faults(*entries: dict[str, Any], adhoc: bool = False) -> list[_faults.Fault]:
    problems: list[str] = []
    found = _faults.parse(list(entries), NODES, lambda where, message: problems.append(f"{where}: {message}"), "lab", adhoc)
    assert problems == []
    return found


def refused(*entries: Any) -> list[str]:
    problems: list[str] = []
    _faults.parse(list(entries), NODES, lambda where, message: problems.append(f"{where}: {message}"), "lab")
    return problems


@pytest.mark.parametrize(("entry", "expected"), [
    ({"kind": "los", "node": "n1", "percent": 5}, "unknown fault kind 'los' (did you mean 'loss'?)"),
    ({"kind": "kill", "node": "n1"}, "kill is ad hoc only"),
    ({"kind": {"kind": "pause"}, "node": "n1"}, "unknown fault kind {'kind': 'pause'} (kinds: bandwidth,"),
    ({"kind": "loss", "node": "n9", "percent": 5}, "node 'n9' is not a node of this network"),
    ({"kind": "loss", "node": "n1", "percent": 150}, "loss 'percent' must be a number above 0 and at most 100, got 150"),
    ({"kind": "loss", "from": "n1", "to": "n1", "percent": 5}, "an edge fault needs two different nodes"),
    ({"kind": "loss", "node": "n1", "from": "n1", "to": "n2", "percent": 5}, "give either 'node'"),
    ({"kind": "bandwidth", "node": "n1", "rate": "fast"}, "bandwidth 'rate' must look like 64kbit"),
    ({"kind": "bandwidth", "node": "n1", "rate": "1kbit"}, "at least 8kbit"),
    ({"kind": "latency", "node": "n1", "delay": "100ms", "jitter": "200ms"}, "latency 'jitter' must be a duration from 0 to the delay"),
    ({"kind": "pause", "from": "n1", "to": "n2"}, "unknown key 'from' in a pause fault"),
    ({"kind": "partition", "groups": [["n1"]]}, "a partition needs 'groups': two or more non-empty lists"),
    ({"kind": "partition", "groups": [["n1", "n2"], ["n2", "n3"]]}, "node 'n2' is in partition groups 1 and 2"),
    ("loss", "a fault is a mapping with a 'kind'"),
])
def test_bad_faults_are_refused_with_the_problem_named(entry: Any, expected: str) -> None:
    (problem,) = refused(entry)
    assert problem.startswith("lab: faults[0]: ") and expected in problem


def test_every_problem_is_reported_at_once_and_duplicates_named() -> None:
    problems = refused({"kind": "loss", "node": "n1", "percent": 5}, {"kind": "loss", "node": "n1", "percent": 9},
                       {"kind": "pause", "node": "x"})
    assert problems == ["lab: faults[1]: duplicate fault: faults[0] is already a loss on n1",
                        "lab: faults[2]: node 'x' is not a node of this network (nodes: n1, n2, n3, n4, n5)"]


@pytest.mark.parametrize("rate", ["32kbit", "64kbit", "256kbit", "1mbit", "10mbit"])
def test_the_inbound_limits_burst_is_at_least_a_second_of_its_rate(rate: str) -> None:
    # iptables refuses a smaller one ("burst cannot be smaller than 124928b" for 1mbit): found by
    # the latency x bandwidth sweep, which had every node rate above 64kbit refused.
    plan = _faults.node_plan(faults({"kind": "bandwidth", "node": "n5", "rate": rate}), "n5", ADDRESSES["n5"], ADDRESSES, 18444)
    for line in [line for line in plan.commands.splitlines() if "hashlimit" in line]:
        above, burst = re.search(r"--hashlimit-above (\d+)kb/s --hashlimit-burst (\d+)kb", line).groups()  # type: ignore[union-attr]
        assert int(burst) >= int(above)


def test_command_line_strings_are_taken_as_numbers() -> None:
    # ansible-playbook -e percent=30 -e delay=200 gives strings.
    declared = faults({"kind": "loss", "node": "n1", "percent": "30"}, {"kind": "loss", "node": "n2", "percent": "2.5%"},
                      {"kind": "latency", "node": "n3", "delay": "200", "jitter": "10"})
    assert [(fault.percent, fault.delay, fault.jitter) for fault in declared] == [(30.0, 0.0, 0.0), (2.5, 0.0, 0.0), (0.0, 200.0, 10.0)]
    assert refused({"kind": "loss", "node": "n1", "percent": "lots"}) == [
        "lab: faults[0]: loss 'percent' must be a number above 0 and at most 100, got 'lots'"]


def test_a_fault_survives_the_trip_through_the_inventory() -> None:
    declared = faults(SPLIT, {"kind": "bandwidth", "from": "n1", "to": "n2", "rate": "64kbit"},
                      {"kind": "latency", "node": "n3", "delay": "0.1s", "jitter": 10}, {"kind": "pause", "node": "n4"})
    assert declared[2].delay == 100.0 and declared[2].jitter == 10.0
    assert _faults.from_dicts([fault.as_dict() for fault in declared]) == declared
    assert [fault.describe() for fault in declared] == ["partition n1,n2 | n3,n4,n5", "bandwidth 64kbit on n1 -> n2",
                                                        "latency 100ms ±10ms on n3", "pause on n4"]


def test_partition_cuts_only_links_across_it_and_pause_freezes_its_links() -> None:
    declared = faults(SPLIT, {"kind": "pause", "node": "n5"})
    assert _faults.cut(declared, "n1", "n3") and _faults.cut(declared, "n4", "n2")
    assert not _faults.cut(declared, "n1", "n2") and not _faults.cut(declared, "n3", "n4")
    assert _faults.frozen(declared, "n4", "n5") and not _faults.frozen(declared, "n1", "n2")
    assert _faults.split(declared) and not _faults.split(faults({"kind": "loss", "node": "n1", "percent": 1}))
    # A node in no group reaches everyone.
    partial = faults({"kind": "partition", "groups": [["n1"], ["n2"]]})
    assert _faults.cut(partial, "n1", "n2") and not _faults.cut(partial, "n1", "n3")


def test_partition_plan_drops_the_other_side_only() -> None:
    plan = _faults.node_plan(faults(SPLIT), "n1", ADDRESSES["n1"], ADDRESSES, 18444)
    rules = [line for line in plan.commands.splitlines() if "PEERLAB_OUT -d" in line or "PEERLAB_IN -s" in line]
    others = {ADDRESSES[name] for name in ("n3", "n4", "n5")}
    assert {line.split()[5] for line in rules} == others  # iptables -w -A CHAIN -d|-s ADDRESS ...
    assert sum("REJECT --reject-with tcp-reset" in line for line in rules) == 3
    assert ADDRESSES["n2"] not in plan.commands.split("awk")[1]
    assert plan.faults == ("partition n1,n2 | n3,n4,n5",)


def test_a_node_on_another_host_is_resolved_by_name_when_the_holder_starts_and_only_if_used() -> None:
    """On a Swarm a peer on another Docker host is known by name: the script asks Docker's DNS (again
    while a task is being replaced) and never writes a rule without an address."""
    remote = {**ADDRESSES, "n4": "lab-n4", "n5": "lab-n5"}
    plan = _faults.node_plan(faults(SPLIT), "n1", ADDRESSES["n1"], remote, 18444)
    assert "peer_1=$(resolve lab-n4) || exit 4" in plan.commands and "peer_2=$(resolve lab-n5) || exit 4" in plan.commands
    assert "iptables -w -A PEERLAB_OUT -d ${peer_1} -p tcp -j REJECT --reject-with tcp-reset" in plan.commands
    assert "resolve" not in _faults.node_plan(faults({"kind": "loss", "node": "n1", "percent": 5}), "n1", ADDRESSES["n1"], remote,
                                              18444).commands
    answer = subprocess.run(["sh", "-c", _faults.RESOLVE + "\nresolve localhost"], capture_output=True, text=True, timeout=30, check=False)
    assert answer.returncode == 0 and answer.stdout.strip() == "127.0.0.1"


def test_loss_and_bandwidth_touch_only_p2p_traffic() -> None:
    declared = faults({"kind": "loss", "node": "n3", "percent": 20}, {"kind": "bandwidth", "node": "n3", "rate": "64kbit"},
                      {"kind": "bandwidth", "from": "n3", "to": "n4", "rate": "1mbit"})
    plan = _faults.node_plan(declared, "n3", ADDRESSES["n3"], ADDRESSES, 18444)
    lines = plan.commands.splitlines()
    loss = [line for line in lines if "statistic" in line]
    assert len(loss) == 4 and all("--probability 0.2000" in line and "port 18444" in line for line in loss)
    assert any("classid 1:11 htb rate 64kbit ceil 64kbit" in line for line in lines)
    assert any(f"match ip dst {ADDRESSES['n4']}/32 match ip dport 18444" in line and "flowid 1:12" in line for line in lines)
    # What n3 receives is policed at its input, at the rate (8 KiB/s for 64 kbit/s).
    assert sum("--hashlimit-above 8kb/s" in line for line in lines) == 2
    assert all("18443" not in line for line in lines)  # RPC untouched
    # Nothing for a node without faults; the same faults give the same spec.
    assert _faults.node_plan(declared, "n1", ADDRESSES["n1"], ADDRESSES, 18444).commands == ""
    assert _faults.node_plan(declared, "n3", ADDRESSES["n3"], ADDRESSES, 18444).spec == plan.spec


def test_latency_is_a_netem_leaf_and_is_listed_for_the_kernel_probe() -> None:
    declared = faults({"kind": "latency", "node": "n2", "delay": 100, "jitter": 20})
    plan = _faults.node_plan(declared, "n2", ADDRESSES["n2"], ADDRESSES, 18444)
    assert "tc qdisc add dev $dev parent 1:11 handle 11: netem delay 100ms 20ms" in plan.commands
    assert _faults.NETEM_MISSING.format(host="localhost", answer="x").startswith("latency needs the kernel's netem")


def test_holder_undoes_its_rules_on_any_failure_and_on_sigterm() -> None:
    plan = _faults.node_plan(faults({"kind": "loss", "node": "n1", "percent": 5}), "n1", ADDRESSES["n1"], ADDRESSES, 18444)
    program = _faults.holder_command(plan)
    # Undone on any failure while applying: the EXIT trap comes before the first rule; then held,
    # and on SIGTERM the holder exits through that trap (tests/integration/test_experiments.py runs it).
    assert program.startswith("trap '") and program.index("' EXIT\n") < program.index("iptables -w -N PEERLAB_IN")
    assert "iptables -w -D OUTPUT -j PEERLAB_OUT" in program[:program.index("' EXIT\n")]
    assert program.index("peerlab-fault-ready") < program.index("trap 'exit 0' TERM\n")


def test_latency_without_netem_goes_through_netfilter_queues_held_by_the_delay_program() -> None:
    declared = faults({"kind": "latency", "node": "n2", "delay": 200, "jitter": 20}, {"kind": "loss", "node": "n2", "percent": 5},
                      {"kind": "latency", "from": "n2", "to": "n3", "delay": "50ms"},
                      {"kind": "latency", "from": "n2", "to": "n4", "delay": 50})
    plan = _faults.node_plan(declared, "n2", ADDRESSES["n2"], ADDRESSES, 18444, _faults.QUEUE)
    rules = [line for line in plan.commands.splitlines() if line.startswith("iptables -w -A")]
    queued = [line for line in rules if "NFQUEUE" in line]
    # n2's own 200 ms ±20: what it sends waits 110 ms ±20, what it receives 90 ms: a round trip
    # through it 200 ms ±20. One queue per (delay, jitter): both 50 ms edges share queue 3.
    assert queued == [
        "iptables -w -A PEERLAB_OUT -d 172.20.0.4 -p tcp --dport 18444 -j NFQUEUE --queue-num 3 --queue-bypass",
        "iptables -w -A PEERLAB_OUT -d 172.20.0.4 -p tcp --sport 18444 -j NFQUEUE --queue-num 3 --queue-bypass",
        "iptables -w -A PEERLAB_OUT -d 172.20.0.5 -p tcp --dport 18444 -j NFQUEUE --queue-num 3 --queue-bypass",
        "iptables -w -A PEERLAB_OUT -d 172.20.0.5 -p tcp --sport 18444 -j NFQUEUE --queue-num 3 --queue-bypass",
        "iptables -w -A PEERLAB_OUT -p tcp --dport 18444 -j NFQUEUE --queue-num 1 --queue-bypass",
        "iptables -w -A PEERLAB_OUT -p tcp --sport 18444 -j NFQUEUE --queue-num 1 --queue-bypass",
        "iptables -w -A PEERLAB_IN -p tcp --dport 18444 -j NFQUEUE --queue-num 2 --queue-bypass",
        "iptables -w -A PEERLAB_IN -p tcp --sport 18444 -j NFQUEUE --queue-num 2 --queue-bypass"]
    # A packet the program lets go skips the rest of its chain: the drops come first.
    assert rules.index(queued[0]) == len(rules) - len(queued)
    assert "python3 -I - 1:110:20 2:90:0 3:50:0 " in plan.commands and "netem delay" not in plan.commands
    # The program is the module's own source, started (and holding its queues) before the first rule.
    assert _faults.delayer_source() in plan.commands
    assert plan.commands.index("/tmp/peerlab-delay-ready") < plan.commands.index("iptables -w -N")
    # With netem the same faults are netem leaves; a jitter as large as the delay leaves nothing inbound.
    assert "netem delay 200ms 20ms" in _faults.node_plan(declared, "n2", ADDRESSES["n2"], ADDRESSES, 18444).commands
    wide = _faults.node_plan(faults({"kind": "latency", "node": "n2", "delay": 100, "jitter": 100}), "n2", ADDRESSES["n2"], ADDRESSES,
                             18444, _faults.QUEUE)
    assert "PEERLAB_IN -p tcp" not in wide.commands and "python3 -I - 1:100:100 " in wide.commands


def test_topology_takes_faults_and_hashrate_shares() -> None:
    (network,) = parse({"lab": {"chain": "regtest", "generators": [{"type": "ring", "nodes": 5, "prefix": "n"}],
                                "miners": {"n1": 5, "n2": 3, "n3": 2}, "faults": [SPLIT]}}, "t.yml", known_hosts={"localhost"})
    assert network.miners == ("n1", "n2", "n3") and network.shares == {"n1": 50.0, "n2": 30.0, "n3": 20.0}
    assert [fault.kind for fault in network.faults] == ["partition"]
    with pytest.raises(TopologyError) as caught:
        parse({"lab": {"chain": "regtest", "nodes": [{"name": "n1"}], "miners": {"n1": 0},
                       "faults": [{"kind": "loss", "node": "n2", "percent": 5}]}}, "t.yml")
    assert caught.value.problems == [
        "t.yml: network 'lab': miners' hashrate shares must be positive numbers, got n1: 0",
        "t.yml: network 'lab': faults[0]: node 'n2' is not a node of this network (nodes: n1)"]


def test_shares_converge_over_200_blocks_and_repeat_with_the_seed() -> None:
    draw = Miners({"n1": 50, "n2": 30, "n3": 20}, seed=7)
    blocks = [draw.next() for _block in range(200)]
    shares = observed(blocks)
    assert draw.declared == {"n1": 50.0, "n2": 30.0, "n3": 20.0}
    assert all(abs(shares[name] - draw.declared[name]) <= 10 for name in draw.names), shares
    again = Miners({"n1": 50, "n2": 30, "n3": 20}, seed=7)
    assert blocks == [again.next() for _block in range(200)]
    assert set(Miners(None, ["a", "b"], seed=1).declared.values()) == {50.0}
    with pytest.raises(ValueError, match="positive hashrate shares"):
        Miners({"n1": 0})


def test_payments_follow_the_pairs_and_the_fee_rate_range() -> None:
    payments = Payments(["a", "b", "c"], [["a", "b"]], [2, 20], seed=3)
    drawn = [payments.next() for _payment in range(50)]
    assert {(p["payer"], p["payee"]) for p in drawn} == {("a", "b")}
    assert all(2 <= p["fee_rate"] <= 20 and 0.001 <= p["amount"] <= 0.05 for p in drawn)
    assert all("fee_rate" not in p for p in [Payments(["a", "b"]).next()])


def part(*entries: dict[str, Any]) -> NetworkPart:
    """The default lab's ring as one Docker host acts on it, with faults."""
    nodes = {f"lab-{name}": name for name in NODES}
    return NetworkPart("lab", "regtest", 18444, 18443, False, nodes, ("localhost",), miner="lab-n1", faults=tuple(entries))


def here() -> list[NodePart]:
    return [NodePart(f"lab-{name}", "lab", name, (f"lab-{NODES[(index + 1) % 5]}",)) for index, name in enumerate(NODES)]


def facts() -> EngineFacts:
    def labels(name: str) -> dict[str, str]:
        return {"peerlab.role": "node", "peerlab.network": "lab", "peerlab.node": name}

    containers = {f"lab-{name}": ContainerFact(name, f"lab-{name}", "i", labels(name), "running", "Up", 1, {"peerlab-lab": ADDRESSES[name]})
                  for name in NODES}
    return EngineFacts(containers=containers)


def test_links_across_a_partition_are_cut_and_a_paused_node_is_left_out() -> None:
    links = _link_specs(facts(), part(SPLIT, {"kind": "pause", "node": "n4"}), here(), {"rpc": {}}, False, {})
    specs = {spec["name"]: spec for spec in links}
    assert "lab-n4" not in specs
    assert specs["lab-n2"]["cut"] == ["lab-n3:18444"] and specs["lab-n5"]["cut"] == ["lab-n1:18444"]
    # The far ends close them too: n3 drops what comes in from n2, n1 what comes in from n5.
    assert specs["lab-n3"]["unheard"] == [ADDRESSES["n2"]] and specs["lab-n1"]["unheard"] == [ADDRESSES["n5"]]
    assert "unheard" not in specs["lab-n2"] and "unheard" not in specs["lab-n5"]
    assert specs["lab-n3"]["frozen"] == ["lab-n4:18444"] and "cut" not in specs["lab-n1"]
    assert specs["lab-n1"]["rpc_host"] == ADDRESSES["n1"] and specs["lab-n1"]["peers"] == ["lab-n2:18444"]
    assert _faults.split(_faults.from_dicts([SPLIT])) and not _faults.split([])


def test_a_runs_faults_join_the_topologys_and_latency_asks_for_the_kernel_probe() -> None:
    networks = {"lab": {"chain": "regtest", "generators": [{"type": "ring", "nodes": 5, "prefix": "n"}],
                        "faults": [{"kind": "loss", "node": "n3", "percent": 20}]}}
    model = parse(networks, "t.peerlab.yml")
    extra, killed = adhoc(tuple(model), "", [{"kind": "kill", "node": "n2"}, {"kind": "latency", "node": "n1", "delay": 5}])
    assert extra == {"lab": [{"kind": "latency", "node": "n1", "delay": 5.0}]} and killed == ["lab-n2"]
    containers = frozenset(node.container for node in model[0].nodes)
    d = Deployment(networks=tuple(model), selected=containers, hosts=Hosts(names=("localhost",)), owner=Owner("o", "i"),
                   settings=Settings(common=Common(monitoring=False)), tags=TAGS, rpcauth={},
                   faults_extra={name: tuple(entries) for name, entries in extra.items()}, kill=tuple(killed))
    spec = host_spec(d, "localhost")
    assert [fault["kind"] for fault in spec.networks[0].faults] == ["loss", "latency"] and spec.latency and spec.kill == ("lab-n2",)


def test_adhoc_faults_are_validated_like_the_topology() -> None:
    model = tuple(parse({"lab": {"chain": "regtest", "generators": [{"type": "ring", "nodes": 5, "prefix": "n"}]}}, "t.peerlab.yml"))
    with pytest.raises(DeploymentError, match=r"fault.yml: network 'lab': faults\[0\]: loss 'percent'"):
        adhoc(model, "lab", [{"kind": "loss", "node": "n1"}])
    with pytest.raises(DeploymentError, match="network 'other' is not in this inventory"):
        adhoc(model, "other", [{"kind": "pause", "node": "n1"}])
    assert adhoc(model, "", []) == ({}, []), "clear=true: every network back to its topology's faults"


def test_the_schema_and_the_docs_table_say_what_the_declaration_says() -> None:
    check = subprocess.run([sys.executable, "tools/declared.py", "--check"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    fault = json.loads(Path("docs/topology.schema.json").read_text())["$defs"]["fault"]["properties"]
    assert fault["kind"]["enum"] == ["partition", "loss", "bandwidth", "latency", "pause"] == list(_faults.KINDS)
    assert set(_faults.SETTINGS) <= set(fault)
    table = Path("docs/experiments.md").read_text().split("<!-- fault-kinds")[1].split("<!-- /fault-kinds -->")[0]
    assert [row.split("`")[1] for row in table.splitlines() if row.startswith("| `")] == list(_faults.DECLARED)


def test_a_kind_declared_once_reaches_fault_yml_settings() -> None:
    settings = {"node": "n3", "percent": "30", "sides": [["n1"], ["n2"]], "rate": None, "unrelated": 1}
    assert _faults.from_settings("loss", settings) == {"kind": "loss", "node": "n3", "percent": "30", "groups": [["n1"], ["n2"]]}
    assert set(_faults.SETTINGS) == {"groups", "percent", "rate", "delay", "jitter"}
    assert {"pause", "kill"} == _faults.NODE_ONLY and _faults.ADHOC_KINDS - set(_faults.KINDS) == {"kill"}
