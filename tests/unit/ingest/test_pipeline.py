"""The producer's contract, driven tick by tick: what ``Ingest`` publishes on which topic.

Each test feeds ``Ingest.on_tick``/``on_status`` by hand (or through ``run`` with a scripted
feed), moves a manual clock for the throttles and ``flush``, and reads back the messages a bus
subscriber gets, decoded as a client would read them. Exchange time is IST (+05:30): 10:00 IST
is 04:30 UTC, which is how the wire writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fakes import T0, BusRecorder, RecordingBus, ScriptedFeed, StepClock, tick
from tests.helpers import seed_view
from tickhub.bus import Bus, BusMessage
from tickhub.bus.memory import MemoryBus
from tickhub.core import defaults
from tickhub.core.commands import CreateAlert, CreateAnalysisAlert, parse_command
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import Candle, FeedState, Interval
from tickhub.core.topics import ALL_SYMBOLS, Endpoint, topic
from tickhub.engines.alerts import Alert, AlertRules
from tickhub.engines.portfolio import Position
from tickhub.ingest.alerts import StoredAlerts
from tickhub.ingest.pipeline import Ingest
from tickhub.ingest.portfolio import StoredPortfolio
from tickhub.ingest.publisher import STATUS_TOPIC
from tickhub.runtime.clock import ManualClock
from tickhub.store.sqlite import SqliteStore

REGISTRY = InstrumentRegistry.bundled()
USER_ALERTS_ONLY = AlertRules(builtin_rules=frozenset())
"""No built-in rules: a firing in these tests is the user alert's, nothing else."""
INTERVAL = defaults.UPDATE_INTERVAL
Msg = dict[str, Any]


def _alert(symbol: str, condition: str, value: float) -> CreateAlert:
    """The checked ``create_alert`` a client sends, as the alerts engine takes it."""
    msg = {"type": "create_alert", "symbol": symbol, "condition": condition, "value": value}
    command = parse_command(msg, endpoint=Endpoint.ALERTS, registry=InstrumentRegistry.bundled())
    assert isinstance(command, CreateAlert), command
    return command


def at(seconds: float) -> datetime:
    """Exchange time ``seconds`` after 10:00:00 IST (on every intraday grid: 09:15 + 45 min)."""
    return T0 + timedelta(seconds=seconds)


def make(
    bus: Bus,
    clock: ManualClock,
    *,
    intervals: tuple[Interval, ...] = (Interval.M1,),
    alerts: StoredAlerts | None = None,
    portfolio: StoredPortfolio | None = None,
) -> Ingest:
    return Ingest(
        feed=ScriptedFeed(),
        registry=REGISTRY,
        bus=bus,
        clock=clock,
        intervals=intervals,
        update_interval=INTERVAL,
        alerts=alerts if alerts is not None else StoredAlerts(rules=USER_ALERTS_ONLY),
        portfolio=portfolio,
    )


def watch(ingest: Ingest, bus: Bus, t: str) -> BusRecorder:
    """Subscribe to ``t`` as the hub does for its first client: on the bus, then as demand."""
    recorder = BusRecorder()
    bus.subscribe(t, recorder)
    ingest.on_demand(t, True)
    return recorder


def decoded(recorder: BusRecorder, data_type: str | None = None) -> list[Msg]:
    out: list[Msg] = [orjson.loads(m.payload) for m in recorder.messages]
    return [m for m in out if data_type is None or m["data_type"] == data_type]


def closed(recorder: BusRecorder) -> list[Msg]:
    """The final updates of candles (``closed: true``), oldest first."""
    return [m["data"] for m in decoded(recorder, "candle_data") if m["data"]["closed"]]


def timed(bus: Bus, clock: ManualClock, t: str) -> list[tuple[float, Msg]]:
    """Every message of ``t`` with the clock's monotonic time when it was published."""
    log: list[tuple[float, Msg]] = []

    def handler(message: BusMessage) -> None:
        log.append((clock.monotonic(), orjson.loads(message.payload)))

    bus.subscribe(t, handler)
    return log


# --- ticks on the stream topics -------------------------------------------------------------------


