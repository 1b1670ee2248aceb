# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small, careful JSON-RPC client for bitcoind, standard library only.

A Docker host needs nothing but Python to run peerlab's node modules. Each Rpc keeps one HTTP
keep-alive connection (not thread-safe: one per thread), reconnects once when bitcoind has closed an
idle keep-alive (rpcservertimeout), turns transport and auth failures into RpcError subclasses with
messages a user can act on, and returns plain JSON types.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import quote

RPC_IN_WARMUP = -28
RPC_CLIENT_NODE_ALREADY_ADDED = -23
RPC_CLIENT_NODE_NOT_ADDED = -24
RPC_CLIENT_NODE_NOT_CONNECTED = -29
RPC_WALLET_NOT_FOUND = -18
RPC_WALLET_ALREADY_LOADED = -35

_STALE_CONNECTION = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, http.client.RemoteDisconnected,
                     http.client.CannotSendRequest, http.client.BadStatusLine, http.client.ResponseNotReady)


def basic_auth(user: str, password: str) -> str:
    """An HTTP Authorization header's value for basic auth (bitcoind's RPC, Alertmanager's API)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


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
        self._host = host
        self._port = port
        self._path = f"/wallet/{quote(wallet, safe='')}" if wallet else "/"
        self._headers = {"Authorization": basic_auth(user, password), "Content-Type": "application/json"}
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None
        self._id = 0

    def _post(self, method: str, params: tuple[Any, ...]) -> tuple[int, bytes]:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        self._id += 1
        body = json.dumps({"jsonrpc": "1.0", "id": self._id, "method": method, "params": plain(list(params))})
        self._connection.request("POST", self._path, body, self._headers)
        response = self._connection.getresponse()
        return response.status, response.read()

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def call(self, method: str, *params: Any) -> Any:
        for attempt in (1, 2):
            try:
                status, body = self._post(method, params)
            except _STALE_CONNECTION as error:
                # bitcoind closed an idle keep-alive: reconnect once, then give up clearly.
                self._drop()
                if attempt == 2:
                    raise RpcUnavailable(f"{method} on {self.where}: connection dropped ({error.__class__.__name__})") from None
                continue
            except TimeoutError:
                self._drop()
                raise RpcUnavailable(f"{method} on {self.where}: no answer within {self._timeout:g}s "
                                     "(node hung or overloaded)") from None
            except OSError as error:
                self._drop()
                raise RpcUnavailable(f"{method} on {self.where}: cannot connect ({error.strerror or error})") from None
            except http.client.IncompleteRead as error:
                # The request reached bitcoind: not retried (it may have acted), reported as unavailable.
                self._drop()
                raise RpcUnavailable(f"{method} on {self.where}: answer cut short after {len(error.partial)} bytes "
                                     "(node stopping or restarting?)") from None
            except http.client.HTTPException as error:
                self._drop()
                raise RpcError(f"{method} on {self.where}: malformed HTTP answer ({error.__class__.__name__}: {error})") from None
            return self._answer(method, status, body)
        raise AssertionError("unreachable")

    def _answer(self, method: str, status: int, body: bytes) -> Any:
        if status == http.client.UNAUTHORIZED:
            raise RpcAuthError(f"{method} on {self.where}: credentials refused (check the secrets file)")
        if status == http.client.FORBIDDEN:
            raise RpcAuthError(f"{method} on {self.where}: HTTP 403, this caller's address is outside the node's "
                               "rpcallowip (call from the Docker host or the node's Docker network)")
        try:
            reply = json.loads(body)
        except ValueError:
            raise RpcError(f"{method} on {self.where}: HTTP {status}: {body[:200].decode(errors='replace')}") from None
        if not isinstance(reply, dict):
            raise RpcError(f"{method} on {self.where}: HTTP {status}: not a JSON-RPC answer: {body[:200].decode(errors='replace')}")
        if reply.get("error"):
            raise self._translate(method, reply["error"])
        return reply.get("result")

    def _translate(self, method: str, error: dict[str, Any]) -> RpcError:
        code = error.get("code")
        message = str(error.get("message", error))
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
    """An AnsibleModule for one node's RPC (the shared options plus `options`), check mode on."""
    from ansible.module_utils.basic import AnsibleModule

    return AnsibleModule(argument_spec=dict(RPC_ARGUMENT_SPEC, **options), supports_check_mode=True)


def require_address(module: Any, **check_mode_result: Any) -> None:
    """A node without an address exists only in check mode (not created yet): report
    `check_mode_result` there; anywhere else it is an error that says where to look."""
    if module.params["rpc_host"]:
        return
    if module.check_mode:
        module.exit_json(msg="node not created yet (check mode)", **check_mode_result)
    module.fail_json(msg="rpc_host is empty: the node has no address (is its container running?)")
