"""Analysis alerts' requests: operands in canonical form, members, and every error with its code."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tickhub.core.commands import (
    AnalysisCondition,
    Condition,
    CreateAlert,
    CreateAnalysisAlert,
    parse_command,
    parse_operand,
)
from tickhub.core.commands.analysis_alerts import PATTERN_NAMES
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import Interval
from tickhub.core.protocol import ErrorCode, ProtocolError
from tickhub.core.topics import Endpoint
from tickhub.engines.analysis.patterns import PATTERNS

REGISTRY = InstrumentRegistry.bundled()


def parse(**fields: Any) -> CreateAnalysisAlert | CreateAlert | ProtocolError:
    msg = {"type": "create_alert", "symbol": "RELIANCE", **fields}
    command = parse_command(msg, endpoint=Endpoint.ALERTS, registry=REGISTRY)
    assert isinstance(command, CreateAnalysisAlert | CreateAlert | ProtocolError)
    return command


def error(**fields: Any) -> ProtocolError:
    result = parse(**fields)
    assert isinstance(result, ProtocolError), result
    return result


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("ema:9", "ema:9"),
        (" EMA : 9 ", "ema:9"),
        ("rsi", "rsi:14"),
        ("macd.signal:12,26,9", "macd.signal:12,26,9"),
        ("MACD.MACD:12,26,9", "macd:12,26,9"),  # the default member is not written
        ("macd", "macd:12,26,9"),
        ("bollinger.upper:20,2", "bollinger.upper:20,2"),
        ("bollinger.UPPER", "bollinger.upper:20,2"),
        ("stoch.d:14,3,3", "stoch.d:14,3,3"),
        ("adx.plus_di:14", "adx.plus_di:14"),
        ("donchian.lower:20", "donchian.lower:20"),
        ("pivots.r1", "pivots.r1"),
        ("pivots", "pivots"),
        ("supertrend:10,3", "supertrend:10,3"),
        ("supertrend.value:10,3", "supertrend:10,3"),
        ("Close", "close"),
        ("prev_high", "prev_high"),
        ("VOLUME", "volume"),
    ],
)
def test_operand_canonical_forms(raw: str, canonical: str) -> None:
    operand = parse_operand(raw, "indicator")
    assert not isinstance(operand, ProtocolError)
    assert operand.canonical == canonical


def test_operand_default_members() -> None:
    members = {}
    for name in ("macd", "bollinger", "supertrend", "stoch", "adx", "donchian", "pivots"):
        operand = parse_operand(name, "other")
        assert not isinstance(operand, ProtocolError)
        members[name] = operand.member
    assert members == {
        "macd": "macd",
        "bollinger": "middle",
        "supertrend": "value",
        "stoch": "k",
        "adx": "adx",
        "donchian": "middle",
        "pivots": "pivot",
    }


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("emaa:9", ErrorCode.UNKNOWN_INDICATOR),
        ("ema:1", ErrorCode.INVALID_INDICATOR_PARAMETER),
        ("ema:9.5", ErrorCode.INVALID_INDICATOR_PARAMETER),
        ("macd:26,12,9", ErrorCode.INVALID_INDICATOR_PARAMETER),
        ("supertrend.direction:10,3", ErrorCode.INVALID_FIELD),
        ("bollinger.top", ErrorCode.INVALID_FIELD),
        ("ema.value:9", ErrorCode.INVALID_FIELD),
        ("close:5", ErrorCode.INVALID_FIELD),
        (5, ErrorCode.INVALID_FIELD),
    ],
)
def test_operand_errors_carry_the_field(raw: object, code: ErrorCode) -> None:
    err = parse_operand(raw, "other")
    assert isinstance(err, ProtocolError)
    assert err.code is code
    assert err.details["field"] == "other"


def test_bad_member_lists_the_allowed_ones() -> None:
    err = parse_operand("bollinger.top:20,2", "indicator")
    assert isinstance(err, ProtocolError)
    assert err.details["allowed"] == ["upper", "middle", "lower"]
    assert "unknown member 'top' of bollinger" in err.message


def test_indicator_alert_from_the_protocol() -> None:
    command = parse(indicator="RSI:14", condition="crosses_above", value=70, interval="5m")
    assert isinstance(command, CreateAnalysisAlert)
    assert command.interval is Interval.M5
    assert command.condition is AnalysisCondition.CROSSES_ABOVE
    assert command.indicator is not None and command.indicator.canonical == "rsi:14"
    assert command.other is None and command.value == Decimal(70)
    assert (command.forming, command.once, command.note) == (False, True, None)


def test_indicator_against_another_operand_defaults_to_1m() -> None:
    command = parse(indicator="ema:9", condition="crosses_above", other="EMA:21", forming=True)
    assert isinstance(command, CreateAnalysisAlert)
    assert command.interval is Interval.M1
    assert command.other is not None and command.other.canonical == "ema:21"
    assert command.value is None and command.forming is True


def test_pattern_alert() -> None:
    command = parse(condition="pattern", pattern="Engulfing", direction="BULLISH", interval="15m")
    assert isinstance(command, CreateAnalysisAlert)
    assert (command.pattern, command.direction) == ("engulfing", "bullish")
    any_pattern = parse(condition="pattern", pattern="any")
    assert isinstance(any_pattern, CreateAnalysisAlert) and any_pattern.direction is None


def test_pattern_names_are_the_engines() -> None:
    assert tuple(name for name, _, _ in PATTERNS) == PATTERN_NAMES
    assert len(PATTERN_NAMES) == 61


def test_price_alert_is_unchanged() -> None:
    assert parse(condition="above", value=2500) == CreateAlert(
        "RELIANCE", Condition.ABOVE, Decimal(2500)
    )


RSI = {"indicator": "rsi", "condition": "above", "value": 1}
MISSING, INVALID = ErrorCode.MISSING_FIELD, ErrorCode.INVALID_FIELD


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"indicator": "rsi", "value": 70}, MISSING, "condition"),
        ({"indicator": "rsi", "condition": "crosses_above"}, MISSING, "value"),
        ({**RSI, "other": "ema"}, INVALID, "other"),
        ({**RSI, "condition": "cross_up"}, INVALID, "condition"),
        ({"indicator": "rsi", "condition": "pattern", "pattern": "doji"}, INVALID, "indicator"),
        ({"condition": "above", "value": 2500, "other": "ema:9"}, INVALID, "other"),
        ({"condition": "pattern"}, MISSING, "pattern"),
        ({"condition": "pattern", "pattern": "dojo"}, INVALID, "pattern"),
        ({"condition": "pattern", "pattern": "doji", "direction": "up"}, INVALID, "direction"),
        ({**RSI, "interval": "2m"}, ErrorCode.UNKNOWN_INTERVAL, "interval"),
        ({**RSI, "indicator": "foo"}, ErrorCode.UNKNOWN_INDICATOR, "indicator"),
        ({**RSI, "indicator": "rsi:1"}, ErrorCode.INVALID_INDICATOR_PARAMETER, "indicator"),
        ({**RSI, "value": "70"}, INVALID, "value"),
        ({**RSI, "value": 10**12 + 1}, INVALID, "value"),
        ({**RSI, "value": 0.1234567}, INVALID, "value"),
        ({**RSI, "forming": "yes"}, INVALID, "forming"),
        ({**RSI, "once": 1}, INVALID, "once"),
    ],
)
def test_analysis_alert_errors(fields: dict[str, Any], code: ErrorCode, field: str) -> None:
    err = error(**fields)
    assert err.code is code, err
    assert err.details.get("field") == field, err


def test_unknown_pattern_and_direction_list_the_allowed_values() -> None:
    assert error(condition="pattern", pattern="dojo").details["allowed"] == [*PATTERN_NAMES, "any"]
    err = error(condition="pattern", pattern="doji", direction="up")
    assert err.details["allowed"] == ["bullish", "bearish", "neutral"]


def test_value_limits_are_inclusive() -> None:
    for value in (10**12, -(10**12), 0.123456, -3):
        command = parse(indicator="macd", condition="below", value=value)
        assert isinstance(command, CreateAnalysisAlert), (value, command)
        assert command.value == Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
