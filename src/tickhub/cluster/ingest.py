"""What the ingest runs to serve its gateways over the bus.

The ingest owns the feed, the engines and the store; gateways own the clients. It executes the
requests gateways forward and answers each on the gateway's reply topic (``CommandServer``),
keeps the union of what every live gateway's clients want and reports it as transitions to the
feed's demand and the engines (``DemandAggregator``), and publishes a heartbeat every
``HEARTBEAT_PERIOD`` seconds (``heartbeat``). Before it publishes anything, a starting ingest
makes sure no other one is alive on the same bus (``other_ingest``). The messages are in
``tickhub.cluster.messages``; the gateways' side is ``tickhub.cluster.gateway``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tickhub.bus import Bus, BusMessage
from tickhub.cluster import messages
from tickhub.core import protocol
from tickhub.core.clock import Clock
from tickhub.core.commands import REQUEST_ENDPOINTS
from tickhub.core.defaults import DEMAND_EXPIRY, INGEST_LISTEN, INGEST_SILENCE
from tickhub.ingest.requests import Requests

log = logging.getLogger(__name__)


class _Collector:
    """Stands in for the client session on the ingest side: keeps what would be sent."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.sent: list[str] = []

    def send(self, payload: bytes) -> None:
        self.sent.append(payload.decode())


class CommandServer:
    """Executes the requests gateways forward and publishes their replies.

    Each well-formed command gets one reply (possibly with no messages, for an unknown kind),
    on the reply topic of the gateway that sent it; a malformed one is logged and dropped (the
    gateway answers it with a timeout).
    """

    def __init__(self, bus: Bus, requests: Requests) -> None:
        self.bus = bus
        self.requests = requests

    def start(self) -> None:
        """Listen for commands."""
        self.bus.subscribe(messages.CMD_TOPIC, self._on_command)

    def _on_command(self, message: BusMessage) -> None:
        try:
            body = messages.decode(message.payload)
            kind, gateway = body["kind"], body["gateway"]
            collector = _Collector(str(body.get("user") or ""))
            if kind in REQUEST_ENDPOINTS and isinstance(body.get("msg"), dict):
                self.requests.handle(kind, collector, body["msg"])
            reply = messages.reply(gateway, body["id"], collector.sent)
        except Exception:
            log.exception("malformed command on the bus")
            return
        self.bus.publish(reply)


@dataclass
class _Gateway:
    topics: set[str] = field(default_factory=set)
    seen: float = 0.0


class DemandAggregator:
    """The union of every live gateway's topics, reported to ``listeners`` as transitions.

    A listener hears ``(topic, True)`` when the first gateway wants a topic and
    ``(topic, False)`` when the last one stops wanting it (or is forgotten by ``expire``). A
    demand that carries an ``id`` is answered on the gateway's ready topic after the listeners
    ran, so the gateway's snapshot can be read then.
    """

    def __init__(self, bus: Bus, clock: Clock, listeners: Iterable[Callable[[str, bool], None]]):
        self.bus = bus
        self.clock = clock
        self.listeners = list(listeners)
        self._gateways: dict[str, _Gateway] = {}
        self._counts: dict[str, int] = {}

    def start(self) -> None:
        """Listen for demand and ask every gateway for its full set."""
        self.bus.subscribe(messages.DEMAND_TOPIC, self._on_demand)
        # A restarted ingest knows no demand: ask for it rather than wait for the next refresh.
        self.bus.publish(messages.demand_query())

    def _on_demand(self, message: BusMessage) -> None:
        try:
            body = messages.decode(message.payload)
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
                self.bus.publish(messages.ready(name, t, body["id"]))
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


# --- liveness -------------------------------------------------------------------------------------


def heartbeat(bus: Bus, clock: Clock, feed_state: str) -> None:
    """Publish one heartbeat: the ingest is alive and its feed is in ``feed_state``."""
    ts = protocol.iso(clock.now())
    bus.publish(messages.heartbeat(ts, feed_state, os.getpid(), socket.gethostname()))


async def live_ingest(
    bus: Bus, clock: Clock, listen: float = INGEST_LISTEN
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
            heard.append(dict(messages.decode(message.payload)))
            beat.set()

    bus.subscribe(messages.INGEST_TOPIC, on_heartbeat)
    try:
        last = None
        for payload in await bus.retained(messages.INGEST_TOPIC):
            with contextlib.suppress(Exception):
                last = dict(messages.decode(payload))
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
        bus.unsubscribe(messages.INGEST_TOPIC, on_heartbeat)


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
