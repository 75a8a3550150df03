"""Matching the server's replies to the requests that asked for them.

The server answers requests in the order it reads them (docs/protocol.md §3), so a reply goes
to the oldest request sent that expects its ``type``, and an ``error`` whose ``request`` names a
request type fails the oldest such request: the JavaScript client's rule. Subscription acks are
matched by symbol instead, because the client's own resubscriptions after a reconnect produce
acks too, and a ``subscribe`` made while disconnected goes out inside them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tickhub.client.errors import TickhubError
from tickhub.client.messages import ServerError, ServerMessage, SubscriptionAck

__all__ = ["AckWaiters", "PendingRequests", "normalise", "same_interval"]

REPLY_TYPES = {
    "create_alert": "alert",
    "delete_alert": "alert",
    "list_alerts": "alerts",
    "set_position": "position",
    "remove_position": "position",
    "list_positions": "positions",
    "add_trade": "trade",
    "delete_trade": "trade",
    "list_trades": "trades",
    "list_subscriptions": "subscriptions",
    "auth": "auth",
}
"""The reply ``type`` of each request (docs/protocol.md §4)."""


def normalise(symbol: str) -> str:
    """How the server compares symbols: case and surrounding spaces ignored."""
    return symbol.strip().upper()


def same_interval(asked: str | None, acked: str | None) -> bool:
    """No interval asked means the server's default, ``1m``; an ack without one (/ws/alerts,
    /ws/portfolio, which ignore intervals, or an unsubscribe of every interval) answers any."""
    return acked is None or asked == acked or (asked is None and acked == "1m")


def _same_set(asked: tuple[str, ...] | None, acked: tuple[str, ...] | None) -> bool:
    """An ack carries the canonical set; one the client could not canonicalise (kept as given)
    is matched by being a set at all."""
    return asked == acked or (asked is not None and acked is not None)


def error_of(err: ServerError) -> TickhubError:
    return TickhubError(err.message, err.code, err.details, err.raw)


@dataclass(slots=True)
class _Request:
    kind: str
    expect: str
    message: Mapping[str, Any]
    future: asyncio.Future[ServerMessage]
    sent: bool = False


class PendingRequests:
    """Requests waiting for their reply, oldest first."""

    def __init__(self) -> None:
        self._pending: list[_Request] = []

    def add(self, message: Mapping[str, Any]) -> _Request:
        kind = str(message["type"])
        expect = REPLY_TYPES.get(kind)
        if expect is None:
            raise ValueError(f"no reply is known for a {kind!r} request")
        future: asyncio.Future[ServerMessage] = asyncio.get_running_loop().create_future()
        request = _Request(kind, expect, message, future)
        self._pending.append(request)
        return request

    def discard(self, request: _Request) -> None:
        if request in self._pending:
            self._pending.remove(request)

    def waiting(self) -> bool:
        return bool(self._pending)

    def unsent(self) -> list[_Request]:
        return [r for r in self._pending if not r.sent]

    def settle(self, kind: str, reply: ServerMessage) -> bool:
        """Give ``reply`` to the oldest sent request expecting it; whether one did."""
        for request in self._pending:
            if request.sent and request.expect == kind:
                self._pending.remove(request)
                if not request.future.done():
                    request.future.set_result(reply)
                return True
        return False

    def fail(self, err: ServerError) -> bool:
        """Fail the oldest sent request that ``err`` answers; whether one did. An
        ``unknown_type`` error (a request sent to the wrong endpoint) names it in ``details``."""
        kind = err.request
        if kind is None and err.code == "unknown_type":
            kind = err.details.get("type")
        for request in self._pending:
            if request.sent and request.kind == kind:
                self._pending.remove(request)
                if not request.future.done():
                    request.future.set_exception(error_of(err))
                return True
        return False

    def drop(self, error: TickhubError, *, only_sent: bool) -> None:
        """The connection is gone: a sent request may or may not have been applied, so it
        fails; an unsent one (``only_sent``) waits for the next connection."""
        keep = []
        for request in self._pending:
            if only_sent and not request.sent:
                keep.append(request)
            elif not request.future.done():
                request.future.set_exception(error)
        self._pending = keep


@dataclass(slots=True)
class _AckWait:
    kind: str  # subscribe | unsubscribe
    interval: str | None
    names: list[str]
    future: asyncio.Future[list[SubscriptionAck]]
    indicators: tuple[str, ...] | None = None  # the set asked (canonical); None: the default
    acks: dict[str, SubscriptionAck] = field(default_factory=dict)
    errors: list[ServerError] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)

    def done(self) -> bool:
        return all(n in self.acks or n in self.refused for n in self.names)

    def finish(self) -> None:
        if self.future.done():
            return
        if self.errors:
            first = self.errors[0]
            exc = error_of(first)
            exc.details = {**first.details, "acks": [self.acks[n] for n in self.acks]}
            self.future.set_exception(exc)
        else:
            self.future.set_result([self.acks[n] for n in self.names])


class AckWaiters:
    """``subscribe`` / ``unsubscribe`` calls waiting for an ack (or a refusal) per symbol."""

    def __init__(self) -> None:
        self._waits: list[_AckWait] = []

    def add(
        self,
        kind: str,
        names: list[str],
        interval: str | None,
        indicators: tuple[str, ...] | None = None,
    ) -> asyncio.Future[list[SubscriptionAck]]:
        """``indicators``: the set of an /ws/analysis subscribe, whose acks carry it (an ack of
        another set of the same symbol, or of the default set, answers another call)."""
        future: asyncio.Future[list[SubscriptionAck]] = asyncio.get_running_loop().create_future()
        names = [normalise(n) for n in names]
        self._waits.append(_AckWait(kind, interval, names, future, indicators))
        return future

    def waiting(self) -> bool:
        return bool(self._waits)

    def discard(self, future: asyncio.Future[list[SubscriptionAck]]) -> None:
        self._waits = [w for w in self._waits if w.future is not future]

    def ack(self, ack: SubscriptionAck) -> None:
        kind = "subscribe" if ack.status == "subscribed" else "unsubscribe"
        names = {normalise(ack.symbol), normalise(ack.requested or ack.symbol)}
        for wait in self._waits:
            if wait.kind != kind or not same_interval(wait.interval, ack.interval):
                continue
            if kind == "subscribe" and not _same_set(wait.indicators, ack.indicators):
                continue
            name = next((n for n in wait.names if n in names and n not in wait.acks), None)
            if name is not None:
                wait.acks[name] = ack
                self._finish(wait)
                return

    def error(self, err: ServerError) -> bool:
        """A refusal of symbols (``symbol``/``symbols``), or of a whole message; whether a
        waiting call took it."""
        names = {normalise(s) for s in (*err.symbols, *([err.symbol] if err.symbol else []))}
        for wait in self._waits:
            if wait.kind != err.request:
                continue
            hit = {n for n in wait.names if n in names} if names else set(wait.names)
            if hit:
                wait.refused |= hit
                wait.errors.append(err)
                self._finish(wait)
                return True
        return False

    def _finish(self, wait: _AckWait) -> None:
        if wait.done():
            self._waits.remove(wait)
            wait.finish()

    def drop(self, error: TickhubError) -> None:
        for wait in self._waits:
            if not wait.future.done():
                wait.future.set_exception(error)
        self._waits = []
