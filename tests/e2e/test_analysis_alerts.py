"""Indicator alerts end to end: a real service on a scripted feed, a client that is not ours
(``websockets`` used directly), firings on candle closes, on forming updates when asked, and
exactly once across a restart over the same SQLite store."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import websockets

from tests.conftest import make_settings
from tests.fakes import ScriptedFeed, tick
from tickhub.app.roles import SingleService
from tickhub.core.model import IST

Msg = dict[str, Any]


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2025, 1, 27, hh, mm, ss, tzinfo=IST)


class Raw:
    """One ``/ws/alerts`` connection through the ``websockets`` library alone."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.seen: list[Msg] = []

    async def next(self, pred: Callable[[Msg], bool]) -> Msg:
        for old in self.seen:
            if pred(old) and not old.get("_taken"):
                old["_taken"] = True
                return old
        while True:
            m: Msg = json.loads(await self.ws.recv(decode=True))
            self.seen.append(m)
            if pred(m):
                m["_taken"] = True
                return m

    async def ask(self, msg: Msg, reply: str) -> Msg:
        await self.ws.send(json.dumps(msg))
        return await self.next(lambda m: m.get("type") in (reply, "error"))

    def firings(self, alert_id: str) -> list[Msg]:
        return [
            m
            for m in self.seen
            if m.get("event") == "triggered" and m["data"]["alert"]["id"] == alert_id
        ]


async def start(tmp_path: Path) -> tuple[SingleService, ScriptedFeed]:
    feed = ScriptedFeed()
    svc = SingleService(make_settings(tmp_path, demo_portfolio=False), feed=feed)
    await svc.start()
    await feed.running.wait()
    return svc, feed


async def connect(svc: SingleService) -> Raw:
    ws = await websockets.connect(f"ws://127.0.0.1:{svc.port}/ws/alerts")
    raw = Raw(ws)
    await raw.next(lambda m: m.get("type") == "connection")
    return raw


def is_firing(alert_id: str) -> Callable[[Msg], bool]:
    return lambda m: m.get("event") == "triggered" and m["data"]["alert"]["id"] == alert_id


ALERT = {"type": "create_alert", "symbol": "RELIANCE", "interval": "1m", "indicator": "close"}


