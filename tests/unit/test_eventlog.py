"""`make events` (tools/eventlog.py) says what is wrong with the feed in one line, never a traceback."""

from __future__ import annotations

import socket
import struct
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import eventlog


def closing_server(answer: bytes | None) -> tuple[socket.socket, str]:
    """A server on the loopback that reads a request, answers `answer` (maybe nothing) and closes,
    or (None) resets each connection at once: an observer restarting, or something else on the
    feed's port."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                client, _address = server.accept()
            except OSError:
                return
            if answer is None:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                client.recv(4096)
                client.sendall(answer)
            client.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, f"ws://127.0.0.1:{server.getsockname()[1]}/events"


@pytest.mark.parametrize("answer, said", [(None, "Connection reset|no close frame|valid HTTP response"),
                                          (b"", "valid HTTP response"),
                                          (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "HTTP 404")])
def test_a_feed_that_closes_during_the_handshake_is_one_line_not_a_traceback(answer: bytes | None, said: str,
                                                                             capsys: pytest.CaptureFixture[str]) -> None:
    server, url = closing_server(answer)
    try:
        with pytest.raises(ConnectionError, match=said):
            next(eventlog.stream(url))
        assert eventlog.main(["--url", url, "--seconds", "1"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"peerlab events: {url}: ") and "Traceback" not in err and err.count("\n") == 1
    finally:
        server.close()


def test_a_handshake_the_observer_closes_while_it_restarts_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The rare race the real servers above seldom hit (one connection in a few hundred): the request
    is sent, then the connection breaks; websockets raises ConnectionClosedError from connect(), which
    went through `make events` and the tests' alert readers as a traceback."""
    from websockets.exceptions import ConnectionClosedError

    def closed(*_args: object, **_kwargs: object) -> None:
        raise ConnectionClosedError(None, None)

    monkeypatch.setattr(eventlog, "connect", closed)
    assert eventlog.main(["--url", "ws://127.0.0.1:9/events", "--seconds", "1"]) == 1
    assert capsys.readouterr().err == ("peerlab events: ws://127.0.0.1:9/events: no close frame received or sent "
                                       "(is the lab deployed with monitoring? `make deploy`)\n")
