#!/usr/bin/python
# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generate regtest traffic: blocks on the miners, payments between every node's wallets."""

from __future__ import annotations

DOCUMENTATION = r"""
module: traffic
short_description: Mine blocks and send payments between regtest nodes for a while
description:
  - For O(duration) seconds, mines one block every O(block_interval) seconds on a miner (taking
    turns) and sends a payment every O(tx_interval) seconds from a node whose wallet can pay to a
    new address of another node, so that mempools, relay, blocks and the metrics move.
  - Every node gets a descriptor wallet O(wallet) if it has none. Refuses any chain but regtest.
  - Miners pay their coinbase to themselves; coinbases mature after 100 blocks, so a fresh
    network pays from the first miner until others have funds.
version_added: 0.2.0
author: peerlab developers (@peerlab)
options:
  nodes:
    description: The network's nodes, as C(peerlab.bitcoin.links) takes them (C(peers) ignored).
    type: list
    elements: dict
    required: true
    suboptions:
      name: {description: Node name., type: str, required: true}
      rpc_host: {description: Address of its RPC., type: str, required: true}
      rpc_port: {description: RPC port., type: int, required: true}
      rpc_user: {description: RPC user., type: str, default: peerlab}
      rpc_password: {description: RPC password., type: str, required: true}
      peers: {description: Ignored., type: list, elements: str, default: []}
  miners:
    description: Names of the nodes that mine; empty means the first node.
    type: list
    elements: str
    default: []
  duration:
    description: Seconds of traffic.
    type: float
    default: 120
  block_interval:
    description: Seconds between two blocks; 0 mines none.
    type: float
    default: 10
  tx_interval:
    description: Seconds between two payments; 0 sends none.
    type: float
    default: 1
  wallet:
    description: Wallet name on every node.
    type: str
    default: peerlab
  rpc_timeout:
    description: Seconds to wait for one RPC answer.
    type: float
    default: 30
notes:
  - In check mode, reports the traffic it would make and changes nothing.
"""

EXAMPLES = r"""
- name: Two minutes of blocks and payments on the lab
  peerlab.bitcoin.traffic:
    nodes: "{{ ansible_play_hosts | peerlab.bitcoin.link_specs(hostvars, 'lab', 'localhost') }}"
    miners: [lab-n1]
    duration: 120
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
blocks:
  description: Blocks mined.
  returned: always
  type: int
transactions:
  description: Payments sent.
  returned: always
  type: int
failed_payments:
  description: Payments a node could not make (no funds yet, mempool limits); not an error.
  returned: always
  type: int
"""

import random
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ..module_utils._rpc import Rpc, RpcError, ensure_wallet


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            nodes=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                rpc_host=dict(type="str", required=True),
                rpc_port=dict(type="int", required=True),
                rpc_user=dict(type="str", default="peerlab"),
                rpc_password=dict(type="str", required=True, no_log=True),
                peers=dict(type="list", elements="str", default=[]),
            )),
            miners=dict(type="list", elements="str", default=[]),
            duration=dict(type="float", default=120.0),
            block_interval=dict(type="float", default=10.0),
            tx_interval=dict(type="float", default=1.0),
            wallet=dict(type="str", default="peerlab"),
            rpc_timeout=dict(type="float", default=30.0),
        ),
        supports_check_mode=True,
    )
    params = module.params
    names = [spec["name"] for spec in params["nodes"]]
    unknown = sorted(set(params["miners"]) - set(names))
    if not names or unknown:
        module.fail_json(msg=f"traffic needs nodes, and miners among them (unknown miners: {', '.join(unknown) or '-'})")
    if module.check_mode:
        module.exit_json(changed=True, blocks=0, transactions=0, failed_payments=0)

    def rpc(spec: dict[str, Any], wallet: bool = False) -> Rpc:
        return Rpc(spec["rpc_host"], spec["rpc_port"], spec["rpc_user"], spec["rpc_password"], params["rpc_timeout"],
                   wallet=params["wallet"] if wallet else None)

    specs = {spec["name"]: spec for spec in params["nodes"]}
    miners = params["miners"] or names[:1]
    blocks = transactions = failed = 0
    try:
        for spec in specs.values():
            chain = rpc(spec).call("getblockchaininfo")["chain"]
            if chain != "regtest":
                module.fail_json(msg=f"refusing to make traffic on {chain} ({spec['name']}): traffic is for regtest")
            ensure_wallet(rpc(spec), params["wallet"])
        wallets = {name: rpc(spec, wallet=True) for name, spec in specs.items()}
        addresses = {name: wallet.call("getnewaddress", "traffic", "bech32") for name, wallet in wallets.items()}
        start = time.monotonic()
        next_block = start if params["block_interval"] > 0 else float("inf")
        next_tx = start if params["tx_interval"] > 0 else float("inf")
        turn = 0
        while time.monotonic() - start < params["duration"]:
            now = time.monotonic()
            if now >= next_block:
                miner = miners[turn % len(miners)]
                turn += 1
                rpc(specs[miner]).call("generatetoaddress", 1, addresses[miner])
                blocks += 1
                next_block += params["block_interval"]
            if now >= next_tx:
                payer = random.choice(names)
                payee = random.choice([name for name in names if name != payer] or names)
                amount = round(random.uniform(0.001, 0.05), 8)
                try:
                    if wallets[payer].call("getbalance") <= amount + 0.001:
                        payer = max(names, key=lambda name: wallets[name].call("getbalance"))
                    wallets[payer].call("sendtoaddress", addresses[payee], amount)
                    transactions += 1
                except RpcError:
                    failed += 1  # no mature coins yet, or a chain of unconfirmed payments too long
                next_tx += params["tx_interval"]
            time.sleep(max(0.0, min(next_block, next_tx) - time.monotonic()))
    except RpcError as error:
        module.fail_json(msg=str(error), rpc_code=error.code, blocks=blocks, transactions=transactions)
    module.exit_json(changed=blocks + transactions > 0, blocks=blocks, transactions=transactions, failed_payments=failed)


if __name__ == "__main__":
    main()
