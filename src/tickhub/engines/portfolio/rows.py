"""Positions to and from the store's rows, so every store keeps them in one shape.

A row is a plain dict (the keys are documented in ``tickhub.store``)::

    {"owner": str, "symbol": str, "quantity": int, "average_price": str (Decimal as text),
     "product": str | None, "exchange": str | None, "updated_at": str (ISO 8601)}

The average price is text so that no store rounds it; ``updated_at`` is the caller's time (the
service clock's), the engine never reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from tickhub.core.commands import DECIMAL_TEXT
from tickhub.core.protocol import iso
from tickhub.engines.portfolio.positions import Position

__all__ = ["position_from_row", "position_to_row"]


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
        if not isinstance(price, str) or not DECIMAL_TEXT.fullmatch(price.strip()):
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
