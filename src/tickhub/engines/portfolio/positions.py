"""A position, its limits, and the one validation every source of positions goes through.

The protocol (``set_position``) and the positions files (``files.py``) accept the same fields with
the same checks, so both build positions here; a store row, already checked when it was written,
is read back in ``rows.py`` against the same invariants (``Position.__post_init__``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Final

from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.protocol import ECHO_LENGTH, ErrorCode, ProtocolError, clip, shown

__all__ = [
    "DECIMAL_TEXT",
    "MAX_PRICE",
    "MAX_QUANTITY",
    "MIN_PRICE",
    "PRICE_DECIMALS",
    "Position",
    "Product",
    "parse_position",
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

DECIMAL_TEXT: Final = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
"""Plain decimal notation, the only text taken for a price: no exponent, no ``_``, no NaN."""

_INTEGER = re.compile(r"[+-]?[0-9]+")


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


def parse_position(
    msg: Mapping[str, object], registry: InstrumentRegistry, *, text: bool = False
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

    ``text``: every value is a string, as in a CSV row, so the quantity is read from its digits
    (``"+5"``, ``"-15"``); the other checks are the same.
    """
    try:
        return _build(msg, registry, text=text)
    except _FieldError as exc:
        return ProtocolError(exc.code, exc.message, exc.details)


# --- one field at a time ------------------------------------------------------------------------


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
        if raw.isascii() and DECIMAL_TEXT.fullmatch(raw):
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
