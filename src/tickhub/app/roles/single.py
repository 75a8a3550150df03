"""``ROLE=all``, the default: one process that runs the feed and the engines and serves the
clients itself, the bus between them in memory (or Redis, if ``BUS_URL`` says so)."""

from __future__ import annotations

from tickhub.app.config import Settings
from tickhub.app.roles.frontend import Frontend, FrontendRole
from tickhub.app.roles.producer import Producer, ProducerRole
from tickhub.bus import Bus
from tickhub.core.clock import Clock
from tickhub.core.instruments import InstrumentRegistry
from tickhub.feeds.base import Feed


class SingleService(ProducerRole, FrontendRole):
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
        self.frontend = Frontend(
            settings, self.bus, self.registry, self.clock, self, self.producer.candle_history
        )
        hub, producer = self.frontend.hub, self.producer
        hub.demand_listeners.append(producer.demand.on_topic)
        hub.demand_listeners.append(producer.ingest.on_demand)
        producer.requests.register(hub)

    async def _start_parts(self) -> None:
        self._start_producing()
        await self._start_serving()
