"""The publishing half of the Redis bus: a bounded queue, written in pipelined batches.

``publish`` never blocks or raises: it queues (at most ``max_queue`` messages). When the queue
is full the oldest conflatable message (``slot`` not ``None``) is dropped and counted in
``dropped``; events (``slot=None``) are never dropped, so events alone may exceed the bound.
The writer task sends everything queued (up to ``MAX_BATCH``) in one pipeline per round, in
order, ``MESSAGES_PER_CALL`` messages per script call. A batch whose outcome is unknown after a
connection loss is sent again: around an outage a message may arrive twice, never out of
order (a subscriber drops the repeat: ``Subscription.fresh``). Redis refusing an update (out
of memory) drops that message, logged and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import deque
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

import tickhub.bus.redis.script as script
from tickhub.bus.base import BusMessage
from tickhub.bus.redis.connection import backoff
from tickhub.bus.redis.keys import Keys

log = logging.getLogger(__name__)

MAX_BATCH = 10_000
"""Messages per pipeline: what one round of the writer sends at most."""

_QUEUED, _SENDING, _DONE = 0, 1, 2


class _Item(script.MessageArgs):
    """One queued message, already encoded as the script arguments that send it."""

    __slots__ = ("conflatable", "index", "state")

    def __init__(
        self,
        index: int,
        keys: tuple[str, ...],
        argv: tuple[str | bytes, ...],
        conflatable: bool,
    ) -> None:
        # (Not through the base's __init__: one call less per message published.)
        self.keys = keys
        self.argv = argv
        self.index = index
        self.conflatable = conflatable
        self.state = _QUEUED


class Writer:
    """The publish queue of one ``RedisBus`` and the task (:meth:`run`) that empties it.

    ``on_change`` is called whenever ``ok`` (the last write reached Redis) changes. Counters:
    ``published`` (written to Redis), ``dropped`` (given up: queue overflow, rejected, refused
    by Redis, or published once ``closed``), ``queued``.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        *,
        url: str,
        max_queue: int,
        history_size: int,
        reconnect_delay: float,
        max_reconnect_delay: float,
        on_change: Callable[[], None],
    ) -> None:
        self._client = client
        self._keys = keys
        self._url = url  # redacted: for logs
        self.max_queue = max_queue
        self._history_size = history_size
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._on_change = on_change
        self.published = 0
        self.dropped = 0
        self.pipelines = 0  # round trips to Redis: a loop turn's publishes share one
        self.closed = False
        self.ok = True
        self._queue: deque[_Item] = deque()
        self._conflatable: deque[_Item] = deque()
        self._size = 0
        self.last_index = 0  # the index of the latest message queued
        self._written = 0  # every message with index <= this one has left the queue
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._kick = asyncio.Event()  # Redis answers again: stop backing off
        self._overflow_logged = False

    @property
    def queued(self) -> int:
        """Messages waiting to be written (including the batch being written)."""
        return self._size

    def kick(self) -> None:
        """Redis answers again: retry a failed write now rather than after the backoff."""
        self._kick.set()

    def publish(self, message: BusMessage) -> None:
        """Queue ``message``; never blocks and never raises (problems are logged and counted)."""
        if self.closed:
            self.dropped += 1
            return
        try:
            arguments = script.arguments(self._keys, message)
        except (TypeError, ValueError, UnicodeError, struct.error) as exc:
            log.error("bus message for topic %r rejected: %s", message.topic, exc)
            self.dropped += 1
            return
        if arguments is None:
            return
        conflatable = message.slot is not None
        if self._size >= self.max_queue and not self._drop_oldest_conflatable() and conflatable:
            self._count_overflow()
            return
        # (An event with no conflatable message to make room for it goes past the bound.)
        self.last_index += 1
        item = _Item(self.last_index, *arguments, conflatable)
        self._queue.append(item)
        if conflatable:
            self._conflatable.append(item)
        self._size += 1
        self._wake.set()

    async def wait_written(self, index: int) -> None:
        """Wait until every message up to ``index`` has left the queue (written or given up)."""
        if self._written >= index:
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((index, fut))
        await fut

    def waiters(self) -> list[asyncio.Future[None]]:
        """Take the futures of every ``wait_written`` still waiting (to fail them on close)."""
        futures = [f for _, f in self._waiters]
        self._waiters.clear()
        return futures

    def _drop_oldest_conflatable(self) -> bool:
        pending = self._conflatable
        while pending and pending[0].state == _DONE:
            pending.popleft()
        for item in pending:
            if item.state == _QUEUED:  # a batch being written is not ours to drop
                item.state = _DONE
                self._size -= 1
                self._count_overflow()
                if len(self._queue) > 2 * self._size + 1024:
                    # Dropped messages behind a queued event would never reach the head.
                    self._queue = deque(i for i in self._queue if i.state != _DONE)
                return True
        return False

    def _count_overflow(self) -> None:
        self.dropped += 1
        if not self._overflow_logged:
            self._overflow_logged = True
            log.warning(
                "redis bus queue full (%d messages): dropping the oldest conflatable messages",
                self.max_queue,
            )

    def _take_batch(self) -> list[_Item]:
        queue = self._queue
        while queue and queue[0].state == _DONE:
            queue.popleft()
        batch: list[_Item] = []
        for item in queue:
            if item.state == _QUEUED:
                item.state = _SENDING
                batch.append(item)
                if len(batch) >= MAX_BATCH:
                    break
        return batch

    def _batch_done(self, batch: list[_Item]) -> None:
        for item in batch:
            item.state = _DONE
        self._size -= len(batch)
        queue = self._queue
        while queue and queue[0].state == _DONE:
            queue.popleft()
        pending = self._conflatable
        while pending and pending[0].state == _DONE:
            pending.popleft()
        self._written = queue[0].index - 1 if queue else self.last_index
        if self._size < self.max_queue // 2:
            self._overflow_logged = False
        if self._waiters:
            still: list[tuple[int, asyncio.Future[None]]] = []
            for index, fut in self._waiters:
                if index <= self._written:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    still.append((index, fut))
            self._waiters = still

    def _set_ok(self, ok: bool) -> None:
        if ok != self.ok:
            self.ok = ok
            self._on_change()

    async def run(self) -> None:
        """Write what is queued, batch after batch, until cancelled; retry through outages."""
        failures = 0
        while True:
            batch = self._take_batch()
            if not batch:
                self._batch_done(batch)
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                results = await self._send(batch)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                for item in batch:
                    item.state = _QUEUED
                while self._size > self.max_queue and self._drop_oldest_conflatable():
                    pass
                failures += 1
                if failures == 1:
                    log.warning("redis bus %s: write failed (%s); retrying", self._url, exc)
                self.ok = False
                self._on_change()
                self._kick.clear()
                with contextlib.suppress(TimeoutError):
                    delay = backoff(failures, self._reconnect_delay, self._max_reconnect_delay)
                    async with asyncio.timeout(delay):
                        await self._kick.wait()
                continue
            except Exception:
                log.exception("redis bus %s: dropping a batch of %d", self._url, len(batch))
                self.dropped += len(batch)
                self._batch_done(batch)
                continue
            failures = 0
            per_call = script.MESSAGES_PER_CALL
            for start, result in zip(range(0, len(batch), per_call), results, strict=True):
                size = min(per_call, len(batch) - start)
                refused = script.refused(result, size)
                if refused:
                    log.error(
                        "redis bus %s: redis refused %d messages: %s", self._url, refused, result
                    )
                self.dropped += refused
                self.published += size - refused
            self._batch_done(batch)
            self._set_ok(True)

    async def _send(self, batch: list[_Item]) -> list[object]:
        per_call = script.MESSAGES_PER_CALL
        async with self._client.pipeline(transaction=False) as pipe:
            script.load(pipe)
            for start in range(0, len(batch), per_call):
                script.call(
                    pipe,
                    self._keys,
                    stream_length=self._history_size,
                    messages=batch[start : start + per_call],
                )
            self.pipelines += 1
            results: list[object] = await pipe.execute(raise_on_error=False)
        if isinstance(results[0], Exception):
            raise results[0]
        return results[1:]
