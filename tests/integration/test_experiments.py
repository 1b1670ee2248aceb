"""Experiments as a user runs them, on the default lab's shape (5 nodes, a ring with two chords):
faults in the topology reconciled like links (check, diff, changed counts), latency on this kernel
(no netem: netfilter queues and the delay program) in ping times and block arrival, ad hoc faults,
and the shipped scenarios with their reports."""

from __future__ import annotations

import copy
import json
import re
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from .conftest import ROOT, Lab, Run, cli, remove_docker_network, remove_network, wait_for

# Measures time (ping times and block arrival under latency faults): make test runs it alone (tests/together.sh).
pytestmark = pytest.mark.timing

NETWORK = "exp"
NODES = ["n1", "n2", "n3", "n4", "n5"]
FAULTS: list[dict[str, Any]] = [
    {"kind": "loss", "node": "n3", "percent": 20}, {"kind": "bandwidth", "node": "n5", "rate": "64kbit"}, {"kind": "pause", "node": "n4"}]


def topology(faults: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The default lab (inventories/local), under this test's network name, with these faults."""
    document = yaml.safe_load((ROOT / "inventories" / "local" / "02-topology.peerlab.yml").read_text())
    network = copy.deepcopy(document["networks"]["lab"])
    if faults:
        network["faults"] = faults
    return {NETWORK: network}


def remove(client: docker.DockerClient) -> None:
    for holder in client.containers.list(all=True, filters={"label": ["peerlab.role=fault", f"peerlab.network={NETWORK}"]}):
        holder.remove(force=True, v=True)
    remove_network(client, NETWORK)
    for network in client.networks.list(names=[f"peerlab-{NETWORK}"]):
        remove_docker_network(network)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Run]]:
    """The lab, deployed; that run comes along."""
    client = docker.from_env()
    remove(client)
    directory: Path = tmp_path_factory.mktemp("experiments")
    made = Lab(directory, topology(), {"peerlab_state_dir": str(directory / "state")})
    deployed = made.playbook("deploy.yml")
    assert deployed.rc == 0, deployed.output[-3000:]
    try:
        yield made, deployed
    finally:
        remove(client)
        client.close()


def holders(client: docker.DockerClient) -> dict[str, Any]:
    return {holder.labels["peerlab.fault_of"]: holder
            for holder in client.containers.list(all=True, filters={"label": ["peerlab.role=fault", f"peerlab.network={NETWORK}"]})}


def tips(client: docker.DockerClient, nodes: list[str]) -> dict[str, str]:
    return {node: cli(client, f"{NETWORK}-{node}", "getbestblockhash") for node in nodes}


def outbound(client: docker.DockerClient, node: str) -> set[str]:
    return {peer["addr"] for peer in cli(client, f"{NETWORK}-{node}", "getpeerinfo") if not peer["inbound"]}


def inbound(client: docker.DockerClient, node: str) -> set[str]:
    """The nodes `node` has inbound connections from (by their addresses on the lab's network)."""
    names = {}
    for other in NODES:
        networks = client.containers.get(f"{NETWORK}-{other}").attrs["NetworkSettings"]["Networks"]
        names.update({settings["IPAddress"]: other for settings in networks.values()})
    return {names.get(peer["addr"].rsplit(":", 1)[0], peer["addr"])
            for peer in cli(client, f"{NETWORK}-{node}", "getpeerinfo") if peer["inbound"]}


