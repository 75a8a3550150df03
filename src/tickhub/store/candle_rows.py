"""The row codec of persisted candles, shared by the SQLite and PostgreSQL stores.

A candle row is ``symbol, interval, start, open, high, low, close, volume``: ``start`` in whole
UTC epoch seconds (an integer sorts and compares in SQL without parsing text, and every bucket
start is a whole second), read back as the IST datetime the candle engine builds, so a candle
read from the store equals the one that was saved. Only closed candles are kept: a forming one
would be final nowhere.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Final

from tickhub.core.model import IST, Candle, Interval
from tickhub.store.rows import Row

__all__ = ["CANDLE_COLUMNS", "candle_from_row", "candle_values", "epoch_of"]

CANDLE_COLUMNS: Final = ("symbol", "interval", "start", "open", "high", "low", "close", "volume")
"""The columns of a candle row, in table order; ``(symbol, interval, start)`` is the key."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND: Final = timedelta(seconds=1)


def epoch_of(ts: datetime) -> int:
    """Whole UTC epoch seconds of an aware datetime (floored); ``ValueError`` for a naive one."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"naive timestamp: {ts.isoformat()} (a timezone is required)")
    return (ts - _EPOCH) // _SECOND


def candle_values(candle: Candle) -> tuple[str, str, int, float, float, float, float, int]:
    """The column values of a closed candle, else ``ValueError`` naming what is wrong."""
    if not isinstance(candle, Candle):
        raise ValueError(f"expected a Candle, got {type(candle).__name__}")
    if not candle.closed:
        raise ValueError(
            f"only closed candles are stored: {candle.symbol} {candle.interval} "
            f"{candle.start.isoformat()} is still forming"
        )
    if not isinstance(candle.symbol, str) or not candle.symbol:
        raise ValueError(f"candle symbol must be a non-empty string, got {candle.symbol!r}")
    if not isinstance(candle.interval, Interval):
        raise ValueError(f"candle interval must be an Interval, got {candle.interval!r}")
    prices = (candle.open, candle.high, candle.low, candle.close)
    for name, value in zip(("open", "high", "low", "close"), prices, strict=True):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise ValueError(f"candle {name} must be a finite number, got {value!r}")
    volume = candle.volume
    if isinstance(volume, bool) or not isinstance(volume, int) or volume < 0:
        raise ValueError(f"candle volume must be a non-negative int, got {volume!r}")
    return (
        candle.symbol,
        candle.interval.value,
        epoch_of(candle.start),
        float(candle.open),
        float(candle.high),
        float(candle.low),
        float(candle.close),
        volume,
    )


def candle_from_row(row: Row) -> Candle:
    """The closed candle of a row (``ValueError`` for an unknown interval)."""
    return Candle(
        row["symbol"],
        Interval.parse(row["interval"]),
        datetime.fromtimestamp(int(row["start"]), IST),
        float(row["open"]),
        float(row["high"]),
        float(row["low"]),
        float(row["close"]),
        int(row["volume"]),
        True,
    )
