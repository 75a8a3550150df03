"""The ``data`` payloads of the four endpoints as frozen dataclasses (docs/protocol.md §6).

Reading is lenient on purpose: a field the server leaves out reads as its empty value (0,
``None``, an empty tuple) and unknown fields are ignored, so a newer server that adds fields, or
an older one that lacks some, never makes the client fail. The message keeps the ``raw`` dict for
anything these types do not name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "Alert",
    "AlertState",
    "Analysis",
    "Bollinger",
    "Candle",
    "DepthLevel",
    "Indicators",
    "Macd",
    "Pattern",
    "Pnl",
    "PortfolioTotals",
    "Position",
    "PositionState",
    "Quote",
    "RiskMetrics",
    "Tick",
    "Trade",
    "Warmup",
    "parse_time",
]

Raw = Mapping[str, Any]


# --- lenient readers --------------------------------------------------------------------------


def _obj(raw: Raw, key: str) -> Raw:
    value = raw.get(key)
    return value if isinstance(value, Mapping) else {}


def _list(raw: Raw, key: str) -> list[Raw]:
    value = raw.get(key)
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _num(raw: Raw, key: str) -> float:
    value = raw.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _opt_num(raw: Raw, key: str) -> float | None:
    value = raw.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(raw: Raw, key: str) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)


def _opt_int(raw: Raw, key: str) -> int | None:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _set(raw: Raw) -> tuple[str, ...] | None:
    value = raw.get("indicators")
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _str(raw: Raw, key: str) -> str:
    value = raw.get(key)
    return value if isinstance(value, str) else ""


def _opt_str(raw: Raw, key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


def _bool(raw: Raw, key: str) -> bool:
    return raw.get(key) is True


def parse_time(value: object) -> datetime | None:
    """``2025-01-27T10:30:00.000Z`` as an aware UTC datetime; ``None`` for anything else."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _time(raw: Raw, key: str) -> datetime | None:
    return parse_time(raw.get(key))


# --- /ws/stream -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tick:
    """``tick_data``: one trade and the day's statistics (indices: volumes and quantities 0)."""

    price: float
    volume: int
    change: float
    change_percent: float
    open: float
    high: float
    low: float
    prev_close: float
    last_quantity: int
    average_price: float
    buy_quantity: int
    sell_quantity: int
    exchange_timestamp: datetime | None

    @classmethod
    def parse(cls, raw: Raw) -> Tick:
        return cls(**_tick_fields(raw))


def _tick_fields(raw: Raw) -> dict[str, Any]:
    return {
        "price": _num(raw, "price"),
        "volume": _int(raw, "volume"),
        "change": _num(raw, "change"),
        "change_percent": _num(raw, "change_percent"),
        "open": _num(raw, "open"),
        "high": _num(raw, "high"),
        "low": _num(raw, "low"),
        "prev_close": _num(raw, "prev_close"),
        "last_quantity": _int(raw, "last_quantity"),
        "average_price": _num(raw, "average_price"),
        "buy_quantity": _int(raw, "buy_quantity"),
        "sell_quantity": _int(raw, "sell_quantity"),
        "exchange_timestamp": _time(raw, "exchange_timestamp"),
    }


@dataclass(frozen=True, slots=True)
class DepthLevel:
    price: float
    quantity: int
    orders: int

    @classmethod
    def parse(cls, raw: Raw) -> DepthLevel:
        return cls(_num(raw, "price"), _int(raw, "quantity"), _int(raw, "orders"))


@dataclass(frozen=True, slots=True)
class Quote:
    """``market_data``: every tick field plus the five best bids and offers and the flags."""

    price: float
    volume: int
    change: float
    change_percent: float
    open: float
    high: float
    low: float
    prev_close: float
    last_quantity: int
    average_price: float
    buy_quantity: int
    sell_quantity: int
    exchange_timestamp: datetime | None
    bids: tuple[DepthLevel, ...]
    asks: tuple[DepthLevel, ...]
    tradable: bool
    oi: int

    @classmethod
    def parse(cls, raw: Raw) -> Quote:
        depth = _obj(raw, "depth")
        return cls(
            **_tick_fields(raw),
            bids=tuple(DepthLevel.parse(d) for d in _list(depth, "buy")),
            asks=tuple(DepthLevel.parse(d) for d in _list(depth, "sell")),
            tradable=_bool(raw, "tradable"),
            oi=_int(raw, "oi"),
        )


