"""The subscribing half of the Redis bus: one pub/sub connection, the cache syncs, the barriers.

``subscribe``/``unsubscribe`` are local and immediate; the reader task SUBSCRIBEs a topic's
channel for its first handler and UNSUBSCRIBEs it after its last (batched, ``CHUNK`` channels a
command). Once Redis confirms a subscription, the topic's retained hash is read (many topics
per transaction) into its cache (``subscription``). PINGs on the same connection serve as
barriers (a PONG comes after every message published before the PING) and as a heartbeat
(three silent ``health_interval`` mean a dead connection). After a reconnect every topic is
subscribed and synced again, and refilled: its live messages are held until its history in
Redis is read and a PING answered, then the handlers get what they missed and the held ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterator

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from tickhub.bus.base import BusMessage, Handler
from tickhub.bus.history import TopicHistory
from tickhub.bus.redis.codec import decode_envelope
from tickhub.bus.redis.connection import backoff
from tickhub.bus.redis.keys import Keys
from tickhub.bus.redis.subscription import SYNCED, SYNCING, UNCONFIRMED, Subscription

log = logging.getLogger(__name__)

CHUNK = 500
"""Channels per SUBSCRIBE / UNSUBSCRIBE, and retained hashes per sync transaction."""


def _root(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _raise_if_cancelled() -> None:
    """Raise the cancellation the Redis client swallowed (seen when the bus closes while an
    UNSUBSCRIBE is on its way); otherwise a task group waits for the task forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Reader:
    """The subscriptions of one ``RedisBus`` and the task (:meth:`run`) that serves them.

    ``ok`` is true while the subscriber connection is up and answered its first PING;
    ``on_change`` is called whenever it changes, ``on_ready`` when it becomes true (Redis
    answers again). ``first_outcome``, when set before :meth:`run`, gets ``None`` on the first
    success or the exception of the first failure.
    """

    def __init__(
        self,
        sub_client: aioredis.Redis,
        client: aioredis.Redis,
        keys: Keys,
        *,
        url: str,
        new_history: Callable[[], TopicHistory],
        health_interval: float,
        command_timeout: float,
        reconnect_delay: float,
        max_reconnect_delay: float,
        on_change: Callable[[], None],
        on_ready: Callable[[], None],
    ) -> None:
        self._sub_client = sub_client
        self._client = client
        self._keys = keys
        self._url = url  # redacted: for logs
        self._new_history = new_history
        self._health_interval = health_interval
        self._command_timeout = command_timeout
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._on_change = on_change
        self._on_ready = on_ready
        self.ok = False
        self.first_outcome: asyncio.Future[BaseException | None] | None = None
        self.topics: dict[str, Subscription] = {}
        self._dirty: dict[str, None] = {}  # topics whose subscription may need a command
        self._sent: set[str] = set()  # SUBSCRIBE sent on this connection, no UNSUBSCRIBE since
        self._unconfirmed: dict[str, int] = {}  # SUBSCRIBE/UNSUBSCRIBE not confirmed yet
        self._wake = asyncio.Event()
        self._tokens = itertools.count(1)
        self._ready_token: int | None = None
        self._barrier_pending: list[asyncio.Future[None]] = []
        self._ping_waiters: deque[tuple[int, list[asyncio.Future[None]]]] = deque()
        self._last_rx = 0.0
        self._sync_pending: dict[str, Subscription] = {}
        self._sync_wake = asyncio.Event()
        self.sync_idle = asyncio.Event()  # set while no topic waits for its snapshot
        self.sync_idle.set()

    # --- what the bus asks -----------------------------------------------------------------------

    def subscribe(self, topic: str, handler: Handler) -> None:
        state = self.topics.get(topic)
        if state is None:
            state = self.topics[topic] = Subscription(self._new_history())
            if topic in self._sent and topic not in self._unconfirmed:
                self._start_sync(topic, state)
            self._dirty[topic] = None
            self._wake.set()
        if handler not in state.handlers:
            state.handlers.append(handler)

    def unsubscribe(self, topic: str, handler: Handler) -> None:
        state = self.topics.get(topic)
        if state is None or handler not in state.handlers:
            return
        state.handlers.remove(handler)
        if not state.handlers:
            del self.topics[topic]
            if state.synced is not None:
                state.synced.set()  # a ``retained`` waiting for it reads Redis instead
            if self._sync_pending.pop(topic, None) is not None:
                self._sync_wake.set()
            self._dirty[topic] = None
            self._wake.set()

    async def wait_synced(self, state: Subscription) -> None:
        """Wait (at most ``command_timeout``) until ``state`` is confirmed and synced."""
        if state.phase == SYNCED:
            return
        state.synced = state.synced or asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._command_timeout):
                await state.synced.wait()

    def barrier(self) -> asyncio.Future[None]:
        """A future set once every message Redis accepted before now was passed to handlers."""
        fut = asyncio.get_running_loop().create_future()
        self._barrier_pending.append(fut)
        self._wake.set()
        return fut

    def closed(self) -> list[asyncio.Future[None]]:
        """Forget every subscription; take the barriers not answered (to fail them)."""
        waiters = self._barrier_pending + [f for _, fs in self._ping_waiters for f in fs]
        self._barrier_pending = []
        self._ping_waiters.clear()
        self.topics.clear()
        self.sync_idle.set()
        return waiters

    # --- the task --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep a subscriber connection up until cancelled, reconnecting with backoff."""
        failures = 0
        while True:
            pubsub = self._sub_client.pubsub()
            try:
                await self._session(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                err = _root(exc)
                if self.ok:
                    failures = 0
                failures += 1
                if self.first_outcome is not None and not self.first_outcome.done():
                    self.first_outcome.set_result(err)
                elif failures == 1:
                    log.warning("redis bus %s: subscriber connection lost (%s)", self._url, err)
                else:
                    log.debug("redis bus %s: reconnect failed (%s)", self._url, err)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                self._session_down()
            await asyncio.sleep(backoff(failures, self._reconnect_delay, self._max_reconnect_delay))

    async def _session(self, pubsub: PubSub) -> None:
        await pubsub.connect()  # type: ignore[no-untyped-call]
        self._last_rx = asyncio.get_running_loop().time()
        self._dirty = dict.fromkeys(self.topics)
        self._ready_token = None
        self._wake.set()
        prefix = self._keys.prefix
        async with asyncio.TaskGroup() as group:
            group.create_task(self._read_loop(pubsub), name=f"redis-bus-read:{prefix}")
            group.create_task(self._control_loop(pubsub), name=f"redis-bus-control:{prefix}")
            group.create_task(self._sync_loop(), name=f"redis-bus-sync:{prefix}")

    def _session_down(self) -> None:
        self._sent.clear()
        self._unconfirmed.clear()
        for state in self.topics.values():
            # Messages published while disconnected are lost to us: the history has a gap.
            state.lost(self._new_history())
        self._sync_pending.clear()
        self.sync_idle.set()
        # Barriers not answered yet are answered by the next connection's first PING.
        for _, waiters in self._ping_waiters:
            self._barrier_pending.extend(waiters)
        self._ping_waiters.clear()
        if self.ok:
            self.ok = False
            self._on_change()

    async def _control_loop(self, pubsub: PubSub) -> None:
        """Send SUBSCRIBE/UNSUBSCRIBE for changed topics, and PINGs as barriers and heartbeat."""
        loop = asyncio.get_running_loop()
        next_ping = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_ping - loop.time())):
                    await self._wake.wait()
            self._wake.clear()
            now = loop.time()
            silent = now - self._last_rx
            if silent > 3 * self._health_interval:
                raise ConnectionError(f"no answer from redis in {silent:.0f}s")
            await self._send_subscriptions(pubsub)
            _raise_if_cancelled()
            if self._barrier_pending or self._ready_token is None or now >= next_ping:
                token = next(self._tokens)
                if self._ready_token is None:
                    self._ready_token = token
                self._ping_waiters.append((token, self._barrier_pending))
                self._barrier_pending = []
                await pubsub.execute_command("PING", str(token))
                _raise_if_cancelled()
                next_ping = now + self._health_interval

    async def _send_subscriptions(self, pubsub: PubSub) -> None:
        dirty, self._dirty = list(self._dirty), {}
        add = [t for t in dirty if t in self.topics and t not in self._sent]
        remove = [t for t in dirty if t not in self.topics and t in self._sent]
        for command, topics in (("SUBSCRIBE", add), ("UNSUBSCRIBE", remove)):
            for chunk in _chunks(topics, CHUNK):
                for topic in chunk:
                    self._unconfirmed[topic] = self._unconfirmed.get(topic, 0) + 1
                if command == "SUBSCRIBE":
                    self._sent.update(chunk)
                else:
                    self._sent.difference_update(chunk)
                await pubsub.execute_command(command, *map(self._keys.channel, chunk))

    async def _read_loop(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        start = len(self._keys.channel_prefix)
        while True:
            msg = await pubsub.get_message(timeout=None)
            self._last_rx = loop.time()
            if msg is None:
                continue
            kind = msg["type"]
            if kind == "message":
                self._on_message(msg["channel"][start:].decode(), msg["data"])
            elif kind in ("subscribe", "unsubscribe"):
                self._on_confirmed(msg["channel"][start:].decode())
            elif kind == "pong" and msg["data"].isdigit():
                self._on_pong(int(msg["data"]))

    def _on_pong(self, token: int) -> None:
        waiters = self._ping_waiters
        while waiters and waiters[0][0] <= token:
            for fut in waiters.popleft()[1]:
                if not fut.done():
                    fut.set_result(None)
        if not self.ok and self._ready_token is not None and token >= self._ready_token:
            self.ok = True
            if self.first_outcome is not None and not self.first_outcome.done():
                self.first_outcome.set_result(None)
            self._on_ready()
            self._on_change()

    def _on_confirmed(self, topic: str) -> None:
        left = self._unconfirmed.pop(topic, 1) - 1
        if left > 0:
            self._unconfirmed[topic] = left
            return
        # Only once every command for the topic is confirmed is the subscription settled.
        state = self.topics.get(topic)
        if state is not None and state.phase == UNCONFIRMED and topic in self._sent:
            self._start_sync(topic, state)

    def _start_sync(self, topic: str, state: Subscription) -> None:
        state.start_sync()
        self._sync_pending[topic] = state
        self.sync_idle.clear()
        self._sync_wake.set()

    def _on_message(self, topic: str, data: bytes) -> None:
        state = self.topics.get(topic)
        if state is None:
            return
        try:
            message, version = decode_envelope(topic, data)
        except (ValueError, UnicodeError) as exc:
            log.warning("redis bus: bad envelope on topic %r: %s", topic, exc)
            return
        state.received(message, version)
        if not message.deliver:
            return
        if state.filling is not None:  # after a reconnect: until what was missed is read
            state.filling.append(message)
            return
        if not state.fresh(message):
            return  # delivered already: by the refill, or before a write was sent again
        self._deliver(topic, state, message)

    def _deliver(self, topic: str, state: Subscription, message: BusMessage) -> None:
        for handler in tuple(state.handlers):
            try:
                handler(message)
            except Exception:
                # One failing subscriber must not starve the others.
                log.exception("bus handler failed for topic %s", topic)

    async def _sync_loop(self) -> None:
        """Fetch the retained values of newly confirmed topics, many per transaction."""
        while True:
            await self._sync_wake.wait()
            self._sync_wake.clear()
            while self._sync_pending:
                batch = list(itertools.islice(self._sync_pending.items(), CHUNK))
                for topic, _ in batch:
                    del self._sync_pending[topic]
                refills = [topic for topic, state in batch if state.filling is not None]
                async with self._client.pipeline(transaction=True) as pipe:
                    for topic, _ in batch:
                        pipe.hgetall(self._keys.retained(topic))
                    pipe.get(self._keys.version)
                    for topic in refills:
                        pipe.hgetall(self._keys.state(topic))
                        pipe.xrange(self._keys.stream(topic))
                    results: list[object] = await pipe.execute(raise_on_error=False)
                raw_since = results[len(batch)]
                rest = results[len(batch) + 1 :]
                streams = {t: (rest[2 * i], rest[2 * i + 1]) for i, t in enumerate(refills)}
                since = int(raw_since) if isinstance(raw_since, bytes) else 0
                for (topic, state), raw in zip(batch, results, strict=False):
                    if self.topics.get(topic) is not state or state.phase != SYNCING:
                        continue
                    if not isinstance(raw, dict):
                        log.error("redis bus: cannot read retained values of %r: %s", topic, raw)
                        raw = {}
                    state.synced_at(raw, since)
                if streams:
                    await self._refill_all(streams)
            self.sync_idle.set()

    async def _refill_all(self, streams: dict[str, tuple[object, object]]) -> None:
        # Messages published before the stream was read may still be on their way over the
        # other connection: once a PING is answered they are held too, and none comes late.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._command_timeout):
                await self.barrier()
        for topic, raw in streams.items():
            state = self.topics.get(topic)
            if state is not None and state.phase == SYNCED and state.filling is not None:
                self._refill(topic, state, raw)

    def _refill(self, topic: str, state: Subscription, raw: tuple[object, object]) -> None:
        """Deliver what the topic's handlers missed while disconnected (the candle closes and
        events of its stream, the latest state of its history hash) and the live messages held
        meanwhile, in order."""
        meta, stream = raw
        stored: list[BusMessage] = []
        try:
            if not isinstance(meta, dict) or not isinstance(stream, list):
                raise TypeError(f"{meta!r:.100} / {stream!r:.100}")
            stored = [decode_envelope(topic, fields[b"m"])[0] for _, fields in stream]
            epoch = meta.get(b"e", b"").decode()
            for key, value in meta.items():
                if key.startswith(b"r:"):
                    raw_seq, _, payload = value.partition(b" ")
                    name = key[2:].decode()
                    stored.append(
                        BusMessage(topic, payload, name, name, seq=int(raw_seq), epoch=epoch)
                    )
        except (ValueError, UnicodeError, KeyError, TypeError) as exc:
            log.warning("redis bus: cannot refill topic %r after a reconnect: %s", topic, exc)
        for message in state.refill(stored):
            self._deliver(topic, state, message)
