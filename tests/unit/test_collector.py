"""The collector's pure logic: log accounting, peer and network views, statsd, output formats."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "images" / "collector"))
import collector
import events
import metrics

SCOPE = ("node", "lab", "n1")
HASH_A = "a" * 64
HASH_B = "b" * 63 + "c"


def entry(stamp: str, text: str) -> bytes:
    """One line of Docker's json-file log."""
    return (json.dumps({"log": text + "\n", "stream": "stdout", "time": stamp}) + "\n").encode()


def test_a_nodes_log_file_is_read_from_where_the_last_read_ended_even_cut_mid_line(tmp_path: Path) -> None:
    path = tmp_path / "c1-json.log"
    data = entry("2026-11-21T10:00:00.5Z", "[net] received: inv (37 bytes) peer=0") + entry("2026-11-21T10:00:01Z", "x")
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        logfile = collector.LogFile(str(path), 0.0)
        first = logfile.read()
        with open(path, "ab") as handle:
            handle.write(data[cut:])
        assert first + logfile.read() == [("2026-11-21T10:00:00.5Z", "[net] received: inv (37 bytes) peer=0"),
                                          ("2026-11-21T10:00:01Z", "x")], cut
        assert logfile.read() == []
        logfile.close()


@pytest.mark.parametrize("text", ["2026-12-07T06:33:09.123456Z [net] received: inv (37 bytes) peer=3", "", "ends in a backslash \\",
                                  'quotes " and <tags> & unicode \u00e9', "carriage return\r", 'looks like a field ","time":"x'])
def test_a_docker_log_line_is_read_as_json_would_read_it(text: str) -> None:
    raw = entry("2026-12-07T06:33:09.987654321Z", text).rstrip(b"\n")
    parsed = json.loads(raw)
    assert collector.docker_line(raw) == (parsed["time"], parsed["log"].rstrip("\r\n"))


def test_a_log_file_skips_what_came_before_since_and_follows_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "c1-json.log"
    path.write_bytes(entry("1970-01-01T00:00:59Z", "old") + b"not json\n" + entry("1970-01-01T00:01:00.25Z", "new"))
    logfile = collector.LogFile(str(path), 60.0)
    assert logfile.read() == [("1970-01-01T00:01:00.25Z", "new")]
    with open(path, "ab") as handle:
        handle.write(entry("1970-01-01T00:01:01Z", "before the rename"))
    path.rename(tmp_path / "c1-json.log.1")  # Docker's rotation: the file is renamed, a new one begins
    path.write_bytes(entry("1970-01-01T00:01:02Z", "after"))
    assert logfile.read() == [("1970-01-01T00:01:01Z", "before the rename"), ("1970-01-01T00:01:02Z", "after")]
    logfile.close()
    with pytest.raises(OSError):
        collector.LogFile(str(tmp_path / "gone-json.log"), 0.0).read()


def test_the_log_tail_publishes_each_followed_nodes_events_and_says_once_what_it_cannot_read(tmp_path: Path) -> None:
    published: list[dict[str, Any]] = []
    tail = collector.LogTail(str(tmp_path), published.append)
    folder = tmp_path / "containers" / "c1"
    folder.mkdir(parents=True)
    (folder / "c1-json.log").write_bytes(entry("2026-11-21T10:00:00Z", "2026-11-21T10:00:00.500000Z [net] received: inv (37 bytes) peer=0"))
    nodelog = events.NodeLog("lab", "n1")
    assert tail.follow("lab/n1", "c1", nodelog, 0.0) is True and tail.follow("lab/n1", "c1", nodelog, 0.0) is False
    assert tail.read() == 1
    assert [(event["kind"], event["type"], event["time"]) for event in published] == [("msg", "inv", 1795255200.5)]  # bitcoind's own time
    assert tail.follow("lab/n2", "c2", events.NodeLog("lab", "n2"), 0.0) is True
    assert tail.read() == 0 and tail.read() == 0  # c2's log is missing: said once (stderr), the rest is read
    tail.drop("lab/n2")
    assert tail.files.keys() == {"lab/n1"}


