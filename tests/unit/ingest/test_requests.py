"""The requests of ``/ws/alerts`` and ``/ws/portfolio``, through ``Requests.handle``.

Each change must be in the store (read back through a second connection to the same SQLite
file) by the time its reply is sent, and announced on the owner's topic after it; a bad request
gets one ``error`` naming the request, with the code and message a client can act on, and
changes nothing. Owners are separate: one never sees, changes or deletes another's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fakes import BusRecorder, HandlerTable, RecordingReplier, ScriptedFeed, tick
from tests.helpers import seed_view
from tickhub.bus.memory import MemoryBus
from tickhub.core.commands import NOTE_MAX_LENGTH, REQUEST_ENDPOINTS, ListPositions
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import Interval
from tickhub.core.protocol import ErrorCode, iso
from tickhub.core.topics import ALL_SYMBOLS, Endpoint, topic
from tickhub.engines.alerts import AlertRules
from tickhub.ingest.alerts import StoredAlerts
from tickhub.ingest.pipeline import Ingest
from tickhub.ingest.portfolio import StoredPortfolio
from tickhub.ingest.requests import Requests
from tickhub.runtime.clock import ManualClock
from tickhub.store.sqlite import SqliteStore

REGISTRY = InstrumentRegistry.bundled()
Msg = dict[str, Any]


class Service:
    """The ingest with its store and its requests, as one process runs them."""

    def __init__(self, path: Path, rules: AlertRules | None = None) -> None:
        self.clock = ManualClock()
        self.bus = MemoryBus()
        self.store = SqliteStore(path)
        self.reader = SqliteStore(path)  # another connection: sees only what was committed
        self.ingest = Ingest(
            feed=ScriptedFeed(),
            registry=REGISTRY,
            bus=self.bus,
            clock=self.clock,
            intervals=(Interval.M1,),
            alerts=StoredAlerts(self.store, rules or AlertRules(builtin_rules=frozenset())),
            portfolio=StoredPortfolio(self.store, now=self.clock.now),
        )
        self.changes = 0
        self.requests = Requests(REGISTRY, self.clock, self.ingest, on_change=self._changed)

    def _changed(self) -> None:
        self.changes += 1

    def ask(self, session: RecordingReplier, kind: str, **msg: Any) -> Msg:
        """The one answer to a request."""
        self.requests.handle(kind, session, {"type": kind, **msg})
        return session.last()

    def listen(self, t: str) -> BusRecorder:
        recorder = BusRecorder()
        self.bus.subscribe(t, recorder)
        return recorder

    def stored_alerts(self) -> list[tuple[str, str, str]]:
        return [(a.owner, a.id, a.symbol) for a in self.reader.load_alerts() if a.source == "user"]

    def stored_positions(self, owner: str | None = None) -> dict[tuple[str, str], int]:
        return {
            (str(r["owner"]), str(r["symbol"])): int(str(r["quantity"]))
            for r in self.reader.load_positions(owner)
        }

    def close(self) -> None:
        self.store.close()
        self.reader.close()


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    service = Service(tmp_path / "tickhub.sqlite3")
    yield service
    service.close()


def decoded(recorder: BusRecorder) -> list[Msg]:
    return [orjson.loads(p) for p in recorder.payloads]


def error(code: ErrorCode, message: str, request: str, details: Msg | None, now: str) -> Msg:
    body: Msg = {"type": "error", "message": message, "timestamp": now, "code": code.value}
    if details is not None:
        body["details"] = details
    body["request"] = request
    return body


def test_register_serves_each_request_kind_on_its_endpoint(svc: Service) -> None:
    host = HandlerTable()
    svc.requests.register(host)
    assert set(host.handlers) == {(endpoint, kind) for kind, endpoint in REQUEST_ENDPOINTS.items()}
    assert {k for (e, k) in host.handlers if e is Endpoint.ALERTS} == {
        "create_alert",
        "list_alerts",
        "delete_alert",
    }
    session = RecordingReplier("u")
    host.handlers[(Endpoint.PORTFOLIO, "list_positions")](session, ListPositions())
    assert session.last()["type"] == "positions"


# --- alerts ---------------------------------------------------------------------------------------


def test_create_alert_is_saved_before_the_reply_and_then_announced_to_its_owner(
    svc: Service,
) -> None:
    mine = svc.listen(topic(Endpoint.ALERTS, "RELIANCE", owner="u"))
    anonymous = svc.listen("alerts:RELIANCE")
    seen_at_reply: list[list[tuple[str, str, str]]] = []
    session = RecordingReplier("u", on_send=lambda: seen_at_reply.append(svc.stored_alerts()))

    reply = svc.ask(session, "create_alert", symbol=" reliance ", condition="Above", value=2500.5)
    alert = reply["alert"]
    assert (reply["type"], reply["status"], reply["timestamp"]) == (
        "alert",
        "created",
        iso(svc.clock.now()),
    )
    assert {k: alert[k] for k in ("symbol", "condition", "value", "owner", "once", "note")} == {
        "symbol": "RELIANCE",
        "condition": "above",
        "value": 2500.5,
        "owner": "u",
        "once": True,
        "note": None,
    }
    assert (alert["triggered"], alert["fired"], alert["armed"]) == (False, False, True)
    assert seen_at_reply == [[("u", alert["id"], "RELIANCE")]]
    assert svc.changes == 1
    (announced,) = decoded(mine)
    assert announced["data_type"] == "alert_data"
    assert [a["id"] for a in announced["data"]["price_alerts"]] == [alert["id"]]
    assert anonymous.messages == []


def test_create_alert_keeps_once_and_note(svc: Service) -> None:
    session = RecordingReplier("u")
    reply = svc.ask(
        session,
        "create_alert",
        symbol="INFY",
        condition="percent_change",
        value=2,
        once=False,
        note="earnings",
    )
    assert {k: reply["alert"][k] for k in ("condition", "value", "once", "note")} == {
        "condition": "percent_change",
        "value": 2.0,
        "once": False,
        "note": "earnings",
    }
    (saved,) = svc.reader.load_alerts()
    assert (saved.once, saved.note, saved.value) == (False, "earnings", 2.0)


ALERT = {"symbol": "RELIANCE", "condition": "above", "value": 2500}


@pytest.mark.parametrize(
    ("msg", "code", "message", "details"),
    [
        ({}, ErrorCode.MISSING_FIELD, "missing field: 'symbol'", {"field": "symbol"}),
        (
            {"symbol": ""},
            ErrorCode.MISSING_FIELD,
            "missing field: 'symbol'",
            {"field": "symbol"},
        ),
        (
            {"symbol": 42},
            ErrorCode.INVALID_FIELD,
            "field 'symbol' must be a string",
            {"field": "symbol"},
        ),
        (
            {**ALERT, "symbol": "NOSUCHCO"},
            ErrorCode.UNKNOWN_SYMBOL,
            "unknown symbol: 'NOSUCHCO'",
            {"symbol": "NOSUCHCO"},
        ),
        (
            {"symbol": "RELIANCE", "value": 1},
            ErrorCode.MISSING_FIELD,
            "missing field: 'condition'",
            {"field": "condition"},
        ),
        (
            {"symbol": "RELIANCE", "condition": "above"},
            ErrorCode.MISSING_FIELD,
            "missing field: 'value'",
            {"field": "value"},
        ),
        (
            {**ALERT, "condition": "sideways"},
            ErrorCode.INVALID_FIELD,
            "unknown condition: 'sideways' "
            "(allowed: above, below, cross_up, cross_down, percent_change)",
            {
                "field": "condition",
                "allowed": ["above", "below", "cross_up", "cross_down", "percent_change"],
            },
        ),
        (
            {**ALERT, "value": "2500"},
            ErrorCode.INVALID_FIELD,
            "field 'value' must be a number, got string",
            {"field": "value"},
        ),
        (
            {**ALERT, "value": True},
            ErrorCode.INVALID_FIELD,
            "field 'value' must be a number, got boolean",
            {"field": "value"},
        ),
        (
            {**ALERT, "value": 2500.125},
            ErrorCode.INVALID_FIELD,
            "field 'value' must have at most 2 decimals, got 2500.125",
            {"field": "value", "decimals": 2},
        ),
        (
            {**ALERT, "once": "yes"},
            ErrorCode.INVALID_FIELD,
            "field 'once' must be a boolean, got string",
            {"field": "once"},
        ),
        (
            {**ALERT, "note": "n" * (NOTE_MAX_LENGTH + 1)},
            ErrorCode.INVALID_FIELD,
            f"field 'note' is too long: {NOTE_MAX_LENGTH + 1} characters "
            f"(at most {NOTE_MAX_LENGTH})",
            {"field": "note"},
        ),
    ],
)
def test_a_bad_create_alert_is_answered_with_its_error_and_changes_nothing(
    svc: Service, msg: Msg, code: ErrorCode, message: str, details: Msg
) -> None:
    mine = svc.listen(topic(Endpoint.ALERTS, "RELIANCE", owner="u"))
    session = RecordingReplier("u")
    reply = svc.ask(session, "create_alert", **msg)
    assert reply == error(code, message, "create_alert", details, iso(svc.clock.now()))
    assert svc.stored_alerts() == []
    assert svc.ingest.alerts.list("u") == []
    assert (svc.changes, mine.messages) == (0, [])


def test_a_value_out_of_range_names_the_range(svc: Service) -> None:
    reply = svc.ask(RecordingReplier("u"), "create_alert", **{**ALERT, "value": 0})
    assert reply["code"] == ErrorCode.INVALID_FIELD.value
    assert reply["message"] == "field 'value' must be a price from 0.01 to 1000000000, got 0"
    assert reply["details"] == {"field": "value", "min": 0.01, "max": 1e9}


def test_an_owner_holds_at_most_the_limit_of_alerts(tmp_path: Path) -> None:
    svc = Service(
        tmp_path / "limit.sqlite3", AlertRules(builtin_rules=frozenset(), max_alerts_per_owner=2)
    )
    try:
        u = RecordingReplier("u")
        for value in (100, 200):
            assert svc.ask(u, "create_alert", **{**ALERT, "value": value})["status"] == "created"
        reply = svc.ask(u, "create_alert", **{**ALERT, "value": 300})
        assert reply == error(
            ErrorCode.LIMIT_EXCEEDED,
            "too many alerts: 2 (at most 2)",
            "create_alert",
            {"limit": 2},
            iso(svc.clock.now()),
        )
        assert len(svc.stored_alerts()) == 2
        # The limit is per owner: another one still has room.
        assert svc.ask(RecordingReplier("v"), "create_alert", **ALERT)["status"] == "created"
    finally:
        svc.close()


def test_a_failed_write_is_an_internal_error_and_the_alert_is_not_kept(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(svc.store, "save_alert", full)
    reply = svc.ask(RecordingReplier("u"), "create_alert", **ALERT)
    assert reply == error(
        ErrorCode.INTERNAL_ERROR, "internal error", "create_alert", None, iso(svc.clock.now())
    )
    assert svc.ingest.alerts.list("u") == []
    assert svc.changes == 0


def test_list_alerts_shows_the_owner_own_alerts_only(svc: Service) -> None:
    u, v = RecordingReplier("u"), RecordingReplier("v")
    first = svc.ask(u, "create_alert", **ALERT)["alert"]["id"]
    second = svc.ask(u, "create_alert", symbol="INFY", condition="below", value=1500)["alert"]
    theirs = svc.ask(v, "create_alert", **ALERT)["alert"]["id"]
    changes = svc.changes

    listed = svc.ask(u, "list_alerts")
    assert listed["type"] == "alerts"
    assert [a["id"] for a in listed["alerts"]] == [first, second["id"]]  # oldest first
    assert [a["id"] for a in svc.ask(u, "list_alerts", symbol="infy")["alerts"]] == [second["id"]]
    assert [a["id"] for a in svc.ask(v, "list_alerts")["alerts"]] == [theirs]
    assert svc.ask(RecordingReplier(""), "list_alerts")["alerts"] == []
    assert svc.changes == changes  # reading changes nothing

    reply = svc.ask(u, "list_alerts", symbol="NOSUCHCO")
    assert reply == error(
        ErrorCode.UNKNOWN_SYMBOL,
        "unknown symbol: 'NOSUCHCO'",
        "list_alerts",
        {"symbol": "NOSUCHCO"},
        iso(svc.clock.now()),
    )


def test_delete_alert_removes_it_from_the_store_before_the_reply(svc: Service) -> None:
    created = svc.ask(RecordingReplier("u"), "create_alert", **ALERT)["alert"]["id"]
    kept = svc.ask(RecordingReplier("u"), "create_alert", **{**ALERT, "value": 2600})["alert"]
    mine = svc.listen(topic(Endpoint.ALERTS, "RELIANCE", owner="u"))
    seen_at_reply: list[list[tuple[str, str, str]]] = []
    session = RecordingReplier("u", on_send=lambda: seen_at_reply.append(svc.stored_alerts()))
    changes = svc.changes

    reply = svc.ask(session, "delete_alert", id=created)
    assert reply == {
        "type": "alert",
        "timestamp": iso(svc.clock.now()),
        "status": "deleted",
        "id": created,
    }
    assert seen_at_reply == [[("u", kept["id"], "RELIANCE")]]
    assert svc.changes == changes + 1
    (announced,) = decoded(mine)
    assert [a["id"] for a in announced["data"]["price_alerts"]] == [kept["id"]]

    again = svc.ask(RecordingReplier("u"), "delete_alert", id=created)
    assert again == error(
        ErrorCode.NOT_FOUND,
        f"unknown alert: {created!r}",
        "delete_alert",
        {"id": created},
        iso(svc.clock.now()),
    )


def test_one_owner_cannot_delete_another_owner_alert(svc: Service) -> None:
    theirs = svc.ask(RecordingReplier("u"), "create_alert", **ALERT)["alert"]["id"]
    changes = svc.changes
    reply = svc.ask(RecordingReplier("v"), "delete_alert", id=theirs)
    assert reply["code"] == ErrorCode.NOT_FOUND.value  # not "forbidden": it is not there for v
    assert reply["details"] == {"id": theirs}
    assert svc.stored_alerts() == [("u", theirs, "RELIANCE")]
    assert [a.id for a in svc.ingest.alerts.list("u")] == [theirs]
    assert svc.changes == changes


@pytest.mark.parametrize(
    ("msg", "code", "message"),
    [
        ({}, ErrorCode.MISSING_FIELD, "missing field: 'id'"),
        ({"id": ""}, ErrorCode.MISSING_FIELD, "missing field: 'id'"),
        ({"id": 7}, ErrorCode.INVALID_FIELD, "field 'id' must be a string, got number"),
        ({"id": "a_000000000000"}, ErrorCode.NOT_FOUND, "unknown alert: 'a_000000000000'"),
    ],
)
def test_a_bad_delete_alert_is_answered_with_its_error(
    svc: Service, msg: Msg, code: ErrorCode, message: str
) -> None:
    reply = svc.ask(RecordingReplier("u"), "delete_alert", **msg)
    assert (reply["type"], reply["code"], reply["message"], reply["request"]) == (
        "error",
        code.value,
        message,
        "delete_alert",
    )
    assert svc.changes == 0


# --- positions ------------------------------------------------------------------------------------


POSITION = {"symbol": "RELIANCE", "quantity": 10, "average_price": "2450.35"}


def test_set_position_is_saved_before_the_reply_and_then_announced(svc: Service) -> None:
    one = svc.listen(topic(Endpoint.PORTFOLIO, "RELIANCE", owner="u"))
    every = svc.listen(topic(Endpoint.PORTFOLIO, ALL_SYMBOLS, owner="u"))
    seen_at_reply: list[dict[tuple[str, str], int]] = []
    session = RecordingReplier("u", on_send=lambda: seen_at_reply.append(svc.stored_positions()))

    reply = svc.ask(session, "set_position", **POSITION, product="cnc")
    assert (reply["type"], reply["status"], reply["symbol"]) == ("position", "saved", "RELIANCE")
    assert seed_view(reply["position"]) == {
        "symbol": "RELIANCE",
        "quantity": 10,
        "average_price": 2450.35,
        "last_price": None,
        "current_value": 24503.5,
        "invested_value": 24503.5,
        "product": "CNC",
        "exchange": "NSE",
    }
    assert seen_at_reply == [{("u", "RELIANCE"): 10}]
    (row,) = svc.reader.load_positions("u")
    assert (row["average_price"], row["product"]) == ("2450.35", "CNC")
    assert svc.changes == 1
    assert [m["data"]["position"]["quantity"] for m in decoded(one)] == [10]
    assert [(m["symbol"], m["subscription"]) for m in decoded(every)] == [("RELIANCE", ALL_SYMBOLS)]


def test_a_position_is_valued_at_the_last_tick(svc: Service) -> None:
    svc.ingest.on_tick(tick("RELIANCE", svc.clock.now(), 2500.0, 1000, prev_close=2400.0))
    reply = svc.ask(RecordingReplier("u"), "set_position", **POSITION)
    assert reply["position"]["last_price"] == 2500.0
    assert reply["position"]["current_value"] == 25000.0


def test_set_position_to_zero_removes_it_before_the_reply(svc: Service) -> None:
    svc.ask(RecordingReplier("u"), "set_position", **POSITION)
    every = svc.listen(topic(Endpoint.PORTFOLIO, ALL_SYMBOLS, owner="u"))
    seen_at_reply: list[dict[tuple[str, str], int]] = []
    session = RecordingReplier("u", on_send=lambda: seen_at_reply.append(svc.stored_positions()))

    reply = svc.ask(session, "set_position", **{**POSITION, "quantity": 0})
    assert (reply["status"], reply["symbol"], reply["position"]["quantity"]) == (
        "removed",
        "RELIANCE",
        0,
    )
    assert seen_at_reply == [{}]
    (gone,) = decoded(every)
    assert (gone["symbol"], gone["removed"], gone["data"]["position"]["quantity"]) == (
        "RELIANCE",
        True,
        0,
    )
    assert svc.bus.retained_nowait(topic(Endpoint.PORTFOLIO, ALL_SYMBOLS, owner="u")) == []


@pytest.mark.parametrize(
    ("msg", "code", "message"),
    [
        ({}, ErrorCode.MISSING_FIELD, "missing field: 'symbol'"),
        (
            {**POSITION, "symbol": "NOSUCHCO"},
            ErrorCode.UNKNOWN_SYMBOL,
            "unknown symbol: 'NOSUCHCO'",
        ),
        (
            {**POSITION, "symbol": "NIFTY 50"},
            ErrorCode.INVALID_FIELD,
            "field 'symbol' must be a tradable instrument, not an index, got 'NIFTY 50'",
        ),
        (
            {"symbol": "RELIANCE", "average_price": 1},
            ErrorCode.MISSING_FIELD,
            "missing field: 'quantity'",
        ),
        (
            {**POSITION, "quantity": 1.5},
            ErrorCode.INVALID_FIELD,
            "field 'quantity' must be an integer within ±",
        ),
        (
            {**POSITION, "quantity": "10"},
            ErrorCode.INVALID_FIELD,
            "field 'quantity' must be an integer within ±",
        ),
        (
            {**POSITION, "average_price": 0},
            ErrorCode.INVALID_FIELD,
            "field 'average_price' must be a number greater than 0, got 0",
        ),
        (
            {**POSITION, "product": "XYZ"},
            ErrorCode.INVALID_FIELD,
            "field 'product' must be one of CNC, MIS, NRML, got 'XYZ'",
        ),
        (
            {**POSITION, "exchange": "BSE"},
            ErrorCode.UNKNOWN_SYMBOL,
            "unknown symbol: 'BSE:RELIANCE'",
        ),
    ],
)
def test_a_bad_set_position_is_answered_with_its_error_and_saves_nothing(
    svc: Service, msg: Msg, code: ErrorCode, message: str
) -> None:
    mine = svc.listen(topic(Endpoint.PORTFOLIO, "RELIANCE", owner="u"))
    reply = svc.ask(RecordingReplier("u"), "set_position", **msg)
    assert (reply["type"], reply["code"], reply["request"]) == ("error", code.value, "set_position")
    assert str(reply["message"]).startswith(message)
    assert svc.stored_positions() == {}
    assert svc.ingest.portfolio.positions("u") == []
    assert (svc.changes, mine.messages) == (0, [])


def test_a_failed_position_write_is_an_internal_error_and_memory_is_unchanged(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc.ask(RecordingReplier("u"), "set_position", **POSITION)

    def full(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(svc.store, "save_position", full)
    reply = svc.ask(RecordingReplier("u"), "set_position", **{**POSITION, "quantity": 25})
    assert (reply["code"], reply["message"], reply["request"]) == (
        ErrorCode.INTERNAL_ERROR.value,
        "internal error",
        "set_position",
    )
    (held,) = svc.ingest.portfolio.positions("u")
    assert held.quantity == 10
    assert svc.stored_positions() == {("u", "RELIANCE"): 10}
    assert svc.changes == 1


def test_remove_position_deletes_it_before_the_reply(svc: Service) -> None:
    svc.ask(RecordingReplier("u"), "set_position", **POSITION)
    svc.ask(RecordingReplier("u"), "set_position", **{**POSITION, "symbol": "INFY"})
    every = svc.listen(topic(Endpoint.PORTFOLIO, ALL_SYMBOLS, owner="u"))
    seen_at_reply: list[dict[tuple[str, str], int]] = []
    session = RecordingReplier("u", on_send=lambda: seen_at_reply.append(svc.stored_positions()))
    changes = svc.changes

    reply = svc.ask(session, "remove_position", symbol="reliance")
    assert reply == {
        "type": "position",
        "timestamp": iso(svc.clock.now()),
        "status": "removed",
        "symbol": "RELIANCE",
    }
    assert seen_at_reply == [{("u", "INFY"): 10}]
    assert svc.changes == changes + 1
    assert [(m["symbol"], m.get("removed")) for m in decoded(every)] == [("RELIANCE", True)]

    again = svc.ask(RecordingReplier("u"), "remove_position", symbol="RELIANCE")
    assert again == error(
        ErrorCode.NOT_FOUND,
        "no position in 'RELIANCE'",
        "remove_position",
        {"symbol": "RELIANCE"},
        iso(svc.clock.now()),
    )


@pytest.mark.parametrize(
    ("msg", "code", "message"),
    [
        ({}, ErrorCode.MISSING_FIELD, "missing field: 'symbol'"),
        ({"symbol": ["RELIANCE"]}, ErrorCode.INVALID_FIELD, "field 'symbol' must be a string"),
        ({"symbol": "NOSUCHCO"}, ErrorCode.UNKNOWN_SYMBOL, "unknown symbol: 'NOSUCHCO'"),
    ],
)
def test_a_bad_remove_position_is_answered_with_its_error(
    svc: Service, msg: Msg, code: ErrorCode, message: str
) -> None:
    reply = svc.ask(RecordingReplier("u"), "remove_position", **msg)
    assert (reply["type"], reply["code"], reply["message"], reply["request"]) == (
        "error",
        code.value,
        message,
        "remove_position",
    )


def test_one_owner_cannot_see_or_remove_another_owner_positions(svc: Service) -> None:
    u, v = RecordingReplier("u"), RecordingReplier("v")
    svc.ask(u, "set_position", **POSITION)
    svc.ask(u, "set_position", **{**POSITION, "symbol": "INFY", "quantity": -5})
    svc.ask(v, "set_position", **{**POSITION, "quantity": 3})

    mine = svc.ask(u, "list_positions")
    assert mine["type"] == "positions"
    assert sorted((p["symbol"], p["quantity"]) for p in mine["positions"]) == [
        ("INFY", -5),
        ("RELIANCE", 10),
    ]
    assert mine["portfolio"]["positions"] == 2
    theirs = svc.ask(v, "list_positions")
    assert [(p["symbol"], p["quantity"]) for p in theirs["positions"]] == [("RELIANCE", 3)]
    assert theirs["portfolio"]["positions"] == 1
    assert svc.ask(RecordingReplier(""), "list_positions")["positions"] == []

    changes = svc.changes
    assert svc.ask(v, "remove_position", symbol="INFY")["code"] == ErrorCode.NOT_FOUND.value
    assert svc.ask(v, "remove_position", symbol="RELIANCE")["status"] == "removed"
    assert svc.stored_positions() == {("u", "RELIANCE"): 10, ("u", "INFY"): -5}
    assert svc.changes == changes + 1
