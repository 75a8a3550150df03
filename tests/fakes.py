"""Fakes that implement the real interfaces (one place for all of them).

Each fake stands for one interface of ``tickhub`` (a feed, a clock, a bus, a store, a peer of the
hub, a feed's callbacks) and is checked against it by :func:`_conformance`, which mypy reads and
nothing calls: a fake that drifts from its interface is a type error, not a test that silently
exercises something the service never sees.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

from tickhub.bus import Bus, BusMessage, Handler
from tickhub.bus.memory import MemoryBus
from tickhub.core.clock import Clock
from tickhub.core.commands import Command
from tickhub.core.model import IST, Candle, FeedState, FeedStatus, Instrument, Interval, Tick
from tickhub.core.topics import Endpoint
from tickhub.engines.alerts import Alert, AlertEvent
from tickhub.fanout.session import Peer
from tickhub.feeds.base import Feed, StatusSink, TickSink
from tickhub.ingest.requests import HandlerHost, Replier
from tickhub.runtime.clock import ManualClock
from tickhub.server import text_frame
from tickhub.store import PositionStore, Store
from tickhub.store.sqlite import SqliteStore

# --- feeds ----------------------------------------------------------------------------------------


class ScriptedFeed:
    """A ``Feed`` whose ticks and states the test pushes by hand."""

    name = "scripted"

    def __init__(self) -> None:
        self._on_tick: TickSink | None = None
        self._on_status: StatusSink | None = None
        self._status = FeedStatus(FeedState.STARTING)
        self.running = asyncio.Event()
        self.subscribed: set[int] = set()
        self.calls: list[tuple[str, list[str]]] = []  # ("subscribe" | "unsubscribe", symbols)

    async def run(self, on_tick: TickSink, on_status: StatusSink) -> None:
        self._on_tick, self._on_status = on_tick, on_status
        self.set_status(FeedState.LIVE, "scripted")
        self.running.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.set_status(FeedState.STOPPED)

    def push(self, *ticks: Tick) -> None:
        assert self._on_tick is not None, "feed not running"
        for tick in ticks:
            self._on_tick(tick)

    def set_status(self, state: FeedState, detail: str = "") -> None:
        self._status = FeedStatus(state, detail)
        if self._on_status is not None:
            self._on_status(self._status)

    def subscribe(self, instruments: Iterable[Instrument]) -> None:
        batch = list(instruments)
        self.calls.append(("subscribe", [i.symbol for i in batch]))
        self.subscribed.update(i.instrument_token for i in batch)

    def unsubscribe(self, instruments: Iterable[Instrument]) -> None:
        batch = list(instruments)
        self.calls.append(("unsubscribe", [i.symbol for i in batch]))
        self.subscribed.difference_update(i.instrument_token for i in batch)

    def status(self) -> FeedStatus:
        return self._status


class TapFeed:
    """A ``Feed`` that runs another one and keeps a copy of every tick it passes on."""

    name = "tap"

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.ticks: list[Tick] = []

    async def run(self, on_tick: TickSink, on_status: StatusSink) -> None:
        def tick(t: Tick) -> None:
            on_tick(t)
            self.ticks.append(t)

        await self.feed.run(tick, on_status)

    def subscribe(self, instruments: Iterable[Instrument]) -> None:
        self.feed.subscribe(instruments)

    def unsubscribe(self, instruments: Iterable[Instrument]) -> None:
        self.feed.unsubscribe(instruments)

    def status(self) -> FeedStatus:
        return self.feed.status()


# --- a feed's callbacks (TickSink and StatusSink) -------------------------------------------------


class FeedSink:
    """Feed callbacks: ticks in a list, statuses with events to await."""

    def __init__(self, want: int | None = None) -> None:
        self.ticks: list[Tick] = []
        self.statuses: list[FeedStatus] = []
        self.live = asyncio.Event()
        self.stopped = asyncio.Event()
        self.enough = asyncio.Event()
        self.want = want

    def on_tick(self, tick: Tick) -> None:
        self.ticks.append(tick)
        if self.want is not None and len(self.ticks) >= self.want:
            self.enough.set()

    def on_status(self, status: FeedStatus) -> None:
        self.statuses.append(status)
        if status.state is FeedState.LIVE:
            self.live.set()
        elif status.state in (FeedState.STOPPED, FeedState.FINISHED):
            self.stopped.set()


class QueueRecorder:
    """Feed callbacks that queue ticks (a test awaits them one by one) and note LIVE."""

    def __init__(self) -> None:
        self.ticks: asyncio.Queue[Tick] = asyncio.Queue()
        self.statuses: list[FeedStatus] = []
        self.live = asyncio.Event()

    def on_tick(self, tick: Tick) -> None:
        self.ticks.put_nowait(tick)

    def on_status(self, status: FeedStatus) -> None:
        self.statuses.append(status)
        if status.state is FeedState.LIVE:
            self.live.set()

    def drain(self) -> list[Tick]:
        out: list[Tick] = []
        while not self.ticks.empty():
            out.append(self.ticks.get_nowait())
        return out


class FeedRecorder:
    """The feed's sinks: keeps every tick and status and lets a test wait for a condition."""

    def __init__(self, timeout: float = 20.0) -> None:
        self.ticks: list[Tick] = []
        self.statuses: list[FeedStatus] = []
        self.timeout = timeout
        self._changed = asyncio.Event()

    def on_tick(self, tick: Tick) -> None:
        self.ticks.append(tick)
        self._notify()

    def on_status(self, status: FeedStatus) -> None:
        self.statuses.append(status)
        self._notify()

    def states(self, after: int = 0) -> list[FeedState]:
        return [s.state for s in self.statuses[after:]]

    async def changed(self) -> None:
        """Return at the next tick or status."""
        await self._changed.wait()

    async def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        """Re-check ``predicate`` after every tick and status (ticks arrive every ~0.1 s)."""
        try:
            async with asyncio.timeout(self.timeout):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"timed out waiting for {what}; states: {[s.value for s in self.states()]}"
            ) from None

    async def wait_state(self, state: FeedState, after: int = 0) -> int:
        """Wait for ``state`` among the statuses from index ``after`` on; returns its index."""
        await self.wait_for(lambda: state in self.states(after), f"state {state.value}")
        return after + self.states(after).index(state)

    async def wait_ticks(self, count: int, symbol: str | None = None, after: int = 0) -> None:
        def enough() -> bool:
            ticks = self.ticks[after:]
            return sum(1 for t in ticks if symbol is None or t.symbol == symbol) >= count

        await self.wait_for(enough, f"{count} ticks of {symbol or 'any symbol'}")

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


