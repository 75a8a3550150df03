"""Resume after reconnect: `since` gives exactly what was missed, or a fresh snapshot."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.conftest import make_settings
from tests.fakes import ScriptedFeed, tick
from tests.helpers import Client, is_type
from tickhub.app.roles import SingleService
from tickhub.bus.history import TopicHistory
from tickhub.core.model import IST


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2025, 1, 27, hh, mm, ss, tzinfo=IST)


async def _start(tmp_path: Any, **overrides: Any) -> tuple[SingleService, ScriptedFeed]:
    feed = ScriptedFeed()
    svc = SingleService(make_settings(tmp_path, demo_portfolio=False, **overrides), feed=feed)
    await svc.start()
    await feed.running.wait()
    return svc, feed


def _live(c: Client) -> list[dict[str, Any]]:
    return [m for m in c.seen if m.get("type") == "data" and not m.get("snapshot")]


async def test_resume_delivers_missed_candles_and_latest_tick(tmp_path: Any) -> None:
    svc, feed = await _start(tmp_path)
    try:
        url = f"ws://127.0.0.1:{svc.port}/ws/stream"
        c = await Client.connect(url)
        await c.request({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
        feed.push(tick("RELIANCE", at(9, 15, 1), 101.0, 1000))
        last = await c.wait_for(lambda m: m.get("data_type") == "tick_data")
        epoch, seq = last["epoch"], last["seq"]
        await c.close()
        # While disconnected: two candles close, many ticks.
        feed.push(
            tick("RELIANCE", at(9, 15, 30), 102.0, 1100),
            tick("RELIANCE", at(9, 16, 5), 103.0, 1200),
            tick("RELIANCE", at(9, 16, 40), 99.5, 1300),
            tick("RELIANCE", at(9, 17, 2), 100.0, 1400),
        )
        d = await Client.connect(url)
        ack = await d.request(
            {"type": "subscribe", "symbol": "RELIANCE", "since": {"epoch": epoch, "seq": seq}},
            "subscription",
        )
        assert ack["recovered"] is True
        # The 09:17 forming candle is the newest missed message; wait for it.
        await d.wait_for(
            lambda m: (
                m.get("data_type") == "candle_data"
                and m["data"]["start"] == "2025-01-27T03:47:00.000Z"
            )
        )
        got = _live(d)
        assert not [m for m in d.seen if m.get("snapshot")]
        seqs = [m["seq"] for m in got]
        assert seqs == sorted(seqs) and seqs[0] > seq
        closed = [
            m["data"]["start"]
            for m in got
            if m["data_type"] == "candle_data" and m["data"]["closed"]
        ]
        assert closed == ["2025-01-27T03:45:00.000Z", "2025-01-27T03:46:00.000Z"]
        ticks = [m for m in got if m["data_type"] == "tick_data"]
        assert ticks[-1]["data"]["price"] == 100.0  # ticks conflated to the latest
        # Then the live stream continues with the next seq.
        feed.push(tick("RELIANCE", at(9, 17, 10), 100.5, 1500))
        nxt = await d.wait_for(
            lambda m: m.get("data_type") == "tick_data" and m["data"]["price"] == 100.5
        )
        assert nxt["seq"] > seqs[-1]
        await d.close()
    finally:
        await svc.stop()


async def test_resume_with_unknown_epoch_gets_snapshot(tmp_path: Any) -> None:
    svc, feed = await _start(tmp_path)
    try:
        feed.push(tick("INFY", at(9, 15, 1), 1500.0, 10, token=408065))
        c = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
        ack = await c.request(
            {"type": "subscribe", "symbol": "INFY", "since": {"epoch": "00000000", "seq": 3}},
            "subscription",
        )
        assert ack["recovered"] is False
        snap = await c.wait_for(is_type("data"))
        assert snap["snapshot"] is True
        await c.close()
    finally:
        await svc.stop()


async def test_resume_past_the_history_gets_snapshot(tmp_path: Any) -> None:
    svc, feed = await _start(tmp_path, history_size=2)
    try:
        url = f"ws://127.0.0.1:{svc.port}/ws/stream"
        c = await Client.connect(url)
        await c.request({"type": "subscribe", "symbol": "SBIN"}, "subscription")
        feed.push(tick("SBIN", at(9, 15, 1), 800.0, 10, token=779521))
        first = await c.wait_for(lambda m: m.get("data_type") == "tick_data")
        await c.close()
        # Five candles close: more than the 2 kept.
        feed.push(
            *(tick("SBIN", at(9, 16 + i, 1), 800.0 + i, 20 + i, token=779521) for i in range(5))
        )
        d = await Client.connect(url)
        ack = await d.request(
            {
                "type": "subscribe",
                "symbol": "SBIN",
                "since": {"epoch": first["epoch"], "seq": first["seq"]},
            },
            "subscription",
        )
        assert ack["recovered"] is False
        assert (await d.wait_for(is_type("data")))["snapshot"] is True
        await d.close()
    finally:
        await svc.stop()


async def test_alert_events_are_recovered(tmp_path: Any) -> None:
    svc, feed = await _start(tmp_path)
    try:
        url = f"ws://127.0.0.1:{svc.port}/ws/alerts"
        c = await Client.connect(url)
        await c.request(
            {"type": "create_alert", "symbol": "TCS", "condition": "above", "value": 3000},
            "alert",
        )
        await c.request({"type": "subscribe", "symbol": "TCS"}, "subscription")
        state = await c.wait_for(lambda m: m.get("type") == "data")
        await c.close()
        feed.push(tick("TCS", at(9, 15, 1), 3001.0, 10, token=2953217))
        d = await Client.connect(url)
        ack = await d.request(
            {
                "type": "subscribe",
                "symbol": "TCS",
                "since": {"epoch": state["epoch"], "seq": state["seq"]},
            },
            "subscription",
        )
        assert ack["recovered"] is True
        event = await d.wait_for(lambda m: m.get("event") == "triggered")
        assert event["data"]["alert"]["price"] == 3001.0
        await d.close()
    finally:
        await svc.stop()


async def test_bad_since_is_an_error(connect: Any) -> None:
    c: Client = await connect()
    err = await c.request(
        {"type": "subscribe", "symbol": "INFY", "since": {"epoch": 5, "seq": "x"}}, "error"
    )
    assert err["code"] == "invalid_field"


def test_history_keeps_events_and_final_candles_and_moves_the_floor() -> None:
    h = TopicHistory(max_entries=3, max_age=100.0)
    h.record("e", 1, "tick", "tick", b"t1", 0.0)
    h.record("e", 2, "candle:a", "candle", b"c2", 0.0)
    h.record("e", 3, "candle:a", "candle", b"c3", 0.0)  # replaces c2
    h.record("e", 4, None, None, b"ev4", 0.0)
    h.record("e", 5, "tick", "tick", b"t5", 0.0)
    assert h.since("e", 1, 1.0) == [b"c3", b"ev4", b"t5"]
    assert h.since("e", 5, 1.0) == []
    assert h.since("x", 1, 1.0) is None
    h.record("e", 6, None, None, b"ev6", 0.0)
    h.record("e", 7, None, None, b"ev7", 0.0)  # evicts c3: floor 3
    assert h.since("e", 2, 1.0) is None
    assert h.since("e", 3, 1.0) == [b"ev4", b"t5", b"ev6", b"ev7"]
    assert h.since("e", 4, 200.0) is None  # everything aged out
