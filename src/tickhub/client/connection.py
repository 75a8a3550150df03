"""The asyncio client: one endpoint, kept connected until closed.

What it does for its user, as the JavaScript client does (``src/tickhub/static/tickhub.js``) and
docs/protocol.md asks: heartbeats and a dead-link check; reconnects with jittered exponential
backoff, honouring close codes (§14); after a reconnect, one ``subscribe`` per interval with
``since`` for every topic it saw (§8), so candles and alert events missed are delivered and
nothing twice; gaps from ``seq``/``epoch`` reported (§7); batches unpacked (§10.1); tokens by
subprotocol or ``auth`` message (§11.2); replies matched to requests.

Messages are read by one task and handed to the user through a bounded buffer: a user who reads
slowly makes the client stop reading the socket, so the server conflates state for it
(docs/protocol.md §10) instead of this process holding an unbounded backlog. While a call waits
for its reply (``subscribe``, ``create_alert``...) reading goes on past the bound, or a user who
awaits a reply before iterating would wait forever; the excess is what arrives within that
call's ``request_timeout`` at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from tickhub import __version__
from tickhub.client.errors import ClientStopped, TickhubError
from tickhub.client.messages import (
    AlertReply,
    AlertsReply,
    AuthReply,
    Disconnected,
    Event,
    HeartbeatAck,
    PositionReply,
    PositionsReply,
    Reconnecting,
    ServerError,
    ServerMessage,
    Status,
    SubscriptionAck,
    Subscriptions,
    TradeReply,
    TradesReply,
    Welcome,
    parse_message,
)
from tickhub.client.options import ClientOptions
from tickhub.client.payloads import Alert, PortfolioTotals, Position, Trade
from tickhub.client.policy import backoff_delay, should_reconnect
from tickhub.client.replies import AckWaiters, PendingRequests, normalise, same_interval
from tickhub.client.tracking import Gap, SeqTracker, set_suffix
from tickhub.core import defaults
from tickhub.core.commands.indicators import IndicatorError, parse_spec
from tickhub.core.protocol import ProtocolError, decode, encode

__all__ = ["Client", "connect"]

log = logging.getLogger("tickhub.client")

State = Literal["idle", "connecting", "open", "reconnecting", "closed"]
R = TypeVar("R", bound=ServerMessage)
T = TypeVar("T")

ABNORMAL = 1006
"""What a link that ended without a close frame (or never opened) reports, as browsers do."""
SUBPROTOCOL = "tickhub"
TOKEN_CHARS = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
"""Characters a ``Sec-WebSocket-Protocol`` value may hold (RFC 7230 token); other tokens go
in an ``auth`` message instead."""
HANDSHAKE_FATAL = frozenset(range(400, 500)) - {408, 429}
"""HTTP answers to the handshake that retrying cannot change (a wrong path, a refused origin);
503 (the server's connection limit), 408 and 429 are retried."""


@dataclass(slots=True)
class _Sub:
    requested: str
    interval: str | None
    indicators: tuple[str, ...] | None = None  # as asked; the canonical set once acked
    symbol: str | None = None  # the server's spelling, once acked
    topic: str | None = None


def resolve_url(url: str, batch: bool) -> str:
    """``ws://``/``wss://`` as given, ``http(s)://`` mapped to them; ``?batch=1`` when asked."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"not a WebSocket URL: {url!r} (expected ws://host:port/ws/stream)")
    query = parts.query
    if batch:
        query = urlencode([*[(k, v) for k, v in parse_qsl(query) if k != "batch"], ("batch", "1")])
    return urlunsplit((scheme, parts.netloc, parts.path, query, parts.fragment))


def _symbols(symbols: str | Iterable[str]) -> list[str]:
    listed = [symbols] if isinstance(symbols, str) else list(symbols)
    if not all(isinstance(s, str) for s in listed):
        raise TypeError(f"symbols must be strings, got {listed!r}")
    out: dict[str, str] = {}
    for s in listed:
        if s.strip():
            out.setdefault(normalise(s), s.strip())
    if not out:
        raise ValueError("no symbol given")
    return list(out.values())


def _chunks(items: list[str], size: int = defaults.MAX_SYMBOLS_PER_MESSAGE) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _indicator_set(indicators: Iterable[str] | None) -> tuple[str, ...] | None:
    """The set in the server's canonical form (repeats dropped, sorted), so that its acks,
    messages and topic name match the subscription; entries the grammar refuses are kept as
    given, for the server to refuse with its error code. ``None`` asks for the default set."""
    if indicators is None:
        return None
    listed = [indicators] if isinstance(indicators, str) else list(indicators)
    if not all(isinstance(i, str) for i in listed):
        raise TypeError(f"indicators must be strings such as 'ema:9', got {listed!r}")
    if not listed:
        raise ValueError("indicators must name at least one entry, such as 'ema:9'")
    try:
        # limits are the server's to apply (its settings may differ): only the grammar here
        canonical = {parse_spec(i, max_period=10**9).canonical for i in listed}
    except IndicatorError:
        return tuple(listed)
    return tuple(sorted(canonical))


SET_ERRORS = frozenset(
    {
        "unknown_indicator",
        "invalid_indicator_parameter",
        "too_many_indicators",
        "invalid_field",
        "limit_exceeded",
    }
)
"""Refusals of a whole indicator-set subscribe (docs/protocol.md §6.2.1): nothing of it is kept."""


def _subscribe_message(
    kind: str,
    symbols: list[str],
    interval: str | None,
    indicators: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": kind}
    if len(symbols) == 1:
        msg["symbol"] = symbols[0]
    else:
        msg["symbols"] = symbols
    if interval:
        msg["interval"] = interval
    if indicators:
        msg["indicators"] = list(indicators)
    return msg


class Client:
    """A client of one endpoint (``/ws/stream``, ``/ws/analysis``, ``/ws/alerts`` or
    ``/ws/portfolio``); iterate it for messages (:data:`~tickhub.client.messages.Event`)."""

    def __init__(self, url: str, *, options: ClientOptions | None = None, **overrides: Any) -> None:
        base = options or ClientOptions()
        self.options = replace(base, **overrides) if overrides else base
        self.url = resolve_url(url, self.options.batch)
        self.state: State = "idle"
        self.welcome: Welcome | None = None
        self.counters: HeartbeatAck | None = None
        """The latest heartbeat ack: ``sent``, ``dropped``, ``conflated`` of this connection."""
        self.feed: str | None = None
        """The feed state of the latest ``status`` message."""
        self.reconnects = 0
        """Successful reconnections."""
        self.stale = 0
        """``data`` messages not delivered because their ``seq`` was already seen."""
        self.batches = 0
        """Batches received (opt-in batching), each unpacked into its messages."""
        self.tracker = SeqTracker()
        self._subs: dict[str, _Sub] = {}
        self._requests = PendingRequests()
        self._acks = AckWaiters()
        self._pings: list[tuple[float, asyncio.Future[float]]] = []
        self._held: deque[Event] = deque()
        self._arrived: asyncio.Event | None = None
        self._space: asyncio.Event | None = None
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected: asyncio.Event | None = None
        self._done: asyncio.Event | None = None
        self._closing = False
        self._stopped: ClientStopped | None = None
        self._attempt = 0
        self._ever_opened = False
        self._last_received = 0.0
        self._blocked = False
        self._dead = ""
        self._welcomed = False  # this connection got its welcome

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> Client:
        """Start connecting (and reconnecting) in the background; returns at once."""
        if self._task is None:
            self._arrived, self._space = asyncio.Event(), asyncio.Event()
            self._connected = asyncio.Event()
            self._done = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name=f"tickhub client {self.url}")
        return self

    async def wait_connected(self, timeout: float | None = None) -> Welcome:
        """The welcome of the current connection, once there is one."""
        await self.start()
        assert self._connected is not None and self._done is not None
        waits = [
            asyncio.ensure_future(self._connected.wait()),
            asyncio.ensure_future(self._done.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if self._connected.is_set() and self.welcome is not None:
            return self.welcome
        if self._stopped is not None:
            raise self._stopped
        if self._done.is_set():
            raise TickhubError("client closed", "closed")
        raise TickhubError(f"no connection to {self.url} within {timeout:g}s", "connect_failed")

    async def close(self, code: int = 1000, reason: str = "client closing") -> None:
        """Close for good: no reconnect; pending requests fail with ``closed``."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code, reason), self.options.connect_timeout)
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._finish()

    async def __aenter__(self) -> Client:
        await self.start()
        try:
            await self.wait_connected(self.options.connect_timeout)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self.state == "open"

    @property
    def subscriptions(self) -> list[tuple[str, str | None]]:
        """``(symbol, interval)`` of every subscription kept (the server's spelling once acked)."""
        return [(s.symbol or s.requested, s.interval) for s in self._subs.values()]

    # --- reading ----------------------------------------------------------------------------

    def __aiter__(self) -> Client:
        return self

    async def __anext__(self) -> Event:
        await self.start()
        arrived, done = self._arrived, self._done
        assert arrived is not None and done is not None
        while not self._held and not done.is_set():
            arrived.clear()
            waits = [asyncio.ensure_future(arrived.wait()), asyncio.ensure_future(done.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
        if self._held:
            event = self._held.popleft()
            self._wake_reader()
            return event
        if self._stopped is not None:
            raise self._stopped
        raise StopAsyncIteration

    @property
    def held(self) -> int:
        """Events received and not yet read by the user."""
        return len(self._held)

    def _wake_reader(self) -> None:
        if self._space is not None:
            self._space.set()

    def _awaited(self) -> bool:
        """Whether a call waits for a reply, which must be read whatever the user does."""
        return bool(self._pings) or self._requests.waiting() or self._acks.waiting()

    # --- subscriptions ----------------------------------------------------------------------

    async def subscribe(
        self,
        symbols: str | Iterable[str],
        interval: str | None = None,
        indicators: Iterable[str] | None = None,
    ) -> list[SubscriptionAck]:
        """Subscribe (``interval`` on /ws/stream and /ws/analysis, default ``1m``; ``"*"`` on
        /ws/portfolio for every position) and wait for the acks. Kept across reconnects.

        ``indicators`` (/ws/analysis): an indicator set such as ``["ema:9", "supertrend:10,3"]``
        instead of the default one (docs/protocol.md §6.2.1). Each set of a symbol and interval
        is its own topic, resumed with its own ``since`` and checked for gaps on its own.

        Raises :class:`TickhubError` when the server refuses a symbol (its ``code``:
        ``unknown_symbol``, ``limit_exceeded``...; the others stay subscribed, their acks in
        ``details["acks"]``) or the whole request (``unknown_interval``, ``unknown_indicator``,
        ``invalid_indicator_parameter``, ``too_many_indicators``...)."""
        listed = _symbols(symbols)
        wanted = _indicator_set(indicators)
        await self.start()
        added: list[str] = []
        for requested in listed:
            key = f"{normalise(requested)}@{interval or ''}{set_suffix(wanted)}"
            if key not in self._subs:
                self._subs[key] = _Sub(requested, interval, wanted)
                added.append(key)
        future = self._acks.add("subscribe", listed, interval, wanted)
        self._wake_reader()
        if self._ws is not None:
            for chunk in _chunks(listed):
                await self._send(_subscribe_message("subscribe", chunk, interval, wanted))
        # else: the resubscription of the next connection sends them
        try:
            return await self._wait(future, self._acks.discard, "subscribe")
        except TickhubError as exc:
            if wanted is not None and exc.code in SET_ERRORS:
                # a set the server refuses is not resubscribed after a reconnect
                for key in added:
                    sub = self._subs.get(key)
                    if sub is not None and sub.topic is None:
                        del self._subs[key]
            raise

    async def unsubscribe(
        self, symbols: str | Iterable[str], interval: str | None = None
    ) -> list[SubscriptionAck]:
        """Unsubscribe (without ``interval``: every interval of the symbols) and wait for the
        acks; ``not_subscribed`` when there was no such subscription. While disconnected it
        only forgets them (nothing is resubscribed) and returns no acks."""
        listed = _symbols(symbols)
        await self.start()
        names = {normalise(s) for s in listed}
        for key, sub in list(self._subs.items()):
            named = normalise(sub.requested) in names or (
                sub.symbol is not None and normalise(sub.symbol) in names
            )
            if named and (interval is None or sub.interval == interval):
                del self._subs[key]
        if self._ws is None:
            for s in listed:
                self.tracker.forget(s.upper(), interval)
            return []
        future = self._acks.add("unsubscribe", listed, interval)
        self._wake_reader()
        for chunk in _chunks(listed):
            await self._send(_subscribe_message("unsubscribe", chunk, interval))
        return await self._wait(future, self._acks.discard, "unsubscribe")

    # --- requests ---------------------------------------------------------------------------

    async def request(self, message: Mapping[str, Any]) -> ServerMessage:
        """Send a request and return its reply; raise :class:`TickhubError` with the server's
        error. Made while disconnected, it waits for the connection; one already sent when the
        connection drops fails with ``connection_closed`` (it may or may not have been applied)."""
        await self.start()
        pending = self._requests.add(message)
        self._wake_reader()
        if self._ws is not None and await self._send(message):
            pending.sent = True
        return await self._wait(
            pending.future, lambda _: self._requests.discard(pending), str(message["type"])
        )

    async def _typed(self, message: Mapping[str, Any], cls: type[R]) -> R:
        reply = await self.request(message)
        if not isinstance(reply, cls):  # pragma: no cover - matched by type above
            raise TickhubError(f"unexpected reply {reply!r}", "invalid_message")
        return reply

    async def create_alert(
        self,
        symbol: str,
        condition: str,
        value: float | None = None,
        *,
        once: bool | None = None,
        note: str | None = None,
        indicator: str | None = None,
        other: str | None = None,
        interval: str | None = None,
        pattern: str | None = None,
        direction: str | None = None,
        forming: bool | None = None,
    ) -> Alert:
        """/ws/alerts: a price alert (``above``, ``below``, ``cross_up``, ``cross_down``,
        ``percent_change`` against ``value``), an indicator alert (``indicator`` with
        ``crosses_above``, ``crosses_below``, ``above``, ``below`` against ``value`` or
        ``other``) or a pattern alert (``condition="pattern"``, ``pattern``, ``direction``), on
        the candles of ``interval``; returns it as created."""
        msg: dict[str, Any] = {"type": "create_alert", "symbol": symbol, "condition": condition}
        optional = {
            "value": value,
            "indicator": indicator,
            "other": other,
            "interval": interval,
            "pattern": pattern,
            "direction": direction,
            "forming": forming,
            "once": once,
        }
        msg.update((k, v) for k, v in optional.items() if v is not None)
        if note:
            msg["note"] = note
        reply = await self._typed(msg, AlertReply)
        if reply.alert is None:
            raise TickhubError("the server sent no alert", "invalid_message", reply=reply.raw)
        return reply.alert

    async def list_alerts(self, symbol: str | None = None) -> tuple[Alert, ...]:
        """/ws/alerts: the user alerts (of one symbol, or all), oldest first."""
        msg: dict[str, Any] = {"type": "list_alerts"}
        if symbol:
            msg["symbol"] = symbol
        return (await self._typed(msg, AlertsReply)).alerts

    async def delete_alert(self, alert_id: str) -> str:
        """/ws/alerts: delete an alert; returns its id (``not_found`` when unknown)."""
        reply = await self._typed({"type": "delete_alert", "id": alert_id}, AlertReply)
        return reply.id or alert_id

    async def set_position(
        self,
        symbol: str,
        quantity: int,
        average_price: float | str,
        *,
        product: str | None = None,
        exchange: str | None = None,
    ) -> PositionReply:
        """/ws/portfolio: save a position (quantity 0 removes it; negative for a short)."""
        msg: dict[str, Any] = {
            "type": "set_position",
            "symbol": symbol,
            "quantity": quantity,
            "average_price": average_price,
        }
        if product:
            msg["product"] = product
        if exchange:
            msg["exchange"] = exchange
        return await self._typed(msg, PositionReply)

    async def remove_position(self, symbol: str) -> PositionReply:
        return await self._typed({"type": "remove_position", "symbol": symbol}, PositionReply)

    async def list_positions(self) -> tuple[tuple[Position, ...], PortfolioTotals]:
        """/ws/portfolio: every position (by symbol) and the totals."""
        reply = await self._typed({"type": "list_positions"}, PositionsReply)
        return reply.positions, reply.portfolio

    async def add_trade(
        self,
        symbol: str,
        side: str,
        quantity: int,
        price: float | str,
        *,
        time: str | None = None,
        product: str | None = None,
        exchange: str | None = None,
        id: str | None = None,
    ) -> TradeReply:
        """/ws/portfolio: record a trade (``side`` ``buy`` or ``sell``; ``time`` ISO 8601 with
        its offset, default now). With an ``id`` a retry is safe: the same id answers the stored
        trade, status ``exists``. The reply carries the symbol's position after it."""
        msg: dict[str, Any] = {
            "type": "add_trade",
            "symbol": symbol,
            "side": side,
            "quantity": quantity,
            "price": price,
        }
        for key, value in (("time", time), ("product", product), ("exchange", exchange)):
            if value:
                msg[key] = value
        if id is not None:
            msg["id"] = id
        return await self._typed(msg, TradeReply)

    async def list_trades(self, symbol: str | None = None) -> tuple[Trade, ...]:
        """/ws/portfolio: the trades (of one symbol, or all), oldest first."""
        msg: dict[str, Any] = {"type": "list_trades"}
        if symbol:
            msg["symbol"] = symbol
        return (await self._typed(msg, TradesReply)).trades

    async def delete_trade(self, id: str) -> TradeReply:
        """/ws/portfolio: forget a trade (``not_found`` when unknown); the reply carries the
        symbol's position after it."""
        return await self._typed({"type": "delete_trade", "id": id}, TradeReply)

    async def list_subscriptions(self) -> Subscriptions:
        return await self._typed({"type": "list_subscriptions"}, Subscriptions)

    async def authenticate(self, token: str) -> AuthReply:
        """Send a token on the open connection (a JWT client refreshes its expiry this way)."""
        return await self._typed({"type": "auth", "token": token}, AuthReply)

    async def ping(self) -> float:
        """Round trip of an application ``ping``/``pong``, in seconds."""
        await self.start()
        if not self.connected:
            raise TickhubError("not connected", "not_connected")
        at = time.monotonic()
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pings.append((at, future))
        self._wake_reader()
        if not await self._send({"type": "ping", "timestamp": time.time()}):
            self._pings.remove((at, future))
            raise TickhubError("not connected", "not_connected")

        def forget(_: object) -> None:
            if (at, future) in self._pings:
                self._pings.remove((at, future))

        return await self._wait(future, forget, "ping")

    async def send(self, message: Mapping[str, Any]) -> bool:
        """Send any message as it is; ``False`` when not connected."""
        return await self._send(message)

    async def _wait(
        self, future: asyncio.Future[T], discard: Callable[[asyncio.Future[T]], None], what: str
    ) -> T:
        timeout = self.options.request_timeout
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            discard(future)
            raise TickhubError(f"no reply to {what} within {timeout:g}s", "timeout") from None

    # --- the connection loop ----------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self._closing:
                opened, code, reason = await self._session()
                if self._closing:
                    break
                will = self.options.reconnect and should_reconnect(
                    code, token_refreshes=callable(self.options.token)
                )
                if self._stopped is not None:
                    will = False
                elif not will:
                    self._stopped = ClientStopped(
                        f"closed by the server with {code} {reason!r}: not reconnecting "
                        "(docs/protocol.md §14)",
                        code,
                        reason,
                    )
                if opened or not will:
                    await self._emit(Disconnected(code, reason, will))
                if not will:
                    break
                limit = self.options.max_attempts
                if limit is not None and self._attempt >= limit:
                    self._stopped = ClientStopped(
                        f"no connection to {self.url} after {self._attempt} attempts "
                        f"(last: {code} {reason})",
                        code,
                        reason,
                    )
                    break
                o = self.options
                delay = backoff_delay(
                    self._attempt,
                    o.random,
                    min_delay=o.min_delay,
                    max_delay=o.max_delay,
                    factor=o.factor,
                    jitter=o.jitter,
                )
                self._attempt += 1
                self.state = "reconnecting"
                await self._emit(Reconnecting(self._attempt, delay))
                await asyncio.sleep(delay)
        finally:
            self._finish()

    def _finish(self) -> None:
        self.state = "closed"
        err = self._stopped or TickhubError("client closed", "closed")
        self._requests.drop(err, only_sent=False)
        self._acks.drop(err)
        for _, future in self._pings:
            if not future.done():
                future.set_exception(err)
        self._pings.clear()
        if self._done is not None:
            self._done.set()

    async def _session(self) -> tuple[bool, int, str]:
        """One connection: open, resubscribe, read until it ends. ``(opened, code, reason)``."""
        self.state = "reconnecting" if self._ever_opened else "connecting"
        assert self._connected is not None
        self._connected.clear()
        try:
            token = await self._token()
        except Exception as exc:  # a user's token function failed: retry later
            log.warning("tickhub client: the token function failed: %s", exc)
            return False, ABNORMAL, f"token function failed: {exc}"
        offer = token is not None and TOKEN_CHARS.match(token) is not None
        try:
            ws = await ws_connect(
                self.url,
                subprotocols=[Subprotocol(SUBPROTOCOL), Subprotocol(f"token.{token}")]
                if offer
                else None,
                open_timeout=self.options.connect_timeout,
                ping_interval=None,  # the heartbeat below checks liveness, as the protocol asks
                close_timeout=self.options.connect_timeout,
                max_size=self.options.max_message_bytes,
                compression=None,  # the server offers none
                proxy=None,
                user_agent_header=f"tickhub-client/{__version__}",
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode("utf-8", "replace")[:200] if exc.response.body else ""
            if status in HANDSHAKE_FATAL:
                self._stopped = ClientStopped(
                    f"handshake refused by {self.url}: HTTP {status} {body}".rstrip(), None, body
                )
            return False, ABNORMAL, f"HTTP {status} {body}".rstrip()
        except (OSError, TimeoutError, WebSocketException) as exc:
            return False, ABNORMAL, str(exc) or type(exc).__name__
        self._ws = ws
        self._dead = ""
        self._welcomed = False
        self._last_received = time.monotonic()
        beat = asyncio.create_task(self._heartbeat(ws), name="tickhub client heartbeat")
        try:
            if token is not None and not offer:
                await self._send({"type": "auth", "token": token})
            await self._resubscribe()
            # requests made while disconnected go out now, after the resubscription
            for pending in self._requests.unsent():
                pending.sent = await self._send(pending.message)
            async for raw in ws:
                self._last_received = time.monotonic()
                await self._receive(raw)
        except ConnectionClosed:
            pass
        finally:
            beat.cancel()
            self._ws = None
            self._connected.clear()
        if self._dead:
            code, reason = ABNORMAL, self._dead
        else:
            code, reason = ws.close_code or ABNORMAL, ws.close_reason or ""
        self._requests.drop(
            TickhubError(f"connection closed ({code} {reason})".rstrip(), "connection_closed"),
            only_sent=True,
        )
        for _, future in self._pings:
            if not future.done():
                future.set_exception(TickhubError("connection closed", "connection_closed"))
        self._pings.clear()
        return self._welcomed, code, reason

    async def _token(self) -> str | None:
        token = self.options.token
        if token is None or isinstance(token, str):
            return token or None
        value = token()
        if inspect.isawaitable(value):
            value = await value
        return str(value) if value else None

    async def _heartbeat(self, ws: ClientConnection) -> None:
        interval, grace = self.options.heartbeat_interval, self.options.heartbeat_timeout
        if not interval:
            return
        while True:
            await asyncio.sleep(interval)
            silent = time.monotonic() - self._last_received
            if not self._blocked and silent > interval + grace:
                self._dead = f"nothing received for {silent:.0f}s (heartbeat timeout)"
                ws.transport.abort()
                return
            await self._send({"type": "heartbeat", "timestamp": time.time()})

    async def _send(self, message: Mapping[str, Any]) -> bool:
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(encode(message).decode())
        except ConnectionClosed:
            return False
        return True

    async def _resubscribe(self) -> None:
        """Everything subscribed, again: per interval one ``subscribe`` whose ``since`` names
        the last message seen on each topic (docs/protocol.md §8.1, the per-symbol form)."""
        by_interval: dict[tuple[str | None, tuple[str, ...] | None], list[_Sub]] = {}
        for sub in self._subs.values():
            by_interval.setdefault((sub.interval, sub.indicators), []).append(sub)
        for (interval, indicators), subs in by_interval.items():
            names = list(dict.fromkeys(s.symbol or s.requested for s in subs))
            since: dict[str, dict[str, Any]] = {}
            for sub in subs:
                point = self.tracker.position(sub.topic) if sub.topic else None
                if point is not None:
                    since[sub.symbol or sub.requested] = {"epoch": point[0], "seq": point[1]}
            for chunk in _chunks(names):
                msg = _subscribe_message("subscribe", chunk, interval, indicators)
                resume = {name: since[name] for name in chunk if name in since}
                if resume:
                    msg["since"] = resume
                await self._send(msg)

    # --- dispatch ---------------------------------------------------------------------------

    async def _emit(self, event: Event) -> None:
        arrived, space = self._arrived, self._space
        assert arrived is not None and space is not None
        self._held.append(event)
        arrived.set()
        if len(self._held) < self.options.max_queue:
            return
        self._blocked = True  # not reading the socket now is this process's doing, not the link's
        try:
            while len(self._held) >= self.options.max_queue and not self._awaited():
                space.clear()
                await space.wait()
        finally:
            self._blocked = False
            self._last_received = time.monotonic()

    async def _receive(self, raw: str | bytes) -> None:
        msg = decode(raw)
        if isinstance(msg, ProtocolError):
            log.warning("tickhub client: ignored a server message: %s", msg.message)
            return
        if msg["type"] == "batch" and isinstance(msg.get("messages"), list):
            self.batches += 1
            for inner in msg["messages"]:
                if isinstance(inner, dict) and isinstance(inner.get("type"), str):
                    await self._dispatch(inner)
            return
        await self._dispatch(msg)

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "data":
            seen = self.tracker.observe(msg)
            if seen.stale:
                self.stale += 1
                return
            if seen.gap is not None:
                await self._emit(seen.gap)
            await self._emit(parse_message(msg, seen))
            return
        parsed = parse_message(msg)
        if isinstance(parsed, Welcome):
            self._on_welcome(parsed)
        elif isinstance(parsed, SubscriptionAck):
            gap = self._on_ack(parsed)
            if gap is not None:
                await self._emit(gap)
        elif isinstance(parsed, Status):
            self.feed = parsed.feed
        elif isinstance(parsed, HeartbeatAck):
            self.counters = parsed
            return
        elif msg["type"] == "pong":
            if self._pings:
                at, future = self._pings.pop(0)
                if not future.done():
                    future.set_result(time.monotonic() - at)
            return
        elif isinstance(parsed, ServerError):
            if self._on_error(parsed):
                return
        elif self._requests.settle(msg["type"], parsed):
            return
        await self._emit(parsed)

    def _on_welcome(self, welcome: Welcome) -> None:
        if self._ever_opened:
            self.reconnects += 1
        self._ever_opened = True
        self._welcomed = True
        self.welcome = welcome
        self._attempt = 0
        self.state = "open"
        assert self._connected is not None
        self._connected.set()

    def _on_ack(self, ack: SubscriptionAck) -> Gap | None:
        self._acks.ack(ack)
        if ack.status == "unsubscribed":
            self.tracker.forget(ack.symbol, ack.interval)
            return None
        if ack.status != "subscribed":
            return None
        asked = {normalise(ack.requested or ack.symbol), normalise(ack.symbol)}
        for sub in self._subs.values():
            if (
                normalise(sub.requested) in asked
                and same_interval(sub.interval, ack.interval)
                and sub.indicators == ack.indicators
            ):
                sub.symbol, sub.topic = ack.symbol, ack.topic
        return self.tracker.refused(ack.raw) if ack.recovered is False else None

    def _on_error(self, err: ServerError) -> bool:
        """Whether a waiting call took the error (else it is the user's to see)."""
        if err.request in ("subscribe", "unsubscribe"):
            if err.request == "subscribe":
                # a symbol the server refuses (unknown, over a limit) is not resubscribed later
                refused = {normalise(s) for s in (*err.symbols, err.symbol or "") if s}
                for key, sub in list(self._subs.items()):
                    if normalise(sub.requested) in refused:
                        del self._subs[key]
            return self._acks.error(err)
        return self._requests.fail(err)


def connect(url: str, *, options: ClientOptions | None = None, **overrides: Any) -> Client:
    """A :class:`Client` of ``url``: ``async with connect(url) as client: ...`` (waits for the
    welcome, reconnecting meanwhile, at most ``connect_timeout``), or ``await client.start()``."""
    return Client(url, options=options, **overrides)
