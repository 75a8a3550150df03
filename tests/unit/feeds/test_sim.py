from __future__ import annotations

import asyncio
import hashlib
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise

import pytest

from tests.fakes import QueueRecorder as Recorder
from tests.fakes import SteppingClock
from tickhub.core.model import IST, FeedState, Instrument, Tick
from tickhub.feeds.base import Feed
from tickhub.feeds.sim import (
    SimFeed,
    SimMarket,
    add_session_time,
    default_start,
    session_start,
)
from tickhub.runtime.clock import ManualClock

RELIANCE = Instrument(
    738561, 2885, "RELIANCE", "RELIANCE INDUSTRIES", "NSE", "NSE", "EQ", last_price=2950.0
)
INFY = Instrument(408065, 1594, "INFY", "INFOSYS", "NSE", "NSE", "EQ", last_price=1500.0)
# Kite dumps carry no tick size for indices; the sim falls back to 0.05.
NIFTY = Instrument(
    256265, 1001, "NIFTY 50", "NIFTY 50", "NSE", "INDICES", "EQ", tick_size=0.0, last_price=23500.0
)
# No last price (falls back to 1000) and a lot size, to see quantities come in lots.
SMALL = Instrument(1234, 5, "SMALLCO", "SMALL CO", "NSE", "NSE", "EQ", lot_size=10)
INSTRUMENTS = (RELIANCE, INFY, NIFTY, SMALL)
STOCKS = ("RELIANCE", "INFY", "SMALLCO")

MONDAY = date(2025, 1, 27)
TUESDAY = date(2025, 1, 28)
START = datetime.combine(MONDAY, time(9, 15), IST)
MINUTE = 60.0
IST_OFFSET = timedelta(hours=5, minutes=30)


def ist(day: date, hhmm: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(hhmm), IST)


def on_grid(price: float, tick: float = 0.05) -> bool:
    return abs(price / tick - round(price / tick)) < 1e-6


Batch = tuple[datetime, list[Tick]]


def drive(market: SimMarket, until: datetime, step: float = MINUTE) -> list[Batch]:
    """Advance ``market`` ``step`` session seconds at a time; one batch of ticks per call."""
    batches: list[Batch] = []
    while market.now < until:
        target = min(add_session_time(market.now, step), until)
        batches.append((target, market.advance_to(target)))
    return batches


def flatten(batches: Sequence[Batch]) -> list[Tick]:
    return [tick for _, ticks in batches for tick in ticks]


def by_symbol(ticks: Sequence[Tick]) -> dict[str, list[Tick]]:
    out: dict[str, list[Tick]] = defaultdict(list)
    for tick in ticks:
        out[tick.symbol].append(tick)
    return out


def minute_closes(batches: Sequence[Batch], symbol: str, day: date) -> list[float]:
    closes: list[float] = []
    last: float | None = None
    for at, ticks in batches:
        for tick in ticks:
            if tick.symbol == symbol:
                last = tick.price
        if at.date() == day and last is not None:
            closes.append(last)
    return closes


def log_returns(prices: Sequence[float]) -> list[float]:
    return [math.log(b / a) for a, b in pairwise(prices)]


@pytest.fixture(scope="module")
def two_days() -> list[Batch]:
    """Monday's whole session and Tuesday's first hour, a minute per ``advance_to``."""
    market = SimMarket(INSTRUMENTS, start=START, seed=7, tick_rate=1.0)
    return drive(market, ist(TUESDAY, "10:15"))


@pytest.fixture(scope="module")
def ticks(two_days: list[Batch]) -> list[Tick]:
    return flatten(two_days)


