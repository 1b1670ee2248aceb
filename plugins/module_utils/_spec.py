# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One Docker host's desired state, typed: what `_desired.host_spec` computes on the controller and
the engine module (and the portal) plan against an engine and apply. Only what a Docker host needs
lives here, so the module carries no more code than it runs (Python 3.9 and later, standard library).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import _names

# Where `_plan.free_subnet` takes an overlay network's subnet from, when Docker's default /24 is too small.
OVERLAY_POOL = "10.224.0.0/11"


@dataclass(frozen=True)
class Owner:
    id: str          # peerlab_lab_id: the inventory that makes and owns the objects
    inventory: str   # where that inventory is, for messages

    def labels(self) -> dict[str, str]:
        return {_names.OWNER: self.id, _names.INVENTORY: self.inventory}


@dataclass(frozen=True)
class Mount:
    type: str                     # volume, bind
    source: str
    target: str
    read_only: bool = False
    labels: dict[str, str] = field(default_factory=dict)   # a volume's labels, set when the mount creates it


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    role: str                     # node, graphite, collector, bus, observer, grafana, portal
    image: str
    labels: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    user: str = ""
    groups: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()          # the first is its network at creation; "host": the host's network
    mounts: tuple[Mount, ...] = ()
    tmpfs: dict[str, str] = field(default_factory=dict)
    published: tuple[str, ...] = ()         # [ip:]host_port:container_port[/proto]
    memory: str = ""
    cpus: float = 0.0
    cpu_shares: int = 0                     # the CPU weight under contention (Docker's default, 0, is 1024)
    restart_policy: str = "unless-stopped"
    stop_timeout: int = 10
    log_options: dict[str, str] = field(default_factory=dict)
    healthcheck: dict[str, Any] = field(default_factory=dict)   # the Engine API's Healthcheck ({}: the image's)
    spec: str = ""                          # the hash of everything above (label peerlab.spec)
    wait_healthy: float = 0.0               # seconds to wait for it to be healthy after a change (not hashed)
    health_url: str = ""                    # where that is asked on its host ('': its health check) (not hashed)

    @property
    def node(self) -> str:
        return _names.labelled_container(self.labels)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    role: str                     # node, collector
    image: str
    labels: dict[str, str]        # the service's and its tasks' containers' labels
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    mounts: tuple[Mount, ...] = ()
    published: tuple[dict[str, Any], ...] = ()   # {published_port, target_port, protocol}, mode host
    memory: str = ""
    cpus: float = 0.0
    placement: tuple[str, ...] = ()         # constraints
    mode: str = "replicated"                # replicated (one task) or global
    stop_timeout: int = 10
    log_options: dict[str, str] = field(default_factory=dict)
    spec: str = ""

    @property
    def node(self) -> str:
        return _names.labelled_container(self.labels)


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    driver: str                   # bridge, overlay
    labels: dict[str, str]
    attachable: bool = False
    subnet: str = ""              # '' lets Docker choose (a /24 for an overlay from Swarm's default pool)


@dataclass(frozen=True)
class FileSpec:
    path: str
    content: str = ""
    mode: str = "0644"
    directory_mode: str = "0755"
    owner: int = -1               # uid, -1: whoever runs the module
    secret: str = ""              # the content is this secret (it travels apart, never in the plan)
    packed: bool = False          # content is zlib-compressed and base64-encoded (large files travel small)
    checked_by: tuple[str, ...] = ()  # (image, program, args...): it must accept the content ("{file}" in args) before it is written
    hidden: tuple[str, ...] = ()      # values of the content never shown in the checker's answer (receivers' secrets)

    def data(self, secrets: dict[str, Any]) -> bytes:
        if self.secret:
            return str(secrets.get(self.secret, "")).encode()
        if self.packed:
            import base64
            import zlib

            return zlib.decompress(base64.b64decode(self.content))
        return self.content.encode()


def packed_file(path: str, text: str, **options: Any) -> FileSpec:
    """A file whose content travels compressed when that saves much (Grafana's dashboards: 230 KB as text)."""
    import base64
    import zlib

    if len(text) < 4096:
        return FileSpec(path, text, **options)
    return FileSpec(path, base64.b64encode(zlib.compress(text.encode(), 9)).decode("ascii"), packed=True, **options)


@dataclass(frozen=True)
class NodePart:
    """A node this run acts on, on this Docker host."""
    container: str
    network: str
    node: str
    peers: tuple[str, ...]        # its outbound peers' containers
    swarm: bool = False
    spec: str = ""                # its container's (or Swarm service's) settings hash
    implementation: str = ""
    version: str = ""


@dataclass(frozen=True)
class NetworkPart:
    """A network as one Docker host acts on it."""
    name: str
    chain: str
    p2p_port: int
    rpc_port: int
    swarm: bool
    nodes: dict[str, str]         # every node container -> node name
    hosts: tuple[str, ...]        # the Docker hosts its nodes are on
    miner: str = ""               # the first miner's container (regtest)
    faults: tuple[dict[str, Any], ...] = ()   # the topology's and this run's (fault.yml)
    keep: tuple[str, ...] = ()    # its node containers: the others this network's label finds here go (network_prune)


@dataclass(frozen=True)
class EngineSettings:
    docker_socket: str = "/var/run/docker.sock"
    rpc_timeout: float = 120.0
    link_timeout: float = 60.0
    tip_timeout: float = 120.0
    initial_height: int = 101
    compare: str = "hash"
    explain_lines: int = 200
    disk_check: bool = True
    purge: bool = False


@dataclass(frozen=True)
class HostSpec:
    host: str
    owner: Owner
    manager: bool = False                           # this host runs the Swarm's services and overlay networks
    docker_networks: tuple[NetworkSpec, ...] = ()
    containers: tuple[ContainerSpec, ...] = ()
    services: tuple[ServiceSpec, ...] = ()
    files: tuple[FileSpec, ...] = ()
    networks: tuple[NetworkPart, ...] = ()
    nodes: tuple[NodePart, ...] = ()
    images: tuple[str, ...] = ()
    owned_networks: tuple[str, ...] = ()            # every network of the topology (what else this owner made here goes, when whole)
    whole: bool = False                             # the run covers every node of the inventory (no --limit)
    monitoring: bool = False                        # this host runs part of the monitoring stack
    stack: tuple[str, ...] = ()                     # the monitoring stack's container and service names (teardown)
    stack_volumes: tuple[str, ...] = ()
    stack_networks: tuple[str, ...] = ()
    disk_needs: dict[str, int] = field(default_factory=dict)   # unpruned node container -> GiB
    latency: bool = False                           # a latency fault applies here (needs netem)
    grafana: dict[str, Any] = field(default_factory=dict)      # {image, tarball, pull}: how to get Grafana's image
    kill: tuple[str, ...] = ()
    sweep: bool = False                             # fault.yml clear=true: remove what vanished holders left
    engine: EngineSettings = field(default_factory=EngineSettings)

    def container(self, name: str) -> ContainerSpec | None:
        return next((spec for spec in self.containers if spec.name == name), None)
