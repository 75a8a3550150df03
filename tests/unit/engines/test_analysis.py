"""Indicators, patterns, risk metrics and trend, checked against formulas written here."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickhub.core.model import IST, Candle, Interval
from tickhub.engines.analysis import (
    LOOKBACK,
    PATTERNS,
    RISK_WINDOW,
    WARMUP_NEEDED,
    SessionVwap,
    classify_trend,
    compute_indicators,
    detect_patterns,
    periods_per_year,
    risk_metrics,
)
from tickhub.engines.analysis.patterns import PATTERN_CONTEXT
from tickhub.engines.analysis.risk import percentile

T0 = datetime(2024, 1, 2, 9, 15, tzinfo=IST)
TOL = 1e-6


def candle(
    i: int,
    open_: float,
    high: float,
    low: float,
    close: float,
    volume: int = 1000,
    *,
    symbol: str = "RELIANCE",
    interval: Interval = Interval.M1,
) -> Candle:
    return Candle(
        symbol, interval, T0 + i * interval.delta, open_, high, low, close, volume, closed=True
    )


def random_walk(
    n: int, seed: int = 7, *, start: float = 2500.0, drift: float = 0.0
) -> list[Candle]:
    rng = random.Random(seed)
    candles, close = [], start
    for i in range(n):
        open_ = close
        close = round(open_ * (1.0 + drift + rng.gauss(0.0, 0.004)), 2)
        high = round(max(open_, close) + rng.uniform(0.0, 4.0), 2)
        low = round(min(open_, close) - rng.uniform(0.0, 4.0), 2)
        candles.append(candle(i, open_, high, low, close, rng.randint(100, 5000)))
    return candles


SERIES = random_walk(120)
CLOSES = [c.close for c in SERIES]


# --- reference formulas, independent of TA-Lib ---------------------------------------------------


def ref_ema(values: Sequence[float], period: int) -> list[float]:
    """EMA seeded with the SMA of the first ``period`` values; element 0 is at index period-1."""
    k = 2.0 / (period + 1)
    ema = sum(values[:period]) / period
    out = [ema]
    for value in values[period:]:
        ema = ema + k * (value - ema)
        out.append(ema)
    return out


def ref_rsi(closes: Sequence[float], period: int = 14) -> float:
    changes = [b - a for a, b in pairwise(closes)]
    gains = [max(c, 0.0) for c in changes]
    losses = [max(-c, 0.0) for c in changes]
    avg_gain = sum(gains[:period]) / period
    avg_loss = sum(losses[:period]) / period
    for gain, loss in zip(gains[period:], losses[period:], strict=True):
        avg_gain = (avg_gain * (period - 1) + gain) / period
        avg_loss = (avg_loss * (period - 1) + loss) / period
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


def ref_atr(candles: Sequence[Candle], period: int = 14) -> float:
    true_ranges = [
        max(c.high - c.low, abs(c.high - prev.close), abs(c.low - prev.close))
        for prev, c in pairwise(candles)
    ]
    atr = sum(true_ranges[:period]) / period
    for tr in true_ranges[period:]:
        atr = (atr * (period - 1) + tr) / period
    return atr


def ref_macd(closes: Sequence[float]) -> tuple[float, float, float]:
    # TA-Lib starts both EMAs where the slow one starts (index 25): the fast one is seeded with the
    # SMA of the 12 closes ending there, not of the first 12.
    slow = ref_ema(closes, 26)
    fast = ref_ema(closes[26 - 12 :], 12)
    line = [f - s for f, s in zip(fast, slow, strict=True)]
    signal = ref_ema(line, 9)
    return line[-1], signal[-1], line[-1] - signal[-1]


def ref_percentile_linear(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    rank = q / 100.0 * (len(ordered) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


# --- indicators ----------------------------------------------------------------------------------


def test_sma_matches_mean_of_last_20_closes() -> None:
    assert compute_indicators(SERIES)["sma_20"] == pytest.approx(sum(CLOSES[-20:]) / 20, abs=TOL)


def test_ema_is_seeded_with_sma_of_first_20() -> None:
    assert compute_indicators(SERIES)["ema_20"] == pytest.approx(ref_ema(CLOSES, 20)[-1], abs=TOL)


def test_rsi_uses_wilder_smoothing() -> None:
    assert compute_indicators(SERIES)["rsi_14"] == pytest.approx(ref_rsi(CLOSES), abs=TOL)


def test_macd_line_signal_and_histogram() -> None:
    line, signal, histogram = ref_macd(CLOSES)
    macd = compute_indicators(SERIES)["macd"]
    assert macd["macd"] == pytest.approx(line, abs=TOL)
    assert macd["signal"] == pytest.approx(signal, abs=TOL)
    assert macd["histogram"] == pytest.approx(histogram, abs=TOL)


def test_bollinger_uses_population_standard_deviation() -> None:
    mean = statistics.fmean(CLOSES[-20:])
    deviation = statistics.pstdev(CLOSES[-20:])
    bands = compute_indicators(SERIES)["bollinger"]
    assert bands["upper"] == pytest.approx(mean + 2 * deviation, abs=TOL)
    assert bands["middle"] == pytest.approx(mean, abs=TOL)
    assert bands["lower"] == pytest.approx(mean - 2 * deviation, abs=TOL)


def test_atr_uses_wilder_smoothing_of_true_range() -> None:
    assert compute_indicators(SERIES)["atr_14"] == pytest.approx(ref_atr(SERIES), abs=TOL)


def test_indicators_include_the_last_candle_given() -> None:
    forming = candle(120, CLOSES[-1], CLOSES[-1] + 30, CLOSES[-1] - 1, CLOSES[-1] + 25, 700)
    with_forming = compute_indicators([*SERIES, forming])
    closes = [*CLOSES, forming.close]
    assert with_forming["ema_20"] == pytest.approx(ref_ema(closes, 20)[-1], abs=TOL)
    assert with_forming["rsi_14"] == pytest.approx(ref_rsi(closes), abs=TOL)
    assert with_forming["warmup"] == {"needed": WARMUP_NEEDED, "have": 121}


def test_vwap_is_cumulative_typical_price_volume_over_the_session() -> None:
    expected = sum((c.high + c.low + c.close) / 3 * c.volume for c in SERIES) / sum(
        c.volume for c in SERIES
    )
    assert compute_indicators(SERIES)["vwap"] == pytest.approx(expected, abs=TOL)


def test_vwap_resets_on_a_new_ist_trading_day() -> None:
    day1 = Candle("X", Interval.M1, datetime(2024, 1, 2, 15, 29, tzinfo=IST), 90, 91, 89, 90, 500)
    # 22:00 UTC on 2 January is 03:30 IST on 3 January: a new IST session, same UTC date.
    day2_start = datetime(2024, 1, 2, 22, 0, tzinfo=UTC)
    day2 = [
        Candle("X", Interval.M1, day2_start, 99, 102, 98, 100, 10),  # typical 100
        Candle("X", Interval.M1, day2_start + timedelta(minutes=1), 100, 106, 100, 103, 30),  # 103
    ]
    assert compute_indicators([day1, *day2])["vwap"] == pytest.approx((100 * 10 + 103 * 30) / 40)
    assert compute_indicators([day1])["vwap"] == pytest.approx(90.0)


def test_vwap_is_none_without_volume() -> None:
    index = [candle(i, 100, 101, 99, 100, volume=0, symbol="NIFTY 50") for i in range(40)]
    assert compute_indicators(index)["vwap"] is None
    assert SessionVwap().value is None


def test_indicators_are_null_until_warmed_up() -> None:
    for n in range(WARMUP_NEEDED + 3):
        indicators = compute_indicators(SERIES[:n])
        assert (indicators["sma_20"] is None) == (n < 20)
        assert (indicators["ema_20"] is None) == (n < 20)
        assert (indicators["rsi_14"] is None) == (n < 15)
        assert (indicators["atr_14"] is None) == (n < 15)
        assert all((v is None) == (n < 20) for v in indicators["bollinger"].values())
        assert (indicators["macd"]["macd"] is None) == (n < 34)
        assert (indicators["macd"]["signal"] is None) == (n < 34)
        assert (indicators["macd"]["histogram"] is None) == (n < 34)
        assert (indicators["vwap"] is None) == (n == 0)
        assert indicators["warmup"] == {"needed": 34, "have": n}


def test_talib_indicators_read_only_the_last_lookback_candles() -> None:
    long_series = random_walk(LOOKBACK + 100, seed=3)
    full = compute_indicators(long_series)
    cut = compute_indicators(long_series[-LOOKBACK:])
    for key in ("sma_20", "ema_20", "rsi_14", "macd", "bollinger", "atr_14"):
        assert full[key] == cut[key]
    assert full["warmup"]["have"] == LOOKBACK + 100


# --- patterns ------------------------------------------------------------------------------------


def context(n: int = 12) -> list[tuple[float, float, float, float]]:
    """Ordinary sideways candles: bodies of 1, ranges of 2, alternating colours."""
    rows = []
    for i in range(n):
        open_, close = (100.0, 101.0) if i % 2 == 0 else (101.0, 100.0)
        rows.append((open_, max(open_, close) + 0.5, min(open_, close) - 0.5, close))
    return rows


def build(rows: Sequence[tuple[float, float, float, float]]) -> list[Candle]:
    return [candle(i, o, h, low, c) for i, (o, h, low, c) in enumerate(rows)]


# (open, high, low, close) rows appended to the context; the last row is the signal candle.
PATTERN_CASES = {
    ("doji", "neutral"): [(100.5, 101.5, 99.5, 100.5)],
    ("hammer", "bullish"): [(99.5, 99.85, 98.5, 99.8)],
    ("shooting_star", "bearish"): [(101.4, 102.5, 101.05, 101.1)],
    ("engulfing", "bullish"): [(101, 101.5, 99.5, 100), (99.8, 101.5, 99.7, 101.3)],
    ("engulfing", "bearish"): [(100, 101.5, 99.5, 101), (101.2, 101.3, 99.5, 99.7)],
    ("harami", "bullish"): [(102, 102.2, 99.8, 100), (100.5, 101.1, 100.4, 101)],
    ("harami", "bearish"): [(100, 102.2, 99.8, 102), (101.5, 101.6, 100.9, 101)],
    ("morning_star", "bullish"): [
        (102, 102.2, 99.8, 100),
        (99.6, 99.8, 99.3, 99.5),
        (99.8, 101.6, 99.7, 101.5),
    ],
    ("evening_star", "bearish"): [
        (100, 102.2, 99.8, 102),
        (102.4, 102.7, 102.3, 102.5),
        (102.2, 102.3, 100.4, 100.5),
    ],
    ("three_white_soldiers", "bullish"): [
        (100, 101.55, 99.9, 101.5),
        (101, 102.65, 100.9, 102.6),
        (102.1, 103.75, 102.0, 103.7),
    ],
    ("three_black_crows", "bearish"): [
        (100, 101.5, 99.5, 101),
        (101, 101.05, 99.55, 99.6),
        (99.9, 100.0, 98.35, 98.4),
        (98.7, 98.8, 97.15, 97.2),
    ],
}


@pytest.mark.parametrize(("expected", "rows"), list(PATTERN_CASES.items()), ids=str)
def test_pattern_detected_on_latest_candle(
    expected: tuple[str, str], rows: list[tuple[float, float, float, float]]
) -> None:
    candles = build(context() + rows)
    name, direction = expected
    found = detect_patterns(candles)
    assert {"name": name, "direction": direction, "start": candles[-1].start} in found


@pytest.mark.parametrize(("expected", "rows"), list(PATTERN_CASES.items()), ids=str)
def test_pattern_not_reported_once_another_candle_closes(
    expected: tuple[str, str], rows: list[tuple[float, float, float, float]]
) -> None:
    after = (101.0, 101.5, 99.5, 100.0) if rows[-1][3] > 100.5 else (100.0, 101.5, 99.5, 101.0)
    names = {p["name"] for p in detect_patterns(build([*context(), *rows, after]))}
    assert expected[0] not in names


def test_no_patterns_on_plain_candles() -> None:
    for n in range(len(context(30)) + 1):
        assert detect_patterns(build(context(30)[:n])) == []


def test_no_patterns_without_enough_context() -> None:
    doji = (100.5, 101.5, 99.5, 100.5)
    assert detect_patterns(build([*context(3), doji])) == []


def test_pattern_context_covers_every_talib_lookback() -> None:
    from talib import abstract

    for _, function, _ in PATTERNS:
        lookback = abstract.Function(function.__name__).lookback  # type: ignore[attr-defined]
        assert lookback + 1 <= PATTERN_CONTEXT


def test_at_least_the_required_patterns_are_covered() -> None:
    assert {name for name, _, _ in PATTERNS} >= {
        "doji",
        "hammer",
        "shooting_star",
        "engulfing",
        "harami",
        "morning_star",
        "evening_star",
        "three_white_soldiers",
        "three_black_crows",
    }


# --- risk metrics --------------------------------------------------------------------------------


def test_risk_metrics_match_formulas() -> None:
    window = RISK_WINDOW
    closes = CLOSES[-(window + 1) :]
    log_returns = [math.log(b / a) for a, b in pairwise(closes)]
    returns = [b / a - 1 for a, b in pairwise(closes)]
    peak, drawdown = closes[0], 0.0
    for close in closes:
        peak = max(peak, close)
        drawdown = max(drawdown, (peak - close) / peak)

    metrics = risk_metrics(SERIES, None, Interval.M1)

    assert metrics["window"] == window
    assert metrics["realised_volatility"] == pytest.approx(
        statistics.stdev(log_returns) * math.sqrt(375 * 250), abs=TOL
    )
    assert metrics["var_95"] == pytest.approx(-ref_percentile_linear(returns, 5), abs=TOL)
    assert metrics["max_drawdown"] == pytest.approx(drawdown, abs=TOL)
    assert metrics["max_drawdown"] is not None and metrics["max_drawdown"] > 0
    assert metrics["beta"] is None


def test_risk_metrics_window_is_configurable_and_stated() -> None:
    metrics = risk_metrics(SERIES, None, Interval.M1, window=20)
    closes = CLOSES[-21:]
    log_returns = [math.log(b / a) for a, b in pairwise(closes)]
    assert metrics["window"] == 20
    assert metrics["realised_volatility"] == pytest.approx(
        statistics.stdev(log_returns) * math.sqrt(375 * 250), abs=TOL
    )


def test_risk_metrics_are_null_until_window_plus_one_candles() -> None:
    assert risk_metrics(SERIES[:RISK_WINDOW], None, Interval.M1) == {
        "window": RISK_WINDOW,
        "realised_volatility": None,
        "var_95": None,
        "max_drawdown": None,
        "beta": None,
    }
    assert risk_metrics(SERIES[: RISK_WINDOW + 1], None, Interval.M1)["var_95"] is not None


def test_risk_window_below_two_is_rejected() -> None:
    with pytest.raises(ValueError, match="risk window must be at least 2 returns: 1"):
        risk_metrics(SERIES, None, Interval.M1, window=1)


def test_annualisation_uses_nse_session_minutes_and_250_days() -> None:
    assert periods_per_year(Interval.M1) == 375 * 250
    assert periods_per_year(Interval.M5) == 75 * 250
    assert periods_per_year(Interval.M15) == 25 * 250
    assert periods_per_year(Interval.H1) == 6.25 * 250
    assert periods_per_year(Interval.D1) == 250
    daily = risk_metrics(SERIES, None, Interval.D1)["realised_volatility"]
    minute = risk_metrics(SERIES, None, Interval.M1)["realised_volatility"]
    assert daily is not None and minute is not None
    assert daily / minute == pytest.approx(math.sqrt(250 / (375 * 250)))


def test_max_drawdown_is_zero_when_closes_only_rise() -> None:
    rising = [candle(i, 100 + i, 101 + i, 99 + i, 100.5 + i) for i in range(RISK_WINDOW + 1)]
    assert risk_metrics(rising, None, Interval.M1)["max_drawdown"] == 0.0


def twice_the_benchmark(benchmark: Sequence[Candle]) -> list[Candle]:
    """A symbol whose every candle return is exactly twice the benchmark's."""
    out, close = [], 1000.0
    for prev, c in pairwise(benchmark):
        close *= 1 + 2 * (c.close / prev.close - 1)
        out.append(Candle("RELIANCE", c.interval, c.start, close, close, close, close, 10, True))
    return out


