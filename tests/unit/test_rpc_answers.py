"""What the RPC client and the links module say when an endpoint answers oddly (a loopback server
plays the odd answers a real bitcoind gives only by accident: cut short, 403, not JSON-RPC)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ansible_collections.peerlab.bitcoin.plugins.module_utils._rpc import Rpc, RpcAuthError, RpcError, RpcUnavailable

ROOT = Path(__file__).resolve().parents[2]


def read_request(connection: socket.socket) -> None:
    """Read one whole request (headers and body): closing with unread data would reset the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        body += connection.recv(65536)


def serve(raw: bytes) -> Iterator[int]:
    """A loopback endpoint that answers every request with `raw` and closes the connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(10)

    def answer() -> None:
        while True:
            try:
                connection = listener.accept()[0]
            except OSError:
                return
            with connection:
                read_request(connection)
                connection.sendall(raw)

    threading.Thread(target=answer, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def http(status: str, body: bytes, length: int | None = None) -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {length or len(body)}\r\n\r\n").encode() + body


@pytest.fixture
def cut_short() -> Iterator[int]:
    yield from serve(http("200 OK", b'{"result": {"blocks"', length=400))


@pytest.fixture
def forbidden() -> Iterator[int]:
    yield from serve(http("403 Forbidden", b""))


@pytest.fixture
def odd() -> Iterator[int]:
    # A JSON-RPC answer whose getblockchaininfo lacks every field the modules read.
    yield from serve(http("200 OK", json.dumps({"result": {"warnings": ""}, "error": None, "id": 1}).encode()))


def test_an_answer_cut_short_is_unavailable_not_a_traceback(cut_short: int) -> None:
    with pytest.raises(RpcUnavailable, match=r"getblockcount on 127.0.0.1:\d+: answer cut short after 20 bytes"):
        Rpc("127.0.0.1", cut_short, "u", "p", timeout=5).call("getblockcount")


def test_403_says_rpcallowip(forbidden: int) -> None:
    with pytest.raises(RpcAuthError, match="HTTP 403, this caller's address is outside the node's rpcallowip"):
        Rpc("127.0.0.1", forbidden, "u", "p", timeout=5).call("getblockcount")


def test_json_that_is_not_json_rpc_is_an_rpc_error() -> None:
    for port in serve(http("200 OK", b"[1, 2]")):
        with pytest.raises(RpcError, match="not a JSON-RPC answer"):
            Rpc("127.0.0.1", port, "u", "p", timeout=5).call("getblockcount")


def run_links(port: int) -> str:
    """The engine's links step (module_utils/_linking.link) on one node: its failure, in words."""
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._linking import link

    node = {"name": "lab-n1", "rpc_host": "127.0.0.1", "rpc_port": port, "rpc_password": "not-a-real-one", "peers": []}
    _nodes, failures, _problems = link([node], {"ready_timeout": 2, "rpc_timeout": 5})
    said = " ".join(failures)
    assert "Traceback" not in said and "not-a-real-one" not in said
    return said


@pytest.mark.parametrize("answer", ["odd", "cut_short", "forbidden"])
def test_the_links_step_names_the_node_and_what_to_do(answer: str, request: pytest.FixtureRequest) -> None:
    message = run_links(request.getfixturevalue(answer))
    assert message.startswith("lab-n1: "), message
    expected = {"odd": "failed on an unexpected answer (TypeError: ",
                "cut_short": "answer cut short", "forbidden": "rpcallowip"}[answer]
    assert expected in message, message
    assert "check the node's log" in message or answer != "odd"
