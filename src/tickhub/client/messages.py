"""Every message the server sends, typed (docs/protocol.md §5), plus the client's own events.

Each class keeps the message as it arrived in ``raw``, so a field these types do not name (one
a newer server adds) is still at hand. ``data`` messages are one class per ``data_type``, each
with its typed payload in ``data`` and, from the client's per-topic bookkeeping, ``topic`` and
``reset`` (drop what you hold for the topic: this message starts it afresh).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tickhub.client.payloads import (
    Alert,
    AlertState,
    Analysis,
    Candle,
    PortfolioTotals,
    Position,
    PositionState,
    Quote,
    Tick,
    Trade,
    parse_time,
)
from tickhub.client.tracking import Gap, Observation, indicator_set_of, topic_of

__all__ = [
    "AlertData",
    "AlertReply",
    "AlertsReply",
    "AuthReply",
    "CandleData",
    "DataMessage",
    "Disconnected",
    "Event",
    "HeartbeatAck",
    "MarketData",
    "Pong",
    "PositionData",
    "PositionReply",
    "PositionsReply",
    "Reconnecting",
    "ServerError",
    "ServerMessage",
    "Status",
    "SubscriptionAck",
    "Subscriptions",
    "TechnicalAnalysis",
    "TickData",
    "TradeReply",
    "TradesReply",
    "UnknownData",
    "UnknownMessage",
    "Welcome",
    "parse_message",
]

Raw = Mapping[str, Any]


def _str(raw: Raw, key: str) -> str:
    value = raw.get(key)
    return value if isinstance(value, str) else ""


def _opt_str(raw: Raw, key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


def _int(raw: Raw, key: str) -> int:
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# --- data ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataMessage:
    """The envelope every ``data`` message shares (docs/protocol.md §5.3)."""

    symbol: str
    timestamp: datetime | None
    """Market time (exchange), not the server's clock: see each data type."""
    data_type: str
    seq: int
    epoch: str
    interval: str | None
    snapshot: bool
    """Part of the current state sent after a ``subscribed`` ack, not a live update."""
    event: str | None
    """``"triggered"`` on an alert firing."""
    subscription: str | None
    """``"*"`` on messages of a portfolio ``*`` subscription."""
    topic: str
    reset: bool
    raw: Raw


@dataclass(frozen=True, slots=True)
class TickData(DataMessage):
    data: Tick


@dataclass(frozen=True, slots=True)
class CandleData(DataMessage):
    data: Candle


@dataclass(frozen=True, slots=True)
class MarketData(DataMessage):
    data: Quote


@dataclass(frozen=True, slots=True)
class TechnicalAnalysis(DataMessage):
    data: Analysis


@dataclass(frozen=True, slots=True)
class AlertData(DataMessage):
    data: AlertState

    @property
    def is_event(self) -> bool:
        """An alert just fired (``data.alert`` is it); never part of a snapshot."""
        return self.event == "triggered"


@dataclass(frozen=True, slots=True)
class PositionData(DataMessage):
    data: PositionState


@dataclass(frozen=True, slots=True)
class UnknownData(DataMessage):
    """A ``data_type`` this client does not know (a newer server): the payload as it came."""

    data: Raw


_PAYLOADS: dict[str, tuple[type[DataMessage], Any]] = {
    "tick_data": (TickData, Tick.parse),
    "candle_data": (CandleData, Candle.parse),
    "market_data": (MarketData, Quote.parse),
    "technical_analysis": (TechnicalAnalysis, Analysis.parse),
    "alert_data": (AlertData, AlertState.parse),
    "position_data": (PositionData, PositionState.parse),
}


def _data(raw: Raw, seen: Observation | None) -> DataMessage:
    payload = raw.get("data")
    body: Raw = payload if isinstance(payload, Mapping) else {}
    data_type = _str(raw, "data_type")
    cls, parse = _PAYLOADS.get(data_type, (UnknownData, dict))
    return cls(
        symbol=_str(raw, "symbol"),
        timestamp=parse_time(raw.get("timestamp")),
        data_type=data_type,
        seq=_int(raw, "seq"),
        epoch=_str(raw, "epoch"),
        interval=_opt_str(raw, "interval"),
        snapshot=raw.get("snapshot") is True,
        event=_opt_str(raw, "event"),
        subscription=_opt_str(raw, "subscription"),
        topic=seen.topic if seen is not None else topic_of(raw),
        reset=seen.reset if seen is not None else False,
        raw=raw,
        data=parse(body),  # type: ignore[call-arg]
    )


