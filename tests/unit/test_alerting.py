"""Alerts to Alertmanager: its configuration and login from the inventory (module_utils/_alertmanager),
the refusals of bad receivers and routes, and the observer's sender (images/collector/alerting.py)
against a local HTTP server standing in for Alertmanager's API."""

from __future__ import annotations

import base64
import http.server
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "images" / "collector"))  # events, metrics
sys.path.insert(0, str(ROOT / "images" / "observer"))
import alerting
import events

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _alertmanager
from ansible_collections.peerlab.bitcoin.plugins.module_utils._settings import AlertmanagerSettings, alertmanager_problems


def test_the_configuration_routes_to_the_first_receiver_grouped_by_detector_network_and_node() -> None:
    hook = {"name": "ops", "webhook_configs": [{"url": "http://hooks.example/peerlab"}]}
    made = _alertmanager.config((hook, {"name": "phone", "telegram_configs": [{"chat_id": 1}]}), {"repeat_interval": "1h"})
    assert made["route"] == {"receiver": "ops", "group_by": ["detector", "network", "node"], "group_wait": "10s",
                             "group_interval": "1m", "repeat_interval": "1h"}
    assert [receiver["name"] for receiver in made["receivers"]] == ["ops", "phone"]
    # no receiver: Alertmanager keeps and shows the alerts and notifies nobody
    nobody = {"route": {**_alertmanager.ROUTE_DEFAULTS, "receiver": "peerlab-none"}, "receivers": [{"name": "peerlab-none"}]}
    assert _alertmanager.config((), {}) == nobody


def test_the_receivers_values_that_may_be_secrets_are_the_ones_hidden() -> None:
    receivers = ({"name": "ops", "webhook_configs": [{"url": "http://hooks.example/T0K3N", "send_resolved": True}]},
                 {"name": "mail", "email_configs": [{"to": "a@b.example", "auth_password": "hunter2"}]})
    assert _alertmanager.values(receivers) == ("http://hooks.example/T0K3N", "a@b.example", "hunter2")


def test_the_login_hash_is_bcrypt_and_the_same_for_the_same_stored_salt() -> None:
    import bcrypt  # requirements.txt: the controller hashes Alertmanager's login with it
    first = _alertmanager.login_hash("secret", "00" * 16)
    assert first == _alertmanager.login_hash("secret", "00" * 16) != _alertmanager.login_hash("secret", "11" * 16)
    assert first.startswith("$2b$10$") and bcrypt.checkpw(b"secret", first.encode()) and not bcrypt.checkpw(b"other", first.encode())
    assert _alertmanager.authorization("pw") == "Basic " + base64.b64encode(b"peerlab:pw").decode()


def test_bad_receivers_and_routes_are_refused_by_name() -> None:
    problems = alertmanager_problems(AlertmanagerSettings(
        receivers=({"webhook_configs": []}, {"name": "a", "webhook_config": []}, {"name": "b"}, {"name": "b"}),
        route={"receiver": "c", "group_wait": "soon", "group_by": "node", "colour": "red"}))
    assert problems == [
        "alertmanager_receivers[0]: each receiver is a mapping with a name (letters, digits, '_', '.', '-'), got {'webhook_configs': []}",
        "alertmanager_receivers[1] (a): unknown key(s) webhook_config; a receiver has a name and *_configs lists (webhook_configs, "
        "email_configs, slack_configs, telegram_configs...)",
        "alertmanager_receivers: receiver name(s) used twice: b",
        "alertmanager_route: unknown key(s) colour; known: active_time_intervals, continue, group_by, group_interval, group_wait, "
        "matchers, mute_time_intervals, receiver, repeat_interval, routes",
        "alertmanager_route: receiver 'c' is none of alertmanager_receivers (a, b)",
        "alertmanager_route: group_wait must be a duration like 30s, 5m or 4h, got 'soon'",
        "alertmanager_route: group_by must be a list of label names, got 'node'"]
    assert alertmanager_problems(AlertmanagerSettings(receivers=({"name": "ops", "email_configs": [{"to": "a@b"}]},),
                                                      route={"receiver": "ops", "repeat_interval": "1h30m"})) == []


