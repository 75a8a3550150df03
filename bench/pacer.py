"""Paces a producer at a set rate on an asyncio loop; the same algorithm as the JS servers.

Credit accrues at ``rate`` items per second; every timer fire emits the whole items owed, within a
time slice so the loop keeps serving I/O. When the producer falls behind by more than ``max_lag``
seconds of credit, the excess is shed and counted, so a saturated server runs flat out without
building a backlog. ``rate = inf`` means as fast as possible: emit for a slice, yield, repeat.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

PERIOD = 0.001
"""Seconds between timer fires while on schedule."""

SLICE = 0.002
"""Longest run of emits before yielding to the loop's I/O."""

MAX_LAG = 0.05
"""Seconds of owed items kept when behind; older ones are shed."""


class Pacer:
    def __init__(
        self, emit: Callable[[], None], on_batch: Callable[[], None] | None = None
    ) -> None:
        self._emit = emit
        self._on_batch = on_batch
        self.rate = 0.0
        self.emitted = 0
        self.shed = 0
        self._credit = 0.0
        self._last = 0.0
        self._handle: asyncio.Handle | None = None

    def set_rate(self, rate: float) -> None:
        """Items per second; 0 stops, ``math.inf`` runs flat out."""
        self.stop()
        self.rate = rate
        self._credit = 0.0
        self._last = time.monotonic()
        if rate > 0:
            self._handle = asyncio.get_running_loop().call_soon(self._fire)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        now = time.monotonic()
        if math.isinf(self.rate):
            credit = math.inf
        else:
            credit = self._credit + (now - self._last) * self.rate
            cap = max(1.0, self.rate * MAX_LAG)
            if credit > cap:
                self.shed += int(credit - cap)
                credit = cap
        self._last = now
        if credit >= 1 and self._on_batch is not None:
            self._on_batch()
        deadline = now + SLICE
        emit = self._emit
        n = 0
        while credit >= 1:
            emit()
            credit -= 1
            n += 1
            if not n & 7 and time.monotonic() >= deadline:
                break
        self.emitted += n
        self._credit = 0.0 if math.isinf(credit) else credit
        loop = asyncio.get_running_loop()
        if credit >= 1:
            self._handle = loop.call_soon(self._fire)
        else:
            self._handle = loop.call_later(PERIOD, self._fire)
