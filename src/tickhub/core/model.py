"""Domain objects shared by every layer: instruments, ticks, candles, feed status.

Pure data (stdlib only). Prices are floats already rounded to the instrument's tick size, as the
exchange quotes them; money arithmetic that must not drift (portfolio) converts to ``Decimal``.
Every time is a timezone-aware ``datetime``; exchange-local views use ``IST``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")
"""The exchange time zone of NSE/BSE."""

SESSION_OPEN = time(9, 15)
"""NSE cash-market continuous session open (exchange time)."""

SESSION_CLOSE = time(15, 30)
"""NSE cash-market close (exchange time)."""


@dataclass(frozen=True, slots=True)
class Instrument:
    """One row of a Kite-format instruments dump.

    ``key`` (``EXCHANGE:TRADINGSYMBOL``) identifies an instrument; tokens can be reused by the
    exchange after a derivative expires, so they are never the only key.
    """

    instrument_token: int
    exchange_token: int
    tradingsymbol: str
    name: str
    exchange: str
    segment: str
    instrument_type: str
    tick_size: float = 0.05
    lot_size: int = 1
    last_price: float = 0.0
    expiry: date | None = None
    strike: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.tradingsymbol}"

    @property
    def symbol(self) -> str:
        """The name clients use on the wire (``RELIANCE``, ``NIFTY 50``)."""
        return self.tradingsymbol

    @property
    def tradable(self) -> bool:
        return self.segment != "INDICES"


@dataclass(frozen=True, slots=True)
class DepthLevel:
    price: float
    quantity: int
    orders: int


@dataclass(frozen=True, slots=True)
class Depth:
    """Five best bids (``buy``) and offers (``sell``), best first."""

    buy: tuple[DepthLevel, ...] = ()
    sell: tuple[DepthLevel, ...] = ()


@dataclass(frozen=True, slots=True)
class Tick:
    """One market update for one instrument: full state, not a delta (as Kite quote/full packets).

    ``volume`` is the cumulative traded volume of the day; per-candle volume is derived from its
    differences. ``timestamp`` is the exchange timestamp, timezone-aware.
    """

    symbol: str
    instrument_token: int
    timestamp: datetime
    price: float
    volume: int = 0
    last_quantity: int = 0
    average_price: float = 0.0
    buy_quantity: int = 0
    sell_quantity: int = 0
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    prev_close: float = 0.0
    last_trade_time: datetime | None = None
    oi: int = 0
    depth: Depth | None = None
    tradable: bool = True

    @property
    def change(self) -> float:
        """Absolute change against the previous close (0 when it is unknown)."""
        if not self.prev_close:
            return 0.0
        return round(self.price - self.prev_close, 4)

    @property
    def change_percent(self) -> float:
        if not self.prev_close:
            return 0.0
        return round((self.price - self.prev_close) * 100.0 / self.prev_close, 4)


class Interval(str, Enum):
    """Candle intervals users chart. Values are the wire names."""

    M1 = "1m"
    M3 = "3m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    D1 = "1d"

    @property
    def seconds(self) -> int:
        return _INTERVAL_SECONDS[self]

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    @classmethod
    def parse(cls, value: str) -> Interval:
        """Parse a wire name; raises ``ValueError`` naming the bad value."""
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(i.value for i in cls)
            raise ValueError(f"unknown interval: {value!r} (allowed: {allowed})") from None


_INTERVAL_SECONDS = {
    Interval.M1: 60,
    Interval.M3: 180,
    Interval.M5: 300,
    Interval.M15: 900,
    Interval.M30: 1800,
    Interval.H1: 3600,
    Interval.D1: 86400,
}


@dataclass(frozen=True, slots=True)
class Candle:
    """OHLCV for one symbol, one interval, one bucket starting at ``start`` (exchange time).

    ``closed`` is true only on the final update of a bucket.
    """

    symbol: str
    interval: Interval
    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int
    closed: bool = False


class FeedState(str, Enum):
    """What clients see in ``status`` messages and ``/health`` as ``feed``."""

    STARTING = "starting"
    LIVE = "live"
    STALE = "stale"
    RECONNECTING = "reconnecting"
    MARKET_CLOSED = "market_closed"
    AUTH_FAILED = "auth_failed"
    STOPPED = "stopped"
    FINISHED = "finished"
    """A replay (without loop) played its whole file: nothing more comes, and that is healthy."""


@dataclass(frozen=True, slots=True)
class FeedStatus:
    state: FeedState
    detail: str = ""
    last_tick_at: datetime | None = None
    reconnects: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    def describe(self) -> str:
        """The state, then the detail when it adds something (a log line's words: a detail
        that only repeats the state, as ``stopped``, is not said twice)."""
        detail = self.detail.strip()
        if not detail or detail == self.state.value:
            return self.state.value
        return f"{self.state.value} ({detail})"
