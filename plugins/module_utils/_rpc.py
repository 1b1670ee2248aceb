# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A careful wrapper around python-bitcoinrpc's AuthServiceProxy.

python-bitcoinrpc 1.0 keeps one HTTP connection per proxy, is not thread-safe, does not reconnect
after bitcoind closes an idle keep-alive and returns Decimal. This wrapper gives each call a
reconnect-once policy, turns transport and auth failures into RpcError subclasses with messages a
user can act on, and returns plain JSON types.
"""

from __future__ import annotations

import http.client
import time
from decimal import Decimal
from typing import Any
from urllib.parse import quote

try:
    from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException  # type: ignore[import-untyped]

    HAS_BITCOINRPC = True
except ImportError:  # reported by the module through missing_required_lib
    HAS_BITCOINRPC = False

RPC_IN_WARMUP = -28
RPC_CLIENT_NODE_ALREADY_ADDED = -23
RPC_CLIENT_NODE_NOT_ADDED = -24
RPC_CLIENT_NODE_NOT_CONNECTED = -29
RPC_WALLET_NOT_FOUND = -18
RPC_WALLET_ALREADY_LOADED = -35

_STALE_CONNECTION = (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected,
                     http.client.CannotSendRequest, http.client.BadStatusLine, http.client.ResponseNotReady)


class RpcError(Exception):
    """An RPC failed; `code` is bitcoind's error code when it answered."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RpcUnavailable(RpcError):
    """Nothing answered (refused, unreachable, timed out) or bitcoind is still starting."""


class RpcAuthError(RpcError):
    """bitcoind refused the credentials."""


def plain(value: Any) -> Any:
    """Decimal -> float, recursively, so results serialise as JSON."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


class Rpc:
    """One bitcoind endpoint. Not shared between threads: make one per thread."""

    def __init__(self, host: str, port: int, user: str, password: str, timeout: float = 30.0,
                 wallet: str | None = None) -> None:
        self.where = f"{host}:{port}"
        path = f"/wallet/{quote(wallet, safe='')}" if wallet else ""
        self._url = f"http://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}{path}"
        self._timeout = timeout
        self._proxy: Any = None

    def _connect(self) -> Any:
        if self._proxy is None:
            self._proxy = AuthServiceProxy(self._url, timeout=self._timeout)
        return self._proxy

    def call(self, method: str, *params: Any) -> Any:
        for attempt in (1, 2):
            proxy = self._connect()
            try:
                return plain(getattr(proxy, method)(*params))
            except JSONRPCException as error:
                raise self._translate(method, error) from None
            except _STALE_CONNECTION as error:
                # bitcoind closed an idle keep-alive: reconnect once, then give up clearly.
                self._proxy = None
                if attempt == 2:
                    raise RpcUnavailable(f"{method} on {self.where}: connection dropped ({error.__class__.__name__})") from None
            except TimeoutError:
                self._proxy = None
                raise RpcUnavailable(f"{method} on {self.where}: no answer within {self._timeout:g}s "
                                     "(node hung or overloaded)") from None
            except OSError as error:
                self._proxy = None
                raise RpcUnavailable(f"{method} on {self.where}: cannot connect ({error.strerror or error})") from None
        raise AssertionError("unreachable")

    def _translate(self, method: str, error: Any) -> RpcError:
        detail = error.error if isinstance(getattr(error, "error", None), dict) else {}
        code = detail.get("code")
        message = str(detail.get("message", error))
        if "401" in message or "Unauthorized" in message:
            return RpcAuthError(f"{method} on {self.where}: credentials refused (check the secrets file)", code)
        if code == RPC_IN_WARMUP:
            return RpcUnavailable(f"{method} on {self.where}: still starting ({message})", code)
        return RpcError(f"{method} on {self.where}: {message}", code)

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """Poll getblockchaininfo until bitcoind answers; re-raise the last failure at the deadline."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            try:
                return self.call("getblockchaininfo")  # type: ignore[no-any-return]
            except RpcAuthError:
                raise
            except RpcUnavailable:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)


def ensure_wallet(rpc: Rpc, name: str) -> bool:
    """Load or create the node's wallet `name`; True when it had to be created."""
    if name in rpc.call("listwallets"):
        return False
    try:
        rpc.call("loadwallet", name)
        return False
    except RpcError as error:
        if error.code == RPC_WALLET_ALREADY_LOADED:
            return False
        if error.code != RPC_WALLET_NOT_FOUND:
            raise
    rpc.call("createwallet", name)
    return True


RPC_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    # Shared by every module that talks to a node; rpc_host may be empty in check mode for a node
    # that does not exist yet.
    "rpc_host": {"type": "str", "required": True},
    "rpc_port": {"type": "int", "required": True},
    "rpc_user": {"type": "str", "default": "peerlab"},
    "rpc_password": {"type": "str", "required": True, "no_log": True},
    "rpc_timeout": {"type": "float", "default": 30.0},
}


def from_params(params: dict[str, Any], wallet: str | None = None) -> Rpc:
    return Rpc(params["rpc_host"], params["rpc_port"], params["rpc_user"], params["rpc_password"],
               params["rpc_timeout"], wallet=wallet)


def node_module(**options: Any) -> Any:
    """An AnsibleModule for one node's RPC (the shared options plus `options`), check mode on,
    failing cleanly when python-bitcoinrpc is missing."""
    from ansible.module_utils.basic import AnsibleModule, missing_required_lib

    module = AnsibleModule(argument_spec=dict(RPC_ARGUMENT_SPEC, **options), supports_check_mode=True)
    if not HAS_BITCOINRPC:
        module.fail_json(msg=missing_required_lib("python-bitcoinrpc"))
    return module


def require_address(module: Any, **check_mode_result: Any) -> None:
    """A node without an address exists only in check mode (not created yet): report
    `check_mode_result` there; anywhere else it is an error that says where to look."""
    if module.params["rpc_host"]:
        return
    if module.check_mode:
        module.exit_json(msg="node not created yet (check mode)", **check_mode_result)
    module.fail_json(msg="rpc_host is empty: the node has no address (is its container running?)")
