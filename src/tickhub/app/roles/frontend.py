"""The serving half of the service: the hub, the HTTP and WebSocket server over it, the HTTP
routes, and the loops that keep the hub tidy. The single process and every gateway run it
(:class:`FrontendRole`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from tickhub.app.build import (
    build_candles_route,
    build_hub,
    build_route_options,
    build_server,
)
from tickhub.app.config import Settings
from tickhub.app.roles.base import Service
from tickhub.bus import Bus, BusMessage
from tickhub.core import defaults, protocol
from tickhub.core.clock import Clock
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.protocol import CloseCode
from tickhub.fanout.hub import Hub
from tickhub.ingest.publisher import STATUS_TOPIC
from tickhub.server import WebSocketServer
from tickhub.server.candles import CandleSource
from tickhub.server.routes import HttpRoutes, OwnOrigins, Reported

log = logging.getLogger(__name__)


class Frontend:
    """Clients in, messages out. ``reported`` is the role that serves: the routes report on it;
    ``candles`` is where ``GET /candles`` reads."""

    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        registry: InstrumentRegistry,
        clock: Clock,
        reported: Reported,
        candles: CandleSource,
    ) -> None:
        self._settings = settings
        self._bus = bus
        self._clock = clock
        self.hub = build_hub(settings, bus, registry, clock)
        self.server = build_server(
            settings, self.hub, allow_origin=OwnOrigins(reported, settings.allows_origin)
        )
        self.routes = HttpRoutes(
            reported,
            self.server,
            registry,
            clock,
            build_route_options(settings),
            candles=build_candles_route(settings, candles, registry),
        )
        self.server.routes.update(self.routes.table())
        self.hub.observe_latency = self.routes.metrics.latency.observe

    def relay_status(self) -> None:
        """The ingest's status messages go to every client."""
        self._bus.subscribe(STATUS_TOPIC, self._on_status)

    async def listen(self) -> int:
        """The configured port; a worker of ``serve --workers`` shares it with the others
        (``SO_REUSEPORT``) and has its own admin port on loopback too, where an operator reaches
        this worker's ``/health`` and ``/metrics`` rather than whichever the kernel picks."""
        settings = self._settings
        worker = settings.worker_index
        port = await self.server.start(settings.host, settings.listen_port, reuse_port=worker > 0)
        if worker > 0:
            admin = settings.worker_admin_port(worker)
            await self.server.start(defaults.ADMIN_HOST, admin)
            log.info(
                "worker %d: admin port http://%s:%d/health", worker, defaults.ADMIN_HOST, admin
            )
        return port

    async def close(self) -> None:
        """No new clients; those connected get 1001 and a little time to see it."""
        await self.server.stop()
        await self.server.close_all(CloseCode.GOING_AWAY, "server shutting down")

    def broadcast_status(self, feed: str, detail: str) -> None:
        self.send_all(protocol.reply(self._clock.now(), "status", feed=feed, detail=detail))

    def send_all(self, payload: bytes) -> None:
        """A message for every connected client, whatever it subscribes to."""
        for session in self.hub.iter_sessions():
            session.send(payload)

    def _on_status(self, message: BusMessage) -> None:
        self.send_all(message.payload)

    async def housekeeping(self, chores: Sequence[Callable[[], None]] = ()) -> None:
        """Idle pings and timeouts (the hub's sweep), then the role's own ``chores``."""
        # Often enough that an idle client is pinged well before it times out.
        idle = self._settings.idle_timeout
        period = defaults.HOUSEKEEPING_PERIOD
        if idle > 0:
            period = min(period, idle / defaults.SWEEPS_PER_IDLE_TIMEOUT)
        while True:
            await asyncio.sleep(period)
            try:
                self.hub.sweep()
                for chore in chores:
                    chore()
            except Exception:
                log.exception("housekeeping failed")

    async def batcher(self) -> None:
        """Opt-in batching: gathered messages leave every ``BATCH_INTERVAL`` seconds."""
        while True:
            await asyncio.sleep(self._settings.batch_interval)
            try:
                self.hub.flush_batches()
            except Exception:
                log.exception("batch flush failed")


class FrontendRole(Service):
    """What a role that holds the :class:`Frontend` does with it, the same in every such role:
    relays the ingest's status, keeps the hub tidy, serves until :meth:`stop` and says how many
    clients it has. The role builds :attr:`frontend` in its constructor."""

    frontend: Frontend

    @property
    def hub(self) -> Hub:
        return self.frontend.hub

    @property
    def server(self) -> WebSocketServer:
        return self.frontend.server

    async def _start_serving(self, chores: Sequence[Callable[[], None]] = ()) -> None:
        """Start the frontend's loops (``chores`` run with the housekeeping) and listen; sets
        :attr:`port`."""
        self.frontend.relay_status()
        self._spawn(self.frontend.housekeeping(chores), "housekeeping")
        self._spawn(self.frontend.batcher(), "batcher")
        self.port = await self.frontend.listen()

    async def _stop_serving(self) -> None:
        await self.frontend.close()

    def _connection_count(self) -> int:
        return len(self.frontend.hub)
