"""The ``Feed`` interface every market source implements (sim, replay, kite).

A feed turns an upstream source into ``Tick`` objects and reports its state; it knows nothing of
clients, topics or the wire protocol. The ingest side calls ``subscribe`` with the instruments some
client wants (feeds that stream everything, like the simulator, may ignore it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from tickhub.core.model import FeedStatus, Instrument, Tick

TickSink = Callable[[Tick], None]
StatusSink = Callable[[FeedStatus], None]


class Feed(Protocol):
    """A market source. One ``run`` per feed object; the ingest owns it and cancels it to stop.

    Contract (checked for every feed by ``tests/conformance/test_feed_contract.py``): ticks carry
    symbols and tokens of the instrument registry the feed was built with, timezone-aware exchange
    timestamps, prices as the exchange quotes them, and the day's cumulative volume, which never
    decreases within a day for one instrument.
    """

    name: str
    """Short and stable (``sim``, ``replay``, ``kite``): it names the feed in logs and /health."""

    async def run(self, on_tick: TickSink, on_status: StatusSink) -> None:
        """Produce ticks until cancelled. Must call ``on_status`` on every state change.

        ``on_tick`` and ``on_status`` are plain callbacks: they never block, so a feed can call
        them from its read loop. Cancellation ends ``run`` promptly, with every task and socket of
        the feed closed; a feed that runs out of data (a replay without loop) reports
        ``FINISHED`` and then waits to be cancelled (or returns). An upstream outage is a state
        (``RECONNECTING``, ``STALE``, ``AUTH_FAILED``) reported through ``on_status``, not an
        exception.
        """
        ...

    def subscribe(self, instruments: Iterable[Instrument]) -> None:
        """Ask for ticks of ``instruments`` from now on, at once, without blocking.

        Idempotent; a feed that streams its whole universe anyway (sim, replay) may ignore it. A
        feed that must tell its upstream (kite) does so in the background, also across
        reconnects."""
        ...

    def unsubscribe(self, instruments: Iterable[Instrument]) -> None:
        """The reverse of :meth:`subscribe`; unknown or never-subscribed instruments are ignored."""
        ...

    def status(self) -> FeedStatus:
        """The current state, at any time (before ``run``, during, after), without I/O."""
        ...
