"""One conformance suite for every ``Store``: SQLite in ``tmp_path`` and a real PostgreSQL.

The PostgreSQL cases run in a schema of their own (``tickhub_test_<hex>``, dropped afterwards) of
the database at ``TICKHUB_TEST_POSTGRES_URL`` (default ``postgresql://127.0.0.1:5432/test``); they
are skipped, with the reason, when no PostgreSQL answers there. Failures inside the database are
real: a trigger raises, or the server ends the store's session.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, LiteralString

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from tests.fakes import T0, alert, closed_candle, event, position
from tickhub.core.commands import parse_operand
from tickhub.core.errors import StoreUnavailableError
from tickhub.core.model import Candle, Interval
from tickhub.core.protocol import ProtocolError
from tickhub.engines.alerts import Alert, AlertEvent
from tickhub.engines.alerts.model import AnalysisRule
from tickhub.store import open_store
from tickhub.store import postgres as pg
from tickhub.store import sqlite as lite
from tickhub.store.postgres import PostgresStore
from tickhub.store.postgres_url import redact_url
from tickhub.store.rows import ANALYSIS_COLUMNS
from tickhub.store.sqlite import SqliteStore

PG_URL = os.environ.get("TICKHUB_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")

AnyStore = SqliteStore | PostgresStore


@functools.cache
def postgres_unavailable() -> str | None:
    """Why the PostgreSQL cases cannot run, or ``None`` when a server answers at ``PG_URL``."""
    try:
        with psycopg.connect(PG_URL, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        # Not the driver's message: for a malformed URL it quotes the URL, password and all.
        return f"no PostgreSQL answers at {redact_url(PG_URL)} ({type(exc).__name__})"
    return None


def pg_url(schema: str, **query: str) -> str:
    """``PG_URL`` with a ``schema`` and more query parameters (values already URL-encoded)."""
    params = "&".join(f"{k}={v}" for k, v in {"schema": schema, **query}.items())
    return f"{PG_URL}{'&' if '?' in PG_URL else '?'}{params}"


def pg_admin(statement: sql.Composed | LiteralString, params: tuple[object, ...] = ()) -> list[Any]:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        cur = conn.execute(sql.SQL(statement) if isinstance(statement, str) else statement, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema name for one test; the schema is dropped afterwards."""
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)
    schema = f"tickhub_test_{uuid.uuid4().hex[:12]}"
    yield schema
    pg_admin(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# --- backends -----------------------------------------------------------------------------------


class Backend:
    """Opens stores on one location and reaches into its database behind the store's back."""

    name: str
    schema_version: int
    database_error: type[Exception]

    def __init__(self) -> None:
        self.opened: list[AnyStore] = []

    def open(self, **kw: Any) -> AnyStore:
        store = self._open(**kw)
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self.opened:
            store.close()

    def _open(self, **kw: Any) -> AnyStore:
        raise NotImplementedError

    def fail_inserts(self, table: str, symbol: str) -> None:
        """Make the database itself fail an insert into ``table`` of ``symbol`` with 'boom'."""
        raise NotImplementedError

    def version_rows(self) -> list[tuple[int, int]]:
        raise NotImplementedError

    def set_version(self, version: int) -> None:
        raise NotImplementedError

    def drop_analysis_columns(self) -> None:
        """Take the alerts table back to its columns before analysis alerts."""
        raise NotImplementedError


class SqliteBackend(Backend):
    name = "sqlite"
    schema_version = lite.SCHEMA_VERSION
    database_error = sqlite3.DatabaseError

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _open(self, **kw: Any) -> AnyStore:
        return SqliteStore(self.path, **kw)

    def _execute(self, statement: str) -> list[Any]:
        conn = sqlite3.connect(self.path)
        try:
            with conn:
                return conn.execute(statement).fetchall()
        finally:
            conn.close()

    def fail_inserts(self, table: str, symbol: str) -> None:
        self._execute(
            f"CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} "
            f"WHEN NEW.symbol = '{symbol}' BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )

    def version_rows(self) -> list[tuple[int, int]]:
        return [tuple(row) for row in self._execute("SELECT id, version FROM schema_version")]

    def set_version(self, version: int) -> None:
        self._execute(f"UPDATE schema_version SET version = {version}")

    def drop_analysis_columns(self) -> None:
        for column in ANALYSIS_COLUMNS:
            self._execute(f"ALTER TABLE alerts DROP COLUMN {column}")


class PostgresBackend(Backend):
    name = "postgres"
    schema_version = pg.SCHEMA_VERSION
    database_error = psycopg.Error

    def __init__(self, schema: str) -> None:
        super().__init__()
        self.schema = schema
        self.id = sql.Identifier(schema)

    def _open(self, **kw: Any) -> AnyStore:
        return PostgresStore(PG_URL, schema=self.schema, **kw)

    def fail_inserts(self, table: str, symbol: str) -> None:
        pg_admin(
            sql.SQL(
                "CREATE OR REPLACE FUNCTION {s}.boom() RETURNS trigger LANGUAGE plpgsql "
                "AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$"
            ).format(s=self.id)
        )
        pg_admin(
            sql.SQL(
                "CREATE TRIGGER {name} BEFORE INSERT ON {s}.{table} FOR EACH ROW "
                "WHEN (NEW.symbol = {symbol}) EXECUTE FUNCTION {s}.boom()"
            ).format(
                name=sql.Identifier(f"fail_{table}"),
                s=self.id,
                table=sql.Identifier(table),
                symbol=sql.Literal(symbol),
            )
        )

    def version_rows(self) -> list[tuple[int, int]]:
        rows = pg_admin(sql.SQL("SELECT id, version FROM {}.schema_version").format(self.id))
        return [tuple(row) for row in rows]

    def set_version(self, version: int) -> None:
        pg_admin(sql.SQL("UPDATE {}.schema_version SET version = %s").format(self.id), (version,))

    def drop_analysis_columns(self) -> None:
        for column in ANALYSIS_COLUMNS:
            pg_admin(
                sql.SQL("ALTER TABLE {}.alerts DROP COLUMN {}").format(
                    self.id, sql.Identifier(column)
                )
            )


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b: Backend
    if request.param == "sqlite":
        b = SqliteBackend(tmp_path / "db" / "tickhub.db")
    else:
        b = PostgresBackend(request.getfixturevalue("pg_schema"))
    yield b
    b.close_all()


@pytest.fixture
def store(backend: Backend) -> AnyStore:
    return backend.open()


# --- rows ---------------------------------------------------------------------------------------


# --- schema -------------------------------------------------------------------------------------


def test_migrations_are_recorded_and_opening_again_changes_nothing(backend: Backend) -> None:
    store = backend.open()
    assert store.schema_version == backend.schema_version
    store.save_alert(alert())
    store.close()
    for _ in range(2):
        store = backend.open()
        assert store.schema_version == backend.schema_version
        assert store.load_alerts() == [alert()]
        store.close()
    assert backend.version_rows() == [(1, backend.schema_version)]


def test_a_newer_schema_is_refused(backend: Backend) -> None:
    backend.open().close()
    backend.set_version(99)
    with pytest.raises(RuntimeError, match="schema version 99 is newer"):
        backend.open()


def test_max_events_per_symbol_must_be_positive(backend: Backend) -> None:
    with pytest.raises(ValueError, match="max_events_per_symbol must be >= 1, got 0"):
        backend.open(max_events_per_symbol=0)


def test_calls_after_close_fail(store: AnyStore) -> None:
    store.close()
    with pytest.raises(Exception):  # noqa: B017 - each store has its own "closed" error
        store.load_positions()


# --- alerts and events --------------------------------------------------------------------------


def test_alerts_round_trip_every_field_in_first_saved_order(store: AnyStore) -> None:
    a = alert("a_1", owner="u", note="n", once=False)
    b = alert("a_2", symbol="TCS", condition="percent_change", value=0.1 + 0.2)
    builtin = alert(
        "builtin:TCS:breakout_high",
        symbol="TCS",
        condition="breakout_high",
        value=None,
        source="builtin",
        once=False,
    )
    for x in (a, b, builtin):
        store.save_alert(x)
    a2 = Alert(
        id="a_1",
        symbol="RELIANCE",
        condition="above",
        value=2500.0,
        owner="u",
        once=False,
        note="नोट ✓ 'quoted'",
        triggered=True,
        triggered_at=T0,
        price=2501.5,
        message="m",
        armed=False,
        last_price=2501.5,
        fire_count=3,
    )
    store.save_alert(a2)  # an update keeps its place
    loaded = store.load_alerts()
    assert loaded == [a2, b, builtin]
    assert [_fields(x) for x in loaded] == [_fields(x) for x in (a2, b, builtin)]
    assert loaded[0].triggered_at is not None
    assert loaded[0].triggered_at.utcoffset() == timedelta(hours=5, minutes=30)
    assert store.delete_alert("a_1") is True
    assert store.delete_alert("a_1") is False
    assert store.load_alerts() == [b, builtin]


def _fields(a: Alert) -> dict[str, Any]:
    """Every field with its type, so ``1 == 1.0 == True`` cannot hide a change."""
    return {f.name: (getattr(a, f.name), type(getattr(a, f.name)).__name__) for f in fields(a)}


def _analysis_alerts() -> list[Alert]:
    ema = parse_operand("ema:9", "indicator")
    band = parse_operand("BOLLINGER.UPPER:20,2", "other")
    assert not isinstance(ema, ProtocolError) and not isinstance(band, ProtocolError)
    crossing = Alert(
        id="a_ind",
        symbol="RELIANCE",
        condition="crosses_above",
        value=None,
        owner="u",
        once=False,
        rule=AnalysisRule(Interval.M5, ema, band, forming=True),
        triggered=True,
        triggered_at=T0,
        price=2501.5,
        message="RELIANCE 5m: EMA(9) 2501.20 crossed above Bollinger upper(20,2) 2500.10",
        last_candle=T0 - timedelta(minutes=5),
        values=(2501.2, 2500.1),
        fire_count=1,
    )
    pattern = Alert(
        id="a_pat",
        symbol="RELIANCE",
        condition="pattern",
        value=None,
        owner="u",
        rule=AnalysisRule(Interval.M15, pattern="engulfing", direction="bullish"),
    )
    return [crossing, pattern]


def test_analysis_alerts_round_trip_and_fire_with_their_state(store: AnyStore) -> None:
    crossing, pattern = _analysis_alerts()
    store.save_alert(alert("a_price", owner="u"))
    store.save_alert(pattern)
    e = AlertEvent(crossing, T0, 2501.5, crossing.message or "", "indicator")
    store.add_event(e)
    loaded = store.load_alerts()
    assert loaded == [alert("a_price", owner="u"), pattern, crossing]
    assert [_fields(x) for x in loaded[1:]] == [_fields(pattern), _fields(crossing)]
    assert loaded[2].rule is not None and loaded[2].rule.other is not None
    assert loaded[2].rule.other.canonical == "bollinger.upper:20,2"
    assert store.events("RELIANCE", "u", 10) == [e]


def test_a_table_from_before_analysis_alerts_gains_their_columns(backend: Backend) -> None:
    """A database made by the schema without the analysis columns: its alerts load as they
    were, the columns are added, and analysis alerts are saved there."""
    old = backend.open()
    old.save_alert(alert("a_old", owner="u"))
    old.close()
    backend.drop_analysis_columns()
    store = backend.open()
    assert store.load_alerts() == [alert("a_old", owner="u")]
    crossing, pattern = _analysis_alerts()
    store.save_alert(pattern)
    store.add_event(AlertEvent(crossing, T0, 2501.5, "m", "indicator"))
    assert backend.open().load_alerts() == [alert("a_old", owner="u"), pattern, crossing]


def test_a_naive_time_is_refused_before_writing(store: AnyStore) -> None:
    naive = replace(alert(), triggered_at=datetime(2025, 1, 27, 10, 0))
    with pytest.raises(ValueError, match="naive timestamp"):
        store.save_alert(naive)
    with pytest.raises(ValueError, match="naive timestamp"):
        store.add_event(AlertEvent(alert(), datetime(2025, 1, 27, 10, 0), 1.0, "m", "price"))
    assert store.load_alerts() == []
    assert store.events("RELIANCE", None, 10) == []


def test_add_event_saves_the_alert_state_with_the_event(store: AnyStore) -> None:
    a = alert(owner="u")
    store.save_alert(a)
    e = event(a)
    store.add_event(e)
    assert store.load_alerts() == [e.alert]
    (back,) = store.events("RELIANCE", "u", 10)
    assert back == e
    assert back.triggered_at.utcoffset() == T0.utcoffset()


def test_deleting_an_alert_keeps_its_events(store: AnyStore) -> None:
    a = alert(owner="u")
    e = event(a)
    store.add_event(e)
    assert store.delete_alert(a.id) is True
    assert store.load_alerts() == []
    assert store.events("RELIANCE", "u", 10) == [e]


def test_events_newest_first_filtered_by_owner_with_builtins(store: AnyStore) -> None:
    mine = alert("a_mine", owner="u")
    theirs = alert("a_theirs", owner="v")
    builtin = alert("builtin:RELIANCE:day_change_up", condition="day_change_up", source="builtin")
    other_symbol = alert("a_tcs", owner="u", symbol="TCS")
    for i, a in enumerate([mine, theirs, builtin, other_symbol, mine]):
        store.add_event(event(a, seconds=i))
    assert [(e.alert.id, e.triggered_at) for e in store.events("RELIANCE", "u", 10)] == [
        ("a_mine", T0 + timedelta(seconds=4)),
        ("builtin:RELIANCE:day_change_up", T0 + timedelta(seconds=2)),
        ("a_mine", T0),
    ]
    assert [e.alert.id for e in store.events("RELIANCE", None, 2)] == [
        "a_mine",
        "builtin:RELIANCE:day_change_up",
    ]
    assert store.events("RELIANCE", "u", 0) == []
    assert [e.alert.id for e in store.events("TCS", "v", 10)] == []


def test_events_keep_only_the_newest_per_symbol(backend: Backend) -> None:
    store = backend.open(max_events_per_symbol=3)
    a, b = alert("a_1"), alert("a_2", symbol="TCS")
    for i in range(5):
        store.add_event(event(a, seconds=i))
    store.add_event(event(b))
    times = [e.triggered_at for e in store.events("RELIANCE", None, 10)]
    assert times == [T0 + timedelta(seconds=s) for s in (4, 3, 2)]
    assert len(store.events("TCS", None, 10)) == 1


def test_a_failed_event_insert_leaves_the_alert_unchanged(backend: Backend) -> None:
    store = backend.open()
    a = alert(owner="u")
    store.save_alert(a)
    backend.fail_inserts("alert_events", "RELIANCE")
    with pytest.raises(backend.database_error, match="boom"):
        store.add_event(event(a))
    assert store.load_alerts() == [a]
    assert store.events("RELIANCE", None, 10) == []


# --- positions ----------------------------------------------------------------------------------


def test_positions_round_trip_with_exact_types(store: AnyStore) -> None:
    store.save_position(position())
    store.save_position(position("TCS", quantity=-5, average_price=Decimal("3999.95")))
    store.save_position(position("INFY", owner="v", product=None, exchange=None))
    store.save_position(position("BIG", owner="v", quantity=2**62, average_price="1E+3"))
    assert store.load_positions("u") == [
        position("RELIANCE"),
        position("TCS", quantity=-5, average_price="3999.95"),
    ]
    big, infy = store.load_positions("v")
    assert infy == position("INFY", owner="v", product=None, exchange=None)
    assert big == position("BIG", owner="v", quantity=2**62, average_price="1E+3")
    assert type(infy["quantity"]) is int and type(infy["average_price"]) is str
    assert [(r["owner"], r["symbol"]) for r in store.load_positions()] == [
        ("u", "RELIANCE"),
        ("u", "TCS"),
        ("v", "BIG"),
        ("v", "INFY"),
    ]


def test_positions_sort_bytewise_by_owner_then_symbol(store: AnyStore) -> None:
    for owner, symbol in [("b", "x"), ("", "Z"), ("B", "a"), ("", "M&M"), ("", "m"), ("ä", "A")]:
        store.save_position(position(symbol, owner=owner))
    assert [(r["owner"], r["symbol"]) for r in store.load_positions()] == [
        ("", "M&M"),
        ("", "Z"),
        ("", "m"),
        ("B", "a"),
        ("b", "x"),
        ("ä", "A"),
    ]


def test_save_position_upserts_by_owner_and_symbol(store: AnyStore) -> None:
    store.save_position(position())
    store.save_position(position(quantity=25, average_price="2460.1000"))
    assert store.load_positions("u") == [position(quantity=25, average_price="2460.1000")]


def test_optional_fields_default_to_none_and_datetimes_become_iso(store: AnyStore) -> None:
    row = {
        "owner": "",
        "symbol": "SBIN",
        "quantity": 1,
        "average_price": 800,
        "updated_at": datetime(2025, 1, 27, 4, 30, tzinfo=UTC),
    }
    store.save_position(row)
    assert store.load_positions("") == [
        {
            "owner": "",
            "symbol": "SBIN",
            "quantity": 1,
            "average_price": "800",
            "product": None,
            "exchange": None,
            "updated_at": "2025-01-27T04:30:00+00:00",
        }
    ]


def test_delete_position(store: AnyStore) -> None:
    store.save_position(position())
    assert store.delete_position("u", "RELIANCE") is True
    assert store.delete_position("u", "RELIANCE") is False
    assert store.load_positions() == []


def test_replace_positions_replaces_only_that_owner(store: AnyStore) -> None:
    store.save_position(position("RELIANCE"))
    store.save_position(position("TCS"))
    store.save_position(position("INFY", owner="v"))
    store.replace_positions("u", [position("SBIN"), {**position("HDFC"), "owner": "u"}])
    assert [r["symbol"] for r in store.load_positions("u")] == ["HDFC", "SBIN"]
    assert [r["symbol"] for r in store.load_positions("v")] == ["INFY"]
    without_owner = position("ITC")
    del without_owner["owner"]
    store.replace_positions("u", [without_owner])
    assert store.load_positions("u") == [position("ITC")]
    store.replace_positions("u", [])
    assert store.load_positions("u") == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quantity": "10"}, "quantity must be an int"),
        ({"quantity": 1.5}, "quantity must be an int"),
        ({"quantity": True}, "quantity must be an int"),
        ({"average_price": 2450.35}, "a float would round"),
        ({"average_price": "abc"}, "not a decimal"),
        ({"average_price": "NaN"}, "must be finite"),
        ({"average_price": None}, "average_price must be a Decimal"),
        ({"symbol": ""}, "symbol must be a non-empty string"),
        ({"owner": None}, "owner must be a string"),
        ({"product": 5}, "product must be a string or None"),
        ({"updated_at": "yesterday"}, "updated_at must be ISO 8601"),
        ({"updated_at": None}, "updated_at must be an ISO 8601 string"),
        ({"updated_at": datetime(2025, 1, 27, 10, 0)}, "naive timestamp"),
        ({"last_price": 2500.0}, "unknown position field: 'last_price'"),
    ],
)
def test_an_invalid_row_raises_and_changes_nothing(
    store: AnyStore, change: dict[str, object], message: str
) -> None:
    store.save_position(position())
    bad = {**position("TCS"), **change}
    with pytest.raises(ValueError, match=message):
        store.save_position(bad)
    with pytest.raises(ValueError, match=message):
        store.replace_positions("u", [position("SBIN"), bad, position("ITC")])
    assert store.load_positions() == [position()]


