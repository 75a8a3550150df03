"""Analysis alerts: an indicator against a level or another operand, or a candlestick pattern,
evaluated on the candles of one interval (pure: the values come in a :class:`Frame`).

Left ``L`` and right ``R`` are the operands on the candle evaluated, ``L'`` and ``R'`` on the
closed candle before it. ``crosses_above`` fires when ``L' <= R'`` and ``L > R``,
``crosses_below`` when ``L' >= R'`` and ``L < R``, ``above`` when ``L >= R``, ``below`` when
``L <= R``; nothing is evaluated while a side is ``None`` (warm-up). A pattern alert fires on a
candle on which its pattern (of its direction) is detected.

The candle evaluated is the newest closed one, and for an alert with ``forming`` also the forming
one on each of its updates (then ``L'``, ``R'`` are the last closed candle's). An alert fires at
most once per candle: a candle whose start is not newer than ``Alert.last_candle`` is skipped,
which also holds across a restart, since ``last_candle`` is saved with the firing. ``L'`` and
``R'`` are not remembered: whoever builds the frame computes them from the candle history, so a
crossing on the first close after a restart is seen when the history is there.

``once=False``: a crossing fires at every crossing; ``above``/``below`` fire again only after a
close on which the condition was false (that close re-arms them); a pattern fires on every
candle that has it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tickhub.core.commands import IndicatorSet, IndicatorSpec, Operand
from tickhub.core.commands.alert_operands import SESSION_FIELDS
from tickhub.core.commands.indicators import number_text
from tickhub.core.model import Candle
from tickhub.engines.alerts.model import Alert, AlertChange, AlertEvent, Evaluation
from tickhub.engines.alerts.rules import price_text

__all__ = ["Frame", "Needs", "Session", "analysis_needs", "evaluate_analysis", "operand_value"]

Session = tuple[float, float, float]
"""The previous IST session's high, low and close."""


@dataclass(frozen=True, slots=True)
class Frame:
    """What one evaluation of a (symbol, interval) reads.

    ``values`` is the ``technical_indicators`` object of the alerts' operand set on ``candle``
    (the newest closed candle, or the forming one), ``session`` the previous session of
    ``candle``'s day; ``before``, ``before_values`` and ``before_session`` the same for the
    closed candle before it (``None`` when there is none). ``patterns`` are those detected on
    ``candle`` (``name`` and ``direction``), read only when a pattern alert exists.
    """

    candle: Candle
    values: Mapping[str, Any]
    session: Session | None = None
    before: Candle | None = None
    before_values: Mapping[str, Any] | None = None
    before_session: Session | None = None
    patterns: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class Needs:
    """What a frame for some analysis alerts must hold: the indicator set of their operands (in
    canonical order: one computation per set, shared with ``/ws/analysis`` subscribers of the
    same set), whether the candle's patterns and the previous session are read."""

    specs: IndicatorSet
    patterns: bool
    sessions: bool


def analysis_needs(alerts: Iterable[Alert]) -> Needs:
    """What evaluating ``alerts`` reads."""
    specs: dict[str, IndicatorSpec] = {}
    patterns = sessions = False
    for alert in alerts:
        rule = alert.rule
        if rule is None:
            continue
        patterns = patterns or rule.pattern is not None
        for operand in (rule.indicator, rule.other):
            if operand is None:
                continue
            if operand.spec is not None:
                specs.setdefault(operand.spec.canonical, operand.spec)
            elif operand.field in SESSION_FIELDS:
                sessions = True
    return Needs(tuple(specs[k] for k in sorted(specs)), patterns, sessions)


def operand_value(
    operand: Operand, values: Mapping[str, Any], candle: Candle, session: Session | None
) -> float | None:
    """One operand's value on ``candle``; ``None`` while it is warming up."""
    if operand.spec is None:
        field = operand.field
        if field in SESSION_FIELDS:
            return None if session is None else session[SESSION_FIELDS.index(field)]
        return float(getattr(candle, str(field)))
    found = values.get(operand.spec.canonical)
    if isinstance(found, Mapping):
        found = found.get(operand.member or "")
    return float(found) if isinstance(found, int | float) else None