# --- clocks ---------------------------------------------------------------------------------------


class StepClock(ManualClock):
    """A ``ManualClock`` that counts waits, so a test can tell when the feed waits again."""

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__(start)
        self.sleeps = 0
        self._slept = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self._slept.set()
        await super().sleep(seconds)

    async def wait_sleeps(self, n: int) -> None:
        """Return once ``sleep`` has been called ``n`` times in all."""
        async with asyncio.timeout(5):
            while self.sleeps < n:
                self._slept.clear()
                await self._slept.wait()

    async def step(self, seconds: float) -> None:
        """Advance, then return once someone waits on the clock again."""
        n = self.sleeps
        self.advance(seconds)
        await self.wait_sleeps(n + 1)


class SteppingClock(ManualClock):
    """A ``ManualClock`` that tells the test each time the feed waits on it again.

    ``start`` defaults to ``ManualClock``'s own start, Monday 2025-01-27 09:15 IST."""

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__(None if start is None else start.astimezone(UTC))
        self.waiting = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.waiting.set()
        await super().sleep(seconds)

    async def step(self, seconds: float) -> None:
        """Advance, then return once the feed has handled it and sleeps again."""
        self.waiting.clear()
        self.advance(seconds)
        async with asyncio.timeout(5):
            await self.waiting.wait()


# --- buses ----------------------------------------------------------------------------------------


