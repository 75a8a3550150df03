from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickhub.core.model import IST, Candle, Interval, Tick
from tickhub.engines.candles import CandleBuilder, CandleEngine, bucket_start

DAY = date(2024, 1, 8)  # a Monday
NEXT_DAY = date(2024, 1, 9)
IST_OFFSET = timedelta(hours=5, minutes=30)


def ist(hhmmss: str, day: date = DAY) -> datetime:
    return datetime.combine(day, time.fromisoformat(hhmmss), IST)


def tick(ts: datetime, price: float, volume: int = 0, symbol: str = "INFY") -> Tick:
    return Tick(symbol=symbol, instrument_token=408065, timestamp=ts, price=price, volume=volume)


def candle(
    interval: Interval,
    start: datetime,
    ohlc: tuple[float, float, float, float],
    volume: int,
    closed: bool = True,
    symbol: str = "INFY",
) -> Candle:
    return Candle(symbol, interval, start, *ohlc, volume=volume, closed=closed)


def wall(dt: datetime) -> tuple[datetime, timedelta | None]:
    """Wall-clock time and offset: aware ``==`` compares instants only, this checks the zone too."""
    return dt.replace(tzinfo=None), dt.utcoffset()


# -- bucket_start -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "at", "expected"),
    [
        (Interval.M1, "09:15:00", "09:15"),
        (Interval.M1, "09:15:59.999999", "09:15"),
        (Interval.M1, "09:16:00", "09:16"),
        (Interval.M3, "09:17:59", "09:15"),
        (Interval.M3, "09:18:00", "09:18"),
        (Interval.M5, "09:19:59", "09:15"),
        (Interval.M5, "09:20:00", "09:20"),
        (Interval.M15, "09:29:59", "09:15"),
        (Interval.M15, "09:30:00", "09:30"),
        (Interval.M30, "09:15:00", "09:15"),
        (Interval.M30, "09:44:59", "09:15"),
        (Interval.M30, "09:45:00", "09:45"),
        (Interval.M30, "15:29:59", "15:15"),
        (Interval.H1, "09:15:00", "09:15"),
        (Interval.H1, "10:14:00", "09:15"),
        (Interval.H1, "10:14:59", "09:15"),
        (Interval.H1, "10:15:00", "10:15"),
        (Interval.H1, "15:29:00", "15:15"),
        # pre-open: the same grid extended backwards from 09:15
        (Interval.M5, "09:14:59", "09:10"),
        (Interval.M15, "09:07:00", "09:00"),
        (Interval.M30, "09:07:00", "08:45"),
        (Interval.H1, "09:07:00", "08:15"),
        # 1d: 09:15 of the tick's IST date, whatever the time of day
        (Interval.D1, "00:00:00", "09:15"),
        (Interval.D1, "08:00:00", "09:15"),
        (Interval.D1, "15:30:00", "09:15"),
        (Interval.D1, "23:59:59", "09:15"),
    ],
)
def test_bucket_start_is_aligned_to_session_open(
    interval: Interval, at: str, expected: str
) -> None:
    start = bucket_start(ist(at), interval)
    assert wall(start) == (datetime.combine(DAY, time.fromisoformat(expected)), IST_OFFSET)


