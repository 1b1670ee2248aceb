#!/usr/bin/env python3
"""Build a node image from source: Bitcoin Core or Statoshi, one CMake recipe.

    python tools/build_node.py statoshi SOURCE [--ref REF]
    make statoshi SOURCE=/path/to/statoshi            (the same)

SOURCE is a local git directory (a clone or a bare repository, such as the one `fetch` brings),
a plain source tree (no git: its content hash is the version), or a git URL with a pinned commit
(`--ref` a full 40-digit commit; the commit is fetched once into ~/.cache/peerlab/sources).

The image gets the tag the topology asks for (peerlab/bitcoin-node:<implementation>-<version>-<hash>,
plugins/module_utils/_images.py): a node `implementation: statoshi, version: <commit>` runs it. A
tag already on the Docker engine is not built again. The compiler runs in a container of
peerlab/node-builder with a compiler cache volume (peerlab-ccache) kept between builds, so a small
change to a tree recompiles only what it touches, and the binaries of each (source, recipe) are kept
in ~/.cache/peerlab/builds, so a change to the rest of the node image compiles nothing. Its
progress is printed as it builds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))  # collections/ansible_collections/peerlab/bitcoin is this checkout

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _images
from ansible_collections.peerlab.bitcoin.plugins.module_utils._settings import ImageSettings

IMPLEMENTATIONS = ("statoshi", "core")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
CCACHE_VOLUME = "peerlab-ccache"
BUILDER_REPOSITORY = "peerlab/node-builder"
CONTEXT = ROOT / "images" / "bitcoin-node"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "peerlab" / "sources"
BUILDS = CACHE.parent / "builds"   # compiled binaries per (implementation, version, recipe)


class BuildError(Exception):
    """A build that cannot start or did not finish: the message says why and what to do."""


@dataclass(frozen=True)
class Source:
    """What to compile: `version` names it in the image tag (a commit, or a tree's content hash);
    `git_dir` and `commit` for git sources, `tree` for a plain directory."""
    version: str
    described: str
    git_dir: str = ""
    commit: str = ""
    tree: str = ""


def git(*arguments: str) -> str:
    done = subprocess.run(["git", *arguments], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildError(f"git {' '.join(arguments)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def is_url(source: str) -> bool:
    return "://" in source or re.match(r"^[\w.-]+@[\w.-]+:", source) is not None


def tree_version(tree: str) -> str:
    """A plain tree's version: 40 hex digits of a SHA-256 over its files (names, modes, contents),
    .git and build directories left out, so the tag changes exactly when a file does."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(tree):
        dirs[:] = sorted(name for name in dirs if name not in (".git", "build"))
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            digest.update(f"\0{os.path.relpath(path, tree)}\0{os.stat(path).st_mode & 0o111:o}\0".encode())
            with open(path, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()[:40]


def resolve(source: str, ref: str = "") -> Source:
    """Where the source is and which version it is, or BuildError naming what is wrong."""
    if is_url(source):
        if not COMMIT.match(ref):
            raise BuildError(f"{source} is a URL: give the commit to build as --ref (40 hex digits), got {ref or 'none'!r}")
        cache = CACHE / hashlib.sha256(source.encode()).hexdigest()[:16]
        if not (cache / "HEAD").exists():
            git("init", "-q", "--bare", str(cache))
        if subprocess.run(["git", "--git-dir", str(cache), "cat-file", "-e", f"{ref}^{{commit}}"], capture_output=True,
                          check=False).returncode != 0:
            print(f"peerlab: fetching {ref} from {source}", file=sys.stderr)
            git("--git-dir", str(cache), "fetch", "-q", "--depth", "1", source, ref)
        return Source(version=ref, described=f"{source} at {ref}", git_dir=str(cache), commit=ref)
    path = Path(source).expanduser()
    if path.is_file():
        raise BuildError(f"{source} is a file: unpack a source tarball and give its directory (a Bitcoin Core release "
                         "needs no compiling: `implementation: core, version: <release>` installs it, verified against "
                         "SHA256SUMS and its signatures; docs/images.md)")
    if not path.is_dir():
        raise BuildError(f"{source}: no such directory (give a git directory, a source tree or a git URL)")
    git_dir = path / ".git" if (path / ".git").exists() else path if (path / "HEAD").is_file() and (path / "objects").is_dir() else None
    if git_dir is None:
        if ref:
            raise BuildError(f"{source} is not a git directory: --ref has no meaning for a plain tree")
        if not (path / "CMakeLists.txt").is_file():
            raise BuildError(f"{source} has no CMakeLists.txt: not a Bitcoin Core (29 or later) or Statoshi source tree")
        return Source(version=tree_version(str(path)), described=f"the tree {path}", tree=str(path))
    commit = git("--git-dir", str(git_dir), "rev-parse", "--verify", "--quiet", f"{ref or 'HEAD'}^{{commit}}")
    if not COMMIT.match(commit):
        raise BuildError(f"{source}: {ref or 'HEAD'} is not a commit")
    if git_dir.name == ".git" and git("-C", str(path), "status", "--porcelain", "--untracked-files=no"):
        print(f"peerlab: {path} has uncommitted changes; building the commit {commit[:12]} (commit them, or give a copy "
              "without .git to build the tree as it is)", file=sys.stderr)
    return Source(version=commit, described=f"{path} at {commit}", git_dir=str(git_dir), commit=commit)


def archive(source: Source) -> subprocess.Popen[bytes]:
    """A process writing the source as a tar to its stdout."""
    if source.git_dir:
        return subprocess.Popen(["git", "--git-dir", source.git_dir, "archive", "--format=tar", source.commit],
                                stdout=subprocess.PIPE)
    return subprocess.Popen(["tar", "-c", "-C", source.tree, "--exclude=./.git", "--exclude=./build", "."], stdout=subprocess.PIPE)


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False).returncode == 0


def docker(*arguments: str, **options: Any) -> None:
    done = subprocess.run(["docker", *arguments], check=False, **options)
    if done.returncode != 0:
        raise BuildError(f"docker {arguments[0]} failed (exit {done.returncode})")


def builder_tag(base: str) -> str:
    return f"{BUILDER_REPOSITORY}:{_images.tree_hash([str(CONTEXT / 'source')], {'base': base})}"


def compile_into(source: Source, implementation: str, builder: str, target: Path) -> float:
    """Compile the source in the builder with the compiler cache; the installed files as a tar at
    target; the seconds it took."""
    docker("volume", "create", "--label", "peerlab.role=ccache", CCACHE_VOLUME, stdout=subprocess.DEVNULL)
    print(f"peerlab: compiling {source.described} ({implementation}); this takes long on few cores, progress follows",
          file=sys.stderr)
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    producer = archive(source)
    with open(partial, "wb") as handle:
        compiled = subprocess.run(["docker", "run", "--rm", "-i", "--label", "peerlab.role=builder",
                                   "-v", f"{CCACHE_VOLUME}:/ccache", builder], stdin=producer.stdout, stdout=handle, check=False)
    if producer.stdout:
        producer.stdout.close()
    if producer.wait() != 0 or compiled.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BuildError(f"compiling {source.described} failed (exit {compiled.returncode}); the output above says where")
    with tarfile.open(partial) as made:
        binaries = made.getnames()
    if not any(name.endswith("bin/bitcoind") for name in binaries):
        partial.unlink(missing_ok=True)
        raise BuildError(f"the build of {source.described} made no bitcoind (files: {', '.join(binaries)[:300]})")
    partial.replace(target)
    return time.monotonic() - started


def build(implementation: str, source: Source, settings: ImageSettings) -> dict[str, Any]:
    """Compile and make the node image; what happened, with its times (s) and size (bytes)."""
    known = _images.tags(str(ROOT / "images"), settings)
    tag = known.node(implementation, source.version)
    if image_exists(tag):
        return {"tag": tag, "built": False}
    if not image_exists(known.base):
        raise BuildError(f"the base image {known.base} is not on this Docker engine: run `make images` first")
    started = time.monotonic()
    builder = builder_tag(known.base)
    if not image_exists(builder):
        print(f"peerlab: building the compiler image {builder}", file=sys.stderr)
        docker("build", "--quiet", "--build-arg", f"BASE_IMAGE={known.base}", "-t", builder, str(CONTEXT / "source"),
               stdout=subprocess.DEVNULL)
    # The binaries of one source with one recipe (source/) are kept: a change to the rest of the node
    # image (its entrypoint, say) makes the image again without compiling.
    compiled_tar = BUILDS / f"{implementation}-{source.version}-{builder.rpartition(':')[2]}.tar"
    compile_seconds = 0.0
    if not compiled_tar.exists():
        compile_seconds = compile_into(source, implementation, builder, compiled_tar)
    with tempfile.TemporaryDirectory(prefix="peerlab-node-") as temporary:
        context = Path(temporary) / "context"
        shutil.copytree(CONTEXT, context, ignore=shutil.ignore_patterns("source"))
        shutil.copy(compiled_tar, context / "prebuilt" / "bitcoin.tar")
        print(f"peerlab: making the image {tag}", file=sys.stderr)
        docker("build", "--quiet", "-t", tag, "--label", f"peerlab.source={source.described}",
               "--build-arg", f"BASE_IMAGE={known.base}", "--build-arg", f"IMPLEMENTATION={implementation}",
               "--build-arg", f"VERSION={source.version}", "--build-arg", f"CORE_MIN_SIGNATURES={settings.core_min_signatures}",
               str(context), stdout=subprocess.DEVNULL)
    size = int(subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", tag], capture_output=True, text=True,
                              check=True).stdout.strip())
    return {"tag": tag, "built": True, "seconds": round(time.monotonic() - started, 1),
            "compile_seconds": round(compile_seconds, 1), "size": size, "compiled": str(compiled_tar)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("implementation", choices=IMPLEMENTATIONS)
    parser.add_argument("source", help="a git directory, a source tree, or a git URL (then --ref)")
    parser.add_argument("--ref", default="", help="the commit (or, in a local git directory, branch or tag) to build; default HEAD")
    arguments = parser.parse_args(argv)
    try:
        source = resolve(arguments.source, arguments.ref)
        done = build(arguments.implementation, source, ImageSettings())
    except BuildError as error:
        print(f"peerlab: {error}", file=sys.stderr)
        return 2
    if not done["built"]:
        print(f"peerlab: {done['tag']} is there already: nothing to build")
    else:
        compiled = f"compiling {done['compile_seconds']} s" if done["compile_seconds"] else f"binaries kept in {done['compiled']}"
        print(f"peerlab: built {done['tag']} in {done['seconds']} s ({compiled}), {done['size'] / 1e6:.0f} MB")
    print(f"peerlab: in a topology: implementation: {arguments.implementation}, version: {source.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
