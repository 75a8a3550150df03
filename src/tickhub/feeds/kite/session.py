"""Keeping one Kite ticker connection alive: connect, read, write, watch, back off, reconnect.

The lifecycle of a socket changes for its own reasons (Kite's handshake, its heartbeats, how an
outage is detected and retried), apart from what the feed subscribes to and what the frames
hold; this module is that lifecycle, for one ``Connection`` at a time.

Supervision
    Each connection tracks the last frame of any kind (heartbeats included: the socket is alive)
    and the last tick (data flows) separately. No frame for ``stale_after`` seconds: the socket
    is taken for dead, aborted and reconnected. Frames but no ticks for ``stale_after`` while
    the market is open (``market_hours(now)``, by default NSE 09:15-15:30 IST on weekdays):
    status ``STALE``, and a reconnect after ``3 * stale_after`` (``KITE_STUCK_FACTOR``). With the
    market closed and no tick for ``stale_after`` the status is ``MARKET_CLOSED``, never an alarm.
    Reconnects wait a full-jitter exponential backoff,
    ``uniform(0, min(backoff_max, backoff_initial * 2**n))`` drawn from ``rng``; ``n`` returns
    to 0 only once ticks flow again (a connection holding no tokens: once any frame arrives).

Every session runs three named tasks (``kite-conn-N-read``, ``-write``, ``-watch``); the first to
end ends the session. The websockets keepalive pings are off: Kite's heartbeats and the watchdog
do that job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tickhub import __version__
from tickhub.core import defaults
from tickhub.core.clock import Clock
from tickhub.feeds.kite.connection import Connection
from tickhub.feeds.kite.frames import FrameHandler
from tickhub.feeds.kite.redact import websocket_logger
from tickhub.feeds.kite.subscriptions import apply_message, plan_subscriptions
from tickhub.feeds.kite.tokens import AccessTokens

__all__ = ["KITE_VERSION", "SessionRunner"]

# The feed logs under one name whichever of its modules writes the line (see ``frames``).
log = logging.getLogger("tickhub.feeds.kite.client")

KITE_VERSION: Final = "3"
_AUTH_STATUSES: Final = frozenset({401, 403})
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_CLOSE_TIMEOUT: Final = 2.0
"""Seconds a closing socket waits for the server's close frame."""
_MAX_FRAME: Final = 2**24
"""The largest frame accepted: a full-mode frame of 3,000 instruments is under 600 kB."""
_MAX_WATCH_PERIOD: Final = 1.0
"""The watchdog looks at least this often (and four times per ``stale_after``)."""
_MAX_BACKOFF_EXPONENT: Final = 32
"""``2**n`` is capped here: past it the ceiling is ``backoff_max`` anyway, and floats overflow."""

_WS_LOG = websocket_logger(log.name)


