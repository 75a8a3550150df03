"""Scale-out: one ingest, several gateways, joined by the bus (memory in one process, and a real
Redis): identical sequences on every gateway, requests through any gateway, and the failures
(ingest dies, a gateway dies, Redis restarts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.test_bus_contract import REDIS_URL
from tests.conftest import make_settings
from tests.fakes import ScriptedFeed, tick
from tests.helpers import Client, ahttp_get, close_all, wait_until
from tickhub.app.roles import GatewayService, IngestService
from tickhub.bus import Bus
from tickhub.bus.memory import MemoryBus
from tickhub.cluster import messages
from tickhub.core.model import IST


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2025, 1, 27, hh, mm, ss, tzinfo=IST)


def _redis_bus(prefix: str, url: str = REDIS_URL) -> Bus:
    from tickhub.bus.redis import RedisBus

    return RedisBus(url, prefix=prefix, reconnect_delay=0.05, max_reconnect_delay=0.5)


@dataclass
class Cluster:
    tmp: Path
    make_bus: Callable[[], Bus]
    ingest: IngestService | None = None
    feed: ScriptedFeed = field(default_factory=ScriptedFeed)
    gateways: list[GatewayService] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)

    async def start_ingest(self) -> IngestService:
        self.feed = ScriptedFeed()
        svc = IngestService(
            make_settings(self.tmp / "ingest", demo_portfolio=False),
            feed=self.feed,
            bus=self.make_bus(),
        )
        await svc.start()
        await self.feed.running.wait()
        self.ingest = svc
        return svc

    async def start_gateway(self) -> GatewayService:
        svc = GatewayService(make_settings(self.tmp / "gw"), bus=self.make_bus())
        await svc.start()
        self.gateways.append(svc)
        return svc

    async def client(self, gw: GatewayService, path: str = "/ws/stream") -> Client:
        c = await Client.connect(f"ws://127.0.0.1:{gw.port}{path}")
        await c.recv()
        self.clients.append(c)
        return c

    async def settle(self) -> None:
        """Every bus has caught up (subscriptions confirmed, messages delivered)."""
        for svc in [self.ingest, *self.gateways]:
            if svc is not None and not svc._stopping and hasattr(svc.bus, "flush"):
                await asyncio.wait_for(svc.bus.flush(), 20)

    async def stop(self) -> None:
        await close_all(self.clients)
        for svc in [*self.gateways, self.ingest]:
            if svc is not None:
                await svc.stop()


@pytest.fixture
async def memory_cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    shared = MemoryBus()
    cluster = Cluster(tmp_path, lambda: _Shared(shared))
    yield cluster
    await cluster.stop()


class _Shared:
    """One MemoryBus shared by several services in one process (each may start/close it)."""

    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bus, name)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


@pytest.fixture
async def redis_cluster(tmp_path: Path, redis_prefix: str) -> AsyncIterator[Cluster]:
    cluster = Cluster(tmp_path, lambda: _redis_bus(redis_prefix))
    yield cluster
    await cluster.stop()


async def test_roles_in_one_process_over_the_memory_bus(memory_cluster: Cluster) -> None:
    await memory_cluster.start_ingest()
    gw = await memory_cluster.start_gateway()
    c = await memory_cluster.client(gw)
    await c.request({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
    memory_cluster.feed.push(tick("RELIANCE", at(9, 15, 1), 101.0, 1000))
    msg = await c.wait_for(lambda m: m.get("data_type") == "tick_data")
    assert msg["data"]["price"] == 101.0
    a = await memory_cluster.client(gw, "/ws/alerts")
    created = await a.request(
        {"type": "create_alert", "symbol": "INFY", "condition": "above", "value": 2000}, "alert"
    )
    assert created["status"] == "created"
    err = await a.request({"type": "create_alert", "symbol": "INFY"}, "error")
    assert err["code"] == "missing_field"
    # The gateway's demand reached the ingest's feed.
    assert 738561 in memory_cluster.feed.subscribed


async def test_a_stopped_gateway_leaves_no_handler_on_the_bus(memory_cluster: Cluster) -> None:
    """The bus may outlive a gateway (shared, or a Redis that other gateways use): its reply,
    ready and heartbeat handlers must go with it, or replies meant for it keep arriving."""
    shared = MemoryBus()
    memory_cluster.make_bus = lambda: _Shared(shared)
    await memory_cluster.start_ingest()
    gw = await memory_cluster.start_gateway()
    own = [
        messages.reply_topic(gw.gateway_id),
        messages.ready_topic(gw.gateway_id),
        messages.DEMAND_QUERY_TOPIC,
        messages.INGEST_TOPIC,
    ]

    def handlers() -> list[int]:  # counts: a handler's repr would print the whole service
        return [len(shared._handlers.get(topic, [])) for topic in own]

    assert handlers() == [1, 1, 1, 1]
    await gw.stop()  # also while its first self-test probe runs: the probe must not hang it
    assert handlers() == [0, 0, 0, 0]


@pytest.mark.redis
async def test_every_gateway_delivers_the_identical_sequence(redis_cluster: Cluster) -> None:
    await redis_cluster.start_ingest()
    gws = [await redis_cluster.start_gateway(), await redis_cluster.start_gateway()]
    clients = [await redis_cluster.client(gw) for gw in gws for _ in range(2)]
    for c in clients:
        await c.request({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
    await redis_cluster.settle()
    for i in range(10):
        redis_cluster.feed.push(
            tick("RELIANCE", at(9, 15 + i // 4, (i % 4) * 15), 100.0 + i, 1000 + i)
        )
    seen = []
    for c in clients:
        await c.wait_for(
            lambda m: m.get("data_type") == "tick_data" and m["data"]["price"] == 109.0
        )
        seen.append(
            [
                (m["seq"], m["data_type"], m["data"])
                for m in c.seen
                if m.get("type") == "data" and not m.get("snapshot")
            ]
        )
    assert all(s == seen[0] for s in seen)
    seqs = [s for s, _, _ in seen[0]]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


@pytest.mark.redis
async def test_requests_through_one_gateway_take_effect_everywhere(redis_cluster: Cluster) -> None:
    await redis_cluster.start_ingest()
    a_gw, b_gw = await redis_cluster.start_gateway(), await redis_cluster.start_gateway()
    a = await redis_cluster.client(a_gw, "/ws/portfolio")
    b = await redis_cluster.client(b_gw, "/ws/portfolio")
    await b.request({"type": "subscribe", "symbol": "TCS"}, "subscription")
    await redis_cluster.settle()
    saved = await a.request(
        {"type": "set_position", "symbol": "TCS", "quantity": 3, "average_price": 3000}, "position"
    )
    assert saved["status"] == "saved"
    listed = await b.request({"type": "list_positions"}, "positions")
    assert [p["symbol"] for p in listed["positions"]] == ["TCS"]

    def held(m: dict[str, Any]) -> bool:
        return m.get("type") == "data" and m["data"]["position"]["quantity"] == 3

    # The pushed update may have arrived before the list reply: look at what was read too.
    pushed = next((m for m in b.seen if held(m)), None) or await b.wait_for(held)
    assert pushed["symbol"] == "TCS"

    # A trade through the other gateway applies on top of the carried-in 3 (FIFO).
    trade = {"type": "add_trade", "symbol": "TCS", "side": "sell", "quantity": 1,
             "price": 3100, "id": "gw-1"}  # fmt: skip
    added = await b.request(trade, "trade")
    assert added["status"] == "added" and added["position"]["pnl"]["realized"] == 100.0
    assert (await a.request(trade, "trade"))["status"] == "exists"
    assert [t["id"] for t in (await a.request({"type": "list_trades"}, "trades"))["trades"]] == [
        "gw-1"
    ]


@pytest.mark.redis
async def test_gateways_report_a_dead_ingest_and_recover_when_it_returns(
    redis_cluster: Cluster,
) -> None:
    ingest = await redis_cluster.start_ingest()
    gw = await redis_cluster.start_gateway()
    c = await redis_cluster.client(gw)
    await c.request({"type": "subscribe", "symbol": "SBIN"}, "subscription")
    await wait_until(lambda: gw.ingest_watch.alive)
    await ingest.stop()
    stale = await c.wait_for(lambda m: m.get("type") == "status" and m["feed"] == "stale", 30)
    assert "ingest" in stale["detail"]
    assert gw.port is not None
    status, _, health = await ahttp_get(gw.port, "/health")
    assert status == 503 and health["feed"]["state"] == "stale"
    await redis_cluster.start_ingest()
    await c.wait_for(lambda m: m.get("type") == "status" and m["feed"] != "stale", 30)
    await redis_cluster.settle()
    redis_cluster.feed.push(tick("SBIN", at(9, 15, 1), 800.0, 10, token=779521))
    msg = await c.wait_for(lambda m: m.get("data_type") == "tick_data", 20)
    assert msg["data"]["price"] == 800.0


@pytest.mark.redis
async def test_a_client_of_a_dead_gateway_resumes_on_another(redis_cluster: Cluster) -> None:
    await redis_cluster.start_ingest()
    a_gw, b_gw = await redis_cluster.start_gateway(), await redis_cluster.start_gateway()
    x = await redis_cluster.client(a_gw)
    y = await redis_cluster.client(b_gw)  # keeps the topic (and its history) alive on B
    for c in (x, y):
        await c.request({"type": "subscribe", "symbol": "INFY"}, "subscription")
    await redis_cluster.settle()
    redis_cluster.feed.push(tick("INFY", at(9, 15, 1), 1500.0, 10, token=408065))
    last = await x.wait_for(lambda m: m.get("data_type") == "tick_data")
    await a_gw.stop()  # x's gateway dies
    redis_cluster.feed.push(
        tick("INFY", at(9, 16, 1), 1501.0, 20, token=408065),
        tick("INFY", at(9, 17, 1), 1502.0, 30, token=408065),
    )
    await y.wait_for(lambda m: m.get("data_type") == "tick_data" and m["data"]["price"] == 1502.0)
    x2 = await redis_cluster.client(b_gw)
    ack = await x2.request(
        {
            "type": "subscribe",
            "symbol": "INFY",
            "since": {"epoch": last["epoch"], "seq": last["seq"]},
        },
        "subscription",
    )
    assert ack["recovered"] is True
    closed = await x2.wait_for(
        lambda m: (
            m.get("data_type") == "candle_data"
            and m["data"]["closed"]
            and m["data"]["start"] == "2025-01-27T03:46:00.000Z"
        )
    )
    assert closed["seq"] > last["seq"]


@pytest.mark.redis
async def test_redis_restart_is_survived(tmp_path: Path) -> None:
    from tests.unit.bus.test_redis import RedisServer, _free_port

    server = RedisServer(_free_port())
    await server.start()
    cluster = Cluster(tmp_path, lambda: _redis_bus("restart", server.url))
    try:
        await cluster.start_ingest()
        gw = await cluster.start_gateway()
        c = await cluster.client(gw)
        await c.request({"type": "subscribe", "symbol": "ITC"}, "subscription")
        await cluster.settle()
        cluster.feed.push(tick("ITC", at(9, 15, 1), 410.0, 10, token=424961))
        await c.wait_for(lambda m: m.get("data_type") == "tick_data")
        await server.kill()
        down = await c.wait_for(lambda m: m.get("type") == "status", 30)
        assert down["feed"] == "reconnecting"
        await server.start()
        await c.wait_for(lambda m: m.get("type") == "status" and m["feed"] != "reconnecting", 30)
        await cluster.settle()
        cluster.feed.push(tick("ITC", at(9, 15, 2), 411.0, 20, token=424961))
        msg = await c.wait_for(
            lambda m: m.get("data_type") == "tick_data" and m["data"]["price"] == 411.0, 30
        )
        assert msg["symbol"] == "ITC"
    finally:
        await cluster.stop()
        await server.kill()


@pytest.mark.redis
async def test_resume_on_a_gateway_that_never_watched_the_topic(redis_cluster: Cluster) -> None:
    await redis_cluster.start_ingest()
    a_gw, b_gw = await redis_cluster.start_gateway(), await redis_cluster.start_gateway()
    x = await redis_cluster.client(a_gw)
    await x.request({"type": "subscribe", "symbol": "TCS"}, "subscription")
    await redis_cluster.settle()
    redis_cluster.feed.push(tick("TCS", at(9, 15, 1), 3100.0, 10, token=2953217))
    last = await x.wait_for(lambda m: m.get("data_type") == "tick_data")
    await a_gw.stop()
    redis_cluster.feed.push(
        tick("TCS", at(9, 16, 1), 3101.0, 20, token=2953217),
        tick("TCS", at(9, 17, 1), 3102.0, 30, token=2953217),
    )
    await redis_cluster.settle()
    x2 = await redis_cluster.client(b_gw)  # nobody on this gateway ever watched TCS
    since = {"epoch": last["epoch"], "seq": last["seq"]}
    ack = await x2.request({"type": "subscribe", "symbol": "TCS", "since": since}, "subscription")
    assert ack["recovered"] is True
    closed = await x2.wait_for(
        lambda m: (
            m.get("data_type") == "candle_data"
            and m["data"]["closed"]
            and m["data"]["start"] == "2025-01-27T03:45:00.000Z"
        )
    )
    assert closed["seq"] > last["seq"]
    seqs = [m["seq"] for m in x2.seen if m.get("type") == "data"]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))


@pytest.mark.redis
async def test_a_new_ingest_asks_the_gateways_for_their_demand(
    redis_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restarted ingest hears what is wanted at once, not at the gateways' next refresh."""
    monkeypatch.setattr(
        "tickhub.app.roles.gateway.DEMAND_REFRESH", 600.0
    )  # no refresh during the test
    ingest = await redis_cluster.start_ingest()
    full_sets: list[bytes] = []
    assert ingest.bus is not None
    # Listening before the gateway starts: its first full set cannot pass unseen.
    ingest.bus.subscribe(
        "_demand", lambda m: full_sets.append(m.payload) if b'"topics"' in m.payload else None
    )
    gw = await redis_cluster.start_gateway()
    c = await redis_cluster.client(gw)
    await c.request({"type": "subscribe", "symbol": "SBIN"}, "subscription")
    await wait_until(lambda: bool(full_sets))  # the gateway's first refresh is behind us
    assert ingest.ingest is not None
    first = ingest.ingest
    await wait_until(lambda: "stream:SBIN:1m" in first.wanted)
    await ingest.stop()
    again = await redis_cluster.start_ingest()
    new = again.ingest
    assert new is not None
    await wait_until(lambda: "stream:SBIN:1m" in new.wanted, 5)
