"""In-process bus: synchronous delivery, the reference every other backend must match."""

from __future__ import annotations

import logging

from tickhub.bus.base import BusMessage, Handler

log = logging.getLogger(__name__)


class MemoryBus:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._retained: dict[str, dict[str, bytes]] = {}

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
