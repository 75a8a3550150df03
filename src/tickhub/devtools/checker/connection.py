"""The checker's client side of one WebSocket connection: connect, send, read, wait for a reply.

Every frame is kept in arrival order (``received``) so the verdicts can judge the whole
conversation afterwards; a wait looks for a matching message from a given index on and is always
bounded. A connection that cannot be opened, or closes under a send, is recorded as a failure and
ends that endpoint's check (``Abort``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from tickhub.devtools.checker.report import Results
from tickhub.devtools.checker.values import Match, Message, Received, clip, decode

__all__ = ["Abort", "Connection"]


class Abort(Exception):
    """Stop checking one endpoint: its connection is gone (the failure is already recorded)."""


class Connection:
    """One connection to ``url``; its failures (and the ``connect`` pass) go to ``results``."""

    def __init__(self, url: str, timeout: float, results: Results) -> None:
        self.url = url
        self.timeout = timeout
        self.results = results
        self.received: list[Received] = []
        self.closed: str | None = None
        """Why the connection ended (its close code and reason), None while it is open."""
        self._arrived = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Connect and start reading; raises ``Abort`` (with a failure recorded) if it cannot."""
        t = self.timeout
        try:
            ws = await connect(
                self.url,
                open_timeout=t,
                close_timeout=t,
                ping_interval=None,
                proxy=None,
                compression=None,
                max_size=None,
            )
        except InvalidStatus as exc:
            body = exc.response.body.decode("utf-8", "replace") if exc.response.body else ""
            got = f"HTTP {exc.response.status_code} {clip(body)}".rstrip()
            self.results.failed("connect", f"a WebSocket upgrade at {self.url}", got)
            raise Abort from None
        except TimeoutError:
            self.results.failed("connect", f"a WebSocket handshake within {t:g}s", "no answer")
            raise Abort from None
        except (OSError, WebSocketException) as exc:
            got = str(exc) or repr(exc)
            self.results.failed("connect", f"a WebSocket connection to {self.url}", got)
            raise Abort from None
        self.results.passed("connect")
        self._ws = ws
        self._reader = asyncio.create_task(self._read(ws), name=f"check reader {self.url}")

    async def close(self) -> None:
        """Close the connection and stop reading; what was received stays."""
        assert self._ws is not None and self._reader is not None
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self.received.append(Received(time.monotonic(), decode(raw), raw))
                self._arrived.set()
        except ConnectionClosed:
            pass
        finally:
            code = ws.close_code
            reason = f" {ws.close_reason!r}" if ws.close_reason else ""
            self.closed = f"connection closed (code {code}{reason})"
            self._arrived.set()

    async def send(self, payload: Message | str) -> int:
        """Send one message; returns the index from which its reply is to be looked for."""
        mark = len(self.received)
        text = payload if isinstance(payload, str) else json.dumps(payload)
        assert self._ws is not None
        try:
            await self._ws.send(text)
        except ConnectionClosed:
            self.results.failed(
                "connection", "the connection to stay open", self.closed or "it closed"
            )
            raise Abort from None
        return mark

    async def wait(self, start: int, match: Match, within: float) -> tuple[int, Message] | None:
        """The first message from index ``start`` on that ``match``es, waiting ``within`` s.

        None when none came in time or the connection closed first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        i = start
        while True:
            while i < len(self.received):
                msg = self.received[i].msg
                if msg is not None and match(msg):
                    return i, msg
                i += 1
            remaining = deadline - loop.time()
            if self.closed is not None or remaining <= 0:
                return None
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    def nothing(self, what: str = "reply") -> str:
        """Why no ``what`` came, for the report: the connection's close, or the timeout."""
        if self.closed is not None:
            return f"no {what}: {self.closed}"
        return f"no {what} within {self.timeout:g}s"