def nifty_series() -> list[Candle]:
    walk = random_walk(RISK_WINDOW + 40, seed=11, start=21000.0)
    return [
        candle(i, c.open, c.high, c.low, c.close, 0, symbol="NIFTY 50") for i, c in enumerate(walk)
    ]


def test_beta_against_a_series_with_twice_the_benchmark_returns_is_two() -> None:
    nifty = nifty_series()
    beta = risk_metrics(twice_the_benchmark(nifty), nifty, Interval.M1)["beta"]
    assert beta == pytest.approx(2.0, abs=1e-9)


def test_beta_aligns_candles_by_start() -> None:
    nifty = nifty_series()
    symbol = twice_the_benchmark(nifty)[10:]
    # The benchmark has older candles the symbol lacks, lacks the symbol's newest candle, and its
    # starts are in UTC: only equal instants pair up.
    benchmark = [
        Candle(c.symbol, c.interval, c.start.astimezone(UTC), c.open, c.high, c.low, c.close, 0)
        for c in nifty[:-1]
    ]
    beta = risk_metrics(symbol, benchmark, Interval.M1)["beta"]
    assert beta == pytest.approx(2.0, abs=1e-9)
    too_few_common = benchmark[-RISK_WINDOW:]
    assert risk_metrics(symbol, too_few_common, Interval.M1)["beta"] is None


