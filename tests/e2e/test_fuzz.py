"""Fuzzing every endpoint with random and adversarial messages over real sockets.

The service runs in its own thread and event loop; a synchronous websockets client sends each
generated message followed by a ping carrying a marker, and reads up to the marked pong: every
reply in between must be a valid protocol message (errors with a known code), and the connection
must still answer. Afterwards nothing may be left behind in the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from tests.conftest import make_settings
from tickhub.app.roles import SingleService
from tickhub.core.protocol import ErrorCode

ENDPOINTS = ["/ws/stream", "/ws/analysis", "/ws/alerts", "/ws/portfolio"]
CODES = {c.value for c in ErrorCode}
TYPES = {
    "connection",
    "subscription",
    "data",
    "heartbeat",
    "pong",
    "error",
    "subscriptions",
    "status",
    "auth",
    "alert",
    "alerts",
    "position",
    "positions",
}
REQUEST_TYPES = [
    "subscribe",
    "unsubscribe",
    "heartbeat",
    "ping",
    "list_subscriptions",
    "auth",
    "create_alert",
    "list_alerts",
    "delete_alert",
    "set_position",
    "remove_position",
    "list_positions",
    "fly",
    "",
    "SUBSCRIBE",
]


class ThreadedService:
    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.svc = SingleService(
            make_settings(
                tmp,
                message_rate=1e6,
                message_burst=1_000_000,
                demo_portfolio=False,
                max_message_bytes=16384,
            )
        )
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self.svc.start(), self.loop).result(30)

    def call(self, fn: Any) -> Any:
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.svc.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def threaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedService]:
    ts = ThreadedService(tmp_path_factory.mktemp("fuzz"))
    yield ts
    ts.stop()


@pytest.fixture(scope="module")
def clients(threaded: ThreadedService) -> Iterator[dict[str, ClientConnection]]:
    with contextlib.ExitStack() as stack:
        conns = {
            path: stack.enter_context(
                connect(f"ws://127.0.0.1:{threaded.port}{path}", max_size=None)
            )
            for path in ENDPOINTS
        }
        for c in conns.values():
            json.loads(c.recv(10))  # welcome
        yield conns


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["RELIANCE", "INFY", "*", "NIFTY 50", "nse:tcs", "1m", "5m", "above"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(REQUEST_TYPES) | values},
    optional={
        "symbol": values,
        "symbols": values,
        "interval": values,
        "since": values,
        "condition": values,
        "value": values,
        "once": values,
        "note": values,
        "id": values,
        "quantity": values,
        "average_price": values,
        "token": values,
        "timestamp": values,
    },
)
raw_texts = st.one_of(
    st.text(max_size=200),
    st.just("[" * 5000 + "]" * 5000),
    st.just('{"a":' * 3000 + "1" + "}" * 3000),
    st.just('{"type": "subscribe", "symbol": "' + "A" * 20000 + '"}'),
    st.just("1e999999"),
    st.just('{"type": "ping", "timestamp": 1e400}'),
)

_marker = iter(range(10**9))


def _roundtrip(conn: ClientConnection, payload: str | bytes) -> list[dict[str, Any]]:
    mark = next(_marker)
    conn.send(payload)
    conn.send(json.dumps({"type": "ping", "timestamp": f"fuzz-{mark}"}))
    got: list[dict[str, Any]] = []
    while True:
        msg = json.loads(conn.recv(10))
        assert isinstance(msg, dict) and msg.get("type") in TYPES, msg
        if msg["type"] == "error":
            assert msg["code"] in CODES and isinstance(msg["message"], str) and msg["message"]
        if msg["type"] == "pong" and msg.get("client_timestamp") == f"fuzz-{mark}":
            return got
        got.append(msg)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(msg=messages, path=st.sampled_from(ENDPOINTS))
def test_random_messages_get_valid_answers(
    clients: dict[str, ClientConnection], msg: dict[str, Any], path: str
) -> None:
    _roundtrip(clients[path], json.dumps(msg))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=raw_texts, path=st.sampled_from(ENDPOINTS))
def test_random_text_and_deep_nesting(
    clients: dict[str, ClientConnection], text: str, path: str
) -> None:
    _roundtrip(clients[path], text)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(blob=st.binary(max_size=300), path=st.sampled_from(ENDPOINTS))
def test_binary_frames_are_refused_politely(
    clients: dict[str, ClientConnection], blob: bytes, path: str
) -> None:
    replies = _roundtrip(clients[path], blob)
    assert [r["code"] for r in replies if r["type"] == "error"] == ["unsupported_frame"]


def _raw_ws(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"GET /ws/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(4096)
    return sock


def _frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    mask = b"\x01\x02\x03\x04"
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _read_until(sock: socket.socket, needle: bytes) -> bytes:
    data = b""
    while needle not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_fragments_ping_flood_then_invalid_utf8_closes_1007(threaded: ThreadedService) -> None:
    assert threaded.port is not None
    sock = _raw_ws(threaded.port)
    try:
        sock.sendall(
            _frame(0x1, b'{"type": "pi', fin=False) + _frame(0x0, b'ng", "timestamp": "frag"}')
        )
        assert b"frag" in _read_until(sock, b'"frag"')
        sock.sendall(b"".join(_frame(0x9, b"p%d" % i) for i in range(500)))  # ping flood
        data = _read_until(sock, b"p499")
        assert data.count(b"\x8a") >= 1  # pongs came back
        sock.sendall(_frame(0x1, b'{"type": "ping", "timestamp": "alive"}'))
        assert b"alive" in _read_until(sock, b'"alive"')
        # RFC 6455 §8.1: a text frame that is not UTF-8 fails the connection with 1007.
        sock.sendall(_frame(0x1, b'{"type": "ping", "x": "\xff\xfe"}'))
        data = _read_until(sock, b"\x88")
        close = data[data.index(b"\x88") :]
        assert int.from_bytes(close[2:4], "big") == 1007
    finally:
        sock.close()


def test_nothing_leaks_after_fuzzing(threaded: ThreadedService, clients: Any) -> None:
    for conn in list(clients.values()):
        conn.close()
    clients.clear()
    pause = threading.Event()  # never set: a bounded wait for the server to see the closes
    for _ in range(200):
        if threaded.call(lambda: len(threaded.svc.hub)) == 0:
            break
        pause.wait(0.05)
    assert threaded.call(lambda: len(threaded.svc.hub)) == 0
    assert threaded.call(lambda: threaded.svc.hub.topics()) == {}
