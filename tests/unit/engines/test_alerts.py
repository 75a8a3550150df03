"""Alert rules and their evaluation: user conditions, re-arming, built-in rules, persistence."""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import tickhub.engines.alerts
from tests.fakes import FlakySqliteStore as _FlakyStore
from tickhub.core.commands import CreateAlert, parse_command
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import IST, Candle, Interval, Tick
from tickhub.core.protocol import ErrorCode, ProtocolError, iso
from tickhub.core.topics import Endpoint
from tickhub.engines import payloads
from tickhub.engines.alerts import (
    BUILTIN_RULES,
    Alert,
    AlertEvent,
    AlertRules,
    AlertsEngine,
    alert_payload,
    event_payload,
)
from tickhub.ingest.alerts import StoredAlerts
from tickhub.store.sqlite import SqliteStore

T0 = datetime(2025, 1, 27, 10, 0, tzinfo=IST)  # a Monday, well after the quiet period
SYM = "RELIANCE"
USER_ONLY = AlertRules(builtin_rules=frozenset())
REGISTRY = InstrumentRegistry.bundled()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def tick(
    price: float,
    t: float | datetime = 0.0,
    *,
    symbol: str = SYM,
    prev_close: float = 0.0,
    high: float = 0.0,
    low: float = 0.0,
) -> Tick:
    ts = t if isinstance(t, datetime) else at(t)
    return Tick(symbol, 738561, ts, price, prev_close=prev_close, high=high, low=low)


def feed(
    engine: AlertsEngine | StoredAlerts,
    steps: Sequence[tuple[float, float]],
    prev_close: float = 0.0,
) -> list[AlertEvent]:
    """Feed ``(seconds after T0, price)`` ticks; return every event, in order."""
    events: list[AlertEvent] = []
    for t, price in steps:
        events += engine.on_tick(tick(price, t, prev_close=prev_close))
    return events


def fired(events: list[AlertEvent]) -> list[tuple[str, datetime, float]]:
    return [(e.alert.condition, e.triggered_at, e.price) for e in events]


def request(symbol: str, condition: str, value: float, **fields: object) -> CreateAlert:
    """The checked ``create_alert`` a client sends with these fields, as the engine gets it."""
    msg = {"type": "create_alert", "symbol": symbol, "condition": condition, "value": value}
    command = parse_command({**msg, **fields}, endpoint=Endpoint.ALERTS, registry=REGISTRY)
    assert isinstance(command, CreateAlert), command
    return command


def created(
    engine: AlertsEngine | StoredAlerts,
    owner: str | None,
    symbol: str,
    condition: str,
    value: float,
    **fields: object,
) -> Alert:
    alert = engine.create(owner, request(symbol, condition, value, **fields))
    assert isinstance(alert, Alert), alert
    return alert


def candle(
    i: int,
    close: float,
    *,
    volume: int = 1000,
    high: float | None = None,
    low: float | None = None,
    closed: bool = True,
    interval: Interval = Interval.M1,
) -> Candle:
    start = T0 + i * interval.delta
    return Candle(
        SYM,
        interval,
        start,
        close,
        close if high is None else high,
        close if low is None else low,
        close,
        volume,
        closed=closed,
    )


def only(*rules: str, **kw: object) -> AlertRules:
    return AlertRules(builtin_rules=frozenset(rules), **kw)  # type: ignore[arg-type]


# --- user conditions ----------------------------------------------------------------------------


def test_above_fires_when_the_price_reaches_the_level() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    alert = created(engine, "u", SYM, "above", 2500)
    events = feed(engine, [(0, 2490), (1, 2499.95), (2, 2500), (3, 2510), (4, 2490), (5, 2510)])
    assert fired(events) == [("above", at(2), 2500.0)]
    event = events[0]
    assert event.message == "RELIANCE at 2500.00 is at or above 2500.00"
    assert event.category == "price"
    assert event.alert.id == alert.id
    assert event.alert.triggered and event.alert.triggered_at == at(2)
    assert event.alert.price == 2500.0


def test_above_fires_at_once_when_the_price_is_already_above() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    created(engine, "u", SYM, "above", 2500)
    assert fired(feed(engine, [(0, 2510), (1, 2520)])) == [("above", at(0), 2510.0)]


def test_below_mirrors_above() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    created(engine, "u", SYM, "below", 2500)
    events = feed(engine, [(0, 2510), (1, 2500.05), (2, 2500), (3, 2490)])
    assert fired(events) == [("below", at(2), 2500.0)]
    assert events[0].message == "RELIANCE at 2500.00 is at or below 2500.00"

    already = AlertsEngine(rules=USER_ONLY)
    created(already, "u", SYM, "below", 2500)
    assert fired(feed(already, [(0, 2400)])) == [("below", at(0), 2400.0)]


