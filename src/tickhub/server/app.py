"""picows listener per connection, HTTP routing for plain GET requests, origin checks."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from picows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from tickhub import protocol
from tickhub.hub import Hub, Session
from tickhub.protocol import ErrorCode, ProtocolError
from tickhub.topics import Endpoint

log = logging.getLogger(__name__)

_PACK_16 = struct.Struct("!BBH").pack
_PACK_64 = struct.Struct("!BBQ").pack
_ENDPOINTS = {e.path.encode(): e for e in Endpoint}


def text_frame(payload: bytes) -> bytes:
    """A complete server-to-client text frame (unmasked, FIN set), built once for many clients."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return _PACK_16(0x81, 126, n) + payload
    return _PACK_64(0x81, 127, n) + payload


@dataclass(slots=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class HttpRequest:
    path: str
    query: str
    headers: Mapping[str, str]


Routes = dict[str, Callable[[HttpRequest], HttpResponse]]


class _Connection(WSListener):
    """One WebSocket client: reassembles fragmented messages and hands them to the hub."""

    __slots__ = (
        "_batch",
        "_endpoint",
        "_fragment_size",
        "_fragments",
        "_hub",
        "_raw",
        "_server",
        "_token",
        "session",
        "transport",
    )

    def __init__(
        self,
        server: WebSocketServer,
        endpoint: Endpoint,
        token: str | None = None,
        batch: bool = False,
    ) -> None:
        self._server = server
        self._token = token
        self._batch = batch
        self._hub = server.hub
        self._endpoint = endpoint
        self._fragments: list[bytes] | None = None
        self._fragment_size = 0
        self.session: Session | None = None
        self.transport: WSTransport | None = None
        self._raw: asyncio.Transport | None = None

    # Peer --------------------------------------------------------------------------------------

    def send(self, payload: bytes) -> None:
        if self.transport is not None:
            self.transport.send(WSMsgType.TEXT, payload)

    def send_frame(self, frame: bytes) -> None:
        if self._raw is not None:
            self._raw.write(frame)

    def close(self, code: int, reason: str) -> None:
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        transport.send(WSMsgType.CLOSE, struct.pack("!H", code) + reason.encode()[:120])
        transport.disconnect(graceful=True)
        raw = self._raw
        if raw is not None:
            # A client that reads nothing never drains the close frame: cut it off.
            asyncio.get_running_loop().call_later(5.0, _abort_if_open, raw)

    # WSListener --------------------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        raw = transport.underlying_transport
        self._raw = raw
        raw.set_write_buffer_limits(high=self._server.outbox_bytes)
        peer = raw.get_extra_info("peername")
        remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.session = self._hub.connect(self, self._endpoint, remote, self._token, self._batch)
        self._token = None

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.session is not None:
            self._hub.disconnect(self.session)
            self.session = None
        self._raw = None

    def pause_writing(self) -> None:
        if self.session is not None:
            self._hub.pause(self.session)

    def resume_writing(self) -> None:
        if self.session is not None:
            self._hub.resume(self.session)

    def ping(self) -> None:
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.send_ping()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        session = self.session
        if session is None:
            return
        kind = frame.msg_type
        if kind == WSMsgType.PONG or kind == WSMsgType.PING:
            self._hub.touch(session)
            return
        if kind == WSMsgType.TEXT:
            if frame.fin:
                self._hub.receive(session, frame.get_payload_as_bytes())
            else:
                self._fragments = [frame.get_payload_as_bytes()]
                self._fragment_size = frame.payload_size
                self._check_fragment_size(session)
        elif kind == WSMsgType.CONTINUATION:
            self._continue(session, frame)
        elif kind == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif kind == WSMsgType.BINARY:
            self._fragments = None
            self._hub.refuse(
                session,
                ProtocolError(
                    ErrorCode.UNSUPPORTED_FRAME,
                    "binary frames are not supported: send JSON text frames",
                ),
            )

    def _continue(self, session: Session, frame: WSFrame) -> None:
        parts = self._fragments
        if parts is None:
            return  # remainder of a message already rejected (or a stray continuation)
        parts.append(frame.get_payload_as_bytes())
        self._fragment_size += frame.payload_size
        if not self._check_fragment_size(session):
            return
        if frame.fin:
            self._fragments = None
            self._hub.receive(session, b"".join(parts))

    def _check_fragment_size(self, session: Session) -> bool:
        limit = self._hub.limits.max_message_bytes
        if self._fragment_size <= limit:
            return True
        self._fragments = None
        self._hub.refuse(
            session,
            ProtocolError(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"message exceeds the limit of {limit} bytes",
                {"limit": limit, "size": self._fragment_size, "setting": "MAX_MESSAGE_BYTES"},
            ),
        )
        return False


def _abort_if_open(raw: asyncio.Transport) -> None:
    if not raw.is_closing():
        raw.abort()


class WebSocketServer:
    """Serves the four WebSocket endpoints and the GET routes on one port."""

    def __init__(
        self,
        hub: Hub,
        routes: Routes,
        *,
        allow_origin: Callable[[str], bool],
        outbox_bytes: int = 1_048_576,
        max_frame_bytes: int = 1_048_576,
        read_buffer_bytes: int = 1024,  # grows on demand; small keeps idle connections cheap
        fallback: Callable[[str], HttpResponse | None] | None = None,
    ) -> None:
        self.hub = hub
        self.routes = routes
        self.fallback = fallback  # e.g. static files: a response, or None for 404
        self.allow_origin = allow_origin
        self.outbox_bytes = outbox_bytes
        self.max_frame_bytes = max_frame_bytes
        self.read_buffer_bytes = read_buffer_bytes
        self._server: asyncio.Server | None = None
        self.refused_origin = 0

    async def start(self, host: str, port: int) -> int:
        self._server = await ws_create_server(
            self._route,
            host,
            port,
            websocket_handshake_timeout=10,
            max_frame_size=self.max_frame_bytes,
            read_buffer_init_size=self.read_buffer_bytes,
            enable_auto_ping=False,
            # asyncio's default backlog of 100 drops SYNs when a crowd reconnects at once (a
            # restart, a network blip); the kernel caps this at net.core.somaxconn.
            backlog=4096,
        )
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _route(self, request: WSUpgradeRequest) -> Any:
        raw_path = request.path.split(b"?", 1)[0]
        origin = request.headers.get("Origin")
        cors = self._cors_headers(origin)
        endpoint = _ENDPOINTS.get(raw_path.rstrip(b"/") or b"/")
        if endpoint is not None and "upgrade" in request.headers.get("Connection", "").lower():
            if origin is not None and not self.allow_origin(origin):
                self.refused_origin += 1
                log.warning("refused WebSocket from origin %r on %s", origin, endpoint.path)
                return _respond(
                    HttpResponse(
                        403,
                        _json_error(
                            ErrorCode.ORIGIN_NOT_ALLOWED, f"origin not allowed: {origin!r}"
                        ),
                    )
                )
            if not self.hub.can_accept():
                limit = self.hub.limits.max_connections
                return _respond(
                    HttpResponse(
                        503,
                        _json_error(
                            ErrorCode.LIMIT_EXCEEDED,
                            f"connection limit reached: {limit}",
                        ),
                        headers={"Retry-After": "5"},
                    )
                )
            token, offered = _subprotocol_token(request.headers.get("Sec-WebSocket-Protocol"))
            raw_query = request.path.partition(b"?")[2]
            listener = _Connection(self, endpoint, token, _wants_batch(raw_query))
            if offered is None:
                return listener
            # A browser that offered protocols needs one of them echoed back.
            headers = {"Sec-WebSocket-Protocol": offered}
            return WSUpgradeResponseWithListener(
                WSUpgradeResponse.create_101_response(headers), listener
            )
        if endpoint is not None:
            return _respond(
                HttpResponse(
                    426,
                    _json_error(
                        ErrorCode.UPGRADE_REQUIRED, f"{endpoint.path} is a WebSocket endpoint"
                    ),
                    headers={"Upgrade": "websocket", **cors},
                )
            )
        path = raw_path.decode("latin-1")
        query = request.path.partition(b"?")[2].decode("latin-1")
        handler = self.routes.get(path)
        if handler is None and self.fallback is not None:
            found = self.fallback(path)
            if found is not None:
                found.headers.update(cors)
                return _respond(found)
        if handler is None:
            return _respond(
                HttpResponse(
                    404,
                    _json_error(ErrorCode.NOT_FOUND, f"not found: {raw_path.decode('latin-1')!r}"),
                    headers=cors,
                )
            )
        try:
            response = handler(HttpRequest(path, query, request.headers))
        except Exception:
            log.exception("route %s failed", raw_path)
            response = HttpResponse(500, _json_error(ErrorCode.INTERNAL_ERROR, "internal error"))
        response.headers.update(cors)
        return _respond(response)

    def _cors_headers(self, origin: str | None) -> dict[str, str]:
        if origin is None or not self.allow_origin(origin):
            return {}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def _wants_batch(query: bytes) -> bool:
    """``?batch=1`` (or ``true``/``yes``) on the WebSocket URL turns batching on."""
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if name == b"batch":
            return value.lower() in (b"", b"1", b"true", b"yes")
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


def _json_error(code: ErrorCode, message: str) -> bytes:
    return protocol.encode({"status": "error", "code": code.value, "message": message})


def _respond(response: HttpResponse) -> WSUpgradeResponseWithListener:
    headers = {
        "Content-Type": response.content_type,
        "Cache-Control": "no-store",
        **response.headers,
    }
    if response.status == 200:
        upgrade = WSUpgradeResponse.create_ok_response(response.body, headers)
    else:
        upgrade = WSUpgradeResponse.create_error_response(response.status, response.body, headers)
    return WSUpgradeResponseWithListener(upgrade, None)
