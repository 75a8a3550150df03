"""Typed client commands: every message type parsed, every validation error as today.

The reference for each error is the service as it answers today: the message is sent through a
real hub with the alert and position requests registered (no network), and its ``error`` reply
must carry the code, message and details :func:`parse_command` returns, with ``request`` exactly
when the contract says so. Where another reader of the same fields is public (the positions
files' ``parse_positions``, ``protocol.symbols_of``...) it is called as a reference too.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import pytest

from tests.fakes import ScriptedFeed
from tickhub.bus.memory import MemoryBus
from tickhub.core import commands, protocol
from tickhub.core.commands import (
    Auth,
    Condition,
    CreateAlert,
    DeleteAlert,
    Heartbeat,
    ListAlerts,
    ListPositions,
    ListSubscriptions,
    Ping,
    Product,
    RemovePosition,
    ResumePoint,
    SetPosition,
    Subscribe,
    Unsubscribe,
    parse_command,
    parse_position_fields,
)
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import Interval
from tickhub.core.protocol import ErrorCode, ProtocolError
from tickhub.core.topics import Endpoint
from tickhub.engines import alerts as alerts_engine
from tickhub.engines import portfolio as portfolio_engine
from tickhub.fanout.hub import Hub
from tickhub.fanout.limits import HubLimits
from tickhub.ingest.pipeline import Ingest
from tickhub.ingest.requests import Requests
from tickhub.runtime.clock import ManualClock

REGISTRY = InstrumentRegistry.bundled()
STREAM, ANALYSIS, ALERTS, PORTFOLIO = (
    Endpoint.STREAM,
    Endpoint.ANALYSIS,
    Endpoint.ALERTS,
    Endpoint.PORTFOLIO,
)


def parse(msg: dict[str, Any], endpoint: Endpoint = STREAM, **kw: Any) -> Any:
    return parse_command(msg, endpoint=endpoint, registry=REGISTRY, **kw)


# --- the reference: today's hub and requests -----------------------------------------------------


class _Peer:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def send(self, payload: bytes) -> None:
        self.payloads.append(payload)

    def send_frame(self, frame: bytes) -> None:
        self.payloads.append(frame)

    def close(self, code: int, reason: str) -> None:
        pass

    def ping(self) -> None:
        pass


def _service_answer(msg: dict[str, Any], endpoint: Endpoint, max_symbols: int = 200) -> Any:
    """What today's hub answers first to ``msg`` on ``endpoint`` (a fresh hub each time)."""
    clock = ManualClock()
    bus = MemoryBus()
    limits = HubLimits(max_symbols_per_message=max_symbols)
    hub = Hub(bus, REGISTRY, clock, lambda payload: payload, limits)
    ingest = Ingest(feed=ScriptedFeed(), registry=REGISTRY, bus=bus, clock=clock)
    Requests(REGISTRY, clock, ingest).register(hub)
    peer = _Peer()
    session = hub.connect(peer, endpoint, "127.0.0.1")
    assert session is not None
    peer.payloads.clear()  # the welcome
    hub.receive(session, json.dumps(msg).encode())
    assert peer.payloads, f"no answer to {msg}"
    return json.loads(peer.payloads[0])


def assert_as_today(msg: dict[str, Any], endpoint: Endpoint, max_symbols: int = 200) -> Any:
    """``parse_command``'s error for ``msg`` is exactly the error the service answers (both
    given the message as ``protocol.decode`` reads it: 2**70 arrives as a float)."""
    decoded = protocol.decode(json.dumps(msg))
    got = parse(
        msg if isinstance(decoded, ProtocolError) else decoded, endpoint, max_symbols=max_symbols
    )
    if isinstance(decoded, ProtocolError):  # a bad ``type``: decode refuses it the same way
        assert decoded == got
    assert isinstance(got, ProtocolError), got
    answer = _service_answer(msg, endpoint, max_symbols)
    assert answer["type"] == "error", answer
    assert answer["code"] == got.code.value
    assert answer["message"] == got.message
    assert answer.get("details", {}) == json.loads(json.dumps(dict(got.details)))
    about_type = got.code is ErrorCode.UNKNOWN_TYPE or got.details.get("field") == "type"
    if about_type:
        assert "request" not in answer
    else:
        assert answer["request"] == msg["type"]
    return got


