"""Per-topic ``seq``/``epoch`` bookkeeping: what was seen, what was missed (no I/O, no timers).

docs/protocol.md §7-8: every topic numbers its ``data`` messages 1, 2, 3... under an ``epoch``
(the producer run). A live message that skips numbers means messages were replaced (a slow link,
or state left out of a recovery); another ``epoch`` means the server restarted and what the
client holds for the topic is to be dropped; a ``subscribed`` ack with ``"recovered": false``
says a resume could not be served and a fresh snapshot follows. Each of these is a :class:`Gap`
for the user. The rules are the JavaScript client's (``SeqTracker`` in ``tickhub.js``), plus the
two gaps that client leaves implicit (a refused resume, a new epoch), which a Python user asked
to be told about.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ALL",
    "Gap",
    "Observation",
    "SeqTracker",
    "indicator_set_of",
    "set_suffix",
    "topic_of",
]

ALL = "*"
"""The portfolio's every-position topic (messages carry ``"subscription": "*"``)."""

GapReason = Literal["skipped", "not_recovered", "epoch_changed"]


def indicator_set_of(msg: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The indicator set of an /ws/analysis ack (``indicators``) or data message
    (``data.indicators``), canonical as the server sends it; ``None`` for the default set."""
    value = msg.get("indicators")
    if value is None:
        data = msg.get("data")
        value = data.get("indicators") if isinstance(data, Mapping) else None
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def set_suffix(indicators: tuple[str, ...] | None) -> str:
    """What a set adds to its topic's name: ``[ema:9,rsi:14]``; nothing for the default set."""
    return f"[{','.join(indicators)}]" if indicators else ""


def topic_of(msg: Mapping[str, Any]) -> str:
    """``SYMBOL@interval`` on /ws/stream and /ws/analysis (``SYMBOL@interval[ema:9,rsi:14]`` for
    an indicator set: each set of a symbol and interval is its own topic, docs/protocol.md
    §6.2.1), ``SYMBOL`` on /ws/alerts and /ws/portfolio, ``*`` for a portfolio ``*``
    subscription's messages (and its acks)."""
    if msg.get("subscription") == ALL or msg.get("symbol") == ALL:
        return ALL
    symbol = str(msg.get("symbol", ""))
    interval = msg.get("interval")
    if not interval:
        return symbol
    return f"{symbol}@{interval}{set_suffix(indicator_set_of(msg))}"


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages of a topic the client did not receive.

    - ``skipped``: a live message came with ``seq`` beyond ``last + 1``; ``missed`` say how
      many (each was a full state replaced by a newer one, so the newest is correct alone).
    - ``not_recovered``: a resume from ``(epoch, last)`` was refused (a restart, or too far
      back); a fresh snapshot follows and replaces what is held. ``missed`` is unknown.
    - ``epoch_changed``: a message of a new ``epoch`` came without a refused resume (a scale-out
      ingest restarted under a running gateway); hold the new messages as the truth.

    ``epoch`` and ``last`` are the position the client held; ``seq`` the message that showed the
    gap (``None`` for a refused resume, reported at its ack).
    """

    topic: str
    symbol: str
    interval: str | None
    reason: GapReason
    epoch: str | None
    last: int | None
    seq: int | None
    missed: int | None
    indicators: tuple[str, ...] | None = None
    """The topic's indicator set (/ws/analysis), ``None`` for the default one."""


@dataclass(frozen=True, slots=True)
class Observation:
    """What one ``data`` message means for its topic."""

    topic: str
    snapshot: bool
    stale: bool
    """Same epoch and ``seq`` not above the last seen: not newer than what was delivered."""
    reset: bool
    """Drop what is held for the topic: this message starts it afresh."""
    gap: Gap | None


@dataclass(slots=True)
class _Position:
    epoch: str
    seq: int
    fresh: bool = False
    reported: bool = False


class SeqTracker:
    """The last ``(epoch, seq)`` per topic, and the gaps between messages."""

    def __init__(self) -> None:
        self._topics: dict[str, _Position] = {}

    def observe(self, msg: Mapping[str, Any]) -> Observation:
        topic = topic_of(msg)
        snapshot = msg.get("snapshot") is True
        seq, epoch = msg.get("seq"), msg.get("epoch")
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(epoch, str):
            return Observation(topic, snapshot, False, False, None)
        last = self._topics.get(topic)
        if last is None:
            self._topics[topic] = _Position(epoch, seq)
            return Observation(topic, snapshot, False, False, None)
        if last.epoch != epoch or last.fresh:
            gap = None
            if not last.reported:
                gap = Gap(
                    topic,
                    _symbol(msg),
                    _interval(msg),
                    "epoch_changed",
                    last.epoch,
                    last.seq,
                    seq,
                    None,
                    indicator_set_of(msg),
                )
            self._topics[topic] = _Position(epoch, seq)
            return Observation(topic, snapshot, False, True, gap)
        if seq <= last.seq:
            return Observation(topic, snapshot, True, False, None)
        gap = None
        if not snapshot and seq > last.seq + 1:
            missed = seq - last.seq - 1
            gap = Gap(
                topic,
                _symbol(msg),
                _interval(msg),
                "skipped",
                epoch,
                last.seq,
                seq,
                missed,
                indicator_set_of(msg),
            )
        last.seq = seq
        return Observation(topic, snapshot, False, False, gap)

    def refused(self, ack: Mapping[str, Any]) -> Gap | None:
        """A ``subscribed`` ack with ``"recovered": false``: the next message of its topic starts
        it afresh; the gap is reported now (once), with the position that could not be resumed."""
        topic = topic_of(ack)
        last = self._topics.get(topic)
        if last is None:
            return None
        last.fresh = True
        last.reported = True
        return Gap(
            topic,
            _symbol(ack),
            _interval(ack),
            "not_recovered",
            last.epoch,
            last.seq,
            None,
            None,
            indicator_set_of(ack),
        )

    def position(self, topic: str) -> tuple[str, int] | None:
        """The last ``(epoch, seq)`` seen on ``topic``: the resume point of a reconnect."""
        p = self._topics.get(topic)
        return None if p is None else (p.epoch, p.seq)

    def forget(self, symbol: str, interval: str | None = None) -> None:
        """Drop a symbol's topics: one interval (with every indicator set of it, as the server's
        unsubscribe does), or every interval when ``interval`` is None."""
        if symbol == ALL:
            self._topics.pop(ALL, None)
            return
        if interval is not None:
            base = f"{symbol}@{interval}"
            for topic in [t for t in self._topics if t == base or t.startswith(f"{base}[")]:
                del self._topics[topic]
            return
        for topic in [t for t in self._topics if t == symbol or t.startswith(f"{symbol}@")]:
            del self._topics[topic]

    def topics(self) -> dict[str, tuple[str, int]]:
        return {t: (p.epoch, p.seq) for t, p in self._topics.items()}


def _symbol(msg: Mapping[str, Any]) -> str:
    return str(msg.get("symbol", ""))


def _interval(msg: Mapping[str, Any]) -> str | None:
    interval = msg.get("interval")
    return interval if isinstance(interval, str) else None
