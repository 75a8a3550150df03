"""Requests: a forwarded raw message is checked as the hub checks it, then served typed."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes import ScriptedFeed
from tickhub.bus.memory import MemoryBus
from tickhub.core.commands import Heartbeat
from tickhub.core.instruments import InstrumentRegistry
from tickhub.ingest.pipeline import Ingest
from tickhub.ingest.requests import Requests
from tickhub.runtime.clock import ManualClock

REGISTRY = InstrumentRegistry.bundled()


class _Collector:
    user = "alice"

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, payload: bytes) -> None:
        self.sent.append(json.loads(payload))


def _requests() -> Requests:
    clock = ManualClock()
    ingest = Ingest(feed=ScriptedFeed(), registry=REGISTRY, bus=MemoryBus(), clock=clock)
    return Requests(REGISTRY, clock, ingest)


def test_a_raw_request_is_parsed_then_served() -> None:
    requests, replier = _requests(), _Collector()
    msg = {"type": "create_alert", "symbol": "infy", "condition": "above", "value": 1500}
    requests.handle("create_alert", replier, msg)
    (reply,) = replier.sent
    assert (reply["type"], reply["status"]) == ("alert", "created")
    alert = reply["alert"]
    assert (alert["symbol"], alert["owner"], alert["value"]) == ("INFY", "alice", 1500.0)


def test_a_bad_raw_request_gets_the_error_the_hub_gives() -> None:
    requests, replier = _requests(), _Collector()
    requests.handle("delete_alert", replier, {"type": "delete_alert", "id": 7})
    requests.handle("remove_position", replier, {"type": "remove_position", "symbol": "INFY"})
    bad, absent = replier.sent
    assert (bad["code"], bad["message"], bad["request"]) == (
        "invalid_field",
        "field 'id' must be a string, got number",
        "delete_alert",
    )
    assert (absent["code"], absent["request"]) == ("not_found", "remove_position")


def test_a_command_that_is_no_request_is_an_internal_error() -> None:
    requests, replier = _requests(), _Collector()
    requests.handle_command(replier, Heartbeat())
    (error,) = replier.sent
    assert (error["code"], error["request"]) == ("internal_error", "heartbeat")
