"""Alerts on the wire: the payloads clients receive.

What clients ask for (``create_alert``, ``delete_alert``) is checked before it reaches the engine,
in :mod:`tickhub.core.commands`; what they receive is shaped here, so that the engine's state and
its firings read the same in a snapshot, an event and a reply.
"""

from __future__ import annotations

from tickhub.core.protocol import iso
from tickhub.engines.alerts.model import UP_RULES, Alert, AlertEvent

__all__ = ["alert_payload", "event_payload"]


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
        if alert.rule is not None:
            body.update(_analysis_fields(alert))
    else:
        # Built-in rules: ``type`` is the rule, ``condition`` its direction against ``value``.
        body["condition"] = "above" if alert.condition in UP_RULES else "below"
    return body


def _analysis_fields(alert: Alert) -> dict[str, object]:
    """What an analysis alert adds: its series, operands, pattern, and its last firing's
    ``values`` and ``candle_start``."""
    rule = alert.rule
    assert rule is not None
    body: dict[str, object] = {
        "interval": rule.interval.value,
        "indicator": rule.indicator.canonical if rule.indicator is not None else None,
        "other": rule.other.canonical if rule.other is not None else None,
        "forming": rule.forming,
    }
    if rule.pattern is not None:
        body["pattern"] = rule.pattern
        body["direction"] = rule.direction
    values = alert.values
    body["values"] = (
        {"left": values[0], "right": values[1]}
        if values is not None and rule.pattern is None
        else None
    )
    body["candle_start"] = iso(alert.last_candle) if alert.last_candle is not None else None
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
