"""Paces a producer at a set rate on an asyncio loop; the same algorithm as the JS servers.

Credit accrues at ``rate`` items per second; every timer fire emits the whole items owed, within a
time slice so the loop keeps serving I/O. When the producer falls behind by more than ``max_lag``
seconds of credit, the excess is shed and counted, so a saturated server runs flat out without
building a backlog. ``rate = inf`` means as fast as possible: emit for a slice, yield, repeat.

Bursts (``burst = K > 1``), shaped like a Kite binary frame that carries the ticks of many
instruments: items come in frames of K, at ``rate / K`` frames per second, and the K items of a
frame are emitted back to back in one timer callback (one loop turn), followed by ``on_frame``.
Credit, shedding and the time slice then count whole frames; ``emitted`` and ``shed`` still
count items. ``burst = 1`` is the steady pacing above, unchanged.
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
        self,
        emit: Callable[[], None],
        on_batch: Callable[[], None] | None = None,
        on_frame: Callable[[], None] | None = None,
    ) -> None:
        self._emit = emit
        self._on_batch = on_batch
        self._on_frame = on_frame
        self.rate = 0.0
        self.burst = 1
        self.emitted = 0
        self.frames = 0
        self.shed = 0
        self._credit = 0.0
        self._last = 0.0
        self._handle: asyncio.Handle | None = None

    def set_rate(self, rate: float, burst: int = 1) -> None:
        """Items per second; 0 stops, ``math.inf`` runs flat out; in frames of ``burst`` items."""
        self.stop()
        self.rate = rate
        self.burst = max(1, int(burst))
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
        k = self.burst
        if math.isinf(self.rate):
            credit = math.inf
        else:
            frames_per_s = self.rate / k
            credit = self._credit + (now - self._last) * frames_per_s
            cap = max(1.0, frames_per_s * MAX_LAG)
            if credit > cap:
                self.shed += int(credit - cap) * k
                credit = cap
        self._last = now
        if credit >= 1 and self._on_batch is not None:
            self._on_batch()
        deadline = now + SLICE
        emit, on_frame = self._emit, self._on_frame
        n = 0  # frames
        if k == 1 and on_frame is None:
            while credit >= 1:
                emit()
                credit -= 1
                n += 1
                if not n & 7 and time.monotonic() >= deadline:
                    break
        else:
            stride = max(1, 8 // k)  # check the clock about every 8 items, between frames
            while credit >= 1:
                for _ in range(k):
                    emit()
                if on_frame is not None:
                    on_frame()
                credit -= 1
                n += 1
                if not n % stride and time.monotonic() >= deadline:
                    break
        self.emitted += n * k
        self.frames += n
        self._credit = 0.0 if math.isinf(credit) else credit
        loop = asyncio.get_running_loop()
        if credit >= 1:
            self._handle = loop.call_soon(self._fire)
        else:
            self._handle = loop.call_later(PERIOD, self._fire)
