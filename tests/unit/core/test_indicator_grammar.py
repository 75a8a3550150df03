"""The ``indicators`` field of an analysis subscribe: grammar, canonical form, limits, errors."""

from __future__ import annotations

import pytest

from tickhub.core import defaults
from tickhub.core.commands import (
    CATALOG,
    Subscribe,
    parse_command,
    parse_indicators,
    parse_set_key,
    set_key,
)
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import Interval
from tickhub.core.protocol import ErrorCode, ProtocolError
from tickhub.core.topics import Endpoint, split_set, topic


def key_of(entries: object, **limits: int) -> str:
    specs = parse_indicators(entries, **limits)
    assert isinstance(specs, tuple), specs
    return set_key(specs)


def error_of(entries: object, **limits: int) -> ProtocolError:
    err = parse_indicators(entries, **limits)
    assert isinstance(err, ProtocolError), err
    return err


def test_absent_or_null_is_the_default_set() -> None:
    assert parse_indicators(None) is None


def test_canonical_key_is_sorted_deduplicated_with_defaults_filled() -> None:
    assert key_of(["ema:9", "ema:21", "supertrend:10,3", "rsi:14"]) == (
        "ema:21;ema:9;rsi:14;supertrend:10,3"
    )
    # Any order, case, spacing, spelling of a number or omitted default gives the same key.
    assert key_of([" RSI ", "Supertrend:10, 3.0", "ema:021", "ema:9", "ema:9"]) == (
        "ema:21;ema:9;rsi:14;supertrend:10,3"
    )
    assert key_of(["macd"]) == "macd:12,26,9"
    assert key_of(["bollinger:20"]) == "bollinger:20,2"
    assert key_of(["sar"]) == "sar:0.02,0.2"
    assert key_of(["stoch:5"]) == "stoch:5,3,3"


def test_every_indicator_parses_with_its_defaults() -> None:
    for name in CATALOG:
        specs = parse_indicators([name])
        assert isinstance(specs, tuple) and specs[0].name == name


def test_key_round_trips_and_rejects_what_is_not_canonical() -> None:
    key = key_of(["supertrend:7,2.5", "adx", "obv", "pivots", "donchian:55"])
    specs = parse_set_key(key)
    assert specs is not None and set_key(specs) == key
    assert parse_set_key("ema:9;ema:21") is None  # not sorted
    assert parse_set_key("ema") is None  # defaults not written out
    assert parse_set_key("nonsense:1") is None


def test_unknown_indicator() -> None:
    err = error_of(["ema:9", "ichimoku:9,26"])
    assert err.code is ErrorCode.UNKNOWN_INDICATOR
    assert err.details == {"indicator": "ichimoku:9,26"}
    assert "unknown indicator: 'ichimoku:9,26'" in err.message and "supertrend" in err.message


@pytest.mark.parametrize(
    ("entry", "parameter"),
    [
        ("ema:9.5", "period"),  # an integer parameter
        ("ema:abc", "period"),
        ("ema:-3", "period"),
        ("ema:1", "period"),  # below 2
        ("ema:201", "period"),  # above MAX_INDICATOR_PERIOD
        ("supertrend:10,0", "multiplier"),
        ("supertrend:10,11", "multiplier"),
        ("bollinger:20,nan", "deviations"),
        ("sar:0.5,2", "maximum"),
        ("rsi:1e3", "period"),
    ],
)
def test_bad_parameter(entry: str, parameter: str) -> None:
    err = error_of([entry])
    assert err.code is ErrorCode.INVALID_INDICATOR_PARAMETER
    assert err.details["indicator"] == entry
    assert err.details["parameter"] == parameter


def test_period_bound_is_the_setting_and_said_so() -> None:
    err = error_of(["ema:201"])
    assert err.details["maximum"] == defaults.MAX_INDICATOR_PERIOD
    assert err.details["setting"] == "MAX_INDICATOR_PERIOD"
    assert "between 2 and 200" in err.message
    assert key_of(["ema:201"], max_period=300) == "ema:201"
    assert error_of(["ema:51"], max_period=50).details["maximum"] == 50


def test_parameter_relations_and_counts() -> None:
    assert error_of(["macd:26,12,9"]).code is ErrorCode.INVALID_INDICATOR_PARAMETER
    assert error_of(["sar:0.3,0.2"]).code is ErrorCode.INVALID_INDICATOR_PARAMETER
    err = error_of(["ema:9,3"])
    assert err.code is ErrorCode.INVALID_INDICATOR_PARAMETER and "at most 1" in err.message


def test_too_many_indicators_counts_after_repeats_are_dropped() -> None:
    limit = defaults.MAX_INDICATORS_PER_SUBSCRIPTION
    many = [f"ema:{p}" for p in range(2, 2 + limit + 1)]
    err = error_of(many)
    assert err.code is ErrorCode.TOO_MANY_INDICATORS
    assert err.details == {
        "count": limit + 1,
        "limit": limit,
        "setting": "MAX_INDICATORS_PER_SUBSCRIPTION",
    }
    assert key_of(many[:limit] + many[:limit])  # repeats do not count
    assert error_of(["ema:9", "ema:21"], max_indicators=1).code is ErrorCode.TOO_MANY_INDICATORS


@pytest.mark.parametrize("raw", [[], "ema:9", [9], ["ema:9", None], {"ema": 9}])
def test_field_of_the_wrong_shape(raw: object) -> None:
    err = error_of(raw)
    assert err.code is ErrorCode.INVALID_FIELD and err.details == {"field": "indicators"}


def test_subscribe_carries_the_set_on_analysis_only() -> None:
    registry = InstrumentRegistry.bundled()
    msg = {"type": "subscribe", "symbol": "RELIANCE", "indicators": ["ema:9"]}
    on_analysis = parse_command(msg, endpoint=Endpoint.ANALYSIS, registry=registry)
    assert isinstance(on_analysis, Subscribe) and on_analysis.indicators is not None
    assert set_key(on_analysis.indicators) == "ema:9"
    on_stream = parse_command(msg, endpoint=Endpoint.STREAM, registry=registry)
    assert isinstance(on_stream, Subscribe) and on_stream.indicators is None
    bad = parse_command(
        {**msg, "indicators": ["ema:9", "rsi:14"]},
        endpoint=Endpoint.ANALYSIS,
        registry=registry,
        max_indicators=1,
    )
    assert isinstance(bad, ProtocolError) and bad.code is ErrorCode.TOO_MANY_INDICATORS


def test_analysis_topic_carries_the_set_key() -> None:
    plain = topic(Endpoint.ANALYSIS, "RELIANCE", Interval.M5)
    assert plain == "analysis:RELIANCE:5m"
    with_set = topic(Endpoint.ANALYSIS, "RELIANCE", Interval.M5, indicators="ema:9;rsi:14")
    assert with_set == "analysis:RELIANCE:5m|ema:9;rsi:14"
    assert split_set(with_set) == (plain, "ema:9;rsi:14")
    assert split_set(plain) == (plain, "")
    # Only analysis topics carry one.
    assert topic(Endpoint.STREAM, "RELIANCE", Interval.M5, indicators="ema:9") == (
        "stream:RELIANCE:5m"
    )
