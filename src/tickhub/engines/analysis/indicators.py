"""Technical indicators over candles: SMA, EMA, RSI, MACD, Bollinger bands, ATR (TA-Lib) and VWAP.

Why TA-Lib (rather than talipp): its C core is fast enough to recompute a few hundred candles on
every forming-candle update, its outputs are the reference values most charting front ends and
traders compare against, and it also ships the candlestick pattern functions ``patterns`` uses.

Determinism: TA-Lib seeds EMA, RSI, ATR and MACD from the start of the array it is given (EMA from
the SMA of the first ``period`` values, RSI and ATR from the plain average of the first ``period``
changes / true ranges, then Wilder smoothing), so a value depends on how much history is passed.
We always pass the last ``LOOKBACK`` candles (fewer while warming up): the same candles give the
same values, and with 300 candles the seed's weight in any value is below 1e-9.

Each indicator is ``None`` until it has enough candles (see ``WARMUP_NEEDED``); the MACD and
Bollinger objects keep their shape with ``None`` members so clients can rely on the keys.
Values are full floats; the wire layer rounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import islice
from typing import TypedDict

import numpy as np
import numpy.typing as npt
import talib

from tickhub.core.model import IST, Candle

FloatArray = npt.NDArray[np.float64]

LOOKBACK = 300
"""Candles (the newest) handed to TA-Lib; older ones are ignored by every TA-Lib indicator."""

SMA_PERIOD = 20
EMA_PERIOD = 20
RSI_PERIOD = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
BBANDS_PERIOD, BBANDS_DEVIATIONS = 20, 2.0
ATR_PERIOD = 14

WARMUP_NEEDED = max(
    SMA_PERIOD,
    EMA_PERIOD,
    RSI_PERIOD + 1,  # RSI and ATR need one change / true range per period
    MACD_SLOW + MACD_SIGNAL - 1,  # the signal line is an EMA of the MACD line
    BBANDS_PERIOD,
    ATR_PERIOD + 1,
)
"""Candles needed for every TA-Lib indicator to be non-null (34, set by MACD's signal line)."""


class Macd(TypedDict):
    macd: float | None
    signal: float | None
    histogram: float | None


class Bollinger(TypedDict):
    upper: float | None
    middle: float | None
    lower: float | None


class Warmup(TypedDict):
    needed: int
    have: int


class Indicators(TypedDict):
    """The ``technical_indicators`` object of an analysis."""

    sma_20: float | None
    ema_20: float | None
    rsi_14: float | None
    macd: Macd
    bollinger: Bollinger
    atr_14: float | None
    vwap: float | None
    warmup: Warmup


@dataclass(frozen=True, slots=True)
class SessionVwap:
    """Running session VWAP: cumulative typical price × volume over volume since the session start.

    A session is one IST calendar day: a candle from a later day starts a new sum. The typical price
    is ``(high + low + close) / 3``. ``value`` is ``None`` while the session has no volume (indices
    carry none, so their VWAP stays ``None``). For daily candles each candle is its own session.
    """

    session: date | None = None
    price_volume: float = 0.0
    volume: float = 0.0

    def add(self, candle: Candle) -> SessionVwap:
        day = candle.start.astimezone(IST).date()
        typical = (candle.high + candle.low + candle.close) / 3.0
        volume = float(candle.volume)
        if day != self.session:
            return SessionVwap(day, typical * volume, volume)
        return SessionVwap(day, self.price_volume + typical * volume, self.volume + volume)

    @property
    def value(self) -> float | None:
        return self.price_volume / self.volume if self.volume > 0 else None

    @classmethod
    def of(cls, candles: Iterable[Candle]) -> SessionVwap:
        vwap = cls()
        for candle in candles:
            vwap = vwap.add(candle)
        return vwap


def tail(candles: Sequence[Candle], n: int) -> list[Candle]:
    """The last ``n`` candles (works on a deque, which cannot be sliced)."""
    return list(islice(candles, max(0, len(candles) - n), None))


def price_arrays(candles: Sequence[Candle]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """High, low and close arrays of ``candles``, in order."""
    high = np.fromiter((c.high for c in candles), dtype=np.float64, count=len(candles))
    low = np.fromiter((c.low for c in candles), dtype=np.float64, count=len(candles))
    close = np.fromiter((c.close for c in candles), dtype=np.float64, count=len(candles))
    return high, low, close


def compute_indicators(candles: Sequence[Candle]) -> Indicators:
    """Indicators on the newest candle of ``candles`` (oldest first; closed, plus a forming one last
    when the caller wants it included).

    TA-Lib indicators read the last ``LOOKBACK`` candles; VWAP reads every candle given from the
    start of the newest candle's session, so pass at least a session's worth for a full VWAP.
    """
    high, low, close = price_arrays(tail(candles, LOOKBACK))
    return indicators_from_prices(
        high, low, close, vwap=SessionVwap.of(candles).value, have=len(candles)
    )


def indicators_from_prices(
    high: FloatArray, low: FloatArray, close: FloatArray, *, vwap: float | None, have: int
) -> Indicators:
    """``compute_indicators`` on prepared arrays (at most ``LOOKBACK`` long) and a known VWAP."""
    macd, signal, histogram = talib.MACD(
        close, fastperiod=MACD_FAST, slowperiod=MACD_SLOW, signalperiod=MACD_SIGNAL
    )
    # The default middle band is the SMA; TA-Lib's deviation is the population one.
    upper, middle, lower = talib.BBANDS(
        close, timeperiod=BBANDS_PERIOD, nbdevup=BBANDS_DEVIATIONS, nbdevdn=BBANDS_DEVIATIONS
    )
    return {
        "sma_20": _last(talib.SMA(close, timeperiod=SMA_PERIOD)),
        "ema_20": _last(talib.EMA(close, timeperiod=EMA_PERIOD)),
        "rsi_14": _last(talib.RSI(close, timeperiod=RSI_PERIOD)),
        "macd": {"macd": _last(macd), "signal": _last(signal), "histogram": _last(histogram)},
        "bollinger": {"upper": _last(upper), "middle": _last(middle), "lower": _last(lower)},
        "atr_14": _last(talib.ATR(high, low, close, timeperiod=ATR_PERIOD)),
        "vwap": vwap,
        "warmup": {"needed": WARMUP_NEEDED, "have": have},
    }


def _last(values: FloatArray) -> float | None:
    """The newest value of a TA-Lib output, ``None`` while it is still NaN (not warmed up)."""
    if len(values) == 0:
        return None
    value = float(values[-1])
    return None if math.isnan(value) else value
