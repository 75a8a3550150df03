"""The callback style, for synchronous code: a :class:`Client` run in a thread of its own.

Shaped after Kite's ``KiteTicker`` so its users feel at home: set ``on_data``, ``on_connect``,
``on_close``, ``on_gap``, ``on_error``... then ``connect(threaded=True)``. Callbacks are called
one at a time, in the ticker's thread, with the ticker first (as KiteTicker passes its ``ws``);
a callback that raises is logged and the stream goes on. A slow callback slows reading, so the
server conflates state for this client (docs/protocol.md §10) rather than memory growing.

Methods that talk to the server (``subscribe``, ``create_alert``...) return a
``concurrent.futures.Future`` at once: call ``.result()`` from any thread except the ticker's
own (inside a callback, let the future complete; a failure is also reported to ``on_error``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

from tickhub.client.connection import Client
from tickhub.client.errors import ClientStopped, TickhubError
from tickhub.client.messages import (
    DataMessage,
    Disconnected,
    Event,
    Reconnecting,
    ServerError,
    Status,
    SubscriptionAck,
    TradeReply,
    Welcome,
)
from tickhub.client.options import ClientOptions
from tickhub.client.payloads import Alert, Trade
from tickhub.client.tracking import Gap

__all__ = ["Ticker"]

log = logging.getLogger("tickhub.client")

T = TypeVar("T")
Callback = Callable[..., object] | None

JOIN_TIMEOUT = 10.0
"""Seconds ``close()`` waits for the ticker's thread to end."""


