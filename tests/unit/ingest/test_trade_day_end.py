"""A position that trades made flat stays on ``*`` for its IST day, and leaves it at the next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from tests.fakes import BusRecorder, ScriptedFeed
from tickhub.bus.memory import MemoryBus
from tickhub.core.commands import AddTrade, Side
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.topics import ALL_SYMBOLS, Endpoint, topic
from tickhub.ingest.pipeline import Ingest
from tickhub.ingest.portfolio import StoredPortfolio
from tickhub.runtime.clock import ManualClock

START = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)  # 10:30 IST


def trade(side: Side, quantity: int, minutes_ago: int) -> AddTrade:
    return AddTrade(
        "INFY", side, quantity, Decimal("1500"), "NSE", time=START - timedelta(minutes=minutes_ago)
    )


def messages(recorder: BusRecorder) -> list[dict[str, Any]]:
    return [orjson.loads(m.payload) for m in recorder.messages]


def test_a_flat_position_leaves_the_all_topic_when_the_ist_day_ends() -> None:
    clock, bus = ManualClock(START), MemoryBus()
    portfolio = StoredPortfolio(now=clock.now)
    ingest = Ingest(
        feed=ScriptedFeed(),
        registry=InstrumentRegistry.bundled(),
        bus=bus,
        clock=clock,
        portfolio=portfolio,
    )
    every = BusRecorder()
    t = topic(Endpoint.PORTFOLIO, ALL_SYMBOLS)
    bus.subscribe(t, every)
    ingest.on_demand(t, True)
    for command in (trade(Side.BUY, 5, 60), trade(Side.SELL, 5, 30)):
        assert not isinstance(portfolio.add_trade("", command), Exception)
        ingest.publish_portfolio("INFY")
    ingest.flush()
    (last,) = [m for m in messages(every) if m["data"]["position"]["quantity"] == 0]
    assert last["data"]["pnl"]["realized"] == 0.0 and not last.get("removed")
    assert portfolio.portfolio.held_symbols("") == ["INFY"]

    clock.advance(13 * 3600 + 60)  # 23:31 IST: the same day
    ingest.flush()
    assert not any(m.get("removed") for m in messages(every))

    clock.advance(30 * 60)  # 00:01 IST the next day
    ingest.flush()
    removed = [m for m in messages(every) if m.get("removed")]
    assert [m["symbol"] for m in removed] == ["INFY"]
    assert portfolio.portfolio.held_symbols("") == []
    ingest.flush()  # once only
    assert len([m for m in messages(every) if m.get("removed")]) == 1
