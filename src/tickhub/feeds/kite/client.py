"""The Kite Connect ticker feed: ``KiteFeed``, the ``Feed`` its parts make together.

``KiteFeed`` keeps up to ``max_connections`` WebSocket connections to ``url`` (Kite allows 3 per
api_key, 3000 instruments each) and turns their frames into ``Tick`` objects. This module is the
feed's face and its status; each part it is made of has its own module and reason to change:
``subscriptions`` (which tokens on which connection, in which mode), ``session`` (connecting,
supervising and reconnecting one connection), ``frames`` (the frames' content, the hot path),
``tokens`` (where the access token comes from) and ``connection`` (the record they share). Their
docstrings describe that behaviour.

Status
    ``on_status`` is called once per change of state or detail; each state change is logged
    once. ``FeedStatus.reconnects`` counts reconnection attempts; ``extra`` holds ``connected``
    (open connections), ``subscribed_tokens``, ``last_tick_age`` (seconds, ``None`` before the
    first tick), ``parse_errors``, ``errors`` (by kind) and ``rejected`` (instrument keys).
    States, most severe first: ``STOPPED``, ``AUTH_FAILED``, ``STARTING`` (first connection
    attempts), ``RECONNECTING``, ``STALE``, ``MARKET_CLOSED``, ``LIVE``. A connection that has
    just opened keeps ``STARTING``/``RECONNECTING`` until its first tick (at most
    ``stale_after``), so a reconnect outside market hours never reports ``MARKET_CLOSED`` on
    its way to ``LIVE``.

All waiting goes through the injected ``Clock``; every task is named (``kite-conn-N``,
``kite-conn-N-read``, ...) and cancelled when ``run`` is cancelled, which ends in ``STOPPED``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from websockets.uri import parse_uri

from tickhub.core import defaults
from tickhub.core.clock import Clock
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import (
    IST,
    SESSION_CLOSE,
    SESSION_OPEN,
    FeedState,
    FeedStatus,
    Instrument,
)
from tickhub.feeds.base import StatusSink, TickSink
from tickhub.feeds.kite.connection import Connection
from tickhub.feeds.kite.frames import FrameHandler
from tickhub.feeds.kite.parse import MODES, KiteMode
from tickhub.feeds.kite.session import SessionRunner
from tickhub.feeds.kite.subscriptions import SubscriptionBook
from tickhub.feeds.kite.tokens import AccessTokens
from tickhub.runtime.clock import SystemClock

__all__ = ["KiteFeed", "nse_market_hours"]

log = logging.getLogger(__name__)

_STATE_LOG_LEVEL: Final = {
    FeedState.STARTING: logging.INFO,
    FeedState.LIVE: logging.INFO,
    FeedState.MARKET_CLOSED: logging.INFO,
    FeedState.STOPPED: logging.INFO,
    FeedState.STALE: logging.WARNING,
    FeedState.RECONNECTING: logging.WARNING,
    FeedState.AUTH_FAILED: logging.ERROR,
}
_ON_THE_WAY: Final = frozenset({FeedState.STARTING, FeedState.RECONNECTING})
"""States a fresh connection keeps until its first tick (outside market hours: see ``_assess``)."""
_REFUSED_SHOWN: Final = 10
"""Instrument keys the refusal's log line names; the rest are ``...``."""


def _renew_token_hint(token_file: Path | None) -> str:
    """What the user does about a rejected token, in the service's terms (its settings), since
    the feed's own API is not what an operator of ``tickhub serve`` can reach."""
    expired = "access token rejected by the server (HTTP 403): Kite tokens expire every morning;"
    if token_file is not None:
        return (
            f"{expired} renew it (Kite Connect login) and write the new token to {token_file}"
            " (KITE_TOKEN_FILE), which is read again without a restart"
        )
    return (
        f"{expired} renew it (Kite Connect login) and set KITE_ACCESS_TOKEN to it, then restart,"
        " or set KITE_TOKEN_FILE to a file holding it to renew without a restart"
    )


