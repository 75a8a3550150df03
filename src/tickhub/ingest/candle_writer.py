"""Closed candles to the store, in batches, off the event loop.

Every closed candle of every interval is persisted (that is what ``GET /candles`` serves after a
restart), but a store write per candle on the hot path would cost the event loop a transaction
for each of hundreds of candles a minute. So the ingest only appends a closed candle to a bounded
queue (:meth:`CandleWriter.add`, O(1)); every ``period`` seconds :meth:`run` takes up to ``batch``
of them and writes them in one transaction on a thread of its own.

Overflow policy: the queue holds at most ``queue_size`` candles. Past it the *oldest* waiting
candle is dropped (the newest are what a chart shows first), counted in :attr:`dropped`, and
logged once per overflow episode. A failed write keeps its batch at the head of the queue (the
store may be back by the next period), logged once until a write succeeds again. :meth:`close`
writes what is left, after the write in flight, before the store closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from tickhub.core import defaults
from tickhub.core.model import Candle
from tickhub.store import CandleStore

__all__ = ["CandleWriter"]

log = logging.getLogger(__name__)


class CandleWriter:
    """The queue of closed candles waiting for ``store``, and the loop that writes them."""

    def __init__(
        self,
        store: CandleStore,
        *,
        queue_size: int = defaults.CANDLE_QUEUE,
        period: float = defaults.CANDLE_WRITE_PERIOD,
        batch: int = defaults.CANDLE_WRITE_BATCH,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        if not period > 0:
            raise ValueError(f"period must be positive, got {period!r}")
        self.store = store
        self.queue_size = queue_size
        self.period = period
        self.batch = batch
        self.written = 0
        self.dropped = 0
        self.failures = 0
        self._pending: deque[Candle] = deque()
        self._overflowing = False
        self._failing = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="candle-writer")
        self._closed = False

    @property
    def pending(self) -> int:
        """Closed candles waiting to be written."""
        return len(self._pending)

    def add(self, candle: Candle) -> None:
        """Queue one closed candle (never blocks; drops the oldest waiting one when full)."""
        if self._closed:
            return
        pending = self._pending
        pending.append(candle)
        if len(pending) > self.queue_size:
            pending.popleft()
            self.dropped += 1
            self._overflowed()

    def _overflowed(self) -> None:
        if not self._overflowing:
            self._overflowing = True
            log.warning(
                "candle store queue full (%d candles): dropping the oldest waiting ones "
                "(the store is slower than the feed or unavailable)",
                self.queue_size,
            )

    def extend(self, candles: Iterable[Candle]) -> None:
        """Queue many closed candles at once (the same policy as :meth:`add`)."""
        if self._closed:
            return
        pending = self._pending
        pending.extend(candles)
        over = len(pending) - self.queue_size
        if over > 0:
            for _ in range(over):
                pending.popleft()
            self.dropped += over
            self._overflowed()

    async def run(self) -> None:
        """Write the queue every ``period`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.period)
            await self.write_pending()

    async def write_pending(self) -> None:
        """Write what is queued now, ``batch`` candles per transaction, on the writer's thread;
        returns when written, or at the first batch that fails (kept for the next try)."""
        loop = asyncio.get_running_loop()
        while self._pending and not self._closed:
            batch = self._take()
            try:
                await loop.run_in_executor(self._executor, self.store.save_candles, batch)
            except Exception:
                self._failed(batch)
                return
            self._wrote(batch)

    def close(self) -> None:
        """Wait for the write in flight, then write what is left (synchronously: the service
        is stopping, and the store closes next). Further candles are not queued."""
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        while self._pending:
            batch = self._take()
            try:
                self.store.save_candles(batch)
            except Exception:
                self._failed(batch)
                log.error("candle store: %d closed candles not written at shutdown", self.pending)
                return
            self._wrote(batch)

    def _take(self) -> list[Candle]:
        pending = self._pending
        return [pending.popleft() for _ in range(min(self.batch, len(pending)))]

    def _wrote(self, batch: list[Candle]) -> None:
        self.written += len(batch)
        if self._failing:
            log.info("candle store writes succeed again")
        self._failing = False
        if len(self._pending) < self.queue_size // 2:
            self._overflowing = False

    def _failed(self, batch: list[Candle]) -> None:
        self.failures += 1
        if not self._failing:
            self._failing = True
            log.exception("candle store write failed; %d candles kept to retry", len(batch))
        room = self.queue_size - len(self._pending)
        keep = batch[-room:] if room > 0 else []
        self.dropped += len(batch) - len(keep)
        self._pending.extendleft(reversed(keep))
