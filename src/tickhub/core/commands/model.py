"""The client commands as values: one frozen type per message type a client may send.

Each carries only typed fields (enums, tuples, ``Decimal``), already checked: a consumer never
looks at the JSON again. ``type`` (a class attribute) is the wire name of the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from types import MappingProxyType
from typing import ClassVar, Final

from tickhub.core.commands.alert_operands import Operand
from tickhub.core.commands.indicators import IndicatorSet
from tickhub.core.model import Interval
from tickhub.core.topics import Endpoint


class Condition(str, Enum):
    """When a user alert fires; the order is the one error messages list them in."""

    ABOVE = "above"
    BELOW = "below"
    CROSS_UP = "cross_up"
    CROSS_DOWN = "cross_down"
    PERCENT_CHANGE = "percent_change"


class AnalysisCondition(str, Enum):
    """When an analysis alert fires (on candle closes of its interval); the order is the one
    error messages list them in."""

    CROSSES_ABOVE = "crosses_above"
    CROSSES_BELOW = "crosses_below"
    ABOVE = "above"
    BELOW = "below"
    PATTERN = "pattern"


class Product(str, Enum):
    """Zerodha product types: delivery, intraday, and F&O carry-forward."""

    CNC = "CNC"
    MIS = "MIS"
    NRML = "NRML"


class Side(str, Enum):
    """The side of a trade."""

    BUY = "buy"
    SELL = "sell"


# --- the commands -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """The last message a client holds of a topic: its producer run and its position in it."""

    epoch: str
    seq: int


def _no_resume() -> Mapping[str, ResumePoint]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Subscribe:
    """``subscribe``: ``names`` as the client wrote them (trimmed, repeats dropped, order kept;
    not yet looked up, so that each unknown one is refused on its own). ``interval`` is set on
    the endpoints with candles (``1m`` when none was asked) and ``None`` elsewhere; ``since``
    maps a name to its resume point; ``batch`` asks for batched delivery; ``indicators`` is
    the indicator set asked for on ``/ws/analysis`` (``None``: the default set, and always
    ``None`` elsewhere)."""

    type: ClassVar[str] = "subscribe"
    names: tuple[str, ...]
    interval: Interval | None = None
    since: Mapping[str, ResumePoint] = field(default_factory=_no_resume)
    batch: bool = False
    indicators: IndicatorSet | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """``unsubscribe``: ``names`` as for :class:`Subscribe`; ``interval`` ``None`` removes every
    interval of each name (and is always ``None`` on endpoints without candles)."""

    type: ClassVar[str] = "unsubscribe"
    names: tuple[str, ...]
    interval: Interval | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """``heartbeat``: answered with the connection's delivery counters (its timestamp is
    ignored)."""

    type: ClassVar[str] = "heartbeat"


@dataclass(frozen=True, slots=True)
class Ping:
    """``ping``: ``timestamp`` (a short string or a number) is echoed in the pong."""

    type: ClassVar[str] = "ping"
    timestamp: str | int | float | None = None


@dataclass(frozen=True, slots=True)
class ListSubscriptions:
    """``list_subscriptions``: answered with the connection's topics."""

    type: ClassVar[str] = "list_subscriptions"


@dataclass(frozen=True, slots=True)
class Auth:
    """``auth``: ``token`` is ``None`` when absent or not a string; whether it is valid is the
    authenticator's to say (with authentication off any token is answered ``not_required``)."""

    type: ClassVar[str] = "auth"
    token: str | None


@dataclass(frozen=True, slots=True)
class CreateAlert:
    """``create_alert`` on ``/ws/alerts``: ``symbol`` in the registry's spelling, ``value`` the
    level exactly as written (a price, or a percentage for ``percent_change``); an empty
    ``note`` is ``None``."""

    type: ClassVar[str] = "create_alert"
    symbol: str
    condition: Condition
    value: Decimal
    once: bool = True
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ListAlerts:
    """``list_alerts`` on ``/ws/alerts``: every user alert, or ``symbol``'s only."""

    type: ClassVar[str] = "list_alerts"
    symbol: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteAlert:
    """``delete_alert`` on ``/ws/alerts``: ``id`` is not checked to exist (that is state)."""

    type: ClassVar[str] = "delete_alert"
    id: str


