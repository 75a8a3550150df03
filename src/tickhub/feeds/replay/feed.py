"""Replay feed (``FEED=replay``): plays a tick file or an OHLCV minute-bar CSV on a clock.

Files
    The format is told from the header. A tick file (``tickhub.feeds.replay.ticks``, written by
    ``tickhub record``) plays its ticks as recorded. A minute-bar file plays the ticks its bars
    become; the format and the rules that make candles equal to the bars are in
    ``tickhub.feeds.replay.bars``.

Pacing
    Ticks keep their exchange timestamps. The feed releases them on the injected clock: a tick is
    due ``played / speed`` clock seconds after ``run`` starts, where ``played`` is the exchange
    time played so far. Two rules apply. First, time between IST days (nights, weekends) is not
    played: a day's first tick follows the previous day's last tick at once. Second, a tick
    older than the newest tick played is released at once. ``speed=None`` plays as fast as
    possible: it never waits, but it yields to the event loop every ``YIELD_EVERY`` ticks.

End and loop
    At the end of the file, the feed reports ``FINISHED`` with detail ``end of replay`` (a state of
    its own: the replay did all it was asked, nothing is wrong) and waits to be cancelled (like
    every feed, ``run`` lasts until cancelled). With ``loop=True`` it starts over at once. Pass
    ``k`` (the first is 0) plays the same ticks, but every date moves forward by ``k * n`` weekdays,
    where ``n`` counts the weekdays from the file's first IST date to its last. So a file of
    weekdays continues on the following trading days: a one-day Friday file replays on Monday, then
    Tuesday, and so on. If the file has ticks on a weekend (a special session), dates move by whole
    weeks instead (the days spanned, rounded up to weeks, per pass). Times of day do not change, so
    candle buckets stay on their grid and every pass opens new days. Each later pass must give the
    same candles as the first. The candle engine counts a first tick ever as 0, but counts a new
    day's first tick in full. So in every later pass, each symbol's cumulative volume on its first
    day in the file is rebased to start from 0 at its first tick.

Bad input
    A bad line (wrong number of columns, a value that does not parse, broken quoting; in a bar
    file also a high and low that do not bound the open and close, or a bar out of order) is
    logged with file and line (up to ``LOG_LIMIT`` of them), skipped, and counted in
    ``status().extra["bad_lines"]``. Rows whose symbol the registry does not know
    are skipped and counted in ``extra["unknown_symbols"]`` (logged once per symbol). Counts come
    from the first pass, so they describe the file. The constructor raises ``ReplayError`` for a
    file the feed cannot use at all: unreadable, an unknown header, or a bar file without a
    symbol.

Symbols
    Symbols resolve against the registry: by token, then by name. A played tick carries the
    registry's symbol and token. ``subscribe`` and ``unsubscribe`` are accepted and ignored: a
    replay streams every known symbol of its file. Reading is deterministic: the same file gives
    the same ticks every time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Final, Literal

from tickhub.core import defaults
from tickhub.core.clock import Clock
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import FeedState, FeedStatus, Instrument, Tick
from tickhub.feeds.base import StatusSink, TickSink
from tickhub.feeds.replay.bars import (
    BAR_COLUMNS,
    Bar,
    BarTicks,
    interleave,
    read_bars,
    timestamp_column,
)
from tickhub.feeds.replay.ticks import (
    ReplayError,
    csv_rows,
    open_text,
    parse_tick_rows,
    read_header,
    tick_columns_index,
)
from tickhub.runtime.clock import SystemClock

__all__ = [
    "LOG_LIMIT",
    "YIELD_EVERY",
    "ReplayEvent",
    "ReplayFeed",
    "ReplayFormat",
    "UnknownSymbol",
    "probe_format",
    "read_replay",
]

log = logging.getLogger(__name__)

YIELD_EVERY: Final = 256
"""Ticks released without waiting before the feed yields to the event loop."""

LOG_LIMIT: Final = 100
"""Bad lines logged one by one; later ones are only counted."""

ReplayFormat = Literal["ticks", "bars"]

_MICROSECOND: Final = timedelta(microseconds=1)
_NO_SYMBOL: Final = "bar file without a symbol column: give the replay a symbol"


@dataclass(frozen=True, slots=True)
class UnknownSymbol:
    """A row skipped because the registry does not know its symbol."""

    source: str
    line: int
    symbol: str


ReplayEvent = Tick | ReplayError | UnknownSymbol
"""What reading a replay file yields: a tick to play, a bad line, or a row of an unknown symbol."""


# -- reading ------------------------------------------------------------------------------------


def _sniff(header: list[str]) -> ReplayFormat | None:
    if "instrument_token" in header and "price" in header:
        return "ticks"
    if timestamp_column(header) is not None and all(c in header for c in BAR_COLUMNS[1:]):
        return "bars"
    return None


def _format(header: list[str], source: str) -> ReplayFormat:
    found = _sniff(header)
    if found is None:
        raise ReplayError(
            source,
            1,
            "unknown file format: expected a tick file (tickhub record) or bars with the header "
            + ",".join(BAR_COLUMNS),
        )
    return found


def probe_format(path: str | os.PathLike[str], *, symbol: str | None = None) -> ReplayFormat:
    """The format of a replay file, from its header; raises ``ReplayError`` when the file is
    unusable (unreadable, unknown header, a bar file with no symbol column and no ``symbol``)."""
    file, source = open_text(path)
    with file:
        header = read_header(csv_rows(file, source), source)
    found = _format(header, source)
    if found == "ticks":
        tick_columns_index(header, source)
    elif "symbol" not in header and symbol is None:
        raise ReplayError(source, 1, _NO_SYMBOL)
    return found


def read_replay(
    path: str | os.PathLike[str],
    registry: InstrumentRegistry,
    *,
    symbol: str | None = None,
    bars_ticks: int = 4,
) -> Generator[ReplayEvent, None, None]:
    """The ticks of a tick or bar file in play order, with its bad lines and unknown rows.

    Deterministic and lazy (the file closes when the iterator is exhausted or closed); every
    timestamp is in IST. ``symbol`` names the instrument of a bar file without a ``symbol``
    column. Raises ``ReplayError`` for an unusable file (see ``probe_format``) and
    ``UnknownSymbolError`` for an unknown ``symbol``.
    """
    if bars_ticks < 4:
        raise ValueError(f"bars_ticks must be at least 4: {bars_ticks}")
    file, source = open_text(path)
    with file:
        rows = csv_rows(file, source)
        header = read_header(rows, source)
        if _format(header, source) == "ticks":
            yield from _known_ticks(parse_tick_rows(rows, source, header), registry, source)
            return
        default = registry.resolve(symbol) if symbol is not None else None
        if "symbol" not in header and default is None:
            raise ReplayError(source, 1, _NO_SYMBOL)
        bars = read_bars(rows, source, header, default.symbol if default is not None else "")
        yield from _bar_events(bars, registry, bars_ticks, source)


def _resolve(registry: InstrumentRegistry, symbol: str, token: int) -> Instrument | None:
    found = registry.by_token(token)
    if found is not None and found.tradingsymbol.upper() == symbol.strip().upper():
        return found
    return registry.get(symbol)


def _known_ticks(
    rows: Iterable[tuple[int, Tick | ReplayError]], registry: InstrumentRegistry, source: str
) -> Iterator[ReplayEvent]:
    known: dict[tuple[str, int], Instrument | None] = {}
    for line, item in rows:
        if isinstance(item, ReplayError):
            yield item
            continue
        key = (item.symbol, item.instrument_token)
        if key in known:
            instrument = known[key]
        else:
            instrument = known[key] = _resolve(registry, *key)
        if instrument is None:
            yield UnknownSymbol(source, line, item.symbol)
        elif (
            instrument.symbol != item.symbol or instrument.instrument_token != item.instrument_token
        ):
            yield replace(
                item, symbol=instrument.symbol, instrument_token=instrument.instrument_token
            )
        else:
            yield item


def _bar_events(
    bars: Iterable[tuple[int, Bar | ReplayError]],
    registry: InstrumentRegistry,
    ticks_per_bar: int,
    source: str,
) -> Iterator[ReplayEvent]:
    synth = BarTicks(ticks_per_bar)
    known: dict[str, Instrument | None] = {}
    group: list[tuple[Bar, Instrument]] = []  # consecutive bars of one minute
    for line, bar in bars:
        if isinstance(bar, ReplayError):
            yield bar
            continue
        if bar.symbol in known:
            instrument = known[bar.symbol]
        else:
            instrument = known[bar.symbol] = registry.get(bar.symbol)
        if instrument is None:
            yield UnknownSymbol(source, line, bar.symbol)
            continue
        reason = synth.accept(bar, instrument)
        if reason is not None:
            yield ReplayError(source, line, reason)
            continue
        if group and group[0][0].start != bar.start:
            yield from interleave(synth, group)
            group = []
        group.append((bar, instrument))
    yield from interleave(synth, group)


# -- looping ------------------------------------------------------------------------------------


def _next_weekday(day: date) -> date:
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _add_weekdays(day: date, n: int) -> date:
    """``day`` (a weekday) moved ``n`` weekdays forward."""
    weeks, rest = divmod(n, 5)
    day += timedelta(weeks=weeks)
    for _ in range(rest):
        day = _next_weekday(day)
    return day


def _day_shift(dates: set[date], k: int) -> Callable[[date], timedelta]:
    """How far pass ``k`` moves a date of a file whose ticks fall on ``dates`` (see module doc)."""
    first, last = min(dates), max(dates)
    if all(d.weekday() < 5 for d in dates):
        n = sum(1 for i in range((last - first).days + 1) if (first + timedelta(i)).weekday() < 5)
        cache: dict[date, timedelta] = {}

        def by_weekdays(day: date) -> timedelta:
            found = cache.get(day)
            if found is None:
                found = cache[day] = _add_weekdays(day, k * n) - day
            return found

        return by_weekdays
    weeks = timedelta(weeks=k * -(-((last - first).days + 1) // 7))
    return lambda day: weeks


# -- the feed -----------------------------------------------------------------------------------


class ReplayFeed:
    """Plays a tick or bar file through the ``Feed`` interface (rules in the module doc).

    ``speed`` is exchange seconds per clock second (``None``: as fast as possible); ``loop``
    starts over at the end; ``bars_ticks`` is the number of ticks a bar becomes; ``symbol`` names
    the instrument of a bar file without a ``symbol`` column. ``status().last_tick_at`` is clock
    time; the exchange time of the latest tick is ``extra["exchange_time"]``.
    """

    name = "replay"

    def __init__(
        self,
        path: str | os.PathLike[str],
        registry: InstrumentRegistry,
        *,
        speed: float | None = defaults.REPLAY_SPEED,
        loop: bool = False,
        clock: Clock | None = None,
        bars_ticks: int = 4,
        symbol: str | None = None,
    ) -> None:
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be positive (or None, as fast as possible): {speed!r}")
        if bars_ticks < 4:
            raise ValueError(f"bars_ticks must be at least 4: {bars_ticks}")
        self._path = os.fspath(path)
        self._registry = registry
        self._speed = speed
        self._loop = loop
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._bars_ticks = bars_ticks
        self._format = probe_format(self._path, symbol=symbol)
        # Only a bar file uses ``symbol``; an unknown one fails here rather than on every bar.
        bars = self._format == "bars" and symbol is not None
        self._symbol = registry.resolve(symbol).symbol if bars and symbol else None
        self._state = FeedState.STARTING
        self._detail = "not started"
        self._last_tick_at: datetime | None = None
        self._exchange_time: datetime | None = None
        self._ticks = 0
        self._bad_lines = 0
        self._unknown = 0
        self._unknown_names: set[str] = set()
        self._loops = 0

    @property
    def format(self) -> ReplayFormat:
        return self._format

    async def run(self, on_tick: TickSink, on_status: StatusSink) -> None:
        self._ticks = self._bad_lines = self._unknown = self._loops = 0
        self._unknown_names.clear()
        pace = "as fast as possible" if self._speed is None else f"at {self._speed:g}x"
        looping = ", looping" if self._loop else ""
        name = os.path.basename(self._path)
        self._report(
            FeedState.LIVE, f"replaying {name} ({self._format}) {pace}{looping}", on_status
        )
        try:
            await self._play(on_tick)
            self._report(FeedState.FINISHED, "end of replay", on_status)
            await asyncio.get_running_loop().create_future()  # a feed runs until cancelled
        except ReplayError as exc:
            self._report(FeedState.STOPPED, str(exc), on_status)
            raise
        finally:
            if self._state is not FeedState.STOPPED:  # finished, then cancelled: stopped
                self._report(FeedState.STOPPED, "stopped", on_status)

    async def _play(self, on_tick: TickSink) -> None:
        clock = self._clock
        speed = self._speed
        begin = clock.monotonic()
        played_us = 0  # exchange time played so far, in microseconds
        unyielded = 0
        dates: set[date] = set()
        first_volume: dict[str, tuple[date, int]] = {}
        k = 0
        while True:
            shift = _day_shift(dates, k) if k else None
            latest: datetime | None = None
            count = 0
            events = read_replay(
                self._path, self._registry, symbol=self._symbol, bars_ticks=self._bars_ticks
            )
            with closing(events):
                for event in events:
                    if not isinstance(event, Tick):
                        if k == 0:
                            self._skipped(event)
                        continue
                    ts = event.timestamp  # IST, as read_replay yields
                    if latest is None:
                        latest = ts
                    elif ts > latest:
                        if ts.date() == latest.date():
                            played_us += (ts - latest) // _MICROSECOND
                        latest = ts
                    if speed is not None:
                        now = clock.monotonic()
                        due = begin + played_us / (1e6 * speed)
                        if due > now:
                            await clock.sleep(due - now)
                            unyielded = 0
                    unyielded += 1
                    if unyielded >= YIELD_EVERY:
                        await asyncio.sleep(0)
                        unyielded = 0
                    if shift is None:
                        dates.add(ts.date())
                        first_volume.setdefault(event.symbol, (ts.date(), event.volume))
                    else:
                        event = _shifted(event, shift(ts.date()), first_volume.get(event.symbol))
                    count += 1
                    self._ticks += 1
                    self._last_tick_at = clock.now()
                    self._exchange_time = event.timestamp
                    on_tick(event)
            if not self._loop:
                return
            if count == 0:
                log.warning("replay %s: no ticks to play, not looping", self._path)
                return
            k += 1
            self._loops = k

    def _skipped(self, event: ReplayError | UnknownSymbol) -> None:
        if isinstance(event, ReplayError):
            self._bad_lines += 1
            if self._bad_lines <= LOG_LIMIT:
                log.warning("skipped bad line: %s", event)
            if self._bad_lines == LOG_LIMIT:
                log.warning("replay %s: any further bad lines are counted, not logged", self._path)
            return
        self._unknown += 1
        if event.symbol not in self._unknown_names:
            self._unknown_names.add(event.symbol)
            log.warning(
                "%s:%d: unknown symbol %r: its rows are skipped",
                event.source,
                event.line,
                event.symbol,
            )

    def subscribe(self, instruments: Iterable[Instrument]) -> None:
        pass

    def unsubscribe(self, instruments: Iterable[Instrument]) -> None:
        pass

    def status(self) -> FeedStatus:
        exchange_time = self._exchange_time
        return FeedStatus(
            self._state,
            self._detail,
            last_tick_at=self._last_tick_at,
            extra={
                "file": self._path,
                "format": self._format,
                "speed": self._speed,
                "loop": self._loop,
                "loops": self._loops,
                "ticks": self._ticks,
                "bad_lines": self._bad_lines,
                "unknown_symbols": self._unknown,
                "exchange_time": None if exchange_time is None else exchange_time.isoformat(),
            },
        )

    def _report(self, state: FeedState, detail: str, on_status: StatusSink) -> None:
        self._state = state
        self._detail = detail
        on_status(self.status())


def _shifted(tick: Tick, delta: timedelta, first: tuple[date, int] | None) -> Tick:
    """``tick`` moved ``delta`` later, its volume rebased on the symbol's first day."""
    volume = tick.volume
    if first is not None and first[1] and tick.timestamp.date() == first[0]:
        volume = max(0, volume - first[1])
    ltt = tick.last_trade_time
    return replace(
        tick,
        timestamp=tick.timestamp + delta,
        last_trade_time=None if ltt is None else ltt + delta,
        volume=volume,
    )