class BusRecorder:
    """A bus ``Handler`` that keeps what it receives and lets a test wait for a count."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.messages: list[BusMessage] = []
        self.timeout = timeout
        self._arrived = asyncio.Event()

    def __call__(self, message: BusMessage) -> None:
        self.messages.append(message)
        self._arrived.set()

    @property
    def payloads(self) -> list[bytes]:
        return [m.payload for m in self.messages]

    async def wait_for(self, count: int) -> list[BusMessage]:
        async with asyncio.timeout(self.timeout):
            while len(self.messages) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.messages


class RecordingBus(MemoryBus):
    """A ``MemoryBus`` that also keeps every message handed to ``publish``, in order (including
    the ones that only update retained state and reach no handler)."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[BusMessage] = []

    def publish(self, message: BusMessage) -> None:
        self.published.append(message)
        super().publish(message)


class SlowBus(MemoryBus):
    """A bus whose retained state needs I/O (as Redis does before its cache is filled)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    def retained_nowait(self, topic: str) -> list[bytes] | None:
        return None

    async def retained(self, topic: str) -> list[bytes]:
        await self.release.wait()
        return await super().retained(topic)


class EarlySnapshotBus(MemoryBus):
    """Reads the retained state when asked and answers later, as a Redis read does: updates
    that arrive in between are not in the answer."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.retained_calls = 0

    def retained_nowait(self, topic: str) -> list[bytes] | None:
        return None

    async def retained(self, topic: str) -> list[bytes]:
        values = await super().retained(topic)
        self.retained_calls += 1
        await self.release.wait()
        return values


# --- the hub's peers ------------------------------------------------------------------------------


