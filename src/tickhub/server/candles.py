"""``GET /candles``: closed candles of one symbol and interval over HTTP, for a chart's history.

``?symbol=RELIANCE&interval=1m&from=<ISO 8601 | epoch seconds>&to=<same>&limit=<n>``:

- ``symbol`` (required) is any name ``subscribe`` takes, in any case; unknown: 404
  ``unknown_symbol``.
- ``interval`` (default ``1m``) is one of the intervals ``subscribe`` takes.
- ``from`` / ``to`` (optional) bound the candle ``start``, both inclusive: ISO 8601 (without an
  offset it is exchange time, IST, as a chart shows it) or epoch seconds.
- ``limit`` (default ``CANDLES_LIMIT``, 1 to ``CANDLES_MAX_LIMIT``): the newest ``limit``
  candles of the range.

The answer lists the candles oldest first, each exactly the ``data`` of a ``candle_data``
message. It may be cached briefly while the range can still grow, and for a day once ``to`` is
before the newest closed candle (closed candles are final). Any bad parameter is a 400
``invalid_parameter`` naming it; other parameters are ignored. A store that cannot be reached
is a 503 ``unavailable``. The candles come from a
:class:`CandleSource`, which the role provides (the store, and the engine's memory where the
engine runs), so this layer knows nothing of either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import parse_qsl

from tickhub.core import defaults, protocol
from tickhub.core.errors import StoreUnavailableError
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import IST, Candle, Interval
from tickhub.engines.payloads import candle_data
from tickhub.server.http import HttpRequest, HttpResponse, error_response

__all__ = ["CandleLimits", "CandleSource", "CandlesRoute"]


_MAX_QUERY = 2048
"""Characters of a query string read at the most (a valid one is far shorter)."""


class CandleSource(Protocol):
    """Where the closed candles come from (``tickhub.ingest.candle_history.CandleHistory``)."""

    def closed_candles(
        self,
        symbol: str,
        interval: Interval,
        *,
        start: datetime | None,
        end: datetime | None,
        limit: int,
    ) -> list[Candle]:
        """The newest ``limit`` closed candles with ``start`` in ``[start, end]``, oldest
        first."""
        ...

    def newest_start(self, symbol: str, interval: Interval) -> datetime | None:
        """The start of the newest closed candle of the series, ``None`` when there is none."""
        ...


@dataclass(frozen=True, slots=True)
class CandleLimits:
    """The route's numbers (settings ``CANDLES_LIMIT`` and ``CANDLES_MAX_LIMIT``)."""

    default_limit: int = defaults.CANDLES_LIMIT
    max_limit: int = defaults.CANDLES_MAX_LIMIT
    max_age: int = defaults.CANDLES_MAX_AGE
    final_max_age: int = defaults.CANDLES_FINAL_MAX_AGE


class BadParameter(ValueError):
    """A parameter of the query is wrong; the message says which and why (one line)."""


@dataclass(frozen=True, slots=True)
class CandlesQuery:
    symbol: str
    interval: Interval
    start: datetime | None
    end: datetime | None
    limit: int


class CandlesRoute:
    """The ``/candles`` route over a :class:`CandleSource`."""

    def __init__(
        self,
        source: CandleSource,
        registry: InstrumentRegistry,
        limits: CandleLimits | None = None,
    ) -> None:
        self._source = source
        self._registry = registry
        self.limits = limits or CandleLimits()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            query = self.parse(request.query)
        except BadParameter as exc:
            return error_response(400, protocol.ErrorCode.INVALID_PARAMETER, str(exc))
        instrument = self._registry.get(query.symbol)
        if instrument is None:
            return error_response(
                404, protocol.ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol: {query.symbol!r}"
            )
        symbol = instrument.symbol
        try:
            candles = self._source.closed_candles(
                symbol, query.interval, start=query.start, end=query.end, limit=query.limit
            )
            newest = self._source.newest_start(symbol, query.interval)
        except StoreUnavailableError as exc:
            return error_response(503, protocol.ErrorCode.UNAVAILABLE, f"candle history: {exc}")
        final = query.end is not None and newest is not None and query.end < newest
        age = self.limits.final_max_age if final else self.limits.max_age
        body = {
            "symbol": symbol,
            "interval": query.interval.value,
            "candles": [candle_data(c) for c in candles],
        }
        return HttpResponse(
            200, protocol.encode(body), headers={"Cache-Control": f"public, max-age={age}"}
        )

    def parse(self, query: str) -> CandlesQuery:
        """The query string's parameters, checked (``BadParameter`` for the first wrong one)."""
        if len(query) > _MAX_QUERY:
            raise BadParameter(f"query string too long (over {_MAX_QUERY} characters)")
        params: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name in params and name in _KNOWN:
                raise BadParameter(f"{name}: given more than once")
            params[name] = value.strip()
        symbol = params.get("symbol", "")
        if not symbol:
            raise BadParameter("symbol: required (e.g. ?symbol=RELIANCE)")
        try:
            interval = Interval.parse(params.get("interval") or Interval.M1.value)
        except ValueError as exc:
            raise BadParameter(f"interval: {exc}") from None
        start = _time(params, "from")
        end = _time(params, "to")
        if start is not None and end is not None and start > end:
            raise BadParameter("from: must not be after to")
        return CandlesQuery(symbol, interval, start, end, self._limit(params.get("limit")))

    def _limit(self, raw: str | None) -> int:
        top = self.limits.max_limit
        if raw is None or raw == "":
            return min(self.limits.default_limit, top)
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= top:
            raise BadParameter(f"limit: expected a whole number from 1 to {top}, got {raw!r}")
        return int(raw)


_KNOWN = frozenset({"symbol", "interval", "from", "to", "limit"})


def _time(params: dict[str, str], name: str) -> datetime | None:
    """``from`` / ``to``: ISO 8601 (naive: IST) or epoch seconds; ``None`` when absent."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = None
    try:
        if seconds is not None:
            if not math.isfinite(seconds):
                raise ValueError
            return datetime.fromtimestamp(seconds, IST)
        ts = datetime.fromisoformat(raw)
    except (ValueError, OverflowError, OSError):
        raise BadParameter(
            f"{name}: expected ISO 8601 (2025-01-27T09:15:00+05:30) or epoch seconds, got {raw!r}"
        ) from None
    return ts.replace(tzinfo=IST) if ts.utcoffset() is None else ts
