"""The service in each of its roles, one class per role.

``ROLE=all`` (the default) is one process; ``ingest`` and ``gateway`` split it in two across a
shared bus (see ``cluster``). Each class holds exactly the components its role has.
"""

from __future__ import annotations

from tickhub.app.config import Settings
from tickhub.app.roles.base import Service
from tickhub.app.roles.gateway import GatewayService
from tickhub.app.roles.ingest import IngestService
from tickhub.app.roles.single import SingleService
from tickhub.bus import Bus
from tickhub.core.clock import Clock
from tickhub.core.instruments import InstrumentRegistry
from tickhub.feeds.base import Feed

ROLES = ("all", "ingest", "gateway")
"""``all``: one process (the default). ``ingest``: feed and engines, publishing on the bus.
``gateway``: WebSocket and HTTP endpoints fed by the bus."""

__all__ = ["ROLES", "GatewayService", "IngestService", "Service", "SingleService", "create_service"]


def create_service(
    settings: Settings,
    role: str = "all",
    *,
    clock: Clock | None = None,
    registry: InstrumentRegistry | None = None,
    feed: Feed | None = None,
    bus: Bus | None = None,
) -> Service:
    """The service for ``role`` (one of :data:`ROLES`), built and not started; a ``ValueError``
    for an unknown role, or a feed given to a gateway (which has none)."""
    if role == "all":
        return SingleService(settings, clock=clock, registry=registry, feed=feed, bus=bus)
    if role == "ingest":
        return IngestService(settings, clock=clock, registry=registry, feed=feed, bus=bus)
    if role == "gateway":
        if feed is not None:
            raise ValueError("a gateway has no feed: its data comes from the ingest")
        return GatewayService(settings, clock=clock, registry=registry, bus=bus)
    raise ValueError(f"unknown role: {role!r} (one of {', '.join(ROLES)})")
