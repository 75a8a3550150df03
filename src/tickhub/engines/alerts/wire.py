"""Alerts on the wire: the payloads clients receive, and the checks on what they ask for.

Errors are :class:`~tickhub.core.protocol.ProtocolError` values, returned rather than raised:
a bad request is an answer to the client, not a fault. No error echoes a structure the client
sent, only its JSON type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from tickhub.core.protocol import ErrorCode, ProtocolError, iso, shown
from tickhub.engines.alerts.model import CONDITIONS, UP_RULES, Alert, AlertEvent

__all__ = [
    "NOTE_MAX_LENGTH",
    "PERCENT_RANGE",
    "PRICE_RANGE",
    "VALUE_DECIMALS",
    "AlertRequest",
    "alert_id",
    "alert_payload",
    "alert_request",
    "event_payload",
]

NOTE_MAX_LENGTH = 200
"""Characters a user alert's note may have: a reminder, not a document."""

PRICE_RANGE: Final = (Decimal("0.01"), Decimal(10) ** 9)
"""An alert's price level, inclusive: one paisa to 10^9 rupees (the range of a position's
average price; far above any NSE quote)."""

PERCENT_RANGE: Final = (Decimal("0.01"), Decimal(100))
"""A ``percent_change`` level, inclusive: a price cannot fall more than 100 %, and NSE's widest
daily price band is 20 %."""

VALUE_DECIMALS: Final = 2
"""Decimals an alert level may have: NSE quotes equities in steps of 0.05, but a level may be
set at any paisa (and a percentage at any hundredth)."""

_STEP = Decimal(1).scaleb(-VALUE_DECIMALS)


# --- payloads -----------------------------------------------------------------------------------


def _round(value: object) -> object:
    """Levels derived from averages keep float artefacts; the wire shows 4 decimals."""
    return round(value, 4) if isinstance(value, float) else value


def alert_payload(
    alert: Alert, *, triggered: bool = False, fired: bool | None = None
) -> dict[str, object]:
    """An alert for the wire.

    ``triggered`` is true only where a firing is announced (the event message, on the alert that
    fired), so the seed's ``if (alert.triggered) showNotification(...)`` notifies once per
    firing; the lasting state is ``fired`` (the stored flag unless given) and ``armed``.
    """
    body: dict[str, object] = {
        "id": alert.id,
        "symbol": alert.symbol,
        "type": alert.condition,
        "condition": alert.condition,
        "value": _round(alert.value),
        "triggered": triggered,
        "fired": alert.triggered if fired is None else fired,
        "triggered_at": iso(alert.triggered_at) if alert.triggered_at is not None else None,
        "price": alert.price,
        "message": alert.message,
        "once": alert.once,
        "note": alert.note,
        "source": alert.source,
        "armed": alert.armed,
        "fire_count": alert.fire_count,
        "category": alert.category,
    }
    if alert.source == "user":
        body["owner"] = alert.owner
    else:
        # Built-in rules: ``type`` is the rule, ``condition`` its direction against ``value``.
        body["condition"] = "above" if alert.condition in UP_RULES else "below"
    return body


def event_payload(event: AlertEvent, *, triggered: bool = True) -> dict[str, object]:
    """A firing for the wire: the alert after firing, with this firing's time, price, message
    (``triggered`` false where it is only recalled, as in ``recent_events``)."""
    body = alert_payload(event.alert, triggered=triggered, fired=True)
    body.update(
        triggered_at=iso(event.triggered_at),
        price=event.price,
        message=event.message,
        category=event.category,
    )
    return body


# --- requests -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertRequest:
    """The fields of a valid ``create_alert``, normalised: a stripped symbol, a lower-case
    condition, the level as a float, ``None`` for an empty note."""

    symbol: str
    condition: str
    value: float
    once: bool
    note: str | None


def alert_request(
    symbol: object, condition: object, value: object, once: object, note: object
) -> AlertRequest | ProtocolError:
    """Check the fields of a new user alert.

    Errors: ``missing_field`` for a missing symbol, condition or value; ``invalid_field`` for an
    unknown condition, a value that is not a number (a boolean is not one) in
    :data:`PRICE_RANGE` (:data:`PERCENT_RANGE` for ``percent_change``) with at most
    :data:`VALUE_DECIMALS` decimals, a non-boolean ``once``, a ``note`` that is not a string of
    at most :data:`NOTE_MAX_LENGTH` characters.
    """
    if symbol is None or (isinstance(symbol, str) and not symbol.strip()):
        return _missing("symbol")
    if not isinstance(symbol, str):
        return _invalid("symbol", f"field 'symbol' must be a string, got {_kind(symbol)}")
    if condition is None or condition == "":
        return _missing("condition")
    if not isinstance(condition, str):
        return _invalid("condition", f"field 'condition' must be a string, got {_kind(condition)}")
    name = condition.strip().lower()
    if name not in CONDITIONS:
        allowed = ", ".join(CONDITIONS)
        return _invalid(
            "condition",
            f"unknown condition: {shown(condition)} (allowed: {allowed})",
            allowed=list(CONDITIONS),
        )
    level = _level(name, value)
    if isinstance(level, ProtocolError):
        return level
    if not isinstance(once, bool):
        return _invalid("once", f"field 'once' must be a boolean, got {_kind(once)}")
    if note is not None and not isinstance(note, str):
        return _invalid("note", f"field 'note' must be a string, got {_kind(note)}")
    if note is not None and len(note) > NOTE_MAX_LENGTH:
        return _invalid(
            "note",
            f"field 'note' is too long: {len(note)} characters (at most {NOTE_MAX_LENGTH})",
        )
    return AlertRequest(symbol.strip(), name, level, once, note or None)


def alert_id(id: object) -> str | ProtocolError:
    """The ``id`` of a request about one alert: ``missing_field`` or ``invalid_field`` when it
    is not a non-empty string (whether such an alert exists is the engine's to say)."""
    if id is None or id == "":
        return _missing("id")
    if not isinstance(id, str):
        return _invalid("id", f"field 'id' must be a string, got {_kind(id)}")
    return id


def _invalid(name: str, message: str, **details: object) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_FIELD, message, {"field": name, **details})


def _missing(name: str) -> ProtocolError:
    return ProtocolError(ErrorCode.MISSING_FIELD, f"missing field: {name!r}", {"field": name})


def _kind(value: object) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _level(condition: str, value: object) -> float | ProtocolError:
    """The ``value`` of a new alert: a price in :data:`PRICE_RANGE`, or for ``percent_change`` a
    percentage in :data:`PERCENT_RANGE`, with at most :data:`VALUE_DECIMALS` decimals (checked
    on the number as written, so ``2500.1`` passes and ``5e-324`` or ``2**64`` do not)."""
    if value is None:
        return _missing("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _invalid("value", f"field 'value' must be a number, got {_kind(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        return _invalid("value", f"field 'value' must be a finite number, got {shown(value)}")
    # The shortest repr is the number the sender wrote: 0.1 -> Decimal("0.1").
    exact = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    percent = condition == "percent_change"
    low, high = PERCENT_RANGE if percent else PRICE_RANGE
    what = "a percentage" if percent else "a price"
    if not low <= exact <= high:
        return _invalid(
            "value",
            f"field 'value' must be {what} from {low} to {high:f}, got {shown(value)}",
            min=float(low),
            max=float(high),
        )
    if exact != exact.quantize(_STEP):
        return _invalid(
            "value",
            f"field 'value' must have at most {VALUE_DECIMALS} decimals, got {shown(value)}",
            decimals=VALUE_DECIMALS,
        )
    return float(exact)
