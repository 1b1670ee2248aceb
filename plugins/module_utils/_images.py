# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The images peerlab builds and their tags: content hashes of what goes into each, so an
unchanged image is never built again and every Docker host names it the same way.

The engine asks for these tags (and reports the ones a Docker host lacks), the images role builds
exactly those, the tree_hash lookup and the portal compute the same hashes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from ._settings import ImageSettings

# The build contexts, as folders of the collection's images/ directory, in build order.
MONITORING = ("collector", "graphite", "portal", "alertmanager", "observer")
# An image built on another peerlab image (FROM its build argument): hashed with it, built after it.
BUILT_ON = {"observer": ("collector", "COLLECTOR_IMAGE")}


def tree_hash(directories: list[str], extra: dict[str, Any], length: int = 12) -> str:
    """The first `length` hex digits of a SHA-256 over every regular file below the directories
    (relative path, executable bits, content; in sorted order) and the `extra` values."""
    digest = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode("utf-8"))
    for directory in directories:
        if not os.path.isdir(directory):
            raise ValueError(f"{directory} is not a directory")
        for root, dirs, files in os.walk(directory):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                relative = os.path.relpath(path, directory)
                digest.update(f"\0{relative}\0{os.stat(path).st_mode & 0o111:o}\0".encode())
                with open(path, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()[:length]


def base_tag(settings: ImageSettings) -> str:
    """The base image: its suite and a hash of its package list."""
    packages = ",".join(sorted(settings.base_packages))
    digest = hashlib.sha256(f"{settings.base_suite} {packages}".encode()).hexdigest()[:12]
    return f"{settings.base_repository}:{settings.base_suite}-{digest}"


@dataclass(frozen=True)
class Tags:
    """Every image tag of a run: the node image of each (implementation, version), and the monitoring images."""
    node_hash: str
    base: str
    repositories: dict[str, str]
    hashes: dict[str, str]

    def node(self, implementation: str, version: str) -> str:
        return f"{self.repositories['node']}:{implementation}-{version}-{self.node_hash}"

    def monitoring(self, kind: str) -> str:
        return f"{self.repositories[kind]}:{self.hashes[kind]}"


def tags(images_dir: str, settings: ImageSettings) -> Tags:
    """The tags, hashed from the build contexts under `images_dir` (the collection's images/)."""
    base = base_tag(settings)
    node_hash = tree_hash([os.path.join(images_dir, "bitcoin-node")],
                          {"base": base, "core_min_signatures": settings.core_min_signatures})
    hashes = {kind: tree_hash([os.path.join(images_dir, folder) for folder in (kind, *BUILT_ON.get(kind, ())[:1])], {"base": base})
              for kind in MONITORING}
    repositories = {"node": settings.node_repository, "collector": settings.collector_repository,
                    "graphite": settings.graphite_repository, "portal": settings.portal_repository,
                    "alertmanager": settings.alertmanager_repository, "observer": settings.observer_repository}
    return Tags(node_hash=node_hash, base=base, repositories=repositories, hashes=hashes)


def describe(tag: str, known: Tags) -> dict[str, Any]:
    """What an image tag is, for the images role: {tag, kind, implementation, version, args} (args:
    the build arguments only peerlab's own tags give, such as the image an image is built on)."""
    repository, _colon, name = tag.rpartition(":")
    if repository == known.repositories["node"]:
        implementation, rest = name.split("-", 1)
        version = rest[: -len(known.node_hash) - 1]
        return {"tag": tag, "kind": "node", "implementation": implementation, "version": version, "args": {},
                "from_source": from_source(implementation, version)}
    for kind in MONITORING:
        if repository == known.repositories[kind]:
            args = {BUILT_ON[kind][1]: known.monitoring(BUILT_ON[kind][0])} if kind in BUILT_ON else {}
            return {"tag": tag, "kind": kind, "implementation": "", "version": "", "args": args}
    return {"tag": tag, "kind": "other", "implementation": "", "version": "", "args": {}}


def from_source(implementation: str, version: str) -> str:
    """The command that compiles this node image from its source ('' when an image build makes it:
    Knots from Debian, Core from a verified release). A deploy cannot: it takes many minutes and
    needs the source on the controller (tools/build_node.py)."""
    if implementation == "statoshi" or (implementation == "core" and re.fullmatch(r"[0-9a-f]{40}", version)):
        target = "statoshi" if implementation == "statoshi" else "node-image"
        return f"make {target} SOURCE=<its git directory, tree or URL (then REF={version})>"
    return ""


def builds(missing: list[str], known: Tags) -> list[dict[str, Any]]:
    """The builds of the missing tags, in an order that builds an image after the one it is built on
    (node images first, then MONITORING's order)."""
    order = ["node", *MONITORING, "other"]
    return sorted((describe(tag, known) for tag in missing), key=lambda build: (order.index(build["kind"]), build["tag"]))