def test_one_crash_is_one_restart() -> None:
    # Docker restarts the container (RestartCount 0 -> 1) and bitcoind's uptime drops with it:
    # before the fix this counted 2 (the count was raised to RestartCount, then the drop added one).
    restarts = collector.Restarts()
    assert restarts.observe("c1", 0, 300.0) == 0
    assert restarts.observe("c1", 1, 4.0) == 1
    assert restarts.observe("c1", 1, 14.0) == 1
    # bitcoind started again inside the same container run: its uptime alone shows it
    assert restarts.observe("c1", 1, 2.0) == 2
    # a Docker restart seen while RPC did not answer, then the new run's uptime: still one
    assert restarts.observe("c1", 2, None) == 3
    assert restarts.observe("c1", 2, 6.0) == 3
    # the container made anew by a deploy is not a crash
    assert restarts.observe("c2", 0, 1.0) == 3
    # a collector that starts late takes Docker's count as it is
    assert collector.Restarts().observe("c9", 4, 50.0) == 4


def test_forks_are_the_current_ones_not_every_branch_ever_seen() -> None:
    tips = [{"height": 120, "status": "active", "branchlen": 0},
            {"height": 119, "status": "valid-fork", "branchlen": 1},   # current: 1 block below the tip
            {"height": 40, "status": "valid-fork", "branchlen": 2},    # resolved long ago
            {"height": 10, "status": "headers-only", "branchlen": 1}]
    samples = {s.name: s.value for s in collector.chain_tip_samples(SCOPE, tips)}
    assert samples["chain.forks"] == 1 and samples["chain.forks_known"] == 3
    assert samples["chain.fork_branchlen_max"] == 1
    tips[1]["status"] = "active"
    tips[0]["status"] = "valid-fork"  # a reorg back and forth; then the chain moves on 6 blocks
    moved = [{"height": 126, "status": "active", "branchlen": 0}, *tips[1:]]
    assert {s.name: s.value for s in collector.chain_tip_samples(SCOPE, moved)}["chain.forks"] == 0


def test_peer_view_by_type_network_message_and_ping() -> None:
    peers = [
        {"addr": "lab-n2:18444", "inbound": False, "connection_type": "manual", "network": "ipv4",
         "bytessent_per_msg": {"inv": 10}, "bytesrecv_per_msg": {"inv": 5}, "pingtime": 0.002, "minping": 0.001},
        {"addr": "172.18.0.4:5555", "inbound": True, "connection_type": "inbound", "network": "ipv4",
         "bytessent_per_msg": {"inv": 1, "ping": 8}, "pingtime": 0.004},
    ]
    samples = {(s.name, s.key): s.value for s in
               collector.peer_samples(SCOPE, peers, {"lab-n2": "n2", "172.18.0.4": "n4"})}
    assert samples[("peers.inbound", None)] == 1 and samples[("peers.outbound", None)] == 1
    assert samples[("peers.type", "manual")] == 1 and samples[("peers.network", "ipv4")] == 2
    assert samples[("bandwidth.sent_by_msg", "inv")] == 11
    assert samples[("ping.peer", "n2")] == 2.0 and samples[("ping.peer", "n4")] == 4.0
    assert samples[("ping.median", None)] == 3.0 and samples[("minping.median", None)] == 1.0


def test_network_view_counts_edges_tips_and_lag() -> None:
    states = {"n1": {"tip": HASH_A, "height": 5, "peers": {"n2"}}, "n2": {"tip": HASH_A, "height": 5, "peers": {"n1"}},
              "n3": {"tip": HASH_B, "height": 2, "peers": set()}}
    samples = {s.graphite(): s.value for s in
               metrics.network_samples("lab", states, [["n1", "n2"], ["n2", "n3"]], 4)}
    assert samples["peerlab.lab.network.edges.connected"] == 1
    assert samples["peerlab.lab.network.edges.expected"] == 2
    assert samples["peerlab.lab.network.tips.distinct"] == 2
    assert samples["peerlab.lab.network.tip_agreement"] == 0.5  # two of four expected nodes
    assert samples["peerlab.lab.nodes.n3.chain.blocks_behind"] == 3


