"""The checker's verdicts on messages already received, without a socket: what passes, and the
report line a client-breaking message gets."""

from __future__ import annotations

from tickhub.devtools.checker.report import Results
from tickhub.devtools.checker.shapes import FIELDS
from tickhub.devtools.checker.values import Message, Received
from tickhub.devtools.checker.verdicts import (
    WELCOME_TEXT,
    check_ack,
    check_envelope,
    check_fields,
    check_seq,
    check_timestamps,
    check_welcome,
)

STAMP = "2026-12-04T01:51:07.731Z"


def data(seq: int, *, snapshot: bool = False, **body: object) -> Message:
    msg: Message = {
        "type": "data",
        "symbol": "RELIANCE",
        "timestamp": STAMP,
        "data_type": "tick_data",
        "seq": seq,
        "epoch": "e1",
        "data": {"price": 1.0, "volume": 2, "change": 0.0, "change_percent": 0.0, **body},
    }
    if snapshot:
        msg["snapshot"] = True
    return msg


def lines(results: Results) -> list[str]:
    return [r.line() for r in results.results]


def test_welcome_word_for_word_passes_and_a_missing_one_says_why() -> None:
    results = Results("/ws/stream")
    welcome = {
        "type": "connection",
        "status": "connected",
        "message": WELCOME_TEXT,
        "timestamp": STAMP,
    }
    check_welcome(results, (0, welcome), "no welcome message within 5s")
    check_welcome(results, None, "no welcome message within 5s")
    assert lines(results)[0] == "PASS  /ws/stream     welcome message"
    assert lines(results)[1].startswith("FAIL  /ws/stream     welcome message: expected ")
    assert lines(results)[1].endswith(", got no welcome message within 5s")


def test_ack_takes_the_servers_spelling_of_what_was_asked() -> None:
    results = Results("/ws/stream")
    ack = {
        "type": "subscription",
        "status": "subscribed",
        "symbol": "RELIANCE",
        "requested": "reliance",
        "timestamp": STAMP,
    }
    assert check_ack(results, (3, ack), "subscribe ack", "subscribed", "reliance", "-") == (
        "RELIANCE"
    )
    error = {"type": "error", "code": "unknown_symbol", "message": "unknown symbol: 'NOPE'"}
    assert check_ack(results, (4, error), "subscribe ack", "subscribed", "NOPE", "-") is None
    assert lines(results) == [
        "PASS  /ws/stream     subscribe ack",
        'FAIL  /ws/stream     subscribe ack: expected {"type": "subscription", "status": '
        '"subscribed", "symbol": "NOPE"}, got error unknown_symbol: unknown symbol: \'NOPE\'',
    ]


def test_envelope_names_every_field_that_breaks_it() -> None:
    results = Results("/ws/stream")
    check_envelope(results, [data(1), data(2)], "RELIANCE")
    bad = data(0)
    del bad["epoch"]
    check_envelope(results, [bad], "RELIANCE")
    assert lines(results)[0] == "PASS  /ws/stream     data envelope (2 messages)"
    assert ", got seq 0, epoch missing in {" in lines(results)[1]


def test_fields_are_required_on_snapshots_too() -> None:
    results = Results("/ws/stream")
    snapshot = data(1, snapshot=True, price="1.0")
    check_fields(results, [data(2), snapshot], FIELDS["stream"])
    assert lines(results) == [
        "FAIL  /ws/stream     data fields: expected data.price, data.volume, data.change and "
        "data.change_percent (numbers) on every market_data/tick_data message, got tick_data "
        "seq 1 (snapshot) with data.price is a string"
    ]


def test_seq_grows_by_one_after_older_snapshots() -> None:
    results = Results("/ws/stream")
    live = [data(5), data(6), data(7)]
    check_seq(results, live, [data(4, snapshot=True), *live], "RELIANCE", 5.0)
    check_seq(results, [data(5), data(7)], [data(5), data(7)], "RELIANCE", 5.0)
    check_seq(results, [data(8), data(9)], [data(9, snapshot=True), data(8)], "RELIANCE", 5.0)
    check_seq(results, [data(5)], [data(5)], "RELIANCE", 5.0)
    assert lines(results) == [
        "PASS  /ws/stream     seq +1 per topic (3 messages, seq 5..7)",
        "FAIL  /ws/stream     seq +1 per topic: expected seq to grow by one per data message of "
        "the topic (same epoch), got seq 5 then 7 (tick_data)",
        "FAIL  /ws/stream     seq +1 per topic: expected snapshots older than the live messages "
        "after them, got snapshot seq 9 after live seq 8",
        "FAIL  /ws/stream     seq +1 per topic: expected seq to grow by one per data message of "
        "the topic (same epoch), got 1 data message within 5s, nothing to compare",
    ]


def test_one_live_message_of_a_topic_sent_on_change_is_not_a_failure() -> None:
    results = Results("/ws/alerts")
    seen = [data(1, snapshot=True), data(2)]
    check_seq(results, [data(2)], seen, "RELIANCE", 5.0, on_change=True)
    check_seq(results, [], [data(1, snapshot=True)], "RELIANCE", 5.0, on_change=True)
    assert lines(results) == [
        "PASS  /ws/alerts     seq +1 per topic (1 live message within 5s; sent on change only, "
        "nothing to compare)",
        "FAIL  /ws/alerts     seq +1 per topic: expected seq to grow by one per data message of "
        "the topic (same epoch), got 0 data message within 5s, nothing to compare",
    ]


def test_every_frame_must_be_a_json_object_with_type_and_timestamp() -> None:
    results = Results("/ws/alerts")
    check_timestamps(results, [Received(0.0, data(1), "{}")])
    check_timestamps(results, [Received(0.0, data(1), "{}"), Received(0.1, None, b"\x00")])
    assert lines(results) == [
        "PASS  /ws/alerts     message format (1 messages)",
        "FAIL  /ws/alerts     message format: expected JSON objects with a string type and a "
        "YYYY-MM-DDTHH:MM:SS.mmmZ timestamp, got b'\\x00'",
    ]


def test_a_candle_must_carry_price_equal_to_close() -> None:
    results = Results("/ws/stream")
    candle = {
        "interval": "1m",
        "start": STAMP,
        "open": 1.0,
        "high": 2.0,
        "low": 1.0,
        "close": 1.5,
        "volume": 3,
        "closed": False,
    }
    msg = {**data(1), "data_type": "candle_data"}
    check_fields(results, [{**msg, "data": {**candle, "price": 1.5}}], FIELDS["stream"])
    check_fields(results, [{**msg, "data": candle}], FIELDS["stream"])
    check_fields(results, [{**msg, "data": {**candle, "price": 1.0}}], FIELDS["stream"])
    first, missing, wrong = lines(results)
    assert first.startswith("PASS")
    assert missing.endswith("got candle_data seq 1 with data.price missing")
    assert wrong.endswith("got candle_data seq 1 with data.price 1.0 is not data.close 1.5")
