"""The candle writer: closed candles reach a real SQLite store in batches, off the event loop;
its queue is bounded (the oldest dropped and counted), a failed write is retried, and closing
writes what is left."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.fakes import closed_candle
from tests.helpers import wait_until
from tickhub.core.model import Candle, Interval
from tickhub.ingest.candle_writer import CandleWriter
from tickhub.store.sqlite import SqliteStore


class CountingStore(SqliteStore):
    """A real store that records each ``save_candles`` call (its size and thread) and can be
    told to fail."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self.fail = False

    def save_candles(self, candles: Sequence[Candle]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.batches.append(len(candles))
        self.threads.add(threading.current_thread().name)
        super().save_candles(candles)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CountingStore]:
    s = CountingStore(tmp_path / "t.db")
    yield s
    s.close()


def stored(store: SqliteStore) -> list[Candle]:
    return store.load_candles("RELIANCE", Interval.M1, limit=10_000)


def test_limits_must_be_positive(store: CountingStore) -> None:
    with pytest.raises(ValueError, match="queue_size must be >= 1"):
        CandleWriter(store, queue_size=0)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        CandleWriter(store, batch=0)
    with pytest.raises(ValueError, match="period must be positive"):
        CandleWriter(store, period=0)


async def test_adding_never_touches_the_store_and_writes_go_in_batches_on_a_thread(
    store: CountingStore,
) -> None:
    writer = CandleWriter(store, batch=3)
    writer.extend(closed_candle(m) for m in range(7))
    assert store.batches == [] and writer.pending == 7
    await writer.write_pending()
    assert store.batches == [3, 3, 1]
    assert store.threads and threading.current_thread().name not in store.threads
    assert stored(store) == [closed_candle(m) for m in range(7)]
    assert writer.written == 7 and writer.pending == 0
    writer.close()


async def test_a_full_queue_drops_the_oldest_and_counts_them(
    store: CountingStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer = CandleWriter(store, queue_size=4)
    with caplog.at_level(logging.WARNING, "tickhub.ingest.candle_writer"):
        writer.extend(closed_candle(m) for m in range(10))
    assert writer.dropped == 6 and writer.pending == 4
    assert sum("queue full" in r.message for r in caplog.records) == 1  # once per episode
    await writer.write_pending()
    assert stored(store) == [closed_candle(m) for m in range(6, 10)]
    writer.close()


async def test_a_failed_write_keeps_its_batch_for_the_next_try(
    store: CountingStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer = CandleWriter(store, batch=2)
    writer.extend(closed_candle(m) for m in range(3))
    store.fail = True
    with caplog.at_level(logging.ERROR, "tickhub.ingest.candle_writer"):
        await writer.write_pending()
        await writer.write_pending()
    assert writer.failures == 2 and writer.pending == 3
    assert sum("write failed" in r.message for r in caplog.records) == 1
    store.fail = False
    await writer.write_pending()
    assert stored(store) == [closed_candle(m) for m in range(3)]
    writer.close()


async def test_the_loop_writes_every_period_and_close_writes_the_rest(
    store: CountingStore,
) -> None:
    writer = CandleWriter(store, period=0.01)
    task = asyncio.create_task(writer.run())
    writer.add(closed_candle(0))
    await wait_until(lambda: writer.written == 1, timeout=10)
    assert stored(store) == [closed_candle(0)]
    task.cancel()
    writer.add(closed_candle(1))
    writer.close()
    assert stored(store) == [closed_candle(0), closed_candle(1)]
    writer.add(closed_candle(2))  # after close: not queued
    assert writer.pending == 0
