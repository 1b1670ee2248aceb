# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each Docker host must hold: the typed desired state of a run, per Docker host.

`Deployment` is a run's input, typed: the validated topology (every network of the inventory),
the nodes the run acts on, the inventory's hosts, the owner, the settings, the image tags and the
credentials' public halves. `host_spec(deployment, host)` gives one Docker host's `HostSpec`:
its Docker networks, containers (nodes, and the monitoring stack where it runs), Swarm services
(on the manager), files (peers files, the collectors' and the observer's configuration, Grafana's
provisioning, the portal's configuration), and what the links, faults and chain steps act on.

Every rule of "what runs where" is here, once: the monitoring host, the Swarm manager, which hosts
run a collector, which images a host needs, each container's settings and their hash. The engine's
action plugin builds a Deployment from Ansible's variables; the portal builds one from its
configuration and the Docker engine; `_plan.py` compares a HostSpec with what an engine holds, and
`_apply.py` makes it so.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from . import _activity, _alertmanager, _faults, _names
from ._conf import cookie_path, render_lines, unpruned_need_gib
from ._images import Tags
from ._names import DATA_DIR, PEERS_FILE
from ._settings import Settings
from ._spec import (
    ContainerSpec,
    EngineSettings,
    FileSpec,
    HostSpec,
    Mount,
    NetworkPart,
    NetworkSpec,
    NodePart,
    Owner,
    ServiceSpec,
    packed_file,
)

# bitcoind logs to stdout (the collector reads it); Docker keeps at most 5 x 10 MB of it.
NODE_LOG_OPTIONS = {"max-size": "10m", "max-file": "5"}
GRAFANA_UID = 472


def settings_hash(settings: Any) -> str:
    """16 hex digits of the SHA-256 of the settings as sorted JSON (what the peerlab.spec label holds)."""
    from ._typed import dump

    return hashlib.sha256(json.dumps(dump(settings), sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# A run's input

@dataclass(frozen=True)
class Hosts:
    """The inventory's Docker hosts, as its groups place them."""
    names: tuple[str, ...] = ()                     # every inventory host
    managers: tuple[str, ...] = ()                  # peerlab_swarm_managers
    workers: tuple[str, ...] = ()                   # peerlab_swarm_workers
    leaving: tuple[str, ...] = ()                   # hosts with swarm_member false
    monitoring: tuple[str, ...] = ()                # peerlab_monitoring
    local: tuple[str, ...] = ()                     # the controller itself (local connection)


@dataclass(frozen=True)
class Paths:
    """The controller's paths the portal works with (it sees each at its own path)."""
    root: str = ""                                  # the repository (playbooks, collection)
    inventory: tuple[str, ...] = ()                 # the inventory sources
    uid: int = 0
    gid: int = 0
    socket_gid: int = 0                             # the group that may use the Docker socket


@dataclass(frozen=True)
class Deployment:
    networks: tuple[Any, ...]                       # _topology.Network, every network of the inventory
    selected: frozenset[str]                        # node containers this run acts on
    hosts: Hosts
    owner: Owner
    settings: Settings
    tags: Tags
    rpcauth: dict[str, str]                         # node container -> its rpcauth values (salted hashes)
    portal_login: str = ""                          # the portal login's hash
    alertmanager_login: str = ""                    # Alertmanager's basic-auth hash (bcrypt)
    faults_extra: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)   # fault.yml's, per network
    kill: tuple[str, ...] = ()
    limited: bool = False
    nodes_only: bool = False                        # apply.yml: nodes and the collectors' view only
    paths: Paths = field(default_factory=Paths)

    # -- where things run (each rule once) --
    def manager(self) -> str:
        """The Swarm manager that makes overlay networks and services."""
        return self.hosts.managers[0] if self.hosts.managers else ""

    def swarm(self) -> bool:
        """Whether the inventory's networks run on a Swarm (the monitoring stack then spans it)."""
        return any(network.swarm for network in self.networks)

    def monitoring_host(self) -> str:
        """Graphite, the bus, the observer, Grafana and the portal: the first of group
        peerlab_monitoring, else the first Swarm manager, else the first node's Docker host."""
        if self.hosts.monitoring:
            return self.hosts.monitoring[0]
        if self.hosts.managers:
            return self.hosts.managers[0]
        return next((node.host for network in self.networks for node in network.nodes), "")

    def collector_hosts(self) -> list[str]:
        """Docker hosts with a collector: those with nodes; on a Swarm every member (a global service)."""
        hosts = {node.host for network in self.networks for node in network.nodes if not network.swarm}
        if self.swarm():
            hosts |= {host for host in self.hosts.managers + self.hosts.workers if host not in self.hosts.leaving}
        return sorted(hosts)

    def monitoring_on(self) -> bool:
        return self.settings.common.monitoring and bool(self.networks)

    def portal_on(self) -> bool:
        return self.settings.common.portal and not self.settings.common.portal_apply

    def state_dir(self) -> str:
        return self.settings.common.state_dir

    def collector_dir(self) -> str:
        return f"{self.state_dir()}/collector"

    def grafana_dir(self) -> str:
        return f"{self.state_dir()}/grafana"

    def alertmanager_dir(self) -> str:
        return f"{self.state_dir()}/alertmanager"

    def portal_dir(self) -> str:
        return f"{self.state_dir()}/portal"

    def carbon(self) -> str:
        return f"{self.settings.graphite.container}:{_names.CARBON_PORT}"

    def bus(self) -> str:
        return f"{self.settings.observer.bus_container}:{_names.BUS_PORT}"

    def urls(self) -> dict[str, str]:
        """Where a person (and the portal, on the host's network) reaches the monitoring stack."""
        graphite, collector, observer = self.settings.graphite, self.settings.collector, self.settings.observer
        grafana = self.settings.grafana
        return {"graphite": f"http://{graphite.publish}" if graphite.publish else "",
                "prometheus": f"http://{collector.prometheus_publish}" if collector.prometheus_publish else "",
                "observer": f"http://{observer.prometheus_publish}" if observer.prometheus_publish else "",
                "feed": f"ws://{observer.events_publish}/events" if observer.events_publish else "",
                "grafana": f"http://{grafana.publish}" if grafana.publish else "",
                "alertmanager": f"http://{self.settings.alertmanager.publish}" if self.settings.alertmanager.publish else "",
                "portal": f"http://{self.settings.portal.listen}"}

    def nodes(self) -> list[tuple[Any, Any]]:
        return [(network, node) for network in self.networks for node in network.nodes]

    def network_faults(self, network: Any) -> list[_faults.Fault]:
        return _faults.merge(list(network.faults), _faults.from_dicts(list(self.faults_extra.get(network.name, ()))))

    def image_of(self, node: Any) -> str:
        return self.tags.node(node.implementation, node.version)


# ---------------------------------------------------------------------------------------------
# Containers, services and files

def _memory(value: object) -> str:
    return str(value)


def node_labels(d: Deployment, network: Any, node: Any) -> dict[str, str]:
    return {_names.NETWORK: network.name, _names.NODE: node.name, _names.ROLE: "node", "peerlab.chain": node.chain,
            "peerlab.implementation": node.implementation, "peerlab.version": node.version, **d.owner.labels()}


def conf_lines(node: Any) -> list[str]:
    """A node's extra bitcoin.conf lines, checked here again, where they are rendered: whatever made
    the node (the topology file, the portal, a caller of this function), a line that would break
    out of its key or set a key peerlab manages is refused (ValueError)."""
    from ._conf import line_problem

    lines = render_lines({**node.conf, **node.conf_unchecked})
    for line in lines:
        problem = line_problem(line)
        if problem:
            raise ValueError(f"{node.network}-{node.name}: bitcoin.conf line {line!r} {problem}")
    return lines


def node_mounts(d: Deployment, network: Any, node: Any) -> tuple[Mount, ...]:
    volume_labels = {_names.NETWORK: network.name, _names.NODE: node.name, _names.ROLE: "node-data", **d.owner.labels()}
    return (Mount("volume", node.volume, DATA_DIR, labels=volume_labels),
            Mount("bind", _names.peers_file(d.state_dir(), node.container), PEERS_FILE, read_only=True))


def node_env(d: Deployment, node: Any) -> dict[str, str]:
    env = {"PEERLAB_CHAIN": node.chain, "PEERLAB_RPCAUTH": d.rpcauth.get(node.container, ""),
           # The networks the container is attached to (its Docker network; on a Swarm also its
           # host's docker_gwbridge, through which its host calls RPC).
           "PEERLAB_RPCALLOWIP": "attached", "PEERLAB_CONF": "\n".join(conf_lines(node))}
    if node.implementation == "statoshi":
        # Statoshi sends statsd to 127.0.0.1:8125; the entrypoint relays it to the collector of the
        # node's Docker host (attached to the node's network under its container name).
        env["PEERLAB_STATSD"] = f"{d.settings.collector.container}:{_names.STATSD_PORT}"
    return env


def node_container(d: Deployment, network: Any, node: Any) -> ContainerSpec:
    network_settings = d.settings.network
    spec = ContainerSpec(
        name=node.container, role="node", image=d.image_of(node), labels=node_labels(d, network, node),
        env=node_env(d, node), networks=(_names.docker_network(network.name),), mounts=node_mounts(d, network, node),
        published=(f"{node.publish_p2p}:{network.p2p_port}",) if node.publish_p2p else (),
        memory=_memory(node.resources["memory"]), cpus=float(node.resources["cpus"]),  # type: ignore[arg-type]
        restart_policy=network_settings.restart_policy, stop_timeout=network_settings.stop_timeout,
        log_options=dict(NODE_LOG_OPTIONS))
    return _hashed(spec)


def node_service(d: Deployment, network: Any, node: Any) -> ServiceSpec:
    spec = ServiceSpec(
        name=node.container, role="node", image=d.image_of(node), labels=node_labels(d, network, node), env=node_env(d, node),
        networks=(_names.docker_network(network.name),), mounts=node_mounts(d, network, node),
        published=({"published_port": node.publish_p2p, "target_port": network.p2p_port, "protocol": "tcp"},)
        if node.publish_p2p else (),
        memory=_memory(node.resources["memory"]), cpus=float(node.resources["cpus"]),  # type: ignore[arg-type]
        placement=(f"node.labels.peerlab.host == {node.host}",), stop_timeout=d.settings.network.stop_timeout,
        log_options=dict(NODE_LOG_OPTIONS))
    return _hashed(spec)


# How to wait for a container, not what it is: outside its settings hash. So is where its
# inventory lies (label peerlab.inventory, for messages): the same inventory moved, or molecule's
# copy of it, owns the same objects and changes nothing.
_NOT_HASHED = {"wait_healthy": 0.0, "health_url": ""}
# Fields specs gained after containers were running: at their default they are left out of the
# hash, so an upgrade remakes only what the new field changes.
_ADDED_LATER: dict[str, Any] = {"cpu_shares": 0}


def _hashed(spec: Any) -> Any:
    from dataclasses import replace

    from ._typed import dump

    unhashed = {key: value for key, value in _NOT_HASHED.items() if hasattr(spec, key)}
    dumped = dump(replace(spec, spec="", **unhashed))
    for key, default in _ADDED_LATER.items():  # a field added to specs, at its default, remakes nothing that runs
        if dumped.get(key) == default:
            del dumped[key]
    return replace(spec, spec=settings_hash(_without_inventory(dumped)))


def _without_inventory(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_inventory(item) for key, item in value.items() if key != _names.INVENTORY}
    if isinstance(value, list):
        return [_without_inventory(item) for item in value]
    return value


def _stack_labels(d: Deployment, role: str) -> dict[str, str]:
    return {_names.ROLE: role, _names.NETWORK: ",".join(sorted(network.name for network in d.networks)), **d.owner.labels()}


def graphite_container(d: Deployment) -> ContainerSpec:
    graphite = d.settings.graphite
    return _hashed(ContainerSpec(
        name=graphite.container, role="graphite", image=d.tags.monitoring("graphite"), labels=_stack_labels(d, "graphite"),
        env={"GRAPHITE_RETENTION": graphite.retention, "GRAPHITE_WORKERS": str(graphite.workers)},
        networks=(graphite.network,),
        mounts=(Mount("volume", graphite.volume, "/var/lib/graphite",
                      labels={_names.ROLE: "graphite-data", **d.owner.labels()}),),
        published=(f"{graphite.publish}:{_names.GRAPHITE_WEB_PORT}",) if graphite.publish else (),
        memory=graphite.memory, wait_healthy=graphite.timeout,
        health_url=f"http://{graphite.publish}/metrics/find?query=*" if graphite.publish else ""))


# The collector, the bus and the observer weigh eight nodes when the CPU is contended (100 nodes
# under traffic on 2 cores: with a node's weight the collector fell 20 s behind the logs). A weight
# is no reservation: they take what they use, a few % of a core.
MONITORING_CPU_SHARES = 8192


def _collector_mounts(d: Deployment, docker_root: str) -> tuple[Mount, ...]:
    return (Mount("bind", "/var/run/docker.sock", "/var/run/docker.sock", read_only=True),
            Mount("bind", "/proc", "/host/proc", read_only=True),
            Mount("bind", "/sys/fs/cgroup", "/host/cgroup", read_only=True),
            Mount("bind", docker_root, "/host/docker", read_only=True),
            Mount("bind", d.collector_dir(), "/etc/peerlab", read_only=True))


DOCKER_ROOT = "{docker_root}"   # replaced on the Docker host by its engine's data directory


def collector_container(d: Deployment, host: str) -> ContainerSpec:
    collector = d.settings.collector
    networks = sorted({_names.docker_network(network.name) for network, node in d.nodes() if node.host == host and not network.swarm})
    return _hashed(ContainerSpec(
        name=collector.container, role="collector", image=d.tags.monitoring("collector"), labels=_stack_labels(d, "collector"),
        networks=(d.settings.graphite.network, *networks), mounts=_collector_mounts(d, DOCKER_ROOT),
        published=(f"{collector.prometheus_publish}:{_names.COLLECTOR_METRICS_PORT}",) if collector.prometheus_publish else (),
        memory=collector.memory, cpu_shares=MONITORING_CPU_SHARES))


def collector_service(d: Deployment) -> ServiceSpec:
    collector = d.settings.collector
    networks = sorted({_names.docker_network(network.name) for network in d.networks if network.swarm})
    publish = collector.prometheus_publish
    # Swarm publishes on every interface of every host: only a non-loopback address opts in.
    published = ({"published_port": int(publish.rsplit(":", 1)[-1]), "target_port": _names.COLLECTOR_METRICS_PORT,
                  "protocol": "tcp"},) if publish and not publish.startswith("127.") else ()
    return _hashed(ServiceSpec(
        name=collector.container, role="collector", image=d.tags.monitoring("collector"), labels=_stack_labels(d, "collector"),
        networks=(d.settings.graphite.network, *networks), mounts=_collector_mounts(d, DOCKER_ROOT), published=published,
        memory=collector.memory, mode="global"))


def activity_container(d: Deployment, network: Any) -> ContainerSpec:
    """A network's background activity (docs/experiments.md): the collector's image running
    activity.py with the network's `activity:` as its one argument. It reads each node's RPC cookie
    through the engine (the Docker socket, read-only, as the collector does) and sends its counts to
    Graphite when the monitoring is on."""
    monitoring = d.monitoring_on()
    nodes = [{"name": node.name, "container": node.container, "rpc_port": network.rpc_port,
              "cookie": cookie_path(network.chain, DATA_DIR)} for node in network.nodes]
    config = _activity.config(network.activity, network.name, nodes, dict(network.shares), list(network.miners),
                              d.carbon() if monitoring else "", interval=d.settings.collector.interval)
    return _hashed(ContainerSpec(
        name=_names.activity(network.name), role="activity", image=d.tags.monitoring("collector"),
        labels={_names.ROLE: "activity", _names.NETWORK: network.name, **d.owner.labels()},
        entrypoint=("python3", "-u", "/usr/local/lib/peerlab/activity.py", json.dumps(config, sort_keys=True)),
        networks=(_names.docker_network(network.name), *((d.settings.graphite.network,) if monitoring else ())),
        mounts=(Mount("bind", "/var/run/docker.sock", "/var/run/docker.sock", read_only=True),),
        memory="128m", healthcheck={"Test": ["NONE"]}))


def bus_container(d: Deployment) -> ContainerSpec:
    observer = d.settings.observer
    name = observer.bus_container
    return _hashed(ContainerSpec(
        name=name, role="bus", image=d.tags.monitoring("observer"), labels=_stack_labels(d, "bus"),
        entrypoint=("nats-server", "--name", name, "--addr", "0.0.0.0", "--port", str(_names.BUS_PORT),
                    "--http_port", str(_names.BUS_MONITOR_PORT)),
        # One Go processor: a lab's few hundred events a second need no more, and idle spinning costs CPU.
        env={"GOMAXPROCS": "1"}, networks=(d.settings.graphite.network,), memory=observer.bus_memory,
        cpu_shares=MONITORING_CPU_SHARES,
        healthcheck=_health(_names.BUS_MONITOR_PORT, "/healthz")))


def observer_container(d: Deployment) -> ContainerSpec:
    observer = d.settings.observer
    listeners = ((observer.events_publish, _names.FEED_PORT), (observer.prometheus_publish, _names.OBSERVER_METRICS_PORT))
    published = tuple(f"{address}:{port}" for address, port in listeners if address)
    return _hashed(ContainerSpec(
        name=observer.container, role="observer", image=d.tags.monitoring("observer"),
        labels=_stack_labels(d, "observer"), entrypoint=("python3", "-u", "/usr/local/lib/peerlab/observer.py"),
        networks=(d.settings.graphite.network,),
        mounts=(Mount("bind", d.collector_dir(), "/etc/peerlab", read_only=True),
                Mount("bind", f"{d.alertmanager_dir()}/observer", "/run/peerlab/alertmanager", read_only=True),
                Mount("volume", observer.events_volume, "/var/lib/peerlab/events",
                      labels={_names.ROLE: "events-archive", **d.owner.labels()})),
        published=published, memory=observer.memory, cpu_shares=MONITORING_CPU_SHARES,
        healthcheck=_health(_names.OBSERVER_METRICS_PORT, "/healthz")))


def alertmanager_files(d: Deployment) -> list[FileSpec]:
    """Its configuration and web configuration (the receivers may hold secrets: 0600, its user's
    only), and the password the observer sends it (root's only, never in the plan)."""
    am = d.settings.alertmanager
    directory = d.alertmanager_dir()
    # Alertmanager's own amtool checks the receivers and route before the file is written: one it
    # would refuse at start is refused before anything changes.
    check = (d.tags.monitoring("alertmanager"), *_alertmanager.CHECK) if d.tags else ()
    return [FileSpec(f"{directory}/config/alertmanager.yml", _yaml(_alertmanager.config(am.receivers, am.route)), mode="0600",
                     directory_mode="0700", owner=_alertmanager.UID, checked_by=check, hidden=_alertmanager.values(am.receivers)),
            FileSpec(f"{directory}/config/web.yml", _yaml(_alertmanager.web_config(d.alertmanager_login)), mode="0600",
                     directory_mode="0700", owner=_alertmanager.UID),
            FileSpec(f"{directory}/observer/password", mode="0400", directory_mode="0700", owner=0, secret="alertmanager")]


def alertmanager_container(d: Deployment, files: list[FileSpec]) -> ContainerSpec:
    am = d.settings.alertmanager
    # Its configuration's hash in a label: a changed receiver or route makes the container again.
    config = hashlib.sha256("".join(entry.content for entry in files if not entry.secret).encode()).hexdigest()[:16]
    return _hashed(ContainerSpec(
        name=am.container, role="alertmanager", image=d.tags.monitoring("alertmanager"),
        labels={**_stack_labels(d, "alertmanager"), "peerlab.config": config}, networks=(d.settings.graphite.network,),
        mounts=(Mount("bind", f"{d.alertmanager_dir()}/config", "/etc/peerlab/alertmanager", read_only=True),
                Mount("volume", am.volume, "/var/lib/peerlab/alertmanager",
                      labels={_names.ROLE: "alertmanager-data", **d.owner.labels()})),
        published=(f"{am.publish}:{_alertmanager.PORT}",) if am.publish else (), memory=am.memory,
        healthcheck=_health(_alertmanager.PORT, "/-/healthy", (200, 401))))  # 401: up, behind its login


def _health(port: int, path: str, accept: tuple[int, ...] = (200,)) -> dict[str, Any]:
    """Healthy while 127.0.0.1:<port><path> answers one of `accept` inside the container. Each check
    is a process in the container's cgroup, so it is the container's CPU: bash's own /dev/tcp (2 ms
    of CPU against 25 ms for the barest python3; the exec itself is 14 ms), every 30 s (the
    monitoring containers are not waited for; a deploy never waits on these). The collector and
    observer images' HEALTHCHECK lines are the same probe (a unit test holds them equal)."""
    return {"Test": ["CMD", "bash", "-c", health_probe(port, path, accept)],
            "Interval": 30 * 10**9, "Timeout": 5 * 10**9, "StartPeriod": 20 * 10**9, "Retries": 3}


def health_probe(port: int, path: str, accept: tuple[int, ...] = (200,)) -> str:
    """The bash line: one HTTP/1.0 request, exit 0 when the status is one of `accept`."""
    codes = "|".join(str(code) for code in accept)
    return (f"exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3 "
            f"&& read -r -t 4 _ status _ <&3 && case $status in {codes}) exit 0;; esac; exit 1")


def grafana_container(d: Deployment) -> ContainerSpec:
    grafana = d.settings.grafana
    directory = d.grafana_dir()
    return _hashed(ContainerSpec(
        name=grafana.container, role="grafana", image=grafana.image, labels=_stack_labels(d, "grafana"),
        env={"GF_SECURITY_ADMIN_USER": "admin", "GF_SECURITY_ADMIN_PASSWORD__FILE": "/run/peerlab/admin_password",
             "GF_AUTH_ANONYMOUS_ENABLED": "false", "GF_USERS_ALLOW_SIGN_UP": "false",
             "GF_ANALYTICS_REPORTING_ENABLED": "false", "GF_ANALYTICS_CHECK_FOR_UPDATES": "false"},
        networks=(d.settings.graphite.network,),
        mounts=(Mount("volume", grafana.volume, "/var/lib/grafana", labels={_names.ROLE: "grafana-data", **d.owner.labels()}),
                Mount("bind", f"{directory}/provisioning", "/etc/grafana/provisioning", read_only=True),
                Mount("bind", f"{directory}/dashboards", "/etc/peerlab/dashboards", read_only=True),
                Mount("bind", f"{directory}/secrets", "/run/peerlab", read_only=True)),
        published=(f"{grafana.publish}:{_names.GRAFANA_PORT}",) if grafana.publish else (), memory=grafana.memory))


def grafana_files(d: Deployment) -> list[FileSpec]:
    """Grafana's datasource, dashboard provider, alert rules and dashboards, rendered from code
    (plugin_utils/_grafana.py on the controller; kept in the controller's cache while that code and
    these settings stay the same: grafanalib takes a tenth of a second to import), and its admin
    password (uid 472 only)."""
    import os

    grafana = d.settings.grafana
    directory = d.grafana_dir()
    source = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "plugin_utils", "_grafana.py")
    with open(source, "rb") as handle:
        inputs = [directory, grafana.alert_interval, grafana.alert_min_peers, d.settings.graphite.container]
        key = hashlib.sha256(handle.read() + json.dumps(inputs).encode()).hexdigest()[:16]
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "peerlab", f"grafana-{key}.json")
    try:
        with open(cache, encoding="utf-8") as handle:
            from ._typed import load

            return [load(FileSpec, entry) for entry in json.load(handle)]
    except (OSError, ValueError, TypeError):
        pass
    files = _render_grafana(d)
    try:
        from ._atomic import replace_file
        from ._typed import dump

        os.makedirs(os.path.dirname(cache), exist_ok=True)
        replace_file(cache, json.dumps(dump(files)).encode(), 0o644)
    except OSError:
        pass  # no cache: rendered again next time
    return files


