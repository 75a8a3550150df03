"""Indicator sets: the indicators a ``/ws/analysis`` subscription chose, at its parameters.

A set's ``technical_indicators`` object has one member per indicator, named by its canonical
form (``"ema:9"``, ``"supertrend:10,3"``), plus ``warmup`` (``{needed, have}``, as the default
set's). A member is ``null`` (or an object of ``null`` members) until warmed up
(``tickhub.core.commands.warmup_of``: the first non-null index is that many candles minus one).

TA-Lib computes every indicator it implements (SMA, EMA, RSI, MACD, BBANDS, ATR, STOCH with simple
moving averages, ADX with PLUS_DI/MINUS_DI, OBV, SAR, MAX/MIN for Donchian); Supertrend and the
pivot points are ours (``supertrend.py``, ``pivots.py``). TA-Lib seeds from the first candle it is
given, so a set reads the last ``lookback(specs)`` closed candles: at least ``LOOKBACK`` and three
times its longest warm-up, so that EMA 200 is not dominated by its seed. OBV and SAR are
cumulative over those candles. VWAP is the session's, as in the default set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import talib
from talib._ta_lib import MA_Type

from tickhub.core.commands.indicators import CATALOG, IndicatorSet, IndicatorSpec, warmup_of
from tickhub.core.model import Candle
from tickhub.engines.analysis.indicators import LOOKBACK, FloatArray
from tickhub.engines.analysis.pivots import NO_PIVOTS, classic_pivots
from tickhub.engines.analysis.supertrend import UP, supertrend

Prices = tuple[FloatArray, FloatArray, FloatArray, FloatArray]
"""High, low, close and volume, oldest first."""


def lookback(specs: IndicatorSet) -> int:
    """Closed candles a set reads (fewer while fewer are kept)."""
    return max([LOOKBACK, *(3 * warmup_of(s) for s in specs)])


def needed(specs: IndicatorSet) -> int:
    """Candles for every indicator of the set to have a value."""
    return max(warmup_of(s) for s in specs)


def prices_of(candles: Sequence[Candle]) -> Prices:
    n = len(candles)
    return (
        np.fromiter((c.high for c in candles), dtype=np.float64, count=n),
        np.fromiter((c.low for c in candles), dtype=np.float64, count=n),
        np.fromiter((c.close for c in candles), dtype=np.float64, count=n),
        np.fromiter((float(c.volume) for c in candles), dtype=np.float64, count=n),
    )


def with_candle(prices: Prices, candle: Candle, limit: int) -> Prices:
    """``prices`` with ``candle`` appended (the forming one), at most ``limit`` long."""
    high, low, close, volume = prices
    return (
        np.append(high, candle.high)[-limit:],
        np.append(low, candle.low)[-limit:],
        np.append(close, candle.close)[-limit:],
        np.append(volume, float(candle.volume))[-limit:],
    )


def compute_set(
    specs: IndicatorSet,
    prices: Prices,
    *,
    vwap: float | None,
    previous_session: tuple[float, float, float] | None,
    have: int,
) -> dict[str, Any]:
    """The ``technical_indicators`` of ``specs`` on the newest of ``prices``."""
    out: dict[str, Any] = {
        spec.canonical: _value(spec, prices, vwap, previous_session) for spec in specs
    }
    out["warmup"] = {"needed": needed(specs), "have": have}
    return out


def _value(
    spec: IndicatorSpec,
    prices: Prices,
    vwap: float | None,
    previous_session: tuple[float, float, float] | None,
) -> Any:
    high, low, close, volume = prices
    name = spec.name
    if len(close) == 0:
        return _empty(spec)
    if name == "sma":
        return _last(talib.SMA(close, timeperiod=spec.period()))
    if name == "ema":
        return _last(talib.EMA(close, timeperiod=spec.period()))
    if name == "rsi":
        return _last(talib.RSI(close, timeperiod=spec.period()))
    if name == "atr":
        return _last(talib.ATR(high, low, close, timeperiod=spec.period()))
    if name == "macd":
        macd, signal, histogram = talib.MACD(
            close, fastperiod=spec.period(0), slowperiod=spec.period(1), signalperiod=spec.period(2)
        )
        return {"macd": _last(macd), "signal": _last(signal), "histogram": _last(histogram)}
    if name == "bollinger":
        deviations = spec.param(1)
        upper, middle, lower = talib.BBANDS(
            close, timeperiod=spec.period(), nbdevup=deviations, nbdevdn=deviations
        )
        return {"upper": _last(upper), "middle": _last(middle), "lower": _last(lower)}
    if name == "vwap":
        return vwap
    if name == "supertrend":
        value, direction = supertrend(high, low, close, spec.period(), spec.param(1))
        last = _last(value)
        if last is None:
            return {"value": None, "direction": None}
        return {"value": last, "direction": "up" if int(direction[-1]) == UP else "down"}
    if name == "stoch":
        k, d = talib.STOCH(
            high,
            low,
            close,
            fastk_period=spec.period(0),
            slowk_period=spec.period(1),
            slowk_matype=MA_Type.SMA,
            slowd_period=spec.period(2),
            slowd_matype=MA_Type.SMA,
        )
        return {"k": _last(k), "d": _last(d)}
    if name == "adx":
        period = spec.period()
        return {
            "adx": _last(talib.ADX(high, low, close, timeperiod=period)),
            "plus_di": _last(talib.PLUS_DI(high, low, close, timeperiod=period)),
            "minus_di": _last(talib.MINUS_DI(high, low, close, timeperiod=period)),
        }
    if name == "obv":
        return _last(talib.OBV(close, volume))
    if name == "sar":
        return _last(talib.SAR(high, low, acceleration=spec.param(0), maximum=spec.param(1)))
    if name == "donchian":
        upper_d = _last(talib.MAX(high, timeperiod=spec.period()))
        lower_d = _last(talib.MIN(low, timeperiod=spec.period()))
        if upper_d is None or lower_d is None:
            return {"upper": None, "middle": None, "lower": None}
        return {"upper": upper_d, "middle": (upper_d + lower_d) / 2.0, "lower": lower_d}
    if name == "pivots":
        if previous_session is None:
            return dict(NO_PIVOTS)
        return dict(classic_pivots(*previous_session))
    raise ValueError(f"indicator without a computation: {name}")


def _empty(spec: IndicatorSpec) -> Any:
    members = CATALOG[spec.name].members
    return dict.fromkeys(members) if members else None


def _last(values: FloatArray) -> float | None:
    if len(values) == 0:
        return None
    value = float(values[-1])
    return None if math.isnan(value) else value