class Ticker:
    """A client of one endpoint run in a background thread, reporting through callbacks.

    ``on_connect(ticker, welcome)`` each (re)connection; ``on_data(ticker, msg)`` each ``data``
    message (snapshots included: ``msg.snapshot``); ``on_gap(ticker, gap)``;
    ``on_status(ticker, status)``; ``on_error(ticker, code, message)`` for a server error or a
    failed call; ``on_close(ticker, code, reason)`` each disconnection;
    ``on_reconnect(ticker, attempt, delay)``; ``on_noreconnect(ticker, code, reason)`` when it
    stops for good; ``on_message(ticker, event)`` for every event, before the others.
    """

    def __init__(self, url: str, *, options: ClientOptions | None = None, **overrides: Any) -> None:
        self.client = Client(url, options=options, **overrides)
        self.on_connect: Callback = None
        self.on_data: Callback = None
        self.on_gap: Callback = None
        self.on_status: Callback = None
        self.on_error: Callback = None
        self.on_close: Callback = None
        self.on_reconnect: Callback = None
        self.on_noreconnect: Callback = None
        self.on_message: Callback = None
        self.stopped: ClientStopped | None = None
        """Why the ticker stopped on its own (a 4500-4999 close, a refused handshake)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ident: int | None = None
        self._ready = threading.Event()
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._early: list[
            tuple[Callable[[], Coroutine[Any, Any, Any]], concurrent.futures.Future[Any]]
        ] = []

    # --- lifecycle --------------------------------------------------------------------------

    def connect(self, threaded: bool = False) -> None:
        """Connect and keep connected until :meth:`close`: in a background thread
        (``threaded=True``, returns at once) or in this one (blocks until closed)."""
        if self._thread is not None or self._ready.is_set():
            raise RuntimeError("this ticker was already connected; make a new one")
        if threaded:
            self._thread = threading.Thread(target=self._main, name="tickhub-ticker", daemon=True)
            self._thread.start()
            self._ready.wait()
        else:
            self._main()

    def close(self, code: int = 1000, reason: str = "client closing") -> None:
        """Close for good. From another thread it waits until the ticker's thread has ended."""
        with self._lock:
            loop = self._loop
        if loop is None or self._finished.is_set():
            return
        future = asyncio.run_coroutine_threadsafe(self.client.close(code, reason), loop)
        if threading.get_ident() == self._ident:
            return  # from a callback: the loop ends after it returns
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            future.result(JOIN_TIMEOUT)
        self._finished.wait(JOIN_TIMEOUT)
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT)

    stop = close  # KiteTicker's name

    def is_connected(self) -> bool:
        return self.client.connected

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the ticker has stopped (closed, or stopped by the server)."""
        return self._finished.wait(timeout)

    # --- calls ------------------------------------------------------------------------------

    def subscribe(
        self,
        symbols: str | Iterable[str],
        interval: str | None = None,
        indicators: Iterable[str] | None = None,
    ) -> concurrent.futures.Future[list[SubscriptionAck]]:
        """``indicators``: an /ws/analysis indicator set, as :meth:`Client.subscribe` takes it."""
        listed = [symbols] if isinstance(symbols, str) else list(symbols)
        wanted = None if indicators is None else list(indicators)
        return self._submit(lambda: self.client.subscribe(listed, interval, wanted))

    def unsubscribe(
        self, symbols: str | Iterable[str], interval: str | None = None
    ) -> concurrent.futures.Future[list[SubscriptionAck]]:
        listed = [symbols] if isinstance(symbols, str) else list(symbols)
        return self._submit(lambda: self.client.unsubscribe(listed, interval))

    def create_alert(
        self,
        symbol: str,
        condition: str,
        value: float | None = None,
        *,
        once: bool | None = None,
        note: str | None = None,
        indicator: str | None = None,
        other: str | None = None,
        interval: str | None = None,
        pattern: str | None = None,
        direction: str | None = None,
        forming: bool | None = None,
    ) -> concurrent.futures.Future[Alert]:
        """:meth:`Client.create_alert`: a price, indicator or pattern alert."""
        return self._submit(
            lambda: self.client.create_alert(
                symbol,
                condition,
                value,
                once=once,
                note=note,
                indicator=indicator,
                other=other,
                interval=interval,
                pattern=pattern,
                direction=direction,
                forming=forming,
            )
        )

    def add_trade(
        self,
        symbol: str,
        side: str,
        quantity: int,
        price: float | str,
        *,
        time: str | None = None,
        product: str | None = None,
        exchange: str | None = None,
        id: str | None = None,
    ) -> concurrent.futures.Future[TradeReply]:
        return self._submit(
            lambda: self.client.add_trade(
                symbol, side, quantity, price, time=time, product=product, exchange=exchange, id=id
            )
        )

    def list_trades(
        self, symbol: str | None = None
    ) -> concurrent.futures.Future[tuple[Trade, ...]]:
        return self._submit(lambda: self.client.list_trades(symbol))

    def delete_trade(self, id: str) -> concurrent.futures.Future[TradeReply]:
        return self._submit(lambda: self.client.delete_trade(id))

    def call(self, make: Callable[[Client], Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Any method of the underlying :class:`Client`, e.g.
        ``ticker.call(lambda c: c.set_position("WIPRO", 10, 250.5)).result()``."""

        async def run() -> T:
            return await make(self.client)

        return self._submit(run)

    def _submit(self, make: Callable[[], Coroutine[Any, Any, T]]) -> concurrent.futures.Future[T]:
        with self._lock:
            loop = self._loop
            if loop is None:
                early: concurrent.futures.Future[T] = concurrent.futures.Future()
                self._early.append((make, early))
                return early
        future = asyncio.run_coroutine_threadsafe(make(), loop)
        future.add_done_callback(self._report_failure)
        return future

    def _report_failure(self, future: concurrent.futures.Future[Any]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if isinstance(exc, TickhubError) and exc.code not in ("closed", "stopped"):
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._call, self.on_error, exc.code, exc.message)

    # --- the thread ---------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        finally:
            self._finished.set()
            self._ready.set()

    async def _serve(self) -> None:
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._ident = threading.get_ident()
            early, self._early = self._early, []
        await self.client.start()
        for make, target in early:
            self._chain(asyncio.ensure_future(make()), target)
        self._ready.set()
        try:
            async for event in self.client:
                self._dispatch(event)
        except ClientStopped as exc:
            self.stopped = exc
            self._call(self.on_noreconnect, exc.close_code, exc.reason)
        finally:
            await self.client.close()
            with self._lock:
                self._loop = None

    def _chain(self, task: asyncio.Future[Any], target: concurrent.futures.Future[Any]) -> None:
        def done(t: asyncio.Future[Any]) -> None:
            if t.cancelled():
                target.cancel()
            elif t.exception() is not None:
                target.set_exception(t.exception())
            else:
                target.set_result(t.result())

        target.add_done_callback(self._report_failure)
        task.add_done_callback(done)

    def _dispatch(self, event: Event) -> None:
        self._call(self.on_message, event)
        if isinstance(event, DataMessage):
            self._call(self.on_data, event)
        elif isinstance(event, Gap):
            self._call(self.on_gap, event)
        elif isinstance(event, Welcome):
            self._call(self.on_connect, event)
        elif isinstance(event, Status):
            self._call(self.on_status, event)
        elif isinstance(event, ServerError):
            self._call(self.on_error, event.code, event.message)
        elif isinstance(event, Disconnected):
            self._call(self.on_close, event.code, event.reason)
        elif isinstance(event, Reconnecting):
            self._call(self.on_reconnect, event.attempt, event.delay)

    def _call(self, callback: Callback, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(self, *args)
        except Exception:
            log.exception("tickhub ticker: a callback raised; the stream goes on")
