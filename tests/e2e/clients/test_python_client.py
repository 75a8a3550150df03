"""tickhub.client (the asyncio style) against the real service, over real sockets.

The link is dropped by a TCP relay the test controls (``Gate``: cut, reopen, freeze), and the
service itself is killed and started again on the same port and data directory, so the client
meets what it meets in the field: a reset link, a silent one, a server gone for good (1006), a
new epoch. What the client delivers is compared with what a second, never-disconnected
connection saw (the truth), or, across a restart, with what the service persisted.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Client as RawClient
from tests.helpers import free_port, serve_process, wait_until
from tickhub.app.roles import SingleService
from tickhub.client import (
    AlertData,
    CandleData,
    Client,
    ClientStopped,
    DataMessage,
    Disconnected,
    Event,
    Gap,
    MarketData,
    PositionData,
    Reconnecting,
    ServerError,
    SubscriptionAck,
    TechnicalAnalysis,
    TickData,
    TickhubError,
    Welcome,
    connect,
)

FAST: dict[str, Any] = {"min_delay": 0.05, "max_delay": 0.5}
"""Reconnect quickly: the tests wait for events, and a restart takes a second or two."""
WAIT = 30.0


class Gate:
    """A TCP relay in front of the service: ``cut`` drops every link at once (the client sees a
    reset, no close frame) and refuses new ones until ``reopen``; ``freeze`` keeps the links
    open but silent both ways, as a dead route does."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter, list[bool]]] = []

    async def reopen(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for down, up, _ in self._links:
            down.transport.abort()
            up.transport.abort()
        self._links.clear()

    def freeze(self) -> None:
        for *_, frozen in self._links:
            frozen[0] = True

    async def _relay(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            down_w.transport.abort()
            return
        frozen = [False]
        self._links.append((down_w, up_w, frozen))

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await r.read(65536):
                    if not frozen[0]:
                        w.write(data)
                        await w.drain()
            w.transport.abort()

        await asyncio.gather(pump(down_r, up_w), pump(up_r, down_w))

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


class Recorded:
    """Everything a client yields, read in a task of its own, with waits on what arrived."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.events: list[Event] = []
        self.ended: BaseException | None = None
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for event in self.client:
                async with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        except ClientStopped as exc:
            self.ended = exc
        async with self._changed:
            self._changed.notify_all()

    async def until(self, pred: Callable[[list[Event]], bool], timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: pred(self.events) or self._task.done())
        assert pred(self.events), f"not reached; last events: {self.events[-5:]}"

    def of(self, cls: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    def closes(self) -> list[CandleData]:
        return [e for e in self.of(CandleData) if e.data.closed]

    async def stop(self) -> None:
        await self.client.close()
        await self._task


def closes_after(events: list[Event], n: int, since: int = 0) -> bool:
    return sum(1 for e in events[since:] if isinstance(e, CandleData) and e.data.closed) >= n


def is_close(m: dict[str, Any]) -> bool:
    return m.get("data_type") == "candle_data" and m["data"]["closed"] is True


def closed_starts(raw: RawClient) -> list[str]:
    return [m["data"]["start"] for m in raw.seen if is_close(m)]


def assert_numbered_or_reported(events: list[Event], topic: str) -> None:
    """Between two consecutive messages of ``topic`` in one epoch, ``seq`` grows by one, or a
    gap that says so was reported in between; the first message of a new epoch follows a gap."""
    last: DataMessage | None = None
    gaps: list[Gap] = []
    for e in events:
        if isinstance(e, Gap) and e.topic == topic:
            gaps.append(e)
        if not isinstance(e, DataMessage) or e.topic != topic:
            continue
        if e.reset:
            assert gaps and gaps[-1].reason in ("not_recovered", "epoch_changed"), e
        elif last is not None and not e.snapshot and e.seq != last.seq + 1:
            assert e.epoch == last.epoch, "a new epoch without a reset"
            assert any(g.last == last.seq and g.seq == e.seq for g in gaps), (last, e, gaps)
        last = e


def assert_each_close_once_per_epoch(closes: list[CandleData]) -> None:
    keys = [(c.epoch, c.topic, c.data.start) for c in closes]
    assert len(keys) == len(set(keys)), "a candle close delivered twice"


# --- a dropped link: the resume delivers exactly what was missed --------------------------------


@pytest.fixture
async def gated(service: SingleService) -> AsyncIterator[Gate]:
    assert service.port is not None
    gate = Gate(service.port)
    await gate.reopen()
    yield gate
    with contextlib.suppress(Exception):
        await gate.cut()


async def test_a_dropped_link_is_resumed_and_nothing_is_lost_or_repeated(
    service: SingleService, gated: Gate
) -> None:
    direct = f"ws://127.0.0.1:{service.port}"
    truth = await RawClient.connect(f"{direct}/ws/stream")
    await truth.request({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
    alerts_truth = await RawClient.connect(f"{direct}/ws/alerts")
    await alerts_truth.request({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")

    stream = Recorded(await connect(f"{gated.url}/ws/stream", **FAST).start())
    alerts = Recorded(await connect(f"{gated.url}/ws/alerts", **FAST).start())
    await stream.client.subscribe("RELIANCE", interval="1m")
    await alerts.client.subscribe("RELIANCE")
    before = await alerts.client.create_alert("RELIANCE", "above", 1, note="seen live")
    await stream.until(lambda ev: closes_after(ev, 2))
    await alerts.until(lambda ev: any(isinstance(e, AlertData) and e.is_event for e in ev))

    await gated.cut()
    await stream.until(lambda ev: any(isinstance(e, Disconnected) for e in ev))
    # While the client is away: an alert fires and candles close.
    away = await alerts_truth.request(
        {"type": "create_alert", "symbol": "RELIANCE", "condition": "above", "value": 1},
        "alert",
    )
    away_id = away["alert"]["id"]
    await alerts_truth.wait_for(
        lambda m: m.get("event") == "triggered" and m["data"]["alert"]["id"] == away_id
    )
    last_seen = stream.closes()[-1].raw["data"]["start"]
    if last_seen not in closed_starts(truth):
        await truth.wait_for(lambda m: is_close(m) and m["data"]["start"] >= last_seen)
    n0 = len(closed_starts(truth))
    await truth.wait_for(lambda m: is_close(m) and len(closed_starts(truth)) >= n0 + 3)
    target = closed_starts(truth)[-1]
    await gated.reopen()

    # The client comes back, resumes, and catches up with the truth.
    await alerts.until(
        lambda ev: any(
            isinstance(e, AlertData) and e.data.alert is not None and e.data.alert.id == away_id
            for e in ev
        )
    )
    await stream.until(
        lambda ev: any(
            isinstance(e, CandleData) and e.data.closed and e.raw["data"]["start"] == target
            for e in ev
        )
    )
    resumed = [a for a in stream.of(SubscriptionAck) if a.recovered is not None]
    assert [a.recovered for a in resumed] == [True]
    assert [a.recovered for a in alerts.of(SubscriptionAck) if a.recovered is not None] == [True]
    assert not [g for g in stream.of(Gap) + alerts.of(Gap) if g.reason != "skipped"]
    assert stream.client.reconnects == 1

    got = [c.raw["data"]["start"] for c in stream.closes()]
    assert_each_close_once_per_epoch(stream.closes())
    if got[-1] not in closed_starts(truth):
        await truth.wait_for(lambda m: is_close(m) and m["data"]["start"] >= got[-1])
    window = [s for s in closed_starts(truth) if got[0] <= s <= got[-1]]
    assert len(window) >= 5
    assert got == window, "the client's candle closes differ from the uninterrupted ones"
    fired = [
        (e.data.alert.id, e.data.alert.fire_count)
        for e in alerts.of(AlertData)
        if e.is_event and e.data.alert is not None
    ]
    assert len(fired) == len(set(fired)), "an alert event delivered twice"
    assert {(before.id, 1), (away_id, 1)} <= set(fired)
    assert_numbered_or_reported(stream.events, "RELIANCE@1m")
    for c in (truth, alerts_truth):
        await c.close()
    await stream.stop()
    await alerts.stop()


async def test_a_silent_link_is_taken_for_dead_by_the_heartbeat(
    service: SingleService, gated: Gate
) -> None:
    client = connect(
        f"{gated.url}/ws/stream", heartbeat_interval=0.5, heartbeat_timeout=1.0, **FAST
    )
    rec = Recorded(await client.start())
    await client.subscribe("INFY")
    await wait_until(lambda: client.counters is not None)  # heartbeats answered
    await rec.until(lambda ev: any(isinstance(e, DataMessage) for e in ev))
    gated.freeze()
    await rec.until(lambda ev: any(isinstance(e, Disconnected) for e in ev))
    gone = rec.of(Disconnected)[0]
    assert gone.code == 1006 and "heartbeat" in gone.reason and gone.will_reconnect
    await rec.until(
        lambda ev: any(isinstance(e, SubscriptionAck) and e.recovered is not None for e in ev)
    )
    assert len(rec.of(Welcome)) == 2
    assert [a.recovered for a in rec.of(SubscriptionAck) if a.recovered is not None] == [True]
    await rec.stop()


# --- requests, refusals, batches, tokens ----------------------------------------------------


async def test_requests_and_their_errors(service: SingleService) -> None:
    base = f"ws://127.0.0.1:{service.port}"
    async with connect(f"{base}/ws/stream") as stream:
        with pytest.raises(TickhubError) as refused:
            await stream.subscribe(["RELIANCE", "NOSUCH"], interval="5m")
        assert refused.value.code == "unknown_symbol"
        assert [a.symbol for a in refused.value.details["acks"]] == ["RELIANCE"]
        assert stream.subscriptions == [("RELIANCE", "5m")]  # the refused one is not kept
        with pytest.raises(TickhubError) as bad:
            await stream.subscribe("INFY", interval="2m")
        assert bad.value.code == "unknown_interval"
        listed = await stream.list_subscriptions()
        assert ("RELIANCE", "5m") in listed.subscriptions
        assert await stream.ping() >= 0
        acks = await stream.unsubscribe("RELIANCE")
        assert [a.status for a in acks] == ["unsubscribed"]
        with pytest.raises(TickhubError) as missing:
            await stream.unsubscribe("TCS")
        assert missing.value.code == "not_subscribed"
        with pytest.raises(TickhubError) as wrong_place:
            await stream.create_alert("TCS", "above", 1)
        assert wrong_place.value.code == "unknown_type"  # alerts are /ws/alerts' business

    async with connect(f"{base}/ws/alerts") as alerts:
        alert = await alerts.create_alert("TCS", "cross_up", 99999, once=False, note="far")
        assert (alert.symbol, alert.condition, alert.once, alert.note) == (
            "TCS",
            "cross_up",
            False,
            "far",
        )
        assert alert.id in [a.id for a in await alerts.list_alerts("TCS")]
        crossing = await alerts.create_alert(
            "TCS", "crosses_above", indicator="EMA:9", other="ema:21", interval="5m", forming=True
        )
        assert (crossing.category, crossing.indicator, crossing.other, crossing.value) == (
            "indicator",
            "ema:9",
            "ema:21",
            None,
        )
        assert (crossing.interval, crossing.forming, crossing.values) == ("5m", True, None)
        pattern = await alerts.create_alert(
            "TCS", "pattern", pattern="engulfing", direction="bullish", interval="15m"
        )
        assert (pattern.category, pattern.pattern, pattern.direction) == (
            "pattern",
            "engulfing",
            "bullish",
        )
        assert await alerts.delete_alert(crossing.id) == crossing.id
        assert await alerts.delete_alert(pattern.id) == pattern.id
        with pytest.raises(TickhubError) as invalid:
            await alerts.create_alert("TCS", "sideways", 1)
        assert (
            invalid.value.code == "invalid_field" and invalid.value.details["field"] == "condition"
        )
        assert await alerts.delete_alert(alert.id) == alert.id
        with pytest.raises(TickhubError) as gone:
            await alerts.delete_alert(alert.id)
        assert gone.value.code == "not_found"

    async with connect(f"{base}/ws/portfolio") as portfolio:
        saved = await portfolio.set_position("WIPRO", 10, "250.5", product="cnc")
        assert saved.status == "saved" and saved.position is not None
        assert saved.position.quantity == 10 and saved.position.product == "CNC"
        positions, totals = await portfolio.list_positions()
        assert "WIPRO" in [p.symbol for p in positions] and totals.positions == len(positions)
        with pytest.raises(TickhubError) as index:
            await portfolio.set_position("NIFTY 50", 1, 100)
        assert index.value.code == "invalid_field"
        assert (await portfolio.remove_position("WIPRO")).status == "removed"


async def test_batches_are_unpacked_into_the_same_messages(service: SingleService) -> None:
    url = f"ws://127.0.0.1:{service.port}/ws/stream"
    batched = Recorded(await connect(url, batch=True).start())
    assert batched.client.url.endswith("?batch=1")
    plain = Recorded(await connect(url).start())
    for c in (batched, plain):
        await c.client.subscribe("SBIN")
    await batched.until(lambda ev: len([e for e in ev if isinstance(e, DataMessage)]) >= 30)
    last = [e for e in batched.of(DataMessage) if not e.snapshot][-1]
    await plain.until(lambda ev: any(isinstance(e, DataMessage) and e.seq >= last.seq for e in ev))
    assert batched.client.batches > 0, "the server sent no batch"
    live = {e.seq: e.raw for e in batched.of(DataMessage) if not e.snapshot}
    same = {e.seq: e.raw for e in plain.of(DataMessage) if e.seq in live and not e.snapshot}
    assert same and all(live[s] == same[s] for s in same)
    assert not batched.of(Gap)
    await batched.stop()
    await plain.stop()


async def test_tokens_by_subprotocol_or_message_and_a_refused_one_stops(
    service_factory: Callable[..., Any],
) -> None:
    svc = await service_factory(api_keys="alice:secret-key,bob:with/slash=")
    url = f"ws://127.0.0.1:{svc.port}/ws/alerts"
    for token, user in (("secret-key", "alice"), ("with/slash=", "bob")):
        rec = Recorded(await connect(url, token=token).start())
        await rec.until(lambda ev: any(getattr(e, "status", "") == "authenticated" for e in ev))
        assert [getattr(e, "user", None) for e in rec.events if hasattr(e, "user")] == [user]
        await rec.client.subscribe("RELIANCE")  # served: authenticated
        await rec.stop()
    rec = Recorded(await connect(url, token=lambda: "wrong", **FAST).start())
    await rec.until(lambda _: rec.ended is not None)
    assert isinstance(rec.ended, ClientStopped) and rec.ended.close_code == 4500
    assert [e.code for e in rec.of(ServerError)] == ["auth_failed"]
    assert [(d.code, d.will_reconnect) for d in rec.of(Disconnected)] == [(4500, False)]
    with pytest.raises(ClientStopped):
        async with connect(f"ws://127.0.0.1:{svc.port}/nowhere"):
            pass


# --- the service killed and started again -----------------------------------------------------


async def _kill(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    proc.send_signal(sig)
    await asyncio.wait_for(proc.wait(), WAIT)


async def test_a_killed_and_restarted_service_is_reported_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    port = free_port()
    proc = await serve_process(tmp_path, port)
    try:
        url = f"ws://127.0.0.1:{port}"
        stream = Recorded(await connect(f"{url}/ws/stream", **FAST).start())
        alerts = Recorded(await connect(f"{url}/ws/alerts", **FAST).start())
        await stream.client.subscribe("RELIANCE", interval="1m")
        await alerts.client.subscribe("RELIANCE")
        fired = await alerts.client.create_alert("RELIANCE", "above", 1, note="once")
        await alerts.until(
            lambda ev: any(isinstance(e, AlertData) and e.data.alert is not None for e in ev)
        )
        await stream.until(lambda ev: closes_after(ev, 3))

        await _kill(proc, signal.SIGKILL)
        proc = await serve_process(tmp_path, port)
        mark = len(stream.events)
        await stream.until(lambda ev: closes_after(ev, 3, since=mark))
        await alerts.until(lambda ev: len([e for e in ev if isinstance(e, Welcome)]) == 2)
        late = await alerts.client.create_alert("RELIANCE", "above", 1, note="after")
        await alerts.until(
            lambda ev: any(
                isinstance(e, AlertData) and e.data.alert is not None and e.data.alert.id == late.id
                for e in ev
            )
        )

        for rec, topic in ((stream, "RELIANCE@1m"), (alerts, "RELIANCE")):
            drops = rec.of(Disconnected)
            assert [(d.code, d.will_reconnect) for d in drops] == [(1006, True)]
            assert [a.recovered for a in rec.of(SubscriptionAck) if a.recovered is not None] == [
                False
            ]
            lost = [g for g in rec.of(Gap) if g.reason != "skipped"]
            assert [(g.reason, g.topic) for g in lost] == [("not_recovered", topic)]
            assert_numbered_or_reported(rec.events, topic)
        epochs = {c.epoch for c in stream.closes()}
        assert len(epochs) == 2
        assert_each_close_once_per_epoch(stream.closes())
        # The alert fired once, before the kill; persisted, it does not fire again.
        events = [
            (e.data.alert.id, e.data.alert.fire_count)
            for e in alerts.of(AlertData)
            if e.data.alert is not None
        ]
        assert events.count((fired.id, 1)) == 1 and (late.id, 1) in events
        assert all(i != fired.id or n == 1 for i, n in events)
        after = next(e for e in alerts.of(AlertData) if e.reset)
        kept = {a.id: a for a in after.data.price_alerts}
        assert kept[fired.id].fired and kept[fired.id].fire_count == 1
        await stream.stop()
        await alerts.stop()
    finally:
        if proc.returncode is None:
            await _kill(proc, signal.SIGTERM)


# --- the client's own limits -------------------------------------------------------------------


async def test_a_reader_that_falls_behind_holds_at_most_max_queue(service: SingleService) -> None:
    client = connect(
        f"ws://127.0.0.1:{service.port}/ws/stream",
        max_queue=5,
        heartbeat_interval=0.3,
        heartbeat_timeout=0.3,
    )
    await client.start()
    symbols = ["RELIANCE", "INFY", "TCS", "SBIN", "WIPRO", "ITC", "HDFCBANK"]
    await client.subscribe(symbols)
    # the acks were read although the buffer was full (the call waited for them); then the
    # client stops reading
    await wait_until(lambda: client.held >= 5 and client._blocked)
    held = client.held

    # meanwhile the market goes on: another connection receives 30 updates
    truth = await RawClient.connect(f"ws://127.0.0.1:{service.port}/ws/stream")
    await truth.send({"type": "subscribe", "symbols": symbols})
    await truth.wait_for(
        lambda m: len([x for x in truth.seen if x.get("type") == "data"]) >= 30, WAIT
    )
    await truth.close()
    assert client.held == held
    # Reading again: the link was not taken for dead while this process held it up.
    events = [await anext(client) for _ in range(60)]
    assert not [e for e in events if isinstance(e, Disconnected)]
    assert client.reconnects == 0
    await client.close()


async def test_max_attempts_then_it_stops(service: SingleService, gated: Gate) -> None:
    rec = Recorded(await connect(f"{gated.url}/ws/stream", max_attempts=2, **FAST).start())
    await rec.until(lambda ev: any(isinstance(e, Welcome) for e in ev))
    await gated.cut()
    await rec.until(lambda _: rec.ended is not None)
    assert isinstance(rec.ended, ClientStopped) and "after 2 attempts" in str(rec.ended)
    assert [e.attempt for e in rec.of(Reconnecting)] == [1, 2]
    assert [d.will_reconnect for d in rec.of(Disconnected)] == [True]


async def test_a_request_on_a_silent_link_times_out(service: SingleService, gated: Gate) -> None:
    async with connect(
        f"{gated.url}/ws/alerts", request_timeout=0.3, heartbeat_interval=0
    ) as client:
        gated.freeze()
        with pytest.raises(TickhubError) as late:
            await client.list_alerts()
        assert late.value.code == "timeout" and "0.3s" in late.value.message


async def test_every_endpoint_yields_its_typed_data(service: SingleService) -> None:
    base = f"ws://127.0.0.1:{service.port}"
    wanted: dict[str, tuple[type[DataMessage], ...]] = {
        "stream": (TickData, CandleData, MarketData),
        "analysis": (TechnicalAnalysis,),
        "alerts": (AlertData,),
        "portfolio": (PositionData,),
    }
    recs = {name: Recorded(await connect(f"{base}/ws/{name}").start()) for name in wanted}
    await recs["portfolio"].client.set_position("WIPRO", 5, 250)
    for name in ("stream", "analysis", "alerts"):
        await recs[name].client.subscribe("RELIANCE")
    await recs["portfolio"].client.subscribe("*")
    for name, classes in wanted.items():
        await recs[name].until(
            lambda ev, classes=classes: all(any(isinstance(e, c) for e in ev) for c in classes)  # type: ignore[misc]
        )
    analysis = recs["analysis"].of(TechnicalAnalysis)[0]
    assert analysis.topic == "RELIANCE@1m" and analysis.data.technical_indicators.warmup.needed
    position = next(p for p in recs["portfolio"].of(PositionData) if p.symbol == "WIPRO")
    assert position.topic == "*" and position.data.position.quantity == 5
    state = recs["alerts"].of(AlertData)[0]
    assert state.data.price_alerts and not state.is_event
    quote = recs["stream"].of(MarketData)[0]
    assert len(quote.data.bids) == 5 and quote.data.tradable
    for rec in recs.values():
        await rec.stop()
