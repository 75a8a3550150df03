"""The Kite Connect ticker feed: the asyncio shell around ``parse``.

``KiteFeed`` keeps up to ``max_connections`` WebSocket connections to ``url`` (Kite allows 3 per
api_key, 3000 instruments each) and turns their frames into ``Tick`` objects.

Subscriptions
    ``subscribe``/``unsubscribe`` are reference-counted per instrument token: the upstream
    subscription is made by the first subscribe and dropped when the count returns to 0. A token
    lives on one connection, the lowest-numbered one with room (connection 0 is always open, the
    others only while they hold tokens). Past ``max_connections * max_per_connection`` tokens the
    extra instruments are refused: logged as an error, listed in ``rejected`` and in the status
    detail, and not subscribed; a later ``unsubscribe`` clears them from ``rejected``.
    Changes are not sent one by one: each connection diffs what it wants against what it told
    the server, so the calls made in one event-loop turn go out as one ``unsubscribe``, one
    ``subscribe`` and one ``mode`` message per mode. After every (re)connect the same diff
    against an empty server side resubscribes every token in its mode (``subscribe``, then
    ``mode`` grouped by mode, as pykiteconnect's ``resubscribe`` does). A token's mode is the
    richest any subscriber asked for (``ltp`` < ``quote`` < ``full``).

Supervision
    Each connection tracks the last frame of any kind (heartbeats included: the socket is alive)
    and the last tick (data flows) separately. No frame for ``stale_after`` seconds: the socket
    is taken for dead, aborted and reconnected. Frames but no ticks for ``stale_after`` while
    the market is open (``market_hours(now)``, by default NSE 09:15-15:30 IST on weekdays):
    status ``STALE``, and a reconnect after ``3 * stale_after``. With the market closed and no
    tick for ``stale_after`` the status is ``MARKET_CLOSED``, never an alarm. Reconnects wait a
    full-jitter exponential backoff, ``uniform(0, min(backoff_max, backoff_initial * 2**n))``
    drawn from ``rng``; ``n`` returns to 0 only once ticks flow again (a connection holding no
    tokens: once any frame arrives).

Authentication
    The access token is the ``access_token`` argument or the content of ``token_file``; the file
    is re-read before every connection attempt and wins whenever its content changes, and
    ``set_access_token`` replaces the token at once. An HTTP 401/403 answer to the handshake
    stops all retries: status ``AUTH_FAILED`` (the detail says the token was rejected; the token
    itself is never logged, nor shown in a repr) and every ``token_poll_interval`` seconds the
    file is read again; connecting resumes as soon as the token differs from the rejected one.

Errors in the stream
    A truncated frame (``KiteParseError``), a packet of unknown length, a tick for a token the
    registry does not know and a text frame that is not a JSON object are counted by kind
    (``status().extra["parse_errors"]`` and ``["errors"]``) and logged with their context (the
    connection, frame length, offset), each kind at most once per ``error_log_interval`` seconds;
    the feed carries on. Ticks for tokens no longer subscribed (in flight after an unsubscribe)
    are dropped.

Status
    ``on_status`` is called once per change of state or detail; each state change is logged
    once. ``FeedStatus.reconnects`` counts reconnection attempts; ``extra`` holds ``connected``
    (open connections), ``subscribed_tokens``, ``last_tick_age`` (seconds, ``None`` before the
    first tick), ``parse_errors``, ``errors`` (by kind) and ``rejected`` (instrument keys).
    States, most severe first: ``STOPPED``, ``AUTH_FAILED``, ``STARTING`` (first connection
    attempts), ``RECONNECTING``, ``STALE``, ``MARKET_CLOSED``, ``LIVE``.

All waiting goes through the injected ``Clock``; every task is named (``kite-conn-N``,
``kite-conn-N-read``, ...) and cancelled when ``run`` is cancelled, which ends in ``STOPPED``.
The websockets keepalive pings are off: Kite's heartbeats and the watchdog do that job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.uri import parse_uri

from tickhub import __version__
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
    Tick,
)
from tickhub.feeds.base import StatusSink, TickSink
from tickhub.feeds.kite.parse import (
    MODES,
    KiteMode,
    KiteParseError,
    parse_packet,
    parse_text,
    split_packets,
    to_tick,
)
from tickhub.feeds.kite.redact import websocket_logger
from tickhub.runtime.clock import SystemClock

__all__ = ["KiteFeed", "nse_market_hours", "plan_subscriptions"]

log = logging.getLogger(__name__)

KITE_VERSION: Final = "3"
_AUTH_STATUSES: Final = frozenset({401, 403})
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_STATE_LOG_LEVEL: Final = {
    FeedState.STARTING: logging.INFO,
    FeedState.LIVE: logging.INFO,
    FeedState.MARKET_CLOSED: logging.INFO,
    FeedState.STOPPED: logging.INFO,
    FeedState.STALE: logging.WARNING,
    FeedState.RECONNECTING: logging.WARNING,
    FeedState.AUTH_FAILED: logging.ERROR,
}


_WS_LOG = websocket_logger(__name__)


def nse_market_hours(now: datetime) -> bool:
    """True during NSE's continuous session, 09:15-15:30 IST on weekdays (holidays ignored)."""
    t = now.astimezone(IST)
    return t.weekday() < 5 and SESSION_OPEN <= t.time() < SESSION_CLOSE


