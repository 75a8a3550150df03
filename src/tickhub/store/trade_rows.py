"""The row codecs of trades and their marks, shared by the SQLite and PostgreSQL stores.

One validation (keys and types in :mod:`tickhub.store.base`), one format: the price as decimal
text so that no store rounds it, the time as ISO 8601 with its offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Final

from tickhub.store.rows import position_values, time_text

__all__ = ["MARK_COLUMNS", "TRADE_COLUMNS", "mark_values", "trade_values"]

TRADE_COLUMNS: Final = (
    "owner",
    "id",
    "seq",
    "symbol",
    "side",
    "quantity",
    "price",
    "time",
    "product",
    "exchange",
)
"""The columns of a trade row, in table order (the keys of a trade row dict)."""

MARK_COLUMNS: Final = ("owner", "symbol", "after_seq")
"""The columns of a mark row."""


def trade_values(row: Mapping[str, object]) -> tuple[object, ...]:
    """The column values of a valid trade row, by :data:`TRADE_COLUMNS`, else ``ValueError``."""
    if not isinstance(row, Mapping):
        raise ValueError(f"trade row must be a dict, got {type(row).__name__}")
    unknown = sorted(set(row) - set(TRADE_COLUMNS))
    if unknown:
        raise ValueError(f"unknown trade field: {unknown[0]!r}")
    for key in ("owner", "id", "symbol"):
        value = row.get(key)
        if not isinstance(value, str) or (key != "owner" and not value):
            raise ValueError(f"trade {key} must be a non-empty string, got {value!r}")
    if row.get("side") not in ("buy", "sell"):
        raise ValueError(f"trade side must be 'buy' or 'sell', got {row.get('side')!r}")
    seq, quantity = row.get("seq"), row.get("quantity")
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise ValueError(f"trade seq must be an int, got {seq!r}")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise ValueError(f"trade quantity must be a positive int, got {quantity!r}")
    price = _price_text(row.get("price"))
    time = row.get("time")
    if isinstance(time, datetime):
        time = time_text(time)
    elif isinstance(time, str):
        try:
            parsed = datetime.fromisoformat(time)
        except ValueError:
            raise ValueError(f"trade time must be ISO 8601, got {time!r}") from None
        if parsed.utcoffset() is None:
            raise ValueError(f"trade time must carry its offset, got {time!r}")
    else:
        raise ValueError(f"trade time must be an ISO 8601 string, got {time!r}")
    optional: list[str | None] = []
    for key in ("product", "exchange"):
        value = row.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"trade {key} must be a string or None, got {value!r}")
        optional.append(value)
    return (
        row["owner"],
        row["id"],
        seq,
        row["symbol"],
        row["side"],
        quantity,
        price,
        time,
        *optional,
    )


def mark_values(owner: str, symbol: str, after_seq: int) -> tuple[str, str, int]:
    """The column values of a mark row, checked (``ValueError``)."""
    if not isinstance(owner, str):
        raise ValueError(f"mark owner must be a string, got {owner!r}")
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"mark symbol must be a non-empty string, got {symbol!r}")
    if isinstance(after_seq, bool) or not isinstance(after_seq, int) or after_seq < 0:
        raise ValueError(f"mark after_seq must be an int >= 0, got {after_seq!r}")
    return owner, symbol, after_seq


def carried_values(
    owner: str, symbol: str, position: Mapping[str, object] | None, after_seq: int
) -> tuple[tuple[str, str, int], tuple[object, ...] | None]:
    """The mark's and the carried-in position's column values of a ``save_carried``, checked
    (``ValueError``): the position, when there is one, must be ``owner``'s in ``symbol``."""
    mark = mark_values(owner, symbol, after_seq)
    values = None if position is None else position_values(position)
    if values is not None and (values[0], values[1]) != (owner, symbol):
        raise ValueError(f"position {values[0]!r}/{values[1]!r} given for {owner!r}/{symbol!r}")
    return mark, values


def _price_text(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | Decimal):
        raise ValueError(
            f"trade price must be a Decimal as text, got {value!r}"
            + (" (a float would round)" if isinstance(value, float) else "")
        )
    text = value.strip() if isinstance(value, str) else format(value, "f")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"trade price is not a decimal: {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise ValueError(f"trade price must be finite and positive, got {value!r}")
    return text
