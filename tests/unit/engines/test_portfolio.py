from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.fakes import FakePositionStore as FakeStore
from tests.helpers import seed_view
from tickhub.core.commands import MAX_QUANTITY, parse_position_fields
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import Tick
from tickhub.core.protocol import ErrorCode, ProtocolError
from tickhub.engines.portfolio import (
    Portfolio,
    PortfolioFileError,
    Position,
    PositionChange,
    position_from_row,
    position_of,
    position_to_row,
)
from tickhub.ingest.portfolio import (
    StoredPortfolio,
    demo_portfolio_file,
    load_positions_file,
)
from tickhub.store import PositionStore

T0 = datetime(2025, 1, 27, 4, 0, tzinfo=UTC)


def _conforms(store: PositionStore) -> PositionStore:
    return store


@pytest.fixture(scope="module")
def registry() -> InstrumentRegistry:
    return InstrumentRegistry.bundled()


def tick(symbol: str, price: float, prev_close: float = 0.0) -> Tick:
    return Tick(symbol=symbol, instrument_token=1, timestamp=T0, price=price, prev_close=prev_close)


def pos(symbol: str, quantity: int, average_price: str, **kw: str) -> Position:
    return Position(symbol, quantity, Decimal(average_price), kw.get("product"), kw.get("exchange"))


def paise(value: Decimal) -> float:
    """Reference rounding, written out: half away from zero at the paisa."""
    cents = abs(value) * 100
    whole = int(cents)
    if cents - whole >= Decimal("0.5"):
        whole += 1
    return float(Decimal(whole if value >= 0 else -whole) / 100)


# --- valuation ----------------------------------------------------------------------------------


def test_long_position_value_and_day_pnl() -> None:
    p = Portfolio()
    p.set_position("", pos("RELIANCE", 10, "1450.55", product="CNC", exchange="NSE"))
    p.on_tick(tick("RELIANCE", 1500.35, prev_close=1490.10))

    v = p.value("", "RELIANCE")

    # 10 × 1500.35 = 15003.50; 10 × 1450.55 = 14505.50; (1500.35 − 1450.55) × 10 = 498.00
    # 498 / 14505.5 × 100 = 3.4331…; (1500.35 − 1490.10) × 10 = 102.50
    # 10.25 / 1490.10 × 100 = 0.6878…
    assert seed_view(v["position"]) == {
        "symbol": "RELIANCE",
        "quantity": 10,
        "average_price": 1450.55,
        "last_price": 1500.35,
        "current_value": 15003.5,
        "invested_value": 14505.5,
        "product": "CNC",
        "exchange": "NSE",
    }
    assert seed_view(v["pnl"]) == {
        "unrealized": 498.0,
        "unrealized_percent": 3.43,
        "day": 102.5,
        "day_percent": 0.69,
    }
    assert v["pnl"]["unrealized_percent"] == paise(Decimal("498") / Decimal("14505.5") * 100)
    assert v["pnl"]["day_percent"] == paise(Decimal("10.25") / Decimal("1490.10") * 100)


def test_short_position_gains_when_price_falls() -> None:
    p = Portfolio()
    p.set_position("", pos("TCS", -20, "3200.00", product="MIS"))
    p.on_tick(tick("TCS", 3100.50, prev_close=3150.25))

    v = p.value("", "TCS")

    # −20 × 3100.50 = −62010.00; −20 × 3200 = −64000.00; (3100.50 − 3200) × −20 = +1990.00
    # 1990 / 64000 × 100 = 3.109375; (3100.50 − 3150.25) × −20 = +995.00
    # −49.75 / 3150.25 × 100 × sign(−20) = +1.5792…
    assert v["position"]["current_value"] == -62010.0
    assert v["position"]["invested_value"] == -64000.0
    assert seed_view(v["pnl"]) == {
        "unrealized": 1990.0,
        "unrealized_percent": 3.11,
        "day": 995.0,
        "day_percent": 1.58,
    }
    assert v["pnl"]["day_percent"] == paise(Decimal("49.75") / Decimal("3150.25") * 100)


