"""``GET /candles`` over real HTTP (httpx, and curl as a client we did not write), served from
the store and the engine, in the single process and in a gateway; and the simulated past that
fills it (and the first analysis snapshot) from the start."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conformance.test_store_contract import pg_schema, pg_url  # noqa: F401
from tests.conftest import make_settings
from tests.e2e.cluster.test_cluster import _Shared
from tests.helpers import Client, wait_until
from tickhub.app.roles import GatewayService, IngestService, SingleService
from tickhub.bus.memory import MemoryBus
from tickhub.core.model import IST

MONDAY = "2025-01-27T09:15:00+05:30"
"""The sim's start in these tests: its past is the Thursday and Friday before."""
PAST_FIRST = datetime(2025, 1, 23, 9, 15, tzinfo=IST)
PAST_LAST = datetime(2025, 1, 24, 15, 29, tzinfo=IST)
CANDLE_KEYS = {"interval", "start", "open", "high", "low", "close", "volume", "closed"}


def start_of(candle: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(candle["start"])


async def get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        return await client.get(path)


def curl(port: int, path: str) -> tuple[int, dict[str, str], Any]:
    """``curl -i``: status, headers (lower-case names) and the JSON body."""
    assert shutil.which("curl") is not None
    out = subprocess.run(
        ["curl", "-sS", "-i", "--max-time", "10", f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    head, _, body = out.partition("\r\n\r\n")
    status_line, *lines = head.split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


@pytest.fixture
async def past(service_factory: Callable[..., Any]) -> SingleService:
    """A service whose simulated market has two sessions behind it, all of it in the store (the
    newest ``CANDLE_HISTORY`` of each series are served from memory at once; the rest once the
    writer has stored them, in the background, a moment after the start)."""
    svc: SingleService = await service_factory(sim_history_sessions=2, sim_start=MONDAY)
    writer = svc.producer.candle_writer
    await wait_until(lambda: writer.written >= 2 * 52 * 621 and writer.pending == 0, timeout=60)
    return svc


def past_only(port: int) -> str:
    """The query part that keeps the answer to the past (the live market adds candles)."""
    return "to=2025-01-24T15:29"


async def test_the_latest_candles_by_default_oldest_first_as_candle_data(
    past: SingleService,
) -> None:
    assert past.port is not None
    r = await get(past.port, f"/candles?symbol=reliance&{past_only(past.port)}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"symbol", "interval", "candles"}
    assert body["symbol"] == "RELIANCE" and body["interval"] == "1m"
    candles = body["candles"]
    assert len(candles) == 500  # the default limit: the newest 500 of the range
    assert all(set(c) >= CANDLE_KEYS and c["closed"] is True for c in candles)
    starts = [start_of(c) for c in candles]
    assert starts == sorted(set(starts))  # oldest first, each bucket once
    assert starts[-1] == PAST_LAST
    for c in candles:
        assert c["low"] <= min(c["open"], c["close"]) <= max(c["open"], c["close"]) <= c["high"]
    # A range ending before the newest closed candle is over: closed candles are final, so it
    # may be cached for a day. One ending at the newest may still grow (see below).
    over = await get(past.port, "/candles?symbol=RELIANCE&limit=2&to=2025-01-24T15:28")
    assert [start_of(c) for c in over.json()["candles"]] == [
        PAST_LAST - timedelta(minutes=2),
        PAST_LAST - timedelta(minutes=1),
    ]
    assert over.headers["cache-control"] == "public, max-age=86400"


async def test_curl_reads_the_same_answer(past: SingleService) -> None:
    assert past.port is not None
    path = f"/candles?symbol=TCS&interval=15m&limit=10&{past_only(past.port)}"
    status, headers, body = await asyncio.to_thread(curl, past.port, path)
    assert status == 200 and headers["content-type"] == "application/json"
    assert body == (await get(past.port, path)).json()
    assert [c["interval"] for c in body["candles"]] == ["15m"] * 10
    assert start_of(body["candles"][-1]) == datetime(2025, 1, 24, 15, 15, tzinfo=IST)


async def test_from_and_to_are_inclusive_in_iso_or_epoch_seconds(past: SingleService) -> None:
    assert past.port is not None
    lo, hi = datetime(2025, 1, 23, 10, 0, tzinfo=IST), datetime(2025, 1, 23, 10, 9, tzinfo=IST)
    iso = await get(past.port, "/candles?symbol=SBIN&from=2025-01-23T10:00:00&to=2025-01-23T10:09")
    epoch = await get(
        past.port, f"/candles?symbol=SBIN&from={lo.timestamp():.0f}&to={hi.timestamp():.0f}"
    )
    utc = await get(
        past.port, "/candles?symbol=SBIN&from=2025-01-23T04:30:00Z&to=2025-01-23T04:39Z"
    )
    assert iso.status_code == epoch.status_code == utc.status_code == 200
    candles = iso.json()["candles"]
    assert [start_of(c) for c in candles] == [lo + timedelta(minutes=m) for m in range(10)]
    assert epoch.json() == iso.json() == utc.json()
    # The whole past, by day: 375 minutes a session, two sessions.
    both = await get(past.port, f"/candles?symbol=SBIN&limit=5000&{past_only(past.port)}")
    assert len(both.json()["candles"]) == 750
    assert start_of(both.json()["candles"][0]) == PAST_FIRST
    daily = await get(past.port, f"/candles?symbol=SBIN&interval=1d&{past_only(past.port)}")
    assert [start_of(c).date().isoformat() for c in daily.json()["candles"]] == [
        "2025-01-23",
        "2025-01-24",
    ]


async def test_a_range_that_may_still_grow_is_cached_briefly(past: SingleService) -> None:
    assert past.port is not None
    r = await get(past.port, "/candles?symbol=INFY&limit=3")
    assert r.status_code == 200 and len(r.json()["candles"]) == 3
    assert r.headers["cache-control"] == "public, max-age=5"


@pytest.mark.parametrize(
    ("query", "status", "code", "says"),
    [
        ("", 400, "invalid_parameter", "symbol: required"),
        ("symbol=", 400, "invalid_parameter", "symbol: required"),
        ("symbol=RELIANCE&interval=2m", 400, "invalid_parameter", "interval: unknown interval"),
        ("symbol=RELIANCE&from=yesterday", 400, "invalid_parameter", "from: expected ISO 8601"),
        ("symbol=RELIANCE&to=nan", 400, "invalid_parameter", "to: expected ISO 8601"),
        ("symbol=RELIANCE&from=1e300", 400, "invalid_parameter", "from: expected ISO 8601"),
        ("symbol=RELIANCE&from=2025-01-24&to=2025-01-23", 400, "invalid_parameter", "from: must"),
        ("symbol=RELIANCE&limit=0", 400, "invalid_parameter", "limit: expected a whole number"),
        ("symbol=RELIANCE&limit=51", 400, "invalid_parameter", "from 1 to 50, got '51'"),
        ("symbol=RELIANCE&limit=-3", 400, "invalid_parameter", "limit: expected"),
        ("symbol=RELIANCE&limit=ten", 400, "invalid_parameter", "limit: expected"),
        ("symbol=RELIANCE&symbol=TCS", 400, "invalid_parameter", "symbol: given more than once"),
        ("symbol=NOPE", 404, "unknown_symbol", "unknown symbol: 'NOPE'"),
    ],
)
async def test_bad_parameters_get_a_clear_error(
    service_factory: Callable[..., Any], query: str, status: int, code: str, says: str
) -> None:
    svc: SingleService = await service_factory(candles_max_limit=50, candles_limit=20)
    assert svc.port is not None
    r = await get(svc.port, f"/candles?{query}")
    assert r.status_code == status
    body = r.json()
    assert body["status"] == "error" and body["code"] == code
    assert says in body["message"] and "\n" not in body["message"]
    assert r.headers["cache-control"] == "no-store"


async def test_limit_bounds_follow_the_settings(service_factory: Callable[..., Any]) -> None:
    svc: SingleService = await service_factory(
        sim_history_sessions=1, sim_start=MONDAY, candles_max_limit=50, candles_limit=20
    )
    assert svc.port is not None
    default = await get(svc.port, "/candles?symbol=ITC")
    top = await get(svc.port, "/candles?symbol=ITC&limit=50")
    one = await get(svc.port, "/candles?symbol=ITC&limit=1")
    assert len(default.json()["candles"]) == 20
    assert len(top.json()["candles"]) == 50
    assert len(one.json()["candles"]) == 1


async def test_the_first_analysis_snapshot_is_warm(past: SingleService) -> None:
    client = await Client.connect(f"ws://127.0.0.1:{past.port}/ws/analysis")
    try:
        await client.request({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
        first = await client.wait_for(lambda m: "history" in m.get("data", {}))
        history = first["data"]["history"]
        assert len(history) == 100
        assert start_of(history[-1]) == PAST_LAST or start_of(history[-1]) > PAST_LAST
        ind = first["data"]["technical_indicators"]
        for key in ("sma_20", "ema_20", "rsi_14", "macd", "atr_14"):
            assert isinstance(ind[key], float | dict), key
        assert ind["warmup"]["have"] >= 100
    finally:
        await client.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store both services open: SQLite in DATA_DIR, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "data" / "tickhub.sqlite3")
    return pg_url(request.getfixturevalue("pg_schema"))


async def test_candles_survive_a_restart(tmp_path: Path, store_url: str) -> None:
    """Candles a service closed are served by the next one on the same store, from the store
    alone: the new service's market starts a day later and has no past."""
    first = SingleService(
        make_settings(tmp_path, sim_start=MONDAY, sim_speed=600.0, store_url=store_url)
    )
    await first.start()
    try:
        client = await Client.connect(f"ws://127.0.0.1:{first.port}/ws/stream")
        await client.request({"type": "subscribe", "symbol": "HDFCBANK"}, "subscription")
        seen: list[dict[str, Any]] = []
        while len(seen) < 5:
            msg = await client.wait_for(
                lambda m: m.get("data_type") == "candle_data" and m["data"]["closed"], timeout=20
            )
            seen.append(msg["data"])
        await client.close()
    finally:
        await first.stop()  # writes what is still queued before the store closes

    second = SingleService(
        make_settings(tmp_path, sim_start="2025-01-28T09:15:00+05:30", store_url=store_url)
    )
    await second.start()
    try:
        assert second.port is not None
        r = await get(
            second.port, "/candles?symbol=HDFCBANK&from=2025-01-27T09:15&to=2025-01-27T15:30"
        )
        assert r.status_code == 200
        served = {c["start"]: c for c in r.json()["candles"]}
        for candle in seen:
            assert served[candle["start"]] == candle
    finally:
        await second.stop()


async def test_a_gateway_serves_the_candles_the_ingest_stores(tmp_path: Path) -> None:
    bus = MemoryBus()
    ingest = IngestService(
        make_settings(tmp_path, sim_history_sessions=1, sim_start=MONDAY, demo_portfolio=False),
        bus=_Shared(bus),
    )
    gateway = GatewayService(make_settings(tmp_path), bus=_Shared(bus))
    await ingest.start()
    await gateway.start()
    try:
        assert gateway.port is not None
        writer = ingest.producer.candle_writer
        await wait_until(lambda: writer.written > 0 and writer.pending == 0, timeout=30)
        r = await get(gateway.port, "/candles?symbol=LT&to=2025-01-24T15:29&limit=5000")
        assert r.status_code == 200
        candles = r.json()["candles"]
        assert len(candles) == 375
        assert start_of(candles[0]) == datetime(2025, 1, 24, 9, 15, tzinfo=IST)
        bad = await get(gateway.port, "/candles?symbol=LT&interval=7m")
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_parameter"
    finally:
        await gateway.stop()
        await ingest.stop()


async def test_fresh_candles_come_from_memory_before_the_store_has_them(
    service_factory: Callable[..., Any],
) -> None:
    """The store is written once a second; a candle that just closed is served at once, and
    never twice."""
    svc: SingleService = await service_factory(sim_start=MONDAY, sim_speed=600.0)
    assert svc.port is not None
    client = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
    try:
        await client.request({"type": "subscribe", "symbol": "ITC"}, "subscription")
        for _ in range(3):
            msg = await client.wait_for(
                lambda m: m.get("data_type") == "candle_data" and m["data"]["closed"], timeout=20
            )
            r = await get(svc.port, "/candles?symbol=ITC&limit=5000")
            candles = r.json()["candles"]
            starts = [c["start"] for c in candles]
            assert msg["data"]["start"] in starts
            assert starts == sorted(set(starts))
    finally:
        await client.close()


async def test_health_details_tell_the_candle_writer_s_progress(
    service_factory: Callable[..., Any],
) -> None:
    svc: SingleService = await service_factory(
        sim_history_sessions=1, sim_start=MONDAY, health_details=True, candle_queue=10_000
    )
    assert svc.port is not None
    # The past (32,292 candles) did not fit in a 10,000-candle queue: the oldest were dropped.
    r = await get(svc.port, "/health")
    store = r.json()["candle_store"]
    assert store["dropped"] == 52 * 621 - 10_000
    assert store["failures"] == 0
    writer = svc.producer.candle_writer
    await wait_until(lambda: writer.written >= 10_000, timeout=30)
    assert (await get(svc.port, "/health")).json()["candle_store"]["written"] >= 10_000
