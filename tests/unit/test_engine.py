"""The engine's pure parts: a run's desired state per Docker host (what runs where, each container's
settings and hash), the plan against what an engine holds (refusals first: ownership, images,
disk), `--limit` read per node, the settings, the typed transport."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _desired, _images, _names, _plan, _settings
from ansible_collections.peerlab.bitcoin.plugins.module_utils._container import create_body, differences
from ansible_collections.peerlab.bitcoin.plugins.module_utils._desired import Deployment, Hosts, Owner, host_spec, overlay_subnet
from ansible_collections.peerlab.bitcoin.plugins.module_utils._facts import ContainerFact, EngineFacts, NetworkFact, ServiceFact, VolumeFact
from ansible_collections.peerlab.bitcoin.plugins.module_utils._spec import HostSpec
from ansible_collections.peerlab.bitcoin.plugins.module_utils._topology import parse
from ansible_collections.peerlab.bitcoin.plugins.module_utils._typed import dump, load
from ansible_collections.peerlab.bitcoin.plugins.plugin_utils import _selection

ROOT = Path(__file__).resolve().parents[2]
LAB = {"lab": {"chain": "regtest", "defaults": {"host": "localhost"}, "generators": [{"type": "ring", "nodes": 3, "prefix": "n"}]}}
SWARM = {"sw": {"chain": "regtest", "nodes": [{"name": "a", "host": "m1"}, {"name": "b", "host": "w1"}, {"name": "c", "host": "w1"}],
                "edges": [["a", "b"], ["b", "c"], ["c", "a"]]}}
OWNER = Owner("abc123", "/tmp/inventory")
TAGS = _images.Tags(node_hash="h" * 12, base="peerlab/base:trixie-x",
                    repositories={"node": "peerlab/bitcoin-node", "collector": "peerlab/collector", "graphite": "peerlab/graphite",
                                  "portal": "peerlab/portal", "alertmanager": "peerlab/alertmanager", "observer": "peerlab/observer"},
                    hashes={"collector": "c1", "graphite": "g1", "portal": "p1", "alertmanager": "a1", "observer": "o1"})


def deployment(networks: dict[str, Any] | None = None, *, hosts: Hosts | None = None, monitoring: bool = False,
               selected: set[str] | None = None, **settings: Any) -> Deployment:
    hosts = hosts or Hosts(names=("localhost",), local=("localhost",))
    model = tuple(parse(networks or LAB, "t.peerlab.yml", known_hosts=set(hosts.names),
                        swarm_hosts=set(hosts.managers + hosts.workers)))
    containers = {node.container for network in model for node in network.nodes}
    common = _settings.Common(monitoring=monitoring, state_dir="/state", **settings.pop("common", {}))
    return Deployment(networks=model, selected=frozenset(selected if selected is not None else containers), hosts=hosts, owner=OWNER,
                      settings=dataclasses.replace(_settings.Settings(), common=common, **settings), tags=TAGS,
                      rpcauth={name: f"peerlab:salt${name}" for name in containers}, limited=selected is not None)


def engine(**found: Any) -> EngineFacts:
    return EngineFacts(**found)


def running(spec: Any, state: str = "running", **labels: str) -> ContainerFact:
    return ContainerFact("id-" + spec.name, spec.name, spec.image, {**spec.labels, _names.SPEC: spec.spec, **labels}, state, "Up", 1)


# ---------------------------------------------------------------------------------------------
# desired state

def test_a_node_container_carries_its_owner_its_peers_file_and_no_secret() -> None:
    spec = host_spec(deployment(), "localhost")
    node = spec.container("lab-n1")
    assert node is not None and node.role == "node" and node.image == "peerlab/bitcoin-node:knots-29.5-hhhhhhhhhhhh"
    assert node.labels == {"peerlab.network": "lab", "peerlab.node": "n1", "peerlab.role": "node", "peerlab.chain": "regtest",
                           "peerlab.implementation": "knots", "peerlab.version": "29.5", "peerlab.owner": "abc123",
                           "peerlab.inventory": "/tmp/inventory"}
    assert node.env["PEERLAB_RPCALLOWIP"] == "attached" and node.env["PEERLAB_RPCAUTH"] == "peerlab:salt$lab-n1"
    assert "password" not in json.dumps(dump(spec)).lower()
    assert [(mount.type, mount.source, mount.target, mount.read_only) for mount in node.mounts] == [
        ("volume", "lab-n1-data", _names.DATA_DIR, False), ("bind", "/state/peers/lab-n1", _names.PEERS_FILE, True)]
    assert node.mounts[0].labels[_names.OWNER] == "abc123"
    peers = {entry.path: entry.content for entry in spec.files if "/peers/" in entry.path}
    assert peers == {"/state/peers/lab-n1": "lab-n2:18444\n", "/state/peers/lab-n2": "lab-n3:18444\n",
                     "/state/peers/lab-n3": "lab-n1:18444\n"}
    assert [network.name for network in spec.docker_networks] == ["peerlab-lab"]
    assert spec.images == ("peerlab/bitcoin-node:knots-29.5-hhhhhhhhhhhh",)


def test_the_hash_covers_every_setting_and_nothing_else() -> None:
    base = host_spec(deployment(), "localhost").container("lab-n1")
    again = host_spec(deployment(), "localhost").container("lab-n1")
    assert base is not None and again is not None and base.spec == again.spec and len(base.spec) == 16
    changed = {
        "conf": {"lab": {**LAB["lab"], "nodes": [{"name": "n1", "conf": {"maxmempool": 60}}]}},
        "memory": {"lab": {**LAB["lab"], "defaults": {"host": "localhost", "resources": {"memory": "300m"}}}},
        "version": {"lab": {**LAB["lab"], "defaults": {"host": "localhost", "version": "29.1"}}},
    }
    for why, networks in changed.items():
        other = host_spec(deployment(networks), "localhost").container("lab-n1")
        assert other is not None and other.spec != base.spec, why
    timeout = host_spec(deployment(network=_settings.NetworkSettings(stop_timeout=30)), "localhost").container("lab-n1")
    assert timeout is not None and timeout.spec != base.spec
    # How long to wait for it is not what it is.
    assert dataclasses.replace(base, wait_healthy=9.0).spec == base.spec
    # A field specs gained later, at its default, leaves the hash as it was: an upgrade remakes no node.
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._typed import dump

    before = {key: value for key, value in dump(dataclasses.replace(base, spec="")).items() if key != "cpu_shares"}
    assert _desired.settings_hash(_desired._without_inventory(before)) == base.spec


def test_the_conf_lines_are_checked_again_where_they_are_rendered() -> None:
    model = deployment()
    node = model.networks[0].nodes[0]
    broken = dataclasses.replace(node, conf={**node.conf, "uacomment": "x\nrpcallowip=0.0.0.0/0"})
    with pytest.raises(ValueError, match="a line break"):
        _desired.conf_lines(broken)
    managed = dataclasses.replace(node, conf_unchecked={"rpcallowip": "0.0.0.0/0"})
    with pytest.raises(ValueError, match="which peerlab manages"):
        _desired.conf_lines(managed)


def test_a_swarm_network_is_services_on_the_manager_and_peers_files_where_its_nodes_run() -> None:
    hosts = Hosts(names=("m1", "w1"), managers=("m1",), workers=("w1",))
    d = deployment(SWARM, hosts=hosts, monitoring=True)
    manager, worker = host_spec(d, "m1"), host_spec(d, "w1")
    assert manager.manager and [service.name for service in manager.services if service.role == "node"] == ["sw-a", "sw-b", "sw-c"]
    assert not [container for container in manager.containers if container.role == "node"]
    service = next(service for service in manager.services if service.name == "sw-b")
    assert service.placement == ("node.labels.peerlab.host == w1",) and service.mode == "replicated"
    assert [network.driver for network in manager.docker_networks if network.name == "peerlab-sw"] == ["overlay"]
    assert not worker.services and [node.container for node in worker.nodes] == ["sw-b", "sw-c"]
    assert {node.spec for node in worker.nodes} == {service.spec for service in manager.services if service.name in ("sw-b", "sw-c")}
    # The monitoring stack on the manager, a collector everywhere as a global service, configured per host.
    assert {container.role for container in manager.containers} >= {"graphite", "bus", "observer"}
    assert [service.mode for service in manager.services if service.role == "collector"] == ["global"]
    config = json.loads(next(entry for entry in worker.files if entry.path.endswith("collector.json")).data({}))
    assert config["host"] == "w1" and sorted(config["networks"]["sw"]["nodes"]) == ["b", "c"]
    assert config["networks"]["sw"]["edges"] == [["b", "c"], ["c", "a"]]


def test_the_monitoring_stack_runs_on_the_monitoring_host_and_a_collector_where_nodes_run() -> None:
    networks = {"lab": {"chain": "regtest", "nodes": [{"name": "a", "host": "h1"}, {"name": "b", "host": "h2"}]}}
    hosts = Hosts(names=("h1", "h2"), monitoring=("h2",))
    d = deployment(networks, hosts=hosts, monitoring=True)
    one, two = host_spec(d, "h1"), host_spec(d, "h2")
    assert [container.role for container in one.containers] == ["node", "collector"]
    roles = sorted(container.role for container in two.containers)
    assert roles == ["alertmanager", "bus", "collector", "grafana", "graphite", "node", "observer"]
    observer = json.loads(next(entry for entry in two.files if entry.path.endswith("observer.json")).data({}))
    assert sorted(observer["networks"]["lab"]["nodes"]) == ["a", "b"] and observer["carbon"] == "peerlab-graphite:2003"
    collector = one.container("peerlab-collector")
    assert collector is not None and collector.networks == ("peerlab-monitoring", "peerlab-lab")
    # Under contention the collector, the bus and the observer weigh eight nodes (they keep up with the logs).
    weights = {container.role: container.cpu_shares for container in two.containers}
    assert weights["collector"] == weights["bus"] == weights["observer"] == 8192 and weights["node"] == 0
    assert create_body(collector, "/var/lib/docker")["HostConfig"]["CpuShares"] == 8192
    running = {"Config": {"Image": collector.image}, "HostConfig": {"CpuShares": 0}}
    assert "CpuShares 0 -> 8192" in differences(collector, running, "/var/lib/docker")
    assert d.monitoring_host() == "h2"
    # apply.yml: nodes and the collectors' view, not the stack's containers.
    nodes_only = host_spec(d, "h2", whole_stack=False)
    assert [container.role for container in nodes_only.containers] == ["node"]
    assert any(entry.path.endswith("observer.json") for entry in nodes_only.files)


def test_limited_runs_act_on_the_chosen_nodes_and_whole_runs_also_on_networks_gone() -> None:
    limited = host_spec(deployment(selected={"lab-n2"}), "localhost")
    assert [container.name for container in limited.containers] == ["lab-n2"] and not limited.whole
    assert limited.networks[0].keep == ("lab-n1", "lab-n2", "lab-n3"), "prune compares with the whole network"
    assert host_spec(deployment(), "localhost").whole


@pytest.mark.parametrize(("nodes", "subnet"), [(5, ""), (180, ""), (300, "/22"), (1000, "/20")])
def test_an_overlay_network_is_sized_for_its_nodes(nodes: int, subnet: str) -> None:
    assert overlay_subnet(nodes) == subnet


def test_a_free_subnet_is_taken_beside_the_ones_in_use() -> None:
    taken = ["10.224.0.0/22", "10.0.0.0/24", "172.17.0.0/16"]
    chosen = _plan.free_subnet("/22", taken)
    assert chosen == "10.224.4.0/22"
    import ipaddress

    assert ipaddress.ip_network(chosen).num_addresses - 2 >= 2 * 300, "a 300-node network fits with room"


# ---------------------------------------------------------------------------------------------
# plan

def test_a_container_peerlab_did_not_make_is_refused_by_name_and_never_touched() -> None:
    spec = host_spec(deployment(), "localhost")
    busybox = ContainerFact("b1", "lab-n1", "busybox", {}, "running", "Up", 1)
    plan = _plan.plan(spec, engine(containers={"lab-n1": busybox}))
    assert any("container lab-n1 exists on localhost and peerlab did not make it" in problem for problem in plan.refusals)
    assert "lab-n1" not in [step.name for _container, step in plan.containers]


def test_what_another_inventory_owns_is_refused_naming_the_owner() -> None:
    spec = host_spec(deployment(), "localhost")
    theirs = {_names.ROLE: "network", _names.NETWORK: "lab", _names.OWNER: "other1", _names.INVENTORY: "/elsewhere/inventory"}
    plan = _plan.plan(spec, engine(networks={"peerlab-lab": NetworkFact("peerlab-lab", "n", "bridge", theirs)},
                                   volumes={"lab-n2-data": VolumeFact("lab-n2-data", {**theirs, _names.ROLE: "node-data"})}))
    said = " ".join(plan.refusals)
    assert "Docker network peerlab-lab on localhost belongs to the inventory at /elsewhere/inventory (peerlab.owner=other1)" in said
    assert "volume lab-n2-data on localhost belongs to the inventory at /elsewhere/inventory" in said


def test_the_same_owner_from_another_path_changes_nothing_and_another_owner_remakes() -> None:
    """Molecule runs a copy of its inventory; a user moves theirs: the owner id decides, not the path."""
    spec = host_spec(deployment(monitoring=True), "localhost")
    facts = engine(containers={container.name: running(container) for container in spec.containers}, images=spec.images)
    moved = dataclasses.replace(deployment(monitoring=True), owner=Owner(OWNER.id, "/home/me/moved/inventory"))
    assert [step.action for _container, step in _plan.plan(host_spec(moved, "localhost"), facts).containers] == \
        ["none"] * len(spec.containers)
    other = dataclasses.replace(deployment(monitoring=True), owner=Owner("zzz999", OWNER.inventory))
    assert {container.spec for container in host_spec(other, "localhost").containers}.isdisjoint(
        {container.spec for container in spec.containers})


def test_an_object_made_before_owners_were_recorded_is_taken_by_the_inventory_that_deploys_it() -> None:
    spec = host_spec(deployment(), "localhost")
    node = spec.container("lab-n1")
    assert node is not None
    legacy = ContainerFact("l1", "lab-n1", node.image, {_names.ROLE: "node", _names.NETWORK: "lab", _names.NODE: "n1", _names.SPEC: "old"},
                           "running", "Up", 1)
    plan = _plan.plan(spec, engine(containers={"lab-n1": legacy}, images=spec.images))
    assert plan.refusals == []
    assert [(step.action, step.name) for _container, step in plan.containers if step.action != "none"] == [
        ("recreate", "lab-n1"), ("create", "lab-n2"), ("create", "lab-n3")]


def test_each_container_is_created_started_made_again_or_left_alone() -> None:
    spec = host_spec(deployment(), "localhost")
    n1, n2, n3 = (spec.container(name) for name in ("lab-n1", "lab-n2", "lab-n3"))
    assert n1 and n2 and n3
    facts = engine(containers={"lab-n1": running(n1), "lab-n2": running(n2, "exited"),
                               "lab-n3": running(n3, **{_names.SPEC: "0000"})}, images=spec.images)
    steps = {step.name: (step.action, step.why) for _container, step in _plan.plan(spec, facts).containers}
    assert steps["lab-n1"] == ("none", "running, up to date")
    assert steps["lab-n2"] == ("start", "exited")
    assert steps["lab-n3"][0] == "recreate" and steps["lab-n3"][1].startswith("settings changed (spec 0000 -> ")
    paused = _plan.plan(spec, engine(containers={"lab-n1": running(n1, "paused")}, images=spec.images))
    assert [step.action for _container, step in paused.containers if step.name == "lab-n1"] == ["none"], "a pause is the faults step's"


def test_node_containers_that_left_the_topology_go_and_only_ours() -> None:
    spec = host_spec(deployment(), "localhost")
    ours = ContainerFact("x", "lab-n9", "i", {_names.ROLE: "node", _names.NETWORK: "lab", _names.NODE: "n9", _names.OWNER: "abc123"},
                         "running", "Up", 1)
    theirs = ContainerFact("y", "lab-n8", "i", {_names.ROLE: "node", _names.NETWORK: "lab", _names.NODE: "n8", _names.OWNER: "zzz"},
                           "running", "Up", 1)
    gone = ContainerFact("z", "old-a", "i", {_names.ROLE: "node", _names.NETWORK: "old", _names.NODE: "a", _names.OWNER: "abc123"},
                         "running", "Up", 1)
    plan = _plan.plan(spec, engine(containers={"lab-n9": ours, "lab-n8": theirs, "old-a": gone}, images=spec.images))
    assert sorted((step.name, step.why) for step in plan.removals) == [
        ("lab-n9", "not in network lab's topology"), ("old-a", "its network old is no longer in the topology")]
    limited = host_spec(deployment(selected={"lab-n1"}), "localhost")
    assert [step.name for step in _plan.plan(limited, engine(containers={"old-a": gone})).removals] == []


def test_missing_images_are_listed_and_a_swarm_service_is_updated_when_its_settings_change() -> None:
    hosts = Hosts(names=("m1", "w1"), managers=("m1",), workers=("w1",))
    spec = host_spec(deployment(SWARM, hosts=hosts), "m1")
    service = next(item for item in spec.services if item.name == "sw-a")
    found = {"sw-a": ServiceFact("s", "sw-a", 3, {_names.ROLE: "node", _names.OWNER: "abc123"}, "old")}
    plan = _plan.plan(spec, engine(services=found))
    assert plan.missing_images == [service.image]
    assert [(step.action, step.name) for _service, step in plan.services if step.name == "sw-a"] == [("update", "sw-a")]


def test_unpruned_public_nodes_are_refused_where_the_disk_is_short() -> None:
    networks = {"main": {"chain": "mainnet", "nodes": [{"name": "a", "conf": {"prune": 0}}, {"name": "b"}]}}
    spec = host_spec(deployment(networks), "localhost")
    assert spec.disk_needs == {"main-a": 900}
    short = _plan.plan(spec, engine(free_gib=100, root_dir="/var/lib/docker"))
    assert short.refusals and "main-a (about 900 GiB)" in short.refusals[0] and "has 100 GiB free" in short.refusals[0]
    kept = _plan.plan(spec, engine(free_gib=100, volumes={"main-a-data": VolumeFact("main-a-data", {_names.ROLE: "node-data"})}))
    assert kept.refusals == [], "a node whose volume exists holds its chain already"


def test_a_host_spec_travels_as_plain_values_and_comes_back_equal() -> None:
    hosts = Hosts(names=("m1", "w1"), managers=("m1",), workers=("w1",))
    for spec in (host_spec(deployment(monitoring=True), "localhost"), host_spec(deployment(SWARM, hosts=hosts, monitoring=True), "m1")):
        assert load(HostSpec, json.loads(json.dumps(dump(spec)))) == spec


# ---------------------------------------------------------------------------------------------
# --limit, per node

NODE_GROUPS = {"lab": {"lab-n1", "lab-n2", "lab-n3"}, "lab-n1": {"lab-n1"}, "lab-n2": {"lab-n2"}, "lab-n3": {"lab-n3"},
               "sig": {"sig-a"}, "sig-a": {"sig-a"}, "peerlab_nodes": {"lab-n1", "lab-n2", "lab-n3", "sig-a"}, "peerlab_miners": {"lab-n1"}}
PLACED = {"lab-n1": "h1", "lab-n2": "h1", "lab-n3": "h2", "sig-a": "h2"}
GROUPS = {"all": ["h1", "h2"], "peerlab_docker_hosts": ["h1", "h2"]}


@pytest.mark.parametrize(("pattern", "nodes"), [
    (None, {"lab-n1", "lab-n2", "lab-n3", "sig-a"}),
    ("lab", {"lab-n1", "lab-n2", "lab-n3"}),
    ("lab-n3", {"lab-n3"}),
    ("lab-n1,sig", {"lab-n1", "sig-a"}),
    ("lab-n*", {"lab-n1", "lab-n2", "lab-n3"}),
    ("~lab-n[12]", {"lab-n1", "lab-n2"}),
    ("lab:!lab-n3", {"lab-n1", "lab-n2"}),
    ("lab:&peerlab_miners", {"lab-n1"}),
    ("h2", {"lab-n3", "sig-a"}),
    ("peerlab_docker_hosts", {"lab-n1", "lab-n2", "lab-n3", "sig-a"}),
])
def test_limit_chooses_nodes_by_node_network_group_or_docker_host(pattern: str | None, nodes: set[str]) -> None:
    assert _selection.select(pattern, NODE_GROUPS, PLACED, GROUPS) == nodes


# ---------------------------------------------------------------------------------------------
# settings

ROLE_OF = {"common": "engine", "network": "network", "images": "images", "graphite": "graphite", "collector": "collector",
           "observer": "observer", "grafana": "grafana", "alertmanager": "alertmanager", "portal": "portal"}


@pytest.mark.parametrize("part", sorted(ROLE_OF))
def test_settings_are_the_roles_variables_with_their_defaults(part: str) -> None:
    defaults = yaml.safe_load((ROOT / "roles" / ROLE_OF[part] / "defaults" / "main.yml").read_text())
    kind = {field.name: field.type for field in dataclasses.fields(_settings.Settings)}[part]
    hints = __import__("typing").get_type_hints(_settings.Settings)[part]
    for item in dataclasses.fields(hints):
        name = hints.PREFIX + item.name
        assert name in defaults, f"{name} is read by the engine but no role declares it"
        value = defaults[name]
        if isinstance(value, str) and "{{" in value:
            continue  # a default made from another variable (peerlab_secrets_dir)
        default = item.default if item.default is not dataclasses.MISSING else item.default_factory()  # type: ignore[misc]
        assert _settings._convert(__import__("typing").get_type_hints(hints)[item.name], value) == default, name
    assert kind


def test_settings_come_typed_from_variables_and_every_problem_is_named() -> None:
    values = {"graphite_workers": "3", "peerlab_monitoring": "false", "network_rpc_users": ["peerlab", "ops"],
              "observer_detectors": {"ping_count": 5}}
    settings = _settings.Settings.from_variables(lambda name: values[name])
    assert settings.graphite.workers == 3 and settings.common.monitoring is False and settings.network.rpc_users == ("peerlab", "ops")
    with pytest.raises(_settings.SettingsError) as caught:
        _settings.Settings.from_variables(lambda name: {"graphite_workers": [1], "peerlab_purge": "maybe"}[name])
    assert caught.value.problems == ["peerlab_purge: must be a boolean, got 'maybe'", "graphite_workers: must be a whole number, got [1]"]
    bad = dataclasses.replace(_settings.Settings(), graphite=_settings.GraphiteSettings(retention="forever", publish="8080"),
                              observer=_settings.ObserverSettings(detectors={"ping_cont": 3.0}))
    said = " ".join(_settings.problems(bad, {"ping_count"}))
    assert "graphite_retention must be like 10s:6h" in said and "graphite_publish must be like 127.0.0.1:8080" in said
    assert "observer_detectors: unknown threshold(s) ping_cont; known: ping_count" in said
    assert _settings.Settings.from_dict(settings.as_dict()) == settings


def test_an_old_variable_name_is_refused_with_its_new_name() -> None:
    """The bus's and the observer's variables moved from the collector's role to the observer's: an
    inventory that still sets one must hear so, not see its value ignored for the default."""
    from ansible_collections.peerlab.bitcoin.plugins.plugin_utils import _deployment

    said = _deployment.retired({"collector_detectors": {"ping_count": 5}, "collector_events_publish": "127.0.0.1:18091",
                                "collector_interval": 5})
    assert said == [
        "collector_events_publish is set (by -e, host or group variables) but peerlab no longer reads it: renamed "
        "observer_events_publish (the bus and the observer have their own role, peerlab.bitcoin.observer)",
        "collector_detectors is set (by -e, host or group variables) but peerlab no longer reads it: renamed "
        "observer_detectors (the bus and the observer have their own role, peerlab.bitcoin.observer)"]
    assert not set(_deployment.RETIRED) & set(_settings.variables())


def test_the_entrypoint_refuses_what_the_model_refuses() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "images" / "bitcoin-node"))
    import entrypoint

    from ansible_collections.peerlab.bitcoin.plugins.module_utils._conf import CHAINS, MANAGED_KEYS

    assert entrypoint.MANAGED == MANAGED_KEYS
    assert {chain: known["section"] for chain, known in CHAINS.items()} == entrypoint.SECTIONS, "the image's copy of the chain table"
    with pytest.raises(SystemExit, match="sets rpcallowip, which peerlab manages"):
        entrypoint.render({"PEERLAB_CONF": "debug=net\nrpcallowip=0.0.0.0/0"}, peers_path="/nonexistent")


def test_the_feed_is_open_to_the_portals_pages_only() -> None:
    assert _desired.feed_origins("127.0.0.1:8090") == ["http://127.0.0.1:8090", "http://localhost:8090"]
    assert _desired.feed_origins("10.0.0.5:9000") == ["http://10.0.0.5:9000"]


def test_the_observer_image_is_built_on_the_collector_image_after_it(tmp_path: Path) -> None:
    """Its tag changes when the collector's build context does (it is built FROM that image), and the
    images role builds the collector first and hands the observer's build the collector's tag."""
    for kind in (*_images.MONITORING, "bitcoin-node"):
        (tmp_path / kind).mkdir()
        (tmp_path / kind / "Dockerfile").write_text(f"FROM {kind}\n")
    before = _images.tags(str(tmp_path), _settings.ImageSettings())
    (tmp_path / "collector" / "events.py").write_text("KINDS = ()\n")
    after = _images.tags(str(tmp_path), _settings.ImageSettings())
    assert after.hashes["observer"] != before.hashes["observer"] and after.hashes["collector"] != before.hashes["collector"]
    assert after.hashes["graphite"] == before.hashes["graphite"]
    missing = [after.monitoring("observer"), after.node("knots", "29.5"), after.monitoring("graphite"), after.monitoring("collector")]
    builds = _images.builds(missing, after)
    assert [build["kind"] for build in builds] == ["node", "collector", "graphite", "observer"]
    assert builds[-1]["args"] == {"COLLECTOR_IMAGE": after.monitoring("collector")} and builds[1]["args"] == {}


def test_a_node_caught_running_between_two_crashes_is_named_as_restarting() -> None:
    """A crash-looping node (a full disk) is `running` for a second between restarts: the
    explanation after a failed run must still name it (seen once in CI)."""
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._explain import crash_loop

    now = 1_796_640_000.0
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 2)) + ".123456789Z"
    assert crash_loop({"RestartCount": 3, "State": {"StartedAt": started}}, 30, now) == "Restarting: 3 restarts, the last 2 s ago"
    assert crash_loop({"RestartCount": 3, "State": {"StartedAt": started}}, 1, now) == "", "restarted long ago: steady"
    assert crash_loop({"RestartCount": 0, "State": {"StartedAt": started}}, 30, now) == "", "never restarted"
    assert crash_loop({}, 30, now) == ""
