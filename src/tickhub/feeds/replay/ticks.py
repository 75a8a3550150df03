"""Tick files: record a feed's ticks to CSV and read them back (``FEED=replay`` plays them).

Format
    CSV (stdlib ``csv``), UTF-8, ``\\n`` line ends, one header line naming the columns of
    ``TICK_COLUMNS``, then one row per ``Tick`` in the order the feed produced them. A row is one
    physical line (no field holds a line break), so a broken row never hides the next one.

    ==================  ======================================================================
    symbol              ``Tick.symbol`` (the trading symbol, ``RELIANCE``, ``NIFTY 50``)
    instrument_token    exchange token, a positive integer
    timestamp           exchange timestamp, ISO 8601 with its UTC offset and microseconds when
                        there are any: ``2025-01-27T09:15:00.250000+05:30``
    price               last traded price
    volume              cumulative volume of the day
    last_quantity       quantity of the last trade
    average_price       the day's volume-weighted average price
    buy_quantity        total pending buy quantity
    sell_quantity       total pending sell quantity
    open, high, low     the day's open, high and low
    prev_close          the previous session's close
    oi                  open interest (0 for cash instruments)
    tradable            ``1`` or ``0`` (``true``/``false`` are read too)
    last_trade_time     ISO 8601 like ``timestamp``, empty when the tick has none
    bidN_price          N = 1..5, best first: price, quantity and number of orders of the Nth
    bidN_qty            bid; empty when the tick has fewer levels (or no depth)
    bidN_orders
    askN_price          the same for the offers
    askN_qty
    askN_orders
    ==================  ======================================================================

    Numbers read back exactly: floats are written as Python's shortest round-trip ``repr``,
    integers in decimal. Timestamps keep full (microsecond) precision and read back as aware
    datetimes in ``IST``, the same instant as written. Empty cells: ``last_trade_time`` when it is
    ``None`` and absent depth levels; a tick with no depth level on either side (``depth=None``
    or an empty ``Depth()``) reads back as ``depth=None``. Any other empty number reads as 0 and
    an empty ``tradable`` as true.

    CSV only: Parquet is not supported (no extra dependency, and a CSV can be appended to while a
    recording runs, read with ``grep`` and repaired by hand).

Reading
    ``read_ticks`` yields ``(line, Tick)`` for every good row and ``(line, ReplayError)`` for a bad
    one (wrong number of columns, a value that does not parse), naming the file and the 1-based
    line, so that a caller logs it and goes on. The header may list the columns in any order and
    extra columns are ignored; a file it cannot use at all (unreadable, empty, a header lacking
    columns) raises ``ReplayError``.

Writing
    ``TickWriter`` writes the header once (not when appending to a file that has it), hands rows
    to the OS every ``flush_every`` rows and on close (no fsync), and refuses to append to a file
    whose header differs. ``tickhub record`` (``tickhub.devtools.record``) runs a feed into one.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Final, TextIO

from tickhub.core.errors import ReplayError
from tickhub.core.model import IST, Depth, DepthLevel, Tick

__all__ = [
    "DEFAULT_FLUSH_EVERY",
    "DEPTH_LEVELS",
    "TICK_COLUMNS",
    "CsvRows",
    "ReplayError",
    "TickWriter",
    "csv_rows",
    "open_text",
    "parse_tick_rows",
    "read_header",
    "read_ticks",
    "tick_columns_index",
    "tick_row",
]

log = logging.getLogger(__name__)

DEPTH_LEVELS: Final = 5
"""Depth levels a side the format holds."""

_SCALAR_COLUMNS: Final = (
    "symbol",
    "instrument_token",
    "timestamp",
    "price",
    "volume",
    "last_quantity",
    "average_price",
    "buy_quantity",
    "sell_quantity",
    "open",
    "high",
    "low",
    "prev_close",
    "oi",
    "tradable",
    "last_trade_time",
)

TICK_COLUMNS: Final = _SCALAR_COLUMNS + tuple(
    f"{side}{n}_{part}"
    for side in ("bid", "ask")
    for n in range(1, DEPTH_LEVELS + 1)
    for part in ("price", "qty", "orders")
)
"""Columns of a tick file, in the order ``TickWriter`` writes them."""

DEFAULT_FLUSH_EVERY: Final = 1_000
"""Rows ``TickWriter`` buffers before handing them to the OS."""

_TRUE: Final = frozenset({"1", "true"})
_FALSE: Final = frozenset({"0", "false"})


# -- CSV lines ----------------------------------------------------------------------------------


CsvRows = Iterator[tuple[int, list[str] | ReplayError]]
"""Lines of a CSV file: 1-based line number and fields, or the error of a malformed line."""


def csv_rows(file: TextIO, source: str) -> CsvRows:
    """The fields of each non-blank line of ``file`` with its 1-based number, or an error for a
    line whose quoting is broken. Each physical line is parsed on its own, so an unbalanced
    quote spoils one line only."""
    for number, text in enumerate(file, 1):
        text = text.rstrip("\r\n")
        if not text.strip():
            continue
        if '"' not in text:
            yield number, text.split(",")  # what csv would return for an unquoted line
            continue
        try:
            yield number, next(csv.reader((text,), strict=True))
        except csv.Error as exc:
            yield number, ReplayError(source, number, f"malformed CSV ({exc})")


def open_text(path: str | os.PathLike[str]) -> tuple[TextIO, str]:
    """``path`` opened for reading as text, with its name for messages; raises ``ReplayError``.

    Undecodable bytes become U+FFFD, so they spoil the line they are on, not the file.
    """
    source = os.fspath(path)
    try:
        return open(source, encoding="utf-8-sig", errors="replace"), source
    except OSError as exc:
        raise ReplayError(source, None, f"cannot read ({exc.strerror})") from None


def read_header(rows: CsvRows, source: str) -> list[str]:
    """The next (first) row's fields, stripped and lowercased; raises ``ReplayError`` when there
    is none. The rows after it stay in ``rows``."""
    for _, fields in rows:
        if isinstance(fields, ReplayError):
            raise fields
        return [field.strip().lower() for field in fields]
    raise ReplayError(source, None, "empty file, expected a header line")


# -- Tick <-> row -------------------------------------------------------------------------------


def tick_row(tick: Tick) -> list[str]:
    """The fields of ``tick`` in ``TICK_COLUMNS`` order; raises ``ValueError`` for a naive time
    or more than ``DEPTH_LEVELS`` levels a side."""
    ts = tick.timestamp
    if ts.utcoffset() is None:
        raise ValueError(f"naive timestamp: {ts.isoformat()} (a timezone is required)")
    ltt = tick.last_trade_time
    if ltt is not None and ltt.utcoffset() is None:
        raise ValueError(f"naive last_trade_time: {ltt.isoformat()} (a timezone is required)")
    row = [
        tick.symbol,
        str(tick.instrument_token),
        ts.isoformat(),
        repr(tick.price),
        str(tick.volume),
        str(tick.last_quantity),
        repr(tick.average_price),
        str(tick.buy_quantity),
        str(tick.sell_quantity),
        repr(tick.open),
        repr(tick.high),
        repr(tick.low),
        repr(tick.prev_close),
        str(tick.oi),
        "1" if tick.tradable else "0",
        "" if ltt is None else ltt.isoformat(),
    ]
    depth = tick.depth
    for side, levels in (("bid", depth.buy if depth else ()), ("ask", depth.sell if depth else ())):
        if len(levels) > DEPTH_LEVELS:
            raise ValueError(f"{len(levels)} {side} levels, a tick file holds {DEPTH_LEVELS}")
        for level in levels:
            row += (repr(level.price), str(level.quantity), str(level.orders))
        row += ("",) * (3 * (DEPTH_LEVELS - len(levels)))
    return row


def _natural(raw: str, column: str, empty: int | None = 0) -> int:
    try:
        value = int(raw)  # the common case first: a row is 47 of these
    except ValueError:
        if empty is not None and not raw.strip():
            return empty
        value = -1
    if value < 0:
        raise ValueError(f"{column}: expected a non-negative integer, got {raw!r}")
    return value


def _number(raw: str, column: str, empty: float | None = 0.0) -> float:
    try:
        value = float(raw)
    except ValueError:
        if empty is not None and not raw.strip():
            return empty
        value = math.nan
    if not 0.0 <= value < math.inf:  # also false for NaN
        raise ValueError(f"{column}: expected a non-negative number, got {raw!r}")
    return value


def _time(raw: str, column: str) -> datetime:
    try:
        ts = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError(f"{column}: expected ISO 8601 with a UTC offset, got {raw!r}") from None
    if ts.utcoffset() is None:
        raise ValueError(f"{column}: no UTC offset in {raw!r}")
    return ts.astimezone(IST)


def _bool(raw: str, column: str) -> bool:
    value = raw.strip().lower()
    if not value or value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{column}: expected 1 or 0, got {raw!r}")


def _levels(fields: list[str], at: list[int], first: int) -> tuple[DepthLevel, ...]:
    """The levels of one side; ``at[first:]`` are the positions of its 3 * 5 columns."""
    levels: list[DepthLevel] = []
    for n in range(DEPTH_LEVELS):
        i = first + 3 * n
        price, qty, orders = fields[at[i]], fields[at[i + 1]], fields[at[i + 2]]
        if not (price or qty or orders) or not (price.strip() or qty.strip() or orders.strip()):
            continue
        name = TICK_COLUMNS[i][: -len("_price")]
        if len(levels) < n:
            raise ValueError(f"{name}: a level after an empty one")
        levels.append(
            DepthLevel(
                _number(price, TICK_COLUMNS[i], None),
                _natural(qty, TICK_COLUMNS[i + 1], None),
                _natural(orders, TICK_COLUMNS[i + 2], None),
            )
        )
    return tuple(levels)


def _parse_tick(fields: list[str], at: list[int]) -> Tick:
    """A tick from one row's fields; ``at`` maps ``TICK_COLUMNS`` to field positions."""
    symbol = fields[at[0]].strip()
    if not symbol:
        raise ValueError("symbol: must not be empty")
    token = _natural(fields[at[1]], "instrument_token", None)
    if token == 0:
        raise ValueError(f"instrument_token: expected a positive integer, got {fields[at[1]]!r}")
    ltt = fields[at[15]]
    buy = _levels(fields, at, len(_SCALAR_COLUMNS))
    sell = _levels(fields, at, len(_SCALAR_COLUMNS) + 3 * DEPTH_LEVELS)
    return Tick(
        symbol=symbol,
        instrument_token=token,
        timestamp=_time(fields[at[2]], "timestamp"),
        price=_number(fields[at[3]], "price", None),
        volume=_natural(fields[at[4]], "volume"),
        last_quantity=_natural(fields[at[5]], "last_quantity"),
        average_price=_number(fields[at[6]], "average_price"),
        buy_quantity=_natural(fields[at[7]], "buy_quantity"),
        sell_quantity=_natural(fields[at[8]], "sell_quantity"),
        open=_number(fields[at[9]], "open"),
        high=_number(fields[at[10]], "high"),
        low=_number(fields[at[11]], "low"),
        prev_close=_number(fields[at[12]], "prev_close"),
        oi=_natural(fields[at[13]], "oi"),
        tradable=_bool(fields[at[14]], "tradable"),
        last_trade_time=_time(ltt, "last_trade_time") if ltt.strip() else None,
        depth=Depth(buy, sell) if buy or sell else None,
    )