def test_cross_up_fires_only_on_an_actual_crossing() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    created(engine, "u", SYM, "cross_up", 2500)
    # Already above at the first evaluation: no crossing; then down, and up through the level.
    events = feed(engine, [(0, 2510), (1, 2520), (2, 2490), (3, 2499.95), (4, 2500), (5, 2510)])
    assert fired(events) == [("cross_up", at(4), 2500.0)]
    assert events[0].message == "RELIANCE crossed above 2500.00 at 2500.00"


def test_cross_up_counts_from_the_price_at_creation() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    feed(engine, [(0, 2490)])
    alert = created(engine, "u", SYM, "cross_up", 2500)
    assert alert.last_price == 2490.0
    events = feed(engine, [(1, 2510)])
    assert fired(events) == [("cross_up", at(1), 2510.0)]
    assert events[0].message == "RELIANCE crossed above 2500.00 at 2510.00"


def test_cross_down_fires_only_on_an_actual_crossing() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    created(engine, "u", SYM, "cross_down", 2500)
    events = feed(engine, [(0, 2490), (1, 2510), (2, 2500.05), (3, 2500), (4, 2490)])
    assert fired(events) == [("cross_down", at(3), 2500.0)]
    assert events[0].message == "RELIANCE crossed below 2500.00 at 2500.00"


def test_percent_change_fires_on_an_absolute_move_against_prev_close() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    up = created(engine, "u", SYM, "percent_change", 2)
    steps = [(0, 2030.0), (1, 2039.95), (2, 2040.0), (3, 2050.0)]  # +1.5 %, +1.9975 %, +2 %
    events = feed(engine, steps, prev_close=2000)
    assert fired(events) == [("percent_change", at(2), 2040.0)]
    assert events[0].alert.id == up.id
    assert events[0].message == (
        "RELIANCE moved +2.00% from the previous close 2000.00 at 2040.00 (alert at 2%)"
    )

    down = AlertsEngine(rules=USER_ONLY)
    created(down, "u", SYM, "percent_change", 2.5)
    steps = [(0, 1960.0), (1, 1950.05), (2, 1950.0)]  # -2 %, -2.4975 %, -2.5 %
    assert fired(feed(down, steps, prev_close=2000)) == [("percent_change", at(2), 1950.0)]


def test_percent_change_ignores_ticks_without_prev_close() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    created(engine, "u", SYM, "percent_change", 1)
    assert feed(engine, [(0, 5000.0), (1, 1.0)]) == []


def test_condition_names_are_case_insensitive_and_trimmed() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    assert created(engine, "u", f" {SYM} ", " Cross_Up ", 2500).condition == "cross_up"
    assert engine.list("u")[0].symbol == SYM


# --- once, re-arming, hysteresis, cool-down -----------------------------------------------------


def test_once_alert_stays_triggered_and_fires_no_more() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    alert = created(engine, "u", SYM, "cross_up", 2500)
    steps = [(0, 2490), (100, 2510), (200, 2400), (300, 2600), (400, 2400), (500, 2600)]
    assert fired(feed(engine, steps)) == [("cross_up", at(100), 2510.0)]
    after = engine.get(alert.id)
    assert after is not None
    assert (after.triggered, after.triggered_at, after.price, after.fire_count) == (
        True,
        at(100),
        2510.0,
        1,
    )


def test_rearming_alert_fires_again_after_moving_back_past_the_band() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    alert = created(engine, "u", SYM, "cross_up", 2500, once=False)
    assert fired(feed(engine, [(0, 2490), (100, 2510)])) == [("cross_up", at(100), 2510.0)]
    feed(engine, [(200, 2490)])  # 2490 < 2497.50: re-armed
    rearmed = engine.get(alert.id)
    assert rearmed is not None and rearmed.armed and not rearmed.triggered
    assert rearmed.triggered_at == at(100)  # the last firing is kept
    assert fired(feed(engine, [(300, 2510)])) == [("cross_up", at(300), 2510.0)]


@pytest.mark.parametrize("condition", ["above", "cross_up"])
def test_oscillation_inside_the_hysteresis_band_fires_once(condition: str) -> None:
    # Band: 0.1 % of 2500 = 2.50, so re-arming needs a price under 2497.50.
    engine = AlertsEngine(rules=only(cooldown_seconds=0))
    created(engine, "u", SYM, condition, 2500, once=False)
    wobble = [(0, 2499), (1, 2500.5), (2, 2499), (3, 2500.5), (4, 2497.55), (5, 2501), (6, 2499)]
    assert fired(feed(engine, wobble)) == [(condition, at(1), 2500.5)]
    assert fired(feed(engine, [(7, 2497.45), (8, 2500)])) == [(condition, at(8), 2500.0)]