def test_short_position_loses_when_price_rises() -> None:
    p = Portfolio()
    p.set_position("", pos("SBIN", -100, "800"))
    p.on_tick(tick("SBIN", 812.4, prev_close=805.0))

    pnl = p.value("", "SBIN")["pnl"]

    # (812.40 − 800) × −100 = −1240; −1240 / 80000 × 100 = −1.55; (812.40 − 805) × −100 = −740
    # 7.40 / 805 × 100 × −1 = −0.9192…
    assert seed_view(pnl) == {
        "unrealized": -1240.0,
        "unrealized_percent": -1.55,
        "day": -740.0,
        "day_percent": -0.92,
    }


def test_totals_across_long_short_and_unpriced_positions() -> None:
    p = Portfolio()
    p.set_position("", pos("RELIANCE", 10, "1450.55"))
    p.set_position("", pos("TCS", -20, "3200.00"))
    p.set_position("", pos("ITC", 100, "410.20"))  # no tick yet: valued at its average price
    p.on_tick(tick("RELIANCE", 1500.35, prev_close=1490.10))
    p.on_tick(tick("TCS", 3100.50, prev_close=3150.25))

    totals = p.value("", "RELIANCE")["portfolio"]

    # value:    15003.50 − 62010.00 + 41020.00 = −5986.50
    # invested: 14505.50 − 64000.00 + 41020.00 = −8474.50
    # gross:    14505.50 + 64000.00 + 41020.00 = 119525.50
    # pnl: 498 + 1990 + 0 = 2488 -> 2488 / 119525.5 × 100 = 2.0816…; day: 102.50 + 995 + 0 = 1097.50
    assert seed_view(totals) == {
        "total_value": -5986.5,
        "total_invested": -8474.5,
        "total_pnl": 2488.0,
        "total_pnl_percent": 2.08,
        "day_pnl": 1097.5,
        "positions": 3,
        "priced": 2,
    }
    assert p.totals("") == totals
    assert totals["total_pnl"] == totals["total_value"] - totals["total_invested"]


def test_unpriced_position_is_valued_at_average_price() -> None:
    p = Portfolio()
    p.set_position("", pos("ITC", 100, "410.20"))

    v = p.value("", "ITC")

    assert v["position"]["last_price"] is None
    assert v["position"]["current_value"] == v["position"]["invested_value"] == 41020.0
    assert seed_view(v["pnl"]) == {
        "unrealized": 0.0,
        "unrealized_percent": 0.0,
        "day": 0.0,
        "day_percent": 0.0,
    }


def test_unknown_prev_close_gives_zero_day_pnl_and_keeps_last_known() -> None:
    p = Portfolio()
    p.set_position("", pos("INFY", 10, "1500"))
    p.on_tick(tick("INFY", 1510.0))
    assert p.value("", "INFY")["pnl"]["day"] == 0.0

    p.on_tick(tick("INFY", 1510.0, prev_close=1505.0))
    p.on_tick(tick("INFY", 1520.0, prev_close=0.0))  # an LTP-only tick: prev close unknown

    assert p.prev_close("INFY") == Decimal("1505.0")
    assert p.value("", "INFY")["pnl"]["day"] == 150.0  # (1520 − 1505) × 10


def test_non_positive_tick_price_is_ignored() -> None:
    p = Portfolio()
    p.on_tick(tick("INFY", 1510.0))
    p.on_tick(tick("INFY", 0.0))
    p.on_tick(tick("INFY", float("nan")))
    assert p.last_price("INFY") == Decimal("1510.0")


def test_no_position_answers_quantity_zero() -> None:
    p = Portfolio()
    p.set_position("", pos("TCS", 5, "3000"))
    p.on_tick(tick("SBIN", 812.45, prev_close=800.0))

    v = p.value("", "SBIN")

    assert seed_view(v["position"]) == {
        "symbol": "SBIN",
        "quantity": 0,
        "average_price": 0.0,
        "last_price": 812.45,
        "current_value": 0.0,
        "invested_value": 0.0,
        "product": None,
        "exchange": None,
    }
    assert seed_view(v["pnl"]) == {
        "unrealized": 0.0,
        "unrealized_percent": 0.0,
        "day": 0.0,
        "day_percent": 0.0,
    }
    assert v["portfolio"]["positions"] == 1
    assert v["portfolio"]["total_invested"] == 15000.0


def test_no_position_and_no_price_for_unknown_owner() -> None:
    v = Portfolio().value("nobody", "SBIN")
    assert v["position"]["quantity"] == 0
    assert v["position"]["last_price"] is None
    assert v["portfolio"]["positions"] == 0
    assert v["portfolio"]["total_pnl_percent"] == 0.0


