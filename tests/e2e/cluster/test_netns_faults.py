"""Scale-out across real network hosts: Redis, the ingest, two gateways and the clients each in a
network namespace of their own (``tests.netns``), then one fault per test: a gateway cut off
from Redis for 10 s (with its connections kept, and aborted), 50 ms of latency between Redis and
a gateway, the ingest killed and started again, Redis killed and started again (empty). Each
test records what the clients see (``status`` messages; no close code: no fault closes a
client) and checks that no candle close or alert event is lost, against a client of the other
gateway that saw every message, on the connections that stayed open and for a client that
resumes with ``since`` (or that the resume is refused with a fresh snapshot where Redis lost the
history). Figures printed (``-s``) are the ones in docs/architecture.md, "Faults across hosts"."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests import netns
from tests.helpers import Client, Msg, close_all

pytestmark = [pytest.mark.slow]

MAIN = "from tickhub.app.cli import main; main()"
WS_PORT = 8081
REDIS_PORT = 6379
PROXY_PORT = 6380
STARTUP = 40.0  # seconds for a service to serve, on a loaded 2-core machine
WAIT = 30.0  # seconds to wait for one message that must come
PARTITION = 10.0  # the fault itself: how long a gateway is cut off from Redis
LATENCY = 0.05  # seconds added each way between Redis and a gateway
HOSTS = ("redis", "ingest", "gw1", "gw2", "clients")
SYMBOL = "RELIANCE"


def is_data(m: Msg) -> bool:
    return m.get("type") == "data"


def is_live(m: Msg) -> bool:
    return is_data(m) and not m.get("snapshot")


def is_status(m: Msg) -> bool:
    return m.get("type") == "status"


def is_close(m: Msg) -> bool:
    return m.get("data_type") == "candle_data" and bool(m["data"]["closed"])


def is_event(m: Msg) -> bool:
    return m.get("event") == "triggered"


class Watched(Client):
    """A client whose messages are read as they come (by a task), so that ``seen`` is always
    current, also for a client the test is not waiting on (a reference, say); ``recv`` hands
    them out in order as ``Client.recv`` does."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        super().__init__(ws)
        self._next = 0
        self.at: list[float] = []  # when each message of ``seen`` arrived (monotonic)
        self._arrived = asyncio.Event()
        self._pump = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.seen.append(json.loads(raw))
                self.at.append(time.monotonic())
                self._arrived.set()
        except websockets.ConnectionClosed:
            pass
        self._arrived.set()

    async def recv(self, timeout: float = 10.0) -> Msg:
        async with asyncio.timeout(timeout):
            while self._next >= len(self.seen):
                if self._pump.done():
                    await self.ws.recv()  # raises ConnectionClosed, with its close code
                self._arrived.clear()
                await self._arrived.wait()
        msg = self.seen[self._next]
        self._next += 1
        return msg

    @property
    def open(self) -> bool:
        """No close came (nor did the connection drop)."""
        return not self._pump.done()

    def skip(self) -> None:
        """From now on ``recv`` hands out only messages that arrive after this call."""
        self._next = len(self.seen)

    async def close(self) -> None:
        await self.ws.close()
        await self._pump


