#!/usr/bin/python
# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: faults
short_description: Give the nodes of one Docker host their network faults, pauses and kills
version_added: 0.5.0
description:
  - Reconciles each node's network faults (partition, loss, bandwidth, latency; the script its
    plan holds, see C(plugins/module_utils/_faults.py)) and whether its container is paused, for
    the nodes one Docker host runs, in one run.
  - A node's faults are applied in its network namespace by a fault holder container
    (C(peerlab-fault-<node container>), the node's image, C(NET_ADMIN), sharing the node's network);
    node containers never get C(NET_ADMIN). The holder's labels record what it holds for which start
    of the node; stopping it undoes its rules. A node restarted since has no faults, so they are applied again.
  - With O(probe_netem), only checks that this engine's kernel can delay packets and fails naming the
    missing kernel feature otherwise; nothing of any node is touched.
author: peerlab developers (@peerlab)
attributes:
  check_mode:
    support: full
    description: Compares the holders and pause states found with the plans; changes nothing.
  diff_mode:
    support: full
    description: "One C(node: fault) line per fault held, and C(node: paused), before and after."
  idempotent:
    support: full
    description: Reports a change only when a holder was made or removed, or a container paused, unpaused or killed.
options:
  nodes:
    description: The nodes of this Docker host and what each must hold (an empty O(nodes[].commands) holds nothing).
    type: list
    elements: dict
    default: []
    suboptions:
      network: {description: The node's network., type: str, required: true}
      node: {description: The node's name in its network., type: str, required: true}
      commands: {description: The plan's script (empty for no network fault)., type: str, default: ""}
      spec: {description: The plan's hash., type: str, default: ""}
      faults: {description: The plan's faults in words., type: list, elements: str, default: []}
      pause: {description: Whether the container must be paused., type: bool, default: false}
  kill:
    description: Node containers to kill at once (SIGKILL; they stay down until started again).
    type: list
    elements: str
    default: []
  clear:
    description: Node containers whose fault holders to remove (teardown of Swarm nodes); nothing else is done.
    type: list
    elements: str
    default: []
  probe_netem:
    description:
      - An image with C(tc) to probe this engine's kernel for netem with (C(auto) - a node container's); only the probe runs.
    type: str
  docker_host:
    description: The Docker host's inventory name, for messages.
    type: str
    default: localhost
  docker_socket:
    description: The Docker Engine's Unix socket.
    type: str
    default: /var/run/docker.sock
requirements:
  - Python 3.9 or later on the Docker host (standard library only); the node image has iptables and iproute2
"""

EXAMPLES = r"""
- name: Hold lab-n3's loss
  peerlab.bitcoin.faults:
    nodes:
      - {network: lab, node: n3, commands: "{{ plan.commands }}", spec: "{{ plan.spec }}", faults: ["loss 20% on n3"]}
"""

RETURN = r"""
nodes:
  description: Per node container, what was done (C(apply), C(clear), C(pause), C(unpause), C(kill)) and the faults it holds now.
  returned: always
  type: dict
  sample: {"lab-n3": {"actions": ["apply"], "faults": ["loss 20% on n3"], "paused": false}}
"""

import concurrent.futures
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ..module_utils._docker import Docker, DockerError
from ..module_utils._names import container
from ..module_utils._netfault import holders, kill, netem_probe, node_containers, reconcile, remove_holder


def _lines(name: str, state: dict[str, Any]) -> list[str]:
    return [f"{name}: {fault}\n" for fault in state["faults"]] + ([f"{name}: paused\n"] if state["paused"] else [])


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            nodes=dict(type="list", elements="dict", default=[], options=dict(
                network=dict(type="str", required=True),
                node=dict(type="str", required=True),
                commands=dict(type="str", default=""),
                spec=dict(type="str", default=""),
                faults=dict(type="list", elements="str", default=[]),
                pause=dict(type="bool", default=False),
            )),
            kill=dict(type="list", elements="str", default=[]),
            clear=dict(type="list", elements="str", default=[]),
            probe_netem=dict(type="str"),
            docker_host=dict(type="str", default="localhost"),
            docker_socket=dict(type="str", default="/var/run/docker.sock"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    docker = Docker(params["docker_socket"])
    try:
        if params["probe_netem"]:
            image = params["probe_netem"]
            if image == "auto":
                image = next((entry["Image"] for entry in node_containers(docker).values()), "")
                if not image:
                    module.fail_json(msg=f"no node container on {params['docker_host']} to take an image with tc from")
            refusal = netem_probe(docker, image, params["docker_host"])
            if refusal:
                module.fail_json(msg=refusal, netem=False)
            module.exit_json(changed=False, netem=True)
        found = node_containers(docker)
        held = holders(docker)
        if params["clear"]:
            gone = sorted(name for name in params["clear"] if name in held)
            if not module.check_mode:
                for name in gone:
                    remove_holder(docker, held[name])
            module.exit_json(changed=bool(gone), cleared=gone)
    except DockerError as error:
        module.fail_json(msg=str(error))
    results: dict[str, Any] = {}
    failures: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, max(1, len(params["nodes"])))) as pool:
        futures = {}
        for spec in params["nodes"]:
            name = container(spec["network"], spec["node"])
            futures[name] = pool.submit(reconcile, docker, spec, found.get(name), held.get(name), module.check_mode)
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except DockerError as error:
                failures.append(str(error))
    for name in params["kill"]:
        node = found.get(name)
        if node is None:
            failures.append(f"{name}: no such node container on {params['docker_host']}")
            continue
        entry = results.setdefault(name, {"actions": [], "before": {"faults": [], "paused": False}, "faults": [], "paused": False})
        if node.get("State") in ("running", "paused"):
            entry["actions"].append("kill")
            if not module.check_mode:
                kill(docker, node)
    output: dict[str, Any] = dict(changed=any(result["actions"] for result in results.values()))
    if module._diff:
        touched = sorted(name for name, result in results.items() if result["actions"])
        output["diff"] = {"before": "".join(line for name in touched for line in _lines(name, results[name]["before"])),
                          "after": "".join(line for name in touched for line in _lines(name, results[name]))
                          + "".join(f"{name}: killed\n" for name in touched if "kill" in results[name]["actions"])}
    for result in results.values():
        result.pop("before", None)
    output["nodes"] = results
    if failures:
        module.fail_json(msg="faults not reconciled: " + "; ".join(failures), **output)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
