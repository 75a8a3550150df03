"""Analysis alerts on hand-built candles: each fires on exactly the candle an independent
reference says (a formula written here, or TA-Lib called directly), and on no other.

The alerts run as the service runs them: the analysis engine's series gives the values
(``analysis_frame``), the alerts engine decides, and ``StoredAlerts`` saves each change first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import talib

from tickhub.core.commands import CreateAnalysisAlert, parse_command
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import IST, Candle, Interval
from tickhub.core.protocol import ProtocolError
from tickhub.core.topics import Endpoint
from tickhub.engines.alerts import Alert, AlertEvent, AlertRules
from tickhub.engines.analysis import AnalysisEngine
from tickhub.ingest.alerts import StoredAlerts
from tickhub.ingest.analysis_alerts import on_analysis_candle
from tickhub.store.sqlite import SqliteStore

REGISTRY = InstrumentRegistry.bundled()
SYM = "RELIANCE"
T0 = datetime(2025, 1, 27, 9, 15, tzinfo=IST)
USER_ONLY = AlertRules(builtin_rules=frozenset())


def request(**fields: Any) -> CreateAnalysisAlert:
    msg = {"type": "create_alert", "symbol": SYM, "interval": "1m", **fields}
    command = parse_command(msg, endpoint=Endpoint.ALERTS, registry=REGISTRY)
    assert isinstance(command, CreateAnalysisAlert), command
    return command


def make(alerts: StoredAlerts, **fields: Any) -> Alert:
    created = alerts.create("u", request(**fields))
    assert isinstance(created, Alert), created
    return created


def bars(closes: Sequence[float], start: datetime = T0, *, spread: float = 0.5) -> list[Candle]:
    """Closed 1m candles: each opens at the previous close."""
    out = []
    prev = closes[0]
    for i, close in enumerate(closes):
        high, low = max(prev, close) + spread, min(prev, close) - spread
        out.append(
            Candle(
                SYM, Interval.M1, start + timedelta(minutes=i), prev, high, low, close, 1000, True
            )
        )
        prev = close
    return out


class Driver:
    """Feeds candles to the analysis engine and the alerts, as the ingest does."""

    def __init__(self, alerts: StoredAlerts | None = None) -> None:
        self.analysis = AnalysisEngine()
        self.alerts = alerts if alerts is not None else StoredAlerts(rules=USER_ONLY)

    def feed(self, candle: Candle) -> list[AlertEvent]:
        self.analysis.on_candle(candle)
        at = candle.start + candle.interval.delta
        return on_analysis_candle(self.alerts, self.analysis, candle, at)

    def fired_on(self, candles: Sequence[Candle]) -> list[int]:
        """Indices of the candles on which something fired (once per firing)."""
        out = []
        for i, candle in enumerate(candles):
            out += [i] * len(self.feed(candle))
        return out


def ema(values: Sequence[float], period: int) -> list[float | None]:
    """EMA seeded with the SMA of the first ``period`` values (the classic definition)."""
    out: list[float | None] = [None] * len(values)
    if len(values) < period:
        return out
    k = 2 / (period + 1)
    current = sum(values[:period]) / period
    out[period - 1] = current
    for i in range(period, len(values)):
        current = values[i] * k + current * (1 - k)
        out[i] = current
    return out


def crossings(left: Sequence[float | None], right: Sequence[float | None], up: bool) -> list[int]:
    out = []
    for i in range(1, len(left)):
        a, b, pa, pb = left[i], right[i], left[i - 1], right[i - 1]
        if a is None or b is None or pa is None or pb is None:
            continue
        if (up and pa <= pb and a > b) or (not up and pa >= pb and a < b):
            out.append(i)
    return out


# A fall, a rise, a fall and a rise: EMA 3 crosses EMA 8 both ways, more than once.
WAVE = [100 + 6 * math.sin(i / 4.0) + (0.3 if i % 3 == 0 else -0.2) for i in range(60)]


def test_ema_crosses_above_ema_fires_on_each_crossing_the_reference_finds() -> None:
    candles = bars(WAVE)
    closes = [c.close for c in candles]
    expected = crossings(ema(closes, 3), ema(closes, 8), up=True)
    assert len(expected) >= 2  # the scenario must have several crossings
    driver = Driver()
    make(driver.alerts, indicator="ema:3", condition="crosses_above", other="ema:8", once=False)
    assert driver.fired_on(candles) == expected


def test_once_fires_only_the_first_crossing_and_below_mirrors_it() -> None:
    candles = bars(WAVE)
    closes = [c.close for c in candles]
    down = crossings(ema(closes, 3), ema(closes, 8), up=False)
    driver = Driver()
    alert = make(driver.alerts, indicator="EMA:3", condition="crosses_below", other="ema:8")
    assert driver.fired_on(candles) == down[:1]
    fired = driver.alerts.get(alert.id)
    assert fired is not None and fired.triggered and fired.fire_count == 1
    assert fired.last_candle == candles[down[0]].start
    left, right = ema(closes, 3)[down[0]], ema(closes, 8)[down[0]]
    assert fired.values is not None and left is not None and right is not None
    assert math.isclose(fired.values[0], left, rel_tol=1e-9)
    assert math.isclose(fired.values[1], right, rel_tol=1e-9)


def test_close_crosses_a_value_and_warm_up_evaluates_nothing() -> None:
    closes = [99.0, 101.0, 98.0, 102.0, 103.0, 97.0, 104.0]
    candles = bars(closes)
    driver = Driver()
    make(driver.alerts, indicator="close", condition="crosses_above", value=100, once=False)
    # The first candle has no candle before it: 99 -> 101 is the first crossing.
    assert driver.fired_on(candles) == [1, 3, 6]
    # SMA 5 has no value before the fifth candle: nothing fires before it, whatever the close.
    late = Driver()
    make(late.alerts, indicator="sma:5", condition="above", value=1)
    assert late.fired_on(candles) == [4]


def test_rsi_above_rearms_only_after_a_close_below() -> None:
    closes = [100 + (i if i < 25 else 25 - 2 * (i - 25)) + (i % 2) * 0.4 for i in range(40)]
    closes += [closes[-1] + 3 * i for i in range(1, 15)]
    candles = bars(closes)
    rsi = talib.RSI(np.array([c.close for c in candles]), timeperiod=14)
    active = [not math.isnan(v) and v >= 70 for v in rsi]
    # The reference: true after a close where it was false (or at its first evaluation).
    expected = [
        i
        for i, on in enumerate(active)
        if on and (not any(not math.isnan(v) for v in rsi[:i]) or not active[i - 1])
    ]
    assert len(expected) == 2
    driver = Driver()
    alert = make(driver.alerts, indicator="rsi:14", condition="above", value=70, once=False)
    assert driver.fired_on(candles) == expected
    stored = driver.alerts.get(alert.id)
    assert stored is not None and stored.fire_count == 2


def test_forming_updates_fire_only_alerts_that_ask_and_once_per_candle() -> None:
    history = bars([100.0, 100.5, 99.5, 100.0, 99.0])
    driver = Driver()
    on_forming = make(
        driver.alerts, indicator="close", condition="crosses_above", value=101, forming=True
    )
    on_close = make(driver.alerts, indicator="close", condition="crosses_above", value=101)
    for candle in history:
        assert driver.feed(candle) == []
    start = history[-1].start + timedelta(minutes=1)
    forming = [
        Candle(SYM, Interval.M1, start, 99.0, 100.2, 98.9, 100.2, 100),
        Candle(SYM, Interval.M1, start, 99.0, 101.4, 98.9, 101.4, 300),  # crosses 101
        Candle(SYM, Interval.M1, start, 99.0, 101.6, 98.9, 101.6, 400),  # still above
    ]
    fired = [[e.alert.id for e in driver.feed(c)] for c in forming]
    assert fired == [[], [on_forming.id], []]
    final = Candle(SYM, Interval.M1, start, 99.0, 101.8, 98.9, 101.5, 500, True)
    events = driver.feed(final)
    # The close fires the alert that waits for closes; the forming one fired on this candle.
    assert [e.alert.id for e in events] == [on_close.id]
    assert events[0].price == 101.5 and events[0].category == "indicator"
    assert events[0].message == "RELIANCE 1m: close 101.50 crossed above 101 (close 101.50)"


def test_prev_high_is_the_previous_sessions_high() -> None:
    day1 = bars([100.0, 104.0, 103.0, 101.0], spread=0.5)  # high of the day: 104.5
    day2_start = T0 + timedelta(days=1)
    day2 = bars([101.0, 103.0, 104.2, 105.1, 104.0], day2_start, spread=0.1)
    prev_high = max(c.high for c in day1)
    closes = [c.close for c in day2]
    expected = [i for i in range(1, len(closes)) if closes[i - 1] <= prev_high < closes[i]]
    assert expected == [3]
    driver = Driver()
    make(driver.alerts, indicator="close", condition="crosses_above", other="prev_high")
    for candle in day1:
        driver.feed(candle)
    events = [(i, e) for i, c in enumerate(day2) for e in driver.feed(c)]
    assert [i for i, _ in events] == expected
    assert events[0][1].alert.values == (105.1, prev_high)


def _engulfing_series() -> list[Candle]:
    """A falling market of small candles, then a bearish candle and a bullish one that engulfs
    it."""
    candles = []
    price = 120.0
    for i in range(14):
        o, c = price, price - 0.6
        candles.append(
            Candle(SYM, Interval.M1, T0 + timedelta(minutes=i), o, o + 0.2, c - 0.2, c, 1000, True)
        )
        price = c
    n = len(candles)
    o, c = price, price - 0.8
    candles.append(
        Candle(SYM, Interval.M1, T0 + timedelta(minutes=n), o, o + 0.1, c - 0.1, c, 1000, True)
    )
    o2, c2 = c - 0.2, o + 0.6
    candles.append(
        Candle(
            SYM, Interval.M1, T0 + timedelta(minutes=n + 1), o2, c2 + 0.1, o2 - 0.1, c2, 1000, True
        )
    )
    return candles


def test_bullish_engulfing_fires_a_bullish_alert_and_not_a_bearish_one() -> None:
    candles = _engulfing_series()
    signal = talib.CDLENGULFING(
        np.array([c.open for c in candles]),
        np.array([c.high for c in candles]),
        np.array([c.low for c in candles]),
        np.array([c.close for c in candles]),
    )
    expected = [i for i, s in enumerate(signal) if s > 0]
    assert expected == [len(candles) - 1] and not any(s < 0 for s in signal)
    driver = Driver()
    bullish = make(driver.alerts, condition="pattern", pattern="engulfing", direction="bullish")
    make(driver.alerts, condition="pattern", pattern="engulfing", direction="bearish")
    fired = [(i, e) for i, c in enumerate(candles) for e in driver.feed(c)]
    assert [(i, e.alert.id) for i, e in fired] == [(expected[0], bullish.id)]
    event = fired[0][1]
    assert event.category == "pattern"
    assert event.message == f"RELIANCE 1m: bullish engulfing (close {candles[-1].close:.2f})"


def test_a_restart_never_fires_a_candle_twice_and_finds_a_crossing_from_history(
    tmp_path: Path,
) -> None:
    closes = [99.0, 99.5, 100.5, 99.0, 98.0, 101.0]  # crosses 100 on candles 2 and 5
    candles = bars(closes)
    path = tmp_path / "alerts.db"
    first = Driver(StoredAlerts(SqliteStore(path), USER_ONLY))
    repeat = make(first.alerts, indicator="close", condition="crosses_above", value=100, once=False)
    assert first.fired_on(candles[:3]) == [2]
    # A restart over the same store: the history is back (as from the candle store), then the
    # same candle again: it is not newer than the one that fired, so nothing fires.
    second = Driver(StoredAlerts(SqliteStore(path), USER_ONLY))
    for candle in candles[:2]:
        second.analysis.on_candle(candle)
    assert second.feed(candles[2]) == []
    # An alert made now, and a restart before the next crossing: the first close after it has
    # no values remembered in memory, but the history gives L' and R'.
    fresh = make(second.alerts, indicator="close", condition="crosses_above", value=100.75)
    assert second.fired_on(candles[3:5]) == []
    third = Driver(StoredAlerts(SqliteStore(path), USER_ONLY))
    for candle in candles[:5]:
        third.analysis.on_candle(candle)
    events = third.feed(candles[5])
    assert sorted(e.alert.id for e in events) == sorted([repeat.id, fresh.id])
    reloaded = StoredAlerts(SqliteStore(path), USER_ONLY).get(repeat.id)
    assert reloaded is not None and reloaded.fire_count == 2
    assert reloaded.last_candle == candles[5].start


def test_analysis_alerts_count_against_the_quota_and_list_apart() -> None:
    alerts = StoredAlerts(rules=AlertRules(builtin_rules=frozenset(), max_alerts_per_owner=2))
    make(alerts, indicator="rsi", condition="above", value=70)
    make(alerts, condition="pattern", pattern="doji")
    refused = alerts.create("u", request(indicator="ema:9", condition="below", value=1))
    assert isinstance(refused, ProtocolError) and refused.code.value == "limit_exceeded"
    state = alerts.state(SYM, "u")
    assert [len(state[k]) for k in ("price_alerts", "indicator_alerts", "pattern_alerts")] == [
        0,
        1,
        1,
    ]


def test_a_forming_pattern_alert_fires_on_the_update_that_makes_it_and_once_per_candle() -> None:
    candles = _engulfing_series()
    *history, last = candles
    driver = Driver()
    forming_alert = make(driver.alerts, condition="pattern", pattern="engulfing", forming=True)
    for candle in history:
        driver.feed(candle)
    update = replace(last, closed=False)
    fired = driver.feed(update)
    assert [e.alert.id for e in fired] == [forming_alert.id]
    assert driver.feed(last) == []  # its candle closes: it already fired on this candle
