"""Message bus between producers (feed and engines) and the hub (fan-out).

``memory://`` (default, in-process) is the reference implementation; ``redis://`` (or
``redis+sentinel://``, a primary found through its Sentinels) lets several gateway processes
share one producer. Chosen by URL with :func:`create_bus`; each backend is imported only when
asked for.
"""

from __future__ import annotations

from tickhub.bus.base import Bus, BusMessage, Handler
from tickhub.core import defaults

REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel")
"""URL schemes of the Redis bus (``redis+sentinel``: a primary found through its Sentinels)."""


def create_bus(
    url: str,
    *,
    history_size: int = defaults.HISTORY_SIZE,
    history_age: float = defaults.HISTORY_AGE,
    prefix: str = defaults.BUS_PREFIX,
) -> Bus:
    """``history_*`` bound what a reconnecting client can recover with ``since``."""
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        from tickhub.bus.memory import MemoryBus

        return MemoryBus(history_size=history_size, history_age=history_age)
    if scheme in REDIS_SCHEMES:
        from tickhub.bus.redis import RedisBus, redact_url

        try:
            return RedisBus(url, prefix=prefix, history_size=history_size, history_age=history_age)
        except ValueError as exc:
            raise ValueError(f"invalid bus url: {redact_url(url)!r} ({exc})") from None
    raise ValueError(
        f"unsupported bus url: {url!r} (supported: memory://, redis://, rediss://, unix://, "
        "redis+sentinel://)"
    )


__all__ = ["REDIS_SCHEMES", "Bus", "BusMessage", "Handler", "create_bus"]