def test_every_tick_is_published_on_each_wanted_stream_topic_numbered_by_one_per_topic() -> None:
    bus, clock = MemoryBus(), ManualClock()
    ingest = make(bus, clock, intervals=(Interval.M1, Interval.M5))
    one = watch(ingest, bus, "stream:RELIANCE:1m")
    five = watch(ingest, bus, "stream:RELIANCE:5m")
    prices = [2500.0, 2501.5, 2499.0, 2502.0, 2503.25]
    for i, price in enumerate(prices):
        clock.advance(0.4)
        ingest.on_tick(tick("RELIANCE", at(20 * i), price, 1000 + 10 * i))
        ingest.flush()

    for recorder, interval in ((one, "1m"), (five, "5m")):
        messages = decoded(recorder)
        # Ticks, candles and market data share the topic's numbering, with no gap or repeat.
        assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
        assert [m.seq for m in recorder.messages] == [m["seq"] for m in messages]
        assert {m["epoch"] for m in messages} == {ingest.publisher.epoch}
        assert {m["interval"] for m in messages} == {interval}
        ticks = decoded(recorder, "tick_data")
        assert [m["data"]["price"] for m in ticks] == prices  # none throttled, in order
        assert [m["timestamp"] for m in ticks] == [  # exchange time, in UTC on the wire
            "2025-01-27T04:30:00.000Z",
            "2025-01-27T04:30:20.000Z",
            "2025-01-27T04:30:40.000Z",
            "2025-01-27T04:31:00.000Z",
            "2025-01-27T04:31:20.000Z",
        ]


def test_a_new_producer_run_has_a_new_epoch_and_numbers_from_one_again() -> None:
    bus, clock = MemoryBus(), ManualClock()
    first = make(bus, clock)
    seen = watch(first, bus, "stream:INFY:1m")
    first.on_tick(tick("INFY", at(0), 1550.0, 10))
    first.on_tick(tick("INFY", at(1), 1551.0, 11))
    second = make(bus, clock)
    second.on_demand("stream:INFY:1m", True)
    second.on_tick(tick("INFY", at(2), 1552.0, 12))
    ticks = decoded(seen, "tick_data")
    assert [(m["epoch"], m["data"]["price"]) for m in ticks] == [
        (first.publisher.epoch, 1550.0),
        (first.publisher.epoch, 1551.0),
        (second.publisher.epoch, 1552.0),
    ]
    assert first.publisher.epoch != second.publisher.epoch
    assert ticks[-1]["seq"] < ticks[-2]["seq"]  # the new run counts on its own


def test_an_unwatched_symbol_publishes_no_state_but_every_closed_candle() -> None:
    bus, clock = MemoryBus(), ManualClock()
    ingest = make(bus, clock)
    listener = BusRecorder()
    bus.subscribe("stream:INFY:1m", listener)  # on the bus, but no client wants it
    ingest.on_tick(tick("INFY", at(0), 1550.0, 100))
    clock.advance(INTERVAL)
    ingest.on_tick(tick("INFY", at(30), 1552.0, 130))
    ingest.flush()
    assert listener.messages == []
    ingest.on_tick(tick("INFY", at(60), 1549.0, 150))
    messages = decoded(listener)
    assert [(m["data_type"], m["data"]["closed"], m["seq"]) for m in messages] == [
        ("candle_data", True, 1)
    ]


def test_a_topic_that_becomes_wanted_gets_its_current_state_at_once() -> None:
    bus, clock = MemoryBus(), ManualClock()
    ingest = make(bus, clock)
    ingest.on_tick(tick("INFY", at(0), 1550.0, 100))
    ingest.on_tick(tick("INFY", at(5), 1553.5, 120))
    late = watch(ingest, bus, "stream:INFY:1m")
    by_type = {m["data_type"]: m["data"] for m in decoded(late)}
    assert set(by_type) == {"tick_data", "market_data", "candle_data"}
    assert by_type["tick_data"]["price"] == by_type["market_data"]["price"] == 1553.5
    assert by_type["candle_data"]["close"] == 1553.5
    assert by_type["candle_data"]["volume"] == 20
    assert bus.retained_nowait("stream:INFY:1m")  # what the new subscriber's snapshot is


# --- candles --------------------------------------------------------------------------------------