def assert_accepted_today(msg: dict[str, Any], endpoint: Endpoint) -> None:
    answer = _service_answer(msg, endpoint)
    assert answer["type"] != "error", answer


# --- every command, parsed ---------------------------------------------------------------------


def test_subscribe_seed_form() -> None:
    assert parse({"type": "subscribe", "symbol": "RELIANCE"}) == Subscribe(
        ("RELIANCE",), Interval.M1
    )


def test_subscribe_several_with_interval_keeps_order_drops_repeats_and_blanks() -> None:
    msg = {"type": "subscribe", "symbols": ["INFY", " reliance ", "", "INFY"], "interval": "5m"}
    cmd = parse(msg, ANALYSIS)
    assert cmd == Subscribe(("INFY", "reliance"), Interval.M5)
    assert isinstance(cmd.names, tuple)


def test_subscribe_symbol_and_symbols_together() -> None:
    cmd = parse({"type": "subscribe", "symbol": "TCS", "symbols": ["INFY"]})
    assert cmd.names == ("TCS", "INFY")


def test_subscribe_interval_is_ignored_where_there_are_no_candles() -> None:
    for endpoint in (ALERTS, PORTFOLIO):
        cmd = parse({"type": "subscribe", "symbol": "RELIANCE", "interval": 5}, endpoint)
        assert cmd == Subscribe(("RELIANCE",), None)
        assert_accepted_today({"type": "subscribe", "symbol": "RELIANCE", "interval": 5}, endpoint)


def test_subscribe_portfolio_wildcard() -> None:
    assert parse({"type": "subscribe", "symbol": "*"}, PORTFOLIO).names == ("*",)


def test_subscribe_since_one_point() -> None:
    msg = {"type": "subscribe", "symbol": "RELIANCE", "since": {"epoch": "d9355214", "seq": 157}}
    cmd = parse(msg)
    assert dict(cmd.since) == {"RELIANCE": ResumePoint("d9355214", 157)}


def test_subscribe_since_per_symbol() -> None:
    msg = {
        "type": "subscribe",
        "symbols": ["INFY", "TCS"],
        "since": {"INFY": {"epoch": "d9355214", "seq": 29}, "TCS": {"epoch": "00000000", "seq": 5}},
    }
    cmd = parse(msg)
    assert dict(cmd.since) == {
        "INFY": ResumePoint("d9355214", 29),
        "TCS": ResumePoint("00000000", 5),
    }
    assert dict(parse({**msg, "since": None}).since) == {}


def test_subscribe_batch_only_when_true() -> None:
    assert parse({"type": "subscribe", "symbol": "INFY", "batch": True}).batch is True
    assert parse({"type": "subscribe", "symbol": "INFY", "batch": 1}).batch is False
    assert parse({"type": "subscribe", "symbol": "INFY"}).batch is False


def test_unsubscribe() -> None:
    assert parse({"type": "unsubscribe", "symbol": "RELIANCE"}) == Unsubscribe(("RELIANCE",))
    cmd = parse({"type": "unsubscribe", "symbol": "RELIANCE", "interval": "5m"})
    assert cmd == Unsubscribe(("RELIANCE",), Interval.M5)
    assert parse({"type": "unsubscribe", "symbol": "X", "interval": "5m"}, ALERTS).interval is None


def test_heartbeat_ping_list_subscriptions_auth() -> None:
    assert parse({"type": "heartbeat", "timestamp": 1706352600.123}) == Heartbeat()
    assert parse({"type": "heartbeat", "timestamp": {"any": "thing"}}) == Heartbeat()
    assert parse({"type": "ping", "timestamp": 1706352600.123}) == Ping(1706352600.123)
    assert parse({"type": "ping", "timestamp": "after"}) == Ping("after")
    assert parse({"type": "ping"}) == Ping(None)
    assert parse({"type": "list_subscriptions"}) == ListSubscriptions()
    assert parse({"type": "auth", "token": "secret-key"}, ALERTS) == Auth("secret-key")
    assert parse({"type": "auth", "token": 5}) == Auth(None)
    assert parse({"type": "auth"}) == Auth(None)


def test_every_endpoint_takes_the_common_messages() -> None:
    for endpoint in Endpoint:
        for kind in ("heartbeat", "ping", "list_subscriptions", "auth"):
            assert not isinstance(parse({"type": kind}, endpoint), ProtocolError)