@dataclass(frozen=True, slots=True)
class Candle:
    """``candle_data`` (and the candles of an analysis): OHLCV of one bucket of ``interval``.

    ``closed`` is ``True`` on the candle's final update, sent once."""

    interval: str
    start: datetime | None
    open: float
    high: float
    low: float
    close: float
    volume: int
    closed: bool

    @classmethod
    def parse(cls, raw: Raw) -> Candle:
        return cls(
            _str(raw, "interval"),
            _time(raw, "start"),
            _num(raw, "open"),
            _num(raw, "high"),
            _num(raw, "low"),
            _num(raw, "close"),
            _int(raw, "volume"),
            _bool(raw, "closed"),
        )


# --- /ws/analysis -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Macd:
    macd: float | None
    signal: float | None
    histogram: float | None


@dataclass(frozen=True, slots=True)
class Bollinger:
    upper: float | None
    middle: float | None
    lower: float | None


@dataclass(frozen=True, slots=True)
class Warmup:
    needed: int
    have: int


@dataclass(frozen=True, slots=True)
class Indicators:
    """Each value is ``None`` until enough candles exist (``warmup``).

    The named fields are the default set's; a subscription's indicator set (docs/protocol.md
    §6.2.1) has other keys (``"ema:9"``, ``"supertrend:10,3"``...), which are in ``values`` (every
    member but ``warmup``, as sent: a number, ``None`` or an object such as ``{"value",
    "direction"}``) whatever the set, so a set's keys need no type of their own here."""

    sma_20: float | None
    ema_20: float | None
    rsi_14: float | None
    macd: Macd
    bollinger: Bollinger
    atr_14: float | None
    vwap: float | None
    warmup: Warmup
    values: Mapping[str, Any]

    def __getitem__(self, key: str) -> Any:
        """A member by its key: ``analysis.technical_indicators["ema:9"]``."""
        return self.values[key]

    def number(self, key: str) -> float | None:
        """A member holding a number (``"ema:9"``, ``"rsi:14"``), ``None`` while warming up."""
        return _opt_num(self.values, key)

    @classmethod
    def parse(cls, raw: Raw) -> Indicators:
        macd, boll, warm = _obj(raw, "macd"), _obj(raw, "bollinger"), _obj(raw, "warmup")
        return cls(
            _opt_num(raw, "sma_20"),
            _opt_num(raw, "ema_20"),
            _opt_num(raw, "rsi_14"),
            Macd(_opt_num(macd, "macd"), _opt_num(macd, "signal"), _opt_num(macd, "histogram")),
            Bollinger(_opt_num(boll, "upper"), _opt_num(boll, "middle"), _opt_num(boll, "lower")),
            _opt_num(raw, "atr_14"),
            _opt_num(raw, "vwap"),
            Warmup(_int(warm, "needed"), _int(warm, "have")),
            {k: v for k, v in raw.items() if k != "warmup"},
        )


@dataclass(frozen=True, slots=True)
class Pattern:
    """``strength`` is TA-Lib's magnitude of the pattern (100, 200...), ``None`` from a server
    that does not send it."""

    name: str
    direction: str
    start: datetime | None
    strength: int | None = None


@dataclass(frozen=True, slots=True)
class RiskMetrics:
    """``None`` until ``window + 1`` closed candles exist."""

    window: int
    realised_volatility: float | None
    var_95: float | None
    max_drawdown: float | None
    beta: float | None