# -- the session calendar -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (ist(MONDAY, "12:34"), ist(MONDAY, "12:34")),
        (ist(MONDAY, "09:15"), ist(MONDAY, "09:15")),
        (ist(MONDAY, "08:00"), ist(MONDAY, "09:15")),
        (ist(MONDAY, "15:30"), ist(MONDAY, "09:15")),
        (ist(MONDAY, "23:00"), ist(MONDAY, "09:15")),
        (ist(date(2025, 2, 1), "12:00"), ist(date(2025, 2, 3), "09:15")),  # Saturday
        (ist(date(2025, 2, 2), "23:59"), ist(date(2025, 2, 3), "09:15")),  # Sunday
        (datetime(2025, 1, 27, 6, 0, tzinfo=UTC), ist(MONDAY, "11:30")),
    ],
)
def test_default_start_always_shows_a_live_session(now: datetime, expected: datetime) -> None:
    start = default_start(now)
    assert start == expected
    assert start.utcoffset() == IST_OFFSET


def test_session_start_moves_to_the_next_open() -> None:
    assert session_start(ist(MONDAY, "10:00")) == ist(MONDAY, "10:00")
    assert session_start(ist(MONDAY, "07:00")) == ist(MONDAY, "09:15")
    assert session_start(ist(MONDAY, "15:30")) == ist(TUESDAY, "09:15")
    assert session_start(ist(date(2025, 1, 31), "16:00")) == ist(date(2025, 2, 3), "09:15")


def test_add_session_time_skips_nights_and_weekends() -> None:
    friday = date(2025, 1, 31)
    assert add_session_time(ist(friday, "15:29"), 60) == ist(friday, "15:30")
    assert add_session_time(ist(friday, "15:29"), 120) == ist(date(2025, 2, 3), "09:16")
    assert add_session_time(ist(MONDAY, "09:15"), 22_500 * 2 + 60) == ist(
        date(2025, 1, 29), "09:16"
    )
    assert add_session_time(ist(MONDAY, "15:30"), 0) == ist(MONDAY, "15:30")


def test_naive_times_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SimMarket(INSTRUMENTS, start=datetime(2025, 1, 27, 9, 15))
    market = SimMarket(INSTRUMENTS, start=START)
    with pytest.raises(ValueError, match="timezone-aware"):
        market.advance_to(datetime(2025, 1, 27, 9, 20))


def test_start_outside_the_session_opens_at_the_next_open() -> None:
    market = SimMarket(INSTRUMENTS, start=ist(date(2025, 2, 1), "12:00"))
    assert market.now == ist(date(2025, 2, 3), "09:15")
    assert market.advance_to(ist(date(2025, 2, 3), "09:00")) == []


# -- reproducibility ----------------------------------------------------------------------------


def irregular_run(seed: int) -> list[Tick]:
    market = SimMarket(INSTRUMENTS, start=START, seed=seed)
    out: list[Tick] = []
    t = START
    for seconds in (0.05, 0.3, 1.7, 0.1, 12.0, 0.4, 45.0, 3.0):
        t += timedelta(seconds=seconds)
        out += market.advance_to(t)
    out += market.advance_to(t + timedelta(minutes=5), tick_budget=20)
    return out


def test_same_seed_and_advances_give_identical_ticks() -> None:
    first = irregular_run(seed=42)
    assert len(first) > 100
    assert irregular_run(seed=42) == first


def test_different_seed_gives_different_ticks() -> None:
    assert [t.price for t in irregular_run(seed=1)] != [t.price for t in irregular_run(seed=2)]


def test_a_seed_gives_the_ticks_it_always_gave() -> None:
    # Pinned: a change of the model's draws (their order, their number) shows here, not as a
    # silently different market for everyone who chose a seed to reproduce a session.
    ticks = irregular_run(seed=42)
    assert len(ticks) == 804
    digest = hashlib.sha256(repr(ticks).encode()).hexdigest()
    assert digest == "2425466d6dc50c937160da16d2e79c7a1f009d94cccc0472ef5f0df800a8bf4a"


# -- tick contents ------------------------------------------------------------------------------


