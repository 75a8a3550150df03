"""Positions and their P&L: the engine behind ``/ws/portfolio`` (pure: no I/O but file loading).

A position is ``symbol``, ``quantity`` (an int, negative for a short), ``average_price`` (a
``Decimal`` of at least one paisa) and optionally ``product`` (``CNC``/``MIS``/``NRML``) and
``exchange``. Positions belong to an owner; ``""`` is the default (anonymous) owner.

Money
    Every amount is computed in ``Decimal`` from exact inputs: average prices keep the digits they
    were given, tick prices (floats) are read through their shortest ``repr`` so ``0.1`` is
    ``Decimal("0.1")``, not ``0.1000000000000000055...``. Amounts and percentages are rounded only
    on output, to 2 decimals with ``ROUND_HALF_UP`` (half away from zero: ``1234.565 -> 1234.57``,
    ``-1234.565 -> -1234.57``), and sent as floats. Totals are summed before rounding, so a total
    can differ by a paisa from the sum of the rounded per-position figures.

Valuation of one position (``q`` quantity, ``avg`` average price, ``last`` last traded price,
``prev`` previous close)::

    current_value      = q * last                       (negative for a short)
    invested_value     = q * avg                        (negative for a short)
    unrealized         = (last - avg) * q               (a short gains when the price falls)
    unrealized_percent = unrealized / |invested_value| * 100
    day                = (last - prev) * q
    day_percent        = (last - prev) / prev * 100 * sign(q)

``day`` measures the move since the previous close, as if the position had been held overnight
(a holdings view): an intraday (``MIS``) position opened today is not special-cased. A position
whose symbol has no price yet is valued at its average price (``current_value ==
invested_value``, zero P&L); without a previous close its day P&L is zero. ``last_price`` is then
``null`` on the wire.

Portfolio totals cover all of an owner's positions (unpriced ones at average price, as above)::

    total_value       = sum(current_value)     total_invested = sum(invested_value)
    total_pnl         = sum(unrealized)        day_pnl        = sum(day)
    total_pnl_percent = total_pnl / sum(|invested_value|) * 100     (gross exposure)
    positions         = number of positions    priced         = how many have a last price

Sources and their precedence
    A positions file (``load_positions_file``: CSV or JSON) is parsed completely before anything
    is applied; any broken row raises ``PortfolioFileError`` naming the file and the line (CSV) or
    the item (JSON). The file *seeds* an owner: ``Portfolio.seed`` applies it only when the owner
    holds no positions yet (after ``load()`` from the store), so it fills the store on first run
    and later changes made over the protocol, which are saved to the store, win across restarts.
    Editing the file later does not re-seed; to start over from the file, clear that owner's
    stored positions (an owner whose last position was removed is seeded again on the next start)
    or call ``Portfolio.replace``, which always replaces.

A zero quantity means flat: ``set_position`` with quantity 0 removes the position, and
``replace``/``seed`` skip such rows.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import (
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from enum import Enum
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final, Protocol, TypedDict

from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import Tick
from tickhub.core.protocol import ECHO_LENGTH, ErrorCode, ProtocolError, clip, iso, shown

__all__ = [
    "DEMO_PORTFOLIO",
    "MAX_PRICE",
    "MAX_QUANTITY",
    "MIN_PRICE",
    "PRICE_DECIMALS",
    "PnlFields",
    "Portfolio",
    "PortfolioFileError",
    "PortfolioTotals",
    "Position",
    "PositionFields",
    "PositionStore",
    "PositionValue",
    "Product",
    "demo_portfolio_file",
    "load_positions_file",
    "parse_position",
    "parse_positions",
    "position_from_row",
    "position_to_row",
]

MIN_PRICE: Final = Decimal("0.01")
"""Smallest average price: an average of trade prices, each at least one paisa."""

MAX_PRICE: Final = Decimal(10) ** 9
"""Largest average price accepted (far above any NSE quote; keeps every amount exact)."""

PRICE_DECIMALS: Final = 20
"""Most decimals an average price may have: an average of fills is not on the exchange's tick
grid, and every JSON number from MIN_PRICE to MAX_PRICE has at most 18 in its shortest form;
the bound only stops a numeric string from carrying thousands of digits."""

MAX_QUANTITY: Final = 10**12
"""Largest absolute quantity accepted (above the share count of any listed company)."""

DEMO_PORTFOLIO: Final = "data/demo_portfolio.csv"
"""The packaged demo portfolio (NIFTY 50 names, one short), so the stream is alive on first run."""

CSV_REQUIRED: Final = ("symbol", "quantity", "average_price")
CSV_OPTIONAL: Final = ("product", "exchange")

_PAISE = Decimal("0.01")
_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
# Independent of whatever the process-wide decimal context is; 50 digits hold any product of a
# bounded quantity and a price given with many decimals without rounding anything near a paisa.
_CONTEXT = Context(
    prec=50, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


class Product(str, Enum):
    """Zerodha product types: delivery, intraday, and F&O carry-forward."""

    CNC = "CNC"
    MIS = "MIS"
    NRML = "NRML"


@dataclass(frozen=True, slots=True)
class Position:
    """One holding of one owner. ``symbol`` is the registry's trading symbol (``RELIANCE``).

    Construction checks the invariants (``ValueError``): a non-empty symbol, an int quantity
    within ``MAX_QUANTITY``, and a finite average price between ``MIN_PRICE`` and ``MAX_PRICE``.
    """

    symbol: str
    quantity: int
    average_price: Decimal
    product: str | None = None
    exchange: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol:
            raise ValueError(f"symbol must be a non-empty string: {self.symbol!r}")
        if not _is_int(self.quantity) or abs(self.quantity) > MAX_QUANTITY:
            raise ValueError(
                f"quantity must be an integer within ±{MAX_QUANTITY}: {self.quantity!r}"
            )
        price = self.average_price
        if not isinstance(price, Decimal) or not _price_in_range(price):
            raise ValueError(
                f"average price must be a Decimal from {MIN_PRICE} to {MAX_PRICE}: {price!r}"
            )


class PositionStore(Protocol):
    """Persistence of positions (``tickhub.store``). Rows are plain dicts::

    {"owner": str, "symbol": str, "quantity": int, "average_price": str (Decimal as text),
     "product": str | None, "exchange": str | None, "updated_at": str (ISO 8601)}
    """

    def load_positions(self, owner: str | None = None) -> list[dict[str, object]]:
        """Every stored row, or only ``owner``'s."""
        ...

    def save_position(self, row: dict[str, object]) -> None:
        """Insert or update the row keyed by ``(owner, symbol)``."""
        ...

    def delete_position(self, owner: str, symbol: str) -> bool:
        """Delete one row; false if there was none."""
        ...

    def replace_positions(self, owner: str, rows: list[dict[str, object]]) -> None:
        """Atomically make ``rows`` the owner's only rows."""
        ...