def test_cooldown_defers_a_level_alert_to_the_first_tick_after_it() -> None:
    engine = AlertsEngine(rules=USER_ONLY)  # 60 s cool-down, 0.1 % band
    created(engine, "u", SYM, "above", 2500, once=False)
    steps = [(0, 2501), (10, 2490), (20, 2501), (59, 2502), (60, 2502), (61, 2503)]
    assert fired(feed(engine, steps)) == [("above", at(0), 2501.0), ("above", at(60), 2502.0)]


def test_cooldown_drops_a_crossing_made_during_it() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    created(engine, "u", SYM, "cross_up", 2500, once=False)
    steps = [(0, 2490), (1, 2501), (10, 2490), (20, 2501), (70, 2505), (80, 2490), (90, 2501)]
    assert fired(feed(engine, steps)) == [
        ("cross_up", at(1), 2501.0),
        ("cross_up", at(90), 2501.0),
    ]


def test_older_tick_is_ignored() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    created(engine, "u", SYM, "cross_up", 2500)
    assert feed(engine, [(10, 2490), (5, 2510)]) == []
    assert fired(feed(engine, [(11, 2510)])) == [("cross_up", at(11), 2510.0)]


# --- built-in price rules -----------------------------------------------------------------------


def test_day_change_up_and_down_fire_beyond_the_threshold() -> None:
    engine = AlertsEngine(rules=only("day_change_up", "day_change_down"))
    steps = [(0, 2030.0), (1, 2039.95), (2, 2040.0), (3, 2050.0), (100, 1960.05), (101, 1960.0)]
    events = feed(engine, steps, prev_close=2000)
    assert fired(events) == [
        ("day_change_up", at(2), 2040.0),
        ("day_change_down", at(101), 1960.0),
    ]
    assert events[0].alert.id == "builtin:RELIANCE:day_change_up"
    assert events[0].alert.source == "builtin"
    assert events[0].message == "RELIANCE up 2.00% on the day at 2040.00 (previous close 2000.00)"
    assert events[1].message == (
        "RELIANCE down 2.00% on the day at 1960.00 (previous close 2000.00)"
    )


def test_day_rule_shows_triggered_for_the_rest_of_the_day() -> None:
    engine = AlertsEngine(rules=only("day_change_up"))
    feed(engine, [(0, 2040.0), (10, 2000.0)], prev_close=2000)  # fired, then re-armed
    (entry,) = engine.state(SYM)["price_alerts"]
    assert isinstance(entry, dict)
    assert entry["id"] == "builtin:RELIANCE:day_change_up"
    assert (entry["fired"], entry["triggered"]) == (True, False)  # triggered: events only
    assert entry["triggered_at"] == iso(at(0))
    assert entry["value"] == pytest.approx(2040.0)
    engine.on_tick(tick(2000.0, at(86_400), prev_close=2000))  # next day
    (entry,) = engine.state(SYM)["price_alerts"]
    assert isinstance(entry, dict) and entry["fired"] is False


def test_day_change_rearms_with_hysteresis_and_cooldown() -> None:
    engine = AlertsEngine(rules=only("day_change_up"))
    # Level 2040.00, band 2.04: re-arms under 2037.96.
    # 2038 does not re-arm; 2037.90 does; 2041 at 40 s and 59 s is inside the cool-down.
    steps = [(0, 2040), (10, 2038), (20, 2041), (30, 2037.9), (40, 2041), (59, 2041), (60, 2041)]
    assert fired(feed(engine, steps, prev_close=2000)) == [
        ("day_change_up", at(0), 2040.0),
        ("day_change_up", at(60), 2041.0),
    ]


def test_new_day_high_and_low_wait_for_the_quiet_period() -> None:
    engine = AlertsEngine(rules=only("new_day_high", "new_day_low"))
    day = T0.replace(hour=9, minute=15)
    steps = [
        (day, 2000.0),
        (day + timedelta(minutes=5), 2010.0),  # new high, quiet
        (day + timedelta(minutes=10), 1990.0),  # new low, quiet
        (day + timedelta(minutes=14, seconds=59), 2020.0),  # quiet
        (day + timedelta(minutes=15), 2020.0),  # not above 2020
        (day + timedelta(minutes=15, seconds=1), 2021.0),  # fires
        (day + timedelta(minutes=16), 1989.0),  # fires
    ]
    events = [e for ts, p in steps for e in engine.on_tick(tick(p, ts))]
    assert fired(events) == [
        ("new_day_high", day + timedelta(minutes=15, seconds=1), 2021.0),
        ("new_day_low", day + timedelta(minutes=16), 1989.0),
    ]
    assert events[0].message == "RELIANCE made a new day high at 2021.00 (previous high 2020.00)"
    assert events[1].message == "RELIANCE made a new day low at 1989.00 (previous low 1990.00)"


