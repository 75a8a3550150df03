"""Fan-out to many clients: every update, in order, and slow clients cost the others nothing."""

from __future__ import annotations

import asyncio
import socket
from collections import defaultdict
from typing import Any

import websockets

from tests.helpers import Client, is_type, wait_until
from tickhub.app.roles import SingleService

SYMBOLS = [
    "RELIANCE",
    "INFY",
    "TCS",
    "HDFCBANK",
    "ICICIBANK",
    "SBIN",
    "ITC",
    "LT",
    "AXISBANK",
    "KOTAKBANK",
]


async def _collect(client: Client, symbols: list[str], per_symbol: int) -> dict[str, list[int]]:
    """Live ``seq`` numbers per symbol until each symbol has ``per_symbol`` of them."""
    seqs: dict[str, list[int]] = defaultdict(list)
    while any(len(seqs[s]) < per_symbol for s in symbols):
        msg = await client.wait_for(is_type("data"), timeout=20)
        if not msg.get("snapshot"):
            seqs[msg["symbol"]].append(msg["seq"])
    return seqs


def _assert_no_gaps(seqs: dict[str, list[int]]) -> None:
    for symbol, got in seqs.items():
        assert got == list(range(got[0], got[0] + len(got))), f"gap or reorder in {symbol}: {got}"


async def _subscribed_client(port: int, symbols: list[str]) -> Client:
    client = await Client.connect(f"ws://127.0.0.1:{port}/ws/stream")
    await client.send({"type": "subscribe", "symbols": symbols})
    for _ in symbols:
        await client.wait_for(is_type("subscription"))
    return client


async def test_200_clients_each_receive_every_update_in_order(service: SingleService) -> None:
    picks = [[SYMBOLS[i % 10], SYMBOLS[(i + 3) % 10], SYMBOLS[(i + 7) % 10]] for i in range(200)]
    assert service.port is not None
    clients = await asyncio.gather(*(_subscribed_client(service.port, p) for p in picks))
    try:
        results = await asyncio.gather(
            *(_collect(c, p, 12) for c, p in zip(clients, picks, strict=True))
        )
        for seqs in results:
            _assert_no_gaps(seqs)
        # Clients of the same topic saw the same numbering: one encoding, many deliveries.
        firsts = defaultdict(set)
        for seqs in results:
            for symbol, got in seqs.items():
                firsts[symbol].add(got[0])
        assert all(len(v) <= 3 for v in firsts.values())
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def _stalled_client(port: int, symbols: list[str], intervals: list[str]) -> Any:
    """A client that subscribes to a lot and then never reads, with a tiny receive window."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws/stream", sock=sock, max_queue=1)
    import json

    for interval in intervals:
        await ws.send(json.dumps({"type": "subscribe", "symbols": symbols, "interval": interval}))
    return ws


async def test_stalled_client_is_conflated_bounded_and_does_not_delay_others(
    service_factory: Any,
) -> None:
    # 50 topics: their latest values fit in the budget, so the client is conflated, not closed.
    svc: SingleService = await service_factory(
        outbox_bytes=262_144, max_subscriptions=1000, slow_client_grace=3.0
    )
    symbols = [i.symbol for i in svc.registry]
    intervals = ["1m"]
    assert svc.port is not None
    stalled = await _stalled_client(svc.port, symbols, intervals)
    topics = len(symbols) * len(intervals)
    await wait_until(lambda: any(s.paused and s.conflated > 0 for s in svc.hub.sessions))
    slow = next(s for s in svc.hub.sessions if s.paused)
    # While it stalls, other clients get every update, in order.
    readers = await asyncio.gather(*(_subscribed_client(svc.port, SYMBOLS[:4]) for _ in range(20)))
    results = await asyncio.gather(*(_collect(c, SYMBOLS[:4], 10) for c in readers))
    for seqs in results:
        _assert_no_gaps(seqs)
    # What the stalled client holds is bounded: the latest value per slot, not a queue.
    assert len(slow.held) <= topics * 6
    assert slow.conflated > 0 and slow.dropped > 0
    # Past the grace period it is closed with the slow-consumer code and forgotten.
    await wait_until(lambda: slow.id not in {s.id for s in svc.hub.sessions}, timeout=20)
    assert all(not s.paused for s in svc.hub.sessions)
    await asyncio.gather(*(c.close() for c in readers))
    stalled.transport.abort()


async def test_batching_is_opt_in_and_carries_the_same_messages(service: SingleService) -> None:
    assert service.port is not None
    plain = await _subscribed_client(service.port, ["RELIANCE"])
    batched = await Client.connect(f"ws://127.0.0.1:{service.port}/ws/stream?batch=1")
    await batched.send({"type": "subscribe", "symbol": "RELIANCE"})
    batch = await batched.wait_for(lambda m: m.get("type") == "batch" and m["count"] >= 2)
    assert batch["count"] == len(batch["messages"])
    assert all(m["type"] == "data" and m["symbol"] == "RELIANCE" for m in batch["messages"])
    # The messages inside are the ones a plain client gets, seq for seq.
    last = batch["messages"][-1]
    same = await plain.wait_for(
        lambda m: (
            m.get("seq") == last["seq"]
            and m.get("data_type") == last["data_type"]
            and m.get("interval") == last["interval"]
        )
    )
    assert same["data"] == last["data"]
    assert not [m for m in plain.seen if m.get("type") == "batch"]
    await plain.close()
    await batched.close()


async def test_batching_asked_for_in_subscribe(service: SingleService) -> None:
    c = await Client.connect(f"ws://127.0.0.1:{service.port}/ws/stream")
    await c.send({"type": "subscribe", "symbol": "INFY", "batch": True})
    batch = await c.wait_for(lambda m: m.get("type") == "batch")
    assert batch["messages"][0]["symbol"] == "INFY"
    await c.close()


async def test_frames_of_one_loop_turn_leave_in_one_write(service: SingleService) -> None:
    """Corking: the acknowledgement and the snapshots a subscribe produces in one turn reach the
    socket in fewer writes than messages, and in order."""
    assert service.server is not None
    c = await Client.connect(f"ws://127.0.0.1:{service.port}/ws/stream")
    await c.recv()  # the welcome
    symbols = ["RELIANCE", "TCS", "INFY", "SBIN", "HDFCBANK"]
    await c.send({"type": "subscribe", "symbol": "RELIANCE"})  # the feed is live: snapshots exist
    await c.wait_for(lambda m: m.get("type") == "data")
    await c.send({"type": "unsubscribe", "symbol": "RELIANCE"})
    await c.wait_for(is_type("subscription", status="unsubscribed"))
    before = service.server.writes
    await c.send({"type": "subscribe", "symbols": symbols})
    got: list[dict[str, Any]] = []
    while {m["symbol"] for m in got} != set(symbols):
        got.append(await c.wait_for(lambda m: m.get("snapshot") is True))
    writes = service.server.writes - before
    assert len(got) >= len(symbols)
    assert writes < len(got)  # and the acknowledgement went in one of them too
    await c.close()
