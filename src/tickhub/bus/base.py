"""The ``Bus`` contract that every backend implements and the conformance suite checks.

A producer publishes :class:`BusMessage` objects: one encoded ``data`` payload for one topic. The
bus delivers each message to every handler subscribed to its topic, in publish order per topic.
A message with ``retain`` set also replaces the topic's retained value under that name; a new
subscriber's snapshot is the topic's retained values, so a chart is never empty.

The bus never sees clients: the hub subscribes once per topic that any of its clients wants (the
first local subscriber subscribes, the last one unsubscribes) and fans out locally.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One encoded message for one topic.

    ``slot`` names what the message updates (``tick``, ``candle:<start>``, ``market``...): a slow
    client keeps only the latest message per slot. ``slot=None`` marks an event that must never
    be conflated or dropped (alerts). ``retain`` names the retained value the message replaces
    (``tick``, ``candle``...), or is ``None`` for messages that are not state. ``deliver=False``
    only updates retained state (history that new subscribers need and live ones already have);
    ``drop=True`` removes the retained value named by ``retain`` instead of replacing it.
    """

    topic: str
    payload: bytes
    slot: str | None = None
    retain: str | None = None
    deliver: bool = True
    drop: bool = False
    published_at: float = 0.0  # wall-clock seconds, for the publish-to-send latency metric
    seq: int = 0  # the topic's number of this message (0: not numbered)
    epoch: str = ""  # the producer run that numbered it


Handler = Callable[[BusMessage], None]


class SnapshotGate(Protocol):
    """Holds a topic's snapshot back until its producer had the chance to publish it.

    A producer in another process may publish a topic's state only once the topic is wanted
    (``cluster.gateway.DemandRelay`` is the gate for that): until then the retained values are
    missing or stale, so a bus with a gate answers ``retained_nowait`` with ``None`` for a
    ``pending`` topic and ``retained`` only after ``wait`` (which is bounded by the gate).
    """

    def pending(self, topic: str) -> bool:
        """Whether the topic's snapshot must wait (its producer may not have published it)."""
        ...

    async def wait(self, topic: str) -> None:
        """Return once the topic is no longer pending, or after the gate's own time bound."""
        ...


class Bus(Protocol):
    """Messages from producers to the subscribed handlers, with retained state and history.

    Guarantees every backend keeps (``tests/test_bus_contract.py`` checks them):

    - Order: per topic, handlers receive messages in the order their producer published them.
      Nothing is promised across topics.
    - Delivery: an in-process backend delivers each message once to every handler subscribed
      when it is published. A backend that crosses processes is at-most-once while
      disconnected (what is published meanwhile is lost to that subscriber; its retained state
      is synced again) and may deliver a message twice around an outage, never out of order.
    - Retained state: per topic, the latest payload of every ``retain`` name not dropped, in
      last-update order; a snapshot that a new subscriber gets with ``retained``.
    - History: the numbered messages (``seq``) of the current producer run (``epoch``), bounded
      by ``history_size`` and ``history_age`` (see ``bus.history``), which is what ``since``
      recovers.

    Handlers are called from the event loop's thread, one at a time; one that raises is logged
    and does not keep the message from the others.
    """

    async def start(self) -> None:
        """Connect and start delivering; a bus that cannot connect yet keeps trying (it does not
        raise for an outage). Calling it again does nothing."""
        ...

    async def close(self) -> None:
        """Deliver or send what is already handed over (bounded in time), then stop: handlers
        get nothing more. Calling it again does nothing."""
        ...

    def publish(self, message: BusMessage) -> None:
        """Hand a message to the bus without blocking the producer.

        Never raises: a backend that cannot carry a message, or is closed, drops it (logged and
        counted). A bounded backend may drop conflatable messages (``slot`` set),
        oldest first, never events (``slot=None``). A message with ``deliver=False`` reaches no
        handler; it only updates the retained state (and ``drop`` removes it).
        """
        ...

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Deliver the topic's future messages to ``handler`` (called on the event loop).

        Takes effect at once for every message published later in this process; messages of
        other processes may need a ``flush`` before they arrive. Subscribing the same handler
        twice delivers once.
        """
        ...

    def unsubscribe(self, topic: str, handler: Handler) -> None:
        """Stop delivering the topic to ``handler`` at once; unknown pairs are ignored."""
        ...

    def retained_nowait(self, topic: str) -> list[bytes] | None:
        """The topic's retained payloads if known locally without I/O, else ``None``.

        The same list ``retained`` would return; ``[]`` means known to be empty, ``None`` that
        only ``retained`` can tell.
        """
        ...

    async def retained(self, topic: str) -> list[bytes]:
        """The topic's retained payloads, one per ``retain`` name, oldest update first.

        For a topic subscribed here the snapshot lines up with the handler: every update is in
        the snapshot or delivered after it. Raises ``ConnectionError`` when the store of the
        retained state cannot be read.
        """
        ...

    def recover_nowait(self, topic: str, epoch: str, seq: int) -> list[bytes] | bool | None:
        """What a client that last saw ``(epoch, seq)`` missed (see ``bus.history``): the
        payloads in ``seq`` order, ``None`` when the history does not cover it, or ``False``
        when the answer needs I/O (then call ``recover``).

        Exact when it answers: the recoverable messages (events and each candle's final state)
        published after ``seq`` and the latest retained state delivered after it, each once.
        ``None`` for another epoch, a ``seq`` older than the history keeps (evicted by count or
        age) or newer than the latest; the client then needs a fresh snapshot.
        """
        ...

    async def recover(self, topic: str, epoch: str, seq: int) -> list[bytes] | None:
        """What ``recover_nowait`` answers, doing the I/O it needs; never ``False``.

        ``None`` also when the history cannot be read (a fresh snapshot is always correct).
        """
        ...

    async def flush(self) -> None:
        """Wait until everything handed to this bus before the call has taken effect.

        Messages published before the call are delivered to this process's handlers and stored
        as retained state, and subscriptions made before it receive every later message. A bus
        that delivers synchronously has nothing to wait for. Meant for tests and shutdown.
        Once the bus is closed it may raise ``ConnectionError``; it never hangs.
        """
        ...