def test_new_day_high_counts_the_exchange_day_high() -> None:
    engine = AlertsEngine(rules=only("new_day_high", "new_day_low"))
    events = engine.on_tick(tick(2000, 0, high=2050, low=1950))
    events += engine.on_tick(tick(2049.95, 1, high=2050, low=1950))
    events += engine.on_tick(tick(2050.05, 2, high=2050.05, low=1950))
    assert fired(events) == [("new_day_high", at(2), 2050.05)]


def test_day_rules_start_afresh_on_a_new_day() -> None:
    engine = AlertsEngine(rules=only("new_day_high"))
    feed(engine, [(0, 2000), (1, 2010)])
    next_open = T0.replace(hour=9, minute=30) + timedelta(days=1)
    events = engine.on_tick(tick(1500, next_open))  # far below yesterday: new reference
    events += engine.on_tick(tick(1501, next_open + timedelta(seconds=1)))
    assert fired(events) == [("new_day_high", next_open + timedelta(seconds=1), 1501.0)]


# --- built-in candle rules ----------------------------------------------------------------------


def test_volume_spike_fires_above_k_times_the_average() -> None:
    engine = AlertsEngine(rules=only("volume_spike"))
    for i in range(20):
        assert engine.on_candle(candle(i, 100.0, volume=1000)) == []
    # Average 1000, threshold 3000: equal is not above.
    assert engine.on_candle(candle(20, 100.0, volume=3000)) == []
    # Now the last 20 average (19 × 1000 + 3000) / 20 = 1100: threshold 3300.
    assert engine.on_candle(candle(21, 100.0, volume=3300)) == []
    # (18 × 1000 + 3000 + 3300) / 20 = 1215: threshold 3645.
    events = engine.on_candle(candle(22, 101.0, volume=3646))
    assert fired(events) == [("volume_spike", T0 + timedelta(minutes=23), 101.0)]
    assert events[0].category == "volume"
    assert events[0].message == "RELIANCE 1m volume 3646 is 3.0x the 20-candle average 1215"
    (entry,) = engine.state(SYM)["volume_alerts"]
    assert isinstance(entry, dict) and entry["fired"] is True
    engine.on_candle(candle(23, 101.0, volume=1000))
    (entry,) = engine.state(SYM)["volume_alerts"]
    assert isinstance(entry, dict) and entry["fired"] is False


def test_volume_spike_needs_a_full_window() -> None:
    engine = AlertsEngine(rules=only("volume_spike"))
    for i in range(19):
        engine.on_candle(candle(i, 100.0, volume=1000))
    assert engine.on_candle(candle(19, 100.0, volume=1_000_000)) == []


def test_consecutive_spikes_fire_once_until_volume_falls_back() -> None:
    engine = AlertsEngine(rules=only("volume_spike", volume_lookback=3))
    for i in range(3):
        engine.on_candle(candle(i, 100.0, volume=100))
    events = engine.on_candle(candle(3, 100.0, volume=301))  # avg 100
    events += engine.on_candle(candle(4, 100.0, volume=5000))  # avg 167: disarmed
    events += engine.on_candle(candle(5, 100.0, volume=100))  # avg 1800: re-arms
    events += engine.on_candle(candle(6, 100.0, volume=20000))  # avg 1800: fires
    assert [e.triggered_at for e in events] == [
        T0 + timedelta(minutes=4),
        T0 + timedelta(minutes=7),
    ]


def test_breakout_high_and_low_beyond_the_previous_range() -> None:
    engine = AlertsEngine(rules=only("breakout_high", "breakout_low"))
    for i in range(20):
        assert engine.on_candle(candle(i, 100.0, high=101.0, low=99.0)) == []
    assert engine.on_candle(candle(20, 101.0, high=101.0, low=100.0)) == []  # at, not above
    up = engine.on_candle(candle(21, 101.05, high=101.1, low=100.5))
    assert fired(up) == [("breakout_high", T0 + timedelta(minutes=22), 101.05)]
    assert up[0].category == "breakout"
    assert up[0].message == "RELIANCE closed at 101.05 above the 20-candle high 101.00"
    assert up[0].alert.value == 101.0
    down = engine.on_candle(candle(22, 98.95, high=100.0, low=98.9))
    assert fired(down) == [("breakout_low", T0 + timedelta(minutes=23), 98.95)]
    assert down[0].alert.value == 99.0


def _bands(closes: list[float], width: float = 2.0) -> tuple[float, float]:
    """Bollinger bands computed here, independently of the engine (no ``statistics``)."""
    mean = sum(closes) / len(closes)
    sd = math.sqrt(sum((c - mean) ** 2 for c in closes) / len(closes))
    return mean + width * sd, mean - width * sd