class PortfolioFileError(ValueError):
    """A positions file that cannot be used, and where: ``line`` (1-based; CSV rows, JSON syntax
    errors) or ``item`` (JSON: ``[2]`` or ``positions[2]``, the 0-based list index); both
    ``None`` when the whole file is at fault."""

    def __init__(
        self, source: str, line: int | None, reason: str, *, item: str | None = None
    ) -> None:
        self.source = source
        self.line = line
        self.item = item
        self.reason = reason
        if line is not None:
            where = f"{source}:{line}"
        elif item is not None:
            where = f"{source}: {item}"
        else:
            where = source
        super().__init__(f"{where}: {reason}")


# --- wire payload -------------------------------------------------------------------------------


class PositionFields(TypedDict):
    symbol: str
    quantity: int
    average_price: float
    last_price: float | None
    current_value: float
    invested_value: float
    product: str | None
    exchange: str | None


class PnlFields(TypedDict):
    unrealized: float
    unrealized_percent: float
    day: float
    day_percent: float


class PortfolioTotals(TypedDict):
    total_value: float
    total_invested: float
    total_pnl: float
    total_pnl_percent: float
    day_pnl: float
    positions: int
    priced: int


class PositionValue(TypedDict):
    """The ``data`` of one ``position_data`` message on ``/ws/portfolio``."""

    position: PositionFields
    pnl: PnlFields
    portfolio: PortfolioTotals


