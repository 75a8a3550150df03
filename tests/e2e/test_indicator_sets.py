"""Indicator sets over the wire: a real server, a scripted feed, real WebSocket clients."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from tests.fakes import ScriptedFeed, tick
from tests.helpers import Client, is_type
from tests.unit.engines.test_indicator_sets import ref_ema, ref_rsi
from tickhub.app.roles import SingleService
from tickhub.core.model import IST

T0 = datetime(2025, 1, 27, 9, 15, tzinfo=IST)
Msg = dict[str, Any]


async def _start(tmp_path: Any, **overrides: Any) -> tuple[SingleService, ScriptedFeed]:
    from tests.conftest import make_settings

    feed = ScriptedFeed()
    svc = SingleService(make_settings(tmp_path, **overrides), feed=feed)
    await svc.start()
    await feed.running.wait()
    return svc, feed


def price(i: int) -> float:
    return round(100.0 + 3.0 * math.sin(i / 3.0) + 0.1 * i, 2)


def push_minutes(feed: ScriptedFeed, first: int, last: int) -> None:
    """One tick per minute ``first``..``last`` (so minutes ``first``..``last - 1`` close)."""
    for i in range(first, last + 1):
        feed.push(tick("RELIANCE", T0 + timedelta(minutes=i, seconds=1), price(i), 1000 + 100 * i))


def analysis_of_minute(i: int) -> Callable[[Msg], bool]:
    start = (T0 + timedelta(minutes=i)).astimezone(tz=None).isoformat()

    def match(m: Msg) -> bool:
        if m.get("data_type") != "technical_analysis" or m.get("snapshot"):
            return False
        candle = m["data"]["candle"]
        return bool(candle["closed"]) and _same_instant(candle["start"], start)

    return match


def _same_instant(wire: str, iso: str) -> bool:
    return datetime.fromisoformat(wire.replace("Z", "+00:00")) == datetime.fromisoformat(iso)


async def subscribed(client: Client, msg: Msg) -> Msg:
    await client.send({"type": "subscribe", "symbol": "RELIANCE", **msg})
    return await client.wait_for(lambda m: m.get("type") in ("subscription", "error"))


async def test_same_set_in_any_spelling_shares_one_topic_and_one_message(tmp_path: Any) -> None:
    svc, feed = await _start(tmp_path)
    try:
        url = f"ws://127.0.0.1:{svc.port}/ws/analysis"
        a, b, plain = [await Client.connect(url) for _ in range(3)]
        ack_a = await subscribed(a, {"indicators": ["ema:9", "rsi:14"]})
        ack_b = await subscribed(b, {"indicators": [" RSI ", "ema:09", "ema:9"]})
        ack_plain = await subscribed(plain, {})
        assert ack_a["status"] == ack_b["status"] == "subscribed"
        assert ack_a["indicators"] == ack_b["indicators"] == ["ema:9", "rsi:14"]
        assert "indicators" not in ack_plain
        listed = await a.request({"type": "list_subscriptions"}, "subscriptions")
        assert listed["subscriptions"] == [
            {"symbol": "RELIANCE", "interval": "1m", "indicators": ["ema:9", "rsi:14"]}
        ]
        listed = await plain.request({"type": "list_subscriptions"}, "subscriptions")
        assert listed["subscriptions"] == [{"symbol": "RELIANCE", "interval": "1m"}]
        topics = {t for t in svc.hub.topics() if t.startswith("analysis:")}
        assert topics == {"analysis:RELIANCE:1m", "analysis:RELIANCE:1m|ema:9;rsi:14"}

        push_minutes(feed, 0, 20)
        got_a = await a.wait_for(analysis_of_minute(19))
        got_b = await b.wait_for(analysis_of_minute(19))
        got_plain = await plain.wait_for(analysis_of_minute(19))
        # One message for both subscribers of the set: same seq, epoch and content.
        assert got_a == got_b
        assert got_a["data"]["indicators"] == ["ema:9", "rsi:14"]
        values = got_a["data"]["technical_indicators"]
        assert set(values) == {"ema:9", "rsi:14", "warmup"}
        closes = [price(i) for i in range(20)]
        assert abs(values["ema:9"] - ref_ema(closes, 9)[-1]) < 1e-4
        assert abs(values["rsi:14"] - ref_rsi(closes, 14)[-1]) < 1e-4
        assert values["warmup"] == {"needed": 15, "have": 20}
        # The rest of the analysis is the default one's, and the default topic is unchanged.
        for key in ("patterns", "risk_metrics", "trend", "interval", "candle"):
            assert got_a["data"][key] == got_plain["data"][key]
        assert "indicators" not in got_plain["data"]
        assert set(got_plain["data"]["technical_indicators"]) == {
            "sma_20",
            "ema_20",
            "rsi_14",
            "macd",
            "bollinger",
            "atr_14",
            "vwap",
            "warmup",
        }
        seqs = [m["seq"] for m in a.seen if m.get("type") == "data" and not m.get("snapshot")]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        # A late subscriber of the set gets its snapshot: the latest analysis and the copy with
        # the chart history, both of the set and in the topic's seqs.
        late = await Client.connect(url)
        await subscribed(late, {"indicators": ["rsi:14", "ema:9"]})
        snapshot = [await late.wait_for(is_type("data")) for _ in range(2)]
        assert all(m["snapshot"] for m in snapshot)
        assert [len(m["data"].get("history", [])) for m in snapshot] == [0, 20]
        assert all(m["data"]["indicators"] == ["ema:9", "rsi:14"] for m in snapshot)
        assert all(m["epoch"] == got_a["epoch"] for m in snapshot)
        await late.close()
        for client in (a, b, plain):
            await client.close()
    finally:
        await svc.stop()


async def test_bad_indicator_sets_are_refused_with_their_codes(tmp_path: Any) -> None:
    svc, _ = await _start(tmp_path, max_indicators_per_subscription=3)
    try:
        client = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/analysis")
        cases = {
            "unknown_indicator": ["ema:9", "ichimoku"],
            "invalid_indicator_parameter": ["ema:0"],
            "too_many_indicators": ["ema:5", "ema:6", "ema:7", "ema:8"],
            "invalid_field": "ema:9",
        }
        for code, indicators in cases.items():
            err = await subscribed(client, {"indicators": indicators})
            assert err["type"] == "error" and err["code"] == code, err
            assert err["request"] == "subscribe"
        too_many = client.seen[-2]
        assert too_many["details"]["setting"] == "MAX_INDICATORS_PER_SUBSCRIPTION"
        assert too_many["details"]["limit"] == 3
        listed = await client.request({"type": "list_subscriptions"}, "subscriptions")
        assert listed["subscriptions"] == []
        # The field means nothing on the other endpoints: ignored there, as before.
        stream = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
        ack = await subscribed(stream, {"indicators": ["ichimoku"]})
        assert ack["status"] == "subscribed" and "indicators" not in ack
        await client.close()
        await stream.close()
    finally:
        await svc.stop()


async def test_distinct_sets_are_bounded_while_in_use(tmp_path: Any) -> None:
    svc, _ = await _start(tmp_path, max_indicator_sets=1)
    try:
        url = f"ws://127.0.0.1:{svc.port}/ws/analysis"
        a, b = await Client.connect(url), await Client.connect(url)
        assert (await subscribed(a, {"indicators": ["ema:9"]}))["status"] == "subscribed"
        # The set in use may be shared, on any symbol and interval; another one is refused.
        same = await subscribed(b, {"indicators": ["ema:9"], "interval": "5m"})
        assert same["status"] == "subscribed"
        refused = await subscribed(b, {"indicators": ["ema:21"]})
        assert refused["code"] == "limit_exceeded"
        assert refused["details"] == {"limit": 1, "current": 1, "setting": "MAX_INDICATOR_SETS"}
        # The default set is never refused.
        assert (await subscribed(b, {}))["status"] == "subscribed"
        # Once nobody uses a set, another one fits.
        for client, interval in ((a, "1m"), (b, "5m")):
            await client.send({"type": "unsubscribe", "symbol": "RELIANCE", "interval": interval})
            await client.wait_for(is_type("subscription", status="unsubscribed"))
        assert (await subscribed(b, {"indicators": ["ema:21"]}))["status"] == "subscribed"
        await a.close()
        await b.close()
    finally:
        await svc.stop()


async def test_resume_holds_per_set(tmp_path: Any) -> None:
    svc, feed = await _start(tmp_path)
    try:
        url = f"ws://127.0.0.1:{svc.port}/ws/analysis"
        sub = {"indicators": ["supertrend:5,2", "stoch"]}
        client = await Client.connect(url)
        await subscribed(client, sub)
        push_minutes(feed, 0, 10)
        held = await client.wait_for(analysis_of_minute(9))
        await client.close()

        push_minutes(feed, 11, 16)
        back = await Client.connect(url)
        ack = await subscribed(back, {**sub, "since": {"epoch": held["epoch"], "seq": held["seq"]}})
        assert ack["recovered"] is True and ack["indicators"] == ["stoch:14,3,3", "supertrend:5,2"]
        missed = await back.wait_for(is_type("data"))
        assert missed["seq"] > held["seq"] and not missed.get("snapshot")
        assert set(missed["data"]["technical_indicators"]) == {
            "stoch:14,3,3",
            "supertrend:5,2",
            "warmup",
        }
        assert missed["data"]["technical_indicators"]["supertrend:5,2"]["direction"] in (
            "up",
            "down",
        )
        # The default set's topic is another topic: its messages carry the default indicators.
        other = await Client.connect(url)
        await subscribed(other, {})
        snapshot = await other.wait_for(is_type("data"))
        assert "indicators" not in snapshot["data"]
        assert "sma_20" in snapshot["data"]["technical_indicators"]
        await back.close()
        await other.close()
    finally:
        await svc.stop()
