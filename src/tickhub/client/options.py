"""The client's options and their defaults, each with the reason for its number.

They mirror the JavaScript client's (``src/tickhub/static/tickhub.js``, ``DEFAULTS``) in seconds
instead of milliseconds, so a Python and a browser client of one deployment behave alike.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "CONNECT_TIMEOUT",
    "HEARTBEAT_INTERVAL",
    "HEARTBEAT_TIMEOUT",
    "MAX_DELAY",
    "MAX_MESSAGE_BYTES",
    "MAX_QUEUE",
    "MIN_DELAY",
    "REQUEST_TIMEOUT",
    "ClientOptions",
    "TokenSource",
]

HEARTBEAT_INTERVAL: Final = 15.0
"""Seconds between ``heartbeat`` messages: a quarter of the server's ``IDLE_TIMEOUT`` (60 s),
so a quiet client is never taken for idle, and often enough to notice a dead link in time."""
HEARTBEAT_TIMEOUT: Final = 10.0
"""Silence allowed past a heartbeat interval before the link is taken for dead and dropped."""
CONNECT_TIMEOUT: Final = 10.0
"""Seconds for one WebSocket handshake, and for ``async with connect(...)`` to get a welcome."""
REQUEST_TIMEOUT: Final = 10.0
"""A request (``create_alert``, ``subscribe``...) not answered by then fails with ``timeout``:
the server's own deadline for a scale-out request is 10 s."""
MIN_DELAY: Final = 0.5
MAX_DELAY: Final = 30.0
"""Reconnect delays grow from ``MIN_DELAY`` by ``factor`` up to ``MAX_DELAY`` (before jitter)."""
MAX_QUEUE: Final = 10_000
"""Messages held for a reader that does not keep up; past it the client stops reading the
socket, so the server conflates (docs/protocol.md §10) instead of this process growing."""
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
"""Largest frame accepted: an analysis snapshot with ``ANALYSIS_HISTORY=100000`` or a batch of
a busy connection stays well below it; a larger one is a fault (closed with 1009)."""

TokenSource = str | Callable[[], str] | Callable[[], Awaitable[str]]
"""A token, or a function asked for one at every connect (then 4501, token expired, reconnects
with a fresh one)."""


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Everything a :class:`~tickhub.client.Client` can be told; all times in seconds."""

    heartbeat_interval: float = HEARTBEAT_INTERVAL
    """0 turns heartbeats, and the dead-link check, off."""
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT
    connect_timeout: float = CONNECT_TIMEOUT
    request_timeout: float = REQUEST_TIMEOUT
    reconnect: bool = True
    min_delay: float = MIN_DELAY
    max_delay: float = MAX_DELAY
    factor: float = 2.0
    jitter: float = 0.5
    """Fraction of each delay that is random: the delay is in ``[(1 - jitter) d, d]``."""
    max_attempts: int | None = None
    """Failed connection attempts in a row before giving up (``None``: never give up)."""
    token: TokenSource | None = None
    batch: bool = False
    """Ask for batched delivery (``?batch=1``, docs/protocol.md §10.1); batches are unpacked."""
    max_queue: int = MAX_QUEUE
    max_message_bytes: int = MAX_MESSAGE_BYTES
    random: Callable[[], float] = field(default=random.random)
    """The jitter's randomness; tests pass a fixed one."""

    def __post_init__(self) -> None:
        checks = {
            "heartbeat_interval": self.heartbeat_interval >= 0,
            "heartbeat_timeout": self.heartbeat_timeout > 0,
            "connect_timeout": self.connect_timeout > 0,
            "request_timeout": self.request_timeout > 0,
            "min_delay": self.min_delay >= 0,
            "max_delay": self.max_delay >= self.min_delay,
            "factor": self.factor >= 1,
            "jitter": 0 <= self.jitter <= 1,
            "max_attempts": self.max_attempts is None or self.max_attempts >= 1,
            "max_queue": self.max_queue >= 1,
            "max_message_bytes": self.max_message_bytes >= 1024,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{n}={getattr(self, n)!r}" for n in bad)
            raise ValueError(f"invalid client option: {values}")
