"""The resume history the publish script keeps in Redis, read back as a ``TopicHistory``.

Any gateway can then answer ``since`` exactly, whichever gateway the client saw before.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tickhub.bus.history import TopicHistory
from tickhub.bus.redis.codec import decode_envelope


def stored_history(
    topic: str,
    meta: dict[bytes, bytes],
    stream: list[tuple[bytes, dict[bytes, bytes]]],
    new_history: Callable[[], TopicHistory],
) -> TopicHistory | None:
    """The history of the topic's history hash ``meta`` and stream ``stream`` (ages in
    wall-clock time), ``None`` if empty. ``ValueError``, ``UnicodeError``, ``KeyError`` or
    ``TypeError`` for what the script did not write."""
    if not meta or b"e" not in meta:
        return None
    history = new_history()
    history.epoch = meta[b"e"].decode()
    history.floor = int(meta.get(b"f", b"0"))
    now = time.time()
    for _, fields in stream:
        message, _ = decode_envelope(topic, fields[b"m"])
        if message.epoch != history.epoch:
            continue  # written before the producer restarted (a race with the reset)
        at = message.published_at or now
        history.record(history.epoch, message.seq, message.slot, None, message.payload, at)
    state: list[tuple[int, str, bytes]] = []
    for key, value in meta.items():
        if key.startswith(b"r:"):
            raw_seq, _, payload = value.partition(b" ")
            state.append((int(raw_seq), key[2:].decode(), payload))
    for s, name, payload in sorted(state):
        history.state[name] = (s, payload)
    history.last_seq = max(history.last_seq, int(meta.get(b"l", b"0")))
    return history
