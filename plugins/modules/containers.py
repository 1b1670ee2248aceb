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
  - With I(state=started), C(stopped) or C(absent) it starts, stops or removes the listed
    containers by name (stopping waits for each container's own stop timeout, so bitcoind flushes
    its chainstate); C(absent) also removes the listed I(volumes) afterwards.
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
    description:
      - The containers, each as the node's settings (C(name), C(image), C(spec), C(network) and the
        rest of the plan); with a I(state) other than C(present) only C(name) is read.
    type: list
    elements: dict
    required: true
  state:
    description:
      - C(present) makes every container run with its settings; C(started) starts existing
        containers (a missing one is an error); C(stopped) stops running ones; C(absent) removes them.
    type: str
    choices: [present, started, stopped, absent]
    default: present
  volumes:
    description: Volumes to remove after the containers (only with I(state=absent)); a missing one is fine.
    type: list
    elements: str
    default: []
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

- name: Remove a Docker host's node containers and their volumes
  peerlab.bitcoin.containers:
    state: absent
    containers: [{name: lab-n1}, {name: lab-n2}]
    volumes: [lab-n1-data, lab-n2-data]
"""

RETURN = r"""
containers:
  description: Per container, the action taken (create, recreate, start, stop, remove, none), why, and its state afterwards
    (C(Id), C(State), C(Labels), C(NetworkSettings.Networks)).
  returned: always
  type: dict
actions:
  description: How many containers each action touched.
  returned: always
  type: dict
  sample: {"create": 1, "none": 4}
volumes:
  description: The volumes removed (or, in check mode, that would be).
  returned: always
  type: list
  elements: str
"""

import concurrent.futures
from typing import Any
from urllib.parse import quote

from ansible.module_utils.basic import AnsibleModule

from ..module_utils._docker import Docker, DockerError
from ..module_utils._reconcile import reconcile


def _remove_volume(docker: Docker, name: str, check_mode: bool) -> bool:
    """Remove a volume; False when there was none."""
    try:
        docker.request("GET", f"/volumes/{quote(name, safe='')}")
    except DockerError as error:
        if error.status == 404:
            return False
        raise
    if not check_mode:
        docker.request("DELETE", f"/volumes/{quote(name, safe='')}")
    return True


def _after(state: str, result: dict[str, Any], spec: dict[str, Any]) -> str:
    if state == "present":
        return f"running ({spec['spec']}; {result['action']}: {result['why']})"
    return {"remove": "removed", "stop": "stopped", "start": "running"}[result["action"]]


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            containers=dict(type="list", elements="dict", required=True),
            compare=dict(type="str", choices=["hash", "full"], default="hash"),
            state=dict(type="str", choices=["present", "started", "stopped", "absent"], default="present"),
            volumes=dict(type="list", elements="str", default=[]),
            docker_socket=dict(type="str", default="/var/run/docker.sock"),
        ),
        supports_check_mode=True,
    )
    specs = module.params["containers"]
    state = module.params["state"]
    needed = ("name", "image", "spec", "network") if state == "present" else ("name",)
    missing = [f"{spec.get('name', '?')}: {key}" for spec in specs for key in needed if not spec.get(key)]
    if missing:
        module.fail_json(msg="containers lack settings: " + ", ".join(missing))
    docker = Docker(module.params["docker_socket"])
    results: dict[str, Any] = {}
    failures: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, max(1, len(specs)))) as pool:
        futures = {spec["name"]: pool.submit(reconcile, docker, spec, module.params["compare"], state, module.check_mode)
                   for spec in specs}
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except (DockerError, ValueError, KeyError) as error:
                failures.append(f"{name}: {error}")
    actions: dict[str, int] = {}
    for result in results.values():
        actions[result["action"]] = actions.get(result["action"], 0) + 1
    removed: list[str] = []
    if state == "absent" and not failures:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, max(1, len(module.params["volumes"])))) as pool:
            gone = {name: pool.submit(_remove_volume, docker, name, module.check_mode) for name in module.params["volumes"]}
            for name, done in gone.items():
                try:
                    if done.result():
                        removed.append(name)
                except DockerError as error:
                    failures.append(f"volume {name}: {error}")
    changed = any(result["action"] != "none" for result in results.values()) or bool(removed)
    output: dict[str, Any] = dict(changed=changed, containers=results, actions=actions, volumes=removed)
    if module._diff:
        touched = sorted(name for name, result in results.items() if result["action"] != "none")
        output["diff"] = {
            "before": "".join(f"{name}: {results[name]['before'].get('State') or 'missing'}"
                              f" ({results[name]['before'].get('Labels', {}).get('peerlab.spec', '-')})\n" for name in touched)
            + "".join(f"volume {name}: present\n" for name in removed),
            "after": "".join(f"{name}: {_after(state, results[name], next(s for s in specs if s['name'] == name))}\n"
                             for name in touched) + "".join(f"volume {name}: removed\n" for name in removed),
        }
    for result in results.values():
        result.pop("before", None)
    if failures:
        module.fail_json(msg="containers not reconciled: " + "; ".join(failures), **output)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