def test_beta_is_none_when_the_benchmark_does_not_move() -> None:
    flat = [candle(i, 100, 100, 100, 100, symbol="NIFTY 50") for i in range(len(SERIES))]
    assert risk_metrics(SERIES, flat, Interval.M1)["beta"] is None


# --- trend ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("close", "ema", "histogram", "expected"),
    [
        (101.0, 100.0, 0.5, "bullish"),
        (99.0, 100.0, -0.5, "bearish"),
        (101.0, 100.0, -0.5, "neutral"),
        (99.0, 100.0, 0.5, "neutral"),
        (100.0, 100.0, 0.5, "neutral"),
        (101.0, 100.0, 0.0, "neutral"),
        (101.0, None, 0.5, "neutral"),
        (101.0, 100.0, None, "neutral"),
        (None, 100.0, 0.5, "neutral"),
    ],
)
def test_trend_rule(
    close: float | None, ema: float | None, histogram: float | None, expected: str
) -> None:
    assert classify_trend(close, ema, histogram) == expected


def test_trend_of_accelerating_rise_and_fall() -> None:
    for sign, expected in [(1.0, "bullish"), (-1.0, "bearish")]:
        closes = [150.0 + sign * 0.01 * i * i for i in range(80)]
        candles = [candle(i, c, c + 0.5, c - 0.5, c) for i, c in enumerate(closes)]
        indicators = compute_indicators(candles)
        trend = classify_trend(closes[-1], indicators["ema_20"], indicators["macd"]["histogram"])
        assert trend == expected


@given(
    st.lists(
        st.floats(min_value=-0.5, max_value=0.5, allow_nan=False, allow_subnormal=False),
        min_size=1,
        max_size=200,
    ),
    st.floats(min_value=0, max_value=100),
)
def test_percentile_is_numpys_linear_percentile_bit_for_bit(values: list[float], q: float) -> None:
    array = np.array(values, dtype=np.float64)
    assert percentile(array, q) == float(np.percentile(array, q, method="linear"))