@dataclass
class Net:
    """The five hosts and the services on them."""

    lab: netns.Lab
    tmp: Path
    procs: dict[str, netns.Proc] = field(default_factory=dict)
    clients: list[Watched] = field(default_factory=list)

    def env(self, host: str, bus_url: str | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "BUS_URL": bus_url or f"redis://{self.lab['redis'].ip}:{REDIS_PORT}/0",
            "BUS_PREFIX": "netns",
            "HOST": self.lab[host].ip,
            "WS_PORT": str(WS_PORT),
            "DATA_DIR": str(self.tmp / host),
            "SIM_SPEED": "60",  # a 1m candle closes every second
            "UPDATE_INTERVAL": "0.2",
            "SHUTDOWN_TIMEOUT": "5",
            "DEMO_PORTFOLIO": "false",
        }

    async def start_redis(self) -> None:
        host = self.lab["redis"]
        argv = ["redis-server", "--bind", host.ip, "--port", str(REDIS_PORT), "--save", ""]
        argv += ["--appendonly", "no", "--protected-mode", "no", "--daemonize", "no"]
        proc = host.run(argv, self.tmp / "redis.log")
        self.procs["redis"] = proc
        await proc.line("Ready to accept connections", timeout=STARTUP)

    def _service(self, host: str, role: str, bus_url: str | None = None) -> netns.Proc:
        (self.tmp / host).mkdir(exist_ok=True)
        argv = [sys.executable, "-c", MAIN, "--env-file", "/nonexistent", role]
        proc = self.lab[host].run(argv, self.tmp / f"{host}.log", self.env(host, bus_url))
        self.procs[host] = proc
        return proc

    async def start_ingest(self) -> None:
        await self._service("ingest", "ingest").line(r"ingest running", timeout=STARTUP)

    async def start_gateways(self, gw2_bus: str | None = None) -> None:
        started = [self._service("gw1", "gateway"), self._service("gw2", "gateway", gw2_bus)]
        for proc in started:
            # Serving, and joined to the ingest: its heartbeat came over the bus.
            await proc.line(r"serving ws://", timeout=STARTUP)
            await proc.line(r"ingest heard again", timeout=STARTUP)

    async def connect(self, gw: str, path: str) -> Watched:
        """A WebSocket client on the clients host, to gateway ``gw``, past its welcome."""
        address = self.lab[gw].ip
        sock = await self.lab.connect_tcp("clients", address, WS_PORT)
        ws = await websockets.connect(f"ws://{address}:{WS_PORT}{path}", sock=sock, max_size=None)
        c = Watched(ws)
        self.clients.append(c)
        await c.recv(WAIT)
        return c

    async def watch(
        self, gw: str, path: str = "/ws/stream", since: Msg | None = None
    ) -> tuple[Watched, Msg]:
        """A client of ``gw`` subscribed to ``SYMBOL`` (resuming from ``since``), and its ack,
        once its first data message came."""
        c = await self.connect(gw, path)
        sub: Msg = {"type": "subscribe", "symbol": SYMBOL}
        if since is not None:
            sub["since"] = {"epoch": since["epoch"], "seq": since["seq"]}
        ack = await c.request(sub, "subscription", WAIT)
        await c.wait_for(is_data, WAIT)
        return c, ack

    async def close(self) -> None:
        await close_all(self.clients)


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    why = netns.unavailable()
    if why is not None:
        pytest.skip(f"network namespaces unavailable: {why}")
    with netns.lab(HOSTS) as lab:
        n = Net(lab, tmp_path)
        try:
            yield n
        finally:
            await n.close()


async def started(net: Net, gw2_bus: str | None = None) -> None:
    await net.start_redis()
    await net.start_ingest()
    await net.start_gateways(gw2_bus)


@dataclass
class Viewer:
    """What one user on one gateway watches: ``SYMBOL``'s 1m stream and its alerts."""

    stream: Watched
    alerts: Watched

    @property
    def open(self) -> bool:
        return self.stream.open and self.alerts.open

    def last(self) -> dict[str, Msg]:
        """The resume points: the last data message of each connection."""
        return {"stream": last_data(self.stream), "alerts": last_data(self.alerts)}

    async def close(self) -> None:
        await self.stream.close()
        await self.alerts.close()


async def viewer(
    net: Net, gw: str, since: dict[str, Msg] | None = None
) -> tuple[Viewer, dict[str, Msg]]:
    """A viewer on ``gw`` (resuming from ``since``), and the acks of its two subscriptions.
    Without ``since`` it returns once both snapshots began."""
    stream, stream_ack = await net.watch(
        gw, "/ws/stream", None if since is None else since["stream"]
    )
    alerts, alerts_ack = await net.watch(
        gw, "/ws/alerts", None if since is None else since["alerts"]
    )
    return Viewer(stream, alerts), {"stream": stream_ack, "alerts": alerts_ack}


