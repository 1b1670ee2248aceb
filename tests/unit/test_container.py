"""A container's and a Swarm service's Engine API bodies, and the full comparison with a running container."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.peerlab.bitcoin.plugins.module_utils._container import (
    create_body,
    differences,
    extra_networks,
    memory_bytes,
    port_bindings,
    service_body,
)
from ansible_collections.peerlab.bitcoin.plugins.module_utils._spec import ContainerSpec, Mount, ServiceSpec

SPEC = ContainerSpec(
    name="lab-n1", role="node", image="peerlab/bitcoin-node:knots-29.5-abc", spec="1234abcd", networks=("peerlab-lab",),
    memory="512m", cpus=0.5, restart_policy="unless-stopped", stop_timeout=600,
    labels={"peerlab.network": "lab", "peerlab.node": "n1", "peerlab.role": "node"},
    env={"PEERLAB_CHAIN": "regtest", "PEERLAB_CONF": "dbcache=50\nmaxmempool=50"},
    mounts=(Mount("volume", "lab-n1-data", "/home/bitcoin/.bitcoin", labels={"peerlab.role": "node-data"}),),
    log_options={"max-size": "10m", "max-file": "5"}, published=("127.0.0.1:28444:18444",))


def running(spec: ContainerSpec, **changes: Any) -> dict[str, Any]:
    """An inspect answer of a container made from `spec` by the engine."""
    body = create_body(spec)
    found = {"Id": "c0ffee", "Name": f"/{spec.name}", "State": {"Running": True, "Status": "running"},
             "Config": {"Image": body["Image"], "Env": body["Env"] + ["PATH=/usr/bin"], "Labels": dict(body["Labels"])},
             "HostConfig": dict(body["HostConfig"]),
             "Mounts": [{"Type": "volume", "Name": "lab-n1-data", "Source": "/var/lib/docker/volumes/lab-n1-data/_data",
                         "Destination": "/home/bitcoin/.bitcoin"}],
             "NetworkSettings": {"Networks": {"peerlab-lab": {"IPAddress": "172.20.0.2"}}}}
    found.update(changes)
    return found


def test_body_carries_limits_labels_ports_and_the_hash() -> None:
    body = create_body(SPEC)
    assert body["HostConfig"]["Memory"] == 512 * 1024 * 1024 and body["HostConfig"]["NanoCpus"] == 500_000_000
    assert body["Labels"]["peerlab.spec"] == "1234abcd" and body["Labels"]["peerlab.node"] == "n1"
    assert body["HostConfig"]["PortBindings"] == {"18444/tcp": [{"HostIp": "127.0.0.1", "HostPort": "28444"}]}
    assert body["ExposedPorts"] == {"18444/tcp": {}}
    assert body["StopTimeout"] == 600 and body["HostConfig"]["RestartPolicy"] == {"Name": "unless-stopped"}
    assert "PEERLAB_CONF=dbcache=50\nmaxmempool=50" in body["Env"]
    assert body["HostConfig"]["Mounts"][0]["VolumeOptions"] == {"Labels": {"peerlab.role": "node-data"}}
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"peerlab-lab": {}}} and body["Hostname"] == "lab-n1"


def test_a_monitoring_container_joins_its_networks_and_reads_the_engines_data_directory() -> None:
    collector = ContainerSpec(name="peerlab-collector", role="collector", image="c", labels={},
                              networks=("peerlab-monitoring", "peerlab-lab"),
                              mounts=(Mount("bind", "{docker_root}", "/host/docker", read_only=True),),
                              healthcheck={"Test": ["NONE"]}, user="1000:1000", groups=("998",))
    body = create_body(collector, docker_root="/srv/docker")
    assert body["HostConfig"]["Mounts"][0]["Source"] == "/srv/docker" and body["HostConfig"]["Mounts"][0]["ReadOnly"]
    assert body["HostConfig"]["NetworkMode"] == "peerlab-monitoring" and extra_networks(collector) == ["peerlab-lab"]
    assert body["User"] == "1000:1000" and body["HostConfig"]["GroupAdd"] == ["998"] and body["Healthcheck"] == {"Test": ["NONE"]}
    host = dataclasses.replace(collector, networks=("host",))
    assert create_body(host)["HostConfig"]["NetworkMode"] == "host" and create_body(host)["Hostname"] == ""
    assert extra_networks(host) == []


@pytest.mark.parametrize(("value", "expected"), [("512m", 512 << 20), ("2g", 2 << 30), (1048576, 1048576), ("256mb", 256 << 20)])
def test_memory(value: object, expected: int) -> None:
    assert memory_bytes(value) == expected


def test_bad_memory_and_ports_name_the_value() -> None:
    with pytest.raises(ValueError, match="'lots'"):
        memory_bytes("lots")
    with pytest.raises(ValueError, match="'18444'"):
        port_bindings(["18444"])
    assert port_bindings(["28444:18444"]) == {"18444/tcp": [{"HostIp": "", "HostPort": "28444"}]}


def test_full_compare_sees_an_out_of_band_update_the_hash_does_not() -> None:
    assert differences(SPEC, running(SPEC)) == []
    updated = running(SPEC)
    updated["HostConfig"] = dict(updated["HostConfig"], Memory=1 << 30)
    assert any("Memory" in problem for problem in differences(SPEC, updated))
    moved = running(SPEC, NetworkSettings={"Networks": {"bridge": {}}})
    assert differences(SPEC, moved) == ["networks ['bridge'] -> ['peerlab-lab']"]
    other = dataclasses.replace(SPEC, env={**SPEC.env, "PEERLAB_CHAIN": "signet"})
    assert "environment" in differences(other, running(SPEC))


def test_a_service_is_one_task_placed_on_its_host_with_dns_round_robin_and_stop_first_updates() -> None:
    service = ServiceSpec(name="sw-b", role="node", image="peerlab/bitcoin-node:knots-29.5-abc", spec="feed",
                          labels={"peerlab.role": "node"}, networks=("peerlab-sw",), memory="256m", cpus=0.5,
                          placement=("node.labels.peerlab.host == w1",), stop_timeout=600,
                          published=({"published_port": 38333, "target_port": 38333, "protocol": "tcp"},))
    body = service_body(service)
    assert body["Mode"] == {"Replicated": {"Replicas": 1}} and body["UpdateConfig"]["Order"] == "stop-first"
    assert body["EndpointSpec"] == {"Mode": "dnsrr", "Ports": [{"Protocol": "tcp", "TargetPort": 38333, "PublishedPort": 38333,
                                                                "PublishMode": "host"}]}
    template = body["TaskTemplate"]
    assert template["Placement"] == {"Constraints": ["node.labels.peerlab.host == w1"]}
    assert template["ContainerSpec"]["Labels"]["peerlab.spec"] == "feed" and template["ContainerSpec"]["Hostname"] == "sw-b"
    assert template["ContainerSpec"]["StopGracePeriod"] == 600 * 10**9
    assert template["Resources"]["Limits"] == {"MemoryBytes": 256 << 20, "NanoCPUs": 500_000_000}
    assert service_body(dataclasses.replace(service, mode="global"))["Mode"] == {"Global": {}}


def test_a_health_url_answers_only_with_its_query() -> None:
    """Graphite's readiness URL needs its query (`/metrics/find?query=*`); without it Graphite says 400."""
    import http.server
    import threading

    from ansible_collections.peerlab.bitcoin.plugins.module_utils._reconcile import _answers

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/metrics/find?query=*" else 400)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        assert _answers(f"http://127.0.0.1:{port}/metrics/find?query=*")
        assert not _answers(f"http://127.0.0.1:{port}/metrics/find")
        # the health check a monitoring container runs inside itself: the same rule, in one line of bash
        import subprocess

        from ansible_collections.peerlab.bitcoin.plugins.module_utils._desired import _health

        # (bash's own /dev/tcp: its CPU is the container's, every 30 s)
        for path, accept, status in (("/metrics/find?query=*", (200,), 0), ("/healthz", (200,), 1), ("/healthz", (200, 400), 0)):
            check = _health(port, path, accept)
            assert check["Test"][:3] == ["CMD", "bash", "-c"] and check["Interval"] == 30 * 10**9
            assert subprocess.run(check["Test"][1:], timeout=30, check=False, capture_output=True).returncode == status
    finally:
        server.shutdown()
        server.server_close()
    assert not _answers(f"http://127.0.0.1:{port}/metrics/find?query=*"), "nothing listening"
    refused = subprocess.run(_health(port, "/metrics/find?query=*")["Test"][1:], timeout=30, check=False, capture_output=True)
    assert refused.returncode == 1


def test_the_images_health_checks_are_the_engines_probe() -> None:
    """The collector's and the observer's images carry the probe the engine gives the containers it
    makes (a Swarm service of the collector uses the image's)."""
    import json
    import re

    from ansible_collections.peerlab.bitcoin.plugins.module_utils._desired import health_probe

    root = Path(__file__).resolve().parents[2] / "images"
    for image, port in (("collector", 9332), ("observer", 9333)):
        text = (root / image / "Dockerfile").read_text()
        (command,) = re.findall(r"^HEALTHCHECK .*\\\n\s+CMD (\[.*\])$", text, re.M)
        assert json.loads(command) == ["bash", "-c", health_probe(port, "/healthz")], image
