"""One conformance suite for every ``Bus`` backend: ``memory://`` and a real Redis.

Nothing here sleeps to synchronise: tests wait for what handlers record, and ``await
bus.flush()`` is the barrier after which everything published before has been delivered.
The Redis cases use database 15 and a unique key prefix per test; they are marked ``redis`` and
skipped (with the reason) when no Redis answers and none can be started.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.fakes import BusRecorder as Recorder
from tickhub.bus import Bus, BusMessage
from tickhub.bus.memory import MemoryBus

REDIS_URL = os.environ.get("TICKHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
WAIT = 10.0  # seconds; generous for a loaded machine, never reached when things work


def _redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@functools.cache
def redis_unavailable() -> str | None:
    """Why the Redis tests cannot run, or ``None`` once a Redis answers at ``REDIS_URL``."""
    if _redis_answers(REDIS_URL):
        return None
    exe = shutil.which("redis-server")
    if exe is None:
        return f"no Redis answers at {REDIS_URL} and redis-server is not installed"
    server = [exe, "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379"]
    subprocess.run(
        [*server, "--save", "", "--appendonly", "no"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # waiting for a process we started, not for the bus
        if _redis_answers(REDIS_URL):
            return None
        time.sleep(0.05)
    return f"no Redis answers at {REDIS_URL}, and starting redis-server did not help"


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of its own for one test; its keys are deleted afterwards."""
    reason = redis_unavailable()
    if reason is not None:
        pytest.skip(reason)
    prefix = f"tickhub-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def redis_bus(prefix: str, url: str = REDIS_URL, **kwargs: Any) -> Any:
    from tickhub.bus.redis import RedisBus

    kwargs.setdefault("reconnect_delay", 0.02)
    kwargs.setdefault("max_reconnect_delay", 0.5)
    return RedisBus(url, prefix=prefix, **kwargs)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    if request.param == "memory":
        instance: Bus = MemoryBus()
    else:
        instance = redis_bus(request.getfixturevalue("redis_prefix"))
    await instance.start()
    try:
        yield instance
    finally:
        await instance.close()


async def settle(*buses: Bus) -> None:
    """Everything published on any of ``buses`` so far has reached every one of them."""
    async with asyncio.timeout(WAIT):
        for b in buses:
            await b.flush()
        for b in buses:
            await b.flush()


def msg(topic: str, payload: bytes, slot: str | None = None, **kw: Any) -> BusMessage:
    return BusMessage(topic, payload, slot, **kw)


# --- delivery ------------------------------------------------------------------------------------


async def test_delivers_every_message_to_subscribers_in_publish_order(bus: Bus) -> None:
    a, b = Recorder(), Recorder()
    bus.subscribe("stream:A", a)
    bus.subscribe("stream:B", b)
    await settle(bus)
    sent: dict[str, list[BusMessage]] = {"stream:A": [], "stream:B": []}
    for i in range(60):
        topic = "stream:A" if i % 3 else "stream:B"
        m = msg(
            topic,
            f"m{i}".encode(),
            None if i % 5 == 0 else f"candle:{i % 4}",
            retain="tick" if i % 2 else None,
            published_at=1_700_000_000.25 + i,
            seq=i + 1,
            epoch="e1",
        )
        sent[topic].append(m)
        bus.publish(m)
    assert await a.wait_for(len(sent["stream:A"])) == sent["stream:A"]
    assert await b.wait_for(len(sent["stream:B"])) == sent["stream:B"]


async def test_no_delivery_after_unsubscribe(bus: Bus) -> None:
    gone, other = Recorder(), Recorder()
    bus.subscribe("t", gone)
    bus.subscribe("u", other)
    await settle(bus)
    bus.publish(msg("t", b"1"))
    await gone.wait_for(1)
    bus.unsubscribe("t", gone)
    bus.publish(msg("t", b"2"))
    bus.publish(msg("u", b"marker"))
    await other.wait_for(1)
    await settle(bus)
    assert gone.payloads == [b"1"]


