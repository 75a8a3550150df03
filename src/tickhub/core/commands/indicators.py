"""The ``indicators`` field of a ``/ws/analysis`` subscribe: a set of indicators and parameters.

Grammar of one entry (case and surrounding spaces ignored)::

    entry  = name [ ":" param { "," param } ]
    param  = digits [ "." digits ]

Omitted trailing parameters take their defaults (``ema`` is ``ema:20``); an integer parameter
takes no fraction. The canonical form of an entry has every parameter written out, numbers in
their shortest form (``supertrend:10,3``); the canonical form of a set (its *key*) is its
entries' canonical forms, without repeats, sorted and joined by ``;``. Two subscriptions asking
for the same indicators in any order or spelling get the same key, hence one topic and one
computation. The key is also what a topic carries, so this module parses it back
(:func:`parse_set_key`) where only the topic crossed a process boundary.

Limits: ``MAX_INDICATORS_PER_SUBSCRIPTION`` entries after repeats are dropped, periods up to
``MAX_INDICATOR_PERIOD``; the other parameter ranges are fixed here (``CATALOG``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from tickhub.core import defaults
from tickhub.core.protocol import ErrorCode, ProtocolError, clip, shown

PERIOD: Final = -1.0
"""A parameter's upper bound that is the ``MAX_INDICATOR_PERIOD`` setting."""

_NUMBER = re.compile(r"\d{1,9}(\.\d{1,9})?")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: integer or not, its inclusive range (``high`` ``PERIOD``: the setting)."""

    name: str
    default: float
    low: float
    high: float
    integer: bool = True


@dataclass(frozen=True, slots=True)
class Kind:
    """One indicator the grammar knows: its parameters, in order, and what it outputs: a
    number, or an object of these ``members`` (in the order its value lists them)."""

    name: str
    params: tuple[Param, ...]
    members: tuple[str, ...] = ()

    @property
    def output(self) -> str:
        """``number``, or the members as the documentation writes them: ``{k, d}``."""
        return f"{{{', '.join(self.members)}}}" if self.members else "number"


def _period(name: str, default: int, low: int = 2) -> Param:
    return Param(name, default, low, PERIOD)


CATALOG: Final[Mapping[str, Kind]] = MappingProxyType(
    {
        k.name: k
        for k in (
            Kind("sma", (_period("period", 20),)),
            Kind("ema", (_period("period", 20),)),
            Kind("rsi", (_period("period", 14),)),
            Kind(
                "macd",
                (_period("fast", 12), _period("slow", 26), _period("signal", 9, 1)),
                ("macd", "signal", "histogram"),
            ),
            Kind(
                "bollinger",
                (_period("period", 20), Param("deviations", 2, 0.1, 10, integer=False)),
                ("upper", "middle", "lower"),
            ),
            Kind("atr", (_period("period", 14, 1),)),
            Kind("vwap", ()),
            Kind(
                "supertrend",
                (_period("period", 10, 1), Param("multiplier", 3, 0.1, 10, integer=False)),
                ("value", "direction"),
            ),
            Kind(
                "stoch",
                (_period("fastk", 14, 1), _period("slowk", 3, 1), _period("slowd", 3, 1)),
                ("k", "d"),
            ),
            Kind("adx", (_period("period", 14),), ("adx", "plus_di", "minus_di")),
            Kind("obv", ()),
            Kind(
                "sar",
                (
                    Param("acceleration", 0.02, 0.001, 1, integer=False),
                    Param("maximum", 0.2, 0.001, 1, integer=False),
                ),
            ),
            Kind("donchian", (_period("period", 20),), ("upper", "middle", "lower")),
            Kind("pivots", (), ("pivot", "r1", "r2", "r3", "s1", "s2", "s3")),
        )
    }
)
"""Every indicator a subscription may name, by name, in the order the documentation lists them."""


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """One indicator at its parameters (all of them, defaults filled in), e.g. ``ema:9``."""

    name: str
    params: tuple[float, ...]
    canonical: str = field(init=False, repr=False, compare=False)
    """The entry's canonical form, made once: sets, topics and every alert evaluation key
    their values by it."""

    def __post_init__(self) -> None:
        text = self.name
        if self.params:
            text = f"{self.name}:{','.join(number_text(p) for p in self.params)}"
        object.__setattr__(self, "canonical", text)

    def param(self, index: int) -> float:
        return self.params[index]

    def period(self, index: int = 0) -> int:
        return int(self.params[index])


IndicatorSet = tuple[IndicatorSpec, ...]
"""A set in canonical order (sorted by canonical form, no repeats)."""


def number_text(value: float) -> str:
    """The shortest text of a parameter: ``3`` for 3.0, ``0.02``."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def set_key(specs: IndicatorSet) -> str:
    """The canonical form of a set: what its topic carries."""
    return ";".join(s.canonical for s in specs)


def warmup_of(spec: IndicatorSpec) -> int:
    """Closed candles needed before ``spec`` has a value (the first non-null index + 1)."""
    name = spec.name
    if name in ("sma", "ema", "bollinger", "donchian"):
        return spec.period()
    if name in ("rsi", "atr", "supertrend"):
        return spec.period() + 1
    if name == "macd":
        return max(spec.period(0), spec.period(1)) + spec.period(2) - 1
    if name == "stoch":
        return spec.period(0) + spec.period(1) + spec.period(2) - 2
    if name == "adx":
        return 2 * spec.period()
    if name == "sar":
        return 2
    return 1  # vwap, obv, pivots: from the first candle (pivots: once a previous session exists)


