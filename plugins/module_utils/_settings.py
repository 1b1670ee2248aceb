# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A run's settings, typed: one dataclass per role, each field the role's variable without its
prefix (`GraphiteSettings.retention` is `graphite_retention`). The roles declare the variables
(defaults/main.yml, meta/argument_specs.yml; a unit test keeps the three in step); the engine's
action plugin reads them into these classes, the deploy writes them into the portal's
configuration, and the portal reads them back: the plan never sees Ansible's variables.

What follows from the settings (the monitoring host, the Swarm manager, Graphite's addresses, the
configuration directories) is worked out once, in `_desired.py`, not in the roles.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar


class SettingsError(ValueError):
    """Settings that cannot be used; `problems` lists every one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings:\n  - " + "\n  - ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Common:
    PREFIX: ClassVar[str] = "peerlab_"
    monitoring: bool = True
    portal: bool = False
    portal_apply: bool = False     # the portal's own runs leave the portal (and Grafana) alone
    state_dir: str = "/var/lib/peerlab"
    secrets_dir: str = "~/.peerlab/secrets"
    purge: bool = False
    lab_id: str = ""               # empty: the id kept in the secrets directory (made once)
    lock_timeout: float = 300.0


@dataclass(frozen=True)
class NetworkSettings:
    PREFIX: ClassVar[str] = "network_"
    secrets_file: str = "~/.peerlab/secrets/rpc.yml"
    rpc_users: tuple[str, ...] = ("peerlab",)
    rpc_timeout: float = 120.0
    link_timeout: float = 60.0
    tip_timeout: float = 120.0
    stop_timeout: int = 600
    initial_height: int = 101
    restart_policy: str = "unless-stopped"
    docker_socket: str = "/var/run/docker.sock"
    explain_lines: int = 200
    disk_check: bool = True
    prune: bool = True
    compare: str = "hash"


@dataclass(frozen=True)
class ImageSettings:
    PREFIX: ClassVar[str] = "images_"
    base_repository: str = "peerlab/base"
    base_suite: str = "trixie"
    base_packages: tuple[str, ...] = ("ca-certificates", "passwd", "python3")
    node_repository: str = "peerlab/bitcoin-node"
    collector_repository: str = "peerlab/collector"
    graphite_repository: str = "peerlab/graphite"
    portal_repository: str = "peerlab/portal"
    alertmanager_repository: str = "peerlab/alertmanager"
    observer_repository: str = "peerlab/observer"
    core_min_signatures: int = 3


@dataclass(frozen=True)
class GraphiteSettings:
    PREFIX: ClassVar[str] = "graphite_"
    container: str = "peerlab-graphite"
    volume: str = "peerlab-graphite-data"
    network: str = "peerlab-monitoring"
    retention: str = "10s:6h,1m:7d,10m:5y"
    publish: str = "127.0.0.1:8080"
    workers: int = 2
    memory: str = "768m"
    timeout: float = 120.0


@dataclass(frozen=True)
class CollectorSettings:
    PREFIX: ClassVar[str] = "collector_"
    container: str = "peerlab-collector"
    interval: int = 10
    prometheus_publish: str = "127.0.0.1:9332"
    memory: str = "256m"


@dataclass(frozen=True)
class ObserverSettings:
    PREFIX: ClassVar[str] = "observer_"
    bus_container: str = "peerlab-bus"
    container: str = "peerlab-observer"
    events_publish: str = "127.0.0.1:8091"
    prometheus_publish: str = "127.0.0.1:9333"
    bus_memory: str = "128m"
    memory: str = "256m"
    events_volume: str = "peerlab-events"
    archive_hours: int = 168
    detectors: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class GrafanaSettings:
    PREFIX: ClassVar[str] = "grafana_"
    image: str = "grafana/grafana:12.2.0"
    image_tarball: str = ""
    pull: bool = False
    container: str = "peerlab-grafana"
    volume: str = "peerlab-grafana-data"
    secrets_file: str = "~/.peerlab/secrets/grafana.yml"
    publish: str = "127.0.0.1:3000"
    alert_interval: str = "1m"
    alert_min_peers: int = 1
    memory: str = "512m"


@dataclass(frozen=True)
class AlertmanagerSettings:
    PREFIX: ClassVar[str] = "alertmanager_"
    container: str = "peerlab-alertmanager"
    volume: str = "peerlab-alertmanager-data"
    publish: str = "127.0.0.1:9093"
    secrets_file: str = "~/.peerlab/secrets/alertmanager.yml"
    receivers: tuple[dict[str, Any], ...] = ()
    route: dict[str, Any] = field(default_factory=dict)
    memory: str = "128m"


@dataclass(frozen=True)
class PortalSettings:
    PREFIX: ClassVar[str] = "portal_"
    container: str = "peerlab-portal"
    listen: str = "127.0.0.1:8090"
    user: str = "admin"
    secrets_file: str = "~/.peerlab/secrets/portal.yml"
    memory: str = "1g"


@dataclass(frozen=True)
class Settings:
    common: Common = field(default_factory=Common)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    images: ImageSettings = field(default_factory=ImageSettings)
    graphite: GraphiteSettings = field(default_factory=GraphiteSettings)
    collector: CollectorSettings = field(default_factory=CollectorSettings)
    observer: ObserverSettings = field(default_factory=ObserverSettings)
    grafana: GrafanaSettings = field(default_factory=GrafanaSettings)
    alertmanager: AlertmanagerSettings = field(default_factory=AlertmanagerSettings)
    portal: PortalSettings = field(default_factory=PortalSettings)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """The settings as `as_dict` wrote them (the portal reads them from its configuration)."""
        parts = {}
        for part in dataclasses.fields(cls):
            kind = _part_types()[part.name]
            parts[part.name] = _build(kind, data.get(part.name) or {}, str)
        return cls(**parts)

    @classmethod
    def from_variables(cls, value_of: typing.Callable[[str], Any]) -> Settings:
        """The settings from Ansible variables: value_of(name) gives a variable's (templated) value,
        or raises KeyError when it is not defined (its role's default applies, as here)."""
        problems: list[str] = []
        parts = {}
        for part in dataclasses.fields(cls):
            kind = _part_types()[part.name]
            values = {}
            for item in dataclasses.fields(kind):
                name = kind.PREFIX + item.name
                try:
                    values[item.name] = value_of(name)
                except KeyError:
                    continue
            try:
                parts[part.name] = _build(kind, values, kind.PREFIX.__add__)
            except SettingsError as error:
                problems += error.problems
        if problems:
            raise SettingsError(problems)
        return cls(**parts)


def variables() -> list[str]:
    """Every variable the settings read (their names in the roles)."""
    return [kind.PREFIX + item.name for kind in _part_types().values() for item in dataclasses.fields(kind)]


def _part_types() -> dict[str, Any]:
    return {part.name: typing.get_type_hints(Settings)[part.name] for part in dataclasses.fields(Settings)}


def _build(kind: Any, values: dict[str, Any], named: typing.Callable[[str], str]) -> Any:
    """One settings class from plain values, each checked against its field's type."""
    hints = typing.get_type_hints(kind)
    problems = []
    converted = {}
    for item in dataclasses.fields(kind):
        if item.name not in values:
            continue
        try:
            converted[item.name] = _convert(hints[item.name], values[item.name])
        except (TypeError, ValueError) as error:
            problems.append(f"{named(item.name)}: {error}")
    if problems:
        raise SettingsError(problems)
    return kind(**converted)


def _convert(kind: Any, value: Any) -> Any:
    origin = typing.get_origin(kind)
    if kind is Any:  # handed on as the inventory wrote it (Alertmanager's receivers), checked where it is used
        try:  # as plain data: Ansible's own string and mapping types do not render as YAML
            return json.loads(json.dumps(value))
        except (TypeError, ValueError):
            raise TypeError(f"must be plain data (mappings, lists, strings, numbers), got {value!r}") from None
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise TypeError(f"must be a boolean, got {value!r}")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, str, float)) or (isinstance(value, float) and value != int(value)):
            raise TypeError(f"must be a whole number, got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError(f"must be a number, got {value!r}")
        return float(value)
    if kind is str:
        if value is None:
            return ""
        if isinstance(value, (dict, list, tuple)):
            raise TypeError(f"must be a string, got {value!r}")
        return str(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"must be a list, got {value!r}")
        return tuple(_convert(typing.get_args(kind)[0], item) for item in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"must be a mapping, got {value!r}")
        key_kind, value_kind = typing.get_args(kind)
        return {_convert(key_kind, key): _convert(value_kind, item) for key, item in value.items()}
    raise TypeError(f"unsupported setting type {kind}")


_ADDRESS = r"^([0-9.]+|\[[0-9a-fA-F:]+\]):[0-9]{1,5}$"
_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
_RETENTION = r"^[0-9]+[smhdwy]?:[0-9]+[smhdwy]?(,[0-9]+[smhdwy]?:[0-9]+[smhdwy]?)*$"


def problems(settings: Settings, detectors: set[str]) -> list[str]:
    """What in the settings cannot work, each naming its variable: checked before anything changes.
    `detectors` are the detector thresholds the observer knows (images/collector/detectors.json)."""
    import re

    found = []

    def check(ok: bool, name: str, want: str, value: object) -> None:
        if not ok:
            found.append(f"{name} must be {want}, got {value!r}")

    graphite, collector, observer = settings.graphite, settings.collector, settings.observer
    portal, grafana = settings.portal, settings.grafana
    check(bool(re.match(_RETENTION, graphite.retention)), "graphite_retention", "like 10s:6h,1m:7d,10m:5y", graphite.retention)
    for name, value in (("graphite_publish", graphite.publish), ("collector_prometheus_publish", collector.prometheus_publish),
                        ("observer_events_publish", observer.events_publish),
                        ("observer_prometheus_publish", observer.prometheus_publish),
                        ("grafana_publish", grafana.publish), ("alertmanager_publish", settings.alertmanager.publish)):
        check(value == "" or bool(re.match(_ADDRESS, value)), name, "like 127.0.0.1:8080, or empty", value)
    check(bool(re.match(_ADDRESS, portal.listen)), "portal_listen", "like 127.0.0.1:8090", portal.listen)
    for name, value in (("graphite_container", graphite.container), ("graphite_volume", graphite.volume),
                        ("graphite_network", graphite.network), ("collector_container", collector.container),
                        ("observer_bus_container", observer.bus_container),
                        ("observer_container", observer.container),
                        ("observer_events_volume", observer.events_volume), ("grafana_container", grafana.container),
                        ("grafana_volume", grafana.volume), ("portal_container", portal.container),
                        ("alertmanager_container", settings.alertmanager.container),
                        ("alertmanager_volume", settings.alertmanager.volume)):
        check(bool(re.match(_NAME, value)), name, "a Docker name (letters, digits, '_', '.', '-')", value)
    check(bool(re.match(r"^[A-Za-z0-9_-]{1,32}$", portal.user)), "portal_user", "letters, digits, '_' or '-'", portal.user)
    unknown = sorted(set(observer.detectors) - detectors)
    if unknown:
        found.append(f"observer_detectors: unknown threshold(s) {', '.join(unknown)}; known: {', '.join(sorted(detectors))}")
    bad = sorted(name for name, value in observer.detectors.items() if not value > 0)
    if bad:
        found.append(f"observer_detectors: {', '.join(bad)} must be positive numbers")
    for name, value in (("graphite_memory", graphite.memory), ("collector_memory", collector.memory),
                        ("observer_bus_memory", observer.bus_memory), ("observer_memory", observer.memory),
                        ("grafana_memory", grafana.memory), ("portal_memory", portal.memory),
                        ("alertmanager_memory", settings.alertmanager.memory)):
        check(bool(re.match(r"^[0-9]+[bkmg]?$", value.lower())), name, "like 512m or 2g", value)
    found += alertmanager_problems(settings.alertmanager)
    return found


ROUTE_KEYS = frozenset({"receiver", "group_by", "group_wait", "group_interval", "repeat_interval", "routes", "matchers",
                        "continue", "mute_time_intervals", "active_time_intervals"})
_DURATION = r"^([0-9]+(ms|s|m|h|d|w|y))+$"


def alertmanager_problems(alertmanager: AlertmanagerSettings) -> list[str]:
    """Alertmanager's receivers and route, checked before anything changes (Alertmanager itself
    would refuse the file and keep running its last one, or not start)."""
    import re

    found = []
    names = []
    for index, receiver in enumerate(alertmanager.receivers):
        name = receiver.get("name") if isinstance(receiver, dict) else None
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_.-]{1,64}$", name):
            found.append(f"alertmanager_receivers[{index}]: each receiver is a mapping with a name (letters, digits, '_', '.', '-'), "
                         f"got {receiver!r}")
            continue
        if name == "peerlab-none":
            found.append("alertmanager_receivers: 'peerlab-none' is peerlab's own receiver (no notification); choose another name")
        names.append(name)
        unknown = sorted(key for key in receiver if key != "name" and not key.endswith("_configs"))
        if unknown:
            found.append(f"alertmanager_receivers[{index}] ({name}): unknown key(s) {', '.join(unknown)}; a receiver has a name and "
                         f"*_configs lists (webhook_configs, email_configs, slack_configs, telegram_configs...)")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        found.append(f"alertmanager_receivers: receiver name(s) used twice: {', '.join(duplicates)}")
    route = alertmanager.route
    unknown = sorted(set(route) - ROUTE_KEYS)
    if unknown:
        found.append(f"alertmanager_route: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(ROUTE_KEYS))}")
    target = route.get("receiver")
    if target is not None and target not in names:
        listed = ", ".join(sorted(set(names))) or "none given"
        found.append(f"alertmanager_route: receiver {target!r} is none of alertmanager_receivers ({listed})")
    for key in ("group_wait", "group_interval", "repeat_interval"):
        if key in route and not re.match(_DURATION, str(route[key])):
            found.append(f"alertmanager_route: {key} must be a duration like 30s, 5m or 4h, got {route[key]!r}")
    if "group_by" in route and not (isinstance(route["group_by"], list) and all(isinstance(item, str) for item in route["group_by"])):
        found.append(f"alertmanager_route: group_by must be a list of label names, got {route['group_by']!r}")
    return found
