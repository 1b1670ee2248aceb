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


def test_the_swarm_example_places_swarm_networks_on_its_three_hosts() -> None:
    found = listing("inventories/swarm-example")
    hostvars = found["_meta"]["hostvars"]
    assert found["peerlab_swarm_managers"]["hosts"] == ["btc-manager"]
    assert sorted(found["peerlab_swarm_workers"]["hosts"]) == ["btc-worker1", "btc-worker2"]
    nodes = found["peerlab_nodes"]["hosts"]
    assert len(nodes) == 14 and all(hostvars[node]["peerlab_swarm"] for node in nodes)
    placed = {plain(hostvars[node]["peerlab_docker_host"]) for node in nodes}
    assert placed == {"btc-manager", "btc-worker1", "btc-worker2"}


def test_the_default_lab_is_standalone_and_the_host_groups_exist_empty() -> None:
    found = listing("inventories/local")
    assert not any(found["_meta"]["hostvars"][node]["peerlab_swarm"] for node in found["peerlab_nodes"]["hosts"])
    for group in ("peerlab_engines", "peerlab_swarm_managers", "peerlab_swarm_workers"):
        assert group in found["all"]["children"] and not found.get(group, {}).get("hosts")
