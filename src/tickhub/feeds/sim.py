"""Simulated NSE market: the default feed, seeded and reproducible.

``SimMarket`` is the pure core: ``advance_to(t)`` moves simulated exchange time forward and returns
the ticks of that interval in timestamp order. It never reads a clock, so tests, replays and an
exchange emulator can drive it without asyncio. ``SimFeed`` is the thin asyncio shell that paces it
with an injected ``Clock``.

The model is deliberately simple (a demo and test source, not a research tool):

- **Session time.** The market trades 09:15-15:30 IST on weekdays (exchange holidays are ignored).
  When simulated time passes 15:30 the market rolls to the next weekday's 09:15: a new day whose
  ``prev_close`` is the last price, with volume back to 0 and a fresh open/high/low. A start outside
  a session moves to the next 09:15; a start inside one begins the day there (the day's counters
  start at the start time).
- **Prices.** Log prices follow a correlated random walk in session time: a market factor
  (~14.5 % a year) every stock loads on with a beta of 0.7-1.2, a banking factor for bank names,
  and idiosyncratic noise, for 20-32 % a year per stock. The market index (``index_symbol``) is the
  market factor with a little noise, ``NIFTY BANK`` adds the banking factor, other indices get a
  random beta. Every day opens with a small correlated gap (the variance of half an hour of
  trading). The first previous close is ``Instrument.last_price`` (1000 when unknown). Prices are
  rounded to the tick size (0.05 when the instrument has none) and are never below one tick.
- **Trades.** Every tick is a trade. Trades arrive as a Poisson process in session time:
  ``tick_rate`` a second for a fixed list of heavyweights, 30-90 % of that for other names, about
  one a second for indices. A trade's quantity is a lot multiple whose mean grows with the time
  since the previous trade, so day volume (millions of shares for heavyweights) does not depend on
  how many ticks are emitted. ``average_price`` is the running VWAP of the day's simulated trades.
- **Book.** Five levels a side, one tick apart, the last price on the best bid or the best offer;
  ``buy_quantity``/``sell_quantity`` drift with a slow random imbalance.
- **Indices** carry price, open/high/low and previous close only: no volume, no depth, no trade
  time, ``tradable`` false.
- **Reproducibility.** Everything is drawn from ``random.Random`` streams seeded from ``seed`` (one
  per instrument token, one per factor), never the global generator: the same seed, instruments,
  start and sequence of ``advance_to`` calls give exactly the same ticks.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal

from tickhub.core import defaults
from tickhub.core.clock import Clock
from tickhub.core.model import (
    IST,
    SESSION_CLOSE,
    SESSION_OPEN,
    Depth,
    DepthLevel,
    FeedState,
    FeedStatus,
    Instrument,
    Tick,
)
from tickhub.feeds.base import StatusSink, TickSink
from tickhub.runtime.clock import SystemClock

__all__ = [
    "SESSION_SECONDS",
    "SimFeed",
    "SimMarket",
    "add_session_time",
    "default_start",
    "session_start",
]

SESSION_SECONDS = 22_500.0
"""Length of one continuous session, 09:15-15:30."""

_SQRT_YEAR = math.sqrt(252 * SESSION_SECONDS)  # volatility is annualised over trading time
_MARKET_VOL = 0.145
_BANK_VOL = 0.12
_GAP_SECONDS = 1_800.0
_DEFAULT_PRICE = 1_000.0
_DEFAULT_TICK = 0.05
_INDEX_RATE = 1.0
_DEPTH_LEVELS = 5
_TURNOVER = 2e10  # rupees a day of a heavyweight
_BANK_INDEX = "NIFTY BANK"
_BANKS = frozenset(
    {
        "AUBANK",
        "AXISBANK",
        "BANDHANBNK",
        "BANKBARODA",
        "CANBK",
        "FEDERALBNK",
        "HDFCBANK",
        "ICICIBANK",
        "IDFCFIRSTB",
        "INDUSINDBK",
        "KOTAKBANK",
        "PNB",
        "SBIN",
    }
)
_HEAVYWEIGHTS = frozenset(
    {
        "AXISBANK",
        "BAJFINANCE",
        "BHARTIARTL",
        "HDFCBANK",
        "HINDUNILVR",
        "ICICIBANK",
        "INFY",
        "ITC",
        "KOTAKBANK",
        "LT",
        "M&M",
        "MARUTI",
        "RELIANCE",
        "SBIN",
        "SUNPHARMA",
        "TATAMOTORS",
        "TCS",
    }
)


# -- session calendar ---------------------------------------------------------------------------


def _open_of(day: date) -> datetime:
    return datetime.combine(day, SESSION_OPEN, IST)


def _close_of(day: date) -> datetime:
    return datetime.combine(day, SESSION_CLOSE, IST)


def _next_weekday(day: date) -> date:
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _ist(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"time must be timezone-aware: {t!r}")
    return t.astimezone(IST)


def session_start(t: datetime) -> datetime:
    """The first session instant at or after ``t``, in IST: ``t`` itself during a session."""
    t = _ist(t)
    day = t.date()
    if day.weekday() < 5 and t < _close_of(day):
        return max(t, _open_of(day))
    return _open_of(_next_weekday(day))


def default_start(now: datetime) -> datetime:
    """Where ``SimFeed`` starts when not told: the sim always shows a live session.

    During a session (09:15-15:30 IST on a weekday) it is ``now``; otherwise 09:15 IST of today, or
    of the next weekday at a weekend, so that a demo at night still sees a market moving.
    """
    t = _ist(now)
    day = t.date()
    if day.weekday() >= 5:
        return _open_of(_next_weekday(day))
    if _open_of(day) <= t < _close_of(day):
        return t
    return _open_of(day)


def add_session_time(t: datetime, seconds: float) -> datetime:
    """``t`` moved ``seconds`` of trading time forward, skipping nights and weekends.

    Passing 15:30 continues at the next weekday's 09:15; exactly 15:30 is still the same day.
    """
    if seconds <= 0:
        return t
    cur = _ist(t)
    while True:
        day = cur.date()
        close = _close_of(day)
        if day.weekday() < 5 and cur < close:
            cur = max(cur, _open_of(day))
            left = (close - cur).total_seconds()
            if seconds <= left:
                return cur + timedelta(seconds=seconds)
            seconds -= left
        cur = _open_of(_next_weekday(day))


# -- per-instrument state -----------------------------------------------------------------------


def _tick_ratio(tick: float) -> tuple[int, int]:
    """``tick`` as an exact ratio of integers: 0.05 -> (5, 100)."""
    exponent = Decimal(repr(tick)).normalize().as_tuple().exponent
    scale = 10**-exponent if isinstance(exponent, int) and exponent < 0 else 1
    return round(tick * scale), scale


class _Book:
    """Mutable simulation state of one instrument: latent price, day counters, order book."""

    __slots__ = (
        "book",
        "depth_size",
        "factor_b",
        "factor_m",
        "high",
        "imbalance",
        "last",
        "levels",
        "load_b",
        "load_m",
        "lot",
        "low",
        "open",
        "prev_close",
        "rate",
        "rng",
        "sigma",
        "steps",
        "symbol",
        "tau",
        "tick",
        "tick_den",
        "tick_num",
        "token",
        "tokens",
        "tradable",
        "trade_tau",
        "turnover",
        "volume",
        "volume_rate",
        "x",
    )

    def __init__(self, inst: Instrument, seed: int, tick_rate: float, index_symbol: str) -> None:
        # One stream per token: an instrument's path does not depend on which others are simulated.
        rng = random.Random(f"{seed}:{inst.instrument_token}")
        self.rng = rng
        self.symbol = inst.symbol
        self.token = inst.instrument_token
        self.tradable = inst.tradable
        self.tick = inst.tick_size if inst.tick_size > 0 else _DEFAULT_TICK
        self.tick_num, self.tick_den = _tick_ratio(self.tick)
        self.lot = max(1, inst.lot_size)
        symbol = inst.tradingsymbol
        bank = 0.0
        if not self.tradable:
            beta, idio, liquidity = 1.0, 0.06, 0.0
            if symbol == index_symbol:
                idio = 0.02
            elif symbol == _BANK_INDEX:
                bank, idio = _BANK_VOL, 0.03
            else:
                beta = rng.uniform(0.8, 1.1)
            self.rate = min(tick_rate, _INDEX_RATE)
        else:
            liquidity = 1.0 if symbol in _HEAVYWEIGHTS else rng.uniform(0.3, 0.9)
            total = rng.uniform(0.20, 0.32)
            beta = rng.uniform(0.7, 1.2)
            if symbol in _BANKS:
                bank = _BANK_VOL * rng.uniform(1.0, 1.3)
            idio = math.sqrt(max(total**2 - (beta * _MARKET_VOL) ** 2 - bank**2, 0.08**2))
            self.rate = tick_rate * liquidity
        self.load_m = beta * _MARKET_VOL / _SQRT_YEAR
        self.load_b = bank / _SQRT_YEAR
        self.sigma = idio / _SQRT_YEAR

        self.steps = self.to_steps(inst.last_price if inst.last_price > 0 else _DEFAULT_PRICE)
        self.prev_close = self.open = self.high = self.low = self.last = self.price(self.steps)
        self.x = math.log(self.prev_close)
        self.tau = self.trade_tau = self.factor_m = self.factor_b = 0.0
        self.volume = 0
        self.turnover = 0.0
        day_volume = _TURNOVER * liquidity**2 * rng.uniform(0.7, 1.3) / self.prev_close
        day_volume = max(day_volume, 1_000.0 * self.lot) if self.tradable else 0.0
        self.volume_rate = day_volume / SESSION_SECONDS
        self.depth_size = self.volume_rate * 8.0  # a level holds ~8 s of flow
        self.book = day_volume * 0.06
        self.imbalance = 0.0
        self.tokens = 0.0
        self.levels: dict[int, DepthLevel] = {}

    def to_steps(self, price: float) -> int:
        """``price`` in whole ticks, at least one."""
        steps = int(price / self.tick + 0.5)
        return steps if steps > 1 else 1

    def price(self, steps: int) -> float:
        # An exact integer ratio gives the float nearest the decimal price: no rounding residue.
        return steps * self.tick_num / self.tick_den

    def move(self, tau: float, m: float, b: float) -> float:
        """Bring the latent price to session time ``tau`` given the factor values there."""
        x = self.x + self.load_m * (m - self.factor_m) + self.load_b * (b - self.factor_b)
        dt = tau - self.tau
        if dt > 0.0:
            x += self.sigma * math.sqrt(dt) * self.rng.gauss()
        self.x, self.tau, self.factor_m, self.factor_b = x, tau, m, b
        self.steps = steps = self.to_steps(math.exp(x))
        return steps * self.tick_num / self.tick_den

    def open_day(self, tau: float, m: float, b: float) -> None:
        price = self.move(tau, m, b)
        self.open = self.high = self.low = self.last = price
        self.volume = 0
        self.turnover = 0.0
        self.trade_tau = tau

    def arrivals(self, dt: float, cap: int) -> list[float]:
        """Offsets in ``[0, dt)`` of this interval's trades, at most ``cap`` (< 0: no cap)."""
        rng = self.rng
        lam = self.rate * dt
        if lam < 30.0:  # Knuth's method; a normal approximation beyond
            limit = math.exp(-lam)
            n = 0
            p = rng.random()
            while p > limit:
                n += 1
                p *= rng.random()
        else:
            n = max(0, int(lam + math.sqrt(lam) * rng.gauss() + 0.5))
        if 0 <= cap < n:
            # Thinned, not truncated: the kept trades stay spread over the whole interval.
            n = cap
        r = rng.random
        return [r() * dt for _ in range(n)]

    def trade(self, ts: datetime, tau: float, m: float, b: float) -> Tick:
        price = self.move(tau, m, b)
        self.last = price
        if price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        if not self.tradable:
            return Tick(
                symbol=self.symbol,
                instrument_token=self.token,
                timestamp=ts,
                price=price,
                open=self.open,
                high=self.high,
                low=self.low,
                prev_close=self.prev_close,
                tradable=False,
            )
        rng = self.rng
        lot = self.lot
        mean = self.volume_rate * (tau - self.trade_tau)
        self.trade_tau = tau
        quantity = int(mean * -math.log(1.0 - rng.random()) / lot + 0.5) * lot
        if quantity < lot:
            quantity = lot
        self.volume += quantity
        self.turnover += price * quantity
        imbalance = self.imbalance + (rng.random() - 0.5) * 0.2
        if imbalance > 0.6:
            imbalance = 0.6
        elif imbalance < -0.6:
            imbalance = -0.6
        self.imbalance = imbalance
        buy = int(self.book * (1.0 + imbalance) / lot) * lot + lot
        sell = int(self.book * (1.0 - imbalance) / lot) * lot + lot
        return Tick(
            symbol=self.symbol,
            instrument_token=self.token,
            timestamp=ts,
            price=price,
            volume=self.volume,
            last_quantity=quantity,
            average_price=round(self.turnover / self.volume, 2),
            buy_quantity=buy,
            sell_quantity=sell,
            open=self.open,
            high=self.high,
            low=self.low,
            prev_close=self.prev_close,
            last_trade_time=ts,
            depth=self.depth(),
        )

    def new_level(self, steps: int, rank: int) -> DepthLevel:
        """A fresh queue at ``steps`` ticks, ``rank`` levels from the touch (deeper is larger)."""
        rng = self.rng
        lot = self.lot
        size = self.depth_size * (1.0 + 0.3 * rank) * (0.2 + 1.6 * rng.random())
        lots = int(size / lot) + 1
        orders = 1 + int(rng.random() * (lots if lots < 30 else 30))
        return DepthLevel(steps * self.tick_num / self.tick_den, lots * lot, orders)

    def depth(self) -> Depth:
        # Queues live at prices, not ranks: when the price moves, levels it leaves keep their
        # quantities and only new prices get new queues (cheap, and how a book behaves).
        rng = self.rng
        bid = self.steps if rng.random() < 0.5 else self.steps - 1  # hit the bid / lifted the offer
        levels = self.levels
        if len(levels) > 8 * _DEPTH_LEVELS:
            reach = 2 * _DEPTH_LEVELS
            self.levels = levels = {p: v for p, v in levels.items() if abs(p - bid) <= reach}
        for _ in range(2):  # some churn at every trade
            rank = int(rng.random() * 2 * _DEPTH_LEVELS) - _DEPTH_LEVELS + 1
            at = bid + rank
            if at > 0:
                levels[at] = self.new_level(at, abs(rank) if rank <= 0 else rank - 1)
        buy: list[DepthLevel] = []
        sell: list[DepthLevel] = []
        for k in range(_DEPTH_LEVELS):
            at = bid - k
            if at > 0:
                level = levels.get(at)
                if level is None:
                    level = levels[at] = self.new_level(at, k)
                buy.append(level)
            at = bid + 1 + k
            level = levels.get(at)
            if level is None:
                level = levels[at] = self.new_level(at, k)
            sell.append(level)
        return Depth(tuple(buy), tuple(sell))


