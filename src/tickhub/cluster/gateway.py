"""What a gateway runs to serve clients from an ingest elsewhere on the bus.

A gateway owns no store and no engine. It forwards its clients' alert and position requests to
the ingest and carries the replies back (``RemoteRequests``), tells the ingest which topics its
clients want and holds a first subscriber's snapshot until the ingest published that topic's
state (``DemandRelay``), and listens to the ingest's heartbeat to tell its clients when the feed
goes stale and when it comes back (``IngestWatch``). Each is started once (``register`` or
``start``) and, when the gateway shuts down, ``close`` removes its handlers from the bus, which
may be shared (one memory bus in tests) or outlive it. The messages are in
``tickhub.cluster.messages``; the ingest's side is ``tickhub.cluster.ingest``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tickhub.bus import Bus, BusMessage
from tickhub.cluster import messages
from tickhub.core.clock import Clock
from tickhub.core.commands import REQUEST_ENDPOINTS
from tickhub.core.defaults import INGEST_SILENCE, READY_TIMEOUT, REQUEST_TIMEOUT
from tickhub.core.protocol import ErrorCode, ProtocolError
from tickhub.fanout import Hub, Session

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    session: Session
    kind: str
    deadline: float


class RemoteRequests:
    """Forwards alert/position requests to the ingest and its replies back to the clients.

    Every request gets an answer: the ingest's replies, or after ``REQUEST_TIMEOUT`` seconds an
    ``unavailable`` error (``expire``, called periodically), so a client never waits forever
    on an ingest that is down. A reply for a session that is closing is dropped.
    """

    def __init__(self, hub: Hub, bus: Bus, clock: Clock, gateway_id: str) -> None:
        self.hub = hub
        self.bus = bus
        self.clock = clock
        self.gateway_id = gateway_id
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}

    def register(self) -> None:
        """Take the hub's request kinds and listen for the ingest's replies."""
        for kind, endpoint in REQUEST_ENDPOINTS.items():
            self.hub.add_handler(endpoint, kind, self._forwarder(kind))
        self.bus.subscribe(messages.reply_topic(self.gateway_id), self._on_reply)

    def close(self) -> None:
        """Stop listening for replies (on shutdown: the bus may outlive the gateway)."""
        self.bus.unsubscribe(messages.reply_topic(self.gateway_id), self._on_reply)

    def _forwarder(self, kind: str) -> Callable[[Session, dict[str, Any]], None]:
        def forward(session: Session, msg: dict[str, Any]) -> None:
            rid = next(self._ids)
            deadline = self.clock.monotonic() + REQUEST_TIMEOUT
            self._pending[rid] = _Pending(session, kind, deadline)
            self.bus.publish(messages.command(rid, self.gateway_id, session.user, kind, msg))

        return forward

    def _on_reply(self, message: BusMessage) -> None:
        body = messages.decode(message.payload)
        pending = self._pending.pop(int(body["id"]), None)
        if pending is None or pending.session.closing:
            return
        for reply in body["replies"]:
            pending.session.send(reply.encode())

    def expire(self) -> None:
        """Answer requests the ingest did not answer in time (it may be down)."""
        now = self.clock.monotonic()
        for rid, pending in list(self._pending.items()):
            if now >= pending.deadline:
                del self._pending[rid]
                if not pending.session.closing:
                    self.hub.reply_error(
                        pending.session,
                        ProtocolError(
                            ErrorCode.UNAVAILABLE,
                            f"the ingest did not answer within {REQUEST_TIMEOUT:g}s; retry later",
                        ),
                        request=pending.kind,
                    )


class DemandRelay:
    """Publishes the topics this gateway's clients want, as changes and as a full set.

    It is also the bus's snapshot gate (``RedisBus.gate``): a topic that became wanted here is
    ``pending`` until the ingest answers on ``_ready:<gateway>``. The ingest publishes a newly
    wanted topic's state only then, and the answer comes after that state on the bus, so a
    snapshot read once it came holds it. Without an answer in ``timeout`` seconds (the ingest is
    down) the snapshot is what Redis holds; ``unanswered`` counts those snapshots.
    """

    def __init__(self, bus: Bus, gateway_id: str, timeout: float = READY_TIMEOUT) -> None:
        self.bus = bus
        self.gateway_id = gateway_id
        self.timeout = timeout
        self.topics: set[str] = set()
        self._ids = itertools.count(1)
        self._pending: dict[str, tuple[int, asyncio.Event]] = {}
        self.unanswered = 0  # snapshots that stopped waiting for the ingest (monotonic)

    def start(self) -> None:
        """Listen for the ingest's answers and queries, and become the bus's gate if it has one."""
        self.bus.subscribe(messages.ready_topic(self.gateway_id), self._on_ready)
        self.bus.subscribe(messages.DEMAND_QUERY_TOPIC, self._on_query)
        if hasattr(self.bus, "gate"):
            self.bus.gate = self

    def close(self) -> None:
        """Stop listening and release every snapshot still waiting."""
        self.bus.unsubscribe(messages.ready_topic(self.gateway_id), self._on_ready)
        self.bus.unsubscribe(messages.DEMAND_QUERY_TOPIC, self._on_query)
        for _, event in self._pending.values():
            event.set()
        self._pending.clear()

    def on_topic(self, topic: str, wanted: bool) -> None:
        """The hub's demand listener: ``topic`` gained its first or lost its last subscriber."""
        if topic.startswith("_"):
            return
        rid: int | None = None
        if wanted:
            self.topics.add(topic)
            rid = next(self._ids)
            old = self._pending.pop(topic, None)
            if old is not None:
                old[1].set()
            # Before publishing: on an in-process bus the answer comes back inside ``publish``.
            self._pending[topic] = (rid, asyncio.Event())
        else:
            self.topics.discard(topic)
            old = self._pending.pop(topic, None)
            if old is not None:
                old[1].set()
        self.bus.publish(messages.demand_change(self.gateway_id, topic, wanted, rid))

    def refresh(self) -> None:
        """Publish the full set (every ``DEMAND_REFRESH`` seconds: it keeps this gateway known)."""
        self.bus.publish(messages.demand_set(self.gateway_id, self.topics))

    def _on_query(self, message: BusMessage) -> None:
        self.refresh()

    def _on_ready(self, message: BusMessage) -> None:
        try:
            body = messages.decode(message.payload)
            topic, rid = str(body["topic"]), int(body["id"])
        except Exception:
            log.warning("malformed ready message on the bus: %r", message.payload[:200])
            return
        found = self._pending.get(topic)
        if found is not None and found[0] == rid:  # an answer to an older demand is not enough
            del self._pending[topic]
            found[1].set()

    # --- the gate ---------------------------------------------------------------------------------

    def pending(self, topic: str) -> bool:
        """Whether ``topic``'s snapshot must wait for the ingest."""
        return topic in self._pending

    async def wait(self, topic: str) -> None:
        """Until the ingest answered the demand for ``topic``, at most ``timeout`` seconds."""
        found = self._pending.get(topic)
        if found is None:
            return
        rid, event = found
        try:
            async with asyncio.timeout(self.timeout):
                await event.wait()
        except TimeoutError:
            self.unanswered += 1
            if self._pending.get(topic) == found:
                del self._pending[topic]
            log.debug(
                "no answer from the ingest for %s (demand %d) in %gs", topic, rid, self.timeout
            )


