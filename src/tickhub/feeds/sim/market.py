"""The simulated market, synchronous and clock-free: many instruments on shared factors.

``SimMarket.advance_to(t)`` moves simulated exchange time forward and returns the ticks of that
interval in timestamp order. It never reads a clock, so tests, replays and an exchange emulator can
drive it without asyncio; ``SimFeed`` (``tickhub.feeds.sim.feed``) paces it with a clock.

What the market owns, beyond its instruments (``tickhub.feeds.sim.instrument``):

- **Days.** When simulated time passes 15:30 the market rolls to the next weekday's 09:15
  (``tickhub.feeds.sim.session``): a new day whose ``prev_close`` is the last price, with volume
  back to 0 and a fresh open/high/low. A start outside a session moves to the next 09:15; a start
  inside one begins the day there (the day's counters start at the start time). Every day opens
  with a small correlated gap (the variance of half an hour of trading).
- **Factors.** The market and banking factors, standard Brownian motions in session seconds that
  every instrument loads on, and the merge of all instruments' trades into one timeline.
- **Reproducibility.** Everything is drawn from ``random.Random`` streams seeded from ``seed`` (one
  per instrument token, one per factor), never the global generator: the same seed, instruments,
  start and sequence of ``advance_to`` calls give exactly the same ticks.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from tickhub.core import defaults
from tickhub.core.model import Instrument, Tick
from tickhub.feeds.sim.instrument import SimInstrument
from tickhub.feeds.sim.session import (
    as_ist,
    next_weekday,
    session_close,
    session_open,
    session_start,
)

__all__ = ["SimMarket"]

_GAP_SECONDS = 1_800.0  # session seconds of factor variance a night adds (the open gap)


class SimMarket:
    """The simulated market, synchronous and clock-free: drive it with ``advance_to``.

    ``start`` is moved to the first session instant at or after it. ``tick_rate`` is the mean
    number of trades a simulated second of a heavyweight.
    """

    def __init__(
        self,
        instruments: Sequence[Instrument],
        *,
        start: datetime,
        seed: int = defaults.SIM_SEED,
        tick_rate: float = defaults.SIM_TICK_RATE,
        index_symbol: str = defaults.SIM_INDEX_SYMBOL,
    ) -> None:
        if not tick_rate > 0:
            raise ValueError(f"tick_rate must be positive: {tick_rate!r}")
        self._books = [SimInstrument(i, seed, tick_rate, index_symbol) for i in instruments]
        self._market_rng = random.Random(f"{seed}:market")
        self._bank_rng = random.Random(f"{seed}:bank")
        self._has_bank = any(book.load_b for book in self._books)
        self._burst = max(1.0, tick_rate)
        self._now = session_start(start)
        self._day = self._now.date()
        self._tau = 0.0  # session seconds since start, plus a virtual gap every night
        self._factor_tau = 0.0
        self._m = 0.0  # market factor, a standard Brownian motion in session seconds
        self._b = 0.0  # banking factor, likewise
        self._open_day()

    @property
    def now(self) -> datetime:
        """Simulated exchange time (IST) up to which ticks have been produced."""
        return self._now

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(book.symbol for book in self._books)

    def advance_to(self, t: datetime, *, tick_budget: float | None = None) -> list[Tick]:
        """Move simulated time to ``t`` and return the ticks of ``(now, t]`` in timestamp order.

        A ``t`` at or before ``now`` returns nothing. Passing 15:30 rolls to the next weekday's
        session (a ``t`` in the night leaves ``now`` at that next 09:15).

        ``tick_budget`` throttles output for fast replays: each instrument gets that many more
        ticks to spend (unused budget carries over, up to ``max(1, tick_rate)``); when more trades
        than it can afford fall in the interval, fewer, larger trades are emitted instead. Volume
        and volatility per simulated time stay the same. ``None`` emits every trade.
        """
        t = as_ist(t)
        capped = tick_budget is not None
        if tick_budget is not None:
            burst = self._burst
            for book in self._books:
                book.tokens = min(book.tokens, burst) + tick_budget
        ticks: list[Tick] = []
        while t > self._now:
            close = session_close(self._day)
            if self._now >= close:
                self._roll()
            else:
                self._simulate(min(t, close), ticks, capped)
        return ticks

    def _simulate(self, end: datetime, out: list[Tick], capped: bool) -> None:
        start = self._now
        dt = (end - start).total_seconds()
        base = self._tau
        books = self._books
        arrivals: list[tuple[float, int]] = []
        for i, book in enumerate(books):
            offsets = book.arrivals(dt, int(book.tokens) if capped else -1)
            if capped:
                book.tokens -= len(offsets)
            arrivals.extend((offset, i) for offset in offsets)
        arrivals.sort()

        gauss_m = self._market_rng.gauss
        gauss_b = self._bank_rng.gauss
        has_bank = self._has_bank
        m, b, factor_tau = self._m, self._b, self._factor_tau
        append = out.append
        for offset, i in arrivals:
            tau = base + offset
            if tau > factor_tau:
                root = math.sqrt(tau - factor_tau)
                m += root * gauss_m()
                if has_bank:
                    b += root * gauss_b()
                factor_tau = tau
            append(books[i].trade(start + timedelta(seconds=offset), tau, m, b))
        self._m, self._b, self._factor_tau = m, b, factor_tau
        self._tau = base + dt
        self._now = end

    def _factors_to(self, tau: float) -> None:
        if tau > self._factor_tau:
            root = math.sqrt(tau - self._factor_tau)
            self._m += root * self._market_rng.gauss()
            if self._has_bank:
                self._b += root * self._bank_rng.gauss()
            self._factor_tau = tau

    def _open_day(self) -> None:
        self._tau += _GAP_SECONDS
        self._factors_to(self._tau)
        for book in self._books:
            book.open_day(self._tau, self._m, self._b)

    def _roll(self) -> None:
        for book in self._books:
            book.prev_close = book.last
        self._day = next_weekday(self._day)
        self._now = session_open(self._day)
        self._open_day()