def test_statsd_intake_rates_gauges_and_timers_under_the_senders_node() -> None:
    statsd = collector.Statsd()
    statsd.senders = {"172.18.0.7": ("lab", "s1"), "172.18.0.8": ("lab", "s2")}
    statsd.feed("message.received.inv:2|c\nmessage.received.inv:1|c|@0.5\n"
                "peers.totalConnections:8|g\npeers.totalConnections:-1|g\n"
                "ConnectBlock_ms:10|ms\nConnectBlock_ms:20|ms\ngarbage\nx:y|c", sender="172.18.0.7")
    statsd.feed("peers.totalConnections:3|g", sender="172.18.0.8")
    flushed = dict(statsd.flush(10))
    assert flushed["peerlab.lab.nodes.s1.statoshi.message.received.inv"] == 0.4
    assert flushed["peerlab.lab.nodes.s1.statoshi.peers.totalConnections"] == 7
    assert flushed["peerlab.lab.nodes.s2.statoshi.peers.totalConnections"] == 3
    assert flushed["peerlab.lab.nodes.s1.statoshi.ConnectBlock_ms.mean"] == 15
    assert flushed["peerlab.lab.nodes.s1.statoshi.ConnectBlock_ms.count"] == 2
    assert dict(statsd.flush(10))["peerlab.lab.nodes.s1.statoshi.message.received.inv"] == 0


def test_statsd_forgets_a_node_that_is_gone() -> None:
    statsd = collector.Statsd()
    statsd.set_senders({"172.18.0.7": ("lab", "s1"), "172.18.0.8": ("lab", "s2")})
    statsd.feed("peers.totalConnections:3|g\nmessage.received.inv:2|c", sender="172.18.0.7")
    statsd.feed("peers.totalConnections:4|g", sender="172.18.0.8")
    statsd.set_senders({"172.18.0.8": ("lab", "s2")})  # s1 removed
    assert dict(statsd.flush(10)) == {"peerlab.lab.nodes.s2.statoshi.peers.totalConnections": 4}
    statsd.feed("peers.totalConnections:5|g", sender="172.18.0.7")
    assert statsd.refused == 1


def test_statsd_takes_only_statoshi_nodes_and_sane_names() -> None:
    statsd = collector.Statsd()
    statsd.senders = {"172.18.0.7": ("lab", "s1")}
    statsd.feed("peers.totalConnections:8|g", sender="172.18.0.9")  # not a Statoshi node
    statsd.feed("a b c:1|g\nx..y/../z:2|g\n.lead:1|g\nok_name-1:3|g\n" + "n" * 201 + ":1|g", sender="172.18.0.7")
    assert dict(statsd.flush(10)) == {"peerlab.lab.nodes.s1.statoshi.ok_name-1": 3}
    assert statsd.refused == 5


def test_prometheus_refuses_node_networks() -> None:
    import ipaddress
    subnets = [ipaddress.ip_network("172.18.0.0/16"), ipaddress.ip_network("fd00:1::/64")]
    assert collector.in_subnets("172.18.3.4", subnets) and collector.in_subnets("fd00:1::5", subnets)
    assert not collector.in_subnets("127.0.0.1", subnets) and not collector.in_subnets("172.19.0.2", subnets)
    assert not collector.in_subnets("not-an-address", subnets)
    # the network's gateway is the Docker host: a published port's connections come from there
    assert not collector.in_subnets("172.18.0.1", subnets, frozenset({"172.18.0.1"}))
    assert collector.in_subnets("172.18.0.2", subnets, frozenset({"172.18.0.1"}))


