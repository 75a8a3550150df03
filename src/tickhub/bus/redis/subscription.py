"""What a gateway knows of one topic it subscribes to: handlers, retained cache, local history.

The retained cache is filled from Redis once the subscription is confirmed, then kept current
by the envelopes received; versions make the merge exact: an update read with the snapshot is
not applied twice, one that came after it is not lost. The local history records the numbered
messages received, as ``MemoryBus`` records them at publish time, so that most resumes need no
I/O. Pure state: the reader does the I/O.

After a lost connection the messages published meanwhile never reached us; the ones a client
must not miss (candle closes, alert events) are in Redis's stream of the topic. The first sync
on the new connection reads it, and until then live messages are held (``filling``), so that
``refill`` hands the missed ones and the held ones over in ``seq`` order.

A producer whose write was cut off by the outage sends that write again (``Writer``): messages
that reached us before may come once more, on this connection or the next. ``fence`` is the
newest numbered message passed to the handlers; one at or below it in the same epoch is such a
repeat and goes no further (``fresh``), so handlers never see ``seq`` repeat or go back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import orjson

from tickhub.bus.base import BusMessage, Handler
from tickhub.bus.history import TopicHistory
from tickhub.bus.redis.codec import VERSION_SIZE

# Phases of a subscription on the current connection.
UNCONFIRMED, SYNCING, SYNCED = 0, 1, 2


class Subscription:
    """A subscribed topic: its handlers, its retained cache and its recent history."""

    __slots__ = (
        "buffer",
        "fence",
        "filling",
        "handlers",
        "history",
        "phase",
        "resume_after",
        "since",
        "synced",
        "values",
    )

    def __init__(self, history: TopicHistory) -> None:
        self.handlers: list[Handler] = []
        self.history = history
        self.phase = UNCONFIRMED
        self.synced: asyncio.Event | None = None  # made when ``retained`` waits for a sync
        # Retained updates received while the snapshot is being fetched: (version, name, drop, data)
        self.buffer: list[tuple[int, str, bool, bytes]] = []
        self.since = 0  # the version the snapshot was read at
        self.values: dict[str, bytes] | None = None  # None until the first sync
        # (epoch, seq) of the last message before the connection was lost, until refilled
        self.resume_after: tuple[str, int] | None = None
        self.filling: list[BusMessage] | None = None  # live messages held until the refill
        self.fence: tuple[str, int] = ("", 0)  # (epoch, seq) of the newest numbered delivered

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
        if self.resume_after is not None:
            self.filling = []

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
        messages published meanwhile never reached us (the cache keeps the last values); the
        next sync refills them from where the oldest unfilled loss began."""
        if self.resume_after is None:
            if self.history.epoch:
                self.resume_after = (self.history.epoch, self.history.last_seq)
            elif self.values:  # nothing came live yet: the snapshot is where it stands
                self.resume_after = _newest(self.values.values())
        self.filling = None  # held messages never went out: the refill reaches back past them
        self.phase = UNCONFIRMED
        self.buffer = []
        self.history = history

    def fresh(self, message: BusMessage) -> bool:
        """Whether ``message``, about to be delivered, is not a repeat of one delivered before
        (same epoch, ``seq`` not above the ``fence``); if so the fence moves up to it. An
        unnumbered message is always fresh."""
        seq = message.seq
        if not seq:
            return True
        epoch, newest = self.fence
        if seq <= newest and message.epoch == epoch:
            return False
        self.fence = (message.epoch, seq)
        return True

    def refill(self, stored: list[BusMessage]) -> list[BusMessage]:
        """What to deliver once the sync after a reconnect read the topic's history ``stored``
        (the stream's messages and the latest state): those after the resume point that were
        not held (published while the connection was down), and the live messages held
        meanwhile, in ``seq`` order, without repeats of what was delivered before (a write the
        producer sent again after the outage, ``fresh``)."""
        assert self.resume_after is not None and self.filling is not None
        epoch, last = self.resume_after
        if self.fence[0] == epoch:
            # An earlier refill may have delivered more than the history has seen since.
            last = max(last, self.fence[1])
        self.fence = (epoch, last)
        held, self.resume_after, self.filling = self.filling, None, None
        have = {m.seq for m in held if m.epoch == epoch}
        order: list[tuple[int, int, int, BusMessage]] = []
        for m in stored:  # a candle's close is in the stream and the latest state: once
            if m.deliver and m.epoch == epoch and m.seq > last and m.seq not in have:
                have.add(m.seq)
                order.append((0, m.seq, 0, m))
        rank, key = 0, last  # an unnumbered message keeps its place after the one before it
        for i, m in enumerate(held):
            if m.seq:
                # Another epoch (the producer restarted meanwhile) comes after the old one's.
                rank, key = (0 if m.epoch == epoch else 1), m.seq
            order.append((rank, key, i + 1, m))
        order.sort(key=lambda item: item[:3])
        return [item[3] for item in order if self.fresh(item[3])]


def _newest(payloads: Iterable[bytes]) -> tuple[str, int] | None:
    """The ``(epoch, seq)`` of the newest numbered message among ``payloads``, if any."""
    newest: tuple[str, int] | None = None
    for payload in payloads:
        try:
            body = orjson.loads(payload)
            epoch, seq = body["epoch"], body["seq"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        if isinstance(epoch, str) and isinstance(seq, int) and (newest is None or seq > newest[1]):
            newest = (epoch, seq)
    return newest
