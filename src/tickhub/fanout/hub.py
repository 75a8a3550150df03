"""The hub: who wants which topic, and getting each message to all of them.

The hub is the "Connection Manager" and "Data Stream Manager" of the seed. It composes the parts
of the fan-out, each in its own module: admission (:mod:`~tickhub.fanout.admission`), client
requests (:mod:`~tickhub.fanout.dispatch`), delivery and backpressure
(:mod:`~tickhub.fanout.delivery`), snapshot and resume (:mod:`~tickhub.fanout.recovery`) and the
self-test (:mod:`~tickhub.fanout.probe`). What it keeps itself is what they share: the clients,
the topic table and the closing of a client.

The hub only talks to the bus, never to a producer, so the producer may live in another process.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tickhub.bus import Bus
from tickhub.core import defaults, protocol
from tickhub.core.clock import Clock
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.protocol import CloseCode, ProtocolError
from tickhub.core.topics import Endpoint
from tickhub.fanout.admission import ConnectionAdmission, MessageRate
from tickhub.fanout.auth import Authenticator
from tickhub.fanout.delivery import Delivery
from tickhub.fanout.dispatch import CommandHandler, Dispatcher, RequestHandler
from tickhub.fanout.limits import HubLimits
from tickhub.fanout.probe import Probe
from tickhub.fanout.recovery import Awaiting, Recovery
from tickhub.fanout.session import Peer, Session, Subscription
from tickhub.runtime.tasks import TaskSet

log = logging.getLogger(__name__)


class Hub:
    """The clients of one server process and the bus topics they receive.

    Contract: the server calls :meth:`connect` for each WebSocket that opens (``None``: refused,
    the client was told why and is being closed), :meth:`receive` / :meth:`refuse` /
    :meth:`touch` for what it reads, :meth:`pause` / :meth:`resume` when the client's transport
    fills and drains, and :meth:`disconnect` once the socket is gone (or :meth:`closed_by_peer`
    / :meth:`failed` first). No method awaits a client or raises for one. The hub subscribes a
    bus topic while at least one client wants it and tells ``demand_listeners`` (topic, wanted)
    when that changes. Someone calls :meth:`sweep` periodically and
    :meth:`flush_batches` every batch interval; :meth:`close_all` (or :meth:`aclose`) ends it.
    All methods run on the event loop's thread.
    """

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
        self.limits = limits = limits or HubLimits()
        self.auth = authenticator if authenticator is not None else Authenticator()
        self._topics: dict[str, dict[Session, None]] = {}
        self._sessions: dict[str, Session] = {}
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid():x}"
        self._tasks = TaskSet(log)
        self.demand_listeners: list[Callable[[str, bool], None]] = []
        self.closes: dict[int, int] = {}
        self.pings = 0  # keep-alive pings sent to idle clients
        self._admission = ConnectionAdmission(limits)
        awaiting = Awaiting()
        self._awaiting = awaiting
        self._delivery = Delivery(
            limits, clock, frame, self._topics, self._sessions, awaiting, self._close
        )
        # One bound method for every session (a bound method each would cost 64 bytes a client).
        self._check_budget = self._delivery.check_budget
        self._recovery = Recovery(bus, clock, awaiting, self._tasks, self._is_live)
        self._dispatch = Dispatcher(
            registry,
            clock,
            limits,
            self.auth,
            self._recovery,
            self._add_subscription,
            self._drop_subscription,
            self._close,
        )
        self.demand_listeners.append(self._dispatch.on_demand)
        self._probe = Probe(
            bus,
            clock,
            frame,
            self._ids,
            self._prefix,
            self._add_subscription,
            self._drop_subscription,
        )

    # --- extension -----------------------------------------------------------------------------

    def add_handler(self, endpoint: Endpoint, kind: str, handler: RequestHandler) -> None:
        """Serve an endpoint-specific request type (``create_alert``, ``set_position``...)
        with the message as sent, once it is checked (for a handler that forwards it)."""
        self._dispatch.add_handler(endpoint, kind, handler)

    def add_command_handler(self, endpoint: Endpoint, kind: str, handler: CommandHandler) -> None:
        """Serve an endpoint-specific request type with its checked command."""
        self._dispatch.add_command_handler(endpoint, kind, handler)

    @property
    def observe_latency(self) -> Callable[[float], None] | None:
        """Told the publish-to-send latency (seconds) of each message fanned out."""
        return self._delivery.observe_latency

    @observe_latency.setter
    def observe_latency(self, observe: Callable[[float], None] | None) -> None:
        self._delivery.observe_latency = observe

    # --- counters ------------------------------------------------------------------------------

    @property
    def messages_in(self) -> int:
        """Client messages received (refused ones included)."""
        return self._dispatch.messages_in

    @property
    def messages_out(self) -> int:
        """Messages written to clients (a batch counts its messages)."""
        return self._delivery.messages_out

    @property
    def conflated(self) -> int:
        """Messages replaced by a newer one of the same slot for a paused client."""
        return self._delivery.conflated

    @property
    def dropped(self) -> int:
        """Messages never delivered: conflated, or held when a slow client was closed."""
        return self._delivery.dropped

    @property
    def errors(self) -> dict[str, int]:
        """Error replies sent, by error code."""
        return self._dispatch.errors

    @property
    def internal_errors(self) -> int:
        """Client requests that raised (server bugs)."""
        return self._dispatch.internal_errors

    # --- connections ---------------------------------------------------------------------------

    @property
    def sessions(self) -> Iterable[Session]:
        """The connected clients (a live view)."""
        return self._sessions.values()

    def __len__(self) -> int:
        return len(self._sessions)

    def can_accept(self) -> bool:
        """Whether one more connection stays within ``max_connections``."""
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
        session = Session(sid, endpoint, remote, peer, now, MessageRate.of(self.limits, mono))
        session.last_seen = mono
        session.on_overflow = self._check_budget
        refusal = self._admission.admit(session.ip, mono)
        session.send(protocol.welcome(now, endpoint.path, sid))
        if refusal is not None:
            self._dispatch.count_error(refusal.error.code)
            session.send(protocol.error(now, refusal.error))
            self._close(session, refusal.code, refusal.error.message)
            return None
        self._sessions[sid] = session
        self._admission.opened(session.ip)
        if batch:
            session.batch = []
        if self.auth.enabled:
            session.authenticated = False
            session.auth_deadline = mono + self.limits.auth_timeout
            if token is not None:
                self._dispatch.authenticate(session, token)
        log.debug("connect %s %s from %s", sid, endpoint.path, remote, extra={"connection_id": sid})
        return session

    def disconnect(self, session: Session) -> None:
        """The client's socket is gone. Until then a closing client still counts against the
        connection limits, so closing clients cannot pile up sockets beyond them."""
        self._retire(session)
        if self._sessions.pop(session.id, None) is None:
            return
        self._admission.closed(session.ip)
        log.debug("disconnect %s", session.id)

    def _retire(self, session: Session) -> None:
        """Nothing more goes to this client: drop its subscriptions and what was held for it."""
        session.closing = True
        for sub in list(session.subs.values()):
            self._drop_subscription(session, sub)
        self._delivery.forget(session)

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
        """Subscribed topics and how many clients each has."""
        return {t: len(s) for t, s in self._topics.items()}

    # --- incoming ------------------------------------------------------------------------------

    def receive(self, session: Session, raw: bytes) -> None:
        """Handle one complete client message; every failure becomes an ``error`` reply."""
        self._dispatch.receive(session, raw)

    def refuse(self, session: Session, err: ProtocolError) -> None:
        """A frame the server cannot take (binary, oversized): counted like any message, under
        the same rate limit, answered with ``err``."""
        self._dispatch.refuse(session, err)

    def reply_error(self, session: Session, err: ProtocolError, **extra: Any) -> None:
        """Send ``err`` to the client (with ``extra`` top-level fields) and count it."""
        self._dispatch.reply_error(session, err, **extra)

    def touch(self, session: Session) -> None:
        """Any frame from the client (a pong included) shows it is alive."""
        session.last_seen = self.clock.monotonic()
        session.pinged = False

    # --- topic bookkeeping ---------------------------------------------------------------------

    def _add_subscription(self, session: Session, sub: Subscription) -> None:
        if sub.topic in session.subs:
            return
        session.subs[sub.topic] = sub
        members = self._topics.get(sub.topic)
        if members is None:
            members = self._topics[sub.topic] = {}
            self.bus.subscribe(sub.topic, self._delivery.on_bus_message)
            for listener in self.demand_listeners:
                listener(sub.topic, True)
        members[session] = None

    def _drop_subscription(self, session: Session, sub: Subscription) -> None:
        session.subs.pop(sub.topic, None)
        self._awaiting.forget(session, sub.topic)
        members = self._topics.get(sub.topic)
        if members is None:
            return
        members.pop(session, None)
        self._delivery.drop_held(session, sub.topic)
        if not members:
            del self._topics[sub.topic]
            self.bus.unsubscribe(sub.topic, self._delivery.on_bus_message)
            for listener in self.demand_listeners:
                listener(sub.topic, False)

    def _is_live(self, session: Session, t: str) -> bool:
        """Whether the client is still connected and subscribed to ``t``."""
        return t in session.subs and session.id in self._sessions

    # --- delivery ------------------------------------------------------------------------------

    def flush_batches(self) -> None:
        """Send every batching client what gathered since the last call, as one frame each."""
        self._delivery.flush_batches()

    def pause(self, session: Session) -> None:
        """The client's transport buffer passed its limit."""
        self._delivery.pause(session)

    def resume(self, session: Session) -> None:
        """The client drained: send what was held, oldest first, until it fills again."""
        self._delivery.resume(session)

    def check_slow_clients(self) -> int:
        """Close clients paused longer than the grace period; returns how many were closed."""
        return self._delivery.check_slow_clients()

    def sweep(self) -> None:
        """Periodic duties: slow consumers, idle clients, authentication deadlines and expiry."""
        self._delivery.check_slow_clients()
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
            elif (
                idle > 0
                and not session.pinged
                and mono - session.last_seen >= idle * defaults.IDLE_PING_SHARE
            ):
                session.pinged = True
                self.pings += 1
                session.peer.ping()
        self._admission.forget_stale()

    # --- closing -------------------------------------------------------------------------------

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
        """Close every client with ``code``; snapshot and resume fetches still running stop."""
        self._tasks.cancel()
        for session in list(self._sessions.values()):
            self._close(session, code, reason)

    async def aclose(self, code: int, reason: str) -> None:
        """:meth:`close_all`, then wait until the fetches it stopped have ended."""
        self.close_all(code, reason)
        await self._tasks.aclose()

    # --- introspection -------------------------------------------------------------------------

    def connection_report(self) -> dict[str, Any]:
        """Clients per endpoint, the number of topics, and every client as ``describe`` has it."""
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
        """The connected clients now (a copy: the caller may close them while iterating)."""
        return iter(list(self._sessions.values()))

    def probe(self) -> dict[str, Any]:
        """One synchronous self-test round trip (see :class:`~tickhub.fanout.probe.Probe`)."""
        return self._probe.run()

    async def probe_async(self, timeout: float = defaults.PROBE_TIMEOUT) -> dict[str, Any]:
        """The self-test round trip on a bus that delivers asynchronously (Redis)."""
        return await self._probe.run_async(timeout)