def test_replace_positions_rejects_other_owners_and_repeats(store: AnyStore) -> None:
    store.save_position(position())
    with pytest.raises(ValueError, match="position owner 'v' in a replace for 'u'"):
        store.replace_positions("u", [position("SBIN"), position("TCS", owner="v")])
    with pytest.raises(ValueError, match="repeated position symbol: 'SBIN'"):
        store.replace_positions("u", [position("SBIN"), position("SBIN", quantity=2)])
    with pytest.raises(ValueError, match="position owner must be a string"):
        store.replace_positions(None, [])  # type: ignore[arg-type]
    assert store.load_positions() == [position()]


def test_a_database_failure_mid_replace_rolls_everything_back(backend: Backend) -> None:
    store = backend.open()
    store.replace_positions("u", [position("RELIANCE"), position("TCS")])
    backend.fail_inserts("positions", "BOOM")
    with pytest.raises(backend.database_error, match="boom"):
        store.replace_positions("u", [position("SBIN"), position("BOOM"), position("ITC")])
    with pytest.raises(backend.database_error, match="boom"):
        store.save_position(position("BOOM"))
    assert [r["symbol"] for r in store.load_positions("u")] == ["RELIANCE", "TCS"]
    # The store is still usable after the rollback.
    store.replace_positions("u", [position("SBIN")])
    assert [r["symbol"] for r in store.load_positions("u")] == ["SBIN"]


