"""Minute-bar files: reading OHLCV bars and turning them into the ticks a replay plays.

Files
    A bar file, the common public format for Indian market data, has the header
    ``timestamp,open,high,low,close,volume`` (any case and order; ``datetime`` or ``date`` are
    accepted for ``timestamp``; other columns are ignored) and an optional ``symbol`` column;
    without one (or where its cell is empty), a bar is for the replay's ``symbol`` argument. Bar
    timestamps are ISO 8601 (``2024-01-02 09:15:00``, ``2024-01-02T09:15:00+05:30``); naive ones
    are IST. A bar is the minute holding its timestamp. An empty volume is 0; a volume written as
    ``1234.0`` is read as 1234. A bar whose high and low do not bound its open and close is a bad
    line (``read_bars``).

Bars to ticks
    Each bar becomes ``bars_ticks`` (at least 4) ticks spread evenly over its minute (tick ``j``
    of ``n`` at ``j * 60 / n`` seconds): the open first and the close last, with the low and then
    the high between them when close >= open, the high and then the low otherwise. Any further
    ticks lie on straight lines between these four prices, rounded to the tick size and kept
    within [low, high]. So ``CandleEngine`` turns them into 1m candles equal to the bars (OHLC and
    volume exactly), and into longer candles equal to the bars aggregated.

    Volume: the cumulative volume of a symbol restarts at 0 every IST day. The open tick of a bar
    carries the day's volume before the bar, and the bar's volume is split over the bar's other
    ticks. Under the candle engine's volume rules the first tick ever and the first tick of each
    day then count 0, and each bar's volume falls in its own minute. Other fields: ``prev_close``
    is the last close of the symbol's previous day in the file (0 on its first day);
    ``open``/``high``/``low`` are the day's so far; ``average_price`` is the day's VWAP of the
    synthetic trades; ``last_trade_time`` is the tick's time (``None`` for indices, which are not
    tradable); no depth. A symbol's bars must come in time order (a bar at or before the previous
    one is a bad line). In a file of several symbols, sort rows by time: consecutive bars with the
    same timestamp are interleaved tick by tick, so that time never goes back.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Final

from tickhub.core.model import IST, Instrument, Tick
from tickhub.feeds.replay.ticks import CsvRows, ReplayError

__all__ = ["BAR_COLUMNS", "Bar", "BarTicks", "interleave", "read_bars", "timestamp_column"]

BAR_COLUMNS: Final = ("timestamp", "open", "high", "low", "close", "volume")
"""Columns a bar file must have (plus an optional ``symbol``), in any order and case."""

_TIMESTAMP_NAMES: Final = ("timestamp", "datetime", "date")
_DEFAULT_TICK: Final = 0.05
_MINUTE_US: Final = 60_000_000


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar; ``start`` is the IST minute holding the bar's timestamp."""

    symbol: str
    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int


# -- reading ------------------------------------------------------------------------------------


def timestamp_column(header: list[str]) -> str | None:
    """The column of a bar header that holds the timestamp, if any (the first name found)."""
    return next((name for name in _TIMESTAMP_NAMES if name in header), None)


def _price(raw: str, column: str) -> float:
    value = raw.strip()
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0) or "_" in value:
        raise ValueError(f"{column}: expected a positive number, got {raw!r}")
    return number


def _volume(raw: str) -> int:
    value = raw.strip()
    if not value:
        return 0
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        number = float(value)  # some sources write volumes as 1234.0
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number >= 0 and number.is_integer()) or "_" in value:
        raise ValueError(f"volume: expected a non-negative integer, got {raw!r}")
    return int(number)


def _bar_time(raw: str, column: str) -> datetime:
    try:
        ts = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError(f"{column}: expected an ISO 8601 date and time, got {raw!r}") from None
    ts = ts.replace(tzinfo=IST) if ts.utcoffset() is None else ts.astimezone(IST)
    return ts.replace(second=0, microsecond=0)  # IST is a whole-minute offset


def read_bars(
    rows: CsvRows, source: str, header: list[str], default: str
) -> Iterator[tuple[int, Bar | ReplayError]]:
    """Each row of a bar file (after the header) as a ``Bar``, or as the ``ReplayError`` that
    makes it a bad line; ``default`` is the symbol of rows without one ("" for none)."""
    time_column = timestamp_column(header)
    assert time_column is not None  # checked by _format
    at = [header.index(time_column)] + [header.index(c) for c in BAR_COLUMNS[1:]]
    symbol_at = header.index("symbol") if "symbol" in header else None
    width = len(header)
    for number, fields in rows:
        if isinstance(fields, ReplayError):
            yield number, fields
            continue
        if len(fields) != width:
            yield (
                number,
                ReplayError(source, number, f"expected {width} columns, got {len(fields)}"),
            )
            continue
        try:
            symbol = (fields[symbol_at].strip() if symbol_at is not None else "") or default
            if not symbol:
                raise ValueError("symbol: must not be empty")
            start = _bar_time(fields[at[0]], time_column)
            o, h, low, c = (
                _price(fields[i], name) for i, name in zip(at[1:5], BAR_COLUMNS[1:5], strict=True)
            )
            if not (low <= min(o, c) and h >= max(o, c)):
                raise ValueError(
                    f"high and low must bound open and close: open {o!r}, high {h!r}, "
                    f"low {low!r}, close {c!r}"
                )
            yield number, Bar(symbol, start, o, h, low, c, _volume(fields[at[5]]))
        except ValueError as exc:
            yield number, ReplayError(source, number, str(exc))


