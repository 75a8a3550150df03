"""FIFO: one symbol's position from its carried-in position and the trades counted after it.

Method
    First in, first out, the Indian income-tax convention for shares and what a contract note
    is reconciled against. The carried-in position (what ``set_position`` last set, if anything)
    is the oldest open lot, at its average price; the counted trades follow in order of ``time``,
    then arrival (``seq``). A trade first closes open lots of the other side, oldest first; what
    is left of it opens a lot of its own side (a sell beyond the long quantity opens a short, a
    buy beyond the short quantity opens a long). The position is the open lots: ``quantity`` is
    their signed sum, the average price their weighted average, exact.

    Realised P&L of a closed part of ``q`` shares (``q`` signed as the lot: negative for a short)
    is ``(exit − entry) × q``. Charges (brokerage, STT, stamp duty, GST, exchange fees) are left
    out: every figure is gross.

Days are IST dates (``IST``): a lot is *opened today* when its trade's time falls on today's IST
date; the carried-in lot and lots of earlier days are *carried*. The day figures
(:class:`DayFigures`) are what the payload's day fields and the day M2M are computed from
(``valuation``). Pure: ``today`` is given, never read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)

from tickhub.core.model import IST
from tickhub.engines.portfolio.positions import Position
from tickhub.engines.portfolio.trades import Trade

__all__ = ["Close", "DayFigures", "Ledger", "Lot", "day_figures", "fifo", "trade_day"]

_ZERO = Decimal(0)
MONEY_CONTEXT = Context(
    prec=50, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)
"""The decimal context of every amount (here and in ``valuation``), whatever the process-wide
one is: 50 digits hold any product of a bounded quantity and a price given with many decimals
without rounding anything near a paisa."""
_CONTEXT = MONEY_CONTEXT


@dataclass(frozen=True, slots=True)
class Lot:
    """An open lot: ``quantity`` signed (negative: short), at ``price``; ``day`` the IST date it
    was opened on (``None``: the carried-in position)."""

    quantity: int
    price: Decimal
    day: date | None


@dataclass(frozen=True, slots=True)
class Close:
    """A closed part of a lot: ``quantity`` signed as the lot was, ``entry`` its price, ``exit``
    the closing trade's price, ``day`` the closing trade's IST date, ``opened`` the lot's."""

    quantity: int
    entry: Decimal
    exit: Decimal
    day: date
    opened: date | None


@dataclass(frozen=True, slots=True)
class Ledger:
    """The FIFO result: the open ``lots`` (oldest first), every ``closes``, the ``trades``
    counted (in FIFO order) and their totals."""

    lots: tuple[Lot, ...]
    closes: tuple[Close, ...]
    trades: tuple[Trade, ...]
    buy_quantity: int
    sell_quantity: int
    quantity: int
    cost: Decimal
    """``Σ quantity × price`` of the open lots (negative for a short), exact."""
    realized: Decimal
    """``Σ (exit − entry) × quantity`` over every close, exact."""

    @property
    def average_price(self) -> Decimal | None:
        """The open lots' weighted average (``None`` when flat), to 50 digits."""
        if not self.quantity:
            return None
        with localcontext(_CONTEXT):
            return self.cost / self.quantity


@dataclass(frozen=True, slots=True)
class DayFigures:
    """A ledger's figures for one IST date ``today``.

    ``buy_quantity``/``buy_value`` (and sells): today's counted trades, ``Σ q`` and ``Σ q × price``.
    ``realized``: ``Σ (exit − entry) × q`` over today's closes. ``carried_quantity``: open lots
    opened before today (the carried-in one included). ``new_quantity``/``new_cost``: open lots
    opened today, ``Σ q`` and ``Σ q × price``. ``carried_closed_quantity`` and
    ``carried_closed_exit``: today's closes of lots opened before today, ``Σ q`` and
    ``Σ q × exit``, with ``carried_closed_entry`` = ``Σ q × entry``; ``new_closed_realized``:
    ``Σ (exit − entry) × q`` over today's closes of lots opened today.
    """

    buy_quantity: int
    buy_value: Decimal
    sell_quantity: int
    sell_value: Decimal
    realized: Decimal
    carried_quantity: int
    new_quantity: int
    new_cost: Decimal
    carried_closed_quantity: int
    carried_closed_exit: Decimal
    carried_closed_entry: Decimal
    new_closed_realized: Decimal

    @property
    def traded(self) -> bool:
        return bool(self.buy_quantity or self.sell_quantity)


def trade_day(trade: Trade) -> date:
    """The IST date of a trade."""
    return trade.time.astimezone(IST).date()


def fifo(carried: Position | None, trades: Iterable[Trade]) -> Ledger:
    """The FIFO ledger of ``carried`` (the oldest lot) and ``trades`` (one symbol's counted
    trades, in any order: they are sorted by time, then ``seq``)."""
    with localcontext(_CONTEXT):
        return _fifo(carried, trades)