def test_create_alert_from_the_docs() -> None:
    msg = {
        "type": "create_alert",
        "symbol": "reliance",
        "condition": "above",
        "value": 2600,
        "once": True,
        "note": "take profit",
    }
    assert parse(msg, ALERTS) == CreateAlert(
        "RELIANCE", Condition.ABOVE, Decimal(2600), True, "take profit"
    )
    assert_accepted_today(msg, ALERTS)


def test_create_alert_defaults_and_normalisation() -> None:
    msg = {"type": "create_alert", "symbol": "INFY", "condition": " Cross_Up ", "value": 0.1}
    cmd = parse({**msg, "note": ""}, ALERTS)
    assert cmd == CreateAlert("INFY", Condition.CROSS_UP, Decimal("0.1"), True, None)
    pct = parse({**msg, "condition": "percent_change", "value": 2.5, "once": False}, ALERTS)
    assert (pct.condition, pct.value, pct.once) == (Condition.PERCENT_CHANGE, Decimal("2.5"), False)


def test_list_and_delete_alert() -> None:
    assert parse({"type": "list_alerts", "symbol": "RELIANCE"}, ALERTS) == ListAlerts("RELIANCE")
    assert parse({"type": "list_alerts"}, ALERTS) == ListAlerts(None)
    assert parse({"type": "list_alerts", "symbol": ""}, ALERTS) == ListAlerts(None)
    assert parse({"type": "delete_alert", "id": "a_9540d3242d15"}, ALERTS) == DeleteAlert(
        "a_9540d3242d15"
    )


def test_set_position_from_the_docs() -> None:
    msg = {
        "type": "set_position",
        "symbol": "WIPRO",
        "quantity": 10,
        "average_price": "250.5",
        "product": "cnc",
    }
    cmd = parse(msg, PORTFOLIO)
    assert cmd == SetPosition("WIPRO", 10, Decimal("250.5"), "NSE", Product.CNC)
    assert_accepted_today(msg, PORTFOLIO)


def test_set_position_is_the_position_the_service_saves() -> None:
    for msg, exact in (
        ({"symbol": "RELIANCE", "quantity": -10, "average_price": "105.50"}, "105.50"),
        ({"symbol": "SBIN", "quantity": 40, "average_price": 812.45}, "812.45"),
        ({"symbol": "NSE:TCS", "quantity": 3, "average_price": 3000, "product": "mis"}, "3000"),
        ({"symbol": "MARUTI", "quantity": 1, "average_price": 11900, "exchange": "nse"}, "11900"),
    ):
        request = {"type": "set_position", **msg}
        cmd = parse(request, PORTFOLIO)
        assert isinstance(cmd, SetPosition) and cmd.average_price == Decimal(exact)
        product = None if cmd.product is None else cmd.product.value
        position = portfolio_engine.position_of(cmd)
        assert position == portfolio_engine.Position(
            cmd.symbol, cmd.quantity, Decimal(exact), product, cmd.exchange
        )
        answer = _service_answer(request, PORTFOLIO)
        assert answer["type"] == "position" and answer["status"] == "saved", answer
        saved = answer["position"]
        assert (saved["symbol"], saved["quantity"], saved["product"], saved["exchange"]) == (
            cmd.symbol,
            cmd.quantity,
            product,
            cmd.exchange,
        )
        assert saved["average_price"] == float(exact)
    zero = {"symbol": "MARUTI", "quantity": 0, "average_price": 11900, "exchange": "nse"}
    assert parse({"type": "set_position", **zero}, PORTFOLIO) == SetPosition(
        "MARUTI", 0, Decimal(11900), "NSE"
    )


def test_remove_and_list_positions() -> None:
    assert parse({"type": "remove_position", "symbol": "wipro"}, PORTFOLIO) == RemovePosition(
        "WIPRO"
    )
    assert parse({"type": "list_positions"}, PORTFOLIO) == ListPositions()


def test_commands_are_frozen() -> None:
    cmd = parse({"type": "subscribe", "symbol": "INFY"})
    with pytest.raises(AttributeError):
        cmd.names = ()
    with pytest.raises(TypeError):
        cmd.since["INFY"] = ResumePoint("x", 1)


