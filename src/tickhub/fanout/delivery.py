"""Delivery: each bus message to every subscriber, and what happens when a client cannot keep up.

Each bus message is framed once and the same bytes are written to every subscriber's transport;
nothing here awaits a client. A client whose transport buffer passes its limit is *paused*: from
then on it keeps only the latest message per slot (ticks and candles are state, so the latest is
what a screen needs) while events with no slot (alerts) queue; once the client drains, the held
messages go out in order. A client paused longer than ``slow_client_grace``, or holding more than
its budget, is closed with the slow-consumer code. Opt-in batching gathers a client's data
messages into one ``batch`` frame per :meth:`Delivery.flush_batches`.

:meth:`Delivery.on_bus_message` is the hottest code of the service (per message, per client):
it keeps its loop free of calls, lookups and allocations that a plain write does not need.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tickhub.bus import BusMessage
from tickhub.core.clock import Clock
from tickhub.core.protocol import CloseCode
from tickhub.fanout.limits import HubLimits
from tickhub.fanout.recovery import Awaiting
from tickhub.fanout.session import Close, Session, held_ids


class Delivery:
    """Fan-out, backpressure and batching for the clients of one hub.

    Contract: :meth:`on_bus_message` is the bus handler of every topic in ``members`` (topic ->
    subscribed clients, kept by the hub); it never raises for a client and never closes one
    while iterating (closes for the budget wait until the loop is over). Clients of a topic in
    ``awaiting`` get its live messages held there instead, until their snapshot is sent.
    ``messages_out`` counts messages written, ``conflated`` the ones replaced by a newer one for
    a paused client, ``dropped`` those never delivered (conflated, or held when a slow client
    was closed).
    """

    def __init__(
        self,
        limits: HubLimits,
        clock: Clock,
        frame: Callable[[bytes], bytes],
        members: dict[str, dict[Session, None]],
        sessions: dict[str, Session],
        awaiting: Awaiting,
        close: Close,
    ) -> None:
        self.limits = limits
        self.clock = clock
        self._frame = frame
        self._topics = members
        self._sessions = sessions
        self._awaiting = awaiting.by_topic
        self._close = close
        self._batching: set[Session] = set()
        self._fanning_out = False  # closes wait in _deferred until the loop over members ends
        self._deferred: list[tuple[Session, str]] = []
        self.messages_out = 0
        self.conflated = 0  # replaced by a newer message for a slow client (monotonic)
        self.dropped = 0  # never delivered: conflated, or held when a slow client was closed
        self.observe_latency: Callable[[float], None] | None = None

    # --- fan-out -------------------------------------------------------------------------------

    def on_bus_message(self, message: BusMessage) -> None:
        """Deliver one bus message to every subscriber of its topic."""
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
                self.close_slow(session, reason)
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
                    self.check_budget(session)
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
                self.close_slow(session, "too many undelivered events")
                return
            session.held[(t, next(held_ids))] = frame
            session.held_events += 1
            session.held_bytes += len(frame)
            self.check_budget(session)
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
        self.check_budget(session)

    def check_budget(self, session: Session) -> None:
        """Every byte held for a paused client counts against OUTBOX_BYTES (its transport buffer
        holds the rest): past it the client is closed as a slow consumer."""
        if session.held_bytes > self.limits.held_bytes and not session.closing:
            self.close_slow(session, f"outbox over {self.limits.outbox_bytes} bytes")

    def drop_held(self, session: Session, t: str) -> None:
        """The client no longer wants topic ``t``: what is held for it goes."""
        for key in [k for k in session.held if k[0] == t]:
            session.held_bytes -= len(session.held.pop(key))

    def forget(self, session: Session) -> None:
        """Nothing more goes to this client: drop what was held or batched for it."""
        session.held.clear()
        session.held_bytes = session.held_events = 0
        session.batch = None
        self._batching.discard(session)

    # --- batching ------------------------------------------------------------------------------

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
                    self.close_slow(session, "too many undelivered batched messages")
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

    # --- backpressure --------------------------------------------------------------------------

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
            self.close_slow(
                session, f"slow consumer: paused over {self.limits.slow_client_grace:g}s"
            )
        return len(slow)

    def close_slow(self, session: Session, reason: str) -> None:
        """Close a client that cannot keep up; what was held for it counts as dropped."""
        if self._fanning_out:
            self._deferred.append((session, reason))
            return
        session.dropped += len(session.held)
        self.dropped += len(session.held)
        self._close(session, CloseCode.SLOW_CONSUMER, reason)
