"""Scale-out snapshots: a first subscriber on a gateway gets what a single process gives, and a
Redis that restarts empty gets the retained state back from the ingest within seconds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_settings
from tests.e2e.cluster.test_cluster import Cluster, _redis_bus, at
from tests.fakes import EarlySnapshotBus, RecordingPeer, ScriptedFeed, tick
from tests.helpers import Client, Msg, wait_until
from tests.unit.fanout.test_hub import _data
from tickhub.app.roles import SingleService
from tickhub.bus import BusMessage
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import Tick
from tickhub.core.topics import Endpoint
from tickhub.fanout import Hub, HubLimits
from tickhub.runtime.clock import ManualClock
from tickhub.server import text_frame

MARUTI = 2815745


def _ticks() -> list[Tick]:
    """Twelve minutes of MARUTI: four closed 3m candles and a forming one."""
    out = []
    for i in range(25):
        minute, second = divmod(i * 30, 60)
        price = 12000.0 + (i % 7) * 10 - (i % 3) * 5
        out.append(tick("MARUTI", at(9, 15 + minute, second), price, 100 + i, token=MARUTI))
    return out


SUBSCRIPTIONS: list[tuple[str, Msg]] = [
    ("/ws/analysis", {"type": "subscribe", "symbol": "MARUTI", "interval": "3m"}),
    (
        "/ws/analysis",
        {
            "type": "subscribe",
            "symbol": "MARUTI",
            "interval": "3m",
            "indicators": ["supertrend:3,2", "ema:3", "pivots"],
        },
    ),
    ("/ws/stream", {"type": "subscribe", "symbol": "MARUTI", "interval": "5m"}),
    ("/ws/alerts", {"type": "subscribe", "symbol": "MARUTI"}),
    ("/ws/portfolio", {"type": "subscribe", "symbol": "*"}),
]
IDS = ["analysis-3m", "analysis-3m-set", "stream-5m", "alerts", "portfolio-all"]


async def _subscribe(port: int, path: str, msg: Msg) -> Client:
    c = await Client.connect(f"ws://127.0.0.1:{port}{path}")
    await c.recv()  # welcome
    await c.send(msg)
    return c


def _entry(m: Msg) -> tuple[Any, ...]:
    """A data message's kind, snapshot flag, whether it carries history, and its data."""
    assert m.get("type") == "data", m
    return (m["data_type"], m.get("snapshot", False), "history" in m["data"], m["data"])


async def _snapshot(c: Client, count: int | None = None) -> list[tuple[Any, ...]]:
    """What the client got for its subscription: ``count`` messages (a gateway's snapshot may
    come after the answer to a ping), then whatever else arrives before the answer to a ping."""
    await c.wait_for(lambda m: m.get("type") == "subscription")
    got = [_entry(await c.recv(15)) for _ in range(count or 0)]
    await c.send({"type": "ping"})
    while (m := await c.recv(15)).get("type") != "pong":
        got.append(_entry(m))
    return got


async def _set_position(port: int) -> None:
    c = await Client.connect(f"ws://127.0.0.1:{port}/ws/portfolio")
    try:
        await c.recv()
        msg = {"type": "set_position", "symbol": "MARUTI", "quantity": 2, "average_price": 11900}
        saved = await c.request(msg, "position")
        assert saved["status"] == "saved"
    finally:
        await c.close()


@pytest.fixture
async def single(tmp_path: Path) -> AsyncIterator[tuple[SingleService, ScriptedFeed]]:
    feed = ScriptedFeed()
    svc = SingleService(make_settings(tmp_path / "single", demo_portfolio=False), feed=feed)
    await svc.start()
    await feed.running.wait()
    yield svc, feed
    await svc.stop()


@pytest.fixture
async def redis_cluster(tmp_path: Path, redis_prefix: str) -> AsyncIterator[Cluster]:
    cluster = Cluster(tmp_path, lambda: _redis_bus(redis_prefix))
    yield cluster
    await cluster.stop()


@pytest.mark.redis
@pytest.mark.parametrize(("path", "msg"), SUBSCRIPTIONS, ids=IDS)
async def test_a_first_subscriber_on_a_gateway_gets_the_single_process_snapshot(
    single: tuple[SingleService, ScriptedFeed], redis_cluster: Cluster, path: str, msg: Msg
) -> None:
    svc, feed = single
    await redis_cluster.start_ingest()
    gw = await redis_cluster.start_gateway()
    assert svc.port is not None and gw.port is not None
    if path == "/ws/portfolio":
        await _set_position(svc.port)
        await _set_position(gw.port)
    feed.push(*_ticks())
    redis_cluster.feed.push(*_ticks())
    await redis_cluster.settle()

    want = await _snapshot(await _subscribe(svc.port, path, msg))
    assert want and all(snapshot for _, snapshot, _, _ in want), want
    # The first subscriber on the gateway, and a second one right behind it.
    first = await _subscribe(gw.port, path, msg)
    second = await _subscribe(gw.port, path, msg)
    redis_cluster.clients += [first, second]
    assert await _snapshot(first, len(want)) == want
    assert await _snapshot(second, len(want)) == want
    if path == "/ws/analysis":
        assert [h for _, _, h, _ in want] == [False, True]  # the analysis, then its history