# --- what a client lost ---------------------------------------------------------------------------


def _key(m: Msg) -> tuple[Any, ...]:
    """What a later message replaces (the same key, a higher ``seq``); an event has its own."""
    if is_event(m):
        return ("event", m["seq"])
    if m["data_type"] == "candle_data":
        return ("candle", m["data"]["start"])
    return (m["data_type"],)


def assert_nothing_lost(reference: list[Msg], got: list[Msg], since: Msg) -> None:
    """Against ``reference`` (a client that saw every message live), ``got`` (what a client had
    up to ``since`` and everything it received after) has, up to its newest message: every
    candle close and alert event, and of every state the newest value or a newer one."""
    epoch = since["epoch"]
    mine = [m for m in got if is_data(m) and m["epoch"] == epoch]
    have = {m["seq"] for m in mine}
    hi = max(have)
    span = [
        r for r in reference if is_live(r) and r["epoch"] == epoch and since["seq"] < r["seq"] <= hi
    ]
    assert span, f"the reference saw nothing in ({since['seq']}, {hi}]"
    missing = [r["seq"] for r in span if (is_close(r) or is_event(r)) and r["seq"] not in have]
    assert missing == [], f"candle closes or alert events lost: seq {missing}"
    newest = {_key(r): r["seq"] for r in span}
    behind = [k for k, s in newest.items() if not any(_key(m) == k and m["seq"] >= s for m in mine)]
    assert behind == [], f"state never brought up to date: {behind}"


def assert_gap_free(msgs: list[Msg]) -> None:
    """A connection that was never behind: its live ``seq`` grow by exactly one (per epoch)."""
    by_epoch: dict[str, list[int]] = {}
    for m in msgs:
        if is_live(m):
            by_epoch.setdefault(m["epoch"], []).append(m["seq"])
    for seqs in by_epoch.values():
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs


def assert_every_minute_closed(msgs: list[Msg]) -> None:
    """The candle closes of a run are one per market minute, none skipped (the simulated market
    trades every minute): a check that needs no reference client."""
    epoch = [m for m in msgs if is_data(m)][-1]["epoch"]
    starts = sorted(
        {
            datetime.fromisoformat(m["data"]["start"])
            for m in msgs
            if is_close(m) and m["epoch"] == epoch
        }
    )
    assert len(starts) >= 2, starts
    steps = {b - a for a, b in itertools.pairwise(starts)}
    assert steps == {timedelta(minutes=1)}, starts


def gaps(msgs: list[Msg]) -> list[tuple[int, int]]:
    """Where a connection's live ``seq`` jumped: ``(last, next)`` pairs."""
    seqs = [m["seq"] for m in msgs if is_live(m)]
    return [(a, b) for a, b in itertools.pairwise(seqs) if b != a + 1]


async def closes(c: Watched, n: int) -> None:
    """Wait until ``c`` got ``n`` candle closes more than it has now (a market minute each)."""
    for _ in range(n):
        c.skip()
        await c.wait_for(is_close, WAIT)


async def has(c: Watched, pred: Callable[[Msg], bool]) -> Msg:
    """The message of ``c`` matching ``pred``, received already or waited for."""
    found = next((m for m in c.seen if pred(m)), None)
    return found if found is not None else await c.wait_for(pred, WAIT)


def in_order(msgs: list[Msg]) -> bool:
    seqs = [m["seq"] for m in msgs if is_live(m)]
    return seqs == sorted(seqs) and len(seqs) == len(set(seqs))


