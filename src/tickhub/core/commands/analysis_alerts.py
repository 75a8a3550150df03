"""``create_alert`` for analysis alerts: an indicator against a level or another operand, or a
candlestick pattern, evaluated on the candles of one interval.

A ``create_alert`` is an analysis alert when it has ``indicator`` or its ``condition`` is
``pattern``; every other one is a price alert (:mod:`tickhub.core.commands.alerts`), answered
exactly as before. Fields are checked in this order: ``interval``, ``condition``, ``indicator``
(or ``pattern`` and ``direction``), ``other`` / ``value``, ``forming``, ``once``, ``note``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any, Final

from tickhub.core.commands.alert_operands import Operand, parse_operand
from tickhub.core.commands.fields import Context, interval_of, invalid, missing, once_and_note
from tickhub.core.commands.model import AnalysisCondition, CreateAnalysisAlert
from tickhub.core.model import Interval
from tickhub.core.protocol import ProtocolError, json_kind, shown

ANALYSIS_VALUE_LIMIT: Final = Decimal(10) ** 12
"""An indicator alert's ``value``, inclusive on both sides: -10^12 to 10^12 (an OBV or a
volume can be far larger than any price)."""

ANALYSIS_VALUE_DECIMALS: Final = 6
"""Decimals an indicator alert's ``value`` may have (an RSI level of 70.5, a MACD of 0.000125)."""

DEFAULT_ALERT_INTERVAL: Final = Interval.M1
"""An analysis alert's ``interval`` when none is given."""

PATTERN_NAMES: Final = (
    "doji", "hammer", "shooting_star", "engulfing", "harami", "morning_star", "evening_star",
    "three_white_soldiers", "three_black_crows", "abandoned_baby", "advance_block", "belt_hold",
    "breakaway", "closing_marubozu", "concealing_baby_swallow", "counterattack",
    "dark_cloud_cover", "doji_star", "dragonfly_doji", "evening_doji_star",
    "gap_side_by_side_white", "gap_three_methods", "gravestone_doji", "hanging_man",
    "harami_cross", "high_wave", "hikkake", "homing_pigeon", "identical_three_crows", "in_neck",
    "inverted_hammer", "kicking", "kicking_by_length", "ladder_bottom", "long_legged_doji",
    "long_line", "marubozu", "mat_hold", "matching_low", "modified_hikkake", "morning_doji_star",
    "on_neck", "piercing", "rickshaw_man", "rising_falling_three_methods", "separating_lines",
    "short_line", "spinning_top", "stalled_pattern", "stick_sandwich", "takuri", "tasuki_gap",
    "three_inside", "three_line_strike", "three_outside", "three_stars_in_the_south",
    "thrusting", "tristar", "two_crows", "unique_three_river", "upside_gap_two_crows",
)  # fmt: skip
"""The patterns an alert may name: those of ``tickhub.engines.analysis.patterns.PATTERNS``, in
its order (a test keeps the two equal: the core cannot import the engine)."""

ANY_PATTERN: Final = "any"
DIRECTIONS: Final = ("bullish", "bearish", "neutral")

_STEP = Decimal(1).scaleb(-ANALYSIS_VALUE_DECIMALS)
_INDICATOR_CONDITIONS = (
    AnalysisCondition.CROSSES_ABOVE,
    AnalysisCondition.CROSSES_BELOW,
    AnalysisCondition.ABOVE,
    AnalysisCondition.BELOW,
)


def is_analysis_alert(msg: Mapping[str, Any]) -> bool:
    """Whether a ``create_alert`` asks for an analysis alert (``indicator``, or ``condition``
    ``pattern``), so that every other one is parsed as the price alert it always was."""
    if msg.get("indicator") is not None:
        return True
    condition = msg.get("condition")
    return isinstance(condition, str) and condition.strip().lower() == AnalysisCondition.PATTERN


