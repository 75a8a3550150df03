"""Subscriptions and fan-out: who wants which topic, and getting each message to all of them.

The hub is the "Connection Manager" and "Data Stream Manager" of the seed. It never awaits a client:
each bus message is framed once and the same bytes are written to every subscriber's transport.
A client whose transport buffer passes its limit (``outbox_bytes``) is *paused*: from then on it
keeps only the latest message per slot (ticks and candles are state, so the latest is what a screen
needs) while events with no slot (alerts) queue; once the client drains, the held messages go out
in order. A client paused longer than ``slow_client_grace`` is closed with the slow-consumer code.

The hub only talks to the bus, never to a producer, so the producer may live in another process.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson

from tickhub.bus import Bus, BusMessage
from tickhub.core import protocol
from tickhub.core.clock import Clock
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import Interval
from tickhub.core.protocol import CloseCode, ErrorCode, ProtocolError
from tickhub.core.topics import ALL_SYMBOLS, Endpoint, topic
from tickhub.fanout.auth import Authenticator, Identity

log = logging.getLogger(__name__)

FAILURE_LOG_PERIOD = 60.0
"""Seconds between two logged tracebacks of the same failing request type."""


class Peer(Protocol):
    """One client connection as the hub sees it (implemented by the server package)."""

    def send(self, payload: bytes) -> None:
        """Frame and write one text message."""
        ...

    def send_frame(self, frame: bytes) -> None:
        """Write an already framed message (built once for many peers)."""
        ...

    def close(self, code: int, reason: str) -> None: ...

    def ping(self) -> None:
        """Send a WebSocket ping (the client's pong counts as activity)."""
        ...


def transport_bytes(outbox_bytes: int) -> int:
    """Where a client's transport buffer pauses it: a quarter of its budget. The kernel's
    socket buffer is in front of it, and the held messages (the latest per slot) behind it get
    the rest of the budget."""
    return outbox_bytes // 4


@dataclass(frozen=True, slots=True)
class HubLimits:
    max_connections: int = 10_000
    max_connections_per_ip: int = 2_000
    connect_rate_per_ip: float = 50.0
    max_subscriptions: int = 200
    max_message_bytes: int = 65_536
    message_rate: float = 50.0
    message_burst: int = 100
    slow_client_grace: float = 30.0
    max_held_events: int = 10_000
    idle_timeout: float = 60.0
    auth_timeout: float = 10.0
    outbox_bytes: int = 1_048_576
    max_symbols_per_message: int = 200

    @property
    def held_bytes(self) -> int:
        """What a paused client may have held for it: the part of OUTBOX_BYTES that its
        transport buffer does not use (it pauses at a quarter, :func:`transport_bytes`)."""
        return self.outbox_bytes - transport_bytes(self.outbox_bytes)


@dataclass(frozen=True, slots=True)
class Subscription:
    symbol: str
    interval: Interval | None
    topic: str


RequestHandler = Callable[["Session", dict[str, Any]], None]


class Session:
    """One connected client: its subscriptions, counters and held messages while paused."""

    __slots__ = (
        "auth_deadline",
        "authenticated",
        "batch",
        "closing",
        "conflated",
        "connected_at",
        "dropped",
        "endpoint",
        "expires_at",
        "held",
        "held_bytes",
        "held_events",
        "id",
        "ip",
        "last_seen",
        "on_overflow",
        "paused",
        "paused_since",
        "peer",
        "pinged",
        "rate_dropped",
        "rate_rejected",
        "received",
        "refusals",
        "refusals_at",
        "remote",
        "sent",
        "subs",
        "tokens",
        "tokens_at",
        "user",
    )

    def __init__(
        self, sid: str, endpoint: Endpoint, remote: str, peer: Peer, now: datetime
    ) -> None:
        self.id = sid
        self.endpoint = endpoint
        self.remote = remote
        self.peer = peer
        self.connected_at = now
        self.subs: dict[str, Subscription] = {}
        self.user = ""  # the authenticated subject; "" when authentication is off
        self.ip = remote.rsplit(":", 1)[0]
        self.last_seen = 0.0
        self.pinged = False
        self.tokens = 0.0
        self.tokens_at = 0.0
        self.rate_rejected = 0  # refused since the last served message
        self.rate_dropped = 0  # refused in all
        self.refusals = 0.0  # refusals not yet drained at the message rate (see _take_token)
        self.refusals_at = 0.0
        self.authenticated = True
        self.auth_deadline = 0.0
        self.expires_at: datetime | None = None
        self.closing = False
        # Opt-in batching: data payloads wait here and leave together as one "batch" frame.
        self.batch: list[bytes] | None = None
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self.conflated = 0
        self.paused = False
        self.paused_since = 0.0
        # (topic, slot) -> frame; slot None entries get a unique key so they are all kept.
        self.held: dict[tuple[str, object], bytes] = {}
        self.held_events = 0
        self.held_bytes = 0  # of held and batch; bounded by HubLimits.held_bytes
        self.on_overflow: Callable[[Session], None] | None = None

    def send(self, payload: bytes) -> None:
        """A direct reply (ack, error, snapshot); held like everything else while paused."""
        if self.closing:
            return
        if self.paused:
            self.held[("", next(_event_ids))] = payload
            self.held_bytes += len(payload)
            if self.on_overflow is not None:
                self.on_overflow(self)
            return
        self.peer.send(payload)
        self.sent += 1

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint": self.endpoint.path,
            "remote": self.remote,
            "connected_since": protocol.iso(self.connected_at),
            "subscriptions": [
                s.symbol if s.interval is None else f"{s.symbol}@{s.interval.value}"
                for s in self.subs.values()
            ],
            "messages_sent": self.sent,
            "messages_received": self.received,
            "dropped": self.dropped,
            "conflated": self.conflated,
            "paused": self.paused,
            "held_bytes": self.held_bytes,
            "closing": self.closing,
            "user": self.user or None,
            "authenticated": self.authenticated,
        }


