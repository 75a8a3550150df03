"""Trades on /ws/portfolio end to end: a real service, real sockets, real SQLite, restarts."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.conftest import make_settings
from tests.fakes import ScriptedFeed, tick
from tests.helpers import Client, close_all, is_type, seed_view
from tickhub import client as tickhub_client
from tickhub.app.roles import SingleService
from tickhub.client import Ticker, TickhubError
from tickhub.core.model import IST

Msg = dict[str, Any]


def recent(minutes: int) -> str:
    """A trade time ``minutes`` before now, with the IST offset, as a client writes it."""
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes)
    return ts.astimezone(IST).isoformat()


class App:
    """A full service on a scripted feed and a real SQLite file; restartable."""

    def __init__(self, tmp_path: Path, **overrides: Any) -> None:
        self.settings = make_settings(tmp_path, demo_portfolio=False, **overrides)
        self.svc: SingleService | None = None
        self.feed = ScriptedFeed()
        self.clients: list[Client] = []

    async def start(self) -> App:
        self.feed = ScriptedFeed()
        self.svc = SingleService(self.settings, feed=self.feed)
        await self.svc.start()
        await self.feed.running.wait()
        return self

    @property
    def url(self) -> str:
        assert self.svc is not None
        return f"ws://127.0.0.1:{self.svc.port}/ws/portfolio"

    async def client(self, query: str = "") -> Client:
        c = await Client.connect(self.url + query)
        await c.wait_for(is_type("connection"))
        self.clients.append(c)
        return c

    async def stop(self) -> None:
        await close_all(self.clients)
        self.clients.clear()
        if self.svc is not None:
            await self.svc.stop()
            self.svc = None


@pytest.fixture
async def app(tmp_path: Path) -> Any:
    a = App(tmp_path)
    await a.start()
    yield a
    await a.stop()


async def next_of(ws: websockets.ClientConnection, pred: Any) -> Msg:
    """Read the plain websockets connection until a message matches."""
    while True:
        msg: Msg = json.loads(await ws.recv())
        if pred(msg):
            return msg


async def test_add_list_delete_over_a_plain_websockets_client(app: App) -> None:
    async with websockets.connect(app.url) as ws:
        await next_of(ws, is_type("connection"))
        await ws.send(json.dumps({"type": "subscribe", "symbol": "RELIANCE"}))
        await next_of(ws, is_type("subscription"))
        when = recent(30)
        buy: Msg = {
            "type": "add_trade",
            "symbol": "NSE:RELIANCE",
            "side": "BUY",
            "quantity": 10,
            "price": 2500.5,
            "time": when,
            "product": "cnc",
        }
        await ws.send(json.dumps(buy))
        added = await next_of(ws, is_type("trade"))
        trade = added["trade"]
        assert added["status"] == "added"
        assert trade["id"].startswith("t_") and len(trade["id"]) == 14
        assert {k: trade[k] for k in ("symbol", "side", "quantity", "price", "product")} == {
            "symbol": "RELIANCE",
            "side": "buy",
            "quantity": 10,
            "price": 2500.5,
            "product": "CNC",
        }
        assert trade["exchange"] == "NSE" and trade["owner"] == ""
        assert datetime.fromisoformat(trade["time"]) == datetime.fromisoformat(when)
        assert added["position"]["position"]["quantity"] == 10
        published = await next_of(
            ws, lambda m: m.get("data_type") == "position_data" and not m.get("snapshot")
        )
        assert published["data"]["position"]["quantity"] == 10
        assert published["data"]["position"]["average_price"] == 2500.5

        await ws.send(
            json.dumps(
                {
                    "type": "add_trade",
                    "symbol": "RELIANCE",
                    "side": "sell",
                    "quantity": 4,
                    "price": "2600",
                    "time": recent(10),
                }
            )
        )
        sold = await next_of(ws, is_type("trade"))
        data = sold["position"]
        # FIFO: 4 of the 10 closed at (2600 − 2500.5) × 4 = 398 (gross, no charges)
        assert data["position"]["quantity"] == 6
        assert data["position"]["average_price"] == 2500.5
        assert data["pnl"]["realized"] == float((Decimal(2600) - Decimal("2500.5")) * 4)
        assert (data["position"]["buy_quantity"], data["position"]["sell_quantity"]) == (10, 4)
        assert data["position"]["trades"] == 2
        assert data["portfolio"]["realized_pnl"] == 398.0
        pushed = await next_of(
            ws,
            lambda m: (
                m.get("data_type") == "position_data" and m["data"]["position"]["quantity"] == 6
            ),
        )
        assert pushed["data"]["pnl"]["realized"] == 398.0

        await ws.send(json.dumps({"type": "list_trades"}))
        listed = await next_of(ws, is_type("trades"))
        assert [t["side"] for t in listed["trades"]] == ["buy", "sell"]  # oldest first
        await ws.send(json.dumps({"type": "list_trades", "symbol": "TCS"}))
        assert (await next_of(ws, is_type("trades")))["trades"] == []

        await ws.send(json.dumps({"type": "delete_trade", "id": sold["trade"]["id"]}))
        deleted = await next_of(ws, is_type("trade"))
        assert deleted["status"] == "deleted" and deleted["id"] == sold["trade"]["id"]
        assert deleted["position"]["position"]["quantity"] == 10
        assert deleted["position"]["pnl"]["realized"] == 0.0
        await ws.send(json.dumps({"type": "delete_trade", "id": sold["trade"]["id"]}))
        gone = await next_of(ws, is_type("error"))
        assert (gone["code"], gone["request"]) == ("not_found", "delete_trade")


BAD_TRADES: list[tuple[dict[str, object], str, str | None]] = [
    ({"side": "hold"}, "invalid_field", "side"),
    ({"side": None}, "missing_field", "side"),
    ({"quantity": 0}, "invalid_field", "quantity"),
    ({"quantity": -5}, "invalid_field", "quantity"),
    ({"quantity": 10**12 + 1}, "invalid_field", "quantity"),
    ({"quantity": 1.5}, "invalid_field", "quantity"),
    ({"price": 0}, "invalid_field", "price"),
    ({"price": 2_000_000_000}, "invalid_field", "price"),
    ({"price": "1e3"}, "invalid_field", "price"),
    ({"time": "2026-12-02T10:15:00"}, "invalid_field", "time"),  # no offset
    ({"time": "soon"}, "invalid_field", "time"),
    ({"id": "x" * 65}, "invalid_field", "id"),
    ({"id": "line\nbreak"}, "invalid_field", "id"),
    ({"id": 7}, "invalid_field", "id"),
    ({"product": "XYZ"}, "invalid_field", "product"),
    ({"symbol": "RELIANCEX"}, "unknown_symbol", None),
    ({"symbol": "NIFTY 50"}, "invalid_field", "symbol"),
]


async def test_bad_trades_get_their_error_and_the_connection_stays_usable(app: App) -> None:
    c = await app.client()
    base: Msg = {"type": "add_trade", "symbol": "RELIANCE", "side": "buy", "quantity": 1,
                 "price": 10}  # fmt: skip
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    ancient = (datetime.now(UTC) - timedelta(days=401)).isoformat()
    cases: list[tuple[dict[str, object], str, str | None]] = [
        *BAD_TRADES,
        ({"time": future}, "invalid_field", "time"),
        ({"time": ancient}, "invalid_field", "time"),
    ]
    for change, code, field in cases:
        err = await c.request({**base, **change}, "error")
        assert (err["code"], err["request"]) == (code, "add_trade"), (change, err)
        if field is not None:
            assert err["details"]["field"] == field, (change, err)
    for bad, code in [
        ({"type": "delete_trade"}, "missing_field"),
        ({"type": "delete_trade", "id": "x" * 65}, "invalid_field"),
        ({"type": "list_trades", "symbol": "NOPE"}, "unknown_symbol"),
    ]:
        err = await c.request(bad, "error")
        assert err["code"] == code, (bad, err)
    # Nothing was recorded, and the connection still answers.
    assert (await c.request({"type": "list_trades"}, "trades"))["trades"] == []
    ok = await c.request({**base, "time": recent(0)}, "trade")
    assert ok["status"] == "added"


async def test_trade_requests_exist_only_on_the_portfolio_endpoint(app: App) -> None:
    assert app.svc is not None
    c = await Client.connect(f"ws://127.0.0.1:{app.svc.port}/ws/alerts")
    app.clients.append(c)
    await c.wait_for(is_type("connection"))
    err = await c.request({"type": "list_trades"}, "error")
    assert err["code"] == "unknown_type"


async def test_a_retry_with_the_same_id_is_answered_with_the_stored_trade(app: App) -> None:
    c = await app.client()
    msg = {"type": "add_trade", "symbol": "INFY", "side": "buy", "quantity": 3, "price": "1500.25",
           "id": "fill-20261202-0001", "time": recent(5)}  # fmt: skip
    first = await c.request(msg, "trade")
    assert first["status"] == "added" and first["trade"]["id"] == "fill-20261202-0001"
    await c.close()
    again = await app.client()  # a client that reconnected and retried
    second = await again.request({**msg, "quantity": 99, "price": 1}, "trade")
    assert second["status"] == "exists"
    assert second["trade"] == first["trade"]  # the stored trade, unchanged
    assert second["position"]["position"]["quantity"] == 3  # counted once
    assert len((await again.request({"type": "list_trades"}, "trades"))["trades"]) == 1


async def test_trades_past_the_per_owner_limit_are_refused(tmp_path: Path) -> None:
    app = await App(tmp_path, max_trades_per_owner=2).start()
    try:
        c = await app.client()
        msg = {"type": "add_trade", "symbol": "SBIN", "side": "buy", "quantity": 1, "price": 800}
        for _ in range(2):
            assert (await c.request(msg, "trade"))["status"] == "added"
        err = await c.request(msg, "error")
        assert err["code"] == "limit_exceeded" and err["details"]["limit"] == 2
        assert len((await c.request({"type": "list_trades"}, "trades"))["trades"]) == 2
    finally:
        await app.stop()


async def test_positions_from_trades_survive_a_restart(tmp_path: Path) -> None:
    app = await App(tmp_path).start()
    try:
        c = await app.client()
        await c.request({"type": "add_trade", "symbol": "TCS", "side": "buy", "quantity": 5,
                         "price": "3000.10", "time": recent(60)}, "trade")  # fmt: skip
        await c.request(
            {"type": "set_position", "symbol": "TCS", "quantity": 10, "average_price": "3100"},
            "position",
        )  # the carried-in position: the trade before it no longer counts
        for side, q, price in [("sell", 12, "3150.05"), ("buy", 1, "3120")]:
            await c.request({"type": "add_trade", "symbol": "TCS", "side": side, "quantity": q,
                             "price": price, "time": recent(20)}, "trade")  # fmt: skip
        await c.request({"type": "add_trade", "symbol": "ITC", "side": "sell", "quantity": 7,
                         "price": 410.35, "time": recent(15)}, "trade")  # fmt: skip
        before = await c.request({"type": "list_positions"}, "positions")
        trades = (await c.request({"type": "list_trades"}, "trades"))["trades"]
        tcs = next(p for p in before["positions"] if p["symbol"] == "TCS")
        # 10 @ 3100 carried, sold 12 (10 close it, 2 open a short), bought 1 back: −1 @ 3150.05
        assert (tcs["quantity"], tcs["average_price"], tcs["trades"]) == (-1, 3150.05, 2)
        assert before["portfolio"]["realized_pnl"] == 500.5 + 30.05  # 10 × 50.05 + 1 × 30.05
    finally:
        await app.stop()

    again = await App(tmp_path).start()
    try:
        c = await again.client()
        after = await c.request({"type": "list_positions"}, "positions")
        assert after["positions"] == before["positions"]
        assert after["portfolio"] == before["portfolio"]
        assert (await c.request({"type": "list_trades"}, "trades"))["trades"] == trades
    finally:
        await again.stop()


async def test_a_set_position_client_sees_exactly_the_fields_it_saw_before(app: App) -> None:
    c = await app.client()
    await c.request({"type": "subscribe", "symbol": "WIPRO"}, "subscription")
    reply = await c.request(
        {"type": "set_position", "symbol": "WIPRO", "quantity": 10, "average_price": "250.5",
         "product": "cnc"},
        "position",
    )  # fmt: skip
    assert seed_view(reply["position"]) == {
        "symbol": "WIPRO",
        "quantity": 10,
        "average_price": 250.5,
        "last_price": None,
        "current_value": 2505.0,
        "invested_value": 2505.0,
        "product": "CNC",
        "exchange": "NSE",
    }
    app.feed.push(tick("WIPRO", datetime(2025, 1, 27, 9, 15, tzinfo=IST), 244.82, 10,
                       token=969473, prev_close=246.0))  # fmt: skip
    data = (
        await c.wait_for(
            lambda m: (
                m.get("data_type") == "position_data"
                and m["data"]["position"]["last_price"] == 244.82
            )
        )
    )["data"]
    assert seed_view(data["position"])["current_value"] == 2448.2  # 10 × 244.82
    assert seed_view(data["pnl"]) == {
        "unrealized": -56.8,  # (244.82 − 250.5) × 10
        "unrealized_percent": -2.27,  # −56.8 / 2505 × 100 = −2.267…
        "day": -11.8,  # (244.82 − 246) × 10
        "day_percent": -0.48,  # −1.18 / 246 × 100 = −0.4796…
    }
    assert seed_view(data["portfolio"])["positions"] == 1
    # The additions have their no-trade values: nothing of the old meaning moved.
    assert data["pnl"]["realized"] == data["pnl"]["day_realized"] == 0.0
    assert data["position"]["trades"] == 0


async def test_trades_are_per_user_with_authentication_on(tmp_path: Path) -> None:
    app = await App(tmp_path, api_keys="alice:alice-key,bob:bob-key").start()
    try:
        alice = await app.client("?token=alice-key")
        bob = await app.client("?token=bob-key")
        for c, key in ((alice, "alice-key"), (bob, "bob-key")):
            await c.request({"type": "auth", "token": key}, "auth")
        msg = {"type": "add_trade", "symbol": "SBIN", "side": "buy", "quantity": 2, "price": 800,
               "id": "same-id"}  # fmt: skip
        mine = await alice.request(msg, "trade")
        assert mine["trade"]["owner"] == "alice"
        assert (await bob.request({"type": "list_trades"}, "trades"))["trades"] == []
        err = await bob.request({"type": "delete_trade", "id": "same-id"}, "error")
        assert err["code"] == "not_found"
        theirs = await bob.request(msg, "trade")  # ids are per user: bob's own trade
        assert theirs["status"] == "added" and theirs["trade"]["owner"] == "bob"
        listed = await alice.request({"type": "list_trades"}, "trades")
        assert [t["owner"] for t in listed["trades"]] == ["alice"]
    finally:
        await app.stop()


async def test_python_client_and_ticker_record_list_and_delete_trades(app: App) -> None:
    async with tickhub_client.connect(app.url) as portfolio:
        added = await portfolio.add_trade(
            "HDFCBANK", "buy", 20, "985.30", time=recent(40), product="cnc", id="n-1"
        )
        assert added.status == "added" and added.trade is not None
        assert (added.trade.id, added.trade.quantity, added.trade.price) == ("n-1", 20, 985.3)
        assert added.trade.time == datetime.fromisoformat(recent(40))
        sold = await portfolio.add_trade("HDFCBANK", "sell", 5, 1000.0)
        assert sold.position is not None
        assert sold.position.position.quantity == 15 and sold.position.position.trades == 2
        assert sold.position.pnl.realized == 73.5  # 5 × (1000 − 985.30)
        assert sold.position.portfolio.realized_pnl == 73.5
        again = await portfolio.add_trade("HDFCBANK", "buy", 20, "985.30", id="n-1")
        assert again.status == "exists" and again.trade == added.trade
        assert [t.side for t in await portfolio.list_trades("HDFCBANK")] == ["buy", "sell"]
        assert sold.trade is not None
        deleted = await portfolio.delete_trade(sold.trade.id)
        assert deleted.status == "deleted" and deleted.id == sold.trade.id
        with pytest.raises(TickhubError) as gone:
            await portfolio.delete_trade(sold.trade.id)
        assert gone.value.code == "not_found"
        with pytest.raises(TickhubError) as bad:
            await portfolio.add_trade("HDFCBANK", "short", 1, 1)
        assert bad.value.code == "invalid_field" and bad.value.details["field"] == "side"

    ticker = Ticker(app.url)
    ticker.connect(threaded=True)
    try:
        reply = await asyncio.wrap_future(ticker.add_trade("ITC", "sell", 3, 410.2))
        assert reply.status == "added" and reply.position is not None
        assert reply.position.position.quantity == -3
        trades = await asyncio.wrap_future(ticker.list_trades())
        assert [t.symbol for t in trades] == ["HDFCBANK", "ITC"]
        deleted = await asyncio.wrap_future(ticker.delete_trade(trades[-1].id))
        assert deleted.status == "deleted"
    finally:
        await asyncio.to_thread(ticker.close)