def plan_subscriptions(
    desired: Mapping[int, KiteMode], upstream: Mapping[int, KiteMode]
) -> list[dict[str, Any]]:
    """The messages that take a connection from ``upstream`` (what the server was told) to
    ``desired``: one ``unsubscribe``, one ``subscribe``, then one ``mode`` per mode (sorted),
    each omitted when empty; tokens in ascending order. New tokens always get a ``mode``
    message, since Kite's default after ``subscribe`` is undocumented."""
    removed = sorted(t for t in upstream if t not in desired)
    added = sorted(t for t in desired if t not in upstream)
    by_mode: dict[KiteMode, list[int]] = {}
    for token in sorted(desired):
        mode = desired[token]
        if token not in upstream or upstream[token] != mode:
            by_mode.setdefault(mode, []).append(token)
    messages: list[dict[str, Any]] = []
    if removed:
        messages.append({"a": "unsubscribe", "v": removed})
    if added:
        messages.append({"a": "subscribe", "v": added})
    for mode in sorted(by_mode):
        messages.append({"a": "mode", "v": [mode, by_mode[mode]]})
    return messages


def _apply(message: Mapping[str, Any], upstream: dict[int, KiteMode]) -> None:
    action, value = message["a"], message["v"]
    if action == "unsubscribe":
        for token in value:
            upstream.pop(token, None)
    elif action == "subscribe":
        for token in value:
            upstream.setdefault(token, "quote")
    else:
        mode, tokens = value
        for token in tokens:
            upstream[token] = mode


