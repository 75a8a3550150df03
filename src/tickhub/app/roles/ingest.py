"""``ROLE=ingest``: the feed and the engines of a cluster, publishing on a shared bus for the
gateways; no clients of its own. Requests and demand arrive over the bus (``cluster.ingest``)."""

from __future__ import annotations

import asyncio
import logging

from tickhub import __version__
from tickhub.app.config import Settings
from tickhub.app.roles.producer import Producer, ProducerRole
from tickhub.bus import Bus
from tickhub.cluster.ingest import CommandServer, DemandAggregator, heartbeat
from tickhub.core.clock import Clock
from tickhub.core.defaults import HEARTBEAT_PERIOD
from tickhub.core.instruments import InstrumentRegistry
from tickhub.feeds.base import Feed

log = logging.getLogger(__name__)


class IngestService(ProducerRole):
    """The producer, plus what lets gateways reach it: the command server for their requests,
    the aggregate of their demand, and a heartbeat that tells them it is alive."""

    role = "ingest"

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
        self.producer = producer = Producer(settings, self.clock, self.registry, self.bus, feed)
        self.command_server = CommandServer(self.bus, producer.requests)
        self.demand_aggregator = DemandAggregator(
            self.bus, self.clock, [producer.demand.on_topic, producer.ingest.on_demand]
        )
        if hasattr(self.bus, "on_state"):  # a Redis that restarted empty gets the state back
            self.bus.on_state = producer.ingest.on_bus_state

    async def _start_parts(self) -> None:
        self._start_producing()
        self.command_server.start()
        self.demand_aggregator.start()
        self._spawn(self._heartbeat(), "ingest-heartbeat")

    def _announce(self) -> None:
        log.info("tickhub %s ingest running (feed=%s)", __version__, self.settings.feed)

    async def _heartbeat(self) -> None:
        while True:
            try:
                heartbeat(self.bus, self.clock, self.health()["feed"]["state"])
                self.demand_aggregator.expire()
            except Exception:
                log.exception("ingest heartbeat failed")
            await asyncio.sleep(HEARTBEAT_PERIOD)
