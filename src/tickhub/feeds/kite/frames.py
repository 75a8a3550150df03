"""What the Kite feed does with each frame a connection receives: the read loop's hot path.

Binary frames become ``Tick`` objects for ``on_tick``; text frames are server notices; whatever
is wrong in either is counted and logged without stopping the feed. This is apart from the
session (which only hands frames over) because it changes with the stream's content, and
because it runs for every packet: it is written to make no call per packet beyond parsing,
the registry look-up, ``to_tick`` and the delivery.

Errors in the stream
    A truncated frame (``KiteParseError``), a packet of unknown length, a tick for a token the
    registry does not know and a text frame that is not a JSON object are counted by kind
    (``status().extra["parse_errors"]`` and ``["errors"]``) and logged with their context (the
    connection, frame length, offset), each kind at most once per ``error_log_interval`` seconds;
    the feed carries on. Ticks for tokens no longer subscribed (in flight after an unsubscribe)
    are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container
from datetime import datetime

from tickhub.core.clock import Clock
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import Tick
from tickhub.feeds.base import TickSink
from tickhub.feeds.kite.connection import Connection
from tickhub.feeds.kite.parse import (
    KiteParseError,
    parse_packet,
    parse_text,
    split_packets,
    to_tick,
)

__all__ = ["FrameHandler"]

# The feed logs under one name whichever of its modules writes the line: log filters and
# levels set for ``tickhub.feeds.kite.client`` keep applying to all of it.
log = logging.getLogger("tickhub.feeds.kite.client")


class FrameHandler:
    """Turns the frames of all the feed's connections into ticks, and counts what is wrong.

    ``on_binary`` and ``on_text`` never raise for what the server sends, nor for an ``on_tick``
    that raises (logged, the next tick is delivered). Ticks go to ``on_tick`` (``None``: parsed,
    counted, not delivered) only for tokens in ``subscribed`` (a live view, the subscription
    book's ``refs``) and known to ``registry``. A frame that carried ticks marks its connection's
    data as flowing (``data_ref``, ``data_stalled``, ``attempt``) and then calls ``on_ticks``; a
    heartbeat resets ``attempt`` of a connection that holds no tokens. ``errors`` counts stream
    errors by kind, each kind logged at most once per ``error_log_interval`` seconds.
    ``last_tick_at`` (``clock.now()``) and ``last_tick_mono`` (``clock.monotonic()``) are when
    the last tick arrived, ``None`` before the first.
    """

    def __init__(
        self,
        registry: InstrumentRegistry,
        subscribed: Container[int],
        *,
        clock: Clock,
        error_log_interval: float,
        on_ticks: Callable[[], None],
    ) -> None:
        self.on_tick: TickSink | None = None
        self.last_tick_at: datetime | None = None
        self.last_tick_mono: float | None = None
        self.errors: dict[str, int] = {}
        self._registry = registry
        self._refs = subscribed
        self._clock = clock
        self._error_log_interval = error_log_interval
        self._on_ticks = on_ticks
        self._error_logged_at: dict[str, float] = {}
        self._errors_unlogged: dict[str, int] = {}

    def on_binary(self, conn: Connection, frame: bytes) -> None:
        """Deliver the ticks of one binary frame of ``conn``."""
        try:
            packets = split_packets(frame)
        except KiteParseError as exc:
            self._error(
                "frame", f"connection {conn.index}: {exc} (frame of {len(frame)} bytes dropped)"
            )
            return
        if not packets:  # heartbeat or an empty envelope
            if not conn.desired:
                conn.attempt = 0
            return
        received_at = self._clock.now()
        on_tick = self.on_tick
        ticks = 0
        offset = 2
        for packet in packets:
            offset += 2
            kt = parse_packet(packet)
            if kt is None:
                self._error(
                    "packet",
                    f"connection {conn.index}: packet of unknown length {len(packet)} at offset "
                    f"{offset} of a {len(frame)}-byte frame skipped",
                )
            elif kt.instrument_token in self._refs:
                instrument = self._registry.by_token(kt.instrument_token)
                if instrument is None:
                    self._error(
                        "unknown_token",
                        f"connection {conn.index}: tick for token {kt.instrument_token}, "
                        "which is not in the instruments registry, skipped",
                    )
                else:
                    tick = to_tick(kt, instrument, received_at)
                    ticks += 1
                    if on_tick is not None:
                        self._deliver(on_tick, tick)
            offset += len(packet)
        if ticks:
            conn.data_ref = self.last_tick_mono = self._clock.monotonic()
            conn.data_stalled = False
            conn.attempt = 0
            self.last_tick_at = received_at
            self._on_ticks()

    def _deliver(self, on_tick: TickSink, tick: Tick) -> None:
        try:
            on_tick(tick)
        except Exception:
            log.exception("kite: on_tick failed for %s", tick.symbol)

    def on_text(self, conn: Connection, text: str) -> None:
        """Log a text frame of ``conn``: server errors and messages; other kinds are ignored."""
        message = parse_text(text)
        if message is None:
            self._error(
                "text",
                f"connection {conn.index}: text frame of {len(text)} characters is not a JSON "
                "object with a type; ignored",
            )
        elif message.kind == "error":
            log.warning("kite connection %d: server error: %s", conn.index, message.data)
        elif message.kind == "message":
            log.info("kite connection %d: server message: %s", conn.index, message.data)
        else:  # order postbacks, instruments_meta, app_code and whatever comes next
            log.debug("kite connection %d: %s message ignored", conn.index, message.kind)

    def _error(self, kind: str, text: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        now = self._clock.monotonic()
        last = self._error_logged_at.get(kind)
        if last is not None and now - last < self._error_log_interval:
            self._errors_unlogged[kind] = self._errors_unlogged.get(kind, 0) + 1
            return
        self._error_logged_at[kind] = now
        unlogged = self._errors_unlogged.pop(kind, 0)
        more = f" ({unlogged} more since the last report)" if unlogged else ""
        log.error("kite %s error: %s%s", kind, text, more)
