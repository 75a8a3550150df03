"""KiteFeed against the Kite emulator, over real sockets on 127.0.0.1, in the test's event loop.

No sleep is used to synchronise: tests wait for statuses, ticks or emulator state with generous
timeouts. The only sleeps are observation windows for "nothing happens" assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from datetime import datetime, time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FeedRecorder as Recorder
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import IST, FeedState
from tickhub.devtools.kite_emulator import KiteEmulator
from tickhub.feeds.base import Feed
from tickhub.feeds.kite.client import KiteFeed, nse_market_hours
from tickhub.feeds.kite.subscriptions import plan_subscriptions

REGISTRY = InstrumentRegistry.bundled().subset(
    ["RELIANCE", "INFY", "TCS", "HDFCBANK", "SBIN", "ITC", "NIFTY 50"]
)
RELIANCE, INFY, TCS, HDFCBANK, SBIN, ITC, NIFTY = (
    REGISTRY.resolve(name)
    for name in ("RELIANCE", "INFY", "TCS", "HDFCBANK", "SBIN", "ITC", "NIFTY 50")
)
# A Monday session start: the simulated day does not roll over (volume reset) during a test.
START = datetime(2025, 1, 27, 9, 15, tzinfo=IST)
TIMEOUT = 20.0
ALWAYS_OPEN: Callable[[datetime], bool] = lambda now: True  # noqa: E731
ALWAYS_CLOSED: Callable[[datetime], bool] = lambda now: False  # noqa: E731


@pytest.fixture
async def emulator() -> AsyncIterator[KiteEmulator]:
    emu = KiteEmulator(REGISTRY, speed=60.0, heartbeat_interval=0.2, start=START)
    await emu.start()
    yield emu
    await emu.stop()


def make_feed(emulator: KiteEmulator, **overrides: Any) -> KiteFeed:
    options: dict[str, Any] = {
        "api_key": "test_key",
        "access_token": "test_token",
        "url": emulator.url,
        "stale_after": 1.0,
        "backoff_initial": 0.05,
        "backoff_max": 0.5,
        "market_hours": ALWAYS_OPEN,
        "rng": random.Random(7),
        "token_poll_interval": 0.05,
    }
    options.update(overrides)
    registry = options.pop("registry", REGISTRY)
    return KiteFeed(registry, **options)


@contextlib.asynccontextmanager
async def running(feed: Feed) -> AsyncIterator[Recorder]:
    recorder = Recorder()
    task = asyncio.create_task(feed.run(recorder.on_tick, recorder.on_status), name="test-feed")
    try:
        yield recorder
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- pure parts ---------------------------------------------------------------------------------


def test_plan_subscriptions_subscribes_then_sets_modes_grouped_by_mode() -> None:
    desired = {3: "full", 1: "quote", 2: "full"}
    assert plan_subscriptions(desired, {}) == [  # type: ignore[arg-type]
        {"a": "subscribe", "v": [1, 2, 3]},
        {"a": "mode", "v": ["full", [2, 3]]},
        {"a": "mode", "v": ["quote", [1]]},
    ]
    upstream = {1: "quote", 2: "quote", 9: "full"}
    assert plan_subscriptions(desired, upstream) == [  # type: ignore[arg-type]
        {"a": "unsubscribe", "v": [9]},
        {"a": "subscribe", "v": [3]},
        {"a": "mode", "v": ["full", [2, 3]]},
    ]
    assert plan_subscriptions(desired, dict(desired)) == []  # type: ignore[arg-type]


def test_nse_market_hours_are_the_weekday_session_in_ist() -> None:
    monday = datetime(2025, 1, 27, tzinfo=IST).date()
    saturday = datetime(2025, 2, 1, tzinfo=IST).date()

    def at(day: Any, hhmm: str) -> datetime:
        return datetime.combine(day, time.fromisoformat(hhmm), IST)

    assert nse_market_hours(at(monday, "09:15"))
    assert nse_market_hours(at(monday, "15:29"))
    assert not nse_market_hours(at(monday, "09:14"))
    assert not nse_market_hours(at(monday, "15:30"))
    assert not nse_market_hours(at(saturday, "11:00"))


def test_feed_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="access_token or a token_file"):
        KiteFeed(REGISTRY, api_key="k")
    with pytest.raises(ValueError, match="unknown mode"):
        KiteFeed(REGISTRY, api_key="k", access_token="t", default_mode="depth")  # type: ignore[arg-type]
    feed = KiteFeed(REGISTRY, api_key="k", access_token="very-secret")
    assert "very-secret" not in repr(feed)


def test_repr_shows_neither_the_api_key_nor_the_token(tmp_path: Path) -> None:
    """Both are secrets in the settings; a repr ends up in logs and tracebacks."""
    feed = KiteFeed(REGISTRY, api_key="key-0123456789", access_token="token-9876543210")
    assert "key-0123456789" not in repr(feed) and "token-9876543210" not in repr(feed)
    assert repr(feed) == "<KiteFeed wss://ws.kite.trade state=starting>"
    token_file = tmp_path / "token"
    token_file.write_text("file-token-5555\n")
    from_file = KiteFeed(REGISTRY, api_key="key-0123456789", token_file=token_file)
    from_file.set_access_token("set-token-4444")
    text = repr(from_file)
    assert not any(s in text for s in ("key-0123456789", "file-token-5555", "set-token-4444"))


# -- streaming ----------------------------------------------------------------------------------


async def test_subscribe_streams_ticks_of_exactly_those_instruments(
    emulator: KiteEmulator,
) -> None:
    feed = make_feed(emulator)
    feed.subscribe([RELIANCE, INFY])
    async with running(feed) as rec:
        await rec.wait_state(FeedState.LIVE)
        await rec.wait_ticks(10, "RELIANCE")
        await rec.wait_ticks(10, "INFY")
        ticks = list(rec.ticks)
        status = feed.status()

    assert {t.symbol for t in ticks} == {"RELIANCE", "INFY"}
    for symbol, instrument in (("RELIANCE", RELIANCE), ("INFY", INFY)):
        mine = [t for t in ticks if t.symbol == symbol]
        sent = {(t.price, t.volume) for t in emulator.recent_ticks(instrument.instrument_token)}
        for tick in mine:
            assert tick.instrument_token == instrument.instrument_token
            assert tick.timestamp.utcoffset() is not None
            assert tick.price > 0
            assert (tick.price, tick.volume) in sent  # exactly what the market produced
        assert all(a.volume <= b.volume for a, b in pairwise(mine))
    assert set(emulator.kite_versions) == {"3"}
    assert status.state is FeedState.LIVE
    assert status.extra["connected"] == 1
    assert status.extra["subscribed_tokens"] == 2
    assert status.extra["parse_errors"] == 0
    assert status.last_tick_at is not None


async def test_full_mode_carries_depth_and_quote_mode_does_not(emulator: KiteEmulator) -> None:
    feed = make_feed(emulator)
    feed.subscribe([RELIANCE, NIFTY])
    feed.subscribe([INFY], mode="quote")
    async with running(feed) as rec:
        for symbol in ("RELIANCE", "INFY", "NIFTY 50"):
            await rec.wait_ticks(3, symbol)
        ticks = list(rec.ticks)

    assert emulator.subscriptions == {
        RELIANCE.instrument_token: "full",
        NIFTY.instrument_token: "full",
        INFY.instrument_token: "quote",
    }
    for tick in ticks:
        if tick.symbol == "RELIANCE":
            assert tick.depth is not None
            assert len(tick.depth.buy) == len(tick.depth.sell) == 5
            assert tick.depth.buy[0].price < tick.depth.sell[0].price
            assert tick.last_trade_time is not None
        elif tick.symbol == "INFY":
            assert tick.depth is None
            assert tick.volume > 0
        else:
            assert not tick.tradable
            assert tick.depth is None
            assert tick.volume == 0


async def test_unsubscribe_is_reference_counted(emulator: KiteEmulator) -> None:
    feed = make_feed(emulator)
    token = RELIANCE.instrument_token
    async with running(feed) as rec:
        feed.subscribe([RELIANCE])
        feed.subscribe([RELIANCE])
        await rec.wait_ticks(1, "RELIANCE")

        feed.unsubscribe([RELIANCE])
        # Messages are handled in order: once TCS is subscribed upstream, an unsubscribe of
        # RELIANCE sent before it would have been applied too.
        feed.subscribe([TCS])
        await emulator.wait_until(lambda: TCS.instrument_token in emulator.subscriptions)
        assert token in emulator.subscriptions

        feed.unsubscribe([RELIANCE])
        await emulator.wait_until(lambda: token not in emulator.subscriptions)
        assert feed.status().extra["subscribed_tokens"] == 1
    unsubscribes = [m for _, m in emulator.messages if m["a"] == "unsubscribe"]
    assert unsubscribes == [{"a": "unsubscribe", "v": [token]}]


async def test_calls_in_one_event_loop_turn_go_out_as_one_message(
    emulator: KiteEmulator,
) -> None:
    feed = make_feed(emulator)
    feed.subscribe([NIFTY])
    async with running(feed) as rec:
        await rec.wait_ticks(1, "NIFTY 50")
        seen = len(emulator.messages)
        for instrument in (RELIANCE, INFY, TCS, HDFCBANK):
            feed.subscribe([instrument])
        await emulator.wait_until(lambda: len(emulator.subscriptions) == 5)
        await emulator.wait_until(lambda: set(emulator.subscriptions.values()) == {"full"})

    tokens = sorted(i.instrument_token for i in (RELIANCE, INFY, TCS, HDFCBANK))
    assert [m for _, m in emulator.messages[seen:]] == [
        {"a": "subscribe", "v": tokens},
        {"a": "mode", "v": ["full", tokens]},
    ]


# -- supervision --------------------------------------------------------------------------------


async def test_emulator_restart_reconnects_and_resubscribes_every_token_in_its_mode(
    emulator: KiteEmulator,
) -> None:
    feed = make_feed(emulator)
    feed.subscribe([RELIANCE, INFY])
    feed.subscribe([NIFTY], mode="quote")
    expected = {
        RELIANCE.instrument_token: "full",
        INFY.instrument_token: "full",
        NIFTY.instrument_token: "quote",
    }
    async with running(feed) as rec:
        await rec.wait_ticks(1, "NIFTY 50")
        await emulator.wait_until(lambda: emulator.subscriptions == expected)
        port = emulator.port
        await emulator.stop()
        lost = await rec.wait_state(FeedState.RECONNECTING)

        restarted = KiteEmulator(
            REGISTRY, port=port, speed=60.0, heartbeat_interval=0.2, start=START
        )
        await restarted.start()
        try:
            await rec.wait_state(FeedState.LIVE, after=lost)
            await restarted.wait_until(lambda: restarted.subscriptions == expected)
            seen = len(rec.ticks)
            await rec.wait_ticks(3, after=seen)
        finally:
            await restarted.stop()
        status = feed.status()

    assert status.reconnects >= 1
    full = sorted([RELIANCE.instrument_token, INFY.instrument_token])
    assert [m for _, m in restarted.messages] == [
        {"a": "subscribe", "v": sorted(expected)},
        {"a": "mode", "v": ["full", full]},
        {"a": "mode", "v": ["quote", [NIFTY.instrument_token]]},
    ]


async def test_stalled_socket_is_detected_and_replaced(emulator: KiteEmulator) -> None:
    feed = make_feed(emulator)
    feed.subscribe([RELIANCE])
    async with running(feed) as rec:
        live = await rec.wait_state(FeedState.LIVE)
        await rec.wait_ticks(1)
        emulator.stall()  # the open socket goes silent: no ticks, no heartbeats
        lost = await rec.wait_state(FeedState.RECONNECTING, after=live + 1)
        await rec.wait_state(FeedState.LIVE, after=lost)
        seen = len(rec.ticks)
        await rec.wait_ticks(3, after=seen)

    assert "no frame" in rec.statuses[lost].detail
    assert emulator.handshakes >= 2


async def test_data_stall_in_market_hours_reports_stale_then_reconnects(
    emulator: KiteEmulator,
) -> None:
    feed = make_feed(emulator, market_hours=ALWAYS_OPEN)
    feed.subscribe([RELIANCE, INFY])
    async with running(feed) as rec:
        live = await rec.wait_state(FeedState.LIVE)
        await rec.wait_ticks(1)
        emulator.stall_data()  # heartbeats continue, ticks stop
        stale = await rec.wait_state(FeedState.STALE, after=live + 1)
        # Still no ticks after 3 x stale_after: the stream is taken for stuck and reopened.
        await rec.wait_state(FeedState.RECONNECTING, after=stale)
        emulator.resume()
        back = await rec.wait_state(FeedState.LIVE, after=stale)
        seen = len(rec.ticks)
        await rec.wait_ticks(3, after=seen)

    assert "no tick" in rec.statuses[stale].detail
    assert rec.statuses[back].extra["connected"] == 1
    assert emulator.handshakes >= 2


async def test_data_stall_outside_market_hours_raises_no_alarm(emulator: KiteEmulator) -> None:
    feed = make_feed(emulator, market_hours=ALWAYS_CLOSED)
    feed.subscribe([RELIANCE])
    async with running(feed) as rec:
        await rec.wait_state(FeedState.LIVE)  # ticks flow (the emulator ignores the clock)
        emulator.stall_data()
        closed = await rec.wait_state(FeedState.MARKET_CLOSED, after=len(rec.statuses))
        await asyncio.sleep(3.5)  # observation window: more than 3 x stale_after
        later = rec.states(closed)

    assert later == [FeedState.MARKET_CLOSED]
    assert emulator.handshakes == 1


async def test_a_reconnect_outside_market_hours_goes_from_reconnecting_to_live(
    emulator: KiteEmulator,
) -> None:
    """The socket dies (silent for ``stale_after``), so at the reconnect the last tick is older
    than ``stale_after``: the quiet before the first new tick is not a closed market."""
    feed = make_feed(emulator, market_hours=ALWAYS_CLOSED)
    feed.subscribe([RELIANCE])
    async with running(feed) as rec:
        await rec.wait_state(FeedState.LIVE)
        await rec.wait_ticks(1)
        emulator.stall()  # the sockets open now go silent; the next one works
        lost = await rec.wait_state(FeedState.RECONNECTING, after=len(rec.statuses))
        back = await rec.wait_state(FeedState.LIVE, after=lost)
        seen = len(rec.ticks)
        await rec.wait_ticks(1, after=seen)

    assert set(rec.states(lost)[: back - lost]) == {FeedState.RECONNECTING}
    waiting = [s.detail for s in rec.statuses[lost:back]]
    assert any("waiting for the first tick" in d for d in waiting), waiting
    assert emulator.handshakes == 2


async def test_expired_token_stops_retries_until_the_token_file_changes(
    emulator: KiteEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tickhub.feeds.kite")
    token_file = tmp_path / "access_token"
    token_file.write_text("test_token\n")
    feed = make_feed(emulator, access_token=None, token_file=token_file)
    feed.subscribe([RELIANCE])
    async with running(feed) as rec:
        await rec.wait_state(FeedState.LIVE)
        await rec.wait_ticks(1)
        emulator.expire_token("second_token")
        failed = await rec.wait_state(FeedState.AUTH_FAILED)
        await asyncio.sleep(0.5)  # observation window: ~10 token polls, no handshake
        attempts = emulator.rejected_handshakes

        token_file.write_text("second_token\n")
        await rec.wait_state(FeedState.LIVE, after=failed)
        seen = len(rec.ticks)
        await rec.wait_ticks(3, after=seen)

    assert attempts <= 2
    assert emulator.rejected_handshakes == attempts
    assert "rejected" in rec.statuses[failed].detail
    assert "test_token" not in caplog.text
    assert "second_token" not in caplog.text


async def test_missing_token_file_waits_without_handshakes_then_connects(
    emulator: KiteEmulator, tmp_path: Path
) -> None:
    token_file = tmp_path / "access_token"
    feed = make_feed(emulator, access_token=None, token_file=token_file)
    feed.subscribe([INFY])
    async with running(feed) as rec:
        failed = await rec.wait_state(FeedState.AUTH_FAILED)
        assert "no access token" in rec.statuses[failed].detail
        token_file.write_text("test_token")
        await rec.wait_state(FeedState.LIVE, after=failed)
        await rec.wait_ticks(1, "INFY")
    assert emulator.handshakes == 1


async def test_set_access_token_resumes_after_auth_failure(emulator: KiteEmulator) -> None:
    feed = make_feed(emulator, token_poll_interval=60.0)
    async with running(feed) as rec:
        await rec.wait_state(FeedState.LIVE)
        new = emulator.expire_token()
        failed = await rec.wait_state(FeedState.AUTH_FAILED)
        detail = rec.statuses[failed].detail
        assert "set KITE_ACCESS_TOKEN to it, then restart" in detail
        assert "KITE_TOKEN_FILE" in detail and "set_access_token" not in detail
        feed.set_access_token(new)  # wakes the feed at once, not at the next poll
        await rec.wait_state(FeedState.LIVE, after=failed)
    assert emulator.rejected_handshakes == 1


async def test_malformed_frames_are_counted_logged_once_and_skipped(
    emulator: KiteEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="tickhub.feeds.kite.client")
    feed = make_feed(emulator)
    feed.subscribe([RELIANCE])
    async with running(feed) as rec:
        await rec.wait_ticks(1)
        emulator.send_malformed()
        emulator.send_malformed()
        await rec.wait_for(
            lambda: feed.status().extra["parse_errors"] == 6, "six parse errors counted"
        )
        seen = len(rec.ticks)
        await rec.wait_ticks(3, after=seen)
        status = feed.status()

    assert status.state is FeedState.LIVE
    assert status.extra["errors"] == {"frame": 2, "packet": 2, "text": 2}
    messages = [r.getMessage() for r in caplog.records]
    assert sum("kite frame error" in m for m in messages) == 1  # throttled per kind
    assert sum("kite packet error" in m for m in messages) == 1
    assert sum("kite text error" in m for m in messages) == 1
    assert any("truncated" in m and "connection 0" in m for m in messages)
    assert any("unknown length 10 at offset" in m for m in messages)


async def test_ticks_of_tokens_missing_from_the_registry_are_counted(
    emulator: KiteEmulator,
) -> None:
    # The feed's instruments dump lacks ITC; the exchange (emulator) knows it.
    feed = make_feed(emulator, registry=REGISTRY.subset(["RELIANCE"]))
    feed.subscribe([ITC, RELIANCE])
    async with running(feed) as rec:
        await rec.wait_for(
            lambda: feed.status().extra["errors"].get("unknown_token", 0) > 0,  # type: ignore[attr-defined]
            "an unknown token counted",
        )
        seen = len(rec.ticks)
        await rec.wait_ticks(2, "RELIANCE", after=seen)
    assert {t.symbol for t in rec.ticks} == {"RELIANCE"}


async def test_sharding_spreads_tokens_and_refuses_past_the_limit(
    emulator: KiteEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="tickhub.feeds.kite.client")
    feed = make_feed(emulator, max_connections=2, max_per_connection=2)
    feed.subscribe([RELIANCE, INFY, TCS, HDFCBANK, SBIN])
    assert feed.rejected == {"NSE:SBIN"}
    assert any("refused" in r.getMessage() and "NSE:SBIN" in r.getMessage() for r in caplog.records)
    accepted = {i.instrument_token for i in (RELIANCE, INFY, TCS, HDFCBANK)}
    async with running(feed) as rec:
        live = await rec.wait_state(FeedState.LIVE)
        await emulator.wait_until(lambda: set(emulator.subscriptions) == accepted)
        per_connection = emulator.connection_subscriptions()
        assert emulator.connections == 2
        assert sorted(len(tokens) for tokens in per_connection.values()) == [2, 2]
        assert "refused" in rec.statuses[live].detail
        assert feed.status().extra["rejected"] == ["NSE:SBIN"]
        assert feed.status().extra["connected"] == 2

        # Room made by an unsubscribe is used by the next subscribe.
        feed.unsubscribe([HDFCBANK])
        feed.subscribe([SBIN])
        assert feed.rejected == set()
        accepted = accepted - {HDFCBANK.instrument_token} | {SBIN.instrument_token}
        await emulator.wait_until(lambda: set(emulator.subscriptions) == accepted)
        await rec.wait_ticks(1, "SBIN")
        assert "refused" not in feed.status().detail


async def test_cancelling_run_closes_connections_and_reports_stopped(
    emulator: KiteEmulator,
) -> None:
    feed = make_feed(emulator, max_connections=2, max_per_connection=1)
    feed.subscribe([RELIANCE, INFY])
    async with running(feed) as rec:
        await rec.wait_ticks(1, "INFY")
        await rec.wait_ticks(1, "RELIANCE")
        assert emulator.connections == 2
    assert rec.statuses[-1].state is FeedState.STOPPED
    assert feed.status().state is FeedState.STOPPED
    leftovers = [
        t.get_name()
        for t in asyncio.all_tasks()
        if t.get_name().startswith("kite-") and not t.get_name().startswith("kite-emulator")
    ]
    assert leftovers == []
    await emulator.wait_until(lambda: emulator.connections == 0)
