"""Several processes, one market: what crosses the bus between the ingest and its gateways.

``tickhub ingest`` runs the feed and the engines once; each ``tickhub gateway`` serves clients.
Besides the data topics, four kinds of internal messages travel on the same bus (topic names
start with ``_``, which no client topic does):

- ``_cmd`` / ``_reply:<gateway>``: a client's alert or position request, executed by the ingest
  (which owns the store and the engines), and the replies carried back to that client;
- ``_demand``: which topics a gateway's clients want (changes at once, and the full set every
  ``DEMAND_REFRESH`` seconds so a gateway that died is forgotten after ``DEMAND_EXPIRY``), so the
  ingest streams upstream only what is used and publishes per-user alerts and portfolios;
  ``_demand?``: a starting ingest asks every gateway for its full set at once;
- ``_ready:<gateway>``: the ingest's answer to a topic becoming wanted, published after the
  topic's current state, so a gateway's first subscriber waits for that state (at most
  ``READY_TIMEOUT`` seconds) and gets the snapshot a single process gives;
- ``_ingest``: the ingest's heartbeat; a gateway that stops hearing it tells its clients the
  feed is ``stale`` and says so in ``/health``, and recovers when the heartbeat returns. A new
  ingest that hears one from another live ingest on the same bus refuses to start.

All of it is plain JSON on the ``Bus`` interface, so the memory bus runs the same code in one
process (which is how most of it is tested) and Redis runs it across machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from tickhub.bus import Bus, BusMessage
from tickhub.core import protocol
from tickhub.core.clock import Clock
from tickhub.core.commands import REQUEST_ENDPOINTS as KINDS
from tickhub.core.protocol import ErrorCode, ProtocolError
from tickhub.fanout import Hub, Session
from tickhub.ingest.requests import Requests

log = logging.getLogger(__name__)

CMD_TOPIC = "_cmd"
DEMAND_TOPIC = "_demand"
DEMAND_QUERY_TOPIC = "_demand?"
INGEST_TOPIC = "_ingest"
READY_PREFIX = "_ready:"
REPLY_PREFIX = "_reply:"

HEARTBEAT_PERIOD = 1.0
INGEST_SILENCE = 5.0  # seconds without a heartbeat before gateways call the feed stale
DEMAND_REFRESH = 5.0
DEMAND_EXPIRY = 15.0
REQUEST_TIMEOUT = 10.0
READY_TIMEOUT = 2.0  # seconds a first subscriber's snapshot waits for the ingest's state


def new_gateway_id() -> str:
    return f"gw-{os.getpid():x}-{secrets.token_hex(3)}"


def _json(obj: Any) -> bytes:
    return orjson.dumps(obj)


# --- requests -------------------------------------------------------------------------------------


@dataclass
class _Pending:
    session: Session
    kind: str
    deadline: float


class RemoteRequests:
    """Gateway side: forwards alert/position requests to the ingest, replies back to clients."""

    def __init__(self, hub: Hub, bus: Bus, clock: Clock, gateway_id: str) -> None:
        self.hub = hub
        self.bus = bus
        self.clock = clock
        self.gateway_id = gateway_id
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}

    def register(self) -> None:
        for kind, endpoint in KINDS.items():
            self.hub.add_handler(endpoint, kind, self._forwarder(kind))
        self.bus.subscribe(REPLY_PREFIX + self.gateway_id, self._on_reply)

    def close(self) -> None:
        self.bus.unsubscribe(REPLY_PREFIX + self.gateway_id, self._on_reply)

    def _forwarder(self, kind: str) -> Callable[[Session, dict[str, Any]], None]:
        def forward(session: Session, msg: dict[str, Any]) -> None:
            rid = next(self._ids)
            deadline = self.clock.monotonic() + REQUEST_TIMEOUT
            self._pending[rid] = _Pending(session, kind, deadline)
            body = {
                "id": rid,
                "gateway": self.gateway_id,
                "user": session.user,
                "kind": kind,
                "msg": msg,
            }
            self.bus.publish(BusMessage(CMD_TOPIC, _json(body)))

        return forward

    def _on_reply(self, message: BusMessage) -> None:
        body = orjson.loads(message.payload)
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


class _Collector:
    """Stands in for the client session on the ingest side: keeps what would be sent."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.sent: list[str] = []

    def send(self, payload: bytes) -> None:
        self.sent.append(payload.decode())


