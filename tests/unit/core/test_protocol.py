"""The wire protocol's pure functions: what a client's message decodes to, which mistake gets
which error code and text, and the exact bytes of the server's replies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from tickhub.core import protocol
from tickhub.core.protocol import CloseCode, ErrorCode, ProtocolError

NOW = datetime(2025, 1, 27, 10, 30, 0, 123456, tzinfo=UTC)


def err(value: object) -> ProtocolError:
    assert isinstance(value, ProtocolError), f"expected an error, got {value!r}"
    return value


# --- time ---------------------------------------------------------------------------------------


def test_iso_is_utc_with_milliseconds_truncated_and_z() -> None:
    assert protocol.iso(NOW) == "2025-01-27T10:30:00.123Z"
    ist = timezone(timedelta(hours=5, minutes=30))
    assert protocol.iso(datetime(2025, 1, 27, 16, 0, 0, 999999, tzinfo=ist)) == (
        "2025-01-27T10:30:00.999Z"  # converted to UTC, truncated, never rounded up to :01
    )
    assert protocol.iso(datetime(2025, 1, 27, 0, 0, tzinfo=UTC)).endswith("T00:00:00.000Z")


# --- decode -------------------------------------------------------------------------------------


def test_decode_returns_the_object_with_its_type() -> None:
    assert protocol.decode(b'{"type":"ping","x":1}') == {"type": "ping", "x": 1}
    assert protocol.decode('{"type":"subscribe"}') == {"type": "subscribe"}


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        (b"{not json", ErrorCode.INVALID_JSON, "Invalid JSON format"),
        (b"", ErrorCode.INVALID_JSON, "Invalid JSON format"),
        (b"[1,2]", ErrorCode.INVALID_MESSAGE, "message must be a JSON object, got array"),
        (b'"ping"', ErrorCode.INVALID_MESSAGE, "message must be a JSON object, got string"),
        (b"3", ErrorCode.INVALID_MESSAGE, "message must be a JSON object, got number"),
        (b"true", ErrorCode.INVALID_MESSAGE, "message must be a JSON object, got boolean"),
        (b"null", ErrorCode.INVALID_MESSAGE, "message must be a JSON object, got null"),
        (b"{}", ErrorCode.MISSING_FIELD, "missing field: 'type'"),
        (b'{"type":""}', ErrorCode.MISSING_FIELD, "missing field: 'type'"),
        (b'{"type":null}', ErrorCode.MISSING_FIELD, "missing field: 'type'"),
        (b'{"type":5}', ErrorCode.INVALID_FIELD, "field 'type' must be a string"),
    ],
)
def test_decode_errors_have_a_stable_code_and_the_seed_text(
    raw: bytes, code: ErrorCode, message: str
) -> None:
    e = err(protocol.decode(raw))
    assert (e.code, e.message) == (code, message)


def test_decode_names_the_type_field_in_details() -> None:
    assert err(protocol.decode(b"{}")).details == {"field": "type"}
    assert err(protocol.decode(b"{not json")).details == {}


# --- symbols_of ---------------------------------------------------------------------------------


def test_symbols_of_merges_symbol_and_symbols_stripped_in_order_without_repeats() -> None:
    msg = {"symbol": " INFY ", "symbols": ["TCS", "INFY", " ", "RELIANCE", "TCS"]}
    assert protocol.symbols_of(msg) == ["INFY", "TCS", "RELIANCE"]


def test_symbols_of_limit_is_inclusive_and_counts_the_single_symbol_too() -> None:
    assert protocol.symbols_of({"symbols": ["A", "B", "C"]}, limit=3) == ["A", "B", "C"]
    e = err(protocol.symbols_of({"symbol": "X", "symbols": ["A", "B", "C"]}, limit=3))
    assert e.code is ErrorCode.TOO_MANY_SYMBOLS
    assert e.message == "too many symbols in one message: 4 (at most 3)"
    assert e.details == {"limit": 3, "count": 4, "setting": "MAX_SYMBOLS_PER_MESSAGE"}


@pytest.mark.parametrize(
    ("msg", "code", "message", "field"),
    [
        ({}, ErrorCode.MISSING_FIELD, "missing field: 'symbol'", "symbol"),
        ({"symbol": "  "}, ErrorCode.MISSING_FIELD, "field 'symbol' is empty", "symbol"),
        ({"symbols": []}, ErrorCode.MISSING_FIELD, "field 'symbols' is empty", "symbols"),
        ({"symbols": [" "]}, ErrorCode.MISSING_FIELD, "field 'symbols' is empty", "symbols"),
        ({"symbol": 7}, ErrorCode.INVALID_FIELD, "field 'symbol' must be a string", "symbol"),
        (
            {"symbols": "INFY"},
            ErrorCode.INVALID_FIELD,
            "field 'symbols' must be a list of strings",
            "symbols",
        ),
        (
            {"symbols": ["INFY", 3]},
            ErrorCode.INVALID_FIELD,
            "field 'symbols' must be a list of strings",
            "symbols",
        ),
    ],
)
def test_symbols_of_errors(
    msg: dict[str, object], code: ErrorCode, message: str, field: str
) -> None:
    e = err(protocol.symbols_of(msg))
    assert (e.code, e.message, e.details["field"]) == (code, message, field)


def test_an_empty_symbol_beside_a_list_is_not_an_error() -> None:
    assert protocol.symbols_of({"symbol": "", "symbols": ["INFY"]}) == ["INFY"]


def test_symbol_length_boundary_and_the_long_name_is_clipped_in_the_error() -> None:
    at_limit = "A" * protocol.MAX_SYMBOL_LENGTH
    assert protocol.symbols_of({"symbol": at_limit}) == [at_limit]
    too_long = "B" * (protocol.MAX_SYMBOL_LENGTH + 10)
    e = err(protocol.symbols_of({"symbols": ["INFY", too_long]}))
    assert e.code is ErrorCode.INVALID_FIELD
    clipped = "B" * protocol.ECHO_LENGTH + "..."
    assert e.message == f"symbol names are at most 64 characters: {clipped!r}"
    assert e.details == {"field": "symbols", "limit": 64}


# --- client_timestamp ---------------------------------------------------------------------------


def test_client_timestamp_accepts_short_strings_and_numbers_only() -> None:
    assert protocol.client_timestamp({}) is None
    assert protocol.client_timestamp({"timestamp": "t1"}) == "t1"
    assert protocol.client_timestamp({"timestamp": "x" * 64}) == "x" * 64
    assert protocol.client_timestamp({"timestamp": 17}) == 17
    assert protocol.client_timestamp({"timestamp": 1.5}) == 1.5
    for bad in ("x" * 65, True, None, [1], {"a": 1}):
        e = err(protocol.client_timestamp({"timestamp": bad}))
        assert e.code is ErrorCode.INVALID_FIELD
        assert e.details == {"field": "timestamp"}


# --- what errors echo ---------------------------------------------------------------------------


def test_clip_shown_and_listed() -> None:
    assert protocol.clip("a" * 64) == "a" * 64
    assert protocol.clip("a" * 65) == "a" * 64 + "..."
    assert protocol.shown("INFY") == "'INFY'"
    assert protocol.shown(3) == "3"
    assert protocol.shown(None) == "None"
    assert protocol.shown(True) == "True"
    assert protocol.shown({"k": "secret"}) == "a JSON object"
    assert protocol.shown([1]) == "a JSON array"
    assert protocol.listed(["A", "B"]) == "'A', 'B'"
    names = [f"S{i}" for i in range(12)]
    assert protocol.listed(names) == "'S0', 'S1', 'S2', 'S3', 'S4' and 7 more"
    assert protocol.listed(names[:5]) == "'S0', 'S1', 'S2', 'S3', 'S4'"


# --- since_of -----------------------------------------------------------------------------------


def test_since_of_single_form_applies_to_the_first_symbol() -> None:
    msg = {"since": {"epoch": "e1", "seq": 42}}
    assert protocol.since_of(msg, ["INFY", "TCS"]) == {"INFY": ("e1", 42)}
    assert protocol.since_of({}, ["INFY"]) == {}


def test_since_of_per_symbol_form() -> None:
    msg = {"since": {"INFY": {"epoch": "e", "seq": 1}, " TCS ": {"epoch": "f", "seq": 0}}}
    assert protocol.since_of(msg, ["INFY", "TCS"]) == {"INFY": ("e", 1), "TCS": ("f", 0)}


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ([1], "field 'since' must be an object with 'epoch' and 'seq'"),
        ({"INFY": 3}, "since['INFY'] must be an object"),
        ({"epoch": "e"}, "field 'since' needs 'epoch' (string) and 'seq' (integer)"),
        ({"epoch": 1, "seq": 1}, "field 'since' needs 'epoch' (string) and 'seq' (integer)"),
        ({"epoch": "e", "seq": True}, "field 'since' needs 'epoch' (string) and 'seq' (integer)"),
        ({"epoch": "e", "seq": 1.0}, "field 'since' needs 'epoch' (string) and 'seq' (integer)"),
    ],
)
def test_since_of_errors(since: object, message: str) -> None:
    e = err(protocol.since_of({"since": since}, ["INFY"]))
    assert (e.code, e.message, e.details) == (ErrorCode.INVALID_FIELD, message, {"field": "since"})


# --- encoding -----------------------------------------------------------------------------------


def test_welcome_keeps_the_seed_fields_and_adds_the_protocol_version() -> None:
    body = orjson.loads(protocol.welcome(NOW, "/ws/stream", "c1"))
    assert body == {
        "type": "connection",
        "status": "connected",
        "timestamp": "2025-01-27T10:30:00.123Z",
        "message": "WebSocket connection established successfully",
        "endpoint": "/ws/stream",
        "connection_id": "c1",
        "protocol_version": protocol.PROTOCOL_VERSION,
    }


def test_replies_carry_type_timestamp_and_extra_fields() -> None:
    ts = "2025-01-27T10:30:00.123Z"
    assert orjson.loads(protocol.subscription(NOW, "subscribed", "INFY", interval="1m")) == {
        "type": "subscription",
        "status": "subscribed",
        "symbol": "INFY",
        "timestamp": ts,
        "interval": "1m",
    }
    assert orjson.loads(protocol.heartbeat_ack(NOW)) == {
        "type": "heartbeat",
        "status": "ack",
        "timestamp": ts,
    }
    assert orjson.loads(protocol.pong(NOW, client_timestamp=5)) == {
        "type": "pong",
        "timestamp": ts,
        "client_timestamp": 5,
    }
    assert orjson.loads(protocol.reply(NOW, "status", feed="live")) == {
        "type": "status",
        "timestamp": ts,
        "feed": "live",
    }


def test_error_message_has_code_and_details_only_when_there_are_some() -> None:
    plain = orjson.loads(protocol.error(NOW, ProtocolError(ErrorCode.NOT_FOUND, "no such")))
    assert plain == {
        "type": "error",
        "message": "no such",
        "timestamp": "2025-01-27T10:30:00.123Z",
        "code": "not_found",
    }
    e = ProtocolError(ErrorCode.LIMIT_EXCEEDED, "too many", {"limit": 2})
    detailed = orjson.loads(protocol.error(NOW, e, symbol="INFY"))
    assert detailed["details"] == {"limit": 2}
    assert detailed["symbol"] == "INFY"
    assert detailed["code"] == "limit_exceeded"


def test_encode_accepts_non_string_keys() -> None:
    by_number: dict[Any, str] = {1: "a"}  # e.g. figures keyed by a close code
    assert protocol.encode(by_number) == b'{"1":"a"}'


def test_mark_snapshot_adds_the_flag_without_touching_the_rest() -> None:
    payload = protocol.encode({"type": "data", "seq": 3, "data": {"price": 1.5}})
    marked = protocol.mark_snapshot(payload)
    assert orjson.loads(marked) == {"snapshot": True, **orjson.loads(payload)}
    assert marked.startswith(b'{"snapshot":true,"type"')


# --- close codes --------------------------------------------------------------------------------


def test_close_codes_fall_in_the_range_that_tells_the_client_what_to_do() -> None:
    reconnect = [CloseCode.SLOW_CONSUMER, CloseCode.IDLE_TIMEOUT, CloseCode.RATE_LIMITED]
    assert all(c in CloseCode.RECONNECT for c in reconnect)
    stay_away = [
        CloseCode.AUTH_FAILED,
        CloseCode.AUTH_EXPIRED,
        CloseCode.AUTH_TIMEOUT,
        CloseCode.LIMIT_EXCEEDED,
    ]
    assert all(c in CloseCode.DO_NOT_RECONNECT and c not in CloseCode.RECONNECT for c in stay_away)
    assert CloseCode.RECONNECT.stop == CloseCode.DO_NOT_RECONNECT.start == 4500


def test_error_codes_are_distinct_snake_case_strings() -> None:
    values = [c.value for c in ErrorCode]
    assert len(values) == len(set(values))
    assert all(v == v.lower() and " " not in v for v in values)
    assert ErrorCode("rate_limited") is ErrorCode.RATE_LIMITED