# --- trades -------------------------------------------------------------------------------------


def trade_row(trade_id: str, seq: int, **kw: Any) -> dict[str, object]:
    row: dict[str, object] = {
        "owner": "u",
        "id": trade_id,
        "seq": seq,
        "symbol": "RELIANCE",
        "side": "buy",
        "quantity": 10,
        "price": "2500.05",
        "time": "2026-12-02T10:15:00+05:30",
        "product": "CNC",
        "exchange": "NSE",
    }
    row.update(kw)
    return row


def test_trades_round_trip_exactly_in_arrival_order(store: AnyStore) -> None:
    rows = [
        trade_row("b", 2, price="0.123456789012345678", side="sell"),
        trade_row("a", 1, owner="v", product=None, exchange=None, quantity=10**12),
        trade_row("c", 3, time="2026-12-01T23:59:59.250000+00:00"),
    ]
    for row in rows:
        store.add_trade(row)
    assert store.load_trades() == [rows[1], rows[0], rows[2]]
    assert store.load_trades("u") == [rows[0], rows[2]]
    assert store.load_trades("nobody") == []
    stored = store.load_trades("u")[0]
    assert type(stored["price"]) is str and type(stored["quantity"]) is int


def test_a_taken_trade_id_or_seq_is_refused_and_changes_nothing(store: AnyStore) -> None:
    store.add_trade(trade_row("a", 1))
    with pytest.raises(ValueError, match="not added"):
        store.add_trade(trade_row("a", 2, price="1"))
    with pytest.raises(ValueError, match="not added"):
        store.add_trade(trade_row("b", 1))
    store.add_trade(trade_row("a", 3, owner="v"))  # ids are per owner
    assert [(r["owner"], r["id"], r["price"]) for r in store.load_trades()] == [
        ("u", "a", "2500.05"),
        ("v", "a", "2500.05"),
    ]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"price": 2500.05}, "float would round"),
        ({"price": "NaN"}, "finite"),
        ({"quantity": 0}, "positive"),
        ({"quantity": True}, "positive"),
        ({"side": "hold"}, "side"),
        ({"time": "2026-12-02T10:15:00"}, "offset"),
        ({"id": ""}, "id"),
        ({"extra": 1}, "unknown trade field"),
    ],
)
def test_an_invalid_trade_row_raises_and_writes_nothing(
    store: AnyStore, change: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        store.add_trade(trade_row("a", 1, **change))
    assert store.load_trades() == []


def test_delete_trade_is_by_owner_and_id(store: AnyStore) -> None:
    store.add_trade(trade_row("a", 1))
    assert store.delete_trade("v", "a") is False
    assert store.delete_trade("u", "a") is True
    assert store.delete_trade("u", "a") is False
    assert store.load_trades() == []


def test_save_carried_writes_the_position_and_its_mark_together(store: AnyStore) -> None:
    store.save_carried("u", "TCS", position("TCS"), 7)
    store.save_carried("u", "TCS", position("TCS", quantity=-3), 9)  # both replaced
    store.save_carried("v", "SBIN", None, 2)  # no position row: flat from the mark on
    assert store.load_positions() == [position("TCS", quantity=-3)]
    assert store.load_trade_marks() == [
        {"owner": "u", "symbol": "TCS", "after_seq": 9},
        {"owner": "v", "symbol": "SBIN", "after_seq": 2},
    ]
    store.save_carried("u", "TCS", None, 11)
    assert store.load_positions("u") == []
    assert store.load_trade_marks("u") == [{"owner": "u", "symbol": "TCS", "after_seq": 11}]
    with pytest.raises(ValueError, match="given for"):
        store.save_carried("u", "ITC", position("TCS"), 12)
    with pytest.raises(ValueError, match="after_seq"):
        store.save_carried("u", "TCS", None, -1)
    assert store.load_trade_marks("u") == [{"owner": "u", "symbol": "TCS", "after_seq": 11}]


def test_a_database_failure_in_save_carried_rolls_the_mark_back(backend: Backend) -> None:
    store = backend.open()
    store.save_carried("u", "BOOM", None, 1)
    backend.fail_inserts("positions", "BOOM")
    with pytest.raises(backend.database_error, match="boom"):
        store.save_carried("u", "BOOM", position("BOOM"), 5)
    assert store.load_trade_marks() == [{"owner": "u", "symbol": "BOOM", "after_seq": 1}]
    assert store.load_positions() == []


def test_a_database_failure_on_a_trade_insert_writes_nothing(backend: Backend) -> None:
    store = backend.open()
    backend.fail_inserts("trades", "BOOM")
    with pytest.raises(backend.database_error, match="boom"):
        store.add_trade(trade_row("a", 1, symbol="BOOM"))
    assert store.load_trades() == []
    store.add_trade(trade_row("a", 1))
    assert len(store.load_trades()) == 1


def test_a_reopened_store_sees_trades_and_marks(backend: Backend) -> None:
    store = backend.open()
    store.add_trade(trade_row("a", 1))
    store.add_trade(trade_row("b", 2, side="sell", quantity=4))
    store.save_carried("u", "RELIANCE", position("RELIANCE"), 2)
    store.close()
    again = backend.open()
    assert again.load_trades() == [trade_row("a", 1), trade_row("b", 2, side="sell", quantity=4)]
    assert again.load_trade_marks() == [{"owner": "u", "symbol": "RELIANCE", "after_seq": 2}]
    assert again.load_positions() == [position("RELIANCE")]


# --- candles ------------------------------------------------------------------------------------


def test_max_candles_must_be_positive(backend: Backend) -> None:
    with pytest.raises(ValueError, match="max_candles must be >= 1, got 0"):
        backend.open(max_candles=0)


def test_candles_round_trip_exactly_oldest_first(store: AnyStore) -> None:
    saved = [closed_candle(m, price=2500.05 + m * 0.1, volume=m * 1000) for m in (2, 0, 1)]
    saved.append(closed_candle(0, symbol="TCS", price=3999.95))
    saved.append(closed_candle(0, interval=Interval.M5, price=2501.0))
    store.save_candles(saved)
    got = store.load_candles("RELIANCE", Interval.M1, limit=10)
    assert got == sorted(saved[:3], key=lambda c: c.start)
    assert all(c.start.utcoffset() == timedelta(hours=5, minutes=30) for c in got)
    assert store.load_candles("TCS", Interval.M1, limit=10) == [saved[3]]
    assert store.load_candles("RELIANCE", Interval.M5, limit=10) == [saved[4]]
    assert store.load_candles("INFY", Interval.M1, limit=10) == []


def test_saving_a_candle_again_replaces_it(store: AnyStore) -> None:
    store.save_candles([closed_candle(0, price=100.0)])
    store.save_candles([closed_candle(0, price=200.0, volume=7)])
    assert store.load_candles("RELIANCE", Interval.M1, limit=10) == [
        closed_candle(0, price=200.0, volume=7)
    ]


def test_candle_ranges_are_inclusive_and_limit_keeps_the_newest(store: AnyStore) -> None:
    store.save_candles([closed_candle(m) for m in range(10)])
    at = [T0 + timedelta(minutes=m) for m in range(10)]

    def starts(**kw: Any) -> list[datetime]:
        return [c.start for c in store.load_candles("RELIANCE", Interval.M1, **kw)]

    assert starts(start=at[2], end=at[5], limit=100) == at[2:6]
    assert starts(start=at[7], limit=100) == at[7:]
    assert starts(end=at[1], limit=100) == at[:2]
    assert starts(limit=3) == at[7:]
    assert starts(start=at[2], end=at[8], limit=2) == at[7:9]
    assert starts(start=at[5], end=at[4], limit=10) == []
    assert starts(limit=0) == []
    # Bounds in any zone: the instant counts, not the wall time.
    assert starts(start=at[3].astimezone(UTC), end=at[3].astimezone(UTC), limit=5) == [at[3]]


def test_a_forming_or_invalid_candle_raises_and_writes_nothing(store: AnyStore) -> None:
    forming = replace(closed_candle(1), closed=False)
    with pytest.raises(ValueError, match="only closed candles are stored"):
        store.save_candles([closed_candle(0), forming])
    with pytest.raises(ValueError, match="volume must be a non-negative int"):
        store.save_candles([closed_candle(0), replace(closed_candle(1), volume=-1)])
    with pytest.raises(ValueError, match="close must be a finite number"):
        store.save_candles([replace(closed_candle(1), close=float("nan"))])
    with pytest.raises(ValueError, match="naive timestamp"):
        store.save_candles([replace(closed_candle(1), start=datetime(2025, 1, 27, 10, 0))])
    assert store.load_candles("RELIANCE", Interval.M1, limit=10) == []


def test_candles_keep_only_the_newest_per_symbol_and_interval(backend: Backend) -> None:
    store = backend.open(max_candles=3)
    store.save_candles([closed_candle(m) for m in range(5)])
    store.save_candles([closed_candle(m, symbol="TCS") for m in range(2)])
    store.save_candles([closed_candle(5), closed_candle(0, interval=Interval.M5)])
    assert store.load_candles("RELIANCE", Interval.M1, limit=100) == [
        closed_candle(m) for m in (3, 4, 5)
    ]
    assert len(store.load_candles("TCS", Interval.M1, limit=100)) == 2
    assert store.load_candles("RELIANCE", Interval.M5, limit=100) == [
        closed_candle(0, interval=Interval.M5)
    ]


def test_a_database_failure_mid_candle_batch_rolls_it_back(backend: Backend) -> None:
    store = backend.open()
    store.save_candles([closed_candle(0)])
    backend.fail_inserts("candles", "BOOM")
    with pytest.raises(backend.database_error, match="boom"):
        store.save_candles([closed_candle(1), closed_candle(1, symbol="BOOM"), closed_candle(2)])
    assert store.load_candles("RELIANCE", Interval.M1, limit=10) == [closed_candle(0)]
    store.save_candles([closed_candle(1)])
    assert len(store.load_candles("RELIANCE", Interval.M1, limit=10)) == 2


def _reference(
    saved: list[Candle],
    symbol: str,
    interval: Interval,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[Candle]:
    """What the contract says a store answers, in plain Python: the last write of a key wins."""
    latest = {(c.symbol, c.interval, c.start): c for c in saved}
    found = sorted(
        (
            c
            for c in latest.values()
            if c.symbol == symbol
            and c.interval == interval
            and (start is None or c.start >= start)
            and (end is None or c.start <= end)
        ),
        key=lambda c: c.start,
    )
    return found[-limit:] if limit > 0 else []


def test_stores_answer_range_queries_as_the_reference_does(backend: Backend) -> None:
    rng = random.Random(7)
    store = backend.open()
    saved: list[Candle] = []
    for _ in range(6):
        batch = [
            closed_candle(
                rng.randrange(40),
                symbol=rng.choice(("RELIANCE", "TCS")),
                interval=rng.choice((Interval.M1, Interval.M15)),
                price=round(rng.uniform(100, 3000), 2),
                volume=rng.randrange(10**9),
            )
            for _ in range(30)
        ]
        store.save_candles(batch)
        saved += batch
    for _ in range(60):
        symbol = rng.choice(("RELIANCE", "TCS", "INFY"))
        interval = rng.choice((Interval.M1, Interval.M15))
        lo = T0 + rng.randrange(-5, 40) * interval.delta if rng.random() < 0.7 else None
        hi = T0 + rng.randrange(-5, 45) * interval.delta if rng.random() < 0.7 else None
        limit = rng.randrange(0, 50)
        got = store.load_candles(symbol, interval, start=lo, end=hi, limit=limit)
        assert got == _reference(saved, symbol, interval, lo, hi, limit), (symbol, lo, hi, limit)


# --- restart ------------------------------------------------------------------------------------


def test_a_reopened_store_sees_everything(backend: Backend) -> None:
    store = backend.open()
    a, b = alert("a_1", owner="u"), alert("a_2", symbol="TCS")
    store.save_alert(a)
    store.save_alert(b)
    e = event(a)
    store.add_event(e)
    store.replace_positions("u", [position("SBIN"), position("ITC", quantity=-3)])
    store.save_position(position("INFY", owner="v"))
    store.save_candles([closed_candle(0), closed_candle(1)])
    store.close()

    again = backend.open()
    assert again.load_candles("RELIANCE", Interval.M1, limit=5) == [
        closed_candle(0),
        closed_candle(1),
    ]
    assert again.load_alerts() == [e.alert, b]
    assert again.events("RELIANCE", None, 10) == [e]
    assert again.load_positions() == [
        position("ITC", quantity=-3),
        position("SBIN"),
        position("INFY", owner="v"),
    ]


# --- PostgreSQL only ----------------------------------------------------------------------------


def test_open_store_opens_postgres_urls(pg_schema: str) -> None:
    store = open_store(pg_url(pg_schema))
    try:
        assert isinstance(store, PostgresStore)
        assert store.schema == pg_schema
        store.save_position(position())
    finally:
        store.close()
    for scheme in ("postgres://", "postgresql+psycopg://"):
        other = open_store(pg_url(pg_schema).replace("postgresql://", scheme, 1))
        try:
            assert isinstance(other, PostgresStore)
            assert other.load_positions() == [position()]
        finally:
            other.close()


def test_two_stores_on_one_schema_share_everything(pg_schema: str) -> None:
    with (
        PostgresStore(PG_URL, schema=pg_schema) as a,
        PostgresStore(PG_URL, schema=pg_schema) as b,
    ):
        a.save_position(position())
        assert b.load_positions() == [position()]
        b.add_event(event(alert()))
        assert a.load_alerts() == [event(alert()).alert]


def test_processes_opening_a_new_schema_at_once_migrate_it_once(pg_schema: str) -> None:
    barrier = threading.Barrier(4)
    opened: list[PostgresStore] = []
    errors: list[BaseException] = []

    def open_() -> None:
        barrier.wait()
        try:
            opened.append(PostgresStore(PG_URL, schema=pg_schema))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for s in opened:
        s.close()
    assert errors == []
    assert len(opened) == 4


def test_opening_a_current_schema_writes_nothing(pg_schema: str) -> None:
    PostgresStore(PG_URL, schema=pg_schema).close()
    read_only = pg_url(pg_schema, options="-c%20default_transaction_read_only%3Don")
    with PostgresStore(read_only) as store:
        assert store.load_positions() == []
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            store.save_position(position())


def test_schema_names_are_quoted(pg_schema: str) -> None:
    odd = f'Odd "{pg_schema}"; --'
    try:
        with PostgresStore(PG_URL, schema=odd) as store:
            store.save_position(position())
            assert store.load_positions() == [position()]
        with PostgresStore(PG_URL, schema=odd) as store:
            assert store.load_positions() == [position()]
    finally:
        pg_admin(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(odd)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "mysql://u:s3cret@h/db"}, r"unsupported PostgreSQL url: mysql://"),
        ({"url": "postgresql+asyncpg://u:s3cret@h/db"}, r"url: postgresql\+asyncpg://"),
        ({"url": "postgresql://u:s3cret@[::1/db"}, r"invalid PostgreSQL url: postgresql://\*\*\*"),
        ({"schema": ""}, "invalid schema name: ''"),
        ({"schema": "x" * 64}, "schema name longer than 63 bytes"),
        ({"url": "postgresql://h/db?schema=a", "schema": "b"}, "schema 'b' given, but the url"),
    ],
)
def test_bad_urls_and_schemas_raise_without_the_password(
    kwargs: dict[str, Any], message: str
) -> None:
    url = kwargs.pop("url", "postgresql://u:s3cret@127.0.0.1:1/db")
    with pytest.raises(ValueError, match=message) as info:
        PostgresStore(url, **kwargs)
    assert "s3cret" not in str(info.value)


