"""The composition root: builds every component from settings, runs them, stops them cleanly.

Nothing below this module reads configuration; each component gets its own typed arguments.
Every background task is named, tracked, and cancelled on shutdown.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from tickhub import __version__
from tickhub.app.config import Settings
from tickhub.bus import Bus, BusMessage, create_bus
from tickhub.cluster.gateway import DemandRelay, IngestWatch, RemoteRequests
from tickhub.cluster.ingest import CommandServer, DemandAggregator, heartbeat
from tickhub.cluster.messages import new_gateway_id
from tickhub.core import protocol
from tickhub.core.clock import Clock
from tickhub.core.defaults import DEMAND_REFRESH, HEARTBEAT_PERIOD, INGEST_SILENCE
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import FeedState
from tickhub.core.topics import Endpoint
from tickhub.engines.alerts import AlertsEngine
from tickhub.engines.portfolio import Portfolio, demo_portfolio_file, load_positions_file
from tickhub.fanout.auth import JWT_USER_PREFIX, Authenticator, parse_api_keys
from tickhub.fanout.hub import CloseCode, Hub, HubLimits, transport_bytes
from tickhub.feeds.base import Feed
from tickhub.ingest.demand import Demand
from tickhub.ingest.pipeline import Ingest
from tickhub.ingest.publisher import STATUS_TOPIC
from tickhub.ingest.requests import Requests
from tickhub.runtime.clock import SystemClock
from tickhub.server import HttpRequest, HttpResponse, ServerLimits, WebSocketServer, text_frame
from tickhub.server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from tickhub.server.metrics import Metrics
from tickhub.server.static import static_response
from tickhub.store import open_store

log = logging.getLogger(__name__)

PROBE_PERIOD = 5.0
"""Seconds between self-test round trips through an asynchronous bus."""

STALE_AFTER = 15.0
"""Seconds without a tick (while the market is open) before /health says ``degraded``."""


def build_registry(settings: Settings) -> InstrumentRegistry:
    source = settings.instruments_source or ("file" if settings.instruments_file else "bundled")
    if source == "file":
        if settings.instruments_file is None:
            raise ValueError("INSTRUMENTS_SOURCE=file needs INSTRUMENTS_FILE")
        registry = InstrumentRegistry.load_csv(settings.instruments_file)
    elif source == "kite":
        from tickhub.feeds.kite.instruments import fetch_registry

        if settings.kite_api_key is None or settings.kite_access_token is None:
            raise ValueError("INSTRUMENTS_SOURCE=kite needs KITE_API_KEY and KITE_ACCESS_TOKEN")
        registry = fetch_registry(
            settings.kite_api_key.get_secret_value(),
            settings.kite_access_token.get_secret_value(),
            root=settings.kite_api_url,
        )
    else:
        registry = InstrumentRegistry.bundled()
    if settings.symbols:
        registry = registry.subset(settings.symbols)
    return registry


def build_authenticator(settings: Settings) -> Authenticator:
    key: str | None = None
    if settings.jwt_secret is not None:
        key = settings.jwt_secret.get_secret_value()
    elif settings.jwt_public_key_file is not None:
        key = settings.jwt_public_key_file.read_text()
    api_keys = parse_api_keys(settings.api_keys)
    prefix = settings.jwt_user_prefix
    if prefix is None:
        prefix = JWT_USER_PREFIX if api_keys and key is not None else ""
    return Authenticator(
        api_keys=api_keys,
        jwt_key=key,
        jwt_algorithm=settings.jwt_algorithm,
        jwt_audience=settings.jwt_audience,
        jwt_user_prefix=prefix,
    )


def build_feed(settings: Settings, registry: InstrumentRegistry, clock: Clock) -> Feed:
    if settings.feed == "sim":
        from tickhub.feeds.sim import SimFeed

        return SimFeed(
            list(registry),
            seed=settings.sim_seed,
            speed=settings.sim_speed,
            start=settings.sim_start,
            clock=clock,
            tick_rate=settings.sim_tick_rate,
        )
    if settings.feed == "replay":
        from tickhub.feeds.replay.feed import ReplayFeed

        assert settings.replay_file is not None  # checked by Settings
        return ReplayFeed(
            settings.replay_file,
            registry,
            speed=settings.replay_speed or None,
            loop=settings.replay_loop,
            clock=clock,
            symbol=settings.replay_symbol,
        )
    if settings.feed == "kite":
        from tickhub.feeds.kite.client import KiteFeed

        assert settings.kite_api_key is not None  # checked by Settings
        token = settings.kite_access_token
        return KiteFeed(
            registry,
            api_key=settings.kite_api_key.get_secret_value(),
            access_token=token.get_secret_value() if token is not None else None,
            token_file=settings.kite_token_file,
            url=settings.kite_url,
            clock=clock,
            default_mode=settings.kite_mode,
        )
    raise ValueError(f"unsupported feed: {settings.feed!r}")


ROLES = ("all", "ingest", "gateway")
"""``all``: one process (the default). ``ingest``: feed and engines, publishing on the bus.
``gateway``: WebSocket and HTTP endpoints fed by the bus (see ``cluster.py``)."""


@dataclass
class Service:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    registry: InstrumentRegistry | None = None
    feed: Feed | None = None
    bus: Bus | None = None
    role: str = "all"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role: {self.role!r} (one of {', '.join(ROLES)})")
        s = self.settings
        self.registry = self.registry or build_registry(s)
        self.bus = self.bus or create_bus(
            s.bus_url, history_size=s.history_size, history_age=s.history_age, prefix=s.bus_prefix
        )
        self.gateway_id = new_gateway_id()
        self.ingest: Ingest | None = None
        self.hub: Hub | None = None
        self.server: WebSocketServer | None = None
        self.port: int | None = None
        self.started_at = time.monotonic()
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = False
        self._bus_up = True
        self._last_probe: dict[str, Any] | None = None
        self._last_probe_at = 0.0
        if self.role in ("all", "ingest"):
            self._build_ingest()
        if self.role in ("all", "gateway"):
            self._build_gateway()
        if self.role == "all":
            assert self.hub is not None and self.ingest is not None
            self.hub.demand_listeners.append(self.demand.on_topic)
            self.hub.demand_listeners.append(self.ingest.on_demand)
            self.requests.register(self.hub)

    def _build_ingest(self) -> None:
        s = self.settings
        assert self.registry is not None and self.bus is not None
        self.feed = self.feed or build_feed(s, self.registry, self.clock)
        url = s.store_url.get_secret_value() if s.store_url is not None else None
        self.store = open_store(url or str(s.data_dir / "tickhub.sqlite3"))
        self.portfolio = Portfolio(self.store, now=self.clock.now)
        self.portfolio.load()
        seed_file = s.portfolio_file or (
            demo_portfolio_file() if s.feed == "sim" and s.demo_portfolio else None
        )
        if seed_file is not None:
            # The file seeds the store on first run; changes made over the protocol win later.
            self.portfolio.seed("", load_positions_file(seed_file, self.registry))
        self.ingest = Ingest(
            feed=self.feed,
            registry=self.registry,
            bus=self.bus,
            clock=self.clock,
            update_interval=s.update_interval,
            history_size=s.candle_history,
            snapshot_history=s.analysis_history,
            alerts=AlertsEngine(self.store),
            portfolio=self.portfolio,
        )
        self.demand = Demand(self.feed, self.registry)
        self.requests = Requests(
            self.registry, self.clock, self.ingest, on_change=self.refresh_pins
        )
        if self.role == "ingest":
            self.command_server = CommandServer(self.bus, self.requests)
            self.demand_aggregator = DemandAggregator(
                self.bus, self.clock, [self.demand.on_topic, self.ingest.on_demand]
            )
            if hasattr(self.bus, "on_state"):  # a Redis that restarted empty gets the state back
                self.bus.on_state = self.ingest.on_bus_state

    def _build_gateway(self) -> None:
        s = self.settings
        assert self.registry is not None and self.bus is not None
        self.hub = Hub(
            self.bus,
            self.registry,
            self.clock,
            text_frame,
            HubLimits(
                max_connections=s.max_connections,
                max_connections_per_ip=s.max_connections_per_ip,
                connect_rate_per_ip=s.connect_rate_per_ip,
                max_subscriptions=s.max_subscriptions,
                max_message_bytes=s.max_message_bytes,
                message_rate=s.message_rate,
                message_burst=s.message_burst,
                slow_client_grace=s.slow_client_grace,
                idle_timeout=s.idle_timeout,
                auth_timeout=s.auth_timeout,
                outbox_bytes=s.outbox_bytes,
                max_symbols_per_message=s.max_symbols_per_message,
            ),
            build_authenticator(s),
        )
        self.metrics = Metrics(self._metrics_snapshot)
        self.hub.observe_latency = self.metrics.latency.observe
        self.server = WebSocketServer(
            self.hub,
            {
                "/health": self._route_health,
                "/connections": self._admin(self._route_connections),
                "/metrics": self._admin(self._route_metrics),
                "/test": self._route_test,
                "/instruments": self._route_instruments,
            },
            allow_origin=self._allows_origin,
            fallback=static_response,
            limits=ServerLimits(
                handshake_timeout=s.handshake_timeout,
                close_timeout=s.close_timeout,
                max_header_bytes=s.max_header_bytes,
                max_message_bytes=s.max_message_bytes,
                max_frame_bytes=max(s.max_message_bytes * 16, 1_048_576),
                outbox_bytes=transport_bytes(s.outbox_bytes),
                send_buffer_bytes=s.send_buffer_bytes,
            ),
        )
        if self.role == "gateway":
            self.remote_requests = RemoteRequests(self.hub, self.bus, self.clock, self.gateway_id)
            self.demand_relay = DemandRelay(self.bus, self.gateway_id)
            self.hub.demand_listeners.append(self.demand_relay.on_topic)
            self.ingest_watch = IngestWatch(self.bus, self.clock, self._on_ingest_change)
            if hasattr(self.bus, "on_state"):
                self.bus.on_state = self._on_bus_state

    # --- lifecycle -----------------------------------------------------------------------------

    def refresh_pins(self) -> None:
        """Instruments the engines need whoever is connected: positions, alerts, benchmark."""
        if self.ingest is None:
            return
        portfolio = self.ingest.portfolio
        symbols = {p.symbol for owner in portfolio.owners() for p in portfolio.positions(owner)}
        symbols.update(a.symbol for a in self.ingest.alerts.all())
        symbols.add(self.ingest.analysis.benchmark or "")
        self.demand.pin(symbols)

    async def start(self) -> int | None:
        assert self.bus is not None
        await self.bus.start()
        if self.ingest is not None:
            self.refresh_pins()
            if self.role == "ingest":
                self.command_server.start()
                self.demand_aggregator.start()
                self._spawn(self._ingest_heartbeat(), "ingest-heartbeat")
            self._spawn(self.ingest.run(), "ingest")
        if self.hub is not None and self.server is not None:
            self.bus.subscribe(STATUS_TOPIC, self._on_status)
            if self.role == "gateway":
                self.remote_requests.register()
                self.demand_relay.start()
                self.ingest_watch.start()
                self._spawn(self._probe_loop(), "probe")
            self._spawn(self._housekeeping(), "housekeeping")
            self._spawn(self._batcher(), "batcher")
            self.port = await self.server.start(self.settings.host, self.settings.listen_port)
        self.started_at = time.monotonic()
        if self.port is not None:
            log.info(
                "tickhub %s (%s) serving ws://%s:%d/ws/{stream,analysis,alerts,portfolio} "
                "(feed=%s, bus=%s)",
                __version__,
                self.role,
                self.settings.host,
                self.port,
                self.settings.feed,
                self.settings.bus_url.split("://", 1)[0],
            )
        else:
            log.info("tickhub %s ingest running (feed=%s)", __version__, self.settings.feed)
        return self.port

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self.server is not None and self.hub is not None:
            await self.server.stop()
            await self.server.close_all(CloseCode.GOING_AWAY, "server shutting down")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("task %s failed during shutdown", task.get_name())
        assert self.bus is not None
        if self.role == "gateway":  # the bus may be shared or outlive us: no handler left on it
            self.remote_requests.close()
            self.demand_relay.close()
            self.ingest_watch.close()
        await self.bus.close()
        if self.ingest is not None:
            self.store.close()
        log.info("tickhub stopped")

    async def run_forever(self) -> None:
        # The handlers go in before the "serving" line: a supervisor (or a test) that sends
        # SIGTERM as soon as it reads that line gets the orderly shutdown, not a kill.
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        await self.start()
        try:
            await done.wait()
        finally:
            log.info("shutting down")
            try:
                await asyncio.wait_for(self.stop(), self.settings.shutdown_timeout)
            except TimeoutError:
                log.error("shutdown took over %gs; exiting anyway", self.settings.shutdown_timeout)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s died", task.get_name(), exc_info=task.exception())

    async def _housekeeping(self) -> None:
        assert self.hub is not None
        # Often enough that an idle client is pinged well before it times out.
        idle = self.settings.idle_timeout
        period = min(1.0, idle / 4) if idle > 0 else 1.0
        last_refresh = 0.0
        while True:
            await asyncio.sleep(period)
            try:
                self.hub.sweep()
                if self.role == "gateway":
                    self.remote_requests.expire()
                    self.ingest_watch.check()
                    now = self.clock.monotonic()
                    if now - last_refresh >= DEMAND_REFRESH:
                        last_refresh = now
                        self.demand_relay.refresh()
            except Exception:
                log.exception("housekeeping failed")

    async def _batcher(self) -> None:
        """Opt-in batching: gathered messages leave every ``BATCH_INTERVAL`` seconds."""
        assert self.hub is not None
        while True:
            await asyncio.sleep(self.settings.batch_interval)
            try:
                self.hub.flush_batches()
            except Exception:
                log.exception("batch flush failed")

    async def _ingest_heartbeat(self) -> None:
        assert self.ingest is not None and self.bus is not None
        while True:
            try:
                heartbeat(self.bus, self.clock, self.health()["feed"]["state"])
                self.demand_aggregator.expire()
            except Exception:
                log.exception("ingest heartbeat failed")
            await asyncio.sleep(HEARTBEAT_PERIOD)

    def _on_status(self, message: BusMessage) -> None:
        self._send_all(message.payload)

    def _broadcast_status(self, feed: str, detail: str) -> None:
        self._send_all(protocol.reply(self.clock.now(), "status", feed=feed, detail=detail))

    def _send_all(self, payload: bytes) -> None:
        """A message for every connected client, whatever it subscribes to."""
        if self.hub is None:
            return
        for session in self.hub.iter_sessions():
            session.send(payload)

    def _on_ingest_change(self, alive: bool) -> None:
        if alive:
            log.info("ingest heard again (feed %s)", self.ingest_watch.feed_state)
            self._broadcast_status(self.ingest_watch.feed_state, "ingest back")
        else:
            log.warning("no heartbeat from the ingest for %gs", INGEST_SILENCE)
            self._broadcast_status("stale", f"no heartbeat from the ingest for {INGEST_SILENCE:g}s")

    def _on_bus_state(self, connected: bool) -> None:
        self._bus_up = connected
        if connected:
            log.info("message bus connected")
            self._broadcast_status(self.ingest_watch.feed_state, "message bus back")
        else:
            log.warning("message bus unavailable")
            self._broadcast_status("reconnecting", "message bus unavailable")

    # --- HTTP ----------------------------------------------------------------------------------

    def public_health(self) -> dict[str, Any]:
        """What anyone may read: whether the service is up and its feed's state; no process
        details (pid, counters), which are for operators (:meth:`health`)."""
        body = self.health()
        feed = body["feed"]
        return {
            "status": body["status"],
            "service": body["service"],
            "role": body["role"],
            "version": body["version"],
            "timestamp": body["timestamp"],
            "feed": {k: feed[k] for k in ("name", "state", "market_time") if k in feed},
        }

    def health(self) -> dict[str, Any]:
        feed = self._ingest_feed() if self.ingest is not None else self._gateway_feed()
        ok = feed["state"] in (FeedState.LIVE.value, FeedState.MARKET_CLOSED.value)
        body: dict[str, Any] = {
            "status": "ok" if ok else "degraded",
            "service": "tickhub",
            "role": self.role,
            "version": __version__,
            "timestamp": protocol.iso(self.clock.now()),
            "uptime_seconds": round(time.monotonic() - self.started_at, 3),
            "pid": os.getpid(),
            "feed": feed,
            "bus": self.settings.bus_url.split("://", 1)[0],
            "connections": len(self.hub) if self.hub is not None else 0,
            "instruments": len(self.registry or ()),
        }
        if self.role == "gateway":
            body["bus_connected"] = self._bus_up
            body["gateway_id"] = self.gateway_id
        return body

    def _ingest_feed(self) -> dict[str, Any]:
        ingest = self.ingest
        assert ingest is not None
        status = ingest.feed_status
        age = (
            None
            if ingest.last_tick_mono is None
            else round(self.clock.monotonic() - ingest.last_tick_mono, 3)
        )
        state = status.state
        if state == FeedState.LIVE and age is None:
            state = FeedState.STARTING
        elif state == FeedState.LIVE and age is not None and age > STALE_AFTER:
            state = FeedState.STALE
        return {
            "name": self.settings.feed,
            "state": state.value,
            "detail": status.detail,
            "last_tick_age_seconds": age,
            "market_time": None if ingest.market_time is None else protocol.iso(ingest.market_time),
            "ticks": ingest.ticks_in,
            "tick_errors": ingest.tick_errors,
            "reconnects": status.reconnects,
        }

    def _gateway_feed(self) -> dict[str, Any]:
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

    async def _probe_loop(self) -> None:
        """On a bus that delivers asynchronously, /test reports the latest round trip."""
        assert self.hub is not None
        while True:
            try:
                self._last_probe = await self.hub.probe_async()
                self._last_probe["age_seconds"] = 0.0
                self._last_probe_at = self.clock.monotonic()
            except Exception:
                log.exception("self-test probe failed")
            await asyncio.sleep(PROBE_PERIOD)

    def selftest(self) -> dict[str, Any]:
        assert self.hub is not None
        probe = self.hub.probe()
        if probe["state"] == "pending" and self._last_probe is not None:
            probe = dict(self._last_probe)
            probe["age_seconds"] = round(self.clock.monotonic() - self._last_probe_at, 3)
        health = self.health()
        topics = self.hub.topics()
        endpoints = {}
        report = self.hub.connection_report()["endpoints"]
        for e in Endpoint:
            prefix = e.value + ":"
            endpoints[e.path] = {
                "path": e.path,
                "port": self.port,
                "connections": report[e.path],
                "topics": sum(1 for t in topics if t.startswith(prefix)),
                "subscriptions": sum(n for t, n in topics.items() if t.startswith(prefix)),
                "state": "ok" if probe["ok"] else "unknown",
            }
        return {
            "status": "ok" if probe["ok"] and health["status"] == "ok" else "degraded",
            "timestamp": health["timestamp"],
            "probe": probe,
            "feed": health["feed"],
            "endpoints": endpoints,
            "messages": {
                "published": self.ingest.publisher.published if self.ingest else None,
                "delivered": self.hub.messages_out,
                "received": self.hub.messages_in,
            },
            "links": {"health": "/health", "connections": "/connections", "dashboard": "/"},
        }

    def _admin(
        self, route: Callable[[HttpRequest], HttpResponse]
    ) -> Callable[[HttpRequest], HttpResponse]:
        """With ADMIN_KEY set, the route wants ``Authorization: Bearer <ADMIN_KEY>``."""

        def guarded(request: HttpRequest) -> HttpResponse:
            if not self._is_admin(request):
                body = {"status": "error", "code": "auth_required", "message": "admin key required"}
                return HttpResponse(
                    401, protocol.encode(body), headers={"WWW-Authenticate": "Bearer"}
                )
            return route(request)

        return guarded

    def _metrics_snapshot(self) -> dict[str, Any]:
        assert self.hub is not None
        report = self.hub.connection_report()
        topics = self.hub.topics()
        subs = {e.path: 0 for e in Endpoint}
        for t, n in topics.items():
            endpoint = "/ws/" + t.split(":", 1)[0]
            if endpoint in subs:
                subs[endpoint] += n
        health = self.health()
        return {
            "connections": report["endpoints"],
            "subscriptions": subs,
            "topics": len(topics),
            "messages_in": self.hub.messages_in,
            "messages_out": self.hub.messages_out,
            "published": self.ingest.publisher.published if self.ingest else 0,
            "conflated": self.hub.conflated,
            "dropped": self.hub.dropped,
            "ticks": self.ingest.ticks_in if self.ingest else 0,
            "tick_errors": self.ingest.tick_errors if self.ingest else 0,
            "reconnects": self.ingest.feed_status.reconnects if self.ingest else 0,
            "errors": dict(self.hub.errors),
            "closes": dict(self.hub.closes),
            "http_responses": dict(self.server.http_responses) if self.server else {},
            "sockets": self.server.open_sockets if self.server else 0,
            "sockets_aborted": self.server.aborted if self.server else 0,
            "sockets_refused": self.server.refused_sockets if self.server else 0,
            "held_bytes": sum(s.held_bytes for s in self.hub.sessions),
            "feed_name": self.settings.feed,
            "feed_state": health["feed"]["state"],
            "last_tick_age": health["feed"]["last_tick_age_seconds"],
        }

    def _route_metrics(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, self.metrics.render(), content_type=METRICS_CONTENT_TYPE)

    def _route_health(self, request: HttpRequest) -> HttpResponse:
        details = self.settings.health_details or (
            self.settings.admin_key is not None and self._is_admin(request)
        )
        body = self.health() if details else self.public_health()
        return HttpResponse(200 if body["status"] == "ok" else 503, protocol.encode(body))

    def _is_admin(self, request: HttpRequest) -> bool:
        key = self.settings.admin_key
        if key is None:
            return True
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), key.get_secret_value().encode()
        )

    def _route_connections(self, request: HttpRequest) -> HttpResponse:
        assert self.hub is not None
        report = self.hub.connection_report()
        report["timestamp"] = protocol.iso(self.clock.now())
        return HttpResponse(200, protocol.encode(report))

    def _allows_origin(self, origin: str) -> bool:
        """The configured origins, and the service's own pages (the dashboard at ``/``) on
        localhost. Not any Host header: that would let a DNS-rebinding page in."""
        own = origin.rstrip("/") in {
            f"http://{host}:{self.port}" for host in ("localhost", "127.0.0.1", "[::1]")
        }
        return own or self.settings.allows_origin(origin)

    def _route_instruments(self, request: HttpRequest) -> HttpResponse:
        assert self.registry is not None
        body = [
            {
                "symbol": i.symbol,
                "name": i.name,
                "exchange": i.exchange,
                "token": i.instrument_token,
                "tradable": i.tradable,
            }
            for i in self.registry
        ]
        return HttpResponse(200, protocol.encode(body))

    def _route_test(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, protocol.encode(self.selftest()))