def evaluate_analysis(
    alerts: Iterable[Alert],
    frame: Frame,
    at: datetime,
    evaluation: Evaluation,
    applying: Callable[[Alert], Callable[[], None]],
) -> None:
    """Evaluate ``alerts`` (of the frame's symbol and interval) on the frame's candle into
    ``evaluation``; ``at`` is the time of a firing, ``applying(alert)`` how a change applies."""
    closed = frame.candle.closed
    for alert in alerts:
        rule = alert.rule
        if rule is None or (alert.triggered and alert.once):
            continue
        if alert.last_candle is not None and frame.candle.start <= alert.last_candle:
            continue
        if not closed and not rule.forming:
            continue
        change = _check(alert, frame, at)
        if change is not None:
            evaluation.add(change, applying(change.alert))


def _check(alert: Alert, frame: Frame, at: datetime) -> AlertChange | None:
    rule = alert.rule
    assert rule is not None
    candle = frame.candle
    if rule.pattern is not None:
        found = next(
            (
                p
                for p in frame.patterns
                if rule.pattern in ("any", p["name"]) and rule.direction in (None, p["direction"])
            ),
            None,
        )
        if found is None:
            return None
        text = f"{found['direction']} {str(found['name']).replace('_', ' ')}"
        return _fire(alert, frame, at, None, f"{_where(alert)}: {text} (close {_close(candle)})")
    assert rule.indicator is not None
    left = operand_value(rule.indicator, frame.values, candle, frame.session)
    right = _right(alert, frame.values, candle, frame.session)
    if left is None or right is None:
        return None
    condition = alert.condition
    if condition in ("above", "below"):
        active = left >= right if condition == "above" else left <= right
        if not alert.armed:
            if candle.closed and not active:
                return AlertChange(replace(alert, armed=True, triggered=False))
            return None
        if not active:
            return None
        verb = "is at or above" if condition == "above" else "is at or below"
    else:
        before = frame.before
        if before is None or frame.before_values is None:
            return None
        left_before = operand_value(
            rule.indicator, frame.before_values, before, frame.before_session
        )
        right_before = _right(alert, frame.before_values, before, frame.before_session)
        if left_before is None or right_before is None:
            return None
        if condition == "crosses_above":
            active = left_before <= right_before and left > right
        else:
            active = left_before >= right_before and left < right
        if not active:
            return None
        verb = "crossed above" if condition == "crosses_above" else "crossed below"
    shown_right = (
        number_text(right) if rule.other is None else f"{_name(rule.other)} {_number(right)}"
    )
    message = (
        f"{_where(alert)}: {_name(rule.indicator)} {_number(left)} {verb} {shown_right} "
        f"(close {_close(candle)})"
    )
    return _fire(alert, frame, at, (left, right), message)


def _right(
    alert: Alert, values: Mapping[str, Any], candle: Candle, session: Session | None
) -> float | None:
    rule = alert.rule
    assert rule is not None
    if rule.other is None:
        return alert.value
    return operand_value(rule.other, values, candle, session)


def _fire(
    alert: Alert,
    frame: Frame,
    at: datetime,
    values: tuple[float, float] | None,
    message: str,
) -> AlertChange:
    candle = frame.candle
    level = alert.condition in ("above", "below")
    fired = replace(
        alert,
        triggered=True,
        triggered_at=at,
        price=candle.close,
        message=message,
        armed=not alert.once and not level,
        last_candle=candle.start,
        values=values,
        fire_count=alert.fire_count + 1,
    )
    return AlertChange(fired, AlertEvent(fired, at, candle.close, message, fired.category))


def _where(alert: Alert) -> str:
    rule = alert.rule
    assert rule is not None
    return f"{alert.symbol} {rule.interval.value}"


def _close(candle: Candle) -> str:
    return price_text(candle.close)


def _number(value: float) -> str:
    return f"{value:.2f}"


_NAMES = {
    "sma": "SMA",
    "ema": "EMA",
    "rsi": "RSI",
    "macd": "MACD",
    "bollinger": "Bollinger",
    "atr": "ATR",
    "vwap": "VWAP",
    "supertrend": "Supertrend",
    "stoch": "Stoch",
    "adx": "ADX",
    "obv": "OBV",
    "sar": "SAR",
    "donchian": "Donchian",
    "pivots": "Pivots",
}


def _name(operand: Operand) -> str:
    """An operand as a chart labels it: ``RSI(14)``, ``MACD signal(12,26,9)``, ``close``,
    ``previous high``."""
    spec = operand.spec
    if spec is None:
        return str(operand.field).replace("prev_", "previous ")
    name = _NAMES.get(spec.name, spec.name)
    canonical = operand.canonical
    head, _, params = canonical.partition(":")
    _, dot, member = head.partition(".")
    label = f"{name} {member}" if dot else name
    return f"{label}({params})" if params else label
