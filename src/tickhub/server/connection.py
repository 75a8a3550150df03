"""One TCP connection: HTTP/1.1 (h11) until a WebSocket upgrade, then RFC 6455 (wsproto).

Both parsers are sans-I/O libraries made for the job; this module only moves bytes between them
and the transport, and owns the timers that bound how long a connection may hold the server's
resources: the handshake deadline, the keep-alive idle deadline and the closing deadline.

Closing follows RFC 6455 §7 with a *lingering close*: after the server sends a close frame it
keeps reading, and discarding, whatever the client still sends until the client's close frame
arrives (then the server closes TCP first, §7.1.1), EOF, or ``close_timeout``, after which the
socket is aborted whatever the peer does. Closing a socket with unread input makes the kernel
send a reset, and a reset makes the peer drop the close frame still in its receive buffer: a
client closed for flooding would never learn why.

Frames to the client are written as prebuilt bytes (:func:`tickhub.server.frames.text_frame`,
built once for many clients); wsproto frames only control frames and the close.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import re
import socket
import struct
import sys
import termios
import time
from collections import deque
from collections.abc import Iterator
from http import HTTPStatus
from typing import cast

import h11
from wsproto.connection import Connection as WsConnection
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason

from tickhub.core.protocol import ErrorCode, ProtocolError
from tickhub.fanout.session import Session
from tickhub.server.frames import text_frame
from tickhub.server.host import ConnectionHost, Upgrade
from tickhub.server.http import Headers, HttpRequest, HttpResponse, response_headers

log = logging.getLogger(__name__)

_BARE_LF = re.compile(rb"(?<!\r)\n")
_OPEN = ConnectionState.OPEN
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
EVENT_SLICE = 0.0005
"""Seconds of parsing and handling one connection may take before the others get their turn."""


READ_CHUNK = 65_536
"""Bytes read from one socket per turn of the event loop. asyncio reads up to 256 KiB at a
time; a few hundred clients sending large frames would then make every turn parse tens of
megabytes before anyone else is served. Client messages are small (MAX_MESSAGE_BYTES)."""

_read_buffer = memoryview(bytearray(READ_CHUNK))
"""One buffer for every connection: the loop reads into it and :meth:`Connection.buffer_updated`
copies what was read out at once, before the next read (the loop runs one callback at a time)."""


class Connection(asyncio.BufferedProtocol):
    """A client's socket from accept to close (HTTP requests, then maybe one WebSocket)."""

    __slots__ = (
        "_binary",
        "_cork",
        "_events",
        "_failed",
        "_head_seen",
        "_http",
        "_lost",
        "_parts",
        "_prev_cr",
        "_reading_paused",
        "_request",
        "_server",
        "_shut",
        "_size",
        "_slice_end",
        "_timer",
        "_too_big",
        "_writable",
        "_ws",
        "ip",
        "remote",
        "session",
        "transport",
    )

    def __init__(self, server: ConnectionHost[Connection]) -> None:
        self._server = server
        self.transport: asyncio.Transport | None = None
        limit = server.limits.max_header_bytes
        self._http: h11.Connection | None = h11.Connection(
            h11.SERVER, max_incomplete_event_size=limit
        )
        self._ws: WsConnection | None = None
        # Data frames may be written: the WebSocket is open, no close frame sent or received,
        # not failed, not lost. One flag, because the fan-out asks it per message per client.
        self._writable = False
        self._timer: asyncio.TimerHandle | None = None
        self._prev_cr = False
        self._head_seen = 0  # bytes of the request head being received
        self._request: HttpRequest | None = None  # parsed, waiting for its end
        self._parts: list[str] | None = None  # text of the message being received
        self._size = 0  # its size in bytes so far
        self._too_big = False
        self._binary = False
        self._failed = False
        self._lost = False
        self._shut = False  # FIN sent (or the transport closed)
        self._events: Iterator[Event] | None = None  # wsproto events left from the last read
        self._cork: list[bytes] | None = None  # frames queued in this turn of the loop
        self._reading_paused = False
        self._slice_end = 0.0  # end of this turn's slice (0: no read in this turn yet)
        self.session: Session | None = None
        self.ip = ""
        self.remote = ""

    # --- transport callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its interface.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.ip = sys.intern(str(peer[0]))
            self.remote = f"{peer[0]}:{peer[1]}"
        else:
            self.ip = self.remote = str(peer)
        limits = self._server.limits
        transport.set_write_buffer_limits(high=limits.outbox_bytes)
        sock = transport.get_extra_info("socket")
        if limits.send_buffer_bytes and sock is not None:
            # Without a cap Linux grows a socket's send buffer up to tcp_wmem's maximum (4 MiB
            # by default) for a peer that does not read: kernel memory no budget would count.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limits.send_buffer_bytes)
        if not self._server.opened(self):
            transport.abort()
            return
        self._arm(limits.handshake_timeout, self._handshake_expired)

    def get_buffer(self, sizehint: int) -> memoryview:
        return _read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(_read_buffer[:nbytes]))

    def data_received(self, data: bytes) -> None:
        if self._ws is not None:
            self._ws_received(data)
        elif self._http is not None:
            self._http_received(data)
        # else: refused over HTTP and closing: discard

    def eof_received(self) -> bool | None:
        # The peer is done sending; our side closes too (after the write buffer drains).
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._writable = False
        self._cancel_timer()
        self._server.lost(self)
        if self.session is not None:
            self._server.hub.disconnect(self.session)
            self.session = None
        self._http = None
        self._ws = None
        self._parts = None
        self._events = None
        self._cork = None

    def pause_writing(self) -> None:
        if self.session is not None:
            self._server.hub.pause(self.session)

    def resume_writing(self) -> None:
        if self.session is not None:
            self._server.hub.resume(self.session)

    # --- HTTP ----------------------------------------------------------------------------------

    def _http_received(self, data: bytes) -> None:
        http = self._http
        assert http is not None
        # RFC 9112 §2.2 lets a server take a lone LF as a line end; taking it here while a proxy
        # in front does not would let the two disagree on where a request ends. Refuse it.
        end = data.find(b"\r\n\r\n")
        head = data if end < 0 else data[: end + 4]
        if _BARE_LF.search(head) or (head[:1] == b"\n" and not self._prev_cr):
            self._http_refuse(400, "request lines must end with CRLF")
            return
        # h11 bounds a head that arrives in pieces; one that arrives whole is bounded here.
        self._head_seen += len(head)
        limit = self._server.limits.max_header_bytes
        if self._head_seen > limit:
            self._http_refuse(431, f"request head over {limit} bytes")
            return
        if end >= 0:
            self._head_seen = 0
        self._prev_cr = data[-1:] == b"\r"
        http.receive_data(data)
        self._http_events()

    def _http_events(self) -> None:
        while (http := self._http) is not None:
            try:
                event = http.next_event()
            except h11.RemoteProtocolError as exc:
                self._http_refuse(exc.error_status_hint, str(exc))
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._head_seen = 0
                self._cancel_timer()
                self._on_request(event)
            elif isinstance(event, h11.EndOfMessage):
                request, self._request = self._request, None
                if request is not None:
                    self._handle(request)
            elif isinstance(event, h11.ConnectionClosed):
                self._close_transport()
                return
            # Data of a request: ignored (a request with a body is answered and closed at once).

    def _on_request(self, event: h11.Request) -> None:
        headers = Headers([(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers])
        target = event.target.decode("latin-1")
        path, _, query = target.partition("?")
        request = HttpRequest(path, query, headers, event.method.decode("latin-1"))
        has_body = any(
            n in (b"content-length", b"transfer-encoding") and v != b"0" for n, v in event.headers
        )
        if has_body:
            # No route takes a body: answer without reading it, and close.
            self._http_respond(request, self._server.respond(request), close=True)
            return
        self._request = request  # answered once its end is parsed (h11 needs that first)

    def _handle(self, request: HttpRequest) -> None:
        server = self._server
        if server.is_upgrade(request):
            answer = server.upgrade(request, self)
            if isinstance(answer, HttpResponse):
                self._http_respond(request, answer, close=True)
            else:
                self._switch(answer)
            return
        self._http_respond(request, server.respond(request), close=False)

    def _http_respond(self, request: HttpRequest, response: HttpResponse, close: bool) -> None:
        http = self._http
        transport = self.transport
        if http is None or transport is None:
            return
        headers = response_headers(response, self._server.cors_headers(request))
        if close:
            headers.append(("Connection", "close"))
        try:
            out = http.send(
                h11.Response(
                    status_code=response.status, headers=headers, reason=_reason(response.status)
                )
            )
            if request.method != "HEAD" and response.body:
                out = (out or b"") + (http.send(h11.Data(data=response.body)) or b"")
            out = (out or b"") + (http.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:
            log.debug("could not answer %s %s", request.method, request.path, exc_info=True)
            self._close_transport()
            return
        transport.write(out)
        self._server.count_http(response.status)
        if http.our_state is h11.MUST_CLOSE or close:
            self._http = None
            self._close_transport()
            return
        if http.our_state is h11.DONE and http.their_state is h11.DONE:
            http.start_next_cycle()
            self._arm(self._server.limits.handshake_timeout, self._handshake_expired)
        # A pipelined request already buffered is handled by the caller's loop.

    def _http_refuse(self, status: int, reason: str) -> None:
        """A request that cannot be parsed: answer it if HTTP still allows, then close."""
        http = self._http
        transport = self.transport
        self._http = None
        if transport is None:
            return
        log.debug("refused request from %s: %d %s", self.remote, status, reason)
        self._server.count_http(status)
        phrase = _reason(status).decode() or "Bad Request"
        body = f"{status} {phrase}: {reason}\n".encode()
        if http is None or http.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            head = (
                f"HTTP/1.1 {status} {phrase}\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\n"
                "X-Content-Type-Options: nosniff\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            transport.write(head + body)
        self._close_transport()

    def _handshake_expired(self) -> None:
        self._timer = None
        http = self._http
        if self._ws is not None or http is None:
            return
        if http.their_state is h11.IDLE and not http.trailing_data[0]:
            # Idle between keep-alive requests (or nothing sent at all): just close.
            self._http = None
            self._close_transport()
        else:
            self._http_refuse(408, "request not complete in time")

    # --- WebSocket -----------------------------------------------------------------------------

    def _switch(self, accept: Upgrade) -> None:
        """Answer 101 and hand the connection over to the WebSocket layer."""
        http = self._http
        transport = self.transport
        assert http is not None and transport is not None
        response = h11.InformationalResponse(
            status_code=101, headers=accept.headers, reason=b"Switching Protocols"
        )
        transport.write(http.send(response) or b"")  # "101 " + reason from h11
        trailing, _ = http.trailing_data
        self._http = None
        self._ws = lean_ws_connection()
        self._writable = True
        self._server.upgraded(self)
        try:
            self.session = self._server.hub.connect(
                self, accept.endpoint, self.remote, accept.token, accept.batch
            )
        except Exception:
            log.exception("accepting a connection from %s failed", self.remote)
            self.fail(1011, "internal error")
            return
        if trailing:
            self._ws_received(bytes(trailing))

    def _ws_received(self, data: bytes) -> None:
        ws = self._ws
        assert ws is not None
        if self._failed or ws.state not in (_OPEN, ConnectionState.LOCAL_CLOSING):
            return  # after a protocol error, or after the peer's close: discard
        ws.receive_data(data)
        self._events = ws.events()
        self._run_events()

    def _run_events(self) -> None:
        """Handle the events of what was read, for at most :data:`EVENT_SLICE` seconds per turn
        of the event loop. A client that sends thousands of messages, or megabytes, at once
        then waits with its socket paused until the next turn, and every other connection is
        served in between. The budget is per turn, not per read: uvloop reads a ready socket
        up to 32 times in one turn."""
        events, ws = self._events, self._ws
        if events is None or ws is None:
            return
        now = time.perf_counter()
        if not self._slice_end:
            self._slice_end = now + EVENT_SLICE
            asyncio.get_running_loop().call_soon(self._next_turn)
        deadline = self._slice_end
        for event in events:
            if isinstance(event, TextMessage):
                self._on_text(event)
            elif isinstance(event, BytesMessage):
                self._on_binary(event)
            elif isinstance(event, Ping):
                self._touch()
                if ws.state is _OPEN:
                    self._write(ws.send(event.response()))
            elif isinstance(event, Pong):
                self._touch()
            elif isinstance(event, CloseConnection):
                self._events = None
                self._on_close_frame(ws, event)
                return
            if self._events is None:
                return  # the connection was lost or failed while handling the event
            if time.perf_counter() > deadline:
                self._pause_reading()  # the rest at the next turn (_next_turn)
                return
        self._events = None
        if time.perf_counter() > deadline:
            self._pause_reading()  # parsing took the slice: read no more in this turn

    def _next_turn(self) -> None:
        """A new turn of the loop: a new slice for the events left, or reading again."""
        self._slice_end = 0.0
        if self._events is not None:
            self._run_events()
        if self._events is None and self._reading_paused:
            self._resume_reading()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None and not self._lost:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self._lost:
            self._reading_paused = False
            self.transport.resume_reading()

    def _on_text(self, event: TextMessage) -> None:
        if self._ws is None or self._ws.state is not _OPEN:
            return  # closing: what the client still sends is discarded
        chunk = event.data
        if self._parts is None:
            self._parts, self._size, self._too_big = [], 0, False
        self._size += len(chunk) if chunk.isascii() else len(chunk.encode())
        limits = self._server.limits
        if self._size > limits.max_frame_bytes:
            self.fail(1009, f"message over {limits.max_frame_bytes} bytes")
            return
        if self._size > limits.max_message_bytes:
            self._too_big = True
            self._parts.clear()  # bounded: the rest of the message is counted, not kept
        else:
            self._parts.append(chunk)
        if not event.message_finished:
            return
        parts, size, too_big = self._parts, self._size, self._too_big
        self._parts = None
        session = self.session
        if session is None:
            return
        hub = self._server.hub
        if too_big:
            limit = limits.max_message_bytes
            hub.refuse(
                session,
                ProtocolError(
                    ErrorCode.MESSAGE_TOO_LARGE,
                    f"message of {size} bytes exceeds the limit of {limit} bytes",
                    {"limit": limit, "size": size, "setting": "MAX_MESSAGE_BYTES"},
                ),
            )
        else:
            text = parts[0] if len(parts) == 1 else "".join(parts)
            hub.receive(session, text.encode())

    def _on_binary(self, event: BytesMessage) -> None:
        if self._ws is None or self._ws.state is not _OPEN:
            return
        if not self._binary:
            self._binary, self._size = True, 0
        self._size += len(event.data)
        limit = self._server.limits.max_frame_bytes
        if self._size > limit:
            self.fail(1009, f"message over {limit} bytes")
            return
        if event.message_finished:
            self._binary = False
            if self.session is not None:
                self._server.hub.refuse(
                    self.session,
                    ProtocolError(
                        ErrorCode.UNSUPPORTED_FRAME,
                        "binary frames are not supported: send JSON text frames",
                    ),
                )

    def _on_close_frame(self, ws: WsConnection, event: CloseConnection) -> None:
        self._writable = False
        state = ws.state
        if state is ConnectionState.REMOTE_CLOSING:
            # The client closes: answer with its code (§5.5.1); a close without one (a browser's
            # close()) with 1000, so that the client reports a normal closure, not 1005.
            code = 1000 if event.code == CloseReason.NO_STATUS_RCVD else event.code
            self._write(ws.send(CloseConnection(code=code)))
            if self.session is not None:
                self._server.hub.closed_by_peer(self.session)
            self._close_transport()
        elif state is ConnectionState.CLOSED:
            # The client's answer to our close: the handshake is complete, TCP closes first here.
            self._close_transport()
        else:
            # wsproto reports a protocol violation as a close event in the OPEN state.
            self.fail(event.code, event.reason or "protocol error")

    def fail(self, code: int, reason: str) -> None:
        """_Fail the WebSocket Connection_ (§7.1.7): close frame, then stop parsing."""
        ws = self._ws
        if ws is None or self._failed:
            return
        self._failed = True
        self._writable = False
        self._parts = None
        self._events = None  # nothing more is handled; what was read is dropped
        self._resume_reading()  # the lingering close reads, and discards
        log.debug("closing %s with %d: %s", self.remote, code, reason)
        if ws.state is _OPEN:
            self._write(ws.send(CloseConnection(code=code, reason=_short(reason))))
        if self.session is not None:
            self._server.hub.failed(self.session, code)
        self._close_transport()  # nothing more will be parsed: let the peer see the end

    def _touch(self) -> None:
        if self.session is not None:
            self._server.hub.touch(self.session)

    # --- Peer (what the hub calls) -------------------------------------------------------------

    def send(self, payload: bytes) -> None:
        self.send_frame(text_frame(payload))

    def send_frame(self, frame: bytes) -> None:
        # The hottest call of the service (per message, per client): _write inlined.
        if self._writable:
            cork = self._cork
            if cork is None:
                self._cork = [frame]
                self._server.corked(self)
            else:
                cork.append(frame)

    def ping(self) -> None:
        ws = self._ws
        if ws is not None and self._writable:
            self._write(ws.send(Ping()))

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake; the socket is gone within ``close_timeout``."""
        ws = self._ws
        if ws is None or self._lost:
            return
        if ws.state is _OPEN and not self._failed:
            self._writable = False
            self._write(ws.send(CloseConnection(code=code, reason=_short(reason))))
            self._parts = None
        self._arm(self._server.limits.close_timeout, self.abort)

    # --- plumbing ------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        """Queue ``data``; everything queued in one turn of the loop leaves in one write
        (:meth:`uncork`), one system call where a frame each made one per message."""
        if self.transport is None or self._lost:
            return
        cork = self._cork
        if cork is None:
            self._cork = [data]
            self._server.corked(self)
        else:
            cork.append(data)

    def uncork(self) -> None:
        """Write what this turn queued (the server calls it at the end of the turn)."""
        cork, self._cork = self._cork, None
        transport = self.transport
        if cork and transport is not None and not self._lost:
            self._server.writes += 1
            transport.write(cork[0] if len(cork) == 1 else b"".join(cork))

    def _close_transport(self) -> None:
        """Lingering close: send FIN once the write buffer drains, keep reading and discarding
        until the peer's FIN (then the transport closes itself), and abort at
        ``close_timeout`` whatever the peer does. Closing with unread input would reset the
        connection and lose the last answer or close frame in the peer's receive buffer."""
        transport = self.transport
        if transport is None or self._lost:
            return
        self._http = None
        if self._shut:
            return
        self._shut = True
        self._writable = False
        self.uncork()  # the FIN goes after every queued frame
        if transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()
        self._arm(self._server.limits.close_timeout, self.abort)

    def abort(self) -> None:
        """Drop the connection. While bytes are still unsent (the peer does not read), reset
        it: with SO_LINGER 0 the kernel frees what it holds for the peer at once, where a plain
        close would leave an orphaned socket with its send queue in FIN-WAIT-1 for minutes,
        probing a zero window. With nothing unsent the close is a plain FIN, so a peer that
        reads but never answers the close frame still gets everything, then EOF."""
        self._timer = None
        self._events = None
        transport = self.transport
        if transport is not None and not self._lost:
            self._server.aborted += 1
            sock = transport.get_extra_info("socket")
            unsent = sock is not None and bool(
                transport.get_write_buffer_size() or self._cork or _unsent(sock)
            )
            self._cork = None
            if unsent:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            transport.abort()

    def _arm(self, delay: float, callback: object) -> None:
        self._cancel_timer()
        if not self._lost:
            self._timer = asyncio.get_running_loop().call_later(delay, callback)  # type: ignore[arg-type]

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _NoEvents(list[Event]):
    """Stands in for wsproto's queue of pending events, which holds something only after
    ``receive_data(None)`` (a transport lost without a close frame): this module never calls
    that, so the queue stays empty, and an empty ``deque`` costs 760 bytes a connection where
    an empty list costs 56."""

    __slots__ = ()

    def popleft(self) -> Event:
        return self.pop(0)


def lean_ws_connection() -> WsConnection:
    """A server-side wsproto connection without its 760-byte empty event deque."""
    ws = WsConnection(ConnectionType.SERVER)
    if not isinstance(getattr(ws, "_events", None), deque):  # pragma: no cover - wsproto changed
        raise RuntimeError("wsproto's Connection no longer keeps its events in _events")
    ws._events = _NoEvents()  # type: ignore[assignment]
    return ws


def _unsent(sock: socket.socket) -> int:
    """Bytes in the kernel's send queue of ``sock`` not yet acknowledged (Linux SIOCOUTQ)."""
    try:
        out = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", out)[0])


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _short(reason: str) -> str:
    """A close reason fits a control frame: at most 123 bytes of UTF-8, cut on a character."""
    data = reason.encode()[:120]
    return data.decode("utf-8", "ignore")
