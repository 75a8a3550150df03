"""The ``data`` payloads of each stream, built from domain objects (pure).

Field names follow the seed's JavaScript examples (``price``, ``volume``, ``change``,
``change_percent``...). Prices keep the exchange's precision (rounded to 4 decimals so that a float
artefact never shows: ``2500.5``, not ``2500.4999999``); percentages are rounded to 2 decimals.
"""

from __future__ import annotations

from typing import Any

from tickhub.core.model import Candle, Depth, Tick
from tickhub.core.protocol import iso
from tickhub.engines.analysis import Analysis


def _p(value: float) -> float:
    return round(value, 4)


def tick_data(tick: Tick) -> dict[str, Any]:
    return {
        "price": _p(tick.price),
        "volume": tick.volume,
        "change": _p(tick.price - tick.prev_close) if tick.prev_close else 0.0,
        "change_percent": round((tick.price - tick.prev_close) * 100.0 / tick.prev_close, 2)
        if tick.prev_close
        else 0.0,
        "open": _p(tick.open),
        "high": _p(tick.high),
        "low": _p(tick.low),
        "prev_close": _p(tick.prev_close),
        "last_quantity": tick.last_quantity,
        "average_price": _p(tick.average_price),
        "buy_quantity": tick.buy_quantity,
        "sell_quantity": tick.sell_quantity,
        "exchange_timestamp": iso(tick.timestamp),
    }


def candle_data(candle: Candle) -> dict[str, Any]:
    """A candle as clients read it; ``price`` repeats ``close`` (the last price) so that code
    written for ``tick_data`` (the seed's ``updateChart(data.data)``) finds a price in every
    ``/ws/stream`` message."""
    close = _p(candle.close)
    return {
        "interval": candle.interval.value,
        "start": iso(candle.start),
        "open": _p(candle.open),
        "high": _p(candle.high),
        "low": _p(candle.low),
        "close": close,
        "volume": candle.volume,
        "closed": candle.closed,
        "price": close,
    }


def depth_data(depth: Depth | None) -> dict[str, list[dict[str, Any]]]:
    if depth is None:
        return {"buy": [], "sell": []}
    return {
        "buy": [
            {"price": _p(d.price), "quantity": d.quantity, "orders": d.orders} for d in depth.buy
        ],
        "sell": [
            {"price": _p(d.price), "quantity": d.quantity, "orders": d.orders} for d in depth.sell
        ],
    }


def market_data(tick: Tick) -> dict[str, Any]:
    """Depth and day statistics: what a quote panel shows."""
    body = tick_data(tick)
    body["depth"] = depth_data(tick.depth)
    body["tradable"] = tick.tradable
    body["oi"] = tick.oi
    return body


def _rounded(value: Any, digits: int) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    return value


def analysis_data(result: Analysis, candle: Candle) -> dict[str, Any]:
    """The ``/ws/analysis`` payload: indicators rounded to 4 decimals, risk to 6."""
    return {
        "technical_indicators": _rounded(result["technical_indicators"], 4),
        "patterns": [
            {
                "name": p["name"],
                "direction": p["direction"],
                "start": iso(p["start"]),
                **({"strength": p["strength"]} if "strength" in p else {}),
            }
            for p in result["patterns"]
        ],
        "risk_metrics": _rounded(result["risk_metrics"], 6),
        "trend": result["trend"],
        "interval": result["interval"],
        "candle": candle_data(candle),
    }