def test_every_message_type_has_a_command() -> None:
    served: dict[str, Endpoint] = {}

    class Host:
        def add_command_handler(self, endpoint: Endpoint, kind: str, handler: Any) -> None:
            served[kind] = endpoint

    clock = ManualClock()
    ingest = Ingest(feed=ScriptedFeed(), registry=REGISTRY, bus=MemoryBus(), clock=clock)
    Requests(REGISTRY, clock, ingest).register(Host())
    types = {c.type for c in commands.Command.__args__}
    assert types == {
        "subscribe",
        "unsubscribe",
        "heartbeat",
        "ping",
        "list_subscriptions",
        "auth",
        *served,
    }
    assert dict(commands.REQUEST_ENDPOINTS) == served


# --- every validation error, as the service answers it today ----------------------------------

ERRORS: list[tuple[Endpoint, dict[str, Any], str, str]] = [
    # type
    (STREAM, {"symbol": "RELIANCE"}, "missing_field", "missing field: 'type'"),
    (STREAM, {"type": ""}, "missing_field", "missing field: 'type'"),
    (STREAM, {"type": 5}, "invalid_field", "field 'type' must be a string"),
    (STREAM, {"type": "fly"}, "unknown_type", "unknown message type: 'fly'"),
    (STREAM, {"type": "x" * 100}, "unknown_type", "unknown message type: '" + "x" * 64 + "...'"),
    (ALERTS, {"type": "set_position"}, "unknown_type", "unknown message type: 'set_position'"),
    (STREAM, {"type": "create_alert", "symbol": 5}, "unknown_type", ""),
    (PORTFOLIO, {"type": "delete_alert"}, "unknown_type", ""),
    (ANALYSIS, {"type": "list_positions"}, "unknown_type", ""),
    # symbols
    (STREAM, {"type": "subscribe"}, "missing_field", "missing field: 'symbol'"),
    (STREAM, {"type": "subscribe", "symbol": ""}, "missing_field", "field 'symbol' is empty"),
    (STREAM, {"type": "subscribe", "symbols": []}, "missing_field", "field 'symbols' is empty"),
    (
        STREAM,
        {"type": "subscribe", "symbol": 5},
        "invalid_field",
        "field 'symbol' must be a string",
    ),
    (
        STREAM,
        {"type": "subscribe", "symbols": "RELIANCE"},
        "invalid_field",
        "field 'symbols' must be a list of strings",
    ),
    (STREAM, {"type": "unsubscribe", "symbols": [1]}, "invalid_field", ""),
    (STREAM, {"type": "subscribe", "symbol": "A" * 65}, "invalid_field", ""),
    (ALERTS, {"type": "unsubscribe", "symbols": ["  "]}, "missing_field", ""),
    # interval
    (
        STREAM,
        {"type": "subscribe", "symbol": "RELIANCE", "interval": "2m"},
        "unknown_interval",
        "unknown interval: '2m' (allowed: 1m, 3m, 5m, 15m, 30m, 1h, 1d)",
    ),
    (ANALYSIS, {"type": "subscribe", "symbol": "RELIANCE", "interval": 5}, "unknown_interval", ""),
    (STREAM, {"type": "subscribe", "symbol": "RELIANCE", "interval": ""}, "unknown_interval", ""),
    (STREAM, {"type": "subscribe", "symbol": "X", "interval": [1]}, "unknown_interval", ""),
    (
        STREAM,
        {"type": "unsubscribe", "symbol": "RELIANCE", "interval": "1M"},
        "unknown_interval",
        "",
    ),
    (STREAM, {"type": "subscribe", "symbol": "X", "interval": "9" * 80}, "unknown_interval", ""),
    # since
    (
        STREAM,
        {"type": "subscribe", "symbol": "RELIANCE", "since": {"epoch": 5, "seq": "x"}},
        "invalid_field",
        "field 'since' needs 'epoch' (string) and 'seq' (integer)",
    ),
    (
        STREAM,
        {"type": "subscribe", "symbol": "RELIANCE", "since": 17},
        "invalid_field",
        "field 'since' must be an object with 'epoch' and 'seq'",
    ),
    (
        PORTFOLIO,
        {"type": "subscribe", "symbol": "SBIN", "since": {"SBIN": 3}},
        "invalid_field",
        "since['SBIN'] must be an object",
    ),
    (
        STREAM,
        {"type": "subscribe", "symbol": "X", "since": {"epoch": "e", "seq": True}},
        "invalid_field",
        "",
    ),
    # the order of checks: symbols, then interval, then since
    (STREAM, {"type": "subscribe", "symbol": 5, "interval": "2m", "since": 1}, "invalid_field", ""),
    (
        STREAM,
        {"type": "subscribe", "symbol": "X", "interval": "2m", "since": 1},
        "unknown_interval",
        "",
    ),
    # ping
    (
        STREAM,
        {"type": "ping", "timestamp": {"a": 1}},
        "invalid_field",
        "field 'timestamp' must be a string of at most 64 characters or a number",
    ),
    (STREAM, {"type": "ping", "timestamp": "t" * 65}, "invalid_field", ""),
    (STREAM, {"type": "ping", "timestamp": True}, "invalid_field", ""),
    # create_alert
    (ALERTS, {"type": "create_alert"}, "missing_field", "missing field: 'symbol'"),
    (ALERTS, {"type": "create_alert", "condition": "above", "value": 1}, "missing_field", ""),
    (
        ALERTS,
        {"type": "create_alert", "symbol": 5},
        "invalid_field",
        "field 'symbol' must be a string",
    ),
    (ALERTS, {"type": "create_alert", "symbol": "  "}, "unknown_symbol", ""),
    (
        ALERTS,
        {"type": "create_alert", "symbol": "XYZ", "condition": "sideways"},
        "unknown_symbol",
        "unknown symbol: 'XYZ'",
    ),
    (ALERTS, {"type": "create_alert", "symbol": "R" * 90}, "unknown_symbol", ""),
    (
        ALERTS,
        {"type": "create_alert", "symbol": "RELIANCE"},
        "missing_field",
        "missing field: 'condition'",
    ),
    (ALERTS, {"type": "create_alert", "symbol": "RELIANCE", "condition": ""}, "missing_field", ""),
    (
        ALERTS,
        {"type": "create_alert", "symbol": "RELIANCE", "condition": 3},
        "invalid_field",
        "field 'condition' must be a string, got number",
    ),
    (
        ALERTS,
        {"type": "create_alert", "symbol": "RELIANCE", "condition": "sideways", "value": 1},
        "invalid_field",
        "unknown condition: 'sideways' "
        "(allowed: above, below, cross_up, cross_down, percent_change)",
    ),
    (
        ALERTS,
        {"type": "create_alert", "symbol": "RELIANCE", "condition": "above"},
        "missing_field",
        "missing field: 'value'",
    ),
    (
        ALERTS,
        {"type": "create_alert", "symbol": "RELIANCE", "condition": "above", "value": "lots"},
        "invalid_field",
        "field 'value' must be a number, got string",
    ),
    (
        ALERTS,
        {"type": "create_alert", "symbol": "INFY", "condition": "above", "value": True},
        "invalid_field",
        "",
    ),
    (
        ALERTS,
        {"type": "create_alert", "symbol": "INFY", "condition": "above", "value": [1]},
        "invalid_field",
        "",
    ),
    (
        ALERTS,
        {"type": "create_alert", "symbol": "RELIANCE", "condition": "above", "value": -1},
        "invalid_field",
        "field 'value' must be a price from 0.01 to 1000000000, got -1",
    ),
    (
        ALERTS,
        {"type": "create_alert", "symbol": "INFY", "condition": "above", "value": 1e10},
        "invalid_field",
        "",
    ),
    (
        ALERTS,
        {"type": "create_alert", "symbol": "INFY", "condition": "above", "value": 5e-324},
        "invalid_field",
        "",
    ),
    (
        ALERTS,
        {"type": "create_alert", "symbol": "INFY", "condition": "above", "value": 2**64},
        "invalid_field",
        "",
    ),
    (
        ALERTS,
        {"type": "create_alert", "symbol": "INFY", "condition": "above", "value": 100.001},
        "invalid_field",
        "",
    ),
    (
        ALERTS,
        {"type": "create_alert", "symbol": "INFY", "condition": "percent_change", "value": 101},
        "invalid_field",
        "",
    ),
    (
        ALERTS,
        {"type": "create_alert", "symbol": "INFY", "condition": "above", "value": 1, "once": None},
        "invalid_field",
        "field 'once' must be a boolean, got null",
    ),
    (
        ALERTS,
        {"type": "create_alert", "symbol": "INFY", "condition": "above", "value": 1, "once": "yes"},
        "invalid_field",
        "",
    ),
    (
        ALERTS,
        {"type": "create_alert", "symbol": "INFY", "condition": "above", "value": 1, "note": 7},
        "invalid_field",
        "field 'note' must be a string, got number",
    ),
    (
        ALERTS,
        {
            "type": "create_alert",
            "symbol": "INFY",
            "condition": "above",
            "value": 1,
            "note": "n" * 201,
        },
        "invalid_field",
        "field 'note' is too long: 201 characters (at most 200)",
    ),
    # list_alerts / delete_alert
    (ALERTS, {"type": "list_alerts", "symbol": 5}, "invalid_field", ""),
    (ALERTS, {"type": "list_alerts", "symbol": []}, "invalid_field", ""),
    (ALERTS, {"type": "list_alerts", "symbol": "NOPE"}, "unknown_symbol", ""),
    (ALERTS, {"type": "delete_alert"}, "missing_field", "missing field: 'id'"),
    (ALERTS, {"type": "delete_alert", "id": ""}, "missing_field", ""),
    (
        ALERTS,
        {"type": "delete_alert", "id": 12},
        "invalid_field",
        "field 'id' must be a string, got number",
    ),
    (ALERTS, {"type": "delete_alert", "id": {"a": 1}}, "invalid_field", ""),
    # set_position
    (PORTFOLIO, {"type": "set_position"}, "missing_field", "missing field: 'symbol'"),
    (PORTFOLIO, {"type": "set_position", "symbol": " "}, "missing_field", ""),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": 5},
        "invalid_field",
        "field 'symbol' must be a string, got 5",
    ),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "XYZ", "quantity": 1, "average_price": 5},
        "unknown_symbol",
        "",
    ),
    (PORTFOLIO, {"type": "set_position", "symbol": "RELIANCE", "exchange": 5}, "invalid_field", ""),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "RELIANCE", "exchange": "MCX"},
        "unknown_symbol",
        "",
    ),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "NSE:RELIANCE", "exchange": "BSE"},
        "invalid_field",
        "",
    ),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "NIFTY 50", "quantity": 1, "average_price": 5},
        "invalid_field",
        "field 'symbol' must be a tradable instrument, not an index, got 'NIFTY 50'",
    ),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "RELIANCE", "average_price": 5},
        "missing_field",
        "missing field: 'quantity'",
    ),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "RELIANCE", "quantity": 1.5, "average_price": 100},
        "invalid_field",
        "field 'quantity' must be an integer within ±1000000000000, got 1.5",
    ),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "RELIANCE", "quantity": "ten", "average_price": 100},
        "invalid_field",
        "",
    ),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "RELIANCE", "quantity": "10", "average_price": 100},
        "invalid_field",
        "",
    ),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "RELIANCE", "quantity": True, "average_price": 100},
        "invalid_field",
        "",
    ),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "RELIANCE", "quantity": 10**13, "average_price": 1},
        "invalid_field",
        "",
    ),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "RELIANCE", "quantity": 2**70, "average_price": 1},
        "invalid_field",
        "",
    ),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "RELIANCE", "quantity": [1], "average_price": 1},
        "invalid_field",
        "",
    ),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "RELIANCE", "quantity": 1},
        "missing_field",
        "missing field: 'average_price'",
    ),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "RELIANCE", "quantity": 1, "average_price": -5},
        "invalid_field",
        "",
    ),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "RELIANCE", "quantity": 1, "average_price": "1e3"},
        "invalid_field",
        "",
    ),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "RELIANCE", "quantity": 1, "average_price": 0.001},
        "invalid_field",
        "",
    ),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "RELIANCE", "quantity": 1, "average_price": 1e10},
        "invalid_field",
        "",
    ),
    (
        PORTFOLIO,
        {
            "type": "set_position",
            "symbol": "RELIANCE",
            "quantity": 1,
            "average_price": "1." + "1" * 21,
        },
        "invalid_field",
        "",
    ),
    (
        PORTFOLIO,
        {"type": "set_position", "symbol": "RELIANCE", "quantity": 1, "average_price": "x" * 70},
        "invalid_field",
        "",
    ),
    (
        PORTFOLIO,
        {
            "type": "set_position",
            "symbol": "RELIANCE",
            "quantity": 1,
            "average_price": 5,
            "product": "BO",
        },
        "invalid_field",
        "field 'product' must be one of CNC, MIS, NRML, got 'BO'",
    ),
    (
        PORTFOLIO,
        {
            "type": "set_position",
            "symbol": "RELIANCE",
            "quantity": 1,
            "average_price": 5,
            "product": 3,
        },
        "invalid_field",
        "",
    ),
    # remove_position
    (PORTFOLIO, {"type": "remove_position"}, "missing_field", "missing field: 'symbol'"),
    (PORTFOLIO, {"type": "remove_position", "symbol": 1}, "invalid_field", ""),
    (PORTFOLIO, {"type": "remove_position", "symbol": "NOPE"}, "unknown_symbol", ""),
]


