"""Every resource the server holds for one client is bounded (issue: resource bounds).

What must be measured from outside, the server's RSS and its sockets, is measured on a
``tickhub serve`` process (``/proc``, ``ss``); the rest runs on the in-process service.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.fakes import RecordingPeer
from tests.helpers import (
    Client,
    closed_with,
    established,
    free_port,
    is_type,
    rss_mb,
    serve_process,
    unsent_bytes,
    wait_until,
)
from tests.unit.fanout.test_hub import _hub
from tickhub.app.roles import SingleService
from tickhub.core.protocol import CloseCode
from tickhub.core.topics import Endpoint

# --- a raw client that controls its receive buffer and never reads unless asked -------------


class RawClient:
    """A WebSocket client on a plain socket, with a small receive buffer, that reads only when
    told: the attacker the server must survive."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    async def connect(cls, port: int, path: str = "/ws/stream", rcvbuf: int = 4096) -> RawClient:
        return await asyncio.to_thread(cls._connect, port, path, rcvbuf)

    @classmethod
    def _connect(cls, port: int, path: str, rcvbuf: int) -> RawClient:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)
            assert chunk, "closed during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(sock)

    async def send_text(self, payload: bytes) -> None:
        await asyncio.to_thread(self.sock.sendall, frame(0x1, payload))

    async def send_json(self, msg: dict[str, Any]) -> None:
        await self.send_text(json.dumps(msg).encode())

    async def read_to_close(self) -> tuple[list[bytes], int | None]:
        """Everything the server sent until its close frame: (text payloads, close code)."""
        return await asyncio.to_thread(self._read_to_close)

    def _read_to_close(self) -> tuple[list[bytes], int | None]:
        data = b""
        texts: list[bytes] = []
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except (ConnectionResetError, TimeoutError):
                return texts, None
            if not chunk:
                return texts, None
            data += chunk
            while (parsed := parse_frame(data)) is not None:
                opcode, payload, data = parsed
                if opcode == 0x1:
                    texts.append(payload)
                elif opcode == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    return texts, code

    def close(self) -> None:
        self.sock.close()


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked client frame."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = (
        bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 4096 else _mask(payload, mask)
    )
    return head + mask + masked