def test_outputs_keep_precision_and_label_keys() -> None:
    tip = metrics.Sample(SCOPE, "chain.tip", collector.tip_id("f" * 52 + "ffffffffffff"))
    assert metrics.carbon_lines([tip], 7) == "peerlab.lab.nodes.n1.chain.tip 281474976710655 7\n"
    text = metrics.prometheus_text([metrics.Sample(SCOPE, "message.received", 3, "inv"),
                                    metrics.Sample(("host", "h1"), "load1", 0.5)])
    assert '# TYPE peerlab_message_received counter\npeerlab_message_received{msg="inv",network="lab",node="n1"} 3' in text
    assert 'peerlab_host_load1{host="h1"} 0.5' in text
    assert metrics.Sample(SCOPE, "ping.peer", 1, "10.0.0.1:8333").graphite().endswith("ping.peer.10_0_0_1_8333")
    traffic = metrics.Sample(("network", "lab"), "traffic", 812, ("n1", "external"))
    assert traffic.graphite() == "peerlab.lab.network.traffic.n1.external"
    assert 'peerlab_network_traffic{network="lab",source="n1",target="external"} 812' in metrics.prometheus_text([traffic])
    assert "# TYPE peerlab_network_traffic counter" in metrics.prometheus_text([traffic])
    build = metrics.Sample(SCOPE, "build", 1, ("knots", "29.5"))
    assert build.graphite() == "peerlab.lab.nodes.n1.build.knots.29_5"
    assert 'peerlab_build{implementation="knots",network="lab",node="n1",version="29.5"} 1' in metrics.prometheus_text([build])


def test_the_cookie_is_read_from_dockers_archive_of_the_chains_data_directory() -> None:
    import io
    import tarfile

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        payload = b"__cookie__:f00d\n"
        member = tarfile.TarInfo(".cookie")
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))
    assert collector.cookie_from_archive(data.getvalue()) == ("__cookie__", "f00d")
    # Where: the engine's one chain table says, in the collector's configuration.
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._conf import cookie_path

    assert cookie_path("regtest", "/home/bitcoin/.bitcoin") == "/home/bitcoin/.bitcoin/regtest/.cookie"
    assert cookie_path("testnet3", "/home/bitcoin/.bitcoin") == "/home/bitcoin/.bitcoin/testnet3/.cookie"
    assert cookie_path("mainnet", "/home/bitcoin/.bitcoin") == "/home/bitcoin/.bitcoin/.cookie"


def test_a_nodes_container_is_found_by_label_running_one_first() -> None:
    def summary(name: str, node: str, state: str, created: int) -> dict:
        return {"Id": name, "Names": [f"/{name}"], "State": state, "Created": created,
                "Labels": {"peerlab.network": "lab", "peerlab.node": node}}

    # A Swarm keeps the exited containers of earlier tasks; a new task's container is running.
    found = collector.best_containers([summary("lab-n1.1.old", "n1", "exited", 2), summary("lab-n1.1.new", "n1", "running", 1),
                                       summary("lab-n2", "n2", "exited", 5), summary("lab-n2.1.x", "n2", "exited", 9)])
    assert found[("lab", "n1")]["Id"] == "lab-n1.1.new"
    assert found[("lab", "n2")]["Id"] == "lab-n2.1.x"


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


NET_DEV = ("Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes\n"
           "    lo:     500       5    0    0    0     0          0         0      500       5    0    0    0     0       0          0\n"
           "  eth0:    1200      12    0    0    0     0          0         0      3400      20    0    0    0     0       0          0\n")


def test_cgroup_v1_stats_read_like_dockers(tmp_path: Path) -> None:
    path = "/docker/abc"
    _tree(tmp_path / "proc", {"7/cgroup": f"9:hugetlb:/\n4:memory:{path}\n2:cpu,cpuacct:{path}\n7:blkio:{path}\n0::{path}\n",
                              "7/net/dev": NET_DEV})
    _tree(tmp_path / "cg", {f"memory{path}/memory.usage_in_bytes": "4096\n",
                            f"memory{path}/memory.stat": "cache 100\nrss 2048\ntotal_rss 3072\n",
                            f"cpu,cpuacct{path}/cpuacct.usage": "5000000000\n",
                            f"blkio{path}/blkio.throttle.io_service_bytes": "8:0 Read 10\n8:0 Write 20\n8:0 Total 30\nTotal 30\n"})
    stats = collector.cgroup_stats(7, str(tmp_path / "proc"), str(tmp_path / "cg"))
    samples, previous = collector.container_samples(SCOPE, stats, None, 100.0)
    values = {sample.name: sample.value for sample in samples}
    assert values == {"system.memory_rss": 3072, "system.memory_usage": 4096, "system.disk_read_bytes": 10,
                      "system.disk_write_bytes": 20, "system.net_rx_bytes": 1200, "system.net_tx_bytes": 3400}
    assert previous == (5e9, 100.0)


