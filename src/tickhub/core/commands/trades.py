"""The ``/ws/portfolio`` trade requests: ``add_trade``, ``list_trades``, ``delete_trade``.

A trade names its instrument, price and product as ``set_position`` does (the same checks,
:mod:`tickhub.core.commands.positions`), with a ``side`` and a positive ``quantity``. Whether a
trade's ``time`` is too far in the future or the past depends on the clock, which parsing has
not: :func:`trade_time_error` is the check the consumer makes with its clock's ``now``. Whether a
trade id exists, and the trades quota, are state: the portfolio's to check.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from tickhub.core.commands.fields import Context, instrument_symbol, invalid, missing
from tickhub.core.commands.model import AddTrade, DeleteTrade, ListTrades, Side
from tickhub.core.commands.positions import (
    MAX_QUANTITY,
    price_field,
    product_field,
    tradable_instrument,
)
from tickhub.core.protocol import ProtocolError, json_kind, shown

TRADE_ID_MAX_LENGTH: Final = 64
"""Characters of a trade ``id`` a client chooses (room for a UUID or a broker's order and fill
numbers)."""

TRADE_TIME_MAX_LENGTH: Final = 64
"""Characters of a trade's ``time`` text: an ISO 8601 timestamp needs at most 32."""

TRADE_MAX_AHEAD: Final = timedelta(minutes=1)
"""How far a trade's ``time`` may lie ahead of the service clock (clock skew, not the future)."""

TRADE_MAX_AGE: Final = timedelta(days=400)
"""How far back a trade's ``time`` may lie: a year of contract notes, and a bit more."""


def parse_add_trade(msg: Mapping[str, Any], ctx: Context) -> AddTrade | ProtocolError:
    """``symbol`` (with ``exchange``), ``side``, ``quantity``, ``price``, ``time``, ``product``,
    ``id``, checked in this order; errors as for ``set_position``."""
    instrument = tradable_instrument(msg, ctx.registry)
    if isinstance(instrument, ProtocolError):
        return instrument
    raw_side = msg.get("side")
    if raw_side is None or raw_side == "":
        return missing("side")
    allowed = [s.value for s in Side]
    if not isinstance(raw_side, str) or raw_side.strip().lower() not in allowed:
        return invalid(
            "side",
            f"field 'side' must be one of {', '.join(allowed)}, got {shown(raw_side)}",
            allowed=allowed,
        )
    side = Side(raw_side.strip().lower())
    quantity = msg.get("quantity")
    if quantity is None:
        return missing("quantity")
    if (
        not isinstance(quantity, int)
        or isinstance(quantity, bool)
        or not 0 < quantity <= MAX_QUANTITY
    ):
        return invalid(
            "quantity",
            f"field 'quantity' must be an integer from 1 to {MAX_QUANTITY}, got {shown(quantity)}",
            **_echo(quantity),
        )
    raw_price = msg.get("price")
    if raw_price is None or (isinstance(raw_price, str) and not raw_price.strip()):
        return missing("price")
    price = price_field(raw_price, "price")
    if isinstance(price, ProtocolError):
        return price
    time = _time(msg.get("time"))
    if isinstance(time, ProtocolError):
        return time
    product = product_field(msg)
    if isinstance(product, ProtocolError):
        return product
    trade_id = _trade_id(msg.get("id"), required=False)
    if isinstance(trade_id, ProtocolError):
        return trade_id
    return AddTrade(
        instrument.symbol,
        side,
        quantity,
        price,
        instrument.exchange,
        time=time,
        product=product,
        id=trade_id,
    )


def parse_list_trades(msg: Mapping[str, Any], ctx: Context) -> ListTrades | ProtocolError:
    """An optional ``symbol``, which must name an instrument."""
    if msg.get("symbol") is None:
        return ListTrades()
    symbol = instrument_symbol(msg, ctx)
    return symbol if isinstance(symbol, ProtocolError) else ListTrades(symbol)


def parse_delete_trade(msg: Mapping[str, Any], ctx: Context) -> DeleteTrade | ProtocolError:
    """``id`` must be a trade id's shape; whether it exists is the portfolio's to say."""
    trade_id = _trade_id(msg.get("id"), required=True)
    if isinstance(trade_id, ProtocolError):
        return trade_id
    assert trade_id is not None
    return DeleteTrade(trade_id)


def trade_time_error(
    time: datetime, now: datetime, *, wall: datetime | None = None
) -> ProtocolError | None:
    """Why a trade at ``time`` cannot be recorded at ``now``, the exchange's time (more than
    :data:`TRADE_MAX_AHEAD` ahead of the later of ``now`` and the ``wall`` clock, or more than
    :data:`TRADE_MAX_AGE` before ``now``), or ``None``. The wall clock only widens the future
    bound: after the close the newest tick's time lags the hour at which a trade is entered."""
    latest = now if wall is None or wall < now else wall
    if time > latest + TRADE_MAX_AHEAD:
        return invalid(
            "time",
            f"field 'time' must not be more than {_seconds(TRADE_MAX_AHEAD)} s in the future, "
            f"got {time.isoformat()}",
            value=time.isoformat(),
        )
    if time < now - TRADE_MAX_AGE:
        return invalid(
            "time",
            f"field 'time' must not be more than {TRADE_MAX_AGE.days} days in the past, "
            f"got {time.isoformat()}",
            value=time.isoformat(),
        )
    return None


def _time(value: object) -> datetime | ProtocolError | None:
    """An optional ISO 8601 timestamp with its UTC offset (``Z`` accepted)."""
    if value is None:
        return None
    requirement = "an ISO 8601 time with its offset, e.g. '2026-12-02T10:15:00+05:30'"
    if not isinstance(value, str):
        return invalid("time", f"field 'time' must be {requirement}, got {json_kind(value)}")
    text = value.strip()
    parsed: datetime | None = None
    if len(text) <= TRADE_TIME_MAX_LENGTH and text.isascii():
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = None
    if parsed is None or parsed.tzinfo is None or parsed.utcoffset() is None:
        return invalid(
            "time", f"field 'time' must be {requirement}, got {shown(value)}", **_echo(value)
        )
    return parsed


def _trade_id(value: object, *, required: bool) -> str | ProtocolError | None:
    if value is None or value == "":
        return missing("id") if required else None
    if (
        not isinstance(value, str)
        or len(value) > TRADE_ID_MAX_LENGTH
        or not value.isprintable()
        or not value.strip()
    ):
        return invalid(
            "id",
            f"field 'id' must be a printable string of at most {TRADE_ID_MAX_LENGTH} "
            f"characters, got {shown(value)}",
            **_echo(value),
        )
    return value


def _echo(value: object) -> dict[str, object]:
    """``details.value`` for a short scalar only (as ``set_position``'s errors do)."""
    if isinstance(value, bool) or value is None:
        return {"value": value}
    if isinstance(value, int):
        return {"value": value} if -(2**63) <= value < 2**64 else {}
    if isinstance(value, float):
        return {"value": value}
    if isinstance(value, str) and len(value) <= TRADE_ID_MAX_LENGTH:
        return {"value": value}
    return {}


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())
