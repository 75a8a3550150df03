"""BenchFeed: a ``Feed`` (tickhub.feeds.base) that emits ticks at a rate set while it runs.

Ticks go round robin over every instrument of a synthetic universe (``SYM0000``, ``SYM0001``...,
written as a Kite-format instruments CSV by :func:`write_instruments`). Each tick carries its
publish stamp in ``last_quantity``: CLOCK_MONOTONIC microseconds read when the tick is handed to
the service, a plain integer field that the real ``tick_data`` message carries unchanged. The load
client reads it on arrival with the same clock (same machine), so latency is publish-to-client
with microsecond precision and no clock skew. ``timestamp`` is market time: 10:00 IST on a fixed
day plus the time since the feed started, so candles bucket and close as in a session.

In a burst (``set_rate(rate, K)``) the feed hands ticks over as the Kite feed hands one binary
frame: K ticks of K different instruments (round robin), ``on_tick`` called K times back to back
in one callback, every ``K / rate`` seconds.
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pacer import Pacer

from tickhub.core.instruments import KITE_COLUMNS
from tickhub.core.model import FeedState, FeedStatus, Instrument, Tick
from tickhub.feeds.base import StatusSink, TickSink

PREFIX = "SYM"
MARKET_START = datetime(2025, 1, 27, 4, 30, tzinfo=UTC)  # 10:00 IST
_STEPS = 21  # prices cycle over base ± 10 tick sizes: no day high/low alerts, no 2 % moves


def symbol(i: int) -> str:
    return f"{PREFIX}{i:04d}"


def base_price(i: int) -> float:
    return round(100.0 + (i * 7919) % 3900 + 0.05 * (i % 20), 2)


def write_instruments(path: Path, count: int) -> Path:
    """A Kite-format instruments CSV of ``count`` NSE equities named ``SYM0000``..."""
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(KITE_COLUMNS)
        for i in range(count):
            sym = symbol(i)
            token, exchange_token, price = 100_001 + i, 1_001 + i, base_price(i)
            row = (token, exchange_token, sym, f"BENCH {sym}", price, "", 0.0, 0.05, 1)
            out.writerow((*row, "EQ", "NSE", "NSE"))
    return path


class BenchFeed:
    """Round-robin ticks for every instrument at a rate set with :meth:`set_rate`."""

    name = "bench"

    def __init__(self, instruments: Sequence[Instrument]) -> None:
        self._instruments = list(instruments)
        self._prices = [
            [round(base_price(i) + 0.05 * (k - _STEPS // 2), 2) for k in range(_STEPS)]
            for i in range(len(self._instruments))
        ]
        self._volumes = [0] * len(self._instruments)
        self._next = 0
        self._round = 0
        self._status = FeedStatus(FeedState.STARTING, "bench")
        self._on_tick: TickSink | None = None
        self._t0 = time.monotonic()
        self.pacer = Pacer(self._emit)

    async def run(self, on_tick: TickSink, on_status: StatusSink) -> None:
        self._on_tick = on_tick
        self._t0 = time.monotonic()
        self._status = FeedStatus(FeedState.LIVE, "bench")
        on_status(self._status)
        try:
            await asyncio.Event().wait()
        finally:
            self.pacer.stop()
            self._status = FeedStatus(FeedState.STOPPED, "bench")
            on_status(self._status)

    def set_rate(self, rate: float, burst: int = 1) -> None:
        """Ticks per second over all instruments: 0 stops, ``math.inf`` runs flat out; in frames
        of ``burst`` ticks handed over in one loop turn."""
        self.pacer.set_rate(rate, burst)

    def _emit(self) -> None:
        i = self._next
        inst = self._instruments[i]
        price = self._prices[i][self._round % _STEPS]
        base = self._prices[i][_STEPS // 2]
        self._volumes[i] += 25
        now = time.monotonic()
        assert self._on_tick is not None
        self._on_tick(
            Tick(
                symbol=inst.tradingsymbol,
                instrument_token=inst.instrument_token,
                timestamp=MARKET_START + timedelta(seconds=now - self._t0),
                price=price,
                volume=self._volumes[i],
                last_quantity=time.monotonic_ns() // 1000,
                average_price=base,
                buy_quantity=250_000,
                sell_quantity=240_000,
                open=base,
                high=round(base * 1.01, 2),
                low=round(base * 0.99, 2),
                prev_close=base,
            )
        )
        i += 1
        if i == len(self._instruments):
            i = 0
            self._round += 1
        self._next = i

    def subscribe(self, instruments: Iterable[Instrument]) -> None:
        return None  # streams every instrument, like the simulator

    def unsubscribe(self, instruments: Iterable[Instrument]) -> None:
        return None

    def status(self) -> FeedStatus:
        return self._status
