"""Per-topic pacing of the producer's state messages.

A symbol may tick many times a second, and each tick changes its market data, its forming
candles, its analysis and the portfolio of whoever holds it. Clients want that state fresh, not
a message per tick: the ingest publishes each at most once per ``update_interval`` per topic, and
the latest state is never lost, so that a burst followed by silence still ends on the true value.
That policy is a reason to change of its own (the pace, what goes at once), so it lives here and
the pipeline only says which key an update belongs to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from tickhub.core.clock import Clock

log = logging.getLogger(__name__)

Key = tuple[str, str, str]
"""What one pace is kept for: ``(kind, symbol, detail)``, e.g. ``("market", "RELIANCE", "")``,
``("candle", "RELIANCE", "1m")`` or ``("alerts", "RELIANCE", owner)``."""

Publish = Callable[[], None]
"""Publishes a key's update. It reads the state when it runs, not when it was offered: a held
update sends the latest state."""


class Throttle:
    """At most one update per key per ``interval`` seconds of the clock's ``monotonic`` time.

    The contract, per key (keys are independent of each other):

    - **Sent at once.** ``offer`` runs the update now if the key was never sent or was last sent
      at least ``interval`` ago; that send restarts the interval and drops any update held for
      the key (it is older). An exception it raises reaches the caller (the tick that offered
      it counts the failure).
    - **Held.** Otherwise ``offer`` keeps the update, replacing any update already held for the
      key: that one is dropped, superseded, since both publish the same topic's latest state.
    - **Flushed.** ``flush`` runs every held update whose key was last sent at least
      ``interval`` ago, and counts it as sent then. The ingest calls it every
      ``defaults.INGEST_FLUSH_PERIOD``, so a held update goes out at most that long after its
      interval ends. A failing update is logged and dropped; the others still go out.
    - **Dropped.** ``discard`` drops a key's held update when a message that is never throttled
      (a closed candle) has made it stale.
    - **Sent elsewhere.** ``sent`` records that an update of the key went out unthrottled (the
      first update of a new candle): the interval restarts, a held update stays held.

    Forming candles go at once on their first update, so ``starts_bucket`` remembers each key's
    current candle start and tells when a new candle begins.
    """

    __slots__ = ("_buckets", "_clock", "_held", "_last_sent", "interval")

    def __init__(self, clock: Clock, interval: float) -> None:
        self.interval = interval
        self._clock = clock
        self._last_sent: dict[Key, float] = {}
        self._held: dict[Key, Publish] = {}
        self._buckets: dict[Key, datetime] = {}

    def offer(self, key: Key, publish: Publish) -> None:
        """Run ``publish`` now if the key's interval has passed, else hold it (see the class)."""
        now = self._clock.monotonic()
        last = self._last_sent.get(key)
        if last is None or now - last >= self.interval:
            self._last_sent[key] = now
            self._held.pop(key, None)
            publish()
        else:
            self._held[key] = publish

    def sent(self, key: Key) -> None:
        """An update of ``key`` went out unthrottled: its interval starts again from now."""
        self._last_sent[key] = self._clock.monotonic()

    def discard(self, key: Key) -> None:
        """Drop the update held for ``key``, if any: a newer unthrottled message replaced it."""
        self._held.pop(key, None)

    def starts_bucket(self, key: Key, start: datetime) -> bool:
        """Whether a forming candle starting at ``start`` is the first seen for ``key`` since
        the previous start (a new candle); remembers it either way."""
        if self._buckets.get(key) == start:
            return False
        self._buckets[key] = start
        return True

    def flush(self) -> None:
        """Run the held updates whose interval has passed; each counts as sent now."""
        now = self._clock.monotonic()
        interval = self.interval
        last_sent = self._last_sent
        due = [k for k in self._held if now - last_sent.get(k, now) >= interval]
        for key in due:
            publish = self._held.pop(key, None)
            if publish is None:  # discarded by an update that ran before it in this flush
                continue
            last_sent[key] = now
            try:
                publish()
            except Exception:
                log.exception("throttled publish failed for %s", key)
