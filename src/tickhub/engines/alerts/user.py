"""User alerts: the alerts clients create, and their evaluation on ticks.

Each alert is evaluated on its own: its state is an immutable :class:`Alert` replaced on every
change, plus the last price it saw (kept apart, since it changes on every tick and is saved only
with the alert's other changes).
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Iterable, KeysView
from dataclasses import replace
from typing import TypeVar

from tickhub.core.commands import CreateAlert, CreateAnalysisAlert
from tickhub.core.model import Interval, Tick
from tickhub.core.protocol import ErrorCode, ProtocolError, clip, shown
from tickhub.engines.alerts.model import (
    Alert,
    AlertChange,
    AlertEvent,
    AlertRules,
    AnalysisRule,
    Evaluation,
)
from tickhub.engines.alerts.rules import decide, price_text, rearms

__all__ = ["UserAlerts"]

K = TypeVar("K")


class UserAlerts:
    """Every owner's alerts, by id and by symbol, in creation order."""

    def __init__(self, rules: AlertRules, new_id: Callable[[], str]) -> None:
        self.rules = rules
        self._band = rules.band
        self._cooldown = rules.cooldown
        self._new_id = new_id
        self._alerts: dict[str, Alert] = {}
        self._by_symbol: dict[str, dict[str, Alert]] = {}
        # Price alerts by symbol (what a tick evaluates), analysis alerts by the series whose
        # candles evaluate them: a tick never walks past the analysis alerts of its symbol.
        self._priced: dict[str, dict[str, Alert]] = {}
        self._by_series: dict[tuple[str, Interval], dict[str, Alert]] = {}
        self._last_price: dict[str, float] = {}  # per alert id, between saves

    # --- the set of alerts ----------------------------------------------------------------------

    def prepare(
        self, owner: str, request: CreateAlert | CreateAnalysisAlert, last_price: float | None
    ) -> Alert | ProtocolError:
        """A new alert for ``request``, not yet added: ``limit_exceeded`` when ``owner`` holds
        ``max_alerts_per_owner`` already. ``last_price`` (the symbol's, if known) is the previous
        price of its first evaluation, so that a crossing right after creation is not missed."""
        held = sum(1 for a in self._alerts.values() if a.owner == owner)
        limit = self.rules.max_alerts_per_owner
        if held >= limit:
            return ProtocolError(
                ErrorCode.LIMIT_EXCEEDED,
                f"too many alerts: {held} (at most {limit})",
                {"limit": limit},
            )
        alert_id = self._new_id()
        while alert_id in self._alerts:
            alert_id = self._new_id()
        if isinstance(request, CreateAnalysisAlert):
            return Alert(
                id=alert_id,
                symbol=request.symbol,
                condition=request.condition.value,
                value=float(request.value) if request.value is not None else None,
                owner=owner,
                once=request.once,
                note=request.note,
                rule=AnalysisRule(
                    request.interval,
                    request.indicator,
                    request.other,
                    request.pattern,
                    request.direction,
                    request.forming,
                ),
            )
        return Alert(
            id=alert_id,
            symbol=request.symbol,
            condition=request.condition.value,
            value=float(request.value),
            owner=owner,
            once=request.once,
            note=request.note,
            last_price=last_price,
        )

    def put(self, alert: Alert) -> None:
        """Add ``alert`` or replace the one with its id (keeping its place in the order)."""
        self._alerts[alert.id] = alert
        self._by_symbol.setdefault(alert.symbol, {})[alert.id] = alert
        if alert.rule is None:
            self._priced.setdefault(alert.symbol, {})[alert.id] = alert
        else:
            series = (alert.symbol, alert.rule.interval)
            self._by_series.setdefault(series, {})[alert.id] = alert

    def owned(self, owner: str, id: str) -> Alert | ProtocolError:
        """``owner``'s alert ``id``, or ``not_found`` (another owner's alert is not found
        either)."""
        alert = self._alerts.get(id)
        if alert is None or alert.owner != owner:
            return ProtocolError(
                ErrorCode.NOT_FOUND, f"unknown alert: {shown(id)}", {"id": clip(id)}
            )
        return alert

    def remove(self, id: str) -> None:
        """Forget alert ``id`` (which must exist)."""
        alert = self._alerts.pop(id)
        _drop(self._by_symbol, alert.symbol, id)
        if alert.rule is None:
            _drop(self._priced, alert.symbol, id)
        else:
            _drop(self._by_series, (alert.symbol, alert.rule.interval), id)
        self._last_price.pop(id, None)

    def get(self, id: str) -> Alert | None:
        """The alert with ``id``, whoever owns it."""
        return self._alerts.get(id)

    def all(self) -> builtins.list[Alert]:
        """Every alert of every owner, oldest first."""
        return builtins.list(self._alerts.values())

    def of_symbol(self, symbol: str) -> Iterable[Alert]:
        """Every owner's alerts of ``symbol``, oldest first."""
        return self._by_symbol.get(symbol, {}).values()

    def series(self) -> KeysView[tuple[str, Interval]]:
        """The (symbol, interval) pairs that have analysis alerts: a live view."""
        return self._by_series.keys()

    def of_series(self, symbol: str, interval: Interval) -> Iterable[Alert]:
        """Every owner's analysis alerts of ``symbol`` at ``interval``, oldest first."""
        return self._by_series.get((symbol, interval), {}).values()

    def list(self, owner: str, symbol: str | None = None) -> builtins.list[Alert]:
        """``owner``'s alerts, optionally of one symbol, oldest first."""
        source = self._alerts.values() if symbol is None else self.of_symbol(symbol)
        return [a for a in source if a.owner == owner]

    # --- evaluation -----------------------------------------------------------------------------

    def evaluate(self, tick: Tick, evaluation: Evaluation) -> None:
        """Evaluate the tick's symbol's alerts into ``evaluation`` (``tick.price`` a float)."""
        now, price = tick.timestamp, tick.price
        seen: dict[str, float] = {}
        for alert in self._priced.get(tick.symbol, {}).values():
            if alert.triggered and alert.once:
                continue
            if alert.triggered_at is not None and now <= alert.triggered_at:
                continue
            prev = self._last_price.get(alert.id, alert.last_price)
            change = self._check(alert, tick, prev)
            if change is None:
                seen[alert.id] = price
            else:
                evaluation.add(change, self._applying(change.alert, price))
        if seen:
            evaluation.always.append(functools.partial(self._last_price.update, seen))

    def _applying(self, alert: Alert, price: float) -> Callable[[], None]:
        def apply() -> None:
            self.put(alert)
            self._last_price[alert.id] = price

        return apply

    def _check(self, alert: Alert, tick: Tick, prev: float | None) -> AlertChange | None:
        now, price = tick.timestamp, tick.price
        level = alert.value
        assert level is not None
        cond = alert.condition
        if cond == "percent_change":
            if tick.prev_close <= 0:
                return None
            active = abs(tick.change_percent) >= level
        elif cond == "above":
            active = price >= level
        elif cond == "cross_up":
            active = prev is not None and prev < level <= price
        elif cond == "below":
            active = price <= level
        else:  # cross_down
            active = prev is not None and prev > level >= price
        armed = alert.armed
        if armed and not active:
            return None
        rearm = not armed and self._rearms(cond, level, tick)
        verdict = decide(armed, active, rearm, alert.triggered_at, now, self._cooldown)
        if verdict is None:
            return None
        if verdict == "rearm":
            return AlertChange(replace(alert, armed=True, triggered=False, last_price=price))
        message = _message(alert, tick)
        fired = replace(
            alert,
            triggered=True,
            triggered_at=now,
            price=price,
            message=message,
            armed=False,
            last_price=price,
            fire_count=alert.fire_count + 1,
        )
        return AlertChange(fired, AlertEvent(fired, now, price, message, "price"))

    def _rearms(self, condition: str, level: float, tick: Tick) -> bool:
        """Whether a fired alert re-arms on ``tick``; for ``percent_change`` the levels are the
        prices ``prev_close × (1 ± level/100)``, and the price must be back inside both."""
        price, band = tick.price, self._band
        if condition == "percent_change":
            up = tick.prev_close * (1 + level / 100)
            down = tick.prev_close * (1 - level / 100)
            return rearms(False, price, down, band) and rearms(True, price, up, band)
        return rearms(condition in ("above", "cross_up"), price, level, band)


def _drop(index: dict[K, dict[str, Alert]], key: K, id: str) -> None:
    """Take alert ``id`` out of ``index[key]``, and the key with its last alert."""
    alerts = index[key]
    del alerts[id]
    if not alerts:
        del index[key]


def _message(alert: Alert, tick: Tick) -> str:
    level = alert.value
    assert level is not None
    s, p, v = alert.symbol, price_text(tick.price), price_text(level)
    cond = alert.condition
    if cond == "above":
        return f"{s} at {p} is at or above {v}"
    if cond == "below":
        return f"{s} at {p} is at or below {v}"
    if cond == "cross_up":
        return f"{s} crossed above {v} at {p}"
    if cond == "cross_down":
        return f"{s} crossed below {v} at {p}"
    return (
        f"{s} moved {tick.change_percent:+.2f}% from the previous close "
        f"{price_text(tick.prev_close)} at {p} (alert at {level:g}%)"
    )