def test_prices_start_near_last_price_on_the_tick_grid_and_positive(ticks: list[Tick]) -> None:
    first = {s: series[0] for s, series in by_symbol(ticks).items()}
    assert first["RELIANCE"].prev_close == 2950.0
    assert first["NIFTY 50"].prev_close == 23500.0
    assert first["SMALLCO"].prev_close == 1000.0
    assert abs(first["RELIANCE"].price / 2950.0 - 1) < 0.03
    assert abs(first["NIFTY 50"].price / 23500.0 - 1) < 0.03
    for tick in ticks:
        for price in (tick.price, tick.open, tick.high, tick.low, tick.prev_close):
            assert price > 0
            assert on_grid(price), (tick.symbol, price)


def test_volume_is_cumulative_within_a_day_and_resets_on_the_roll(ticks: list[Tick]) -> None:
    for symbol in STOCKS:
        series = [t for t in ticks if t.symbol == symbol]
        monday = [t for t in series if t.timestamp.date() == MONDAY]
        tuesday = [t for t in series if t.timestamp.date() == TUESDAY]
        assert monday and tuesday
        lot = 10 if symbol == "SMALLCO" else 1
        for day in (monday, tuesday):
            assert day[0].volume == day[0].last_quantity
            for before, after in pairwise(day):
                assert after.volume == before.volume + after.last_quantity
            assert all(t.last_quantity >= lot and t.last_quantity % lot == 0 for t in day)
        assert tuesday[0].prev_close == monday[-1].price
        assert tuesday[0].volume < monday[-1].volume
    monday_reliance = [t for t in ticks if t.symbol == "RELIANCE" and t.timestamp.date() == MONDAY]
    assert 1_000_000 < monday_reliance[-1].volume < 50_000_000


def test_day_open_high_low_match_the_prices_seen(ticks: list[Tick]) -> None:
    days: dict[tuple[str, date], list[Tick]] = defaultdict(list)
    for tick in ticks:
        days[tick.symbol, tick.timestamp.date()].append(tick)
    assert len(days) == 2 * len(INSTRUMENTS)
    for series in days.values():
        day_open = series[0].open
        high = low = day_open
        for tick in series:
            assert tick.open == day_open
            high, low = max(high, tick.price), min(low, tick.price)
            assert (tick.high, tick.low) == (high, low)
        assert abs(day_open / series[0].prev_close - 1) < 0.03  # a small gap


def test_average_price_is_the_vwap_of_the_day_between_low_and_high(ticks: list[Tick]) -> None:
    turnover: dict[tuple[str, date], float] = defaultdict(float)
    for tick in ticks:
        if not tick.tradable:
            continue
        turnover[tick.symbol, tick.timestamp.date()] += tick.price * tick.last_quantity
        vwap = turnover[tick.symbol, tick.timestamp.date()] / tick.volume
        assert tick.average_price == pytest.approx(vwap, abs=0.006)
        assert tick.low <= tick.average_price <= tick.high


def test_depth_has_five_levels_a_tick_apart_around_the_price(ticks: list[Tick]) -> None:
    for tick in ticks:
        if not tick.tradable:
            continue
        assert tick.depth is not None
        bids, asks = tick.depth.buy, tick.depth.sell
        assert len(bids) == len(asks) == 5
        assert bids[0].price <= tick.price <= asks[0].price
        assert bids[0].price < asks[0].price
        bid_prices = [level.price for level in bids]
        ask_prices = [level.price for level in asks]
        assert bid_prices == sorted(bid_prices, reverse=True)
        assert ask_prices == sorted(ask_prices)
        assert asks[0].price - bids[0].price == pytest.approx(0.05)
        for near, far in pairwise(bid_prices):
            assert near - far == pytest.approx(0.05)
        for level in bids + asks:
            assert on_grid(level.price)
            assert level.quantity > 0
            assert 1 <= level.orders <= level.quantity
        assert tick.buy_quantity > 0
        assert tick.sell_quantity > 0


