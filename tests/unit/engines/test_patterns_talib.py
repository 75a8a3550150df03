"""Every TA-Lib candlestick pattern, reported through the real analysis engine.

For each of TA-Lib's 61 ``CDL*`` functions a candle sequence on which TA-Lib signals it on the
last candle: hand-built for the nine patterns the service has always reported and for four rare
ones (built from TA-Lib's rules), and for the rest the first window of a fixed pseudo-random
series on which the function fires. The engine, fed those candles, must report the pattern with
TA-Lib's direction and strength.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import pytest
import talib

from tests.unit.engines.test_analysis import PATTERN_CASES, build, context
from tickhub.core.model import Candle, Interval
from tickhub.engines.analysis import PATTERNS, AnalysisEngine
from tickhub.engines.analysis.patterns import PATTERN_CONTEXT

Row = tuple[float, float, float, float]

NEUTRAL = {
    # TA-Lib answers +100 for "present" whatever the side.
    *("doji", "dragonfly_doji", "gravestone_doji", "long_legged_doji", "rickshaw_man"),
    # TA-Lib's sign is the candle's colour, "not bullish or bearish" by its own documentation.
    *("high_wave", "spinning_top", "short_line"),
}

HAND_BUILT: dict[str, list[Row]] = {
    # long white; black gapping up; black opening in the 2nd body, closing in the 1st
    "CDL2CROWS": [
        (100, 103.2, 99.9, 103),
        (104.2, 104.6, 103.4, 103.5),
        (104, 104.1, 101.4, 101.5),
    ],
    # long black with a long lower shadow; smaller black inside its range; black small marubozu
    "CDL3STARSINSOUTH": [
        (103, 103.1, 96.5, 100),
        (101.5, 101.6, 98.5, 99.5),
        (100, 100.05, 99.15, 99.2),
    ],
    # two black marubozu; a black gapping down with an upper shadow into the 2nd body; a black
    # engulfing the 3rd with its shadows
    "CDLCONCEALBABYSWALL": [
        (106, 106.05, 103.95, 104),
        (104, 104.05, 101.95, 102),
        (101.5, 102.5, 100.9, 101),
        (103, 103.2, 99.8, 100),
    ],
    # long white; three small falling candles, the first gapping up, holding in its upper half;
    # a white closing above their highs
    "CDLMATHOLD": [
        (100, 104.1, 99.9, 104),
        (105, 105.1, 104.4, 104.5),
        (104.3, 104.4, 103.4, 103.5),
        (103.9, 104, 102.9, 103),
        (103.2, 105.6, 103.1, 105.5),
    ],
}


def series(seed: int = 17, n: int = 100_000) -> tuple[np.ndarray, ...]:
    """Candles with gaps, dojis, long and short bodies and shadows: most patterns occur."""
    rng = np.random.default_rng(seed)
    gap = np.where(rng.random(n) < 0.25, rng.normal(0, 1.5, n), 0.0)
    body = rng.normal(0, 1, n) * np.array([0.0, 0.3, 1.5, 3.0])[rng.integers(0, 4, n)]
    up = rng.exponential(1, n) * np.array([0.0, 0.3, 1.5])[rng.integers(0, 3, n)]
    down = rng.exponential(1, n) * np.array([0.0, 0.3, 1.5])[rng.integers(0, 3, n)]
    close = 1000 + np.cumsum(gap + body)
    open_ = close - body
    return open_, np.maximum(open_, close) + up, np.minimum(open_, close) - down, close


SERIES = series()
GROUP: list[str] = talib.get_function_groups()["Pattern Recognition"]  # type: ignore[no-untyped-call]


def arrays(rows: Sequence[Row]) -> tuple[np.ndarray, ...]:
    a = np.array(rows, dtype=np.float64).T.copy()
    return a[0], a[1], a[2], a[3]


def signal_on_last(function: str, rows: Sequence[Row]) -> int:
    return int(getattr(talib, function)(*arrays(rows))[-1])


def found_window(function: str, strength: int | None = None) -> list[Row]:
    """The first ``PATTERN_CONTEXT`` candles of ``SERIES`` ending on a candle where
    ``function``, run on exactly those candles, signals (with ``strength`` if given)."""

    def wanted(signal: int) -> bool:
        return signal != 0 if strength is None else abs(signal) == strength

    signals = getattr(talib, function)(*SERIES)
    for end in np.nonzero(signals)[0]:
        if end + 1 < PATTERN_CONTEXT:
            continue
        window = (a[end + 1 - PATTERN_CONTEXT : end + 1] for a in SERIES)
        rows = [
            (float(o), float(h), float(lo), float(c)) for o, h, lo, c in zip(*window, strict=True)
        ]
        if wanted(signal_on_last(function, rows)):
            return rows
    raise AssertionError(f"{function} never signals {strength or ''} on the series")


FUNCTIONS = {f.__name__: name for name, f, _ in PATTERNS}
CLASSIC: dict[str, list[Row]] = {
    name: cast(list[Row], rows) for (name, _), rows in PATTERN_CASES.items()
}


def case(function: str) -> list[Row]:
    name = FUNCTIONS[function]
    if function in HAND_BUILT:
        return [*context(), *HAND_BUILT[function]]
    if name in CLASSIC:
        return [*context(), *CLASSIC[name]]
    return found_window(function)


def reported(rows: Sequence[Row]) -> list[dict[str, object]]:
    engine = AnalysisEngine(benchmark=None)
    candles: list[Candle] = build(rows)
    for c in candles:
        engine.on_candle(c)
    return [dict(p) for p in engine.analyze(candles[0].symbol, Interval.M1)["patterns"]]


def test_every_talib_pattern_function_is_served_once() -> None:
    assert len(GROUP) == 61
    assert sorted(FUNCTIONS) == sorted(GROUP)
    assert len(set(FUNCTIONS.values())) == 61


@pytest.mark.parametrize("function", sorted(GROUP))
def test_engine_reports_the_pattern_talib_signals(function: str) -> None:
    rows = case(function)
    signal = signal_on_last(function, rows)
    assert signal != 0
    name = FUNCTIONS[function]
    direction = "neutral" if name in NEUTRAL else ("bullish" if signal > 0 else "bearish")
    start = build(rows)[-1].start
    expected = {"name": name, "direction": direction, "start": start, "strength": abs(signal)}
    assert expected in reported(rows)


def test_the_hand_built_rare_patterns_are_the_ones_talib_finds() -> None:
    for function, rows in HAND_BUILT.items():
        assert signal_on_last(function, [*context(), *rows]) != 0, function


@pytest.mark.parametrize(("expected", "rows"), list(PATTERN_CASES.items()), ids=str)
def test_the_nine_classic_cases_agree_with_talib(
    expected: tuple[str, str], rows: list[Row]
) -> None:
    """The nine patterns reported before all 61 were, on their hand-built candles: the engine's
    answer is TA-Lib's, with its strength."""
    name, direction = expected
    function = next(f for f, n in FUNCTIONS.items() if n == name)
    signal = signal_on_last(function, [*context(), *rows])
    found = {str(p["name"]): p for p in reported([*context(), *rows])}
    assert found[name]["direction"] == direction
    assert found[name]["strength"] == abs(signal)


def test_strength_of_a_confirmed_hikkake_is_200() -> None:
    rows = found_window("CDLHIKKAKE", 200)
    strengths = {p["strength"] for p in reported(rows) if p["name"] == "hikkake"}
    assert strengths == {200}