@pytest.mark.parametrize(
    ("ts", "interval", "expected"),
    [
        (datetime(2024, 1, 8, 3, 45, tzinfo=UTC), Interval.M30, datetime(2024, 1, 8, 9, 15)),
        (datetime(2024, 1, 8, 4, 14, 59, tzinfo=UTC), Interval.M30, datetime(2024, 1, 8, 9, 15)),
        (datetime(2024, 1, 8, 4, 15, tzinfo=UTC), Interval.M30, datetime(2024, 1, 8, 9, 45)),
        (datetime(2024, 1, 8, 4, 44, tzinfo=UTC), Interval.H1, datetime(2024, 1, 8, 9, 15)),
        # just after midnight IST the 1h grid still runs through xx:15, into the previous date
        (datetime(2024, 1, 8, 0, 10, tzinfo=IST), Interval.H1, datetime(2024, 1, 7, 23, 15)),
        # 18:29:59 UTC is 23:59:59 IST the same date; 18:30 UTC is already the next IST date
        (datetime(2024, 1, 7, 18, 29, 59, tzinfo=UTC), Interval.D1, datetime(2024, 1, 7, 9, 15)),
        (datetime(2024, 1, 7, 18, 30, tzinfo=UTC), Interval.D1, datetime(2024, 1, 8, 9, 15)),
        (
            datetime(2024, 1, 7, 23, 15, tzinfo=ZoneInfo("America/New_York")),  # 09:45 IST
            Interval.M30,
            datetime(2024, 1, 8, 9, 45),
        ),
    ],
)
def test_bucket_start_takes_any_time_zone_and_answers_in_ist(
    ts: datetime, interval: Interval, expected: datetime
) -> None:
    assert wall(bucket_start(ts, interval)) == (expected, IST_OFFSET)


def test_bucket_start_rejects_naive_timestamp() -> None:
    with pytest.raises(ValueError, match="naive timestamp"):
        bucket_start(datetime(2024, 1, 8, 9, 15), Interval.M1)


# -- a scripted session, every interval -----------------------------------------------------------

# (IST time, price, cumulative day volume); volume steps: 0 (first tick), 200, 300, 100, 400,
# 100, 500, 400, 500, 500
SCRIPT = [
    ("09:15:05", 100.0, 1000),
    ("09:15:40", 101.5, 1200),
    ("09:16:10", 99.0, 1500),
    ("09:19:59", 102.0, 1600),
    ("09:20:00", 103.0, 2000),
    ("09:29:30", 98.5, 2100),
    ("09:30:00", 97.0, 2600),
    ("10:14:59", 99.5, 3000),
    ("10:15:00", 100.5, 3500),
    ("15:29:00", 104.0, 4000),
]

EXPECTED = {
    Interval.M1: (
        [
            ("09:15", (100.0, 101.5, 100.0, 101.5), 200),
            ("09:16", (99.0, 99.0, 99.0, 99.0), 300),
            ("09:19", (102.0, 102.0, 102.0, 102.0), 100),
            ("09:20", (103.0, 103.0, 103.0, 103.0), 400),
            ("09:29", (98.5, 98.5, 98.5, 98.5), 100),
            ("09:30", (97.0, 97.0, 97.0, 97.0), 500),
            ("10:14", (99.5, 99.5, 99.5, 99.5), 400),
            ("10:15", (100.5, 100.5, 100.5, 100.5), 500),
        ],
        ("15:29", (104.0, 104.0, 104.0, 104.0), 500),
    ),
    Interval.M5: (
        [
            ("09:15", (100.0, 102.0, 99.0, 102.0), 600),
            ("09:20", (103.0, 103.0, 103.0, 103.0), 400),
            ("09:25", (98.5, 98.5, 98.5, 98.5), 100),
            ("09:30", (97.0, 97.0, 97.0, 97.0), 500),
            ("10:10", (99.5, 99.5, 99.5, 99.5), 400),
            ("10:15", (100.5, 100.5, 100.5, 100.5), 500),
        ],
        ("15:25", (104.0, 104.0, 104.0, 104.0), 500),
    ),
    Interval.M15: (
        [
            ("09:15", (100.0, 103.0, 98.5, 98.5), 1100),
            ("09:30", (97.0, 97.0, 97.0, 97.0), 500),
            ("10:00", (99.5, 99.5, 99.5, 99.5), 400),
            ("10:15", (100.5, 100.5, 100.5, 100.5), 500),
        ],
        ("15:15", (104.0, 104.0, 104.0, 104.0), 500),
    ),
    Interval.H1: (
        [
            ("09:15", (100.0, 103.0, 97.0, 99.5), 2000),
            ("10:15", (100.5, 100.5, 100.5, 100.5), 500),
        ],
        ("15:15", (104.0, 104.0, 104.0, 104.0), 500),
    ),
    Interval.D1: ([], ("09:15", (100.0, 104.0, 97.0, 104.0), 3000)),
}


