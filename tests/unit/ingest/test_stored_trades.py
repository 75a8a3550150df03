"""StoredPortfolio's trades over a real SQLite store: saved before kept, undone on failure."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tickhub.core.commands import AddTrade, Side
from tickhub.core.model import IST, Tick
from tickhub.core.protocol import ErrorCode, ProtocolError
from tickhub.engines.portfolio import Position
from tickhub.ingest.portfolio import StoredPortfolio
from tickhub.store.base import PositionRow, TradeRow
from tickhub.store.sqlite import SqliteStore

NOW = datetime(2026, 12, 2, 11, 0, tzinfo=IST)


class FailingStore(SqliteStore):
    """A real SQLite store whose trade writes can be made to fail."""

    fail = False

    def add_trade(self, row: TradeRow) -> None:
        if self.fail:
            raise OSError("disk full")
        super().add_trade(row)

    def delete_trade(self, owner: str, id: str) -> bool:
        if self.fail:
            raise OSError("disk full")
        return super().delete_trade(owner, id)

    def save_carried(
        self, owner: str, symbol: str, position: PositionRow | None, after_seq: int
    ) -> None:
        if self.fail:
            raise OSError("disk full")
        super().save_carried(owner, symbol, position, after_seq)


def buy(quantity: int, price: str, *, id: str | None = None, minutes: int = 30) -> AddTrade:
    when = NOW - timedelta(minutes=minutes)
    return AddTrade("INFY", Side.BUY, quantity, Decimal(price), "NSE", time=when, id=id)


def sell(quantity: int, price: str, *, minutes: int = 10) -> AddTrade:
    when = NOW - timedelta(minutes=minutes)
    return AddTrade("INFY", Side.SELL, quantity, Decimal(price), "NSE", time=when)


def opened(path: Path) -> tuple[FailingStore, StoredPortfolio]:
    store = FailingStore(path)
    portfolio = StoredPortfolio(store, trades=store, now=lambda: NOW)
    portfolio.load()
    return store, portfolio


def test_a_failed_trade_write_changes_nothing_in_memory(tmp_path: Path) -> None:
    store, p = opened(tmp_path / "s.db")
    assert not isinstance(p.add_trade("", buy(10, "100")), ProtocolError)
    before = p.portfolio.value("", "INFY")
    store.fail = True
    with pytest.raises(OSError):
        p.add_trade("", sell(4, "110"))
    (only,) = p.portfolio.trades("")
    with pytest.raises(OSError):
        p.delete_trade("", only.id)
    with pytest.raises(OSError):
        p.set_position("", Position("INFY", 3, Decimal("90")))
    assert p.portfolio.value("", "INFY") == before
    assert p.portfolio.trades("") == [only]
    store.fail = False
    assert len(store.load_trades()) == 1 and store.load_trade_marks() == []


def test_set_position_on_a_traded_symbol_stores_the_carried_in_position_and_its_mark(
    tmp_path: Path,
) -> None:
    store, p = opened(tmp_path / "s.db")
    p.add_trade("", buy(10, "100", minutes=50))
    p.set_position("", Position("INFY", 3, Decimal("90")))
    p.add_trade("", sell(1, "95"))
    assert store.load_trade_marks() == [{"owner": "", "symbol": "INFY", "after_seq": 1}]
    assert [(r["symbol"], r["quantity"]) for r in store.load_positions()] == [("INFY", 3)]
    assert p.portfolio.value("", "INFY")["position"]["quantity"] == 2
    store.close()

    _, again = opened(tmp_path / "s.db")
    assert again.portfolio.value("", "INFY") == p.portfolio.value("", "INFY")
    assert again.portfolio.trades("") == p.portfolio.trades("")
    assert again.portfolio.next_seq() == 3
    assert again.remove_position("", "INFY") is True
    assert again.portfolio.position("", "INFY") is None


def test_the_same_id_is_recorded_once_and_time_and_quota_are_checked(tmp_path: Path) -> None:
    _, p = opened(tmp_path / "s.db")
    p.max_trades = 2
    first = p.add_trade("", buy(1, "100", id="fill-1"))
    assert not isinstance(first, ProtocolError) and first[0] == "added"
    assert p.add_trade("", buy(5, "1", id="fill-1")) == ("exists", first[1])
    ahead = p.add_trade("", buy(1, "100", minutes=-2))
    assert isinstance(ahead, ProtocolError) and ahead.details["field"] == "time"
    old = p.add_trade("", buy(1, "100", minutes=401 * 24 * 60))
    assert isinstance(old, ProtocolError) and old.details["field"] == "time"
    assert not isinstance(p.add_trade("", buy(1, "100", minutes=-1)), ProtocolError)  # skew
    full = p.add_trade("", buy(1, "100"))
    assert isinstance(full, ProtocolError) and full.code is ErrorCode.LIMIT_EXCEEDED
    assert p.portfolio.trade_count("") == 2


def test_trade_times_and_the_day_follow_the_exchange_clock_of_the_ticks() -> None:
    """A simulated or replayed session runs on its own clock: a trade at its market time is
    not "in the future" of the wall clock, a trade without a time takes the newest tick's time,
    and "today" is the ticks' day."""
    market = datetime(2027, 3, 1, 10, 0, tzinfo=IST)  # the simulated session, ahead of NOW
    p = StoredPortfolio(now=lambda: NOW)
    p.portfolio.on_tick(Tick("INFY", 1, market, 1550.0, prev_close=1540.0))
    at_market = AddTrade(
        "INFY", Side.BUY, 10, Decimal("1550"), "NSE", time=market + timedelta(seconds=30)
    )
    added = p.add_trade("", at_market)
    assert not isinstance(added, ProtocolError), added
    untimed = p.add_trade("", AddTrade("INFY", Side.SELL, 4, Decimal("1560"), "NSE"))
    assert not isinstance(untimed, ProtocolError), untimed
    assert untimed[1].time == market
    position = p.portfolio.value("", "INFY")["position"]
    assert (position["day_buy_quantity"], position["day_sell_quantity"]) == (10, 4)
    later = market + timedelta(minutes=2)
    ahead = AddTrade("INFY", Side.BUY, 1, Decimal("1550"), "NSE", time=later)
    refused = p.add_trade("", ahead)
    assert isinstance(refused, ProtocolError) and refused.code is ErrorCode.INVALID_FIELD


def test_after_the_close_a_trade_may_be_entered_up_to_the_wall_clock() -> None:
    last_tick = NOW - timedelta(hours=2)
    p = StoredPortfolio(now=lambda: NOW)
    p.portfolio.on_tick(Tick("INFY", 1, last_tick, 1550.0, prev_close=1540.0))
    entered = AddTrade("INFY", Side.BUY, 1, Decimal("1550"), "NSE", time=NOW)
    assert not isinstance(p.add_trade("", entered), ProtocolError)