def tick_columns_index(header: list[str], source: str) -> list[int]:
    """Positions of ``TICK_COLUMNS`` in a (lowercased) header; raises ``ReplayError``."""
    missing = [column for column in TICK_COLUMNS if column not in header]
    if missing:
        shown = ", ".join(missing[:6]) + (", ..." if len(missing) > 6 else "")
        raise ReplayError(source, 1, f"not a tick file: header lacks columns {shown}")
    return [header.index(column) for column in TICK_COLUMNS]


def parse_tick_rows(
    rows: CsvRows, source: str, header: list[str]
) -> Iterator[tuple[int, Tick | ReplayError]]:
    """The ticks (or errors) of the rows after ``header`` (see ``read_ticks``)."""
    at = tick_columns_index(header, source)
    width = len(header)
    for number, fields in rows:
        if isinstance(fields, ReplayError):
            yield number, fields
        elif len(fields) != width:
            yield (
                number,
                ReplayError(source, number, f"expected {width} columns, got {len(fields)}"),
            )
        else:
            try:
                yield number, _parse_tick(fields, at)
            except ValueError as exc:
                yield number, ReplayError(source, number, str(exc))


def read_ticks(path: str | os.PathLike[str]) -> Iterator[tuple[int, Tick | ReplayError]]:
    """Every row of a tick file as ``(line, Tick)``, or ``(line, ReplayError)`` for a bad one.

    Raises ``ReplayError`` (``line`` 1 or ``None``) for a file it cannot use at all. Lazy: the
    file is read as the iterator is consumed and closed when it is exhausted or closed.
    """
    file, source = open_text(path)
    with file:
        rows = csv_rows(file, source)
        header = read_header(rows, source)
        yield from parse_tick_rows(rows, source, header)