# --- replies and notices ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Welcome:
    """``connection``: first message of every connection (and so of every reconnect)."""

    endpoint: str
    connection_id: str
    protocol_version: int
    timestamp: datetime | None
    raw: Raw


@dataclass(frozen=True, slots=True)
class SubscriptionAck:
    """``subscription``: ``subscribed`` or ``unsubscribed``, one per symbol.

    ``recovered`` is set only on the ack of a resume: ``True``, the missed messages follow;
    ``False``, a fresh snapshot follows (and a ``not_recovered`` :class:`Gap` was reported)."""

    status: str
    symbol: str
    interval: str | None
    requested: str | None
    recovered: bool | None
    topic: str
    timestamp: datetime | None
    raw: Raw
    indicators: tuple[str, ...] | None = None
    """The indicator set subscribed (/ws/analysis, canonical and sorted); ``None``: the default."""


@dataclass(frozen=True, slots=True)
class Status:
    """``status``: the upstream feed changed state (``live``, ``stale``, ``reconnecting``...)."""

    feed: str
    detail: str
    timestamp: datetime | None
    raw: Raw


@dataclass(frozen=True, slots=True)
class ServerError:
    """``error`` not answering one of this client's requests (those raise instead)."""

    code: str
    message: str
    details: Raw
    symbol: str | None
    symbols: tuple[str, ...]
    request: str | None
    timestamp: datetime | None
    raw: Raw


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    """The connection's delivery counters: ``dropped`` and ``conflated`` grow when it is slow."""

    sent: int
    dropped: int
    conflated: int
    timestamp: datetime | None
    raw: Raw


@dataclass(frozen=True, slots=True)
class Pong:
    client_timestamp: Any
    timestamp: datetime | None
    raw: Raw


@dataclass(frozen=True, slots=True)
class Subscriptions:
    """``subscriptions``: ``(symbol, interval)`` per topic held by the connection."""

    symbols: tuple[str, ...]
    subscriptions: tuple[tuple[str, str | None], ...]
    raw: Raw


@dataclass(frozen=True, slots=True)
class AuthReply:
    """``auth``: ``authenticated`` (``user``, ``expires_at``) or ``not_required``."""

    status: str
    user: str | None
    expires_at: datetime | None
    raw: Raw


@dataclass(frozen=True, slots=True)
class AlertReply:
    """``alert``: ``created`` (with ``alert``) or ``deleted`` (with ``id``)."""

    status: str
    alert: Alert | None
    id: str | None
    raw: Raw


@dataclass(frozen=True, slots=True)
class AlertsReply:
    alerts: tuple[Alert, ...]
    raw: Raw


@dataclass(frozen=True, slots=True)
class PositionReply:
    """``position``: ``saved`` (with ``position``) or ``removed``."""

    status: str
    symbol: str
    position: Position | None
    raw: Raw


@dataclass(frozen=True, slots=True)
class PositionsReply:
    positions: tuple[Position, ...]
    portfolio: PortfolioTotals
    raw: Raw


@dataclass(frozen=True, slots=True)
class TradeReply:
    """``trade``: ``added`` or ``exists`` (with ``trade``), or ``deleted`` (with ``id``); with
    the symbol's ``position_data`` payload after the change in ``position``."""

    status: str
    trade: Trade | None
    id: str | None
    position: PositionState | None
    raw: Raw


@dataclass(frozen=True, slots=True)
class TradesReply:
    """``trades``: oldest first (by time, then arrival)."""

    trades: tuple[Trade, ...]
    raw: Raw


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A message ``type`` this client does not know; clients must ignore those (§2)."""

    type: str
    raw: Raw


# --- the client's own events --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection ended. ``code`` is the close code (1006 when the link dropped without a
    close frame, or could not be opened); ``will_reconnect`` says whether a reconnect follows."""

    code: int
    reason: str
    will_reconnect: bool