async def test_topic_stays_subscribed_until_its_last_handler_leaves(bus: Bus) -> None:
    first, second = Recorder(), Recorder()
    bus.subscribe("t", first)
    bus.subscribe("t", second)
    await settle(bus)
    bus.publish(msg("t", b"both"))
    await first.wait_for(1)
    await second.wait_for(1)
    bus.unsubscribe("t", first)
    await settle(bus)
    bus.publish(msg("t", b"second only"))
    assert [m.payload for m in await second.wait_for(2)] == [b"both", b"second only"]
    await settle(bus)
    assert first.payloads == [b"both"]


async def test_subscribing_again_after_the_last_handler_left_delivers_again(bus: Bus) -> None:
    h = Recorder()
    bus.subscribe("t", h)
    bus.unsubscribe("t", h)
    bus.subscribe("t", h)
    await settle(bus)
    bus.publish(msg("t", b"x"))
    assert [m.payload for m in await h.wait_for(1)] == [b"x"]


async def test_same_handler_subscribed_twice_is_called_once(bus: Bus) -> None:
    h = Recorder()
    bus.subscribe("t", h)
    bus.subscribe("t", h)
    await settle(bus)
    bus.publish(msg("t", b"once"))
    await h.wait_for(1)
    await settle(bus)
    assert h.payloads == [b"once"]


async def test_unsubscribing_an_unknown_handler_is_a_no_op(bus: Bus) -> None:
    h = Recorder()
    bus.unsubscribe("nobody", h)
    bus.subscribe("t", h)
    bus.unsubscribe("t", Recorder())
    await settle(bus)
    bus.publish(msg("t", b"still here"))
    assert [m.payload for m in await h.wait_for(1)] == [b"still here"]


async def test_many_topics_each_get_their_own_messages(bus: Bus) -> None:
    recorders = {f"stream:S{i}": Recorder() for i in range(300)}
    for topic, rec in recorders.items():
        bus.subscribe(topic, rec)
    await settle(bus)
    for round_ in range(2):
        for topic in recorders:
            bus.publish(msg(topic, f"{topic}/{round_}".encode(), "tick", retain="tick"))
    for topic, rec in recorders.items():
        assert [m.payload for m in await rec.wait_for(2)] == [
            f"{topic}/0".encode(),
            f"{topic}/1".encode(),
        ]
    await settle(bus)
    assert await bus.retained("stream:S7") == [b"stream:S7/1"]


async def test_payloads_are_binary_safe(bus: Bus) -> None:
    payloads = [
        b"",
        bytes(range(256)),
        b"\x00\x01|\r\n*3\r\n$7\r\nmessage",
        "ünïcødé ✓".encode(),
        os.urandom(256 * 1024),
    ]
    h = Recorder()
    bus.subscribe("bin", h)
    await settle(bus)
    for i, p in enumerate(payloads):
        bus.publish(msg("bin", p, f"s{i}", retain=f"r{i}"))
    assert [m.payload for m in await h.wait_for(len(payloads))] == payloads
    await settle(bus)
    assert await bus.retained("bin") == payloads


async def test_a_failing_handler_does_not_stop_the_others(bus: Bus) -> None:
    calls: list[bytes] = []

    def broken(message: BusMessage) -> None:
        calls.append(message.payload)
        raise RuntimeError("handler bug")

    before, after = Recorder(), Recorder()
    bus.subscribe("t", before)
    bus.subscribe("t", broken)
    bus.subscribe("t", after)
    await settle(bus)
    bus.publish(msg("t", b"1"))
    bus.publish(msg("t", b"2"))
    assert [m.payload for m in await after.wait_for(2)] == [b"1", b"2"]
    assert before.payloads == [b"1", b"2"]
    assert calls == [b"1", b"2"]


# --- retained state ------------------------------------------------------------------------------


