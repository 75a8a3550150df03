"""A past given to the candle engine: minute bars rolled up to every interval equal what the
engine builds from the same bars played as ticks (the replay path), and a restored past is
final for the ticks that follow."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

import pytest

from tickhub.core.model import IST, Candle, Instrument, Interval, Tick
from tickhub.engines.candles import CandleEngine, roll_up
from tickhub.feeds.replay.bars import Bar, BarTicks

INFY = Instrument(408065, 1594, "INFY", "INFOSYS", "NSE", "NSE", "EQ")
DAYS = (date(2024, 1, 8), date(2024, 1, 9))


def minute_bars(seed: int = 3) -> list[Candle]:
    """Two full sessions of random closed 1m candles on the tick grid."""
    rng = random.Random(seed)
    price = 1500.0
    out = []
    for day in DAYS:
        start = datetime.combine(day, time(9, 15), IST)
        for m in range(375):
            o = price
            c = round(max(1.0, o + rng.gauss(0, 1.5)) * 20) / 20
            h = max(o, c) + round(rng.random() * 20) / 20
            low = min(o, c) - round(rng.random() * 20) / 20
            out.append(
                Candle(
                    "INFY",
                    Interval.M1,
                    start + timedelta(minutes=m),
                    o,
                    h,
                    low,
                    c,
                    rng.randrange(1, 5000),
                    True,
                )
            )
            price = c
    return out


def played(bars: list[Candle]) -> CandleEngine:
    """The bars as a replayed bar file plays them: ticks through the engine, then closed."""
    engine = CandleEngine(tuple(Interval), history_size=10_000)
    synth = BarTicks()
    for c in bars:
        bar = Bar("INFY", c.start, c.open, c.high, c.low, c.close, c.volume)
        assert synth.accept(bar, INFY) is None
        for t in synth.ticks(bar, INFY):
            engine.on_tick(t)
    engine.close_due(datetime.combine(DAYS[-1] + timedelta(days=1), time(9, 0), IST))
    return engine


@pytest.mark.parametrize("interval", list(Interval))
def test_rolled_up_bars_equal_the_candles_the_bars_make_as_ticks(interval: Interval) -> None:
    bars = minute_bars()
    rolled = bars if interval is Interval.M1 else roll_up(bars, interval)
    built = played(bars).history("INFY", interval)
    assert [(c.start, c.open, c.high, c.low, c.close) for c in rolled] == [
        (c.start, c.open, c.high, c.low, c.close) for c in built
    ]
    # Volume: the ticks' first-ever and first-of-day rules count the open tick as 0, which a
    # bar's own volume never includes, so the volumes agree too.
    assert [c.volume for c in rolled] == [c.volume for c in built]
    assert all(c.closed and c.interval is interval for c in rolled)


def test_restored_candles_are_the_history_and_final() -> None:
    bars = minute_bars()
    engine = CandleEngine((Interval.M1, Interval.M5), history_size=500)
    engine.restore(bars)
    engine.restore(roll_up(bars, Interval.M5))
    assert engine.history("INFY", Interval.M1) == bars[-500:]
    assert engine.current("INFY", Interval.M1) is None
    last = bars[-1].start
    # A tick in the last restored minute is late: it changes nothing.
    late = Tick("INFY", 408065, last + timedelta(seconds=30), 9999.0, volume=10)
    assert engine.on_tick(late) == []
    # The next day's first tick opens a new candle and closes nothing of the past.
    live = Tick("INFY", 408065, datetime(2024, 1, 10, 9, 15, 2, tzinfo=IST), 1600.0, volume=10)
    updates = engine.on_tick(live)
    assert [(u.interval, u.closed) for u in updates] == [
        (Interval.M1, False),
        (Interval.M5, False),
    ]
    assert engine.history("INFY", Interval.M1)[-1] == bars[-1]


def test_restore_refuses_what_would_break_the_series() -> None:
    bars = minute_bars()
    engine = CandleEngine((Interval.M1,), history_size=500)
    with pytest.raises(ValueError, match="only closed candles"):
        engine.restore([Candle("INFY", Interval.M1, bars[0].start, 1, 1, 1, 1, 0, False)])
    engine.restore(bars[:10])
    with pytest.raises(ValueError, match="not after the series' latest bucket"):
        engine.restore(bars[5:6])
    with pytest.raises(ValueError, match="interval not configured"):
        engine.restore(roll_up(bars, Interval.H1))
