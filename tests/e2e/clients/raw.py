"""A raw-socket WebSocket and HTTP client for tests that must put exact bytes on the wire.

No library between the test and the server: frames are built by hand (RFC 6455 §5.2, masked as
a client must), so a test can send what no well-behaved library would (RSV bits, bad close codes,
stray continuations), and read exactly what came back, including how the TCP connection ended
(EOF or reset).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tickhub.app.roles import SingleService

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
READ_TIMEOUT = 2.0  # every answer under test is immediate; this only bounds a failure


def port_of(service: SingleService) -> int:
    assert service.port is not None, "the service is not listening"
    return service.port


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, mask: bool = True
) -> bytes:
    """One client frame. ``rsv``: the three RSV bits as a number (4 = RSV1, 2 = RSV2, 1 = RSV3)."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mask_bit = 0x80 if mask else 0
    if n < 126:
        header = bytes([first, mask_bit | n])
    elif n < 1 << 16:
        header = bytes([first, mask_bit | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([first, mask_bit | 127]) + n.to_bytes(8, "big")
    if not mask:
        return header + payload
    key = os.urandom(4)
    stream = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return header + key + masked


def close_payload(code: int | None, reason: bytes = b"") -> bytes:
    return b"" if code is None else code.to_bytes(2, "big") + reason


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes

    @property
    def code(self) -> int | None:
        """The close code; ``None`` for an empty close payload."""
        assert self.opcode == CLOSE, self
        return int.from_bytes(self.payload[:2], "big") if len(self.payload) >= 2 else None

    @property
    def reason(self) -> bytes:
        return self.payload[2:]


class RawWebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(
        cls, port: int, path: str = "/ws/stream", headers: list[tuple[str, str]] | None = None
    ) -> RawWebSocket:
        """The opening handshake (RFC 6455 §4.1), checked; then the welcome is read."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16))
        writer.write(upgrade_request(port, path, key, headers))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        status, fields = parse_head(head)
        assert status == 101, head
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        assert fields.get("sec-websocket-accept") == [accept], head
        ws = cls(reader, writer)
        welcome = await ws.recv()
        assert welcome.opcode == TEXT and b'"type":"connection"' in welcome.payload, welcome
        return ws

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def send_close(self, code: int | None, reason: bytes = b"") -> None:
        self.send(frame(CLOSE, close_payload(code, reason)))

    async def recv(self, timeout: float = READ_TIMEOUT) -> Frame:
        async with asyncio.timeout(timeout):
            b0, b1 = await self.reader.readexactly(2)
            assert not b1 & 0x80, "a server frame must not be masked (RFC 6455 §5.1)"
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(await self.reader.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await self.reader.readexactly(8), "big")
            payload = await self.reader.readexactly(n)
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 0x7, b0 & 0x0F, payload)

    async def recv_close(self, timeout: float = READ_TIMEOUT) -> tuple[Frame, list[Frame]]:
        """The server's close frame, and the frames that came before it."""
        before: list[Frame] = []
        try:
            async with asyncio.timeout(timeout):
                while (f := await self.recv(timeout)).opcode != CLOSE:
                    before.append(f)
        except TimeoutError:
            raise AssertionError(f"no close frame within {timeout}s; got {before[-3:]}") from None
        except asyncio.IncompleteReadError as exc:
            raise AssertionError(f"EOF without a close frame; got {before[-3:]}") from exc
        except ConnectionResetError as exc:
            raise AssertionError(f"reset without a close frame; got {before[-3:]}") from exc
        return f, before

    async def ending(self, timeout: float = READ_TIMEOUT) -> str:
        """How the TCP connection ends from here: ``eof``, ``reset``, ``open`` (nothing within
        ``timeout``) or ``data: ...`` (bytes after the close frame, which §5.5.1 forbids)."""
        try:
            async with asyncio.timeout(timeout):
                rest = await self.reader.read()
        except TimeoutError:
            return "open"
        except ConnectionResetError:
            return "reset"
        finally:
            self.writer.transport.abort()
        return "eof" if rest == b"" else f"data: {rest[:60]!r}"

    async def closed_by_server(
        self, code: int, timeout: float = READ_TIMEOUT
    ) -> tuple[Frame, list[Frame]]:
        """The server started the close with ``code``: answer it as §5.5.1 requires, then the
        server must close the TCP connection (§7.1.1), cleanly (its lingering close)."""
        try:
            close, before = await self.recv_close(timeout)
            assert close.code == code, (close, before[-3:])
            self.send_close(close.code)
        except BaseException:
            self.writer.transport.abort()  # a failed test leaves no connection to the server
            raise
        ending = await self.ending(timeout)
        assert ending == "eof", f"after the closing handshake: {ending}"
        return close, before

    async def answered_with(
        self, *codes: int | None, timeout: float = READ_TIMEOUT
    ) -> tuple[Frame, list[Frame]]:
        """The client sent a close (and sends nothing more): the server answers it with one of
        ``codes``, sends nothing after it, and closes the TCP connection (§5.5.1, §7.1.1)."""
        try:
            close, before = await self.recv_close(timeout)
            assert close.code in codes, (close, before[-3:])
        except BaseException:
            self.writer.transport.abort()
            raise
        ending = await self.ending(timeout)
        assert ending == "eof", f"after the closing handshake: {ending}"
        return close, before


def upgrade_request(
    port: int, path: str, key: bytes, headers: list[tuple[str, str]] | None = None
) -> bytes:
    fields = [
        ("Host", f"127.0.0.1:{port}"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key.decode()),
        ("Sec-WebSocket-Version", "13"),
    ]
    names = {name.lower() for name, _ in headers or []}
    fields = [f for f in fields if f[0].lower() not in names] + list(headers or [])
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in fields)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_head(head: bytes) -> tuple[int, dict[str, list[str]]]:
    """Status code and header fields (lower-cased names, every value) of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields: dict[str, list[str]] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            fields.setdefault(name.strip().lower(), []).append(value.strip())
    return status, fields


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return None if not values else ", ".join(values)


async def http_exchange(port: int, request: bytes, timeout: float = READ_TIMEOUT) -> HttpAnswer:
    """Sends ``request`` as is; the answer, read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        data = b""
        try:
            async with asyncio.timeout(timeout):
                while chunk := await reader.read(65536):
                    data += chunk
        except TimeoutError:
            if b"\r\n\r\n" not in data:
                raise AssertionError(f"no answer within {timeout}s; got {data[:200]!r}") from None
        except ConnectionResetError as exc:
            if b"\r\n\r\n" not in data:
                raise AssertionError(f"reset with no answer; got {data[:200]!r}") from exc
    finally:
        writer.transport.abort()
    if b"\r\n\r\n" not in data:
        raise AssertionError(f"connection closed with no answer; got {data[:200]!r}")
    head, _, body = data.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    return HttpAnswer(status, headers, body)


def http_request(method: str, path: str, port: int, *headers: tuple[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
