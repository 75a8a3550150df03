"""Parsing the trade requests: what is accepted, exactly, and the first error of each message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tickhub.core.commands import (
    TRADE_MAX_AGE,
    TRADE_MAX_AHEAD,
    AddTrade,
    DeleteTrade,
    ListTrades,
    Product,
    Side,
    parse_command,
    trade_time_error,
)
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.protocol import ErrorCode, ProtocolError
from tickhub.core.topics import Endpoint


@pytest.fixture(scope="module")
def registry() -> InstrumentRegistry:
    return InstrumentRegistry.bundled()


def parse(registry: InstrumentRegistry, **msg: object) -> object:
    return parse_command(msg, endpoint=Endpoint.PORTFOLIO, registry=registry)


def test_a_full_add_trade_is_read_exactly(registry: InstrumentRegistry) -> None:
    got = parse(
        registry, type="add_trade", symbol="reliance", side=" Sell ", quantity=10, price=0.1,
        time="2026-12-02T10:15:00+05:30", product="mis", exchange="nse", id="c-1",
    )  # fmt: skip
    assert got == AddTrade(
        "RELIANCE",
        Side.SELL,
        10,
        Decimal("0.1"),  # the float's shortest repr, not 0.1000000000000000055…
        "NSE",
        time=datetime(2026, 12, 2, 4, 45, tzinfo=UTC),
        product=Product.MIS,
        id="c-1",
    )
    text = parse(registry, type="add_trade", symbol="TCS", side="buy", quantity=1,
                 price="3000.123456789", time="2026-12-02T04:45:00Z")  # fmt: skip
    assert isinstance(text, AddTrade) and text.price == Decimal("3000.123456789")
    assert text.time == datetime(2026, 12, 2, 4, 45, tzinfo=UTC) and text.id is None


def test_list_and_delete(registry: InstrumentRegistry) -> None:
    assert parse(registry, type="list_trades") == ListTrades()
    assert parse(registry, type="list_trades", symbol="infy") == ListTrades("INFY")
    assert parse(registry, type="delete_trade", id="t_0123456789ab") == DeleteTrade(
        "t_0123456789ab"
    )


def test_fields_are_checked_in_order(registry: InstrumentRegistry) -> None:
    err = parse(registry, type="add_trade", symbol="NOPE", side="hold", quantity=0)
    assert isinstance(err, ProtocolError) and err.code is ErrorCode.UNKNOWN_SYMBOL
    err = parse(registry, type="add_trade", symbol="TCS", side="hold", quantity=0)
    assert isinstance(err, ProtocolError) and err.details["field"] == "side"
    err = parse(registry, type="add_trade", symbol="TCS", side="buy", quantity=True, price=1)
    assert isinstance(err, ProtocolError) and err.details["field"] == "quantity"
    err = parse(registry, type="add_trade", symbol="TCS", side="buy", quantity=1)
    assert isinstance(err, ProtocolError) and err.code is ErrorCode.MISSING_FIELD
    err = parse(registry, type="add_trade", symbol="TCS", side="buy", quantity=1,
                price="1." + "1" * 21)  # fmt: skip
    assert isinstance(err, ProtocolError) and "20 decimals" in err.message


def test_time_bounds() -> None:
    now = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
    assert trade_time_error(now + TRADE_MAX_AHEAD, now) is None
    assert trade_time_error(now - TRADE_MAX_AGE, now) is None
    ahead = trade_time_error(now + TRADE_MAX_AHEAD + timedelta(seconds=1), now)
    assert ahead is not None and "future" in ahead.message
    old = trade_time_error(now - TRADE_MAX_AGE - timedelta(seconds=1), now)
    assert old is not None and "400 days" in old.message
