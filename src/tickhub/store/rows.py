"""Row codecs shared by the SQLite and PostgreSQL stores: one validation, one format.

Both stores keep the same columns, datetimes as ISO 8601 text with their offset, and an event's
alert as a JSON snapshot of its columns; what differs (SQL, placeholders, booleans as integers in
SQLite) stays in each store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Protocol, TypeVar

from tickhub.core.commands import Operand, parse_operand
from tickhub.core.model import Interval
from tickhub.core.protocol import ProtocolError
from tickhub.engines.alerts import Alert, AlertEvent, Category, Source
from tickhub.engines.alerts.model import AnalysisRule

__all__ = [
    "ALERT_COLUMNS",
    "ANALYSIS_COLUMNS",
    "POSITION_COLUMNS",
    "POSITION_KEYS",
    "Row",
    "alert_fields",
    "alert_from_row",
    "category_of",
    "event_from_row",
    "event_values",
    "position_values",
    "replacement_values",
    "time_text",
]

ALERT_COLUMNS = (
    "id",
    "owner",
    "symbol",
    "condition",
    "value",
    "once",
    "note",
    "source",
    "triggered",
    "triggered_at",
    "price",
    "message",
    "armed",
    "last_price",
    "fire_count",
    "interval",
    "spec",
    "last_candle",
    "last_values",
)
"""The columns of an alert row, in table order. The last four are an analysis alert's (``NULL``
for the others): its interval, its rule as JSON (``indicator``, ``other``, ``pattern``,
``direction``, ``forming``), the start of the candle it last fired on, and that firing's left and
right values as a JSON array; they were added to tables made before them (see the stores)."""

ANALYSIS_COLUMNS = ALERT_COLUMNS[-4:]
"""The alert columns added for analysis alerts, all nullable text."""

POSITION_KEYS = ("owner", "symbol", "quantity", "average_price", "product", "exchange")
POSITION_COLUMNS = (*POSITION_KEYS, "updated_at")
"""The columns of a position row, in table order (the keys of a position row dict)."""


def time_text(ts: datetime) -> str:
    """A datetime as stored: ISO 8601 with its offset; ``ValueError`` for a naive one (its
    instant would be a guess)."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"naive timestamp: {ts.isoformat()} (a timezone is required)")
    return ts.isoformat()


# --- alerts -------------------------------------------------------------------------------------


def alert_fields(alert: Alert) -> dict[str, object]:
    """The column values of an alert, by :data:`ALERT_COLUMNS` in order (``ValueError`` for a
    naive ``triggered_at``)."""
    return {
        "id": alert.id,
        "owner": alert.owner,
        "symbol": alert.symbol,
        "condition": alert.condition,
        "value": alert.value,
        "once": alert.once,
        "note": alert.note,
        "source": alert.source,
        "triggered": alert.triggered,
        "triggered_at": time_text(alert.triggered_at) if alert.triggered_at is not None else None,
        "price": alert.price,
        "message": alert.message,
        "armed": alert.armed,
        "last_price": alert.last_price,
        "fire_count": alert.fire_count,
        "interval": alert.rule.interval.value if alert.rule is not None else None,
        "spec": _spec_text(alert.rule) if alert.rule is not None else None,
        "last_candle": time_text(alert.last_candle) if alert.last_candle is not None else None,
        "last_values": json.dumps(list(alert.values)) if alert.values is not None else None,
    }


def _spec_text(rule: AnalysisRule) -> str:
    return json.dumps(
        {
            "indicator": rule.indicator.canonical if rule.indicator is not None else None,
            "other": rule.other.canonical if rule.other is not None else None,
            "pattern": rule.pattern,
            "direction": rule.direction,
            "forming": rule.forming,
        }
    )


def _optional(row: Row, key: str) -> Any:
    """A column a row from before analysis alerts (or an old event's snapshot) lacks."""
    try:
        return row[key]
    except (KeyError, IndexError):
        return None


def _rule_of(interval: object, spec: object) -> AnalysisRule | None:
    """An analysis alert's rule back from its columns (``ValueError`` for an unreadable one)."""
    if spec is None:
        return None
    data = json.loads(str(spec))
    if not isinstance(data, dict) or not isinstance(interval, str):
        raise ValueError(f"unreadable analysis alert: {spec!r}")
    operands: list[Operand | None] = []
    for name in ("indicator", "other"):
        text = data.get(name)
        if text is None:
            operands.append(None)
            continue
        operand = parse_operand(text, name, max_period=10**9)
        if isinstance(operand, ProtocolError):
            raise ValueError(f"unreadable analysis alert operand: {text!r}")
        operands.append(operand)
    return AnalysisRule(
        Interval.parse(interval),
        operands[0],
        operands[1],
        data.get("pattern"),
        data.get("direction"),
        bool(data.get("forming", False)),
    )


class Row(Protocol):
    """A row by column name: a dict, a ``sqlite3.Row``, a psycopg ``DictRow``."""

    def __getitem__(self, key: str, /) -> Any: ...