def disorder(msgs: list[Msg]) -> str:
    """Where ``in_order`` fails: each live message whose ``seq`` is not above every one before
    it, with the one it follows (for the assertion's message)."""
    out: list[str] = []
    top: Msg | None = None
    for m in (m for m in msgs if is_live(m)):
        if top is not None and m["seq"] <= top["seq"]:
            out.append(f"{_brief(m)} after {_brief(top)}")
        if top is None or m["seq"] > top["seq"]:
            top = m
    return "; ".join(out)


def _brief(m: Msg) -> str:
    start = m["data"].get("start", "") if isinstance(m.get("data"), dict) else ""
    return (
        f"{m['data_type']} {start} seq {m['seq']} epoch {m['epoch']}"
        f" snapshot {m.get('snapshot', False)}"
    )


def last_data(c: Watched) -> Msg:
    return [m for m in c.seen if is_data(m)][-1]


async def more_data(c: Watched, count: int = 3) -> None:
    """Wait until ``c`` got ``count`` live messages more than it has now."""
    c.skip()
    for _ in range(count):
        await c.wait_for(is_live, WAIT)


async def reached(c: Watched, other: Msg) -> None:
    """Wait until ``c`` got as far as ``other`` (a message of another client, same epoch)."""

    def there(m: Msg) -> bool:
        return is_live(m) and m["epoch"] == other["epoch"] and m["seq"] >= other["seq"]

    if not any(there(m) for m in c.seen):
        await c.wait_for(there, WAIT)


async def caught_up(c: Watched, reference: Watched) -> None:
    """Wait until ``c`` is past where ``reference`` is now, and ``reference`` as far as ``c``."""
    now = last_data(reference)
    await c.wait_for(
        lambda m: is_live(m) and m["epoch"] == now["epoch"] and m["seq"] > now["seq"], WAIT
    )
    await reached(reference, last_data(c))


def statuses(c: Watched) -> list[str]:
    return [m["feed"] for m in c.seen if is_status(m)]


async def alert_fired(author: Watched, watchers: list[Watched]) -> Msg:
    """Create an alert that fires at the next tick (through ``author``'s gateway); its event,
    once ``author`` and every watcher got it."""
    created = await author.request(
        {"type": "create_alert", "symbol": SYMBOL, "condition": "above", "value": 1},
        "alert",
        WAIT,
    )
    alert_id = created["alert"]["id"]

    def fired(m: Msg) -> bool:
        return is_event(m) and m["data"]["alert"]["id"] == alert_id

    event = next((m for m in author.seen if fired(m)), None) or await author.wait_for(fired, WAIT)
    for w in watchers:
        if not any(fired(m) for m in w.seen):
            await w.wait_for(fired, WAIT)
    return event


async def resume(net: Net, gw: str, before: dict[str, Msg], ref: Viewer, event: Msg) -> Viewer:
    """A viewer that stopped at ``before`` resumes on ``gw``: recovered, and nothing lost
    against ``ref`` (the alert ``event`` fired after ``before``)."""
    again, acks = await viewer(net, gw, since=before)
    assert acks["stream"]["recovered"] is True
    assert acks["alerts"]["recovered"] is True
    await caught_up(again.stream, ref.stream)
    assert in_order(again.stream.seen), disorder(again.stream.seen)
    assert_nothing_lost(ref.stream.seen, again.stream.seen, before["stream"])
    assert_every_minute_closed(ref.stream.seen)
    got = await has(again.alerts, lambda m: is_event(m) and m["seq"] == event["seq"])
    assert got["data"]["alert"]["id"] == event["data"]["alert"]["id"]
    await reached(ref.alerts, last_data(again.alerts))
    assert_nothing_lost(ref.alerts.seen, again.alerts.seen, before["alerts"])
    return again


