"""Typed messages: every server message of docs/protocol.md, read into its class, raw kept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tickhub.client import (
    AlertData,
    AlertReply,
    AlertsReply,
    AuthReply,
    CandleData,
    HeartbeatAck,
    MarketData,
    Pong,
    PositionData,
    PositionReply,
    PositionsReply,
    ServerError,
    Status,
    SubscriptionAck,
    Subscriptions,
    TechnicalAnalysis,
    TickData,
    UnknownData,
    UnknownMessage,
    Welcome,
    parse_message,
)

TS = "2026-11-26T03:49:50.076Z"
TICK = {
    "price": 1497.35,
    "volume": 89490,
    "change": -2.65,
    "change_percent": -0.18,
    "open": 1495.95,
    "high": 1497.9,
    "low": 1495.45,
    "prev_close": 1500.0,
    "last_quantity": 44,
    "average_price": 1496.52,
    "buy_quantity": 512636,
    "sell_quantity": 731523,
    "exchange_timestamp": TS,
}
CANDLE = {
    "interval": "1m",
    "start": "2026-11-26T09:55:00.000Z",
    "open": 1499.05,
    "high": 1500.05,
    "low": 1499.05,
    "close": 1499.75,
    "volume": 40388,
    "closed": True,
}
ALERT = {
    "id": "a_27f15e83d791",
    "symbol": "INFY",
    "type": "below",
    "condition": "below",
    "value": 99999.0,
    "triggered": True,
    "fired": True,
    "triggered_at": "2026-11-27T04:03:40.210Z",
    "price": 1554.6,
    "message": "INFY at 1554.60 is at or below 99999.00",
    "once": True,
    "note": "take profit",
    "source": "user",
    "armed": False,
    "fire_count": 1,
    "category": "price",
    "owner": "",
}
POSITION = {
    "symbol": "RELIANCE",
    "quantity": 100,
    "average_price": 1485.6,
    "last_price": 1489.25,
    "current_value": 148925.0,
    "invested_value": 148560.0,
    "product": "CNC",
    "exchange": "NSE",
}
TOTALS = {
    "total_value": 844183.75,
    "total_invested": 814281.5,
    "total_pnl": 29902.25,
    "total_pnl_percent": 3.29,
    "day_pnl": 3004.5,
    "positions": 7,
    "priced": 7,
}


def envelope(data_type: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "data",
        "symbol": "RELIANCE",
        "timestamp": TS,
        "data_type": data_type,
        "seq": 53,
        "epoch": "c3064e36",
        "data": data,
        **extra,
    }


def test_tick_data() -> None:
    msg = parse_message(envelope("tick_data", TICK, interval="1m"))
    assert isinstance(msg, TickData)
    assert (msg.symbol, msg.seq, msg.epoch, msg.interval, msg.topic) == (
        "RELIANCE",
        53,
        "c3064e36",
        "1m",
        "RELIANCE@1m",
    )
    assert msg.timestamp == datetime(2026, 11, 26, 3, 49, 50, 76000, tzinfo=UTC)
    assert msg.data.price == 1497.35 and msg.data.volume == 89490
    assert msg.data.exchange_timestamp == msg.timestamp
    assert msg.raw["data"]["buy_quantity"] == 512636
    assert not msg.snapshot and not msg.reset


def test_candle_data_snapshot() -> None:
    msg = parse_message({"snapshot": True, **envelope("candle_data", CANDLE, interval="1m")})
    assert isinstance(msg, CandleData) and msg.snapshot
    assert msg.data.closed and msg.data.close == 1499.75 and msg.data.volume == 40388
    assert msg.data.start == datetime(2026, 11, 26, 9, 55, tzinfo=UTC)


def test_market_data_with_depth() -> None:
    level = {"price": 1497.95, "quantity": 1696, "orders": 9}
    body = {**TICK, "depth": {"buy": [level], "sell": []}, "tradable": True, "oi": 0}
    msg = parse_message(envelope("market_data", body, interval="1m"))
    assert isinstance(msg, MarketData)
    assert msg.data.bids[0].quantity == 1696 and msg.data.asks == ()
    assert msg.data.tradable and msg.data.change == -2.65


def test_technical_analysis_with_history() -> None:
    body = {
        "technical_indicators": {
            "sma_20": 1485.8025,
            "ema_20": None,
            "rsi_14": 44.1834,
            "macd": {"macd": -0.2372, "signal": -0.0348, "histogram": -0.2024},
            "bollinger": {"upper": 1488.083, "middle": 1485.8025, "lower": 1483.522},
            "atr_14": 1.3656,
            "vwap": None,
            "warmup": {"needed": 34, "have": 131},
        },
        "patterns": [{"name": "harami", "direction": "bullish", "start": TS}],
        "risk_metrics": {
            "window": 60,
            "realised_volatility": 0.233336,
            "var_95": None,
            "max_drawdown": 0.003899,
            "beta": 0.71362,
        },
        "trend": "bearish",
        "interval": "1m",
        "candle": CANDLE,
        "history": [CANDLE, CANDLE],
    }
    msg = parse_message(envelope("technical_analysis", body, interval="1m"))
    assert isinstance(msg, TechnicalAnalysis)
    ind = msg.data.technical_indicators
    assert ind.sma_20 == 1485.8025 and ind.ema_20 is None and ind.macd.histogram == -0.2024
    assert ind.warmup.have == 131 and msg.data.patterns[0].name == "harami"
    assert msg.data.risk_metrics.var_95 is None and msg.data.risk_metrics.window == 60
    assert len(msg.data.history) == 2 and msg.data.candle.closed


def test_technical_analysis_of_an_indicator_set_and_pattern_strength() -> None:
    body = {
        "technical_indicators": {
            "ema:9": 101.3811,
            "rsi:14": None,
            "supertrend:10,3": {"value": 99.5, "direction": "up"},
            "warmup": {"needed": 15, "have": 20},
        },
        "patterns": [{"name": "engulfing", "direction": "bearish", "start": TS, "strength": 100}],
        "risk_metrics": {"window": 60},
        "trend": "neutral",
        "interval": "1m",
        "candle": CANDLE,
        "indicators": ["ema:9", "rsi:14", "supertrend:10,3"],
    }
    raw = envelope("technical_analysis", body, interval="1m")
    msg = parse_message(raw)
    assert isinstance(msg, TechnicalAnalysis)
    assert msg.topic == "RELIANCE@1m[ema:9,rsi:14,supertrend:10,3]"
    assert msg.data.indicators == ("ema:9", "rsi:14", "supertrend:10,3")
    ind = msg.data.technical_indicators
    assert ind.number("ema:9") == 101.3811 and ind.number("rsi:14") is None
    assert ind["supertrend:10,3"] == {"value": 99.5, "direction": "up"}
    assert set(ind.values) == {"ema:9", "rsi:14", "supertrend:10,3"}
    assert ind.warmup.needed == 15 and ind.sma_20 is None  # the default set's names: absent
    assert msg.data.patterns[0].strength == 100
    assert msg.raw is raw


def test_the_default_set_has_no_set_and_a_pattern_without_strength_reads_none() -> None:
    body = {"patterns": [{"name": "doji", "direction": "neutral"}], "interval": "1m"}
    msg = parse_message(envelope("technical_analysis", body, interval="1m"))
    assert isinstance(msg, TechnicalAnalysis)
    assert msg.topic == "RELIANCE@1m" and msg.data.indicators is None
    assert msg.data.patterns[0].strength is None


def test_alert_event_and_state() -> None:
    builtin = {**ALERT, "id": "builtin:INFY:day_change_up", "source": "builtin", "owner": None}
    event = parse_message(
        envelope(
            "alert_data",
            {"price_alerts": [builtin], "volume_alerts": [], "breakout_alerts": [], "alert": ALERT},
            event="triggered",
        )
    )
    assert isinstance(event, AlertData) and event.is_event and event.topic == "RELIANCE"
    assert event.data.alert is not None and event.data.alert.fire_count == 1
    assert event.data.alert.triggered and event.data.price_alerts[0].source == "builtin"
    state = parse_message(envelope("alert_data", {"price_alerts": [], "recent_events": [ALERT]}))
    assert isinstance(state, AlertData) and not state.is_event
    assert state.data.alert is None and state.data.recent_events[0].id == "a_27f15e83d791"


def test_position_data_of_the_star_topic() -> None:
    body = {
        "position": POSITION,
        "pnl": {
            "unrealized": 365.0,
            "unrealized_percent": 0.25,
            "day": -600.0,
            "day_percent": -0.4,
        },
        "portfolio": TOTALS,
    }
    msg = parse_message(envelope("position_data", body, subscription="*"))
    assert isinstance(msg, PositionData) and msg.topic == "*"
    assert msg.data.position.quantity == 100 and msg.data.pnl.day == -600.0
    assert msg.data.portfolio.positions == 7


def test_replies_and_notices() -> None:
    welcome = parse_message(
        {
            "type": "connection",
            "status": "connected",
            "timestamp": TS,
            "message": "WebSocket connection established successfully",
            "endpoint": "/ws/stream",
            "connection_id": "3ccb-1",
            "protocol_version": 1,
        }
    )
    assert isinstance(welcome, Welcome) and welcome.connection_id == "3ccb-1"
    sub = parse_message(
        {
            "type": "subscription",
            "status": "subscribed",
            "symbol": "RELIANCE",
            "interval": "5m",
            "requested": "reliance",
            "recovered": False,
        }
    )
    assert isinstance(sub, SubscriptionAck)
    assert (sub.topic, sub.requested, sub.recovered) == ("RELIANCE@5m", "reliance", False)
    hb = parse_message({"type": "heartbeat", "status": "ack", "sent": 14, "dropped": 2})
    assert isinstance(hb, HeartbeatAck) and (hb.sent, hb.dropped, hb.conflated) == (14, 2, 0)
    pong = parse_message({"type": "pong", "client_timestamp": 1.5})
    assert isinstance(pong, Pong) and pong.client_timestamp == 1.5
    subs = parse_message(
        {
            "type": "subscriptions",
            "symbols": ["RELIANCE"],
            "subscriptions": [{"symbol": "RELIANCE", "interval": "1m"}],
        }
    )
    assert isinstance(subs, Subscriptions) and subs.subscriptions == (("RELIANCE", "1m"),)
    status = parse_message({"type": "status", "feed": "live", "detail": "simulated market"})
    assert isinstance(status, Status) and status.feed == "live"
    err = parse_message(
        {
            "type": "error",
            "message": "unknown symbol: 'X'",
            "code": "unknown_symbol",
            "details": {"symbol": "X"},
            "symbols": ["X", "Y"],
            "request": "subscribe",
        }
    )
    assert isinstance(err, ServerError) and err.symbols == ("X", "Y") and err.symbol is None
    auth = parse_message(
        {"type": "auth", "status": "authenticated", "user": "carol", "expires_at": TS}
    )
    assert isinstance(auth, AuthReply) and auth.user == "carol" and auth.expires_at is not None


def test_request_replies() -> None:
    created = parse_message({"type": "alert", "status": "created", "alert": ALERT})
    assert isinstance(created, AlertReply) and created.alert is not None
    deleted = parse_message({"type": "alert", "status": "deleted", "id": "a_1"})
    assert isinstance(deleted, AlertReply) and deleted.alert is None and deleted.id == "a_1"
    listed = parse_message({"type": "alerts", "alerts": [ALERT, ALERT]})
    assert isinstance(listed, AlertsReply) and len(listed.alerts) == 2
    saved = parse_message(
        {"type": "position", "status": "saved", "symbol": "RELIANCE", "position": POSITION}
    )
    assert isinstance(saved, PositionReply) and saved.position is not None
    removed = parse_message({"type": "position", "status": "removed", "symbol": "WIPRO"})
    assert isinstance(removed, PositionReply) and removed.position is None
    positions = parse_message({"type": "positions", "positions": [POSITION], "portfolio": TOTALS})
    assert isinstance(positions, PositionsReply) and positions.portfolio.total_pnl == 29902.25


def test_unknown_kinds_are_kept_not_refused() -> None:
    data = parse_message(envelope("order_book", {"x": 1}))
    assert isinstance(data, UnknownData) and data.data == {"x": 1}
    other = parse_message({"type": "news", "headline": "h"})
    assert isinstance(other, UnknownMessage) and other.raw["headline"] == "h"


@pytest.mark.parametrize(
    "raw",
    [
        envelope("tick_data", {"price": "high", "volume": None, "exchange_timestamp": "soon"}),
        envelope("candle_data", None),  # type: ignore[arg-type]
        envelope("technical_analysis", {"technical_indicators": [], "patterns": {}}),
        envelope("alert_data", {"price_alerts": [1, "x", None], "alert": "no"}),
        envelope("position_data", {"position": 5}),
        {"type": "data", "seq": True, "epoch": 3, "timestamp": 17},
        {"type": "positions", "positions": "none", "portfolio": []},
        {"type": "error", "details": "x", "symbols": "X"},
    ],
)
def test_malformed_fields_read_as_empty_values(raw: dict[str, Any]) -> None:
    msg = parse_message(raw)
    assert msg.raw is raw
