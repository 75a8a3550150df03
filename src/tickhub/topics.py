"""Topic names: one stream of ``data`` messages with its own ``seq``.

``stream:RELIANCE:1m`` and ``analysis:RELIANCE:1m`` depend on the candle interval;
``alerts:RELIANCE`` and ``portfolio:RELIANCE`` do not. Topics are strings so that they cross
process boundaries (the Redis bus) unchanged.
"""

from __future__ import annotations

from enum import Enum

from tickhub.model import Interval

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


def topic(endpoint: Endpoint, symbol: str, interval: Interval | None = None) -> str:
    if endpoint.has_interval:
        return f"{endpoint.value}:{symbol}:{(interval or Interval.M1).value}"
    return f"{endpoint.value}:{symbol}"
