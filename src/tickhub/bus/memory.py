"""In-process bus: synchronous delivery, the reference every other backend must match."""

from __future__ import annotations

import logging
import time

from tickhub.bus.base import BusMessage, Handler
from tickhub.bus.history import TopicHistory
from tickhub.core import defaults

log = logging.getLogger(__name__)


class MemoryBus:
    """The ``Bus`` contract in one process: ``publish`` delivers before it returns, so there is
    never anything to wait for, and nothing is ever lost or sent twice."""

    def __init__(
        self,
        *,
        history_size: int = defaults.HISTORY_SIZE,
        history_age: float = defaults.HISTORY_AGE,
    ) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._retained: dict[str, dict[str, bytes]] = {}
        self._history: dict[str, TopicHistory] = {}
        self._history_size = history_size
        self._history_age = history_age

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._handlers.clear()

    def publish(self, message: BusMessage) -> None:
        if message.retain is not None:
            slots = self._retained.setdefault(message.topic, {})
            # Re-insert so that retained values stay in publish (seq) order.
            slots.pop(message.retain, None)
            if not message.drop:
                slots[message.retain] = message.payload
        history = self._history.get(message.topic)
        if history is None and message.seq:
            history = self._history[message.topic] = TopicHistory(
                self._history_size, self._history_age
            )
        if history is not None:
            history.observe(message, time.monotonic())
        handlers = self._handlers.get(message.topic)
        if not handlers or not message.deliver:
            return
        for handler in handlers:
            try:
                handler(message)
            except Exception:
                # One failing subscriber must not starve the others.
                log.exception("bus handler failed for topic %s", message.topic)

    def subscribe(self, topic: str, handler: Handler) -> None:
        handlers = self._handlers.setdefault(topic, [])
        if handler not in handlers:
            handlers.append(handler)

    def unsubscribe(self, topic: str, handler: Handler) -> None:
        handlers = self._handlers.get(topic)
        if handlers and handler in handlers:
            handlers.remove(handler)
            if not handlers:
                del self._handlers[topic]

    def retained_nowait(self, topic: str) -> list[bytes] | None:
        return list(self._retained.get(topic, {}).values())

    async def retained(self, topic: str) -> list[bytes]:
        return list(self._retained.get(topic, {}).values())

    async def flush(self) -> None:
        return None

    def recover_nowait(self, topic: str, epoch: str, seq: int) -> list[bytes] | bool | None:
        history = self._history.get(topic)
        if history is None:
            return None
        return history.since(epoch, seq, time.monotonic())

    async def recover(self, topic: str, epoch: str, seq: int) -> list[bytes] | None:
        found = self.recover_nowait(topic, epoch, seq)
        return None if found is False else found  # type: ignore[return-value]