def test_timestamps_are_ist_in_session_and_non_decreasing(ticks: list[Tick]) -> None:
    assert [t.timestamp for t in ticks] == sorted(t.timestamp for t in ticks)
    for tick in ticks:
        assert tick.timestamp.utcoffset() == IST_OFFSET
        day = tick.timestamp.date()
        assert ist(day, "09:15") <= tick.timestamp <= ist(day, "15:30")
        if tick.tradable:
            assert tick.last_trade_time == tick.timestamp


def test_index_has_no_volume_no_depth_and_is_not_tradable(ticks: list[Tick]) -> None:
    index = [t for t in ticks if t.symbol == "NIFTY 50"]
    assert len(index) > 10_000  # about one a second
    for tick in index:
        assert not tick.tradable
        assert tick.volume == tick.last_quantity == 0
        assert tick.depth is None
        assert tick.average_price == 0.0
        assert tick.last_trade_time is None


def test_a_day_outside_the_session_starts_at_the_next_open(two_days: list[Batch]) -> None:
    after_close = [at for at, _ in two_days if at.date() == TUESDAY]
    assert after_close[0] == ist(TUESDAY, "09:16")


# -- statistics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", ["RELIANCE", "INFY", "SMALLCO", "NIFTY 50"])
def test_realised_volatility_of_minute_returns_is_plausible(
    two_days: list[Batch], symbol: str
) -> None:
    closes = minute_closes(two_days, symbol, MONDAY)
    assert len(closes) == 375
    returns = log_returns(closes)
    annualised = statistics.stdev(returns) * math.sqrt(375 * 252)
    assert 0.08 < annualised < 0.60
    if symbol == "NIFTY 50":
        assert annualised < 0.25


def test_stocks_and_index_move_together(two_days: list[Batch]) -> None:
    returns = {s: log_returns(minute_closes(two_days, s, MONDAY)) for s in ("RELIANCE", "INFY")}
    index = log_returns(minute_closes(two_days, "NIFTY 50", MONDAY))
    assert statistics.correlation(returns["RELIANCE"], returns["INFY"]) > 0
    assert statistics.correlation(returns["RELIANCE"], index) > 0.2
    assert statistics.correlation(returns["INFY"], index) > 0.2


def test_bank_index_moves_with_bank_stocks() -> None:
    hdfc = Instrument(341249, 1333, "HDFCBANK", "HDFC BANK", "NSE", "NSE", "EQ", last_price=1700.0)
    bank = Instrument(260105, 1016, "NIFTY BANK", "NIFTY BANK", "NSE", "INDICES", "EQ")
    market = SimMarket([hdfc, bank, INFY], start=START, seed=3, tick_rate=1.0)
    batches = drive(market, ist(MONDAY, "15:30"))
    returns = {s: log_returns(minute_closes(batches, s, MONDAY)) for s in market.symbols}
    with_bank = statistics.correlation(returns["HDFCBANK"], returns["NIFTY BANK"])
    assert with_bank > 0.3
    assert with_bank > statistics.correlation(returns["INFY"], returns["NIFTY BANK"])


# -- throttling ---------------------------------------------------------------------------------


def test_tick_budget_caps_ticks_but_keeps_volume_per_simulated_time() -> None:
    free = SimMarket([RELIANCE], start=START, seed=5)
    capped = SimMarket([RELIANCE], start=START, seed=5)
    end = ist(MONDAY, "10:15")
    all_ticks = free.advance_to(end)
    few = capped.advance_to(end, tick_budget=4)
    assert len(all_ticks) > 10_000
    assert len(few) == 4
    assert few[-1].timestamp - few[0].timestamp > timedelta(minutes=20)  # spread, not truncated
    assert 0.5 < few[-1].volume / all_ticks[-1].volume < 2.0


# -- the feed -----------------------------------------------------------------------------------


