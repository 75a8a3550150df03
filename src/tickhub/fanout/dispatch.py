"""Dispatch: one client message in, the action it asks for, and the reply or error out.

Every message is counted and passes the message rate first (:mod:`tickhub.fanout.admission`),
then the size limit, decoding and, when authentication is on, the authentication gate. The
message is then checked once, into its command (``tickhub.core.commands.parse_command``): the
built-in requests (``auth``, ``subscribe``, ``unsubscribe``, ``heartbeat``, ``ping``,
``list_subscriptions``) are served here from it; endpoint-specific ones (``create_alert``,
``set_position``...) go to the handlers registered for the client's endpoint. Every failure
becomes an ``error`` reply: a client never learns about a server bug from a closed connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tickhub.core import defaults, protocol
from tickhub.core.clock import Clock
from tickhub.core.commands import (
    REQUEST_ENDPOINTS,
    Auth,
    Command,
    Heartbeat,
    ListSubscriptions,
    Ping,
    ResumePoint,
    Subscribe,
    Unsubscribe,
    parse_command,
    set_key,
)
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import Interval
from tickhub.core.protocol import CloseCode, ErrorCode, ProtocolError
from tickhub.core.topics import ALL_SYMBOLS, Endpoint, split_set, topic
from tickhub.fanout.auth import Authenticator, Identity
from tickhub.fanout.limits import HubLimits
from tickhub.fanout.recovery import Recovery
from tickhub.fanout.session import Close, Session, Subscription, SubscriptionChange

log = logging.getLogger(__name__)

RequestHandler = Callable[[Session, dict[str, Any]], None]
"""Serves one endpoint-specific request type from the message as the client sent it (what a
gateway forwards to the ingest); replies through ``session.send``."""

CommandHandler = Callable[[Session, Command], None]
"""Serves one endpoint-specific request type from its checked command; replies through
``session.send``."""

_Served = Callable[[Session, Command, dict[str, Any]], None]

UNAUTHENTICATED_KINDS = frozenset(("auth", "ping", "heartbeat"))
"""What a client may send before it has authenticated."""


class Dispatcher:
    """Client messages to actions, for the clients of one hub.

    Contract: :meth:`receive` and :meth:`refuse` never raise for a client message; a request
    that raises is answered ``internal_error`` and its traceback is logged, at most once per
    ``FAILURE_LOG_PERIOD`` per request type. Subscriptions change only through ``subscribe``
    and ``unsubscribe`` (the hub's topic bookkeeping); ``recovery`` sends what follows a
    subscribe ack. ``messages_in`` counts client messages, ``errors`` error replies by code,
    ``internal_errors`` requests that raised.
    """

    def __init__(
        self,
        registry: InstrumentRegistry,
        clock: Clock,
        limits: HubLimits,
        auth: Authenticator,
        recovery: Recovery,
        subscribe: SubscriptionChange,
        unsubscribe: SubscriptionChange,
        close: Close,
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.limits = limits
        self.auth = auth
        self._recovery = recovery
        self._add = subscribe
        self._drop = unsubscribe
        self._close = close
        self._handlers: dict[Endpoint, dict[str, _Served]] = {e: {} for e in Endpoint}
        self._shared: dict[tuple[Endpoint, str, Interval | None], Subscription] = {}
        # Indicator set key -> how many of the hub's topics use it (see on_demand), and the
        # shared subscriptions of each set in use (dropped with the set's last topic).
        self._set_topics: dict[str, int] = {}
        self._set_subs: dict[str, dict[tuple[str, Interval | None], Subscription]] = {}
        self._failure_logged: dict[str, float] = {}
        self.messages_in = 0
        self.errors: dict[str, int] = {}
        self.internal_errors = 0

    def add_handler(self, endpoint: Endpoint, kind: str, handler: RequestHandler) -> None:
        """Serve an endpoint-specific request type (``create_alert``, ``set_position``...)
        with the message as sent, once it is checked: for a handler that passes it on."""
        self._handlers[endpoint][kind] = lambda session, command, msg: handler(session, msg)

    def add_command_handler(self, endpoint: Endpoint, kind: str, handler: CommandHandler) -> None:
        """Serve an endpoint-specific request type with its checked command."""
        self._handlers[endpoint][kind] = lambda session, command, msg: handler(session, command)

    # --- replies -------------------------------------------------------------------------------

    def reply_error(self, session: Session, err: ProtocolError, **extra: Any) -> None:
        """Send ``err`` (with ``extra`` top-level fields) and count it."""
        self.count_error(err.code)
        session.send(protocol.error(self.clock.now(), err, **extra))

    def count_error(self, code: ErrorCode) -> None:
        """Count an error reply sent by other means."""
        self.errors[code.value] = self.errors.get(code.value, 0) + 1

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
        if not session.authenticated and kind not in UNAUTHENTICATED_KINDS:
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
            self._serve(session, kind, msg)
        except Exception:
            self._log_failure(kind, session)
            self.reply_error(
                session, ProtocolError(ErrorCode.INTERNAL_ERROR, "internal error"), request=kind
            )

    def _serve(self, session: Session, kind: str, msg: dict[str, Any]) -> None:
        if kind == "subscribe" and msg.get("batch") is True and session.batch is None:
            # Asked for, batching starts even when this subscribe is then refused.
            session.batch = []
        handler = self._handlers[session.endpoint].get(kind)
        if kind in REQUEST_ENDPOINTS and handler is None:
            self.reply_error(session, protocol.unknown_type(kind))
            return
        command = parse_command(
            msg,
            endpoint=session.endpoint,
            registry=self.registry,
            max_symbols=self.limits.max_symbols_per_message,
            max_indicators=self.limits.max_indicators_per_subscription,
            max_period=self.limits.max_indicator_period,
        )
        if isinstance(command, ProtocolError):
            if command.code is ErrorCode.UNKNOWN_TYPE:
                self.reply_error(session, command)
            else:
                self.reply_error(session, command, request=kind)
            return
        match command:
            case Auth():
                self.authenticate(session, command.token)
            case Subscribe():
                self._subscribe(session, command)
            case Unsubscribe():
                self._unsubscribe(session, command)
            case Heartbeat():
                session.send(
                    protocol.heartbeat_ack(
                        self.clock.now(),
                        sent=session.sent,
                        dropped=session.dropped,
                        conflated=session.conflated,
                    )
                )
            case Ping():
                extra = {} if command.timestamp is None else {"client_timestamp": command.timestamp}
                session.send(protocol.pong(self.clock.now(), **extra))
            case ListSubscriptions():
                self._list(session)
            case _ if handler is not None:  # a request type: checked above
                handler(session, command, msg)

    def _log_failure(self, kind: str, session: Session) -> None:
        """A request that raised is a server bug: its traceback is logged, but once per
        FAILURE_LOG_PERIOD per request type at most, so that a client repeating it cannot fill
        the log."""
        mono = self.clock.monotonic()
        last = self._failure_logged.get(kind)
        self.internal_errors += 1
        if last is not None and mono - last < defaults.FAILURE_LOG_PERIOD:
            return
        self._failure_logged[kind] = mono
        log.exception(
            "request %r failed on %s (%d internal errors so far)",
            kind,
            session.id,
            self.internal_errors,
        )

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
        """Whether the message rate lets this message through (see ``MessageRate``)."""
        verdict = session.rate.check(self.limits, mono)
        if verdict.close_reason is not None:
            self._close(session, CloseCode.RATE_LIMITED, verdict.close_reason)
            return False
        if verdict.error is not None:
            self.reply_error(session, verdict.error)
        return verdict.serve

    # --- requests ------------------------------------------------------------------------------

    def authenticate(self, session: Session, token: str | None) -> None:
        """Verify ``token`` for the client: authenticated, or refused and closed."""
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

    def on_demand(self, t: str, wanted: bool) -> None:
        """The hub's demand listener: counts the topics of each indicator set, so that
        ``MAX_INDICATOR_SETS`` bounds the sets in use, not the sets ever asked for."""
        _, key = split_set(t)
        if not key:
            return
        n = self._set_topics.get(key, 0) + (1 if wanted else -1)
        if n > 0:
            self._set_topics[key] = n
        else:
            self._set_topics.pop(key, None)
            self._set_subs.pop(key, None)

    def _subscribe(self, session: Session, command: Subscribe) -> None:
        interval, since = command.interval, command.since
        key = set_key(command.indicators) if command.indicators else ""
        limit = self.limits.max_indicator_sets
        if key and key not in self._set_topics and len(self._set_topics) >= limit:
            self.reply_error(
                session,
                ProtocolError(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"indicator set limit reached: the server computes at most {limit} "
                    "distinct indicator sets; use the default set or one already in use",
                    {
                        "limit": limit,
                        "current": len(self._set_topics),
                        "setting": "MAX_INDICATOR_SETS",
                    },
                ),
                request="subscribe",
            )
            return
        unknown: list[str] = []
        over: list[str] = []
        for name in command.names:
            instrument = self.registry.get(name)
            if name == ALL_SYMBOLS and session.endpoint == Endpoint.PORTFOLIO:
                if not self._subscribe_one(session, ALL_SYMBOLS, name, None, since.get(name)):
                    over.append(name)
                continue
            if instrument is None:
                unknown.append(name)
                continue
            symbol = instrument.symbol
            if not self._subscribe_one(session, symbol, name, interval, since.get(name), key):
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
        since: ResumePoint | None = None,
        indicators: str = "",
    ) -> bool:
        """Subscribe to one topic; ``False`` when the subscription limit refused it. The ack,
        then the snapshot or what was missed since ``since``, then live messages.
        ``indicators``: the key of the analysis indicator set ("" for the default one)."""
        sub = self._subscription(session, symbol, interval, indicators)
        t = sub.topic
        if t not in session.subs and len(session.subs) >= self.limits.max_subscriptions:
            return False
        self._add(session, sub)
        extra: dict[str, Any] = {}
        if interval is not None:
            extra["interval"] = interval.value
        if name != symbol:
            extra["requested"] = name
        if indicators:
            extra["indicators"] = indicators.split(";")
        self._recovery.start(session, t, symbol, extra, since)
        return True

    def _subscription(
        self, session: Session, symbol: str, interval: Interval | None, indicators: str = ""
    ) -> Subscription:
        """The subscription to a topic, one object shared by every client of a public topic.

        Thousands of clients subscribe to the same few hundred topics: a topic string and a
        :class:`Subscription` of their own would cost each ~120 bytes per subscription. The
        shared ones are bounded by instruments x intervals x endpoints (and the indicator sets
        in use, see ``_set_subscription``); a per-user topic
        (``user`` set) is the client's own and not kept here, so users cannot grow this."""
        endpoint = session.endpoint
        owner = "" if endpoint.has_interval else session.user
        if owner:
            return Subscription(symbol, interval, topic(endpoint, symbol, interval, owner))
        if indicators:
            return self._set_subscription(symbol, interval, indicators)
        key = (endpoint, symbol, interval)
        sub = self._shared.get(key)
        if sub is None:
            sub = self._shared[key] = Subscription(
                symbol, interval, topic(endpoint, symbol, interval)
            )
        return sub

    def _set_subscription(
        self, symbol: str, interval: Interval | None, indicators: str
    ) -> Subscription:
        """An analysis subscription of an indicator set: shared once the set is in use (so
        the objects kept are bounded by the sets in use, which ``MAX_INDICATOR_SETS``
        bounds), the client's own before (the first subscriber of a set, or one refused)."""
        subs = self._set_subs.get(indicators)
        sub = subs.get((symbol, interval)) if subs is not None else None
        if sub is not None:
            return sub
        sub = Subscription(
            symbol, interval, topic(Endpoint.ANALYSIS, symbol, interval, indicators=indicators)
        )
        if indicators in self._set_topics:
            self._set_subs.setdefault(indicators, {})[(symbol, interval)] = sub
        return sub

    def _unsubscribe(self, session: Session, command: Unsubscribe) -> None:
        interval = command.interval
        missing: list[str] = []
        for name in command.names:
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
                self._drop(session, sub)
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

    @staticmethod
    def _listed(sub: Subscription) -> dict[str, Any]:
        """One entry of ``subscriptions``: an indicator set's topic also names its set."""
        entry: dict[str, Any] = {"symbol": sub.symbol}
        if sub.interval:
            entry["interval"] = sub.interval.value
        _, key = split_set(sub.topic)
        if key:
            entry["indicators"] = key.split(";")
        return entry

    def _list(self, session: Session) -> None:
        subs = [self._listed(s) for s in session.subs.values()]
        symbols = list(dict.fromkeys(s.symbol for s in session.subs.values()))
        session.send(
            protocol.reply(self.clock.now(), "subscriptions", symbols=symbols, subscriptions=subs)
        )