# -- the pure core ------------------------------------------------------------------------------


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
        index_symbol: str = "NIFTY 50",
    ) -> None:
        if not tick_rate > 0:
            raise ValueError(f"tick_rate must be positive: {tick_rate!r}")
        self._books = [_Book(i, seed, tick_rate, index_symbol) for i in instruments]
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
        t = _ist(t)
        capped = tick_budget is not None
        if tick_budget is not None:
            burst = self._burst
            for book in self._books:
                book.tokens = min(book.tokens, burst) + tick_budget
        ticks: list[Tick] = []
        while t > self._now:
            close = _close_of(self._day)
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
        self._day = _next_weekday(self._day)
        self._now = _open_of(self._day)
        self._open_day()


# -- the feed -----------------------------------------------------------------------------------


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
    ``subscribe``/``unsubscribe`` are accepted and ignored.
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
        index_symbol: str = "NIFTY 50",
        step: float = 0.1,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive: {speed!r}")
        if not step > 0:
            raise ValueError(f"step must be positive: {step!r}")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._seed = seed
        self._speed = speed
        self._step = step
        self._max_rate = 2.0 * tick_rate
        begin = start if start is not None else default_start(self._clock.now())
        self._market = SimMarket(
            instruments, start=begin, seed=seed, tick_rate=tick_rate, index_symbol=index_symbol
        )
        self._state = FeedState.STARTING
        self._detail = "not started"
        self._last_tick_at: datetime | None = None

    @property
    def market(self) -> SimMarket:
        return self._market

    async def run(self, on_tick: TickSink, on_status: StatusSink) -> None:
        clock = self._clock
        market = self._market
        last = clock.monotonic()
        self._report(FeedState.LIVE, f"simulated market, seed {self._seed}", on_status)
        try:
            while True:
                await clock.sleep(self._step)
                now = clock.monotonic()
                real = now - last
                if real <= 0:
                    continue
                last = now
                target = add_session_time(market.now, real * self._speed)
                ticks = market.advance_to(target, tick_budget=self._max_rate * real)
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
                "speed": self._speed,
            },
        )

    def _report(self, state: FeedState, detail: str, on_status: StatusSink) -> None:
        self._state = state
        self._detail = detail
        on_status(self.status())
