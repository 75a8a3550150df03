"""Bounded per-topic history for resuming a stream after a reconnect (pure, no I/O).

A client that reconnects sends the last ``(epoch, seq)`` it saw on a topic and should get
exactly what it missed. Not every message needs keeping for that: state that is replaced by
the next update (ticks, depth, the analysis of a forming candle, alert lists, positions) is
recovered by sending its latest value, which the retained state already holds. What must not
be lost is kept here: events (``slot=None``, alert firings) and the final state of every candle
(one entry per candle slot; a newer update of the same candle replaces the older one).

``floor`` is the highest ``seq`` that was evicted (by count or age): every kept-class message
with a larger ``seq`` is still here, so a client whose last ``seq`` is at least ``floor`` can be
recovered exactly; an older one gets a fresh snapshot instead.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from tickhub.bus.base import BusMessage
from tickhub.core import defaults

_unique = itertools.count()


def recoverable(slot: str | None) -> bool:
    """Messages a resumed client must receive individually (the rest is recovered as state)."""
    return slot is None or slot.startswith("candle:")


@dataclass(slots=True)
class TopicHistory:
    max_entries: int = defaults.HISTORY_SIZE
    max_age: float = defaults.HISTORY_AGE
    epoch: str = ""
    floor: int = 0
    last_seq: int = 0
    # key -> (seq, published_at, payload); insertion order is seq order.
    entries: dict[object, tuple[int, float, bytes]] = field(default_factory=dict)
    # retained name -> (seq, payload) of messages that were delivered live
    state: dict[str, tuple[int, bytes]] = field(default_factory=dict)

    def record(
        self,
        epoch: str,
        seq: int,
        slot: str | None,
        retain: str | None,
        payload: bytes,
        at: float,
    ) -> None:
        if epoch != self.epoch:
            # The producer restarted: its numbering means nothing to old clients.
            self.epoch, self.floor = epoch, seq - 1
            self.entries.clear()
            self.state.clear()
        self.last_seq = max(self.last_seq, seq)
        if retain is not None:
            self.state.pop(retain, None)
            self.state[retain] = (seq, payload)
        if recoverable(slot):
            key: object = slot if slot is not None else next(_unique)
            self.entries.pop(key, None)
            self.entries[key] = (seq, at, payload)
            self._evict(at)

    def observe(self, message: BusMessage, at: float) -> None:
        """What a message seen on the topic at ``at`` means for resume, for every bus alike: a
        numbered message is recorded (a snapshot-only copy, ``deliver=False``, was never sent
        live: nothing to recover but its number); an unnumbered one that drops retained state
        drops it here too."""
        if message.seq:
            if message.deliver:
                slot, retain = message.slot, message.retain
            else:
                slot, retain = "snapshot-only", None
            self.record(message.epoch, message.seq, slot, retain, message.payload, at)
        elif message.drop and message.retain is not None:
            self.drop_state(message.retain)

    def drop_state(self, retain: str) -> None:
        self.state.pop(retain, None)

    def _evict(self, now: float) -> None:
        entries = self.entries
        while entries:
            key = next(iter(entries))
            seq, at, _ = entries[key]
            if len(entries) <= self.max_entries and now - at <= self.max_age:
                break
            del entries[key]
            self.floor = max(self.floor, seq)

    def since(self, epoch: str, seq: int, now: float) -> list[bytes] | None:
        """What a client that last saw ``(epoch, seq)`` missed, in ``seq`` order, or ``None``
        when the history no longer covers it (other epoch, evicted, or a future ``seq``)."""
        self._evict(now)
        if epoch != self.epoch or seq < self.floor or seq > self.last_seq:
            return None
        missed = [(s, p) for s, _, p in self.entries.values() if s > seq]
        missed += [(s, p) for s, p in self.state.values() if s > seq]
        missed.sort(key=lambda item: item[0])
        out: list[bytes] = []
        last = -1
        for s, p in missed:
            if s != last:  # the same message can be both an entry and the retained state
                out.append(p)
                last = s
        return out