def test_bollinger_break_matches_independently_computed_bands() -> None:
    engine = AlertsEngine(rules=only("bollinger_upper", "bollinger_lower"))
    history = [100.0 + i % 5 for i in range(19)]  # 100 101 102 103 104 100 ...
    for i, close in enumerate(history):
        assert engine.on_candle(candle(i, close)) == []

    inside = 104.5
    upper, _ = _bands([*history[-19:], inside])
    assert inside < upper
    assert engine.on_candle(candle(19, inside)) == []
    history.append(inside)

    outside = 106.0
    upper, _ = _bands([*history[-19:], outside])
    assert outside > upper  # about 105.95: the close itself widens the band
    events = engine.on_candle(candle(20, outside))
    assert fired(events) == [("bollinger_upper", T0 + timedelta(minutes=21), 106.0)]
    assert events[0].alert.value == pytest.approx(upper, abs=1e-9)
    history.append(outside)

    low = 97.0
    _, lower = _bands([*history[-19:], low])
    assert low < lower
    events = engine.on_candle(candle(21, low))
    assert fired(events) == [("bollinger_lower", T0 + timedelta(minutes=22), 97.0)]
    assert events[0].alert.value == pytest.approx(lower, abs=1e-9)


def test_candle_rules_ignore_forming_candles_other_intervals_and_repeats() -> None:
    engine = AlertsEngine(rules=only("volume_spike"))
    for i in range(20):
        engine.on_candle(candle(i, 100.0, volume=1000))
    assert engine.on_candle(candle(20, 100.0, volume=9999, closed=False)) == []
    assert engine.on_candle(candle(20, 100.0, volume=9999, interval=Interval.M5)) == []
    assert engine.on_candle(candle(19, 100.0, volume=9999)) == []  # not newer
    assert len(engine.on_candle(candle(20, 100.0, volume=9999))) == 1


# --- state payload ------------------------------------------------------------------------------


def test_state_lists_owner_alerts_and_every_builtin_rule() -> None:
    engine = AlertsEngine()
    mine = created(engine, "u", SYM, "above", 2500, note="take profit")
    created(engine, "other", SYM, "below", 2000)
    created(engine, "u", "TCS", "above", 4000)
    state = engine.state(SYM, "u")
    # The seed's three lists, and the analysis alerts' two (empty without any).
    assert set(state) == {
        "price_alerts",
        "volume_alerts",
        "breakout_alerts",
        "indicator_alerts",
        "pattern_alerts",
    }
    assert state["indicator_alerts"] == [] and state["pattern_alerts"] == []
    ids = {k: [e["id"] for e in v if isinstance(e, dict)] for k, v in state.items() if v}
    assert ids == {
        "price_alerts": [
            mine.id,
            "builtin:RELIANCE:day_change_up",
            "builtin:RELIANCE:day_change_down",
            "builtin:RELIANCE:new_day_high",
            "builtin:RELIANCE:new_day_low",
        ],
        "volume_alerts": ["builtin:RELIANCE:volume_spike"],
        "breakout_alerts": [
            "builtin:RELIANCE:breakout_high",
            "builtin:RELIANCE:breakout_low",
            "builtin:RELIANCE:bollinger_upper",
            "builtin:RELIANCE:bollinger_lower",
        ],
    }
    user = state["price_alerts"][0]
    assert user == {
        "id": mine.id,
        "symbol": SYM,
        "type": "above",
        "condition": "above",
        "value": 2500.0,
        "triggered": False,
        "fired": False,
        "triggered_at": None,
        "price": None,
        "message": None,
        "once": True,
        "note": "take profit",
        "source": "user",
        "owner": "u",
        "armed": True,
        "fire_count": 0,
        "category": "price",
    }
    builtin = state["breakout_alerts"][2]
    assert isinstance(builtin, dict)
    assert "owner" not in builtin
    assert (builtin["type"], builtin["condition"], builtin["source"]) == (
        "bollinger_upper",
        "above",
        "builtin",
    )
    assert (builtin["triggered"], builtin["value"]) == (False, None)


def test_state_without_owner_is_the_anonymous_owner() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    anon = created(engine, None, SYM, "above", 2500)
    created(engine, "u", SYM, "above", 2600)
    assert [e["id"] for e in engine.state(SYM)["price_alerts"] if isinstance(e, dict)] == [anon.id]