# --- paise rounding -----------------------------------------------------------------------------


def test_tenths_do_not_drift() -> None:
    p = Portfolio()
    p.set_position("", pos("ITC", 3, "0.1"))
    p.on_tick(tick("ITC", 0.3, prev_close=0.2))

    v = p.value("", "ITC")

    # In floats: 3 × 0.1 = 0.30000000000000004, (0.3 − 0.1) × 3 = 0.6000000000000001,
    # (0.3 − 0.2) × 3 = 0.29999999999999993.
    assert v["position"]["invested_value"] == 0.3
    assert v["position"]["current_value"] == 0.9
    assert v["pnl"]["unrealized"] == 0.6
    assert v["pnl"]["day"] == 0.3
    assert v["pnl"]["unrealized_percent"] == 200.0  # 0.6 / 0.3 × 100
    assert v["pnl"]["day_percent"] == 50.0  # 0.1 / 0.2 × 100


def test_totals_of_tenths_do_not_drift() -> None:
    p = Portfolio()
    for symbol in ("ITC", "SBIN", "INFY"):
        p.set_position("", pos(symbol, 1, "0.1"))
        p.on_tick(tick(symbol, 0.2))

    totals = p.totals("")

    # Float sums: 0.1 + 0.1 + 0.1 = 0.30000000000000004; 0.2 × 3 = 0.6000000000000001.
    assert totals["total_invested"] == 0.3
    assert totals["total_value"] == 0.6
    assert totals["total_pnl"] == 0.3
    assert totals["total_pnl_percent"] == 100.0


def test_half_paisa_rounds_up_away_from_zero() -> None:
    p = Portfolio()
    p.set_position("", pos("RELIANCE", 1, "1234.565"))
    p.set_position("", pos("INFY", 3, "411.855"))  # 3 × 411.855 = 1235.565
    p.set_position("", pos("TCS", -1, "1234.565"))

    assert p.value("", "RELIANCE")["position"]["average_price"] == 1234.57
    assert p.value("", "RELIANCE")["position"]["invested_value"] == 1234.57
    assert p.value("", "INFY")["position"]["invested_value"] == 1235.57
    assert p.value("", "TCS")["position"]["invested_value"] == -1234.57


def test_float_tick_prices_round_as_written() -> None:
    # round(2.675, 2) == 2.67 and round(1.005, 2) == 1.0 with binary floats; as written they are
    # exactly half a paisa, which rounds up.
    p = Portfolio()
    p.set_position("", pos("ITC", 1, "2"))
    p.set_position("", pos("SBIN", -1, "1"))
    p.on_tick(tick("ITC", 2.675))
    p.on_tick(tick("SBIN", 1.005))

    assert p.value("", "ITC")["position"]["current_value"] == 2.68
    assert p.value("", "ITC")["pnl"]["unrealized"] == 0.68
    assert p.value("", "SBIN")["position"]["current_value"] == -1.01
    assert p.value("", "SBIN")["pnl"]["unrealized"] == -0.01  # (1.005 − 1) × −1 = −0.005


def test_no_negative_zero_on_output() -> None:
    p = Portfolio()
    p.set_position("", pos("SBIN", -1, "800"))
    p.on_tick(tick("SBIN", 800.0, prev_close=800.0))
    pnl = p.value("", "SBIN")["pnl"]
    assert all(json.dumps(value) == "0.0" for value in pnl.values())


# --- owners, store, seeding ---------------------------------------------------------------------


def test_positions_are_per_owner() -> None:
    p = Portfolio()
    p.set_position("", pos("TCS", 5, "3000"))
    p.set_position("alice", pos("SBIN", 10, "800"))
    p.set_position("alice", pos("INFY", -2, "1500"))

    assert p.held_symbols("alice") == ["INFY", "SBIN"]
    assert p.held_symbols("") == ["TCS"]
    assert p.owners() == ["", "alice"]
    assert p.value("alice", "TCS")["position"]["quantity"] == 0
    assert p.value("alice", "TCS")["portfolio"]["positions"] == 2