def pings(client: docker.DockerClient, node: str, peers: list[str], rounds: int) -> dict[str, list[float]]:
    """Bitcoin's own ping (the `ping` RPC, then each peer's `pingtime` once its pong came) from
    `node` to each of `peers`, in milliseconds, `rounds` times."""
    addresses = {client.containers.get(f"{NETWORK}-{peer}").attrs["NetworkSettings"]["Networks"][f"peerlab-{NETWORK}"]["IPAddress"]: peer
                 for peer in peers} | {f"{NETWORK}-{peer}": peer for peer in peers}  # inbound by address, outbound by name
    samples: dict[str, list[float]] = {peer: [] for peer in peers}

    def peer_info() -> dict[str, dict[str, Any]]:
        found = {addresses[info["addr"].rsplit(":", 1)[0]]: info for info in cli(client, f"{NETWORK}-{node}", "getpeerinfo")
                 if info["addr"].rsplit(":", 1)[0] in addresses}
        assert set(found) == set(peers), f"{node} is linked to {sorted(found)}, not to every one of {peers}"
        return found

    def pongs(info: dict[str, Any]) -> int:
        return int(info["bytesrecv_per_msg"].get("pong", 0))

    last = {peer: pongs(info) for peer, info in peer_info().items()}  # a ping from before does not count
    for _round in range(rounds):
        cli(client, f"{NETWORK}-{node}", "ping")

        def answered() -> bool:
            now = peer_info()
            if any("pingwait" in info or pongs(info) == last[peer] for peer, info in now.items()):
                return False
            for peer, info in now.items():
                last[peer] = pongs(info)
                samples[peer].append(info["pingtime"] * 1000)
            return True
        assert wait_for(answered, timeout=10, interval=0.02)
    return samples


def test_latency_without_netem_shows_in_ping_times_and_in_block_arrival(lab: tuple[Lab, Run], client: docker.DockerClient) -> None:
    """This kernel has no sch_netem: the probe finds netfilter queues, and the delay program holds
    n3's P2P packets (200 ms), what n1 sends to n2 (50 ms) and to n5 (100 ms ±40)."""
    made, _deployed = lab
    declared: list[dict[str, Any]] = [{"kind": "latency", "node": "n3", "delay": "200ms"},
                                      {"kind": "latency", "from": "n1", "to": "n2", "delay": 50},
                                      {"kind": "latency", "from": "n1", "to": "n5", "delay": "0.1s", "jitter": "40ms"}]
    made.write(topology(declared))
    try:
        held_latency(made, client)
    finally:  # the next tests start from the lab without faults, whatever happened here
        made.write(topology())
        cleared = made.playbook("deploy.yml")
    assert cleared.rc == 0 and holders(client) == {}, cleared.output[-3000:]
    assert statistics.median(pings(client, "n1", ["n3"], 5)["n3"]) < 20

    # The latency scenario on the lab without faults: n3 alone at 200 ms. Tips read every 20 ms
    # (the default 0.1 s is as long as the effect measured).
    run = made.playbook("playbooks/scenario.yml", "-e", f"scenario={ROOT / 'scenarios' / 'latency.yml'}", "-e", "scenario_poll=0.02")
    assert run.rc == 0, run.output[-3000:]
    report, text = report_of(made, "latency.yml")
    propagation = report["propagation"]
    # Each block waits 100 ms on its way into n3.
    assert propagation["n3"]["median"] >= 0.1, propagation
    assert propagation["n3"]["median"] - max(propagation[node]["median"] for node in ("n2", "n4", "n5")) >= 0.06, propagation
    assert re.search(r"\| n3 \| \d+ \| 0\.[1-9]", text), text
    assert holders(client) == {}, "the scenario's fault is gone"


