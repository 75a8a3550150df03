"""The HTTP routes beside the WebSocket endpoints: ``/health``, ``/connections``, ``/metrics``,
``/test``, ``/instruments``, ``/candles`` (:mod:`tickhub.server.candles`), ``/indicators``
(:mod:`tickhub.server.indicators`) and the protocol
documents (``/asyncapi.yaml``, ``/openapi.yaml``).

They report on a running service without knowing which role it plays (one process, or a gateway
of a cluster): what depends on the role comes through :class:`Reported`, which the roles
implement, so this layer never imports the application that assembles it.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl

from tickhub.core import defaults, protocol
from tickhub.core.clock import Clock
from tickhub.core.instruments import InstrumentRegistry, search_instruments
from tickhub.core.topics import Endpoint
from tickhub.fanout.hub import Hub
from tickhub.server.app import WebSocketServer
from tickhub.server.candles import CandlesRoute
from tickhub.server.http import HttpRequest, HttpResponse, Routes, error_response
from tickhub.server.indicators import indicators_route
from tickhub.server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from tickhub.server.metrics import Metrics
from tickhub.server.specs import document_responses

Route = Callable[[HttpRequest], HttpResponse]

PUBLIC_FEED_FIELDS = ("name", "state", "market_time")
"""What anyone may read of the feed's state (the rest of ``/health`` is for operators)."""


@dataclass(frozen=True, slots=True)
class IngestCounters:
    """The producer's counters, for a service that runs the feed in its own process."""

    published: int
    ticks: int
    tick_errors: int
    reconnects: int


class Reported(Protocol):
    """What the routes report on: a service that serves HTTP, whatever its role."""

    @property
    def port(self) -> int | None:
        """The port it listens on; ``None`` until it has started."""
        ...

    def health(self) -> dict[str, Any]:
        """The operators' health body: at least ``status`` (``"ok"`` or ``"degraded"``),
        ``service``, ``role``, ``version``, ``timestamp`` and ``feed`` (a dict with at least
        ``name`` and ``state``). Cheap enough to be called on every request."""
        ...

    def ingest_counters(self) -> IngestCounters | None:
        """The producer's counters, or ``None`` where the feed runs in another process."""
        ...


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """How much the routes tell, and to whom."""

    feed_name: str
    admin_key: str | None = field(default=None, repr=False)
    """With a key, ``/connections`` and ``/metrics`` want ``Authorization: Bearer <key>``, and
    ``/health`` tells its details only to that bearer."""
    health_details: bool = False
    """``/health`` tells everyone its details (pid, counters), admin key or not."""
    instruments_limit: int = defaults.INSTRUMENTS_LIMIT
    """Matches ``/instruments?q=`` answers without a ``limit`` (INSTRUMENTS_LIMIT)."""
    instruments_max_limit: int = defaults.INSTRUMENTS_MAX_LIMIT
    """The largest ``limit`` ``/instruments`` takes (INSTRUMENTS_MAX_LIMIT); more is a 400."""
    worker: int | None = None
    """Which worker of ``serve --workers`` this is: ``/connections`` says it of its report and
    of every connection, ``/health`` of itself (processes sharing one port are told apart)."""


class OwnOrigins:
    """The configured origins, and the service's own pages (the dashboard at ``/``) on
    localhost. Not any Host header: that would let a DNS-rebinding page in."""

    def __init__(self, reported: Reported, configured: Callable[[str], bool]) -> None:
        self._reported = reported
        self._configured = configured

    def __call__(self, origin: str) -> bool:
        port = self._reported.port
        own = origin.rstrip("/") in {
            f"http://{host}:{port}" for host in ("localhost", "127.0.0.1", "[::1]")
        }
        return own or self._configured(origin)


def public_health(body: dict[str, Any]) -> dict[str, Any]:
    """What anyone may read of a health body: whether the service is up and its feed's state;
    no process details (pid, counters), which are for operators."""
    feed = body["feed"]
    return {
        "status": body["status"],
        "service": body["service"],
        "role": body["role"],
        "version": body["version"],
        "timestamp": body["timestamp"],
        "feed": {k: feed[k] for k in PUBLIC_FEED_FIELDS if k in feed},
        **({"worker": body["worker"]} if "worker" in body else {}),
    }


