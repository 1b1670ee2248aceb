"""The shipped inventories parse, and mean what their READMEs say."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def listing(inventory: str) -> dict[str, Any]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-inventory"), "-i", inventory, "--list"], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def plain(value: Any) -> Any:
    return value["__ansible_unsafe"] if isinstance(value, dict) and set(value) == {"__ansible_unsafe"} else value


def nodes_of(found: dict[str, Any], group: str) -> list[str]:
    return sorted(found.get(group, {}).get("children", []))


def test_the_swarm_example_places_swarm_networks_on_its_three_hosts() -> None:
    found = listing("inventories/swarm-example")
    assert found["peerlab_swarm_managers"]["hosts"] == ["btc-manager"]
    assert sorted(found["peerlab_swarm_workers"]["hosts"]) == ["btc-worker1", "btc-worker2"]
    nodes = nodes_of(found, "peerlab_nodes")
    assert len(nodes) == 14
    # Each node is a group of the host it runs on and of the manager that runs its service.
    assert found["lab-n2"]["hosts"] == ["btc-worker1", "btc-manager"] and found["lab-n1"]["hosts"] == ["btc-manager"]
    assert {host for node in nodes for host in found[node]["hosts"]} == {"btc-manager", "btc-worker1", "btc-worker2"}
    assert nodes_of(found, "watch") == ["watch-s1", "watch-s2"]
    files = [plain(path) for path in plain(found["_meta"]["hostvars"]["btc-manager"]["peerlab_topology_files"])]
    assert files == [str(ROOT / "inventories" / "swarm-example" / "02-topology.peerlab.yml")]


def test_the_default_lab_is_standalone_and_the_host_groups_exist_empty() -> None:
    found = listing("inventories/local")
    assert nodes_of(found, "lab") == [f"lab-n{index}" for index in range(1, 6)]
    assert all(found[node]["hosts"] == ["localhost"] for node in nodes_of(found, "lab"))
    assert nodes_of(found, "peerlab_miners") == ["lab-n1"]
    for group in ("peerlab_engines", "peerlab_monitoring", "peerlab_swarm_managers", "peerlab_swarm_workers"):
        assert group in found["all"]["children"] and not found.get(group, {}).get("hosts")
