"""AnalysisEngine: history, forming candles, caching, benchmark beta, payload shape."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from datetime import datetime
from itertools import pairwise
from typing import Any

import orjson
import pytest

from tickhub.core.model import IST, Candle, Interval
from tickhub.engines.analysis import (
    RISK_WINDOW,
    WARMUP_NEEDED,
    AnalysisEngine,
    SessionVwap,
    compute_indicators,
    detect_patterns,
    risk_metrics,
)
from tickhub.engines.analysis import engine as engine_module

T0 = datetime(2024, 1, 2, 9, 15, tzinfo=IST)


def walk(n: int, *, symbol: str = "RELIANCE", seed: int = 1, start: float = 2500.0) -> list[Candle]:
    rng = random.Random(seed)
    candles, close = [], start
    for i in range(n):
        open_ = close
        close = round(open_ * (1.0 + rng.gauss(0.0, 0.004)), 2)
        high = round(max(open_, close) + rng.uniform(0.0, 4.0), 2)
        low = round(min(open_, close) - rng.uniform(0.0, 4.0), 2)
        start_at = T0 + i * Interval.M1.delta
        volume = rng.randint(100, 5000)
        candles.append(
            Candle(symbol, Interval.M1, start_at, open_, high, low, close, volume, closed=True)
        )
    return candles


def forming_after(last: Candle, close: float, volume: int = 800) -> Candle:
    return Candle(
        last.symbol,
        last.interval,
        last.start + last.interval.delta,
        last.close,
        max(last.close, close) + 1.0,
        min(last.close, close) - 1.0,
        close,
        volume,
        closed=False,
    )


def fed(candles: list[Candle], **kwargs: Any) -> AnalysisEngine:
    engine = AnalysisEngine(**kwargs)
    for candle in candles:
        engine.on_candle(candle)
    return engine


def counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count calls to the engine's reference to ``name`` (still calling the real function)."""
    calls = [0]
    real: Callable[..., Any] = getattr(engine_module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_module, name, wrapper)
    return calls


def test_unknown_series_gives_the_empty_analysis() -> None:
    analysis = AnalysisEngine().analyze("RELIANCE", Interval.M1, include_forming=True)
    indicators = analysis["technical_indicators"]
    assert indicators["sma_20"] is None
    assert indicators["macd"] == {"macd": None, "signal": None, "histogram": None}
    assert indicators["vwap"] is None
    assert indicators["warmup"] == {"needed": WARMUP_NEEDED, "have": 0}
    assert analysis["patterns"] == []
    assert analysis["risk_metrics"]["realised_volatility"] is None
    assert analysis["trend"] == "neutral"
    assert analysis["interval"] == "1m"


def test_analysis_of_closed_candles_matches_the_pure_functions() -> None:
    candles = walk(120)
    analysis = fed(candles).analyze("RELIANCE", Interval.M1)
    assert set(analysis) == {
        "technical_indicators",
        "patterns",
        "risk_metrics",
        "trend",
        "interval",
    }
    assert analysis["technical_indicators"] == compute_indicators(candles)
    assert analysis["patterns"] == detect_patterns(candles, with_strength=True)
    assert analysis["risk_metrics"] == risk_metrics(candles, None, Interval.M1)
    assert analysis["risk_metrics"]["window"] == RISK_WINDOW


def test_forming_candle_counts_only_when_asked() -> None:
    candles = walk(120)
    forming = forming_after(candles[-1], candles[-1].close + 20)
    engine = fed([*candles, forming])

    with_forming = engine.analyze("RELIANCE", Interval.M1, include_forming=True)
    closed_only = engine.analyze("RELIANCE", Interval.M1, include_forming=False)

    assert with_forming["technical_indicators"] == compute_indicators([*candles, forming])
    assert with_forming["technical_indicators"]["warmup"]["have"] == 121
    assert closed_only["technical_indicators"] == compute_indicators(candles)
    # Patterns and risk read closed candles only.
    assert with_forming["patterns"] == detect_patterns(candles, with_strength=True)
    assert with_forming["risk_metrics"] == risk_metrics(candles, None, Interval.M1)


def test_forming_candle_beyond_lookback_matches_the_pure_function() -> None:
    candles = walk(400)
    forming = forming_after(candles[-1], candles[-1].close - 15)
    engine = fed([*candles, forming])
    analysis = engine.analyze("RELIANCE", Interval.M1, include_forming=True)
    assert analysis["technical_indicators"] == compute_indicators([*candles, forming])


