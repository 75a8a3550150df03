"""The simulated market moved in step with a clock: shared by the sim feed and the Kite emulator.

Every ``step`` seconds of the clock the market advances by ``speed`` times the time that passed
(in session time: nights and weekends are skipped), with at most twice the nominal tick rate per
real second, so that a paused process (a debugger, a slow CI machine) does not flood its clients
when it resumes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from tickhub.core import defaults
from tickhub.core.clock import Clock
from tickhub.core.model import Tick
from tickhub.feeds.sim.market import SimMarket
from tickhub.feeds.sim.session import add_session_time


class MarketPacer:
    """Contract: :meth:`batches` yields ``(monotonic now, ticks)`` after each ``step`` of the
    clock in which the market moved (an empty list when no trade fell in it); it runs until
    cancelled. ``speed`` and ``step`` must be positive (``ValueError`` otherwise)."""

    __slots__ = ("_clock", "_max_rate", "_speed", "_step", "market")

    def __init__(
        self,
        market: SimMarket,
        clock: Clock,
        *,
        speed: float = defaults.SIM_SPEED,
        step: float = defaults.SIM_STEP,
        tick_rate: float = defaults.SIM_TICK_RATE,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive: {speed!r}")
        if not step > 0:
            raise ValueError(f"step must be positive: {step!r}")
        self.market = market
        self._clock = clock
        self._speed = speed
        self._step = step
        self._max_rate = 2.0 * tick_rate

    @property
    def speed(self) -> float:
        return self._speed

    async def batches(self) -> AsyncIterator[tuple[float, list[Tick]]]:
        clock = self._clock
        last = clock.monotonic()
        while True:
            await clock.sleep(self._step)
            now = clock.monotonic()
            real = now - last
            if real <= 0:
                continue
            last = now
            market = self.market
            target = add_session_time(market.now, real * self._speed)
            yield now, market.advance_to(target, tick_budget=self._max_rate * real)