# -- writing ------------------------------------------------------------------------------------


class TickWriter:
    """Writes ticks to a tick file; a context manager (closing flushes).

    ``append=True`` adds rows to an existing file whose header is ``TICK_COLUMNS`` (a missing or
    empty file is started with a header); a last line left without its line end by a crash is
    ended first, so it stays one bad line instead of spoiling the first new row.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        append: bool = False,
        flush_every: int = DEFAULT_FLUSH_EVERY,
    ) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be positive: {flush_every}")
        self.path = os.fspath(path)
        self.flush_every = flush_every
        self.rows = 0
        """Rows written by this writer (not counting rows already in an appended file)."""
        self._pending = 0
        torn = False
        has_header = False
        if append and os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            file, source = open_text(self.path)
            with file:
                header = read_header(csv_rows(file, source), source)
            if tuple(header) != TICK_COLUMNS:
                raise ReplayError(self.path, 1, "cannot append: the header is not a tick header")
            with open(self.path, "rb") as raw:
                raw.seek(-1, os.SEEK_END)
                torn = raw.read(1) != b"\n"
            has_header = True
        try:
            self._file: TextIO = open(  # noqa: SIM115
                self.path, "a" if append else "w", encoding="utf-8", newline=""
            )
        except OSError as exc:
            raise ReplayError(self.path, None, f"cannot write ({exc.strerror})") from None
        self._csv = csv.writer(self._file, lineterminator="\n")
        if torn:
            self._file.write("\n")
        if not has_header:
            self._csv.writerow(TICK_COLUMNS)

    @property
    def closed(self) -> bool:
        return self._file.closed

    def write(self, tick: Tick) -> None:
        """Add one row; hands buffered rows to the OS every ``flush_every`` rows."""
        if self._file.closed:
            raise ValueError(f"tick writer is closed: {self.path}")
        self._csv.writerow(tick_row(tick))
        self.rows += 1
        self._pending += 1
        if self._pending >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        self._file.flush()
        self._pending = 0

    def close(self) -> None:
        """Flush and close; closing twice is harmless."""
        if not self._file.closed:
            self._file.flush()
            self._file.close()

    def __enter__(self) -> TickWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<TickWriter {self.path!r}: {self.rows} rows>"