@pytest.mark.parametrize(
    ("endpoint", "msg", "code", "message"),
    ERRORS,
    ids=[f"{e.value}-{json.dumps(m)[:60]}" for e, m, _, _ in ERRORS],
)
def test_error_is_the_one_answered_today(
    endpoint: Endpoint, msg: dict[str, Any], code: str, message: str
) -> None:
    got = assert_as_today(msg, endpoint)
    assert got.code.value == code
    if message:
        assert got.message == message


def test_too_many_symbols_uses_the_setting() -> None:
    msg = {"type": "subscribe", "symbol": "A", "symbols": ["B", "C"]}
    got = assert_as_today(msg, STREAM, max_symbols=2)
    assert got.code is ErrorCode.TOO_MANY_SYMBOLS
    assert got.message == "too many symbols in one message: 3 (at most 2)"
    assert dict(got.details) == {"limit": 2, "count": 3, "setting": "MAX_SYMBOLS_PER_MESSAGE"}
    big = {"type": "unsubscribe", "symbols": ["S"] * 201}
    assert assert_as_today(big, STREAM).code is ErrorCode.TOO_MANY_SYMBOLS
    assert not isinstance(parse({**big, "type": "subscribe"}, max_symbols=201), ProtocolError)


def test_details_of_some_errors() -> None:
    unknown = parse({"type": "create_alert", "symbol": "XYZ"}, ALERTS)
    assert dict(unknown.details) == {"symbol": "XYZ"}
    value = parse(
        {"type": "create_alert", "symbol": "INFY", "condition": "above", "value": -1}, ALERTS
    )
    assert dict(value.details) == {"field": "value", "min": 0.01, "max": 1e9}
    qty = parse({"type": "set_position", "symbol": "RELIANCE", "quantity": 1.5}, PORTFOLIO)
    assert dict(qty.details) == {"field": "quantity", "value": 1.5}
    long = parse({"type": "set_position", "symbol": "INFY", "quantity": "q" * 70}, PORTFOLIO)
    assert dict(long.details) == {"field": "quantity"}  # a long string is not echoed
    interval = parse({"type": "subscribe", "symbol": "X", "interval": 5})
    assert dict(interval.details) == {"interval": "5"}