@pytest.fixture
def scripted() -> CandleEngine:
    engine = CandleEngine()
    for at, price, volume in SCRIPT:
        engine.on_tick(tick(ist(at), price, volume))
    return engine


@pytest.mark.parametrize("interval", list(EXPECTED))
def test_scripted_session_gives_exact_ohlcv(scripted: CandleEngine, interval: Interval) -> None:
    closed, (at, ohlc, volume) = EXPECTED[interval]
    assert scripted.history("INFY", interval) == [
        candle(interval, ist(s), o, v, closed=True) for s, o, v in closed
    ]
    assert scripted.current("INFY", interval) == candle(interval, ist(at), ohlc, volume, False)


def test_candle_starts_are_ist_datetimes(scripted: CandleEngine) -> None:
    for interval in Interval:
        forming = scripted.current("INFY", interval)
        assert forming is not None
        assert forming.start.utcoffset() == IST_OFFSET
        assert all(c.start.utcoffset() == IST_OFFSET for c in scripted.history("INFY", interval))


def test_next_day_closes_the_day_candle_and_counts_the_reset_volume(
    scripted: CandleEngine,
) -> None:
    updates = scripted.on_tick(tick(ist("09:15:00", NEXT_DAY), 105.0, 800))
    daily = [c for c in updates if c.interval is Interval.D1]
    assert daily == [
        candle(Interval.D1, ist("09:15"), (100.0, 104.0, 97.0, 104.0), 3000, closed=True),
        candle(Interval.D1, ist("09:15", NEXT_DAY), (105.0, 105.0, 105.0, 105.0), 800, False),
    ]
    # every interval closes its forming candle and opens one at 09:15 the next day
    assert [c.closed for c in updates] == [True, False] * len(Interval)


# -- CandleBuilder ------------------------------------------------------------------------------


def test_closed_flag_is_set_on_the_final_update_only() -> None:
    builder = CandleBuilder("INFY", Interval.M1)
    first = builder.update(tick(ist("09:15:05"), 100.0))
    second = builder.update(tick(ist("09:15:30"), 101.0))
    third = builder.update(tick(ist("09:16:00"), 99.0))

    assert [[c.closed for c in u] for u in (first, second, third)] == [
        [False],
        [False],
        [True, False],
    ]
    assert third[0] == dataclasses.replace(second[0], closed=True)
    assert third[1] == candle(Interval.M1, ist("09:16"), (99.0, 99.0, 99.0, 99.0), 0, False)
    assert builder.current == third[1]


def test_current_is_none_before_the_first_tick() -> None:
    assert CandleBuilder("INFY", Interval.M5).current is None


def test_close_if_due_closes_at_the_bucket_end() -> None:
    builder = CandleBuilder("INFY", Interval.M1)
    builder.update(tick(ist("09:15:05"), 100.0, 1000))
    builder.update(tick(ist("09:15:20"), 100.5, 1100))

    assert builder.close_if_due(ist("09:15:59")) is None
    closed = builder.close_if_due(ist("09:16:00"))
    assert closed == candle(Interval.M1, ist("09:15"), (100.0, 100.5, 100.0, 100.5), 100, True)
    assert builder.current is None
    assert builder.close_if_due(ist("09:20:00")) is None


def test_tick_after_timer_close_does_not_reopen_the_bucket() -> None:
    builder = CandleBuilder("INFY", Interval.M1)
    builder.update(tick(ist("09:15:05"), 100.0, 1000))
    assert builder.close_if_due(ist("09:16:01")) is not None

    assert builder.update(tick(ist("09:15:50"), 90.0, 1000)) == []
    assert builder.current is None
    # the next bucket opens with no closing update for the old one
    assert builder.update(tick(ist("09:16:10"), 101.0, 1000)) == [
        candle(Interval.M1, ist("09:16"), (101.0, 101.0, 101.0, 101.0), 0, False)
    ]


