"""``SimFeed``: the simulated market as a ``Feed``, paced by a clock.

The market (``tickhub.feeds.sim.market``) knows nothing of time passing; this shell decides how
much simulated time each clock second is worth and how many ticks it may cost, and reports the
feed's status. Pacing and status change for reasons of their own (speed, throttling, what
``/health`` shows), apart from the market model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from tickhub.core import defaults
from tickhub.core.clock import Clock
from tickhub.core.model import Candle, FeedState, FeedStatus, Instrument
from tickhub.feeds.base import StatusSink, TickSink
from tickhub.feeds.sim.market import SimMarket
from tickhub.feeds.sim.pacing import MarketPacer
from tickhub.feeds.sim.past import past_bars
from tickhub.feeds.sim.session import default_start
from tickhub.runtime.clock import SystemClock

__all__ = ["SimFeed"]


class SimFeed:
    """The default feed: a ``SimMarket`` paced by a ``Clock``; streams every instrument.

    Simulated exchange time advances by ``speed`` session seconds per clock second (``speed=60``
    plays a market minute a second), skipping nights. Whatever the speed, each instrument emits at
    most about ``2 * tick_rate`` ticks per clock second: at high speed trades are merged into
    fewer, larger ones with the same volatility per simulated time (a token bucket per instrument,
    see ``SimMarket.advance_to``). The feed waits only through ``clock.sleep``, ``step`` clock
    seconds at a time. ``start`` defaults to ``default_start(clock.now())``: the sim always shows
    a live session, so a demo at night plays today's session from 09:15. ``status().last_tick_at``
    is clock time (``clock.now()``), the simulated exchange time is in ``extra``.
    ``subscribe``/``unsubscribe`` are accepted and ignored. ``history_sessions`` is how many
    sessions of minute bars :meth:`past` tells (``tickhub.feeds.sim.past``).
    """

    name = "sim"

    def __init__(
        self,
        instruments: Sequence[Instrument],
        *,
        seed: int = defaults.SIM_SEED,
        speed: float = defaults.SIM_SPEED,
        start: datetime | None = None,
        clock: Clock | None = None,
        tick_rate: float = defaults.SIM_TICK_RATE,
        index_symbol: str = defaults.SIM_INDEX_SYMBOL,
        step: float = defaults.SIM_STEP,
        history_sessions: int = 0,
    ) -> None:
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._seed = seed
        self._instruments = tuple(instruments)
        self._tick_rate = tick_rate
        self._index_symbol = index_symbol
        self.history_sessions = history_sessions
        begin = start if start is not None else default_start(self._clock.now())
        self._market = SimMarket(
            instruments, start=begin, seed=seed, tick_rate=tick_rate, index_symbol=index_symbol
        )
        self._pacer = MarketPacer(
            self._market, self._clock, speed=speed, step=step, tick_rate=tick_rate
        )
        self._state = FeedState.STARTING
        self._detail = "not started"
        self._last_tick_at: datetime | None = None

    @property
    def market(self) -> SimMarket:
        return self._market

    def past(self) -> dict[str, list[Candle]]:
        """The ``history_sessions`` sessions before the start, as closed 1m candles per symbol
        (oldest first), all before the first tick :meth:`run` produces."""
        return past_bars(
            self._instruments,
            start=self._market.now,
            sessions=self.history_sessions,
            seed=self._seed,
            tick_rate=self._tick_rate,
            index_symbol=self._index_symbol,
        )

    async def run(self, on_tick: TickSink, on_status: StatusSink) -> None:
        clock = self._clock
        self._report(FeedState.LIVE, f"simulated market, seed {self._seed}", on_status)
        try:
            async for _, ticks in self._pacer.batches():
                if ticks:
                    self._last_tick_at = clock.now()
                    for tick in ticks:
                        on_tick(tick)
        finally:
            self._report(FeedState.STOPPED, "stopped", on_status)

    def subscribe(self, instruments: Iterable[Instrument]) -> None:
        pass

    def unsubscribe(self, instruments: Iterable[Instrument]) -> None:
        pass

    def status(self) -> FeedStatus:
        return FeedStatus(
            self._state,
            self._detail,
            last_tick_at=self._last_tick_at,
            extra={
                "exchange_time": self._market.now.isoformat(),
                "instruments": len(self._market.symbols),
                "seed": self._seed,
                "speed": self._pacer.speed,
            },
        )

    def _report(self, state: FeedState, detail: str, on_status: StatusSink) -> None:
        self._state = state
        self._detail = detail
        on_status(self.status())
