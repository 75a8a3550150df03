"""Ticks -> OHLCV candles per symbol and interval, in exchange time (pure, stdlib only).

Buckets
    Intraday buckets (1m ... 1h) lie on a grid anchored at the NSE session open, 09:15 IST, and
    extended both ways with the same step: 30m candles start at 09:15, 09:45, ...; 1h candles at
    09:15, 10:15, ...; a pre-open tick at 09:07 falls in the 1h bucket starting 08:15. A bucket
    holds ``[start, start + interval)``. IST is a fixed +05:30 offset (no DST), so boundaries are
    integer epoch arithmetic and a ``datetime`` is built only when a bucket changes.

    A 1d bucket is the tick's IST calendar date; its ``start`` is 09:15 IST of that date (even for
    a pre-open tick, which is then earlier than its own bucket's start), and it is due to close at
    the following IST midnight, so closing prints after 15:30 still belong to their day.

Volume
    ``Tick.volume`` is the cumulative volume of the day; a candle's volume is the sum of the
    positive steps of that series, i.e. volume traded *since we started watching*:

    - the first tick ever seen for a symbol sets the reference and contributes 0 (the volume
      before it is unknown to us, even when it is the first tick of the session);
    - a tick on a later IST date than the reference starts a new day: the feed's counter restarts
      at 0, so the tick contributes its whole cumulative value (this includes the pre-open
      auction volume, which lands in the day's first candle), whether it is lower or higher than
      yesterday's last value;
    - on the same date, a lower value (out-of-order tick or feed glitch) contributes 0 and the
      reference stays at the highest value seen, so nothing is counted twice when the series
      comes back; a tick dated before the reference's date contributes 0.

    Index ticks carry volume 0, so their candles have volume 0.

Order
    Ticks are assumed to arrive mostly in time order (second resolution, ties in arrival order).
    A tick whose bucket is older than the latest bucket seen, or whose bucket was already closed
    by ``close_if_due``, does not touch OHLC and yields no update: published candles are final.
    Its volume step still moves the reference (above), and the step is credited to the forming
    candle, or to the next candle opened when none is forming, so the total volume is neither
    lost nor counted twice. A tick older than the latest one but in the forming bucket extends
    high and low without changing the close.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from tickhub.core.model import IST, SESSION_OPEN, Candle, Interval, Tick

__all__ = ["CandleBuilder", "CandleEngine", "bucket_start", "roll_up"]

_DAY = 86_400
_IST_OFFSET = 5 * 3600 + 30 * 60  # Asia/Kolkata has been a fixed +05:30 since 1945
_OPEN = SESSION_OPEN.hour * 3600 + SESSION_OPEN.minute * 60 + SESSION_OPEN.second
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_NONE = -(1 << 62)  # a bucket start before any real one


def _epoch(ts: datetime) -> int:
    """Whole UTC epoch seconds (floored) of an aware datetime; naive ones raise ``ValueError``."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"naive timestamp: {ts.isoformat()} (a timezone is required)")
    return (ts - _EPOCH) // _SECOND


def _start(epoch: int, seconds: int) -> int:
    """Epoch of the start of the bucket of ``seconds`` holding ``epoch`` (see the module doc)."""
    local = epoch + _IST_OFFSET
    if seconds >= _DAY:
        return local - local % _DAY + _OPEN - _IST_OFFSET
    return epoch - (local - _OPEN) % seconds


def _ist(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, IST)


def bucket_start(ts: datetime, interval: Interval) -> datetime:
    """Start of the ``interval`` bucket holding ``ts``, as an IST datetime.

    Intraday buckets are aligned to 09:15 IST; a 1d bucket starts at 09:15 IST of ``ts``'s IST
    date. ``ts`` may be in any time zone; a naive ``ts`` raises ``ValueError``.
    """
    return _ist(_start(_epoch(ts), interval.seconds))


def roll_up(candles: Iterable[Candle], interval: Interval) -> list[Candle]:
    """Closed ``interval`` candles made of shorter closed ones of one symbol (in time order): a
    bucket's open is its first candle's, its close its last's, high and low the extremes, volume
    the sum, so minute bars roll up to what the builder makes of the same trades. Every bucket
    is returned closed, the last one too: a past is complete."""
    seconds = interval.seconds
    out: list[Candle] = []
    start = _NONE
    o = h = low = c = 0.0
    volume = 0
    symbol = ""
    checked = False
    for candle in candles:
        if not checked:
            _epoch(candle.start)  # refuses a naive start, once: a series has one zone
            checked = True
        # Whole seconds (bucket starts have no fraction): ``timestamp`` is the fast way there.
        bucket = _start(int(candle.start.timestamp()), seconds)
        if bucket != start:
            if start != _NONE:
                out.append(Candle(symbol, interval, _ist(start), o, h, low, c, volume, True))
            start, symbol = bucket, candle.symbol
            o, h, low, c, volume = candle.open, candle.high, candle.low, candle.close, 0
        if candle.high > h:
            h = candle.high
        if candle.low < low:
            low = candle.low
        c = candle.close
        volume += candle.volume
    if start != _NONE:
        out.append(Candle(symbol, interval, _ist(start), o, h, low, c, volume, True))
    return out