async def test_retained_keeps_the_latest_value_per_name(bus: Bus) -> None:
    bus.publish(msg("t", b"tick 1", "tick", retain="tick"))
    bus.publish(msg("t", b"candle 1", "candle:1", retain="candle"))
    bus.publish(msg("t", b"tick 2", "tick", retain="tick"))
    bus.publish(msg("t", b"no state", "x"))
    await settle(bus)
    assert await bus.retained("t") == [b"candle 1", b"tick 2"]


async def test_retained_is_in_last_update_order(bus: Bus) -> None:
    for name in ("a", "b", "c", "b", "a", "d"):
        bus.publish(msg("t", f"{name}@{time.monotonic_ns()}".encode(), name, retain=name))
    await settle(bus)
    assert [p.split(b"@")[0] for p in await bus.retained("t")] == [b"c", b"b", b"a", b"d"]


async def test_drop_removes_the_retained_value(bus: Bus) -> None:
    bus.publish(msg("t", b"p1", "position:A", retain="position:A"))
    bus.publish(msg("t", b"p2", "position:B", retain="position:B"))
    bus.publish(msg("t", b"", None, retain="position:A", deliver=False, drop=True))
    bus.publish(msg("t", b"", None, retain="never-there", deliver=False, drop=True))
    await settle(bus)
    assert await bus.retained("t") == [b"p2"]


async def test_deliver_false_updates_retained_state_only(bus: Bus) -> None:
    h = Recorder()
    bus.subscribe("t", h)
    await settle(bus)
    bus.publish(msg("t", b"history", None, retain="history", deliver=False))
    bus.publish(msg("t", b"live", "tick", retain="tick"))
    await h.wait_for(1)
    await settle(bus)
    assert h.payloads == [b"live"]
    assert await bus.retained("t") == [b"history", b"live"]


async def test_retained_of_an_unknown_topic_is_empty(bus: Bus) -> None:
    assert await bus.retained("nothing-here") == []


async def test_retained_nowait_when_known_matches_retained(bus: Bus) -> None:
    # The contract: a list when known locally without I/O, else None; a list must be right.
    h = Recorder()
    bus.subscribe("sub", h)
    await settle(bus)
    bus.publish(msg("sub", b"t1", "tick", retain="tick"))
    bus.publish(msg("sub", b"h1", None, retain="history", deliver=False))
    bus.publish(msg("sub", b"t2", "tick", retain="tick"))
    bus.publish(msg("sub", b"p", "position", retain="position"))
    bus.publish(msg("sub", b"", None, retain="position", deliver=False, drop=True))
    bus.publish(msg("other", b"o1", "tick", retain="tick"))
    await h.wait_for(3)
    await settle(bus)
    assert await bus.retained("sub") == [b"h1", b"t2"]
    for topic in ("sub", "other", "unknown"):
        local = bus.retained_nowait(topic)
        if local is not None:
            assert local == await bus.retained(topic), topic
    if isinstance(bus, MemoryBus):
        assert bus.retained_nowait("sub") == [b"h1", b"t2"]


# --- history -------------------------------------------------------------------------------------


async def test_recover_returns_what_a_client_missed(bus: Bus) -> None:
    h = Recorder()
    bus.subscribe("alerts:A", h)
    await settle(bus)
    for seq in range(1, 7):
        bus.publish(msg("alerts:A", f"event {seq}".encode(), None, seq=seq, epoch="run1"))
    await h.wait_for(6)
    await settle(bus)
    found = bus.recover_nowait("alerts:A", "run1", 3)
    if found is False:
        found = await bus.recover("alerts:A", "run1", 3)
    assert found == [b"event 4", b"event 5", b"event 6"]
    assert bus.recover_nowait("alerts:A", "another run", 3) is None


# --- lifecycle -----------------------------------------------------------------------------------


async def test_close_twice_is_harmless(bus: Bus) -> None:
    await bus.close()
    with contextlib.suppress(ConnectionError):
        await bus.flush()  # a closed bus may refuse to flush, but never hangs
    await bus.close()