class IngestWatch:
    """Is the ingest alive? Calls ``on_change`` when it goes silent and when it comes back.

    Alive from the first heartbeat on; silent once ``check`` (called periodically) finds none
    for ``INGEST_SILENCE`` seconds. ``feed_state`` is the feed state the last heartbeat gave.
    """

    def __init__(self, bus: Bus, clock: Clock, on_change: Callable[[bool], None]) -> None:
        self.bus = bus
        self.clock = clock
        self.on_change = on_change
        self.last_seen: float | None = None
        self.alive = False
        self.feed_state = "starting"

    def start(self) -> None:
        """Listen to the heartbeat."""
        self.bus.subscribe(messages.INGEST_TOPIC, self._on_heartbeat)

    def close(self) -> None:
        """Stop listening (on shutdown)."""
        self.bus.unsubscribe(messages.INGEST_TOPIC, self._on_heartbeat)

    def _on_heartbeat(self, message: BusMessage) -> None:
        try:
            self.feed_state = str(messages.decode(message.payload).get("feed", "live"))
        except Exception:
            return
        self.last_seen = self.clock.monotonic()
        if not self.alive:
            self.alive = True
            self.on_change(True)

    def check(self) -> None:
        """Call the ingest silent if its last heartbeat is older than ``INGEST_SILENCE``."""
        if not self.alive or self.last_seen is None:
            return
        if self.clock.monotonic() - self.last_seen > INGEST_SILENCE:
            self.alive = False
            self.on_change(False)

    @property
    def silence(self) -> float | None:
        """Seconds since the last heartbeat (``None``: none heard yet)."""
        return None if self.last_seen is None else self.clock.monotonic() - self.last_seen
