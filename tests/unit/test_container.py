"""A node container's Engine API body and the plan of the containers module."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ansible_collections.peerlab.bitcoin.plugins.module_utils._container import (
    create_body,
    differences,
    memory_bytes,
    plan,
    port_bindings,
)

SPEC: dict[str, Any] = {
    "name": "lab-n1", "hostname": "lab-n1", "image": "peerlab/bitcoin-node:knots-29.5-abc", "spec": "1234abcd",
    "network": "peerlab-lab", "memory": "512m", "cpus": 0.5, "restart_policy": "unless-stopped", "stop_timeout": 600,
    "labels": {"peerlab.network": "lab", "peerlab.node": "n1", "peerlab.role": "node"},
    "env": {"PEERLAB_CHAIN": "regtest", "PEERLAB_CONF": "dbcache=50\nmaxmempool=50"},
    "mounts": [{"type": "volume", "source": "lab-n1-data", "target": "/home/bitcoin/.bitcoin",
                "labels": {"peerlab.role": "node-data"}}],
    "log_options": {"max-size": "10m", "max-file": "5"},
    "published_ports": ["127.0.0.1:28444:18444"],
}


def running(spec: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """An inspect answer of a container made from `spec` by the engine."""
    body = create_body(spec)
    found = {"Id": "c0ffee", "Name": f"/{spec['name']}", "State": {"Running": True, "Status": "running"},
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
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"peerlab-lab": {}}}


@pytest.mark.parametrize(("value", "expected"), [("512m", 512 << 20), ("2g", 2 << 30), (1048576, 1048576), ("256mb", 256 << 20)])
def test_memory(value: object, expected: int) -> None:
    assert memory_bytes(value) == expected


def test_bad_memory_and_ports_name_the_value() -> None:
    with pytest.raises(ValueError, match="'lots'"):
        memory_bytes("lots")
    with pytest.raises(ValueError, match="'18444'"):
        port_bindings(["18444"])
    assert port_bindings(["28444:18444"]) == {"18444/tcp": [{"HostIp": "", "HostPort": "28444"}]}


def test_plan_create_none_start_recreate() -> None:
    assert plan(SPEC, None)[0] == "create"
    assert plan(SPEC, running(SPEC)) == ("none", "running, up to date")
    stopped = running(SPEC, State={"Running": False, "Status": "exited"})
    assert plan(SPEC, stopped) == ("start", "exited")
    changed = dict(SPEC, spec="99999999")
    action, why = plan(changed, running(SPEC))
    assert action == "recreate" and "1234abcd -> 99999999" in why


def test_full_compare_sees_an_out_of_band_update_the_hash_does_not() -> None:
    updated = running(SPEC)
    updated["HostConfig"] = dict(updated["HostConfig"], Memory=1 << 30)
    assert plan(SPEC, updated)[0] == "none"
    action, why = plan(SPEC, updated, compare="full")
    assert action == "recreate" and "Memory" in why
    assert differences(SPEC, running(SPEC)) == []
    moved = running(SPEC, NetworkSettings={"Networks": {"bridge": {}}})
    assert differences(SPEC, moved) == ["not on network peerlab-lab"]
    other = copy.deepcopy(SPEC)
    other["env"]["PEERLAB_CHAIN"] = "signet"
    assert "environment" in differences(other, running(SPEC))


def test_start_stop_and_remove_act_only_where_needed() -> None:
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._container import plan_state

    running = {"State": {"Status": "running", "Running": True}}
    exited = {"State": {"Status": "exited", "Running": False}}
    assert plan_state("stopped", running) == ("stop", "running") and plan_state("stopped", exited) == ("none", "exited")
    assert plan_state("started", exited) == ("start", "exited") and plan_state("started", running) == ("none", "running")
    assert plan_state("absent", exited) == ("remove", "exited") and plan_state("absent", running) == ("remove", "running")
    assert plan_state("absent", None) == ("none", "missing") and plan_state("stopped", None) == ("none", "missing")
    with pytest.raises(ValueError, match="no such container"):
        plan_state("started", None)