def _render_grafana(d: Deployment) -> list[FileSpec]:
    from ansible_collections.peerlab.bitcoin.plugins.plugin_utils import _grafana  # controller only

    grafana = d.settings.grafana
    directory = d.grafana_dir()
    dashboards = _grafana.dashboards("10s")
    alerts = _grafana.alert_rules(grafana.alert_interval, grafana.alert_min_peers)
    problems = _grafana.validate({**dashboards, "alert-rules": alerts})
    if problems:
        raise ValueError("Grafana provisioning is broken: " + "; ".join(problems))
    url = f"http://{d.settings.graphite.container}:{_names.GRAPHITE_WEB_PORT}"
    files = [packed_file(f"{directory}/provisioning/datasources/peerlab.yml", _yaml(_grafana.datasource(url))),
             packed_file(f"{directory}/provisioning/dashboards/peerlab.yml", _yaml(_grafana.dashboard_provider("/etc/peerlab/dashboards"))),
             packed_file(f"{directory}/provisioning/alerting/peerlab.yml", _yaml(alerts))]
    files += [packed_file(f"{directory}/dashboards/{name}.json", json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
              for name, board in sorted(dashboards.items())]
    files.append(FileSpec(f"{directory}/secrets/admin_password", mode="0400", directory_mode="0700", owner=GRAFANA_UID,
                          secret="grafana"))
    return files


def _yaml(value: Any) -> str:
    import yaml  # controller only

    return str(yaml.safe_dump(value, indent=2, sort_keys=True, default_flow_style=False, allow_unicode=True))


def nice_json(value: Any) -> str:
    return json.dumps(value, indent=4, sort_keys=True, separators=(",", ": ")) + "\n"


def collector_config(d: Deployment, host: str) -> dict[str, Any]:
    """A collector's configuration: the nodes on its Docker host (every node for host '': the
    observer's), their expected edges, where carbon and the bus are. No secret: the collector
    authenticates with each node's own RPC cookie."""
    networks: dict[str, Any] = {}
    for network in d.networks:
        names = {node.container: node.name for node in network.nodes}
        for node in network.nodes:
            if host and node.host != host:
                continue
            entry = networks.setdefault(network.name, {"chain": network.chain, "edges": [], "nodes": {},
                                                       "docker_network": _names.docker_network(network.name)})
            entry["nodes"][node.name] = {"container": node.container, "rpc_port": network.rpc_port,
                                         "cookie": cookie_path(network.chain, DATA_DIR)}
            entry["edges"] += [[node.name, peer] for peer in node.peers_out if _names.container(network.name, peer) in names]
    return {"host": host or "observer", "interval": d.settings.collector.interval, "carbon": d.carbon(), "bus": d.bus(),
            "networks": networks}


def observer_config(d: Deployment) -> dict[str, Any]:
    return {**collector_config(d, ""), "detectors": dict(d.settings.observer.detectors),
            "archive_hours": d.settings.observer.archive_hours, "feed_origins": feed_origins(d.settings.portal.listen),
            "alertmanager": {"url": f"http://{d.settings.alertmanager.container}:{_alertmanager.PORT}", "user": _alertmanager.USER,
                             "password_file": "/run/peerlab/alertmanager/password"}}


def feed_origins(listen: str) -> list[str]:
    """The Origins a browser may read the event feed from: the portal's pages (on the loopback,
    by either name). Other sites a user has open are refused; programs send no Origin."""
    host, _sep, port = listen.rpartition(":")
    names = [host]
    if host in ("127.0.0.1", "localhost"):
        names = ["127.0.0.1", "localhost"]
    elif host in ("[::1]", "::1"):
        names = ["[::1]", "localhost"]
    return [f"http://{name}:{port}" for name in names]


def portal_config(d: Deployment) -> dict[str, Any]:
    """The portal's configuration: the login's hash (never the password), the paths it edits and
    runs from, the URLs it links to, and the settings its quick apply plans with."""
    urls = d.urls()
    monitoring = d.settings.common.monitoring
    from ._typed import dump

    return {
        "listen": d.settings.portal.listen, "root": d.paths.root, "collections": f"{d.paths.root}/collections",
        "inventory": list(d.paths.inventory), "user": d.settings.portal.user, "login": d.portal_login,
        "observer": urls["observer"] if monitoring else "", "feed": urls["feed"] if monitoring else "",
        "graphite": urls["graphite"] if monitoring else "", "grafana": urls["grafana"] if monitoring else "",
        # its deploys leave the portal itself alone (they would replace the container that runs them)
        "playbook_args": ["-e", "peerlab_portal_apply=true"],
        "quick": {"docker_host": d.monitoring_host(), "owner": dump(d.owner), "settings": d.settings.as_dict(),
                  "hosts": dump(d.hosts)},
    }


def portal_mounts(paths: list[str]) -> tuple[Mount, ...]:
    """The repository, the inventory, the secrets and the state directories at their own paths in
    the portal's container, so the deploy it runs reads and writes what the controller's would.
    A path inside another is covered by the outer one's mount."""
    import os

    cleaned = sorted({os.path.normpath(os.path.abspath(str(path))) for path in paths if path})
    outer: list[str] = []
    for path in cleaned:
        if not any(path == kept or path.startswith(kept.rstrip("/") + "/") for kept in outer):
            outer.append(path)
    return tuple(Mount("bind", path, path) for path in outer)


def portal_container(d: Deployment, config: str) -> ContainerSpec:
    import os

    portal = d.settings.portal
    directories = [d.paths.root, os.path.expanduser(d.settings.common.secrets_dir), d.state_dir(), d.portal_dir(),
                   *[os.path.dirname(os.path.abspath(source)) if not os.path.isdir(source) else source
                     for source in d.paths.inventory]]
    return _hashed(ContainerSpec(
        name=portal.container, role="portal", image=d.tags.monitoring("portal"),
        # a new configuration restarts the portal (it reads it once)
        labels={**_stack_labels(d, "portal"), "peerlab.config": hashlib.sha256(config.encode()).hexdigest()[:16]},
        env={"PORTAL_CONFIG": f"{d.portal_dir()}/portal.json"}, user=f"{d.paths.uid}:{d.paths.gid}",
        groups=(str(d.paths.socket_gid),), networks=("host",),
        mounts=(*portal_mounts(directories), Mount("bind", "/var/run/docker.sock", "/var/run/docker.sock")),
        tmpfs={"/tmp": "size=256m,mode=1777"}, memory=portal.memory,
        wait_healthy=40.0, health_url=f"http://{portal.listen}/healthz"))


# ---------------------------------------------------------------------------------------------
# One Docker host's desired state

def host_spec(d: Deployment, host: str, *, whole_stack: bool = True) -> HostSpec:
    """What `host` must hold for this run. `whole_stack` false leaves the monitoring containers
    out (apply.yml: nodes, links and the collectors' view of them)."""
    settings = d.settings
    manager = d.manager() == host
    containers: list[ContainerSpec] = []
    services: list[ServiceSpec] = []
    files: list[FileSpec] = []
    docker_networks: dict[str, NetworkSpec] = {}
    images: set[str] = set()
    nodes: list[NodePart] = []
    parts: list[NetworkPart] = []
    disk: dict[str, int] = {}
    latency = False
    for network in d.networks:
        members = [node for node in network.nodes if node.container in d.selected]
        here = [node for node in members if node.host == host]
        if not here and not (manager and network.swarm and members):
            continue
        faults = d.network_faults(network)
        if network.swarm:
            if manager:
                docker_networks[_names.docker_network(network.name)] = NetworkSpec(
                    _names.docker_network(network.name), "overlay", _network_labels(d, network.name), attachable=True,
                    subnet=overlay_subnet(len(network.nodes)))
                services += [node_service(d, network, node) for node in members]
        else:
            docker_networks[_names.docker_network(network.name)] = NetworkSpec(
                _names.docker_network(network.name), "bridge", _network_labels(d, network.name))
            containers += [node_container(d, network, node) for node in here]
            if network.activity is not None and all(node.host == host for node in network.nodes):
                containers.append(activity_container(d, network))
                images.add(d.tags.monitoring("collector"))
        hashes = {spec.name: spec.spec for spec in containers + services}
        for node in here:
            images.add(d.image_of(node))
            files.append(FileSpec(_names.peers_file(d.state_dir(), node.container),
                                  "".join(f"{_names.container(network.name, peer)}:{network.p2p_port}\n" for peer in node.peers_out)))
            nodes.append(NodePart(node.container, network.name, node.name,
                                  tuple(_names.container(network.name, peer) for peer in node.peers_out), network.swarm,
                                  hashes.get(node.container) or (node_service(d, network, node).spec if network.swarm else ""),
                                  node.implementation, node.version))
            need = unpruned_need_gib(node.chain, node.conf)
            if need:
                disk[node.container] = need
            if any(fault.node == node.name for fault in _faults.latency(faults)):
                latency = True
        miners = [_names.container(network.name, miner) for miner in network.miners]
        parts.append(NetworkPart(
            network.name, network.chain, network.p2p_port, network.rpc_port, network.swarm,
            {node.container: node.name for node in network.nodes}, tuple(sorted({node.host for node in network.nodes})),
            miner=miners[0] if miners and network.chain == "regtest" else "",
            faults=tuple(fault.as_dict() for fault in faults),
            keep=tuple(node.container for node in network.nodes) if settings.network.prune else ()))
    monitoring = False
    stack: list[str] = []
    stack_volumes: list[str] = []
    stack_networks: list[str] = []
    grafana: dict[str, Any] = {}
    if d.monitoring_on():
        collector_hosts = d.collector_hosts()
        monitoring_host = d.monitoring_host()
        swarm = d.swarm()
        graphite = settings.graphite
        if host in collector_hosts:
            files.append(packed_file(f"{d.collector_dir()}/collector.json", nice_json(collector_config(d, host))))
            images.add(d.tags.monitoring("collector"))
            monitoring = True
            if not swarm and whole_stack:
                containers.append(collector_container(d, host))
        if host == monitoring_host:
            monitoring = True
            files.append(packed_file(f"{d.collector_dir()}/observer.json", nice_json(observer_config(d))))
            # The observer's image is built on the collector's (their shared modules).
            images.update({d.tags.monitoring("collector"), d.tags.monitoring("observer"), d.tags.monitoring("graphite")})
            if whole_stack:
                containers += [graphite_container(d), bus_container(d), observer_container(d)]
                if not settings.common.portal_apply:
                    alerting = alertmanager_files(d)
                    files += alerting
                    containers.append(alertmanager_container(d, alerting))
                    images.add(d.tags.monitoring("alertmanager"))
                    files += grafana_files(d)
                    containers.append(grafana_container(d))
                    grafana = {"image": settings.grafana.image, "tarball": settings.grafana.image_tarball,
                               "pull": settings.grafana.pull}
            stack = [graphite.container, settings.observer.bus_container, settings.observer.container,
                     settings.grafana.container, settings.alertmanager.container]
            stack_volumes = [graphite.volume, settings.observer.events_volume, settings.grafana.volume, settings.alertmanager.volume]
        if whole_stack and (host == (d.manager() if swarm else monitoring_host)):
            docker_networks[graphite.network] = NetworkSpec(graphite.network, "overlay" if swarm else "bridge",
                                                            {_names.ROLE: "monitoring", **d.owner.labels()}, attachable=swarm)
            stack_networks = [graphite.network]
        if swarm and manager and whole_stack:
            services.append(collector_service(d))
        if host in collector_hosts or (swarm and manager):
            stack = [*stack, settings.collector.container]
    if d.portal_on() and host == d.monitoring_host() and whole_stack:
        config = nice_json(portal_config(d))
        files.append(FileSpec(f"{d.portal_dir()}/portal.json", config, mode="0600", directory_mode="0700"))
        containers.append(portal_container(d, config))
        images.add(d.tags.monitoring("portal"))
        stack = [*stack, settings.portal.container]
    return HostSpec(
        host=host, owner=d.owner, manager=manager, docker_networks=tuple(docker_networks.values()),
        containers=tuple(containers), services=tuple(services), files=tuple(files), networks=tuple(parts), nodes=tuple(nodes),
        images=tuple(sorted(images)), owned_networks=tuple(sorted(network.name for network in d.networks)),
        whole=not d.limited, monitoring=monitoring, stack=tuple(stack), stack_volumes=tuple(stack_volumes),
        stack_networks=tuple(stack_networks), disk_needs=disk, latency=latency, grafana=grafana,
        kill=tuple(name for name in d.kill if any(node.container == name for node in nodes)),
        engine=EngineSettings(docker_socket=settings.network.docker_socket, rpc_timeout=settings.network.rpc_timeout,
                              link_timeout=settings.network.link_timeout, tip_timeout=settings.network.tip_timeout,
                              initial_height=settings.network.initial_height, compare=settings.network.compare,
                              explain_lines=settings.network.explain_lines, disk_check=settings.network.disk_check,
                              purge=settings.common.purge))


def _network_labels(d: Deployment, network: str) -> dict[str, str]:
    return {_names.NETWORK: network, _names.ROLE: "network", **d.owner.labels()}


# Addresses an overlay network needs besides its nodes: the collectors' tasks (one per Swarm host),
# Docker's own (network, gateway, broadcast, and one load-balancer address per host), and room to grow.
OVERLAY_SPARE = 64


def overlay_subnet(nodes: int) -> str:
    """'' when Docker's default (a /24 from Swarm's pool, about 250 addresses) holds a network of
    `nodes` nodes and OVERLAY_SPARE more; else the prefix length of a block with twice that room
    ('/22' up to about 440 nodes, '/20' for 1,000), for which `_plan.free_subnet` picks a free
    block on the manager. Twice: a task replaced keeps its old address a while."""
    needed = nodes + OVERLAY_SPARE
    if needed <= 250:
        return ""
    prefix = 32
    while (1 << (32 - prefix)) - 2 < 2 * needed:
        prefix -= 1
    return f"/{prefix}"
