"""Closed candles as ``GET /candles`` serves them: the store's, and the engine's newest.

The store is written in batches, a little behind the engine (``candle_writer``); a candle that
closed a moment ago is in the engine's history but perhaps not yet in the store. So a process
that runs the engine answers from both, merged on the candle's start (no duplicates: the same
bucket from both sides is one candle, the engine's copy wins), and a gateway of a cluster, which
has no engine, answers from the store alone, which the ingest writes.
"""

from __future__ import annotations

from datetime import datetime

from tickhub.core.model import Candle, Interval
from tickhub.engines.candles import CandleEngine
from tickhub.store import CandleStore

__all__ = ["CandleHistory"]


class CandleHistory:
    """Reads closed candles from ``store`` and, when given, from ``engine``'s memory."""

    def __init__(self, store: CandleStore, engine: CandleEngine | None = None) -> None:
        self.store = store
        self.engine = engine

    def closed_candles(
        self,
        symbol: str,
        interval: Interval,
        *,
        start: datetime | None,
        end: datetime | None,
        limit: int,
    ) -> list[Candle]:
        """The newest ``limit`` closed candles with ``start`` in ``[start, end]``, oldest first."""
        if limit <= 0:
            return []
        stored = self.store.load_candles(symbol, interval, start=start, end=end, limit=limit)
        recent = [
            c
            for c in self._memory(symbol, interval)
            if (start is None or c.start >= start) and (end is None or c.start <= end)
        ]
        if not recent:
            return stored
        merged = {c.start: c for c in stored}
        merged.update((c.start, c) for c in recent)
        return sorted(merged.values(), key=lambda c: c.start)[-limit:]

    def newest_start(self, symbol: str, interval: Interval) -> datetime | None:
        """The start of the newest closed candle known, or ``None`` when there is none."""
        newest = self.store.load_candles(symbol, interval, limit=1)
        memory = self._memory(symbol, interval)
        starts = [c.start for c in (*newest, *memory[-1:])]
        return max(starts) if starts else None

    def _memory(self, symbol: str, interval: Interval) -> list[Candle]:
        engine = self.engine
        if engine is None or interval not in engine.intervals:
            return []
        return engine.history(symbol, interval)
