"""The ``/ws/alerts`` requests: ``create_alert``, ``list_alerts``, ``delete_alert``.

Whether an alert id exists, and the quota of alerts per owner, are state: the engine's to check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from tickhub.core.commands.analysis_alerts import is_analysis_alert, parse_analysis_alert
from tickhub.core.commands.fields import (
    NOTE_MAX_LENGTH as NOTE_MAX_LENGTH,
)
from tickhub.core.commands.fields import (
    Context,
    instrument_symbol,
    invalid,
    missing,
    once_and_note,
)
from tickhub.core.commands.model import (
    Condition,
    CreateAlert,
    CreateAnalysisAlert,
    DeleteAlert,
    ListAlerts,
)
from tickhub.core.protocol import ProtocolError, json_kind, shown

ALERT_PRICE_RANGE: Final = (Decimal("0.01"), Decimal(10) ** 9)
"""An alert's price level, inclusive: one paisa to 10^9 rupees (the range of a position's
average price; far above any NSE quote)."""

ALERT_PERCENT_RANGE: Final = (Decimal("0.01"), Decimal(100))
"""A ``percent_change`` level, inclusive: a price cannot fall more than 100 %, and NSE's widest
daily price band is 20 %."""

ALERT_VALUE_DECIMALS: Final = 2
"""Decimals an alert level may have: NSE quotes equities in steps of 0.05, but a level may be
set at any paisa (and a percentage at any hundredth)."""

_ALERT_STEP = Decimal(1).scaleb(-ALERT_VALUE_DECIMALS)


def parse_create_alert(
    msg: Mapping[str, Any], ctx: Context
) -> CreateAlert | CreateAnalysisAlert | ProtocolError:
    """``symbol`` (looked up first), ``condition``, ``value``, ``once``, ``note``, in this order;
    an analysis alert (``indicator``, or ``condition`` ``pattern``) is
    :func:`~tickhub.core.commands.analysis_alerts.parse_analysis_alert`'s. A price alert takes
    no ``other``."""
    symbol = instrument_symbol(msg, ctx)
    if isinstance(symbol, ProtocolError):
        return symbol
    if is_analysis_alert(msg):
        return parse_analysis_alert(msg, ctx, symbol)
    raw = msg.get("condition")
    if raw is None or raw == "":
        return missing("condition")
    if not isinstance(raw, str):
        return invalid("condition", f"field 'condition' must be a string, got {json_kind(raw)}")
    try:
        condition = Condition(raw.strip().lower())
    except ValueError:
        allowed = [c.value for c in Condition]
        return invalid(
            "condition",
            f"unknown condition: {shown(raw)} (allowed: {', '.join(allowed)})",
            allowed=allowed,
        )
    if msg.get("other") is not None:
        return invalid(
            "other",
            f"field 'other' needs an 'indicator': condition {condition.value!r} is a price's",
        )
    level = _level(condition, msg.get("value"))
    if isinstance(level, ProtocolError):
        return level
    rest = once_and_note(msg)
    if isinstance(rest, ProtocolError):
        return rest
    once, note = rest
    return CreateAlert(symbol, condition, level, once, note)


def _level(condition: Condition, value: object) -> Decimal | ProtocolError:
    """An alert's level: a price in :data:`ALERT_PRICE_RANGE`, or for ``percent_change`` a
    percentage in :data:`ALERT_PERCENT_RANGE`, with at most :data:`ALERT_VALUE_DECIMALS`
    decimals (checked on the number as written, so ``2500.1`` passes and ``5e-324`` or
    ``2**64`` do not)."""
    if value is None:
        return missing("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return invalid("value", f"field 'value' must be a number, got {json_kind(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        return invalid("value", f"field 'value' must be a finite number, got {shown(value)}")
    # The shortest repr is the number the sender wrote: 0.1 -> Decimal("0.1").
    exact = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    percent = condition is Condition.PERCENT_CHANGE
    low, high = ALERT_PERCENT_RANGE if percent else ALERT_PRICE_RANGE
    what = "a percentage" if percent else "a price"
    if not low <= exact <= high:
        return invalid(
            "value",
            f"field 'value' must be {what} from {low} to {high:f}, got {shown(value)}",
            min=float(low),
            max=float(high),
        )
    if exact != exact.quantize(_ALERT_STEP):
        return invalid(
            "value",
            f"field 'value' must have at most {ALERT_VALUE_DECIMALS} decimals, got {shown(value)}",
            decimals=ALERT_VALUE_DECIMALS,
        )
    return exact


def parse_list_alerts(msg: Mapping[str, Any], ctx: Context) -> ListAlerts | ProtocolError:
    """``symbol`` is optional: null or empty lists every alert."""
    if msg.get("symbol") in (None, ""):
        return ListAlerts()
    symbol = instrument_symbol(msg, ctx)
    return symbol if isinstance(symbol, ProtocolError) else ListAlerts(symbol)


def parse_delete_alert(msg: Mapping[str, Any], ctx: Context) -> DeleteAlert | ProtocolError:
    """``id`` must be a non-empty string; whether it exists is the engine's to say."""
    alert_id = msg.get("id")
    if alert_id is None or alert_id == "":
        return missing("id")
    if not isinstance(alert_id, str):
        return invalid("id", f"field 'id' must be a string, got {json_kind(alert_id)}")
    return DeleteAlert(alert_id)
