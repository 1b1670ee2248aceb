# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  rpc_host:
    description:
      - Address of the node's RPC interface as seen from the host that runs the module (the
        container's address on its Docker network).
      - May be empty in check mode for a node whose container does not exist yet; the module then
        reports what it would do.
    type: str
    required: true
  rpc_port:
    description: RPC port of the node's chain (regtest 18443, signet 38332, testnet4 48332, mainnet 8332).
    type: int
    required: true
  rpc_user:
    description: RPC user; peerlab gives each client its own rpcauth entry.
    type: str
    default: peerlab
  rpc_password:
    description: Password of O(rpc_user). Kept on the controller only; never logged.
    type: str
    required: true
  rpc_timeout:
    description: Seconds to wait for one RPC answer before failing with a clear error.
    type: float
    default: 30.0
requirements:
  - Python 3.9 or later on the host that runs the module (standard library only)
"""
