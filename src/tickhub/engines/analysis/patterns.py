"""Candlestick patterns on the latest closed candle, with TA-Lib's ``CDL*`` functions.

A pattern is reported when TA-Lib signals it on the newest candle given: for multi-candle patterns
(engulfing, harami, stars, soldiers, crows) that candle is the pattern's last one, and ``start`` is
its start. TA-Lib judges "long", "short" and "near" against averages of the preceding candles (up to
10 bodies or ranges), so a pattern cannot be seen until about a dozen candles of context exist; the
longest lookback used is 13 candles (three black crows), and only the last ``PATTERN_CONTEXT``
candles are read. Several patterns may be reported on one candle, in the order of ``PATTERNS``.

Directions: the sign of TA-Lib's signal (bullish > 0, bearish < 0), except doji, which is always
``neutral``. Hammer is bullish and shooting star bearish by TA-Lib's own sign.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal, TypedDict

import numpy as np
import numpy.typing as npt
import talib

from tickhub.core.model import Candle
from tickhub.engines.analysis.indicators import FloatArray, tail

Direction = Literal["bullish", "bearish", "neutral"]

PATTERN_CONTEXT = 20
"""Candles read; covers the longest CDL lookback used (13) with room to spare."""


class Pattern(TypedDict):
    """One pattern found. ``start`` is the start of the candle the signal is on (the pattern's last
    candle), a ``datetime``: the wire layer formats it."""

    name: str
    direction: Direction
    start: datetime


CandleFunction = Callable[[FloatArray, FloatArray, FloatArray, FloatArray], npt.NDArray[np.int32]]

PATTERNS: tuple[tuple[str, CandleFunction, Direction | None], ...] = (
    ("doji", talib.CDLDOJI, "neutral"),
    ("hammer", talib.CDLHAMMER, None),
    ("shooting_star", talib.CDLSHOOTINGSTAR, None),
    ("engulfing", talib.CDLENGULFING, None),
    ("harami", talib.CDLHARAMI, None),
    ("morning_star", talib.CDLMORNINGSTAR, None),
    ("evening_star", talib.CDLEVENINGSTAR, None),
    ("three_white_soldiers", talib.CDL3WHITESOLDIERS, None),
    ("three_black_crows", talib.CDL3BLACKCROWS, None),
)
"""Name, TA-Lib function and fixed direction (``None``: from the signal's sign)."""


def detect_patterns(candles: Sequence[Candle]) -> list[Pattern]:
    """Patterns whose signal is on the newest of ``candles`` (closed candles, oldest first)."""
    window = tail(candles, PATTERN_CONTEXT)
    if not window:
        return []
    n = len(window)
    open_ = np.fromiter((c.open for c in window), dtype=np.float64, count=n)
    high = np.fromiter((c.high for c in window), dtype=np.float64, count=n)
    low = np.fromiter((c.low for c in window), dtype=np.float64, count=n)
    close = np.fromiter((c.close for c in window), dtype=np.float64, count=n)
    start = window[-1].start
    found: list[Pattern] = []
    for name, function, fixed in PATTERNS:
        signal = int(function(open_, high, low, close)[-1])
        if signal == 0:
            continue
        direction: Direction = fixed or ("bullish" if signal > 0 else "bearish")
        found.append({"name": name, "direction": direction, "start": start})
    return found
