"""The ``/ws/portfolio`` requests: ``set_position``, ``remove_position``, ``list_positions``.

A position's fields are checked the same way in a request and in a row of a positions file
(:func:`parse_position_fields`); whether a position is held is state, the portfolio's to check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from tickhub.core import protocol
from tickhub.core.commands.fields import Context, instrument_symbol, missing
from tickhub.core.commands.model import ListPositions, Product, RemovePosition, SetPosition
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import Instrument
from tickhub.core.protocol import ErrorCode, ProtocolError, clip, shown

MIN_POSITION_PRICE: Final = Decimal("0.01")
"""Smallest average price: an average of trade prices, each at least one paisa."""

MAX_POSITION_PRICE: Final = Decimal(10) ** 9
"""Largest average price accepted (far above any NSE quote; keeps every amount exact)."""

POSITION_PRICE_DECIMALS: Final = 20
"""Most decimals an average price may have: an average of fills is not on the exchange's tick
grid, and every JSON number from the smallest to the largest price has at most 18 in its
shortest form; the bound only stops a numeric string from carrying thousands of digits."""

MAX_QUANTITY: Final = 10**12
"""Largest absolute quantity accepted (above the share count of any listed company)."""

DECIMAL_TEXT: Final = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
"""Plain decimal notation, the only text taken for a price: no exponent, no ``_``, no NaN."""

_INTEGER = re.compile(r"[+-]?[0-9]+")


def parse_set_position(msg: Mapping[str, Any], ctx: Context) -> SetPosition | ProtocolError:
    """The position the message asks for (:func:`parse_position_fields`)."""
    return parse_position_fields(msg, ctx.registry)


def parse_remove_position(msg: Mapping[str, Any], ctx: Context) -> RemovePosition | ProtocolError:
    """``symbol`` must name an instrument; whether it is held is the portfolio's to say."""
    symbol = instrument_symbol(msg, ctx)
    return symbol if isinstance(symbol, ProtocolError) else RemovePosition(symbol)


def parse_list_positions(msg: Mapping[str, Any], ctx: Context) -> ListPositions:
    """No fields."""
    return ListPositions()


def parse_position_fields(
    fields: Mapping[str, object], registry: InstrumentRegistry, *, text: bool = False
) -> SetPosition | ProtocolError:
    """One position from a ``set_position`` message, or (``text``: every value is a string)
    from a row of a positions file.

    ``symbol`` may be ``EXCHANGE:SYMBOL`` (or take its exchange from ``exchange``, which must
    be the instrument's); indices are not positions. ``quantity`` is a JSON integer within
    :data:`MAX_QUANTITY` (in a text row: an integer literal); ``average_price`` a number or a
    plain decimal string from :data:`MIN_POSITION_PRICE` to :data:`MAX_POSITION_PRICE`;
    ``product`` one of :class:`Product`, any case. Errors: ``missing_field`` (absent, null or
    blank), ``unknown_symbol``, and ``invalid_field`` naming the field and the value, both in
    ``details`` (the value only when it is a short scalar).
    """
    instrument = tradable_instrument(fields, registry)
    if isinstance(instrument, ProtocolError):
        return instrument
    raw_quantity = _required(fields, "quantity")
    if isinstance(raw_quantity, ProtocolError):
        return raw_quantity
    quantity = _quantity(raw_quantity, text=text)
    if isinstance(quantity, ProtocolError):
        return quantity
    raw_price = _required(fields, "average_price")
    if isinstance(raw_price, ProtocolError):
        return raw_price
    average_price = price_field(raw_price)
    if isinstance(average_price, ProtocolError):
        return average_price
    product = product_field(fields)
    if isinstance(product, ProtocolError):
        return product
    return SetPosition(instrument.symbol, quantity, average_price, instrument.exchange, product)


def tradable_instrument(
    fields: Mapping[str, object], registry: InstrumentRegistry
) -> Instrument | ProtocolError:
    """The instrument of ``symbol`` (``EXCHANGE:SYMBOL``, or its exchange from ``exchange``,
    which must be the instrument's); an index is refused. Shared with ``add_trade``."""
    symbol = _required(fields, "symbol")
    if isinstance(symbol, ProtocolError):
        return symbol
    if not isinstance(symbol, str):
        return _wrong("symbol", symbol, "a string")
    symbol = symbol.strip()
    exchange = _optional_text(fields, "exchange")
    if isinstance(exchange, ProtocolError):
        return exchange
    name = symbol if exchange is None or ":" in symbol else f"{exchange}:{symbol}"
    instrument = registry.get(name)
    if instrument is None:
        return ProtocolError(
            ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol: {shown(name)}", {"symbol": clip(name)}
        )
    if exchange is not None and exchange.upper() != instrument.exchange.upper():
        return _wrong("exchange", exchange, f"{instrument.exchange!r} for {instrument.symbol!r}")
    if not instrument.tradable:
        return _wrong("symbol", symbol, "a tradable instrument, not an index")
    return instrument


def product_field(fields: Mapping[str, object]) -> Product | ProtocolError | None:
    """The optional ``product``, any case."""
    raw_product = _optional_text(fields, "product")
    if isinstance(raw_product, ProtocolError):
        return raw_product
    if raw_product is None:
        return None
    try:
        return Product(raw_product.upper())
    except ValueError:
        return _wrong("product", raw_product, f"one of {', '.join(p.value for p in Product)}")


def _wrong(name: str, value: object, requirement: str) -> ProtocolError:
    """The value is quoted only when it is a short scalar: a structure (which may be nested too
    deep to encode) or a long string is named by its JSON type or cut."""
    details: dict[str, object] = {"field": name}
    if _echoable(value):
        details["value"] = value
    message = f"field {name!r} must be {requirement}, got {shown(value)}"
    return ProtocolError(ErrorCode.INVALID_FIELD, message, details)


def _echoable(value: object) -> bool:
    if value is None or isinstance(value, bool | float):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**64  # what JSON encoding takes
    return isinstance(value, str) and len(value) <= protocol.ECHO_LENGTH


def _required(fields: Mapping[str, object], name: str) -> object:
    """The field's value, or ``missing_field`` when it is absent, null or blank."""
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return missing(name)
    return value


def _optional_text(fields: Mapping[str, object], name: str) -> str | ProtocolError | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        return _wrong(name, value, "a string")
    return value.strip() or None


def _quantity(value: object, *, text: bool) -> int | ProtocolError:
    quantity: int | None = None
    if text and isinstance(value, str):
        raw = value.strip()
        if raw.isascii() and _INTEGER.fullmatch(raw):
            quantity = int(raw)
    elif isinstance(value, int) and not isinstance(value, bool):
        # JSON: only an integer literal; 10.0, "10" and true are not quantities.
        quantity = value
    if quantity is None or abs(quantity) > MAX_QUANTITY:
        return _wrong("quantity", value, f"an integer within ±{MAX_QUANTITY}")
    return quantity


def price_field(value: object, name: str = "average_price") -> Decimal | ProtocolError:
    """A price checked as an average price is (range, decimals), exact; errors name ``name``."""
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
        return _wrong(name, value, "a number greater than 0")
    if not MIN_POSITION_PRICE <= price <= MAX_POSITION_PRICE:
        return _wrong(name, value, f"from {MIN_POSITION_PRICE} to {MAX_POSITION_PRICE:f}")
    exponent = price.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > POSITION_PRICE_DECIMALS:
        return _wrong(name, value, f"a number with at most {POSITION_PRICE_DECIMALS} decimals")
    return price
