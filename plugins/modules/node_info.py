#!/usr/bin/python
# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_info
short_description: Read a Bitcoin node's chain, peers and network state through RPC
version_added: 0.1.0
description:
  - Returns the node's chain, tip, peers (in and out, by connection type) and manual links.
  - Can wait for RPC to come up (O(wait_timeout)) and for the node to reach a given tip
    (O(wait_for_tip)), which is how a deploy verifies that every node agrees on the chain.
author: peerlab developers (@peerlab)
extends_documentation_fragment:
  - peerlab.bitcoin.rpc
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: full
    description: Reads only; never reports a change.
options:
  wait_timeout:
    description: Seconds to wait for RPC to answer (bitcoind starting, loading blocks).
    type: float
    default: 0
  wait_for_tip:
    description: Block hash the node must have as its best block; waits up to O(tip_timeout).
    type: str
  tip_timeout:
    description: Seconds to wait for O(wait_for_tip).
    type: float
    default: 60
"""

EXAMPLES = r"""
- name: Wait for a new node's RPC and read its state
  peerlab.bitcoin.node_info:
    rpc_host: 172.18.0.2
    rpc_port: 18443
    rpc_password: "{{ node_rpc_password }}"
    wait_timeout: 60
  register: info

- name: Fail unless the node reached the miner's tip
  peerlab.bitcoin.node_info:
    rpc_host: 172.18.0.3
    rpc_port: 18443
    rpc_password: "{{ node_rpc_password }}"
    wait_for_tip: "{{ mined.tip }}"
"""

RETURN = r"""
chain:
  description: bitcoind's chain name (main, test, testnet4, signet, regtest).
  returned: success
  type: str
blocks:
  description: Height of the best block.
  returned: success
  type: int
bestblockhash:
  description: Hash of the best block.
  returned: success
  type: str
connections_in:
  description: Number of inbound peers.
  returned: success
  type: int
connections_out:
  description: Number of outbound peers.
  returned: success
  type: int
peers:
  description: One entry per peer from getpeerinfo, trimmed to what identifies the link.
  returned: success
  type: list
  elements: dict
  sample: [{"addr": "lab-n2:18444", "inbound": false, "connection_type": "manual", "network": "ipv4",
            "pingtime": 0.0004, "synced_blocks": 101}]
addednodes:
  description: Manual links (addnode) and whether each is connected.
  returned: success
  type: dict
subversion:
  description: The node's user agent, for example C(/Satoshi:29.1.0/).
  returned: success
  type: str
mempool:
  description: getmempoolinfo size, bytes and usage.
  returned: success
  type: dict
"""

from typing import Any

from ..module_utils._peering import added
from ..module_utils._rpc import Rpc, RpcError, from_params, node_module, require_address
from ..module_utils._status import chain_and_peers, wait_for_tip


def read(rpc: Rpc, chain: dict[str, Any]) -> dict[str, Any]:
    mempool = rpc.call("getmempoolinfo")
    return {
        **chain_and_peers(chain, rpc.call("getpeerinfo")),
        "headers": chain["headers"],
        "initialblockdownload": chain["initialblockdownload"],
        "addednodes": added(rpc),
        "subversion": rpc.call("getnetworkinfo")["subversion"],
        "mempool": {key: mempool[key] for key in ("size", "bytes", "usage")},
    }


def main() -> None:
    module = node_module(
        wait_timeout=dict(type="float", default=0.0),
        wait_for_tip=dict(type="str"),
        tip_timeout=dict(type="float", default=60.0),
    )
    params = module.params
    require_address(module, changed=False, skipped=True)
    rpc = from_params(params)
    try:
        chain = rpc.wait_ready(params["wait_timeout"])
        if params["wait_for_tip"]:
            chain = wait_for_tip(rpc, params["wait_for_tip"], params["tip_timeout"])
        info = read(rpc, chain)
    except RpcError as error:
        module.fail_json(msg=str(error), rpc_code=error.code)
    if params["wait_for_tip"] and info["bestblockhash"] != params["wait_for_tip"]:
        module.fail_json(msg=f"tip not reached after {params['tip_timeout']:g}s: node is at height "
                             f"{info['blocks']} ({info['bestblockhash']}), expected {params['wait_for_tip']}",
                         **info)
    module.exit_json(changed=False, **info)


if __name__ == "__main__":
    main()
