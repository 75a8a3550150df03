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
    name: str

    async def run(self, on_tick: TickSink, on_status: StatusSink) -> None:
        """Produce ticks until cancelled. Must call ``on_status`` on every state change.

        ``on_tick`` and ``on_status`` are plain callbacks: they never block, so a feed can call
        them from its read loop.
        """
        ...

    def subscribe(self, instruments: Iterable[Instrument]) -> None: ...

    def unsubscribe(self, instruments: Iterable[Instrument]) -> None: ...

    def status(self) -> FeedStatus: ...
