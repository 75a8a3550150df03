"""What positions are worth: P&L in ``Decimal``, rounded once, on output.

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
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
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
from typing import TypedDict

from tickhub.engines.portfolio.positions import Position

__all__ = [
    "PnlFields",
    "PortfolioTotals",
    "PositionFields",
    "PositionValue",
    "portfolio_totals",
    "position_value",
    "price_from_tick",
]

_PAISE = Decimal("0.01")
_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
# Independent of whatever the process-wide decimal context is; 50 digits hold any product of a
# bounded quantity and a price given with many decimals without rounding anything near a paisa.
_CONTEXT = Context(
    prec=50, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)


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


# --- valuation ----------------------------------------------------------------------------------


def position_value(
    symbol: str,
    position: Position | None,
    held: Collection[Position],
    last: Mapping[str, Decimal],
    prev_close: Mapping[str, Decimal],
) -> PositionValue:
    """The payload for one symbol: its ``position`` (``None``: not held, answered as quantity 0
    and zero amounts) valued at the prices known, with the totals of ``held`` (all the owner's
    positions)."""
    price = last.get(symbol)
    prev = prev_close.get(symbol)
    with localcontext(_CONTEXT):
        if position is None:
            fields = PositionFields(
                symbol=symbol,
                quantity=0,
                average_price=0.0,
                last_price=_out(price),
                current_value=0.0,
                invested_value=0.0,
                product=None,
                exchange=None,
            )
            pnl = PnlFields(unrealized=0.0, unrealized_percent=0.0, day=0.0, day_percent=0.0)
        else:
            v = _valuate(position, last, prev_close)
            fields = PositionFields(
                symbol=symbol,
                quantity=position.quantity,
                average_price=_money(position.average_price),
                last_price=_out(price),
                current_value=_money(v.current),
                invested_value=_money(v.invested),
                product=position.product,
                exchange=position.exchange,
            )
            day_percent = _ZERO
            if price is not None and prev is not None:
                sign = 1 if position.quantity > 0 else -1
                day_percent = (price - prev) / prev * _HUNDRED * sign
            pnl = PnlFields(
                unrealized=_money(v.unrealized),
                unrealized_percent=_money(_percent(v.unrealized, abs(v.invested))),
                day=_money(v.day),
                day_percent=_money(day_percent),
            )
        return PositionValue(position=fields, pnl=pnl, portfolio=_totals(held, last, prev_close))


def portfolio_totals(
    held: Collection[Position], last: Mapping[str, Decimal], prev_close: Mapping[str, Decimal]
) -> PortfolioTotals:
    """The totals of ``held`` (all of one owner's positions) at the prices known."""
    with localcontext(_CONTEXT):
        return _totals(held, last, prev_close)


def price_from_tick(value: float) -> Decimal | None:
    """A positive finite tick price as the Decimal its shortest repr spells, else ``None`` (a
    tick's zero means unknown)."""
    if not isinstance(value, int | float) or not value > 0 or value == float("inf"):
        return None
    return Decimal(repr(float(value)))


@dataclass(frozen=True, slots=True)
class _Valuation:
    current: Decimal
    invested: Decimal
    unrealized: Decimal
    day: Decimal
    priced: bool


def _totals(
    held: Collection[Position], last: Mapping[str, Decimal], prev_close: Mapping[str, Decimal]
) -> PortfolioTotals:
    current = invested = gross = unrealized = day = _ZERO
    priced = 0
    for position in held:
        v = _valuate(position, last, prev_close)
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


def _valuate(
    position: Position, last: Mapping[str, Decimal], prev_close: Mapping[str, Decimal]
) -> _Valuation:
    q = Decimal(position.quantity)
    invested = q * position.average_price
    price = last.get(position.symbol)
    if price is None:
        return _Valuation(invested, invested, _ZERO, _ZERO, priced=False)
    prev = prev_close.get(position.symbol)
    day = (price - prev) * q if prev is not None else _ZERO
    return _Valuation(q * price, invested, (price - position.average_price) * q, day, True)


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
