"""Client commands, typed: what a client asked for, validated once, before anything acts on it.

A client message arrives as JSON (``protocol.decode`` makes it a ``dict``); :func:`parse_command`
turns it into one frozen command per message type, or into the :class:`ProtocolError` the client
is answered with. Everything a client can get wrong in a message alone is checked here, in the
order and with the codes, texts and limits the service has always answered (``docs/protocol.md``
§4 and §13); what depends on state (an alert id that does not exist, a subscription limit, a
position not held, the alerts quota, a token's validity) is for the consumer, which then works
on typed fields only.

The checks need three things besides the message, which is why :func:`parse_command` takes
them: the ``endpoint`` (alert requests exist on ``/ws/alerts`` only, position requests on
``/ws/portfolio`` only, and ``interval`` means something on ``/ws/stream`` and
``/ws/analysis`` only), the instrument ``registry`` (an alert or position request names one
instrument, and an unknown one is refused before its other fields are looked at), and the
``MAX_SYMBOLS_PER_MESSAGE`` setting.

``model`` holds the commands, ``parse`` the dispatch by ``type`` and the messages every endpoint
accepts, ``alerts`` and ``positions`` the requests of their endpoint (and their limits), and
``fields`` what those two share.
"""

from __future__ import annotations

from tickhub.core.commands.alert_operands import Operand, parse_operand
from tickhub.core.commands.alerts import (
    ALERT_PERCENT_RANGE,
    ALERT_PRICE_RANGE,
    ALERT_VALUE_DECIMALS,
    NOTE_MAX_LENGTH,
)
from tickhub.core.commands.indicators import (
    CATALOG,
    IndicatorSet,
    IndicatorSpec,
    parse_indicators,
    parse_set_key,
    set_key,
    warmup_of,
)
from tickhub.core.commands.model import (
    REQUEST_ENDPOINTS,
    AddTrade,
    AnalysisCondition,
    Auth,
    Command,
    Condition,
    CreateAlert,
    CreateAnalysisAlert,
    DeleteAlert,
    DeleteTrade,
    Heartbeat,
    ListAlerts,
    ListPositions,
    ListSubscriptions,
    ListTrades,
    Ping,
    Product,
    RemovePosition,
    ResumePoint,
    SetPosition,
    Side,
    Subscribe,
    Unsubscribe,
)
from tickhub.core.commands.parse import parse_command
from tickhub.core.commands.positions import (
    DECIMAL_TEXT,
    MAX_POSITION_PRICE,
    MAX_QUANTITY,
    MIN_POSITION_PRICE,
    POSITION_PRICE_DECIMALS,
    parse_position_fields,
)
from tickhub.core.commands.trades import (
    TRADE_ID_MAX_LENGTH,
    TRADE_MAX_AGE,
    TRADE_MAX_AHEAD,
    trade_time_error,
)

__all__ = [
    "ALERT_PERCENT_RANGE",
    "ALERT_PRICE_RANGE",
    "ALERT_VALUE_DECIMALS",
    "CATALOG",
    "DECIMAL_TEXT",
    "MAX_POSITION_PRICE",
    "MAX_QUANTITY",
    "MIN_POSITION_PRICE",
    "NOTE_MAX_LENGTH",
    "POSITION_PRICE_DECIMALS",
    "REQUEST_ENDPOINTS",
    "TRADE_ID_MAX_LENGTH",
    "TRADE_MAX_AGE",
    "TRADE_MAX_AHEAD",
    "AddTrade",
    "AnalysisCondition",
    "Auth",
    "Command",
    "Condition",
    "CreateAlert",
    "CreateAnalysisAlert",
    "DeleteAlert",
    "DeleteTrade",
    "Heartbeat",
    "IndicatorSet",
    "IndicatorSpec",
    "ListAlerts",
    "ListPositions",
    "ListSubscriptions",
    "ListTrades",
    "Operand",
    "Ping",
    "Product",
    "RemovePosition",
    "ResumePoint",
    "SetPosition",
    "Side",
    "Subscribe",
    "Unsubscribe",
    "parse_command",
    "parse_indicators",
    "parse_operand",
    "parse_position_fields",
    "parse_set_key",
    "set_key",
    "trade_time_error",
    "warmup_of",
]
