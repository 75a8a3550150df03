"""Time as a dependency: logic never reads the wall clock, it is handed a ``Clock``.

The interface only; ``tickhub.runtime.clock`` has the real clock (``SystemClock``) and the one tests
and replays move by hand (``ManualClock``), both of which need an event loop to sleep on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """Where every component reads the time: ``now`` for what the market says, ``monotonic``
    for intervals, ``sleep`` for pacing. Implementations must never let ``monotonic`` go back."""

    def now(self) -> datetime:
        """Current UTC time, timezone-aware."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` of this clock have passed (at once when ``seconds <= 0``)."""
        ...
