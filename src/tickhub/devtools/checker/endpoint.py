"""One endpoint's check: the seed protocol walked step by step over one connection.

The order of the steps is the conversation a seed client has (docs/protocol.md): welcome,
subscribe, data, heartbeat, ping, invalid JSON, unknown type, unsubscribe and the quiet period
after it; then the messages received are judged as a whole (data fields, envelope, ``seq``,
timestamps). Every wait is bounded by ``timeout``; the only wait that is meant to expire is the
quiet period after an unsubscribe.
"""

from __future__ import annotations

import itertools
import time

from tickhub.core import defaults
from tickhub.devtools.checker.connection import Abort, Connection
from tickhub.devtools.checker.report import CheckResult, Results
from tickhub.devtools.checker.shapes import FIELDS
from tickhub.devtools.checker.target import Target
from tickhub.devtools.checker.values import Message, any_message, nonempty_str, show, types
from tickhub.devtools.checker.verdicts import (
    INVALID_JSON_TEXT,
    check_ack,
    check_envelope,
    check_fields,
    check_seq,
    check_timestamps,
    check_welcome,
    is_data,
    is_live_data,
    reply_problem,
)

__all__ = ["QUIET_MIN", "EndpointCheck"]

QUIET_MIN = 2 * defaults.UPDATE_INTERVAL
"""Least seconds to listen for stray data after an unsubscribe ack (two default update periods)."""


