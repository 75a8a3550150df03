"""The verdicts on what an endpoint sent: the replies to each step and the messages as a whole.

These are the protocol's contract as a client sees it (docs/protocol.md), written out here (the
welcome text, the error texts and codes) rather than imported from the server, so that a change
to the server that breaks a client also breaks the check. They only judge messages already
received: no I/O, no waiting, so that the contract changes apart from how a session is driven.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from tickhub.devtools.checker.report import Results
from tickhub.devtools.checker.shapes import TYPE_SHAPES, Fields
from tickhub.devtools.checker.values import (
    MISSING,
    TIMESTAMP_FORMAT,
    Message,
    Received,
    clip,
    compact,
    is_timestamp,
    kind,
    nonempty_str,
    seq_of,
    show,
)

__all__ = [
    "INVALID_JSON_TEXT",
    "WELCOME_TEXT",
    "check_ack",
    "check_envelope",
    "check_fields",
    "check_seq",
    "check_timestamps",
    "check_welcome",
    "is_data",
    "is_live_data",
    "reply_problem",
]

WELCOME_TEXT = "WebSocket connection established successfully"
INVALID_JSON_TEXT = "Invalid JSON format"

Reply = tuple[int, Message] | None
"""A reply found (its index among the messages received, the message), or None if none came."""


def is_data(msg: Message, symbol: str) -> bool:
    """Whether ``msg`` is a data message of ``symbol``, snapshot or live."""
    return msg.get("type") == "data" and msg.get("symbol") == symbol


def is_live_data(msg: Message, symbol: str) -> bool:
    """Whether ``msg`` is a data message of ``symbol`` that is not a snapshot."""
    return is_data(msg, symbol) and not msg.get("snapshot")


def reply_problem(reply: Reply, fields: Message, nothing: str) -> str | None:
    """What is wrong with ``reply`` given the ``fields`` it must have and a timestamp, or None.

    ``nothing`` is what to say when no reply came (why: a timeout or the connection's close).
    """
    if reply is None:
        return nothing
    msg = reply[1]
    wrong = [f"{k} {show(msg.get(k, MISSING))}" for k, v in fields.items() if msg.get(k) != v]
    if not is_timestamp(msg.get("timestamp")):
        wrong.append(f"timestamp {show(msg.get('timestamp', MISSING))}")
    return ", ".join(wrong) + f" in {clip(compact(msg))}" if wrong else None


def check_welcome(results: Results, welcome: Reply, nothing: str) -> None:
    """The first message of a connection: the seed's welcome, word for word."""
    expected = f'{{"type": "connection", "status": "connected", "message": "{WELCOME_TEXT}"}}'
    problem = reply_problem(
        welcome, {"type": "connection", "status": "connected", "message": WELCOME_TEXT}, nothing
    )
    results.verdict("welcome message", f"{expected} with a {TIMESTAMP_FORMAT} timestamp", problem)


def check_ack(
    results: Results, ack: Reply, name: str, status: str, symbol: str, nothing: str
) -> str | None:
    """A (un)subscribe acknowledgement; the symbol as the server spells it if it passed, else None.

    The server answers with its own spelling (RELIANCE for reliance) and says what was asked.
    """
    expected = f'{{"type": "subscription", "status": "{status}", "symbol": "{symbol}"}}'
    if ack is None:
        results.verdict(name, expected, nothing)
        return None
    msg = ack[1]
    if msg.get("type") == "error":
        got = f"error {msg.get('code')}: {msg.get('message')}"
        results.verdict(name, expected, got)
        return None
    acked = msg.get("symbol")
    same = acked == symbol or (
        isinstance(acked, str) and msg.get("requested") == symbol and status == "subscribed"
    )
    problem = reply_problem(ack, {"type": "subscription", "status": status}, nothing)
    if problem is None and not same:
        problem = f"symbol {show(acked)} in {clip(compact(msg))}"
    ok = results.verdict(name, expected, problem)
    return acked if ok and isinstance(acked, str) else None


def check_envelope(results: Results, data: Sequence[Message], symbol: str) -> None:
    """Every data message: its symbol, ``data`` object, ``seq``, ``epoch``, ``data_type``."""
    name = "data envelope"
    expected = (
        f"every data message for {symbol} with timestamp, data_type, seq (int >= 1), "
        "epoch (string) and data (object)"
    )
    for msg in data:
        problems = []
        if msg.get("symbol") != symbol:
            problems.append(f"symbol {show(msg.get('symbol', MISSING))}")
        if not isinstance(msg.get("data"), dict):
            problems.append(f"data {kind(msg.get('data', MISSING))}")
        seq = msg.get("seq", MISSING)
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            problems.append(f"seq {show(seq)}")
        if not nonempty_str(msg.get("epoch")):
            problems.append(f"epoch {show(msg.get('epoch', MISSING))}")
        if not nonempty_str(msg.get("data_type")):
            problems.append(f"data_type {show(msg.get('data_type', MISSING))}")
        if "snapshot" in msg and msg["snapshot"] is not True:
            problems.append(f"snapshot {show(msg['snapshot'])}")
        if problems:
            results.failed(name, expected, f"{', '.join(problems)} in {clip(compact(msg))}")
            return
    results.passed(name, f"{len(data)} messages")


def check_fields(results: Results, data: Sequence[Message], rule: Fields) -> None:
    """The seed's JavaScript reads its fields from every data message, snapshots included."""
    name = "data fields"
    expected = f"{rule.describe} on {rule.scope}"
    for msg in data:
        body = msg.get("data")
        if not isinstance(body, dict):
            continue  # reported by the envelope check
        data_type = msg.get("data_type")
        problems = rule.problems(body) if rule.applies(msg) else []
        if isinstance(data_type, str) and data_type in TYPE_SHAPES:
            problems += TYPE_SHAPES[data_type](body)
        if problems:
            snapshot = " (snapshot)" if msg.get("snapshot") else ""
            got = f"{data_type} seq {msg.get('seq')}{snapshot} with {', '.join(problems)}"
            results.failed(name, expected, got)
            return
    results.passed(name, f"{len(data)} messages")


def check_seq(
    results: Results,
    live: Sequence[Message],
    data: Sequence[Message],
    symbol: str,
    timeout: float,
    *,
    on_change: bool = False,
) -> None:
    """``seq`` grows by one per live message of a topic; snapshots come before the live ones.

    ``on_change``: the topic sends a message only when its state changes (``alert_data``: a
    quiet market may change nothing for minutes), so one live message alone is not a failure."""
    name = "seq +1 per topic"
    expected = "seq to grow by one per data message of the topic (same epoch)"
    if len(live) < 2 and on_change and live:
        results.passed(
            name, f"1 live message within {timeout:g}s; sent on change only, nothing to compare"
        )
        return
    if len(live) < 2:
        got = f"{len(live)} data message within {timeout:g}s, nothing to compare"
        results.failed(name, expected, got)
        return
    snapshots = [m for m in data if is_data(m, symbol) and m.get("snapshot")]
    first = live[0]
    for snap in snapshots:
        if snap.get("epoch") == first.get("epoch") and seq_of(snap) >= seq_of(first):
            got = f"snapshot seq {snap.get('seq')} after live seq {first.get('seq')}"
            results.failed(name, "snapshots older than the live messages after them", got)
            return
    for prev, msg in itertools.pairwise(live):
        if msg.get("epoch") == prev.get("epoch") and seq_of(msg) != seq_of(prev) + 1:
            got = f"seq {prev.get('seq')} then {msg.get('seq')} ({msg.get('data_type')})"
            results.failed(name, expected, got)
            return
    results.passed(name, f"{len(live)} messages, seq {first.get('seq')}..{live[-1].get('seq')}")


def check_timestamps(results: Results, received: Sequence[Received]) -> None:
    """Every frame received: a JSON object with a string ``type`` and a timestamp."""
    name = "message format"
    expected = f"JSON objects with a string type and a {TIMESTAMP_FORMAT} timestamp"
    for frame in received:
        msg = frame.msg
        if msg is None:
            results.failed(name, expected, f"{clip(repr(frame.raw))}")
            return
        if not isinstance(msg.get("type"), str) or not is_timestamp(msg.get("timestamp")):
            results.failed(name, expected, clip(compact(msg)))
            return
    results.passed(name, f"{len(received)} messages")