@dataclass(frozen=True, slots=True)
class Analysis:
    """``technical_analysis`` of the candle ``candle`` (just closed, or forming).

    ``history`` (the last closed candles, oldest first) is on the snapshot's first message
    only; empty otherwise."""

    technical_indicators: Indicators
    patterns: tuple[Pattern, ...]
    risk_metrics: RiskMetrics
    trend: str
    interval: str
    candle: Candle
    history: tuple[Candle, ...]
    indicators: tuple[str, ...] | None
    """The indicator set (canonical, sorted) of this topic; ``None`` for the default set."""

    @classmethod
    def parse(cls, raw: Raw) -> Analysis:
        risk = _obj(raw, "risk_metrics")
        return cls(
            Indicators.parse(_obj(raw, "technical_indicators")),
            tuple(
                Pattern(
                    _str(p, "name"),
                    _str(p, "direction"),
                    _time(p, "start"),
                    _opt_int(p, "strength"),
                )
                for p in _list(raw, "patterns")
            ),
            RiskMetrics(
                _int(risk, "window"),
                _opt_num(risk, "realised_volatility"),
                _opt_num(risk, "var_95"),
                _opt_num(risk, "max_drawdown"),
                _opt_num(risk, "beta"),
            ),
            _str(raw, "trend"),
            _str(raw, "interval"),
            Candle.parse(_obj(raw, "candle")),
            tuple(Candle.parse(c) for c in _list(raw, "history")),
            _set(raw),
        )


# --- /ws/alerts -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alert:
    """A user alert or a built-in rule (docs/protocol.md §6.3).

    ``triggered`` is true only on the alert that fired, in the event announcing that firing;
    the lasting state is ``fired`` and ``armed``. ``(id, fire_count)`` names one firing.

    An analysis alert (``category`` ``indicator`` or ``pattern``) also has ``interval``, its
    operands ``indicator`` and ``other``, ``forming``, a pattern alert's ``pattern`` and
    ``direction``, and its last firing's ``values`` (left, right) and ``candle_start``; for a
    price alert or a built-in rule these are ``None`` (``forming`` false)."""

    id: str
    symbol: str
    type: str
    condition: str
    value: float | None
    triggered: bool
    fired: bool
    triggered_at: datetime | None
    price: float | None
    message: str | None
    once: bool
    note: str | None
    source: str
    armed: bool
    fire_count: int
    category: str
    owner: str | None
    interval: str | None = None
    indicator: str | None = None
    other: str | None = None
    forming: bool = False
    pattern: str | None = None
    direction: str | None = None
    values: tuple[float, float] | None = None
    candle_start: datetime | None = None

    @classmethod
    def parse(cls, raw: Raw) -> Alert:
        values = _obj(raw, "values")
        return cls(
            _str(raw, "id"),
            _str(raw, "symbol"),
            _str(raw, "type"),
            _str(raw, "condition"),
            _opt_num(raw, "value"),
            _bool(raw, "triggered"),
            _bool(raw, "fired"),
            _time(raw, "triggered_at"),
            _opt_num(raw, "price"),
            _opt_str(raw, "message"),
            _bool(raw, "once"),
            _opt_str(raw, "note"),
            _str(raw, "source"),
            _bool(raw, "armed"),
            _int(raw, "fire_count"),
            _str(raw, "category"),
            _opt_str(raw, "owner"),
            _opt_str(raw, "interval"),
            _opt_str(raw, "indicator"),
            _opt_str(raw, "other"),
            _bool(raw, "forming"),
            _opt_str(raw, "pattern"),
            _opt_str(raw, "direction"),
            (_num(values, "left"), _num(values, "right")) if values else None,
            _time(raw, "candle_start"),
        )


@dataclass(frozen=True, slots=True)
class AlertState:
    """``alert_data``: every alert of the symbol. A state message has ``recent_events`` (the
    last firings, newest first); an event message (``event == "triggered"``) has ``alert``.
    ``indicator_alerts`` and ``pattern_alerts`` are the owner's analysis alerts."""

    price_alerts: tuple[Alert, ...]
    volume_alerts: tuple[Alert, ...]
    breakout_alerts: tuple[Alert, ...]
    recent_events: tuple[Alert, ...]
    alert: Alert | None
    indicator_alerts: tuple[Alert, ...] = ()
    pattern_alerts: tuple[Alert, ...] = ()

    @classmethod
    def parse(cls, raw: Raw) -> AlertState:
        fired = raw.get("alert")
        return cls(
            tuple(Alert.parse(a) for a in _list(raw, "price_alerts")),
            tuple(Alert.parse(a) for a in _list(raw, "volume_alerts")),
            tuple(Alert.parse(a) for a in _list(raw, "breakout_alerts")),
            tuple(Alert.parse(a) for a in _list(raw, "recent_events")),
            Alert.parse(fired) if isinstance(fired, Mapping) else None,
            tuple(Alert.parse(a) for a in _list(raw, "indicator_alerts")),
            tuple(Alert.parse(a) for a in _list(raw, "pattern_alerts")),
        )