# --- create_alert: every field's refusal ------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "code", "message"),
    [
        (
            {"condition": "sideways"},
            ErrorCode.INVALID_FIELD,
            "unknown condition: 'sideways' (allowed: above, below, cross_up, cross_down, "
            "percent_change)",
        ),
        (
            {"condition": 5},
            ErrorCode.INVALID_FIELD,
            "field 'condition' must be a string, got number",
        ),
        ({"condition": None}, ErrorCode.MISSING_FIELD, "missing field: 'condition'"),
        ({"condition": ""}, ErrorCode.MISSING_FIELD, "missing field: 'condition'"),
        ({"value": None}, ErrorCode.MISSING_FIELD, "missing field: 'value'"),
        ({"value": "2500"}, ErrorCode.INVALID_FIELD, "field 'value' must be a number, got string"),
        ({"value": "abc"}, ErrorCode.INVALID_FIELD, "field 'value' must be a number, got string"),
        ({"value": True}, ErrorCode.INVALID_FIELD, "field 'value' must be a number, got boolean"),
        ({"value": [1]}, ErrorCode.INVALID_FIELD, "field 'value' must be a number, got array"),
        ({"value": math.nan}, ErrorCode.INVALID_FIELD, "field 'value' must be a finite number"),
        ({"value": math.inf}, ErrorCode.INVALID_FIELD, "field 'value' must be a finite number"),
        (
            {"value": 10**400},
            ErrorCode.INVALID_FIELD,
            "field 'value' must be a price from 0.01 to 1000000000, got 1000",
        ),
        (
            {"value": -5},
            ErrorCode.INVALID_FIELD,
            "field 'value' must be a price from 0.01 to 1000000000, got -5",
        ),
        (
            {"value": 0},
            ErrorCode.INVALID_FIELD,
            "field 'value' must be a price from 0.01 to 1000000000, got 0",
        ),
        (
            {"value": 5e-324},
            ErrorCode.INVALID_FIELD,
            "field 'value' must be a price from 0.01 to 1000000000, got 5e-324",
        ),
        (
            {"value": 1e10},
            ErrorCode.INVALID_FIELD,
            "field 'value' must be a price from 0.01 to 1000000000, got 1",
        ),
        (
            {"value": 2500.125},
            ErrorCode.INVALID_FIELD,
            "field 'value' must have at most 2 decimals, got 2500.125",
        ),
        (
            {"condition": "percent_change", "value": 150},
            ErrorCode.INVALID_FIELD,
            "field 'value' must be a percentage from 0.01 to 100, got 150",
        ),
        (
            {"condition": "percent_change", "value": -1.5},
            ErrorCode.INVALID_FIELD,
            "field 'value' must be a percentage from 0.01 to 100, got -1.5",
        ),
        ({"once": "yes"}, ErrorCode.INVALID_FIELD, "field 'once' must be a boolean, got string"),
        ({"once": 1}, ErrorCode.INVALID_FIELD, "field 'once' must be a boolean, got number"),
        ({"once": None}, ErrorCode.INVALID_FIELD, "field 'once' must be a boolean, got null"),
        ({"note": 123}, ErrorCode.INVALID_FIELD, "field 'note' must be a string, got number"),
        (
            {"note": "x" * 201},
            ErrorCode.INVALID_FIELD,
            "field 'note' is too long: 201 characters (at most 200)",
        ),
        ({"symbol": ""}, ErrorCode.MISSING_FIELD, "missing field: 'symbol'"),
        ({"symbol": None}, ErrorCode.MISSING_FIELD, "missing field: 'symbol'"),
        ({"symbol": 7}, ErrorCode.INVALID_FIELD, "field 'symbol' must be a string"),
    ],
)
def test_create_alert_rejects_bad_input(
    kwargs: dict[str, object], code: ErrorCode, message: str
) -> None:
    msg: dict[str, Any] = {
        "type": "create_alert",
        "symbol": "RELIANCE",
        "condition": "above",
        "value": 2500.0,
        **kwargs,
    }
    err = parse(msg, ALERTS)
    assert isinstance(err, ProtocolError)
    assert err.code is code
    assert err.message.startswith(message)
    assert err.details["field"] in {"symbol", "condition", "value", "once", "note"}
    value = msg["value"]
    if not isinstance(value, float | int) or (abs(value) < 2**64 and math.isfinite(value)):
        assert assert_as_today(msg, ALERTS) == err  # JSON can carry it: the hub answers it