SPY = events.make("alert", "lab", "n5", 1765000000.25, detector="spy-peer", message="peer 7 (?) was sent 50 announcements",
                  peer=7, addr="172.18.0.9:40000")


def test_an_alert_as_alertmanager_takes_it() -> None:
    made = alerting.to_alertmanager(SPY)
    assert made["labels"] == {"alertname": "spy-peer", "detector": "spy-peer", "network": "lab", "node": "n5", "source": "peerlab",
                              "peer": "7", "addr": "172.18.0.9:40000"}
    assert made["startsAt"] == "2025-12-06T05:46:40.250Z" and made["endsAt"] == "2025-12-06T05:51:40.250Z"
    assert made["annotations"]["summary"] == SPY["message"]
    fork = alerting.to_alertmanager(events.make("alert", "lab", "_network", 1.0, detector="fork", message="two blocks"))
    assert "peer" not in fork["labels"] and "addr" not in fork["labels"]


class Receiver(http.server.BaseHTTPRequestHandler):
    posts: list[tuple[str, list[dict[str, Any]]]] = []
    answer = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if Receiver.answer == 200:
            Receiver.posts.append((self.headers.get("Authorization", ""), json.loads(body)))
        self.send_response(Receiver.answer)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[alerting.Alerting, Path]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.posts, Receiver.answer = [], 200
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    sender = alerting.Alerting()
    sender.configure({"url": f"http://127.0.0.1:{server.server_address[1]}", "user": "peerlab", "password_file": str(password)})
    yield sender, password
    server.shutdown()


def wait(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_the_sender_posts_with_the_login_and_keeps_alerts_while_alertmanager_is_away(api: tuple[alerting.Alerting, Path]) -> None:
    sender, _password = api
    sender.add(SPY)
    assert wait(lambda: sender.sent == 1)
    ((auth, batch),) = Receiver.posts
    assert auth == _alertmanager.authorization("s3cret") and batch[0]["labels"]["detector"] == "spy-peer"
    # Alertmanager answers 503 for a while: the alert waits and goes once it answers again
    Receiver.answer = 503
    sender.add({**SPY, "detector": "inv-flood"})
    assert wait(lambda: sender.errors >= 1)
    Receiver.answer = 200
    assert wait(lambda: sender.sent == 2, timeout=15)
    assert [post[1][0]["labels"]["detector"] for post in Receiver.posts] == ["spy-peer", "inv-flood"]


def test_a_full_queue_drops_the_oldest_and_counts_them() -> None:
    sender = alerting.Alerting()
    sender.url = "http://127.0.0.1:9"  # configured, no thread: nothing takes them
    for index in range(alerting.KEEP + 5):
        sender.add({**SPY, "peer": index})
    assert sender.dropped == 5 and len(sender.waiting) == alerting.KEEP and sender.waiting[0]["labels"]["peer"] == "5"


class Tagged(str):
    """Like Ansible's own string type for inventory values: yaml.safe_dump cannot represent it."""


def test_receivers_from_the_inventory_become_plain_data_the_configuration_can_be_written_from() -> None:
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._desired import _yaml
    from ansible_collections.peerlab.bitcoin.plugins.module_utils._settings import Settings

    given = {"alertmanager_receivers": [{Tagged("name"): Tagged("ops"), "webhook_configs": [{"url": Tagged("http://h/x")}]}],
             "alertmanager_route": {"group_wait": Tagged("2s")}}

    def value_of(name: str) -> Any:
        return given[name]

    settings = Settings.from_variables(value_of)
    written = _yaml(_alertmanager.config(settings.alertmanager.receivers, settings.alertmanager.route))
    assert "receiver: ops" in written and "url: http://h/x" in written and "group_wait: 2s" in written
