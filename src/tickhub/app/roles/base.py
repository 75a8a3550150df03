"""What every role of the service shares: the settings, clock, instruments and bus it is built
around, its named background tasks, and the order in which it starts and stops.

A role says what it runs by overriding the hooks (``_start_parts``, ``_stop_serving``,
``_release``, ``_feed_health``); it never asks which role it is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import Any, ClassVar

from tickhub import __version__
from tickhub.app.build import build_bus, build_registry
from tickhub.app.config import Settings
from tickhub.bus import Bus
from tickhub.core import protocol
from tickhub.core.clock import Clock
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import FeedState
from tickhub.runtime.clock import SystemClock
from tickhub.runtime.tasks import TaskSet

log = logging.getLogger(__name__)

HEALTHY_STATES = (FeedState.LIVE.value, FeedState.MARKET_CLOSED.value, FeedState.FINISHED.value)
"""Feed states in which ``/health`` says ``ok``."""


class Service(ABC):
    """One tickhub process. Build it, ``await start()``, then ``await stop()`` (or
    ``run_forever()``, which stops on SIGINT or SIGTERM).

    ``start`` returns the port it serves on (``None`` for a role without a server); ``stop``
    may be called more than once and cancels every background task the role started.
    """

    role: ClassVar[str]
    """The ``ROLE`` this class plays: ``all``, ``ingest`` or ``gateway``."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        registry: InstrumentRegistry | None = None,
        bus: Bus | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.registry = registry or build_registry(settings)
        self.bus = bus or build_bus(settings)
        self.port: int | None = None
        self.started_at = time.monotonic()
        self._tasks = TaskSet(log)
        self._stopping = False

    # --- what a role provides ------------------------------------------------------------------

    @abstractmethod
    async def _start_parts(self) -> None:
        """Start what the role runs, once the bus is up; a role with a server sets ``port``."""

    async def _stop_serving(self) -> None:
        """Stop taking clients and close those connected (before the tasks are cancelled)."""
        return None

    def _leave_bus(self) -> None:
        """Take this role's handlers off the bus before it closes: a shared bus (or one that
        outlives the service, as in tests) must not keep calling into a stopped role."""
        return None

    def _release(self) -> None:
        """Give back what outlives the bus (the store), once everything else has stopped."""
        return None

    @abstractmethod
    def _feed_health(self) -> dict[str, Any]:
        """The ``feed`` part of :meth:`health`: at least ``name`` and ``state``."""

    def _connection_count(self) -> int:
        return 0

    def _health_extra(self) -> dict[str, Any]:
        """Fields only this role's health body has, appended at its end."""
        return {}

    def _announce(self) -> None:
        log.info(
            "tickhub %s (%s) serving ws://%s:%d/ws/{stream,analysis,alerts,portfolio} "
            "(feed=%s, bus=%s)",
            __version__,
            self.role,
            self.settings.host,
            self.port,
            self.settings.feed,
            self.settings.bus_url.split("://", 1)[0],
        )

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> int | None:
        await self.bus.start()
        await self._start_parts()
        self.started_at = time.monotonic()
        self._announce()
        return self.port

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        await self._stop_serving()
        await self._tasks.aclose()
        self._leave_bus()
        await self.bus.close()
        self._release()
        log.info("tickhub stopped")

    async def run_forever(self) -> None:
        """Serve until SIGINT or SIGTERM, then stop within ``SHUTDOWN_TIMEOUT``."""
        # The handlers go in before the "serving" line: a supervisor (or a test) that sends
        # SIGTERM as soon as it reads that line gets the orderly shutdown, not a kill.
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        await self.start()
        try:
            await done.wait()
        finally:
            log.info("shutting down")
            try:
                await asyncio.wait_for(self.stop(), self.settings.shutdown_timeout)
            except TimeoutError:
                log.error("shutdown took over %gs; exiting anyway", self.settings.shutdown_timeout)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coro`` until :meth:`stop`; a failure is logged with its traceback when it
        happens, not when the task is collected."""
        self._tasks.spawn(coro, name=name)

    # --- health --------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The operators' health body (``/health`` with details): ``ok`` when the feed is live
        or the market closed, ``degraded`` otherwise."""
        feed = self._feed_health()
        body: dict[str, Any] = {
            "status": "ok" if feed["state"] in HEALTHY_STATES else "degraded",
            "service": "tickhub",
            "role": self.role,
            "version": __version__,
            "timestamp": protocol.iso(self.clock.now()),
            "uptime_seconds": round(time.monotonic() - self.started_at, 3),
            "pid": os.getpid(),
            "feed": feed,
            "bus": self.settings.bus_url.split("://", 1)[0],
            "connections": self._connection_count(),
            "instruments": len(self.registry),
        }
        body.update(self._health_extra())
        return body