def parse_analysis_alert(
    msg: Mapping[str, Any], ctx: Context, symbol: str
) -> CreateAnalysisAlert | ProtocolError:
    """The analysis alert of a ``create_alert`` whose ``symbol`` was found (see the module)."""
    interval = _interval(msg.get("interval"))
    if isinstance(interval, ProtocolError):
        return interval
    raw = msg.get("condition")
    if raw is None or raw == "":
        return missing("condition")
    if not isinstance(raw, str):
        return invalid("condition", f"field 'condition' must be a string, got {json_kind(raw)}")
    text = raw.strip().lower()
    if text == AnalysisCondition.PATTERN:
        pattern = _pattern_fields(msg)
        if isinstance(pattern, ProtocolError):
            return pattern
        name, direction = pattern
        return _finish(
            msg,
            CreateAnalysisAlert(
                symbol, interval, AnalysisCondition.PATTERN, pattern=name, direction=direction
            ),
        )
    allowed = [c.value for c in _INDICATOR_CONDITIONS]
    if text not in allowed:
        return invalid(
            "condition",
            f"condition {shown(raw)} does not fit an indicator alert (allowed: "
            f"{', '.join(allowed)})",
            allowed=allowed,
        )
    condition = AnalysisCondition(text)
    indicator = parse_operand(msg.get("indicator"), "indicator", ctx.max_period)
    if isinstance(indicator, ProtocolError):
        return indicator
    right = _right_side(msg, ctx)
    if isinstance(right, ProtocolError):
        return right
    other, value = right
    return _finish(
        msg,
        CreateAnalysisAlert(symbol, interval, condition, indicator, other, value),
    )


def _interval(raw: object) -> Interval | ProtocolError:
    if raw is None:
        return DEFAULT_ALERT_INTERVAL
    return interval_of(raw.strip() if isinstance(raw, str) else raw, field="interval")


def _pattern_fields(msg: Mapping[str, Any]) -> tuple[str, str | None] | ProtocolError:
    for name in ("indicator", "other", "value"):
        if msg.get(name) is not None:
            return invalid(name, f"condition 'pattern' takes no field {name!r}")
    raw = msg.get("pattern")
    if raw is None or raw == "":
        return missing("pattern")
    allowed = [*PATTERN_NAMES, ANY_PATTERN]
    name = raw.strip().lower() if isinstance(raw, str) else ""
    if name not in allowed:
        return invalid(
            "pattern",
            f"unknown pattern: {shown(raw)} (allowed: any, or a name of the patterns' table)",
            allowed=allowed,
        )
    direction = msg.get("direction")
    if direction is None:
        return name, None
    chosen = direction.strip().lower() if isinstance(direction, str) else ""
    if chosen not in DIRECTIONS:
        return invalid(
            "direction",
            f"unknown direction: {shown(direction)} (allowed: {', '.join(DIRECTIONS)})",
            allowed=list(DIRECTIONS),
        )
    return name, chosen


def _right_side(
    msg: Mapping[str, Any], ctx: Context
) -> tuple[Operand | None, Decimal | None] | ProtocolError:
    """Exactly one of ``other`` (an operand) and ``value`` (a number)."""
    other, value = msg.get("other"), msg.get("value")
    if other is None and value is None:
        return missing("value")
    if other is not None and value is not None:
        return invalid("other", "give either 'value' or 'other', not both")
    if other is not None:
        operand = parse_operand(other, "other", ctx.max_period)
        return operand if isinstance(operand, ProtocolError) else (operand, None)
    level = _value(value)
    return level if isinstance(level, ProtocolError) else (None, level)


def _value(value: object) -> Decimal | ProtocolError:
    """A finite number within ±:data:`ANALYSIS_VALUE_LIMIT` with at most
    :data:`ANALYSIS_VALUE_DECIMALS` decimals, checked on the number as written."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return invalid("value", f"field 'value' must be a number, got {json_kind(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        return invalid("value", f"field 'value' must be a finite number, got {shown(value)}")
    exact = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    limit = ANALYSIS_VALUE_LIMIT
    if not -limit <= exact <= limit:
        return invalid(
            "value",
            f"field 'value' must be from {-limit:f} to {limit:f}, got {shown(value)}",
            min=float(-limit),
            max=float(limit),
        )
    if exact != exact.quantize(_STEP):
        return invalid(
            "value",
            f"field 'value' must have at most {ANALYSIS_VALUE_DECIMALS} decimals, "
            f"got {shown(value)}",
            decimals=ANALYSIS_VALUE_DECIMALS,
        )
    return exact


def _finish(
    msg: Mapping[str, Any], alert: CreateAnalysisAlert
) -> CreateAnalysisAlert | ProtocolError:
    """``forming``, then ``once`` and ``note`` as for a price alert."""
    forming = msg.get("forming", False)
    if forming is None:
        forming = False
    if not isinstance(forming, bool):
        return invalid("forming", f"field 'forming' must be a boolean, got {json_kind(forming)}")
    rest = once_and_note(msg)
    if isinstance(rest, ProtocolError):
        return rest
    once, note = rest
    return replace(alert, forming=forming, once=once, note=note)