class _VolumeRef:
    """Turns cumulative day volume into per-tick steps (rules in the module doc)."""

    __slots__ = ("day", "ref")

    def __init__(self) -> None:
        self.ref: int | None = None
        self.day = 0

    def step(self, volume: int, epoch: int) -> int:
        day = (epoch + _IST_OFFSET) // _DAY
        ref = self.ref
        if ref is None:
            self.ref = volume
            self.day = day
            return 0
        if day == self.day:
            if volume > ref:
                self.ref = volume
                return volume - ref
            return 0
        if day > self.day:
            self.ref = volume
            self.day = day
            return volume
        return 0


class CandleBuilder:
    """Candles of one symbol at one interval, fed tick by tick.

    ``update`` returns the candle updates a tick causes: nothing (late tick), the forming candle,
    or, when the tick opens a new bucket, the final update of the previous bucket
    (``closed=True``) followed by the new forming candle. ``close_if_due`` closes a bucket whose
    end has passed without a tick for the next one; a closed bucket never reopens.
    """

    __slots__ = (
        "_carry",
        "_close",
        "_end",
        "_forming",
        "_high",
        "_last",
        "_latest",
        "_low",
        "_open",
        "_seconds",
        "_start",
        "_start_dt",
        "_volume",
        "_volume_ref",
        "interval",
        "symbol",
    )

    def __init__(self, symbol: str, interval: Interval) -> None:
        self.symbol = symbol
        self.interval = interval
        self._seconds = interval.seconds
        self._volume_ref = _VolumeRef()
        self._forming = False
        self._start = _NONE  # latest bucket seen, forming or closed
        self._end = 0
        self._start_dt = _EPOCH
        self._latest = 0  # epoch of the latest tick in the forming bucket
        self._open = self._high = self._low = self._close = 0.0
        self._volume = 0
        self._carry = 0  # volume of late ticks waiting for the next bucket

    @property
    def current(self) -> Candle | None:
        """The forming candle, or ``None`` before the first tick and after a timer close."""
        return self._candle(False) if self._forming else None

    def update(self, tick: Tick) -> list[Candle]:
        """Apply one tick; returns the candle updates it causes, oldest first."""
        if tick.symbol != self.symbol:
            raise ValueError(f"tick for {tick.symbol!r} given to the builder of {self.symbol!r}")
        epoch = _epoch(tick.timestamp)
        return self._apply(tick.price, epoch, self._volume_ref.step(tick.volume, epoch))

    def close_if_due(self, now: datetime) -> Candle | None:
        """Close the forming bucket if ``now`` is at or past its end; returns the final update."""
        return self._close_due(_epoch(now))

    def _close_due(self, epoch: int) -> Candle | None:
        if not self._forming or epoch < self._end:
            return None
        self._forming = False
        return self._candle(True)

    def _apply(self, price: float, epoch: int, volume: int) -> list[Candle]:
        start = _start(epoch, self._seconds)
        if start == self._start and self._forming:
            if price > self._high:
                self._high = price
            elif price < self._low:
                self._low = price
            if epoch >= self._latest:
                self._latest = epoch
                self._close = price
            self._volume += volume
            return [self._candle(False)]
        if start <= self._start:
            if self._forming:
                self._volume += volume
            else:
                self._carry += volume
            return []
        out = [self._candle(True)] if self._forming else []
        self._start = start
        self._end = start - _OPEN + _DAY if self._seconds >= _DAY else start + self._seconds
        self._start_dt = _ist(start)
        self._latest = epoch
        self._open = self._high = self._low = self._close = price
        self._volume = self._carry + volume
        self._carry = 0
        self._forming = True
        out.append(self._candle(False))
        return out

    def _candle(self, closed: bool) -> Candle:
        return Candle(
            self.symbol,
            self.interval,
            self._start_dt,
            self._open,
            self._high,
            self._low,
            self._close,
            self._volume,
            closed,
        )


_Entry = tuple[_VolumeRef, list[tuple[CandleBuilder, deque[Candle]]]]
"""One symbol's volume reference and, per interval, its builder and closed-candle history."""


