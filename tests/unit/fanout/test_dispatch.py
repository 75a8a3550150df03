"""Dispatch: a client message is checked once, into its command, before anything acts on it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.fakes import RecordingPeer
from tickhub.bus.memory import MemoryBus
from tickhub.core.commands import Command, Condition, CreateAlert
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.topics import Endpoint
from tickhub.fanout import Hub, HubLimits, Session
from tickhub.runtime.clock import ManualClock
from tickhub.server import text_frame


def _hub() -> Hub:
    return Hub(MemoryBus(), InstrumentRegistry.bundled(), ManualClock(), text_frame, HubLimits())


def _connect(hub: Hub, endpoint: Endpoint) -> tuple[Session, RecordingPeer]:
    peer = RecordingPeer()
    session = hub.connect(peer, endpoint, "t")
    assert session is not None
    return session, peer


def test_a_command_handler_gets_the_checked_command() -> None:
    hub = _hub()
    got: list[Command] = []
    hub.add_command_handler(Endpoint.ALERTS, "create_alert", lambda s, cmd: got.append(cmd))
    session, _ = _connect(hub, Endpoint.ALERTS)
    hub.receive(
        session,
        b'{"type":"create_alert","symbol":" infy ","condition":"Above","value":1500.5}',
    )
    assert got == [CreateAlert("INFY", Condition.ABOVE, Decimal("1500.5"))]


def test_a_forwarding_handler_gets_the_message_as_sent_once_it_is_checked() -> None:
    hub = _hub()
    got: list[dict[str, Any]] = []
    hub.add_handler(Endpoint.PORTFOLIO, "remove_position", lambda s, msg: got.append(msg))
    session, peer = _connect(hub, Endpoint.PORTFOLIO)
    hub.receive(session, b'{"type":"remove_position","symbol":"NOPE"}')
    assert got == []  # refused at the hub: a gateway does not forward it
    (error,) = [m for m in peer.messages() if m["type"] == "error"]
    assert (error["code"], error["request"]) == ("unknown_symbol", "remove_position")
    hub.receive(session, b'{"type":"remove_position","symbol":"infy","extra":1}')
    assert got == [{"type": "remove_position", "symbol": "infy", "extra": 1}]


def test_a_request_type_without_a_handler_is_unknown() -> None:
    hub = _hub()
    session, peer = _connect(hub, Endpoint.ALERTS)
    hub.receive(session, b'{"type":"create_alert","symbol":"INFY"}')
    (error,) = [m for m in peer.messages() if m["type"] == "error"]
    assert error["code"] == "unknown_type" and "request" not in error
    assert hub.errors == {"unknown_type": 1}
