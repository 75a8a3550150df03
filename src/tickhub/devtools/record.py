"""``tickhub record``: run a feed and write its ticks to a tick file that the replay feed reads."""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Callable
from typing import Any

from tickhub.core import defaults
from tickhub.core.clock import Clock
from tickhub.core.model import FeedState, FeedStatus
from tickhub.feeds.base import Feed
from tickhub.feeds.replay.ticks import DEFAULT_FLUSH_EVERY, TickWriter
from tickhub.runtime.clock import SystemClock

log = logging.getLogger(__name__)


async def record(
    feed: Feed,
    path: str | os.PathLike[str],
    *,
    duration: float | None = None,
    clock: Clock | None = None,
    append: bool = False,
    flush_every: int = DEFAULT_FLUSH_EVERY,
    progress: Callable[[int, float], None] | None = None,
    progress_every: float = defaults.RECORD_PROGRESS_INTERVAL,
) -> int:
    """Run ``feed`` and write its ticks to ``path``; returns the number of ticks written.

    The recording ends when ``duration`` seconds of ``clock`` have passed (``None``: no limit),
    when the feed reports ``FINISHED`` (a replay reaching its end) or ``STOPPED``, when its
    ``run`` returns, or when this call is cancelled. Cancelling (Ctrl-C under ``asyncio.run``)
    ends it like the duration does: the feed is cancelled, the file flushed and closed, and the
    count returned; the cancellation is absorbed (and ``uncancel``-ed). An error of the feed (or
    of writing) is raised after the file is closed. The feed runs as a named task, never left
    behind.

    ``progress(ticks written, seconds elapsed)`` is called every ``progress_every`` seconds of
    ``clock`` while recording, so that a long recording is visibly alive (the CLI prints it).
    """
    if duration is not None and not (math.isfinite(duration) and duration >= 0):
        raise ValueError(f"duration must be a non-negative number of seconds: {duration!r}")
    if not (math.isfinite(progress_every) and progress_every > 0):
        raise ValueError(f"progress_every must be a positive number of seconds: {progress_every!r}")
    clock = clock if clock is not None else SystemClock()
    stopped = asyncio.Event()
    last_state: FeedState | None = None

    def on_status(status: FeedStatus) -> None:
        nonlocal last_state
        if status.state is not last_state:
            last_state = status.state
            log.info("feed %s: %s", feed.name, status.describe())
        if status.state in (FeedState.STOPPED, FeedState.FINISHED):
            stopped.set()

    with TickWriter(path, append=append, flush_every=flush_every) as writer:
        feed_task = asyncio.create_task(
            feed.run(writer.write, on_status), name=f"record {feed.name}"
        )
        waiters: list[asyncio.Task[Any]] = [
            feed_task,
            asyncio.create_task(stopped.wait(), name="record: feed stopped"),
        ]
        if duration is not None:
            waiters.append(asyncio.create_task(clock.sleep(duration), name="record: duration"))
        if progress is not None:
            reporter = _report(writer, clock, progress, progress_every)
            waiters.append(asyncio.create_task(reporter, name="record: progress"))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.wait(waiters)
        for waiter in waiters[1:]:
            if not waiter.cancelled() and (error := waiter.exception()) is not None:
                raise error
        if not feed_task.cancelled() and (error := feed_task.exception()) is not None:
            raise error
    log.info("recorded %d ticks to %s", writer.rows, writer.path)
    return writer.rows


async def _report(
    writer: TickWriter, clock: Clock, progress: Callable[[int, float], None], every: float
) -> None:
    """Never returns: it only ends when the recording does (a failing ``progress`` raises)."""
    started = clock.monotonic()
    while True:
        await clock.sleep(every)
        progress(writer.rows, clock.monotonic() - started)