class CandleEngine:
    """Candle builders for every symbol seen, at each configured interval, with history.

    ``on_tick`` feeds one tick to all intervals of its symbol (the volume step is computed once
    per tick, so every interval sees the same volume); closed candles are kept per
    (symbol, interval) in a deque bounded to ``history_size``.
    """

    def __init__(
        self, intervals: Iterable[Interval] = tuple(Interval), history_size: int = 500
    ) -> None:
        self.intervals = tuple(dict.fromkeys(intervals))
        if not self.intervals:
            raise ValueError("no intervals configured")
        if history_size < 1:
            raise ValueError(f"history_size must be positive: {history_size}")
        self.history_size = history_size
        self._symbols: dict[str, _Entry] = {}

    def on_tick(self, tick: Tick) -> list[Candle]:
        """Candle updates caused by ``tick`` across all intervals (see ``CandleBuilder.update``)."""
        epoch = _epoch(tick.timestamp)
        entry = self._symbols.get(tick.symbol)
        if entry is None:
            entry = self._symbols[tick.symbol] = self._new_entry(tick.symbol)
        volume_ref, builders = entry
        volume = volume_ref.step(tick.volume, epoch)
        out: list[Candle] = []
        for builder, history in builders:
            updates = builder._apply(tick.price, epoch, volume)
            if updates and updates[0].closed:
                history.append(updates[0])
            out += updates
        return out

    def restore(self, candles: Iterable[Candle]) -> None:
        """Take closed candles from before the first tick (a feed's past) as history.

        Each (symbol, interval) series must come in time order, after anything it holds; a
        restored bucket counts as closed, so a later tick in it or before it is a late tick
        (see the module doc). ``ValueError`` for a forming candle, an interval not configured,
        or a candle not after its series' latest bucket.
        """
        for candle in candles:
            if not candle.closed:
                raise ValueError(f"only closed candles can be restored: {candle}")
            index = self._index(candle.interval)
            entry = self._symbols.get(candle.symbol)
            if entry is None:
                entry = self._symbols[candle.symbol] = self._new_entry(candle.symbol)
            builder, history = entry[1][index]
            start = _start(_epoch(candle.start), builder._seconds)
            if start <= builder._start or builder._forming:
                raise ValueError(
                    f"restored candle {candle.symbol} {candle.interval.value} "
                    f"{candle.start.isoformat()} is not after the series' latest bucket"
                )
            builder._start = start
            history.append(candle)

    def current(self, symbol: str, interval: Interval) -> Candle | None:
        """The forming candle, or ``None`` when there is none (or the symbol is unknown)."""
        found = self._find(symbol, interval)
        return found[0].current if found else None

    def history(self, symbol: str, interval: Interval, n: int | None = None) -> list[Candle]:
        """The last ``n`` closed candles (all kept when ``n`` is ``None``), oldest first."""
        if n is not None and n < 0:
            raise ValueError(f"n must not be negative: {n}")
        found = self._find(symbol, interval)
        if not found or n == 0:
            return []
        history = found[1]
        if n is None or n >= len(history):
            return list(history)
        return list(history)[-n:]

    def close_due(self, now: datetime) -> list[Candle]:
        """Close every forming bucket whose end is at or before ``now``; returns the closes."""
        epoch = _epoch(now)
        out: list[Candle] = []
        for _, builders in self._symbols.values():
            for builder, history in builders:
                candle = builder._close_due(epoch)
                if candle is not None:
                    history.append(candle)
                    out.append(candle)
        return out

    def close_all(self) -> list[Candle]:
        """Close every forming bucket, due or not: for when no tick will ever come again (a
        replay that reached its end), so the last bucket is as final as the others."""
        out: list[Candle] = []
        for _, builders in self._symbols.values():
            for builder, history in builders:
                if builder._forming:
                    builder._forming = False
                    candle = builder._candle(True)
                    history.append(candle)
                    out.append(candle)
        return out

    def _new_entry(self, symbol: str) -> _Entry:
        return (
            _VolumeRef(),
            [(CandleBuilder(symbol, i), deque(maxlen=self.history_size)) for i in self.intervals],
        )

    def _index(self, interval: Interval) -> int:
        if interval not in self.intervals:
            raise ValueError(f"interval not configured: {interval.value!r}")
        return self.intervals.index(interval)

    def _find(self, symbol: str, interval: Interval) -> tuple[CandleBuilder, deque[Candle]] | None:
        index = self._index(interval)
        entry = self._symbols.get(symbol)
        if entry is None:
            return None
        return entry[1][index]
