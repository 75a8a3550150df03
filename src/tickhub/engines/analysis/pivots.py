"""Classic (floor) pivot points from the previous session's high, low and close. Not in TA-Lib.

``pivot = (H + L + C) / 3``, ``r1 = 2·pivot − L``, ``s1 = 2·pivot − H``, ``r2 = pivot + (H − L)``,
``s2 = pivot − (H − L)``, ``r3 = H + 2·(pivot − L)``, ``s3 = L − 2·(H − pivot)``.

A session is an IST calendar day, as for the VWAP. The previous session is the latest day before
the newest candle's day that the kept candles cover: its high and low over its candles there, its
close the close of its last one (for daily candles: the previous candle). The levels are fixed for
the whole session and ``None`` until a previous session is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TypedDict

from tickhub.core.model import IST, Candle


class Pivots(TypedDict):
    pivot: float | None
    r1: float | None
    r2: float | None
    r3: float | None
    s1: float | None
    s2: float | None
    s3: float | None


NO_PIVOTS: Pivots = {
    "pivot": None,
    "r1": None,
    "r2": None,
    "r3": None,
    "s1": None,
    "s2": None,
    "s3": None,
}


def session_of(candle: Candle) -> date:
    return candle.start.astimezone(IST).date()


def previous_session(closed: Sequence[Candle], today: date) -> tuple[float, float, float] | None:
    """(high, low, close) of the latest session before ``today`` among ``closed`` (oldest
    first), or ``None``."""
    high = low = close = None
    day: date | None = None
    for candle in reversed(closed):
        d = session_of(candle)
        if d >= today:
            continue
        if day is None:
            day, high, low, close = d, candle.high, candle.low, candle.close
        elif d != day:
            break
        else:
            high = max(high, candle.high) if high is not None else candle.high
            low = min(low, candle.low) if low is not None else candle.low
    if high is None or low is None or close is None:
        return None
    return high, low, close


def classic_pivots(high: float, low: float, close: float) -> Pivots:
    pivot = (high + low + close) / 3.0
    return {
        "pivot": pivot,
        "r1": 2.0 * pivot - low,
        "r2": pivot + (high - low),
        "r3": high + 2.0 * (pivot - low),
        "s1": 2.0 * pivot - high,
        "s2": pivot - (high - low),
        "s3": low - 2.0 * (high - pivot),
    }
