"""Record and replay: the tick file format, ``record``, and ``ReplayFeed`` on tick and bar files."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from tests.fakes import FeedSink as Sink
from tests.fakes import StepClock
from tests.fakes import TapFeed as Tap
from tests.helpers import TESTS_DIR
from tickhub.core.instruments import InstrumentRegistry, UnknownSymbolError
from tickhub.core.model import (
    IST,
    Candle,
    Depth,
    DepthLevel,
    FeedState,
    Instrument,
    Interval,
    Tick,
)
from tickhub.devtools.record import record
from tickhub.engines.analysis import AnalysisEngine
from tickhub.engines.candles import CandleEngine, bucket_start
from tickhub.feeds.base import Feed
from tickhub.feeds.replay.bars import Bar, BarTicks
from tickhub.feeds.replay.feed import ReplayFeed, UnknownSymbol, read_replay
from tickhub.feeds.replay.ticks import TICK_COLUMNS, ReplayError, TickWriter, read_ticks
from tickhub.feeds.sim import SimFeed, SimMarket
from tickhub.runtime.clock import ManualClock

DATA = TESTS_DIR / "data" / "replay"
BARS = DATA / "reliance_1m.csv"  # Friday 15:20-15:29 and Monday 09:15-09:24, no symbol column
TWO_SYMBOLS = DATA / "two_symbols_1m.csv"  # RELIANCE and INFY, with bad lines and unknown rows
SAMPLE = DATA / "ticks_sample.csv"  # 17 ticks of RELIANCE and NIFTY 50, as `tickhub record` wrote

REGISTRY = InstrumentRegistry.bundled()
RELIANCE = REGISTRY.resolve("RELIANCE")
INFY = REGISTRY.resolve("INFY")
NIFTY = REGISTRY.resolve("NIFTY 50")
IST_OFFSET = timedelta(hours=5, minutes=30)
FRIDAY = date(2025, 1, 31)
MONDAY = date(2025, 2, 3)
TUESDAY = date(2025, 2, 4)


def ist(day: date, hhmm: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(hhmm), IST)


# -- helpers ------------------------------------------------------------------------------------


async def start(feed: ReplayFeed, sink: Sink) -> asyncio.Task[None]:
    task = asyncio.create_task(feed.run(sink.on_tick, sink.on_status), name="replay")
    async with asyncio.timeout(5):
        await sink.live.wait()
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def play(feed: ReplayFeed) -> Sink:
    """Run ``feed`` to its end (it must not wait on its clock), then cancel it."""
    sink = Sink()
    task = await start(feed, sink)
    async with asyncio.timeout(10):
        await sink.stopped.wait()
    await stop(task)
    return sink


async def play_until(feed: ReplayFeed, n: int) -> Sink:
    """Run ``feed`` until it has played at least ``n`` ticks, then cancel it."""
    sink = Sink(want=n)
    task = await start(feed, sink)
    async with asyncio.timeout(10):
        await sink.enough.wait()
    await stop(task)
    return sink


def sim_ticks(
    minutes: float,
    instruments: Sequence[Instrument] = (RELIANCE, INFY, NIFTY),
    *,
    day: date = MONDAY,
    seed: int = 3,
) -> list[Tick]:
    market = SimMarket(instruments, start=ist(day, "09:15"), seed=seed, tick_rate=1.0)
    return market.advance_to(ist(day, "09:15") + timedelta(minutes=minutes))


def write_ticks(path: Path, ticks: Iterable[Tick]) -> Path:
    with TickWriter(path) as writer:
        for tick in ticks:
            writer.write(tick)
    return path


def good_ticks(path: Path) -> list[Tick]:
    return [item for _, item in read_ticks(path) if isinstance(item, Tick)]


def candle_engine(
    ticks: Iterable[Tick], intervals: Sequence[Interval] = tuple(Interval)
) -> CandleEngine:
    engine = CandleEngine(intervals, history_size=10_000)
    for tick in ticks:
        engine.on_tick(tick)
    return engine


def candles(engine: CandleEngine, symbol: str, interval: Interval) -> list[Candle]:
    """Closed candles and the forming one, all marked closed (for comparing series)."""
    out = engine.history(symbol, interval)
    current = engine.current(symbol, interval)
    if current is not None:
        out.append(dataclasses.replace(current, closed=True))
    return out


def ohlcv(c: Candle | Bar) -> tuple[datetime, float, float, float, float, int]:
    return (c.start, c.open, c.high, c.low, c.close, c.volume)


def read_bars(path: Path, symbol: str) -> list[Bar]:
    """The bars of a clean, time-ordered bar file, parsed independently of the feed."""
    lines = path.read_text().splitlines()
    header = [h.lower() for h in lines[0].split(",")]
    bars: list[Bar] = []
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=True))
        ts = datetime.fromisoformat(row.get("timestamp") or row["datetime"])
        start = ts.replace(tzinfo=IST) if ts.tzinfo is None else ts.astimezone(IST)
        o, h, low, c = (float(row[k]) for k in ("open", "high", "low", "close"))
        bars.append(Bar(symbol, start, o, h, low, c, int(float(row["volume"]))))
    return bars


# -- the tick file format -----------------------------------------------------------------------


async def test_recorded_sim_feed_session_reads_back_identical(tmp_path: Path) -> None:
    clock = StepClock()
    sim = SimFeed(
        (RELIANCE, INFY, NIFTY), clock=clock, speed=60.0, step=1.0, start=ist(MONDAY, "09:15")
    )
    tap = Tap(sim)
    path = tmp_path / "session.csv"
    task = asyncio.create_task(record(tap, path, duration=10.0, clock=clock, flush_every=50))
    await clock.wait_sleeps(2)  # the feed's first step and the recording's timer
    for _ in range(9):
        await clock.step(1.0)
    clock.advance(1.0)
    async with asyncio.timeout(5):
        count = await task

    assert count == len(tap.ticks) > 100  # ten market minutes of three instruments
    back = [item for _, item in read_ticks(path)]
    assert len(back) == count
    for got, want in zip(back, tap.ticks, strict=True):
        assert isinstance(got, Tick)
        for field in dataclasses.fields(Tick):
            assert getattr(got, field.name) == getattr(want, field.name), field.name
        assert got.timestamp.utcoffset() == IST_OFFSET
    assert back == tap.ticks
    assert any(t.depth is not None and len(t.depth.buy) == 5 for t in tap.ticks)
    assert any(t.depth is None and not t.tradable for t in tap.ticks)  # the index
    assert tap.status().state is FeedState.STOPPED


def test_sample_file_reads_back_every_field() -> None:
    rows = list(read_ticks(SAMPLE))
    assert [line for line, _ in rows] == list(range(2, 19))
    ticks = [tick for _, tick in rows if isinstance(tick, Tick)]
    assert len(ticks) == len(rows) == 17
    first, index, last = ticks[0], ticks[2], ticks[-1]
    assert first == Tick(
        symbol="RELIANCE",
        instrument_token=738561,
        timestamp=datetime(2025, 2, 3, 9, 15, 0, 514113, tzinfo=IST),
        price=1497.35,
        volume=26,
        last_quantity=26,
        average_price=1497.35,
        buy_quantity=800293,
        sell_quantity=826178,
        open=1497.25,
        high=1497.35,
        low=1497.25,
        prev_close=1500.0,
        last_trade_time=datetime(2025, 2, 3, 9, 15, 0, 514113, tzinfo=IST),
        oi=0,
        tradable=True,
        depth=first.depth,
    )
    assert first.depth is not None
    assert first.depth.buy[0] == DepthLevel(1497.35, 6070, 3)
    assert len(first.depth.buy) == len(first.depth.sell) == 5
    assert isinstance(index, Tick)
    assert (index.symbol, index.tradable, index.depth, index.last_trade_time) == (
        "NIFTY 50",
        False,
        None,
        None,
    )
    assert last == Tick(
        "RELIANCE",
        738561,
        datetime(2025, 2, 3, 9, 15, 7, 500000, tzinfo=IST),
        1498.05,
        volume=2761,
        last_quantity=3,
        depth=Depth(
            (DepthLevel(1498.0, 10, 2),), (DepthLevel(1498.05, 4, 1), DepthLevel(1498.1, 20, 3))
        ),
    )


def test_writer_round_trips_unusual_ticks(tmp_path: Path) -> None:
    utc = datetime(2025, 2, 3, 3, 45, 0, 1, tzinfo=UTC)
    ticks = [
        Tick("M&M", 519937, utc, 3021.1, volume=10, depth=Depth()),  # empty book
        Tick("ODD,NAME", 1, utc, 0.1 + 0.2, average_price=1 / 3, open=1e-7, oi=12),
    ]
    back = good_ticks(write_ticks(tmp_path / "t.csv", ticks))
    assert back[0] == dataclasses.replace(ticks[0], depth=None)  # no level: read as no depth
    assert back[1] == ticks[1]
    assert back[1].price == 0.30000000000000004  # every bit of a float
    assert back[0].timestamp.tzinfo is IST  # read back in exchange time, the same instant
    assert back[0].timestamp == utc


def test_writer_writes_the_header_once_and_appends(tmp_path: Path) -> None:
    ticks = sim_ticks(0.5)
    path = tmp_path / "t.csv"
    write_ticks(path, ticks[:10])
    with TickWriter(path, append=True) as writer:
        for tick in ticks[10:20]:
            writer.write(tick)
    assert writer.rows == 10
    with TickWriter(tmp_path / "new.csv", append=True) as fresh:  # a missing file gets a header
        fresh.write(ticks[0])
    text = path.read_text()
    assert text.count("symbol,instrument_token") == 1
    assert text.splitlines()[0] == ",".join(TICK_COLUMNS)
    assert good_ticks(path) == ticks[:20]
    assert good_ticks(tmp_path / "new.csv") == ticks[:1]


def test_append_after_a_torn_last_line_keeps_the_new_rows(tmp_path: Path) -> None:
    ticks = sim_ticks(0.5)
    path = write_ticks(tmp_path / "t.csv", ticks[:3])
    with path.open("a") as file:
        file.write("RELIANCE,738561,2025-02-03T09:1")  # a crash in the middle of a row
    with TickWriter(path, append=True) as writer:
        writer.write(ticks[3])
    rows = list(read_ticks(path))
    assert [line for line, _ in rows] == [2, 3, 4, 5, 6]
    assert isinstance(rows[3][1], ReplayError) and rows[3][1].line == 5
    assert [t for _, t in rows if isinstance(t, Tick)] == ticks[:4]


def test_writer_flushes_every_n_rows_and_on_close(tmp_path: Path) -> None:
    ticks = sim_ticks(0.5)
    path = tmp_path / "t.csv"
    writer = TickWriter(path, flush_every=5)
    for tick in ticks[:4]:
        writer.write(tick)
    assert len(path.read_text().splitlines()) <= 1  # still buffered
    writer.write(ticks[4])
    assert len(path.read_text().splitlines()) == 6
    writer.write(ticks[5])
    writer.close()
    writer.close()
    assert writer.closed
    assert good_ticks(path) == ticks[:6]
    with pytest.raises(ValueError, match="closed"):
        writer.write(ticks[6])


def test_writer_rejects_what_the_format_cannot_hold(tmp_path: Path) -> None:
    with TickWriter(tmp_path / "t.csv") as writer:
        naive = Tick("RELIANCE", 738561, datetime(2025, 2, 3, 9, 15), 1500.0)
        with pytest.raises(ValueError, match="naive timestamp"):
            writer.write(naive)
        level = DepthLevel(1500.0, 1, 1)
        deep = dataclasses.replace(
            naive, timestamp=ist(MONDAY, "09:15"), depth=Depth((level,) * 6, ())
        )
        with pytest.raises(ValueError, match="6 bid levels"):
            writer.write(deep)
    with pytest.raises(ValueError, match="flush_every"):
        TickWriter(tmp_path / "u.csv", flush_every=0)


def test_bad_lines_are_reported_with_their_numbers_and_reading_goes_on(tmp_path: Path) -> None:
    ticks = sim_ticks(0.5, (RELIANCE,))[:10]  # all with a full book
    path = write_ticks(tmp_path / "t.csv", ticks)
    lines = path.read_text().splitlines()
    good = lines[2].split(",")
    lines[2] = ",".join(good[:10])  # line 3: wrong column count
    lines[4] = ",".join([*good[:3], "12x.5", *good[4:]])  # line 5: non-numeric price
    lines[6] = ",".join([*good[:2], "2025-02-30T09:15:00+05:30", *good[3:]])  # line 7
    lines[7] = ",".join([*good[:2], "2025-02-03T09:15:00", *good[3:]])  # line 8: no offset
    lines[8] = '"RELIANCE,' + ",".join(good[1:])  # line 9: an unbalanced quote
    lines[9] = ",".join([*good[:16], "", "", "", *good[19:]])  # line 10: bid2 after no bid1
    lines.insert(5, "")  # a blank line is no row; the lines after it move down
    path.write_text("\n".join(lines) + "\n")

    rows = list(read_ticks(path))
    errors = {line: str(item) for line, item in rows if isinstance(item, ReplayError)}
    assert errors == {
        3: f"{path}:3: expected {len(TICK_COLUMNS)} columns, got 10",
        5: f"{path}:5: price: expected a non-negative number, got '12x.5'",
        8: f"{path}:8: timestamp: expected ISO 8601 with a UTC offset, "
        "got '2025-02-30T09:15:00+05:30'",
        9: f"{path}:9: timestamp: no UTC offset in '2025-02-03T09:15:00'",
        10: f"{path}:10: malformed CSV (unexpected end of data)",
        11: f"{path}:11: bid2: a level after an empty one",
    }
    assert [t for _, t in rows if isinstance(t, Tick)] == [ticks[0], ticks[2], ticks[4], ticks[9]]
    assert [line for line, _ in rows] == [2, 3, 4, 5, 7, 8, 9, 10, 11, 12]


def test_unusable_files_raise(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="cannot read"):
        list(read_ticks(tmp_path / "missing.csv"))
    (tmp_path / "empty.csv").write_text("\n")
    with pytest.raises(ReplayError, match="empty file"):
        list(read_ticks(tmp_path / "empty.csv"))
    with pytest.raises(
        ReplayError, match=r"reliance_1m\.csv:1: not a tick file: header lacks columns"
    ):
        list(read_ticks(BARS))
    foreign = tmp_path / "bars.csv"
    foreign.write_bytes(BARS.read_bytes())
    with pytest.raises(ReplayError, match="cannot append"):
        TickWriter(foreign, append=True)
    assert foreign.read_bytes() == BARS.read_bytes()


# -- record -------------------------------------------------------------------------------------


async def test_record_returns_the_count_when_cancelled(tmp_path: Path) -> None:
    clock = StepClock()
    feed = ReplayFeed(SAMPLE, REGISTRY, clock=clock)
    path = tmp_path / "out.csv"
    task = asyncio.create_task(record(feed, path, clock=clock))
    await clock.wait_sleeps(1)  # the first tick is out, the feed waits for the second
    await clock.step(1.1)  # three more ticks by 09:15:01.614
    task.cancel()
    async with asyncio.timeout(5):
        count = await task
    assert not task.cancelled()
    assert count == 4
    assert good_ticks(path) == good_ticks(SAMPLE)[:4]
    assert feed.status().state is FeedState.STOPPED


async def test_record_ends_when_a_replay_ends(tmp_path: Path) -> None:
    feed = ReplayFeed(BARS, REGISTRY, speed=None, symbol="RELIANCE", clock=ManualClock())
    path = tmp_path / "bars_as_ticks.csv"
    async with asyncio.timeout(5):
        count = await record(feed, path)
    assert count == 20 * 4
    assert good_ticks(path) == list(read_replay(BARS, REGISTRY, symbol="RELIANCE"))
    with pytest.raises(ValueError, match="duration"):
        await record(feed, path, duration=-1.0)


# -- replay: pacing and end ---------------------------------------------------------------------


def test_replay_feed_implements_the_feed_protocol() -> None:
    feed: Feed = ReplayFeed(SAMPLE, REGISTRY, clock=ManualClock())
    assert feed.name == "replay"
    feed.subscribe([RELIANCE])
    feed.unsubscribe([RELIANCE])
    status = feed.status()
    assert status.state is FeedState.STARTING
    assert status.extra["format"] == "ticks"


def pacing_file(path: Path) -> list[Tick]:
    """Ticks 15 s, 15 s, 0 s and 60 s apart, then two the next day, 5 s apart."""
    at = [
        ist(MONDAY, "09:15:00"),
        ist(MONDAY, "09:15:15"),
        ist(MONDAY, "09:15:30"),
        ist(MONDAY, "09:15:30"),
        ist(MONDAY, "09:16:30"),
        ist(TUESDAY, "09:15:00"),
        ist(TUESDAY, "09:15:05"),
    ]
    ticks = [Tick("RELIANCE", 738561, ts, 1500.0 + i, volume=10 * i) for i, ts in enumerate(at)]
    write_ticks(path, ticks)
    return ticks


IDLE, WAITS, ENDS = "idle", "waits", "ends"
PACING = {
    # clock seconds to advance, ticks released by then, what the feed does next
    1.0: [
        (14.5, 1, IDLE),
        (0.5, 2, WAITS),
        (15.0, 4, WAITS),
        (59.5, 4, IDLE),
        (0.5, 6, WAITS),
        (5.0, 7, ENDS),
    ],
    60.0: [
        (0.125, 1, IDLE),
        (0.125, 2, WAITS),
        (0.25, 4, WAITS),
        (0.75, 4, IDLE),
        (0.25, 6, WAITS),
        (0.125, 7, ENDS),
    ],
}


@pytest.mark.parametrize("speed", sorted(PACING))
async def test_ticks_are_released_on_the_clock_at_their_exchange_times(
    tmp_path: Path, speed: float
) -> None:
    ticks = pacing_file(tmp_path / "t.csv")
    clock = StepClock()
    feed = ReplayFeed(tmp_path / "t.csv", REGISTRY, speed=speed, clock=clock)
    sink = Sink()
    task = await start(feed, sink)
    await clock.wait_sleeps(1)
    assert sink.ticks == ticks[:1]  # the first tick at once
    for seconds, released, then in PACING[speed]:
        if then == IDLE:
            clock.advance(seconds)  # wakes nobody: nothing can be released
        elif then == WAITS:
            await clock.step(seconds)
        else:
            clock.advance(seconds)
            async with asyncio.timeout(5):
                await sink.stopped.wait()
        assert sink.ticks == ticks[:released], (clock.monotonic(), len(sink.ticks))
        if then != IDLE:
            assert feed.status().last_tick_at == clock.now()
    # The night between the two days is not played: Tuesday's first tick came with Monday's last.
    assert clock.monotonic() == pytest.approx(95.0 / speed, abs=0.2)
    assert sink.statuses[-1].detail == "end of replay"
    await stop(task)


async def test_as_fast_as_possible_plays_everything_and_yields_to_the_loop(
    tmp_path: Path,
) -> None:
    ticks = sim_ticks(20)
    path = write_ticks(tmp_path / "t.csv", ticks)

    class TurnSink(Sink):
        """Notes how many event-loop turns another task had when each tick came."""

        def __init__(self) -> None:
            super().__init__()
            self.turns = 0
            self.seen: set[int] = set()

        def on_tick(self, tick: Tick) -> None:
            self.seen.add(self.turns)
            super().on_tick(tick)

    sink = TurnSink()

    async def spin() -> None:
        while True:
            await asyncio.sleep(0)
            sink.turns += 1

    spinner = asyncio.create_task(spin(), name="spinner")
    clock = StepClock()
    feed = ReplayFeed(path, REGISTRY, speed=None, clock=clock)
    task = await start(feed, sink)
    async with asyncio.timeout(10):
        await sink.stopped.wait()
    spinner.cancel()
    await stop(task)

    assert len(ticks) > 2000
    assert sink.ticks == ticks
    assert clock.sleeps == 0  # never waited on the clock
    assert len(sink.seen) >= len(ticks) // 256  # the loop ran between batches
    status = sink.statuses[1]  # the end of the file, before the cancel
    assert (status.state, status.detail) == (FeedState.FINISHED, "end of replay")
    assert status.extra["ticks"] == len(ticks)
    assert status.extra["exchange_time"] == ticks[-1].timestamp.isoformat()


async def test_end_of_replay_waits_to_be_cancelled_and_cancel_mid_replay_stops() -> None:
    feed = ReplayFeed(SAMPLE, REGISTRY, speed=None, clock=ManualClock())
    sink = Sink()
    task = await start(feed, sink)
    async with asyncio.timeout(5):
        await sink.stopped.wait()
    assert not task.done()  # a feed runs until cancelled
    await stop(task)
    # Finished is a state of its own; the cancel that ends every feed then says stopped.
    assert [s.state for s in sink.statuses] == [
        FeedState.LIVE,
        FeedState.FINISHED,
        FeedState.STOPPED,
    ]

    clock = StepClock()
    feed = ReplayFeed(SAMPLE, REGISTRY, clock=clock)
    sink = Sink()
    task = await start(feed, sink)
    await clock.wait_sleeps(1)
    await stop(task)
    assert [(s.state, s.detail) for s in sink.statuses[1:]] == [(FeedState.STOPPED, "stopped")]
    assert len(sink.ticks) == 1


# -- replay: looping ----------------------------------------------------------------------------


async def test_loop_replays_bars_on_the_following_trading_days() -> None:
    once = list(read_replay(BARS, REGISTRY, symbol="RELIANCE"))
    feed = ReplayFeed(BARS, REGISTRY, speed=None, loop=True, symbol="RELIANCE")
    sink = await play_until(feed, 2 * len(once))
    first, second = sink.ticks[: len(once)], sink.ticks[len(once) : 2 * len(once)]
    assert first == once
    # Two weekdays in the file (Friday, Monday): the next pass is on Tuesday and Wednesday.
    shift = {FRIDAY: timedelta(days=4), MONDAY: timedelta(days=2)}
    for a, b in zip(first, second, strict=True):
        delta = shift[a.timestamp.date()]
        assert b == dataclasses.replace(
            a, timestamp=a.timestamp + delta, last_trade_time=a.timestamp + delta
        )
    loops = feed.status().extra["loops"]
    assert isinstance(loops, int) and loops >= 1

    engine = candle_engine(first + second, [Interval.M1, Interval.M5, Interval.D1])
    for interval in (Interval.M1, Interval.M5):
        series = candles(engine, "RELIANCE", interval)
        half = len(series) // 2
        assert [ohlcv(c)[1:] for c in series[:half]] == [ohlcv(c)[1:] for c in series[half:]]
    days = candles(engine, "RELIANCE", Interval.D1)
    assert [c.start.date() for c in days] == [FRIDAY, MONDAY, TUESDAY, date(2025, 2, 5)]
    assert [c.volume for c in days[:2]] == [c.volume for c in days[2:]]


async def test_loop_rebases_first_day_volume_so_every_pass_gives_the_same_candles(
    tmp_path: Path,
) -> None:
    ticks = sim_ticks(10, (RELIANCE, NIFTY))
    path = write_ticks(tmp_path / "t.csv", ticks)
    feed = ReplayFeed(path, REGISTRY, speed=None, loop=True)
    sink = await play_until(feed, 3 * len(ticks))
    passes = [sink.ticks[i * len(ticks) : (i + 1) * len(ticks)] for i in range(3)]
    assert passes[0] == ticks
    first_volume = next(t.volume for t in ticks if t.symbol == "RELIANCE")
    assert first_volume > 0
    for k, played in enumerate(passes[1:], 1):
        assert {t.timestamp.date() for t in played} == {MONDAY + timedelta(days=k)}
        reliance = [t for t in played if t.symbol == "RELIANCE"]
        assert reliance[0].volume == 0  # rebased: counts 0 like the first tick ever
        originals = [t for t in ticks if t.symbol == "RELIANCE"]
        assert [t.volume for t in reliance] == [t.volume - first_volume for t in originals]

    engine = candle_engine(sink.ticks[: 3 * len(ticks)], [Interval.M1, Interval.D1])
    for symbol in ("RELIANCE", "NIFTY 50"):
        series = candles(engine, symbol, Interval.M1)
        third = len(series) // 3
        chunks = [[ohlcv(c)[1:] for c in series[i * third : (i + 1) * third]] for i in range(3)]
        assert chunks[0] == chunks[1] == chunks[2]
        days = candles(engine, symbol, Interval.D1)
        assert len({c.volume for c in days}) == 1


async def test_loop_of_a_weekend_session_moves_by_whole_weeks(tmp_path: Path) -> None:
    saturday = date(2025, 2, 1)  # the budget-day session
    ticks = [
        dataclasses.replace(t, timestamp=t.timestamp - timedelta(days=2), last_trade_time=None)
        for t in sim_ticks(1, (RELIANCE,))
    ]
    path = write_ticks(tmp_path / "t.csv", ticks)
    sink = await play_until(ReplayFeed(path, REGISTRY, speed=None, loop=True), 2 * len(ticks))
    assert {t.timestamp.date() for t in sink.ticks[: len(ticks)]} == {saturday}
    assert {t.timestamp.date() for t in sink.ticks[len(ticks) : 2 * len(ticks)]} == {
        saturday + timedelta(weeks=1)
    }


async def test_loop_of_a_file_without_ticks_stops(tmp_path: Path) -> None:
    path = write_ticks(tmp_path / "t.csv", [])
    sink = await play(ReplayFeed(path, REGISTRY, speed=None, loop=True))
    assert sink.ticks == []
    assert [(s.state, s.detail) for s in sink.statuses[-2:]] == [
        (FeedState.FINISHED, "end of replay"),
        (FeedState.STOPPED, "stopped"),
    ]


# -- determinism --------------------------------------------------------------------------------


async def test_replaying_a_recording_twice_gives_identical_candles_and_analysis(
    tmp_path: Path,
) -> None:
    ticks = sim_ticks(50)
    path = write_ticks(tmp_path / "session.csv", ticks)
    intervals = (Interval.M1, Interval.M5)
    runs = []
    for _ in range(2):
        sink = await play(ReplayFeed(path, REGISTRY, speed=None, clock=ManualClock()))
        engine = CandleEngine(intervals, history_size=10_000)
        analysis = AnalysisEngine()
        for tick in sink.ticks:
            for candle in engine.on_tick(tick):
                analysis.on_candle(candle)
        runs.append((sink.ticks, engine, analysis))
    (ticks_a, candles_a, analysis_a), (ticks_b, candles_b, analysis_b) = runs
    assert ticks_a == ticks_b == ticks
    direct = candle_engine(ticks, intervals)
    for symbol in ("RELIANCE", "INFY", "NIFTY 50"):
        for interval in intervals:
            series = candles(candles_a, symbol, interval)
            assert (
                series == candles(candles_b, symbol, interval) == candles(direct, symbol, interval)
            )
            for forming in (False, True):
                one = analysis_a.analyze(symbol, interval, include_forming=forming)
                assert one == analysis_b.analyze(symbol, interval, include_forming=forming)
        assert len(candles(candles_a, symbol, Interval.M1)) == 50
    assert analysis_a.analyze("RELIANCE", Interval.M1)["technical_indicators"]["sma_20"] is not None


def test_reading_a_file_twice_gives_the_same_ticks() -> None:
    def events(path: Path, symbol: str | None) -> list[object]:
        return [
            str(e) if isinstance(e, ReplayError) else e  # exceptions compare by identity
            for e in read_replay(path, REGISTRY, symbol=symbol, bars_ticks=6)
        ]

    for path, symbol in ((SAMPLE, None), (BARS, "RELIANCE"), (TWO_SYMBOLS, None)):
        assert events(path, symbol) == events(path, symbol)


# -- bar files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bars_ticks", [4, 5, 9])
async def test_bar_file_1m_candles_equal_the_bars_across_a_day_boundary(bars_ticks: int) -> None:
    feed = ReplayFeed(BARS, REGISTRY, speed=None, symbol="RELIANCE", bars_ticks=bars_ticks)
    sink = await play(feed)
    bars = read_bars(BARS, "RELIANCE")
    assert len(sink.ticks) == len(bars) * bars_ticks
    assert all(a.timestamp < b.timestamp for a, b in pairwise(sink.ticks))
    engine = candle_engine(sink.ticks, [Interval.M1])
    assert [ohlcv(c) for c in candles(engine, "RELIANCE", Interval.M1)] == [ohlcv(b) for b in bars]
    # Monday's first bar keeps its volume although the day's cumulative restarted.
    assert bars[10].start == ist(MONDAY, "09:15") and bars[10].volume == 212340


async def test_bar_file_5m_candles_equal_the_aggregated_bars() -> None:
    sink = await play(ReplayFeed(BARS, REGISTRY, speed=None, symbol="RELIANCE"))
    expected: dict[datetime, list[Bar]] = {}
    for bar in read_bars(BARS, "RELIANCE"):
        expected.setdefault(bucket_start(bar.start, Interval.M5), []).append(bar)
    aggregated = [
        (
            start,
            group[0].open,
            max(b.high for b in group),
            min(b.low for b in group),
            group[-1].close,
            sum(b.volume for b in group),
        )
        for start, group in expected.items()
    ]
    assert len(aggregated) == 4
    engine = candle_engine(sink.ticks, [Interval.M5, Interval.D1])
    assert [ohlcv(c) for c in candles(engine, "RELIANCE", Interval.M5)] == aggregated
    days = candles(engine, "RELIANCE", Interval.D1)
    assert [c.volume for c in days] == [
        sum(a[5] for a in aggregated[:2]),
        sum(a[5] for a in aggregated[2:]),
    ]


def test_bar_ticks_run_open_low_high_close_when_up_and_open_high_low_close_when_down() -> None:
    synth = BarTicks(4)
    at = ist(MONDAY, "09:15")
    up = Bar("RELIANCE", at, 100.0, 103.0, 99.0, 102.0, 90)
    down = Bar("RELIANCE", at + timedelta(minutes=1), 102.0, 104.0, 97.5, 98.0, 31)
    flat = Bar("RELIANCE", at + timedelta(minutes=2), 98.0, 99.0, 97.0, 98.0, 0)
    for bar, prices in (
        (up, [100, 99, 103, 102]),
        (down, [102, 104, 97.5, 98]),
        (flat, [98, 97, 99, 98]),
    ):
        assert synth.accept(bar, RELIANCE) is None
        ticks = synth.ticks(bar, RELIANCE)
        assert [t.price for t in ticks] == prices
        assert [t.timestamp - bar.start for t in ticks] == [
            timedelta(seconds=s) for s in (0, 15, 30, 45)
        ]
    assert synth.accept(up, RELIANCE) is not None  # not after the previous bar

    wide = BarTicks(9)
    bar = Bar("INFY", at, 1840.0, 1842.0, 1835.5, 1836.1, 45_013)
    assert wide.accept(bar, INFY) is None
    ticks = wide.ticks(bar, INFY)
    prices = [t.price for t in ticks]
    assert (prices[0], prices[3], prices[5], prices[-1]) == (1840.0, 1842.0, 1835.5, 1836.1)
    assert all(1835.5 <= p <= 1842.0 for p in prices)
    assert all(abs(p * 20 - round(p * 20)) < 1e-6 for p in prices[:-1])  # on the 0.05 grid
    steps = [b.volume - a.volume for a, b in pairwise(ticks)]
    assert sum(steps) == 45_013 and ticks[0].volume == 0 and min(steps) >= 0
    with pytest.raises(ValueError, match="at least 4"):
        BarTicks(3)


async def test_bar_ticks_carry_the_days_fields() -> None:
    sink = await play(ReplayFeed(BARS, REGISTRY, speed=None, symbol="RELIANCE"))
    bars = read_bars(BARS, "RELIANCE")
    friday = [t for t in sink.ticks if t.timestamp.date() == FRIDAY]
    monday = [t for t in sink.ticks if t.timestamp.date() == MONDAY]
    assert {t.prev_close for t in friday} == {0.0}
    assert {t.prev_close for t in monday} == {bars[9].close}
    assert {t.open for t in monday} == {bars[10].open}
    assert monday[0].volume == 0 and friday[0].volume == 0
    assert monday[-1].volume == sum(b.volume for b in bars[10:])
    assert monday[-1].high == max(b.high for b in bars[10:])
    assert monday[-1].low == min(b.low for b in bars[10:])
    assert (
        min(b.low for b in bars[10:]) <= monday[-1].average_price <= max(b.high for b in bars[10:])
    )
    assert all(t.symbol == "RELIANCE" and t.instrument_token == 738561 for t in sink.ticks)
    assert all(t.last_trade_time == t.timestamp and t.depth is None for t in sink.ticks)


async def test_bars_of_an_index_are_not_tradable(tmp_path: Path) -> None:
    path = tmp_path / "nifty.csv"
    path.write_text(
        "date,open,high,low,close,volume\n2025-02-03 09:15,23400,23410.5,23390,23405,\n"
    )
    sink = await play(ReplayFeed(path, REGISTRY, speed=None, symbol="nifty 50"))
    assert [t.symbol for t in sink.ticks] == ["NIFTY 50"] * 4
    assert all(not t.tradable and t.last_trade_time is None and t.volume == 0 for t in sink.ticks)


async def test_two_symbol_bar_file_plays_in_time_order_and_skips_bad_and_unknown_rows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tickhub.feeds.replay.feed")
    feed = ReplayFeed(TWO_SYMBOLS, REGISTRY, speed=None)
    sink = await play(feed)

    stamps = [t.timestamp for t in sink.ticks]
    assert stamps == sorted(stamps)
    assert {t.symbol for t in sink.ticks} == {"RELIANCE", "INFY"}
    engine = candle_engine(sink.ticks, [Interval.M1])
    reliance = [ohlcv(c) for c in candles(engine, "RELIANCE", Interval.M1)]
    infy = [ohlcv(c) for c in candles(engine, "INFY", Interval.M1)]
    assert reliance == [
        (ist(MONDAY, "09:15"), 1255.0, 1258.4, 1250.1, 1257.9, 212340),
        (ist(MONDAY, "09:16"), 1257.9, 1259.95, 1256.05, 1256.3, 98765),
        (ist(MONDAY, "09:17"), 1256.3, 1256.3, 1252.0, 1252.45, 87001),  # written in UTC
        (ist(MONDAY, "09:18"), 1252.45, 1254.1, 1251.8, 1253.95, 66002),
    ]
    assert infy == [
        (ist(MONDAY, "09:15"), 1840.0, 1842.0, 1835.5, 1836.1, 45012),
        (ist(MONDAY, "09:16"), 1836.1, 1838.0, 1835.0, 1837.0, 30001),
        (ist(MONDAY, "09:18"), 1839.0, 1840.0, 1838.0, 1838.5, 26000),
    ]

    extra = feed.status().extra
    assert (extra["bad_lines"], extra["unknown_symbols"], extra["format"]) == (5, 2, "bars")
    warnings = [r.getMessage() for r in caplog.records]
    source = str(TWO_SYMBOLS)
    for line, reason in [
        (6, "low: expected a positive number, got 'abc'"),
        (7, "expected 8 columns, got 7"),
        (10, "datetime: expected an ISO 8601 date and time, got '2025-02-03 09:17:61'"),
        (11, "high and low must bound open and close"),
        (12, "is not after the previous RELIANCE bar at 2025-02-03T09:17:00+05:30"),
    ]:
        assert any(f"{source}:{line}: " in m and reason in m for m in warnings), (line, warnings)
    unknown = [m for m in warnings if "unknown symbol" in m]
    assert unknown == [f"{source}:4: unknown symbol 'NOSUCHCO': its rows are skipped"]


async def test_bad_tick_lines_and_unknown_symbols_are_logged_skipped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tickhub.feeds.replay.feed")
    ticks = sim_ticks(0.5, (RELIANCE, INFY))[:8]
    path = write_ticks(tmp_path / "t.csv", ticks)
    lines = path.read_text().splitlines()
    fields = lines[2].split(",")
    lines[2] = ",".join(fields[:-3])  # line 3: wrong column count
    lines[3] = ",".join([*fields[:3], "n/a", *fields[4:]])  # line 4: non-numeric price
    lines[5] = ",".join([*fields[:2], "yesterday", *fields[3:]])  # line 6: bad timestamp
    lines[6] = ",".join(["RELIANCEX", "99", *fields[2:]])  # line 7: unknown symbol
    lines.append(",".join(["relianceX", "99", *fields[2:]]))  # line 10: again, logged once
    path.write_text("\n".join(lines) + "\n")

    feed = ReplayFeed(path, REGISTRY, speed=None)
    sink = await play(feed)
    assert sink.ticks == [ticks[0], ticks[3], ticks[6], ticks[7]]
    extra = feed.status().extra
    assert (extra["bad_lines"], extra["unknown_symbols"], extra["ticks"]) == (3, 2, 4)
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "bad line" in m] == [
        f"skipped bad line: {path}:3: expected {len(TICK_COLUMNS)} columns, "
        f"got {len(TICK_COLUMNS) - 3}",
        f"skipped bad line: {path}:4: price: expected a non-negative number, got 'n/a'",
        f"skipped bad line: {path}:6: timestamp: expected ISO 8601 with a UTC offset, "
        "got 'yesterday'",
    ]
    assert [m for m in messages if "unknown symbol" in m] == [
        f"{path}:7: unknown symbol 'RELIANCEX': its rows are skipped",
        f"{path}:10: unknown symbol 'relianceX': its rows are skipped",
    ]


async def test_ticks_take_the_registry_symbol_and_token(tmp_path: Path) -> None:
    tick = Tick("reliance", 1, ist(MONDAY, "09:15"), 1500.0)
    path = write_ticks(tmp_path / "t.csv", [tick])
    sink = await play(ReplayFeed(path, REGISTRY, speed=None))
    assert sink.ticks == [dataclasses.replace(tick, symbol="RELIANCE", instrument_token=738561)]


def test_replay_feed_rejects_unusable_input(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="bar file without a symbol column"):
        ReplayFeed(BARS, REGISTRY)
    with pytest.raises(UnknownSymbolError, match="'NOSUCH'"):
        ReplayFeed(BARS, REGISTRY, symbol="NOSUCH")
    other = tmp_path / "other.csv"
    other.write_text("when,price\n2025-02-03 09:15,1\n")
    with pytest.raises(ReplayError, match=r"other\.csv:1: unknown file format"):
        ReplayFeed(other, REGISTRY)
    with pytest.raises(ReplayError, match="cannot read"):
        ReplayFeed(tmp_path / "missing.csv", REGISTRY)
    for speed in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="speed must be positive"):
            ReplayFeed(SAMPLE, REGISTRY, speed=speed)
    with pytest.raises(ValueError, match="bars_ticks"):
        ReplayFeed(BARS, REGISTRY, symbol="RELIANCE", bars_ticks=3)
    # A tick file ignores the symbol meant for bar files.
    assert ReplayFeed(SAMPLE, REGISTRY, symbol="NOSUCH").format == "ticks"


def test_unknown_rows_are_reported_as_values() -> None:
    events = list(read_replay(TWO_SYMBOLS, REGISTRY))
    unknown = [e for e in events if isinstance(e, UnknownSymbol)]
    assert unknown == [
        UnknownSymbol(str(TWO_SYMBOLS), 4, "NOSUCHCO"),
        UnknownSymbol(str(TWO_SYMBOLS), 13, "NOSUCHCO"),
    ]
    assert [e.line for e in events if isinstance(e, ReplayError)] == [6, 7, 10, 11, 12]