def _fifo(carried: Position | None, trades: Iterable[Trade]) -> Ledger:
    lots: list[Lot] = []
    if carried is not None and carried.quantity:
        lots.append(Lot(carried.quantity, carried.average_price, None))
    closes: list[Close] = []
    ordered = tuple(sorted(trades, key=lambda t: (t.time, t.seq)))
    bought = sold = 0
    for trade in ordered:
        _match(lots, closes, trade)
        if trade.side == "buy":
            bought += trade.quantity
        else:
            sold += trade.quantity
    quantity = sum(lot.quantity for lot in lots)
    cost = sum((lot.quantity * lot.price for lot in lots), _ZERO)
    realized = sum(((c.exit - c.entry) * c.quantity for c in closes), _ZERO)
    return Ledger(tuple(lots), tuple(closes), ordered, bought, sold, quantity, cost, realized)


def extended(ledger: Ledger, trade: Trade) -> Ledger | None:
    """``fifo`` of the ledger's lots and trades with ``trade`` added, without replaying them,
    when ``trade`` sorts after every trade of the ledger (by time, then ``seq``: the usual case,
    a trade recorded as it happens); ``None`` when it does not (replay them with ``fifo``).
    Costs the new closes and one copy of the lot and close lists, not a replay of every trade."""
    if ledger.trades:
        last = ledger.trades[-1]
        if (trade.time, trade.seq) < (last.time, last.seq):
            return None
    with localcontext(_CONTEXT):
        lots = list(ledger.lots)
        closes: list[Close] = []
        opened = _match(lots, closes, trade)
        # The cost loses what the closes took off their lots and gains the lot opened, if any.
        cost = ledger.cost - sum((c.quantity * c.entry for c in closes), _ZERO)
        cost += opened * trade.price
        realized = ledger.realized + sum(((c.exit - c.entry) * c.quantity for c in closes), _ZERO)
        buy = trade.quantity if trade.side == "buy" else 0
        return Ledger(
            tuple(lots),
            ledger.closes + tuple(closes),
            (*ledger.trades, trade),
            ledger.buy_quantity + buy,
            ledger.sell_quantity + trade.quantity - buy,
            ledger.quantity + trade.signed,
            cost,
            realized,
        )


def _match(lots: list[Lot], closes: list[Close], trade: Trade) -> int:
    """Apply one trade to the open ``lots`` (oldest first), FIFO: it closes lots of the other
    side, oldest first, appending each close to ``closes``, and what is left opens a lot. The
    signed quantity of the lot opened (0: none)."""
    day = trade_day(trade)
    left = trade.signed
    while left and lots and (lots[0].quantity > 0) != (left > 0):
        lot = lots[0]
        closed = min(abs(lot.quantity), abs(left))
        signed = closed if lot.quantity > 0 else -closed
        closes.append(Close(signed, lot.price, trade.price, day, lot.day))
        rest = lot.quantity - signed
        if rest:
            lots[0] = Lot(rest, lot.price, lot.day)
        else:
            lots.pop(0)
        left += signed  # a sell (left < 0) closes a long (signed > 0), and vice versa
    if left:
        lots.append(Lot(left, trade.price, day))
    return left


def day_figures(ledger: Ledger, today: date) -> DayFigures:
    """The ledger's figures for the IST date ``today`` (see :class:`DayFigures`)."""
    with localcontext(_CONTEXT):
        return _day_figures(ledger, today)


def _day_figures(ledger: Ledger, today: date) -> DayFigures:
    buy_q = sell_q = 0
    buy_v = sell_v = _ZERO
    # Trades, closes and lots are each in time order: today's are at the end (after them only
    # trades a later wall clock dated tomorrow), so each list is read backwards to its last day.
    for trade in reversed(ledger.trades):
        day = trade_day(trade)
        if day != today:
            if day < today:
                break
            continue
        if trade.side == "buy":
            buy_q += trade.quantity
            buy_v += trade.quantity * trade.price
        else:
            sell_q += trade.quantity
            sell_v += trade.quantity * trade.price
    realized = new_closed = cc_exit = cc_entry = _ZERO
    cc_q = 0
    for c in reversed(ledger.closes):
        if c.day != today:
            if c.day < today:
                break
            continue
        pnl = (c.exit - c.entry) * c.quantity
        realized += pnl
        if c.opened == today:
            new_closed += pnl
        else:
            cc_q += c.quantity
            cc_exit += c.quantity * c.exit
            cc_entry += c.quantity * c.entry
    new_q = 0
    new_cost = _ZERO
    for lot in reversed(ledger.lots):
        if lot.day != today:
            if lot.day is None or lot.day < today:
                break
            continue
        new_q += lot.quantity
        new_cost += lot.quantity * lot.price
    carried_q = ledger.quantity - new_q
    return DayFigures(
        buy_q,
        buy_v,
        sell_q,
        sell_v,
        realized,
        carried_q,
        new_q,
        new_cost,
        cc_q,
        cc_exit,
        cc_entry,
        new_closed,
    )
