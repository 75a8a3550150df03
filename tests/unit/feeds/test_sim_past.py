"""The simulated market's past: deterministic minute bars of the sessions before the start,
ending where the live market begins."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from tickhub.core import defaults
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import IST, Candle, Interval
from tickhub.feeds.sim import SimFeed
from tickhub.feeds.sim.past import MINUTES_PER_SESSION, past_bars, past_days

MONDAY = datetime(2025, 1, 27, 9, 15, tzinfo=IST)
INSTRUMENTS = list(InstrumentRegistry.bundled())


def bars(seed: int = 42, sessions: int = 2, start: datetime = MONDAY) -> dict[str, list[Candle]]:
    return past_bars(
        INSTRUMENTS,
        start=start,
        sessions=sessions,
        seed=seed,
        tick_rate=defaults.SIM_TICK_RATE,
        index_symbol=defaults.SIM_INDEX_SYMBOL,
    )


def test_the_same_seed_gives_the_same_bars_and_another_seed_others() -> None:
    assert bars(42) == bars(42)
    assert bars(42)["RELIANCE"] != bars(43)["RELIANCE"]


@pytest.mark.parametrize(
    ("start", "days"),
    [
        (MONDAY, [date(2025, 1, 23), date(2025, 1, 24)]),
        # Mid-session: the start's own day is the live one; the past is the days before.
        (datetime(2025, 1, 29, 11, 40, tzinfo=IST), [date(2025, 1, 27), date(2025, 1, 28)]),
        # After the close and at a weekend, the live market starts on the next session.
        (datetime(2025, 1, 24, 18, 0, tzinfo=IST), [date(2025, 1, 23), date(2025, 1, 24)]),
        (datetime(2025, 1, 26, 12, 0, tzinfo=IST), [date(2025, 1, 23), date(2025, 1, 24)]),
    ],
)
def test_the_past_is_the_trading_days_before_the_live_one(
    start: datetime, days: list[date]
) -> None:
    assert past_days(start, 2) == days
    assert past_days(start, 0) == []


def test_sessions_are_bounded() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        past_days(MONDAY, -1)
    with pytest.raises(ValueError, match=f"at most {defaults.SIM_MAX_HISTORY_SESSIONS}"):
        past_days(MONDAY, defaults.SIM_MAX_HISTORY_SESSIONS + 1)


def test_every_instrument_has_a_closed_bar_every_session_minute() -> None:
    past = bars()
    assert set(past) == {i.symbol for i in INSTRUMENTS}
    expected = [
        datetime.combine(day, time(9, 15), IST) + timedelta(minutes=m)
        for day in (date(2025, 1, 23), date(2025, 1, 24))
        for m in range(MINUTES_PER_SESSION)
    ]
    by_symbol = {i.symbol: i for i in INSTRUMENTS}
    for symbol, series in past.items():
        assert [c.start for c in series] == expected
        tick = by_symbol[symbol].tick_size or 0.05
        for c in series:
            assert c.closed and c.interval is Interval.M1 and c.symbol == symbol
            assert 0 < c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high
            for price in (c.open, c.high, c.low, c.close):
                assert abs(price / tick - round(price / tick)) < 1e-6
            if by_symbol[symbol].tradable:
                assert c.volume > 0 and c.volume % max(1, by_symbol[symbol].lot_size) == 0
            else:
                assert c.volume == 0


def test_the_past_ends_where_the_live_market_begins() -> None:
    feed = SimFeed(INSTRUMENTS, start=MONDAY, history_sessions=2)
    past = feed.past()
    first = feed.market.advance_to(MONDAY + timedelta(minutes=2))
    seen: set[str] = set()
    for tick in first:
        if tick.symbol not in seen:
            seen.add(tick.symbol)
            assert tick.prev_close == past[tick.symbol][-1].close
            assert tick.timestamp > past[tick.symbol][-1].start + timedelta(minutes=1)
    assert len(seen) > 40


def test_the_past_leaves_the_live_ticks_as_they_were() -> None:
    with_past = SimFeed(INSTRUMENTS, start=MONDAY, history_sessions=3)
    without = SimFeed(INSTRUMENTS, start=MONDAY)
    assert with_past.past() and without.past() == {}
    later = MONDAY + timedelta(minutes=5)
    assert with_past.market.advance_to(later) == without.market.advance_to(later)
