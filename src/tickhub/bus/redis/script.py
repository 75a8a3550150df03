"""The publish script (``script.lua``) seen from Python: named operations in, its compact
arguments out.

Every message the writer sends goes through this one script, so that a run of up to
``MESSAGES_PER_CALL`` messages is atomic and costs one command (see the script's header for the
layout of its ``KEYS`` and ``ARGV``). :func:`arguments` decides what a message does, as named
operations (:class:`RetainedOp`, :class:`HistoryOp`), and is the one place that knows the order
Lua reads them in; the writer only queues and sends them (:func:`load`, :func:`call`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from enum import StrEnum
from importlib import resources

from redis.asyncio.client import Pipeline

from tickhub.bus.base import BusMessage
from tickhub.bus.history import recoverable
from tickhub.bus.redis.codec import envelope_head, name_field
from tickhub.bus.redis.keys import Keys

SOURCE = resources.files(__package__ or __name__).joinpath("script.lua").read_text("utf-8")
SHA = hashlib.sha1(SOURCE.encode()).hexdigest()

MESSAGES_PER_CALL = 500
"""Messages per script call: Redis serves no one else while the script runs."""

Arguments = tuple[tuple[str, ...], tuple[str | bytes, ...]]
"""One message's share of a call: its ``KEYS`` and its ten ``ARGV``."""


class MessageArgs:
    """A message's :data:`Arguments` as :func:`call` takes them (the writer's queue entries
    are these, so that a queued message costs no more objects than it must)."""

    __slots__ = ("argv", "keys")

    def __init__(self, keys: tuple[str, ...], argv: tuple[str | bytes, ...]) -> None:
        self.keys = keys
        self.argv = argv


class RetainedOp(StrEnum):
    """What a message does to its topic's retained hash (ARGV ``op``).

    Members of both operations are the very strings the script reads, sent as they are.
    """

    NONE = "p"  # published only
    SET = "s"  # replaces the value named by ``retain``
    DROP = "d"  # removes it


class HistoryOp(StrEnum):
    """What a message does to its topic's resume history in Redis (ARGV ``hop``)."""

    NONE = ""  # not numbered: no history
    FORGET_STATE = "x"  # an unnumbered drop: the retained state is no longer recoverable
    RECORD = "n--"  # numbered: advances the last seq (and starts a new epoch)
    RECORD_STATE = "nr-"  # ... and is kept as the retained state of its name
    RECORD_ENTRY = "n-h"  # ... and is added to the stream of recoverable messages
    RECORD_STATE_AND_ENTRY = "nrh"  # ... both


# Bound once: an Enum's attribute lookup costs more than a global, and this runs per message.
_PUBLISH_ONLY, _SET, _DROP = RetainedOp.NONE, RetainedOp.SET, RetainedOp.DROP
_UNNUMBERED = (HistoryOp.NONE, "", "", "")
_FORGET_STATE = (HistoryOp.FORGET_STATE, "", "", "")
# The op of a numbered message by (kept as retained state, added to the stream).
_RECORD = {
    (False, False): HistoryOp.RECORD,
    (True, False): HistoryOp.RECORD_STATE,
    (False, True): HistoryOp.RECORD_ENTRY,
    (True, True): HistoryOp.RECORD_STATE_AND_ENTRY,
}


def arguments(keys: Keys, m: BusMessage) -> Arguments | None:
    """The script arguments that publish ``m`` (``None``: it has nothing to do).

    The one place that knows the order of ``KEYS`` and ``ARGV`` (``script.lua``'s header).
    Raises ``ValueError`` (or ``UnicodeError``, ``TypeError``, ``struct.error``) for a message
    the envelope cannot carry.
    """
    topic = m.topic
    head = envelope_head(m)
    payload = bytes(m.payload)
    retain = m.retain
    retained: RetainedOp
    if retain is None:
        if not m.deliver:
            return None  # neither state nor delivered
        retained = _PUBLISH_ONLY
        key_list: tuple[str, ...] = ()
        argv: tuple[str | bytes, ...] = (retained, keys.channel(topic), head, b"", payload, "")
    else:
        retained = _DROP if m.drop else _SET
        key_list = (keys.retained(topic),)
        argv = (retained, keys.channel(topic), head, name_field(retain), payload, retain)
    # What ``TopicHistory.record`` keeps, kept in Redis for resuming on any gateway.
    if m.seq:
        # Snapshot-only copies (deliver=False) were never sent live: nothing to recover.
        history = _RECORD[m.deliver and retain is not None, m.deliver and recoverable(m.slot)]
        key_list += (keys.state(topic), keys.stream(topic))
        numbered = (history, m.epoch, str(m.seq), str(m.seq - 1))
        return key_list, argv + numbered
    if m.drop and retain is not None:
        key_list += (keys.state(topic),)
        return key_list, argv + _FORGET_STATE
    return key_list, argv + _UNNUMBERED


def load(pipe: Pipeline) -> None:
    """Queue the loading of the script on ``pipe``.

    Meant for the start of every pipeline that calls it: a restarted Redis has forgotten it, and
    a NOSCRIPT halfway through a pipeline would reorder messages.
    """
    pipe.script_load(SOURCE)


def call(
    pipe: Pipeline, keys: Keys, *, stream_length: int, messages: Iterable[MessageArgs]
) -> None:
    """Queue one call that publishes ``messages`` (at most ``MESSAGES_PER_CALL``) in order;
    ``stream_length`` caps each topic's history stream. Its result is for :func:`refused`."""
    key_list: list[str] = [keys.version]
    argv: list[str | bytes] = [str(max(1, stream_length))]
    for message in messages:
        key_list.extend(message.keys)
        argv.extend(message.argv)
    pipe.evalsha(SHA, len(key_list), *key_list, *argv)


def refused(result: object, size: int) -> int:
    """How many of the ``size`` messages of a call Redis did not take, from its ``result``
    (all of them when the call failed)."""
    return result if isinstance(result, int) else size
