"""The RPC wrapper against a real bitcoind: closed keep-alives, bad credentials, silence, refusal."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from bitcoinrpc.authproxy import AuthServiceProxy

from ansible_collections.peerlab.bitcoin.plugins.module_utils._rpc import Rpc, RpcAuthError, RpcUnavailable

from .conftest import BIN, ROOT, Lab, containers, remove_network

NETWORK = "rpctest"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import docker

    client = docker.from_env()
    remove_network(client, NETWORK)
    # bitcoind closes an idle HTTP keep-alive after rpcservertimeout seconds: make that 1 s.
    lab = Lab(tmp_path_factory.mktemp("rpc"), {NETWORK: {
        "chain": "regtest", "nodes": [{"name": "a", "conf": {"rpcservertimeout": 1}}]}})
    run = lab.playbook("deploy.yml")
    assert run.rc == 0, run.output[-3000:]
    (container,) = containers(client, NETWORK)
    address = container.attrs["NetworkSettings"]["Networks"][f"peerlab-{NETWORK}"]["IPAddress"]
    yield {"host": address, "password": lab.secrets[f"{NETWORK}-a"]["peerlab"]["password"], "container": container}
    remove_network(client, NETWORK)
    client.close()


def test_plain_python_bitcoinrpc_breaks_on_a_closed_keep_alive(node: dict[str, Any]) -> None:
    """The failure the wrapper exists for, shown on the real thing."""
    proxy = AuthServiceProxy(f"http://peerlab:{node['password']}@{node['host']}:18443", timeout=10)
    proxy.getblockcount()
    time.sleep(2.5)
    with pytest.raises((BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected,
                        http.client.CannotSendRequest, http.client.BadStatusLine)):
        proxy.getblockcount()


def test_wrapper_reconnects_after_a_closed_keep_alive(node: dict[str, Any]) -> None:
    rpc = Rpc(node["host"], 18443, "peerlab", node["password"], timeout=10)
    before = rpc.call("getblockcount")
    time.sleep(2.5)
    assert rpc.call("getblockcount") == before
    # the node's own answer, as bitcoin-cli prints it: a JSON number, equal as a float (a Decimal
    # from the wrapper would not compare equal to 1e-05)
    printed = json.loads(node["container"].exec_run(["bitcoin-cli", "getmempoolinfo"]).output)["mempoolminfee"]
    assert rpc.call("getmempoolinfo")["mempoolminfee"] == printed > 0


def test_bad_credentials_say_so(node: dict[str, Any]) -> None:
    with pytest.raises(RpcAuthError, match="credentials refused"):
        Rpc(node["host"], 18443, "peerlab", "wrong", timeout=10).call("getblockcount")


def test_a_silent_endpoint_times_out_clearly() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    try:
        rpc = Rpc("127.0.0.1", listener.getsockname()[1], "u", "p", timeout=1.0)
        with pytest.raises(RpcUnavailable, match=r"no answer within 1s \(node hung or overloaded\)"):
            rpc.call("getblockcount")
    finally:
        for connection in accepted:
            connection.close()
        listener.close()


def test_nothing_listening_is_a_clear_refusal() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RpcUnavailable, match="cannot connect"):
        Rpc("127.0.0.1", port, "u", "p", timeout=2).call("getblockcount")


def test_module_reports_an_unreachable_node_without_a_traceback() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    arguments = json.dumps({"rpc_host": "127.0.0.1", "rpc_port": port, "rpc_password": "not-a-real-one"})
    env = {"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "PATH": f"{BIN}:/usr/bin:/bin"}
    result = subprocess.run([str(BIN / "ansible"), "localhost", "-i", "inventories/local", "-m", "peerlab.bitcoin.node_info",
                             "-a", arguments], cwd=ROOT, capture_output=True, text=True, check=False, env=env)
    assert result.returncode != 0
    assert "cannot connect" in result.stdout and "Traceback" not in result.stdout + result.stderr
    assert "not-a-real-one" not in result.stdout + result.stderr
