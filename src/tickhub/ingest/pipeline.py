"""The producer side: feed -> candles and engines -> numbered messages on the bus.

Everything here is computed once per tick, whatever the number of clients or gateways. The
``/ws/stream`` messages of one symbol go to one topic per candle interval (``stream:RELIANCE:1m``)
so that each client's ``seq`` counts exactly the messages it receives. Ticks are published as they
come; a candle's final update (``closed: true``) at once; the forming candle, ``market_data`` and
the derived streams at most once per ``update_interval`` per topic (the latest state wins), paced
by a ``Throttle`` (``throttle.py``).

Only topics some client wants (``on_demand``) get state messages: an unwatched symbol costs its
candles and engines but no encoding. Events (alert firings) and closed candles are published
whatever the demand, so the resume history never has holes; when a topic becomes wanted its
current state is published at once, which is what the new subscriber's snapshot holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from tickhub.bus import Bus
from tickhub.core import defaults
from tickhub.core.clock import Clock
from tickhub.core.commands import IndicatorSet, parse_set_key
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import Candle, FeedState, FeedStatus, Interval, Tick
from tickhub.core.protocol import iso
from tickhub.core.topics import ALL_SYMBOLS, Endpoint, owner_of, split_set, topic
from tickhub.engines import payloads
from tickhub.engines.alerts import AlertEvent, event_payload
from tickhub.engines.analysis import AnalysisEngine
from tickhub.engines.candles import CandleEngine, roll_up
from tickhub.feeds.base import Feed
from tickhub.ingest.alerts import StoredAlerts
from tickhub.ingest.analysis_alerts import on_analysis_candle
from tickhub.ingest.portfolio import StoredPortfolio
from tickhub.ingest.publisher import Publisher
from tickhub.ingest.throttle import Key, Throttle

log = logging.getLogger(__name__)


class Ingest:
    """The one producer: every tick through the engines, their changes onto the bus.

    The feed calls ``on_tick``/``on_status``; the hub or the cluster's demand link calls
    ``on_demand``; ``run`` drives the feed and calls ``flush`` on the clock until cancelled.
    """

    def __init__(
        self,
        *,
        feed: Feed,
        registry: InstrumentRegistry,
        bus: Bus,
        clock: Clock,
        intervals: Sequence[Interval] = tuple(Interval),
        update_interval: float = defaults.UPDATE_INTERVAL,
        history_size: int = defaults.CANDLE_HISTORY,
        snapshot_history: int = defaults.ANALYSIS_HISTORY,
        alerts: StoredAlerts | None = None,
        portfolio: StoredPortfolio | None = None,
        alert_interval: Interval = Interval.M1,
        on_closed_candle: Callable[[Candle], None] | None = None,
        on_past: Callable[[list[Candle]], None] | None = None,
    ) -> None:
        self.feed = feed
        # Every closed candle of every interval, as it closes (the store's writer queue): O(1);
        # and the candles of a past given to ``warm``, all at once.
        self.on_closed_candle = on_closed_candle
        self.on_past = on_past
        self.registry = registry
        self.clock = clock
        self.intervals = tuple(intervals)
        self.candles = CandleEngine(self.intervals, history_size=history_size)
        self.analysis = AnalysisEngine(maxlen=history_size)
        self.snapshot_history = snapshot_history
        self.alerts = alerts if alerts is not None else StoredAlerts()
        # Writes go through ``positions`` (saved to its store); reads and ticks to the engine.
        self.positions = portfolio if portfolio is not None else StoredPortfolio(now=clock.now)
        self.portfolio = self.positions.portfolio
        self.alert_interval = alert_interval
        self.publisher = Publisher(bus, epoch=secrets.token_hex(4), now=clock.now)
        self.last_ticks: dict[str, Tick] = {}
        self.market_time: datetime | None = None
        self.feed_status = FeedStatus(FeedState.STARTING)
        self.ticks_in = 0
        self.last_tick_mono: float | None = None
        self.tick_errors = 0
        self.engine_errors: dict[str, int] = {}
        self.throttle = Throttle(clock, update_interval)
        self._throttled = self.throttle.offer  # bound once: called several times per tick
        self._keys: dict[tuple[str, Interval], tuple[Key, str, str]] = {}
        self._owner_topics: dict[tuple[str, str], dict[str, int]] = {}
        # (symbol, interval) whose last close's analysis alerts failed to be saved.
        self._analysis_retry: set[tuple[str, Interval]] = set()
        self._alert_states: dict[tuple[str, str], dict[str, Any]] = {}  # (symbol, owner): last sent
        self.wanted: set[str] = set()  # topics some client subscribes to (see on_demand)
        self._topic_cache: dict[str, list[str]] = {}
        self._plain_topics: dict[tuple[Endpoint, str], str] = {}
        # Wanted analysis topics of indicator sets, by their default-set topic: topic -> set.
        self._sets: dict[str, dict[str, IndicatorSet]] = {}
        self._portfolio_day: date | None = None  # the IST date of the portfolio's day figures

    @property
    def update_interval(self) -> float:
        """Seconds between two state messages of one topic (the throttle's interval)."""
        return self.throttle.interval

    # --- feed callbacks ------------------------------------------------------------------------

    def on_tick(self, tick: Tick) -> None:
        try:
            self._on_tick(tick)
        except Exception:
            # One bad tick must not stop the feed: log it with context and go on.
            self.tick_errors += 1
            log.exception("failed to process tick for %s at %s", tick.symbol, tick.timestamp)

    def _on_tick(self, tick: Tick) -> None:
        # Candles first: they reject a malformed tick before any state is touched.
        updates = self.candles.on_tick(tick)
        self.ticks_in += 1
        self.last_tick_mono = self.clock.monotonic()
        symbol = tick.symbol
        self.last_ticks[symbol] = tick
        if self.market_time is None or tick.timestamp > self.market_time:
            self.market_time = tick.timestamp
        self._publish_stream(tick, "tick_data", payloads.tick_data(tick), "tick")
        if self._analysis_retry:
            self._retry_analysis_alerts(symbol)
        self._on_candles(updates)
        try:
            self.portfolio.on_tick(tick)
        except Exception:
            self._engine_failed("portfolio", symbol)
        try:
            for event in self.alerts.on_tick(tick):
                self.publish_alert_event(event)
        except Exception:
            self._engine_failed("alerts", symbol)
        if self._wants_stream(symbol):
            self._throttled(("market", symbol, ""), lambda: self._publish_market(symbol))
        for owner in self.owners(Endpoint.PORTFOLIO, symbol):
            self._throttled(
                ("portfolio", symbol, owner),
                functools.partial(self.publish_portfolio, symbol, owner),
            )
        for owner in self.owners(Endpoint.ALERTS, symbol):
            self._throttled(
                ("alerts", symbol, owner),
                functools.partial(self.publish_alerts, symbol, owner, changed_only=True),
            )

    def on_status(self, status: FeedStatus) -> None:
        changed = status.state != self.feed_status.state
        self.feed_status = status
        if changed:
            log.info("feed %s: %s", self.feed.name, status.describe())
            if status.state is FeedState.FINISHED:
                # Nothing more comes: every forming candle is final now, and closes as if its
                # time had come (candle_data closed, analysis and alerts of the close).
                self._on_candles(self.candles.close_all())
            self.publisher.status(self.clock.now(), feed=status.state.value, detail=status.detail)

    # --- candles -------------------------------------------------------------------------------

    def warm(self, minutes: Mapping[str, Sequence[Candle]]) -> int:
        """Give the engines a past before the first tick: closed 1m candles per symbol (oldest
        first, all before the feed's first tick), rolled up to every interval, become the
        candle history and the analysis' input, and go to ``on_past`` (the store).
        Nothing is published: clients see the past in snapshots and ``GET /candles``. Returns
        the number of candles made."""
        # The engines keep only their newest candles; the store gets every one.
        keep = self.candles.history_size
        analysis_keep = self.analysis.maxlen
        closed: list[Candle] = []
        for bars in minutes.values():
            for interval in self.intervals:
                candles = list(bars) if interval is Interval.M1 else roll_up(bars, interval)
                self.candles.restore(candles[-keep:])
                for candle in candles[-analysis_keep:]:
                    self.analysis.on_candle(candle)
                closed += candles
        if self.on_past is not None:
            self.on_past(closed)
        return len(closed)

    def _on_candles(self, updates: Sequence[Candle]) -> None:
        wanted = self.wanted
        throttle = self.throttle
        analysis_series = self.alerts.engine.analysis_series
        for candle in updates:
            key, stream_t, analysis_t = self._candle_keys(candle.symbol, candle.interval)
            try:
                self.analysis.on_candle(candle)
            except Exception:
                self._engine_failed("analysis", candle.symbol)
            if (candle.symbol, candle.interval) in analysis_series:
                with self._contained("alerts", candle.symbol):  # indicator and pattern alerts
                    self._analysis_alerts(candle)
            if candle.closed:
                if self.on_closed_candle is not None:
                    with self._contained("candle store", candle.symbol):
                        self.on_closed_candle(candle)
                if candle.interval == self.alert_interval:
                    with self._contained("alerts", candle.symbol):
                        for event in self.alerts.on_candle(candle):
                            self.publish_alert_event(event)
                throttle.discard(key)
                self._publish_candle(candle)  # always: a closed candle is never conflated
                if self._wants_analysis(analysis_t):
                    with self._contained("analysis", candle.symbol):
                        self._publish_analysis(candle.symbol, candle.interval, closed=True)
            elif stream_t not in wanted and not self._wants_analysis(analysis_t):
                throttle.starts_bucket(key, candle.start)
            elif throttle.starts_bucket(key, candle.start):
                throttle.sent(key)
                if stream_t in wanted:
                    self._publish_candle(candle)
            else:
                self._throttled(
                    key, functools.partial(self._publish_forming, candle.symbol, candle.interval)
                )

    def _analysis_alerts(self, candle: Candle) -> None:
        """Evaluate the indicator and pattern alerts of a candle update. A close whose firings
        could not all be saved is evaluated again on the symbol's next tick (those saved are
        not: their ``last_candle`` is that close), so a failed write delays a firing, never
        loses it, as for price alerts."""
        key = (candle.symbol, candle.interval)
        try:
            fired = on_analysis_candle(self.alerts, self.analysis, candle, self.market_time)
        except Exception:
            if candle.closed:
                self._analysis_retry.add(key)
            raise
        if candle.closed:
            self._analysis_retry.discard(key)
        for event in fired:
            self.publish_alert_event(event)

    def _retry_analysis_alerts(self, symbol: str) -> None:
        for key in [k for k in self._analysis_retry if k[0] == symbol]:
            newest = self.analysis.history(symbol, key[1], 1)
            if not newest:
                self._analysis_retry.discard(key)
                continue
            with self._contained("alerts", symbol):
                self._analysis_alerts(newest[0])

    def _candle_keys(self, symbol: str, interval: Interval) -> tuple[Key, str, str]:
        """(throttle key, stream topic, analysis topic), built once per symbol and interval."""
        found = self._keys.get((symbol, interval))
        if found is None:
            found = self._keys[(symbol, interval)] = (
                ("candle", symbol, interval.value),
                topic(Endpoint.STREAM, symbol, interval),
                topic(Endpoint.ANALYSIS, symbol, interval),
            )
        return found

    def _engine_failed(self, engine: str, symbol: str) -> None:
        self.engine_errors[engine] = self.engine_errors.get(engine, 0) + 1
        log.exception("%s engine failed for %s", engine, symbol)

    def _publish_forming(self, symbol: str, interval: Interval) -> None:
        candle = self.candles.current(symbol, interval)
        if candle is None:
            return
        _, stream_t, analysis_t = self._candle_keys(symbol, interval)
        if stream_t in self.wanted:
            self._publish_candle(candle)
        if self._wants_analysis(analysis_t):
            with self._contained("analysis", symbol):
                self._publish_analysis(symbol, interval, closed=False)

    def _wants_analysis(self, analysis_t: str) -> bool:
        """Whether the default set's analysis topic, or one of an indicator set, is watched."""
        return analysis_t in self.wanted or analysis_t in self._sets

    def _wants_stream(self, symbol: str) -> bool:
        return any(t in self.wanted for t in self._stream_topics(symbol))

    def _stream_topics(self, symbol: str) -> list[str]:
        found = self._topic_cache.get(symbol)
        if found is None:
            found = self._topic_cache[symbol] = [
                topic(Endpoint.STREAM, symbol, i) for i in self.intervals
            ]
        return found

    @contextlib.contextmanager
    def _contained(self, engine: str, symbol: str) -> Iterator[None]:
        """A failing engine skips its update for this symbol; the tick and the other engines
        go on (logged with context, counted per engine)."""
        try:
            yield
        except Exception:
            self.engine_errors[engine] = self.engine_errors.get(engine, 0) + 1
            log.exception("%s engine failed for %s", engine, symbol)

    def _publish_candle(self, candle: Candle) -> None:
        self.publisher.data(
            topic(Endpoint.STREAM, candle.symbol, candle.interval),
            candle.symbol,
            "candle_data",
            payloads.candle_data(candle),
            candle.start,
            slot=f"candle:{iso(candle.start)}",
            retain="candle",
            interval=candle.interval.value,
        )

    def _publish_market(self, symbol: str) -> None:
        tick = self.last_ticks[symbol]
        self._publish_stream(tick, "market_data", payloads.market_data(tick), "market")

    def _publish_stream(
        self,
        tick: Tick,
        data_type: str,
        data: dict[str, Any],
        slot: str,
        only: str | None = None,
    ) -> None:
        """The same tick-level payload on the wanted stream topic of every interval (each with
        its own seq), or on topic ``only``."""
        wanted = self.wanted
        for interval, t in zip(self.intervals, self._stream_topics(tick.symbol), strict=True):
            if t not in wanted or (only is not None and t != only):
                continue
            self.publisher.data(
                t,
                tick.symbol,
                data_type,
                data,
                tick.timestamp,
                slot=slot,
                retain=slot,
                interval=interval.value,
            )

    # --- derived streams (computed for real in the analysis/alerts/portfolio engines) ----------

    def _publish_analysis(
        self,
        symbol: str,
        interval: Interval,
        *,
        closed: bool,
        with_history: bool = False,
        only: str | None = None,
    ) -> None:
        """Analysis of the closed candles (and the forming one between closes), on each wanted
        topic of the symbol and interval (the default set's and each indicator set's), or on
        topic ``only``. Each set is computed once, whatever the number of its subscribers.

        On a close, the snapshot also gets a copy carrying ``history`` (the last closed candles,
        for a chart), kept for new subscribers only: live clients already have those candles.
        """
        candle = self.candles.current(symbol, interval)
        history = self.candles.history(symbol, interval, 1)
        ref = history[-1] if closed and history else candle
        if ref is None:
            return
        base = topic(Endpoint.ANALYSIS, symbol, interval)
        if (only is None or only == base) and base in self.wanted:
            self._publish_one_analysis(base, None, symbol, interval, ref, closed, with_history)
        for t, specs in self._sets.get(base, {}).items():
            if only is None or only == t:
                self._publish_one_analysis(t, specs, symbol, interval, ref, closed, with_history)

    def _publish_one_analysis(
        self,
        t: str,
        specs: IndicatorSet | None,
        symbol: str,
        interval: Interval,
        ref: Candle,
        closed: bool,
        with_history: bool,
    ) -> None:
        result = self.analysis.analyze(
            symbol, interval, include_forming=not closed, indicators=specs
        )
        data = payloads.analysis_data(result, ref)
        if specs is not None:
            data["indicators"] = [s.canonical for s in specs]
        self.publisher.data(
            t,
            symbol,
            "technical_analysis",
            data,
            ref.start,
            slot="analysis",
            retain="analysis",
            interval=interval.value,
        )
        # After the live message, so that the copy carries a real seq (it is not a new one).
        if (closed or with_history) and self.snapshot_history:
            bars = self.candles.history(symbol, interval, self.snapshot_history)
            self.publisher.retain_only(
                t,
                symbol,
                "technical_analysis",
                {**data, "history": [payloads.candle_data(c) for c in bars]},
                ref.start,
                retain="history",
                interval=interval.value,
            )

    def publish_portfolio(self, symbol: str, owner: str = "") -> None:
        """The symbol's position and the owner's totals, on its topic and, if held, on ``*``."""
        tick = self.last_ticks.get(symbol)
        ts = tick.timestamp if tick is not None else self.clock.now()
        data = self.portfolio.value(owner, symbol)
        pub = self.publisher
        pub.data(
            topic(Endpoint.PORTFOLIO, symbol, owner=owner),
            symbol,
            "position_data",
            dict(data),
            ts,
            slot="position",
            retain="position",
        )
        if self.portfolio.is_listed(owner, symbol):
            pub.data(
                topic(Endpoint.PORTFOLIO, ALL_SYMBOLS, owner=owner),
                symbol,
                "position_data",
                dict(data),
                ts,
                slot=f"position:{symbol}",
                retain=f"position:{symbol}",
                subscription=ALL_SYMBOLS,
            )

    def forget_position(self, symbol: str, owner: str = "") -> None:
        """A removed position is announced on ``*`` (quantity 0) and leaves its snapshot."""
        t = topic(Endpoint.PORTFOLIO, ALL_SYMBOLS, owner=owner)
        tick = self.last_ticks.get(symbol)
        self.publisher.data(
            t,
            symbol,
            "position_data",
            dict(self.portfolio.value(owner, symbol)),
            tick.timestamp if tick is not None else self.clock.now(),
            slot=f"position:{symbol}",
            subscription=ALL_SYMBOLS,
            removed=True,
        )
        self.publisher.drop_retained(t, f"position:{symbol}")

    def publish_alerts(self, symbol: str, owner: str = "", *, changed_only: bool = False) -> None:
        """The alert lists of a symbol, with its recent events (a firing nobody saw is here).

        ``changed_only``: not when the lists are as last sent. Alert state moves with firings,
        re-arming and the built-in levels, not with every tick, and a state message repeated
        each second would only repeat what clients have (about 2.7 KB a second per symbol).
        """
        tick = self.last_ticks.get(symbol)
        ts = tick.timestamp if tick is not None else self.clock.now()
        data: dict[str, Any] = dict(self.alerts.state(symbol, owner))
        data["recent_events"] = [
            event_payload(e, triggered=False)
            for e in self.alerts.recent_events(symbol, owner, limit=defaults.RECENT_ALERT_EVENTS)
        ]
        if changed_only and self._alert_states.get((symbol, owner)) == data:
            return
        self._alert_states[(symbol, owner)] = data
        self.publisher.data(
            topic(Endpoint.ALERTS, symbol, owner=owner),
            symbol,
            "alert_data",
            data,
            ts,
            slot="alerts",
            retain="alerts",
        )

    def publish_alert_event(self, event: AlertEvent) -> None:
        """A firing goes out at once and is never conflated (``slot=None``): to its owner, or
        for a built-in rule to everyone watching the symbol."""
        symbol = event.symbol
        owners = (
            self.owners(Endpoint.ALERTS, symbol) | {""}
            if event.alert.source == "builtin"
            else {event.alert.owner or ""}
        )
        for owner in sorted(owners):
            # Only here is ``triggered`` true: on the alert that fired, in its list and ``alert``.
            data: dict[str, Any] = dict(self.alerts.state(symbol, owner, firing=event.alert.id))
            data["alert"] = event_payload(event)
            self.publisher.data(
                topic(Endpoint.ALERTS, symbol, owner=owner),
                symbol,
                "alert_data",
                data,
                event.triggered_at,
                slot=None,
                event="triggered",
            )
            self._throttled(
                ("alerts", symbol, owner),
                functools.partial(self.publish_alerts, symbol, owner, changed_only=True),
            )

    # --- owners (per-user alerts and portfolio when authentication is on) ---------------------

    def on_demand(self, t: str, wanted: bool) -> None:
        """Demand listener (the hub's, or the gateways' through the bus): a topic gained its
        first subscriber or lost its last. A newly wanted topic gets its current state now."""
        if wanted:
            self.wanted.add(t)
        else:
            self.wanted.discard(t)
        self._track_set(t, wanted)
        owner = owner_of(t)
        if owner is None:
            if wanted:
                self._publish_current(t)
            return
        kind, _, rest = t.partition(":")
        symbol = rest.rsplit(":@", 1)[0]
        key = (kind, symbol)
        counts = self._owner_topics.setdefault(key, {})
        n = counts.get(owner, 0) + (1 if wanted else -1)
        if n > 0:
            counts[owner] = n
        else:
            counts.pop(owner, None)
            if not counts:
                del self._owner_topics[key]
            if kind == Endpoint.ALERTS.value:
                self._alert_states.pop((symbol, owner), None)
        if wanted:
            self._publish_owned(kind, symbol, owner)

    def _track_set(self, t: str, wanted: bool) -> None:
        """Keep ``_sets`` in step with the wanted analysis topics of indicator sets."""
        base, key = split_set(t)
        if not key or not base.startswith(Endpoint.ANALYSIS.value + ":"):
            return
        if not wanted:
            sets = self._sets.get(base)
            if sets is not None:
                sets.pop(t, None)
                if not sets:
                    del self._sets[base]
            return
        specs = parse_set_key(key)
        if specs is None:
            log.warning("analysis topic with an unreadable indicator set: %s", t)
            return
        self._sets.setdefault(base, {})[t] = specs

    def _publish_owned(self, kind: str, symbol: str, owner: str) -> None:
        """An alerts or portfolio topic became wanted: its latest state, for its snapshot."""
        if kind == Endpoint.ALERTS.value:
            self.publish_alerts(symbol, owner)
        elif kind == Endpoint.PORTFOLIO.value:
            held = self.portfolio.held_symbols(owner) if symbol == ALL_SYMBOLS else [symbol]
            for s in held:
                self.publish_portfolio(s, owner)

    def republish(self) -> None:
        """Every wanted topic's current state again: a Redis that restarted empty lost the
        retained copies that new subscribers' snapshots are made of."""
        for t in sorted(self.wanted):
            with self._contained("republish", t):
                owner = owner_of(t)
                if owner is None:
                    self._publish_current(t)
                else:
                    kind, _, rest = t.partition(":")
                    self._publish_owned(kind, rest.rsplit(":@", 1)[0], owner)

    def on_bus_state(self, connected: bool) -> None:
        """The bus's ``on_state``: publish the retained state again whenever it comes back."""
        if connected:
            if self.wanted:
                log.info("message bus connected: republishing %d wanted topics", len(self.wanted))
            self.republish()

    def _publish_current(self, t: str) -> None:
        """A stream or analysis topic became wanted: its latest state, so it has a snapshot."""
        base, _ = split_set(t)
        kind, _, rest = base.partition(":")
        symbol, _, raw = rest.rpartition(":")
        try:
            interval = Interval.parse(raw)
        except ValueError:
            return
        if kind == Endpoint.STREAM.value:
            tick = self.last_ticks.get(symbol)
            if tick is not None:
                self._publish_stream(tick, "tick_data", payloads.tick_data(tick), "tick", t)
                self._publish_stream(tick, "market_data", payloads.market_data(tick), "market", t)
            candle = self.candles.current(symbol, interval)
            if candle is not None:
                self._publish_candle(candle)
        elif kind == Endpoint.ANALYSIS.value:
            with self._contained("analysis", symbol):
                self._publish_analysis(symbol, interval, closed=False, with_history=True, only=t)

    def owners(self, endpoint: Endpoint, symbol: str) -> set[str]:
        """Every owner whose topic of ``symbol`` on ``endpoint`` is watched ("" is the
        anonymous owner; for the portfolio, also owners watching ``*`` who hold it)."""
        if not self.wanted and not self._owner_topics:
            return set()
        key = (endpoint, symbol)
        plain = self._plain_topics.get(key)
        if plain is None:  # built once: this runs twice per tick
            plain = self._plain_topics[key] = topic(endpoint, symbol)
        out = {""} if plain in self.wanted else set()
        if (
            endpoint == Endpoint.PORTFOLIO
            and topic(endpoint, ALL_SYMBOLS) in self.wanted
            and self.portfolio.position("", symbol) is not None
        ):
            out.add("")
        out.update(self._owner_topics.get((endpoint.value, symbol), ()))
        if endpoint == Endpoint.PORTFOLIO:
            for owner in self._owner_topics.get((endpoint.value, ALL_SYMBOLS), ()):
                if self.portfolio.position(owner, symbol) is not None:
                    out.add(owner)
        return out

    def _portfolio_day_end(self) -> None:
        """A new IST day: positions that trades made flat yesterday leave ``*``."""
        today = self.portfolio.today()
        day, self._portfolio_day = self._portfolio_day, today
        if day is None or day == today:
            return
        for owner, symbol in self.portfolio.unlisted_since(day):
            with self._contained("portfolio", symbol):
                self.forget_position(symbol, owner)

    # --- pacing --------------------------------------------------------------------------------

    def flush(self) -> None:
        """Publish throttled updates whose time has come, and close candles that are due."""
        self._portfolio_day_end()
        self.throttle.flush()
        if self.market_time is not None:
            self._on_candles(self.candles.close_due(self.market_time))

    async def run(self) -> None:
        """Run the feed and the flusher until cancelled."""
        feed_task = asyncio.create_task(self.feed.run(self.on_tick, self.on_status), name="feed")
        try:
            while not feed_task.done():
                await self.clock.sleep(defaults.INGEST_FLUSH_PERIOD)
                try:
                    self.flush()
                except Exception:
                    log.exception("flush failed")
            feed_task.result()
        finally:
            feed_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feed_task