def lag(c: Watched, reference: Watched) -> str:
    """How much later ``c`` got the live messages ``reference`` got too (median, max), in ms."""
    theirs = {m["seq"]: t for m, t in zip(reference.seen, reference.at, strict=True) if is_live(m)}
    late = sorted(
        (t - theirs[m["seq"]]) * 1000
        for m, t in zip(c.seen, c.at, strict=True)
        if is_live(m) and m["seq"] in theirs
    )
    return f"{late[len(late) // 2]:.0f} ms later (median; max {late[-1]:.0f} ms)"


def note(what: str, t0: float) -> None:
    """A measured moment of the fault, in the test's output (``-s``), for the docs."""
    print(f"{what}: {time.monotonic() - t0:.1f}s")


# --- the faults -----------------------------------------------------------------------------------


async def test_a_gateway_cut_off_from_redis_for_10s(net: Net) -> None:
    await started(net)
    ref, _ = await viewer(net, "gw1")
    cut, _ = await viewer(net, "gw2")
    await more_data(cut.stream)
    before = cut.last()

    t0 = time.monotonic()
    cut.stream.skip()
    net.lab.partition("gw2", "redis")
    try:
        # While gw2 is cut off an alert fires (created through gw1, which still reaches Redis).
        event = await alert_fired(ref.alerts, [])
        stale = await cut.stream.wait_for(is_status, PARTITION)
        assert stale["feed"] == "stale", stale
        note("partition: stale", t0)
        await asyncio.sleep(max(0.0, PARTITION - (time.monotonic() - t0)))  # the fault's length
    finally:
        net.lab.heal("gw2", "redis")
    t0 = time.monotonic()
    await cut.stream.wait_for(lambda m: is_status(m) and m["feed"] == "live", WAIT)
    note("partition healed: live", t0)
    await caught_up(cut.stream, ref.stream)
    note("partition healed: caught up", t0)

    # The same connection, never closed; in order. Unless the bus had to reconnect (which it
    # says: `reconnecting`), TCP brought every message late, so nothing is missing at all.
    assert in_order(cut.stream.seen), disorder(cut.stream.seen)
    print("partition: statuses seen", statuses(cut.stream))
    if "reconnecting" not in statuses(cut.stream):
        assert_gap_free(cut.stream.seen)
        assert_nothing_lost(ref.stream.seen, cut.stream.seen, before["stream"])
        await cut.alerts.wait_for(lambda m: is_event(m) and m["seq"] == event["seq"], WAIT)

    # A client that resumes from where the cut began, on the cut gateway, has lost nothing.
    await resume(net, "gw2", before, ref, event)
    assert_gap_free(ref.stream.seen)
    assert cut.open and ref.open  # no close code: the fault is told by `status` alone


async def test_a_gateway_whose_redis_connections_break_during_a_10s_cut(net: Net) -> None:
    """As a cut longer than the bus's keepalive (3 x 5 s): the gateway reconnects when the
    link is back, and what was published meanwhile never reached it over pub/sub."""
    await started(net)
    ref, _ = await viewer(net, "gw1")
    cut, _ = await viewer(net, "gw2")
    await more_data(cut.stream)
    before = cut.last()

    t0 = time.monotonic()
    cut.stream.skip()
    net.lab.partition("gw2", "redis")
    try:
        net.lab.reset_tcp("gw2", "redis")
        down = await cut.stream.wait_for(is_status, WAIT)
        assert (down["feed"], down["detail"]) == ("reconnecting", "message bus unavailable")
        note("connections broken: reconnecting", t0)
        event = await alert_fired(ref.alerts, [])
        await closes(ref.stream, 2)  # candles close while gw2 hears nothing
        await asyncio.sleep(max(0.0, PARTITION - (time.monotonic() - t0)))  # the fault's length
    finally:
        net.lab.heal("gw2", "redis")
    t0 = time.monotonic()
    await cut.stream.wait_for(lambda m: is_status(m) and m["feed"] == "live", WAIT)
    note("connections broken, healed: live", t0)
    await caught_up(cut.stream, ref.stream)
    note("connections broken, healed: caught up", t0)
    print("connections broken: statuses", statuses(cut.stream), "gaps", gaps(cut.stream.seen))

    # The connection stayed open; the gateway read what it missed from Redis's history and
    # sent it in order: every candle close and the alert event, only replaced state skipped.
    assert in_order(cut.stream.seen), disorder(cut.stream.seen)
    assert_nothing_lost(ref.stream.seen, cut.stream.seen, before["stream"])
    assert_every_minute_closed(cut.stream.seen)
    await has(cut.alerts, lambda m: is_event(m) and m["seq"] == event["seq"])
    assert_nothing_lost(ref.alerts.seen, cut.alerts.seen, before["alerts"])
    await resume(net, "gw2", before, ref, event)
    assert cut.open and ref.open


