"""tickhub's Python client: the four WebSocket streams, reconnecting, resuming, typed.

asyncio first::

    async with connect("ws://localhost:8081/ws/stream") as client:
        await client.subscribe("RELIANCE", interval="5m")
        async for msg in client:
            ...

and, for synchronous code, :class:`Ticker`, with KiteTicker-style callbacks in a thread of its
own. Reference: docs/client-python.md; the wire protocol: docs/protocol.md. This layer imports
only ``tickhub.core`` (and the standard library and ``websockets``), so it is the one part of
the package a program that only reads the streams depends on.
"""

from tickhub.client.connection import Client, connect
from tickhub.client.errors import ClientStopped, TickhubError
from tickhub.client.messages import (
    AlertData,
    AlertReply,
    AlertsReply,
    AuthReply,
    CandleData,
    DataMessage,
    Disconnected,
    Event,
    HeartbeatAck,
    MarketData,
    Pong,
    PositionData,
    PositionReply,
    PositionsReply,
    Reconnecting,
    ServerError,
    ServerMessage,
    Status,
    SubscriptionAck,
    Subscriptions,
    TechnicalAnalysis,
    TickData,
    TradeReply,
    TradesReply,
    UnknownData,
    UnknownMessage,
    Welcome,
    parse_message,
)
from tickhub.client.options import ClientOptions
from tickhub.client.payloads import (
    Alert,
    AlertState,
    Analysis,
    Candle,
    DepthLevel,
    Indicators,
    Pnl,
    PortfolioTotals,
    Position,
    PositionState,
    Quote,
    Tick,
    Trade,
)
from tickhub.client.policy import backoff_delay, should_reconnect
from tickhub.client.ticker import Ticker
from tickhub.client.tracking import Gap, SeqTracker, topic_of

__all__ = [
    "Alert",
    "AlertData",
    "AlertReply",
    "AlertState",
    "AlertsReply",
    "Analysis",
    "AuthReply",
    "Candle",
    "CandleData",
    "Client",
    "ClientOptions",
    "ClientStopped",
    "DataMessage",
    "DepthLevel",
    "Disconnected",
    "Event",
    "Gap",
    "HeartbeatAck",
    "Indicators",
    "MarketData",
    "Pnl",
    "Pong",
    "PortfolioTotals",
    "Position",
    "PositionData",
    "PositionReply",
    "PositionState",
    "PositionsReply",
    "Quote",
    "Reconnecting",
    "SeqTracker",
    "ServerError",
    "ServerMessage",
    "Status",
    "SubscriptionAck",
    "Subscriptions",
    "TechnicalAnalysis",
    "Tick",
    "TickData",
    "Ticker",
    "TickhubError",
    "Trade",
    "TradeReply",
    "TradesReply",
    "UnknownData",
    "UnknownMessage",
    "Welcome",
    "backoff_delay",
    "connect",
    "parse_message",
    "should_reconnect",
    "topic_of",
]
