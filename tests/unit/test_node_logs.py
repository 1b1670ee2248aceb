"""Docker's log framing, undone by node_logs without the Docker SDK."""

from __future__ import annotations

import struct

from ansible_collections.peerlab.bitcoin.plugins.modules.node_logs import _demultiplex


def frame(stream: int, text: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + struct.pack(">I", len(text)) + text


def test_frames_from_stdout_and_stderr_are_joined_in_order() -> None:
    body = frame(1, b"2026 started\n") + frame(2, "Error: disk \u00e9\n".encode()) + frame(1, b"done\n")
    assert _demultiplex(body) == "2026 started\nError: disk \u00e9\ndone\n".encode()


def test_a_tty_log_is_not_framed_and_comes_back_as_is() -> None:
    assert _demultiplex(b"plain text\n") == b"plain text\n"