def bearer_matches(request: HttpRequest, key: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <key>`` (any case of the scheme),
    compared in constant time."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), key.encode())


class HttpRoutes:
    """The routes of one service's server, and the state they keep (the last self-test probe,
    the metrics registry)."""

    def __init__(
        self,
        reported: Reported,
        server: WebSocketServer,
        registry: InstrumentRegistry,
        clock: Clock,
        options: RouteOptions,
        *,
        candles: CandlesRoute | None = None,
    ) -> None:
        self._reported = reported
        self._candles = candles
        self._server = server
        self._hub: Hub = server.hub
        self._registry = registry
        self._clock = clock
        self._options = options
        self._last_probe: dict[str, Any] | None = None
        self._last_probe_at = 0.0
        self.metrics = Metrics(self.metrics_snapshot)
        self._documents = document_responses()

    def table(self) -> Routes:
        """Path -> route, for :attr:`WebSocketServer.routes`."""
        table: Routes = {
            "/health": self.health,
            "/connections": self._admin(self.connections),
            "/metrics": self._admin(self.metrics_text),
            "/test": self.test,
            "/instruments": self.instruments,
            "/indicators": indicators_route(self._hub.limits),
            **{path: self._document(path) for path in self._documents},
        }
        if self._candles is not None:
            table["/candles"] = self._candles
        return table

    # --- the routes ----------------------------------------------------------------------------

    def health(self, request: HttpRequest) -> HttpResponse:
        """200 when healthy, 503 when degraded; details for operators only."""
        details = self._options.health_details or (
            self._options.admin_key is not None and self._is_admin(request)
        )
        body = self._reported.health()
        if not details:
            body = public_health(body)
        return HttpResponse(200 if body["status"] == "ok" else 503, protocol.encode(body))

    def connections(self, request: HttpRequest) -> HttpResponse:
        report = self._hub.connection_report()
        report["timestamp"] = protocol.iso(self._clock.now())
        worker = self._options.worker
        if worker is not None:
            report["worker"] = worker
            for connection in report["connections"]:
                connection["worker"] = worker
        return HttpResponse(200, protocol.encode(report))

    def metrics_text(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, self.metrics.render(), content_type=METRICS_CONTENT_TYPE)

    def test(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, protocol.encode(self.selftest()))

    def instruments(self, request: HttpRequest) -> HttpResponse:
        """Every instrument, or with ``q`` the ones whose symbol or name contains it (prefix
        matches first), at most ``limit`` (default: all without ``q``, INSTRUMENTS_LIMIT
        with it)."""
        params = query_params(request.query)
        if isinstance(params, HttpResponse):
            return params
        query = params.get("q")
        if query is not None and len(query) > protocol.MAX_SYMBOL_LENGTH:
            return bad_parameter(
                f"parameter 'q' is at most {protocol.MAX_SYMBOL_LENGTH} characters"
            )
        limit: int | None = None if query is None else self._options.instruments_limit
        if "limit" in params:
            most = self._options.instruments_max_limit
            raw = params["limit"]
            # At most 9 digits before int(): a 5,000-digit number would hit Python's limit.
            digits = raw.isascii() and raw.isdigit() and len(raw) <= 9
            if not digits or not 1 <= int(raw) <= most:
                return bad_parameter(
                    f"parameter 'limit' must be an integer from 1 to {most} "
                    f"(INSTRUMENTS_MAX_LIMIT), got {protocol.shown(raw)}",
                )
            limit = int(raw)
        found = search_instruments(self._registry, query or "", limit)
        body = [
            {
                "symbol": i.symbol,
                "name": i.name,
                "exchange": i.exchange,
                "token": i.instrument_token,
                "tradable": i.tradable,
            }
            for i in found
        ]
        return HttpResponse(200, protocol.encode(body))

    def _document(self, path: str) -> Route:
        response = self._documents[path]
        return lambda request: response

    # --- what they report ----------------------------------------------------------------------

    def record_probe(self, probe: dict[str, Any]) -> None:
        """A round trip measured in the background (on a bus that delivers asynchronously, the
        hub cannot measure one within a request): ``/test`` reports it, with its age."""
        probe["age_seconds"] = 0.0
        self._last_probe = probe
        self._last_probe_at = self._clock.monotonic()

    def selftest(self) -> dict[str, Any]:
        """A round trip through the bus to every endpoint, and what each endpoint serves."""
        hub = self._hub
        probe = hub.probe()
        if probe["state"] == "pending" and self._last_probe is not None:
            probe = dict(self._last_probe)
            probe["age_seconds"] = round(self._clock.monotonic() - self._last_probe_at, 3)
        health = self._reported.health()
        counters = self._reported.ingest_counters()
        topics = hub.topics()
        endpoints = {}
        report = hub.connection_report()["endpoints"]
        for e in Endpoint:
            prefix = e.value + ":"
            endpoints[e.path] = {
                "path": e.path,
                "port": self._reported.port,
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
                "published": counters.published if counters is not None else None,
                "delivered": hub.messages_out,
                "received": hub.messages_in,
            },
            "links": {"health": "/health", "connections": "/connections", "dashboard": "/"},
        }

    def metrics_snapshot(self) -> dict[str, Any]:
        """The figures :class:`Metrics` turns into metric families at scrape time."""
        hub, server = self._hub, self._server
        report = hub.connection_report()
        topics = hub.topics()
        subs = {e.path: 0 for e in Endpoint}
        for t, n in topics.items():
            endpoint = "/ws/" + t.split(":", 1)[0]
            if endpoint in subs:
                subs[endpoint] += n
        feed = self._reported.health()["feed"]
        counters = self._reported.ingest_counters() or IngestCounters(0, 0, 0, 0)
        return {
            "connections": report["endpoints"],
            "subscriptions": subs,
            "topics": len(topics),
            "messages_in": hub.messages_in,
            "messages_out": hub.messages_out,
            "published": counters.published,
            "conflated": hub.conflated,
            "dropped": hub.dropped,
            "ticks": counters.ticks,
            "tick_errors": counters.tick_errors,
            "reconnects": counters.reconnects,
            "errors": dict(hub.errors),
            "closes": dict(hub.closes),
            "http_responses": dict(server.http_responses),
            "sockets": server.open_sockets,
            "sockets_aborted": server.aborted,
            "sockets_refused": server.refused_sockets,
            "held_bytes": sum(s.held_bytes for s in hub.sessions),
            "feed_name": self._options.feed_name,
            "feed_state": feed["state"],
            # A gateway's feed is the ingest's, in another process: it has no tick age of its own.
            "last_tick_age": feed.get("last_tick_age_seconds"),
        }

    # --- access --------------------------------------------------------------------------------

    def _admin(self, route: Route) -> Route:
        """With an admin key, the route wants ``Authorization: Bearer <key>``."""

        def guarded(request: HttpRequest) -> HttpResponse:
            if not self._is_admin(request):
                return error_response(
                    401,
                    protocol.ErrorCode.AUTH_REQUIRED,
                    "admin key required",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return route(request)

        return guarded

    def _is_admin(self, request: HttpRequest) -> bool:
        key = self._options.admin_key
        return key is None or bearer_matches(request, key)


def query_params(query: str) -> Mapping[str, str] | HttpResponse:
    """A query string's parameters, each named once (a repeated one is a 400: which of the
    values was meant cannot be told)."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False, errors="strict")
    except UnicodeDecodeError:
        return bad_parameter("the query string is not UTF-8")
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            return bad_parameter(f"parameter {protocol.shown(name)} is given more than once")
        params[name] = value
    return params


def bad_parameter(message: str) -> HttpResponse:
    """A 400 ``invalid_parameter``; the message names the parameter and what it must be."""
    return error_response(400, protocol.ErrorCode.INVALID_PARAMETER, message)
