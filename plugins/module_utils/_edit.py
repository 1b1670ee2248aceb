# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Changes to a topology file, written back so the file stays the truth (the portal's and `make
connect`'s way to shape a network).

A change is made on the file's YAML as read (ruamel.yaml round trip: comments, order and flow
style are kept), validated by the same topology model as the inventory plugin (the same words for
the same mistake), and written only if valid: under a lock, to a temporary file replaced
atomically, and only if the file is still the version the change was made against (two editors at
once: the second is told to reload, nothing is lost, nothing is half-written).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ._atomic import replace_file
from ._generators import GeneratorError, generate
from ._topology import Network, TopologyError, parse

try:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    HAS_RUAMEL = True
except ImportError:  # the controller's requirements.txt and the portal's image have it
    HAS_RUAMEL = False


class EditError(ValueError):
    """A change refused: `problems` holds one message per problem (the topology model's words)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Conflict(EditError):
    """The file changed since it was read: read it again and redo the change."""


@dataclass
class Document:
    path: str
    text: str
    data: Any  # the file's YAML as ruamel.yaml reads it (a CommentedMap)

    @property
    def version(self) -> str:
        return version_of(self.text)

    def networks(self) -> Any:
        return self.data.get("networks")


def version_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _yaml() -> Any:
    if not HAS_RUAMEL:
        raise EditError(["ruamel.yaml is not installed (pip install -r requirements.txt)"])
    yaml = YAML()  # round trip
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def load(path: str) -> Document:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    return Document(path, text, _yaml().load(text))


def dump(data: Any, explicit_start: bool = False) -> str:
    out = io.StringIO()
    yaml = _yaml()
    yaml.explicit_start = explicit_start
    yaml.dump(data, out)
    return out.getvalue()


def plain(value: Any) -> Any:
    """ruamel's types as plain dicts and lists (what the topology model reads)."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


# ---------------------------------------------------------------------------------------------
# Changes (on the document's data; each refuses what it cannot do with a message naming it)

def _network(data: Any, name: str) -> Any:
    networks = data.get("networks") if isinstance(data, dict) else None
    if not isinstance(networks, dict) or name not in networks or not isinstance(networks[name], dict):
        raise EditError([f"network '{name}' is not in this topology"])
    return networks[name]


def _model(network: str, raw: Any) -> list[Network]:
    """The network as the model reads it now ([] if it is invalid: the change's validation says why)."""
    try:
        return parse({network: plain(raw)}, "(check)")
    except TopologyError:
        return []


def _edge_ends(raw: Any) -> tuple[Any, Any] | None:
    if isinstance(raw, dict):
        return raw.get("from"), raw.get("to")
    if isinstance(raw, list) and len(raw) == 2:
        return raw[0], raw[1]
    return None


def _flow_map(**items: Any) -> Any:
    entry = CommentedMap(items)
    entry.fa.set_flow_style()
    return entry


def connect(data: Any, network: str, source: str, target: str) -> None:
    """A declared edge source -> target (source initiates, as in the file's edges)."""
    raw = _network(data, network)
    if raw.get("edges") is None:
        raw["edges"] = CommentedSeq()
    raw["edges"].append(_flow_map(**{"from": source, "to": target}))


def _generated(spec: Any) -> tuple[list[str], list[tuple[str, str]]]:
    """A generator entry's nodes and edges ([], [] when it cannot make any: the model says why)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str) or not isinstance(spec.get("nodes"), int):
        return [], []
    try:
        made = generate(spec["type"], spec["nodes"], str(spec.get("prefix", "n")), plain(spec))
    except (GeneratorError, KeyError, TypeError, ValueError):
        return [], []
    return made.names, made.edges


def expand_generator(data: Any, network: str, one: str, other: str) -> None:
    """Replace the generator that makes the link one - other by its nodes and edges, written out
    (the nodes before the file's own, in the generator's order, the edges before the file's own
    and in its direction), so that the network is the same and each link is a line of `edges`."""
    raw = _network(data, network)
    generators = raw.get("generators") or []
    makers = [index for index, spec in enumerate(generators) if any({a, b} == {one, other} for a, b in _generated(spec)[1])]
    if not makers:
        raise EditError([f"network '{network}': no generator makes the link {one} - {other}"])
    names, made = _generated(generators[makers[0]])
    del generators[makers[0]]
    if not generators:
        del raw["generators"]
    if raw.get("nodes") is None:
        raw["nodes"] = CommentedSeq()
    nodes = raw["nodes"]
    own = {entry.get("name"): entry for entry in nodes if isinstance(entry, dict)}
    for position, name in enumerate(names):  # an entry that overrode a generated node keeps its settings, moved to its place
        if name in own:
            nodes.remove(own[name])
        nodes.insert(position, own.get(name) or _flow_map(name=name))
    if raw.get("edges") is None:
        raw["edges"] = CommentedSeq()
    for position, (source, target) in enumerate(made):
        raw["edges"].insert(position, _flow_map(**{"from": source, "to": target}))


def disconnect(data: Any, network: str, one: str, other: str) -> None:
    """Remove the declared edge between two nodes (either direction). An edge a generator makes is
    not in the file to remove: refused, naming the generator."""
    raw = _network(data, network)
    edges = raw.get("edges") or []
    for index, edge in enumerate(edges):
        if {*(_edge_ends(edge) or ())} == {one, other}:
            del edges[index]
            return
    for found in _model(network, raw):
        if any({a, b} == {one, other} for a, b in found.edges):
            raise EditError([f"network '{network}': edge {one} - {other} is made by a generator, not listed in 'edges': "
                             "replace the generator by its nodes and edges to remove one of its links (the portal offers to: "
                             "expand: true)"])
    raise EditError([f"network '{network}': there is no edge between {one} and {other}"])


def add_node(data: Any, network: str, name: str, settings: dict[str, Any] | None = None,
             links: list[str] | tuple[str, ...] = ()) -> None:
    """A node (with per-node settings; the model checks them) and edges from it to `links`."""
    raw = _network(data, network)
    # An explicit entry with a generated node's name would change that node, not add one.
    if name in {node.name for found in _model(network, raw) for node in found.nodes}:
        raise EditError([f"network '{network}': node '{name}': duplicate node name"])
    if raw.get("nodes") is None:
        raw["nodes"] = CommentedSeq()
    raw["nodes"].append(_flow_map(name=name, **(settings or {})))
    for target in links:
        connect(data, network, name, target)


def _place(entry: Any) -> tuple[str, str, str]:
    """Where a fault entry acts: (node, from, to); a partition acts on the network ('', '', '')."""
    if not isinstance(entry, dict):
        return ("?", "?", "?")
    return (str(entry.get("node") or ""), str(entry.get("from") or ""), str(entry.get("to") or ""))


def set_fault(data: Any, network: str, fault: dict[str, Any]) -> None:
    """A fault in the topology's `faults`: it replaces the one of its kind at its place (a node, a
    directed edge; a partition replaces the partition). The model checks it."""
    raw = _network(data, network)
    if not isinstance(fault, dict) or not isinstance(fault.get("kind"), str):
        raise EditError([f"network '{network}': a fault is a mapping with a 'kind', got {fault!r}"])
    if raw.get("faults") is None:
        raw["faults"] = CommentedSeq()
    faults = raw["faults"]
    for index, entry in enumerate(faults):
        if isinstance(entry, dict) and entry.get("kind") == fault["kind"] and _place(entry) == _place(fault):
            del faults[index]
            break
    faults.append(_flow_map(**fault))


def set_side(data: Any, network: str, node: str, side: int | None) -> list[list[str]]:
    """A node moved to partition side `side` (0-based; the number of sides: a new one; None: on no
    side), kept in the topology's one partition. A node put on the only side there is is cut off
    from every other node: the others become the second side. A node taken off so that one side is
    left ends the partition, as does one side holding every node. Returns the groups written ([]:
    the partition went)."""
    raw = _network(data, network)
    faults = raw.get("faults")
    entry = next((item for item in faults or [] if isinstance(item, dict) and item.get("kind") == "partition"), None)
    groups = [[str(name) for name in group if str(name) != node] for group in (entry or {}).get("groups") or []
              if isinstance(group, list)]
    if side is not None:
        if not 0 <= side <= len(groups):
            raise EditError([f"network '{network}': side {side + 1} does not exist (the partition has {len(groups)} side(s))"])
        if side == len(groups):
            groups.append([])
        groups[side].append(node)
    groups = [group for group in groups if group]
    if len(groups) == 1 and side is None:
        groups = []
    if len(groups) == 1:
        placed = set(groups[0])
        models = _model(network, raw)
        rest = [item.name for item in models[0].nodes if item.name not in placed] if models else []
        groups = [*groups, rest] if rest else []
    if entry is not None:
        faults.remove(entry)
        if not faults:
            del raw["faults"]
    if groups:
        set_fault(data, network, {"kind": "partition", "groups": [_flow_seq(group) for group in groups]})
    return groups


def _flow_seq(items: list[str]) -> Any:
    sequence = CommentedSeq(items)
    sequence.fa.set_flow_style()
    return sequence


def clear_faults(data: Any, network: str, node: str = "", source: str = "", target: str = "") -> list[str]:
    """Remove the topology's faults at one place, every kind: a node's own, or a link's (both of its
    directions); the kinds removed."""
    raw = _network(data, network)
    faults = raw.get("faults") or []
    places = {(node, "", "")} if node else {("", source, target), ("", target, source)}
    gone = [entry for entry in faults if _place(entry) in places]
    if not gone:
        where = f"node {node}" if node else f"the link {source} - {target}"
        raise EditError([f"network '{network}': no fault is declared on {where} in 'faults' (a geography's latency is "
                         "changed in 'geography')"])
    for entry in gone:
        faults.remove(entry)
    if not faults:
        del raw["faults"]
    return [str(entry.get("kind")) for entry in gone]


# ---------------------------------------------------------------------------------------------
# Validating and writing

Validator = Callable[[dict[str, Any], str], None]


def model_validator(known_hosts: set[str] | None = None, taken_names: set[str] | None = None,
                    swarm_hosts: set[str] | None = None) -> Validator:
    """The inventory plugin's check (the same model, the same messages), with the inventory's hosts."""
    def validate(networks: dict[str, Any], source: str) -> None:
        try:
            parse(networks, source, known_hosts=known_hosts, taken_names=taken_names, swarm_hosts=swarm_hosts)
        except TopologyError as error:
            raise EditError(error.problems) from None
    return validate


def lock_path(path: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.lock")


@contextmanager
def locked(path: str) -> Iterator[None]:
    """An exclusive lock next to the file (.<file>.lock: hidden, so no inventory plugin reads it),
    held while a change is checked and written."""
    handle = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)


def write(path: str, text: str) -> None:
    """Replace the file atomically, keeping its mode: a reader sees the old or the new file."""
    replace_file(path, text.encode("utf-8"), os.stat(path).st_mode & 0o7777, prefix=".peerlab-edit-")


def change(path: str, version: str | None, edit: Callable[[Any], object], validate: Validator) -> Document:
    """Apply `edit` to the file if it is still `version` (None: whatever it is now), validate the
    result, write it. Returns the new document; raises Conflict or EditError with the file untouched."""
    with locked(path):
        document = load(path)
        if version is not None and document.version != version:
            raise Conflict([f"{path} changed since it was read (by another browser or a deploy): reload and try again"])
        edit(document.data)
        text = dump(document.data, explicit_start=document.text.startswith("---"))
        validate(plain(document.networks()), path)
        write(path, text)
        return Document(path, text, document.data)
