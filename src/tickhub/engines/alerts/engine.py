"""The alerts engine: user alerts and built-in rules behind one face (pure: no I/O).

Every operation that changes what must survive a restart comes in two steps, so that whoever
keeps alerts durable writes first and the engine changes after: ``prepare``/``add`` and
``owned``/``remove`` for requests, ``evaluate_tick``/``evaluate_candle`` then ``commit`` for the
feed. ``create``, ``delete``, ``on_tick`` and ``on_candle`` do both steps at once, for an engine
whose state lives in memory only.
"""

from __future__ import annotations

import builtins
import math
import secrets
from collections import deque
from collections.abc import Callable, Iterable, KeysView
from dataclasses import replace
from datetime import datetime

from tickhub.core import defaults
from tickhub.core.commands import CreateAlert, CreateAnalysisAlert
from tickhub.core.model import Candle, Interval, Tick
from tickhub.core.protocol import ProtocolError
from tickhub.engines.alerts.analysis import Frame, Needs, analysis_needs, evaluate_analysis
from tickhub.engines.alerts.builtin import BuiltinRules
from tickhub.engines.alerts.model import Alert, AlertEvent, AlertRules, Evaluation
from tickhub.engines.alerts.user import UserAlerts
from tickhub.engines.alerts.wire import alert_payload

__all__ = ["AlertsEngine"]


def _new_id() -> str:
    return "a_" + secrets.token_hex(6)