def held_latency(made: Lab, client: docker.DockerClient) -> None:
    check = made.playbook("deploy.yml", "--check", "--diff")
    assert check.rc == 0, check.output[-3000:]
    assert f"+{NETWORK}-n3: latency 200ms on n3" in check.output
    assert f"+{NETWORK}-n1: latency 50ms on n1 -> n2; latency 100ms ±40ms on n1 -> n5" in check.output
    applied = made.playbook("deploy.yml")
    assert applied.rc == 0, applied.output[-3000:]
    assert applied.changes == {f"{NETWORK}-n1": ["faults: apply"], f"{NETWORK}-n3": ["faults: apply"]}
    again = made.playbook("deploy.yml")
    assert again.rc == 0 and again.total_changed == 0, again.output[-3000:]
    rules = holders(client)[f"{NETWORK}-n3"].exec_run(["iptables-save"]).output.decode()
    assert rules.count("-j NFQUEUE --queue-num") == 4 and "holding queues 1 (100 ms ±0)\n" in (
        holders(client)[f"{NETWORK}-n3"].logs().decode())

    samples = pings(client, "n1", ["n2", "n3", "n5"], 20)
    median = {peer: statistics.median(values) for peer, values in samples.items()}
    assert 180 <= median["n3"] <= 220, samples["n3"]                          # within 10 % of 200 ms
    assert 45 <= median["n2"] <= 55, samples["n2"]                            # within 10 % of 50 ms
    assert all(58 <= value <= 150 for value in samples["n5"]), samples["n5"]  # 100 ms ±40 (and the lab's own ms)
    assert max(samples["n5"]) - min(samples["n5"]) >= 40, samples["n5"]       # the jitter spreads them
    assert statistics.median(pings(client, "n4", ["n5"], 5)["n5"]) < 20       # no fault between n4 and n5


def test_a_host_that_cannot_delay_packets_is_refused_naming_both_kernel_features(client: docker.DockerClient) -> None:
    """The delay probe, run for real in an image that has neither tc nor iptables (the base image):
    what it answers is the refusal's reason. On this kernel the node image's probe finds the queues."""
    from ansible_collections.peerlab.bitcoin.plugins.module_utils import _faults, _netfault
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._docker import Docker

    images = {tag.split(":")[0]: tag for image in client.images.list() for tag in image.tags}
    way, refusal = _netfault.delay_probe(Docker(), images["peerlab/base"], "localhost")
    assert way == ""
    assert refusal.startswith("latency needs the kernel's netem queueing discipline (sch_netem, CONFIG_NET_SCH_NETEM) or its "
                              "netfilter queues (CONFIG_NETFILTER_NETLINK_QUEUE and iptables' NFQUEUE target), and the kernel "
                              "of Docker host 'localhost' has neither (tc: "), refusal
    assert "not found" in refusal
    assert _netfault.delay_probe(Docker(), images["peerlab/bitcoin-node"], "localhost") == (_faults.QUEUE, "")
    assert client.containers.list(all=True, filters={"label": "peerlab.role=probe"}) == [], "the probe leaves nothing"