def test_an_unreachable_server_raises_without_the_password() -> None:
    for url in (
        "postgresql://u:s3cret@127.0.0.1:1/db?connect_timeout=2",
        "postgres://127.0.0.1:1/db?password=s3cret&sslpassword=s3cret2",
    ):
        with pytest.raises(StoreUnavailableError, match="open: cannot connect to ") as info:
            PostgresStore(url)
        assert "s3cret" not in str(info.value)
        assert "\n" not in str(info.value)
        assert info.value.__cause__ is None


def test_redact_url() -> None:
    assert redact_url("postgresql://u:p%40ss@h:5432,h2/db?sslpassword=x&sslmode=require") == (
        "postgresql://u:***@h:5432,h2/db?sslpassword=***&sslmode=require"
    )
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


def _secret_url(schema: str) -> tuple[str, str]:
    """A URL to ``schema`` with a password in it (ignored under trust auth) and that password."""
    password = conninfo_to_dict(PG_URL).get("password")
    if password:
        return pg_url(schema), str(password)
    return pg_url(schema, password="s3cret-pw"), "s3cret-pw"


def _kill(store: PostgresStore) -> None:
    """End the store's session from the server side, as a server restart would."""
    assert store._conn is not None
    # The timeout makes it wait until the session is gone.
    pg_admin("SELECT pg_terminate_backend(%s, 5000)", (store._conn.info.backend_pid,))