def test_set_position_overwrites_and_zero_quantity_removes() -> None:
    store = FakeStore()
    p = StoredPortfolio(store, now=lambda: T0)
    p.set_position("", pos("TCS", 5, "3000"))
    p.set_position("", pos("TCS", 8, "3010.5"))
    assert p.portfolio.positions("") == [pos("TCS", 8, "3010.5")]

    p.set_position("", pos("TCS", 0, "3010.5"))

    assert p.portfolio.positions("") == []
    assert store.rows == {}


def test_store_rows_round_trip_through_load() -> None:
    store = _conforms(FakeStore())
    p = StoredPortfolio(store, now=lambda: T0)
    p.set_position("alice", pos("RELIANCE", -7, "1485.6050", product="MIS", exchange="NSE"))

    [row] = store.load_positions("alice")
    assert row == {
        "owner": "alice",
        "symbol": "RELIANCE",
        "quantity": -7,
        "average_price": "1485.6050",
        "product": "MIS",
        "exchange": "NSE",
        "updated_at": "2025-01-27T04:00:00.000Z",
    }

    fresh = StoredPortfolio(store, now=lambda: T0)
    assert fresh.load() == 1
    assert fresh.portfolio.positions("alice") == [
        pos("RELIANCE", -7, "1485.6050", product="MIS", exchange="NSE")
    ]


def test_remove_position() -> None:
    store = FakeStore()
    p = StoredPortfolio(store, now=lambda: T0)
    p.set_position("", pos("TCS", 5, "3000"))

    assert p.remove_position("", "TCS") is True
    assert p.remove_position("", "TCS") is False
    assert p.portfolio.positions("") == []
    assert store.rows == {}


def test_store_failure_leaves_memory_unchanged() -> None:
    store = FakeStore()
    p = StoredPortfolio(store, now=lambda: T0)
    p.set_position("", pos("TCS", 5, "3000"))
    store.fail = True

    with pytest.raises(OSError):
        p.set_position("", pos("TCS", 9, "3100"))
    with pytest.raises(OSError):
        p.replace("", [pos("SBIN", 1, "800")])

    assert p.portfolio.positions("") == [pos("TCS", 5, "3000")]


def test_replace_is_all_the_owner_holds() -> None:
    store = FakeStore()
    p = StoredPortfolio(store, now=lambda: T0)
    p.set_position("", pos("TCS", 5, "3000"))
    p.set_position("bob", pos("ITC", 5, "400"))

    p.replace("", [pos("SBIN", 1, "800"), pos("INFY", 0, "1500")])

    assert p.portfolio.held_symbols("") == ["SBIN"]
    assert p.portfolio.held_symbols("bob") == ["ITC"]
    assert sorted(store.rows) == [("", "SBIN"), ("bob", "ITC")]
    with pytest.raises(ValueError, match="duplicate symbol: 'SBIN'"):
        p.replace("", [pos("SBIN", 1, "800"), pos("SBIN", 2, "800")])


def test_file_seeds_only_an_owner_with_no_positions() -> None:
    store = FakeStore()
    first = StoredPortfolio(store, now=lambda: T0)
    first.load()
    assert first.seed("", [pos("TCS", 5, "3000"), pos("SBIN", 10, "800")]) is True
    first.set_position("", pos("TCS", 7, "3050"))  # a protocol change after the seed

    restarted = StoredPortfolio(store, now=lambda: T0)
    restarted.load()
    assert restarted.seed("", [pos("TCS", 5, "3000"), pos("ITC", 1, "400")]) is False
    assert restarted.portfolio.positions("") == [pos("SBIN", 10, "800"), pos("TCS", 7, "3050")]


def test_corrupt_store_row_is_refused_before_anything_changes() -> None:
    store = FakeStore()
    store.rows[("", "TCS")] = {
        "owner": "",
        "symbol": "TCS",
        "quantity": 1.5,
        "average_price": "3000",
    }
    p = StoredPortfolio(store, now=lambda: T0)
    with pytest.raises(ValueError, match=r"bad stored position ''/'TCS': quantity"):
        p.load()


