"""Topic names: one stream of ``data`` messages with its own ``seq``.

``stream:RELIANCE:1m`` and ``analysis:RELIANCE:1m`` depend on the candle interval;
``alerts:RELIANCE`` and ``portfolio:RELIANCE`` do not. An analysis topic of an indicator set
other than the default one carries the set's key after ``|``
(``analysis:RELIANCE:5m|ema:21;ema:9``): subscriptions asking for the same set share its topic,
its ``seq`` and its history. Topics are strings so that they cross process boundaries (the Redis
bus) unchanged.
"""

from __future__ import annotations

from enum import Enum

from tickhub.core.model import Interval

ALL_SYMBOLS = "*"
"""Wildcard symbol: on ``/ws/portfolio`` it streams every held position."""


class Endpoint(str, Enum):
    STREAM = "stream"
    ANALYSIS = "analysis"
    ALERTS = "alerts"
    PORTFOLIO = "portfolio"

    @property
    def path(self) -> str:
        return f"/ws/{self.value}"

    @property
    def has_interval(self) -> bool:
        return self in (Endpoint.STREAM, Endpoint.ANALYSIS)


SET_SEPARATOR = "|"
"""Between an analysis topic's interval and its indicator set key (never in a symbol)."""


def topic(
    endpoint: Endpoint,
    symbol: str,
    interval: Interval | None = None,
    owner: str = "",
    indicators: str = "",
) -> str:
    """``owner`` (the authenticated user) separates per-user alerts and portfolio topics;
    ``indicators`` (a set key, "" for the default set) separates analysis topics."""
    if endpoint.has_interval:
        base = f"{endpoint.value}:{symbol}:{(interval or Interval.M1).value}"
        if indicators and endpoint is Endpoint.ANALYSIS:
            return f"{base}{SET_SEPARATOR}{indicators}"
        return base
    if owner:
        return f"{endpoint.value}:{symbol}:@{owner}"
    return f"{endpoint.value}:{symbol}"


def owner_of(t: str) -> str | None:
    """The owner part of an alerts/portfolio topic ("" for the anonymous owner), else None."""
    parts = t.split(":", 2)
    if parts[0] not in (Endpoint.ALERTS.value, Endpoint.PORTFOLIO.value) or len(parts) < 2:
        return None
    return parts[2][1:] if len(parts) > 2 and parts[2].startswith("@") else ""


def split_set(t: str) -> tuple[str, str]:
    """An analysis topic's default-set topic and its set key ("" for the default set)."""
    base, _, key = t.partition(SET_SEPARATOR)
    return base, key
