"""What the alert and position requests share: the instrument a request names, and the shape of
a field error (``missing_field``, ``invalid_field`` with ``details.field``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tickhub.core import defaults
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import Interval
from tickhub.core.protocol import ErrorCode, ProtocolError, clip, json_kind, shown
from tickhub.core.topics import Endpoint


@dataclass(frozen=True, slots=True)
class Context:
    """What validating a message needs besides the message: see ``parse_command``."""

    endpoint: Endpoint
    registry: InstrumentRegistry
    max_symbols: int
    max_indicators: int = defaults.MAX_INDICATORS_PER_SUBSCRIPTION
    max_period: int = defaults.MAX_INDICATOR_PERIOD


def interval_of(raw: object, **details: object) -> Interval | ProtocolError:
    """The interval ``raw`` names, or ``unknown_interval`` listing the allowed ones (with
    ``details`` added to the error's)."""
    if isinstance(raw, str):
        try:
            return Interval.parse(raw)
        except ValueError:
            pass
    value = shown(raw)
    return ProtocolError(
        ErrorCode.UNKNOWN_INTERVAL,
        f"unknown interval: {value} (allowed: {', '.join(i.value for i in Interval)})",
        {"interval": raw if isinstance(raw, str) else value, **details},
    )


def missing(name: str) -> ProtocolError:
    """A required field that is absent, null or empty."""
    return ProtocolError(ErrorCode.MISSING_FIELD, f"missing field: {name!r}", {"field": name})


def invalid(name: str, message: str, **details: object) -> ProtocolError:
    """A field with a value it cannot have; ``message`` says which values it can."""
    return ProtocolError(ErrorCode.INVALID_FIELD, message, {"field": name, **details})


def instrument_symbol(msg: Mapping[str, Any], ctx: Context) -> str | ProtocolError:
    """The required ``symbol`` of an alert or position request, in the registry's spelling."""
    raw = msg.get("symbol")
    if raw is None or raw == "":
        return missing("symbol")
    if not isinstance(raw, str):
        return invalid("symbol", "field 'symbol' must be a string")
    instrument = ctx.registry.get(raw)
    if instrument is None:
        return ProtocolError(
            ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol: {shown(raw)}", {"symbol": clip(raw)}
        )
    return instrument.symbol


NOTE_MAX_LENGTH = 200
"""Characters of an alert's ``note``: a reminder, not a document."""


def once_and_note(msg: Mapping[str, Any]) -> tuple[bool, str | None] | ProtocolError:
    """An alert's ``once`` (true when absent) and ``note`` (an empty one is ``None``)."""
    once = msg.get("once", True)
    if not isinstance(once, bool):
        return invalid("once", f"field 'once' must be a boolean, got {json_kind(once)}")
    note = msg.get("note")
    if note is not None and not isinstance(note, str):
        return invalid("note", f"field 'note' must be a string, got {json_kind(note)}")
    if note is not None and len(note) > NOTE_MAX_LENGTH:
        return invalid(
            "note",
            f"field 'note' is too long: {len(note)} characters (at most {NOTE_MAX_LENGTH})",
        )
    return once, note or None
