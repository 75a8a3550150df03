"""HTTP routes and the WebSocket Origin check, against a real server."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import websockets
from websockets.typing import Origin

from tests.helpers import Client, ahttp_get, is_type
from tickhub.app.roles import SingleService


async def test_public_health_is_minimal_no_pid_or_counters(
    service: SingleService, connect: Any
) -> None:
    client: Client = await connect()
    await client.send({"type": "subscribe", "symbol": "RELIANCE"})
    await client.wait_for(lambda m: m.get("type") == "data" and not m.get("snapshot"))
    assert service.port is not None
    status, headers, body = await ahttp_get(service.port, "/health")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert body["status"] == "ok"
    assert body["version"] == "0.1.0"
    assert body["feed"]["name"] == "sim"
    assert body["feed"]["state"] == "live"
    assert body["feed"]["market_time"]  # the dashboard's clock reads it
    assert set(body) == {"status", "service", "role", "version", "timestamp", "feed"}
    assert set(body["feed"]) == {"name", "state", "market_time"}


@pytest.mark.parametrize("how", ["admin_key", "health_details"])
async def test_health_details_for_operators(service_factory: Any, how: str) -> None:
    if how == "admin_key":
        svc = await service_factory(admin_key="ops-secret")
        headers = {"Authorization": "Bearer ops-secret"}
        _, _, public = await ahttp_get(svc.port, "/health")
        assert "pid" not in public  # without the key: the public body
    else:
        svc = await service_factory(health_details=True)
        headers = {}
    client = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
    try:
        await client.send({"type": "subscribe", "symbol": "RELIANCE"})
        await client.wait_for(lambda m: m.get("type") == "data" and not m.get("snapshot"))
        status, _, body = await ahttp_get(svc.port, "/health", headers)
    finally:
        await client.close()
    assert status == 200
    assert body["pid"] == os.getpid()
    assert body["uptime_seconds"] >= 0
    assert body["connections"] == 1
    assert body["feed"]["last_tick_age_seconds"] is not None


async def test_connections_lists_each_client(service: SingleService, connect: Any) -> None:
    a: Client = await connect("/ws/stream")
    b: Client = await connect("/ws/alerts")
    await a.send({"type": "subscribe", "symbols": ["RELIANCE", "INFY"]})
    await a.wait_for(is_type("subscription", symbol="INFY"))
    await b.recv()
    assert service.port is not None
    status, _, body = await ahttp_get(service.port, "/connections")
    assert status == 200
    assert body["total"] == 2
    assert body["endpoints"]["/ws/stream"] == 1 and body["endpoints"]["/ws/alerts"] == 1
    conns = {c["endpoint"]: c for c in body["connections"]}
    stream = conns["/ws/stream"]
    assert stream["subscriptions"] == ["RELIANCE@1m", "INFY@1m"]
    assert stream["remote"].startswith("127.0.0.1:")
    assert stream["messages_sent"] >= 3
    for key in ("id", "connected_since", "dropped", "conflated"):
        assert key in stream


async def test_test_route_pushes_probe_and_reports_endpoints(
    service: SingleService, connect: Any
) -> None:
    client: Client = await connect()
    await client.send({"type": "subscribe", "symbol": "RELIANCE"})
    await client.wait_for(lambda m: m.get("type") == "data" and not m.get("snapshot"))
    assert service.port is not None
    status, _, body = await ahttp_get(service.port, "/test")
    assert status == 200
    assert body["probe"]["ok"] is True and body["probe"]["state"] == "delivered"
    assert set(body["endpoints"]) == {"/ws/stream", "/ws/analysis", "/ws/alerts", "/ws/portfolio"}
    assert body["status"] == "ok"


async def test_unknown_route_is_404_json(service: SingleService) -> None:
    assert service.port is not None
    status, _, body = await ahttp_get(service.port, "/nope")
    assert status == 404 and body["code"] == "not_found"


async def test_plain_get_on_websocket_endpoint_is_426(service: SingleService) -> None:
    assert service.port is not None
    status, _headers, body = await ahttp_get(service.port, "/ws/stream")
    assert status == 426 and body["code"] == "upgrade_required"


async def test_allowed_origin_connects(service: SingleService) -> None:
    client = await Client.connect(
        f"ws://127.0.0.1:{service.port}/ws/stream", origin="http://allowed.example:3000"
    )
    assert (await client.recv())["type"] == "connection"
    await client.close()


async def test_absent_origin_connects(service: SingleService) -> None:
    client = await Client.connect(f"ws://127.0.0.1:{service.port}/ws/portfolio")
    assert (await client.recv())["type"] == "connection"
    await client.close()


@pytest.mark.parametrize("path", ["/ws/stream", "/ws/analysis", "/ws/alerts", "/ws/portfolio"])
async def test_forbidden_origin_is_refused_with_403(service: SingleService, path: str) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(
            f"ws://127.0.0.1:{service.port}{path}", origin=Origin("http://evil.example")
        )
    assert info.value.response.status_code == 403
    assert json.loads(info.value.response.body)["code"] == "origin_not_allowed"


async def test_cors_headers_only_for_allowed_origins(service: SingleService) -> None:
    assert service.port is not None
    _, headers, _ = await ahttp_get(
        service.port, "/health", {"Origin": "http://allowed.example:3000"}
    )
    assert headers["Access-Control-Allow-Origin"] == "http://allowed.example:3000"
    _, headers, _ = await ahttp_get(service.port, "/health", {"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in headers


async def test_star_allows_any_origin(service_factory: Any) -> None:
    svc = await service_factory(cors_origins="*")
    client = await Client.connect(
        f"ws://127.0.0.1:{svc.port}/ws/stream", origin="http://anything.example"
    )
    assert (await client.recv())["type"] == "connection"
    await client.close()


async def test_dashboard_and_instruments_are_served(service: SingleService) -> None:
    import urllib.request

    def get(path: str) -> tuple[int, str, bytes]:
        with urllib.request.urlopen(f"http://127.0.0.1:{service.port}{path}", timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read()

    status, ctype, body = await __import__("asyncio").to_thread(get, "/")
    assert status == 200 and ctype.startswith("text/html") and b"<html" in body.lower()
    status, ctype, body = await __import__("asyncio").to_thread(get, "/static/tickhub.js")
    assert status == 200 and "javascript" in ctype
    assert service.port is not None
    status, _, instruments = await ahttp_get(service.port, "/instruments")
    symbols = {i["symbol"]: i for i in instruments}
    assert symbols["RELIANCE"]["token"] == 738561 and symbols["NIFTY 50"]["tradable"] is False
    _, _, test = await ahttp_get(service.port, "/test")
    assert test["links"]["dashboard"] == "/"


async def test_the_dashboards_own_origin_may_open_websockets(service: SingleService) -> None:
    for host in ("localhost", "127.0.0.1"):
        client = await Client.connect(
            f"ws://127.0.0.1:{service.port}/ws/stream", origin=f"http://{host}:{service.port}"
        )
        assert (await client.recv())["type"] == "connection"
        await client.close()
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(
            f"ws://127.0.0.1:{service.port}/ws/stream",
            origin=Origin(f"http://evil.example:{service.port}"),
        )