def test_close_if_due_for_a_day_waits_for_ist_midnight() -> None:
    builder = CandleBuilder("INFY", Interval.D1)
    builder.update(tick(ist("15:29:00"), 100.0))
    assert builder.close_if_due(ist("23:59:59")) is None
    assert builder.close_if_due(datetime(2024, 1, 8, 18, 30, tzinfo=UTC)) is not None


def test_out_of_order_tick_from_an_older_bucket_is_ignored() -> None:
    builder = CandleBuilder("INFY", Interval.M1)
    builder.update(tick(ist("09:15:10"), 100.0))
    builder.update(tick(ist("09:16:05"), 101.0))

    assert builder.update(tick(ist("09:15:50"), 90.0)) == []
    assert builder.current == candle(
        Interval.M1, ist("09:16"), (101.0, 101.0, 101.0, 101.0), 0, False
    )


def test_older_tick_in_the_forming_bucket_extends_range_but_keeps_close() -> None:
    builder = CandleBuilder("INFY", Interval.M1)
    builder.update(tick(ist("09:15:30"), 100.0))
    builder.update(tick(ist("09:15:40"), 105.0))
    (update,) = builder.update(tick(ist("09:15:35"), 90.0))
    assert update == candle(Interval.M1, ist("09:15"), (100.0, 105.0, 90.0, 105.0), 0, False)


@pytest.mark.parametrize(
    "call",
    [
        lambda b: b.update(tick(datetime(2024, 1, 8, 9, 15), 100.0)),
        lambda b: b.close_if_due(datetime(2024, 1, 8, 9, 16)),
    ],
    ids=["update", "close_if_due"],
)
def test_builder_rejects_naive_timestamps(call: Callable[[CandleBuilder], object]) -> None:
    builder = CandleBuilder("INFY", Interval.M1)
    builder.update(tick(ist("09:15:00"), 100.0))
    with pytest.raises(ValueError, match="naive timestamp"):
        call(builder)


def test_builder_rejects_another_symbols_tick() -> None:
    with pytest.raises(ValueError, match="'TCS'"):
        CandleBuilder("INFY", Interval.M1).update(tick(ist("09:15:00"), 100.0, symbol="TCS"))


# -- volume ---------------------------------------------------------------------------------------


def volumes(steps: list[tuple[datetime, int]], interval: Interval = Interval.M1) -> list[int]:
    """Volume of the forming candle after each tick (ticks all in new or the same bucket)."""
    builder = CandleBuilder("INFY", interval)
    out = []
    for ts, cumulative in steps:
        builder.update(tick(ts, 100.0, cumulative))
        assert builder.current is not None
        out.append(builder.current.volume)
    return out


def test_first_tick_ever_contributes_no_volume() -> None:
    assert volumes([(ist("09:15:00"), 50_000), (ist("09:15:01"), 50_250)]) == [0, 250]


def test_lower_cumulative_volume_within_the_day_counts_zero_and_keeps_the_max() -> None:
    # 1400 is a glitch below the 1500 already counted; 1600 then adds 100, not 200
    steps = [(ist(f"09:15:0{i}"), v) for i, v in enumerate([1000, 1500, 1400, 1600])]
    assert volumes(steps) == [0, 500, 500, 600]


def test_day_reset_counts_the_new_cumulative_value() -> None:
    steps = [
        (ist("15:29:00"), 1000),
        (ist("15:29:30"), 1500),
        (ist("09:15:00", NEXT_DAY), 300),
        (ist("09:15:10", NEXT_DAY), 450),
    ]
    assert volumes(steps, Interval.D1) == [0, 500, 300, 450]


