"""Which instruments the feed must stream, reference-counted.

An instrument is wanted while some client is subscribed to any of its topics (on any endpoint or
interval), or while an engine needs it regardless of clients: a held position, a user alert, the
benchmark index for beta. The feed hears only the transitions (first want, last release), so a
feed with an upstream limit (Kite: 3,000 instruments a connection) streams only what is used.
"""

from __future__ import annotations

from collections.abc import Iterable

from tickhub.core.instruments import InstrumentRegistry
from tickhub.feeds.base import Feed


class Demand:
    def __init__(self, feed: Feed, registry: InstrumentRegistry) -> None:
        self.feed = feed
        self.registry = registry
        self._topics: dict[str, int] = {}  # symbol -> wanted topics
        self._pinned: set[str] = set()
        self._active: set[str] = set()

    @property
    def active(self) -> frozenset[str]:
        return frozenset(self._active)

    def on_topic(self, topic: str, wanted: bool) -> None:
        """Hub demand listener: the first local subscriber of a topic came, or the last left."""
        parts = topic.split(":")
        if len(parts) < 2 or parts[0].startswith("_"):
            return
        symbol = parts[1]
        if self.registry.get(symbol) is None:
            return  # the portfolio wildcard, a probe: not an instrument
        count = self._topics.get(symbol, 0) + (1 if wanted else -1)
        if count > 0:
            self._topics[symbol] = count
        else:
            self._topics.pop(symbol, None)
        self._sync()

    def pin(self, symbols: Iterable[str]) -> None:
        """Replace the set of instruments the engines need whatever clients do."""
        self._pinned = {s for s in symbols if self.registry.get(s) is not None}
        self._sync()

    def _sync(self) -> None:
        wanted = self._pinned | set(self._topics)
        added = wanted - self._active
        removed = self._active - wanted
        self._active = wanted
        if added:
            self.feed.subscribe(self.registry.resolve(s) for s in sorted(added))
        if removed:
            self.feed.unsubscribe(self.registry.resolve(s) for s in sorted(removed))
