"""Fakes that implement the real interfaces (one place for all of them)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta

from tickhub.core.model import IST, FeedState, FeedStatus, Instrument, Tick
from tickhub.engines.alerts import Alert, AlertEvent
from tickhub.feeds.base import StatusSink, TickSink


class ScriptedFeed:
    """A ``Feed`` whose ticks and states the test pushes by hand."""

    name = "scripted"

    def __init__(self) -> None:
        self._on_tick: TickSink | None = None
        self._on_status: StatusSink | None = None
        self._status = FeedStatus(FeedState.STARTING)
        self.running = asyncio.Event()
        self.subscribed: set[int] = set()

    async def run(self, on_tick: TickSink, on_status: StatusSink) -> None:
        self._on_tick, self._on_status = on_tick, on_status
        self.set_status(FeedState.LIVE, "scripted")
        self.running.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.set_status(FeedState.STOPPED)

    def push(self, *ticks: Tick) -> None:
        assert self._on_tick is not None, "feed not running"
        for tick in ticks:
            self._on_tick(tick)

    def set_status(self, state: FeedState, detail: str = "") -> None:
        self._status = FeedStatus(state, detail)
        if self._on_status is not None:
            self._on_status(self._status)

    def subscribe(self, instruments: Iterable[Instrument]) -> None:
        self.subscribed.update(i.instrument_token for i in instruments)

    def unsubscribe(self, instruments: Iterable[Instrument]) -> None:
        self.subscribed.difference_update(i.instrument_token for i in instruments)

    def status(self) -> FeedStatus:
        return self._status


def tick(
    symbol: str,
    ts: datetime,
    price: float,
    volume: int,
    *,
    prev_close: float = 100.0,
    token: int = 738561,
) -> Tick:
    return Tick(
        symbol=symbol,
        instrument_token=token,
        timestamp=ts,
        price=price,
        volume=volume,
        last_quantity=1,
        average_price=price,
        open=prev_close,
        high=max(price, prev_close),
        low=min(price, prev_close),
        prev_close=prev_close,
    )


# --- store rows -----------------------------------------------------------------------------------

T0 = datetime(2025, 1, 27, 10, 0, tzinfo=IST)


def alert(id: str = "a_000000000001", **kw: object) -> Alert:
    base: dict[str, object] = {"symbol": "RELIANCE", "condition": "above", "value": 2500.0}
    base.update(kw)
    return Alert(id=id, **base)  # type: ignore[arg-type]


def event(a: Alert, seconds: int = 0, price: float = 2510.0) -> AlertEvent:
    ts = T0 + timedelta(seconds=seconds)
    fired = Alert(
        id=a.id,
        symbol=a.symbol,
        condition=a.condition,
        value=a.value,
        owner=a.owner,
        once=a.once,
        note=a.note,
        source=a.source,
        triggered=True,
        triggered_at=ts,
        price=price,
        message=f"{a.symbol} at {price:.2f}",
        armed=False,
        last_price=price,
        fire_count=a.fire_count + 1,
    )
    return AlertEvent(fired, ts, price, fired.message or "", fired.category)


def position(symbol: str = "RELIANCE", owner: str = "u", **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "owner": owner,
        "symbol": symbol,
        "quantity": 10,
        "average_price": "2450.35",
        "product": "CNC",
        "exchange": "NSE",
        "updated_at": "2025-01-27T10:00:00+05:30",
    }
    row.update(kw)
    return row