# --- /ws/portfolio ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    quantity: int
    average_price: float
    last_price: float | None
    current_value: float
    invested_value: float
    product: str | None
    exchange: str | None
    # From the trades counted toward the position (zeros and None without trades).
    buy_quantity: int = 0
    sell_quantity: int = 0
    day_buy_quantity: int = 0
    day_sell_quantity: int = 0
    day_buy_price: float | None = None
    day_sell_price: float | None = None
    trades: int = 0

    @classmethod
    def parse(cls, raw: Raw) -> Position:
        return cls(
            _str(raw, "symbol"),
            _int(raw, "quantity"),
            _num(raw, "average_price"),
            _opt_num(raw, "last_price"),
            _num(raw, "current_value"),
            _num(raw, "invested_value"),
            _opt_str(raw, "product"),
            _opt_str(raw, "exchange"),
            _int(raw, "buy_quantity"),
            _int(raw, "sell_quantity"),
            _int(raw, "day_buy_quantity"),
            _int(raw, "day_sell_quantity"),
            _opt_num(raw, "day_buy_price"),
            _opt_num(raw, "day_sell_price"),
            _int(raw, "trades"),
        )


@dataclass(frozen=True, slots=True)
class Pnl:
    unrealized: float
    unrealized_percent: float
    day: float
    day_percent: float
    realized: float = 0.0
    day_realized: float = 0.0

    @classmethod
    def parse(cls, raw: Raw) -> Pnl:
        return cls(
            _num(raw, "unrealized"),
            _num(raw, "unrealized_percent"),
            _num(raw, "day"),
            _num(raw, "day_percent"),
            _num(raw, "realized"),
            _num(raw, "day_realized"),
        )


@dataclass(frozen=True, slots=True)
class PortfolioTotals:
    total_value: float
    total_invested: float
    total_pnl: float
    total_pnl_percent: float
    day_pnl: float
    positions: int
    priced: int
    realized_pnl: float = 0.0
    day_realized_pnl: float = 0.0

    @classmethod
    def parse(cls, raw: Raw) -> PortfolioTotals:
        return cls(
            _num(raw, "total_value"),
            _num(raw, "total_invested"),
            _num(raw, "total_pnl"),
            _num(raw, "total_pnl_percent"),
            _num(raw, "day_pnl"),
            _int(raw, "positions"),
            _int(raw, "priced"),
            _num(raw, "realized_pnl"),
            _num(raw, "day_realized_pnl"),
        )


@dataclass(frozen=True, slots=True)
class PositionState:
    """``position_data``: the position (quantity 0 when not held), its P&L and the totals."""

    position: Position
    pnl: Pnl
    portfolio: PortfolioTotals

    @classmethod
    def parse(cls, raw: Raw) -> PositionState:
        return cls(
            Position.parse(_obj(raw, "position")),
            Pnl.parse(_obj(raw, "pnl")),
            PortfolioTotals.parse(_obj(raw, "portfolio")),
        )


@dataclass(frozen=True, slots=True)
class Trade:
    """One recorded trade (docs/protocol.md §5.11); positions are built from trades FIFO."""

    id: str
    symbol: str
    side: str
    quantity: int
    price: float
    time: datetime | None
    product: str | None
    exchange: str | None
    owner: str

    @classmethod
    def parse(cls, raw: Raw) -> Trade:
        return cls(
            _str(raw, "id"),
            _str(raw, "symbol"),
            _str(raw, "side"),
            _int(raw, "quantity"),
            _num(raw, "price"),
            _time(raw, "time"),
            _opt_str(raw, "product"),
            _opt_str(raw, "exchange"),
            _str(raw, "owner"),
        )