def test_a_lost_connection_is_reopened_for_reads_and_writes(
    pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    url, secret = _secret_url(pg_schema)
    with PostgresStore(url) as store:
        assert secret not in repr(store)
        store.save_position(position())
        _kill(store)
        caplog.set_level(logging.WARNING, logger="tickhub.store.postgres")
        assert store.load_positions() == [position()]
        assert "lost during load_positions" in caplog.text
        # A write whose connection died before BEGIN completed is safe to run again.
        _kill(store)
        store.save_position(position("TCS"))
        assert "lost during save_position" in caplog.text
        _kill(store)
        assert store.events("RELIANCE", None, 10) == []
        assert [r["symbol"] for r in store.load_positions()] == ["RELIANCE", "TCS"]
        assert secret not in caplog.text


def test_a_connection_lost_mid_write_raises_naming_the_operation(pg_schema: str) -> None:
    url, secret = _secret_url(pg_schema)
    with PostgresStore(url) as store:
        store.replace_positions("u", [position("RELIANCE"), position("TCS")])
        s = sql.Identifier(pg_schema)
        pg_admin(
            sql.SQL(
                "CREATE FUNCTION {s}.die() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$"
            ).format(s=s)
        )
        pg_admin(
            sql.SQL(
                "CREATE TRIGGER die BEFORE INSERT ON {s}.positions FOR EACH ROW "
                "WHEN (NEW.symbol = 'DIE') EXECUTE FUNCTION {s}.die()"
            ).format(s=s)
        )
        with pytest.raises(
            StoreUnavailableError, match=r"replace_positions: connection to .* lost; the write"
        ) as info:
            store.replace_positions("u", [position("SBIN"), position("DIE"), position("ITC")])
        assert secret not in str(info.value)
        # The next call reconnects; the transaction never committed.
        assert [r["symbol"] for r in store.load_positions("u")] == ["RELIANCE", "TCS"]


def test_concurrent_replaces_for_one_owner_never_merge(pg_schema: str) -> None:
    """The second replace waits for the first and then replaces its rows, not just the old ones."""
    app = f"tickhub_test_{uuid.uuid4().hex[:8]}"
    url = pg_url(pg_schema, application_name=app)
    with PostgresStore(url) as first, PostgresStore(url) as second:
        first.replace_positions("u", [position("OLD")])
        s = sql.Identifier(pg_schema)
        pg_admin(
            sql.SQL(
                "CREATE FUNCTION {s}.hold() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "PERFORM pg_advisory_xact_lock(4242); RETURN NEW; END $$"
            ).format(s=s)
        )
        pg_admin(
            sql.SQL(
                "CREATE TRIGGER hold BEFORE INSERT ON {s}.positions FOR EACH ROW "
                "WHEN (NEW.symbol = 'HOLD') EXECUTE FUNCTION {s}.hold()"
            ).format(s=s)
        )
        errors: list[BaseException] = []

        def run(store: PostgresStore, rows: list[dict[str, object]]) -> None:
            try:
                store.replace_positions("u", rows)
            except BaseException as exc:
                errors.append(exc)

        with psycopg.connect(PG_URL, autocommit=True) as gate:
            gate.execute("SELECT pg_advisory_lock(4242)")
            a = threading.Thread(target=run, args=(first, [position("HOLD"), position("A")]))
            a.start()
            _wait_for_waiting(gate, app, 1)  # the first replace is held after its DELETE
            b = threading.Thread(target=run, args=(second, [position("B")]))
            b.start()
            _wait_for_waiting(gate, app, 2)  # and the second one waits for it
            gate.execute("SELECT pg_advisory_unlock(4242)")
            a.join(10)
            b.join(10)
        assert errors == []
        assert [r["symbol"] for r in first.load_positions("u")] == ["B"]


def _wait_for_waiting(conn: psycopg.Connection[Any], app: str, sessions: int) -> None:
    """Until ``sessions`` sessions of ``app`` wait for a lock (polling the server's own view)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = %s AND wait_event_type = 'Lock'",
            (app,),
        ).fetchone()
        if row is not None and row[0] >= sessions:
            return
        time.sleep(0.01)
    raise AssertionError(f"{sessions} sessions of {app} never waited for a lock")
