#!/usr/bin/python
# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mine
short_description: Mine regtest blocks to a node's own wallet
version_added: 0.1.0
description:
  - Creates (or loads) a descriptor wallet on the node, then mines with C(generatetoaddress) to a
    new address of that wallet.
  - Either mines O(blocks) blocks every run, or with O(min_height) only as many as are missing,
    which is how a deploy makes coinbase outputs spendable exactly once.
  - Refuses any chain but regtest.
author: peerlab developers (@peerlab)
extends_documentation_fragment:
  - peerlab.bitcoin.rpc
attributes:
  check_mode:
    support: full
    description: Reports how many blocks it would mine; creates no wallet.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: partial
    description: Idempotent with O(min_height); with O(blocks) alone every run mines.
options:
  blocks:
    description: Number of blocks to mine; ignored when O(min_height) is set.
    type: int
    default: 1
  min_height:
    description: Mine only until the chain has this height.
    type: int
  wallet:
    description: Name of the node's wallet that receives the coinbase.
    type: str
    default: peerlab
"""

EXAMPLES = r"""
- name: Make coinbase spendable on a fresh regtest network
  peerlab.bitcoin.mine:
    rpc_host: 172.18.0.2
    rpc_port: 18443
    rpc_password: "{{ node_rpc_password }}"
    min_height: 101

- name: Mine one more block
  peerlab.bitcoin.mine:
    rpc_host: 172.18.0.2
    rpc_port: 18443
    rpc_password: "{{ node_rpc_password }}"
    blocks: 1
"""

RETURN = r"""
mined:
  description: Number of blocks mined (in check mode, that would be mined).
  returned: always
  type: int
hashes:
  description: Hashes of the mined blocks (blocks of a call that got no answer in time are counted in RV(mined), not listed).
  returned: success
  type: list
  elements: str
height:
  description: Chain height after mining.
  returned: success
  type: int
tip:
  description: Best block hash after mining.
  returned: success
  type: str
address:
  description: Address the coinbase went to.
  returned: when blocks were mined
  type: str
"""

from ..module_utils._chain import mine_blocks
from ..module_utils._rpc import RpcError, ensure_wallet, from_params, node_module, require_address


def main() -> None:
    module = node_module(
        blocks=dict(type="int", default=1),
        min_height=dict(type="int"),
        wallet=dict(type="str", default="peerlab"),
    )
    params = module.params
    wanted = params["min_height"] if params["min_height"] is not None else params["blocks"]
    require_address(module, changed=wanted > 0, mined=wanted)
    rpc = from_params(params)
    try:
        chain = rpc.call("getblockchaininfo")
        if chain["chain"] != "regtest":
            module.fail_json(msg=f"refusing to mine on {chain['chain']}: mining is for regtest networks")
        count = params["blocks"] if params["min_height"] is None else max(0, params["min_height"] - chain["blocks"])
        if module.check_mode or count == 0:
            module.exit_json(changed=count > 0, mined=count, hashes=[], height=chain["blocks"],
                             tip=chain["bestblockhash"])
        ensure_wallet(rpc, params["wallet"])
        wallet = from_params(params, wallet=params["wallet"])
        address = wallet.call("getnewaddress", "coinbase", "bech32")
        hashes, unseen = mine_blocks(rpc, count, chain["blocks"], address, params["rpc_timeout"] * 4)
        after = rpc.call("getblockchaininfo")
    except RpcError as error:
        module.fail_json(msg=str(error), rpc_code=error.code)
    module.exit_json(changed=True, mined=len(hashes) + unseen, hashes=hashes, height=after["blocks"],
                     tip=after["bestblockhash"], address=address)


if __name__ == "__main__":
    main()