class _SessionEnd(Exception):
    """The watchdog's verdict: this socket must go (``dead``: abort it, don't close it)."""

    def __init__(self, reason: str, *, dead: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.dead = dead


class SessionRunner:
    """Connects the feed's connections to ``url`` and keeps them connected.

    ``run(conn)`` loops until cancelled: it waits for a usable access token (``conn.waiting_auth``
    meanwhile), connects, runs one session and, when the session ends for any reason other than a
    rejected token, counts a reconnect (``reconnects``), records why in ``conn.lost_reason`` and
    waits the backoff for ``conn.attempt`` before trying again. An outage never raises; a
    rejected token (HTTP 401/403) is recorded in ``tokens.rejected`` and waited out without
    backoff. A session sends ``conn``'s subscriptions (the diff of ``desired`` against
    ``upstream``, again whenever ``dirty`` is set), hands every frame to ``frames`` and ends when
    the socket closes or the watchdog finds it dead or stuck. ``on_change`` is called whenever
    the connection's state may have changed the feed's status; ``conn.connected`` and
    ``conn.waiting_auth`` are false again once ``run`` returns.
    """

    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        tokens: AccessTokens,
        frames: FrameHandler,
        clock: Clock,
        stale_after: float,
        backoff_initial: float,
        backoff_max: float,
        connect_timeout: float,
        market_hours: Callable[[datetime], bool],
        rng: random.Random,
        on_change: Callable[[], None],
    ) -> None:
        self.reconnects = 0
        self._url = url
        self._api_key = api_key
        self._proxy: Any = None if urlsplit(url).hostname in _LOOPBACK else True
        self._tokens = tokens
        self._frames = frames
        self._clock = clock
        self._stale_after = stale_after
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._connect_timeout = connect_timeout
        self._market_hours = market_hours
        self._rng = rng
        self._on_change = on_change

    async def run(self, conn: Connection) -> None:
        """Keep ``conn`` connected until cancelled."""
        try:
            while True:
                token = self._tokens.usable()
                if token is None:
                    await self._wait_for_token(conn)
                    continue
                reason = await self._connect_once(conn, token)
                if reason is None:  # auth rejected: wait for a new token, no backoff
                    continue
                if not conn.lost_reason:  # keep the status detail on the cause of the loss
                    conn.lost_reason = reason
                delay = self._backoff(conn.attempt)
                conn.attempt += 1
                self.reconnects += 1
                log.info(
                    "kite connection %d: %s; reconnecting in %.2fs (attempt %d)",
                    conn.index,
                    reason,
                    delay,
                    conn.attempt,
                )
                self._on_change()
                await self._clock.sleep(delay)
        finally:
            conn.connected = conn.waiting_auth = False

    def _backoff(self, attempt: int) -> float:
        exponent = min(attempt, _MAX_BACKOFF_EXPONENT)
        ceiling = min(self._backoff_max, self._backoff_initial * 2.0**exponent)
        return self._rng.uniform(0.0, ceiling)

    async def _wait_for_token(self, conn: Connection) -> None:
        conn.waiting_auth = True
        self._on_change()
        try:
            await self._tokens.wait_for_new()
            log.info("kite connection %d: new access token, connecting", conn.index)
            conn.attempt = 0
        finally:
            conn.waiting_auth = False

    async def _connect_once(self, conn: Connection, token: str) -> str | None:
        """One attempt and, if it connects, one session; returns why it ended (``None``: the
        token was rejected)."""
        try:
            ws = await connect(
                f"{self._url}?{urlencode({'api_key': self._api_key, 'access_token': token})}",
                additional_headers={"X-Kite-Version": KITE_VERSION},
                user_agent_header=f"tickhub/{__version__}",
                proxy=self._proxy,
                compression=None,
                open_timeout=self._connect_timeout,
                ping_interval=None,
                close_timeout=_CLOSE_TIMEOUT,
                max_size=_MAX_FRAME,
                logger=_WS_LOG,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in _AUTH_STATUSES:  # logged once, as the AUTH_FAILED state change
                self._tokens.rejected = token
                return None
            return f"handshake refused: HTTP {status}"
        except (OSError, TimeoutError) as exc:
            return f"connect failed: {_describe(exc)}"
        except Exception as exc:  # malformed responses, EOF during the handshake, ...
            return f"connect failed: {_describe(exc)}"
        self._tokens.rejected = None
        return await self._session(conn, ws)

    async def _session(self, conn: Connection, ws: ClientConnection) -> str:
        now = self._clock.monotonic()
        conn.connected = conn.ever_connected = True
        conn.lost_reason = ""
        conn.upstream = {}
        conn.session_start = conn.last_frame = now
        if not conn.data_stalled:
            conn.data_ref = now
        conn.dirty.set()
        log.info(
            "kite connection %d: connected to %s (%d instruments)",
            conn.index,
            self._url,
            len(conn.desired),
        )
        self._on_change()
        name = f"kite-conn-{conn.index}"
        tasks: list[asyncio.Task[str]] = [
            asyncio.create_task(self._read(conn, ws), name=f"{name}-read"),
            asyncio.create_task(self._write(conn, ws), name=f"{name}-write"),
            asyncio.create_task(self._watch(conn), name=f"{name}-watch"),
        ]
        dead = False
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            task = next(iter(done))
            exc = task.exception()
            if isinstance(exc, _SessionEnd):
                reason, dead = exc.reason, exc.dead
            elif exc is not None:
                log.error("kite: %s failed", task.get_name(), exc_info=exc)
                reason, dead = f"internal error: {exc!r}", True
            else:
                reason = task.result()
            return reason
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            conn.connected = False
            conn.upstream = {}
            if dead:
                ws.transport.abort()
            else:
                await ws.close()

    async def _read(self, conn: Connection, ws: ClientConnection) -> str:
        monotonic = self._clock.monotonic
        on_binary = self._frames.on_binary
        on_text = self._frames.on_text
        try:
            async for message in ws:
                conn.last_frame = monotonic()
                if isinstance(message, bytes):
                    on_binary(conn, message)
                else:
                    on_text(conn, message)
        except ConnectionClosed as exc:
            return f"connection lost ({_close_text(exc)})"
        return f"connection closed by the server (code {ws.close_code})"

    async def _write(self, conn: Connection, ws: ClientConnection) -> str:
        try:
            while True:
                conn.dirty.clear()
                for message in plan_subscriptions(conn.desired, conn.upstream):
                    await ws.send(json.dumps(message, separators=(",", ":")))
                    apply_message(message, conn.upstream)
                await conn.dirty.wait()
        except ConnectionClosed as exc:
            return f"connection lost while sending ({_close_text(exc)})"

    async def _watch(self, conn: Connection) -> str:
        stale = self._stale_after
        stuck = defaults.KITE_STUCK_FACTOR * stale
        while True:
            await self._clock.sleep(min(stale / 4, _MAX_WATCH_PERIOD))
            now = self._clock.monotonic()
            if now - conn.last_frame > stale:
                # After a stall of the event loop, frames already received may wait behind this
                # task: let the reader run once before calling the socket dead.
                await asyncio.sleep(0)
                now = self._clock.monotonic()
            if now - conn.last_frame > stale:
                raise _SessionEnd(f"no frame for {stale:g}s, the socket is dead", dead=True)
            quiet = now - max(conn.data_ref, conn.session_start)
            if conn.desired and quiet > stuck and self._market_hours(self._clock.now()):
                conn.data_stalled = True
                raise _SessionEnd(
                    f"no tick for {stuck:g}s during market hours, the stream is stuck",
                    dead=True,
                )
            self._on_change()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _close_text(exc: ConnectionClosed) -> str:
    frame = exc.rcvd
    if frame is None:
        return "no close frame"
    return f"code {frame.code}" + (f", {frame.reason}" if frame.reason else "")