async def test_50ms_between_redis_and_a_gateway(net: Net) -> None:
    await net.start_redis()
    redis = net.lab["redis"]
    # No netem here (a kernel without sch_netem): a relay that holds each chunk 50 ms each way.
    proxy = netns.delay_proxy(
        redis, PROXY_PORT, f"{redis.ip}:{REDIS_PORT}", LATENCY, net.tmp / "proxy.log"
    )
    await proxy.line("delay proxy", timeout=STARTUP)
    await net.start_ingest()
    await net.start_gateways(gw2_bus=f"redis://{redis.ip}:{PROXY_PORT}/0")
    ref, _ = await viewer(net, "gw1")
    slow, _ = await viewer(net, "gw2")
    before = slow.last()

    # A request through the slow gateway crosses the slow link twice; its event reaches both.
    event = await alert_fired(slow.alerts, [ref.alerts])
    await more_data(slow.stream, 20)
    await caught_up(slow.stream, ref.stream)
    assert statuses(slow.stream) == statuses(ref.stream)  # no stale, no reconnecting
    assert_gap_free(slow.stream.seen)
    assert_nothing_lost(ref.stream.seen, slow.stream.seen, before["stream"])
    print(f"latency: the slow gateway's clients get each message {lag(slow.stream, ref.stream)}")
    # Both gateways deliver the identical messages.
    theirs = {m["seq"]: m for m in ref.stream.seen if is_live(m)}
    assert all(theirs[m["seq"]] == m for m in slow.stream.seen if is_live(m) and m["seq"] in theirs)

    # A client of the slow gateway reconnects to it and resumes.
    left = slow.last()
    await slow.close()
    await more_data(ref.stream, 20)
    event2 = await alert_fired(ref.alerts, [])
    await resume(net, "gw2", left, ref, event2)
    assert event["seq"] < event2["seq"]
    assert_gap_free(ref.stream.seen)
    assert ref.open


async def test_the_ingest_killed_and_started_again(net: Net) -> None:
    await started(net)
    a, _ = await viewer(net, "gw1")
    b, _ = await viewer(net, "gw2")
    await more_data(b.stream)
    before = b.last()
    old = before["stream"]["epoch"]

    t0 = time.monotonic()
    a.stream.skip()
    b.stream.skip()
    await net.procs["ingest"].akill()
    for v in (a, b):
        stale = await v.stream.wait_for(is_status, WAIT)
        assert stale["feed"] == "stale", stale
    note("ingest killed: stale", t0)
    await net.start_ingest()
    note("ingest started again", t0)
    for v in (a, b):
        await v.stream.wait_for(lambda m: is_status(m) and m["feed"] == "live", WAIT)
        await v.stream.wait_for(lambda m: is_live(m) and m["epoch"] != old, WAIT)
    note("ingest killed: data of the new run", t0)

    # The same connections carry the new run (a new epoch); both gateways the same messages.
    await more_data(a.stream, 10)
    await caught_up(b.stream, a.stream)
    for v in (a, b):
        assert_gap_free(v.stream.seen)
        assert in_order([m for m in v.stream.seen if is_data(m) and m["epoch"] != old])
    new = last_data(a.stream)["epoch"]
    a_new = {m["seq"]: m for m in a.stream.seen if is_live(m) and m["epoch"] == new}
    b_new = [m for m in b.stream.seen if is_live(m) and m["epoch"] == new]
    assert all(a_new[m["seq"]] == m for m in b_new if m["seq"] in a_new)

    # Resuming from the old run: not recovered (another epoch), and a fresh snapshot.
    c, acks = await viewer(net, "gw2", since=before)
    assert acks["stream"]["recovered"] is False and acks["alerts"]["recovered"] is False
    snapshot = [m for m in c.stream.seen if is_data(m)]
    assert snapshot[0]["snapshot"] is True and snapshot[0]["epoch"] == new
    # The alert store is the ingest's: requests work again, and events reach every gateway.
    await alert_fired(c.alerts, [a.alerts, b.alerts])
    assert a.open and b.open  # the clients were never closed


