"""``parse_command``: a decoded client message to its command, or to the error it gets."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from tickhub.core import defaults, protocol
from tickhub.core.commands.alerts import parse_create_alert, parse_delete_alert, parse_list_alerts
from tickhub.core.commands.fields import Context, interval_of
from tickhub.core.commands.indicators import parse_indicators
from tickhub.core.commands.model import (
    REQUEST_ENDPOINTS,
    AddTrade,
    Auth,
    Command,
    CreateAlert,
    DeleteAlert,
    DeleteTrade,
    Heartbeat,
    ListAlerts,
    ListPositions,
    ListSubscriptions,
    ListTrades,
    Ping,
    RemovePosition,
    ResumePoint,
    SetPosition,
    Subscribe,
    Unsubscribe,
)
from tickhub.core.commands.positions import (
    parse_list_positions,
    parse_remove_position,
    parse_set_position,
)
from tickhub.core.commands.trades import parse_add_trade, parse_delete_trade, parse_list_trades
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import Interval
from tickhub.core.protocol import ProtocolError, type_of, unknown_type
from tickhub.core.topics import Endpoint


def parse_command(
    msg: Mapping[str, Any],
    *,
    endpoint: Endpoint,
    registry: InstrumentRegistry,
    max_symbols: int = defaults.MAX_SYMBOLS_PER_MESSAGE,
    max_indicators: int = defaults.MAX_INDICATORS_PER_SUBSCRIPTION,
    max_period: int = defaults.MAX_INDICATOR_PERIOD,
) -> Command | ProtocolError:
    """The command ``msg`` (a decoded client message) asks for on ``endpoint``, or why not.

    Contract: the error is exactly the one the service answers for this message, and the
    first one it finds (fields are checked in the order the service always checked them).
    An error about the ``type`` itself (missing, not a string, ``unknown_type``) is answered
    without ``request``; every other one is answered with ``request`` = the message's type.
    Unknown fields are ignored. Nothing is looked up but instruments, and nothing is changed.
    """
    kind = type_of(msg)
    if isinstance(kind, ProtocolError):
        return kind
    parse = _PARSERS.get(kind)
    only_on = REQUEST_ENDPOINTS.get(kind)
    if parse is None or (only_on is not None and only_on != endpoint):
        return unknown_type(kind)
    return parse(msg, Context(endpoint, registry, max_symbols, max_indicators, max_period))


def _subscribe(msg: Mapping[str, Any], ctx: Context) -> Subscribe | ProtocolError:
    names = protocol.symbols_of(msg, ctx.max_symbols)
    if isinstance(names, ProtocolError):
        return names
    interval = _interval(msg, ctx.endpoint, Interval.M1)
    if isinstance(interval, ProtocolError):
        return interval
    since = protocol.since_of(msg, names)
    if isinstance(since, ProtocolError):
        return since
    points = {name: ResumePoint(epoch, seq) for name, (epoch, seq) in since.items()}
    indicators = None
    if ctx.endpoint is Endpoint.ANALYSIS:
        chosen = parse_indicators(
            msg.get("indicators"), max_indicators=ctx.max_indicators, max_period=ctx.max_period
        )
        if isinstance(chosen, ProtocolError):
            return chosen
        indicators = chosen
    return Subscribe(
        tuple(names),
        interval,
        MappingProxyType(points),
        batch=msg.get("batch") is True,
        indicators=indicators,
    )


def _unsubscribe(msg: Mapping[str, Any], ctx: Context) -> Unsubscribe | ProtocolError:
    names = protocol.symbols_of(msg, ctx.max_symbols)
    if isinstance(names, ProtocolError):
        return names
    interval = _interval(msg, ctx.endpoint, None)
    if isinstance(interval, ProtocolError):
        return interval
    return Unsubscribe(tuple(names), interval)


def _interval(
    msg: Mapping[str, Any], endpoint: Endpoint, default: Interval | None
) -> Interval | ProtocolError | None:
    """``interval`` on an endpoint with candles (``default`` when absent or null); ignored,
    whatever it holds, on the others."""
    if not endpoint.has_interval:
        return None
    raw = msg.get("interval")
    return default if raw is None else interval_of(raw)


def _heartbeat(msg: Mapping[str, Any], ctx: Context) -> Heartbeat:
    return Heartbeat()


def _ping(msg: Mapping[str, Any], ctx: Context) -> Ping | ProtocolError:
    stamp = protocol.client_timestamp(msg)
    if isinstance(stamp, ProtocolError):
        return stamp
    return Ping(stamp)


def _list_subscriptions(msg: Mapping[str, Any], ctx: Context) -> ListSubscriptions:
    return ListSubscriptions()


def _auth(msg: Mapping[str, Any], ctx: Context) -> Auth:
    token = msg.get("token")
    return Auth(token if isinstance(token, str) else None)


_PARSERS: Final[Mapping[str, Callable[[Mapping[str, Any], Context], Command | ProtocolError]]] = (
    MappingProxyType(
        {
            Subscribe.type: _subscribe,
            Unsubscribe.type: _unsubscribe,
            Heartbeat.type: _heartbeat,
            Ping.type: _ping,
            ListSubscriptions.type: _list_subscriptions,
            Auth.type: _auth,
            CreateAlert.type: parse_create_alert,
            ListAlerts.type: parse_list_alerts,
            DeleteAlert.type: parse_delete_alert,
            SetPosition.type: parse_set_position,
            RemovePosition.type: parse_remove_position,
            ListPositions.type: parse_list_positions,
            AddTrade.type: parse_add_trade,
            ListTrades.type: parse_list_trades,
            DeleteTrade.type: parse_delete_trade,
        }
    )
)