class AlertsEngine:
    """User alerts and built-in rules over ticks and closed candles (see the package doc).

    ``new_id`` makes user alert ids (``a_`` + 12 hex digits by default). ``memory_events``
    firings per symbol are kept for :meth:`recent_events` (0 where a store keeps them instead).
    """

    def __init__(
        self,
        rules: AlertRules | None = None,
        *,
        new_id: Callable[[], str] | None = None,
        memory_events: int = defaults.ALERT_MEMORY_EVENTS,
    ) -> None:
        self.rules = rules if rules is not None else AlertRules()
        self._users = UserAlerts(self.rules, new_id or _new_id)
        self._builtin = BuiltinRules(self.rules)
        self._events: dict[str, deque[AlertEvent]] = {}
        self._memory_events = memory_events

    def restore(self, alerts: Iterable[Alert]) -> None:
        """Take back persisted alerts (user and built-in, in the order they were first saved),
        before the first evaluation."""
        for alert in alerts:
            if alert.source == "user":
                self._users.put(alert)
            else:
                self._builtin.restore(alert)

    # --- requests -------------------------------------------------------------------------------

    def prepare(
        self, owner: str | None, request: CreateAlert | CreateAnalysisAlert
    ) -> Alert | ProtocolError:
        """A new user alert for ``request`` (checked by ``tickhub.core.commands``), not yet
        added (:meth:`add` it once it is saved): ``limit_exceeded`` past
        ``rules.max_alerts_per_owner``, the one error left, since it depends on state."""
        _, last_price = self._builtin.last_tick(request.symbol)
        return self._users.prepare(owner or "", request, last_price)

    def add(self, alert: Alert) -> None:
        """Add an alert from :meth:`prepare`."""
        self._users.put(alert)

    def create(
        self, owner: str | None, request: CreateAlert | CreateAnalysisAlert
    ) -> Alert | ProtocolError:
        """:meth:`prepare` and :meth:`add`: the new alert, or the error."""
        alert = self.prepare(owner, request)
        if isinstance(alert, Alert):
            self.add(alert)
        return alert

    def owned(self, owner: str | None, id: str) -> Alert | ProtocolError:
        """``owner``'s alert ``id`` (``None`` = ``""``), or ``not_found`` when there is none
        (another owner's alert is not found either)."""
        return self._users.owned(owner or "", id)

    def remove(self, id: str) -> None:
        """Forget an alert found by :meth:`owned`."""
        self._users.remove(id)

    def delete(self, owner: str | None, id: str) -> bool | ProtocolError:
        """:meth:`owned` and :meth:`remove`: ``True``, or ``not_found``."""
        alert = self.owned(owner, id)
        if isinstance(alert, ProtocolError):
            return alert
        self.remove(alert.id)
        return True

    def get(self, id: str) -> Alert | None:
        """The user alert with ``id``, whoever owns it."""
        return self._users.get(id)

    # --- evaluation -----------------------------------------------------------------------------

    def evaluate_tick(self, tick: Tick) -> Evaluation:
        """What ``tick`` changes: its symbol's user alerts, then the built-in day rules.

        A tick with a price that is not positive and finite, or older than the symbol's newest,
        changes nothing. Nothing is applied until :meth:`commit`.
        """
        evaluation = Evaluation()
        price = tick.price
        if not (math.isfinite(price) and price > 0):
            return evaluation
        if type(price) is not float:  # an int from a hand-built tick: events carry floats
            tick = replace(tick, price=float(price))
        last_at, _ = self._builtin.last_tick(tick.symbol)
        if last_at is not None and tick.timestamp < last_at:
            return evaluation
        self._users.evaluate(tick, evaluation)
        self._builtin.evaluate_tick(tick, evaluation)
        return evaluation

    def evaluate_candle(self, candle: Candle) -> Evaluation:
        """What a closed candle of ``rules.interval`` changes (the volume and breakout rules);
        a forming candle, another interval or a candle not newer than the last changes nothing.
        Nothing is applied until :meth:`commit`."""
        evaluation = Evaluation()
        if not candle.closed or candle.interval != self.rules.interval:
            return evaluation
        newest = self._builtin.newest_candle(candle.symbol)
        if newest is not None and candle.start <= newest:
            return evaluation
        self._builtin.evaluate_candle(candle, evaluation)
        return evaluation

    @property
    def analysis_series(self) -> KeysView[tuple[str, Interval]]:
        """The (symbol, interval) pairs that have analysis alerts, as a live view: the ingest
        tests a candle against it before anything else (most candles have none)."""
        return self._users.series()

    def watches(self, symbol: str, interval: Interval, *, forming: bool = False) -> bool:
        """Whether a candle of ``symbol`` at ``interval`` (a forming one with ``forming``) can
        fire an analysis alert: the ingest computes a frame only then."""
        alerts = self._users.of_series(symbol, interval)
        if not alerts:  # by far the most common case
            return False
        return any(
            not (a.triggered and a.once)
            and (not forming or (a.rule is not None and a.rule.forming))
            for a in alerts
        )

    def analysis_needs(self, symbol: str, interval: Interval) -> Needs:
        """What a frame for the analysis alerts of ``symbol`` at ``interval`` must hold."""
        return analysis_needs(self._users.of_series(symbol, interval))

    def evaluate_analysis(self, frame: Frame, at: datetime) -> Evaluation:
        """What the frame's candle (closed, or forming) changes for the analysis alerts of its
        symbol and interval (see :mod:`~tickhub.engines.alerts.analysis`); nothing is applied
        until :meth:`commit`."""
        evaluation = Evaluation()
        candle = frame.candle
        alerts = builtins.list(self._users.of_series(candle.symbol, candle.interval))
        evaluate_analysis(alerts, frame, at, evaluation, self._putting)
        return evaluation

    def _putting(self, alert: Alert) -> Callable[[], None]:
        return lambda: self._users.put(alert)

    def commit(self, evaluation: Evaluation, persisted: int | None = None) -> list[AlertEvent]:
        """Apply the first ``persisted`` changes of ``evaluation`` (all when ``None``) and return
        their firings. Only when every change is applied does the engine take the evaluated
        tick or candle as its new reference; the changes left out are evaluated again on the
        next tick."""
        changes = evaluation.changes
        count = len(changes) if persisted is None else persisted
        for apply in evaluation.always:
            apply()
        if not changes:  # by far the most common evaluation
            for apply in evaluation.settles:
                apply()
            return []
        for apply in evaluation.applies[:count]:
            apply()
        if count == len(changes):
            for apply in evaluation.settles:
                apply()
        events = [c.event for c in changes[:count] if c.event is not None]
        if self._memory_events > 0:
            for event in events:
                kept = self._events.get(event.symbol)
                if kept is None:
                    kept = self._events[event.symbol] = deque(maxlen=self._memory_events)
                kept.append(event)
        return events

    def on_tick(self, tick: Tick) -> list[AlertEvent]:
        """Evaluate ``tick`` and commit it: the alerts that fired."""
        return self.commit(self.evaluate_tick(tick))

    def on_candle(self, candle: Candle) -> list[AlertEvent]:
        """Evaluate a closed candle and commit it: the built-in rules that fired."""
        return self.commit(self.evaluate_candle(candle))

    # --- queries --------------------------------------------------------------------------------

    def state(
        self, symbol: str, owner: str | None = None, *, firing: str | None = None
    ) -> dict[str, builtins.list[object]]:
        """The ``alert_data`` payload for ``symbol`` as ``owner`` sees it (``None`` = ``""``).

        ``price_alerts`` holds the owner's user price alerts (creation order) then the built-in
        price rules; ``volume_alerts`` and ``breakout_alerts`` the built-in candle rules;
        ``indicator_alerts`` and ``pattern_alerts`` the owner's analysis alerts (creation order).
        Each entry is :func:`~tickhub.engines.alerts.wire.alert_payload`; built-in entries carry
        ``value`` = the level currently in force (``None`` until known) and no ``owner``. Only the
        entry whose id is ``firing`` (the event being announced) has ``triggered`` true.
        """
        owner = owner or ""
        lists: dict[str, builtins.list[object]] = {
            "price_alerts": [],
            "volume_alerts": [],
            "breakout_alerts": [],
            "indicator_alerts": [],
            "pattern_alerts": [],
        }
        for alert in self._users.of_symbol(symbol):
            if alert.owner == owner:
                entry = alert_payload(alert, triggered=alert.id == firing)
                lists[f"{alert.category}_alerts"].append(entry)
        for name, payload in self._builtin.entries(symbol, firing):
            lists[name].append(payload)
        return lists

    def recent_events(
        self, symbol: str, owner: str | None = None, limit: int = 20
    ) -> builtins.list[AlertEvent]:
        """The last firings kept in memory for ``symbol``: ``owner``'s (``None`` = ``""``) and
        built-in ones, newest first."""
        owner = owner or ""
        kept = self._events.get(symbol, ())
        mine = [e for e in reversed(kept) if e.alert.source == "builtin" or e.alert.owner == owner]
        return mine[:limit]

    def all(self) -> builtins.list[Alert]:
        """Every user alert of every owner."""
        return self._users.all()

    # Last, so that ``list`` means the builtin in the annotations above.
    def list(self, owner: str | None, symbol: str | None = None) -> builtins.list[Alert]:
        """``owner``'s user alerts (``None`` = ``""``), optionally for one symbol, oldest first."""
        return self._users.list(owner or "", symbol)