def alert_from_row(row: Row) -> Alert:
    """The alert of a row (or of an event's JSON snapshot); ``ValueError`` for an unknown
    source."""
    triggered_at = row["triggered_at"]
    last_candle = _optional(row, "last_candle")
    last_values = _optional(row, "last_values")
    values = json.loads(last_values) if last_values is not None else None
    return Alert(
        id=row["id"],
        owner=row["owner"],
        symbol=row["symbol"],
        condition=row["condition"],
        value=row["value"],
        once=bool(row["once"]),
        note=row["note"],
        source=_source(row["source"]),
        triggered=bool(row["triggered"]),
        triggered_at=datetime.fromisoformat(triggered_at) if triggered_at is not None else None,
        price=row["price"],
        message=row["message"],
        armed=bool(row["armed"]),
        last_price=row["last_price"],
        fire_count=int(row["fire_count"]),
        rule=_rule_of(_optional(row, "interval"), _optional(row, "spec")),
        last_candle=datetime.fromisoformat(last_candle) if last_candle is not None else None,
        values=(float(values[0]), float(values[1])) if values is not None else None,
    )


_SOURCES: Final[Mapping[str, Source]] = {"user": "user", "builtin": "builtin"}
_CATEGORIES: Final[Mapping[str, Category]] = {
    "price": "price",
    "volume": "volume",
    "breakout": "breakout",
    "indicator": "indicator",
    "pattern": "pattern",
}
_T = TypeVar("_T")


def _one_of(known: Mapping[str, _T], value: object, what: str) -> _T:
    """``value`` as the literal it names among ``known`` (a stored text is only a ``str``), else
    ``ValueError``."""
    found = known.get(value) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"unknown alert {what}: {value!r}")
    return found


def _source(value: object) -> Source:
    return _one_of(_SOURCES, value, "source")


def event_values(event: AlertEvent, snapshot: str) -> tuple[object, ...]:
    """The column values of an event row: ``alert_id, symbol, owner, source, category,
    triggered_at, price, message, alert``; ``alert`` is ``snapshot``, the event's alert as the
    store encodes it (``ValueError`` for a naive ``triggered_at``)."""
    alert = event.alert
    return (
        alert.id,
        alert.symbol,
        alert.owner,
        alert.source,
        event.category,
        time_text(event.triggered_at),
        event.price,
        event.message,
        snapshot,
    )


def event_from_row(row: Row) -> AlertEvent:
    """The event of a row with ``category, triggered_at, price, message, alert`` (``ValueError``
    for an unknown category or source)."""
    return AlertEvent(
        alert=alert_from_row(json.loads(row["alert"])),
        triggered_at=datetime.fromisoformat(row["triggered_at"]),
        price=row["price"],
        message=row["message"],
        category=category_of(row["category"]),
    )


def category_of(value: object) -> Category:
    """A stored category, checked (``ValueError`` for an unknown one)."""
    return _one_of(_CATEGORIES, value, "category")


# --- positions ----------------------------------------------------------------------------------


def position_values(row: Mapping[str, object], owner: str | None = None) -> tuple[object, ...]:
    """The column values of a valid position row (see :mod:`tickhub.store.base`), else
    ``ValueError``; with ``owner``, the row must be that owner's (or name none)."""
    if not isinstance(row, Mapping):
        raise ValueError(f"position row must be a dict, got {type(row).__name__}")
    unknown = sorted(set(row) - set(POSITION_COLUMNS))
    if unknown:
        raise ValueError(f"unknown position field: {unknown[0]!r}")
    row_owner = row.get("owner", owner)
    if not isinstance(row_owner, str):
        raise ValueError(f"position owner must be a string, got {row_owner!r}")
    if owner is not None and row_owner != owner:
        raise ValueError(f"position owner {row_owner!r} in a replace for {owner!r}")
    symbol = row.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"position symbol must be a non-empty string, got {symbol!r}")
    quantity = row.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise ValueError(f"position quantity must be an int, got {quantity!r}")
    price = _decimal_text(row.get("average_price"))
    optional: list[str | None] = []
    for key in ("product", "exchange"):
        value = row.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"position {key} must be a string or None, got {value!r}")
        optional.append(value)
    updated_at = row.get("updated_at")
    if isinstance(updated_at, datetime):
        updated = time_text(updated_at)
    elif isinstance(updated_at, str):
        try:
            datetime.fromisoformat(updated_at)
        except ValueError:
            raise ValueError(f"position updated_at must be ISO 8601, got {updated_at!r}") from None
        updated = updated_at
    else:
        raise ValueError(f"position updated_at must be an ISO 8601 string, got {updated_at!r}")
    return (row_owner, symbol, quantity, price, *optional, updated)


def replacement_values(
    owner: str, rows: Sequence[Mapping[str, object]]
) -> list[tuple[object, ...]]:
    """The column values of ``rows`` as ``owner``'s whole set of positions, every row checked
    before any is written: ``ValueError`` for an owner that is not a string, an invalid row,
    another owner's row or a symbol given twice."""
    if not isinstance(owner, str):
        raise ValueError(f"position owner must be a string, got {owner!r}")
    values = [position_values(row, owner) for row in rows]
    seen: set[object] = set()
    for v in values:
        if v[1] in seen:
            raise ValueError(f"repeated position symbol: {v[1]!r}")
        seen.add(v[1])
    return values


def _decimal_text(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | Decimal | int):
        raise ValueError(
            f"position average_price must be a Decimal as text, got {value!r}"
            + (" (a float would round)" if isinstance(value, float) else "")
        )
    text = value.strip() if isinstance(value, str) else str(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"position average_price is not a decimal: {value!r}") from None
    if not number.is_finite() or not math.isfinite(float(number)):
        raise ValueError(f"position average_price must be finite, got {value!r}")
    return text
