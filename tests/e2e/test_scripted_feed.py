"""End to end with a scripted feed: exact candles over the wire, feed states in /health."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.fakes import ScriptedFeed, tick
from tests.helpers import Client, ahttp_get, is_type
from tickhub.app.roles import SingleService
from tickhub.core.model import IST, FeedState


async def _start(tmp_path: Any, **overrides: Any) -> tuple[SingleService, ScriptedFeed]:
    from tests.conftest import make_settings

    feed = ScriptedFeed()
    svc = SingleService(make_settings(tmp_path, **overrides), feed=feed)
    await svc.start()
    await feed.running.wait()
    return svc, feed


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2025, 1, 27, hh, mm, ss, tzinfo=IST)


async def test_candles_over_the_wire_match_the_script(tmp_path: Any) -> None:
    svc, feed = await _start(tmp_path)
    try:
        client = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
        await client.send({"type": "subscribe", "symbol": "RELIANCE", "interval": "5m"})
        await client.wait_for(is_type("subscription"))
        # 09:15-09:19:59 is one 5m bucket; cumulative volume 1000 -> 1600 gives 600 after the
        # first tick (which only sets the reference).
        feed.push(
            tick("RELIANCE", at(9, 15, 1), 101.0, 1000),
            tick("RELIANCE", at(9, 16, 30), 103.5, 1200),
            tick("RELIANCE", at(9, 18, 0), 99.0, 1500),
            tick("RELIANCE", at(9, 19, 59), 100.5, 1600),
            tick("RELIANCE", at(9, 20, 0), 102.0, 1700),
        )
        closed = await client.wait_for(
            lambda m: m.get("data_type") == "candle_data" and m["data"]["closed"]
        )
        assert closed["data"] == {
            "interval": "5m",
            "start": "2025-01-27T03:45:00.000Z",
            "open": 101.0,
            "high": 103.5,
            "low": 99.0,
            "close": 100.5,
            "volume": 600,
            "closed": True,
            "price": 100.5,  # = close: a tick_data-style reader finds a price on every message
        }
        forming = await client.wait_for(lambda m: m.get("data_type") == "candle_data")
        assert forming["data"]["start"] == "2025-01-27T03:50:00.000Z"
        assert forming["data"]["volume"] == 100 and forming["data"]["closed"] is False
        ticks = [m for m in client.seen if m.get("data_type") == "tick_data"]
        assert [t["data"]["price"] for t in ticks] == [101.0, 103.5, 99.0, 100.5, 102.0]
        assert ticks[2]["data"]["change"] == -1.0 and ticks[2]["data"]["change_percent"] == -1.0
        seqs = [m["seq"] for m in client.seen if m.get("type") == "data"]
        assert seqs == list(range(1, len(seqs) + 1))
        await client.close()
    finally:
        await svc.stop()


async def test_feed_state_reaches_clients_and_health(tmp_path: Any) -> None:
    svc, feed = await _start(tmp_path)
    assert svc.port is not None
    try:
        client = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
        await client.recv()
        feed.push(tick("RELIANCE", at(9, 15, 1), 101.0, 1000))
        status, _, body = await ahttp_get(svc.port, "/health")
        assert status == 200 and body["feed"]["state"] == "live"
        feed.set_status(FeedState.RECONNECTING, "upstream closed")
        msg = await client.wait_for(is_type("status"))
        assert msg["feed"] == "reconnecting" and msg["detail"] == "upstream closed"
        status, _, body = await ahttp_get(svc.port, "/health")
        assert status == 503 and body["status"] == "degraded"
        assert body["feed"]["state"] == "reconnecting"
        feed.set_status(FeedState.LIVE)
        assert (await client.wait_for(is_type("status")))["feed"] == "live"
        # The connection is still usable throughout.
        assert (await client.request({"type": "ping"}, "pong"))["type"] == "pong"
        await client.close()
    finally:
        await svc.stop()


async def test_bad_tick_is_logged_and_skipped(tmp_path: Any) -> None:
    svc, feed = await _start(tmp_path)
    try:
        client = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
        await client.send({"type": "subscribe", "symbol": "RELIANCE"})
        await client.wait_for(is_type("subscription"))
        naive = tick("RELIANCE", datetime(2025, 1, 27, 9, 15), 101.0, 1000)
        feed.push(naive, tick("RELIANCE", at(9, 15, 2), 102.0, 1100))
        msg = await client.wait_for(lambda m: m.get("data_type") == "tick_data")
        assert msg["data"]["price"] == 102.0
        assert svc.ingest.tick_errors == 1
        await client.close()
    finally:
        await svc.stop()


async def test_feed_streams_what_clients_want_reference_counted(tmp_path: Any) -> None:
    svc, feed = await _start(tmp_path, demo_portfolio=False)
    infy, nifty, sbin = 408065, 256265, 779521
    try:
        # The benchmark index is always wanted (beta needs it); nothing else yet.
        assert feed.subscribed == {nifty}
        a = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
        b = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/analysis")
        await a.request({"type": "subscribe", "symbol": "INFY"}, "subscription")
        await b.request({"type": "subscribe", "symbol": "INFY", "interval": "5m"}, "subscription")
        assert feed.subscribed == {nifty, infy}
        await a.request({"type": "unsubscribe", "symbol": "INFY"}, "subscription")
        assert infy in feed.subscribed  # still wanted by the analysis client
        await b.close()
        await a.request({"type": "ping"}, "pong")  # the server has processed b's close by now
        await _until(lambda: infy not in feed.subscribed)
        # A held position keeps its instrument streaming with no client at all.
        p = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/portfolio")
        await p.request(
            {"type": "set_position", "symbol": "SBIN", "quantity": 5, "average_price": 800},
            "position",
        )
        await p.close()
        assert sbin in feed.subscribed
        await a.close()
    finally:
        await svc.stop()


async def _until(cond: Any, timeout: float = 10.0) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline
        await asyncio.sleep(0.01)


async def test_a_failing_engine_skips_its_update_and_the_rest_goes_on(tmp_path: Any) -> None:
    svc, feed = await _start(tmp_path)
    try:

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("engine bug")

        svc.ingest.alerts.on_tick = broken  # type: ignore[method-assign]
        svc.ingest.analysis.on_candle = broken  # type: ignore[method-assign]
        client = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
        await client.request({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
        feed.push(tick("RELIANCE", at(9, 15, 1), 101.0, 1000))
        msg = await client.wait_for(lambda m: m.get("data_type") == "tick_data")
        assert msg["data"]["price"] == 101.0
        assert svc.ingest.engine_errors["alerts"] == 1
        assert svc.ingest.engine_errors["analysis"] >= 1
        assert svc.ingest.tick_errors == 0
        await client.close()
    finally:
        await svc.stop()