def test_new_day_counts_its_cumulative_value_even_when_higher_than_yesterday() -> None:
    steps = [(ist("15:29:00"), 1000), (ist("09:15:00", NEXT_DAY), 5000)]
    assert volumes(steps, Interval.D1) == [0, 5000]


def test_late_tick_keeps_the_volume_reference_and_its_volume_goes_to_the_forming_candle() -> None:
    builder = CandleBuilder("INFY", Interval.M1)
    builder.update(tick(ist("09:15:10"), 100.0, 1000))
    builder.update(tick(ist("09:16:05"), 101.0, 1100))  # +100
    assert builder.update(tick(ist("09:15:55"), 99.0, 1150)) == []  # +50, late
    builder.update(tick(ist("09:16:30"), 102.0, 1200))  # +50, not +100
    assert builder.current is not None
    assert builder.current.volume == 200


def test_late_volume_after_a_timer_close_goes_to_the_next_candle() -> None:
    builder = CandleBuilder("INFY", Interval.M1)
    builder.update(tick(ist("09:15:10"), 100.0, 1000))
    builder.close_if_due(ist("09:16:00"))
    assert builder.update(tick(ist("09:15:50"), 100.0, 1150)) == []  # +150, bucket closed
    (opened,) = builder.update(tick(ist("09:16:10"), 101.0, 1170))  # +20
    assert opened.volume == 170


def test_late_tick_from_the_previous_day_counts_nothing() -> None:
    steps = [
        (ist("15:29:00"), 9000),
        (ist("09:15:00", NEXT_DAY), 100),
        (ist("15:29:59"), 9500),  # yesterday's counter: not today's volume
        (ist("09:15:05", NEXT_DAY), 150),
    ]
    builder = CandleBuilder("INFY", Interval.M1)
    for ts, cumulative in steps:
        builder.update(tick(ts, 100.0, cumulative))
    assert builder.current is not None
    assert builder.current.volume == 150


def test_index_candles_have_zero_volume() -> None:
    engine = CandleEngine([Interval.M1, Interval.D1])
    for at, price in [("09:15:00", 21_700.5), ("09:15:30", 21_710.0), ("09:16:00", 21_690.25)]:
        engine.on_tick(tick(ist(at), price, 0, symbol="NIFTY 50"))
    assert [c.volume for c in engine.history("NIFTY 50", Interval.M1)] == [0]
    assert engine.current("NIFTY 50", Interval.D1) == candle(
        Interval.D1, ist("09:15"), (21_700.5, 21_710.0, 21_690.25, 21_690.25), 0, False, "NIFTY 50"
    )


# -- CandleEngine -------------------------------------------------------------------------------


def test_engine_keeps_symbols_apart_and_reports_every_interval() -> None:
    engine = CandleEngine([Interval.M1, Interval.M5])
    updates = engine.on_tick(tick(ist("09:15:00"), 100.0))
    assert [(c.symbol, c.interval) for c in updates] == [
        ("INFY", Interval.M1),
        ("INFY", Interval.M5),
    ]
    engine.on_tick(tick(ist("09:15:10"), 3500.0, symbol="TCS"))
    infy = engine.current("INFY", Interval.M1)
    tcs = engine.current("TCS", Interval.M1)
    assert infy is not None and infy.close == 100.0
    assert tcs is not None and tcs.close == 3500.0


def test_engine_close_due_closes_only_buckets_that_ended_and_records_them() -> None:
    engine = CandleEngine([Interval.M1, Interval.M5])
    engine.on_tick(tick(ist("09:15:10"), 100.0))
    engine.on_tick(tick(ist("09:16:20"), 3500.0, symbol="TCS"))

    closed = engine.close_due(ist("09:17:00"))
    assert {(c.symbol, c.interval, c.start) for c in closed} == {
        ("INFY", Interval.M1, ist("09:15")),
        ("TCS", Interval.M1, ist("09:16")),
    }
    assert all(c.closed for c in closed)
    assert engine.history("INFY", Interval.M1) == [c for c in closed if c.symbol == "INFY"]
    assert engine.current("INFY", Interval.M1) is None
    assert engine.current("INFY", Interval.M5) is not None
    assert engine.close_due(ist("09:17:30")) == []