class CommandServer:
    """Ingest side: executes forwarded requests and publishes their replies."""

    def __init__(self, bus: Bus, requests: Requests) -> None:
        self.bus = bus
        self.requests = requests
        self.served = 0

    def start(self) -> None:
        self.bus.subscribe(CMD_TOPIC, self._on_command)

    def _on_command(self, message: BusMessage) -> None:
        try:
            body = orjson.loads(message.payload)
            kind, gateway = body["kind"], body["gateway"]
            collector = _Collector(str(body.get("user") or ""))
            if kind in KINDS and isinstance(body.get("msg"), dict):
                self.requests.handle(kind, collector, body["msg"])
            reply = {"id": body["id"], "replies": collector.sent}
        except Exception:
            log.exception("malformed command on the bus")
            return
        self.served += 1
        self.bus.publish(BusMessage(REPLY_PREFIX + gateway, _json(reply)))


# --- demand ---------------------------------------------------------------------------------------


class DemandRelay:
    """Gateway side: publishes the topics its clients want, as changes and as a full set.

    It is also the bus's snapshot gate (``RedisBus.gate``): a topic that became wanted here is
    ``pending`` until the ingest answers on ``_ready:<gateway>``. The ingest publishes a newly
    wanted topic's state only then, and the answer comes after that state on the bus, so a
    snapshot read once it came holds it. Without an answer in ``timeout`` seconds (the ingest is
    down) the snapshot is what Redis holds.
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
        self.bus.subscribe(READY_PREFIX + self.gateway_id, self._on_ready)
        self.bus.subscribe(DEMAND_QUERY_TOPIC, self._on_query)
        if hasattr(self.bus, "gate"):
            self.bus.gate = self

    def close(self) -> None:
        self.bus.unsubscribe(READY_PREFIX + self.gateway_id, self._on_ready)
        self.bus.unsubscribe(DEMAND_QUERY_TOPIC, self._on_query)
        for _, event in self._pending.values():
            event.set()
        self._pending.clear()

    def on_topic(self, topic: str, wanted: bool) -> None:
        if topic.startswith("_"):
            return
        body: dict[str, Any] = {"gateway": self.gateway_id, "topic": topic, "wanted": wanted}
        if wanted:
            self.topics.add(topic)
            rid = next(self._ids)
            old = self._pending.pop(topic, None)
            if old is not None:
                old[1].set()
            # Before publishing: on an in-process bus the answer comes back inside ``publish``.
            self._pending[topic] = (rid, asyncio.Event())
            body["id"] = rid
        else:
            self.topics.discard(topic)
            old = self._pending.pop(topic, None)
            if old is not None:
                old[1].set()
        self.bus.publish(BusMessage(DEMAND_TOPIC, _json(body)))

    def refresh(self) -> None:
        body = {"gateway": self.gateway_id, "topics": sorted(self.topics)}
        self.bus.publish(BusMessage(DEMAND_TOPIC, _json(body)))

    def _on_query(self, message: BusMessage) -> None:
        self.refresh()

    def _on_ready(self, message: BusMessage) -> None:
        try:
            body = orjson.loads(message.payload)
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


@dataclass
class _Gateway:
    topics: set[str] = field(default_factory=set)
    seen: float = 0.0


class DemandAggregator:
    """Ingest side: the union of every live gateway's topics, reported as transitions."""

    def __init__(self, bus: Bus, clock: Clock, listeners: Iterable[Callable[[str, bool], None]]):
        self.bus = bus
        self.clock = clock
        self.listeners = list(listeners)
        self._gateways: dict[str, _Gateway] = {}
        self._counts: dict[str, int] = {}

    def start(self) -> None:
        self.bus.subscribe(DEMAND_TOPIC, self._on_demand)
        # A restarted ingest knows no demand: ask for it rather than wait for the next refresh.
        self.bus.publish(BusMessage(DEMAND_QUERY_TOPIC, b"{}"))

    @property
    def gateways(self) -> int:
        return len(self._gateways)

    def _on_demand(self, message: BusMessage) -> None:
        try:
            body = orjson.loads(message.payload)
            name = str(body["gateway"])
            gw = self._gateways.setdefault(name, _Gateway())
        except Exception:
            log.exception("malformed demand message on the bus")
            return
        gw.seen = self.clock.monotonic()
        if "topics" in body:
            self._replace(gw, {str(t) for t in body["topics"]})
        elif body.get("wanted"):
            t = str(body["topic"])
            self._replace(gw, gw.topics | {t})
            # After the state the listeners published: the gateway's snapshot can be read now.
            if "id" in body:
                ready = {"topic": t, "id": body["id"]}
                self.bus.publish(BusMessage(READY_PREFIX + name, _json(ready)))
        else:
            self._replace(gw, gw.topics - {str(body["topic"])})

    def _replace(self, gw: _Gateway, topics: set[str]) -> None:
        added, removed = topics - gw.topics, gw.topics - topics
        gw.topics = topics
        for t in sorted(added):
            self._counts[t] = self._counts.get(t, 0) + 1
            if self._counts[t] == 1:
                self._tell(t, True)
        for t in sorted(removed):
            self._counts[t] -= 1
            if self._counts[t] == 0:
                del self._counts[t]
                self._tell(t, False)

    def _tell(self, t: str, wanted: bool) -> None:
        for listener in self.listeners:
            try:
                listener(t, wanted)
            except Exception:
                log.exception("demand listener failed for %s", t)

    def expire(self) -> None:
        """Forget gateways not heard from for ``DEMAND_EXPIRY`` (they died or were cut off)."""
        cutoff = self.clock.monotonic() - DEMAND_EXPIRY
        for name, gw in list(self._gateways.items()):
            if gw.seen < cutoff:
                log.warning("gateway %s silent for %gs: forgetting its demand", name, DEMAND_EXPIRY)
                self._replace(gw, set())
                del self._gateways[name]