def test_cgroup_v2_stats_read_like_dockers(tmp_path: Path) -> None:
    path = "/system.slice/docker-abc.scope"
    _tree(tmp_path / "proc", {"7/cgroup": f"0::{path}\n", "7/net/dev": NET_DEV})
    _tree(tmp_path / "cg", {f"{path.strip('/')}/memory.current": "8192\n", f"{path.strip('/')}/memory.stat": "anon 1024\nfile 7000\n",
                            f"{path.strip('/')}/cpu.stat": "usage_usec 2000000\nuser_usec 1\n",
                            f"{path.strip('/')}/io.stat": "8:0 rbytes=11 wbytes=22 rios=1 wios=2\n"})
    stats = collector.cgroup_stats(7, str(tmp_path / "proc"), str(tmp_path / "cg"))
    values = {sample.name: sample.value for sample in collector.container_samples(SCOPE, stats, (0.0, 90.0), 100.0)[0]}
    assert values["system.memory_rss"] == 1024 and values["system.memory_usage"] == 8192
    assert values["system.cpu_percent"] == 20.0  # 2 s of CPU over 10 s
    assert (values["system.disk_read_bytes"], values["system.disk_write_bytes"]) == (11, 22)


def test_cgroup_stats_of_a_gone_process_are_empty(tmp_path: Path) -> None:
    empty: dict[str, Any] = {"blkio_stats": {"io_service_bytes_recursive": []}, "networks": {}}
    assert collector.cgroup_stats(7, str(tmp_path), str(tmp_path)) == empty


def test_the_wait_between_polls_ends_when_the_configuration_changes(tmp_path: Path) -> None:
    """A deploy that adds a node rewrites the configuration: the collector (and the observer)
    polls at once instead of after the rest of its interval, so the portal shows the node soon."""
    import os

    path = tmp_path / "collector.json"
    path.write_text('{"interval": 10}')
    config = metrics.ConfigFile(str(path))
    assert config.changed() == {"interval": 10}
    now = [0.0]  # a clock of the test's own: the wait is counted in its steps, not in seconds of this machine

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if rewrite_at is not None and now[0] >= rewrite_at and config.stamp == os.stat(path).st_mtime:
            path.write_text('{"interval": 10, "networks": {}}')
            os.utime(path, (config.stamp + 1, config.stamp + 1))  # a coarse clock could give the same mtime

    rewrite_at = None
    config.wait(0.3, step=0.05, clock=lambda: now[0], sleep=sleep)
    assert now[0] >= 0.3, "an unchanged file: the whole wait"
    now[0], rewrite_at = 0.0, 0.2
    config.wait(30, step=0.05, clock=lambda: now[0], sleep=sleep)
    assert 0.2 <= now[0] < 0.3, "a changed file ends the wait at the next step"
    assert config.changed() == {"interval": 10, "networks": {}}


def test_sigterm_ends_the_wait_so_docker_stop_does_not_wait_its_timeout(tmp_path: Path) -> None:
    """Python as PID 1 ignores SIGTERM: the collector and the observer install a handler, and
    their wait between polls ends at the next step instead of after the interval."""
    import os
    import signal

    path = tmp_path / "collector.json"
    path.write_text("{}")
    config = metrics.ConfigFile(str(path))
    config.changed()
    now = [0.0]
    sent: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] >= 0.2 and not sent:
            sent.append(now[0])
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before kill() returns

    previous = signal.getsignal(signal.SIGTERM)
    try:
        metrics.stop_on_sigterm()
        config.wait(30, step=0.05, clock=lambda: now[0], sleep=sleep)
        assert metrics.STOPPING.is_set()
        assert 0.2 <= now[0] < 0.3, "the wait ends at the step after the signal"
    finally:
        signal.signal(signal.SIGTERM, previous)
        metrics.STOPPING.clear()


