#!/usr/bin/python
# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: peer
short_description: Make or remove a node's manual peer links through RPC
version_added: 0.1.0
description:
  - Reconciles a node's manual outbound peers (bitcoind's C(addnode) list) with O(peers).
  - A missing link is opened at once with C(addnode onetry), then kept with C(addnode add) (in
    that order, so bitcoind's added-node thread does not open a second connection); a link that is
    listed but down is reopened; a link to remove gets C(addnode remove) and C(disconnectnode);
    duplicate connections to a managed peer are closed.
  - Connections the node did not initiate through C(addnode) (inbound peers, automatic outbound
    peers on public networks) are never touched.
  - With O(wait_timeout), waits until every wanted link is connected, verified with
    C(getaddednodeinfo), and fails naming the links that did not come up.
author: peerlab developers (@peerlab)
extends_documentation_fragment:
  - peerlab.bitcoin.rpc
attributes:
  check_mode:
    support: full
    description: Computes the plan from the node's current links and changes nothing.
  diff_mode:
    support: full
    description: Shows the managed links before and after, one C(address (state)) per line.
  idempotent:
    support: full
    description: A second run with the same peers reports no change once the links are up.
options:
  peers:
    description:
      - Peer addresses as C(host:port); container names on the node's Docker network resolve.
    type: list
    elements: str
    required: true
  state:
    description: Whether the links in O(peers) should exist.
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description:
      - With O(state=present), also remove manual links that are not in O(peers).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for every link in O(peers) to be connected; C(0) does not wait.
    type: float
    default: 60
"""

EXAMPLES = r"""
- name: Link lab-n1 to lab-n2 and lab-n3, and nothing else
  peerlab.bitcoin.peer:
    rpc_host: 172.18.0.2
    rpc_port: 18443
    rpc_password: "{{ node_rpc_password }}"
    peers: [lab-n2:18444, lab-n3:18444]
    exclusive: true

- name: Remove one link
  peerlab.bitcoin.peer:
    rpc_host: 172.18.0.2
    rpc_port: 18443
    rpc_password: "{{ node_rpc_password }}"
    peers: [lab-n3:18444]
    state: absent
"""

RETURN = r"""
added:
  description: Links that were (or in check mode would be) added.
  returned: always
  type: list
  elements: str
  sample: [lab-n2:18444]
reconnected:
  description: Listed links that were down and were reopened.
  returned: always
  type: list
  elements: str
removed:
  description: Links that were removed and disconnected.
  returned: always
  type: list
  elements: str
peers:
  description: Every manual link of the node after the run and whether it is connected.
  returned: always
  type: dict
  sample: {"lab-n2:18444": true}
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ..module_utils._peering import PeerPlan, added, apply, diff, drop_duplicates, plan, wait_connected
from ..module_utils._rpc import RpcError, from_params, node_module, require_address


def report(module: AnsibleModule, current: dict[str, bool], todo: PeerPlan, finished: bool = True) -> dict[str, Any]:
    """The result fields of a plan; exits the module when nothing more will happen."""
    result: dict[str, Any] = dict(changed=todo.changed, added=todo.add, reconnected=todo.reconnect, removed=todo.remove)
    if module._diff:
        result["diff"] = diff(current, todo)
    if finished:
        module.exit_json(peers=current, **result)
    return result


def main() -> None:
    module = node_module(
        peers=dict(type="list", elements="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        exclusive=dict(type="bool", default=False),
        wait_timeout=dict(type="float", default=60.0),
    )
    params = module.params
    if not params["rpc_host"] and module.check_mode:
        # A node that does not exist yet: every wanted link would be made.
        report(module, {}, plan({}, params["peers"], params["state"], params["exclusive"]))
    require_address(module)
    rpc = from_params(params)
    try:
        before = added(rpc)
        todo = plan(before, params["peers"], params["state"], params["exclusive"])
        result = report(module, before, todo, finished=module.check_mode)
        apply(rpc, todo)
        wanted = params["peers"] if params["state"] == "present" else []
        after = wait_connected(rpc, wanted, params["wait_timeout"]) if wanted and params["wait_timeout"] > 0 else added(rpc)
        if wanted and drop_duplicates(rpc, wanted):
            result["changed"] = True
    except RpcError as error:
        module.fail_json(msg=str(error), rpc_code=error.code)
    down = [peer for peer in wanted if params["wait_timeout"] > 0 and not after.get(peer)]
    if down:
        module.fail_json(msg=f"links not connected after {params['wait_timeout']:g}s: {', '.join(down)}",
                         peers=after, **result)
    module.exit_json(peers=after, **result)


if __name__ == "__main__":
    main()