def test_candles_close_exactly_at_the_boundary_with_volume_from_the_cumulative_day_volume() -> None:
    bus, clock = MemoryBus(), ManualClock()
    ingest = make(bus, clock, intervals=(Interval.M1, Interval.M5))
    one = watch(ingest, bus, "stream:RELIANCE:1m")
    five = watch(ingest, bus, "stream:RELIANCE:5m")
    script = [  # (seconds after 10:00 IST, price, cumulative day volume)
        (0.0, 2500.0, 10_000),  # the first tick seen: the reference, contributes nothing
        (30.0, 2504.0, 10_500),
        (45.0, 2503.0, 10_650),
        (59.9, 2498.5, 10_600),  # 10:00:59, still this minute; a lower count (a glitch) adds
        # nothing, and the next count is measured from the highest one seen
        (60.0, 2501.0, 10_700),  # 10:01:00 opens the next minute
        (299.0, 2507.0, 11_000),  # 10:04:59
        (300.0, 2506.0, 11_100),  # 10:05:00 closes the 10:04 minute and the 10:00 five minutes
    ]
    counts: list[int] = []
    for seconds, price, volume in script:
        ingest.on_tick(tick("RELIANCE", at(seconds), price, volume))
        counts.append(len(closed(one)))
    assert counts == [0, 0, 0, 0, 1, 2, 3]  # each minute closes at its boundary, not before

    def high(i: int) -> int:
        """The highest cumulative count seen up to tick ``i``."""
        return max(v for _, _, v in script[: i + 1])

    def traded(before: int, last: int) -> int:
        """A candle's volume: the count at its last tick past the count before its first (for
        the first candle, the first tick's: what traded before it is unknown)."""
        return high(last) - high(before)

    assert closed(one) == [
        {
            "interval": "1m",
            "start": "2025-01-27T04:30:00.000Z",
            "open": 2500.0,
            "high": 2504.0,
            "low": 2498.5,
            "close": 2498.5,
            "volume": traded(0, 3),  # 650
            "closed": True,
            "price": 2498.5,
        },
        {
            "interval": "1m",
            "start": "2025-01-27T04:31:00.000Z",
            "open": 2501.0,
            "high": 2501.0,
            "low": 2501.0,
            "close": 2501.0,
            "volume": traded(3, 4),  # 50
            "closed": True,
            "price": 2501.0,
        },
        {
            "interval": "1m",
            "start": "2025-01-27T04:34:00.000Z",
            "open": 2507.0,
            "high": 2507.0,
            "low": 2507.0,
            "close": 2507.0,
            "volume": traded(4, 5),  # 300
            "closed": True,
            "price": 2507.0,
        },
    ]
    assert closed(five) == [
        {
            "interval": "5m",
            "start": "2025-01-27T04:30:00.000Z",
            "open": 2500.0,
            "high": 2507.0,
            "low": 2498.5,
            "close": 2507.0,
            "volume": traded(0, 5),
            "closed": True,
            "price": 2507.0,
        }
    ]
    assert [c["volume"] for c in closed(one)] == [650, 50, 300]
    assert sum(c["volume"] for c in closed(one)) == closed(five)[0]["volume"] == 1000
    forming = decoded(one, "candle_data")[-1]["data"]
    assert (forming["start"], forming["closed"], forming["volume"]) == (
        "2025-01-27T04:35:00.000Z",
        False,
        100,
    )


def test_intraday_buckets_lie_on_the_ist_session_grid_whatever_the_tick_time_zone() -> None:
    """30m candles start at 09:15, 09:45... IST, i.e. 03:45, 04:15... UTC: a tick at 04:00:30
    UTC stays in the 09:15 candle, and 04:15:00 UTC (09:45 IST) closes it."""
    bus, clock = MemoryBus(), ManualClock()
    ingest = make(bus, clock, intervals=(Interval.M30,))
    half = watch(ingest, bus, "stream:RELIANCE:30m")
    for ts, price, volume in [
        (datetime(2025, 1, 27, 3, 50, tzinfo=UTC), 2500.0, 5_000),
        (datetime(2025, 1, 27, 4, 0, 30, tzinfo=UTC), 2510.0, 5_400),
        (datetime(2025, 1, 27, 4, 14, 59, tzinfo=UTC), 2490.0, 5_900),
    ]:
        ingest.on_tick(tick("RELIANCE", ts, price, volume))
    assert closed(half) == []
    ingest.on_tick(tick("RELIANCE", datetime(2025, 1, 27, 4, 15, tzinfo=UTC), 2495.0, 6_000))
    assert closed(half) == [
        {
            "interval": "30m",
            "start": "2025-01-27T03:45:00.000Z",
            "open": 2500.0,
            "high": 2510.0,
            "low": 2490.0,
            "close": 2490.0,
            "volume": 5_900 - 5_000,
            "closed": True,
            "price": 2490.0,
        }
    ]


