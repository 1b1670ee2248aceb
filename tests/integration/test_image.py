"""The node image builds offline (no registry), is skipped when unchanged, and runs a regtest node."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker
import pytest

from .conftest import Lab, cli, wait_for

# Test-only repository names, so the build really starts from nothing even on a machine that
# already has peerlab's images, and so cleanup cannot touch a user's images.
# The monitoring images are not built here (the lab has no monitoring): built FROM the test base, they would pin it.
REPOSITORIES = ("-e", "images_base_repository=peerlab-test/base", "-e", "images_node_repository=peerlab-test/bitcoin-node")
LABEL = {"peerlab.test": "image", "peerlab.network": "imagetest", "peerlab.node": "n1", "peerlab.role": "node"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    client = docker.from_env()
    for image in client.images.list(name="peerlab-test/*"):
        client.images.remove(image.id, force=True)
    lab = Lab(tmp_path_factory.mktemp("image"), {"imagetest": {"chain": "regtest", "nodes": [{"name": "n1"}]}})
    first = lab.playbook("playbooks/images.yml", *REPOSITORIES)
    second = lab.playbook("playbooks/images.yml", *REPOSITORIES)
    yield {"client": client, "first": first, "second": second}
    for container in client.containers.list(all=True, filters={"label": "peerlab.test=image"}):
        container.remove(force=True, v=True)
    for image in client.images.list(name="peerlab-test/*"):
        client.images.remove(image.id, force=True)
    client.close()


def test_base_is_built_offline_and_says_why(built: dict[str, Any]) -> None:
    first = built["first"]
    assert first.rc == 0, first.output[-3000:]
    said = " ".join(first.output.split())
    assert "no registry answered" in said
    assert "offline from Debian trixie packages with mmdebstrap" in said
    assert built["client"].images.list(name="peerlab-test/base")


def test_second_build_changes_nothing(built: dict[str, Any]) -> None:
    second = built["second"]
    assert second.rc == 0, second.output[-3000:]
    assert second.total_changed == 0, second.output[-3000:]


def test_a_container_from_the_image_answers_bitcoin_cli(built: dict[str, Any]) -> None:
    client = built["client"]
    (image,) = client.images.list(name="peerlab-test/bitcoin-node")
    container = client.containers.run(image.id, detach=True, name="peerlab-test-image-n1", labels=LABEL,
                                      environment={"PEERLAB_CHAIN": "regtest"}, stop_signal="SIGTERM")
    info = wait_for(lambda: _chain(client, container.name), timeout=60)
    assert info and info["chain"] == "regtest" and info["blocks"] == 0
    # Not root, knots, and the healthcheck asks RPC.
    assert container.exec_run("id -un").output.decode().strip() == "bitcoin"
    assert "Knots" in container.exec_run("bitcoind -version").output.decode()
    container.reload()
    assert container.attrs["Config"]["Healthcheck"]["Test"][-1] == "/usr/local/bin/peerlab-healthcheck"


def _chain(client: docker.DockerClient, name: str) -> dict[str, Any] | None:
    result = client.containers.get(name).exec_run(["bitcoin-cli", "getblockchaininfo"])
    return cli(client, name, "getblockchaininfo") if result.exit_code == 0 else None
