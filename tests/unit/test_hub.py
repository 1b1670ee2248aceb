"""A scenario across Docker hosts: the conductor's hub and an agent, on loopback, signed with the run's token."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from typing import Any

import pytest

from ansible_collections.peerlab.bitcoin.plugins.action.scenario import run_token
from ansible_collections.peerlab.bitcoin.plugins.module_utils import _conduct, _hub, _scenario
from ansible_collections.peerlab.bitcoin.plugins.module_utils._hub import Agent, Hub, HubError, genuine, sign, signed

TOKEN = "t" * 40


@pytest.fixture()
def hub() -> Any:
    hub = Hub("127.0.0.1", 0, TOKEN, ["w1"])
    yield hub
    hub.server.server_close()


def serve(agent: Agent, do: Any) -> dict[str, Any]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["done"] = agent.serve(do)
        except HubError as error:
            outcome["error"] = str(error)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def test_an_agent_greets_does_what_it_is_asked_and_ends_with_the_run(hub: Hub) -> None:
    port = hub.server.server_address[1]
    agent = Agent(["127.0.0.2", "127.0.0.1"], port, TOKEN, "w1")  # the first manager address does not answer
    assert agent.hello({"nodes": {"c": {"rpc_host": "172.18.0.3"}}, "missing": []}, timeout=10) == "127.0.0.1"
    assert hub.wait_hellos(5)["w1"]["nodes"] == {"c": {"rpc_host": "172.18.0.3"}}

    def do(job: dict[str, Any]) -> Any:
        if job["do"] == "fail":
            raise _conduct.RpcUnavailable("getbestblockhash on c: still starting", -28)
        return {"asked": job["do"], "n": job.get("n")}
    outcome = serve(agent, do)
    answers = [hub.ask("w1", {"do": "echo", "n": n}, 10) for n in range(5)]
    assert answers == [{"asked": "echo", "n": n} for n in range(5)]
    with pytest.raises(HubError) as failed:
        hub.ask("w1", {"do": "fail"}, 10)
    assert failed.value.kind == "RpcUnavailable" and str(failed.value) == "getbestblockhash on c: still starting"
    assert failed.value.code == -28
    hub.close(timeout=5)
    outcome["thread"].join(5)
    assert outcome == {"thread": outcome["thread"], "done": 6}


def test_a_failure_of_the_agent_comes_back_as_the_same_error_through_its_hands(hub: Hub) -> None:
    agent = Agent(["127.0.0.1"], hub.server.server_address[1], TOKEN, "w1")
    agent.hello({"nodes": {}}, timeout=5)
    hands = _conduct.RemoteHands(hub, "w1")

    def do(job: dict[str, Any]) -> Any:
        if job["do"] == "rpc" and job["method"] == "loadwallet":
            raise _conduct.RpcError("loadwallet on c: Path does not exist", -18)
        if job["do"] == "rpc":
            raise _conduct.RpcAuthError("credentials refused")
        time.sleep(2)  # a hold that takes longer than the conductor waits
    serve(agent, do)
    with pytest.raises(_conduct.RpcAuthError, match="w1: credentials refused"):
        hands.rpc("c", False, 2).call("getblockchaininfo")
    with pytest.raises(_conduct.RpcError) as missing:
        hands.rpc("c", False, 2).call("loadwallet", "peerlab")
    assert missing.value.code == -18 and not isinstance(missing.value, _conduct.RpcUnavailable), "ensure_wallet creates the wallet on -18"
    with pytest.raises(_conduct.DockerError, match=r"w1: the agent on w1 did not answer hold within 0\.5 s"):
        hands.ask({"do": "hold", "plans": {}}, 0.5)
    hub.close(timeout=5)


def test_a_message_without_the_token_is_refused_and_the_hub_goes_on(hub: Hub) -> None:
    port = hub.server.server_address[1]
    with pytest.raises(HubError, match=r"could not be reached within 1 s .*HTTP 403"):
        Agent(["127.0.0.1"], port, "wrong" * 8, "w1").hello({"nodes": {}}, timeout=1)
    body = json.dumps({"host": "w1", "nodes": {}}).encode()
    for headers in ({}, {**signed(TOKEN, "/hello", body), "X-Peerlab-Time": "1"}, signed(TOKEN, "/work", body)):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("POST", "/hello", body, headers)
        assert connection.getresponse().status == 403
        connection.close()
    for length in ("-5", "many"):  # a length that is no length: refused, the hub goes on
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.putrequest("POST", "/hello")
        connection.putheader("Content-Length", length)
        connection.endheaders()
        assert connection.getresponse().status == 400
        connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)  # signed but not JSON: refused, not a crash
    connection.request("POST", "/hello", b"{", signed(TOKEN, "/hello", b"{"))
    assert connection.getresponse().status == 400
    assert not hub.hellos
    assert Agent(["127.0.0.1"], port, TOKEN, "w1").hello({"nodes": {}}, timeout=5) == "127.0.0.1"


def test_an_answer_is_bound_to_its_request() -> None:
    headers = signed(TOKEN, "answer:/work", b"{}", "n1")
    assert genuine(TOKEN, "answer:/work", headers, b"{}", "n1")
    assert not genuine(TOKEN, "answer:/work", headers, b"{}", "n2")  # a replayed answer to another request
    assert not genuine(TOKEN, "answer:/work", headers, b'{"jobs": []}', "n1")
    assert not genuine("other", "answer:/work", headers, b"{}", "n1")
    stale = dict(headers, **{"X-Peerlab-Time": f"{time.time() - 2 * _hub.SLACK:.3f}"})
    stale["X-Peerlab-Signature"] = sign(TOKEN, "answer:/work", stale["X-Peerlab-Time"], "n1", b"{}")
    assert not genuine(TOKEN, "answer:/work", stale, b"{}", "n1")


def test_an_agent_not_heard_from_is_named() -> None:
    hub = Hub("127.0.0.1", 0, TOKEN, ["w1", "w2"])
    Agent(["127.0.0.1"], hub.server.server_address[1], TOKEN, "w1").hello({"nodes": {}}, timeout=5)
    with pytest.raises(HubError, match=r"no word within 0.5 s from the agent\(s\) on w2"):
        hub.wait_hellos(0.5)
    hub.close(timeout=0.5)


def test_every_kind_of_step_has_a_handler_and_its_keys() -> None:
    assert set(_conduct.STEPS) == set(_scenario.STEP_KEYS)


def test_every_host_of_one_run_derives_the_same_token_and_another_run_another() -> None:
    secrets = ["pw-b", "pw-a"]
    mine = run_token(secrets, os.getpid())
    assert mine == run_token(list(reversed(secrets)), os.getpid()) and len(mine) == 64
    assert run_token(secrets, 1) != mine, "another ansible-playbook process"
    assert run_token(["other"], os.getpid()) != mine, "without the passwords, another token"
