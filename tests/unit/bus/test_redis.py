"""What only the Redis bus does: the wire format, several processes, outages and the queue bound.

Two ``RedisBus`` instances stand for two gateway processes. Outage tests run their own
``redis-server`` on a free port and kill it; everything else uses the shared test Redis.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import socket
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conformance.test_bus_contract import (
    REDIS_URL,
    WAIT,
    msg,
    redis_bus,
    redis_prefix,
    settle,
)
from tests.fakes import BusRecorder as Recorder
from tickhub.bus import BusMessage, create_bus
from tickhub.bus.redis import (
    BusUnavailableError,
    RedisBus,
    decode_envelope,
    encode_envelope,
    redact_url,
)

__all__ = ["redis_prefix"]  # a fixture, used by name

# --- pure parts ----------------------------------------------------------------------------------


def _every_field_set() -> BusMessage:
    """A message with a non-default value in every field, whatever fields BusMessage has."""
    values: dict[str, Any] = {"topic": "stream:INFY", "payload": b"\x00payload|\xff"}
    for f in dataclasses.fields(BusMessage):
        if f.name in values:
            continue
        default = f.default
        if default is None:
            values[f.name] = f"{f.name}-value"
        elif isinstance(default, bool):
            values[f.name] = not default
        elif isinstance(default, int):
            values[f.name] = 2**40 + 7
        elif isinstance(default, float):
            values[f.name] = 1_700_000_000.123456
        elif isinstance(default, str):
            values[f.name] = f"{f.name}-välue"
        else:  # pragma: no cover - a new kind of field: the envelope needs extending
            raise AssertionError(f"envelope does not know how to carry {f.name}")
    return BusMessage(**values)


def test_envelope_carries_every_field_of_a_bus_message() -> None:
    message = _every_field_set()
    decoded, version = decode_envelope(message.topic, encode_envelope(message, 42))
    assert decoded == message
    assert version == 42


@pytest.mark.parametrize(
    "message",
    [
        BusMessage("t", b""),
        BusMessage("t", b"x", "tick"),
        BusMessage("t", b"x", None, "history", deliver=False),
        BusMessage("t", b"", None, "position:A", deliver=False, drop=True),
        BusMessage("t", b"y" * 70_000, "candle:1700000000", "candle", seq=3, epoch="e"),
    ],
)
def test_envelope_round_trips(message: BusMessage) -> None:
    assert decode_envelope("t", encode_envelope(message, 9))[0] == message


def test_envelope_without_retain_is_flags_and_payload() -> None:
    assert encode_envelope(BusMessage("t", b"data")) == b"\x01\x01data"


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x02\x01x", b"\x01\x04\x00\x09ab", b"\x01\x08"])
def test_decode_rejects_what_is_not_an_envelope(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_envelope("t", data)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:s3cret@host/1", "redis://user:***@host/1"),
        ("redis://host:6379/0?password=s3cret&x=1", "redis://host:6379/0?password=***&x=1"),
        ("redis://host:6379/0", "redis://host:6379/0"),
    ],
)
def test_redact_url_hides_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


async def test_create_bus_builds_a_redis_bus_that_never_shows_the_password() -> None:
    bus = create_bus("redis://:s3cret@127.0.0.1:6379/15")
    try:
        assert isinstance(bus, RedisBus)
        assert "s3cret" not in repr(bus)
        assert "s3cret" not in bus.url
    finally:
        await bus.close()


# --- queue bound (no Redis needed until the end) -------------------------------------------------


async def test_full_queue_drops_the_oldest_conflatable_message_never_an_event(
    redis_prefix: str,
) -> None:
    consumer = redis_bus(redis_prefix)
    producer = redis_bus(redis_prefix, max_queue=4)
    try:
        await consumer.start()
        seen = Recorder()
        consumer.subscribe("t", seen)
        await settle(consumer)
        # Not started yet: everything waits in the queue.
        for name, slot in [("e1", None), ("c1", "tick"), ("c2", "tick"), ("e2", None)]:
            producer.publish(msg("t", name.encode(), slot))
        assert (producer.queued, producer.dropped) == (4, 0)
        producer.publish(msg("t", b"c3", "tick"))  # drops c1
        producer.publish(msg("t", b"c4", "tick"))  # drops c2
        producer.publish(msg("t", b"e3", None))  # drops c3
        assert (producer.queued, producer.dropped) == (4, 3)
        await producer.start()
        await settle(producer, consumer)
        assert seen.payloads == [b"e1", b"e2", b"c4", b"e3"]
        assert (producer.queued, producer.published) == (0, 4)
    finally:
        await producer.close()
        await consumer.close()


async def test_events_alone_may_exceed_the_bound_and_conflatable_ones_give_way() -> None:
    bus = RedisBus("redis://127.0.0.1:1/0", max_queue=2)  # never started
    try:
        for i in range(5):
            bus.publish(msg("t", f"e{i}".encode(), None))
        assert (bus.queued, bus.dropped) == (5, 0)
        bus.publish(msg("t", b"c", "tick"))
        assert (bus.queued, bus.dropped) == (5, 1)
    finally:
        await bus.close()


async def test_a_long_outage_keeps_memory_bounded() -> None:
    bus = RedisBus("redis://127.0.0.1:1/0", max_queue=10)  # never started: a long outage
    try:
        bus.publish(msg("t", b"event", None))  # an event at the head is never dropped
        for i in range(20_000):
            bus.publish(msg("t", str(i).encode(), "tick"))
        assert (bus.queued, bus.dropped) == (10, 20_000 - 9)
        assert len(bus._writer._queue) < 3_000  # dropped entries do not pile up behind the event
    finally:
        await bus.close()


async def test_publish_never_raises() -> None:
    bus = RedisBus("redis://127.0.0.1:1/0")
    bus.publish(msg("t", b"x", "s" * 70_000))  # a name too long for the envelope
    assert (bus.queued, bus.dropped) == (0, 1)
    await bus.close()
    bus.publish(msg("t", b"after close"))
    assert (bus.queued, bus.dropped) == (0, 2)


# --- two processes through the shared Redis ------------------------------------------------------


@pytest.fixture
async def pair(redis_prefix: str) -> AsyncIterator[tuple[RedisBus, RedisBus]]:
    producer, gateway = redis_bus(redis_prefix), redis_bus(redis_prefix)
    await producer.start()
    await gateway.start()
    try:
        yield producer, gateway
    finally:
        await producer.close()
        await gateway.close()


@pytest.mark.redis
async def test_one_process_publishes_another_receives_the_same_bytes_in_order(
    pair: tuple[RedisBus, RedisBus],
) -> None:
    producer, gateway = pair
    seen = Recorder()
    gateway.subscribe("stream:INFY", seen)
    await settle(gateway)
    sent = [
        msg("stream:INFY", bytes([i]) * i + b"\x00\xff", None if i % 7 == 0 else "tick", seq=i)
        for i in range(1, 200)
    ]
    for m in sent:
        producer.publish(m)
    assert await seen.wait_for(len(sent)) == sent
    await settle(producer)
    assert producer.published == len(sent)
    assert producer.connected and gateway.connected


@pytest.mark.redis
async def test_a_burst_published_in_one_loop_turn_leaves_in_one_pipeline(
    pair: tuple[RedisBus, RedisBus],
) -> None:
    """A Kite frame's ticks of 50 instruments reach the bus in one turn of the loop: one round
    trip to Redis, however many topics, not one per message."""
    producer, gateway = pair
    seen = Recorder()
    for i in range(50):
        gateway.subscribe(f"stream:S{i}", seen)
    await settle(gateway)
    await settle(producer)
    before = producer.pipelines
    burst = [msg(f"stream:S{i}", f"tick {i}".encode(), "tick", seq=1) for i in range(50)]
    for m in burst:  # one turn: nothing awaited in between
        producer.publish(m)
    await settle(producer)
    assert producer.pipelines - before == 1
    assert await seen.wait_for(len(burst)) == burst


@pytest.mark.redis
async def test_redis_sees_one_subscription_per_process_from_first_to_last_handler(
    redis_prefix: str,
) -> None:
    import redis.asyncio as aioredis

    raw = aioredis.Redis.from_url(REDIS_URL)
    bus = redis_bus(redis_prefix)
    channel = f"{redis_prefix}:t:stream:X"

    async def subscribers() -> int:
        await settle(bus)
        ((_, count),) = await raw.pubsub_numsub(channel)
        return int(count)

    try:
        await bus.start()
        first, second = Recorder(), Recorder()
        bus.subscribe("stream:X", first)
        bus.subscribe("stream:X", second)
        assert await subscribers() == 1
        bus.unsubscribe("stream:X", first)
        assert await subscribers() == 1
        bus.unsubscribe("stream:X", second)
        assert await subscribers() == 0
    finally:
        await bus.close()
        await raw.aclose()


@pytest.mark.redis
async def test_retained_state_is_visible_to_a_process_that_subscribes_later(
    pair: tuple[RedisBus, RedisBus],
) -> None:
    producer, gateway = pair
    producer.publish(msg("t", b"history", None, retain="history", deliver=False))
    producer.publish(msg("t", b"tick", "tick", retain="tick"))
    await settle(producer)
    assert gateway.retained_nowait("t") is None  # not subscribed here: needs I/O
    assert await gateway.retained("t") == [b"history", b"tick"]
    gateway.subscribe("t", Recorder())
    await settle(gateway)
    assert gateway.retained_nowait("t") == [b"history", b"tick"]


@pytest.mark.redis
async def test_retained_right_after_subscribing_waits_for_the_synced_cache(
    pair: tuple[RedisBus, RedisBus],
) -> None:
    producer, gateway = pair
    producer.publish(msg("t", b"tick", "tick", retain="tick"))
    await settle(producer)
    gateway.subscribe("t", Recorder())
    assert gateway.retained_nowait("t") is None  # the subscription is not confirmed yet
    async with asyncio.timeout(WAIT):
        assert await gateway.retained("t") == [b"tick"]
    assert gateway.retained_nowait("t") == [b"tick"]


@pytest.mark.redis
async def test_retained_cache_follows_updates_from_another_process(
    pair: tuple[RedisBus, RedisBus],
) -> None:
    producer, gateway = pair
    producer.publish(msg("t", b"old tick", "tick", retain="tick"))
    producer.publish(msg("t", b"position", "position", retain="position"))
    await settle(producer)
    gateway.subscribe("t", Recorder())
    await settle(gateway)
    producer.publish(msg("t", b"candles", None, retain="history", deliver=False))
    producer.publish(msg("t", b"new tick", "tick", retain="tick"))
    producer.publish(msg("t", b"", None, retain="position", deliver=False, drop=True))
    await settle(producer, gateway)
    assert gateway.retained_nowait("t") == [b"candles", b"new tick"]
    assert await producer.retained("t") == [b"candles", b"new tick"]  # read from Redis


@pytest.mark.redis
async def test_cache_synced_while_updates_race_is_exact(pair: tuple[RedisBus, RedisBus]) -> None:
    producer, gateway = pair
    names = [f"slot{i % 13}" for i in range(400)]
    for i, name in enumerate(names[:200]):
        producer.publish(msg("t", f"{name}={i}".encode(), name, retain=name))
    gateway.subscribe("t", Recorder())  # the snapshot is read while updates keep coming
    for i, name in enumerate(names[200:], start=200):
        producer.publish(msg("t", f"{name}={i}".encode(), name, retain=name))
        if i % 50 == 0:
            producer.publish(msg("t", b"", None, retain=name, deliver=False, drop=True))
    await settle(producer, gateway)
    assert gateway.retained_nowait("t") == await producer.retained("t")  # cache == Redis


@pytest.mark.redis
async def test_wire_format_is_the_documented_one(redis_prefix: str) -> None:
    import redis.asyncio as aioredis

    raw = aioredis.Redis.from_url(REDIS_URL)
    pubsub = raw.pubsub()
    bus = redis_bus(redis_prefix)
    try:
        await pubsub.subscribe(f"{redis_prefix}:t:stream:X")
        await bus.start()
        bus.publish(msg("stream:X", b"payload", "tick", retain="tick"))
        async with asyncio.timeout(WAIT):
            while (m := await pubsub.get_message(timeout=None)) is None or m["type"] != "message":
                pass
        data: bytes = m["data"]
        fmt, flags = data[0], data[1]
        assert (fmt, flags) == (1, 0x01 | 0x04 | 0x08)
        (slot_len,) = struct.unpack_from(">H", data, 2)
        assert data[4 : 4 + slot_len] == b"tick"
        pos = 4 + slot_len
        (version,) = struct.unpack_from(">Q", data, pos)
        (retain_len,) = struct.unpack_from(">H", data, pos + 8)
        assert data[pos + 10 : pos + 10 + retain_len] == b"tick"
        assert data[pos + 10 + retain_len :] == b"payload"
        stored = await raw.hget(f"{redis_prefix}:r:stream:X", "tick")
        assert stored == struct.pack(">Q", version) + b"payload"
        assert await raw.get(f"{redis_prefix}:v") == str(version).encode()
    finally:
        await bus.close()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await raw.aclose()


@pytest.mark.redis
async def test_close_sends_everything_still_queued(pair: tuple[RedisBus, RedisBus]) -> None:
    producer, gateway = pair
    seen = Recorder()
    gateway.subscribe("t", seen)
    await settle(gateway)
    for i in range(3000):
        producer.publish(msg("t", str(i).encode(), "tick"))
    await producer.close()
    assert producer.queued == 0
    assert (
        not producer._writer._queue and not producer._writer._conflatable
    )  # nothing kept once written
    await settle(gateway)
    assert seen.payloads == [str(i).encode() for i in range(3000)]


# --- outages: a redis-server of our own ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """A ``redis-server`` subprocess on a fixed port that a test can kill and start again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self, *extra: str) -> None:
        exe = shutil.which("redis-server")
        assert exe is not None
        self._proc = await asyncio.create_subprocess_exec(
            exe,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly"),
            *("no", "--daemonize", "no", *extra),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert self._proc.stdout is not None
        async with asyncio.timeout(WAIT):
            while b"Ready to accept connections" not in (
                line := await self._proc.stdout.readline()
            ):
                assert line, f"redis-server on port {self.port} exited"

    async def kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()


@pytest.fixture
async def own_redis() -> AsyncIterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(_free_port())
    try:
        yield server
    finally:
        await server.kill()


async def _state(states: asyncio.Queue[bool], wanted: bool) -> None:
    async with asyncio.timeout(WAIT):
        while await states.get() is not wanted:
            pass


def _fast(url: str, on_state: Callable[[bool], None], **kwargs: Any) -> RedisBus:
    return RedisBus(
        url,
        prefix="outage",
        on_state=on_state,
        reconnect_delay=0.02,
        max_reconnect_delay=0.2,
        connect_timeout=1.0,
        health_interval=1.0,
        close_timeout=1.0,
        **kwargs,
    )


@pytest.mark.redis
async def test_reconnects_resubscribes_and_flushes_the_queue_after_a_redis_restart(
    own_redis: RedisServer,
) -> None:
    await own_redis.start()
    states: asyncio.Queue[bool] = asyncio.Queue()
    bus = _fast(own_redis.url, states.put_nowait)
    seen = Recorder()
    try:
        await bus.start()
        await _state(states, True)
        bus.subscribe("alerts:X", seen)
        await settle(bus)
        bus.publish(msg("alerts:X", b"before", None, seq=1, epoch="e"))
        await seen.wait_for(1)
        await settle(bus)  # the writer has its reply too: nothing left to send again
        assert bus.recover_nowait("alerts:X", "e", 0) == [b"before"]

        await own_redis.kill()
        await _state(states, False)
        assert not bus.connected
        bus.publish(msg("alerts:X", b"while down", None, retain="last", seq=2, epoch="e"))
        assert bus.queued == 1

        await own_redis.start()
        await _state(states, True)
        await settle(bus)
        assert bus.connected and bus.queued == 0
        assert await bus.retained("alerts:X") == [b"while down"]  # the queue was flushed
        assert bus.retained_nowait("alerts:X") == [b"while down"]  # the cache was resynced
        bus.publish(msg("alerts:X", b"after", None, seq=3, epoch="e"))
        assert (await seen.wait_for(len(seen.messages) + 1))[-1].payload == b"after"
        # Messages may have been missed while down: the local history has a gap, so Redis
        # answers, and the restarted Redis only holds what came after it.
        assert bus.recover_nowait("alerts:X", "e", 0) is False
        assert await bus.recover("alerts:X", "e", 0) is None
        assert await bus.recover("alerts:X", "e", 1) == [b"while down", b"after"]
    finally:
        await bus.close()


@pytest.mark.redis
async def test_a_write_sent_again_after_a_redis_restart_reaches_subscribers_once(
    own_redis: RedisServer,
) -> None:
    """The producer's writer sends a batch again when Redis died before its reply came (the
    subscribers may have had it): the repeats are dropped, ``seq`` never goes back."""
    await own_redis.start()
    states: asyncio.Queue[bool] = asyncio.Queue()
    producer = _fast(own_redis.url, lambda _: None)
    gateway = _fast(own_redis.url, states.put_nowait)
    seen = Recorder()

    def batch(*seqs: int) -> None:
        for seq in seqs:
            slot = "candle:09:15" if seq == 2 else "tick"
            payload = b'{"seq":%d}' % seq
            producer.publish(msg("stream:X", payload, slot, retain=slot, seq=seq, epoch="e"))

    try:
        await producer.start()
        await gateway.start()
        await _state(states, True)
        gateway.subscribe("stream:X", seen)
        await settle(producer, gateway)
        batch(1, 2, 3)
        await seen.wait_for(3)

        await own_redis.kill()
        await _state(states, False)
        await own_redis.start()  # empty
        await _state(states, True)
        await settle(producer, gateway)  # the gateway has refilled the topic: nothing to refill
        batch(1, 2, 3, 4)  # the write whose reply was lost, then the next message
        await settle(producer, gateway)
        assert [m.seq for m in seen.messages] == [1, 2, 3, 4]
    finally:
        await gateway.close()
        await producer.close()


@pytest.mark.redis
async def test_start_without_redis_keeps_retrying_until_it_appears(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    states: asyncio.Queue[bool] = asyncio.Queue()
    url = f"redis://:s3cret@127.0.0.1:{own_redis.port}/0"
    bus = _fast(url, states.put_nowait)
    try:
        with caplog.at_level(logging.WARNING, logger="tickhub.bus.redis"):
            await bus.start()
        assert not bus.connected
        assert "not reachable" in caplog.text and "s3cret" not in caplog.text
        with pytest.raises(BusUnavailableError):
            await bus.retained("t")
        bus.publish(msg("t", b"queued", "tick", retain="tick"))

        await own_redis.start("--requirepass", "s3cret")
        await _state(states, True)
        await settle(bus)
        other = redis_bus("outage", url=url)  # another process sees what was queued
        try:
            assert await other.retained("t") == [b"queued"]
        finally:
            await other.close()
    finally:
        await bus.close()


@pytest.mark.redis
async def test_a_rejected_password_fails_start_without_showing_it(own_redis: RedisServer) -> None:
    await own_redis.start("--requirepass", "right")
    bus = RedisBus(f"redis://:wrong-one@127.0.0.1:{own_redis.port}/0", connect_timeout=2.0)
    with pytest.raises(ConnectionError) as info:
        await bus.start()
    assert "wrong-one" not in str(info.value)
    assert f"127.0.0.1:{own_redis.port}" in str(info.value)


@pytest.mark.redis
async def test_close_right_after_an_unsubscribe_returns(redis_prefix: str) -> None:
    """The Redis client once swallowed the cancellation of an UNSUBSCRIBE on its way, and
    ``close`` waited for the subscriber task forever."""
    bus = redis_bus(redis_prefix)
    seen = Recorder()
    await bus.start()
    bus.subscribe("_ingest", seen)
    assert await bus.retained("_ingest") == []
    bus.unsubscribe("_ingest", seen)
    async with asyncio.timeout(WAIT):
        await bus.close()
