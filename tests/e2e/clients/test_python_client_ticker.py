"""tickhub.client's callback style (``Ticker``, KiteTicker-like, in a thread of its own) against
the real service, stopped with SIGTERM (close 1001) and started again on the same port and data
directory: the callbacks see the close, the reconnects, the refused resume as a gap, every
candle close of each run once, and an alert that fired once before the restart never again."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.clients.test_python_client import (
    WAIT,
    assert_each_close_once_per_epoch,
    assert_numbered_or_reported,
)
from tests.helpers import free_port, serve_process
from tickhub.client import AlertData, CandleData, Event, Gap, Ticker, Welcome


class Calls:
    """What the callbacks were called with, in order, from the ticker's thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def record(self, name: str) -> Callable[..., None]:
        def callback(ticker: Ticker, *args: Any) -> None:
            assert threading.current_thread().name == "tickhub-ticker"
            with self._cond:
                self.calls.append((name, args))
                if name == "message":
                    self.events.append(args[0])
                self._cond.notify_all()

        return callback

    def of(self, name: str) -> list[tuple[Any, ...]]:
        with self._cond:
            return [args for n, args in self.calls if n == name]

    async def until(self, pred: Callable[[Calls], bool]) -> None:
        def wait() -> bool:
            with self._cond:
                return self._cond.wait_for(lambda: pred(self), WAIT)

        assert await asyncio.to_thread(wait), f"not reached; last calls: {self.calls[-5:]}"


def closes(c: Calls) -> list[CandleData]:
    return [e for e in c.events if isinstance(e, CandleData) and e.data.closed]


def attach(ticker: Ticker, calls: Calls) -> None:
    for name in ("connect", "gap", "status", "error", "close", "reconnect", "noreconnect"):
        setattr(ticker, f"on_{name}", calls.record(name))
    ticker.on_message = calls.record("message")


async def test_the_ticker_through_a_restart_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    proc = await serve_process(tmp_path, port)
    url = f"ws://127.0.0.1:{port}"
    fast: dict[str, Any] = {"min_delay": 0.05, "max_delay": 0.5}
    stream, alerts = Ticker(f"{url}/ws/stream", **fast), Ticker(f"{url}/ws/alerts", **fast)
    s, a = Calls(), Calls()
    attach(stream, s)
    attach(alerts, a)
    raised: list[int] = []

    def on_data(ticker: Ticker, msg: Any) -> None:
        raised.append(msg.seq)
        if len(raised) == 1:
            raise RuntimeError("a user's bug: logged, and the stream goes on")

    stream.on_data = on_data
    subscribed = stream.subscribe("RELIANCE", interval="1m")  # before connect: sent on connect
    try:
        stream.connect(threaded=True)
        alerts.connect(threaded=True)
        acks = await asyncio.to_thread(subscribed.result, WAIT)
        assert [(x.symbol, x.interval) for x in acks] == [("RELIANCE", "1m")]
        await asyncio.to_thread(alerts.subscribe("RELIANCE").result, WAIT)
        fired = await asyncio.to_thread(alerts.create_alert("RELIANCE", "above", 1).result, WAIT)
        await a.until(
            lambda c: any(isinstance(e, AlertData) and e.data.alert is not None for e in c.events)
        )
        await s.until(lambda c: len(closes(c)) >= 3)

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0
        mark = len(closes(s))
        proc = await serve_process(tmp_path, port)
        await s.until(lambda c: len(closes(c)) >= mark + 3)
        await a.until(lambda c: len(c.of("connect")) == 2)
        late = await asyncio.to_thread(alerts.create_alert("RELIANCE", "above", 1).result, WAIT)
        await a.until(
            lambda c: any(
                isinstance(e, AlertData) and e.data.alert is not None and e.data.alert.id == late.id
                for e in c.events
            )
        )

        for calls, topic in ((s, "RELIANCE@1m"), (a, "RELIANCE")):
            assert (1001, "server shutting down") in calls.of("close")
            assert calls.of("reconnect") and not calls.of("noreconnect")
            assert all(isinstance(w[0], Welcome) for w in calls.of("connect"))
            lost = [g[0] for g in calls.of("gap") if g[0].reason != "skipped"]
            assert [(g.reason, g.topic) for g in lost] == [("not_recovered", topic)]
            assert all(isinstance(g[0], Gap) for g in calls.of("gap"))
            assert_numbered_or_reported(calls.events, topic)
        assert_each_close_once_per_epoch(closes(s))
        assert len({c.epoch for c in closes(s)}) == 2
        assert len(raised) > 10  # on_data kept being called after it raised
        firings = [
            (e.data.alert.id, e.data.alert.fire_count)
            for e in a.events
            if isinstance(e, AlertData) and e.data.alert is not None
        ]
        assert firings.count((fired.id, 1)) == 1 and (late.id, 1) in firings
        assert all(i != fired.id or n == 1 for i, n in firings)
    finally:
        for t in (stream, alerts):
            t.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), WAIT)
    assert stream.join(5) and alerts.join(5)
    assert not stream.is_connected() and stream.stopped is None
