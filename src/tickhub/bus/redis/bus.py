"""``RedisBus``: the ``Bus`` contract over Redis, composed of a writer and a reader.

What it adds to the contract, and its limits:

- ``publish`` queues; the writer (``writer``) sends runs of messages through one Lua script
  (``script.lua``), so retained hashes, versions, resume history and publish order always agree.
  Retained updates are published even with ``deliver=False`` (flag 0x01 clear): subscribers keep
  their retained cache with them but do not pass them to handlers. A message with neither
  ``retain`` nor ``deliver`` is not sent at all.
- ``retained_nowait`` answers from the cache of each topic subscribed here (``subscription``):
  ``None`` until its first sync, and for topics not subscribed here. During an outage the cache
  keeps the last known values; it is synced again after reconnecting. ``retained`` reads Redis
  (HGETALL, ordered by version), except for a topic subscribed here: then it waits for the
  subscription to be confirmed and synced and answers from the cache, so the snapshot lines up
  with what handlers receive (an update published between ``subscribe`` and the confirmation is
  in the snapshot, not delivered live; an event there is missed). With a ``gate``
  (``SnapshotGate``), a topic it calls pending gets ``None`` from ``retained_nowait``, and
  ``retained`` waits for the gate first.
- ``recover_nowait`` answers from the local history of a topic subscribed here (restarted after
  a reconnect, since messages may have been missed). When it does not cover the request (a topic
  not subscribed here, nothing received yet, or a ``seq`` outside it) it returns ``False`` and
  ``recover`` rebuilds the history from Redis (``resume``), so a client resumes exactly on any
  gateway. ``None`` (a fresh snapshot) for another epoch, a ``seq`` older than the stream keeps,
  or when Redis cannot be read.
- ``start`` does not fail when Redis is down: it logs a warning and both tasks keep retrying
  with capped exponential backoff (``connected`` stays ``False``). A rejected password does
  fail ``start``. After a reconnect every topic is subscribed again and queued messages go out.
  ``on_state(connected)`` is called on every change of ``connected``.
- ``close`` sends what is queued (at most ``close_timeout`` seconds), then stops the tasks.

Limits: single Redis (no cluster); pub/sub is at-most-once, so what is published while a
subscriber is disconnected does not reach it live: after the reconnect the reader refills each
topic from the history kept in Redis (candle closes and events one by one, state as its latest
value; ``Subscription.refill``), but not what Redis itself lost; retained state lives in Redis:
a producer that must survive a Redis restart without persistence publishes its state again on
``on_state(True)`` (the ingest does).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable

from redis.exceptions import AuthenticationError, RedisError

from tickhub.bus.base import BusMessage, Handler, SnapshotGate
from tickhub.bus.history import TopicHistory
from tickhub.bus.redis.codec import VERSION_SIZE
from tickhub.bus.redis.connection import redact_url, redis_client
from tickhub.bus.redis.keys import Keys
from tickhub.bus.redis.reader import Reader
from tickhub.bus.redis.resume import stored_history
from tickhub.bus.redis.subscription import SYNCED
from tickhub.bus.redis.writer import Writer
from tickhub.core import defaults
from tickhub.core.errors import BusUnavailableError

log = logging.getLogger(__name__)


class RedisBus:
    """The ``Bus`` contract over Redis; see the module docstring for what it adds and its limits.

    ``url`` is any redis-py URL (``redis://``, ``rediss://``, ``unix://``) or a
    ``redis+sentinel://`` one (``sentinel``: the primary its Sentinels name, followed across a
    failover); it is shown with its password masked. ``prefix`` namespaces keys and channels
    (``keys``), so several deployments can share a Redis. ``max_queue`` bounds the publish
    queue, ``history_size``/``history_age`` each topic's resume history (in Redis and in each
    subscribed topic's local copy).
    ``on_state(connected)`` hears of every change of ``connected``. Reconnects back off from
    ``reconnect_delay`` to ``max_reconnect_delay``; ``health_interval`` paces the subscriber's
    PINGs (three silent intervals mean a dead connection). Counters: ``published``,
    ``dropped``, ``queued``.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = defaults.BUS_PREFIX,
        max_queue: int = 100_000,
        history_size: int = defaults.HISTORY_SIZE,
        history_age: float = defaults.HISTORY_AGE,
        on_state: Callable[[bool], None] | None = None,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 5.0,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
        health_interval: float = 5.0,
        close_timeout: float = 5.0,
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1: {max_queue!r}")
        self.url = redact_url(url)
        self.prefix = prefix
        self.on_state = on_state
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._close_timeout = close_timeout
        # Commands retry once so a pooled connection left stale by a Redis restart reconnects.
        self._client = redis_client(
            url,
            name=f"{prefix}-bus",
            retries=1,
            connect_timeout=connect_timeout,
            timeout=command_timeout,
        )
        # The subscriber never retries on its own: the reader notices, resubscribes and resyncs.
        sub_client = redis_client(
            url,
            name=f"{prefix}-bus-sub",
            retries=0,
            connect_timeout=connect_timeout,
            timeout=command_timeout,
        )
        self._keys = keys = Keys(prefix)
        self._new_history = functools.partial(TopicHistory, history_size, history_age)
        self._writer = Writer(
            self._client,
            keys,
            url=self.url,
            max_queue=max_queue,
            history_size=history_size,
            reconnect_delay=reconnect_delay,
            max_reconnect_delay=max_reconnect_delay,
            on_change=self._set_state,
        )
        self._reader = Reader(
            sub_client,
            self._client,
            keys,
            url=self.url,
            new_history=self._new_history,
            health_interval=health_interval,
            command_timeout=command_timeout,
            reconnect_delay=reconnect_delay,
            max_reconnect_delay=max_reconnect_delay,
            on_change=self._set_state,
            on_ready=self._writer.kick,
        )
        self._sub_client = sub_client
        self.connected = False
        self.gate: SnapshotGate | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisBus({self.url!r}, prefix={self.prefix!r}, connected={self.connected})"

    @property
    def max_queue(self) -> int:
        return self._writer.max_queue

    @property
    def published(self) -> int:
        """Messages written to Redis."""
        return self._writer.published

    @property
    def pipelines(self) -> int:
        """Pipelines sent to Redis: what one loop turn publishes (a feed frame's burst of ticks)
        leaves in one, as script calls of at most ``MESSAGES_PER_CALL`` messages each."""
        return self._writer.pipelines

    @property
    def dropped(self) -> int:
        """Messages given up: queue overflow, rejected, or published after close."""
        return self._writer.dropped

    @property
    def queued(self) -> int:
        """Messages waiting to be written (including the batch being written)."""
        return self._writer.queued

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the reader and writer; wait (at most ``connect_timeout``) for the first try.

        Returns when connected, or after logging that Redis is not reachable yet (both tasks
        keep retrying); raises ``ConnectionError`` (the bus closed) if Redis refuses the
        password. Does nothing when started already or closed.
        """
        if self._tasks or self._closed:
            return
        loop = asyncio.get_running_loop()
        first_outcome = self._reader.first_outcome = loop.create_future()
        self._tasks = [
            loop.create_task(self._reader.run(), name=f"redis-bus-reader:{self.prefix}"),
            loop.create_task(self._writer.run(), name=f"redis-bus-writer:{self.prefix}"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._task_done)
        outcome: BaseException | None
        try:
            async with asyncio.timeout(self._connect_timeout + 1.0):
                outcome = await asyncio.shield(first_outcome)
        except TimeoutError:
            outcome = TimeoutError(f"no answer in {self._connect_timeout:g}s")
        if isinstance(outcome, AuthenticationError):
            await self.close()
            raise ConnectionError(f"redis bus {self.url}: {outcome}") from outcome
        if outcome is not None:
            log.warning(
                "redis bus %s not reachable (%s); retrying in the background", self.url, outcome
            )

    async def close(self) -> None:
        """Send what is queued (bounded by ``close_timeout``), then stop and disconnect.

        Later ``publish`` calls are dropped (and counted); waiting ``flush`` calls raise
        ``ConnectionError``. Closing twice does nothing.
        """
        if self._closed:
            return
        self._closed = True
        writer = self._writer
        writer.closed = True
        if self._tasks and writer.queued:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._close_timeout):
                    await writer.wait_written(writer.last_index)
        if writer.queued:
            log.warning("redis bus %s closed with %d messages unsent", self.url, writer.queued)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            # The Redis client can swallow a cancellation (seen mid-UNSUBSCRIBE): ask again.
            while not task.done():
                await asyncio.wait({task}, timeout=0.1)
                if not task.done():
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for fut in writer.waiters() + self._reader.closed():
            if not fut.done():
                fut.set_exception(ConnectionError("bus is closed"))
        self.connected = False
        await self._client.aclose()
        await self._sub_client.aclose()

    async def flush(self) -> None:
        """Wait until what was handed to the bus before the call has taken effect.

        Queued messages are written to Redis, subscription changes are confirmed, every
        message Redis accepted before (ours included) has been passed to the local handlers,
        and the retained cache of every subscribed topic is synced. Waits through an outage
        (and until ``start``); raises ``ConnectionError`` if the bus is closed meanwhile.
        """
        if self._closed:
            raise ConnectionError("bus is closed")
        await self._writer.wait_written(self._writer.last_index)
        await self._reader.barrier()
        await self._reader.sync_idle.wait()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    def _set_state(self) -> None:
        if self._closed:
            self.connected = False
            return
        connected = self._reader.ok and self._writer.ok
        if connected == self.connected:
            return
        self.connected = connected
        if connected:
            log.info("redis bus connected to %s", self.url)
        else:
            log.warning("redis bus lost its connection to %s; retrying", self.url)
        if self.on_state is not None:
            try:
                self.on_state(connected)
            except Exception:
                log.exception("redis bus on_state callback failed")

    # --- the Bus contract ------------------------------------------------------------------------

    def publish(self, message: BusMessage) -> None:
        """Queue ``message``; never blocks and never raises (problems are logged and counted)."""
        self._writer.publish(message)

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Local and immediate; Redis is subscribed (then the cache synced) in the background."""
        self._reader.subscribe(topic, handler)

    def unsubscribe(self, topic: str, handler: Handler) -> None:
        """Local and immediate; Redis is unsubscribed after the topic's last handler."""
        self._reader.unsubscribe(topic, handler)

    def retained_nowait(self, topic: str) -> list[bytes] | None:
        """The synced cache of a topic subscribed here, else ``None``."""
        if self.gate is not None and self.gate.pending(topic):
            return None
        state = self._reader.topics.get(topic)
        if state is None or state.values is None:
            return None
        return list(state.values.values())

    async def retained(self, topic: str) -> list[bytes]:
        """The synced cache of a topic subscribed here, else Redis; ``BusUnavailableError``
        when Redis must answer and cannot."""
        if self.gate is not None and self.gate.pending(topic):
            await self.gate.wait(topic)
        reader = self._reader
        state = reader.topics.get(topic)
        if state is not None and reader.ok:
            # Subscribed here: the synced cache is the snapshot that lines up with the messages
            # handlers get. Read before the subscription is confirmed, Redis could miss updates
            # that land in between.
            await reader.wait_synced(state)
            if reader.topics.get(topic) is state and state.phase == SYNCED:
                return list(state.values.values()) if state.values is not None else []
        try:
            raw = await self._client.hgetall(self._keys.retained(topic))
        except RedisError as exc:
            raise BusUnavailableError(f"redis bus {self.url} unavailable: {exc}") from exc
        # Values start with their big-endian version, so byte order is update order.
        return [value[VERSION_SIZE:] for value in sorted(raw.values()) if isinstance(value, bytes)]

    def recover_nowait(self, topic: str, epoch: str, seq: int) -> list[bytes] | bool | None:
        """From the local history of a topic subscribed here; ``False`` when Redis must tell."""
        state = self._reader.topics.get(topic)
        if state is None or state.phase != SYNCED or not state.history.epoch:
            return False  # no continuous local history: ask Redis
        history = state.history
        found = history.since(epoch, seq, time.monotonic())
        if found is not None:
            return found
        if epoch != history.epoch:
            return None  # another producer run: Redis holds the same epoch as we do
        return False  # older than our history, or newer than what reached us yet

    async def recover(self, topic: str, epoch: str, seq: int) -> list[bytes] | None:
        """The local history if it covers the request, else the history kept in Redis."""
        found = self.recover_nowait(topic, epoch, seq)
        if found is not False:
            return found if isinstance(found, list) else None
        reader = self._reader
        state = reader.topics.get(topic)
        if state is not None and reader.ok and state.phase != SYNCED:
            # Subscribed here: read once the subscription is confirmed, so that every message
            # the read misses is delivered live.
            await reader.wait_synced(state)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hgetall(self._keys.state(topic))
                pipe.xrange(self._keys.stream(topic))
                meta, stream = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("redis bus %s: cannot read the history of %r: %s", self.url, topic, exc)
            return None
        try:
            history = stored_history(topic, meta, stream, self._new_history)
        except (ValueError, UnicodeError, KeyError, TypeError) as exc:
            log.warning("redis bus: bad history stored for topic %r: %s", topic, exc)
            return None
        if history is None:
            return None
        return history.since(epoch, seq, time.time())
