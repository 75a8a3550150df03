"""The self-test: one message through the bus and the hub's own fan-out, to a probe subscriber.

The self-test report uses it to tell "the service runs" from "a message published now
reaches a client": it goes through the same subscription, bus delivery and framing as client
traffic, on a private topic no client can name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from tickhub.bus import Bus, BusMessage
from tickhub.core import defaults, protocol
from tickhub.core.clock import Clock
from tickhub.core.topics import Endpoint
from tickhub.fanout.session import Session, Subscription, SubscriptionChange


class Probe:
    """Round trips of a probe message for one hub.

    Contract: the probe subscriber is subscribed through ``subscribe`` for one round trip only
    and always unsubscribed through ``unsubscribe``, also when the round trip fails. The result
    is ``{"ok", "state", ...}``: ``state`` is ``delivered`` (with ``latency_ms``), ``corrupted``
    (it arrived, not as a client would receive it), ``pending`` or ``timeout``.
    """

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        frame: Callable[[bytes], bytes],
        ids: Iterator[int],
        prefix: str,
        subscribe: SubscriptionChange,
        unsubscribe: SubscriptionChange,
    ) -> None:
        self.bus = bus
        self.clock = clock
        self._frame = frame
        self._ids = ids
        self._prefix = prefix
        self._add = subscribe
        self._drop = unsubscribe

    def run(self) -> dict[str, Any]:
        """Push a probe message through the bus and this hub's fan-out to a probe subscriber.

        Returns whether it arrived, framed as a client would receive it, and how long it took. On
        a bus that delivers asynchronously the result says ``pending``.
        """
        peer, session, sub, payload = self._setup()
        started = self.clock.monotonic()
        self._add(session, sub)
        try:
            self.bus.publish(BusMessage(sub.topic, payload))
            elapsed = self.clock.monotonic() - started
        finally:
            self._drop(session, sub)
        if not peer.frames:
            return {"ok": False, "state": "pending", "detail": "probe not delivered synchronously"}
        return self._result(peer, payload, elapsed)

    async def run_async(self, timeout: float = defaults.PROBE_TIMEOUT) -> dict[str, Any]:
        """:meth:`run` for a bus that delivers asynchronously (Redis): wait for the round trip."""
        peer, session, sub, payload = self._setup()
        peer.arrived = asyncio.Event()
        self._add(session, sub)
        try:
            # ``asyncio.timeout``, not ``wait_for``: on Python 3.11 ``wait_for`` can swallow a
            # cancellation that arrives as the awaited call completes, and a stopping gateway
            # would then wait for its probe loop forever.
            flush = getattr(self.bus, "flush", None)
            if flush is not None:
                async with asyncio.timeout(timeout):
                    await flush()  # the subscription is in place
            started = self.clock.monotonic()
            self.bus.publish(BusMessage(sub.topic, payload))
            async with asyncio.timeout(timeout):
                await peer.arrived.wait()
            elapsed = self.clock.monotonic() - started
        except TimeoutError:
            return {"ok": False, "state": "timeout", "detail": f"no round trip in {timeout:g}s"}
        finally:
            self._drop(session, sub)
        return self._result(peer, payload, elapsed)

    def _setup(self) -> tuple[_ProbePeer, Session, Subscription, bytes]:
        peer = _ProbePeer()
        session = Session("self-test", Endpoint.STREAM, "self-test", peer, self.clock.now())
        n = next(self._ids)
        sub = Subscription("_probe", None, f"_probe:{self._prefix}-{n}")
        return peer, session, sub, protocol.reply(self.clock.now(), "probe", n=n)

    def _result(self, peer: _ProbePeer, payload: bytes, elapsed: float) -> dict[str, Any]:
        ok = peer.frames == [self._frame(payload)]
        return {
            "ok": ok,
            "state": "delivered" if ok else "corrupted",
            "latency_ms": round(elapsed * 1000, 3),
        }


class _ProbePeer:
    """Keeps what the probe subscriber was sent; ``arrived`` is set by the first frame."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.arrived: asyncio.Event | None = None

    def send(self, payload: bytes) -> None:
        self.frames.append(payload)

    def send_frame(self, frame: bytes) -> None:
        self.frames.append(frame)
        if self.arrived is not None:
            self.arrived.set()

    def close(self, code: int, reason: str) -> None:
        return None

    def ping(self) -> None:
        return None
