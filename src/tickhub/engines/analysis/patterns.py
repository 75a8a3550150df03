"""Candlestick patterns on the latest closed candle, with TA-Lib's ``CDL*`` functions.

A pattern is reported when TA-Lib signals it on the newest candle given: for multi-candle patterns
(engulfing, harami, stars, soldiers, crows) that candle is the pattern's last one, and ``start`` is
its start. TA-Lib judges "long", "short" and "near" against averages of the preceding candles (up to
10 bodies or ranges), so a pattern cannot be seen until about a dozen candles of context exist; the
longest lookback is 14 candles (breakaway, ladder bottom, mat hold, rising/falling three methods),
and only the last ``PATTERN_CONTEXT`` candles are read. Several patterns may be reported on one
candle, in the order of ``PATTERNS``.

Directions: the sign of TA-Lib's signal (bullish > 0, bearish < 0), except for the doji family and
the colour-only shapes, which are ``neutral`` (see ``PATTERNS``). Hammer is bullish and shooting
star bearish by TA-Lib's own sign. Strength: TA-Lib's ``|signal|``: 100; 80 for the weaker forms
of engulfing, harami and harami cross (a body that engulfs or sits inside the other one but
touches it); 200 for a hikkake's confirmation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal, NotRequired, TypedDict

import numpy as np
import numpy.typing as npt
import talib

from tickhub.core.model import Candle
from tickhub.engines.analysis.indicators import FloatArray, tail

Direction = Literal["bullish", "bearish", "neutral"]

PATTERN_CONTEXT = 20
"""Candles read; covers the longest CDL lookback (14) with room to spare."""


class Pattern(TypedDict):
    """One pattern found. ``start`` is the start of the candle the signal is on (the pattern's last
    candle), a ``datetime``: the wire layer formats it. ``strength``: TA-Lib's ``|signal|`` (100,
    80 or 200, see above); only with ``with_strength``."""

    name: str
    direction: Direction
    start: datetime
    strength: NotRequired[int]


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
    ("abandoned_baby", talib.CDLABANDONEDBABY, None),
    ("advance_block", talib.CDLADVANCEBLOCK, None),
    ("belt_hold", talib.CDLBELTHOLD, None),
    ("breakaway", talib.CDLBREAKAWAY, None),
    ("closing_marubozu", talib.CDLCLOSINGMARUBOZU, None),
    ("concealing_baby_swallow", talib.CDLCONCEALBABYSWALL, None),
    ("counterattack", talib.CDLCOUNTERATTACK, None),
    ("dark_cloud_cover", talib.CDLDARKCLOUDCOVER, None),
    ("doji_star", talib.CDLDOJISTAR, None),
    ("dragonfly_doji", talib.CDLDRAGONFLYDOJI, "neutral"),
    ("evening_doji_star", talib.CDLEVENINGDOJISTAR, None),
    ("gap_side_by_side_white", talib.CDLGAPSIDESIDEWHITE, None),
    ("gap_three_methods", talib.CDLXSIDEGAP3METHODS, None),
    ("gravestone_doji", talib.CDLGRAVESTONEDOJI, "neutral"),
    ("hanging_man", talib.CDLHANGINGMAN, None),
    ("harami_cross", talib.CDLHARAMICROSS, None),
    ("high_wave", talib.CDLHIGHWAVE, "neutral"),
    ("hikkake", talib.CDLHIKKAKE, None),
    ("homing_pigeon", talib.CDLHOMINGPIGEON, None),
    ("identical_three_crows", talib.CDLIDENTICAL3CROWS, None),
    ("in_neck", talib.CDLINNECK, None),
    ("inverted_hammer", talib.CDLINVERTEDHAMMER, None),
    ("kicking", talib.CDLKICKING, None),
    ("kicking_by_length", talib.CDLKICKINGBYLENGTH, None),
    ("ladder_bottom", talib.CDLLADDERBOTTOM, None),
    ("long_legged_doji", talib.CDLLONGLEGGEDDOJI, "neutral"),
    ("long_line", talib.CDLLONGLINE, None),
    ("marubozu", talib.CDLMARUBOZU, None),
    ("mat_hold", talib.CDLMATHOLD, None),
    ("matching_low", talib.CDLMATCHINGLOW, None),
    ("modified_hikkake", talib.CDLHIKKAKEMOD, None),
    ("morning_doji_star", talib.CDLMORNINGDOJISTAR, None),
    ("on_neck", talib.CDLONNECK, None),
    ("piercing", talib.CDLPIERCING, None),
    ("rickshaw_man", talib.CDLRICKSHAWMAN, "neutral"),
    ("rising_falling_three_methods", talib.CDLRISEFALL3METHODS, None),
    ("separating_lines", talib.CDLSEPARATINGLINES, None),
    ("short_line", talib.CDLSHORTLINE, "neutral"),
    ("spinning_top", talib.CDLSPINNINGTOP, "neutral"),
    ("stalled_pattern", talib.CDLSTALLEDPATTERN, None),
    ("stick_sandwich", talib.CDLSTICKSANDWICH, None),
    ("takuri", talib.CDLTAKURI, None),
    ("tasuki_gap", talib.CDLTASUKIGAP, None),
    ("three_inside", talib.CDL3INSIDE, None),
    ("three_line_strike", talib.CDL3LINESTRIKE, None),
    ("three_outside", talib.CDL3OUTSIDE, None),
    ("three_stars_in_the_south", talib.CDL3STARSINSOUTH, None),
    ("thrusting", talib.CDLTHRUSTING, None),
    ("tristar", talib.CDLTRISTAR, None),
    ("two_crows", talib.CDL2CROWS, None),
    ("unique_three_river", talib.CDLUNIQUE3RIVER, None),
    ("upside_gap_two_crows", talib.CDLUPSIDEGAP2CROWS, None),
)
"""Name, TA-Lib function and fixed direction (``None``: from the signal's sign): every function of
TA-Lib's "Pattern Recognition" group, the nine the service always reported first, then the others
by name. The five doji functions answer +100 for "present" whatever the market's side, and for
spinning top, high wave and short line TA-Lib's sign is the candle's colour, which its source says
"does not mean bullish or bearish": these eight are ``neutral``. The others' sign is TA-Lib's
bullish/bearish (for long line, marubozu, closing marubozu and belt hold, the colour, which TA-Lib
does read as bullish or bearish)."""


def detect_patterns(candles: Sequence[Candle], *, with_strength: bool = False) -> list[Pattern]:
    """Patterns whose signal is on the newest of ``candles`` (closed candles, oldest first);
    ``with_strength`` adds each one's ``strength``."""
    window = tail(candles, PATTERN_CONTEXT)
    if not window:
        return []
    n = len(window)
    return patterns_on(
        np.fromiter((c.open for c in window), dtype=np.float64, count=n),
        np.fromiter((c.high for c in window), dtype=np.float64, count=n),
        np.fromiter((c.low for c in window), dtype=np.float64, count=n),
        np.fromiter((c.close for c in window), dtype=np.float64, count=n),
        window[-1].start,
        with_strength=with_strength,
    )


def patterns_on(
    open_: FloatArray,
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    start: datetime,
    *,
    with_strength: bool = False,
) -> list[Pattern]:
    """:func:`detect_patterns` on prices already in arrays (oldest first; only the last
    ``PATTERN_CONTEXT`` are read), the newest candle starting at ``start``."""
    if len(close) == 0:
        return []
    if len(close) > PATTERN_CONTEXT:
        open_, high, low, close = (a[-PATTERN_CONTEXT:] for a in (open_, high, low, close))
    found: list[Pattern] = []
    for name, function, fixed in PATTERNS:
        signal = int(function(open_, high, low, close)[-1])
        if signal == 0:
            continue
        direction: Direction = fixed or ("bullish" if signal > 0 else "bearish")
        pattern: Pattern = {"name": name, "direction": direction, "start": start}
        if with_strength:
            pattern["strength"] = abs(signal)
        found.append(pattern)
    return found