async def start_feed(feed: SimFeed, recorder: Recorder) -> asyncio.Task[None]:
    task = asyncio.create_task(feed.run(recorder.on_tick, recorder.on_status), name="sim-feed")
    async with asyncio.timeout(5):
        await recorder.live.wait()
    return task


async def stop_feed(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_sim_feed_implements_the_feed_protocol() -> None:
    feed: Feed = SimFeed(INSTRUMENTS, clock=ManualClock())
    assert feed.name == "sim"
    feed.subscribe([RELIANCE])
    feed.unsubscribe([RELIANCE])
    assert feed.status().state is FeedState.STARTING


def test_feed_at_night_plays_todays_session() -> None:
    night = ist(MONDAY, "22:00").astimezone(UTC)
    feed = SimFeed(INSTRUMENTS, clock=ManualClock(night))
    assert feed.market.now == ist(MONDAY, "09:15")


async def test_run_reports_live_streams_ticks_and_stops_on_cancel() -> None:
    clock = SteppingClock()
    recorder = Recorder()
    feed = SimFeed(INSTRUMENTS, clock=clock)
    task = await start_feed(feed, recorder)
    assert recorder.statuses[0].state is FeedState.LIVE
    assert feed.status().last_tick_at is None

    clock.advance(1.0)
    async with asyncio.timeout(5):
        first = await recorder.ticks.get()
    assert START < first.timestamp <= START + timedelta(seconds=1)
    assert first.timestamp.utcoffset() == IST_OFFSET
    assert feed.status().state is FeedState.LIVE
    assert feed.status().last_tick_at == clock.now()

    await stop_feed(task)
    assert recorder.statuses[-1].state is FeedState.STOPPED
    assert feed.status().state is FeedState.STOPPED


async def test_same_seed_and_clock_advances_give_the_same_stream() -> None:
    streams: list[list[Tick]] = []
    for _ in range(2):
        clock = SteppingClock()
        recorder = Recorder()
        task = await start_feed(SimFeed(INSTRUMENTS, clock=clock, speed=5.0), recorder)
        for seconds in (0.1, 0.25, 0.1, 1.0, 0.15, 0.3):  # each wakes the feed
            await clock.step(seconds)
        await stop_feed(task)
        streams.append(recorder.drain())
    assert len(streams[0]) > 20
    assert streams[0] == streams[1]


async def test_speed_60_plays_a_market_minute_per_clock_second() -> None:
    clock = SteppingClock()
    recorder = Recorder()
    feed = SimFeed(INSTRUMENTS, clock=clock, speed=60.0)
    task = await start_feed(feed, recorder)
    for _ in range(10):
        await clock.step(0.1)
    elapsed = (feed.market.now - START).total_seconds()
    assert elapsed == pytest.approx(60.0, abs=1e-3)
    stamps = [t.timestamp for t in recorder.drain()]
    assert START + timedelta(seconds=50) < max(stamps) <= START + timedelta(seconds=60)
    await stop_feed(task)


async def test_speed_600_bounds_ticks_per_clock_second() -> None:
    clock = SteppingClock()
    recorder = Recorder()
    feed = SimFeed(INSTRUMENTS, clock=clock, speed=600.0, tick_rate=4.0)
    task = await start_feed(feed, recorder)
    per_second: list[dict[str, int]] = []
    for _ in range(5):
        for _ in range(10):
            await clock.step(0.1)
        counts: dict[str, int] = defaultdict(int)
        for tick in recorder.drain():
            counts[tick.symbol] += 1
        per_second.append(counts)
    await stop_feed(task)
    assert (feed.market.now - START).total_seconds() == pytest.approx(3000.0, abs=1e-2)
    # 2 * tick_rate a clock second; a fraction of budget carried over can make one more.
    for counts in per_second:
        assert set(counts) == {i.symbol for i in INSTRUMENTS}
        assert all(4 < n <= 9 for n in counts.values()), counts
    for symbol in counts:
        assert sum(c[symbol] for c in per_second) <= 5 * 8