def test_operations_return_what_changed() -> None:
    p = Portfolio()
    tcs, tcs2, sbin = pos("TCS", 5, "3000"), pos("TCS", 8, "3010"), pos("SBIN", 1, "800")

    assert p.set_position("", tcs) == PositionChange("", saved=(tcs,))
    assert p.set_position("", tcs2) == PositionChange("", saved=(tcs2,), before=(tcs,))
    assert p.set_position("", sbin) == PositionChange("", saved=(sbin,))
    assert p.set_position("", pos("SBIN", 0, "800")) == PositionChange(
        "", removed=("SBIN",), before=(sbin,)
    )
    assert p.remove_position("", "ITC") == PositionChange("", removed=("ITC",))
    assert p.replace("", [sbin, pos("INFY", 0, "1500")]) == PositionChange(
        "", saved=(sbin,), removed=("TCS",), whole=True, before=(tcs2,)
    )
    assert p.seed("", [tcs]) is None
    assert p.seed("bob", [tcs]) == PositionChange("bob", saved=(tcs,), whole=True)
    assert p.positions("") == [sbin]
    assert p.positions("bob") == [tcs]


def test_undo_puts_back_what_each_change_replaced() -> None:
    p = Portfolio()
    p.set_position("", pos("TCS", 5, "3000"))
    p.set_position("", pos("ITC", 2, "400"))
    p.set_position("bob", pos("SBIN", 1, "800"))
    held = {owner: p.positions(owner) for owner in ("", "bob")}
    changes: list[Callable[[], PositionChange]] = [
        lambda: p.set_position("", pos("TCS", 9, "3100")),
        lambda: p.set_position("", pos("INFY", 1, "1500")),
        lambda: p.set_position("carol", pos("INFY", 1, "1500")),
        lambda: p.set_position("", pos("TCS", 0, "3000")),
        lambda: p.remove_position("bob", "SBIN"),
        lambda: p.remove_position("", "INFY"),
        lambda: p.replace("", [pos("SBIN", 3, "810")]),
        lambda: p.replace("bob", []),
    ]
    for change in changes:
        p.undo(change())
        assert {owner: p.positions(owner) for owner in ("", "bob")} == held
        assert p.owners() == ["", "bob"]


def test_store_failure_on_removal_and_seed_leaves_memory_unchanged() -> None:
    store = FakeStore()
    p = StoredPortfolio(store, now=lambda: T0)
    p.set_position("", pos("TCS", 5, "3000"))
    store.fail = True

    with pytest.raises(OSError):
        p.remove_position("", "TCS")
    with pytest.raises(OSError):
        p.set_position("", pos("TCS", 0, "3000"))
    with pytest.raises(OSError):
        p.seed("bob", [pos("SBIN", 1, "800")])

    assert p.portfolio.positions("") == [pos("TCS", 5, "3000")]
    assert p.portfolio.owners() == [""]
    assert list(store.rows) == [("", "TCS")]


def test_removal_reaches_a_row_only_the_store_has() -> None:
    store = FakeStore()
    StoredPortfolio(store, now=lambda: T0).set_position("", pos("TCS", 5, "3000"))
    p = StoredPortfolio(store, now=lambda: T0)  # not loaded: memory holds nothing

    assert p.remove_position("", "TCS") is True
    assert store.rows == {}


def test_rows_are_stamped_with_the_time_of_each_write() -> None:
    times = iter([T0, T0 + timedelta(minutes=1)])
    store = FakeStore()
    p = StoredPortfolio(store, now=lambda: next(times))

    def stamp() -> object:  # read afresh each time (a subscript would stay narrowed)
        return store.rows[("", "TCS")]["updated_at"]

    p.set_position("", pos("TCS", 5, "3000"))
    assert stamp() == "2025-01-27T04:00:00.000Z"
    p.replace("", [pos("TCS", 6, "3000")])
    assert stamp() == "2025-01-27T04:01:00.000Z"


