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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tickhub import protocol
from tickhub.bus import Bus, BusMessage
from tickhub.clock import Clock
from tickhub.instruments import InstrumentRegistry
from tickhub.model import Interval
from tickhub.protocol import ErrorCode, ProtocolError
from tickhub.topics import ALL_SYMBOLS, Endpoint, topic

log = logging.getLogger(__name__)


class CloseCode:
    """WebSocket close codes the server uses (table in docs/protocol.md).

    4000-4499: the client may reconnect; 4500-4999: it should not without a change.
    """

    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SLOW_CONSUMER = 4001


class Peer(Protocol):
    """One client connection as the hub sees it (implemented by the server package)."""

    def send(self, payload: bytes) -> None:
        """Frame and write one text message."""
        ...

    def send_frame(self, frame: bytes) -> None:
        """Write an already framed message (built once for many peers)."""
        ...

    def close(self, code: int, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class HubLimits:
    max_connections: int = 10_000
    max_subscriptions: int = 200
    max_message_bytes: int = 65_536
    slow_client_grace: float = 30.0
    max_held_events: int = 10_000


@dataclass(frozen=True, slots=True)
class Subscription:
    symbol: str
    interval: Interval | None
    topic: str


RequestHandler = Callable[["Session", dict[str, Any]], None]


class Session:
    """One connected client: its subscriptions, counters and held messages while paused."""

    __slots__ = (
        "conflated",
        "connected_at",
        "dropped",
        "endpoint",
        "held",
        "held_events",
        "id",
        "paused",
        "paused_since",
        "peer",
        "received",
        "remote",
        "sent",
        "subs",
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
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self.conflated = 0
        self.paused = False
        self.paused_since = 0.0
        # (topic, slot) -> frame; slot None entries get a unique key so they are all kept.
        self.held: dict[tuple[str, object], bytes] = {}
        self.held_events = 0

    def send(self, payload: bytes) -> None:
        """A direct reply (ack, error, snapshot); held like everything else while paused."""
        if self.paused:
            self.held[("", next(_event_ids))] = payload
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

    def connect(self, peer: Peer, endpoint: Endpoint, remote: str) -> Session:
        sid = f"{self._prefix}-{next(self._ids)}"
        session = Session(sid, endpoint, remote, peer, self.clock.now())
        self._sessions[sid] = session
        session.send(protocol.welcome(session.connected_at, endpoint.path, sid))
        log.debug("connect %s %s from %s", sid, endpoint.path, remote)
        return session

    def disconnect(self, session: Session) -> None:
        if self._sessions.pop(session.id, None) is None:
            return
        for sub in list(session.subs.values()):
            self._drop_subscription(session, sub)
        session.held.clear()
        log.debug("disconnect %s", session.id)

    def topics(self) -> dict[str, int]:
        return {t: len(s) for t, s in self._topics.items()}

    # --- incoming ------------------------------------------------------------------------------

    def receive(self, session: Session, raw: bytes) -> None:
        """Handle one complete client message; every failure becomes an ``error`` reply."""
        session.received += 1
        self.messages_in += 1
        if len(raw) > self.limits.max_message_bytes:
            self.reply_error(
                session,
                ProtocolError(
                    ErrorCode.MESSAGE_TOO_LARGE,
                    f"message of {len(raw)} bytes exceeds the limit of "
                    f"{self.limits.max_message_bytes} bytes",
                    {"limit": self.limits.max_message_bytes, "size": len(raw)},
                ),
            )
            return
        msg = protocol.decode(raw)
        if isinstance(msg, ProtocolError):
            self.reply_error(session, msg)
            return
        kind = msg["type"]
        try:
            if kind == "subscribe":
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
                extra = {"client_timestamp": msg["timestamp"]} if "timestamp" in msg else {}
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
                        f"unknown message type: {kind!r}",
                        {"type": kind},
                    ),
                )
        except Exception:
            log.exception("request %r failed on %s", kind, session.id)
            self.reply_error(
                session, ProtocolError(ErrorCode.INTERNAL_ERROR, "internal error"), request=kind
            )

    def reply_error(self, session: Session, err: ProtocolError, **extra: Any) -> None:
        session.send(protocol.error(self.clock.now(), err, **extra))

    def _resolve(
        self, session: Session, msg: dict[str, Any]
    ) -> tuple[list[str], Interval | None] | None:
        symbols = protocol.symbols_of(msg)
        if isinstance(symbols, ProtocolError):
            self.reply_error(session, symbols, request=msg["type"])
            return None
        interval: Interval | None = None
        if session.endpoint.has_interval:
            raw = msg.get("interval")
            if raw is not None or msg["type"] == "subscribe":
                try:
                    interval = Interval.parse(raw if isinstance(raw, str) else "1m")
                    if raw is not None and not isinstance(raw, str):
                        raise ValueError(f"unknown interval: {raw!r}")
                except ValueError as exc:
                    self.reply_error(
                        session,
                        ProtocolError(ErrorCode.UNKNOWN_INTERVAL, str(exc), {"interval": raw}),
                        request=msg["type"],
                    )
                    return None
        return symbols, interval

    def _subscribe(self, session: Session, msg: dict[str, Any]) -> None:
        resolved = self._resolve(session, msg)
        if resolved is None:
            return
        names, interval = resolved
        for name in names:
            instrument = self.registry.get(name)
            if name == ALL_SYMBOLS and session.endpoint == Endpoint.PORTFOLIO:
                self._subscribe_one(session, ALL_SYMBOLS, name, None)
                continue
            if instrument is None:
                self.reply_error(
                    session,
                    ProtocolError(
                        ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol: {name!r}", {"symbol": name}
                    ),
                    symbol=name,
                    request="subscribe",
                )
                continue
            self._subscribe_one(session, instrument.symbol, name, interval)

    def _subscribe_one(
        self, session: Session, symbol: str, name: str, interval: Interval | None
    ) -> None:
        t = topic(session.endpoint, symbol, interval)
        if t not in session.subs and len(session.subs) >= self.limits.max_subscriptions:
            limit = self.limits.max_subscriptions
            self.reply_error(
                session,
                ProtocolError(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"subscription limit reached: {limit} per connection",
                    {"limit": limit, "current": len(session.subs), "setting": "MAX_SUBSCRIPTIONS"},
                ),
                symbol=symbol,
                request="subscribe",
            )
            return
        self._add_subscription(session, Subscription(symbol, interval, t))
        extra: dict[str, Any] = {}
        if interval is not None:
            extra["interval"] = interval.value
        if name != symbol:
            extra["requested"] = name
        session.send(protocol.subscription(self.clock.now(), "subscribed", symbol, **extra))
        self._send_snapshot(session, t)

    def _send_snapshot(self, session: Session, t: str) -> None:
        retained = self.bus.retained_nowait(t)
        if retained is not None:
            for payload in retained:
                session.send(protocol.mark_snapshot(payload))
            return
        # A remote bus without a local copy: fetch it, then send it if the client still wants it.
        task = asyncio.get_running_loop().create_task(
            self._fetch_snapshot(session, t), name=f"snapshot:{session.id}:{t}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch_snapshot(self, session: Session, t: str) -> None:
        try:
            retained = await self.bus.retained(t)
        except Exception:
            log.exception("snapshot fetch failed for %s", t)
            return
        if t in session.subs and session.id in self._sessions:
            for payload in retained:
                session.send(protocol.mark_snapshot(payload))

    def _unsubscribe(self, session: Session, msg: dict[str, Any]) -> None:
        resolved = self._resolve(session, msg)
        if resolved is None:
            return
        names, interval = resolved
        for name in names:
            instrument = self.registry.get(name)
            symbol = instrument.symbol if instrument is not None else name
            matches = [
                s
                for s in session.subs.values()
                if s.symbol == symbol and (interval is None or s.interval == interval)
            ]
            if not matches:
                self.reply_error(
                    session,
                    ProtocolError(
                        ErrorCode.NOT_SUBSCRIBED,
                        f"not subscribed: {name!r}",
                        {"symbol": name},
                    ),
                    symbol=name,
                    request="unsubscribe",
                )
                continue
            for sub in matches:
                self._drop_subscription(session, sub)
            extra: dict[str, Any] = {}
            if interval is not None:
                extra["interval"] = interval.value
            session.send(protocol.subscription(self.clock.now(), "unsubscribed", symbol, **extra))

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
        members = self._topics.get(sub.topic)
        if members is None:
            return
        members.pop(session, None)
        # Held messages for the topic are no longer wanted.
        for key in [k for k in session.held if k[0] == sub.topic]:
            del session.held[key]
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
        slot = message.slot
        written = 0
        for session in members:
            if session.paused:
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
            return
        key = (t, slot)
        if session.held.pop(key, None) is not None:
            session.conflated += 1
            session.dropped += 1
        # Re-inserted at the end: held messages leave in the order of their latest update.
        session.held[key] = frame

    def pause(self, session: Session) -> None:
        """The client's transport buffer passed its limit."""
        if not session.paused:
            session.paused = True
            session.paused_since = self.clock.monotonic()

    def resume(self, session: Session) -> None:
        """The client drained: send what was held, oldest first, until it fills again."""
        session.paused = False
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

    def check_slow_clients(self) -> int:
        """Close clients paused longer than the grace period; returns how many were closed."""
        deadline = self.clock.monotonic() - self.limits.slow_client_grace
        slow = [s for s in self._sessions.values() if s.paused and s.paused_since <= deadline]
        for session in slow:
            self._close_slow(
                session, f"slow consumer: paused over {self.limits.slow_client_grace:g}s"
            )
        return len(slow)

    def _close_slow(self, session: Session, reason: str) -> None:
        log.warning("closing %s (%s): %s", session.id, session.remote, reason)
        session.dropped += len(session.held)
        session.peer.close(CloseCode.SLOW_CONSUMER, reason)
        self.disconnect(session)

    def close_all(self, code: int, reason: str) -> None:
        for task in self._tasks:
            task.cancel()
        for session in list(self._sessions.values()):
            session.peer.close(code, reason)
            self.disconnect(session)

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
        peer = _ProbePeer()
        session = Session("self-test", Endpoint.STREAM, "self-test", peer, self.clock.now())
        n = next(self._ids)
        sub = Subscription("_probe", None, f"_probe:{self._prefix}-{n}")
        payload = protocol.reply(self.clock.now(), "probe", n=n)
        started = self.clock.monotonic()
        self._add_subscription(session, sub)
        try:
            self.bus.publish(BusMessage(sub.topic, payload))
            elapsed = self.clock.monotonic() - started
        finally:
            self._drop_subscription(session, sub)
        if not peer.frames:
            return {"ok": False, "state": "pending", "detail": "probe not delivered synchronously"}
        ok = peer.frames == [self._frame(payload)]
        return {
            "ok": ok,
            "state": "delivered" if ok else "corrupted",
            "latency_ms": round(elapsed * 1000, 3),
        }


class _ProbePeer:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send(self, payload: bytes) -> None:
        self.frames.append(payload)

    def send_frame(self, frame: bytes) -> None:
        self.frames.append(frame)

    def close(self, code: int, reason: str) -> None:
        return None


__all__ = ["CloseCode", "Hub", "HubLimits", "Peer", "Session", "Subscription"]
