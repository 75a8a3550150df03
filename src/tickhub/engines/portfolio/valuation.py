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

Positions built from trades (``ledger``: FIFO) are valued from their open lots: ``invested_value``
is ``Σ q × price`` of the lots (so ``unrealized`` is ``current_value − invested_value``, the same
as above), ``average_price`` their weighted average, and ``day`` is the day's M2M::

    day = (last − prev) × Q_carried  +  (last × Q_new − C_new)
        + Σ over today's closes of carried lots (exit − prev) × q
        + Σ over today's closes of lots opened today (exit − entry) × q

``Q_carried``: open lots opened before today (the carried-in one included); ``Q_new``/``C_new``:
open lots opened today, ``Σ q`` and ``Σ q × price``. Without a previous close the carried lots'
open part is 0 and their closes count from their entry; without a last price the open parts are
0. ``realized`` is ``Σ (exit − entry) × q`` over every close since the carried-in position,
``day_realized`` over today's. A position without counted trades is valued as above, unchanged.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_UP,
    Decimal,
    localcontext,
)
from typing import TypedDict

from tickhub.engines.portfolio.ledger import MONEY_CONTEXT, DayFigures, Ledger
from tickhub.engines.portfolio.positions import Position

__all__ = [
    "Holding",
    "PnlFields",
    "PortfolioTotals",
    "PositionFields",
    "PositionValue",
    "holding_of",
    "portfolio_totals",
    "position_value",
    "price_from_tick",
]

_PAISE = Decimal("0.01")
_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
_CONTEXT = MONEY_CONTEXT


# --- wire payload -------------------------------------------------------------------------------


class TradeFields(TypedDict):
    """A position's figures from its trades (0 and ``None`` for one set by ``set_position``)."""

    buy_quantity: int
    sell_quantity: int
    day_buy_quantity: int
    day_sell_quantity: int
    day_buy_price: float | None
    day_sell_price: float | None
    trades: int


class PositionFields(TradeFields):
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
    realized: float
    day_realized: float


class PortfolioTotals(TypedDict):
    total_value: float
    total_invested: float
    total_pnl: float
    total_pnl_percent: float
    day_pnl: float
    positions: int
    priced: int
    realized_pnl: float
    day_realized_pnl: float


class PositionValue(TypedDict):
    """The ``data`` of one ``position_data`` message on ``/ws/portfolio``."""

    position: PositionFields
    pnl: PnlFields
    portfolio: PortfolioTotals


# --- valuation ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holding:
    """What is valued for one symbol: a set position (``ledger`` ``None``) or the open lots of
    its FIFO ``ledger`` with ``day``, its figures for today. ``cost`` is ``Σ q × price`` of
    what is open; ``average_price`` is ``None`` when flat (a position that trades closed today,
    still listed)."""

    symbol: str
    quantity: int
    average_price: Decimal | None
    cost: Decimal
    product: str | None = None
    exchange: str | None = None
    ledger: Ledger | None = None
    day: DayFigures | None = None


def holding_of(position: Position) -> Holding:
    """A set position, as valued."""
    with localcontext(_CONTEXT):
        cost = Decimal(position.quantity) * position.average_price
    return Holding(
        position.symbol,
        position.quantity,
        position.average_price,
        cost,
        position.product,
        position.exchange,
    )


def position_value(
    symbol: str,
    holding: Holding | None,
    held: Collection[Holding],
    last: Mapping[str, Decimal],
    prev_close: Mapping[str, Decimal],
) -> PositionValue:
    """The payload for one symbol: its ``holding`` (``None``: not held, answered as quantity 0
    and zero amounts) valued at the prices known, with the totals of ``held`` (all the owner's
    holdings)."""
    price = last.get(symbol)
    prev = prev_close.get(symbol)
    with localcontext(_CONTEXT):
        if holding is None:
            fields = PositionFields(
                symbol=symbol,
                quantity=0,
                average_price=0.0,
                last_price=_out(price),
                current_value=0.0,
                invested_value=0.0,
                product=None,
                exchange=None,
                **_trade_fields(None, None),
            )
            pnl = PnlFields(
                unrealized=0.0,
                unrealized_percent=0.0,
                day=0.0,
                day_percent=0.0,
                realized=0.0,
                day_realized=0.0,
            )
        else:
            v = _valuate(holding, last, prev_close)
            avg = holding.average_price
            fields = PositionFields(
                symbol=symbol,
                quantity=holding.quantity,
                average_price=0.0 if avg is None else _money(avg),
                last_price=_out(price),
                current_value=_money(v.current),
                invested_value=_money(v.invested),
                product=holding.product,
                exchange=holding.exchange,
                **_trade_fields(holding.ledger, holding.day),
            )
            day_percent = _ZERO
            if price is not None and prev is not None and holding.quantity:
                sign = 1 if holding.quantity > 0 else -1
                day_percent = (price - prev) / prev * _HUNDRED * sign
            pnl = PnlFields(
                unrealized=_money(v.unrealized),
                unrealized_percent=_money(_percent(v.unrealized, abs(v.invested))),
                day=_money(v.day),
                day_percent=_money(day_percent),
                realized=_money(v.realized),
                day_realized=_money(v.day_realized),
            )
        return PositionValue(position=fields, pnl=pnl, portfolio=_totals(held, last, prev_close))


