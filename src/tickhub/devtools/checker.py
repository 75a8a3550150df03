"""``tickhub check``: exercise a running service over real sockets and report what conforms.

Each WebSocket endpoint gets its own connection (all of them at once with ``multi``) that walks the
seed protocol (docs/protocol.md) step by step: welcome, subscribe, data, heartbeat, ping, invalid
JSON, unknown type, unsubscribe and the quiet period after it; then the messages received are
checked as a whole (data fields, envelope, ``seq``, timestamps). The HTTP routes come last.

The contract is written out here (the welcome text, the error texts and codes, the field names of
the seed's JavaScript examples) rather than imported from the server, so that a change to the
server that breaks a client also breaks the check. Every wait is bounded by ``timeout``; the only
wait that is meant to expire is the quiet period after an unsubscribe.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from tickhub.core.protocol import json_kind

ENDPOINTS = ("stream", "analysis", "alerts", "portfolio")

WELCOME_TEXT = "WebSocket connection established successfully"
INVALID_JSON_TEXT = "Invalid JSON format"
QUIET_MIN = 2.0
"""Least seconds to listen for stray data after an unsubscribe ack (two default update periods)."""

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_TIMESTAMP_FORMAT = "YYYY-MM-DDTHH:MM:SS.mmmZ"
_ENDPOINT_SUFFIX = re.compile(r"/ws(/[A-Za-z_]*)?/*$")

Message = dict[str, Any]
Match = Callable[[Message], bool]


@dataclass(frozen=True, slots=True)
class CheckResult:
    where: str
    name: str
    ok: bool
    detail: str = ""

    def line(self) -> str:
        verdict = "PASS" if self.ok else "FAIL"
        if not self.detail:
            return f"{verdict}  {self.where:<14} {self.name}"
        sep = ": " if not self.ok else " "
        detail = self.detail if not self.ok else f"({self.detail})"
        return f"{verdict}  {self.where:<14} {self.name}{sep}{detail}"


@dataclass(frozen=True, slots=True)
class _Target:
    ws_base: str
    http_base: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class _Received:
    at: float
    msg: Message | None
    """The decoded message, or ``None`` when the server sent something that is not a JSON object."""
    raw: str | bytes


class _Abort(Exception):
    """Stop checking one endpoint: its connection is gone (the failure is already recorded)."""


async def run_checks(url: str, *, multi: bool, symbol: str, timeout: float) -> bool:
    """Check the service at ``url`` (``ws://host:port``); print a report; True if all passed.

    ``timeout`` bounds each wait on its own (a reply, the first data message), not the whole run.
    """
    target = _parse_target(url)
    if isinstance(target, str):
        _print_report([CheckResult("service", "url", False, target)])
        return False
    endpoints = ENDPOINTS if multi else ENDPOINTS[:1]
    print(
        f"tickhub check {target.ws_base} (symbol {symbol}, timeout {timeout:g}s): "
        + ", ".join(f"/ws/{e}" for e in endpoints),
        flush=True,
    )
    unreachable = await _reachable(target, timeout)
    if unreachable is not None:
        _print_report([CheckResult("service", "connect", False, unreachable)])
        return False
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(
                _EndpointCheck(target, name, symbol, timeout).run(), name=f"check /ws/{name}"
            )
            for name in endpoints
        ]
    results = [r for task in tasks for r in task.result()]
    results.extend(await _check_http(target, timeout))
    return _print_report(results)


def _print_report(results: Sequence[CheckResult]) -> bool:
    for result in results:
        print(result.line())
    failed = sum(1 for r in results if not r.ok)
    print(f"{len(results) - failed} passed, {failed} failed", flush=True)
    return failed == 0


# --- target -------------------------------------------------------------------------------------


def _parse_target(url: str) -> _Target | str:
    parts = urlsplit(url if "://" in url else f"ws://{url}")
    scheme = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        return f"expected a URL like ws://localhost:8081, got {url!r}"
    try:
        port = parts.port or (443 if scheme == "wss" else 80)
    except ValueError:
        return f"expected a URL with a valid port, got {url!r}"
    # Accept a URL of one endpoint too (ws://host:8081/ws/stream): keep only the prefix before it.
    prefix = _ENDPOINT_SUFFIX.sub("", parts.path).rstrip("/")
    http = "https" if scheme == "wss" else "http"
    return _Target(
        ws_base=f"{scheme}://{parts.netloc}{prefix}",
        http_base=f"{http}://{parts.netloc}{prefix}",
        host=parts.hostname,
        port=port,
    )


async def _reachable(target: _Target, limit: float) -> str | None:
    """None if something accepts TCP connections at the target, else a one-line explanation."""
    hint = "is the service running? start it with `make run`"
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(target.host, target.port), limit)
    except ConnectionRefusedError:
        return f"cannot connect to {target.ws_base}: {hint}"
    except TimeoutError:
        return f"cannot connect to {target.ws_base} (no answer within {limit:g}s): {hint}"
    except OSError as exc:
        return f"cannot connect to {target.ws_base} ({exc.strerror or exc}): {hint}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


# --- one WebSocket endpoint ---------------------------------------------------------------------


class _EndpointCheck:
    """One connection to one endpoint, walked through the protocol; collects its results."""

    def __init__(self, target: _Target, name: str, symbol: str, timeout: float) -> None:
        self.path = f"/ws/{name}"
        self.url = f"{target.ws_base}{self.path}"
        self.name = name
        self.symbol = symbol
        self.timeout = timeout
        self.results: list[CheckResult] = []
        self.received: list[_Received] = []
        self.closed: str | None = None
        self._arrived = asyncio.Event()
        self._ws: ClientConnection | None = None

    # results -----------------------------------------------------------------------------------

    def _pass(self, name: str, detail: str = "") -> None:
        self.results.append(CheckResult(self.path, name, True, detail))

    def _fail(self, name: str, expected: str, got: str) -> None:
        self.results.append(CheckResult(self.path, name, False, f"expected {expected}, got {got}"))

    def _verdict(self, name: str, expected: str, problem: str | None, detail: str = "") -> bool:
        if problem is None:
            self._pass(name, detail)
            return True
        self._fail(name, expected, problem)
        return False

    # connection --------------------------------------------------------------------------------

    async def run(self) -> list[CheckResult]:
        try:
            await self._run()
        except _Abort:
            pass
        except Exception as exc:
            # A checker bug must still end in a readable report.
            self._fail("checker", "no internal error", repr(exc))
        return self.results

    async def _run(self) -> None:
        t = self.timeout
        try:
            ws = await connect(
                self.url,
                open_timeout=t,
                close_timeout=t,
                ping_interval=None,
                proxy=None,
                compression=None,
                max_size=None,
            )
        except InvalidStatus as exc:
            body = exc.response.body.decode("utf-8", "replace") if exc.response.body else ""
            got = f"HTTP {exc.response.status_code} {_clip(body)}".rstrip()
            self._fail("connect", f"a WebSocket upgrade at {self.url}", got)
            raise _Abort from None
        except TimeoutError:
            self._fail("connect", f"a WebSocket handshake within {t:g}s", "no answer")
            raise _Abort from None
        except (OSError, WebSocketException) as exc:
            self._fail("connect", f"a WebSocket connection to {self.url}", str(exc) or repr(exc))
            raise _Abort from None
        self._pass("connect")
        self._ws = ws
        reader = asyncio.create_task(self._read(ws), name=f"check reader {self.path}")
        try:
            await self._steps()
        finally:
            await ws.close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self.received.append(_Received(time.monotonic(), _decode(raw), raw))
                self._arrived.set()
        except ConnectionClosed:
            pass
        finally:
            code = ws.close_code
            reason = f" {ws.close_reason!r}" if ws.close_reason else ""
            self.closed = f"connection closed (code {code}{reason})"
            self._arrived.set()

    async def _send(self, payload: Message | str) -> int:
        """Send one message; returns the index from which its reply is to be looked for."""
        mark = len(self.received)
        text = payload if isinstance(payload, str) else json.dumps(payload)
        assert self._ws is not None
        try:
            await self._ws.send(text)
        except ConnectionClosed:
            self._fail("connection", "the connection to stay open", self.closed or "it closed")
            raise _Abort from None
        return mark

    async def _wait(self, start: int, match: Match, within: float) -> tuple[int, Message] | None:
        """The first message from index ``start`` on that ``match``es, waiting ``within`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        i = start
        while True:
            while i < len(self.received):
                msg = self.received[i].msg
                if msg is not None and match(msg):
                    return i, msg
                i += 1
            remaining = deadline - loop.time()
            if self.closed is not None or remaining <= 0:
                return None
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    def _nothing(self, what: str = "reply") -> str:
        if self.closed is not None:
            return f"no {what}: {self.closed}"
        return f"no {what} within {self.timeout:g}s"

    def _is_data(self, msg: Message) -> bool:
        return msg.get("type") == "data" and msg.get("symbol") == self.symbol

    def _is_live_data(self, msg: Message) -> bool:
        return self._is_data(msg) and not msg.get("snapshot")

    # the protocol, step by step ----------------------------------------------------------------

    async def _steps(self) -> None:
        t = self.timeout
        welcome = await self._wait(0, _any, t)
        self._check_welcome(welcome)

        mark = await self._send({"type": "subscribe", "symbol": self.symbol})
        ack = await self._wait(mark, _types("subscription", "error"), t)
        if not self._check_ack(ack, "subscribe ack", "subscribed", self.symbol):
            await self._control_steps()
            self._check_timestamps()
            return
        assert ack is not None
        window_start = ack[0]

        first, first_ok = await self._check_first_data(window_start)

        await self._control_steps()

        if first is not None:
            # A second live message, so that seq has something to be compared with.
            await self._wait(first[0] + 1, self._is_live_data, t)

        mark = await self._send({"type": "unsubscribe", "symbol": self.symbol})
        unack = await self._wait(mark, _types("subscription", "error"), t)
        unsubscribed = self._check_ack(unack, "unsubscribe ack", "unsubscribed", self.symbol)
        window_end = unack[0] if unack is not None else len(self.received)
        if unsubscribed and unack is not None:
            await self._check_quiet(unack[0])

        window = [r.msg for r in self.received[window_start:window_end] if r.msg is not None]
        data = [m for m in window if m.get("type") == "data"]
        if data:
            self._check_envelope(data)
            if first_ok:
                # Only when some message had the fields: else "data message" said it already.
                self._check_fields([m for m in data if self._is_data(m)])
            self._check_seq([m for m in data if self._is_live_data(m)], data)
        self._check_timestamps()

    async def _check_first_data(self, start: int) -> tuple[tuple[int, Message] | None, bool]:
        """Wait for a live data message with the fields the seed's JavaScript reads."""
        rule = _FIELDS[self.name]

        def usable(msg: Message) -> bool:
            body = msg.get("data")
            return (
                self._is_live_data(msg)
                and rule.applies(msg)
                and isinstance(body, dict)
                and not rule.problems(body)
            )

        found = await self._wait(start, usable, self.timeout)
        expected = f"a data message for {self.symbol} with {rule.describe}"
        if found is not None:
            msg = found[1]
            self._pass("data message", f"{msg.get('data_type', 'data')} seq {msg.get('seq')}")
            return found, True
        seen = [
            r.msg for r in self.received[start:] if r.msg is not None and self._is_live_data(r.msg)
        ]
        if not seen:
            self._fail("data message", expected, self._nothing("data message"))
            return None, False
        last = seen[-1]
        body = last.get("data")
        problems = rule.problems(body) if isinstance(body, dict) else ["no data object"]
        got = (
            f"{len(seen)} data messages without them (the last: {last.get('data_type')} "
            f"seq {last.get('seq')} with {', '.join(problems)})"
        )
        self._fail("data message", expected, got)
        # Later steps still need a live message to compare seq with.
        return await self._wait(start, self._is_live_data, 0), False

    async def _control_steps(self) -> None:
        """heartbeat, ping, invalid JSON, unknown type: replies that do not need a subscription."""
        t = self.timeout

        mark = await self._send({"type": "heartbeat", "timestamp": time.time()})
        reply = await self._wait(mark, _types("heartbeat", "error"), t)
        expected = '{"type": "heartbeat", "status": "ack", "timestamp": ...}'
        problem = self._reply_problem(reply, {"type": "heartbeat", "status": "ack"})
        self._verdict("heartbeat ack", expected, problem)

        sent = time.time()
        mark = await self._send({"type": "ping", "timestamp": sent})
        reply = await self._wait(mark, _types("pong", "error"), t)
        problem = self._reply_problem(reply, {"type": "pong"})
        if problem is None and reply is not None and "client_timestamp" in reply[1]:
            echoed = reply[1]["client_timestamp"]
            if echoed != sent:
                problem = f"client_timestamp {_show(echoed)} instead of {sent!r}"
        self._verdict("ping -> pong", '{"type": "pong", "timestamp": ...}', problem)

        mark = await self._send("{this is not json")
        reply = await self._wait(mark, _types("error"), t)
        problem = self._reply_problem(
            reply, {"type": "error", "message": INVALID_JSON_TEXT, "code": "invalid_json"}
        )
        expected = f'error "{INVALID_JSON_TEXT}" with code invalid_json'
        self._verdict("invalid JSON -> error", expected, problem)

        mark = await self._send({"type": "no_such_type"})
        reply = await self._wait(mark, _types("error"), t)
        problem = self._reply_problem(reply, {"type": "error", "code": "unknown_type"})
        if problem is None and reply is not None and not _nonempty_str(reply[1].get("message")):
            problem = f"message {_show(reply[1].get('message'))}"
        self._verdict(
            "unknown type -> error", "error with code unknown_type and a message", problem
        )

    def _reply_problem(self, reply: tuple[int, Message] | None, fields: Message) -> str | None:
        if reply is None:
            return self._nothing()
        msg = reply[1]
        wrong = [f"{k} {_show(msg.get(k, _MISSING))}" for k, v in fields.items() if msg.get(k) != v]
        if not _is_timestamp(msg.get("timestamp")):
            wrong.append(f"timestamp {_show(msg.get('timestamp', _MISSING))}")
        return ", ".join(wrong) + f" in {_clip(_compact(msg))}" if wrong else None

    def _check_welcome(self, welcome: tuple[int, Message] | None) -> None:
        expected = f'{{"type": "connection", "status": "connected", "message": "{WELCOME_TEXT}"}}'
        problem = self._reply_problem(
            welcome, {"type": "connection", "status": "connected", "message": WELCOME_TEXT}
        )
        if welcome is None:
            problem = self._nothing("welcome message")
        self._verdict(
            "welcome message", f"{expected} with a {_TIMESTAMP_FORMAT} timestamp", problem
        )

    def _check_ack(
        self, ack: tuple[int, Message] | None, name: str, status: str, symbol: str
    ) -> bool:
        expected = f'{{"type": "subscription", "status": "{status}", "symbol": "{symbol}"}}'
        if ack is None:
            return self._verdict(name, expected, self._nothing())
        msg = ack[1]
        if msg.get("type") == "error":
            got = f"error {msg.get('code')}: {msg.get('message')}"
            return self._verdict(name, expected, got)
        acked = msg.get("symbol")
        # The server answers with its own spelling (RELIANCE for reliance) and says what was asked.
        same = acked == symbol or (
            isinstance(acked, str) and msg.get("requested") == symbol and status == "subscribed"
        )
        problem = self._reply_problem(ack, {"type": "subscription", "status": status})
        if problem is None and not same:
            problem = f"symbol {_show(acked)} in {_clip(_compact(msg))}"
        ok = self._verdict(name, expected, problem)
        if ok and isinstance(acked, str):
            self.symbol = acked
        return ok

    async def _check_quiet(self, ack_index: int) -> None:
        quiet = min(self.timeout, max(QUIET_MIN, 2 * self._largest_gap()))
        stray = await self._wait(ack_index + 1, self._is_data, quiet)
        name = "no data after unsubscribe"
        if stray is None and self.closed is not None:
            self._fail(name, f"the connection to stay open for {quiet:.1f}s", self.closed)
            return
        if stray is None:
            self._pass(name, f"quiet for {quiet:.1f}s")
            return
        msg = stray[1]
        self._fail(
            name,
            f"no data message for {self.symbol} after the unsubscribe ack",
            f"{msg.get('data_type', 'data')} seq {msg.get('seq')} after it",
        )

    def _largest_gap(self) -> float:
        times = [r.at for r in self.received if r.msg is not None and self._is_live_data(r.msg)]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    # the messages as a whole -------------------------------------------------------------------

    def _check_envelope(self, data: Sequence[Message]) -> None:
        name = "data envelope"
        expected = (
            f"every data message for {self.symbol} with timestamp, data_type, seq (int >= 1), "
            "epoch (string) and data (object)"
        )
        for msg in data:
            problems = []
            if msg.get("symbol") != self.symbol:
                problems.append(f"symbol {_show(msg.get('symbol', _MISSING))}")
            if not isinstance(msg.get("data"), dict):
                problems.append(f"data {_kind(msg.get('data', _MISSING))}")
            seq = msg.get("seq", _MISSING)
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
                problems.append(f"seq {_show(seq)}")
            if not _nonempty_str(msg.get("epoch")):
                problems.append(f"epoch {_show(msg.get('epoch', _MISSING))}")
            if not _nonempty_str(msg.get("data_type")):
                problems.append(f"data_type {_show(msg.get('data_type', _MISSING))}")
            if "snapshot" in msg and msg["snapshot"] is not True:
                problems.append(f"snapshot {_show(msg['snapshot'])}")
            if problems:
                self._fail(name, expected, f"{', '.join(problems)} in {_clip(_compact(msg))}")
                return
        self._pass(name, f"{len(data)} messages")

    def _check_fields(self, data: Sequence[Message]) -> None:
        """The seed's JavaScript reads its fields from every data message, snapshots included."""
        name = "data fields"
        rule = _FIELDS[self.name]
        expected = f"{rule.describe} on {rule.scope}"
        for msg in data:
            body = msg.get("data")
            if not isinstance(body, dict):
                continue  # reported by the envelope check
            kind = msg.get("data_type")
            problems = rule.problems(body) if rule.applies(msg) else []
            if isinstance(kind, str) and kind in _TYPE_SHAPES:
                problems += _TYPE_SHAPES[kind](body)
            if problems:
                snapshot = " (snapshot)" if msg.get("snapshot") else ""
                got = f"{kind} seq {msg.get('seq')}{snapshot} with {', '.join(problems)}"
                self._fail(name, expected, got)
                return
        self._pass(name, f"{len(data)} messages")

    def _check_seq(self, live: Sequence[Message], data: Sequence[Message]) -> None:
        name = "seq +1 per topic"
        expected = "seq to grow by one per data message of the topic (same epoch)"
        if len(live) < 2:
            got = f"{len(live)} data message within {self.timeout:g}s, nothing to compare"
            self._fail(name, expected, got)
            return
        snapshots = [m for m in data if self._is_data(m) and m.get("snapshot")]
        first = live[0]
        for snap in snapshots:
            if snap.get("epoch") == first.get("epoch") and _seq(snap) >= _seq(first):
                got = f"snapshot seq {snap.get('seq')} after live seq {first.get('seq')}"
                self._fail(name, "snapshots older than the live messages after them", got)
                return
        for prev, msg in itertools.pairwise(live):
            if msg.get("epoch") == prev.get("epoch") and _seq(msg) != _seq(prev) + 1:
                got = f"seq {prev.get('seq')} then {msg.get('seq')} ({msg.get('data_type')})"
                self._fail(name, expected, got)
                return
        self._pass(name, f"{len(live)} messages, seq {first.get('seq')}..{live[-1].get('seq')}")

    def _check_timestamps(self) -> None:
        name = "message format"
        expected = f"JSON objects with a string type and a {_TIMESTAMP_FORMAT} timestamp"
        for received in self.received:
            msg = received.msg
            if msg is None:
                self._fail(name, expected, f"{_clip(repr(received.raw))}")
                return
            if not isinstance(msg.get("type"), str) or not _is_timestamp(msg.get("timestamp")):
                self._fail(name, expected, _clip(_compact(msg)))
                return
        self._pass(name, f"{len(self.received)} messages")


# --- data shapes --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Fields:
    describe: str
    problems: Callable[[Message], list[str]]
    data_types: frozenset[str] | None = None
    """The data types the fields are required on; ``None``: every data message."""

    def applies(self, msg: Message) -> bool:
        kind = msg.get("data_type")
        return self.data_types is None or kind is None or kind in self.data_types

    @property
    def scope(self) -> str:
        if self.data_types is None:
            return "every data message"
        return f"every {'/'.join(sorted(self.data_types))} message"


def _numbers(body: Message, *names: str, prefix: str = "data") -> list[str]:
    return [
        f"{prefix}.{n} {_kind(body.get(n, _MISSING))}" for n in names if not _number(body.get(n))
    ]


def _stream_fields(body: Message) -> list[str]:
    return _numbers(body, "price", "volume", "change", "change_percent")


def _analysis_fields(body: Message) -> list[str]:
    problems = []
    if not isinstance(body.get("technical_indicators"), dict):
        problems.append(
            f"data.technical_indicators {_kind(body.get('technical_indicators', _MISSING))}"
        )
    if not isinstance(body.get("patterns"), list):
        problems.append(f"data.patterns {_kind(body.get('patterns', _MISSING))}")
    return problems


def _alerts_fields(body: Message) -> list[str]:
    alerts = body.get("price_alerts", _MISSING)
    if not isinstance(alerts, list):
        return [f"data.price_alerts {_kind(alerts)}"]
    problems = []
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            problems.append(f"data.price_alerts[{i}] {_kind(alert)}")
        elif not isinstance(alert.get("triggered"), bool):
            problems.append(
                f"data.price_alerts[{i}].triggered {_kind(alert.get('triggered', _MISSING))}"
            )
    return problems


def _portfolio_fields(body: Message) -> list[str]:
    problems = []
    position = body.get("position", _MISSING)
    if not isinstance(position, dict):
        problems.append(f"data.position {_kind(position)}")
    else:
        problems += _numbers(position, "current_value", prefix="data.position")
    if body.get("pnl") is None:
        problems.append(f"data.pnl {_kind(body.get('pnl', _MISSING))}")
    return problems


def _candle_fields(body: Message) -> list[str]:
    problems = _numbers(body, "open", "high", "low", "close", "volume")
    if not isinstance(body.get("closed"), bool):
        problems.append(f"data.closed {_kind(body.get('closed', _MISSING))}")
    if not _is_timestamp(body.get("start")):
        problems.append(f"data.start {_show(body.get('start', _MISSING))}")
    return problems


_FIELDS = {
    "stream": _Fields(
        "data.price, data.volume, data.change and data.change_percent (numbers)",
        _stream_fields,
        frozenset({"tick_data", "market_data"}),
    ),
    "analysis": _Fields(
        "data.technical_indicators (object) and data.patterns (array)",
        _analysis_fields,
    ),
    "alerts": _Fields(
        "data.price_alerts (array of objects with a boolean 'triggered')",
        _alerts_fields,
    ),
    "portfolio": _Fields(
        "data.position.current_value (number) and data.pnl",
        _portfolio_fields,
    ),
}

_TYPE_SHAPES: dict[str, Callable[[Message], list[str]]] = {"candle_data": _candle_fields}
"""Shapes checked wherever a data type appears, beyond the seed's fields."""


# --- HTTP ---------------------------------------------------------------------------------------


async def _check_http(target: _Target, limit: float) -> list[CheckResult]:
    results = []
    for path, needs_status in (("/health", True), ("/connections", False), ("/test", True)):
        name = f"GET {path}"
        url = f"{target.http_base}{path}"
        expected = "HTTP 200 with a JSON object" + (' whose status is "ok"' if needs_status else "")
        try:
            status, body = await asyncio.to_thread(_http_get, url, limit)
        except (OSError, urllib.error.URLError) as exc:
            results.append(CheckResult("http", name, False, f"expected {expected}, got {exc}"))
            continue
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        problem = None
        if status != 200 or not isinstance(doc, dict):
            problem = f"HTTP {status} {_clip(body.decode('utf-8', 'replace'))}"
        elif needs_status and doc.get("status") != "ok":
            problem = f"status {_show(doc.get('status', _MISSING))} in {_clip(_compact(doc))}"
        if problem is not None:
            results.append(CheckResult("http", name, False, f"expected {expected}, got {problem}"))
            continue
        detail = f"status {doc['status']}" if "status" in doc else f"{len(doc)} fields"
        if isinstance(doc.get("total"), int):
            detail = f"{doc['total']} connections"
        results.append(CheckResult("http", name, True, detail))
    return results


def _http_get(url: str, timeout: float) -> tuple[int, bytes]:
    # No proxy: the checker talks to the service it names, whatever HTTP_PROXY says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


# --- helpers ------------------------------------------------------------------------------------


class _Missing:
    def __repr__(self) -> str:
        return "missing"


_MISSING: Any = _Missing()


def _any(msg: Message) -> bool:
    return True


def _types(*kinds: str) -> Match:
    return lambda msg: msg.get("type") in kinds


def _decode(raw: str | bytes) -> Message | None:
    if isinstance(raw, bytes):
        return None  # the protocol is JSON text frames only
    try:
        msg = json.loads(raw)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None


def _is_timestamp(value: object) -> bool:
    if not isinstance(value, str) or _TIMESTAMP.fullmatch(value) is None:
        return False
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return False
    return True


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _nonempty_str(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _seq(msg: Message) -> int:
    seq = msg.get("seq")
    return seq if isinstance(seq, int) else -1


_KIND_PHRASES = {
    "null": "is null",
    "boolean": "is a boolean",
    "number": "is a number",
    "string": "is a string",
    "array": "is an array",
    "object": "is an object",
}


def _kind(value: object) -> str:
    """What a field that failed a check holds, for the report (not the value: it may be long)."""
    if value is _MISSING:
        return "missing"
    kind = json_kind(value)
    return _KIND_PHRASES.get(kind, f"is {kind}")


def _show(value: object) -> str:
    if value is _MISSING:
        return "missing"
    return _clip(json.dumps(value))


def _compact(msg: Message) -> str:
    return json.dumps(msg, separators=(",", ":"))


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = ["ENDPOINTS", "CheckResult", "run_checks"]