def test_flush_closes_a_quiet_symbol_candle_once_market_time_passes_its_end() -> None:
    bus, clock = MemoryBus(), ManualClock()
    ingest = make(bus, clock)
    quiet = watch(ingest, bus, "stream:RELIANCE:1m")
    ingest.on_tick(tick("RELIANCE", at(10), 2500.0, 1_000))
    ingest.on_tick(tick("RELIANCE", at(20), 2502.0, 1_040))
    ingest.on_tick(tick("INFY", at(59.9), 1550.0, 10))
    ingest.flush()
    assert closed(quiet) == []
    ingest.on_tick(tick("INFY", at(60), 1551.0, 12))  # market time reaches 10:01:00
    assert closed(quiet) == []  # another symbol's tick does not touch this candle...
    ingest.flush()  # ...the timer does
    assert closed(quiet) == [
        {
            "interval": "1m",
            "start": "2025-01-27T04:30:00.000Z",
            "open": 2500.0,
            "high": 2502.0,
            "low": 2500.0,
            "close": 2502.0,
            "volume": 40,
            "closed": True,
            "price": 2502.0,
        }
    ]
    ingest.flush()
    assert len(closed(quiet)) == 1  # closed once


# --- throttling -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "data_type", "price_of"),
    [
        ("stream:RELIANCE:1m", "market_data", lambda d: d["price"]),
        ("stream:RELIANCE:1m", "candle_data", lambda d: d["close"]),
        ("analysis:RELIANCE:1m", "technical_analysis", lambda d: d["candle"]["close"]),
    ],
)
def test_state_updates_are_at_most_one_per_update_interval_and_the_last_is_not_lost(
    t: str, data_type: str, price_of: Callable[[Msg], float]
) -> None:
    bus, clock = MemoryBus(), ManualClock()
    ingest = make(bus, clock)
    log = timed(bus, clock, t)
    ingest.on_demand(t, True)
    prices = [2500.0 + i for i in range(13)]
    for i, price in enumerate(prices):  # four ticks per update interval, all in one minute
        clock.advance(INTERVAL / 4)
        ingest.on_tick(tick("RELIANCE", at(i), price, 1000 + i))
        ingest.flush()
    clock.advance(INTERVAL)
    ingest.flush()  # the last tick's update was held back: it goes out now
    clock.advance(INTERVAL)
    ingest.flush()  # and nothing is repeated once it is out

    updates = [(mono, m["data"]) for mono, m in log if m["data_type"] == data_type]
    times = [mono for mono, _ in updates]
    assert len(updates) >= 3  # throttled, not silenced
    assert all(b - a >= INTERVAL for a, b in itertools.pairwise(times))
    assert len(updates) <= (times[-1] - times[0]) / INTERVAL + 1
    assert price_of(updates[-1][1]) == prices[-1]
    assert [price_of(d) for _, d in updates] == sorted(price_of(d) for _, d in updates)
    if t.startswith("stream:"):
        assert [m["data"]["price"] for _, m in log if m["data_type"] == "tick_data"] == prices


def test_a_burst_then_silence_is_flushed_one_interval_after_the_last_update() -> None:
    bus, clock = MemoryBus(), ManualClock()
    ingest = make(bus, clock)
    stream = watch(ingest, bus, "stream:RELIANCE:1m")
    ingest.on_tick(tick("RELIANCE", at(0), 2500.0, 1000))
    clock.advance(INTERVAL / 10)
    ingest.on_tick(tick("RELIANCE", at(1), 2512.5, 1010))
    assert [m["data"]["price"] for m in decoded(stream, "market_data")] == [2500.0]
    clock.advance(INTERVAL / 2)
    ingest.flush()
    assert [m["data"]["price"] for m in decoded(stream, "market_data")] == [2500.0]
    clock.advance(INTERVAL / 2)
    ingest.flush()
    assert [m["data"]["price"] for m in decoded(stream, "market_data")] == [2500.0, 2512.5]