@dataclass(frozen=True, slots=True)
class Reconnecting:
    """Reconnect attempt ``attempt`` (1 for the first) starts in ``delay`` seconds."""

    attempt: int
    delay: float


ServerMessage = (
    DataMessage
    | Welcome
    | SubscriptionAck
    | Status
    | ServerError
    | HeartbeatAck
    | Pong
    | Subscriptions
    | AuthReply
    | AlertReply
    | AlertsReply
    | PositionReply
    | PositionsReply
    | TradeReply
    | TradesReply
    | UnknownMessage
)
Event = ServerMessage | Gap | Disconnected | Reconnecting
"""What iterating a client yields."""


def _objects(raw: Raw, key: str) -> list[Raw]:
    value = raw.get(key)
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def parse_message(raw: Raw, seen: Observation | None = None) -> ServerMessage:
    """The typed form of one server message (``seen``: the tracker's view of a ``data`` one)."""
    kind = _str(raw, "type")
    ts = parse_time(raw.get("timestamp"))
    if kind == "data":
        return _data(raw, seen)
    if kind == "connection":
        return Welcome(
            _str(raw, "endpoint"),
            _str(raw, "connection_id"),
            _int(raw, "protocol_version"),
            ts,
            raw,
        )
    if kind == "subscription":
        recovered = raw.get("recovered")
        return SubscriptionAck(
            _str(raw, "status"),
            _str(raw, "symbol"),
            _opt_str(raw, "interval"),
            _opt_str(raw, "requested"),
            recovered if isinstance(recovered, bool) else None,
            topic_of(raw),
            ts,
            raw,
            indicator_set_of(raw),
        )
    if kind == "status":
        return Status(_str(raw, "feed"), _str(raw, "detail"), ts, raw)
    if kind == "error":
        details = raw.get("details")
        symbols = raw.get("symbols")
        return ServerError(
            _str(raw, "code"),
            _str(raw, "message"),
            details if isinstance(details, Mapping) else {},
            _opt_str(raw, "symbol"),
            tuple(s for s in symbols if isinstance(s, str)) if isinstance(symbols, list) else (),
            _opt_str(raw, "request"),
            ts,
            raw,
        )
    if kind == "heartbeat":
        return HeartbeatAck(
            _int(raw, "sent"), _int(raw, "dropped"), _int(raw, "conflated"), ts, raw
        )
    if kind == "pong":
        return Pong(raw.get("client_timestamp"), ts, raw)
    if kind == "subscriptions":
        symbols = raw.get("symbols")
        return Subscriptions(
            tuple(s for s in symbols if isinstance(s, str)) if isinstance(symbols, list) else (),
            tuple(
                (_str(s, "symbol"), _opt_str(s, "interval")) for s in _objects(raw, "subscriptions")
            ),
            raw,
        )
    if kind == "auth":
        return AuthReply(
            _str(raw, "status"), _opt_str(raw, "user"), parse_time(raw.get("expires_at")), raw
        )
    if kind == "alert":
        alert = raw.get("alert")
        return AlertReply(
            _str(raw, "status"),
            Alert.parse(alert) if isinstance(alert, Mapping) else None,
            _opt_str(raw, "id"),
            raw,
        )
    if kind == "alerts":
        return AlertsReply(tuple(Alert.parse(a) for a in _objects(raw, "alerts")), raw)
    if kind == "position":
        position = raw.get("position")
        return PositionReply(
            _str(raw, "status"),
            _str(raw, "symbol"),
            Position.parse(position) if isinstance(position, Mapping) else None,
            raw,
        )
    if kind == "positions":
        totals = raw.get("portfolio")
        return PositionsReply(
            tuple(Position.parse(p) for p in _objects(raw, "positions")),
            PortfolioTotals.parse(totals if isinstance(totals, Mapping) else {}),
            raw,
        )
    if kind == "trade":
        trade, position = raw.get("trade"), raw.get("position")
        return TradeReply(
            _str(raw, "status"),
            Trade.parse(trade) if isinstance(trade, Mapping) else None,
            _opt_str(raw, "id"),
            PositionState.parse(position) if isinstance(position, Mapping) else None,
            raw,
        )
    if kind == "trades":
        return TradesReply(tuple(Trade.parse(t) for t in _objects(raw, "trades")), raw)
    return UnknownMessage(kind, raw)
