"""The operands of an analysis alert: what ``indicator`` and ``other`` of a ``create_alert`` name.

Grammar of one operand (case and surrounding spaces ignored)::

    operand = entry | field
    entry   = name [ "." member ] [ ":" param { "," param } ]      (an indicator of CATALOG)
    field   = "close" | "open" | "high" | "low" | "volume"          (the candle evaluated)
            | "prev_high" | "prev_low" | "prev_close"               (the previous IST session)

``entry`` is the ``/ws/analysis`` grammar (:mod:`tickhub.core.commands.indicators`, its limits
and errors) with a ``member`` for the indicators with several outputs; each has a default member
(:data:`DEFAULT_MEMBERS`), used when none is named. The canonical form writes the parameters out
and the member only when it is not the default: ``bollinger.upper:20,2``, ``macd:12,26,9``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from tickhub.core import defaults
from tickhub.core.commands.indicators import CATALOG, IndicatorError, IndicatorSpec, parse_spec
from tickhub.core.protocol import ErrorCode, ProtocolError, clip, json_kind, shown

MEMBERS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        kind.name: tuple(m for m in kind.members if m != "direction")
        for kind in CATALOG.values()
        if kind.members
    }
)
"""The members an operand may name, per indicator with several outputs: the catalog's, but
supertrend's ``direction``, which is not a number, hence not an operand."""


DEFAULT_MEMBERS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "macd": "macd",
        "bollinger": "middle",
        "supertrend": "value",
        "stoch": "k",
        "adx": "adx",
        "donchian": "middle",
        "pivots": "pivot",
    }
)
"""The member an operand without ``.member`` reads."""

CANDLE_FIELDS: Final = ("close", "open", "high", "low", "volume")
"""Operands read from the candle being evaluated."""

SESSION_FIELDS: Final = ("prev_high", "prev_low", "prev_close")
"""Operands read from the previous IST session (the pivots' input)."""


@dataclass(frozen=True, slots=True)
class Operand:
    """One side of an indicator alert: an indicator at its parameters and the member it reads
    (``spec`` and, for several outputs, ``member``), or a candle or session field (``field``)."""

    spec: IndicatorSpec | None = None
    member: str | None = None
    field: str | None = None

    @property
    def canonical(self) -> str:
        if self.spec is None:
            assert self.field is not None
            return self.field
        text = self.spec.canonical
        if self.member is None or self.member == DEFAULT_MEMBERS.get(self.spec.name):
            return text
        name, colon, params = text.partition(":")
        return f"{name}.{self.member}{colon}{params}"


def parse_operand(
    raw: object, field: str, max_period: int = defaults.MAX_INDICATOR_PERIOD
) -> Operand | ProtocolError:
    """The operand in field ``field`` (``indicator`` or ``other``), or its error:
    ``unknown_indicator``, ``invalid_indicator_parameter`` (both with ``details.field``), or
    ``invalid_field`` for a value that is not a string or a member that does not exist."""
    if not isinstance(raw, str):
        return ProtocolError(
            ErrorCode.INVALID_FIELD,
            f'field {field!r} must be a string such as "ema:9", got {json_kind(raw)}',
            {"field": field},
        )
    text = raw.strip().lower()
    if text in CANDLE_FIELDS or text in SESSION_FIELDS:
        return Operand(field=text)
    head, colon, params = text.partition(":")
    name, dot, member = head.strip().partition(".")
    name, member = name.strip(), member.strip()
    if name in CANDLE_FIELDS or name in SESSION_FIELDS:
        return ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"field {field!r}: {name} takes no parameters or member: {shown(raw)}",
            {"field": field},
        )
    try:
        spec = parse_spec(f"{name}{colon}{params}", max_period)
    except IndicatorError as err:
        error = err.error
        details = {**error.details, "field": field, "indicator": clip(raw)}
        message = error.message
        if error.code is ErrorCode.UNKNOWN_INDICATOR:
            known = [*CATALOG, *CANDLE_FIELDS, *SESSION_FIELDS]
            message = f"unknown indicator: {shown(raw)} (known: {', '.join(known)})"
        return ProtocolError(error.code, message, details)
    members = MEMBERS.get(spec.name)
    if not dot:
        return Operand(spec, DEFAULT_MEMBERS.get(spec.name))
    if members is None or member not in members:
        allowed = list(members or ())
        what = f"allowed: {', '.join(allowed)}" if allowed else f"{spec.name} has one output"
        return ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"field {field!r}: unknown member {shown(member)} of {spec.name} ({what})",
            {"field": field, "allowed": allowed},
        )
    return Operand(spec, member)
