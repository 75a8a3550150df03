"""The ``trend`` label of an analysis.

Rule: ``bullish`` when the close is above EMA(20) and the MACD histogram is positive, ``bearish``
when the close is below EMA(20) and the histogram is negative, ``neutral`` otherwise, including
while EMA(20) or the histogram is not warmed up. Price and momentum must agree; ties are neutral.
"""

from __future__ import annotations

from typing import Literal

Trend = Literal["bullish", "bearish", "neutral"]


def classify_trend(close: float | None, ema: float | None, histogram: float | None) -> Trend:
    """Trend from the newest close, its EMA(20) and MACD(12, 26, 9) histogram."""
    if close is None or ema is None or histogram is None:
        return "neutral"
    if close > ema and histogram > 0:
        return "bullish"
    if close < ema and histogram < 0:
        return "bearish"
    return "neutral"