def test_topology_faults_are_planned_applied_held_and_removed_like_links(lab: tuple[Lab, Run], client: docker.DockerClient) -> None:
    made, _refused = lab
    made.write(topology(FAULTS))
    check = made.playbook("deploy.yml", "--check", "--diff")
    assert check.rc == 0, check.output[-3000:]
    for line in (f"+{NETWORK}-n3: loss 20% on n3", f"+{NETWORK}-n4: paused", f"+{NETWORK}-n5: bandwidth 64kbit on n5"):
        assert line in check.output
    assert holders(client) == {} and client.containers.get(f"{NETWORK}-n4").status == "running", "check mode changes nothing"

    applied = made.playbook("deploy.yml")
    assert applied.rc == 0, applied.output[-3000:]
    assert applied.changes == {f"{NETWORK}-n3": ["faults: apply"], f"{NETWORK}-n4": ["faults: pause"],
                               f"{NETWORK}-n5": ["faults: apply"]}, "the faults, nothing else"
    held = holders(client)
    assert set(held) == {f"{NETWORK}-n3", f"{NETWORK}-n5"}
    assert held[f"{NETWORK}-n3"].labels["peerlab.faults"] == "loss 20% on n3"
    assert client.containers.get(f"{NETWORK}-n4").status == "paused"
    rules = held[f"{NETWORK}-n3"].exec_run(["iptables-save"]).output.decode()
    assert rules.count("--probability 0.20000000") == 4 and "--dport 18444" in rules
    qdiscs = held[f"{NETWORK}-n5"].exec_run(["tc", "class", "show", "dev", "eth0"]).output.decode()
    assert "rate 64Kbit" in qdiscs
    assert client.containers.get(f"{NETWORK}-n3").attrs["HostConfig"]["CapAdd"] in (None, []), "nodes never get NET_ADMIN"
    # The node image's data directory is a VOLUME: a holder made from it must not leave a volume behind
    assert [m for holder in held.values() for m in holder.attrs["Mounts"] if m["Type"] == "volume"] == []

    again = made.playbook("deploy.yml")
    assert again.rc == 0 and again.total_changed == 0 and again.changes == {}, again.output[-3000:]

    # 20 % loss on n3 and 64 kbit/s on n5 still converge; paused n4 stays where it was.
    before_n4 = cli(client, f"{NETWORK}-n1", "getbestblockhash")
    cli(client, f"{NETWORK}-n1", "generatetoaddress", "5", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")
    best = cli(client, f"{NETWORK}-n1", "getbestblockhash")
    assert wait_for(lambda: set(tips(client, ["n1", "n2", "n3", "n5"]).values()) == {best}, timeout=90)
    # status.yml does not wait on the paused node's RPC: it says so, and shows the others' tip
    status = made.playbook("playbooks/status.yml")
    assert status.rc == 0, status.output[-2000:]
    rows = {row.split()[1]: row.split()[2:] for row in status.output.splitlines() if re.match(rf"\s*- {NETWORK}-n\d ", row)}
    assert rows[f"{NETWORK}-n4"][-1] == "(paused)" and rows[f"{NETWORK}-n1"][-1] == best[:16], rows
    refused = made.playbook("playbooks/mine.yml", "--limit", f"{NETWORK}-n4")
    assert refused.rc != 0 and f"{NETWORK}-n4 is paused: it cannot mine (clear its fault" in refused.output, refused.output[-2000:]

    made.write(topology())
    undo = made.playbook("deploy.yml", "--check", "--diff")
    for line in (f"-{NETWORK}-n3: loss 20% on n3", f"-{NETWORK}-n4: paused", f"-{NETWORK}-n5: bandwidth 64kbit on n5"):
        assert line in undo.output
    assert len(holders(client)) == 2, "check mode changes nothing"
    cleared = made.playbook("deploy.yml")
    assert cleared.rc == 0, cleared.output[-3000:]
    assert holders(client) == {} and client.containers.get(f"{NETWORK}-n4").status == "running"
    assert before_n4 != best and wait_for(lambda: cli(client, f"{NETWORK}-n4", "getbestblockhash") == best, timeout=60)
    # The holder undid its rules as it went: n5's namespace has no htb any more.
    node = client.containers.get(f"{NETWORK}-n5")
    shown = client.containers.run(node.image.id, ["tc", "qdisc", "show", "dev", "eth0"], entrypoint=[], user="root",
                                  network_mode=f"container:{node.id}", tmpfs={"/home/bitcoin/.bitcoin": ""},  # no volume left
                                  remove=True).decode()
    assert "htb" not in shown and "qdisc" in shown, shown
    final = made.playbook("deploy.yml")
    assert final.rc == 0 and final.total_changed == 0 and final.changes == {}, final.output[-3000:]


def test_a_holder_that_fails_halfway_leaves_no_rule_and_holds_only_net_admin(
        lab: tuple[Lab, Run], client: docker.DockerClient) -> None:
    """The engine's own holder code, with a plan whose script fails after its iptables rules and
    before its tc classes: the holder is refused naming the faults, and the node's namespace keeps
    no rule (the EXIT trap undid them). The holder runs with NET_ADMIN alone, no new privileges and
    a read-only root."""
    import dataclasses

    from ansible_collections.peerlab.bitcoin.plugins.module_utils import _faults, _netfault
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._docker import Docker, DockerError

    node = client.containers.get(f"{NETWORK}-n2")
    address = node.attrs["NetworkSettings"]["Networks"][f"peerlab-{NETWORK}"]["IPAddress"]
    declared = [_faults.Fault(kind="loss", node="n2", percent=10.0), _faults.Fault(kind="bandwidth", node="n2", rate="64kbit")]
    plan = _faults.node_plan(declared, "n2", address, {"n2": address}, 18444)
    assert "iptables -w -N PEERLAB_IN" in plan.commands and "tc qdisc add dev $dev root" in plan.commands
    failing = dataclasses.replace(plan, commands=plan.commands.replace("tc qdisc add dev $dev root", "false\ntc qdisc add dev $dev root"))
    engine = Docker()
    summary = engine.request("GET", f"/containers/{node.id}/json")
    with pytest.raises(DockerError, match="could not apply loss 10% on n2, bandwidth 64kbit on n2"):
        _netfault.make_holder(engine, {"Id": node.id, "Image": summary["Image"]}, NETWORK, failing)
    assert holders(client) == {}, "the failed holder is removed"

    def namespace(*command: str) -> str:
        return str(client.containers.run(node.image.id, list(command), entrypoint=[], user="root", cap_add=["NET_ADMIN"],
                                         network_mode=f"container:{node.id}", tmpfs={"/home/bitcoin/.bitcoin": ""},
                                         remove=True).decode())
    assert "PEERLAB" not in namespace("iptables-save") and "htb" not in namespace("tc", "qdisc", "show", "dev", "eth0")

    # The same plan, not failing: held with NET_ADMIN alone, its rules in place; stopping it undoes them.
    _netfault.make_holder(engine, {"Id": node.id, "Image": summary["Image"]}, NETWORK, plan)
    (holder,) = holders(client).values()
    host = holder.attrs["HostConfig"]
    assert (host["CapDrop"], host["CapAdd"], host["SecurityOpt"], host["ReadonlyRootfs"]) == (
        ["ALL"], ["NET_ADMIN"], ["no-new-privileges"], True)
    assert namespace("iptables-save").count("--probability 0.10000000") == 4
    _netfault.remove_holder(engine, {"Id": holder.id, "State": "running"})
    assert "PEERLAB" not in namespace("iptables-save") and "htb" not in namespace("tc", "qdisc", "show", "dev", "eth0")


def test_adhoc_partition_kill_and_clear(lab: tuple[Lab, Run], client: docker.DockerClient) -> None:
    made, _refused = lab
    bad = made.playbook("playbooks/fault.yml", "-e", "fault=loss", "-e", "node=n9", "-e", "percent=120")
    assert bad.rc != 0
    assert "node 'n9' is not a node of this network" in bad.output and "loss 'percent' must be a number above 0" in bad.output
    assert holders(client) == {}

    assert inbound(client, "n3") == {"n1", "n2"}
    split = made.playbook("playbooks/fault.yml", "-e", "fault=partition", "-e", '{"sides": [["n1", "n2"], ["n3", "n4", "n5"]]}')
    assert split.rc == 0, split.output[-3000:]
    assert len(holders(client)) == 5
    assert outbound(client, "n1") == {f"{NETWORK}-n2:18444"}, "the link n1 -> n3 across the cut is closed"
    assert inbound(client, "n3") == set() and inbound(client, "n1") == set(), "and closed at the far end too"
    (left,) = cli(client, f"{NETWORK}-n1", "generatetoaddress", "1", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")
    right = cli(client, f"{NETWORK}-n3", "generatetoaddress", "2", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")[-1]
    expected = {"n1": left, "n2": left, "n3": right, "n4": right, "n5": right}
    assert wait_for(lambda: tips(client, NODES) == expected, timeout=30), ("two tips, one per side", tips(client, NODES))

    heal = made.playbook("playbooks/fault.yml", "-e", "clear=true")
    assert heal.rc == 0, heal.output[-3000:]
    assert holders(client) == {}
    assert wait_for(lambda: len(set(tips(client, NODES).values())) == 1, timeout=60)
    assert outbound(client, "n1") == {f"{NETWORK}-n2:18444", f"{NETWORK}-n3:18444"}
    assert wait_for(lambda: inbound(client, "n3") == {"n1", "n2"}, timeout=30), inbound(client, "n3")

    killed = made.playbook("playbooks/fault.yml", "-e", "fault=kill", "-e", "node=n5")
    assert killed.rc == 0 and killed.changes[f"{NETWORK}-n5"][-1].startswith("killed"), killed.output[-3000:]
    node = client.containers.get(f"{NETWORK}-n5")
    assert node.status == "exited" and node.attrs["State"]["ExitCode"] == 137, "SIGKILL, and the engine leaves it down"
    started = made.playbook("playbooks/start.yml")
    assert started.rc == 0, started.output[-3000:]
    assert client.containers.get(f"{NETWORK}-n5").status == "running"


def in_namespace(client: docker.DockerClient, node: str, *command: str) -> str:
    """A command in a node's network namespace, from a throwaway container of its image."""
    container = client.containers.get(f"{NETWORK}-{node}")
    return str(client.containers.run(container.image.id, list(command), entrypoint=[], user="root", cap_add=["NET_ADMIN"],
                                     network_mode=f"container:{container.id}", tmpfs={"/home/bitcoin/.bitcoin": ""},
                                     remove=True).decode())


def test_clearing_removes_what_a_holder_removed_behind_peerlabs_back_left(lab: tuple[Lab, Run], client: docker.DockerClient) -> None:
    """`docker rm -f` on a holder kills it before its trap: its rules stay in the node's namespace.
    fault.yml -e clear=true sweeps every node without a holder and says which had something."""
    made, _deployed = lab
    applied = made.playbook("playbooks/fault.yml", "-e", "fault=loss", "-e", "node=n4", "-e", "percent=30")
    assert applied.rc == 0, applied.output[-3000:]
    holders(client)[f"{NETWORK}-n4"].remove(force=True, v=True)
    assert "PEERLAB_IN" in in_namespace(client, "n4", "iptables-save"), "SIGKILL: no trap ran"
    cleared = made.playbook("playbooks/fault.yml", "-e", "clear=true")
    assert cleared.rc == 0, cleared.output[-3000:]
    assert cleared.changes == {f"{NETWORK}-n4": ["faults: swept"]}, cleared.changes
    assert "PEERLAB" not in in_namespace(client, "n4", "iptables-save")
    again = made.playbook("playbooks/fault.yml", "-e", "clear=true")
    assert again.rc == 0 and again.changes == {}, again.output[-3000:]
    assert client.containers.list(all=True, filters={"label": "peerlab.role=probe"}) == [], "the sweeps leave nothing"


def report_of(made: Lab, scenario: str) -> tuple[dict[str, Any], str]:
    reports = sorted((Path(made.directory) / "state" / "reports").glob(f"{Path(scenario).stem}-*.json"))
    assert reports, "the report is written"
    return json.loads(reports[-1].read_text()), reports[-1].with_suffix(".md").read_text()


def test_a_scenario_file_is_checked_whole_before_anything_runs(lab: tuple[Lab, Run], tmp_path: Path) -> None:
    made, _refused = lab
    scenario = tmp_path / "bad.yml"
    scenario.write_text(yaml.safe_dump({"name": "bad", "steps": [
        {"mine": {"node": "n9"}}, {"fault": {"kind": "partition", "groups": [["n1"]]}}, {"wiat": {"agree": True}},
        {"wait": {"timeout": 5}}]}))
    run = made.playbook("playbooks/scenario.yml", "-e", f"scenario={scenario}")
    assert run.rc != 0
    for problem in ("steps[0]: node 'n9' is not a node of this network", "steps[1]: a partition needs 'groups'",
                    "steps[2]: unknown step 'wiat' (did you mean 'wait'?)", "steps[3]: wait needs a condition"):
        assert problem in run.output, problem
    assert not list((Path(made.directory) / "state" / "reports").glob("bad-*")), "no report: nothing ran"


def test_split_brain_scenario_forks_heals_and_reports_the_reorg(lab: tuple[Lab, Run], client: docker.DockerClient) -> None:
    made, _refused = lab
    run = made.playbook("playbooks/scenario.yml", "-e", f"scenario={ROOT / 'scenarios' / 'split-brain.yml'}")
    assert run.rc == 0, run.output[-3000:]
    report, text = report_of(made, "split-brain.yml")
    assert report["ok"] and report["max_tips"] == 2 and report["reorg_depth"] >= 2
    assert {reorg["node"] for reorg in report["reorgs"]} == {"n1", "n2"}, "the short side reorganises"
    assert len({tip["hash"] for tip in report["final"].values()}) == 1
    stale = [block for block in report["blocks"] if block["stale"]]
    assert [block["miner"] for block in stale] == ["n1", "n1"]
    assert [entry["action"] for entry in report["faults"]] == ["applied", "cleared"]
    assert "Deepest reorganisation: 2 block(s)." in text and "| n3 | 3 | 50 | - |" in text
    assert holders(client) == {}, "the scenario's faults are gone"


def test_slow_link_scenario_delays_the_limited_nodes_blocks(lab: tuple[Lab, Run]) -> None:
    made, _refused = lab
    run = made.playbook("playbooks/scenario.yml", "-e", f"scenario={ROOT / 'scenarios' / 'slow-link.yml'}")
    assert run.rc == 0, run.output[-3000:]
    report, text = report_of(made, "slow-link.yml")
    propagation = report["propagation"]
    others = max(propagation[node]["max"] for node in ("n1", "n2", "n3", "n4"))
    assert propagation["n5"]["max"] > max(2.0, 5 * others), propagation  # its mempool lags: blocks wait for their transactions
    assert propagation["n5"]["median"] >= max(propagation[node]["median"] for node in ("n1", "n2", "n3", "n4"))
    assert re.search(r"\| n5 \| \d+ \| [0-9.]+ \| [0-9.]+ \|", text)


def test_a_scenarios_cleanup_goes_on_past_a_node_it_cannot_clean_and_names_it(
        lab: tuple[Lab, Run], client: docker.DockerClient, tmp_path: Path) -> None:
    """n2 is stopped behind the scenario's back while a partition holds: the cleanup still removes
    every holder and reopens every other link, and the run fails naming n2."""
    import threading

    made, _deployed = lab
    scenario = tmp_path / "stopped.yml"
    scenario.write_text(yaml.safe_dump({"name": "stopped", "steps": [
        {"fault": {"kind": "partition", "groups": [["n1", "n2"], ["n3", "n4", "n5"]]}}, {"mine": {"node": "n4", "blocks": 1}},
        {"sleep": 8}]}))
    height = int(cli(client, f"{NETWORK}-n4", "getblockcount"))
    runs: list[Run] = []
    thread = threading.Thread(target=lambda: runs.append(made.playbook("playbooks/scenario.yml", "-e", f"scenario={scenario}")))
    thread.start()
    try:
        # n4's block comes once the partition step is over (its links closed and checked): then n2 stops.
        assert wait_for(lambda: int(cli(client, f"{NETWORK}-n4", "getblockcount")) > height, timeout=60, interval=0.2)
        assert len(holders(client)) == 5, "the partition is held"
        client.containers.get(f"{NETWORK}-n2").stop(timeout=2)
    finally:
        thread.join(timeout=300)
    (run,) = runs
    assert run.rc != 0
    assert "failed at cleanup: n2: its container is exited (stopped outside the scenario)" in run.output, run.output[-3000:]
    report, text = report_of(made, "stopped.yml")
    assert report["cleanup"] == ["n2: its container is exited (stopped outside the scenario): its links are left to the next deploy"]
    assert "## Cleanup" in text
    # Everything else was cleaned up: no holder is left (n2's too), the links across the cut are back.
    assert holders(client) == {}
    assert wait_for(lambda: f"{NETWORK}-n3:18444" in outbound(client, "n1"), timeout=30), outbound(client, "n1")
    assert wait_for(lambda: inbound(client, "n3") == {"n1"}, timeout=30), inbound(client, "n3")  # n2 -> n3 waits for n2
    started = made.playbook("playbooks/start.yml")
    assert started.rc == 0, started.output[-3000:]
    assert wait_for(lambda: inbound(client, "n3") == {"n1", "n2"}, timeout=60), inbound(client, "n3")
