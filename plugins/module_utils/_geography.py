# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Geography: nodes placed in regions, and the latency between regions as edge latency faults.

A node's `region:` places it (`{name: n1, region: europe}`), or a network's `geography: {regions:
{europe: [n1, n2]}}` names the nodes of each region; `geography:` also takes round-trip times
between regions (`latency: {europe/asia: 160ms}`). Every ordered pair of nodes in two different regions (or
in one region whose own round trip is given) gets a latency fault from one to the other of half the
round trip, so a round trip between them takes the table's time. A fault the topology declares for
the same edge replaces the one geography gives it.

The default round trips come from a published rule of thumb for Internet latency (Bozkurt et al.,
"Dissecting Latency in the Internet's Fiber Infrastructure", 2017, summing up earlier measurement
campaigns): the great-circle distance between two places times 2.1, at the speed of light in fibre
(about 204 km per millisecond), there and back. Each region is one hub city, below. The rule errs
long on the best-cabled routes (Frankfurt-Ashburn comes out at 135 ms, where carriers measure about 90):
give your own table where it matters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from ._faults import Fault, _milliseconds

HUBS: dict[str, tuple[str, float, float]] = {
    # region: (hub city, latitude, longitude)
    "europe": ("Frankfurt", 50.11, 8.68),
    "north-america": ("Ashburn", 39.04, -77.49),
    "south-america": ("São Paulo", -23.55, -46.63),
    "africa": ("Johannesburg", -26.20, 28.05),
    "asia": ("Singapore", 1.35, 103.82),
    "east-asia": ("Tokyo", 35.68, 139.69),
    "oceania": ("Sydney", -33.87, 151.21),
}
EARTH_RADIUS_KM = 6371.0
ROUTE_FACTOR = 2.1          # path length over great-circle distance (the rule of thumb)
FIBRE_KM_PER_MS = 204.19    # c / 1.468, the refractive index of silica fibre
KEYS = frozenset({"regions", "latency"})
REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


def distance_km(a: str, b: str) -> float:
    lat1, lon1 = HUBS[a][1:]
    lat2, lon2 = HUBS[b][1:]
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    central = math.acos(min(1.0, math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)))
    return EARTH_RADIUS_KM * central


def default_rtt(a: str, b: str) -> float:
    """The rule of thumb's round trip between two regions' hubs, whole milliseconds (0 within one)."""
    return float(round(2 * ROUTE_FACTOR * distance_km(a, b) / FIBRE_KM_PER_MS)) if a != b else 0.0


def table() -> dict[tuple[str, str], float]:
    """Every default round trip between two different regions (docs/experiments.md prints it)."""
    return {(a, b): default_rtt(a, b) for a in HUBS for b in HUBS if a < b}


def parse(raw: object, nodes: list[str], fail: Callable[[str, str], None], where: str,
          placed: dict[str, object] | None = None) -> list[Fault]:
    """A network's `geography:` and its nodes' own `region:` (`placed`: node -> region) -> the edge
    latency faults they give; every problem to `fail`."""
    placed = placed or {}
    if raw is None and not placed:
        return []
    at = f"{where}: geography"
    raw = {} if raw is None else raw
    listed = isinstance(raw, dict) and isinstance(raw.get("regions"), dict) and bool(raw["regions"])
    if not isinstance(raw, dict) or not (listed or ("regions" not in raw and placed)):
        fail(at, f"geography needs 'regions': a mapping of region names to lists of nodes (or a 'region' on nodes), got {raw!r}")
        return []
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        fail(at, f"unknown key '{unknown[0]}' (valid keys: {', '.join(sorted(KEYS))})")
    region_of: dict[str, str] = {}
    regions: dict[str, list[str]] = {}
    ok = True
    for region, members in (raw.get("regions") or {}).items():
        if not isinstance(members, list) or not members:
            fail(at, f"region '{region}' needs a list of nodes, got {members!r}")
            ok = False
            continue
        regions[str(region)] = []
        for member in members:
            if member not in nodes:
                fail(at, f"region '{region}': {member!r} is not a node of this network (nodes: {', '.join(nodes)})")
                ok = False
            elif member in region_of:
                fail(at, f"node '{member}' is in regions '{region_of[member]}' and '{region}'; a node is in one region")
                ok = False
            else:
                region_of[member] = str(region)
                regions[str(region)].append(member)
    for member, region in placed.items():
        if not isinstance(region, str) or not REGION.match(region):
            fail(f"{where}: node '{member}'", f"'region' must be a region name such as europe or east-asia, got {region!r}")
            ok = False
        elif region_of.get(member, region) != region:
            fail(f"{where}: node '{member}'", f"its region is '{region}' but geography.regions puts it in '{region_of[member]}'")
            ok = False
        else:
            region_of[member] = region
            regions.setdefault(region, [])
            if member not in regions[region]:
                regions[region].append(member)
    given = _given(raw.get("latency") or {}, set(regions), fail, at)
    if given is None or not ok:
        return []
    rtt: dict[tuple[str, str], float] = {}
    for a in regions:
        for b in regions:
            pair = (a, b) if a <= b else (b, a)
            if pair in given:
                rtt[(a, b)] = given[pair]
            elif a == b:
                rtt[(a, b)] = 0.0
            elif a in HUBS and b in HUBS:
                rtt[(a, b)] = default_rtt(a, b)
            elif a < b:
                fail(at, f"no round trip between '{a}' and '{b}': give it in 'latency' ({a}/{b}: 120ms); the regions "
                         f"with a default are {', '.join(HUBS)}")
                ok = False
    if not ok:
        return []
    faults = []
    for source in nodes:
        for target in nodes:
            if source != target and source in region_of and target in region_of:
                round_trip = rtt[(region_of[source], region_of[target])]
                if round_trip > 0:
                    faults.append(Fault(kind="latency", node=source, target=target, delay=round_trip / 2))
    return faults


def _given(raw: object, regions: set[str], fail: Callable[[str, str], None], at: str) -> dict[tuple[str, str], float] | None:
    if not isinstance(raw, dict):
        fail(at, f"'latency' must map region pairs (europe/asia) to round trips (160ms), got {raw!r}")
        return None
    given: dict[tuple[str, str], float] = {}
    for key, value in raw.items():
        parts = str(key).split("/")
        rtt = _milliseconds(value)
        if len(parts) != 2 or not all(part in regions for part in parts):
            fail(at, f"latency key {key!r} must be two of this geography's regions as 'a/b' ({', '.join(sorted(regions))})")
        elif rtt is None:
            fail(at, f"latency {key!r} must be a round trip like 120ms or 0.2s, got {value!r}")
        else:
            a, b = parts
            given[(a, b) if a <= b else (b, a)] = rtt
    return given


def merge(geography: list[Fault], declared: list[Fault]) -> list[Fault]:
    """The topology's own faults replace geography's on the same edge."""
    taken = {(fault.kind, fault.node, fault.target) for fault in declared}
    return [fault for fault in geography if (fault.kind, fault.node, fault.target) not in taken] + declared