@dataclass(frozen=True, slots=True)
class CreateAnalysisAlert:
    """``create_alert`` with ``indicator``, or with ``condition`` ``pattern``: an alert evaluated
    on the candles of ``interval``. An indicator alert has ``indicator`` and exactly one of
    ``other`` and ``value``; a pattern alert has ``pattern`` (a name of the patterns' table, or
    ``any``) and ``direction`` (``None``: any)."""

    type: ClassVar[str] = "create_alert"
    symbol: str
    interval: Interval
    condition: AnalysisCondition
    indicator: Operand | None = None
    other: Operand | None = None
    value: Decimal | None = None
    pattern: str | None = None
    direction: str | None = None
    forming: bool = False
    once: bool = True
    note: str | None = None


@dataclass(frozen=True, slots=True)
class SetPosition:
    """``set_position`` on ``/ws/portfolio`` (also one row of a positions file): ``symbol`` and
    ``exchange`` are the instrument's own; ``quantity`` 0 removes the position."""

    type: ClassVar[str] = "set_position"
    symbol: str
    quantity: int
    average_price: Decimal
    exchange: str
    product: Product | None = None


@dataclass(frozen=True, slots=True)
class RemovePosition:
    """``remove_position`` on ``/ws/portfolio``: ``symbol`` in the registry's spelling."""

    type: ClassVar[str] = "remove_position"
    symbol: str


@dataclass(frozen=True, slots=True)
class ListPositions:
    """``list_positions`` on ``/ws/portfolio``: every position and the totals."""

    type: ClassVar[str] = "list_positions"


@dataclass(frozen=True, slots=True)
class AddTrade:
    """``add_trade`` on ``/ws/portfolio``: one fill. ``symbol``/``exchange`` are the instrument's
    own; ``price`` exact as written; ``time`` aware (``None``: now, the ingest's clock); ``id``
    the client's idempotency key (``None``: the server makes one)."""

    type: ClassVar[str] = "add_trade"
    symbol: str
    side: Side
    quantity: int
    price: Decimal
    exchange: str
    time: datetime | None = None
    product: Product | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class ListTrades:
    """``list_trades`` on ``/ws/portfolio``: every trade, or ``symbol``'s only."""

    type: ClassVar[str] = "list_trades"
    symbol: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteTrade:
    """``delete_trade`` on ``/ws/portfolio``: ``id`` is not checked to exist (that is state)."""

    type: ClassVar[str] = "delete_trade"
    id: str


Command = (
    Subscribe
    | Unsubscribe
    | Heartbeat
    | Ping
    | ListSubscriptions
    | Auth
    | CreateAlert
    | CreateAnalysisAlert
    | ListAlerts
    | DeleteAlert
    | SetPosition
    | RemovePosition
    | ListPositions
    | AddTrade
    | ListTrades
    | DeleteTrade
)
"""Every message a client may send, by its ``type``."""

REQUEST_ENDPOINTS: Final[Mapping[str, Endpoint]] = MappingProxyType(
    {
        CreateAlert.type: Endpoint.ALERTS,
        ListAlerts.type: Endpoint.ALERTS,
        DeleteAlert.type: Endpoint.ALERTS,
        SetPosition.type: Endpoint.PORTFOLIO,
        RemovePosition.type: Endpoint.PORTFOLIO,
        ListPositions.type: Endpoint.PORTFOLIO,
        AddTrade.type: Endpoint.PORTFOLIO,
        ListTrades.type: Endpoint.PORTFOLIO,
        DeleteTrade.type: Endpoint.PORTFOLIO,
    }
)
"""The endpoint-specific request types and the one endpoint that accepts each; anywhere else
they are ``unknown_type``. The other types are accepted on every endpoint."""