# --- ingest liveness ------------------------------------------------------------------------------


def heartbeat(bus: Bus, clock: Clock, feed_state: str) -> None:
    body = {
        "ts": protocol.iso(clock.now()),
        "feed": feed_state,
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
    bus.publish(BusMessage(INGEST_TOPIC, _json(body), retain="heartbeat"))


async def live_ingest(
    bus: Bus, clock: Clock, listen: float = 2.5 * HEARTBEAT_PERIOD
) -> dict[str, Any] | None:
    """The heartbeat of an ingest alive on ``bus``, or ``None`` when there is none.

    A retained heartbeat younger than ``INGEST_SILENCE`` may be the last one of an ingest that
    just died (killed, and being restarted by a supervisor): only one that arrives while we
    listen, for ``listen`` seconds, proves that an ingest is alive. Call it before publishing.
    """
    heard: list[dict[str, Any]] = []
    beat = asyncio.Event()

    def on_heartbeat(message: BusMessage) -> None:
        with contextlib.suppress(Exception):
            heard.append(dict(orjson.loads(message.payload)))
            beat.set()

    bus.subscribe(INGEST_TOPIC, on_heartbeat)
    try:
        last = None
        for payload in await bus.retained(INGEST_TOPIC):
            with contextlib.suppress(Exception):
                last = dict(orjson.loads(payload))
        if not heard:
            if last is None:
                return None
            with contextlib.suppress(Exception):
                age = (clock.now() - datetime.fromisoformat(str(last["ts"]))).total_seconds()
                if age > INGEST_SILENCE:
                    return None  # it stopped long ago
            with contextlib.suppress(Exception):
                async with asyncio.timeout(listen):
                    await beat.wait()
        return heard[-1] if heard else None
    finally:
        bus.unsubscribe(INGEST_TOPIC, on_heartbeat)


def other_ingest(url: str, prefix: str) -> str | None:
    """Why an ingest must not start on ``url`` with ``prefix`` (another one is alive there), as
    one line, or ``None``. An in-process bus has no other ingest; a bus that cannot be reached
    is not checked (the ingest waits for it like any outage)."""
    from tickhub.bus import create_bus
    from tickhub.bus.redis import redact_url
    from tickhub.runtime.clock import SystemClock

    if url.split("://", 1)[0].lower() == "memory":
        return None

    async def check() -> dict[str, Any] | None:
        bus = create_bus(url, prefix=prefix)
        await bus.start()
        try:
            if not getattr(bus, "connected", True):
                return None
            return await live_ingest(bus, SystemClock())
        except ConnectionError:
            return None
        finally:
            await bus.close()

    found = asyncio.run(check())
    if found is None:
        return None
    who = f"pid {found.get('pid')} on {found.get('host') or 'another host'}"
    return (
        f"another ingest ({who}) already publishes on {redact_url(url)} with BUS_PREFIX "
        f"{prefix!r}: stop it, or set another BUS_PREFIX for a separate instance"
    )


class IngestWatch:
    """Gateway side: is the ingest alive? Tells clients when it goes silent and comes back."""

    def __init__(self, bus: Bus, clock: Clock, on_change: Callable[[bool], None]) -> None:
        self.bus = bus
        self.clock = clock
        self.on_change = on_change
        self.last_seen: float | None = None
        self.alive = False
        self.feed_state = "starting"

    def start(self) -> None:
        self.bus.subscribe(INGEST_TOPIC, self._on_heartbeat)

    def _on_heartbeat(self, message: BusMessage) -> None:
        try:
            self.feed_state = str(orjson.loads(message.payload).get("feed", "live"))
        except Exception:
            return
        self.last_seen = self.clock.monotonic()
        if not self.alive:
            self.alive = True
            self.on_change(True)

    def check(self) -> None:
        if not self.alive or self.last_seen is None:
            return
        if self.clock.monotonic() - self.last_seen > INGEST_SILENCE:
            self.alive = False
            self.on_change(False)

    @property
    def silence(self) -> float | None:
        return None if self.last_seen is None else self.clock.monotonic() - self.last_seen
