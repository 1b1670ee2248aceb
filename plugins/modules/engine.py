#!/usr/bin/python
# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: engine
short_description: Make one Docker host hold what its part of the topology says
version_added: 0.6.0
description:
  - Runs on a Docker host (the play's host) with that host's desired state, which its action
    plugin computes on the controller from the topology, the roles' settings and the credentials
    (module_utils/_desired.py); the module reads the host's engine once, plans against it
    (module_utils/_plan.py) and applies the plan (module_utils/_apply.py).
  - With O(state=present) it refuses before any change when an object it would make or change has
    the name of one peerlab did not make or another inventory owns, or when images are missing
    (it then reports them in RV(missing_images), for the images role, and changes nothing); else it
    makes the Docker networks, writes the files (peers files, the collectors' and the observer's
    configuration, Grafana's provisioning, the portal's), creates, starts or makes again containers
    and Swarm services, holds the network faults, links every node through RPC and verifies each
    link at both ends, and on a regtest network whose nodes all run here mines its first blocks and
    waits until every node has one tip.
  - O(state=absent) removes this run's nodes (their volumes with purge), and with the whole
    inventory its monitoring stack; O(state=started) and O(state=stopped) start and stop nodes;
    O(state=status) reads them; O(state=mine) mines on O(miners); O(state=tip) waits for O(tips).
  - Every change is reported against the node it concerns (RV(changes)), in check mode too.
  - Called through its action plugin, which gives it O(spec) and O(secrets); not meant to be called with hand-made arguments.
author: peerlab developers (@peerlab)
attributes:
  check_mode:
    support: full
    description: Plans against the engine as it is and reports every change it would make, per node; changes nothing.
  diff_mode:
    support: full
    description: One line per object or link that would change, before and after.
  idempotent:
    support: full
    description: A second run with the same topology and settings reports nothing changed.
options:
  state:
    description: What to do.
    type: str
    choices: [present, absent, started, stopped, status, mine, tip]
    default: present
  spec:
    description: This Docker host's desired state (module_utils/_spec.HostSpec, as plain values).
    type: dict
    required: true
  secrets:
    description: The RPC passwords of this host's nodes (C(rpc)) and the Grafana admin's (C(grafana)); never logged.
    type: dict
    default: {}
  remote:
    description: Addresses of nodes on other Docker hosts (node container -> address), read before this run.
    type: dict
    default: {}
  miners:
    description: The node containers that mine (O(state=mine)), one per network.
    type: list
    elements: str
    default: []
  blocks:
    description: Blocks to mine (O(state=mine)).
    type: int
    default: 1
  tips:
    description: Network -> the tip every node here must reach (O(state=tip)).
    type: dict
    default: {}
  timeout:
    description: Seconds a node may take to reach its tip (O(state=tip)).
    type: float
    default: 120
requirements:
  - Python 3.9 or later on the Docker host (standard library only)
"""

EXAMPLES = r"""
# Not called by hand: roles/engine's tasks call it through its action plugin, for example
- name: Make every Docker host hold its part of the topology
  peerlab.bitcoin.engine:
    state: present
"""

RETURN = r"""
changes:
  description: Node container (or monitoring container, file, Docker network) -> what changed, in words.
  returned: always
  type: dict
  sample: {"lab-n3": ["made again: settings changed (spec 1f2e -> 9a8b)", "+lab-n4:18444"]}
missing_images:
  description: Image tags this host needs and lacks; when any, nothing was changed.
  returned: always
  type: list
  elements: str
nodes:
  description: Node container -> its state after the run (chain, tip, peers in and out, each peer).
  returned: always
  type: dict
tips:
  description: Network -> the tip its nodes on this host agree on.
  returned: always
  type: dict
addresses:
  description: Node container -> the address its peers see.
  returned: always
  type: dict
notes:
  description: What was left alone and why (Grafana skipped, a Docker network another container still uses).
  returned: always
  type: list
  elements: str
rows:
  description: One row per node of this run on this host (node, host, implementation, address, container state, chain state).
  returned: always
  type: list
  elements: dict
timings:
  description: Seconds from the start of the run on this host to the end of each of its phases (plan, containers, faults, links, chain).
  returned: always
  type: dict
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ..module_utils import _apply
from ..module_utils._docker import Docker, DockerError
from ..module_utils._rpc import RpcError
from ..module_utils._spec import HostSpec
from ..module_utils._typed import load


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", default="present", choices=["present", "absent", "started", "stopped", "status", "mine", "tip"]),
            spec=dict(type="dict", required=True),
            secrets=dict(type="dict", default={}, no_log=True),
            remote=dict(type="dict", default={}),
            miners=dict(type="list", elements="str", default=[]),
            blocks=dict(type="int", default=1),
            tips=dict(type="dict", default={}),
            timeout=dict(type="float", default=120.0),
        ),
        supports_check_mode=True,
    )
    params = module.params
    spec = load(HostSpec, params["spec"])
    docker = Docker(spec.engine.docker_socket)
    state, check = params["state"], module.check_mode
    try:
        if state == "present":
            report = _apply.converge(docker, spec, params["secrets"], check, params["remote"])
        elif state == "absent":
            report = _apply.teardown(docker, spec, check)
        elif state in ("started", "stopped"):
            report = _apply.scale(docker, spec, params["secrets"], state, check)
        elif state == "mine":
            report = _apply.mine_here(docker, spec, params["secrets"], params["miners"], params["blocks"], check)
        else:
            report = _apply.status(docker, spec, params["secrets"], params["tips"] if state == "tip" else None, params["timeout"])
    except (DockerError, RpcError, OSError, ValueError) as error:
        module.fail_json(msg=f"{spec.host}: {error}")
    result: dict[str, Any] = dict(
        changed=report.changed and state not in ("status", "tip"), changes=report.changes, missing_images=report.missing_images,
        nodes=report.nodes, tips=report.tips, addresses=report.addresses, container_states=report.container_states,
        notes=report.notes, refusals=report.refusals, rows=report.rows(spec), timings=report.timings)
    if module._diff:
        result["diff"] = {"before": "".join(f"{line}\n" for line in sorted(report.before)),
                          "after": "".join(f"{line}\n" for line in sorted(report.after))}
    if report.refusals:
        module.fail_json(msg="refused before any change: " + "; ".join(report.refusals), **result)
    if report.failures:
        module.fail_json(msg=" ".join(report.failures), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
