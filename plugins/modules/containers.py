#!/usr/bin/python
# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: containers
short_description: Reconcile all node containers of one Docker host in one run
version_added: 0.5.0
description:
  - Creates, starts or recreates every listed container at once (a few threads), through the
    Docker Engine API on the host's socket; one module run per Docker host instead of one
    docker_container run per node.
  - A container carries the hash of the settings it was made from (label C(peerlab.spec)); a
    running container with the listed hash is left alone, one whose hash differs is stopped
    (with its stop timeout, so bitcoind flushes its chainstate) and made again. Volumes are kept.
  - Removing containers that left the topology is not this module's job.
author: peerlab developers (@peerlab)
attributes:
  check_mode:
    support: full
    description: Inspects and reports what it would do; changes nothing.
  diff_mode:
    support: full
    description: One line per container that would change, before and after.
  idempotent:
    support: full
    description: Reports a change only for containers it created, recreated or started.
options:
  containers:
    description: The containers, each as the node's settings.
    type: list
    elements: dict
    required: true
  compare:
    description:
      - C(hash) trusts the C(peerlab.spec) label; C(full) also compares image, environment, labels,
        limits, mounts, ports and network with the running container (sees C(docker update)).
    type: str
    choices: [hash, full]
    default: hash
  docker_socket:
    description: The engine's Unix socket on the host that runs the module.
    type: str
    default: /var/run/docker.sock
requirements:
  - Python 3.9 or later on the Docker host (standard library only)
"""

EXAMPLES = r"""
- name: Run every node container of this Docker host
  peerlab.bitcoin.containers:
    containers:
      - name: lab-n1
        image: peerlab/bitcoin-knots:29.5
        spec: 3f2a9c0d1e2b4c5d
        network: peerlab-lab
        memory: 512m
        cpus: 1.0
        labels: {peerlab.network: lab, peerlab.node: n1, peerlab.role: node}
        env: {PEERLAB_CHAIN: regtest}
        mounts: [{type: volume, source: lab-n1-data, target: /home/bitcoin/.bitcoin}]
"""

RETURN = r"""
containers:
  description: Per container, the action taken (create, recreate, start, none), why, and its state afterwards
    (C(Id), C(State), C(Labels), C(NetworkSettings.Networks)).
  returned: always
  type: dict
actions:
  description: How many containers each action touched.
  returned: always
  type: dict
  sample: {"create": 1, "none": 4}
"""

import concurrent.futures
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ..module_utils._container import create_body, plan
from ..module_utils._docker import Docker, DockerError


def _brief(found: dict[str, Any] | None) -> dict[str, Any]:
    if not found:
        return {}
    return {"Id": found.get("Id"), "Names": [found.get("Name", "")],
            "State": (found.get("State") or {}).get("Status"), "Labels": (found.get("Config") or {}).get("Labels") or {},
            "NetworkSettings": {"Networks": (found.get("NetworkSettings") or {}).get("Networks") or {}}}


def _reconcile(docker: Docker, spec: dict[str, Any], compare: str, check_mode: bool) -> dict[str, Any]:
    name = spec["name"]
    found = docker.inspect(name)
    action, why = plan(spec, found, compare)
    result: dict[str, Any] = {"action": action, "why": why, "before": _brief(found)}
    if check_mode or action == "none":
        result.update(_brief(found))
        return result
    if action == "recreate" and found:
        if (found.get("State") or {}).get("Running"):
            timeout = int(spec.get("stop_timeout", 10))
            docker.request("POST", f"/containers/{found['Id']}/stop?t={timeout}", timeout=timeout + 60)
        docker.request("DELETE", f"/containers/{found['Id']}?force=1")
    if action in ("create", "recreate"):
        created = docker.request("POST", f"/containers/create?name={name}", create_body(spec))
        target = created["Id"]
    else:
        target = found["Id"] if found else name
    docker.request("POST", f"/containers/{target}/start")
    result.update(_brief(docker.inspect(name)))
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            containers=dict(type="list", elements="dict", required=True),
            compare=dict(type="str", choices=["hash", "full"], default="hash"),
            docker_socket=dict(type="str", default="/var/run/docker.sock"),
        ),
        supports_check_mode=True,
    )
    specs = module.params["containers"]
    missing = [f"{spec.get('name', '?')}: {key}" for spec in specs for key in ("name", "image", "spec", "network") if not spec.get(key)]
    if missing:
        module.fail_json(msg="containers lack settings: " + ", ".join(missing))
    docker = Docker(module.params["docker_socket"])
    results: dict[str, Any] = {}
    failures: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, max(1, len(specs)))) as pool:
        futures = {spec["name"]: pool.submit(_reconcile, docker, spec, module.params["compare"], module.check_mode) for spec in specs}
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except (DockerError, ValueError, KeyError) as error:
                failures.append(f"{name}: {error}")
    actions: dict[str, int] = {}
    for result in results.values():
        actions[result["action"]] = actions.get(result["action"], 0) + 1
    changed = any(result["action"] != "none" for result in results.values())
    output: dict[str, Any] = dict(changed=changed, containers=results, actions=actions)
    if module._diff:
        touched = sorted(name for name, result in results.items() if result["action"] != "none")
        output["diff"] = {
            "before": "".join(f"{name}: {results[name]['before'].get('State') or 'missing'}"
                              f" ({results[name]['before'].get('Labels', {}).get('peerlab.spec', '-')})\n" for name in touched),
            "after": "".join(f"{name}: running ({next(s['spec'] for s in specs if s['name'] == name)}; "
                             f"{results[name]['action']}: {results[name]['why']})\n" for name in touched),
        }
    for result in results.values():
        result.pop("before", None)
    if failures:
        module.fail_json(msg="containers not reconciled: " + "; ".join(failures), **output)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
