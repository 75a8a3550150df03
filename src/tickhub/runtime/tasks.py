"""Background tasks that belong to a component: named, never failing silently, ended on shutdown.

``loop.create_task`` alone keeps only a weak reference to its task (a task nobody holds may be
collected mid-flight), reports an exception only when the task object is collected ("Task
exception was never retrieved", without the component's name), and leaves the task running when
its owner shuts down. A :class:`TaskSet` holds each task until it ends, logs a failure with its
traceback the moment it happens, and cancels what is still running when its owner closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    """The running tasks of one owner.

    Contract: :meth:`spawn` needs a running event loop and returns the task; the set holds it
    until it is done. A task that raises (anything but cancellation) is logged at ERROR on
    ``logger`` with its name and traceback, once, when it ends; its exception is then retrieved,
    so asyncio does not report it again. :meth:`cancel` asks every running task to stop and
    returns at once (for owners that close from synchronous code); :meth:`aclose` cancels and
    waits until all have ended. Spawning after either is allowed (the set is reusable).
    """

    __slots__ = ("_log", "_tasks")

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._log = logger if logger is not None else log

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task called ``name`` (named so a log line or a task dump says
        whose it is)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._log.error("task %s failed", task.get_name(), exc_info=exc)

    def __len__(self) -> int:
        """Tasks spawned and not yet done."""
        return len(self._tasks)

    def cancel(self) -> None:
        """Ask every running task to stop; they end at their next await."""
        for task in self._tasks:
            task.cancel()

    async def aclose(self) -> None:
        """Cancel every running task and wait until all have ended (failures are logged)."""
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