class EndpointCheck:
    """One connection to one endpoint (``name``: stream, analysis...) walked through the steps."""

    def __init__(self, target: Target, name: str, symbol: str, timeout: float) -> None:
        self.path = f"/ws/{name}"
        self.url = f"{target.ws_base}{self.path}"
        self.name = name
        self.symbol = symbol
        self.timeout = timeout
        self.results = Results(self.path)

    async def run(self) -> list[CheckResult]:
        """Walk the protocol; the results in the order checked. Never raises but cancellation."""
        try:
            await self._run()
        except Abort:
            pass
        except Exception as exc:
            # A checker bug must still end in a readable report.
            self.results.failed("checker", "no internal error", repr(exc))
        return self.results.results

    async def _run(self) -> None:
        conn = Connection(self.url, self.timeout, self.results)
        await conn.open()
        try:
            await self._steps(conn)
        finally:
            await conn.close()

    def _is_data(self, msg: Message) -> bool:
        return is_data(msg, self.symbol)

    def _is_live_data(self, msg: Message) -> bool:
        return is_live_data(msg, self.symbol)

    def _ack(
        self, conn: Connection, ack: tuple[int, Message] | None, name: str, status: str
    ) -> bool:
        acked = check_ack(self.results, ack, name, status, self.symbol, conn.nothing())
        if acked is not None:
            self.symbol = acked
        return acked is not None

    async def _steps(self, conn: Connection) -> None:
        t = self.timeout
        welcome = await conn.wait(0, any_message, t)
        check_welcome(self.results, welcome, conn.nothing("welcome message"))

        mark = await conn.send({"type": "subscribe", "symbol": self.symbol})
        ack = await conn.wait(mark, types("subscription", "error"), t)
        if not self._ack(conn, ack, "subscribe ack", "subscribed"):
            await self._control_steps(conn)
            check_timestamps(self.results, conn.received)
            return
        assert ack is not None
        window_start = ack[0]

        first, first_ok = await self._check_first_data(conn, window_start)

        await self._control_steps(conn)

        if first is not None:
            # A second live message, so that seq has something to be compared with.
            await conn.wait(first[0] + 1, self._is_live_data, t)

        mark = await conn.send({"type": "unsubscribe", "symbol": self.symbol})
        unack = await conn.wait(mark, types("subscription", "error"), t)
        unsubscribed = self._ack(conn, unack, "unsubscribe ack", "unsubscribed")
        window_end = unack[0] if unack is not None else len(conn.received)
        if unsubscribed and unack is not None:
            await self._check_quiet(conn, unack[0])

        window = [r.msg for r in conn.received[window_start:window_end] if r.msg is not None]
        data = [m for m in window if m.get("type") == "data"]
        if data:
            check_envelope(self.results, data, self.symbol)
            if first_ok:
                # Only when some message had the fields: else "data message" said it already.
                check_fields(self.results, [m for m in data if self._is_data(m)], FIELDS[self.name])
            live = [m for m in data if self._is_live_data(m)]
            on_change = self.name == "/ws/alerts"  # alert_data is sent when the alerts change
            check_seq(self.results, live, data, self.symbol, self.timeout, on_change=on_change)
        check_timestamps(self.results, conn.received)

    async def _check_first_data(
        self, conn: Connection, start: int
    ) -> tuple[tuple[int, Message] | None, bool]:
        """Wait for a live data message with the fields the seed's JavaScript reads."""
        rule = FIELDS[self.name]

        def usable(msg: Message) -> bool:
            body = msg.get("data")
            return (
                self._is_live_data(msg)
                and rule.applies(msg)
                and isinstance(body, dict)
                and not rule.problems(body)
            )

        found = await conn.wait(start, usable, self.timeout)
        expected = f"a data message for {self.symbol} with {rule.describe}"
        if found is not None:
            msg = found[1]
            self.results.passed(
                "data message", f"{msg.get('data_type', 'data')} seq {msg.get('seq')}"
            )
            return found, True
        seen = [
            r.msg for r in conn.received[start:] if r.msg is not None and self._is_live_data(r.msg)
        ]
        if not seen:
            self.results.failed("data message", expected, conn.nothing("data message"))
            return None, False
        last = seen[-1]
        body = last.get("data")
        problems = rule.problems(body) if isinstance(body, dict) else ["no data object"]
        got = (
            f"{len(seen)} data messages without them (the last: {last.get('data_type')} "
            f"seq {last.get('seq')} with {', '.join(problems)})"
        )
        self.results.failed("data message", expected, got)
        # Later steps still need a live message to compare seq with.
        return await conn.wait(start, self._is_live_data, 0), False

    async def _control_steps(self, conn: Connection) -> None:
        """heartbeat, ping, invalid JSON, unknown type: replies that do not need a subscription."""
        t = self.timeout
        results = self.results

        mark = await conn.send({"type": "heartbeat", "timestamp": time.time()})
        reply = await conn.wait(mark, types("heartbeat", "error"), t)
        expected = '{"type": "heartbeat", "status": "ack", "timestamp": ...}'
        problem = reply_problem(reply, {"type": "heartbeat", "status": "ack"}, conn.nothing())
        results.verdict("heartbeat ack", expected, problem)

        sent = time.time()
        mark = await conn.send({"type": "ping", "timestamp": sent})
        reply = await conn.wait(mark, types("pong", "error"), t)
        problem = reply_problem(reply, {"type": "pong"}, conn.nothing())
        if problem is None and reply is not None and "client_timestamp" in reply[1]:
            echoed = reply[1]["client_timestamp"]
            if echoed != sent:
                problem = f"client_timestamp {show(echoed)} instead of {sent!r}"
        results.verdict("ping -> pong", '{"type": "pong", "timestamp": ...}', problem)

        mark = await conn.send("{this is not json")
        reply = await conn.wait(mark, types("error"), t)
        problem = reply_problem(
            reply,
            {"type": "error", "message": INVALID_JSON_TEXT, "code": "invalid_json"},
            conn.nothing(),
        )
        expected = f'error "{INVALID_JSON_TEXT}" with code invalid_json'
        results.verdict("invalid JSON -> error", expected, problem)

        mark = await conn.send({"type": "no_such_type"})
        reply = await conn.wait(mark, types("error"), t)
        problem = reply_problem(reply, {"type": "error", "code": "unknown_type"}, conn.nothing())
        if problem is None and reply is not None and not nonempty_str(reply[1].get("message")):
            problem = f"message {show(reply[1].get('message'))}"
        results.verdict(
            "unknown type -> error", "error with code unknown_type and a message", problem
        )

    async def _check_quiet(self, conn: Connection, ack_index: int) -> None:
        quiet = min(self.timeout, max(QUIET_MIN, 2 * self._largest_gap(conn)))
        stray = await conn.wait(ack_index + 1, self._is_data, quiet)
        name = "no data after unsubscribe"
        if stray is None and conn.closed is not None:
            self.results.failed(name, f"the connection to stay open for {quiet:.1f}s", conn.closed)
            return
        if stray is None:
            self.results.passed(name, f"quiet for {quiet:.1f}s")
            return
        msg = stray[1]
        self.results.failed(
            name,
            f"no data message for {self.symbol} after the unsubscribe ack",
            f"{msg.get('data_type', 'data')} seq {msg.get('seq')} after it",
        )

    def _largest_gap(self, conn: Connection) -> float:
        times = [r.at for r in conn.received if r.msg is not None and self._is_live_data(r.msg)]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)
