"""What a gateway knows of one topic it subscribes to: handlers, retained cache, local history.

The retained cache is filled from Redis once the subscription is confirmed, then kept current
by the envelopes received; versions make the merge exact: an update read with the snapshot is
not applied twice, one that came after it is not lost. The local history records the numbered
messages received, as ``MemoryBus`` records them at publish time, so that most resumes need no
I/O. Pure state: the reader does the I/O.
"""

from __future__ import annotations

import asyncio
import time

from tickhub.bus.base import BusMessage, Handler
from tickhub.bus.history import TopicHistory
from tickhub.bus.redis.codec import VERSION_SIZE

# Phases of a subscription on the current connection.
UNCONFIRMED, SYNCING, SYNCED = 0, 1, 2


class Subscription:
    """A subscribed topic: its handlers, its retained cache and its recent history."""

    __slots__ = ("buffer", "handlers", "history", "phase", "since", "synced", "values")

    def __init__(self, history: TopicHistory) -> None:
        self.handlers: list[Handler] = []
        self.history = history
        self.phase = UNCONFIRMED
        self.synced: asyncio.Event | None = None  # made when ``retained`` waits for a sync
        # Retained updates received while the snapshot is being fetched: (version, name, drop, data)
        self.buffer: list[tuple[int, str, bool, bytes]] = []
        self.since = 0  # the version the snapshot was read at
        self.values: dict[str, bytes] | None = None  # None until the first sync

    def apply(self, name: str, drop: bool, payload: bytes) -> None:
        if self.values is None:
            return
        # Re-inserted so that values stay in last-update order.
        self.values.pop(name, None)
        if not drop:
            self.values[name] = payload

    def received(self, message: BusMessage, version: int) -> None:
        """Update the cache and the history with a message received on the channel."""
        if message.retain is not None:
            if self.phase == SYNCED:
                if version > self.since:
                    self.apply(message.retain, message.drop, message.payload)
            elif self.phase == SYNCING:
                self.buffer.append((version, message.retain, message.drop, message.payload))
                self.apply(message.retain, message.drop, message.payload)
        self.history.observe(message, time.monotonic())

    def start_sync(self) -> None:
        """The subscription is confirmed: buffer retained updates until the snapshot is read."""
        self.phase = SYNCING
        self.buffer = []

    def synced_at(self, raw: dict[bytes, bytes], since: int) -> None:
        """The snapshot ``raw`` (the retained hash) was read when the counter was ``since``."""
        self.values = {
            key.decode(): value[VERSION_SIZE:]
            for key, value in sorted(raw.items(), key=lambda kv: kv[1])
        }
        # Updates received meanwhile that the snapshot already holds are skipped by version.
        for version, name, drop, payload in self.buffer:
            if version > since:
                self.apply(name, drop, payload)
        self.buffer = []
        self.since = since
        self.phase = SYNCED
        if self.synced is not None:
            self.synced.set()

    def lost(self, history: TopicHistory) -> None:
        """The connection was lost: confirm again, and start ``history`` afresh, since the
        messages published meanwhile never reached us (the cache keeps the last values)."""
        self.phase = UNCONFIRMED
        self.buffer = []
        self.history = history
