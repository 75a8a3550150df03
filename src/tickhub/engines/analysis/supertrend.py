"""Supertrend: a trailing stop that flips sides when the close crosses it. Not in TA-Lib.

Rule (as TradingView's ``ta.supertrend``, on TA-Lib's Wilder ATR): with ``mid = (high + low) / 2``
the basic bands are ``mid ± multiplier × ATR(period)``. The final upper band keeps its previous
value unless the new basic one is lower or the previous close was above it; the final lower band
keeps its previous value unless the new basic one is higher or the previous close was below it.
The trend starts ``down`` on the first candle with an ATR (index ``period``); a down trend turns
``up`` when a close is above the final upper band, an up trend turns ``down`` when a close is
below the final lower band. The value is the final lower band in an up trend, the upper in a down
trend. Warm-up: the first value is at index ``period`` (``period + 1`` candles), the ATR's.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import talib

FloatArray = npt.NDArray[np.float64]

UP, DOWN = 1, -1


def supertrend(
    high: FloatArray, low: FloatArray, close: FloatArray, period: int, multiplier: float
) -> tuple[FloatArray, npt.NDArray[np.int8]]:
    """(value, direction) per candle: NaN and 0 while warming up, then the band and ±1."""
    n = len(close)
    if n <= period:
        return np.full(n, math.nan), np.zeros(n, dtype=np.int8)
    atr = talib.ATR(high, low, close, timeperiod=period)
    mid = (high + low) / 2.0
    basic_upper = (mid + multiplier * atr).tolist()
    basic_lower = (mid - multiplier * atr).tolist()
    closes = close.tolist()
    upper = basic_upper[period]
    lower = basic_lower[period]
    trend = DOWN
    # Python lists in the loop, one array each at the end: a NumPy item write per candle costs
    # more than the rule itself.
    values = [math.nan] * period + [upper]
    directions = [0] * period + [trend]
    for i in range(period + 1, n):
        new_upper, new_lower = basic_upper[i], basic_lower[i]
        previous_close = closes[i - 1]
        if not (new_upper < upper or previous_close > upper):
            new_upper = upper
        if not (new_lower > lower or previous_close < lower):
            new_lower = lower
        if trend == DOWN:
            trend = UP if closes[i] > new_upper else DOWN
        else:
            trend = DOWN if closes[i] < new_lower else UP
        upper, lower = new_upper, new_lower
        values.append(lower if trend == UP else upper)
        directions.append(trend)
    return np.array(values, dtype=np.float64), np.array(directions, dtype=np.int8)