class RecordingPeer:
    """A hub ``Peer`` that keeps every frame it is sent (no network needed)."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self.pings = 0

    def send(self, payload: bytes) -> None:
        self.frames.append(text_frame(payload))

    def send_frame(self, frame: bytes) -> None:
        self.frames.append(frame)

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def ping(self) -> None:
        self.pings += 1

    def messages(self) -> list[dict[str, Any]]:
        """The JSON messages sent so far, in order (each frame's payload, decoded)."""
        out: list[dict[str, Any]] = []
        for f in self.frames:
            n = f[1] & 0x7F
            start = 2 if n < 126 else 4 if n == 126 else 10
            out.append(json.loads(f[start:]))
        return out


# --- the requests' sessions and hosts -------------------------------------------------------------


class RecordingReplier:
    """A requests ``Replier`` (what a hub session is to ``ingest.requests``): keeps every reply
    decoded, after calling ``on_send``, so a test can look at the store at the moment the reply
    leaves (a change must be durable before the client hears of it)."""

    def __init__(self, user: str = "", on_send: Callable[[], None] | None = None) -> None:
        self.user = user
        self.on_send = on_send
        self.replies: list[dict[str, object]] = []

    def send(self, payload: bytes) -> None:
        if self.on_send is not None:
            self.on_send()
        self.replies.append(json.loads(payload))

    def last(self) -> dict[str, object]:
        """The one reply since the last ``last`` (and forget it): a request has one answer."""
        assert len(self.replies) == 1, f"expected one reply, got {self.replies}"
        return self.replies.pop()


class HandlerTable:
    """A requests ``HandlerHost`` (the hub, as ``Requests.register`` sees it): the handlers
    registered, by endpoint and request type."""

    def __init__(self) -> None:
        self.handlers: dict[tuple[Endpoint, str], Callable[[Any, Command], None]] = {}

    def add_command_handler(
        self, endpoint: Endpoint, kind: str, handler: Callable[[Any, Command], None]
    ) -> None:
        self.handlers[(endpoint, kind)] = handler


# --- stores ---------------------------------------------------------------------------------------


class FlakySqliteStore(SqliteStore):
    """A real store whose next ``add_event`` fails once (a full disk, say)."""

    fail_next = False

    def add_event(self, event: AlertEvent) -> None:
        if self.fail_next:
            self.fail_next = False
            raise OSError("disk full")
        super().add_event(event)


class FakePositionStore:
    """In-memory ``PositionStore``: rows keyed by (owner, symbol), copied in and out."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, object]] = {}
        self.fail = False

    def load_positions(self, owner: str | None = None) -> list[dict[str, object]]:
        return [dict(r) for (o, _), r in sorted(self.rows.items()) if owner in (None, o)]

    def save_position(self, row: dict[str, object]) -> None:
        self._check()
        self.rows[(str(row["owner"]), str(row["symbol"]))] = dict(row)

    def delete_position(self, owner: str, symbol: str) -> bool:
        self._check()
        return self.rows.pop((owner, symbol), None) is not None

    def replace_positions(self, owner: str, rows: list[dict[str, object]]) -> None:
        self._check()
        kept = {k: v for k, v in self.rows.items() if k[0] != owner}
        kept.update({(owner, str(r["symbol"])): dict(r) for r in rows})
        self.rows = kept

    def _check(self) -> None:
        if self.fail:
            raise OSError("disk full")


# --- upstream HTTP APIs ---------------------------------------------------------------------------


class KiteRestStub(BaseHTTPRequestHandler):
    """Answers every GET like Kite's REST API answers ``/instruments``: ``body`` as CSV; notes
    each request's path and ``Authorization`` header in ``seen`` (set both per test)."""

    body: ClassVar[str] = ""
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        data = type(self).body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return None


# --- ticks and store rows -------------------------------------------------------------------------


def tick(
    symbol: str,
    ts: datetime,
    price: float,
    volume: int,
    *,
    prev_close: float = 100.0,
    token: int = 738561,
) -> Tick:
    return Tick(
        symbol=symbol,
        instrument_token=token,
        timestamp=ts,
        price=price,
        volume=volume,
        last_quantity=1,
        average_price=price,
        open=prev_close,
        high=max(price, prev_close),
        low=min(price, prev_close),
        prev_close=prev_close,
    )


T0 = datetime(2025, 1, 27, 10, 0, tzinfo=IST)


def alert(id: str = "a_000000000001", **kw: Any) -> Alert:
    base: dict[str, Any] = {"symbol": "RELIANCE", "condition": "above", "value": 2500.0}
    base.update(kw)
    return Alert(id=id, **base)


def event(a: Alert, seconds: int = 0, price: float = 2510.0) -> AlertEvent:
    ts = T0 + timedelta(seconds=seconds)
    fired = Alert(
        id=a.id,
        symbol=a.symbol,
        condition=a.condition,
        value=a.value,
        owner=a.owner,
        once=a.once,
        note=a.note,
        source=a.source,
        triggered=True,
        triggered_at=ts,
        price=price,
        message=f"{a.symbol} at {price:.2f}",
        armed=False,
        last_price=price,
        fire_count=a.fire_count + 1,
    )
    return AlertEvent(fired, ts, price, fired.message or "", fired.category)


def position(symbol: str = "RELIANCE", owner: str = "u", **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "owner": owner,
        "symbol": symbol,
        "quantity": 10,
        "average_price": "2450.35",
        "product": "CNC",
        "exchange": "NSE",
        "updated_at": "2025-01-27T10:00:00+05:30",
    }
    row.update(kw)
    return row


# --- every fake against its interface -------------------------------------------------------------


def _conformance(store_path: str) -> None:
    """Never called: mypy checks here that each fake is what it stands for."""
    feeds: list[Feed] = [ScriptedFeed(), TapFeed(ScriptedFeed())]
    clocks: list[Clock] = [StepClock(), SteppingClock()]
    buses: list[Bus] = [RecordingBus(), SlowBus(), EarlySnapshotBus()]
    handler: Handler = BusRecorder()
    peer: Peer = RecordingPeer()
    store: Store = FlakySqliteStore(store_path)
    positions: PositionStore = FakePositionStore()
    replier: Replier = RecordingReplier()
    host: HandlerHost = HandlerTable()
    sinks: list[tuple[TickSink, StatusSink]] = [
        (s.on_tick, s.on_status) for s in (FeedSink(), QueueRecorder(), FeedRecorder())
    ]
    del feeds, clocks, buses, handler, peer, store, positions, replier, host, sinks


def closed_candle(
    minute: int = 0,
    symbol: str = "RELIANCE",
    interval: Interval = Interval.M1,
    price: float = 2500.0,
    volume: int = 100,
) -> Candle:
    """A closed candle ``minute`` intervals after ``T0``'s bucket, its prices around ``price``."""
    return Candle(
        symbol,
        interval,
        T0 + minute * interval.delta,
        price,
        price + 1.5,
        price - 0.75,
        price + 0.25,
        volume,
        True,
    )