async def test_an_indicator_alert_fires_on_the_close_and_a_forming_one_before_it(
    tmp_path: Path,
) -> None:
    svc, feed = await start(tmp_path)
    try:
        c = await connect(svc)
        on_close = (await c.ask({**ALERT, "condition": "crosses_above", "value": 101}, "alert"))[
            "alert"
        ]
        on_forming = (
            await c.ask(
                {**ALERT, "condition": "crosses_above", "value": 101, "forming": True}, "alert"
            )
        )["alert"]
        last = (await c.ask({**ALERT, "condition": "above", "value": 1}, "alert"))["alert"]
        assert on_close["category"] == "indicator" and on_close["indicator"] == "close"
        assert (on_forming["forming"], on_close["forming"], on_close["other"]) == (
            True,
            False,
            None,
        )
        await c.ask({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
        snapshot = await c.next(lambda m: m.get("data_type") == "alert_data")
        assert [a["id"] for a in snapshot["data"]["indicator_alerts"]] == [
            on_close["id"],
            on_forming["id"],
            last["id"],
        ]
        assert snapshot["data"]["pattern_alerts"] == []
        feed.push(
            tick("RELIANCE", at(9, 15, 1), 100.0, 1000),
            tick("RELIANCE", at(9, 16, 1), 100.5, 1100),  # 09:15 closes at 100.0
            tick("RELIANCE", at(9, 16, 20), 101.5, 1200),  # the forming 09:16 crosses 101
        )
        fired = await c.next(is_firing(on_forming["id"]))
        alert = fired["data"]["alert"]
        assert alert["candle_start"] == "2025-01-27T03:46:00.000Z"
        assert alert["values"] == {"left": 101.5, "right": 101.0}
        assert alert["triggered_at"] == "2025-01-27T03:46:20.000Z"
        assert alert["message"] == "RELIANCE 1m: close 101.50 crossed above 101 (close 101.50)"
        # The closes-only alert was evaluated on that same update (before it: created first)
        # and did not fire.
        assert c.firings(on_close["id"]) == []
        feed.push(
            tick("RELIANCE", at(9, 16, 40), 101.8, 1300),
            tick("RELIANCE", at(9, 17, 1), 101.9, 1400),  # 09:16 closes at 101.8
        )
        closed = await c.next(is_firing(on_close["id"]))
        assert closed["data"]["alert"]["price"] == 101.8
        assert closed["data"]["alert"]["values"] == {"left": 101.8, "right": 101.0}
        assert closed["data"]["indicator_alerts"][0]["triggered"] is True
        # The alert created last fires on the same close, so every firing of that close has
        # arrived once it has: the forming alert did not fire again on its candle.
        await c.next(is_firing(last["id"]))
        assert len(c.firings(on_forming["id"])) == 1
        assert len(c.firings(on_close["id"])) == 1
        listed = await c.ask({"type": "list_alerts", "symbol": "RELIANCE"}, "alerts")
        assert [a["fire_count"] for a in listed["alerts"]] == [1, 1, 1]
        deleted = await c.ask({"type": "delete_alert", "id": last["id"]}, "alert")
        assert deleted["status"] == "deleted"
        await c.ws.close()
    finally:
        await svc.stop()


async def test_a_restart_over_the_same_store_never_fires_a_candle_twice(tmp_path: Path) -> None:
    svc, feed = await start(tmp_path)
    minutes = [
        tick("RELIANCE", at(9, 15, 1), 100.0, 1000),
        tick("RELIANCE", at(9, 16, 1), 102.0, 1100),  # 09:15 closes at 100
        tick("RELIANCE", at(9, 17, 1), 102.0, 1200),  # 09:16 closes at 102: crosses 101
    ]
    try:
        c = await connect(svc)
        crossing = (
            await c.ask(
                {**ALERT, "condition": "crosses_above", "value": 101, "once": False}, "alert"
            )
        )["alert"]
        later = (await c.ask({**ALERT, "condition": "above", "value": 103}, "alert"))["alert"]
        await c.ask({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
        feed.push(*minutes)
        first = await c.next(is_firing(crossing["id"]))
        assert first["data"]["alert"]["candle_start"] == "2025-01-27T03:46:00.000Z"
        await c.ws.close()
    finally:
        await svc.stop()

    svc, feed = await start(tmp_path)
    try:
        c = await connect(svc)
        await c.ask({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
        snapshot = await c.next(lambda m: m.get("data_type") == "alert_data")
        stored = {a["id"]: a for a in snapshot["data"]["indicator_alerts"]}
        assert stored[crossing["id"]]["fire_count"] == 1
        assert stored[crossing["id"]]["candle_start"] == "2025-01-27T03:46:00.000Z"
        # The same candles again: 09:16 crosses 101 as before, but it already fired on it.
        feed.push(*minutes)
        feed.push(
            tick("RELIANCE", at(9, 17, 30), 104.0, 1300),
            tick("RELIANCE", at(9, 18, 1), 104.0, 1400),  # 09:17 closes at 104: above 103
        )
        fired = await c.next(is_firing(later["id"]))
        assert fired["data"]["alert"]["candle_start"] == "2025-01-27T03:47:00.000Z"
        # Firings of one close come in creation order: the crossing alert's would be here.
        assert c.firings(crossing["id"]) == []
        listed = await c.ask({"type": "list_alerts", "symbol": "RELIANCE"}, "alerts")
        assert {a["id"]: a["fire_count"] for a in listed["alerts"]} == {
            crossing["id"]: 1,
            later["id"]: 1,
        }
        await c.ws.close()
    finally:
        await svc.stop()


PRICE_ALERT_KEYS = {
    "id", "symbol", "type", "condition", "value", "triggered", "fired", "triggered_at", "price",
    "message", "once", "note", "source", "armed", "fire_count", "category", "owner",
}  # fmt: skip


async def test_a_client_with_price_alerts_only_sees_the_seeds_lists_unchanged(
    tmp_path: Path,
) -> None:
    svc, feed = await start(tmp_path)
    try:
        c = await connect(svc)
        price = {"type": "create_alert", "symbol": "RELIANCE", "condition": "cross_up"}
        created = (await c.ask({**price, "value": 101}, "alert"))["alert"]
        assert set(created) == PRICE_ALERT_KEYS
        await c.ask({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
        feed.push(
            tick("RELIANCE", at(9, 15, 1), 100.0, 1000),
            tick("RELIANCE", at(9, 15, 2), 101.5, 1100),
        )
        fired = await c.next(is_firing(created["id"]))
        data = fired["data"]
        assert set(data) == {
            "price_alerts",
            "volume_alerts",
            "breakout_alerts",
            "indicator_alerts",
            "pattern_alerts",
            "alert",
        }
        assert data["indicator_alerts"] == [] and data["pattern_alerts"] == []
        mine = [a for a in data["price_alerts"] if a["source"] == "user"]
        assert [set(a) for a in mine] == [PRICE_ALERT_KEYS]
        assert set(data["alert"]) == PRICE_ALERT_KEYS
        assert data["alert"]["category"] == "price"
        await c.ws.close()
    finally:
        await svc.stop()
