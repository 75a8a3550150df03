"""/ws/alerts and /ws/portfolio end to end: requests, triggering, persistence across restarts."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_settings
from tests.fakes import ScriptedFeed, tick
from tests.helpers import Client, close_all, is_type
from tickhub.app.roles import SingleService
from tickhub.core.model import IST


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2025, 1, 27, hh, mm, ss, tzinfo=IST)


class App:
    """A full service on a scripted feed and a real SQLite file; restartable."""

    def __init__(self, tmp_path: Path, **overrides: Any) -> None:
        self.tmp_path = tmp_path
        self.overrides = overrides
        self.svc: SingleService | None = None
        self.feed = ScriptedFeed()
        self.clients: list[Client] = []

    async def start(self) -> App:
        self.feed = ScriptedFeed()
        self.svc = SingleService(make_settings(self.tmp_path, **self.overrides), feed=self.feed)
        await self.svc.start()
        await self.feed.running.wait()
        return self

    async def client(self, path: str) -> Client:
        assert self.svc is not None
        c = await Client.connect(f"ws://127.0.0.1:{self.svc.port}{path}")
        await c.recv()
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
    a = App(tmp_path, demo_portfolio=False)
    await a.start()
    yield a
    await a.stop()


async def test_create_list_delete_alert(app: App) -> None:
    c = await app.client("/ws/alerts")
    created = await c.request(
        {
            "type": "create_alert",
            "symbol": "reliance",
            "condition": "above",
            "value": 2500,
            "note": "breakout",
        },
        "alert",
    )
    alert = created["alert"]
    assert created["status"] == "created"
    assert alert["id"].startswith("a_") and alert["symbol"] == "RELIANCE"
    assert alert["condition"] == "above" and alert["value"] == 2500
    assert alert["triggered"] is False and alert["once"] is True and alert["note"] == "breakout"
    listed = await c.request({"type": "list_alerts"}, "alerts")
    assert [a["id"] for a in listed["alerts"]] == [alert["id"]]
    deleted = await c.request({"type": "delete_alert", "id": alert["id"]}, "alert")
    assert deleted == {**deleted, "status": "deleted", "id": alert["id"]}
    assert (await c.request({"type": "list_alerts"}, "alerts"))["alerts"] == []


@pytest.mark.parametrize(
    ("msg", "code"),
    [
        ({"symbol": "RELIANCE", "condition": "sideways", "value": 1}, "invalid_field"),
        ({"symbol": "RELIANCE", "condition": "above", "value": "lots"}, "invalid_field"),
        ({"symbol": "RELIANCE", "condition": "above"}, "missing_field"),
        ({"symbol": "NOPE", "condition": "above", "value": 1}, "unknown_symbol"),
        ({"condition": "above", "value": 1}, "missing_field"),
    ],
)
async def test_bad_alert_requests_get_coded_errors(
    app: App, msg: dict[str, Any], code: str
) -> None:
    c = await app.client("/ws/alerts")
    err = await c.request({"type": "create_alert", **msg}, "error")
    assert err["code"] == code and err["request"] == "create_alert"
    assert (await c.request({"type": "list_alerts"}, "alerts"))["alerts"] == []


async def test_delete_unknown_alert_is_not_found(app: App) -> None:
    c = await app.client("/ws/alerts")
    err = await c.request({"type": "delete_alert", "id": "a_000000000000"}, "error")
    assert err["code"] == "not_found"


async def test_alert_triggers_once_and_is_delivered_as_event(app: App) -> None:
    c = await app.client("/ws/alerts")
    await c.request(
        {"type": "create_alert", "symbol": "RELIANCE", "condition": "cross_up", "value": 101},
        "alert",
    )
    await c.send({"type": "subscribe", "symbol": "RELIANCE"})
    await c.wait_for(is_type("subscription"))
    app.feed.push(
        tick("RELIANCE", at(9, 15, 1), 100.0, 1000),
        tick("RELIANCE", at(9, 15, 2), 101.5, 1100),
        tick("RELIANCE", at(9, 15, 3), 100.0, 1200),
        tick("RELIANCE", at(9, 15, 4), 102.0, 1300),
    )
    event = await c.wait_for(lambda m: m.get("event") == "triggered")
    fired = event["data"]["alert"]
    assert fired["condition"] == "cross_up" and fired["triggered"] is True
    assert fired["price"] == 101.5
    assert fired["triggered_at"] == "2025-01-27T03:45:02.000Z"
    assert "RELIANCE" in fired["message"]
    # The seed's example reads data.price_alerts[i].triggered on every alerts message: true in
    # the event announcing the firing, false in the state messages after it (fired stays true).
    user = [a for a in event["data"]["price_alerts"] if a["source"] == "user"]
    assert (user[0]["triggered"], user[0]["fired"]) == (True, True)
    state = await c.wait_for(lambda m: m.get("data_type") == "alert_data" and "event" not in m)
    user = [a for a in state["data"]["price_alerts"] if a["source"] == "user"]
    assert (user[0]["triggered"], user[0]["fired"]) == (False, True)
    # once=True: the second crossing (100 -> 102) fires nothing more.
    app.feed.push(tick("RELIANCE", at(9, 15, 5), 102.5, 1400))
    await c.wait_for(
        lambda m: (
            m.get("data_type") == "alert_data" and not m.get("event") and not m.get("snapshot")
        )
    )
    events = [
        m
        for m in c.seen
        if m.get("event") == "triggered" and m["data"]["alert"]["source"] == "user"
    ]
    assert len(events) == 1


async def test_alert_state_survives_restart_and_never_fires_twice(tmp_path: Path) -> None:
    app = await App(tmp_path, demo_portfolio=False).start()
    c = await app.client("/ws/alerts")
    created = await c.request(
        {
            "type": "create_alert",
            "symbol": "INFY",
            "condition": "above",
            "value": 1600,
            "once": False,
        },
        "alert",
    )
    alert_id = created["alert"]["id"]
    # Nobody is subscribed when it fires.
    app.feed.push(
        tick("INFY", at(9, 15, 1), 1590.0, 10, token=408065),
        tick("INFY", at(9, 15, 2), 1601.0, 20, token=408065),
    )
    await app.stop()

    await app.start()
    c = await app.client("/ws/alerts")
    await c.send({"type": "subscribe", "symbol": "INFY"})
    snap = await c.wait_for(
        lambda m: bool(m.get("snapshot") and m.get("data_type") == "alert_data")
    )
    mine = [a for a in snap["data"]["price_alerts"] if a["id"] == alert_id]
    assert mine and mine[0]["fired"] is True and mine[0]["price"] == 1601.0
    assert [e["id"] for e in snap["data"]["recent_events"] if e["source"] == "user"] == [alert_id]
    # The same crossing seen again after the restart (price still above) does not fire again.
    app.feed.push(tick("INFY", at(9, 15, 3), 1602.0, 30, token=408065))
    await c.wait_for(lambda m: m.get("data_type") == "alert_data" and not m.get("snapshot"))
    assert not [
        m for m in c.seen if m.get("event") == "triggered" and m["data"]["alert"]["id"] == alert_id
    ]
    listed = await c.request({"type": "list_alerts", "symbol": "INFY"}, "alerts")
    assert listed["alerts"][0]["fire_count"] == 1
    await app.stop()


async def test_set_list_remove_position_and_live_valuation(app: App) -> None:
    c = await app.client("/ws/portfolio")
    await c.send({"type": "subscribe", "symbol": "RELIANCE"})
    await c.wait_for(is_type("subscription"))
    saved = await c.request(
        {"type": "set_position", "symbol": "RELIANCE", "quantity": -10, "average_price": "105.50"},
        "position",
    )
    assert saved["status"] == "saved" and saved["position"]["quantity"] == -10
    app.feed.push(tick("RELIANCE", at(9, 15, 1), 100.25, 1000, prev_close=102.0))
    msg = await c.wait_for(
        lambda m: m.get("type") == "data" and m["data"]["position"]["last_price"] == 100.25
    )
    pos, pnl = msg["data"]["position"], msg["data"]["pnl"]
    # Independent arithmetic: a short of 10 from 105.50 marked at 100.25.
    assert pos["current_value"] == -1002.5
    assert pos["invested_value"] == -1055.0
    assert pnl["unrealized"] == 52.5  # (100.25 - 105.50) * -10
    assert pnl["day"] == 17.5  # (100.25 - 102.00) * -10
    assert pnl["unrealized_percent"] == round(52.5 / 1055.0 * 100, 2)
    listed = await c.request({"type": "list_positions"}, "positions")
    assert [p["symbol"] for p in listed["positions"]] == ["RELIANCE"]
    assert listed["portfolio"]["positions"] == 1
    removed = await c.request({"type": "remove_position", "symbol": "RELIANCE"}, "position")
    assert removed["status"] == "removed"
    assert (await c.request({"type": "list_positions"}, "positions"))["positions"] == []
    err = await c.request({"type": "remove_position", "symbol": "RELIANCE"}, "error")
    assert err["code"] == "not_found"


@pytest.mark.parametrize(
    ("msg", "code"),
    [
        ({"symbol": "RELIANCE", "quantity": 1.5, "average_price": 100}, "invalid_field"),
        ({"symbol": "RELIANCE", "quantity": "ten", "average_price": 100}, "invalid_field"),
        ({"symbol": "RELIANCE", "quantity": 1, "average_price": -5}, "invalid_field"),
        ({"symbol": "RELIANCE", "quantity": 1}, "missing_field"),
        ({"symbol": "XYZ", "quantity": 1, "average_price": 5}, "unknown_symbol"),
    ],
)
async def test_bad_position_requests_change_nothing(
    app: App, msg: dict[str, Any], code: str
) -> None:
    c = await app.client("/ws/portfolio")
    err = await c.request({"type": "set_position", **msg}, "error")
    assert err["code"] == code
    assert (await c.request({"type": "list_positions"}, "positions"))["positions"] == []


async def test_symbol_without_position_answers_quantity_zero(app: App) -> None:
    c = await app.client("/ws/portfolio")
    await c.send({"type": "subscribe", "symbol": "TCS"})
    app.feed.push(tick("TCS", at(9, 15, 1), 3100.0, 10, token=2953217))
    msg = await c.wait_for(is_type("data"))
    assert msg["data"]["position"]["quantity"] == 0
    assert msg["data"]["position"]["current_value"] == 0.0
    assert msg["data"]["pnl"]["unrealized"] == 0.0


async def test_star_streams_every_held_position(tmp_path: Path) -> None:
    app = await App(tmp_path).start()  # the default demo portfolio seeds the store
    try:
        c = await app.client("/ws/portfolio")
        await c.send({"type": "subscribe", "symbol": "*"})
        ack = await c.wait_for(is_type("subscription"))
        assert ack["symbol"] == "*"
        held = {"RELIANCE": 738561, "INFY": 408065}
        for i, (sym, token) in enumerate(held.items()):
            app.feed.push(tick(sym, at(9, 15, i + 1), 1500.0, 10, token=token))
        got: set[str] = set()
        while got != set(held):
            msg = await c.wait_for(is_type("data"))
            if not msg.get("snapshot"):
                got.add(msg["symbol"])
                assert msg["data"]["position"]["quantity"] != 0
        # Removing a position is announced on `*` with quantity 0.
        await c.send({"type": "remove_position", "symbol": "INFY"})
        gone = await c.wait_for(lambda m: bool(m.get("type") == "data" and m.get("removed")))
        assert gone["symbol"] == "INFY" and gone["data"]["position"]["quantity"] == 0
    finally:
        await app.stop()


async def test_positions_survive_restart(tmp_path: Path) -> None:
    app = await App(tmp_path, demo_portfolio=False).start()
    c = await app.client("/ws/portfolio")
    await c.request(
        {"type": "set_position", "symbol": "SBIN", "quantity": 40, "average_price": 812.45},
        "position",
    )
    await app.stop()
    await app.start()
    c = await app.client("/ws/portfolio")
    listed = await c.request({"type": "list_positions"}, "positions")
    assert [(p["symbol"], p["quantity"], p["average_price"]) for p in listed["positions"]] == [
        ("SBIN", 40, 812.45)
    ]
    await app.stop()


async def test_analysis_snapshot_has_history_and_indicators(app: App) -> None:
    c = await app.client("/ws/analysis")
    # 40 one-minute candles: enough for every indicator to warm up (MACD needs 34).
    ticks = []
    vol = 0
    for m in range(41):
        base = 100 + 0.02 * m * m  # an accelerating uptrend: MACD histogram stays positive
        for s, p in ((1, base), (30, base + 1), (59, base + 0.5)):
            vol += 100
            ticks.append(tick("RELIANCE", at(9 + (15 + m) // 60, (15 + m) % 60, s), p, vol))
    app.feed.push(*ticks)
    await c.request({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
    # One more minute closes: a live message after the snapshot.
    app.feed.push(tick("RELIANCE", at(9, 56, 1), 140.0, vol + 100))
    snaps = [m for m in c.seen if m.get("snapshot")]
    while True:
        msg = await c.wait_for(is_type("data"))
        if not msg.get("snapshot"):
            break
        snaps.append(msg)
    assert all(isinstance(m["data"]["technical_indicators"], dict) for m in snaps)
    with_history = [m for m in snaps if "history" in m["data"]]
    assert len(with_history) == 1 and len(with_history[0]["data"]["history"]) == 40
    ind = snaps[-1]["data"]["technical_indicators"]
    assert ind["warmup"]["have"] >= 34
    for key in ("sma_20", "ema_20", "rsi_14", "atr_14", "vwap"):
        assert isinstance(ind[key], float), key
    closes = [c["close"] for c in with_history[0]["data"]["history"]]
    current = snaps[-1]["data"]["candle"]
    if not current["closed"]:  # between closes, the forming candle counts as the latest
        closes.append(current["close"])
    assert ind["sma_20"] == pytest.approx(sum(closes[-20:]) / 20, abs=1e-4)
    assert snaps[-1]["data"]["trend"] == "bullish"
