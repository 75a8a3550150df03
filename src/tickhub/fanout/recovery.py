"""Snapshot and resume: what a client gets between its subscribe ack and the live messages.

A new subscriber first gets the topic's retained state (the *snapshot*: the latest value per
slot, marked ``"snapshot": true``). A reconnecting one that says where it stopped (``since``:
the epoch and ``seq`` of the last message it saw) gets what it missed instead, if the bus's
history still covers it, else a snapshot (the ack says which with ``recovered``).

On a bus in another process the answer may need I/O. The client is then *awaiting*
(:class:`Awaiting`): the fan-out holds the topic's live messages for it, and once the answer is
there they follow it, without the ones it already contains, so a client never sees a live
message before its snapshot nor a message twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson

from tickhub.bus import Bus, BusMessage
from tickhub.core import protocol
from tickhub.core.clock import Clock
from tickhub.core.commands import ResumePoint
from tickhub.fanout.session import Session
from tickhub.runtime.tasks import TaskSet

log = logging.getLogger(__name__)


class Awaiting:
    """Clients waiting for a topic's snapshot or missed messages, and the live messages held
    for each meanwhile.

    Contract: between :meth:`hold` and :meth:`release` (or :meth:`forget`) the fan-out appends
    every live message of the topic for that client to its list instead of sending it.
    ``by_topic`` (topic -> client -> held messages) is the table the fan-out reads directly.
    """

    __slots__ = ("by_topic",)

    def __init__(self) -> None:
        self.by_topic: dict[str, dict[Session, list[BusMessage]]] = {}

    def hold(self, session: Session, t: str) -> None:
        """Hold live messages of ``t`` for the client from now on."""
        self.by_topic.setdefault(t, {})[session] = []

    def release(self, session: Session, t: str) -> list[BusMessage]:
        """Stop holding live messages of ``t`` for the client; the ones held so far."""
        waiting = self.by_topic.get(t)
        if waiting is None:
            return []
        held = waiting.pop(session, [])
        if not waiting:
            del self.by_topic[t]
        return held

    def forget(self, session: Session, t: str) -> None:
        """The client no longer wants ``t``: its held messages go, unsent."""
        self.release(session, t)


@dataclass(frozen=True, slots=True)
class Missed:
    """The history covers the gap: the payloads the client missed, in ``seq`` order."""

    payloads: list[bytes]


class Uncovered(Enum):
    """Why there are no missed messages to send at once."""

    GONE = "gone"
    """The history does not reach back that far (or another producer run): a fresh snapshot."""
    PENDING = "pending"
    """Only the bus's I/O can tell: ask it, and hold live messages meanwhile."""


Catchup = Missed | Uncovered


def catchup_nowait(bus: Bus, t: str, since: ResumePoint) -> Catchup:
    """What the bus can say without I/O about what a client that stopped at ``since`` missed."""
    found = bus.recover_nowait(t, since.epoch, since.seq)
    if isinstance(found, list):
        return Missed(found)
    if found is False:
        return Uncovered.PENDING
    return Uncovered.GONE


class Recovery:
    """Acks, snapshots and resumes for new subscriptions.

    Contract: :meth:`start` sends the ``subscribed`` ack, then the snapshot or the missed
    messages, at once when the bus knows them locally, else from a task in ``tasks`` while the
    topic's live messages wait in ``awaiting``. A fetch that fails is logged and counts as an
    empty snapshot. Nothing is sent to a client that has gone, or unsubscribed, meanwhile
    (``is_live``).
    """

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        awaiting: Awaiting,
        tasks: TaskSet,
        is_live: Callable[[Session, str], bool],
    ) -> None:
        self.bus = bus
        self.clock = clock
        self.awaiting = awaiting
        self._tasks = tasks
        self._is_live = is_live

    def start(
        self,
        session: Session,
        t: str,
        symbol: str,
        extra: dict[str, Any],
        since: ResumePoint | None,
    ) -> None:
        """The ack (with ``extra``), then the snapshot or what was missed since ``since``."""
        if since is None:
            session.send(protocol.subscription(self.clock.now(), "subscribed", symbol, **extra))
            self._send_snapshot(session, t)
            return
        plan = catchup_nowait(self.bus, t, since)
        if plan is Uncovered.PENDING:
            # Live messages for this client wait until the recovered ones are sent.
            self.awaiting.hold(session, t)
            self._tasks.spawn(
                self._recover_later(session, t, symbol, since, extra),
                name=f"subscribe:{session.id}:{t}",
            )
            return
        extra["recovered"] = isinstance(plan, Missed)
        session.send(protocol.subscription(self.clock.now(), "subscribed", symbol, **extra))
        if isinstance(plan, Missed):
            for payload in plan.payloads:
                session.send(payload)
            return
        self._send_snapshot(session, t)

    async def _recover_later(
        self, session: Session, t: str, symbol: str, since: ResumePoint, extra: dict[str, Any]
    ) -> None:
        try:
            missed = await self.bus.recover(t, since.epoch, since.seq)
        except Exception:
            log.exception("recovery failed for %s", t)
            missed = None
        if missed is None:
            # Not covered: a fresh snapshot (it takes the held live messages over as well).
            if self._is_live(session, t):
                extra["recovered"] = False
                session.send(protocol.subscription(self.clock.now(), "subscribed", symbol, **extra))
            await self._fetch_snapshot(session, t)
            return
        held = self.awaiting.release(session, t)
        if not self._is_live(session, t):
            return
        extra["recovered"] = True
        session.send(protocol.subscription(self.clock.now(), "subscribed", symbol, **extra))
        last = 0
        for payload in missed:
            session.send(payload)
            last = max(last, seq_of(payload))
        for message in held:
            if message.seq > last:  # what arrived live meanwhile, without repeats
                session.send(message.payload)

    def _send_snapshot(self, session: Session, t: str) -> None:
        retained = self.bus.retained_nowait(t)
        if retained is not None:
            for payload in retained:
                session.send(protocol.mark_snapshot(payload))
            return
        # A remote bus without a local copy: fetch it. Live messages for this client wait until
        # it is sent, so the snapshot never arrives after newer live messages.
        self.awaiting.hold(session, t)
        self._tasks.spawn(self._fetch_snapshot(session, t), name=f"snapshot:{session.id}:{t}")

    async def _fetch_snapshot(self, session: Session, t: str) -> None:
        try:
            retained = await self.bus.retained(t)
        except ConnectionError as exc:  # the bus is down: it says so itself, once
            log.warning("no snapshot for %s: %s", t, exc)
            retained = []
        except Exception:
            log.exception("snapshot fetch failed for %s", t)
            retained = []
        held = self.awaiting.release(session, t)
        if not self._is_live(session, t):
            return
        # The snapshot was read after (or while) the held messages arrived: a held update of a
        # retained value that is not newer than the snapshot is in it already; events are not.
        newest = max((seq_of(p) for p in retained), default=0)
        for payload in retained:
            session.send(protocol.mark_snapshot(payload))
        for message in held:
            if message.retain is None or message.seq > newest:
                session.send(message.payload)


def seq_of(payload: bytes) -> int:
    """The ``seq`` of an encoded message, 0 when it has none."""
    try:
        seq = orjson.loads(payload).get("seq", 0)
    except (orjson.JSONDecodeError, AttributeError):
        return 0
    return seq if isinstance(seq, int) else 0
