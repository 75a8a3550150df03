"""The listening socket, what each request gets, and the count of sockets per address.

A request is routed here; how bytes become requests and frames is :mod:`.connection`. An
upgrade to one of the four endpoints is checked against RFC 6455 §4.2 (version, key), the
allowed origins and the connection limit before the hub ever sees it; anything else is a plain
HTTP route, a static file, or a 404.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import Callable

from wsproto.utilities import generate_accept_token

from tickhub.core import defaults
from tickhub.core.protocol import ErrorCode
from tickhub.core.topics import Endpoint
from tickhub.fanout.hub import Hub
from tickhub.server.connection import Connection
from tickhub.server.host import ServerLimits, Upgrade
from tickhub.server.http import (
    ALLOWED_METHODS,
    Headers,
    HttpRequest,
    HttpResponse,
    Routes,
    error_response,
    preflight,
)

log = logging.getLogger(__name__)

_ENDPOINTS = {e.path: e for e in Endpoint}


class WebSocketServer:
    """Serves the four WebSocket endpoints and the HTTP routes on one port."""

    def __init__(
        self,
        hub: Hub,
        routes: Routes,
        *,
        allow_origin: Callable[[str], bool],
        limits: ServerLimits | None = None,
        fallback: Callable[[str], HttpResponse | None] | None = None,
    ) -> None:
        self.hub = hub
        self.routes = routes
        self.fallback = fallback  # e.g. static files: a response, or None for 404
        self.allow_origin = allow_origin
        self.limits = limits or ServerLimits()
        self._servers: list[asyncio.Server] = []
        self._connections: set[Connection] = set()
        self._pending: set[Connection] = set()  # not (yet) a WebSocket
        self._pending_per_ip: dict[str, int] = {}
        self.refused_origin = 0
        self.refused_sockets = 0  # over the per-address count before any request was read
        self.aborted = 0  # sockets cut off at a deadline
        self.http_responses: dict[int, int] = {}
        self._drained: asyncio.Event | None = None  # set when the last socket is gone
        self._corked: list[Connection] = []  # connections with frames queued in this turn
        self.writes = 0  # write calls to transports (corked flushes)

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        """Listen on ``host:port`` (another call adds another listener: a worker's admin port);
        ``reuse_port`` lets several processes share the port (``SO_REUSEPORT``, Linux), the
        kernel spreading new connections over them. Returns the port bound."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: Connection(self),
            host,
            port,
            backlog=defaults.LISTEN_BACKLOG,
            reuse_port=reuse_port,
        )
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting; connections already open are left to :meth:`close_all`."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()

    async def close_all(self, code: int, reason: str) -> None:
        """Close every WebSocket with ``code`` and every HTTP connection, and wait (at most
        ``close_timeout``) until their sockets are gone, so no close frame is lost on exit."""
        await self.hub.aclose(code, reason)
        for conn in list(self._pending):
            conn.abort()
        if self._connections:
            self._drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), self.limits.close_timeout)
        for conn in list(self._connections):
            conn.abort()

    @property
    def open_sockets(self) -> int:
        return len(self._connections)

    # --- corking (called by Connection) --------------------------------------------------------

    def corked(self, conn: Connection) -> None:
        """``conn`` queued its first frame of this turn of the event loop: flush it, with every
        other connection's, once the turn's callbacks are done (one ``call_soon`` per turn)."""
        if not self._corked:
            asyncio.get_running_loop().call_soon(self._uncork_all)
        self._corked.append(conn)

    def _uncork_all(self) -> None:
        conns, self._corked = self._corked, []
        for conn in conns:
            try:
                conn.uncork()
            except Exception:  # one connection's failure must not keep the others' frames
                log.exception("writing to %s failed", conn.remote)

    # --- socket accounting (called by Connection) ----------------------------------------------

    def opened(self, conn: Connection) -> bool:
        """A new socket; ``False`` when its address already holds too many sockets that are not
        WebSockets (those that are count against MAX_CONNECTIONS_PER_IP in the hub)."""
        count = self._pending_per_ip.get(conn.ip, 0)
        if count >= self.hub.limits.max_connections_per_ip:
            self.refused_sockets += 1
            return False
        self._pending_per_ip[conn.ip] = count + 1
        self._pending.add(conn)
        self._connections.add(conn)
        return True

    def upgraded(self, conn: Connection) -> None:
        self._forget_pending(conn)

    def lost(self, conn: Connection) -> None:
        self._connections.discard(conn)
        self._forget_pending(conn)
        if self._drained is not None and not self._connections:
            self._drained.set()

    def _forget_pending(self, conn: Connection) -> None:
        if conn not in self._pending:
            return
        self._pending.discard(conn)
        left = self._pending_per_ip.get(conn.ip, 1) - 1
        if left > 0:
            self._pending_per_ip[conn.ip] = left
        else:
            self._pending_per_ip.pop(conn.ip, None)

    def count_http(self, status: int) -> None:
        self.http_responses[status] = self.http_responses.get(status, 0) + 1

    # --- requests ------------------------------------------------------------------------------

    @staticmethod
    def is_upgrade(request: HttpRequest) -> bool:
        headers = request.headers
        assert isinstance(headers, Headers)
        return "upgrade" in headers.tokens("connection") and "websocket" in headers.tokens(
            "upgrade"
        )

    def upgrade(self, request: HttpRequest, conn: Connection) -> HttpResponse | Upgrade:
        """Check a WebSocket handshake (RFC 6455 §4.2.1); a refusal is an HTTP answer."""
        headers = request.headers
        assert isinstance(headers, Headers)
        endpoint = _ENDPOINTS.get(request.path.rstrip("/") or "/")
        if endpoint is None:
            return self._not_found(request.path)
        if request.method != "GET":
            return error_response(
                405,
                ErrorCode.METHOD_NOT_ALLOWED,
                f"a WebSocket handshake is a GET request, not {request.method}",
                {"Allow": "GET"},
            )
        version = headers.get_all("sec-websocket-version")
        if version != ["13"]:
            # §4.4: tell the client which version this server speaks.
            return error_response(
                426,
                ErrorCode.UPGRADE_REQUIRED,
                f"unsupported WebSocket version: {', '.join(version) or 'none'}; this server "
                "speaks 13",
                {"Sec-WebSocket-Version": "13", "Upgrade": "websocket"},
            )
        key = headers.get("sec-websocket-key", "")
        if not _valid_key(key):
            return error_response(400, ErrorCode.BAD_REQUEST, f"invalid Sec-WebSocket-Key: {key!r}")
        origins = headers.get_all("origin")
        if len(origins) > 1:
            return error_response(400, ErrorCode.BAD_REQUEST, "several Origin headers: send one")
        origin = origins[0] if origins else None
        if origin is not None and not self.allow_origin(origin):
            self.refused_origin += 1
            log.info("refused WebSocket from origin %r on %s", origin, endpoint.path)
            return error_response(
                403, ErrorCode.ORIGIN_NOT_ALLOWED, f"origin not allowed: {origin!r}"
            )
        if not self.hub.can_accept():
            limit = self.hub.limits.max_connections
            return error_response(
                503,
                ErrorCode.LIMIT_EXCEEDED,
                f"connection limit reached: {limit}",
                {"Retry-After": str(defaults.RETRY_AFTER)},
            )
        token, offered = _subprotocol_token(headers.get("sec-websocket-protocol"))
        answer = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", generate_accept_token(key.encode()).decode()),
        ]
        if offered is not None:
            # A browser that offered protocols needs one of them echoed back.
            answer.append(("Sec-WebSocket-Protocol", offered))
        return Upgrade(endpoint, answer, token, _wants_batch(request.query))

    def respond(self, request: HttpRequest) -> HttpResponse:
        """Any request that is not a WebSocket handshake."""
        headers = request.headers
        assert isinstance(headers, Headers)
        if request.method == "OPTIONS":
            origin = headers.get("origin")
            return preflight(origin is not None and self.allow_origin(origin), origin, headers)
        if request.method not in ("GET", "HEAD"):
            return error_response(
                405,
                ErrorCode.METHOD_NOT_ALLOWED,
                f"method not allowed: {request.method}",
                {"Allow": ALLOWED_METHODS},
            )
        endpoint = _ENDPOINTS.get(request.path.rstrip("/") or "/")
        if endpoint is not None:
            return error_response(
                426,
                ErrorCode.UPGRADE_REQUIRED,
                f"{endpoint.path} is a WebSocket endpoint",
                {"Upgrade": "websocket"},
            )
        handler = self.routes.get(request.path)
        if handler is None:
            found = self.fallback(request.path) if self.fallback is not None else None
            return found if found is not None else self._not_found(request.path)
        try:
            return handler(request)
        except Exception:
            log.exception("route %s failed", request.path)
            return error_response(500, ErrorCode.INTERNAL_ERROR, "internal error")

    def cors_headers(self, request: HttpRequest) -> dict[str, str]:
        origin = request.headers.get("origin")
        if origin is None or not self.allow_origin(origin):
            return {}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    @staticmethod
    def _not_found(path: str) -> HttpResponse:
        return error_response(404, ErrorCode.NOT_FOUND, f"not found: {path!r}")


def _valid_key(key: str) -> bool:
    """§4.2.1: a base64-encoded 16-byte value."""
    try:
        return len(base64.b64decode(key.encode("ascii"), validate=True)) == 16
    except (binascii.Error, UnicodeEncodeError):
        return False


def _wants_batch(query: str) -> bool:
    """``?batch=1`` (or ``true``/``yes``) on the WebSocket URL turns batching on."""
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "batch":
            return value.lower() in ("", "1", "true", "yes")
    return False


def _subprotocol_token(header: str | None) -> tuple[str | None, str | None]:
    """``Sec-WebSocket-Protocol: tickhub, token.<token>`` -> (token, protocol to echo)."""
    if not header:
        return None, None
    offered = [p.strip() for p in header.split(",") if p.strip()]
    token = next((p[6:] for p in offered if p.startswith("token.")), None)
    # Never echo a token back (response headers end up in logs); clients offer "tickhub" too.
    echo = next((p for p in offered if not p.startswith("token.")), None)
    return token or None, echo