@pytest.mark.redis
async def test_a_subscriber_after_the_topic_was_dropped_gets_fresh_state(
    redis_cluster: Cluster,
) -> None:
    """The retained copy of a topic nobody watched is stale: the first subscriber waits for the
    ingest's current state instead of getting the old one."""
    await redis_cluster.start_ingest()
    gw = await redis_cluster.start_gateway()
    assert gw.port is not None
    ticks = _ticks()
    redis_cluster.feed.push(*ticks[:10])
    msg = {"type": "subscribe", "symbol": "MARUTI", "interval": "1m"}
    c = await _subscribe(gw.port, "/ws/stream", msg)
    await _snapshot(c)
    await c.close()
    await redis_cluster.settle()
    redis_cluster.feed.push(*ticks[10:])  # unwatched: no tick state is published
    await redis_cluster.settle()
    again = await _subscribe(gw.port, "/ws/stream", msg)
    redis_cluster.clients.append(again)
    got = await _snapshot(again, 3)  # tick, market data, candle
    prices = [d["price"] for kind, _, _, d in got if kind == "tick_data"]
    assert prices == [ticks[-1].price]
    assert all(snapshot for _, snapshot, _, _ in got)


# --- Redis restarts empty -------------------------------------------------------------------------


@pytest.mark.redis
async def test_after_redis_restarts_empty_new_subscribers_get_a_snapshot_within_seconds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.unit.bus.test_redis import RedisServer, _free_port

    server = RedisServer(_free_port())
    await server.start()
    cluster = Cluster(tmp_path, lambda: _redis_bus("restart", server.url))
    try:
        await cluster.start_ingest()
        gw = await cluster.start_gateway()
        assert gw.port is not None
        watchers = [await _subscribe(gw.port, path, msg) for path, msg in SUBSCRIPTIONS]
        cluster.clients += watchers
        for w in watchers:
            await w.wait_for(lambda m: m.get("type") == "subscription")
        await _set_position(gw.port)
        cluster.feed.push(*_ticks())
        await cluster.settle()

        await server.kill()
        await watchers[0].wait_for(lambda m: m.get("feed") == "reconnecting", 30)
        # A snapshot asked for during the outage (a topic new to the gateway, so it must read
        # Redis): one warning line, not a traceback.
        caplog.set_level(logging.WARNING)
        late = await _subscribe(gw.port, "/ws/stream", {"type": "subscribe", "symbol": "INFY"})
        cluster.clients.append(late)
        await late.wait_for(lambda m: m.get("type") == "subscription")
        await wait_until(
            lambda: any("no snapshot for stream:INFY:1m" in r.getMessage() for r in caplog.records)
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        await server.start()
        ingest = cluster.ingest
        assert ingest is not None
        # Back: the ingest republishes as soon as its bus is connected again.
        await wait_until(lambda: bool(getattr(ingest.bus, "connected", False)), 10)
        await watchers[0].wait_for(
            lambda m: m.get("type") == "status" and m["feed"] != "reconnecting", 30
        )
        await cluster.settle()
        for path, msg in SUBSCRIPTIONS:
            c = await _subscribe(gw.port, path, msg)
            cluster.clients.append(c)
            got = await _snapshot(c)
            assert got and all(snapshot for _, snapshot, _, _ in got), (path, got)
            if path == "/ws/analysis":
                assert [h for _, _, h, _ in got] == [False, True]
        assert loop.time() - started < 5
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    finally:
        await cluster.stop()
        await server.kill()


@pytest.mark.redis
async def test_without_an_ingest_a_first_subscriber_waits_at_most_the_ready_timeout(
    redis_cluster: Cluster,
) -> None:
    gw = await redis_cluster.start_gateway()
    assert gw.port is not None
    gw.demand_relay.timeout = 0.3
    loop = asyncio.get_running_loop()
    started = loop.time()
    c = await _subscribe(gw.port, "/ws/stream", {"type": "subscribe", "symbol": "MARUTI"})
    redis_cluster.clients.append(c)
    await c.wait_for(lambda m: m.get("type") == "subscription")
    await wait_until(lambda: gw.demand_relay.unanswered == 1)
    assert loop.time() - started >= 0.3
    # The client was not left waiting: once an ingest runs, its live messages arrive.
    await redis_cluster.start_ingest()
    await redis_cluster.settle()
    redis_cluster.feed.push(tick("MARUTI", at(9, 15, 1), 12000.0, 10, token=MARUTI))
    live = await c.wait_for(lambda m: m.get("data_type") == "tick_data", 20)
    assert live["data"]["price"] == 12000.0


# --- the merge of a fetched snapshot with what was held meanwhile (one hub, no Redis) -------------


async def test_what_arrives_after_the_snapshot_was_read_follows_it_live() -> None:
    bus = EarlySnapshotBus()
    hub = Hub(bus, InstrumentRegistry.bundled(), ManualClock(), text_frame, HubLimits())
    t = "stream:INFY:1m"
    bus.publish(BusMessage(t, _data(5, "candle_data"), "candle:a", "candle", seq=5))
    bus.publish(BusMessage(t, _data(6, "tick_data"), "tick", "tick", seq=6))
    peer = RecordingPeer()
    s = hub.connect(peer, Endpoint.STREAM, "t")
    assert s is not None
    hub.receive(s, b'{"type":"subscribe","symbol":"INFY"}')
    await wait_until(lambda: bool(bus.retained_calls))
    bus.publish(BusMessage(t, _data(7, "tick_data"), "tick", "tick", seq=7))  # newer state
    bus.publish(BusMessage(t, _data(8, "alert"), None, seq=8))  # an event
    bus.release.set()
    await wait_until(lambda: len([m for m in peer.messages() if m["type"] == "data"]) == 4)
    data = [m for m in peer.messages() if m["type"] == "data"]
    assert [(m["seq"], bool(m.get("snapshot"))) for m in data] == [
        (5, True),
        (6, True),
        (7, False),
        (8, False),
    ]
