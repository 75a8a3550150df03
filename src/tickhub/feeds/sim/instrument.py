"""One simulated instrument: its price process, its trades and volume, its order book.

The model is deliberately simple (a demo and test source, not a research tool):

- **Prices.** Log prices follow a correlated random walk in session time: a market factor
  (~14.5 % a year) every stock loads on with a beta of 0.7-1.2, a banking factor for bank names,
  and idiosyncratic noise, for 20-32 % a year per stock. The market index (``index_symbol``) is the
  market factor with a little noise, ``NIFTY BANK`` adds the banking factor, other indices get a
  random beta. The first previous close is ``Instrument.last_price`` (1000 when unknown). Prices
  are rounded to the tick size (0.05 when the instrument has none) and are never below one tick.
- **Trades.** Every tick is a trade. Trades arrive as a Poisson process in session time:
  ``tick_rate`` a second for a fixed list of heavyweights, 30-90 % of that for other names, about
  one a second for indices. A trade's quantity is a lot multiple whose mean grows with the time
  since the previous trade, so day volume (millions of shares for heavyweights) does not depend on
  how many ticks are emitted. ``average_price`` is the running VWAP of the day's simulated trades.
- **Book.** Five levels a side, one tick apart, the last price on the best bid or the best offer;
  ``buy_quantity``/``sell_quantity`` drift with a slow random imbalance.
- **Indices** carry price, open/high/low and previous close only: no volume, no depth, no trade
  time, ``tradable`` false.

The factors are the market's (``tickhub.feeds.sim.market``): an instrument is told their values at
each trade. Each instrument draws from its own ``random.Random`` stream, seeded from the seed and
its token, so its path does not depend on which other instruments are simulated; the order of the
draws is part of the reproducibility contract (the same seed gives the same ticks).
"""

from __future__ import annotations

import math
import random
from datetime import datetime
from decimal import Decimal

from tickhub.core.model import Depth, DepthLevel, Instrument, Tick
from tickhub.feeds.sim.session import SESSION_SECONDS

__all__ = ["SimInstrument"]

_SQRT_YEAR = math.sqrt(252 * SESSION_SECONDS)  # volatility is annualised over trading time
_MARKET_VOL = 0.145
_BANK_VOL = 0.12
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


def _tick_ratio(tick: float) -> tuple[int, int]:
    """``tick`` as an exact ratio of integers: 0.05 -> (5, 100)."""
    exponent = Decimal(repr(tick)).normalize().as_tuple().exponent
    scale = 10**-exponent if isinstance(exponent, int) and exponent < 0 else 1
    return round(tick * scale), scale


class SimInstrument:
    """Mutable simulation state of one instrument: latent price, day counters, order book.

    The market calls it with session time ``tau`` (seconds, never decreasing) and the factor values
    ``m`` (market) and ``b`` (banking) at that time; every call draws from the instrument's own
    stream, so the calls and their order decide the ticks.
    """

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
        """The price of ``steps`` ticks."""
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
        """Start a day at ``tau``: the gap moves the price, the day's counters start from it."""
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
        """One trade at exchange time ``ts`` (session time ``tau``): the tick it makes."""
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
        """The book after a trade: five levels a side around the last price."""
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
