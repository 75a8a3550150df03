"""A position, and how one is made from a checked ``set_position``.

The protocol (``set_position``) and the positions files (``files.py``) accept the same fields with
the same checks, made once in :func:`tickhub.core.commands.parse_position_fields`; a store row,
already checked when it was written, is read back in ``rows.py`` against the same invariants
(``Position.__post_init__``). The limits are the commands' (``MAX_QUANTITY``,
``MIN_POSITION_PRICE``, ``MAX_POSITION_PRICE``), so a position the protocol accepts is always one
the engine can hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tickhub.core.commands import MAX_POSITION_PRICE, MAX_QUANTITY, MIN_POSITION_PRICE, SetPosition

__all__ = ["Position", "position_of"]


@dataclass(frozen=True, slots=True)
class Position:
    """One holding of one owner. ``symbol`` is the registry's trading symbol (``RELIANCE``).

    Construction checks the invariants (``ValueError``): a non-empty symbol, an int quantity
    within ``MAX_QUANTITY``, and a finite average price between ``MIN_POSITION_PRICE`` and
    ``MAX_POSITION_PRICE``.
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
                f"average price must be a Decimal from {MIN_POSITION_PRICE} to "
                f"{MAX_POSITION_PRICE}: {price!r}"
            )


def position_of(command: SetPosition) -> Position:
    """The position a checked ``set_position`` (or a row of a positions file) describes; its
    product is kept as its name, the form stores and payloads carry."""
    product = None if command.product is None else command.product.value
    return Position(
        command.symbol, command.quantity, command.average_price, product, command.exchange
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _price_in_range(price: Decimal) -> bool:
    return price.is_finite() and MIN_POSITION_PRICE <= price <= MAX_POSITION_PRICE