class IndicatorError(Exception):
    """Why one entry is refused: carries the protocol error the client is answered with."""

    def __init__(self, error: ProtocolError) -> None:
        super().__init__(error.message)
        self.error = error


def parse_spec(raw: str, max_period: int = defaults.MAX_INDICATOR_PERIOD) -> IndicatorSpec:
    """One entry of the grammar, checked; raises :class:`IndicatorError`."""
    text = raw.strip().lower()
    name, colon, rest = text.partition(":")
    name = name.strip()
    kind = CATALOG.get(name)
    if kind is None or not _NAME.fullmatch(name):
        raise IndicatorError(
            ProtocolError(
                ErrorCode.UNKNOWN_INDICATOR,
                f"unknown indicator: {shown(raw)} (known: {', '.join(CATALOG)})",
                {"indicator": clip(raw)},
            )
        )
    given = [p.strip() for p in rest.split(",")] if colon else []
    if len(given) > len(kind.params):
        raise IndicatorError(
            _bad(raw, f"{name} takes at most {len(kind.params)} parameters ({_usage(kind)})")
        )
    values: list[float] = []
    for index, param in enumerate(kind.params):
        if index >= len(given):
            values.append(float(param.default))
            continue
        values.append(_param_value(raw, kind, param, given[index], max_period))
    if name == "macd" and values[0] >= values[1]:
        raise IndicatorError(_bad(raw, "macd: the fast period must be shorter than the slow one"))
    if name == "sar" and values[0] > values[1]:
        raise IndicatorError(_bad(raw, "sar: the acceleration must not exceed the maximum"))
    return IndicatorSpec(name, tuple(values))


def _param_value(raw: str, kind: Kind, param: Param, text: str, max_period: int) -> float:
    high = float(max_period) if param.high == PERIOD else param.high
    if not _NUMBER.fullmatch(text) or (param.integer and "." in text):
        what = "an integer" if param.integer else "a number"
        raise IndicatorError(
            _bad(raw, f"{kind.name}: {param.name} must be {what} ({_usage(kind)})", param.name)
        )
    value = float(text)
    if not param.low <= value <= high:
        raise IndicatorError(
            _bad(
                raw,
                f"{kind.name}: {param.name} must be between {number_text(param.low)} and "
                f"{number_text(high)}: {text}",
                param.name,
                minimum=param.low,
                maximum=high,
                **({"setting": "MAX_INDICATOR_PERIOD"} if param.high == PERIOD else {}),
            )
        )
    return value


def _usage(kind: Kind) -> str:
    params = ",".join(f"{p.name}={number_text(p.default)}" for p in kind.params)
    return f"{kind.name}:{params}" if params else kind.name


def _bad(raw: str, message: str, parameter: str | None = None, **details: Any) -> ProtocolError:
    extra = {"parameter": parameter} if parameter is not None else {}
    return ProtocolError(
        ErrorCode.INVALID_INDICATOR_PARAMETER,
        f"{message} in {shown(raw)}",
        {"indicator": clip(raw), **extra, **details},
    )


def parse_indicators(
    raw: object,
    *,
    max_indicators: int = defaults.MAX_INDICATORS_PER_SUBSCRIPTION,
    max_period: int = defaults.MAX_INDICATOR_PERIOD,
) -> IndicatorSet | ProtocolError | None:
    """The ``indicators`` field: ``None`` when absent or null (the default set), else the set
    in canonical order, or the error for the first entry refused."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or not all(isinstance(e, str) for e in raw):
        return ProtocolError(
            ErrorCode.INVALID_FIELD,
            "field 'indicators' must be a non-empty array of strings such as \"ema:9\"",
            {"field": "indicators"},
        )
    if len(raw) > max_indicators:
        # Checked before parsing too: a long list costs nothing to refuse.
        distinct = len(set(raw))
        if distinct > max_indicators:
            return _too_many(distinct, max_indicators)
    specs: dict[str, IndicatorSpec] = {}
    for entry in raw:
        try:
            spec = parse_spec(entry, max_period)
        except IndicatorError as err:
            return err.error
        specs.setdefault(spec.canonical, spec)
    if len(specs) > max_indicators:
        return _too_many(len(specs), max_indicators)
    return tuple(specs[k] for k in sorted(specs))


def _too_many(count: int, limit: int) -> ProtocolError:
    return ProtocolError(
        ErrorCode.TOO_MANY_INDICATORS,
        f"too many indicators: {count} (at most {limit} per subscription)",
        {"count": count, "limit": limit, "setting": "MAX_INDICATORS_PER_SUBSCRIPTION"},
    )


def parse_set_key(key: str) -> IndicatorSet | None:
    """A set back from its key (a topic's suffix); ``None`` if it is not a canonical key.

    No limits apply: the gateway that made the topic enforced them."""
    try:
        specs = tuple(parse_spec(part, max_period=10**9) for part in key.split(";"))
    except IndicatorError:
        return None
    canonical = [s.canonical for s in specs]
    if canonical != sorted(set(canonical)) or ";".join(canonical) != key:
        return None
    return specs
