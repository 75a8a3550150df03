"""The producing half of the service: the feed, the engines and the store, and the requests that
change them. The single process and the ingest of a cluster both run it (:class:`ProducerRole`)."""

from __future__ import annotations

import logging
import time
from typing import Any

from tickhub.app.build import (
    build_alerts,
    build_candle_history,
    build_candle_writer,
    build_feed,
    build_ingest,
    build_portfolio,
    build_store,
)
from tickhub.app.config import Settings
from tickhub.app.roles.base import Service
from tickhub.bus import Bus
from tickhub.core import defaults, protocol
from tickhub.core.clock import Clock
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import FeedState
from tickhub.feeds.base import Feed
from tickhub.feeds.sim import SimFeed
from tickhub.ingest.demand import Demand
from tickhub.ingest.pipeline import Ingest
from tickhub.ingest.requests import Requests
from tickhub.server.routes import IngestCounters

log = logging.getLogger(__name__)


class Producer:
    """Feed -> engines -> bus. Built whole (the store is open once this returns); the role that
    holds it runs :attr:`ingest` and calls :meth:`close` last."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        registry: InstrumentRegistry,
        bus: Bus,
        feed: Feed | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self.feed = feed or build_feed(settings, registry, clock)
        self.store = build_store(settings)
        self.portfolio = build_portfolio(settings, self.store, registry, clock)
        self.candle_writer = build_candle_writer(settings, self.store)
        self.ingest = build_ingest(
            settings,
            self.feed,
            registry,
            bus,
            clock,
            alerts=build_alerts(self.store),
            portfolio=self.portfolio,
            writer=self.candle_writer,
        )
        self.candle_history = build_candle_history(self.store, self.ingest)
        if isinstance(self.feed, SimFeed) and self.feed.history_sessions:
            self._warm(self.feed)
        self.demand = Demand(self.feed, registry)
        self.requests = Requests(registry, clock, self.ingest, on_change=self.refresh_pins)

    def _warm(self, feed: SimFeed) -> None:
        """The simulated market's past into the engines (and the store, in the background)
        before the first tick, so the first chart and indicators are full."""
        began = time.perf_counter()
        made = self.ingest.warm(feed.past())
        log.info(
            "simulated past: %d sessions, %d candles in %.2fs",
            feed.history_sessions,
            made,
            time.perf_counter() - began,
        )

    def refresh_pins(self) -> None:
        """Instruments the engines need whoever is connected: positions, alerts, benchmark."""
        portfolio = self.ingest.portfolio
        symbols = {p.symbol for owner in portfolio.owners() for p in portfolio.positions(owner)}
        symbols.update(a.symbol for a in self.ingest.alerts.all())
        symbols.add(self.ingest.analysis.benchmark or "")
        self.demand.pin(symbols)

    def feed_health(self) -> dict[str, Any]:
        """The feed's state as ``/health`` tells it: ``live`` turns ``starting`` until the first
        tick and ``stale`` after ``STALE_AFTER`` seconds without one."""
        ingest = self.ingest
        status = ingest.feed_status
        age = (
            None
            if ingest.last_tick_mono is None
            else round(self._clock.monotonic() - ingest.last_tick_mono, 3)
        )
        state = status.state
        if state == FeedState.LIVE and age is None:
            state = FeedState.STARTING
        elif state == FeedState.LIVE and age is not None and age > defaults.STALE_AFTER:
            state = FeedState.STALE
        return {
            "name": self._settings.feed,
            "state": state.value,
            "detail": status.detail,
            "last_tick_age_seconds": age,
            "market_time": None if ingest.market_time is None else protocol.iso(ingest.market_time),
            "ticks": ingest.ticks_in,
            "tick_errors": ingest.tick_errors,
            "reconnects": status.reconnects,
        }

    def counters(self) -> IngestCounters:
        ingest = self.ingest
        return IngestCounters(
            published=ingest.publisher.published,
            ticks=ingest.ticks_in,
            tick_errors=ingest.tick_errors,
            reconnects=ingest.feed_status.reconnects,
        )

    def close(self) -> None:
        """Write the closed candles still queued, then close the store."""
        try:
            self.candle_writer.close()
        finally:
            self.store.close()


class ProducerRole(Service):
    """What a role that holds the :class:`Producer` does with it, the same in every such role:
    runs its ingest, reports its feed, and closes its store last. The role builds
    :attr:`producer` in its constructor."""

    producer: Producer

    @property
    def feed(self) -> Feed:
        return self.producer.feed

    @property
    def ingest(self) -> Ingest:
        return self.producer.ingest

    def _start_producing(self) -> None:
        """Pin what the engines need, then run the feed through the engines until :meth:`stop`."""
        self.producer.refresh_pins()
        self._spawn(self.producer.candle_writer.run(), "candle writer")
        self._spawn(self.producer.ingest.run(), "ingest")

    def _release(self) -> None:
        self.producer.close()

    def _feed_health(self) -> dict[str, Any]:
        return self.producer.feed_health()

    def _health_extra(self) -> dict[str, Any]:
        """The candle store's writer: how far it is behind, and what it had to drop."""
        writer = self.producer.candle_writer
        return {
            "candle_store": {
                "written": writer.written,
                "pending": writer.pending,
                "dropped": writer.dropped,
                "failures": writer.failures,
            }
        }

    def ingest_counters(self) -> IngestCounters:
        """The counters of the feed this process runs."""
        return self.producer.counters()
