"""``GET /indicators``: what a ``/ws/analysis`` subscription may ask for, as data.

A chart's indicator picker (the dashboard's, or any client's) builds its form from this answer
instead of a copy of the grammar: every indicator of the catalog
(:data:`tickhub.core.commands.indicators.CATALOG`) with its parameters (default, inclusive range,
integer or not), the constraints between them, its canonical entry at the defaults and its
members; the limits this server enforces (``MAX_INDICATORS_PER_SUBSCRIPTION``,
``MAX_INDICATOR_PERIOD``, ``MAX_INDICATOR_SETS``); and the candlestick patterns
(:data:`tickhub.engines.analysis.PATTERNS`) with their fixed direction, if any. The body
depends on the settings only, so it is encoded once, when the routes are built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from tickhub.core import protocol
from tickhub.core.commands.indicators import CATALOG, PERIOD, IndicatorSpec, Kind, Param
from tickhub.engines.analysis import PATTERNS
from tickhub.fanout.limits import HubLimits
from tickhub.server.http import HttpRequest, HttpResponse

__all__ = ["PRICE_SCALE", "catalog_body", "indicators_route"]

PRICE_SCALE: Final = frozenset(
    {"sma", "ema", "bollinger", "vwap", "supertrend", "sar", "donchian", "pivots"}
)
"""Indicators whose values are prices (a chart draws them over the candles); the others
(oscillators, volumes, ranges) have scales of their own."""

_CONSTRAINTS: Final[dict[str, list[dict[str, str]]]] = {
    "macd": [{"param": "fast", "op": "<", "other": "slow"}],
    "sar": [{"param": "acceleration", "op": "<=", "other": "maximum"}],
}
"""What :func:`~tickhub.core.commands.indicators.parse_spec` checks between parameters."""


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _param(param: Param, max_period: int) -> dict[str, Any]:
    high = max_period if param.high == PERIOD else param.high
    body: dict[str, Any] = {
        "name": param.name,
        "default": _number(param.default),
        "min": _number(param.low),
        "max": _number(high),
        "integer": param.integer,
    }
    if param.high == PERIOD:
        body["max_setting"] = "MAX_INDICATOR_PERIOD"
    return body


def _indicator(kind: Kind, max_period: int) -> dict[str, Any]:
    members = list(kind.members)
    defaults = tuple(float(p.default) for p in kind.params)
    return {
        "name": kind.name,
        "entry": IndicatorSpec(kind.name, defaults).canonical,
        "params": [_param(p, max_period) for p in kind.params],
        "constraints": _CONSTRAINTS.get(kind.name, []),
        "output": "object" if members else "number",
        "members": members,
        "price_scale": kind.name in PRICE_SCALE,
    }


def catalog_body(limits: HubLimits) -> dict[str, Any]:
    """The answer of ``GET /indicators`` under ``limits`` (the hub's: the settings in force)."""
    return {
        "indicators": [_indicator(k, limits.max_indicator_period) for k in CATALOG.values()],
        "limits": {
            "max_indicators_per_subscription": limits.max_indicators_per_subscription,
            "max_indicator_period": limits.max_indicator_period,
            "max_indicator_sets": limits.max_indicator_sets,
        },
        "patterns": [{"name": name, "direction": fixed} for name, _, fixed in PATTERNS],
    }


def indicators_route(limits: HubLimits) -> Callable[[HttpRequest], HttpResponse]:
    """The route: the same encoded body for every request (query parameters are ignored)."""
    response = HttpResponse(200, protocol.encode(catalog_body(limits)))

    def route(request: HttpRequest) -> HttpResponse:
        return response

    return route
