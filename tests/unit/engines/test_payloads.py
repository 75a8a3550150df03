"""The ``data`` payloads: seed field names, prices to 4 decimals, percentages to 2, times in the
wire's UTC form; change figures checked against the formula written out here."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import pytest

from tickhub.core.model import IST, Candle, Depth, DepthLevel, Interval, Tick
from tickhub.engines.analysis import Analysis
from tickhub.engines.payloads import (
    analysis_data,
    candle_data,
    depth_data,
    market_data,
    tick_data,
)

TS = datetime(2025, 1, 27, 10, 0, 0, 250000, tzinfo=IST)  # 04:30:00.250 UTC


def make_tick(price: float, prev_close: float, **kw: Any) -> Tick:
    base: dict[str, Any] = {
        "symbol": "RELIANCE",
        "instrument_token": 738561,
        "timestamp": TS,
        "price": price,
        "volume": 1200,
        "last_quantity": 5,
        "average_price": 2501.12345,
        "buy_quantity": 300,
        "sell_quantity": 400,
        "open": 2490.0,
        "high": 2510.0,
        "low": 2480.0,
        "prev_close": prev_close,
    }
    base.update(kw)
    return Tick(**base)


def test_tick_data_fields_and_rounding() -> None:
    body = tick_data(make_tick(2500.49999999, 2450.0))
    assert body == {
        "price": 2500.5,
        "volume": 1200,
        "change": 50.5,
        "change_percent": 2.06,
        "open": 2490.0,
        "high": 2510.0,
        "low": 2480.0,
        "prev_close": 2450.0,
        "last_quantity": 5,
        "average_price": 2501.1235,
        "buy_quantity": 300,
        "sell_quantity": 400,
        "exchange_timestamp": "2025-01-27T04:30:00.250Z",
    }


@pytest.mark.parametrize(
    ("price", "prev_close"),
    [(2500.0, 2450.0), (97.35, 101.2), (1.05, 3.0), (23500.15, 23500.15), (0.05, 1000.0)],
)
def test_change_against_the_formula(price: float, prev_close: float) -> None:
    body = tick_data(make_tick(price, prev_close))
    expected_change = round(price - prev_close, 4)
    expected_percent = round((price / prev_close - 1.0) * 100.0, 2)
    assert body["change"] == pytest.approx(expected_change, abs=1e-9)
    assert body["change_percent"] == pytest.approx(expected_percent, abs=0.01)
    assert (body["change"] > 0) == (price > prev_close)


def test_unknown_previous_close_gives_zero_change_not_a_division_error() -> None:
    body = tick_data(make_tick(2500.0, 0.0))
    assert body["change"] == 0.0
    assert body["change_percent"] == 0.0


def test_candle_data() -> None:
    start = datetime(2025, 1, 27, 9, 15, tzinfo=IST)
    candle = Candle("INFY", Interval.M5, start, 1800.1, 1805.0, 1799.95, 1802.123456, 5400, True)
    assert candle_data(candle) == {
        "interval": "5m",
        "start": "2025-01-27T03:45:00.000Z",
        "open": 1800.1,
        "high": 1805.0,
        "low": 1799.95,
        "close": 1802.1235,
        "volume": 5400,
        "closed": True,
        "price": 1802.1235,
    }


def test_depth_data_keeps_the_order_best_first_and_is_empty_without_depth() -> None:
    assert depth_data(None) == {"buy": [], "sell": []}
    depth = Depth(
        buy=(DepthLevel(100.05, 10, 2), DepthLevel(100.0, 5, 1)),
        sell=(DepthLevel(100.1, 7, 3),),
    )
    assert depth_data(depth) == {
        "buy": [
            {"price": 100.05, "quantity": 10, "orders": 2},
            {"price": 100.0, "quantity": 5, "orders": 1},
        ],
        "sell": [{"price": 100.1, "quantity": 7, "orders": 3}],
    }


def test_market_data_is_the_tick_plus_depth_and_day_statistics() -> None:
    depth = Depth(buy=(DepthLevel(99.95, 1, 1),))
    t = make_tick(100.0, 99.0, depth=depth, oi=77, tradable=False)
    body = market_data(t)
    assert {k: body[k] for k in tick_data(t)} == tick_data(t)
    assert body["depth"] == {"buy": [{"price": 99.95, "quantity": 1, "orders": 1}], "sell": []}
    assert body["oi"] == 77
    assert body["tradable"] is False


def test_analysis_data_rounds_indicators_to_4_and_risk_to_6_recursively() -> None:
    start = datetime(2025, 1, 27, 9, 15, tzinfo=IST)
    candle = Candle("INFY", Interval.M1, start, 10.0, 11.0, 9.0, 10.5, 100)
    result = cast(
        Analysis,
        {
            "technical_indicators": {
                "rsi": 55.123456789,
                "sma_20": None,
                "macd": {"macd": 1.000049, "signal": -0.123456, "histogram": 2},
            },
            "patterns": [{"name": "doji", "direction": "neutral", "start": start}],
            "risk_metrics": {"volatility": 0.12345678901, "beta": None, "count": 3},
            "trend": "up",
            "interval": "1m",
        },
    )
    body = analysis_data(result, candle)
    assert body["technical_indicators"] == {
        "rsi": 55.1235,
        "sma_20": None,
        "macd": {"macd": 1.0, "signal": -0.1235, "histogram": 2},
    }
    assert body["risk_metrics"] == {"volatility": 0.123457, "beta": None, "count": 3}
    assert body["patterns"] == [
        {"name": "doji", "direction": "neutral", "start": "2025-01-27T03:45:00.000Z"}
    ]
    assert body["trend"] == "up"
    assert body["interval"] == "1m"
    assert body["candle"] == candle_data(candle)