def test_position_rows_convert_both_ways() -> None:
    position = pos("SBIN", 12, "812.4500", product="CNC", exchange="NSE")
    assert position_from_row(position_to_row("x", position, T0)) == ("x", position)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", 1, Decimal("1")), "symbol"),
        (("TCS", 1.5, Decimal("1")), "quantity"),
        (("TCS", True, Decimal("1")), "quantity"),
        (("TCS", MAX_QUANTITY + 1, Decimal("1")), "quantity"),
        (("TCS", 1, Decimal("0")), "average price"),
        (("TCS", 1, Decimal("-1")), "average price"),
        (("TCS", 1, Decimal("NaN")), "average price"),
        (("TCS", 1, 100.0), "average price"),
    ],
)
def test_position_checks_its_invariants(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Position(*args)  # type: ignore[arg-type]


# --- a set_position's fields, checked, to a Position -------------------------------------------


def parse_position(msg: Mapping[str, object], registry: InstrumentRegistry) -> object:
    """The position a ``set_position`` asks for, or why not, as the ingest gets it."""
    checked = parse_position_fields(msg, registry)
    return checked if isinstance(checked, ProtocolError) else position_of(checked)


def _msg(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "set_position",
        "symbol": "RELIANCE",
        "quantity": 10,
        "average_price": 1500.5,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def test_parse_position_accepts_a_full_request(registry: InstrumentRegistry) -> None:
    got = parse_position(_msg(product="cnc", exchange="nse", average_price="1500.1250"), registry)
    assert got == Position("RELIANCE", 10, Decimal("1500.1250"), "CNC", "NSE")


def test_parse_position_reads_float_prices_as_written(registry: InstrumentRegistry) -> None:
    got = parse_position(_msg(symbol="nse:sbin", quantity=-3, average_price=0.1 + 0.2), registry)
    assert got == Position("SBIN", -3, Decimal("0.30000000000000004"), None, "NSE")
    got = parse_position(_msg(average_price=1500.1), registry)
    assert isinstance(got, Position) and got.average_price == Decimal("1500.1")
    got = parse_position(_msg(average_price=1500), registry)
    assert isinstance(got, Position) and got.average_price == Decimal(1500)


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"symbol": _DROP}, ErrorCode.MISSING_FIELD, "symbol"),
        ({"symbol": ""}, ErrorCode.MISSING_FIELD, "symbol"),
        ({"symbol": None}, ErrorCode.MISSING_FIELD, "symbol"),
        ({"quantity": _DROP}, ErrorCode.MISSING_FIELD, "quantity"),
        ({"quantity": None}, ErrorCode.MISSING_FIELD, "quantity"),
        ({"average_price": _DROP}, ErrorCode.MISSING_FIELD, "average_price"),
        ({"average_price": ""}, ErrorCode.MISSING_FIELD, "average_price"),
        ({"symbol": 738561}, ErrorCode.INVALID_FIELD, "symbol"),
        ({"symbol": "NIFTY 50"}, ErrorCode.INVALID_FIELD, "symbol"),
        ({"quantity": 1.5}, ErrorCode.INVALID_FIELD, "quantity"),
        ({"quantity": 10.0}, ErrorCode.INVALID_FIELD, "quantity"),
        ({"quantity": "10"}, ErrorCode.INVALID_FIELD, "quantity"),
        ({"quantity": "ten"}, ErrorCode.INVALID_FIELD, "quantity"),
        ({"quantity": True}, ErrorCode.INVALID_FIELD, "quantity"),
        ({"quantity": [10]}, ErrorCode.INVALID_FIELD, "quantity"),
        ({"quantity": MAX_QUANTITY + 1}, ErrorCode.INVALID_FIELD, "quantity"),
        ({"average_price": 0}, ErrorCode.INVALID_FIELD, "average_price"),
        ({"average_price": -1500.5}, ErrorCode.INVALID_FIELD, "average_price"),
        ({"average_price": "-5"}, ErrorCode.INVALID_FIELD, "average_price"),
        ({"average_price": "0.00"}, ErrorCode.INVALID_FIELD, "average_price"),
        ({"average_price": "abc"}, ErrorCode.INVALID_FIELD, "average_price"),
        ({"average_price": "1_500"}, ErrorCode.INVALID_FIELD, "average_price"),
        ({"average_price": "NaN"}, ErrorCode.INVALID_FIELD, "average_price"),
        ({"average_price": "Infinity"}, ErrorCode.INVALID_FIELD, "average_price"),
        ({"average_price": float("nan")}, ErrorCode.INVALID_FIELD, "average_price"),
        ({"average_price": float("inf")}, ErrorCode.INVALID_FIELD, "average_price"),
        ({"average_price": True}, ErrorCode.INVALID_FIELD, "average_price"),
        ({"average_price": 0.001}, ErrorCode.INVALID_FIELD, "average_price"),
        ({"average_price": 1e12}, ErrorCode.INVALID_FIELD, "average_price"),
        ({"product": "BO"}, ErrorCode.INVALID_FIELD, "product"),
        ({"product": 1}, ErrorCode.INVALID_FIELD, "product"),
        ({"exchange": 1}, ErrorCode.INVALID_FIELD, "exchange"),
    ],
)
def test_parse_position_rejects_bad_fields(
    registry: InstrumentRegistry, fields: dict[str, object], code: ErrorCode, field: str
) -> None:
    got = parse_position(_msg(**fields), registry)

    assert isinstance(got, ProtocolError)
    assert got.code is code
    assert f"'{field}'" in got.message
    assert got.details["field"] == field
    if code is ErrorCode.INVALID_FIELD:
        value = fields[field]
        if isinstance(value, list | dict):  # a structure is named by its JSON type, not echoed
            assert "got a JSON " in got.message and "value" not in got.details
        else:
            assert repr(value) in got.message
            assert got.details["value"] == value or value != value  # NaN


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"symbol": "RELIANCEX"}, "RELIANCEX"),
        ({"symbol": "RELIANCE", "exchange": "BSE"}, "BSE:RELIANCE"),
        ({"symbol": "MCX:RELIANCE"}, "MCX:RELIANCE"),
    ],
)
def test_parse_position_unknown_symbol(
    registry: InstrumentRegistry, fields: Mapping[str, object], name: str
) -> None:
    got = parse_position(_msg(**fields), registry)
    assert got == ProtocolError(
        ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol: {name!r}", {"symbol": name}
    )