def test_engine_history_is_bounded_and_returns_the_last_n_oldest_first() -> None:
    engine = CandleEngine([Interval.M1], history_size=3)
    for minute in range(6):  # 09:15 ... 09:20: five buckets close
        engine.on_tick(tick(ist(f"09:{15 + minute}:00"), 100.0 + minute))

    starts = [c.start for c in engine.history("INFY", Interval.M1)]
    assert starts == [ist("09:17"), ist("09:18"), ist("09:19")]
    assert [c.close for c in engine.history("INFY", Interval.M1, 2)] == [103.0, 104.0]
    assert engine.history("INFY", Interval.M1, 0) == []
    assert engine.history("INFY", Interval.M1, 10) == engine.history("INFY", Interval.M1)


def test_engine_unknown_symbol_has_no_candles() -> None:
    engine = CandleEngine()
    assert engine.current("RELIANCE", Interval.M1) is None
    assert engine.history("RELIANCE", Interval.M1) == []


def test_engine_rejects_an_interval_it_does_not_build() -> None:
    engine = CandleEngine([Interval.M1])
    with pytest.raises(ValueError, match="'1h'"):
        engine.current("INFY", Interval.H1)


def test_engine_rejects_naive_timestamps() -> None:
    engine = CandleEngine()
    with pytest.raises(ValueError, match="naive timestamp"):
        engine.on_tick(tick(datetime(2024, 1, 8, 9, 15), 100.0))
    with pytest.raises(ValueError, match="naive timestamp"):
        engine.close_due(datetime(2024, 1, 8, 9, 16))


# -- against a straightforward reference ----------------------------------------------------------


def reference_start(ts: datetime, interval: Interval) -> datetime:
    """The bucket rule written the obvious way, with datetime arithmetic in IST."""
    local = ts.astimezone(IST)
    session_open = local.replace(hour=9, minute=15, second=0, microsecond=0)
    if interval is Interval.D1:
        return session_open
    step = timedelta(seconds=interval.seconds)
    return session_open + (local - session_open) // step * step


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=7 * 3600),  # seconds after 09:00
            st.integers(min_value=1, max_value=400).map(lambda p: p / 4),
            st.integers(min_value=0, max_value=500),  # volume step
        ),
        min_size=1,
        max_size=40,
    )
)
def test_in_order_ticks_match_a_reference_grouping(
    raw: list[tuple[int, float, int]],
) -> None:
    raw.sort(key=lambda r: r[0])
    ticks = []
    cumulative = 10_000
    for offset, price, step in raw:
        cumulative += step
        ticks.append(tick(ist("09:00:00") + timedelta(seconds=offset), price, cumulative))

    engine = CandleEngine()
    for t in ticks:
        engine.on_tick(t)

    for interval in Interval:
        groups: dict[datetime, list[tuple[float, int]]] = {}
        previous = None
        for t in ticks:
            step = 0 if previous is None else t.volume - previous
            previous = t.volume
            groups.setdefault(reference_start(t.timestamp, interval), []).append((t.price, step))
        expected = [
            Candle(
                "INFY",
                interval,
                start,
                rows[0][0],
                max(p for p, _ in rows),
                min(p for p, _ in rows),
                rows[-1][0],
                sum(v for _, v in rows),
                closed=True,
            )
            for start, rows in groups.items()
        ]
        got = [*engine.history("INFY", interval), engine.current("INFY", interval)]
        assert got[:-1] == expected[:-1]
        assert got[-1] == dataclasses.replace(expected[-1], closed=False)
        # volume is conserved: all candles together hold everything traded after the first tick
        assert sum(c.volume for c in got if c) == ticks[-1].volume - ticks[0].volume
