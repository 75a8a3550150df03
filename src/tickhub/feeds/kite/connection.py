"""One connection slot of the Kite feed, as a record the feed's parts share.

Kite allows 3 ticker connections per api_key. Several parts of the feed look at the same slot
for different reasons: the subscription book decides which tokens it should carry, the session
keeps its socket alive and tells the server about them, the frame handler notes that data flows
and the feed reads it all to report its status. The slot is a plain record so that none of them
owns the others, and so that the read loop touches its fields without a call.
"""

from __future__ import annotations

import asyncio

from tickhub.feeds.kite.parse import KiteMode

__all__ = ["Connection"]


class Connection:
    """One connection slot: the tokens it should carry and the state of its socket.

    ``desired`` (token -> mode) is written by the subscription book only, which sets ``dirty``
    after each change; ``upstream`` is what the server of the current socket was told (empty
    while disconnected). The remaining fields are the supervision marks of the session and the
    frame handler; all times are the feed clock's ``monotonic()``.
    """

    __slots__ = (
        "attempt",
        "connected",
        "data_ref",
        "data_stalled",
        "desired",
        "dirty",
        "ever_connected",
        "index",
        "last_frame",
        "lost_reason",
        "session_start",
        "task",
        "upstream",
        "waiting_auth",
    )

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