# --- files --------------------------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_file_loads(tmp_path: Path, registry: InstrumentRegistry) -> None:
    path = write(
        tmp_path,
        "p.csv",
        "Exchange,average_price,symbol,quantity,product\n"
        "NSE,1485.60,RELIANCE,100,CNC\n"
        "\n"
        ",3125.4,tcs,-15,\n",
    )
    assert load_positions_file(path, registry) == [
        Position("RELIANCE", 100, Decimal("1485.60"), "CNC", "NSE"),
        Position("TCS", -15, Decimal("3125.4"), None, "NSE"),
    ]


def test_csv_file_without_optional_columns(tmp_path: Path, registry: InstrumentRegistry) -> None:
    path = write(tmp_path, "p.csv", "symbol,quantity,average_price\nSBIN,+5,812\n")
    assert load_positions_file(str(path), registry) == [
        Position("SBIN", 5, Decimal("812"), None, "NSE")
    ]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("RELIANCEX,10,1500", "unknown symbol: 'RELIANCEX'"),
        ("SBIN,1.5,800", "field 'quantity' must be an integer"),
        ("SBIN,ten,800", "'ten'"),
        ("SBIN,10,-800", "field 'average_price' must be a number greater than 0, got '-800'"),
        ("SBIN,10,0", "field 'average_price' must be a number greater than 0, got '0'"),
        ("SBIN,10,abc", "'abc'"),
        ("SBIN,10", "expected 3 columns, got 2"),
        ("SBIN,,800", "missing field: 'quantity'"),
        ("INFY,1,1500", "duplicate symbol 'INFY' (first on line 2)"),
    ],
)
def test_broken_csv_row_names_file_and_line_and_applies_nothing(
    tmp_path: Path, registry: InstrumentRegistry, row: str, reason: str
) -> None:
    path = write(
        tmp_path, "broken.csv", f"symbol,quantity,average_price\nINFY,5,1500\n\n{row}\nITC,1,400\n"
    )
    store = FakeStore()
    p = StoredPortfolio(store, now=lambda: T0)
    p.set_position("", pos("TCS", 1, "3000"))

    with pytest.raises(PortfolioFileError) as info:
        p.replace("", load_positions_file(path, registry))

    assert info.value.line == 4
    assert str(info.value).startswith(f"{path}:4: ")
    assert reason in str(info.value)
    assert p.portfolio.positions("") == [pos("TCS", 1, "3000")]
    assert list(store.rows) == [("", "TCS")]


def test_csv_header_lacking_a_column(tmp_path: Path, registry: InstrumentRegistry) -> None:
    path = write(tmp_path, "h.csv", "symbol,qty,average_price\nSBIN,1,800\n")
    with pytest.raises(PortfolioFileError, match=r"h\.csv:1: header lacks columns: quantity"):
        load_positions_file(path, registry)


def test_unreadable_and_empty_files(tmp_path: Path, registry: InstrumentRegistry) -> None:
    with pytest.raises(PortfolioFileError, match="cannot read"):
        load_positions_file(tmp_path / "missing.csv", registry)
    with pytest.raises(PortfolioFileError, match="empty file"):
        load_positions_file(write(tmp_path, "e.csv", ""), registry)