def test_latest_forming_update_wins_and_is_dropped_when_its_bucket_closes() -> None:
    candles = walk(60)
    engine = fed(candles)
    first = forming_after(candles[-1], candles[-1].close + 5)
    second = dataclasses.replace(first, close=first.close + 5, high=first.high + 5, volume=1600)
    engine.on_candle(first)
    engine.on_candle(second)
    assert engine.analyze("RELIANCE", Interval.M1, include_forming=True)[
        "technical_indicators"
    ] == compute_indicators([*candles, second])

    closed = dataclasses.replace(second, closed=True)
    engine.on_candle(closed)
    assert engine.analyze("RELIANCE", Interval.M1, include_forming=True)[
        "technical_indicators"
    ] == compute_indicators([*candles, closed])


def test_forming_update_for_a_closed_bucket_is_ignored() -> None:
    candles = walk(60)
    engine = fed(candles)
    stale = dataclasses.replace(candles[-1], close=1.0, low=1.0, closed=False)
    engine.on_candle(stale)
    analysis = engine.analyze("RELIANCE", Interval.M1, include_forming=True)
    assert analysis["technical_indicators"] == compute_indicators(candles)


def test_closed_candle_with_the_same_start_replaces_the_last_one() -> None:
    candles = walk(60)
    engine = fed(candles)
    corrected = dataclasses.replace(candles[-1], close=candles[-1].close + 3, volume=9000)
    engine.on_candle(corrected)
    expected = [*candles[:-1], corrected]
    assert engine.history("RELIANCE", Interval.M1, 1000) == expected
    assert engine.analyze("RELIANCE", Interval.M1)["technical_indicators"] == compute_indicators(
        expected
    )


def test_older_closed_candle_is_ignored() -> None:
    candles = walk(60)
    engine = fed(candles)
    engine.on_candle(candles[10])
    assert engine.history("RELIANCE", Interval.M1, 1000) == candles


def test_history_is_bounded_by_maxlen() -> None:
    candles = walk(150)
    engine = fed(candles, maxlen=100)
    assert engine.history("RELIANCE", Interval.M1, 1000) == candles[-100:]
    assert engine.history("RELIANCE", Interval.M1, 5) == candles[-5:]
    assert engine.history("RELIANCE", Interval.M1, 0) == []
    assert engine.history("TCS", Interval.M1, 5) == []
    assert engine.history("RELIANCE", Interval.M5, 5) == []


def test_session_vwap_survives_eviction_from_history() -> None:
    candles = walk(150)
    analysis = fed(candles, maxlen=100).analyze("RELIANCE", Interval.M1)
    assert analysis["technical_indicators"]["vwap"] == SessionVwap.of(candles).value


def test_maxlen_must_exceed_the_risk_window() -> None:
    with pytest.raises(ValueError, match="maxlen must exceed the risk window"):
        AnalysisEngine(maxlen=RISK_WINDOW)
    with pytest.raises(ValueError, match="risk window must be at least 2 returns: 1"):
        AnalysisEngine(risk_window=1)


def test_forming_updates_do_not_recompute_patterns_or_risk(monkeypatch: pytest.MonkeyPatch) -> None:
    patterns_calls = counting(monkeypatch, "patterns_on")
    risk_calls = counting(monkeypatch, "risk_metrics")
    candles = walk(100)
    engine = fed(candles[:-1])

    for step in range(5):
        engine.on_candle(forming_after(candles[-2], candles[-2].close + step))
        engine.analyze("RELIANCE", Interval.M1, include_forming=True)
    assert (patterns_calls[0], risk_calls[0]) == (1, 1)

    engine.on_candle(candles[-1])
    engine.analyze("RELIANCE", Interval.M1, include_forming=True)
    assert (patterns_calls[0], risk_calls[0]) == (2, 2)


def test_closed_only_indicators_are_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting(monkeypatch, "indicators_from_prices")
    engine = fed(walk(50))
    first = engine.analyze("RELIANCE", Interval.M1)
    second = engine.analyze("RELIANCE", Interval.M1)
    assert first == second
    assert calls[0] == 1


def test_beta_against_the_benchmark_series() -> None:
    nifty = walk(RISK_WINDOW + 20, symbol="NIFTY 50", seed=9, start=21000.0)
    symbol, close = [], 1000.0
    for prev, candle in pairwise(nifty):
        close *= 1 + 2 * (candle.close / prev.close - 1)
        symbol.append(
            dataclasses.replace(
                candle, symbol="RELIANCE", open=close, high=close, low=close, close=close
            )
        )
    engine = fed([*nifty, *symbol])
    beta = engine.analyze("RELIANCE", Interval.M1)["risk_metrics"]["beta"]
    assert beta == pytest.approx(2.0, abs=1e-9)
    assert engine.analyze("NIFTY 50", Interval.M1)["risk_metrics"]["beta"] == pytest.approx(1.0)
    no_benchmark = fed([*nifty, *symbol], benchmark=None)
    assert no_benchmark.analyze("RELIANCE", Interval.M1)["risk_metrics"]["beta"] is None