def nse_market_hours(now: datetime) -> bool:
    """True during NSE's continuous session, 09:15-15:30 IST on weekdays (holidays ignored)."""
    t = now.astimezone(IST)
    return t.weekday() < 5 and SESSION_OPEN <= t.time() < SESSION_CLOSE


class KiteFeed:
    """``Feed`` over Kite Connect's ticker WebSocket; see the module docstrings for behaviour.

    Beyond ``Feed``: ``subscribe`` takes a Kite ``mode``, ``set_access_token`` replaces the
    token at once, ``rejected`` and ``subscribed`` show the subscription book. The settings are
    checked here, before any connection: a bad one raises ``ValueError``. The API key and the
    token are secrets, never in a log line or the repr.
    """

    name = "kite"

    def __init__(
        self,
        registry: InstrumentRegistry,
        *,
        api_key: str,
        access_token: str | None = None,
        token_file: Path | None = None,
        url: str = defaults.KITE_URL,
        clock: Clock | None = None,
        max_connections: int = defaults.KITE_MAX_CONNECTIONS,
        max_per_connection: int = defaults.KITE_MAX_PER_CONNECTION,
        default_mode: KiteMode = defaults.KITE_MODE,
        stale_after: float = defaults.KITE_STALE_AFTER,
        backoff_initial: float = defaults.KITE_BACKOFF_INITIAL,
        backoff_max: float = defaults.KITE_BACKOFF_MAX,
        connect_timeout: float = defaults.KITE_CONNECT_TIMEOUT,
        market_hours: Callable[[datetime], bool] | None = None,
        rng: random.Random | None = None,
        token_poll_interval: float = defaults.KITE_TOKEN_POLL_INTERVAL,
        error_log_interval: float = defaults.KITE_ERROR_LOG_INTERVAL,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        if access_token is None and token_file is None:
            raise ValueError("give an access_token or a token_file")
        if max_connections < 1 or max_per_connection < 1:
            raise ValueError(
                f"limits must be positive: max_connections={max_connections!r}, "
                f"max_per_connection={max_per_connection!r}"
            )
        if default_mode not in MODES:
            raise ValueError(f"unknown mode: {default_mode!r} (allowed: {', '.join(MODES)})")
        for label, value in (
            ("stale_after", stale_after),
            ("backoff_initial", backoff_initial),
            ("backoff_max", backoff_max),
            ("connect_timeout", connect_timeout),
            ("token_poll_interval", token_poll_interval),
        ):
            if not value > 0:
                raise ValueError(f"{label} must be positive: {value!r}")
        parse_uri(url)  # raises InvalidURI now rather than at the first connect
        if urlsplit(url).query:
            raise ValueError("url must not carry a query string; credentials are added to it")
        self._url = url
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._default_mode: KiteMode = default_mode
        self._stale_after = stale_after
        self._market_hours = market_hours if market_hours is not None else nse_market_hours

        self._connections = [Connection(i) for i in range(max_connections)]
        self._book = SubscriptionBook(self._connections, max_per_connection)
        self._tokens = AccessTokens(
            access_token, token_file, clock=self._clock, poll_interval=token_poll_interval
        )
        self._frames = FrameHandler(
            registry,
            self._book.refs,
            clock=self._clock,
            error_log_interval=error_log_interval,
            on_ticks=self._ticks_flowing,
        )
        self._sessions = SessionRunner(
            url=url,
            api_key=api_key,
            tokens=self._tokens,
            frames=self._frames,
            clock=self._clock,
            stale_after=stale_after,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            connect_timeout=connect_timeout,
            market_hours=self._market_hours,
            rng=rng if rng is not None else random.Random(),
            on_change=self._evaluate,
        )
        self._connections_changed = asyncio.Event()
        self._retiring: set[asyncio.Task[None]] = set()

        self._on_status: StatusSink | None = None
        self._running = False
        self._stopped = False
        self._state = FeedState.STARTING
        self._detail = "not started"

    def __repr__(self) -> str:
        # The settings hold the API key and the token as secrets: neither may reach a log.
        return f"<KiteFeed {self._url} state={self._state.value}>"

    # -- Feed interface -------------------------------------------------------------------------

    async def run(self, on_tick: TickSink, on_status: StatusSink) -> None:
        if self._running:
            raise RuntimeError("KiteFeed.run() is already running")
        self._frames.on_tick, self._on_status = on_tick, on_status
        self._running, self._stopped = True, False
        self._evaluate()
        try:
            while True:
                changed = self._connections_changed
                self._reconcile_connections()
                await changed.wait()
        finally:
            tasks = {c.task for c in self._connections if c.task is not None} | self._retiring
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
            for conn in self._connections:
                conn.task = None
                conn.connected = conn.waiting_auth = False
            self._running, self._stopped = False, True
            self._evaluate()

    def subscribe(self, instruments: Iterable[Instrument], *, mode: KiteMode | None = None) -> None:
        """Add a reference to each instrument (in ``mode``, default ``default_mode``)."""
        wanted: KiteMode = self._default_mode if mode is None else mode
        if wanted not in MODES:
            raise ValueError(f"unknown mode: {wanted!r} (allowed: {', '.join(MODES)})")
        idle = [c for c in self._connections if not c.desired]
        refused = self._book.add(instruments, wanted)
        if any(c.desired for c in idle):  # data becomes expected from its first token on
            now = self._clock.monotonic()
            for conn in idle:
                if conn.desired:
                    conn.data_ref = now
        if refused:
            shown = refused[:_REFUSED_SHOWN]
            log.error(
                "kite: %d instrument(s) refused, the limit of %d connection(s) x %d instruments "
                "(%d) is reached: %s",
                len(refused),
                len(self._connections),
                self._book.max_per_connection,
                self._book.limit,
                ", ".join(i.key for i in shown) + (" ..." if len(refused) > len(shown) else ""),
            )
        self._connections_updated()

    def unsubscribe(self, instruments: Iterable[Instrument]) -> None:
        """Drop a reference to each instrument; the last one unsubscribes upstream."""
        self._book.remove(instruments)
        self._connections_updated()

    def status(self) -> FeedStatus:
        now = self._clock.now()
        last_tick_at = self._frames.last_tick_at
        age = None
        if last_tick_at is not None:
            age = round(max(0.0, (now - last_tick_at).total_seconds()), 3)
        errors = self._frames.errors
        return FeedStatus(
            self._state,
            self._detail,
            last_tick_at=last_tick_at,
            reconnects=self._sessions.reconnects,
            extra={
                "connected": sum(1 for c in self._connections if c.connected),
                "subscribed_tokens": len(self._book.refs),
                "last_tick_age": age,
                "parse_errors": sum(errors.values()),
                "errors": dict(errors),
                "rejected": sorted(self._book.rejected),
            },
        )

    # -- more API -------------------------------------------------------------------------------

    def set_access_token(self, token: str) -> None:
        """Use ``token`` from the next connection attempt on (wakes a feed in ``AUTH_FAILED``)."""
        self._tokens.set(token)

    @property
    def rejected(self) -> frozenset[str]:
        """Keys of the instruments refused for lack of room (``max_connections`` x
        ``max_per_connection``)."""
        return frozenset(self._book.rejected)

    @property
    def subscribed(self) -> dict[int, KiteMode]:
        """Token -> mode of every subscribed token (what the feed wants, not what was sent)."""
        return self._book.desired()

    # -- connections ----------------------------------------------------------------------------

    def _connections_updated(self) -> None:
        changed, self._connections_changed = self._connections_changed, asyncio.Event()
        changed.set()
        if self._running:
            self._evaluate()

    def _reconcile_connections(self) -> None:
        """Start the connections that should be open and retire the others: connection 0 is
        always open, the rest only while they hold tokens."""
        for conn in self._connections:
            wanted = conn.index == 0 or bool(conn.desired)
            if wanted and conn.task is None:
                conn.attempt = 0
                conn.ever_connected = conn.data_stalled = False
                conn.lost_reason = ""
                conn.task = asyncio.create_task(
                    self._sessions.run(conn), name=f"kite-conn-{conn.index}"
                )
                conn.task.add_done_callback(self._connection_done)
            elif not wanted and conn.task is not None:
                task, conn.task = conn.task, None
                self._retiring.add(task)
                task.cancel()
        self._evaluate()

    def _connection_done(self, task: asyncio.Task[None]) -> None:
        self._retiring.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # a bug: log it and let run() start the connection again
            log.error("kite: %s failed", task.get_name(), exc_info=exc)
        for conn in self._connections:
            if conn.task is task:
                conn.task = None
                conn.connected = conn.waiting_auth = False
        self._connections_updated()

    # -- status ---------------------------------------------------------------------------------

    def _ticks_flowing(self) -> None:
        if self._state is not FeedState.LIVE:
            self._evaluate()

    def _assess(self) -> tuple[FeedState, str]:
        if self._stopped:
            return FeedState.STOPPED, "stopped"
        if not self._running:
            return FeedState.STARTING, "not started"
        active = [c for c in self._connections if c.task is not None]
        if any(c.waiting_auth for c in active):
            token_file = self._tokens.token_file
            where = f" in {token_file}" if token_file is not None else ""
            if self._tokens.current() is None:
                return FeedState.AUTH_FAILED, f"no access token; waiting for one{where}"
            return FeedState.AUTH_FAILED, _renew_token_hint(token_file)
        if not active:
            return FeedState.STARTING, f"connecting to {self._url}"
        down = [c for c in active if not c.connected]
        lost = [c for c in down if c.ever_connected or c.attempt]
        if lost:
            reasons = "; ".join(f"connection {c.index}: {c.lost_reason}" for c in lost)
            return FeedState.RECONNECTING, reasons
        if len(down) == len(active):
            return FeedState.STARTING, f"connecting to {self._url}"
        now = self._clock.monotonic()
        stale = self._stale_after
        last_tick = self._frames.last_tick_mono
        if self._market_hours(self._clock.now()):
            quiet = [c for c in active if c.connected and c.desired and now - c.data_ref > stale]
            if quiet:
                which = ", ".join(str(c.index) for c in quiet)
                return (
                    FeedState.STALE,
                    f"no tick for {stale:g}s in market hours (connection {which})",
                )
        elif last_tick is None or now - last_tick > stale:
            # A socket just (re)opened has had no time to deliver a tick: the quiet before it
            # says nothing about the market, so the way there (connecting) goes on until the
            # first tick or ``stale_after``, whichever comes first.
            settling = [
                c for c in active if c.connected and c.desired and now - c.session_start <= stale
            ]
            if settling and self._state in _ON_THE_WAY:
                return self._state, f"connected to {self._url}, waiting for the first tick"
            return FeedState.MARKET_CLOSED, "market closed, no ticks"
        return FeedState.LIVE, f"connected to {self._url}"

    def _evaluate(self) -> None:
        state, detail = self._assess()
        if self._book.rejected:
            refused = len(self._book.rejected)
            detail += f"; {refused} instrument(s) refused over the limit of {self._book.limit}"
        if state is self._state and detail == self._detail:
            return
        if state is not self._state:
            log.log(_STATE_LOG_LEVEL[state], "kite feed %s: %s", state.value, detail)
        self._state, self._detail = state, detail
        if self._on_status is not None:
            try:
                self._on_status(self.status())
            except Exception:
                log.exception("kite: on_status failed")