def test_triggered_alert_state_carries_time_price_and_message() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    created(engine, "u", SYM, "cross_down", 2500)
    (event,) = feed(engine, [(0, 2510), (1, 2495)])
    (entry,) = engine.state(SYM, "u")["price_alerts"]
    assert isinstance(entry, dict)
    assert (entry["fired"], entry["triggered"]) == (True, False)
    assert entry["triggered_at"] == "2025-01-27T04:30:01.000Z"
    assert entry["price"] == 2495.0
    assert entry["message"] == "RELIANCE crossed below 2500.00 at 2495.00"
    assert event_payload(event)["triggered_at"] == "2025-01-27T04:30:01.000Z"
    assert (event_payload(event)["triggered"], event_payload(event)["fired"]) == (True, True)
    assert (alert_payload(event.alert)["triggered"], alert_payload(event.alert)["fired"]) == (
        False,
        True,
    )
    (announced,) = engine.state(SYM, "u", firing=event.alert.id)["price_alerts"]
    assert isinstance(announced, dict) and announced["triggered"] is True


# --- validation ---------------------------------------------------------------------------------


def test_create_accepts_a_200_character_note_and_integer_values() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    alert = created(engine, "u", SYM, "above", 2500, once=False, note="n" * 200)
    assert (alert.value, alert.once, alert.note) == (2500.0, False, "n" * 200)


def test_create_limits_alerts_per_owner() -> None:
    engine = AlertsEngine(rules=AlertRules(builtin_rules=frozenset(), max_alerts_per_owner=2))
    created(engine, "u", SYM, "above", 1)
    created(engine, "u", SYM, "above", 2)
    err = engine.create("u", request(SYM, "above", 3))
    assert isinstance(err, ProtocolError) and err.code is ErrorCode.LIMIT_EXCEEDED
    created(engine, "v", SYM, "above", 3)


def test_alert_ids_are_unique_prefixed_hex() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    ids = {created(engine, "u", SYM, "above", i + 1).id for i in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"a_[0-9a-f]{12}", i) for i in ids)


def test_delete_removes_only_the_owners_alert() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    alert = created(engine, "u", SYM, "above", 2500)
    err = engine.delete("u", "a_000000000000")
    assert isinstance(err, ProtocolError) and err.code is ErrorCode.NOT_FOUND
    assert err.message == "unknown alert: 'a_000000000000'"
    err = engine.delete("someone else", alert.id)
    assert isinstance(err, ProtocolError) and err.code is ErrorCode.NOT_FOUND
    missing = parse_command(
        {"type": "delete_alert", "id": None}, endpoint=Endpoint.ALERTS, registry=REGISTRY
    )
    assert isinstance(missing, ProtocolError) and missing.code is ErrorCode.MISSING_FIELD
    assert engine.delete("u", alert.id) is True
    assert engine.list("u") == []
    assert feed(engine, [(0, 3000)]) == []


def test_list_filters_by_owner_and_symbol() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    a = created(engine, "u", SYM, "above", 2500)
    b = created(engine, "u", "TCS", "below", 3000)
    created(engine, "v", SYM, "above", 2500)
    anon = created(engine, None, SYM, "above", 2500)
    assert engine.list("u") == [a, b]
    assert engine.list("u", "TCS") == [b]
    assert engine.list(None) == [anon] == engine.list("")
    assert engine.list("nobody") == []


def test_rules_reject_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="unknown built-in rule: 'moon'"):
        AlertRules(builtin_rules=frozenset({"moon"}))
    with pytest.raises(ValueError, match="cooldown_seconds"):
        AlertRules(cooldown_seconds=-1)
    with pytest.raises(ValueError, match="volume_lookback"):
        AlertRules(volume_lookback=0)
    assert set(AlertRules().builtin_rules) == set(BUILTIN_RULES)


# --- persistence --------------------------------------------------------------------------------


def test_fired_alert_does_not_fire_again_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    store = SqliteStore(path)
    engine = StoredAlerts(store, USER_ONLY)
    alert = created(engine, "u", SYM, "cross_up", 2500)
    assert fired(feed(engine, [(0, 2490), (1, 2510)])) == [("cross_up", at(1), 2510.0)]
    store.close()

    store = SqliteStore(path)
    engine = StoredAlerts(store, USER_ONLY)
    assert feed(engine, [(0, 2490), (1, 2510), (100, 2490), (200, 2510)]) == []
    (entry,) = engine.state(SYM, "u")["price_alerts"]
    assert isinstance(entry, dict)
    assert (entry["id"], entry["fired"], entry["triggered_at"], entry["price"]) == (
        alert.id,
        True,
        iso(at(1)),
        2510.0,
    )
    assert [e.message for e in engine.recent_events(SYM, "u")] == [
        "RELIANCE crossed above 2500.00 at 2510.00"
    ]
    store.close()