@pytest.mark.parametrize("wrapped", [False, True])
def test_json_file_loads(tmp_path: Path, registry: InstrumentRegistry, wrapped: bool) -> None:
    items = [
        {"symbol": "RELIANCE", "quantity": 100, "average_price": 1485.6, "product": "CNC"},
        {"symbol": "TCS", "quantity": -15, "average_price": "3125.40", "exchange": "NSE"},
    ]
    path = write(tmp_path, "p.json", json.dumps({"positions": items} if wrapped else items))
    assert load_positions_file(path, registry) == [
        Position("RELIANCE", 100, Decimal("1485.6"), "CNC", "NSE"),
        Position("TCS", -15, Decimal("3125.40"), None, "NSE"),
    ]


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"symbol": "RELIANCEX", "quantity": 1, "average_price": 1}, "unknown symbol: 'RELIANCEX'"),
        ({"symbol": "SBIN", "quantity": 1.5, "average_price": 800}, "got 1.5"),
        ({"symbol": "SBIN", "quantity": "10", "average_price": 800}, "got '10'"),
        ({"symbol": "SBIN", "quantity": 10, "average_price": -800}, "got -800"),
        ({"symbol": "SBIN", "quantity": 10, "average_price": 0}, "got 0"),
        ({"symbol": "SBIN", "quantity": 10}, "missing field: 'average_price'"),
        (
            {"symbol": "INFY", "quantity": 2, "average_price": 1},
            "duplicate symbol 'INFY' (first at",
        ),
        (["SBIN", 10, 800], "expected an object, got list"),
    ],
)
@pytest.mark.parametrize("wrapped", [False, True])
def test_broken_json_item_names_file_and_index(
    tmp_path: Path, registry: InstrumentRegistry, item: object, reason: str, wrapped: bool
) -> None:
    items = [{"symbol": "INFY", "quantity": 5, "average_price": 1500}, item]
    path = write(tmp_path, "broken.json", json.dumps({"positions": items} if wrapped else items))
    p = Portfolio()

    with pytest.raises(PortfolioFileError) as info:
        p.replace("", load_positions_file(path, registry))

    where = "positions[1]" if wrapped else "[1]"
    assert info.value.item == where
    assert str(info.value).startswith(f"{path}: {where}: ")
    assert reason in str(info.value)
    assert p.positions("") == []


def test_json_syntax_error_and_wrong_shape(tmp_path: Path, registry: InstrumentRegistry) -> None:
    bad = write(tmp_path, "s.json", '[\n  {"symbol": "SBIN",}\n]')
    with pytest.raises(PortfolioFileError, match=r"s\.json:2: invalid JSON") as info:
        load_positions_file(bad, registry)
    assert info.value.line == 2

    shape = write(tmp_path, "shape.json", '{"symbol": "SBIN"}')
    with pytest.raises(PortfolioFileError, match="expected a list of positions"):
        load_positions_file(shape, registry)


def test_format_is_sniffed_without_a_known_suffix(
    tmp_path: Path, registry: InstrumentRegistry
) -> None:
    as_json = write(
        tmp_path, "positions", '[{"symbol": "SBIN", "quantity": 1, "average_price": 800}]'
    )
    as_csv = write(tmp_path, "positions.txt", "symbol,quantity,average_price\nSBIN,1,800\n")
    assert load_positions_file(as_json, registry) == load_positions_file(as_csv, registry)


def test_demo_portfolio_loads_against_bundled_registry(registry: InstrumentRegistry) -> None:
    positions = load_positions_file(demo_portfolio_file(), registry)

    assert 6 <= len(positions) <= 8
    assert any(p.quantity < 0 for p in positions)
    for position in positions:
        instrument = registry.resolve(position.symbol)
        assert instrument.tradable and position.exchange == "NSE"
        # Average prices within 25% of the bundled reference prices: realistic, not made up.
        reference = Decimal(str(instrument.last_price))
        assert abs(position.average_price - reference) <= reference / 4

    p = StoredPortfolio(FakeStore(), now=lambda: T0)
    assert p.seed("", positions) is True
    assert p.portfolio.totals("")["positions"] == len(positions)