def _mask(payload: bytes, mask: bytes) -> bytes:
    key = int.from_bytes((mask * (len(payload) // 4 + 1))[: len(payload)], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(len(payload), "big")


def parse_frame(data: bytes) -> tuple[int, bytes, bytes] | None:
    """One unmasked server frame off the front of ``data``: (opcode, payload, rest)."""
    if len(data) < 2:
        return None
    n = data[1] & 0x7F
    start = 2
    if n == 126:
        if len(data) < 4:
            return None
        n, start = struct.unpack("!H", data[2:4])[0], 4
    elif n == 127:
        if len(data) < 10:
            return None
        n, start = struct.unpack("!Q", data[2:10])[0], 10
    if len(data) < start + n:
        return None
    return data[0] & 0x0F, data[start : start + n], data[start + n :]


def _unknown_symbols(n: int) -> list[str]:
    """``n`` distinct names that are no instrument: three base-36 digits and a ``Q``."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    return [f"Q{digits[i // 1296]}{digits[i // 36 % 36]}{digits[i % 36]}" for i in range(n)]


# --- replies: one per refusal kind, and counted against the budget ----------------------------


async def test_many_unknown_symbols_get_one_error_listing_them(connect: Any) -> None:
    client: Client = await connect()
    names = _unknown_symbols(150)
    await client.send({"type": "subscribe", "symbols": ["RELIANCE", *names]})
    err = await client.wait_for(is_type("error"))
    assert err["code"] == "unknown_symbol" and err["request"] == "subscribe"
    assert err["symbols"] == names and err["details"] == {"count": 150}
    assert "and 145 more" in err["message"]
    pong = await client.request({"type": "ping", "timestamp": "after"}, "pong")
    assert pong["client_timestamp"] == "after"
    # Exactly one error for the 150, and the known symbol was subscribed.
    assert sum(1 for m in client.seen if m.get("type") == "error") == 1
    assert any(m.get("type") == "subscription" and m["symbol"] == "RELIANCE" for m in client.seen)


async def test_one_unknown_symbol_keeps_the_single_symbol_error(connect: Any) -> None:
    client: Client = await connect()
    err = await client.request({"type": "subscribe", "symbol": "NOPE"}, "error")
    assert err["symbol"] == "NOPE" and err["details"] == {"symbol": "NOPE"}
    assert err["message"] == "unknown symbol: 'NOPE'" and "symbols" not in err


async def test_too_many_symbols_in_one_message_has_its_own_error(service_factory: Any) -> None:
    svc: SingleService = await service_factory(max_symbols_per_message=10)
    client = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
    try:
        names = [i.symbol for i in svc.registry][:11]
        err = await client.request({"type": "subscribe", "symbols": names}, "error")
        assert err["code"] == "too_many_symbols"
        assert err["details"] == {"limit": 10, "count": 11, "setting": "MAX_SYMBOLS_PER_MESSAGE"}
        listed = await client.request({"type": "list_subscriptions"}, "subscriptions")
        assert listed["symbols"] == []  # nothing of a refused message is done
        ok = await client.request({"type": "subscribe", "symbols": names[:10]}, "subscription")
        assert ok["status"] == "subscribed"
    finally:
        await client.close()


async def test_subscription_limit_refusal_lists_the_symbols_refused(service_factory: Any) -> None:
    svc: SingleService = await service_factory(max_subscriptions=2)
    client = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
    try:
        names = ["RELIANCE", "INFY", "TCS", "ITC", "SBIN"]
        await client.send({"type": "subscribe", "symbols": names})
        err = await client.wait_for(is_type("error"))
        assert err["code"] == "limit_exceeded" and err["symbols"] == ["TCS", "ITC", "SBIN"]
        assert err["details"]["setting"] == "MAX_SUBSCRIPTIONS" and err["details"]["count"] == 3
        # Several symbols not subscribed, one error for them as well.
        await client.send({"type": "unsubscribe", "symbols": ["TCS", "ITC"]})
        err = await client.wait_for(is_type("error"))
        assert err["code"] == "not_subscribed" and err["symbols"] == ["TCS", "ITC"]
    finally:
        await client.close()


async def test_held_replies_count_against_the_budget_then_close_4001(
    service_factory: Any,
) -> None:
    """A client that never reads and provokes large replies is closed for its budget, instead
    of having every reply kept (replies used to be held without limit)."""
    svc: SingleService = await service_factory(
        outbox_bytes=65_536, max_symbols_per_message=10_000, message_rate=1000, message_burst=1000
    )
    assert svc.port is not None
    raw = await RawClient.connect(svc.port)
    names = _unknown_symbols(4000)
    payload = json.dumps({"type": "subscribe", "symbols": names}).encode()
    assert len(payload) < 65_536
    for _ in range(60):  # ~35 KB of error per message: 2 MB of replies asked for
        await raw.send_text(payload)
    await wait_until(lambda: svc.hub.closes.get(CloseCode.SLOW_CONSUMER, 0) == 1)
    assert max((s.held_bytes for s in svc.hub.sessions), default=0) == 0
    texts, code = await raw.read_to_close()
    raw.close()
    assert code == CloseCode.SLOW_CONSUMER
    # What did arrive is well under what was asked for: the rest was never kept.
    assert sum(map(len, texts)) < 60 * len(payload) // 2


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Any]:
    """Start ``tickhub serve`` processes; every one is stopped at the end."""
    procs: list[asyncio.subprocess.Process] = []

    async def start(**settings: str) -> tuple[int, int]:
        port = free_port()
        proc = await serve_process(tmp_path, port, **settings)
        procs.append(proc)
        return port, proc.pid

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def _peak_rss(pid: int, until: asyncio.Event) -> float:
    peak = 0.0
    while not until.is_set():
        peak = max(peak, rss_mb(pid))
        await asyncio.sleep(0.05)
    return max(peak, rss_mb(pid))


@pytest.mark.slow
async def test_reply_amplification_attack_leaves_memory_and_others_alone(served: Any) -> None:
    """The attack as reported: a 60 KB subscribe naming 10,000 unknown symbols, 100 times,
    then 45 times a second (within the default rate limit), from a client with a 4 KiB
    receive buffer that never reads. It used to take the server from 83 MB to 5.8 GB."""
    port, pid = await served()
    observer = await Client.connect(f"ws://127.0.0.1:{port}/ws/stream")
    await observer.request({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
    start = rss_mb(pid)
    done = asyncio.Event()
    peak_task = asyncio.create_task(_peak_rss(pid, done))
    attacker = await RawClient.connect(port)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    names = [f"{i // 1296}{digits[i // 36 % 36]}{digits[i % 36]}" for i in range(10_000)]
    payload = json.dumps({"type": "subscribe", "symbols": names}, separators=(",", ":")).encode()
    assert 55_000 < len(payload) < 65_536
    for _ in range(100):
        await attacker.send_text(payload)
    for _ in range(90):  # 2 s at 45 a second
        await attacker.send_text(payload)
        await asyncio.sleep(1 / 45)  # the attacker's pacing, not a synchronisation
        # Others are served meanwhile.
    pong = await observer.request({"type": "ping", "timestamp": "during"}, "pong")
    assert pong["client_timestamp"] == "during"
    attacker.close()
    done.set()
    peak = await peak_task
    assert peak < start + 50, f"RSS went from {start:.0f} MB to {peak:.0f} MB"
    await observer.close()


@pytest.mark.slow
async def test_large_frames_are_not_buffered_whole(served: Any) -> None:
    """200 connections each sending one 1 MB frame, then idling: each gets message_too_large
    and stays usable; the frames were counted and dropped as they arrived, not kept."""
    port, pid = await served(connect_rate_per_ip="100000")
    start = rss_mb(pid)
    clients = [await RawClient.connect(port) for _ in range(200)]
    big = b'{"type":"ping","pad":"' + b"x" * 1_000_000 + b'"}'
    one = frame(0x1, big)
    await asyncio.gather(*(asyncio.to_thread(c.sock.sendall, one) for c in clients))
    # Each is answered with the error; a pong behind it shows the whole frame was read.
    for c in clients:
        await c.send_json({"type": "ping", "timestamp": "after"})
    replies = await asyncio.gather(*(asyncio.to_thread(_read_until_pong, c.sock) for c in clients))
    assert all(b"message_too_large" in r for r in replies)
    after = rss_mb(pid)  # the connections are idle now, and still open
    assert after < start + 60, f"RSS went from {start:.0f} MB to {after:.0f} MB"
    for c in clients:
        c.close()


def _read_until_pong(sock: socket.socket) -> bytes:
    data = b""
    while b'"client_timestamp":"after"' not in data:
        chunk = sock.recv(65536)
        assert chunk, "closed"
        data += chunk
    return data


async def test_frame_over_the_hard_cap_closes_1009(connect: Any, service: SingleService) -> None:
    assert service.port is not None
    raw = await RawClient.connect(service.port)
    size = 2 * 1_048_576
    head = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", size) + bytes(4)  # zero mask
    await asyncio.to_thread(raw.sock.sendall, head + b"x" * 1_200_000)
    _, code = await raw.read_to_close()
    raw.close()
    assert code == 1009


# --- sockets: gone within the close deadline whatever the peer does ---------------------------


@pytest.mark.skipif(not Path("/usr/bin/ss").exists(), reason="needs ss (iproute2)")
async def test_closed_non_readers_leave_no_socket_and_cannot_bypass_the_per_ip_limit(
    service_factory: Any,
) -> None:
    svc: SingleService = await service_factory(
        outbox_bytes=16_384,
        slow_client_grace=0.5,
        close_timeout=3.0,
        max_connections_per_ip=10,
        idle_timeout=0,
    )
    port = svc.port
    assert port is not None
    readers = []
    for symbol_wave in range(3):
        before = svc.hub.closes.get(CloseCode.SLOW_CONSUMER, 0)
        readers = [await RawClient.connect(port) for _ in range(10)]
        for raw in readers:
            for interval in ("1m", "3m", "5m", "15m", "30m", "1h", "1d"):
                await raw.send_json(
                    {"type": "subscribe", "symbols": _all_symbols(svc), "interval": interval}
                )

        def all_closed(b: int = before) -> bool:
            return svc.hub.closes.get(CloseCode.SLOW_CONSUMER, 0) == b + 10

        await wait_until(all_closed)
        if symbol_wave == 0:
            # Closed, but their sockets are still there: they still count for the address.
            extra = await Client.connect(f"ws://127.0.0.1:{port}/ws/stream")
            assert await closed_with(extra) == CloseCode.LIMIT_EXCEEDED
        # Within the close deadline the server drops them whatever they do.
        await wait_until(lambda: svc.server.open_sockets == 0, timeout=6)
        assert established(port) == 0
        # Nor does the kernel keep their unsent data (what they never read is dropped, RST).
        assert unsent_bytes(port) == 0
        assert len(svc.hub) == 0
        for raw in readers:
            raw.close()
    fresh = await Client.connect(f"ws://127.0.0.1:{port}/ws/stream")
    assert (await fresh.recv())["type"] == "connection"
    pong = await fresh.request({"type": "ping"}, "pong")
    assert pong["type"] == "pong"
    await fresh.close()


def _all_symbols(svc: SingleService) -> list[str]:
    return [i.symbol for i in svc.registry]


async def test_idle_closed_client_that_never_reads_is_dropped(service_factory: Any) -> None:
    svc: SingleService = await service_factory(idle_timeout=1.0, close_timeout=1.0)
    assert svc.port is not None
    raw = await RawClient.connect(svc.port)  # never answers pings, never reads
    await wait_until(lambda: svc.hub.closes.get(CloseCode.IDLE_TIMEOUT, 0) == 1)
    await wait_until(lambda: svc.server.open_sockets == 0, timeout=4)
    assert established(svc.port) == 0
    raw.close()


# --- what is echoed back ------------------------------------------------------------------------


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


async def test_structures_are_never_echoed_and_log_no_traceback(
    connect: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    client: Client = await connect()
    err = await client.request({"type": "ping", "timestamp": _nested(250)}, "error")
    assert err["code"] == "invalid_field" and err["details"] == {"field": "timestamp"}
    err = await client.request(
        {"type": "subscribe", "symbol": "INFY", "interval": _nested(250)}, "error"
    )
    assert err["code"] == "unknown_interval" and "a JSON array" in err["message"]
    err = await client.request({"type": "x" * 10_000}, "error")
    assert err["code"] == "unknown_type" and len(err["message"]) < 200
    err = await client.request({"type": "subscribe", "symbol": "Y" * 5000}, "error")
    assert err["code"] == "invalid_field" and len(json.dumps(err)) < 400
    ok = await client.request({"type": "ping", "timestamp": 12.5}, "pong")
    assert ok["client_timestamp"] == 12.5
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# --- tokens -------------------------------------------------------------------------------------

SECRET = "resource-bounds-secret-long-enough-for-hs256"


def _token(sub: str, exp: Any) -> str:
    return jwt.encode({"sub": sub, "exp": exp}, SECRET, algorithm="HS256")


@pytest.mark.parametrize("exp", ["abc", 1e20, [1], -5.5, True], ids=repr)
@pytest.mark.parametrize("how", ["message", "subprotocol"])
async def test_malformed_exp_closes_4500_like_any_invalid_token(
    service_factory: Any, exp: Any, how: str
) -> None:
    svc: SingleService = await service_factory(jwt_secret=SECRET, auth_timeout=5.0)
    token = _token("carol", exp)
    url = f"ws://127.0.0.1:{svc.port}/ws/stream"
    if how == "message":
        client = await Client.connect(url)
        await client.recv()
        err = await client.request({"type": "auth", "token": token}, "error")
    else:
        client = await Client.connect(url, subprotocols=["tickhub", f"token.{token}"])
        err = await client.wait_for(is_type("error"))
    assert err["code"] == "auth_failed" and "exp" in err["message"]
    assert await closed_with(client) == CloseCode.AUTH_FAILED
    await wait_until(lambda: len(svc.hub) == 0)


async def _alerts_of(port: int, token: str) -> list[Any]:
    client = await Client.connect(f"ws://127.0.0.1:{port}/ws/alerts")
    try:
        reply = await client.request({"type": "auth", "token": token}, "auth")
        assert reply["status"] == "authenticated"
        listed = await client.request({"type": "list_alerts"}, "alerts")
        return list(listed["alerts"])
    finally:
        await client.close()


@pytest.mark.parametrize("prefix", [None, ""])
async def test_jwt_sub_and_api_key_user_are_separate_unless_configured(
    service_factory: Any, prefix: str | None
) -> None:
    extra = {} if prefix is None else {"jwt_user_prefix": prefix}
    svc: SingleService = await service_factory(
        api_keys="alice:alice-key", jwt_secret=SECRET, demo_portfolio=False, **extra
    )
    client = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/alerts")
    await client.request({"type": "auth", "token": "alice-key"}, "auth")
    created = await client.request(
        {"type": "create_alert", "symbol": "INFY", "condition": "above", "value": 99999},
        "alert",
    )
    await client.close()
    assert svc.port is not None
    jwt_alerts = await _alerts_of(svc.port, _token("alice", int(time.time()) + 300))
    ids = {a["id"] for a in jwt_alerts}
    if prefix is None:
        assert created["alert"]["id"] not in ids  # a token for "alice" is another user
    else:
        assert created["alert"]["id"] in ids  # configured to be the same users


# --- settings -----------------------------------------------------------------------------------


async def test_cors_origins_as_a_json_list(service_factory: Any) -> None:
    svc: SingleService = await service_factory(
        cors_origins='["http://a.example", "http://b.example:3000"]'
    )
    client = await Client.connect(
        f"ws://127.0.0.1:{svc.port}/ws/stream", origin="http://b.example:3000"
    )
    assert (await client.recv())["type"] == "connection"
    await client.close()


def test_rate_limit_says_how_many_messages_were_dropped() -> None:
    hub, _, clock = _hub(message_rate=5.0, message_burst=10)
    peer = RecordingPeer()
    session = hub.connect(peer, Endpoint.STREAM, "t")
    assert session is not None
    for _ in range(14):
        hub.receive(session, b'{"type":"ping"}')
    clock.advance(1.0)
    hub.receive(session, b'{"type":"ping","timestamp":"later"}')
    msgs = peer.messages()
    errors = [m for m in msgs if m["type"] == "error"]
    assert [e["details"]["dropped"] for e in errors] == [1, 4]  # the first, then the total
    assert "4 messages in a row were not processed" in str(errors[1]["message"])
    assert msgs[-1]["type"] == "pong" and msgs[-1]["client_timestamp"] == "later"
    assert sum(1 for m in msgs if m["type"] == "pong") == 11


def test_a_flood_read_a_slice_at_a_time_is_still_closed() -> None:
    """A flood is read in slices (server/connection.py); between slices a few tokens come back,
    so no run of refusals is long, yet the flood must end in the rate-limit close."""
    hub, _, clock = _hub(message_rate=50.0, message_burst=100)
    peer = RecordingPeer()
    session = hub.connect(peer, Endpoint.STREAM, "t")
    assert session is not None
    slices = 0
    while not peer.closed and slices < 100:
        for _ in range(60):  # 60 messages per slice, a slice every 40 ms: 1,500 a second
            hub.receive(session, b'{"type":"ping"}')
        clock.advance(0.04)
        slices += 1
    assert peer.closed is not None and peer.closed[0] == CloseCode.RATE_LIMITED
    assert slices < 10  # 200 refusals net of the drain (48 a slice): the fifth or sixth slice
    # A client just over the rate is throttled, never closed: its refusals drain.
    steady = RecordingPeer()
    other = hub.connect(steady, Endpoint.STREAM, "u")
    assert other is not None
    for _ in range(3000):  # 60 a second for 50 s against a rate of 50
        hub.receive(other, b'{"type":"ping"}')
        clock.advance(1 / 60)
    assert not steady.closed
