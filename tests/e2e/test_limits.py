"""Every limit: its number, its setting, its error code, and that it is never a silent drop."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.helpers import Client, closed_with, is_type, wait_until
from tickhub.app.roles import SingleService
from tickhub.core.protocol import CloseCode


async def test_connections_per_ip_limit_tells_the_client_and_closes_4503(
    service_factory: Any,
) -> None:
    svc: SingleService = await service_factory(max_connections_per_ip=2)
    url = f"ws://127.0.0.1:{svc.port}/ws/stream"
    first, second = await Client.connect(url), await Client.connect(url)
    third = await Client.connect(url)
    assert (await third.recv())["type"] == "connection"
    err = await third.wait_for(is_type("error"))
    assert err["code"] == "limit_exceeded"
    assert err["details"] == {"limit": 2, "current": 2, "setting": "MAX_CONNECTIONS_PER_IP"}
    assert await closed_with(third) == CloseCode.LIMIT_EXCEEDED
    # A slot freed is a slot available again.
    await first.close()
    await second.request({"type": "ping"}, "pong")
    await wait_until(lambda: len(svc.hub) == 1)
    fourth = await Client.connect(url)
    assert (await fourth.request({"type": "ping"}, "pong"))["type"] == "pong"
    for c in (second, fourth):
        await c.close()


async def test_connection_attempt_rate_per_ip(service_factory: Any) -> None:
    svc: SingleService = await service_factory(connect_rate_per_ip=2.0)
    url = f"ws://127.0.0.1:{svc.port}/ws/stream"
    clients = [await Client.connect(url) for _ in range(5)]  # burst of 4 allowed (2 x rate)
    last = clients[-1]
    err = await last.wait_for(is_type("error"))
    assert err["code"] == "rate_limited" and err["details"]["setting"] == "CONNECT_RATE_PER_IP"
    assert await closed_with(last) == CloseCode.RATE_LIMITED
    for c in clients[:-1]:
        await c.close()


async def test_message_rate_error_then_close_if_it_continues(service_factory: Any) -> None:
    svc: SingleService = await service_factory(message_rate=5.0, message_burst=10)
    c = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
    await c.recv()
    for _ in range(12):
        await c.send({"type": "ping"})
    err = await c.wait_for(is_type("error"))
    assert err["code"] == "rate_limited"
    assert err["details"] == {"limit": 5.0, "burst": 10, "setting": "MESSAGE_RATE", "dropped": 1}
    pongs = [m for m in c.seen if m.get("type") == "pong"]
    assert len(pongs) == 10  # exactly the burst was served; nothing silently dropped
    for _ in range(40):
        await c.send({"type": "ping"})
    assert await closed_with(c) == CloseCode.RATE_LIMITED


async def test_idle_client_is_pinged_and_one_that_answers_stays(service_factory: Any) -> None:
    svc: SingleService = await service_factory(idle_timeout=3.0)
    # websockets answers pings by itself: this client never sends a message yet stays open.
    c = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
    await c.recv()
    # Pinged twice (a full timeout without a message) and still open: its pongs keep it alive.
    await wait_until(lambda: svc.hub.pings >= 2, timeout=30)
    assert len(svc.hub) == 1
    assert (await c.request({"type": "ping"}, "pong"))["type"] == "pong"
    await c.close()


async def test_client_that_answers_nothing_is_closed_with_4002(service_factory: Any) -> None:
    svc: SingleService = await service_factory(idle_timeout=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
    writer.write(
        b"GET /ws/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await writer.drain()
    await wait_until(lambda: len(svc.hub) == 1)
    # Read (never answering pings) until the server closes: the last frame is a close frame.
    data = b""
    while True:
        chunk = await asyncio.wait_for(reader.read(65536), 15)
        if not chunk:
            break
        data += chunk
    close_at = data.rfind(b"\x88")
    assert close_at > 0
    code = int.from_bytes(data[close_at + 2 : close_at + 4], "big")
    assert code == CloseCode.IDLE_TIMEOUT
    assert len(svc.hub) == 0
    writer.close()


async def test_metrics_are_prometheus_text(service: SingleService, connect: Any) -> None:
    c: Client = await connect()
    await c.send({"type": "subscribe", "symbol": "RELIANCE"})
    await c.wait_for(lambda m: m.get("type") == "data" and not m.get("snapshot"))
    await c.send("{bad")
    await c.wait_for(is_type("error"))
    assert service.port is not None
    text = await asyncio.to_thread(_get_text, service.port, "/metrics")
    assert 'tickhub_connections{endpoint="/ws/stream"} 1.0' in text
    assert 'tickhub_subscriptions{endpoint="/ws/stream"} 1.0' in text
    assert 'tickhub_errors_total{code="invalid_json"} 1.0' in text
    assert "tickhub_publish_to_send_seconds_bucket" in text
    assert 'tickhub_feed_state{feed="sim",state="live"} 1.0' in text
    sent = [ln for ln in text.splitlines() if ln.startswith("tickhub_messages_sent_total")]
    assert float(sent[0].split()[-1]) >= 2


def _get_text(port: int, path: str) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        return str(resp.read().decode())


async def test_heartbeat_ack_reports_this_clients_counters(connect: Any) -> None:
    c: Client = await connect()
    await c.recv()
    ack = await c.request({"type": "heartbeat"}, "heartbeat")
    assert ack["sent"] >= 1 and ack["dropped"] == 0 and ack["conflated"] == 0


async def test_binary_frames_count_against_the_message_rate(service_factory: Any) -> None:
    svc: SingleService = await service_factory(message_rate=5.0, message_burst=5)
    c = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
    await c.recv()
    for _ in range(8):
        await c.send(b"\x00\x01")
    await c.wait_for(lambda m: m.get("code") == "rate_limited")
    codes = [m["code"] for m in c.seen if m.get("type") == "error"]
    assert codes == ["unsupported_frame"] * 5 + ["rate_limited"]
    await c.close()