def portfolio_totals(
    held: Collection[Holding], last: Mapping[str, Decimal], prev_close: Mapping[str, Decimal]
) -> PortfolioTotals:
    """The totals of ``held`` (all of one owner's holdings) at the prices known."""
    with localcontext(_CONTEXT):
        return _totals(held, last, prev_close)


def _trade_fields(ledger: Ledger | None, day: DayFigures | None) -> TradeFields:
    """The trade-built fields of ``position`` (zeros and nulls without counted trades)."""
    if ledger is None or day is None:
        return TradeFields(
            buy_quantity=0,
            sell_quantity=0,
            day_buy_quantity=0,
            day_sell_quantity=0,
            day_buy_price=None,
            day_sell_price=None,
            trades=0,
        )
    return TradeFields(
        buy_quantity=ledger.buy_quantity,
        sell_quantity=ledger.sell_quantity,
        day_buy_quantity=day.buy_quantity,
        day_sell_quantity=day.sell_quantity,
        day_buy_price=_money(day.buy_value / day.buy_quantity) if day.buy_quantity else None,
        day_sell_price=_money(day.sell_value / day.sell_quantity) if day.sell_quantity else None,
        trades=len(ledger.trades),
    )


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
    realized: Decimal = _ZERO
    day_realized: Decimal = _ZERO


def _totals(
    held: Collection[Holding], last: Mapping[str, Decimal], prev_close: Mapping[str, Decimal]
) -> PortfolioTotals:
    current = invested = gross = unrealized = day = realized = day_realized = _ZERO
    priced = 0
    for holding in held:
        v = _valuate(holding, last, prev_close)
        current += v.current
        invested += v.invested
        gross += abs(v.invested)
        unrealized += v.unrealized
        day += v.day
        realized += v.realized
        day_realized += v.day_realized
        priced += v.priced
    return PortfolioTotals(
        total_value=_money(current),
        total_invested=_money(invested),
        total_pnl=_money(unrealized),
        total_pnl_percent=_money(_percent(unrealized, gross)),
        day_pnl=_money(day),
        positions=len(held),
        priced=priced,
        realized_pnl=_money(realized),
        day_realized_pnl=_money(day_realized),
    )


def _valuate(
    holding: Holding, last: Mapping[str, Decimal], prev_close: Mapping[str, Decimal]
) -> _Valuation:
    q = Decimal(holding.quantity)
    invested = holding.cost
    price = last.get(holding.symbol)
    prev = prev_close.get(holding.symbol)
    d = holding.day
    if d is None or holding.ledger is None:
        if price is None:
            return _Valuation(invested, invested, _ZERO, _ZERO, priced=False)
        day = (price - prev) * q if prev is not None else _ZERO
        current = q * price
        return _Valuation(current, invested, current - invested, day, True)
    # Built from trades: the day's M2M (module docstring).
    closed = d.new_closed_realized + d.carried_closed_exit
    closed -= prev * d.carried_closed_quantity if prev is not None else d.carried_closed_entry
    realized, day_realized = holding.ledger.realized, d.realized
    if price is None:
        return _Valuation(invested, invested, _ZERO, closed, False, realized, day_realized)
    current = q * price
    day = price * d.new_quantity - d.new_cost + closed
    if prev is not None:
        day += (price - prev) * d.carried_quantity
    return _Valuation(current, invested, current - invested, day, True, realized, day_realized)


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
