"""Message bus between producers (feed and engines) and the hub (fan-out).

``memory://`` (default, in-process) is the reference implementation; ``redis://`` lets several
gateway processes share one producer. Chosen by URL with :func:`create_bus`; each backend is
imported only when asked for.
"""

from __future__ import annotations

from tickhub.bus.base import Bus, BusMessage, Handler


def create_bus(url: str) -> Bus:
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        from tickhub.bus.memory import MemoryBus

        return MemoryBus()
    raise ValueError(f"unsupported bus url: {url!r} (supported: memory://)")


__all__ = ["Bus", "BusMessage", "Handler", "create_bus"]