def test_rearming_alert_keeps_arming_and_cooldown_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    with SqliteStore(path) as store:
        engine = StoredAlerts(store, USER_ONLY)
        created(engine, "u", SYM, "cross_up", 2500, once=False)
        assert len(feed(engine, [(0, 2490), (1, 2510)])) == 1

    with SqliteStore(path) as store:
        engine = StoredAlerts(store, USER_ONLY)
        # The same crossing replayed, then wobbling inside the band: nothing.
        assert feed(engine, [(0, 2490), (1, 2510), (30, 2499), (31, 2505)]) == []
        # Back past the band (re-armed, saved) and up again within the cool-down: dropped.
        assert feed(engine, [(40, 2490), (50, 2510)]) == []

    with SqliteStore(path) as store:
        engine = StoredAlerts(store, USER_ONLY)
        (alert,) = engine.list("u")
        assert alert.armed
        assert fired(feed(engine, [(70, 2490), (80, 2510)])) == [("cross_up", at(80), 2510.0)]


def test_crossing_while_nobody_is_subscribed_is_in_state_later(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    with SqliteStore(path) as store:
        engine = StoredAlerts(store, only("day_change_up"))
        created(engine, "u", SYM, "above", 2040)
        created(engine, "v", SYM, "above", 2030)
        # The shell drops these events: no one is connected.
        feed(engine, [(0, 2000), (5, 2045)], prev_close=2000)

    with SqliteStore(path) as store:
        engine = StoredAlerts(store, only("day_change_up"))
        events = engine.recent_events(SYM, "u")
        assert [(e.alert.id.startswith("builtin:"), e.price, e.triggered_at) for e in events] == [
            (True, 2045.0, at(5)),
            (False, 2045.0, at(5)),
        ]
        assert [e.alert.owner for e in engine.recent_events(SYM, "v")] == ["", "v"]
        assert len(engine.recent_events(SYM, "u", limit=1)) == 1
        price_alerts = engine.state(SYM, "u")["price_alerts"]
        assert [(e["type"], e["fired"]) for e in price_alerts if isinstance(e, dict)] == [
            ("above", True),
            ("day_change_up", True),
        ]
        # The built-in rule's firing was saved too: replaying the day does not repeat it.
        assert feed(engine, [(5, 2045), (6, 2046)], prev_close=2000) == []


def test_deleted_alert_stays_deleted_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    with SqliteStore(path) as store:
        engine = StoredAlerts(store, USER_ONLY)
        keep = created(engine, "u", SYM, "above", 2500)
        gone = created(engine, "u", SYM, "below", 2000)
        assert engine.delete("u", gone.id) is True
    with SqliteStore(path) as store:
        assert StoredAlerts(store, USER_ONLY).list("u") == [keep]


def test_a_failed_save_is_retried_by_the_next_tick(tmp_path: Path) -> None:
    with _FlakyStore(tmp_path / "alerts.db") as store:
        engine = StoredAlerts(store, USER_ONLY)
        alert = created(engine, "u", SYM, "cross_up", 2500)
        feed(engine, [(0, 2490)])
        store.fail_next = True
        with pytest.raises(OSError, match="disk full"):
            engine.on_tick(tick(2510, 1))
        assert engine.get(alert.id) == alert  # nothing changed
        assert fired(feed(engine, [(2, 2511)])) == [("cross_up", at(2), 2511.0)]
        assert [e.price for e in store.events(SYM, "u", 10)] == [2511.0]


def test_symbols_are_evaluated_independently() -> None:
    engine = AlertsEngine(rules=only("day_change_up"))
    created(engine, "u", SYM, "cross_up", 2500)
    feed(engine, [(0, 2490)])
    events = engine.on_tick(tick(4000, 1, symbol="TCS", prev_close=3000))
    assert [e.alert.id for e in events] == ["builtin:TCS:day_change_up"]
    assert fired(feed(engine, [(2, 2510)])) == [("cross_up", at(2), 2510.0)]


def test_engine_without_a_store_keeps_recent_events_in_memory() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    created(engine, "u", SYM, "above", 2500)
    created(engine, "v", SYM, "above", 2500)
    feed(engine, [(0, 2510)])
    assert [e.alert.owner for e in engine.recent_events(SYM, "u")] == ["u"]
    assert engine.recent_events("TCS", "u") == []


# --- purity -------------------------------------------------------------------------------------


def test_alerts_module_imports_no_io() -> None:
    source = Path(tickhub.engines.alerts.__file__).read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported.isdisjoint({"asyncio", "socket", "sqlite3", "picows", "websockets", "redis"})


def test_every_module_of_the_engine_imports_no_io_and_no_store() -> None:
    package = Path(tickhub.engines.alerts.__file__).parent
    for path in sorted(package.glob("*.py")):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
        roots = {name.split(".")[0] for name in imported}
        assert roots.isdisjoint({"asyncio", "socket", "sqlite3", "psycopg", "redis", "os"}), path
        assert not any(name.startswith(("tickhub.store", "tickhub.ingest")) for name in imported)


# --- evaluation, then commit --------------------------------------------------------------------


def test_an_evaluation_changes_nothing_until_it_is_committed() -> None:
    engine = AlertsEngine(rules=only("day_change_up"))
    alert = created(engine, "u", SYM, "above", 2040)
    evaluation = engine.evaluate_tick(tick(2045, 0, prev_close=2000))
    assert [(c.alert.id, c.event is not None) for c in evaluation.changes] == [
        (alert.id, True),
        ("builtin:RELIANCE:day_change_up", True),
    ]
    assert engine.get(alert.id) == alert
    assert engine.recent_events(SYM, "u") == []
    assert engine.commit(evaluation) == evaluation.events
    fired_alert = engine.get(alert.id)
    assert fired_alert is not None and fired_alert.triggered
    assert [e.alert.id for e in engine.recent_events(SYM, "u")] == [
        "builtin:RELIANCE:day_change_up",
        alert.id,
    ]


def test_a_rearming_is_a_change_to_persist() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    created(engine, "u", SYM, "above", 2500, once=False)
    feed(engine, [(0, 2510)])
    evaluation = engine.evaluate_tick(tick(2490, 100))
    (change,) = evaluation.changes
    assert change.event is None
    assert (change.alert.armed, change.alert.triggered, change.alert.last_price) == (
        True,
        False,
        2490.0,
    )
    assert engine.commit(evaluation) == []
    assert engine.list("u")[0].armed


class _FailingStore(SqliteStore):
    """A real store whose ``add_event`` fails for one alert id, until told otherwise."""

    failing: str | None = None

    def add_event(self, event: AlertEvent) -> None:
        if event.alert.id == self.failing:
            raise OSError("disk full")
        super().add_event(event)


def test_a_write_failing_midway_keeps_the_firings_written_before_it(tmp_path: Path) -> None:
    with _FailingStore(tmp_path / "alerts.db") as store:
        alerts = StoredAlerts(store, USER_ONLY)
        first = created(alerts, "u", SYM, "above", 2500)
        second = created(alerts, "u", SYM, "above", 2505)
        store.failing = second.id
        with pytest.raises(OSError, match="disk full"):
            alerts.on_tick(tick(2510, 1))
        after = alerts.get(first.id)
        assert after is not None and after.triggered  # written, so applied
        assert alerts.get(second.id) == second  # not written, so unchanged
        store.failing = None
        assert [e.alert.id for e in alerts.on_tick(tick(2511, 2))] == [second.id]
        assert sorted(e.alert.id for e in store.events(SYM, "u", 10)) == sorted(
            [first.id, second.id]
        )


def test_a_builtin_firing_that_failed_to_save_is_retried(tmp_path: Path) -> None:
    with _FailingStore(tmp_path / "alerts.db") as store:
        alerts = StoredAlerts(store, only("day_change_up"))
        store.failing = "builtin:RELIANCE:day_change_up"
        with pytest.raises(OSError, match="disk full"):
            alerts.on_tick(tick(2045, 0, prev_close=2000))
        assert alerts.recent_events(SYM) == []
        store.failing = None
        assert fired(alerts.on_tick(tick(2046, 1, prev_close=2000))) == [
            ("day_change_up", at(1), 2046.0)
        ]
    with SqliteStore(tmp_path / "alerts.db") as store:
        again = StoredAlerts(store, only("day_change_up"))
        assert again.on_tick(tick(2047, 2, prev_close=2000)) == []


def test_a_failed_create_or_delete_changes_nothing(tmp_path: Path) -> None:
    class Refusing(SqliteStore):
        refuse = False

        def save_alert(self, alert: Alert) -> None:
            if self.refuse:
                raise OSError("disk full")
            super().save_alert(alert)

        def delete_alert(self, id: str) -> bool:
            if self.refuse:
                raise OSError("disk full")
            return super().delete_alert(id)

    with Refusing(tmp_path / "alerts.db") as store:
        alerts = StoredAlerts(store, USER_ONLY)
        kept = created(alerts, "u", SYM, "above", 2500)
        store.refuse = True
        with pytest.raises(OSError):
            alerts.create("u", request(SYM, "below", 2000))
        with pytest.raises(OSError):
            alerts.delete("u", kept.id)
        assert alerts.list("u") == [kept]


def test_percent_change_compares_the_four_decimal_figure_not_the_wire_one() -> None:
    engine = AlertsEngine(rules=USER_ONLY)
    created(engine, "u", SYM, "percent_change", 2)
    near = tick(1019.96, 0, prev_close=1000)
    assert near.change_percent == 1.996
    assert payloads.tick_data(near)["change_percent"] == 2.0
    assert engine.on_tick(near) == []
    assert len(engine.on_tick(tick(1020.0, 1, prev_close=1000))) == 1