# --- parsing: one field at a time, shared by the protocol and the files -------------------------


class _FieldError(Exception):
    def __init__(self, code: ErrorCode, message: str, details: Mapping[str, object]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def _missing(name: str) -> _FieldError:
    return _FieldError(ErrorCode.MISSING_FIELD, f"missing field: {name!r}", {"field": name})


def _invalid(name: str, value: object, requirement: str) -> _FieldError:
    """The value is quoted only when it is a short scalar: a structure (which may be nested too
    deep to encode) or a long string is named by its JSON type or cut."""
    details: dict[str, object] = {"field": name}
    if _echoable(value):
        details["value"] = value
    return _FieldError(
        ErrorCode.INVALID_FIELD,
        f"field {name!r} must be {requirement}, got {shown(value)}",
        details,
    )


def _echoable(value: object) -> bool:
    if value is None or isinstance(value, bool | float):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**64  # what JSON encoding takes
    return isinstance(value, str) and len(value) <= ECHO_LENGTH


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _price_in_range(price: Decimal) -> bool:
    return price.is_finite() and MIN_PRICE <= price <= MAX_PRICE


def _build(fields: Mapping[str, object], registry: InstrumentRegistry, *, text: bool) -> Position:
    """A position from message/file fields; ``text``: every value is a string (CSV)."""
    symbol = _required(fields, "symbol")
    if not isinstance(symbol, str):
        raise _invalid("symbol", symbol, "a string")
    symbol = symbol.strip()
    exchange = _optional_text(fields, "exchange")
    name = symbol if exchange is None or ":" in symbol else f"{exchange}:{symbol}"
    instrument = registry.get(name)
    if instrument is None:
        raise _FieldError(
            ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol: {shown(name)}", {"symbol": clip(name)}
        )
    if exchange is not None and exchange.upper() != instrument.exchange.upper():
        raise _invalid("exchange", exchange, f"{instrument.exchange!r} for {instrument.symbol!r}")
    if not instrument.tradable:
        raise _invalid("symbol", symbol, "a tradable instrument, not an index")
    quantity = _quantity(_required(fields, "quantity"), text=text)
    average_price = _average_price(_required(fields, "average_price"))
    product = _optional_text(fields, "product")
    if product is not None:
        try:
            product = Product(product.upper()).value
        except ValueError:
            allowed = ", ".join(p.value for p in Product)
            raise _invalid("product", product, f"one of {allowed}") from None
    return Position(instrument.symbol, quantity, average_price, product, instrument.exchange)


def _required(fields: Mapping[str, object], name: str) -> object:
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _missing(name)
    return value


def _optional_text(fields: Mapping[str, object], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(name, value, "a string")
    return value.strip() or None


def _quantity(value: object, *, text: bool) -> int:
    quantity: int | None = None
    if text and isinstance(value, str):
        raw = value.strip()
        if raw.isascii() and _INTEGER.fullmatch(raw):
            quantity = int(raw)
    elif isinstance(value, int) and not isinstance(value, bool):
        # JSON: only an integer literal; 10.0, "10" and true are not quantities.
        quantity = value
    if quantity is None or abs(quantity) > MAX_QUANTITY:
        raise _invalid("quantity", value, f"an integer within ±{MAX_QUANTITY}")
    return quantity


def _average_price(value: object) -> Decimal:
    price: Decimal | None = None
    if isinstance(value, str):
        raw = value.strip()
        if raw.isascii() and _DECIMAL.fullmatch(raw):
            price = Decimal(raw)
    elif isinstance(value, float):
        # The shortest repr is the number the sender wrote: 0.1 -> Decimal("0.1").
        price = Decimal(repr(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        price = Decimal(value)
    if price is None or not price.is_finite() or price <= 0:
        raise _invalid("average_price", value, "a number greater than 0")
    if not _price_in_range(price):
        raise _invalid("average_price", value, f"from {MIN_PRICE} to {MAX_PRICE:f}")
    exponent = price.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > PRICE_DECIMALS:
        raise _invalid("average_price", value, f"a number with at most {PRICE_DECIMALS} decimals")
    return price


def parse_position(
    msg: Mapping[str, object], registry: InstrumentRegistry
) -> Position | ProtocolError:
    """The position a ``set_position`` request asks for::

        {"type": "set_position", "symbol": "RELIANCE", "quantity": 10, "average_price": 1500.5,
         "product": "CNC", "exchange": "NSE"}

    ``symbol`` may also be ``EXCHANGE:SYMBOL``. ``quantity`` must be a JSON integer within
    ``MAX_QUANTITY`` (negative: short; 0: flat); ``1.5``, ``10.0``, ``"10"`` and booleans are
    rejected. ``average_price`` is a number or a numeric string (plain decimal notation) from
    ``MIN_PRICE`` (one paisa) to ``MAX_PRICE``. ``product`` (optional) is ``CNC``, ``MIS`` or
    ``NRML`` in any case; ``exchange`` (optional) must be the instrument's. Indices are not
    positions. Errors: ``MISSING_FIELD`` (absent, null or empty), ``UNKNOWN_SYMBOL``, and
    ``INVALID_FIELD`` whose message names the field and the value, with both in ``details``.
    """
    try:
        return _build(msg, registry, text=False)
    except _FieldError as exc:
        return ProtocolError(exc.code, exc.message, exc.details)


# --- files --------------------------------------------------------------------------------------


def load_positions_file(
    path: str | os.PathLike[str] | Traversable, registry: InstrumentRegistry
) -> list[Position]:
    """Read and parse a positions file (see ``parse_positions``); raises ``PortfolioFileError``,
    also when the file cannot be read. The only function of this module that does I/O."""
    if isinstance(path, (str, os.PathLike)):
        source = os.fspath(path)
        try:
            with open(source, "rb") as file:
                data = file.read()
        except OSError as exc:
            raise PortfolioFileError(source, None, f"cannot read ({exc.strerror})") from None
    else:
        source = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise PortfolioFileError(source, None, f"cannot read ({exc.strerror})") from None
    return parse_positions(data, registry, source)


def demo_portfolio_file() -> Traversable:
    """The packaged demo portfolio, for ``load_positions_file``."""
    return resources.files("tickhub").joinpath(DEMO_PORTFOLIO)


def parse_positions(
    data: bytes | str, registry: InstrumentRegistry, source: str = "<positions>"
) -> list[Position]:
    """Positions from CSV or JSON text, all or nothing.

    The format follows ``source``'s suffix (``.json``/``.csv``), else the first character (``[`` or
    ``{``: JSON). CSV: a header naming ``symbol,quantity,average_price`` and optionally
    ``product,exchange`` in any order (case-insensitive; other columns are ignored), then one row
    per position with a value for every header column; blank lines are skipped. JSON: a list of
    objects with the same keys, or ``{"positions": [...]}``; quantities must be JSON integers
    there, prices numbers or numeric strings. Values are checked as in ``parse_position``; a
    symbol listed twice is an error. Rows with quantity 0 are returned (a seed skips them).
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise PortfolioFileError(source, None, f"not UTF-8 text ({exc.reason})") from None
    else:
        text = data.removeprefix("\ufeff")
    suffix = os.path.splitext(source)[1].lower()
    if suffix == ".json" or (suffix != ".csv" and text.lstrip()[:1] in ("[", "{")):
        return _parse_json(text, registry, source)
    return _parse_csv(text, registry, source)


def _parse_csv(text: str, registry: InstrumentRegistry, source: str) -> list[Position]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    positions: list[Position] = []
    seen: dict[str, int] = {}
    try:
        header = next(reader, None)
        if header is None:
            raise PortfolioFileError(source, None, "empty file, expected a header line")
        header = [column.strip().lower() for column in header]
        missing = [column for column in CSV_REQUIRED if column not in header]
        if missing:
            raise PortfolioFileError(source, 1, f"header lacks columns: {', '.join(missing)}")
        index = {c: header.index(c) for c in CSV_REQUIRED + CSV_OPTIONAL if c in header}
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise PortfolioFileError(
                    source, line, f"expected {len(header)} columns, got {len(row)}"
                )
            try:
                position = _build({c: row[i] for c, i in index.items()}, registry, text=True)
            except _FieldError as exc:
                raise PortfolioFileError(source, line, exc.message) from None
            if position.symbol in seen:
                reason = (
                    f"duplicate symbol {position.symbol!r} (first on line {seen[position.symbol]})"
                )
                raise PortfolioFileError(source, line, reason)
            seen[position.symbol] = line
            positions.append(position)
    except csv.Error as exc:
        raise PortfolioFileError(source, reader.line_num, f"malformed CSV ({exc})") from None
    return positions


def _parse_json(text: str, registry: InstrumentRegistry, source: str) -> list[Position]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PortfolioFileError(source, exc.lineno, f"invalid JSON ({exc.msg})") from None
    prefix = ""
    if isinstance(doc, dict) and "positions" in doc:
        doc, prefix = doc["positions"], "positions"
    if not isinstance(doc, list):
        raise PortfolioFileError(
            source, None, 'expected a list of positions or {"positions": [...]}'
        )
    positions: list[Position] = []
    seen: dict[str, str] = {}
    for i, entry in enumerate(doc):
        item = f"{prefix}[{i}]"
        if not isinstance(entry, dict):
            raise PortfolioFileError(
                source, None, f"expected an object, got {type(entry).__name__}", item=item
            )
        try:
            position = _build(entry, registry, text=False)
        except _FieldError as exc:
            raise PortfolioFileError(source, None, exc.message, item=item) from None
        if position.symbol in seen:
            reason = f"duplicate symbol {position.symbol!r} (first at {seen[position.symbol]})"
            raise PortfolioFileError(source, None, reason, item=item)
        seen[position.symbol] = item
        positions.append(position)
    return positions


# --- store rows ---------------------------------------------------------------------------------


def position_to_row(owner: str, position: Position, updated_at: datetime) -> dict[str, object]:
    """The store row of ``owner``'s position (average price as plain decimal text)."""
    return {
        "owner": owner,
        "symbol": position.symbol,
        "quantity": position.quantity,
        "average_price": format(position.average_price, "f"),
        "product": position.product,
        "exchange": position.exchange,
        "updated_at": iso(updated_at),
    }


def position_from_row(row: Mapping[str, object]) -> tuple[str, Position]:
    """``(owner, position)`` from a store row; ``ValueError`` naming the row if it is corrupt."""
    owner, symbol = row.get("owner"), row.get("symbol")
    try:
        if not isinstance(owner, str):
            raise ValueError(f"owner must be a string: {owner!r}")
        price = row.get("average_price")
        if not isinstance(price, str) or not _DECIMAL.fullmatch(price.strip()):
            raise ValueError(f"average price must be decimal text: {price!r}")
        product, exchange = row.get("product"), row.get("exchange")
        if product is not None and not isinstance(product, str):
            raise ValueError(f"product must be a string or null: {product!r}")
        if exchange is not None and not isinstance(exchange, str):
            raise ValueError(f"exchange must be a string or null: {exchange!r}")
        quantity = row.get("quantity")
        if not isinstance(symbol, str):
            raise ValueError(f"symbol must be a string: {symbol!r}")
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            raise ValueError(f"quantity must be an integer: {quantity!r}")
        position = Position(symbol, quantity, Decimal(price.strip()), product, exchange)
    except ValueError as exc:
        raise ValueError(f"bad stored position {owner!r}/{symbol!r}: {exc}") from None
    return owner, position


# --- the engine ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Valuation:
    current: Decimal
    invested: Decimal
    unrealized: Decimal
    day: Decimal
    priced: bool


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Portfolio:
    """Positions per owner, the last price and previous close per symbol, and valuations.

    Writes go to the store first (when there is one), then to memory, so a store failure leaves
    both as they were. ``load()`` replaces memory with the store's rows; call it before ``seed``.
    ``now`` stamps ``updated_at`` on stored rows (pass the service clock's ``now``); valuations
    never read it. Symbols are the registry's trading symbols, as ticks carry them.
    """

    def __init__(
        self, store: PositionStore | None = None, *, now: Callable[[], datetime] = _utcnow
    ) -> None:
        self.store = store
        self._now = now
        self._positions: dict[str, dict[str, Position]] = {}
        self._last: dict[str, Decimal] = {}
        self._prev_close: dict[str, Decimal] = {}

    # --- positions -----------------------------------------------------------------------------

    def load(self) -> int:
        """Replace the positions in memory with the store's (no store: keep them); the count.

        Raises ``ValueError`` for a corrupt row, before changing anything."""
        if self.store is None:
            return sum(len(held) for held in self._positions.values())
        loaded: dict[str, dict[str, Position]] = {}
        for row in self.store.load_positions():
            owner, position = position_from_row(row)
            if position.quantity:
                loaded.setdefault(owner, {})[position.symbol] = position
        self._positions = loaded
        return sum(len(held) for held in loaded.values())

    def set_position(self, owner: str, position: Position) -> None:
        """Add or overwrite ``owner``'s position in its symbol; quantity 0 removes it."""
        if position.quantity == 0:
            self.remove_position(owner, position.symbol)
            return
        if self.store is not None:
            self.store.save_position(position_to_row(owner, position, self._now()))
        self._positions.setdefault(owner, {})[position.symbol] = position

    def remove_position(self, owner: str, symbol: str) -> bool:
        """Forget ``owner``'s position in ``symbol``; false if there was none."""
        deleted = self.store.delete_position(owner, symbol) if self.store is not None else False
        held = self._positions.get(owner, {})
        found = held.pop(symbol, None) is not None
        if not held:
            self._positions.pop(owner, None)
        return found or deleted

    def replace(self, owner: str, positions: Iterable[Position]) -> None:
        """Make ``positions`` (zero quantities skipped) all that ``owner`` holds, atomically in
        the store; ``ValueError`` if a symbol appears twice."""
        held: dict[str, Position] = {}
        for position in positions:
            if position.symbol in held:
                raise ValueError(f"duplicate symbol: {position.symbol!r}")
            held[position.symbol] = position
        held = {s: p for s, p in held.items() if p.quantity}
        if self.store is not None:
            now = self._now()
            self.store.replace_positions(
                owner, [position_to_row(owner, p, now) for p in held.values()]
            )
        if held:
            self._positions[owner] = held
        else:
            self._positions.pop(owner, None)

    def seed(self, owner: str, positions: Iterable[Position]) -> bool:
        """``replace`` only if ``owner`` holds nothing yet (the file-seeds-the-store rule)."""
        if self._positions.get(owner):
            return False
        self.replace(owner, positions)
        return True

    def positions(self, owner: str) -> list[Position]:
        """``owner``'s positions, by symbol."""
        held = self._positions.get(owner, {})
        return [held[s] for s in sorted(held)]

    def position(self, owner: str, symbol: str) -> Position | None:
        return self._positions.get(owner, {}).get(symbol)

    def held_symbols(self, owner: str) -> list[str]:
        """The symbols ``owner`` holds, sorted: what a ``*`` subscription means."""
        return sorted(self._positions.get(owner, {}))

    def owners(self) -> list[str]:
        """Owners holding at least one position, sorted."""
        return sorted(self._positions)

    # --- prices --------------------------------------------------------------------------------

    def on_tick(self, tick: Tick) -> None:
        """Remember the tick's price and previous close (a zero means unknown and is ignored)."""
        price = _from_float(tick.price)
        if price is not None:
            self._last[tick.symbol] = price
        prev = _from_float(tick.prev_close)
        if prev is not None:
            self._prev_close[tick.symbol] = prev

    def last_price(self, symbol: str) -> Decimal | None:
        return self._last.get(symbol)

    def prev_close(self, symbol: str) -> Decimal | None:
        return self._prev_close.get(symbol)

    # --- valuation -----------------------------------------------------------------------------

    def value(self, owner: str, symbol: str) -> PositionValue:
        """The ``/ws/portfolio`` payload for ``owner``'s position in ``symbol`` with the owner's
        totals; a symbol not held answers quantity 0 and zero amounts (not an error)."""
        last = self._last.get(symbol)
        prev = self._prev_close.get(symbol)
        position = self.position(owner, symbol)
        with localcontext(_CONTEXT):
            if position is None:
                fields = PositionFields(
                    symbol=symbol,
                    quantity=0,
                    average_price=0.0,
                    last_price=_out(last),
                    current_value=0.0,
                    invested_value=0.0,
                    product=None,
                    exchange=None,
                )
                pnl = PnlFields(unrealized=0.0, unrealized_percent=0.0, day=0.0, day_percent=0.0)
            else:
                v = self._valuate(position)
                fields = PositionFields(
                    symbol=symbol,
                    quantity=position.quantity,
                    average_price=_money(position.average_price),
                    last_price=_out(last),
                    current_value=_money(v.current),
                    invested_value=_money(v.invested),
                    product=position.product,
                    exchange=position.exchange,
                )
                day_percent = _ZERO
                if last is not None and prev is not None:
                    sign = 1 if position.quantity > 0 else -1
                    day_percent = (last - prev) / prev * _HUNDRED * sign
                pnl = PnlFields(
                    unrealized=_money(v.unrealized),
                    unrealized_percent=_money(_percent(v.unrealized, abs(v.invested))),
                    day=_money(v.day),
                    day_percent=_money(day_percent),
                )
            return PositionValue(position=fields, pnl=pnl, portfolio=self._totals(owner))

    def totals(self, owner: str) -> PortfolioTotals:
        """Only the ``portfolio`` part of ``value``."""
        with localcontext(_CONTEXT):
            return self._totals(owner)

    def _totals(self, owner: str) -> PortfolioTotals:
        current = invested = gross = unrealized = day = _ZERO
        priced = 0
        held = self._positions.get(owner, {})
        for position in held.values():
            v = self._valuate(position)
            current += v.current
            invested += v.invested
            gross += abs(v.invested)
            unrealized += v.unrealized
            day += v.day
            priced += v.priced
        return PortfolioTotals(
            total_value=_money(current),
            total_invested=_money(invested),
            total_pnl=_money(unrealized),
            total_pnl_percent=_money(_percent(unrealized, gross)),
            day_pnl=_money(day),
            positions=len(held),
            priced=priced,
        )

    def _valuate(self, position: Position) -> _Valuation:
        q = Decimal(position.quantity)
        invested = q * position.average_price
        last = self._last.get(position.symbol)
        if last is None:
            return _Valuation(invested, invested, _ZERO, _ZERO, priced=False)
        prev = self._prev_close.get(position.symbol)
        day = (last - prev) * q if prev is not None else _ZERO
        return _Valuation(q * last, invested, (last - position.average_price) * q, day, True)


def _from_float(value: float) -> Decimal | None:
    """A positive finite tick price as the Decimal its shortest repr spells, else ``None``."""
    if not isinstance(value, int | float) or not value > 0 or value == float("inf"):
        return None
    return Decimal(repr(float(value)))


def _percent(part: Decimal, whole: Decimal) -> Decimal:
    return part / whole * _HUNDRED if whole else _ZERO


def _money(value: Decimal) -> float:
    """Rounded half up to 2 decimals, as a float (never ``-0.0``)."""
    if value.adjusted() >= 40:
        return float(value)  # far beyond any real amount; a float has no paise there anyway
    rounded = float(value.quantize(_PAISE, rounding=ROUND_HALF_UP))
    return rounded if rounded else 0.0


def _out(value: Decimal | None) -> float | None:
    return None if value is None else _money(value)
