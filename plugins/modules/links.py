#!/usr/bin/python
# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: links
short_description: Make and verify the peer links of many nodes in one call
version_added: 0.1.0
description:
  - The network-wide form of M(peerlab.bitcoin.peer) and M(peerlab.bitcoin.node_info), for the
    nodes one Docker host runs. Talks to every node at once (one thread per node), so a network
    costs one module run instead of several per node.
  - Waits for each node's RPC, reconciles each node's manual links with its O(nodes[].peers)
    (exclusive, like M(peerlab.bitcoin.peer) with O(peerlab.bitcoin.peer#module:exclusive=true)),
    waits until they are connected, then verifies every link from both ends with getpeerinfo
    when both ends are in O(nodes).
  - With O(wait_for_tip), waits until every node has that best block.
  - Returns each node's state (chain, tip, peers in and out), as M(peerlab.bitcoin.node_info) does.
author: peerlab developers (@peerlab)
attributes:
  check_mode:
    support: full
    description: Plans from the nodes' current links; nodes without an address count as new.
  diff_mode:
    support: full
    description: One C(node address (state)) line per managed link, before and after.
  idempotent:
    support: full
    description: Reports a change only when a link had to be added, reopened or removed.
options:
  nodes:
    description: The nodes to act on.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Node name, used in messages and results (the container name).
        type: str
        required: true
      rpc_host:
        description: Address of the node's RPC interface; empty for a node that does not exist yet (check mode).
        type: str
        required: true
      rpc_port:
        description: RPC port of the node's chain.
        type: int
        required: true
      address:
        description:
          - The node's address as its peers see it, when that is not O(nodes[].rpc_host).
          - A Swarm task is seen by its peers on its overlay address, while its Docker host calls RPC
            on its docker_gwbridge address.
        type: str
      rpc_user:
        description: RPC user.
        type: str
        default: peerlab
      rpc_password:
        description: Password of O(nodes[].rpc_user); never logged.
        type: str
        required: true
      peers:
        description: The node's manual peers as C(host:port); links not listed are removed.
        type: list
        elements: str
        default: []
      cut:
        description:
          - Peers of O(nodes[].peers) across a partition, kept as added nodes, closed now if connected,
            neither waited for nor verified. They reconnect once the partition goes.
        type: list
        elements: str
        default: []
      unheard:
        description:
          - Addresses of nodes across a partition that link to this node. Their inbound connections
            are closed now, as the partition drops the FIN of the side that closes the link.
        type: list
        elements: str
        default: []
      frozen:
        description:
          - Peers of O(nodes[].peers) that are paused, kept as added nodes, neither closed, waited for nor verified.
        type: list
        elements: str
        default: []
  rpc_timeout:
    description: Seconds for one RPC answer.
    type: float
    default: 30
  ready_timeout:
    description: Seconds each node may take to answer RPC at all.
    type: float
    default: 120
  link_timeout:
    description: Seconds each node's links may take to connect.
    type: float
    default: 60
  wait_for_tip:
    description: Block hash every node must reach.
    type: str
  tip_timeout:
    description: Seconds to wait for O(wait_for_tip).
    type: float
    default: 120
  verify:
    description: Verify every link from both ends (when both ends are in O(nodes)).
    type: bool
    default: true
requirements:
  - Python 3.9 or later on the host that runs the module (standard library only)
"""

EXAMPLES = r"""
- name: Link and verify every node of the lab on this Docker host
  peerlab.bitcoin.links:
    nodes:
      - {name: lab-n1, rpc_host: 172.19.0.2, rpc_port: 18443, rpc_password: "{{ p1 }}", peers: [lab-n2:18444]}
      - {name: lab-n2, rpc_host: 172.19.0.3, rpc_port: 18443, rpc_password: "{{ p2 }}", peers: []}
  register: links
"""

RETURN = r"""
nodes:
  description: Per node, what changed and its state afterwards (see M(peerlab.bitcoin.node_info) for the state keys).
  returned: always
  type: dict
  sample: {"lab-n1": {"added": ["lab-n2:18444"], "removed": [], "reconnected": [], "changed": true, "blocks": 101,
                      "bestblockhash": "0f91...", "connections_in": 1, "connections_out": 1}}
problems:
  description: Links that could not be verified, one sentence each (the module fails when there are any).
  returned: always
  type: list
  elements: str
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ..module_utils._linking import link
from ..module_utils._peering import diff


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            nodes=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                cut=dict(type="list", elements="str", default=[]),
                unheard=dict(type="list", elements="str", default=[]),
                frozen=dict(type="list", elements="str", default=[]),
                rpc_host=dict(type="str", required=True),
                rpc_port=dict(type="int", required=True),
                address=dict(type="str"),
                rpc_user=dict(type="str", default="peerlab"),
                rpc_password=dict(type="str", required=True, no_log=True),
                peers=dict(type="list", elements="str", default=[]),
            )),
            rpc_timeout=dict(type="float", default=30.0),
            ready_timeout=dict(type="float", default=120.0),
            link_timeout=dict(type="float", default=60.0),
            wait_for_tip=dict(type="str"),
            tip_timeout=dict(type="float", default=120.0),
            verify=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    missing = [spec["name"] for spec in params["nodes"] if not spec["rpc_host"]]
    if missing and not module.check_mode:
        module.fail_json(msg=f"no address for {', '.join(missing)} (are their containers running?)")
    nodes, failures, problems = link(params["nodes"], params, module.check_mode)
    results = {node.spec["name"]: dict(node.result, changed=node.changed, added=node.plan.add, reconnected=node.plan.reconnect,
                                       removed=node.plan.remove, deduplicated=node.deduplicated, closed=node.closed) for node in nodes}
    output: dict[str, Any] = dict(changed=any(node.changed for node in nodes), nodes=results, problems=failures + problems)
    if module._diff:
        before, after = [], []
        for node in nodes:
            shown = diff(node.before, node.plan)
            before += [f"{node.spec['name']} {line}" for line in shown["before"].splitlines()]
            after += [f"{node.spec['name']} {line}" for line in shown["after"].splitlines()]
        output["diff"] = {"before": "".join(f"{line}\n" for line in before), "after": "".join(f"{line}\n" for line in after)}
    if failures:
        module.fail_json(msg="; ".join(failures), **output)
    if problems and not module.check_mode:
        module.fail_json(msg="links not verified: " + "; ".join(problems), **output)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
