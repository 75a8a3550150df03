"""``ROLE=gateway``: the WebSocket and HTTP endpoints of a cluster, fed by the bus from the
ingest (``cluster.gateway``); any number of them serve behind a load balancer."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from tickhub.app.build import build_candle_history, build_store
from tickhub.app.config import Settings
from tickhub.app.roles.frontend import Frontend, FrontendRole
from tickhub.bus import Bus
from tickhub.cluster.gateway import DemandRelay, IngestWatch, RemoteRequests
from tickhub.cluster.messages import new_gateway_id
from tickhub.core import defaults
from tickhub.core.clock import Clock
from tickhub.core.defaults import DEMAND_REFRESH, INGEST_SILENCE
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import Candle, FeedState, Interval
from tickhub.ingest.candle_history import CandleHistory
from tickhub.store import Store

log = logging.getLogger(__name__)


class StoredCandles:
    """A gateway's ``GET /candles``: the store the ingest writes its closed candles to (the
    same ``STORE_URL``, or the same SQLite file in ``DATA_DIR``, read alongside the ingest under
    WAL). Opened at the first request, so that a gateway serves its streams whether or not the
    store answers; a store that cannot be reached makes that request a 503, and the next one
    tries again."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._store: Store | None = None
        self._history: CandleHistory | None = None

    def _open(self) -> CandleHistory:
        if self._history is None:
            self._store = build_store(self._settings)
            self._history = build_candle_history(self._store)
        return self._history

    def closed_candles(
        self,
        symbol: str,
        interval: Interval,
        *,
        start: datetime | None,
        end: datetime | None,
        limit: int,
    ) -> list[Candle]:
        return self._open().closed_candles(symbol, interval, start=start, end=end, limit=limit)

    def newest_start(self, symbol: str, interval: Interval) -> datetime | None:
        return self._open().newest_start(symbol, interval)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = self._history = None


class GatewayService(FrontendRole):
    """The frontend, plus what joins it to the ingest: requests forwarded over the bus, the
    demand of its clients relayed, and a watch on the ingest's heartbeat (and the bus's state)
    that tells clients when their data stops."""

    role = "gateway"

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        registry: InstrumentRegistry | None = None,
        bus: Bus | None = None,
    ) -> None:
        super().__init__(settings, clock=clock, registry=registry, bus=bus)
        self.gateway_id = new_gateway_id()
        self._bus_up = True
        self._last_refresh = 0.0
        self.candles = StoredCandles(settings)
        self.frontend = frontend = Frontend(
            settings, self.bus, self.registry, self.clock, self, self.candles
        )
        self.remote_requests = RemoteRequests(frontend.hub, self.bus, self.clock, self.gateway_id)
        self.demand_relay = DemandRelay(self.bus, self.gateway_id)
        frontend.hub.demand_listeners.append(self.demand_relay.on_topic)
        self.ingest_watch = IngestWatch(self.bus, self.clock, self._on_ingest_change)
        if hasattr(self.bus, "on_state"):
            self.bus.on_state = self._on_bus_state

    async def _start_parts(self) -> None:
        self.remote_requests.register()
        self.demand_relay.start()
        self.ingest_watch.start()
        self._spawn(self._probe_loop(), "probe")
        await self._start_serving(
            (self.remote_requests.expire, self.ingest_watch.check, self._refresh_demand)
        )

    def _leave_bus(self) -> None:
        self.remote_requests.close()
        self.demand_relay.close()
        self.ingest_watch.close()

    def _release(self) -> None:
        self.candles.close()

    def ingest_counters(self) -> None:
        """The feed runs in the ingest's process: no counters here."""
        return None

    # --- health --------------------------------------------------------------------------------

    def _feed_health(self) -> dict[str, Any]:
        watch = self.ingest_watch
        silence = watch.silence
        if not self._bus_up:
            state, detail = FeedState.RECONNECTING.value, "message bus unavailable"
        elif silence is None:
            state, detail = FeedState.STARTING.value, "waiting for the ingest"
        elif not watch.alive:
            state, detail = FeedState.STALE.value, "no heartbeat from the ingest"
        else:
            state, detail = watch.feed_state, "via the ingest"
        return {
            "name": self.settings.feed,
            "state": state,
            "detail": detail,
            "ingest_silence_seconds": None if silence is None else round(silence, 3),
        }

    def _health_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"bus_connected": self._bus_up, "gateway_id": self.gateway_id}
        if self.settings.worker_index:
            extra["worker"] = self.settings.worker_index
        return extra

    # --- the links to the ingest ---------------------------------------------------------------

    def _refresh_demand(self) -> None:
        """Every ``DEMAND_REFRESH`` seconds the full set, in case the ingest missed a change."""
        now = self.clock.monotonic()
        if now - self._last_refresh >= DEMAND_REFRESH:
            self._last_refresh = now
            self.demand_relay.refresh()

    async def _probe_loop(self) -> None:
        """On a bus that delivers asynchronously, /test reports the latest round trip."""
        while True:
            try:
                self.frontend.routes.record_probe(await self.frontend.hub.probe_async())
            except Exception:
                log.exception("self-test probe failed")
            await asyncio.sleep(defaults.PROBE_PERIOD)

    def _on_ingest_change(self, alive: bool) -> None:
        if alive:
            log.info("ingest heard again (feed %s)", self.ingest_watch.feed_state)
            self.frontend.broadcast_status(self.ingest_watch.feed_state, "ingest back")
        else:
            log.warning("no heartbeat from the ingest for %gs", INGEST_SILENCE)
            self.frontend.broadcast_status(
                "stale", f"no heartbeat from the ingest for {INGEST_SILENCE:g}s"
            )

    def _on_bus_state(self, connected: bool) -> None:
        self._bus_up = connected
        if connected:
            log.info("message bus connected")
            self.frontend.broadcast_status(self.ingest_watch.feed_state, "message bus back")
        else:
            log.warning("message bus unavailable")
            self.frontend.broadcast_status("reconnecting", "message bus unavailable")