# -- bars to ticks ------------------------------------------------------------------------------


class _Day:
    """One symbol's running day while its bars become ticks."""

    __slots__ = (
        "close",
        "day",
        "high",
        "last_start",
        "low",
        "open",
        "prev_close",
        "turnover",
        "volume",
    )

    def __init__(self) -> None:
        self.day: date | None = None
        self.last_start: datetime | None = None
        self.volume = 0
        self.turnover = 0.0
        self.open = self.high = self.low = self.close = self.prev_close = 0.0


class BarTicks:
    """Turns one file's bars into synthetic ticks, in file order (rules in the module doc)."""

    def __init__(self, ticks_per_bar: int = 4) -> None:
        if ticks_per_bar < 4:
            raise ValueError(f"ticks_per_bar must be at least 4: {ticks_per_bar}")
        self.ticks_per_bar = ticks_per_bar
        n = ticks_per_bar - 1
        self._first = max(1, round(n / 3))
        self._second = max(self._first + 1, round(2 * n / 3))
        self._days: dict[str, _Day] = {}

    def accept(self, bar: Bar, instrument: Instrument) -> str | None:
        """Why ``bar`` cannot follow the symbol's previous bar, or ``None`` when it can (and is
        then taken as that symbol's latest)."""
        day = self._days.get(instrument.symbol)
        if day is None:
            day = self._days[instrument.symbol] = _Day()
        if day.last_start is not None and bar.start <= day.last_start:
            return (
                f"bar at {bar.start.isoformat()} is not after the previous {instrument.symbol} "
                f"bar at {day.last_start.isoformat()}"
            )
        day.last_start = bar.start
        return None

    def ticks(self, bar: Bar, instrument: Instrument) -> list[Tick]:
        """The ticks of one bar ``accept`` took, oldest first."""
        state = self._days[instrument.symbol]
        today = bar.start.date()
        if state.day != today:
            state.prev_close = state.close if state.day is not None else 0.0
            state.day = today
            state.volume = 0
            state.turnover = 0.0
            state.open = state.high = state.low = bar.open
        n = self.ticks_per_bar
        tradable = instrument.tradable
        out: list[Tick] = []
        for j, price in enumerate(self._prices(bar, instrument.tick_size or _DEFAULT_TICK)):
            quantity = 0
            if j:
                quantity = bar.volume * j // (n - 1) - bar.volume * (j - 1) // (n - 1)
                state.volume += quantity
                state.turnover += price * quantity
            state.high = max(state.high, price)
            state.low = min(state.low, price)
            ts = bar.start + timedelta(microseconds=j * _MINUTE_US // n)
            out.append(
                Tick(
                    symbol=instrument.symbol,
                    instrument_token=instrument.instrument_token,
                    timestamp=ts,
                    price=price,
                    volume=state.volume,
                    last_quantity=quantity,
                    average_price=round(state.turnover / state.volume, 2) if state.volume else 0.0,
                    open=state.open,
                    high=state.high,
                    low=state.low,
                    prev_close=state.prev_close,
                    last_trade_time=ts if tradable else None,
                    tradable=tradable,
                )
            )
        state.close = bar.close
        return out

    def _prices(self, bar: Bar, tick: float) -> list[float]:
        first, second = (bar.low, bar.high) if bar.close >= bar.open else (bar.high, bar.low)
        points = [
            (0, bar.open),
            (self._first, first),
            (self._second, second),
            (self.ticks_per_bar - 1, bar.close),
        ]
        prices: list[float] = []
        for (ia, a), (ib, b) in pairwise(points):
            prices.append(a)
            for j in range(ia + 1, ib):
                # round(x, 9) drops the binary residue of steps * tick (100.05000000000001).
                p = round(round((a + (b - a) * (j - ia) / (ib - ia)) / tick) * tick, 9)
                prices.append(min(max(p, bar.low), bar.high))
        prices.append(bar.close)
        return prices


def interleave(synth: BarTicks, group: list[tuple[Bar, Instrument]]) -> Iterator[Tick]:
    """The ticks of consecutive bars of one minute, tick by tick, so that time never goes back."""
    per_bar = [synth.ticks(bar, instrument) for bar, instrument in group]
    for j in range(synth.ticks_per_bar):
        for ticks in per_bar:
            yield ticks[j]