def test_benchmark_close_refreshes_beta(monkeypatch: pytest.MonkeyPatch) -> None:
    nifty = walk(RISK_WINDOW + 20, symbol="NIFTY 50", seed=9, start=21000.0)
    symbol = walk(RISK_WINDOW + 19, symbol="RELIANCE", seed=4)
    engine = fed([*nifty[:-1], *symbol])
    engine.analyze("RELIANCE", Interval.M1)
    calls = counting(monkeypatch, "risk_metrics")
    engine.analyze("RELIANCE", Interval.M1)
    assert calls[0] == 0
    engine.on_candle(nifty[-1])
    engine.analyze("RELIANCE", Interval.M1)
    assert calls[0] == 1


def test_trend_in_the_analysis() -> None:
    for sign, expected in [(1.0, "bullish"), (-1.0, "bearish")]:
        closes = [150.0 + sign * 0.01 * i * i for i in range(80)]
        candles = [
            Candle("X", Interval.M1, T0 + i * Interval.M1.delta, c, c + 0.5, c - 0.5, c, 10, True)
            for i, c in enumerate(closes)
        ]
        assert fed(candles).analyze("X", Interval.M1)["trend"] == expected
    assert fed(walk(WARMUP_NEEDED - 1)).analyze("RELIANCE", Interval.M1)["trend"] == "neutral"


def test_analysis_is_json_serialisable() -> None:
    candles = walk(120)
    engine = fed([*candles, forming_after(candles[-1], candles[-1].close + 1)])
    payload = orjson.loads(orjson.dumps(engine.analyze("RELIANCE", Interval.M1, True)))
    assert payload["interval"] == "1m"
    assert payload["technical_indicators"]["warmup"] == {"needed": WARMUP_NEEDED, "have": 121}


def test_patterns_carry_the_signal_candle_start() -> None:
    def closed(i: int, open_: float, close: float) -> Candle:
        high, low = max(open_, close) + 0.5, min(open_, close) - 0.5
        start = T0 + i * Interval.M1.delta
        return Candle("X", Interval.M1, start, open_, high, low, close, 1, closed=True)

    context = [
        closed(i, 100.0, 101.0) if i % 2 == 0 else closed(i, 101.0, 100.0) for i in range(12)
    ]
    doji = closed(12, 100.5, 100.5)
    engine = fed([*context, doji])
    found = engine.analyze("X", Interval.M1)["patterns"]
    # A doji with long shadows is also a long-legged doji, a rickshaw man, a high wave...
    assert found[0] == {
        "name": "doji",
        "direction": "neutral",
        "start": doji.start,
        "strength": 100,
    }
    assert {p["start"] for p in found} == {doji.start}


def test_kept_columns_are_the_closed_candles_through_corrections_and_eviction() -> None:
    """The arrays a close appends to hold exactly what building them from the kept candles gives,
    and the analysis on them equals one computed afresh from those candles."""
    candles = walk(140)
    engine = AnalysisEngine(maxlen=RISK_WINDOW + 10, benchmark=None)
    rng = random.Random(5)
    for candle in candles:
        engine.on_candle(candle)
        if rng.random() < 0.2:  # a correction of the candle just closed
            engine.on_candle(dataclasses.replace(candle, close=candle.close + 0.5, volume=7))
    series = engine._series[("RELIANCE", Interval.M1)]
    kept = list(series.closed)
    assert len(kept) == RISK_WINDOW + 10
    built = [
        [c.open for c in kept],
        [c.high for c in kept],
        [c.low for c in kept],
        [c.close for c in kept],
        [float(c.volume) for c in kept],
    ]
    assert [list(column) for column in series.columns] == built
    analysis = engine.analyze("RELIANCE", Interval.M1)
    fresh = fed(kept, maxlen=RISK_WINDOW + 10, benchmark=None)
    assert analysis["patterns"] == detect_patterns(kept, with_strength=True)
    assert analysis["risk_metrics"] == risk_metrics(kept, None, Interval.M1)
    indicators = dict(analysis["technical_indicators"])
    reference = dict(compute_indicators(kept))
    indicators.pop("vwap"), reference.pop("vwap")  # the session's VWAP also counts evicted ones
    assert indicators == reference
    assert fresh.analyze("RELIANCE", Interval.M1)["patterns"] == analysis["patterns"]
