"""tickhub.client with /ws/analysis indicator sets (docs/protocol.md §6.2.1), against the real
service: each set of a symbol and interval is a topic of its own, so the client keeps a resume
point and a gap check per set, and a set the server refuses is an error with its code."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.clients.test_python_client import (
    FAST,
    WAIT,
    Gate,
    Recorded,
    assert_numbered_or_reported,
)
from tests.e2e.clients.test_python_client_ticker import Calls, attach
from tests.helpers import Client as RawClient
from tests.helpers import free_port, serve_process
from tickhub.app.roles import SingleService
from tickhub.client import (
    Disconnected,
    Event,
    Gap,
    SubscriptionAck,
    TechnicalAnalysis,
    Ticker,
    TickhubError,
    Welcome,
    connect,
)

FAST_SET = ("ema:9", "rsi:14")
SLOW_SET = ("ema:21", "supertrend:10,3")


def analyses(events: list[Event], topic: str, since: int = 0) -> list[TechnicalAnalysis]:
    return [e for e in events[since:] if isinstance(e, TechnicalAnalysis) and e.topic == topic]


async def test_two_sets_and_the_default_on_one_connection_resume_each_on_its_own(
    service: SingleService,
) -> None:
    assert service.port is not None
    gate = Gate(service.port)
    await gate.reopen()
    direct = f"ws://127.0.0.1:{service.port}/ws/analysis"
    truth = await RawClient.connect(direct)
    await truth.request(
        {"type": "subscribe", "symbol": "RELIANCE", "indicators": list(FAST_SET)}, "subscription"
    )
    rec = Recorded(await connect(f"{gate.url}/ws/analysis", **FAST).start())
    try:
        (plain,) = await rec.client.subscribe("RELIANCE", interval="1m")
        # Spelt otherwise than the server's canonical form: the ack answers the same set.
        (fast,) = await rec.client.subscribe("reliance", "1m", ["RSI", "ema:09"])
        (slow,) = await rec.client.subscribe("RELIANCE", "1m", ["supertrend:10,3", "ema:21"])
        assert (plain.indicators, fast.indicators, slow.indicators) == (None, FAST_SET, SLOW_SET)
        topics = {
            None: "RELIANCE@1m",
            FAST_SET: "RELIANCE@1m[ema:9,rsi:14]",
            SLOW_SET: "RELIANCE@1m[ema:21,supertrend:10,3]",
        }
        assert [plain.topic, fast.topic, slow.topic] == list(topics.values())

        def each_topic(n: int, since: int = 0) -> Any:
            return lambda ev: all(len(analyses(ev, t, since)) >= n for t in topics.values())

        await rec.until(each_topic(2))
        for indicators, topic in topics.items():
            for msg in analyses(rec.events, topic):
                assert msg.data.indicators == indicators
                keys = set(msg.data.technical_indicators.values)
                if indicators is None:
                    assert {"sma_20", "ema_20", "rsi_14", "macd"} <= keys
                else:
                    assert keys == set(indicators), msg.raw
        last = analyses(rec.events, topics[SLOW_SET])[-1].data.technical_indicators
        supertrend = last["supertrend:10,3"]
        assert supertrend is None or set(supertrend) == {"value", "direction"}
        ema = last.number("ema:21")
        assert ema is None or ema > 0
        assert last.warmup.needed >= 21

        await gate.cut()
        await rec.until(lambda ev: any(isinstance(e, Disconnected) for e in ev))
        # While the client is away, the set's topic moves on.
        n0 = len(truth.seen)
        await truth.wait_for(lambda m: m.get("type") == "data" and len(truth.seen) > n0 + 1)
        mark = len(rec.events)
        await gate.reopen()
        await rec.until(each_topic(2, since=mark))

        resumed = [a for a in rec.of(SubscriptionAck)[3:] if a.status == "subscribed"]
        assert sorted(a.topic for a in resumed) == sorted(topics.values())
        # Each topic was resumed from its own position, and the server could serve each.
        assert [a.recovered for a in resumed] == [True, True, True], [a.raw for a in resumed]
        for topic in topics.values():
            assert_numbered_or_reported(rec.events, topic)
        assert [g for g in rec.of(Gap) if g.reason != "skipped"] == []
        assert rec.client.reconnects == 1
    finally:
        await rec.stop()
        await truth.close()
        await gate.cut()


@pytest.mark.parametrize(
    ("indicators", "code"),
    [
        (["ichimoku"], "unknown_indicator"),
        (["ema:0"], "invalid_indicator_parameter"),
        ([f"ema:{n}" for n in range(2, 13)], "too_many_indicators"),
    ],
)
async def test_a_set_the_server_refuses_raises_its_code_and_is_not_kept(
    service: SingleService, indicators: list[str], code: str
) -> None:
    url = f"ws://127.0.0.1:{service.port}/ws/analysis"
    async with connect(url, **FAST) as client:
        await client.subscribe("RELIANCE")
        with pytest.raises(TickhubError) as raised:
            await client.subscribe("RELIANCE", "1m", indicators)
        assert raised.value.code == code
        assert raised.value.details.get("setting") in (None, "MAX_INDICATOR_PERIOD") or (
            code == "too_many_indicators"
        )
        # The default subscription of the symbol stays; the refused set is not resubscribed.
        assert client.subscriptions == [("RELIANCE", None)]
        held = await client.list_subscriptions()
        assert [s for s in held.raw["subscriptions"] if "indicators" in s] == []


async def test_the_ticker_with_sets_through_a_kill_reports_each_set_topic_once(
    tmp_path: Path,
) -> None:
    """SIGKILL and a start on the same port: a new epoch, so every resume is refused; each set's
    topic reports its own ``not_recovered`` gap once and starts afresh (``reset``)."""
    port = free_port()
    proc = await serve_process(tmp_path, port)
    topics = ["RELIANCE@1m[ema:9,rsi:14]", "RELIANCE@1m[ema:21,supertrend:10,3]"]
    ticker = Ticker(f"ws://127.0.0.1:{port}/ws/analysis", **FAST)
    calls = Calls()
    attach(ticker, calls)
    try:
        ticker.connect(threaded=True)
        acks = [
            ticker.subscribe("RELIANCE", "1m", list(FAST_SET)).result(WAIT),
            ticker.subscribe("RELIANCE", "1m", ["ema:21", "supertrend:10,3"]).result(WAIT),
        ]
        assert [a.topic for (a,) in acks] == topics
        with pytest.raises(TickhubError) as raised:
            ticker.subscribe("RELIANCE", "1m", ["ichimoku"]).result(WAIT)
        assert raised.value.code == "unknown_indicator"

        def each(n: int, since: int = 0) -> Any:
            return lambda c: all(len(analyses(c.events, t, since)) >= n for t in topics)

        await calls.until(each(2))
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), WAIT)
        proc = await serve_process(tmp_path, port)
        mark = len(calls.events)
        await calls.until(each(2, since=mark))
        await calls.until(lambda c: len([e for e in c.events if isinstance(e, Welcome)]) == 2)

        lost = [g for (g,) in calls.of("gap") if isinstance(g, Gap) and g.reason != "skipped"]
        assert sorted((g.reason, g.topic) for g in lost) == sorted(
            ("not_recovered", t) for t in topics
        )
        assert {g.indicators for g in lost} == {FAST_SET, SLOW_SET}
        for topic in topics:
            assert_numbered_or_reported(calls.events, topic)
            after = analyses(calls.events, topic, since=mark)
            assert after[0].reset and after[0].epoch != analyses(calls.events, topic)[0].epoch
        assert len(ticker.client.subscriptions) == 2
    finally:
        ticker.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), WAIT)
