"""TaskSet: named tasks, failures logged when they happen, everything ended on close."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest

from tickhub.runtime.tasks import TaskSet


async def test_spawn_names_the_task_and_forgets_it_once_done() -> None:
    tasks = TaskSet()

    async def work() -> int:
        return 7

    task = tasks.spawn(work(), name="work:1")
    assert task.get_name() == "work:1"
    assert len(tasks) == 1
    assert await task == 7
    assert len(tasks) == 0


async def test_a_failure_is_logged_with_its_traceback_and_not_reported_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    logger = logging.getLogger("tests.tasks")
    tasks = TaskSet(logger)

    async def broken() -> None:
        raise ValueError("boom")

    task = tasks.spawn(broken(), name="snapshot:s1:t")
    with caplog.at_level(logging.ERROR, logger="tests.tasks"):
        await asyncio.wait([task])
    [record] = [r for r in caplog.records if r.name == "tests.tasks"]
    assert "snapshot:s1:t" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
    assert len(tasks) == 0
    del task, record
    gc.collect()  # an unretrieved exception would be reported when the task is collected
    assert unhandled == []
    loop.set_exception_handler(None)


async def test_cancel_stops_every_running_task_without_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = TaskSet()
    never = asyncio.Event()
    running = [tasks.spawn(never.wait(), name=f"wait:{i}") for i in range(3)]
    tasks.cancel()
    with caplog.at_level(logging.ERROR):
        await asyncio.wait(running)
    assert all(t.cancelled() for t in running)
    assert len(tasks) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_aclose_cancels_and_waits_for_the_tasks_to_end() -> None:
    tasks = TaskSet()
    started = asyncio.Event()
    cleaned: list[str] = []
    cleanup_done = asyncio.Event()
    cleanup_done.set()

    async def holds_a_resource() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await cleanup_done.wait()  # cleanup that awaits still runs to the end
            cleaned.append("done")

    task = tasks.spawn(holds_a_resource(), name="resource")
    await started.wait()
    await tasks.aclose()
    assert task.done() and task.cancelled()
    assert cleaned == ["done"]
    assert len(tasks) == 0


async def test_aclose_also_ends_tasks_spawned_while_closing() -> None:
    tasks = TaskSet()
    started = asyncio.Event()
    spawned: list[asyncio.Task[Any]] = []

    async def respawns() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            spawned.append(tasks.spawn(asyncio.Event().wait(), name="late"))

    tasks.spawn(respawns(), name="first")
    await started.wait()
    await tasks.aclose()
    assert len(spawned) == 1 and spawned[0].cancelled()
    assert len(tasks) == 0


async def test_aclose_on_an_empty_set_returns() -> None:
    await TaskSet().aclose()


def test_spawn_needs_a_running_loop() -> None:
    async def work() -> None:
        return None

    coro = work()
    with pytest.raises(RuntimeError):
        TaskSet().spawn(coro, name="nowhere")
    coro.close()