async def test_redis_killed_and_started_again_empty(net: Net) -> None:
    await started(net)
    a, _ = await viewer(net, "gw1")
    b, _ = await viewer(net, "gw2")
    await more_data(b.stream, 1)
    early = next(m for m in b.stream.seen if is_live(m))
    await more_data(b.stream)  # these went through this Redis: a restart takes them along
    before = b.last()

    t0 = time.monotonic()
    a.stream.skip()
    b.stream.skip()
    await net.procs["redis"].akill()
    for v in (a, b):
        down = await v.stream.wait_for(is_status, WAIT)
        assert (down["feed"], down["detail"]) == ("reconnecting", "message bus unavailable")
    note("redis killed: reconnecting", t0)
    await net.start_redis()
    for v in (a, b):
        await v.stream.wait_for(lambda m: is_status(m) and m["feed"] == "live", WAIT)
    note("redis started again: live", t0)
    for v in (a, b):
        await more_data(v.stream)
        # The same connections, the same run: seq go on.
        assert in_order(v.stream.seen), disorder(v.stream.seen)
    note("redis started again: data", t0)

    print("redis restart: live gaps", gaps(a.stream.seen), gaps(b.stream.seen))
    # The gateways read what they missed from Redis once back: no candle close is skipped on
    # the connections that stayed open (only replaced state may be).
    for v in (a, b):
        await closes(v.stream, 2)
        assert_every_minute_closed(v.stream.seen)

    # Redis kept nothing. A resume from before the restart is recovered only if what the ingest
    # queued while Redis was down reaches back to it (the history Redis has now starts with the
    # first message it got after the restart); else it gets a fresh snapshot.
    c, acks = await viewer(net, "gw2", since=before)
    await closes(c.stream, 2)
    await caught_up(c.stream, a.stream)
    print("redis restart: resume from before recovered", acks["stream"]["recovered"])
    if acks["stream"]["recovered"]:
        assert_every_minute_closed(
            [m for m in b.stream.seen if is_data(m) and m["seq"] <= before["stream"]["seq"]]
            + c.stream.seen
        )
        assert_nothing_lost(a.stream.seen + b.stream.seen, c.stream.seen, before["stream"])
    else:
        first = next(m for m in c.stream.seen if is_data(m))
        assert first["snapshot"] is True and first["epoch"] == before["stream"]["epoch"]
    assert in_order(c.stream.seen), disorder(c.stream.seen)

    # From further back, past what only the old Redis held: not recovered, a fresh snapshot.
    d, ack = await net.watch("gw1", since=early)
    assert ack["recovered"] is False
    first = next(m for m in d.seen if is_data(m))
    assert first["snapshot"] is True and first["epoch"] == early["epoch"]
    # Alerts go on: an event fired now reaches the clients of both gateways.
    await alert_fired(a.alerts, [b.alerts, c.alerts])
    assert a.open and b.open  # the clients were never closed
