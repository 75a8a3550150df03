"""Symbol <-> token registry built from a Kite-format instruments dump.

The dump is the CSV Kite Connect serves at ``GET /instruments`` (gzipped on the wire), one row per
instrument with the columns of ``KITE_COLUMNS``. ``parse_instruments_csv`` is the pure step from
bytes to ``Instrument`` objects; it rejects the whole file on the first broken row, naming the
line. ``InstrumentRegistry`` answers lookups: names are resolved case-insensitively, either as
``EXCHANGE:TRADINGSYMBOL`` or as a bare symbol tried on the default exchanges in order.

Instruments are keyed on ``exchange:tradingsymbol``, never on the token alone: exchanges reuse
tokens of expired derivatives (Kite documents this), so ``by_token`` is a convenience for the feed,
not an identity.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from importlib import resources
from typing import IO, Final

from tickhub.core.errors import InstrumentsFileError, UnknownSymbolError
from tickhub.core.model import Instrument

__all__ = [
    "DEFAULT_EXCHANGES",
    "KITE_COLUMNS",
    "InstrumentRegistry",
    "InstrumentsFileError",
    "UnknownSymbolError",
    "parse_instruments_csv",
    "search_instruments",
]

KITE_COLUMNS: Final = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)
"""Columns of the Kite instruments dump, in the order Kite writes them."""

DEFAULT_EXCHANGES: Final = ("NSE", "BSE")
"""Where a bare symbol is looked up first; any other exchange comes after, alphabetically."""

BUNDLED_CSV: Final = "data/instruments.csv"
"""The packaged dump (NIFTY 50 constituents and the NIFTY 50 / NIFTY BANK indices)."""

_GZIP_MAGIC: Final = b"\x1f\x8b"
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_instruments_csv(data: bytes, source: str = "<instruments>") -> list[Instrument]:
    """Parse a Kite instruments dump, plain or gzipped (told apart by the gzip magic bytes).

    The header must name every column of ``KITE_COLUMNS`` (in any order; extra columns are
    ignored) and every row must have as many fields as the header. Blank lines are skipped. Any
    broken row rejects the whole file with an ``InstrumentsFileError`` naming ``source``, the line
    and the bad value, so a caller never ends up with a partial registry. Two rows with the same
    ``exchange:tradingsymbol`` (case-insensitively) are an error too.
    """
    if data.startswith(_GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise InstrumentsFileError(source, None, f"corrupt gzip data ({exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InstrumentsFileError(source, None, f"not UTF-8 text ({exc.reason})") from None

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise InstrumentsFileError(source, None, "empty file, expected a header line")
        header = [column.strip() for column in header]
        missing = [column for column in KITE_COLUMNS if column not in header]
        if missing:
            raise InstrumentsFileError(source, 1, f"header lacks columns: {', '.join(missing)}")
        index = {column: header.index(column) for column in KITE_COLUMNS}

        instruments: list[Instrument] = []
        seen: dict[str, int] = {}
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise InstrumentsFileError(
                    source, line, f"expected {len(header)} columns, got {len(row)}"
                )
            try:
                instrument = _parse_row({column: row[i] for column, i in index.items()})
            except ValueError as exc:
                raise InstrumentsFileError(source, line, str(exc)) from None
            key = instrument.key.upper()
            if key in seen:
                reason = f"duplicate instrument {instrument.key!r} (first on line {seen[key]})"
                raise InstrumentsFileError(source, line, reason)
            seen[key] = line
            instruments.append(instrument)
    except csv.Error as exc:
        raise InstrumentsFileError(source, reader.line_num, f"malformed CSV ({exc})") from None
    return instruments


def _parse_row(fields: dict[str, str]) -> Instrument:
    return Instrument(
        instrument_token=_positive_int(fields, "instrument_token"),
        exchange_token=_natural_int(fields, "exchange_token"),
        tradingsymbol=_text(fields, "tradingsymbol"),
        name=fields["name"].strip(),
        exchange=_text(fields, "exchange"),
        segment=_text(fields, "segment"),
        instrument_type=_text(fields, "instrument_type"),
        tick_size=_price(fields, "tick_size"),
        lot_size=_natural_int(fields, "lot_size"),
        last_price=_price(fields, "last_price"),
        expiry=_expiry(fields),
        # Kite writes 0 for the strike of a non-option; hand-made dumps often leave it empty.
        strike=_price(fields, "strike", empty=0.0),
    )


def _natural_int(fields: dict[str, str], column: str) -> int:
    value = fields[column].strip()
    # str.isdigit alone accepts non-ASCII digits; int() alone accepts '+1', '1_000', '-1'.
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"{column}: expected a non-negative integer, got {fields[column]!r}")
    return int(value)


def _positive_int(fields: dict[str, str], column: str) -> int:
    value = _natural_int(fields, column)
    if value == 0:
        raise ValueError(f"{column}: expected a positive integer, got {fields[column]!r}")
    return value


def _price(fields: dict[str, str], column: str, empty: float | None = None) -> float:
    raw = fields[column].strip()
    if not raw and empty is not None:
        return empty
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{column}: expected a non-negative number, got {fields[column]!r}")
    return value


def _text(fields: dict[str, str], column: str) -> str:
    value = fields[column].strip()
    if not value:
        raise ValueError(f"{column}: must not be empty")
    return value


def _expiry(fields: dict[str, str]) -> date | None:
    raw = fields["expiry"].strip()
    if not raw:
        return None
    if _ISO_DATE.fullmatch(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    raise ValueError(f"expiry: expected YYYY-MM-DD or empty, got {fields['expiry']!r}")


class InstrumentRegistry:
    """The instruments a hub knows, looked up by name or by token.

    Names are case-insensitive and surrounding whitespace is ignored: ``RELIANCE``,
    ``nse:Reliance`` and `` RELIANCE `` all name ``NSE:RELIANCE``. A bare symbol resolves on the
    first exchange of ``default_exchanges`` that lists it, then on any other exchange in
    alphabetical order. Iteration yields instruments in the order given.
    """

    __slots__ = ("_bare", "_by_key", "_by_token", "_default_exchanges", "_instruments")

    def __init__(
        self,
        instruments: Iterable[Instrument],
        *,
        default_exchanges: Sequence[str] = DEFAULT_EXCHANGES,
    ) -> None:
        self._instruments = tuple(instruments)
        self._default_exchanges = tuple(e.strip().upper() for e in default_exchanges)
        self._by_key: dict[str, Instrument] = {}
        self._by_token: dict[int, Instrument] = {}
        candidates: dict[str, list[Instrument]] = {}
        for instrument in self._instruments:
            key = instrument.key.upper()
            if key in self._by_key:
                raise ValueError(f"duplicate instrument: {instrument.key!r}")
            self._by_key[key] = instrument
            # Last one wins: a token freed by an expired contract is reissued to a new one, and a
            # dump lists the current holder after any stale row, so the later row is the live one.
            self._by_token[instrument.instrument_token] = instrument
            candidates.setdefault(instrument.tradingsymbol.upper(), []).append(instrument)
        self._bare = {
            symbol: min(found, key=self._exchange_rank) for symbol, found in candidates.items()
        }

    @classmethod
    def load_csv(
        cls,
        path_or_file: str | os.PathLike[str] | IO[bytes],
        *,
        default_exchanges: Sequence[str] = DEFAULT_EXCHANGES,
    ) -> InstrumentRegistry:
        """Build a registry from a Kite instruments dump (plain or gzipped) at a path or in a
        binary file object; raises ``InstrumentsFileError`` if any row is broken."""
        if isinstance(path_or_file, (str, os.PathLike)):
            source = os.fspath(path_or_file)
            try:
                with open(source, "rb") as file:
                    data = file.read()
            except OSError as exc:
                raise InstrumentsFileError(source, None, f"cannot read ({exc.strerror})") from None
        else:
            source = str(getattr(path_or_file, "name", "<stream>"))
            data = path_or_file.read()
            if not isinstance(data, bytes):
                raise TypeError(f"{source}: open the instruments file in binary mode ('rb')")
        return cls(parse_instruments_csv(data, source), default_exchanges=default_exchanges)

    @classmethod
    def bundled(cls, *, default_exchanges: Sequence[str] = DEFAULT_EXCHANGES) -> InstrumentRegistry:
        """The packaged NIFTY 50 universe (constituents plus NIFTY 50 and NIFTY BANK)."""
        data = resources.files("tickhub").joinpath(BUNDLED_CSV).read_bytes()
        instruments = parse_instruments_csv(data, f"tickhub/{BUNDLED_CSV}")
        return cls(instruments, default_exchanges=default_exchanges)

    @property
    def default_exchanges(self) -> tuple[str, ...]:
        return self._default_exchanges

    def resolve(self, name: str) -> Instrument:
        """The instrument a client means by ``name``; raises ``UnknownSymbolError``."""
        found = self.get(name)
        if found is None:
            raise UnknownSymbolError(name)
        return found

    def get(self, name: str) -> Instrument | None:
        """Like ``resolve``, but ``None`` for an unknown name."""
        wanted = name.strip().upper()
        exchange, colon, symbol = wanted.partition(":")
        if colon:
            return self._by_key.get(f"{exchange.strip()}:{symbol.strip()}")
        return self._bare.get(wanted)

    def by_token(self, token: int) -> Instrument | None:
        """The instrument currently holding ``token`` (the last one listed with it)."""
        return self._by_token.get(token)

    def subset(self, names: Iterable[str]) -> InstrumentRegistry:
        """A registry of just these instruments (in the order named, each once), e.g. to restrict
        a feed to a universe; raises ``UnknownSymbolError`` for the first unknown name."""
        chosen: dict[str, Instrument] = {}
        for name in names:
            instrument = self.resolve(name)
            chosen.setdefault(instrument.key.upper(), instrument)
        return InstrumentRegistry(chosen.values(), default_exchanges=self._default_exchanges)

    def symbols(self) -> tuple[str, ...]:
        """Distinct trading symbols, in registry order (a bare symbol resolves per
        ``default_exchanges``; use ``keys()`` to tell exchanges apart)."""
        return tuple(dict.fromkeys(i.tradingsymbol for i in self._instruments))

    def keys(self) -> tuple[str, ...]:
        """``EXCHANGE:TRADINGSYMBOL`` of every instrument, in registry order."""
        return tuple(i.key for i in self._instruments)

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._instruments)

    def __len__(self) -> int:
        return len(self._instruments)

    def __contains__(self, item: object) -> bool:
        """True for a name that resolves, or for an instrument listed here."""
        if isinstance(item, str):
            return self.get(item) is not None
        if isinstance(item, Instrument):
            return self._by_key.get(item.key.upper()) == item
        return False

    def __repr__(self) -> str:
        return f"<InstrumentRegistry: {len(self)} instruments>"

    def _exchange_rank(self, instrument: Instrument) -> tuple[int, str]:
        exchange = instrument.exchange.upper()
        try:
            return (self._default_exchanges.index(exchange), exchange)
        except ValueError:
            return (len(self._default_exchanges), exchange)


def search_instruments(
    instruments: Iterable[Instrument], query: str, limit: int | None = None
) -> list[Instrument]:
    """The instruments whose trading symbol or name contains ``query`` (case-insensitive), best
    first: the exact symbol, then symbols that start with it, then names that start with it,
    then the other symbol and name matches; within each rank, in the order given. A blank query
    matches everything. At most ``limit`` of them (``None``: all).

    Prefix matches come first because a user typing ``REL`` means ``RELIANCE`` more often than
    ``...REL...`` in the middle of a name; an exact symbol comes before its longer relatives
    (``SBIN`` before ``SBINEQ``).
    """
    wanted = query.strip().upper()
    if limit is not None and limit <= 0:
        return []
    ranked: list[tuple[int, int, Instrument]] = []
    for order, instrument in enumerate(instruments):
        rank = _search_rank(instrument, wanted)
        if rank is not None:
            ranked.append((rank, order, instrument))
    ranked.sort(key=lambda found: (found[0], found[1]))
    hits = [instrument for _, _, instrument in ranked]
    return hits if limit is None else hits[:limit]


def _search_rank(instrument: Instrument, wanted: str) -> int | None:
    symbol, name = instrument.tradingsymbol.upper(), instrument.name.upper()
    if not wanted or symbol == wanted:
        return 0
    if symbol.startswith(wanted):
        return 1
    if name.startswith(wanted):
        return 2
    if wanted in symbol:
        return 3
    if wanted in name:
        return 4
    return None