_event_ids = itertools.count()


class Hub:
    def __init__(
        self,
        bus: Bus,
        registry: InstrumentRegistry,
        clock: Clock,
        frame: Callable[[bytes], bytes],
        limits: HubLimits | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.bus = bus
        self.registry = registry
        self.clock = clock
        self.limits = limits or HubLimits()
        self._frame = frame
        self._topics: dict[str, dict[Session, None]] = {}
        self._sessions: dict[str, Session] = {}
        self._handlers: dict[Endpoint, dict[str, RequestHandler]] = {e: {} for e in Endpoint}
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid():x}"
        self.demand_listeners: list[Callable[[str, bool], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.messages_in = 0
        self.messages_out = 0
        self.auth = authenticator if authenticator is not None else Authenticator()
        self._per_ip: dict[str, int] = {}
        self._attempts: dict[str, tuple[float, float]] = {}  # ip -> (tokens, at)
        self.errors: dict[str, int] = {}
        self.observe_latency: Callable[[float], None] | None = None
        self.pings = 0  # keep-alive pings sent to idle clients
        self._batching: set[Session] = set()
        # topic -> clients whose snapshot is being fetched -> live messages held meanwhile
        self._awaiting: dict[str, dict[Session, list[BusMessage]]] = {}
        self.conflated = 0  # replaced by a newer message for a slow client (monotonic)
        self.dropped = 0  # never delivered: conflated, or held when a slow client was closed
        self.closes: dict[int, int] = {}
        self._fanning_out = False  # closes wait in _deferred until the loop over members ends
        self._deferred: list[tuple[Session, str]] = []
        self._failure_logged: dict[str, float] = {}
        self.internal_errors = 0

    # --- extension -----------------------------------------------------------------------------

    def add_handler(self, endpoint: Endpoint, kind: str, handler: RequestHandler) -> None:
        """Serve an endpoint-specific request type (``create_alert``, ``set_position``...)."""
        self._handlers[endpoint][kind] = handler

    # --- connections ---------------------------------------------------------------------------

    @property
    def sessions(self) -> Iterable[Session]:
        return self._sessions.values()

    def __len__(self) -> int:
        return len(self._sessions)

    def can_accept(self) -> bool:
        return len(self._sessions) < self.limits.max_connections

    def connect(
        self,
        peer: Peer,
        endpoint: Endpoint,
        remote: str,
        token: str | None = None,
        batch: bool = False,
    ) -> Session | None:
        """Register a new client and greet it; ``None`` when a limit refused it (the client
        was told which limit, and the connection is closing)."""
        sid = f"{self._prefix}-{next(self._ids)}"
        now = self.clock.now()
        mono = self.clock.monotonic()
        session = Session(sid, endpoint, remote, peer, now)
        session.last_seen = session.tokens_at = mono
        session.tokens = float(self.limits.message_burst)
        session.on_overflow = self._check_budget
        refusal = self._admit(session.ip, mono)
        session.send(protocol.welcome(now, endpoint.path, sid))
        if refusal is not None:
            err, code = refusal
            self._count_error(err.code)
            session.send(protocol.error(now, err))
            self._close(session, code, err.message)
            return None
        self._sessions[sid] = session
        self._per_ip[session.ip] = self._per_ip.get(session.ip, 0) + 1
        if batch:
            session.batch = []
        if self.auth.enabled:
            session.authenticated = False
            session.auth_deadline = mono + self.limits.auth_timeout
            if token is not None:
                self._authenticate(session, token)
        log.debug("connect %s %s from %s", sid, endpoint.path, remote, extra={"connection_id": sid})
        return session

    def _admit(self, ip: str, mono: float) -> tuple[ProtocolError, int] | None:
        limits = self.limits
        rate = limits.connect_rate_per_ip
        tokens, at = self._attempts.get(ip, (rate * 2, mono))
        tokens = min(rate * 2, tokens + (mono - at) * rate)
        if tokens < 1.0:
            self._attempts[ip] = (tokens, mono)
            return (
                ProtocolError(
                    ErrorCode.RATE_LIMITED,
                    f"too many connection attempts from {ip}: limit {rate:g} per second",
                    {"limit": rate, "setting": "CONNECT_RATE_PER_IP"},
                ),
                CloseCode.RATE_LIMITED,
            )
        self._attempts[ip] = (tokens - 1.0, mono)
        current = self._per_ip.get(ip, 0)
        if current >= limits.max_connections_per_ip:
            return (
                ProtocolError(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"connection limit per address reached: {limits.max_connections_per_ip}",
                    {
                        "limit": limits.max_connections_per_ip,
                        "current": current,
                        "setting": "MAX_CONNECTIONS_PER_IP",
                    },
                ),
                CloseCode.LIMIT_EXCEEDED,
            )
        return None

    def disconnect(self, session: Session) -> None:
        """The client's socket is gone. Until then a closing client still counts against the
        connection limits, so closing clients cannot pile up sockets beyond them."""
        self._retire(session)
        if self._sessions.pop(session.id, None) is None:
            return
        left = self._per_ip.get(session.ip, 1) - 1
        if left > 0:
            self._per_ip[session.ip] = left
        else:
            self._per_ip.pop(session.ip, None)
        log.debug("disconnect %s", session.id)

    def _retire(self, session: Session) -> None:
        """Nothing more goes to this client: drop its subscriptions and what was held for it."""
        session.closing = True
        for sub in list(session.subs.values()):
            self._drop_subscription(session, sub)
        session.held.clear()
        session.held_bytes = session.held_events = 0
        session.batch = None
        self._batching.discard(session)

    def closed_by_peer(self, session: Session) -> None:
        """The client sent a close frame (the server has answered it)."""
        self._retire(session)

    def failed(self, session: Session, code: int) -> None:
        """The WebSocket layer closed the connection for a protocol violation (1002, 1007,
        1009): counted with the other closes, the client's fault, not a server error."""
        if not session.closing:
            self.closes[code] = self.closes.get(code, 0) + 1
        self._retire(session)

    def topics(self) -> dict[str, int]:
        return {t: len(s) for t, s in self._topics.items()}

    # --- incoming ------------------------------------------------------------------------------

    def receive(self, session: Session, raw: bytes) -> None:
        """Handle one complete client message; every failure becomes an ``error`` reply."""
        if session.closing:
            return
        session.received += 1
        self.messages_in += 1
        mono = self.clock.monotonic()
        session.last_seen = mono
        session.pinged = False
        if not self._take_token(session, mono):
            return
        if len(raw) > self.limits.max_message_bytes:
            self.reply_error(
                session,
                ProtocolError(
                    ErrorCode.MESSAGE_TOO_LARGE,
                    f"message of {len(raw)} bytes exceeds the limit of "
                    f"{self.limits.max_message_bytes} bytes",
                    {
                        "limit": self.limits.max_message_bytes,
                        "size": len(raw),
                        "setting": "MAX_MESSAGE_BYTES",
                    },
                ),
            )
            return
        msg = protocol.decode(raw)
        if isinstance(msg, ProtocolError):
            self.reply_error(session, msg)
            return
        kind = msg["type"]
        if (
            not session.authenticated
            and kind not in ("auth", "ping", "heartbeat")
            and kind not in ("ping", "heartbeat")
        ):
            self.reply_error(
                session,
                ProtocolError(
                    ErrorCode.AUTH_REQUIRED,
                    'authenticate first: send {"type": "auth", "token": ...}',
                ),
                request=kind,
            )
            return
        try:
            if kind == "auth":
                self._authenticate(session, msg.get("token"))
            elif kind == "subscribe":
                if msg.get("batch") is True and session.batch is None:
                    session.batch = []
                self._subscribe(session, msg)
            elif kind == "unsubscribe":
                self._unsubscribe(session, msg)
            elif kind == "heartbeat":
                session.send(
                    protocol.heartbeat_ack(
                        self.clock.now(),
                        sent=session.sent,
                        dropped=session.dropped,
                        conflated=session.conflated,
                    )
                )
            elif kind == "ping":
                stamp = protocol.client_timestamp(msg)
                if isinstance(stamp, ProtocolError):
                    self.reply_error(session, stamp, request="ping")
                    return
                extra = {} if stamp is None else {"client_timestamp": stamp}
                session.send(protocol.pong(self.clock.now(), **extra))
            elif kind == "list_subscriptions":
                self._list(session)
            elif (handler := self._handlers[session.endpoint].get(kind)) is not None:
                handler(session, msg)
            else:
                self.reply_error(
                    session,
                    ProtocolError(
                        ErrorCode.UNKNOWN_TYPE,
                        f"unknown message type: {protocol.shown(kind)}",
                        {"type": protocol.clip(kind)},
                    ),
                )
        except Exception:
            self._log_failure(kind, session)
            self.reply_error(
                session, ProtocolError(ErrorCode.INTERNAL_ERROR, "internal error"), request=kind
            )

    def _log_failure(self, kind: str, session: Session) -> None:
        """A request that raised is a server bug: its traceback is logged, but once a minute per
        request type at most, so that a client repeating it cannot fill the log."""
        mono = self.clock.monotonic()
        last = self._failure_logged.get(kind)
        self.internal_errors += 1
        if last is not None and mono - last < FAILURE_LOG_PERIOD:
            return
        self._failure_logged[kind] = mono
        log.exception(
            "request %r failed on %s (%d internal errors so far)",
            kind,
            session.id,
            self.internal_errors,
        )

    def reply_error(self, session: Session, err: ProtocolError, **extra: Any) -> None:
        self._count_error(err.code)
        session.send(protocol.error(self.clock.now(), err, **extra))

    def _count_error(self, code: ErrorCode) -> None:
        self.errors[code.value] = self.errors.get(code.value, 0) + 1

    def touch(self, session: Session) -> None:
        """Any frame from the client (a pong included) shows it is alive."""
        session.last_seen = self.clock.monotonic()
        session.pinged = False

    def refuse(self, session: Session, err: ProtocolError) -> None:
        """A frame the server cannot take (binary, oversized): counted like any message, under
        the same rate limit, answered with ``err``."""
        session.received += 1
        self.messages_in += 1
        mono = self.clock.monotonic()
        session.last_seen = mono
        session.pinged = False
        if self._take_token(session, mono):
            self.reply_error(session, err)

    def _take_token(self, session: Session, mono: float) -> bool:
        """Token bucket of ``message_rate`` per second, ``message_burst`` deep.

        The first refused message of a run of refusals gets a ``rate_limited`` error; the next
        ones get nothing then, and when a message is served again a second ``rate_limited``
        error says how many were dropped in all (``details.dropped``), before its reply.

        Closing: every refusal adds one to a count that drains at ``message_rate`` per second;
        above twice the burst the connection closes with the rate-limit code. Sent at once,
        that is more than twice the burst refused in a row; a flood that the server reads a
        slice at a time (so that a few tokens come back between slices) is closed all the same.
        """
        limits = self.limits
        session.tokens = min(
            float(limits.message_burst),
            session.tokens + (mono - session.tokens_at) * limits.message_rate,
        )
        session.tokens_at = mono
        details = {
            "limit": limits.message_rate,
            "burst": limits.message_burst,
            "setting": "MESSAGE_RATE",
        }
        if session.tokens >= 1.0:
            session.tokens -= 1.0
            dropped, session.rate_rejected = session.rate_rejected, 0
            if dropped > 1:
                self.reply_error(
                    session,
                    ProtocolError(
                        ErrorCode.RATE_LIMITED,
                        f"{dropped} messages in a row were not processed (rate limit)",
                        {**details, "dropped": dropped},
                    ),
                )
            return True
        session.rate_rejected += 1
        session.rate_dropped += 1
        drained = (mono - session.refusals_at) * limits.message_rate
        session.refusals = max(0.0, session.refusals - drained) + 1.0
        session.refusals_at = mono
        if session.refusals > 2 * limits.message_burst:
            self._close(
                session,
                CloseCode.RATE_LIMITED,
                f"rate limit exceeded repeatedly: {session.rate_dropped} messages dropped",
            )
            return False
        if session.rate_rejected == 1:
            self.reply_error(
                session,
                ProtocolError(
                    ErrorCode.RATE_LIMITED,
                    f"too many messages: limit {limits.message_rate:g} per second "
                    f"(burst {limits.message_burst}); this message was not processed",
                    {**details, "dropped": 1},
                ),
            )
        return False

    def _authenticate(self, session: Session, token: object) -> None:
        if not self.auth.enabled:
            session.send(protocol.reply(self.clock.now(), "auth", status="not_required"))
            return
        result = self.auth.verify(token, self.clock.now())
        if isinstance(result, Identity):
            if session.authenticated and result.user != session.user:
                self.reply_error(
                    session,
                    ProtocolError(ErrorCode.AUTH_FAILED, "a connection cannot change its user"),
                    request="auth",
                )
                return
            session.authenticated = True
            session.user = result.user
            session.expires_at = result.expires_at
            expires = None if result.expires_at is None else protocol.iso(result.expires_at)
            session.send(
                protocol.reply(
                    self.clock.now(),
                    "auth",
                    status="authenticated",
                    user=result.user,
                    expires_at=expires,
                )
            )
            return
        expired = result.reason.value == ErrorCode.AUTH_EXPIRED.value
        code = ErrorCode.AUTH_EXPIRED if expired else ErrorCode.AUTH_FAILED
        self.reply_error(session, ProtocolError(code, result.message), request="auth")
        close = CloseCode.AUTH_EXPIRED if expired else CloseCode.AUTH_FAILED
        self._close(session, close, result.message)

    def _resolve(
        self, session: Session, msg: dict[str, Any]
    ) -> tuple[list[str], Interval | None] | None:
        symbols = protocol.symbols_of(msg, self.limits.max_symbols_per_message)
        if isinstance(symbols, ProtocolError):
            self.reply_error(session, symbols, request=msg["type"])
            return None
        interval: Interval | None = None
        if session.endpoint.has_interval:
            raw = msg.get("interval")
            if raw is not None or msg["type"] == "subscribe":
                try:
                    if raw is not None and not isinstance(raw, str):
                        raise ValueError
                    interval = Interval.parse(raw if isinstance(raw, str) else "1m")
                except ValueError:
                    shown = protocol.shown(raw)
                    self.reply_error(
                        session,
                        ProtocolError(
                            ErrorCode.UNKNOWN_INTERVAL,
                            f"unknown interval: {shown} "
                            f"(allowed: {', '.join(i.value for i in Interval)})",
                            {"interval": raw if isinstance(raw, str) else shown},
                        ),
                        request=msg["type"],
                    )
                    return None
        return symbols, interval

    def _subscribe(self, session: Session, msg: dict[str, Any]) -> None:
        resolved = self._resolve(session, msg)
        if resolved is None:
            return
        names, interval = resolved
        since = protocol.since_of(msg, names)
        if isinstance(since, ProtocolError):
            self.reply_error(session, since, request="subscribe")
            return
        unknown: list[str] = []
        over: list[str] = []
        for name in names:
            instrument = self.registry.get(name)
            if name == ALL_SYMBOLS and session.endpoint == Endpoint.PORTFOLIO:
                if not self._subscribe_one(session, ALL_SYMBOLS, name, None, since.get(name)):
                    over.append(name)
                continue
            if instrument is None:
                unknown.append(name)
                continue
            symbol = instrument.symbol
            if not self._subscribe_one(session, symbol, name, interval, since.get(name)):
                over.append(symbol)
        # One error per kind of refusal, listing every symbol it refused: a message naming
        # many symbols never gets many replies.
        if unknown:
            self._refuse_symbols(
                session,
                "subscribe",
                unknown,
                ErrorCode.UNKNOWN_SYMBOL,
                f"unknown symbol{'s' if len(unknown) > 1 else ''}: {protocol.listed(unknown)}",
            )
        if over:
            limit = self.limits.max_subscriptions
            self._refuse_symbols(
                session,
                "subscribe",
                over,
                ErrorCode.LIMIT_EXCEEDED,
                f"subscription limit reached: {limit} per connection",
                {"limit": limit, "current": len(session.subs), "setting": "MAX_SUBSCRIPTIONS"},
            )

    def _refuse_symbols(
        self,
        session: Session,
        request: str,
        names: list[str],
        code: ErrorCode,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """One ``error`` for the symbols of a request refused for one reason: ``symbol`` (and
        ``details.symbol`` for the unknown and not-subscribed ones) when it is one, as clients
        of one symbol have always read it; ``symbols`` and ``details.count`` when several."""
        details = dict(details or {})
        if len(names) == 1:
            if code != ErrorCode.LIMIT_EXCEEDED:
                details["symbol"] = names[0]
            self.reply_error(
                session, ProtocolError(code, message, details), symbol=names[0], request=request
            )
            return
        details["count"] = len(names)
        self.reply_error(
            session, ProtocolError(code, message, details), symbols=names, request=request
        )

    def _subscribe_one(
        self,
        session: Session,
        symbol: str,
        name: str,
        interval: Interval | None,
        since: tuple[str, int] | None = None,
    ) -> bool:
        """Subscribe to one topic; ``False`` when the subscription limit refused it."""
        t = topic(session.endpoint, symbol, interval, session.user)
        if t not in session.subs and len(session.subs) >= self.limits.max_subscriptions:
            return False
        self._add_subscription(session, Subscription(symbol, interval, t))
        self._start(session, t, symbol, name, interval, since)
        return True

    def _start(
        self,
        session: Session,
        t: str,
        symbol: str,
        name: str,
        interval: Interval | None,
        since: tuple[str, int] | None,
    ) -> None:
        """The ack, then the snapshot or what was missed since ``since``, then live messages."""
        extra: dict[str, Any] = {}
        if interval is not None:
            extra["interval"] = interval.value
        if name != symbol:
            extra["requested"] = name
        if since is not None:
            missed = self.bus.recover_nowait(t, since[0], since[1])
            if missed is False:
                # Live messages for this client wait until the recovered ones are sent.
                self._awaiting.setdefault(t, {})[session] = []
                self._spawn(self._recover_later(session, t, symbol, since, extra), session, t)
                return
            extra["recovered"] = missed is not None
            session.send(protocol.subscription(self.clock.now(), "subscribed", symbol, **extra))
            if isinstance(missed, list):
                for payload in missed:
                    session.send(payload)
                return
            self._send_snapshot(session, t)
            return
        session.send(protocol.subscription(self.clock.now(), "subscribed", symbol, **extra))
        self._send_snapshot(session, t)

    async def _recover_later(
        self,
        session: Session,
        t: str,
        symbol: str,
        since: tuple[str, int],
        extra: dict[str, Any],
    ) -> None:
        try:
            missed = await self.bus.recover(t, since[0], since[1])
        except Exception:
            log.exception("recovery failed for %s", t)
            missed = None
        if missed is None:
            # Not covered: a fresh snapshot (it takes the held live messages over as well).
            if t in session.subs and session.id in self._sessions:
                extra["recovered"] = False
                session.send(protocol.subscription(self.clock.now(), "subscribed", symbol, **extra))
            await self._fetch_snapshot(session, t)
            return
        held = self._release(session, t)
        if t not in session.subs or session.id not in self._sessions:
            return
        extra["recovered"] = True
        session.send(protocol.subscription(self.clock.now(), "subscribed", symbol, **extra))
        last = 0
        for payload in missed:
            session.send(payload)
            last = max(last, _seq_of(payload))
        for message in held:
            if message.seq > last:  # what arrived live meanwhile, without repeats
                session.send(message.payload)

    def _release(self, session: Session, t: str) -> list[BusMessage]:
        """Stop holding live messages for a client; the ones held so far."""
        waiting = self._awaiting.get(t)
        held = waiting.pop(session, []) if waiting is not None else []
        if waiting is not None and not waiting:
            del self._awaiting[t]
        return held

    def _spawn(self, coro: Any, session: Session, t: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"subscribe:{session.id}:{t}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send_snapshot(self, session: Session, t: str) -> None:
        retained = self.bus.retained_nowait(t)
        if retained is not None:
            for payload in retained:
                session.send(protocol.mark_snapshot(payload))
            return
        # A remote bus without a local copy: fetch it. Live messages for this client wait until
        # it is sent, so the snapshot never arrives after newer live messages.
        self._awaiting.setdefault(t, {})[session] = []
        task = asyncio.get_running_loop().create_task(
            self._fetch_snapshot(session, t), name=f"snapshot:{session.id}:{t}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch_snapshot(self, session: Session, t: str) -> None:
        try:
            retained = await self.bus.retained(t)
        except ConnectionError as exc:  # the bus is down: it says so itself, once
            log.warning("no snapshot for %s: %s", t, exc)
            retained = []
        except Exception:
            log.exception("snapshot fetch failed for %s", t)
            retained = []
        held = self._release(session, t)
        if t not in session.subs or session.id not in self._sessions:
            return
        # The snapshot was read after (or while) the held messages arrived: a held update of a
        # retained value that is not newer than the snapshot is in it already; events are not.
        newest = max((_seq_of(p) for p in retained), default=0)
        for payload in retained:
            session.send(protocol.mark_snapshot(payload))
        for message in held:
            if message.retain is None or message.seq > newest:
                session.send(message.payload)

    def _unsubscribe(self, session: Session, msg: dict[str, Any]) -> None:
        resolved = self._resolve(session, msg)
        if resolved is None:
            return
        names, interval = resolved
        missing: list[str] = []
        for name in names:
            instrument = self.registry.get(name)
            symbol = instrument.symbol if instrument is not None else name
            matches = [
                s
                for s in session.subs.values()
                if s.symbol == symbol and (interval is None or s.interval == interval)
            ]
            if not matches:
                missing.append(name)
                continue
            for sub in matches:
                self._drop_subscription(session, sub)
            extra: dict[str, Any] = {}
            if interval is not None:
                extra["interval"] = interval.value
            session.send(protocol.subscription(self.clock.now(), "unsubscribed", symbol, **extra))
        if missing:
            self._refuse_symbols(
                session,
                "unsubscribe",
                missing,
                ErrorCode.NOT_SUBSCRIBED,
                f"not subscribed: {protocol.listed(missing)}",
            )

    def _list(self, session: Session) -> None:
        subs = [
            {"symbol": s.symbol, **({"interval": s.interval.value} if s.interval else {})}
            for s in session.subs.values()
        ]
        symbols = list(dict.fromkeys(s.symbol for s in session.subs.values()))
        session.send(
            protocol.reply(self.clock.now(), "subscriptions", symbols=symbols, subscriptions=subs)
        )

    # --- topic bookkeeping ---------------------------------------------------------------------

    def _add_subscription(self, session: Session, sub: Subscription) -> None:
        if sub.topic in session.subs:
            return
        session.subs[sub.topic] = sub
        members = self._topics.get(sub.topic)
        if members is None:
            members = self._topics[sub.topic] = {}
            self.bus.subscribe(sub.topic, self._on_bus_message)
            for listener in self.demand_listeners:
                listener(sub.topic, True)
        members[session] = None

    def _drop_subscription(self, session: Session, sub: Subscription) -> None:
        session.subs.pop(sub.topic, None)
        waiting = self._awaiting.get(sub.topic)
        if waiting is not None:
            waiting.pop(session, None)
        members = self._topics.get(sub.topic)
        if members is None:
            return
        members.pop(session, None)
        # Held messages for the topic are no longer wanted.
        for key in [k for k in session.held if k[0] == sub.topic]:
            session.held_bytes -= len(session.held.pop(key))
        if not members:
            del self._topics[sub.topic]
            self.bus.unsubscribe(sub.topic, self._on_bus_message)
            for listener in self.demand_listeners:
                listener(sub.topic, False)

    # --- fan-out -------------------------------------------------------------------------------

    def _on_bus_message(self, message: BusMessage) -> None:
        members = self._topics.get(message.topic)
        if not members:
            return
        frame = self._frame(message.payload)
        waiting = self._awaiting.get(message.topic)
        # A client closed for its budget leaves `members`: close it after the loop.
        self._fanning_out = True
        try:
            self._fan_out(members, message, frame, waiting)
        finally:
            self._fanning_out = False
        if self._deferred:
            deferred, self._deferred = self._deferred, []
            for session, reason in deferred:
                self._close_slow(session, reason)
        if self.observe_latency is not None and message.published_at:
            self.observe_latency(time.time() - message.published_at)

    def _fan_out(
        self,
        members: dict[Session, None],
        message: BusMessage,
        frame: bytes,
        waiting: dict[Session, list[BusMessage]] | None,
    ) -> None:
        slot = message.slot
        written = 0
        for session in members:
            if waiting is not None and session in waiting:
                waiting[session].append(message)
            elif session.batch is not None:
                session.batch.append(message.payload)
                self._batching.add(session)
                if session.paused:
                    session.held_bytes += len(message.payload)
                    self._check_budget(session)
            elif session.paused:
                self._hold(session, message.topic, slot, frame)
            else:
                session.peer.send_frame(frame)
                session.sent += 1
                written += 1
        self.messages_out += written

    def _hold(self, session: Session, t: str, slot: str | None, frame: bytes) -> None:
        if slot is None:
            if session.held_events >= self.limits.max_held_events:
                self._close_slow(session, "too many undelivered events")
                return
            session.held[(t, next(_event_ids))] = frame
            session.held_events += 1
            session.held_bytes += len(frame)
            self._check_budget(session)
            return
        key = (t, slot)
        old = session.held.pop(key, None)
        if old is not None:
            session.held_bytes -= len(old)
            session.conflated += 1
            session.dropped += 1
            self.conflated += 1
            self.dropped += 1
        # Re-inserted at the end: held messages leave in the order of their latest update.
        session.held[key] = frame
        session.held_bytes += len(frame)
        self._check_budget(session)

    def _check_budget(self, session: Session) -> None:
        """Every byte held for a paused client counts against OUTBOX_BYTES (its transport buffer
        holds the other half): past it the client is closed as a slow consumer."""
        if session.held_bytes > self.limits.held_bytes and not session.closing:
            self._close_slow(session, f"outbox over {self.limits.outbox_bytes} bytes")

    def flush_batches(self) -> None:
        """Send every batching client what gathered since the last call, as one frame each.

        A batch is ``{"type": "batch", "count": n, "messages": [...]}`` where each message is
        exactly the ``data`` message a non-batching client would have received.
        """
        sessions, self._batching = self._batching, set()
        for session in sessions:
            pending = session.batch
            if not pending or session.closing:
                continue
            if session.paused:
                if len(pending) > self.limits.max_held_events:
                    self._close_slow(session, "too many undelivered batched messages")
                else:
                    self._batching.add(session)  # try again once it drains
                continue
            session.batch = []
            session.held_bytes = sum(map(len, session.held.values()))
            n = len(pending)
            payload = b'{"type":"batch","count":%d,"messages":[%b]}' % (n, b",".join(pending))
            session.peer.send(payload)
            session.sent += n
            self.messages_out += n

    def pause(self, session: Session) -> None:
        """The client's transport buffer passed its limit."""
        if not session.paused:
            session.paused = True
            session.paused_since = self.clock.monotonic()

    def resume(self, session: Session) -> None:
        """The client drained: send what was held, oldest first, until it fills again."""
        session.paused = False
        if session.closing:
            return
        while session.held and not session.paused:
            key = next(iter(session.held))
            data = session.held.pop(key)
            if key[0] == "":
                session.peer.send(data)
            else:
                session.peer.send_frame(data)
            session.sent += 1
            self.messages_out += 1
        session.held_events = sum(1 for k in session.held if not isinstance(k[1], str))
        session.held_bytes = sum(map(len, session.held.values())) + sum(
            map(len, session.batch or ())
        )

    def check_slow_clients(self) -> int:
        """Close clients paused longer than the grace period; returns how many were closed."""
        deadline = self.clock.monotonic() - self.limits.slow_client_grace
        slow = [
            s
            for s in self._sessions.values()
            if s.paused and s.paused_since <= deadline and not s.closing
        ]
        for session in slow:
            self._close_slow(
                session, f"slow consumer: paused over {self.limits.slow_client_grace:g}s"
            )
        return len(slow)

    def sweep(self) -> None:
        """Periodic duties: slow consumers, idle clients, authentication deadlines and expiry."""
        self.check_slow_clients()
        mono = self.clock.monotonic()
        now = self.clock.now()
        idle = self.limits.idle_timeout
        for session in list(self._sessions.values()):
            if session.closing:
                continue
            if not session.authenticated and mono >= session.auth_deadline:
                timeout = self.limits.auth_timeout
                self._close(session, CloseCode.AUTH_TIMEOUT, f"no auth message within {timeout:g}s")
            elif session.expires_at is not None and now >= session.expires_at:
                self._close(session, CloseCode.AUTH_EXPIRED, "token expired")
            elif idle > 0 and mono - session.last_seen >= idle:
                self._close(session, CloseCode.IDLE_TIMEOUT, f"idle for {idle:g}s")
            elif idle > 0 and not session.pinged and mono - session.last_seen >= idle / 2:
                session.pinged = True
                self.pings += 1
                session.peer.ping()
        if len(self._attempts) > 10_000:
            self._attempts.clear()  # stale buckets would have refilled to full anyway

    def _close_slow(self, session: Session, reason: str) -> None:
        if self._fanning_out:
            self._deferred.append((session, reason))
            return
        session.dropped += len(session.held)
        self.dropped += len(session.held)
        self._close(session, CloseCode.SLOW_CONSUMER, reason)

    def _close(self, session: Session, code: int, reason: str) -> None:
        if session.closing:
            return
        session.closing = True
        self.closes[code] = self.closes.get(code, 0) + 1
        log.info(
            "closing %s (%s) with %d: %s",
            session.id,
            session.remote,
            code,
            reason,
            extra={"connection_id": session.id},
        )
        session.peer.close(code, reason)
        self._retire(session)

    def close_all(self, code: int, reason: str) -> None:
        for task in self._tasks:
            task.cancel()
        for session in list(self._sessions.values()):
            self._close(session, code, reason)

    # --- introspection -------------------------------------------------------------------------

    def connection_report(self) -> dict[str, Any]:
        per_endpoint = {e.path: 0 for e in Endpoint}
        for s in self._sessions.values():
            per_endpoint[s.endpoint.path] += 1
        return {
            "total": len(self._sessions),
            "endpoints": per_endpoint,
            "topics": len(self._topics),
            "connections": [s.describe() for s in self._sessions.values()],
        }

    def iter_sessions(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    def probe(self) -> dict[str, Any]:
        """Push a probe message through the bus and this hub's fan-out to a probe subscriber.

        Returns whether it arrived, framed as a client would receive it, and how long it took. On
        a bus that delivers asynchronously the result says ``pending``.
        """
        peer, session, sub, payload = self._probe_setup()
        started = self.clock.monotonic()
        self._add_subscription(session, sub)
        try:
            self.bus.publish(BusMessage(sub.topic, payload))
            elapsed = self.clock.monotonic() - started
        finally:
            self._drop_subscription(session, sub)
        if not peer.frames:
            return {"ok": False, "state": "pending", "detail": "probe not delivered synchronously"}
        return self._probe_result(peer, payload, elapsed)

    async def probe_async(self, timeout: float = 5.0) -> dict[str, Any]:
        """``probe`` for a bus that delivers asynchronously (Redis): wait for the round trip."""
        peer, session, sub, payload = self._probe_setup()
        peer.arrived = asyncio.Event()
        self._add_subscription(session, sub)
        try:
            flush = getattr(self.bus, "flush", None)
            if flush is not None:
                await asyncio.wait_for(flush(), timeout)  # the subscription is in place
            started = self.clock.monotonic()
            self.bus.publish(BusMessage(sub.topic, payload))
            await asyncio.wait_for(peer.arrived.wait(), timeout)
            elapsed = self.clock.monotonic() - started
        except TimeoutError:
            return {"ok": False, "state": "timeout", "detail": f"no round trip in {timeout:g}s"}
        finally:
            self._drop_subscription(session, sub)
        return self._probe_result(peer, payload, elapsed)

    def _probe_setup(self) -> tuple[_ProbePeer, Session, Subscription, bytes]:
        peer = _ProbePeer()
        session = Session("self-test", Endpoint.STREAM, "self-test", peer, self.clock.now())
        n = next(self._ids)
        sub = Subscription("_probe", None, f"_probe:{self._prefix}-{n}")
        return peer, session, sub, protocol.reply(self.clock.now(), "probe", n=n)

    def _probe_result(self, peer: _ProbePeer, payload: bytes, elapsed: float) -> dict[str, Any]:
        ok = peer.frames == [self._frame(payload)]
        return {
            "ok": ok,
            "state": "delivered" if ok else "corrupted",
            "latency_ms": round(elapsed * 1000, 3),
        }


def _seq_of(payload: bytes) -> int:
    try:
        seq = orjson.loads(payload).get("seq", 0)
    except (orjson.JSONDecodeError, AttributeError):
        return 0
    return seq if isinstance(seq, int) else 0


class _ProbePeer:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.arrived: asyncio.Event | None = None

    def send(self, payload: bytes) -> None:
        self.frames.append(payload)

    def send_frame(self, frame: bytes) -> None:
        self.frames.append(frame)
        if self.arrived is not None:
            self.arrived.set()

    def close(self, code: int, reason: str) -> None:
        return None

    def ping(self) -> None:
        return None


__all__ = ["CloseCode", "Hub", "HubLimits", "Peer", "Session", "Subscription"]