def test_topics_are_throttled_independently() -> None:
    bus, clock = MemoryBus(), ManualClock()
    ingest = make(bus, clock)
    reliance = watch(ingest, bus, "stream:RELIANCE:1m")
    infy = watch(ingest, bus, "stream:INFY:1m")
    ingest.on_tick(tick("RELIANCE", at(0), 2500.0, 1000))
    ingest.on_tick(tick("INFY", at(0), 1550.0, 500))
    ingest.on_tick(tick("RELIANCE", at(0), 2501.0, 1001))
    assert [m["data"]["price"] for m in decoded(reliance, "market_data")] == [2500.0]
    assert [m["data"]["price"] for m in decoded(infy, "market_data")] == [1550.0]


# --- feed status ----------------------------------------------------------------------------------


async def test_run_publishes_each_feed_state_change_once_and_flushes_on_the_clock() -> None:
    bus, clock, feed = MemoryBus(), StepClock(), ScriptedFeed()
    ingest = Ingest(
        feed=feed,
        registry=REGISTRY,
        bus=bus,
        clock=clock,
        intervals=(Interval.M1,),
        update_interval=INTERVAL,
        alerts=StoredAlerts(rules=USER_ALERTS_ONLY),
    )
    statuses = BusRecorder()
    bus.subscribe(STATUS_TOPIC, statuses)
    stream = watch(ingest, bus, "stream:RELIANCE:1m")
    task = asyncio.create_task(ingest.run())
    try:
        await asyncio.wait_for(feed.running.wait(), 5)
        await clock.wait_sleeps(1)
        feed.set_status(FeedState.LIVE, "again")  # the same state: no message
        assert ingest.feed_status.detail == "again"
        feed.set_status(FeedState.RECONNECTING, "socket closed")
        feed.set_status(FeedState.LIVE, "back")

        feed.push(tick("RELIANCE", at(0), 2500.0, 1000), tick("INFY", at(60), 1550.0, 10))
        assert closed(stream) == []
        # returns once the loop has flushed and waits again
        await clock.step(defaults.INGEST_FLUSH_PERIOD)
        assert [c["start"] for c in closed(stream)] == ["2025-01-27T04:30:00.000Z"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    messages = [orjson.loads(p) for p in statuses.payloads]
    assert [(m["type"], m["feed"], m["detail"]) for m in messages] == [
        ("status", "live", "scripted"),
        ("status", "reconnecting", "socket closed"),
        ("status", "live", "back"),
        ("status", "stopped", ""),
    ]
    assert ingest.feed_status.state is FeedState.STOPPED


# --- failures -------------------------------------------------------------------------------------


def test_a_tick_the_engines_reject_is_counted_and_the_next_tick_goes_through() -> None:
    bus, clock = MemoryBus(), ManualClock()
    ingest = make(bus, clock)
    stream = watch(ingest, bus, "stream:RELIANCE:1m")
    ingest.on_tick(tick("RELIANCE", datetime(2025, 1, 27, 10, 0), 2500.0, 1000))  # naive time
    assert (ingest.tick_errors, ingest.ticks_in) == (1, 0)
    assert stream.messages == []
    assert "RELIANCE" not in ingest.last_ticks and ingest.market_time is None

    ingest.on_tick(tick("RELIANCE", at(0), 2501.0, 1000))
    assert (ingest.tick_errors, ingest.ticks_in) == (1, 1)
    ticks = decoded(stream, "tick_data")
    assert [(m["seq"], m["data"]["price"]) for m in ticks] == [(1, 2501.0)]


@pytest.mark.parametrize("engine", ["alerts", "portfolio"])
def test_a_failing_engine_is_counted_and_the_tick_still_goes_out(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus, clock = MemoryBus(), ManualClock()
    ingest = make(bus, clock)
    stream = watch(ingest, bus, "stream:RELIANCE:1m")

    def broken(*_: object) -> list[object]:
        raise RuntimeError("engine bug")

    target = ingest.alerts if engine == "alerts" else ingest.portfolio
    monkeypatch.setattr(target, "on_tick", broken)
    ingest.on_tick(tick("RELIANCE", at(0), 2500.0, 1000))
    ingest.on_tick(tick("RELIANCE", at(1), 2501.0, 1001))
    assert ingest.engine_errors == {engine: 2}
    assert ingest.tick_errors == 0
    assert [m["data"]["price"] for m in decoded(stream, "tick_data")] == [2500.0, 2501.0]


# --- alerts ---------------------------------------------------------------------------------------


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "tickhub.sqlite3"


@contextlib.contextmanager
def opened(path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(path)
    try:
        yield store
    finally:
        store.close()


def triggered(recorder: BusRecorder) -> list[Msg]:
    return [m for m in decoded(recorder, "alert_data") if m.get("event") == "triggered"]


def test_an_alert_fires_once_is_saved_and_does_not_fire_again_after_a_restart(
    store_path: Path,
) -> None:
    bus, clock = RecordingBus(), ManualClock()
    with opened(store_path) as store:
        alerts = StoredAlerts(store, USER_ALERTS_ONLY)
        ingest = make(bus, clock, alerts=alerts)
        created = alerts.create("", _alert("RELIANCE", "above", 2500.0))
        assert isinstance(created, Alert)
        feed = watch(ingest, bus, "alerts:RELIANCE")
        for i, price in enumerate([2490.0, 2510.0, 2520.0, 2530.0]):
            clock.advance(INTERVAL)
            ingest.on_tick(tick("RELIANCE", at(i), price, 1000 + i))
            ingest.flush()

        (fired,) = triggered(feed)
        assert fired["data"]["alert"]["id"] == created.id
        assert fired["data"]["alert"]["triggered"] is True
        assert fired["data"]["alert"]["price"] == 2510.0
        assert fired["timestamp"] == "2025-01-27T04:30:01.000Z"  # the tick's exchange time
        (event_message,) = [
            m
            for m in bus.published
            if m.topic == "alerts:RELIANCE" and orjson.loads(m.payload).get("event") == "triggered"
        ]
        assert event_message.slot is None  # an event: never conflated
        (saved,) = store.events("RELIANCE", "", 10)
        assert (saved.alert.id, saved.price) == (created.id, 2510.0)

    with opened(store_path) as store:
        again = StoredAlerts(store, USER_ALERTS_ONLY)
        restarted = make(bus, clock, alerts=again)
        feed = watch(restarted, bus, "alerts:RELIANCE")
        (state,) = decoded(feed, "alert_data")  # the snapshot: the firing from before
        assert [e["id"] for e in state["data"]["recent_events"]] == [created.id]
        assert [a["fired"] for a in state["data"]["price_alerts"]] == [True]
        for i, price in enumerate([2540.0, 2480.0, 2550.0]):
            clock.advance(INTERVAL)
            restarted.on_tick(tick("RELIANCE", at(10 + i), price, 2000 + i))
            restarted.flush()
        assert triggered(feed) == []
        assert len(store.events("RELIANCE", "", 10)) == 1


def test_the_alert_list_is_sent_again_when_it_changed_and_not_on_every_tick() -> None:
    bus, clock = MemoryBus(), ManualClock()
    alerts = StoredAlerts(rules=USER_ALERTS_ONLY)
    created = alerts.create("", _alert("RELIANCE", "above", 2500.0))
    assert isinstance(created, Alert)
    ingest = make(bus, clock, alerts=alerts)
    feed = watch(ingest, bus, "alerts:RELIANCE")

    def states() -> list[Msg]:
        return [m["data"] for m in decoded(feed, "alert_data") if "event" not in m]

    for i, price in enumerate([2480.0, 2490.0, 2495.0, 2510.0, 2520.0]):
        clock.advance(INTERVAL)
        ingest.on_tick(tick("RELIANCE", at(i), price, 1000 + i))
        ingest.flush()
        if i == 2:
            assert len(states()) == 1  # the snapshot only: below the level nothing changed
    clock.advance(INTERVAL)
    ingest.flush()
    assert [[a["fired"] for a in s["price_alerts"]] for s in states()] == [[False], [True]]
    assert [e["id"] for e in states()[-1]["recent_events"]] == [created.id]
    assert len(triggered(feed)) == 1


def test_a_user_alert_fires_for_its_owner_only(store_path: Path) -> None:
    bus, clock = MemoryBus(), ManualClock()
    with opened(store_path) as store:
        alerts = StoredAlerts(store, USER_ALERTS_ONLY)
        ingest = make(bus, clock, alerts=alerts)
        created = alerts.create("u", _alert("INFY", "cross_up", 1600.0))
        assert isinstance(created, Alert)
        anonymous = watch(ingest, bus, "alerts:INFY")
        mine = watch(ingest, bus, topic(Endpoint.ALERTS, "INFY", owner="u"))
        theirs = watch(ingest, bus, topic(Endpoint.ALERTS, "INFY", owner="v"))
        ingest.on_tick(tick("INFY", at(0), 1590.0, 10))
        ingest.on_tick(tick("INFY", at(1), 1605.0, 20))
        assert [m["data"]["alert"]["id"] for m in triggered(mine)] == [created.id]
        assert triggered(anonymous) == [] and triggered(theirs) == []
        assert [e.alert.owner for e in store.events("INFY", "u", 10)] == ["u"]


# --- portfolio ------------------------------------------------------------------------------------


def money(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def test_positions_are_valued_from_ticks_on_the_symbol_and_the_all_symbols_topics() -> None:
    bus, clock = MemoryBus(), ManualClock()
    portfolio = StoredPortfolio(now=clock.now)
    quantity, average = 10, Decimal("2450.35")
    portfolio.set_position("", Position("RELIANCE", quantity, average, "CNC", "NSE"))
    portfolio.set_position("u", Position("RELIANCE", 99, Decimal("1"), "CNC", "NSE"))  # not ours
    ingest = make(bus, clock, portfolio=portfolio)
    one = watch(ingest, bus, "portfolio:RELIANCE")
    (unpriced,) = decoded(one, "position_data")  # on demand, before any price
    assert unpriced["data"]["position"]["last_price"] is None
    assert unpriced["data"]["position"]["current_value"] == money(quantity * average)
    every = watch(ingest, bus, topic(Endpoint.PORTFOLIO, ALL_SYMBOLS))

    prev = Decimal("2400")
    for seconds, price in [(0, Decimal("2500")), (1, Decimal("2512.5"))]:
        clock.advance(INTERVAL)
        ingest.on_tick(tick("RELIANCE", at(seconds), float(price), 1000, prev_close=float(prev)))
        data = decoded(one, "position_data")[-1]["data"]
        invested = quantity * average
        unrealized = (price - average) * quantity
        assert seed_view(data["position"]) == {
            "symbol": "RELIANCE",
            "quantity": quantity,
            "average_price": money(average),
            "last_price": float(price),
            "current_value": money(quantity * price),
            "invested_value": money(invested),
            "product": "CNC",
            "exchange": "NSE",
        }
        assert seed_view(data["pnl"]) == {
            "unrealized": money(unrealized),
            "unrealized_percent": money(unrealized / invested * 100),
            "day": money((price - prev) * quantity),
            "day_percent": money((price - prev) / prev * 100),
        }
        assert data["portfolio"]["positions"] == 1  # the other owner's position is not counted
        assert data["portfolio"]["total_value"] == money(quantity * price)
    held = decoded(every, "position_data")
    assert {m["symbol"] for m in held} == {"RELIANCE"}
    assert {m["subscription"] for m in held} == {ALL_SYMBOLS}
    assert held[-1]["data"]["position"]["last_price"] == 2512.5


# --- candles for the store, and a past -----------------------------------------------------------


def test_every_closed_candle_of_every_interval_goes_to_the_store_queue() -> None:
    bus, clock = MemoryBus(), ManualClock()
    queued: list[Candle] = []
    ingest = Ingest(
        feed=ScriptedFeed(),
        registry=REGISTRY,
        bus=bus,
        clock=clock,
        intervals=(Interval.M1, Interval.M5),
        on_closed_candle=queued.append,
    )
    for s in range(0, 6 * 60, 20):  # six minutes, nobody watching
        ingest.on_tick(tick("RELIANCE", at(s), 100.0 + s / 60, 1000 + s))
    # In closing order: each minute's close, the 5m bucket's with its last minute's.
    assert [(c.interval, c.start) for c in queued] == [
        *((Interval.M1, at(60 * m)) for m in range(5)),
        (Interval.M5, at(0)),
    ]
    assert all(c.closed for c in queued)


def test_a_past_warms_the_engines_without_publishing() -> None:
    bus, clock = MemoryBus(), ManualClock()
    past: list[list[Candle]] = []
    ingest = Ingest(
        feed=ScriptedFeed(),
        registry=REGISTRY,
        bus=bus,
        clock=clock,
        intervals=(Interval.M1, Interval.M15),
        on_past=past.append,
    )
    recorder = watch(ingest, bus, topic(Endpoint.ANALYSIS, "RELIANCE", Interval.M1))
    before = len(recorder.messages)
    minutes = [  # 09:15 to 09:59: before the first tick at 10:00
        Candle("RELIANCE", Interval.M1, T0 + timedelta(minutes=m), 100, 101, 99, 100.5, 10, True)
        for m in range(-45, 0)
    ]
    made = ingest.warm({"RELIANCE": minutes})
    assert made == 45 + 3 and len(past) == 1 and len(past[0]) == 48
    assert len(recorder.messages) == before  # nothing published
    assert ingest.candles.history("RELIANCE", Interval.M1) == minutes
    assert [c.volume for c in ingest.candles.history("RELIANCE", Interval.M15)] == [150] * 3
    assert ingest.analysis.history("RELIANCE", Interval.M1, 100) == minutes
    # The first live tick opens 10:00 and closes nothing of the past.
    ingest.on_tick(tick("RELIANCE", at(1), 102.0, 5000))
    assert ingest.candles.history("RELIANCE", Interval.M1)[-1] == minutes[-1]


# --- analysis alerts ------------------------------------------------------------------------------


class _FailingEvents(SqliteStore):
    """A real store whose ``add_event`` fails while ``failing`` is set."""

    failing = False

    def add_event(self, event: Any) -> None:
        if self.failing:
            raise OSError("disk full")
        super().add_event(event)


def test_an_analysis_alert_whose_firing_failed_to_save_fires_on_the_next_tick(
    tmp_path: Path,
) -> None:
    bus, clock = MemoryBus(), ManualClock()
    with _FailingEvents(tmp_path / "alerts.db") as store:
        alerts = StoredAlerts(store, USER_ALERTS_ONLY)
        request = parse_command(
            {
                "type": "create_alert",
                "symbol": "RELIANCE",
                "interval": "1m",
                "indicator": "close",
                "condition": "crosses_above",
                "value": 2500,
            },
            endpoint=Endpoint.ALERTS,
            registry=REGISTRY,
        )
        assert isinstance(request, CreateAnalysisAlert), request
        created = alerts.create("", request)
        assert isinstance(created, Alert)
        ingest = make(bus, clock, alerts=alerts)
        feed = watch(ingest, bus, topic(Endpoint.ALERTS, "RELIANCE"))

        def firings() -> list[Msg]:
            return [m for m in decoded(feed, "alert_data") if m["data"].get("alert")]

        ingest.on_tick(tick("RELIANCE", at(0), 2490.0, 100))
        ingest.on_tick(tick("RELIANCE", at(60), 2510.0, 200))  # 10:00 closes below 2500
        store.failing = True
        ingest.on_tick(tick("RELIANCE", at(120), 2511.0, 300))  # 10:01 closes above: crossed
        assert firings() == [] and store.events("RELIANCE", "", 10) == []
        store.failing = False
        ingest.on_tick(tick("RELIANCE", at(121), 2512.0, 400))  # the close is evaluated again
        (event,) = firings()
        assert event["data"]["alert"]["id"] == created.id
        assert event["data"]["alert"]["candle_start"] == "2025-01-27T04:31:00.000Z"
        assert event["data"]["alert"]["price"] == 2510.0
        assert len(store.events("RELIANCE", "", 10)) == 1
        ingest.on_tick(tick("RELIANCE", at(122), 2513.0, 500))
        assert len(firings()) == 1  # once