# --- today's public validators as references ---------------------------------------------------


@pytest.mark.parametrize(
    "row",
    [
        {"symbol": "RELIANCE", "quantity": "10", "average_price": "2500.5"},
        {"symbol": "RELIANCE", "quantity": " -3 ", "average_price": "1"},
        {"symbol": "RELIANCE", "quantity": "1.5", "average_price": "1"},
        {"symbol": "RELIANCE", "quantity": "ten", "average_price": "1"},
    ],
)
def test_file_rows_match_parse_positions(row: dict[str, str]) -> None:
    text = "symbol,quantity,average_price\n" + ",".join(row.values()) + "\n"
    got = parse_position_fields(row, REGISTRY, text=True)
    try:
        (ref,) = portfolio_engine.parse_positions(text, REGISTRY, "p.csv")
    except portfolio_engine.PortfolioFileError as exc:
        assert isinstance(got, ProtocolError)
        assert exc.reason == got.message
        return
    assert isinstance(got, SetPosition)
    assert (got.symbol, got.quantity, got.average_price) == (
        ref.symbol,
        ref.quantity,
        ref.average_price,
    )


def test_subscribe_symbols_match_symbols_of() -> None:
    msg = {"type": "subscribe", "symbol": " A ", "symbols": ["B", "A", ""]}
    assert list(parse(msg).names) == protocol.symbols_of(msg)


def test_conditions_are_the_engines() -> None:
    assert tuple(c.value for c in Condition) == alerts_engine.CONDITIONS
