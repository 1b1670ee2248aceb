#!/usr/bin/python
# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generate regtest traffic: blocks on the miners, payments between every node's wallets."""

from __future__ import annotations

DOCUMENTATION = r"""
module: traffic
short_description: Mine blocks and send payments between regtest nodes for a while
description:
  - For O(duration) seconds (or until O(blocks) blocks), mines one block every O(block_interval)
    seconds on a miner drawn by its hashrate share (O(shares), seeded by O(seed); equal shares
    otherwise) and sends a payment every O(tx_interval) seconds from a node whose wallet can pay to
    a new address of another node (O(pairs)), at a fee rate drawn from O(fee_rates), so that
    mempools, relay, blocks and the metrics move.
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
      name: {description: Node container., type: str, required: true}
      node: {description: Its name in its network (not used)., type: str, default: ""}
      network: {description: Its network (its Docker network is peerlab-<network>)., type: str, default: ""}
      swarm: {description: Whether it runs as a Swarm service., type: bool, default: false}
      rpc_host: {description: Address of its RPC; empty - read from the Docker engine., type: str, default: ""}
      rpc_port: {description: RPC port., type: int, required: true}
      rpc_user: {description: RPC user., type: str, default: peerlab}
      rpc_password: {description: RPC password., type: str, required: true}
      peers: {description: Ignored., type: list, elements: str, default: []}
  miners:
    description: Names of the nodes that mine; empty means the first node.
    type: list
    elements: str
    default: []
  shares:
    description: Hashrate shares of the miners (node -> positive number); the next block's miner is drawn by them.
    type: dict
    default: {}
  seed:
    description: Seed of the miner and payment draws (the same seed repeats the same sequence).
    type: int
  blocks:
    description: Stop after this many blocks (0 - no limit but O(duration)).
    type: int
    default: 0
  pairs:
    description: "[payer, payee] pairs to draw the payments from; empty - every node pays every other."
    type: list
    elements: list
    default: []
  fee_rates:
    description: "[low, high] fee rate in sat/vB each payment draws from; empty - the wallet's estimate."
    type: list
    elements: float
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
  docker_socket:
    description: The Docker engine's socket on this host (where the nodes' addresses are read).
    type: str
    default: /var/run/docker.sock
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
mined:
  description: Blocks mined per miner.
  returned: always
  type: dict
shares:
  description: Per miner, the declared share and the observed one (percent of the blocks mined).
  returned: always
  type: dict
summary:
  description: What was made, in one sentence.
  returned: always
  type: str
transactions:
  description: Payments sent.
  returned: always
  type: int
failed_payments:
  description: Payments a node could not make (no funds yet, mempool limits); not an error.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ..module_utils._access import resolve
from ..module_utils._docker import Docker
from ..module_utils._rpc import Rpc, RpcError
from ..module_utils._schedule import Miners, Payments, observed
from ..module_utils._traffic import Traffic


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            nodes=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                node=dict(type="str", default=""),
                network=dict(type="str", default=""),
                swarm=dict(type="bool", default=False),
                rpc_host=dict(type="str", default=""),
                rpc_port=dict(type="int", required=True),
                rpc_user=dict(type="str", default="peerlab"),
                rpc_password=dict(type="str", required=True, no_log=True),
                peers=dict(type="list", elements="str", default=[]),
            )),
            miners=dict(type="list", elements="str", default=[]),
            shares=dict(type="dict", default={}),
            seed=dict(type="int"),
            blocks=dict(type="int", default=0),
            pairs=dict(type="list", elements="list", default=[]),
            fee_rates=dict(type="list", elements="float", default=[]),
            duration=dict(type="float", default=120.0),
            block_interval=dict(type="float", default=10.0),
            tx_interval=dict(type="float", default=1.0),
            wallet=dict(type="str", default="peerlab"),
            rpc_timeout=dict(type="float", default=30.0),
            docker_socket=dict(type="str", default="/var/run/docker.sock"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    names = [spec["name"] for spec in params["nodes"]]
    unknown = sorted((set(params["miners"]) | set(params["shares"]) | {n for pair in params["pairs"] for n in pair}) - set(names))
    if not names or unknown:
        module.fail_json(msg=f"traffic needs nodes, and miners and payers among them (unknown: {', '.join(unknown) or '-'})")
    if module.check_mode:
        module.exit_json(changed=True, blocks=0, transactions=0, failed_payments=0, summary="check mode: nothing made")
    missing = resolve(Docker(params["docker_socket"]), params["nodes"])
    if missing:
        module.fail_json(msg="traffic needs every node running: " + "; ".join(missing))

    specs = {spec["name"]: spec for spec in params["nodes"]}

    def rpc(name: str, wallet: bool) -> Rpc:
        spec = specs[name]
        return Rpc(spec["rpc_host"], spec["rpc_port"], spec["rpc_user"], spec["rpc_password"], params["rpc_timeout"],
                   wallet=params["wallet"] if wallet else None)

    try:
        draw = Miners({name: float(share) for name, share in params["shares"].items()}, params["miners"] or names[:1], params["seed"])
    except ValueError as error:
        module.fail_json(msg=str(error))
    traffic = Traffic(names, rpc, params["wallet"], draw, Payments(names, params["pairs"], params["fee_rates"], params["seed"]))
    try:
        traffic.ready()
        traffic.run(params["duration"], params["block_interval"], params["tx_interval"], params["blocks"])
    except RpcError as error:
        module.fail_json(msg=str(error), rpc_code=error.code, blocks=len(traffic.mined), transactions=traffic.transactions)
    shares = {name: {"declared": share, "observed": observed(traffic.mined).get(name, 0.0)} for name, share in draw.declared.items()}
    summary = (f"{len(traffic.mined)} block(s), {traffic.transactions} payment(s) ({traffic.failed} not made); blocks by miner: "
               + ", ".join(f"{name} {share['observed']:g}% (declared {share['declared']:g}%)" for name, share in shares.items()))
    module.exit_json(summary=summary,
                     changed=bool(traffic.mined) or traffic.transactions > 0, blocks=len(traffic.mined), transactions=traffic.transactions,
                     failed_payments=traffic.failed, mined={name: traffic.mined.count(name) for name in draw.names}, shares=shares)


if __name__ == "__main__":
    main()
