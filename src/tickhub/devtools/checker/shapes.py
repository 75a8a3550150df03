"""The fields each stream's data must carry: what the seed's JavaScript examples read from them.

This changes when a stream's payload does (a field the clients read added or renamed), apart from
how a session is walked or reported. The rules are written out here, not imported from the
engines, so that a server change that breaks a client also breaks the check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tickhub.devtools.checker.values import MISSING, Message, is_timestamp, kind, number, show

__all__ = ["FIELDS", "TYPE_SHAPES", "Fields"]


@dataclass(frozen=True, slots=True)
class Fields:
    """The fields one endpoint's data messages need: how to say them, and what is wrong in one."""

    describe: str
    problems: Callable[[Message], list[str]]
    """The problems of a message's ``data`` object, one phrase each; empty when it conforms."""
    data_types: frozenset[str] | None = None
    """The data types the fields are required on; ``None``: every data message."""

    def applies(self, msg: Message) -> bool:
        """Whether ``msg`` must carry the fields (a message without a data type always must)."""
        data_type = msg.get("data_type")
        return self.data_types is None or data_type is None or data_type in self.data_types

    @property
    def scope(self) -> str:
        """The messages the fields are required on, for the report."""
        if self.data_types is None:
            return "every data message"
        return f"every {'/'.join(sorted(self.data_types))} message"


def _numbers(body: Message, *names: str, prefix: str = "data") -> list[str]:
    return [f"{prefix}.{n} {kind(body.get(n, MISSING))}" for n in names if not number(body.get(n))]


def _stream_fields(body: Message) -> list[str]:
    return _numbers(body, "price", "volume", "change", "change_percent")


def _analysis_fields(body: Message) -> list[str]:
    problems = []
    if not isinstance(body.get("technical_indicators"), dict):
        problems.append(
            f"data.technical_indicators {kind(body.get('technical_indicators', MISSING))}"
        )
    if not isinstance(body.get("patterns"), list):
        problems.append(f"data.patterns {kind(body.get('patterns', MISSING))}")
    return problems


def _alerts_fields(body: Message) -> list[str]:
    alerts = body.get("price_alerts", MISSING)
    if not isinstance(alerts, list):
        return [f"data.price_alerts {kind(alerts)}"]
    problems = []
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            problems.append(f"data.price_alerts[{i}] {kind(alert)}")
        elif not isinstance(alert.get("triggered"), bool):
            problems.append(
                f"data.price_alerts[{i}].triggered {kind(alert.get('triggered', MISSING))}"
            )
    return problems


def _portfolio_fields(body: Message) -> list[str]:
    problems = []
    position = body.get("position", MISSING)
    if not isinstance(position, dict):
        problems.append(f"data.position {kind(position)}")
    else:
        problems += _numbers(position, "current_value", prefix="data.position")
    if body.get("pnl") is None:
        problems.append(f"data.pnl {kind(body.get('pnl', MISSING))}")
    return problems


def _candle_fields(body: Message) -> list[str]:
    """OHLCV, and ``price`` (= ``close``) so that the seed's ``updateChart(data.data)`` finds a
    price on every /ws/stream message."""
    problems = _numbers(body, "open", "high", "low", "close", "volume", "price")
    if not problems and body["price"] != body["close"]:
        problems.append(f"data.price {show(body['price'])} is not data.close {show(body['close'])}")
    if not isinstance(body.get("closed"), bool):
        problems.append(f"data.closed {kind(body.get('closed', MISSING))}")
    if not is_timestamp(body.get("start")):
        problems.append(f"data.start {show(body.get('start', MISSING))}")
    return problems


FIELDS = {
    "stream": Fields(
        "data.price, data.volume, data.change and data.change_percent (numbers)",
        _stream_fields,
        frozenset({"tick_data", "market_data"}),
    ),
    "analysis": Fields(
        "data.technical_indicators (object) and data.patterns (array)",
        _analysis_fields,
    ),
    "alerts": Fields(
        "data.price_alerts (array of objects with a boolean 'triggered')",
        _alerts_fields,
    ),
    "portfolio": Fields(
        "data.position.current_value (number) and data.pnl",
        _portfolio_fields,
    ),
}
"""The seed's fields, by endpoint name."""

TYPE_SHAPES: dict[str, Callable[[Message], list[str]]] = {"candle_data": _candle_fields}
"""Shapes checked wherever a data type appears, beyond the seed's fields."""
