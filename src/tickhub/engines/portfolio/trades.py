"""A trade (one fill), its wire object and its store row.

A trade is recorded with ``add_trade`` and kept as given: ``price`` exact (``Decimal``), ``time``
aware, ``seq`` its arrival number (increasing over every trade of the service, kept by the store),
which orders trades of the same time and tells which were recorded after a ``set_position``.
A store row is a plain dict (the keys are documented in ``tickhub.store.base``)::

    {"owner": str, "id": str, "seq": int, "symbol": str, "side": "buy" | "sell",
     "quantity": int, "price": str (Decimal as text), "time": str (ISO 8601 with offset),
     "product": str | None, "exchange": str | None}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tickhub.core.commands import DECIMAL_TEXT, MAX_POSITION_PRICE, MAX_QUANTITY, MIN_POSITION_PRICE
from tickhub.core.protocol import iso

__all__ = ["Trade", "trade_from_row", "trade_payload", "trade_to_row"]

_SIDES = ("buy", "sell")


@dataclass(frozen=True, slots=True)
class Trade:
    """One fill of one owner. Construction checks the invariants (``ValueError``): a known side,
    a quantity from 1 to ``MAX_QUANTITY``, a price in the position price range, an aware time."""

    id: str
    symbol: str
    side: str
    quantity: int
    price: Decimal
    time: datetime
    seq: int
    product: str | None = None
    exchange: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"trade id must be a non-empty string: {self.id!r}")
        if not isinstance(self.symbol, str) or not self.symbol:
            raise ValueError(f"symbol must be a non-empty string: {self.symbol!r}")
        if self.side not in _SIDES:
            raise ValueError(f"side must be buy or sell: {self.side!r}")
        q = self.quantity
        if not isinstance(q, int) or isinstance(q, bool) or not 0 < q <= MAX_QUANTITY:
            raise ValueError(f"trade quantity must be from 1 to {MAX_QUANTITY}: {q!r}")
        p = self.price
        if not isinstance(p, Decimal) or not (
            p.is_finite() and MIN_POSITION_PRICE <= p <= MAX_POSITION_PRICE
        ):
            raise ValueError(f"trade price out of range: {p!r}")
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError(f"trade time must be aware: {self.time!r}")

    @property
    def signed(self) -> int:
        """The quantity, negative for a sell."""
        return self.quantity if self.side == "buy" else -self.quantity


def trade_payload(owner: str, trade: Trade) -> dict[str, object]:
    """The trade object of the ``trade`` and ``trades`` replies."""
    return {
        "id": trade.id,
        "symbol": trade.symbol,
        "side": trade.side,
        "quantity": trade.quantity,
        "price": float(trade.price),
        "time": iso(trade.time),
        "product": trade.product,
        "exchange": trade.exchange,
        "owner": owner,
    }


def trade_to_row(owner: str, trade: Trade) -> dict[str, object]:
    """The store row of ``owner``'s trade (price as plain decimal text, time with its offset)."""
    return {
        "owner": owner,
        "id": trade.id,
        "seq": trade.seq,
        "symbol": trade.symbol,
        "side": trade.side,
        "quantity": trade.quantity,
        "price": format(trade.price, "f"),
        "time": trade.time.isoformat(),
        "product": trade.product,
        "exchange": trade.exchange,
    }


def trade_from_row(row: Mapping[str, object]) -> tuple[str, Trade]:
    """``(owner, trade)`` from a store row; ``ValueError`` naming the row if it is corrupt."""
    owner, trade_id = row.get("owner"), row.get("id")
    try:
        if not isinstance(owner, str):
            raise ValueError(f"owner must be a string: {owner!r}")
        price, time = row.get("price"), row.get("time")
        if not isinstance(price, str) or not DECIMAL_TEXT.fullmatch(price):
            raise ValueError(f"price must be decimal text: {price!r}")
        if not isinstance(time, str):
            raise ValueError(f"time must be ISO 8601 text: {time!r}")
        seq, quantity = row.get("seq"), row.get("quantity")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise ValueError(f"seq must be an integer: {seq!r}")
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            raise ValueError(f"quantity must be an integer: {quantity!r}")
        symbol, side = row.get("symbol"), row.get("side")
        product, exchange = row.get("product"), row.get("exchange")
        if not isinstance(symbol, str) or not isinstance(side, str):
            raise ValueError(f"symbol and side must be strings: {symbol!r}, {side!r}")
        if product is not None and not isinstance(product, str):
            raise ValueError(f"product must be a string or null: {product!r}")
        if exchange is not None and not isinstance(exchange, str):
            raise ValueError(f"exchange must be a string or null: {exchange!r}")
        trade = Trade(
            str(trade_id),
            symbol,
            side,
            quantity,
            Decimal(price),
            datetime.fromisoformat(time),
            seq,
            product,
            exchange,
        )
    except ValueError as exc:
        raise ValueError(f"bad stored trade {owner!r}/{trade_id!r}: {exc}") from None
    return owner, trade
