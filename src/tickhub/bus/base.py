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
    (``cluster.DemandRelay`` is the gate for that): until then the retained values are missing
    or stale, so a bus with a gate answers ``retained_nowait`` with ``None`` for a ``pending``
    topic and ``retained`` only after ``wait`` (which is bounded by the gate).
    """

    def pending(self, topic: str) -> bool: ...

    async def wait(self, topic: str) -> None: ...


class Bus(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def publish(self, message: BusMessage) -> None:
        """Hand a message to the bus without blocking the producer."""
        ...

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Deliver the topic's future messages to ``handler`` (called on the event loop)."""
        ...

    def unsubscribe(self, topic: str, handler: Handler) -> None: ...

    def retained_nowait(self, topic: str) -> list[bytes] | None:
        """The topic's retained payloads if known locally without I/O, else ``None``."""
        ...

    async def retained(self, topic: str) -> list[bytes]:
        """The topic's retained payloads, one per slot, oldest slot first."""
        ...

    def recover_nowait(self, topic: str, epoch: str, seq: int) -> list[bytes] | bool | None:
        """What a client that last saw ``(epoch, seq)`` missed (see ``bus.history``): the
        payloads in ``seq`` order, ``None`` when the history does not cover it, or ``False``
        when the answer needs I/O (then call ``recover``)."""
        ...

    async def recover(self, topic: str, epoch: str, seq: int) -> list[bytes] | None: ...

    async def flush(self) -> None:
        """Wait until everything handed to this bus before the call has taken effect.

        Messages published before the call are delivered to this process's handlers and stored
        as retained state, and subscriptions made before it receive every later message. A bus
        that delivers synchronously has nothing to wait for. Meant for tests and shutdown.
        """
        ...