def test_a_node_just_added_and_not_answering_is_polled_again_soon() -> None:
    down = [metrics.Sample(("node", "lab", "n1"), "up", 1), metrics.Sample(("node", "lab", "n6"), "up", 0)]
    up = [metrics.Sample(("node", "lab", "n1"), "up", 1), metrics.Sample(("node", "lab", "n6"), "up", 1)]
    assert collector.catching_up(down, since_change=2.0)
    assert not collector.catching_up(up, since_change=2.0)
    assert not collector.catching_up(down, since_change=collector.CATCH_UP_FOR + 1), "a node that stays down waits for the interval"


def test_healthz_says_when_no_poll_ended_for_three_intervals_and_a_reset_client_is_no_traceback(
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """The image's health check asks /healthz (not /metrics, which it used to ask and then cut off,
    leaving a traceback in the log every 30 s); a poll that hangs or fails makes it 503."""
    import socket
    import threading
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(collector, "PROMETHEUS_PORT", port)
    polling = collector.Collector()
    polling.config = {"interval": 10}
    polling.latest = [metrics.Sample(SCOPE, f"peer.{index}.bytes", index) for index in range(20_000)]  # a long /metrics
    threading.Thread(target=collector.serve_prometheus, args=(polling,), daemon=True).start()

    def ask(path: str) -> tuple[int, str]:
        for _attempt in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                    return answer.status, answer.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()
            except urllib.error.URLError as error:
                assert isinstance(error.reason, ConnectionRefusedError), error
                time.sleep(0.05)  # the server thread is starting
        raise AssertionError("the collector's port never answered")

    assert ask("/healthz") == (200, "ok\n")
    polling.polled_at = time.monotonic() - 31
    assert ask("/healthz") == (503, "no poll for 31 s\n")
    polling.polled_at = time.monotonic() - 29
    assert ask("/healthz")[0] == 200
    for _client in range(5):  # a reader that takes the status line and leaves
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset on close
            client.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            assert client.recv(12) == b"HTTP/1.0 200"
    assert ask("/metrics")[0] == 200
    assert "Traceback" not in capfd.readouterr().err
    polling.latest = None  # type: ignore[assignment]  # a defect in a handler is still said
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        assert client.recv(100) == b""
    assert "TypeError" in capfd.readouterr().err


def test_an_empty_stats_answer_or_one_nodes_failure_never_stops_the_poll(monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Seen at 100 nodes during a teardown: the engine answered a removed container's stats with an
    empty body, `None.get` raised out of the poll, and the collector exited (Docker restarted it)."""
    summaries = [{"Id": f"id-{node}", "Names": [f"/lab-{node}"], "State": "running", "Created": 1,
                  "Labels": {"peerlab.network": "lab", "peerlab.node": node, "peerlab.role": "node"}} for node in ("n1", "n2")]

    def engine(path: str, raw: bool = False) -> Any:
        if path.startswith("/containers/json"):
            return summaries
        if path.startswith("/networks/"):
            return {"IPAM": {"Config": []}}
        if path.endswith("/json"):
            return {"Id": path.split("/")[2], "State": {"Pid": 0}, "NetworkSettings": {"Networks": {}}}
        if "/stats" in path:
            return None  # the engine's empty body
        raise AssertionError(path)

    monkeypatch.setattr(collector, "docker", engine)
    polling = collector.Collector()
    polling.config = {"host": "h1", "networks": {"lab": {"docker_network": "peerlab-lab",
                                                         "nodes": {"n1": {"container": "lab-n1"}, "n2": {"container": "lab-n2"}}}}}
    chain = {"bestblockhash": HASH_A, "blocks": 7, "headers": 7}
    answers: dict[str, list[Any]] = {"id-n1": [chain, [], None, None, None, None, 30, None]}
    monkeypatch.setattr(polling, "rpc", lambda _spec, container_id, _address: answers[container_id])  # n2: KeyError
    samples = {(sample.scope, sample.name): sample.value for sample in polling.poll()}
    assert samples[(("node", "lab", "n1"), "chain.height")] == 7
    assert samples[(("node", "lab", "n1"), "uptime")] == 30
    assert not any(scope == ("node", "lab", "n2") for scope, _name in samples)
    assert "lab/n2: poll failed: KeyError: 'id-n2'" in capsys.readouterr().err
