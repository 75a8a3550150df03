"""The server's wsproto connection without its event deque still parses what clients send."""

from __future__ import annotations

import os
import struct
from collections import deque

from wsproto.events import CloseConnection, Ping, TextMessage

from tickhub.server.connection import lean_ws_connection


def _masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + body


def test_lean_connection_parses_frames_and_keeps_no_deque() -> None:
    ws = lean_ws_connection()
    assert not isinstance(ws._events, deque)
    ws.receive_data(
        _masked(0x1, b'{"type":"ping"}') + _masked(0x9, b"hi") + _masked(0x8, b"\x03\xe8")
    )
    events = list(ws.events())
    assert isinstance(events[0], TextMessage) and events[0].data == '{"type":"ping"}'
    assert isinstance(events[1], Ping) and events[1].payload == b"hi"
    assert isinstance(events[2], CloseConnection) and events[2].code == 1000


def test_lean_connection_still_reports_a_lost_transport() -> None:
    ws = lean_ws_connection()
    ws.receive_data(None)  # wsproto's own path for a connection lost without a close frame
    (event,) = list(ws.events())
    assert isinstance(event, CloseConnection) and event.code == 1006
