"""Positions from trades (FIFO): against a ledger written separately here, and by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickhub.core.commands import MAX_QUANTITY
from tickhub.core.model import IST, Tick
from tickhub.core.protocol import ErrorCode, ProtocolError
from tickhub.engines.portfolio import Portfolio, Position, Trade, trade_from_row, trade_to_row
from tickhub.engines.portfolio.ledger import day_figures, extended, fifo

TODAY = date(2026, 12, 2)


def at(days_ago: int, hh: int = 10, mm: int = 0) -> datetime:
    d = TODAY - timedelta(days=days_ago)
    return datetime(d.year, d.month, d.day, hh, mm, tzinfo=IST)


_ids = iter(range(10**9))


def trade(side: str, quantity: int, price: str, when: datetime, symbol: str = "INFY") -> Trade:
    return Trade(f"t{next(_ids)}", symbol, side, quantity, Decimal(price), when, 0, "CNC", "NSE")


def book(today: date = TODAY) -> Portfolio:
    return Portfolio(today=lambda: today)


def add(p: Portfolio, *trades: Trade, owner: str = "") -> None:
    for t in trades:
        change = p.add_trade(owner, t)
        assert not isinstance(change, ProtocolError)


def prices(p: Portfolio, symbol: str, last: float, prev: float) -> None:
    p.on_tick(Tick(symbol, 1, at(0, 11), last, prev_close=prev))


def money(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)) or 0.0


# --- the reference: a list of lots, written without the engine's code ---------------------------


@dataclass
class RefLedger:
    """FIFO as a trader does it on paper: a queue of [quantity, price, opened_today]."""

    lots: list[list[object]] = field(default_factory=list)
    realized: Decimal = Decimal(0)
    day_realized: Decimal = Decimal(0)
    closed_today_m2m: Decimal = Decimal(0)  # today's closes, carried lots from prev
    closed_today_from_entry: Decimal = Decimal(0)
    closed_today_carried_q: int = 0
    day_buys: list[tuple[int, Decimal]] = field(default_factory=list)
    day_sells: list[tuple[int, Decimal]] = field(default_factory=list)
    bought: int = 0
    sold: int = 0
    count: int = 0

    def carry(self, quantity: int, price: Decimal) -> None:
        self.lots.append([quantity, price, False])

    def apply(self, side: str, quantity: int, price: Decimal, today: bool, prev: Decimal) -> None:
        self.count += 1
        sign = 1 if side == "buy" else -1
        if side == "buy":
            self.bought += quantity
        else:
            self.sold += quantity
        if today:
            (self.day_buys if side == "buy" else self.day_sells).append((quantity, price))
        remaining = quantity
        while remaining and self.lots and _sign(self.lots[0][0]) == -sign:  # type: ignore[arg-type]
            lot_q, lot_p, lot_today = self.lots[0]
            assert isinstance(lot_q, int) and isinstance(lot_p, Decimal)
            take = min(abs(lot_q), remaining)
            q = take * _sign(lot_q)
            pnl = (price - lot_p) * q
            self.realized += pnl
            if today:
                self.day_realized += pnl
                if lot_today:
                    self.closed_today_m2m += pnl
                else:
                    self.closed_today_m2m += (price - prev) * q
                    self.closed_today_from_entry += pnl
                    self.closed_today_carried_q += q
            remaining -= take
            if take == abs(lot_q):
                self.lots.pop(0)
            else:
                self.lots[0][0] = lot_q - q
        if remaining:
            self.lots.append([remaining * sign, price, today])

    @property
    def quantity(self) -> int:
        return sum(int(q) for q, _, _ in self.lots)  # type: ignore[call-overload]

    @property
    def cost(self) -> Decimal:
        return sum((Decimal(int(q)) * p for q, p, _ in self.lots), Decimal(0))  # type: ignore

    def day_m2m(self, last: Decimal, prev: Decimal) -> Decimal:
        total = self.closed_today_m2m
        for q, p, today in self.lots:
            assert isinstance(q, int) and isinstance(p, Decimal)
            total += (last - p) * q if today else (last - prev) * q
        return total


def _sign(q: int) -> int:
    return 1 if q > 0 else -1


def _avg(fills: list[tuple[int, Decimal]]) -> float | None:
    q = sum(f[0] for f in fills)
    return money(sum((f[0] * f[1] for f in fills), Decimal(0)) / q) if q else None


# --- hand-computed cases ------------------------------------------------------------------------


def test_partial_close_takes_the_oldest_lot_first() -> None:
    p = book()
    add(p, trade("buy", 10, "100", at(0, 9)), trade("buy", 10, "110", at(0, 10)))
    add(p, trade("sell", 15, "120", at(0, 11)))
    prices(p, "INFY", 125, 100)

    v = p.value("", "INFY")

    # realised: 10 × (120 − 100) + 5 × (120 − 110) = 250; open: 5 @ 110
    assert v["position"]["quantity"] == 5
    assert v["position"]["average_price"] == 110.0
    assert v["position"]["invested_value"] == 550.0
    assert v["pnl"]["realized"] == v["pnl"]["day_realized"] == 250.0
    assert v["pnl"]["unrealized"] == 75.0  # (125 − 110) × 5
    # day: all opened today: (125 − 110) × 5 + 250
    assert v["pnl"]["day"] == 325.0
    assert v["position"]["buy_quantity"] == 20 and v["position"]["sell_quantity"] == 15
    assert v["position"]["day_buy_price"] == 105.0 and v["position"]["day_sell_price"] == 120.0
    assert v["position"]["trades"] == 3
    assert v["portfolio"]["realized_pnl"] == v["portfolio"]["day_realized_pnl"] == 250.0


def test_a_sell_beyond_the_long_quantity_flips_to_a_short() -> None:
    p = book()
    add(p, trade("buy", 10, "100", at(1)), trade("sell", 15, "90", at(0)))
    v = p.value("", "INFY")
    # 10 closed at a loss of 10 each; −5 opened at 90
    assert v["position"]["quantity"] == -5
    assert v["position"]["average_price"] == 90.0
    assert v["position"]["invested_value"] == -450.0
    assert v["pnl"]["realized"] == -100.0
    assert v["pnl"]["day_realized"] == -100.0  # the closing trade is today's


def test_shorts_are_covered_fifo() -> None:
    p = book()
    add(p, trade("sell", 10, "200", at(0, 9)), trade("sell", 5, "205", at(0, 9, 30)))
    add(p, trade("buy", 12, "190", at(0, 10)))
    v = p.value("", "INFY")
    # 10 × (200 − 190) + 2 × (205 − 190) = 130 gained on the shorts; −3 @ 205 left
    assert v["position"]["quantity"] == -3
    assert v["position"]["average_price"] == 205.0
    assert v["pnl"]["realized"] == 130.0
    add(p, trade("buy", 3, "210", at(0, 11)))
    assert p.position("", "INFY") is None  # flat, but listed: traded today
    v = p.value("", "INFY")
    assert v["position"]["quantity"] == 0 and v["position"]["average_price"] == 0.0
    assert v["pnl"]["realized"] == 115.0  # 130 − 3 × 5
    assert p.held_symbols("") == ["INFY"]


def test_several_days_day_quantities_and_day_m2m() -> None:
    p = book()
    add(p, trade("buy", 10, "100", at(1)))  # yesterday
    add(p, trade("buy", 5, "104", at(0, 9)), trade("sell", 8, "106", at(0, 10)))
    prices(p, "INFY", 105, 103)

    v = p.value("", "INFY")
    pos, pnl = v["position"], v["pnl"]

    # FIFO: the sell closes 8 of yesterday's lot: realised 8 × 6 = 48, today
    # open: 2 @ 100 (carried), 5 @ 104 (today): 7 @ 720 / 7
    assert pos["quantity"] == 7
    assert pos["average_price"] == money(Decimal(720) / 7)
    assert pos["invested_value"] == 720.0
    assert (pos["day_buy_quantity"], pos["day_sell_quantity"]) == (5, 8)
    assert (pos["day_buy_price"], pos["day_sell_price"]) == (104.0, 106.0)
    assert (pos["buy_quantity"], pos["sell_quantity"]) == (15, 8)
    assert pnl["realized"] == pnl["day_realized"] == 48.0
    # M2M: (105 − 103) × 2 + (105 − 104) × 5 + (106 − 103) × 8 = 4 + 5 + 24
    assert pnl["day"] == 33.0
    assert pnl["unrealized"] == 15.0  # 7 × 105 − 720

    tomorrow = Portfolio(today=lambda: TODAY + timedelta(days=1))
    add(tomorrow, *p.trades(""))
    prices(tomorrow, "INFY", 106, 105)
    w = tomorrow.value("", "INFY")
    assert w["position"]["day_buy_quantity"] == w["position"]["day_sell_quantity"] == 0
    assert w["position"]["day_buy_price"] is None
    assert w["pnl"]["day_realized"] == 0.0 and w["pnl"]["realized"] == 48.0
    assert w["pnl"]["day"] == 7.0  # every lot carried now: (106 − 105) × 7


def test_set_position_is_the_carried_in_lot_and_earlier_trades_stop_counting() -> None:
    p = book()
    add(p, trade("buy", 50, "90", at(2)))
    p.set_position("", Position("INFY", 10, Decimal("100"), "CNC", "NSE"))
    assert p.position("", "INFY") == Position("INFY", 10, Decimal("100"), "CNC", "NSE")
    assert p.value("", "INFY")["position"]["trades"] == 0
    add(p, trade("sell", 4, "110", at(0)))
    prices(p, "INFY", 108, 105)

    v = p.value("", "INFY")
    assert v["position"]["quantity"] == 6
    assert v["position"]["average_price"] == 100.0
    assert v["position"]["trades"] == 1
    assert v["pnl"]["realized"] == 40.0
    # the carried-in lot is marked from prev: (108 − 105) × 6 + (110 − 105) × 4
    assert v["pnl"]["day"] == 38.0
    assert len(p.trades("")) == 2  # the earlier trade is still listed

    p.remove_position("", "INFY")
    assert p.position("", "INFY") is None
    assert p.held_symbols("") == []  # flat by remove_position, no trade counts
    add(p, trade("buy", 1, "100", at(0)))
    assert p.position("", "INFY") == Position("INFY", 1, Decimal("100"), "CNC", "NSE")


def test_set_position_without_trades_values_as_before() -> None:
    p = book()
    p.set_position("", Position("INFY", 10, Decimal("1500"), "CNC", "NSE"))
    prices(p, "INFY", 1510, 1505)
    v = p.value("", "INFY")
    assert v["pnl"]["day"] == 50.0 and v["pnl"]["unrealized"] == 100.0
    assert v["pnl"]["realized"] == v["pnl"]["day_realized"] == 0.0
    assert v["position"]["trades"] == 0 and v["position"]["buy_quantity"] == 0
    assert v["position"]["day_buy_price"] is None and v["position"]["day_sell_price"] is None


def test_flat_symbol_is_listed_until_the_next_ist_day() -> None:
    day = [TODAY]
    p = Portfolio(today=lambda: day[0])
    add(p, trade("buy", 5, "100", at(0, 9)), trade("sell", 5, "101", at(0, 10)))
    assert p.held_symbols("") == ["INFY"] and p.is_listed("", "INFY")
    assert p.totals("")["positions"] == 1
    day[0] = TODAY + timedelta(days=1)
    assert p.held_symbols("") == [] and not p.is_listed("", "INFY")
    assert p.totals("")["positions"] == 0


def test_undo_and_delete_put_the_position_back() -> None:
    p = book()
    first = trade("buy", 10, "100", at(0))
    add(p, first)
    before = p.value("", "INFY")
    change = p.add_trade("", trade("sell", 4, "120", at(0)))
    assert not isinstance(change, ProtocolError)
    p.undo_trade(change)
    assert p.value("", "INFY") == before and len(p.trades("")) == 1

    deleted = p.delete_trade("", first.id)
    assert deleted is not None and not isinstance(deleted, ProtocolError)
    assert p.position("", "INFY") is None and p.trades("") == []
    p.undo_trade(deleted)
    assert p.value("", "INFY") == before
    assert p.delete_trade("", "nope") is None
    assert p.delete_trade("bob", p.trades("")[0].id) is None  # another owner's trade


def test_a_position_past_max_quantity_is_refused_and_nothing_changes() -> None:
    p = book()
    add(p, trade("buy", MAX_QUANTITY, "1", at(0)))
    refused = p.add_trade("", trade("buy", 1, "1", at(0)))
    assert isinstance(refused, ProtocolError) and refused.code is ErrorCode.LIMIT_EXCEEDED
    assert p.trade_count("") == 1 and p.value("", "INFY")["position"]["quantity"] == MAX_QUANTITY


def test_trades_rebuild_identically_from_rows() -> None:
    p = book()
    p.set_position("", Position("INFY", 3, Decimal("99.5")))
    add(p, trade("buy", 10, "100.05", at(1)), trade("sell", 12, "101.15", at(0)))
    add(p, trade("buy", 2, "98", at(0)), owner="bob")
    rows = [trade_to_row(o, t) for o in ("", "bob") for t in p.trades(o)]

    again = book()
    again.restore([("", Position("INFY", 3, Decimal("99.5")))])
    again.restore_trades([trade_from_row(r) for r in rows], [])
    for owner in ("", "bob"):
        assert again.value(owner, "INFY") == p.value(owner, "INFY")
        assert again.trades(owner) == p.trades(owner)
    assert again.next_seq() == p.next_seq()


def test_trades_are_listed_by_time_then_arrival() -> None:
    p = book()
    late, early, same = (
        trade("buy", 1, "1", at(0, 12)),
        trade("buy", 1, "1", at(1)),
        trade("buy", 1, "1", at(0, 12)),
    )
    add(p, late, early, same)
    assert [t.id for t in p.trades("")] == [early.id, late.id, same.id]
    assert [t.id for t in p.trades("", "TCS")] == []


# --- generated sequences against the reference -------------------------------------------------

PRICES = st.decimals(min_value=Decimal("1"), max_value=Decimal("5000"), places=2)
TRADES = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.integers(1, 60),
        PRICES,
        st.integers(0, 2),  # days ago
        st.integers(0, 300),  # minutes after 09:15
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(
    TRADES,
    st.one_of(st.none(), st.tuples(st.integers(-80, 80).filter(bool), PRICES)),
    PRICES,
    PRICES,
)
def test_fifo_matches_the_reference_ledger(
    fills: list[tuple[str, int, Decimal, int, int]],
    carried: tuple[int, Decimal] | None,
    last: Decimal,
    prev: Decimal,
) -> None:
    p = book()
    ref = RefLedger()
    if carried is not None:
        p.set_position("", Position("INFY", carried[0], carried[1]))
        ref.carry(*carried)
    made = []
    for side, q, price, days_ago, minutes in fills:
        when = at(days_ago, 9, 15) + timedelta(minutes=minutes)
        made.append(trade(side, q, str(price), when))
    add(p, *made)
    for _, t in sorted(enumerate(made), key=lambda it: (it[1].time, it[0])):
        ref.apply(t.side, t.quantity, t.price, t.time.date() == TODAY, prev)
    p.on_tick(Tick("INFY", 1, at(0, 15), float(last), prev_close=float(prev)))

    v = p.value("", "INFY")
    pos, pnl = v["position"], v["pnl"]
    # A symbol trades made flat is listed only on a day it traded (§6.4): before today it is
    # not held, and answers as one (quantity 0, zero amounts).
    listed = ref.quantity != 0 or any(t.time.date() == TODAY for t in made)
    assert p.is_listed("", "INFY") == listed
    if not listed:
        assert (pos["quantity"], pnl["realized"], pos["trades"]) == (0, 0.0, 0)
        return
    assert pos["quantity"] == ref.quantity
    assert pos["invested_value"] == money(ref.cost)
    assert pos["average_price"] == (money(ref.cost / ref.quantity) if ref.quantity else 0.0)
    assert pnl["realized"] == money(ref.realized)
    assert pnl["day_realized"] == money(ref.day_realized)
    assert pnl["unrealized"] == money(ref.quantity * last - ref.cost)
    assert pnl["day"] == money(ref.day_m2m(last, prev))
    assert (pos["buy_quantity"], pos["sell_quantity"]) == (ref.bought, ref.sold)
    assert pos["day_buy_quantity"] == sum(q for q, _ in ref.day_buys)
    assert pos["day_sell_quantity"] == sum(q for q, _ in ref.day_sells)
    assert pos["day_buy_price"] == _avg(ref.day_buys)
    assert pos["day_sell_price"] == _avg(ref.day_sells)
    assert pos["trades"] == ref.count
    # exact: the engine's own ledger holds the reference's Decimals, unrounded
    ledger = p._books[""]["INFY"].ledger  # the exact figures behind the payload
    assert ledger is not None
    assert (ledger.quantity, ledger.cost, ledger.realized) == (ref.quantity, ref.cost, ref.realized)


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_trade_checks_its_invariants(side: str) -> None:
    with pytest.raises(ValueError, match="quantity"):
        Trade("x", "INFY", side, 0, Decimal(1), at(0), 1)
    with pytest.raises(ValueError, match="price"):
        Trade("x", "INFY", side, 1, Decimal("0.001"), at(0), 1)
    with pytest.raises(ValueError, match="aware"):
        Trade("x", "INFY", side, 1, Decimal(1), datetime(2026, 1, 1), 1)
    with pytest.raises(ValueError, match="side"):
        Trade("x", "INFY", "hold", 1, Decimal(1), at(0), 1)


@settings(max_examples=150, deadline=None)
@given(
    TRADES,
    st.one_of(st.none(), st.tuples(st.integers(-80, 80).filter(bool), PRICES)),
    st.sampled_from([TODAY, TODAY - timedelta(days=1)]),
)
def test_extending_a_ledger_trade_by_trade_equals_replaying_it(
    fills: list[tuple[str, int, Decimal, int, int]],
    carried: tuple[int, Decimal] | None,
    today: date,
) -> None:
    """The ledger a trade recorded after every other extends is the one ``fifo`` replays, and
    its day figures (read from the lists' ends) are those of the replayed ledger, exactly."""
    position = None if carried is None else Position("INFY", carried[0], carried[1])
    made = sorted(
        (
            Trade(f"x{i}", "INFY", side, q, price, at(d, 9, 15) + timedelta(minutes=m), i + 1)
            for i, (side, q, price, d, m) in enumerate(fills)
        ),
        key=lambda t: (t.time, t.seq),
    )
    ledger = fifo(position, made[:1])
    for n in range(2, len(made) + 1):
        grown = extended(ledger, made[n - 1])
        assert grown is not None
        ledger = grown
        assert ledger == fifo(position, made[:n])
        assert day_figures(ledger, today) == day_figures(fifo(position, made[:n]), today)
    if len(made) > 1:
        assert extended(ledger, made[0]) is None  # earlier than the last: replay instead


def test_day_figures_read_from_the_end_match_a_full_scan() -> None:
    """Carried lot, yesterday's and today's trades: today's figures count today's only."""
    position = Position("INFY", 5, Decimal("100"))
    trades = [
        Trade("a", "INFY", "buy", 10, Decimal("101"), at(1, 10), 1),
        Trade("b", "INFY", "sell", 12, Decimal("103"), at(1, 11), 2),
        Trade("c", "INFY", "buy", 4, Decimal("99"), at(0, 10), 3),
        Trade("d", "INFY", "sell", 2, Decimal("98"), at(0, 11), 4),
    ]
    day = day_figures(fifo(position, trades), TODAY)
    assert (day.buy_quantity, day.sell_quantity) == (4, 2)
    assert day.buy_value == Decimal("396") and day.sell_value == Decimal("196")
    # Yesterday: 5 carried + 10 bought, 12 sold -> 3 of yesterday's lot left (carried today);
    # today: 4 bought, then 2 sold close 2 of the 3 carried (FIFO) at 98 vs 101.
    assert (day.carried_quantity, day.new_quantity, day.new_cost) == (1, 4, Decimal("396"))
    assert day.realized == Decimal("-6")
    assert (day.carried_closed_quantity, day.carried_closed_exit) == (2, Decimal("196"))
