"""``ROLE=all``, the default: one process that runs the feed and the engines and serves the
clients itself, the bus between them in memory (or Redis, if ``BUS_URL`` says so)."""

from __future__ import annotations

from typing import Any

from tickhub.app.config import Settings
from tickhub.app.roles.base import Service
from tickhub.app.roles.frontend import Frontend
from tickhub.app.roles.producer import Producer
from tickhub.bus import Bus
from tickhub.core.clock import Clock
from tickhub.core.instruments import InstrumentRegistry
from tickhub.fanout.hub import Hub
from tickhub.feeds.base import Feed
from tickhub.ingest.pipeline import Ingest
from tickhub.server import WebSocketServer
from tickhub.server.routes import IngestCounters


class SingleService(Service):
    """Producer and frontend in one process: client demand and requests reach the engines
    directly, without the cluster's links."""

    role = "all"

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        registry: InstrumentRegistry | None = None,
        feed: Feed | None = None,
        bus: Bus | None = None,
    ) -> None:
        super().__init__(settings, clock=clock, registry=registry, bus=bus)
        self.producer = Producer(settings, self.clock, self.registry, self.bus, feed)
        self.frontend = Frontend(settings, self.bus, self.registry, self.clock, self)
        hub, producer = self.frontend.hub, self.producer
        hub.demand_listeners.append(producer.demand.on_topic)
        hub.demand_listeners.append(producer.ingest.on_demand)
        producer.requests.register(hub)

    @property
    def feed(self) -> Feed:
        return self.producer.feed

    @property
    def ingest(self) -> Ingest:
        return self.producer.ingest

    @property
    def hub(self) -> Hub:
        return self.frontend.hub

    @property
    def server(self) -> WebSocketServer:
        return self.frontend.server

    async def _start_parts(self) -> None:
        self.producer.refresh_pins()
        self._spawn(self.producer.ingest.run(), "ingest")
        self.frontend.relay_status()
        self._spawn(self.frontend.housekeeping(), "housekeeping")
        self._spawn(self.frontend.batcher(), "batcher")
        self.port = await self.frontend.listen()

    async def _stop_serving(self) -> None:
        await self.frontend.close()

    def _release(self) -> None:
        self.producer.close()

    def _feed_health(self) -> dict[str, Any]:
        return self.producer.feed_health()

    def _connection_count(self) -> int:
        return len(self.frontend.hub)

    def ingest_counters(self) -> IngestCounters:
        return self.producer.counters()