class _Shard:
    """One connection slot: the tokens it should carry and the state of its socket."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.desired: dict[int, KiteMode] = {}
        self.upstream: dict[int, KiteMode] = {}
        self.dirty = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.connected = False
        self.ever_connected = False
        self.waiting_auth = False
        self.session_start = 0.0
        self.last_frame = 0.0
        self.data_ref = 0.0  # when data was last seen, or became expected
        self.data_stalled = False  # the last session ended for lack of ticks
        self.attempt = 0
        self.lost_reason = ""


class _SessionEnd(Exception):
    """The watchdog's verdict: this socket must go (``dead``: abort it, don't close it)."""

    def __init__(self, reason: str, *, dead: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.dead = dead


class KiteFeed:
    """``Feed`` over Kite Connect's ticker WebSocket; see the module docstring for behaviour."""

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
        max_connections: int = 3,
        max_per_connection: int = 3000,
        default_mode: KiteMode = "full",
        stale_after: float = 10.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        connect_timeout: float = 10.0,
        market_hours: Callable[[datetime], bool] | None = None,
        rng: random.Random | None = None,
        token_poll_interval: float = 5.0,
        error_log_interval: float = 10.0,
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
        self._registry = registry
        self._api_key = api_key
        self._token = access_token or None
        self._token_file = token_file
        self._file_token: str | None = None  # the file content last seen
        self._rejected_token: str | None = None
        self._token_changed = asyncio.Event()
        self._url = url
        self._proxy: Any = None if urlsplit(url).hostname in _LOOPBACK else True
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._max_connections = max_connections
        self._max_per_connection = max_per_connection
        self._default_mode: KiteMode = default_mode
        self._stale_after = stale_after
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._connect_timeout = connect_timeout
        self._market_hours = market_hours if market_hours is not None else nse_market_hours
        self._rng = rng if rng is not None else random.Random()
        self._token_poll_interval = token_poll_interval
        self._error_log_interval = error_log_interval

        self._refs: dict[int, int] = {}
        self._shard_of: dict[int, _Shard] = {}
        self._shards = [_Shard(i) for i in range(max_connections)]
        self._rejected: dict[str, Instrument] = {}
        self._shards_changed = asyncio.Event()
        self._retiring: set[asyncio.Task[None]] = set()

        self._on_tick: TickSink | None = None
        self._on_status: StatusSink | None = None
        self._running = False
        self._stopped = False
        self._state = FeedState.STARTING
        self._detail = "not started"
        self._last_tick_at: datetime | None = None
        self._last_tick_mono: float | None = None
        self._reconnects = 0
        self._errors: dict[str, int] = {}
        self._error_logged_at: dict[str, float] = {}
        self._errors_unlogged: dict[str, int] = {}

    def __repr__(self) -> str:
        # The settings hold the API key and the token as secrets: neither may reach a log.
        return f"<KiteFeed {self._url} state={self._state.value}>"

    # -- Feed interface -------------------------------------------------------------------------

    async def run(self, on_tick: TickSink, on_status: StatusSink) -> None:
        if self._running:
            raise RuntimeError("KiteFeed.run() is already running")
        self._on_tick, self._on_status = on_tick, on_status
        self._running, self._stopped = True, False
        self._evaluate()
        try:
            while True:
                changed = self._shards_changed
                self._reconcile_shards()
                await changed.wait()
        finally:
            tasks = {s.task for s in self._shards if s.task is not None} | self._retiring
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
            for shard in self._shards:
                shard.task = None
                shard.connected = shard.waiting_auth = False
            self._running, self._stopped = False, True
            self._evaluate()

    def subscribe(self, instruments: Iterable[Instrument], *, mode: KiteMode | None = None) -> None:
        """Add a reference to each instrument (in ``mode``, default ``default_mode``)."""
        wanted: KiteMode = self._default_mode if mode is None else mode
        if wanted not in MODES:
            raise ValueError(f"unknown mode: {wanted!r} (allowed: {', '.join(MODES)})")
        refused: list[Instrument] = []
        for instrument in instruments:
            token = instrument.instrument_token
            shard = self._shard_of.get(token)
            if shard is not None:
                self._refs[token] += 1
                if MODES.index(wanted) > MODES.index(shard.desired[token]):
                    shard.desired[token] = wanted
                    shard.dirty.set()
                continue
            shard = next(
                (s for s in self._shards if len(s.desired) < self._max_per_connection), None
            )
            if shard is None:
                refused.append(instrument)
                continue
            if not shard.desired:
                shard.data_ref = self._clock.monotonic()
            self._refs[token] = 1
            shard.desired[token] = wanted
            self._shard_of[token] = shard
            self._rejected.pop(instrument.key, None)
            shard.dirty.set()
        if refused:
            for instrument in refused:
                self._rejected[instrument.key] = instrument
            limit = self._max_connections * self._max_per_connection
            log.error(
                "kite: %d instrument(s) refused, the limit of %d connection(s) x %d instruments "
                "(%d) is reached: %s",
                len(refused),
                self._max_connections,
                self._max_per_connection,
                limit,
                ", ".join(i.key for i in refused[:10]) + (" ..." if len(refused) > 10 else ""),
            )
        self._shards_updated()

    def unsubscribe(self, instruments: Iterable[Instrument]) -> None:
        """Drop a reference to each instrument; the last one unsubscribes upstream."""
        for instrument in instruments:
            token = instrument.instrument_token
            shard = self._shard_of.get(token)
            if shard is None:
                self._rejected.pop(instrument.key, None)
                continue
            self._refs[token] -= 1
            if self._refs[token] > 0:
                continue
            del self._refs[token]
            del self._shard_of[token]
            del shard.desired[token]
            shard.dirty.set()
        self._shards_updated()

    def status(self) -> FeedStatus:
        now = self._clock.now()
        age = None
        if self._last_tick_at is not None:
            age = round(max(0.0, (now - self._last_tick_at).total_seconds()), 3)
        return FeedStatus(
            self._state,
            self._detail,
            last_tick_at=self._last_tick_at,
            reconnects=self._reconnects,
            extra={
                "connected": sum(1 for s in self._shards if s.connected),
                "subscribed_tokens": len(self._refs),
                "last_tick_age": age,
                "parse_errors": sum(self._errors.values()),
                "errors": dict(self._errors),
                "rejected": sorted(self._rejected),
            },
        )

    # -- more API -------------------------------------------------------------------------------

    def set_access_token(self, token: str) -> None:
        """Use ``token`` from the next connection attempt on (wakes a feed in ``AUTH_FAILED``)."""
        if not token:
            raise ValueError("access token must not be empty")
        self._token = token
        changed, self._token_changed = self._token_changed, asyncio.Event()
        changed.set()

    @property
    def rejected(self) -> frozenset[str]:
        """Keys of the instruments refused for lack of room (``max_connections`` x
        ``max_per_connection``)."""
        return frozenset(self._rejected)

    @property
    def subscribed(self) -> dict[int, KiteMode]:
        """Token -> mode of every subscribed token (what the feed wants, not what was sent)."""
        return {t: mode for s in self._shards for t, mode in s.desired.items()}

    # -- shards ---------------------------------------------------------------------------------

    def _shards_updated(self) -> None:
        changed, self._shards_changed = self._shards_changed, asyncio.Event()
        changed.set()
        if self._running:
            self._evaluate()

    def _reconcile_shards(self) -> None:
        for shard in self._shards:
            wanted = shard.index == 0 or bool(shard.desired)
            if wanted and shard.task is None:
                shard.attempt = 0
                shard.ever_connected = shard.data_stalled = False
                shard.lost_reason = ""
                shard.task = asyncio.create_task(
                    self._run_shard(shard), name=f"kite-conn-{shard.index}"
                )
                shard.task.add_done_callback(self._shard_done)
            elif not wanted and shard.task is not None:
                task, shard.task = shard.task, None
                self._retiring.add(task)
                task.cancel()
        self._evaluate()

    def _shard_done(self, task: asyncio.Task[None]) -> None:
        self._retiring.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # a bug: log it and let run() start the connection again
            log.error("kite: %s failed", task.get_name(), exc_info=exc)
        for shard in self._shards:
            if shard.task is task:
                shard.task = None
                shard.connected = shard.waiting_auth = False
        self._shards_updated()

    async def _run_shard(self, shard: _Shard) -> None:
        try:
            while True:
                token = self._current_token()
                if token is None or token == self._rejected_token:
                    await self._wait_for_token(shard)
                    continue
                reason = await self._connect_once(shard, token)
                if reason is None:  # auth rejected: wait for a new token, no backoff
                    continue
                if not shard.lost_reason:  # keep the status detail on the cause of the loss
                    shard.lost_reason = reason
                delay = self._backoff(shard.attempt)
                shard.attempt += 1
                self._reconnects += 1
                log.info(
                    "kite connection %d: %s; reconnecting in %.2fs (attempt %d)",
                    shard.index,
                    reason,
                    delay,
                    shard.attempt,
                )
                self._evaluate()
                await self._clock.sleep(delay)
        finally:
            shard.connected = shard.waiting_auth = False

    async def _connect_once(self, shard: _Shard, token: str) -> str | None:
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
                close_timeout=2.0,
                max_size=2**24,
                logger=_WS_LOG,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in _AUTH_STATUSES:  # logged once, as the AUTH_FAILED state change
                self._rejected_token = token
                return None
            return f"handshake refused: HTTP {status}"
        except (OSError, TimeoutError) as exc:
            return f"connect failed: {_describe(exc)}"
        except Exception as exc:  # malformed responses, EOF during the handshake, ...
            return f"connect failed: {_describe(exc)}"
        self._rejected_token = None
        return await self._session(shard, ws)

    async def _session(self, shard: _Shard, ws: ClientConnection) -> str:
        now = self._clock.monotonic()
        shard.connected = shard.ever_connected = True
        shard.lost_reason = ""
        shard.upstream = {}
        shard.session_start = shard.last_frame = now
        if not shard.data_stalled:
            shard.data_ref = now
        shard.dirty.set()
        log.info(
            "kite connection %d: connected to %s (%d instruments)",
            shard.index,
            self._url,
            len(shard.desired),
        )
        self._evaluate()
        name = f"kite-conn-{shard.index}"
        tasks: list[asyncio.Task[str]] = [
            asyncio.create_task(self._read(shard, ws), name=f"{name}-read"),
            asyncio.create_task(self._write(shard, ws), name=f"{name}-write"),
            asyncio.create_task(self._watch(shard), name=f"{name}-watch"),
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
            shard.connected = False
            shard.upstream = {}
            if dead:
                ws.transport.abort()
            else:
                await ws.close()

    async def _read(self, shard: _Shard, ws: ClientConnection) -> str:
        try:
            async for message in ws:
                shard.last_frame = self._clock.monotonic()
                if isinstance(message, bytes):
                    self._on_binary(shard, message)
                else:
                    self._on_text(shard, message)
        except ConnectionClosed as exc:
            return f"connection lost ({_close_text(exc)})"
        return f"connection closed by the server (code {ws.close_code})"

    async def _write(self, shard: _Shard, ws: ClientConnection) -> str:
        try:
            while True:
                shard.dirty.clear()
                for message in plan_subscriptions(shard.desired, shard.upstream):
                    await ws.send(json.dumps(message, separators=(",", ":")))
                    _apply(message, shard.upstream)
                await shard.dirty.wait()
        except ConnectionClosed as exc:
            return f"connection lost while sending ({_close_text(exc)})"

    async def _watch(self, shard: _Shard) -> str:
        stale = self._stale_after
        while True:
            await self._clock.sleep(min(stale / 4, 1.0))
            now = self._clock.monotonic()
            if now - shard.last_frame > stale:
                # After a stall of the event loop, frames already received may wait behind this
                # task: let the reader run once before calling the socket dead.
                await asyncio.sleep(0)
                now = self._clock.monotonic()
            if now - shard.last_frame > stale:
                raise _SessionEnd(f"no frame for {stale:g}s, the socket is dead", dead=True)
            quiet = now - max(shard.data_ref, shard.session_start)
            if shard.desired and quiet > 3 * stale and self._market_open():
                shard.data_stalled = True
                raise _SessionEnd(
                    f"no tick for {3 * stale:g}s during market hours, the stream is stuck",
                    dead=True,
                )
            self._evaluate()

    # -- frames ---------------------------------------------------------------------------------

    def _on_binary(self, shard: _Shard, frame: bytes) -> None:
        try:
            packets = split_packets(frame)
        except KiteParseError as exc:
            self._error(
                "frame", f"connection {shard.index}: {exc} (frame of {len(frame)} bytes dropped)"
            )
            return
        if not packets:  # heartbeat or an empty envelope
            if not shard.desired:
                shard.attempt = 0
            return
        received_at = self._clock.now()
        on_tick = self._on_tick
        ticks = 0
        offset = 2
        for packet in packets:
            offset += 2
            kt = parse_packet(packet)
            if kt is None:
                self._error(
                    "packet",
                    f"connection {shard.index}: packet of unknown length {len(packet)} at offset "
                    f"{offset} of a {len(frame)}-byte frame skipped",
                )
            elif kt.instrument_token in self._refs:
                instrument = self._registry.by_token(kt.instrument_token)
                if instrument is None:
                    self._error(
                        "unknown_token",
                        f"connection {shard.index}: tick for token {kt.instrument_token}, "
                        "which is not in the instruments registry, skipped",
                    )
                else:
                    tick = to_tick(kt, instrument, received_at)
                    ticks += 1
                    if on_tick is not None:
                        self._deliver(on_tick, tick)
            offset += len(packet)
        if ticks:
            shard.data_ref = self._last_tick_mono = self._clock.monotonic()
            shard.data_stalled = False
            shard.attempt = 0
            self._last_tick_at = received_at
            if self._state is not FeedState.LIVE:
                self._evaluate()

    def _deliver(self, on_tick: TickSink, tick: Tick) -> None:
        try:
            on_tick(tick)
        except Exception:
            log.exception("kite: on_tick failed for %s", tick.symbol)

    def _on_text(self, shard: _Shard, text: str) -> None:
        message = parse_text(text)
        if message is None:
            self._error(
                "text",
                f"connection {shard.index}: text frame of {len(text)} characters is not a JSON "
                "object with a type; ignored",
            )
        elif message.kind == "error":
            log.warning("kite connection %d: server error: %s", shard.index, message.data)
        elif message.kind == "message":
            log.info("kite connection %d: server message: %s", shard.index, message.data)
        else:  # order postbacks, instruments_meta, app_code and whatever comes next
            log.debug("kite connection %d: %s message ignored", shard.index, message.kind)

    def _error(self, kind: str, text: str) -> None:
        self._errors[kind] = self._errors.get(kind, 0) + 1
        now = self._clock.monotonic()
        last = self._error_logged_at.get(kind)
        if last is not None and now - last < self._error_log_interval:
            self._errors_unlogged[kind] = self._errors_unlogged.get(kind, 0) + 1
            return
        self._error_logged_at[kind] = now
        unlogged = self._errors_unlogged.pop(kind, 0)
        more = f" ({unlogged} more since the last report)" if unlogged else ""
        log.error("kite %s error: %s%s", kind, text, more)

    # -- tokens ---------------------------------------------------------------------------------

    def _current_token(self) -> str | None:
        if self._token_file is not None:
            try:
                content = self._token_file.read_text(encoding="utf-8").strip()
            except OSError:
                content = ""
            if content and content != self._file_token:
                self._file_token = content
                self._token = content
        return self._token

    async def _wait_for_token(self, shard: _Shard) -> None:
        shard.waiting_auth = True
        self._evaluate()
        try:
            while True:
                changed = self._token_changed
                await self._sleep_or(self._token_poll_interval, changed)
                token = self._current_token()
                if token is not None and token != self._rejected_token:
                    log.info("kite connection %d: new access token, connecting", shard.index)
                    shard.attempt = 0
                    return
        finally:
            shard.waiting_auth = False

    async def _sleep_or(self, seconds: float, event: asyncio.Event) -> None:
        sleep: Coroutine[Any, Any, None] = self._clock.sleep(seconds)
        tasks = [
            asyncio.create_task(sleep, name="kite-token-poll"),
            asyncio.create_task(event.wait(), name="kite-token-changed"),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()

    # -- status ---------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._backoff_max, self._backoff_initial * 2.0 ** min(attempt, 32))
        return self._rng.uniform(0.0, ceiling)

    def _market_open(self) -> bool:
        return self._market_hours(self._clock.now())

    def _assess(self) -> tuple[FeedState, str]:
        if self._stopped:
            return FeedState.STOPPED, "stopped"
        if not self._running:
            return FeedState.STARTING, "not started"
        active = [s for s in self._shards if s.task is not None]
        if any(s.waiting_auth for s in active):
            where = f" in {self._token_file}" if self._token_file is not None else ""
            if self._current_token() is None:
                return FeedState.AUTH_FAILED, f"no access token; waiting for one{where}"
            return (
                FeedState.AUTH_FAILED,
                "access token rejected by the server (HTTP 403); waiting for a new token"
                + (f"{where} or set_access_token()" if where else " (set_access_token())"),
            )
        if not active:
            return FeedState.STARTING, f"connecting to {self._url}"
        down = [s for s in active if not s.connected]
        lost = [s for s in down if s.ever_connected or s.attempt]
        if lost:
            reasons = "; ".join(f"connection {s.index}: {s.lost_reason}" for s in lost)
            return FeedState.RECONNECTING, reasons
        if len(down) == len(active):
            return FeedState.STARTING, f"connecting to {self._url}"
        now = self._clock.monotonic()
        stale = self._stale_after
        if self._market_open():
            quiet = [s for s in active if s.connected and s.desired and now - s.data_ref > stale]
            if quiet:
                which = ", ".join(str(s.index) for s in quiet)
                return (
                    FeedState.STALE,
                    f"no tick for {stale:g}s in market hours (connection {which})",
                )
        elif self._last_tick_mono is None or now - self._last_tick_mono > stale:
            return FeedState.MARKET_CLOSED, "market closed, no ticks"
        return FeedState.LIVE, f"connected to {self._url}"

    def _evaluate(self) -> None:
        state, detail = self._assess()
        if self._rejected:
            refused = len(self._rejected)
            limit = self._max_connections * self._max_per_connection
            detail += f"; {refused} instrument(s) refused over the limit of {limit}"
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


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _close_text(exc: ConnectionClosed) -> str:
    frame = exc.rcvd
    if frame is None:
        return "no close frame"
    return f"code {frame.code}" + (f", {frame.reason}" if frame.reason else "")
