"""The store: schema and migrations, alerts and events, positions, all-or-nothing writes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.fakes import T0, alert, position
from tickhub.core import defaults
from tickhub.engines.alerts import Alert
from tickhub.store import Store, open_store, rows
from tickhub.store.sqlite import SCHEMA_VERSION, SqliteStore


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    path = tmp_path / "db" / "tickhub.db" if request.param == "file" else ":memory:"
    s = SqliteStore(path)
    yield s
    s.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "tickhub.db"


# --- schema -------------------------------------------------------------------------------------


def test_creates_the_parent_directory_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "tickhub.db"
    with SqliteStore(path) as store:
        assert path.exists()
        # synchronous is per connection: read it on the store's own.
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    other = sqlite3.connect(path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()


def test_schema_version_is_recorded_and_migrations_run_once(path: Path) -> None:
    with SqliteStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        store.save_alert(alert())
    for _ in range(2):
        with SqliteStore(path) as store:
            assert store.schema_version == SCHEMA_VERSION
            assert store.load_alerts() == [alert()]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT id, version FROM schema_version").fetchall() == [
        (1, SCHEMA_VERSION)
    ]
    conn.close()


# --- alerts and events --------------------------------------------------------------------------


def test_alerts_round_trip_in_first_saved_order(store: Store) -> None:
    a = alert("a_1", owner="u", note="n", once=False)
    b = alert("a_2", symbol="TCS", condition="percent_change", value=2.5)
    store.save_alert(a)
    store.save_alert(b)
    a2 = Alert(
        id="a_1",
        symbol="RELIANCE",
        condition="above",
        value=2500.0,
        owner="u",
        once=False,
        note="n",
        triggered=True,
        triggered_at=T0,
        price=2501.5,
        message="m",
        armed=False,
        last_price=2501.5,
        fire_count=3,
    )
    store.save_alert(a2)  # an update keeps its place
    assert store.load_alerts() == [a2, b]
    assert store.delete_alert("a_1") is True
    assert store.delete_alert("a_1") is False
    assert store.load_alerts() == [b]


# --- positions ----------------------------------------------------------------------------------


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
def test_invalid_position_rows_raise_before_writing(
    store: Store, change: dict[str, object], message: str
) -> None:
    store.save_position(position())
    bad = {**position("TCS"), **change}
    with pytest.raises(ValueError, match=message):
        store.save_position(bad)
    with pytest.raises(ValueError, match=message):
        store.replace_positions("u", [position("SBIN"), bad, position("ITC")])
    assert store.load_positions() == [position()]


def _fail_inserts(path: Path, table: str, when: str) -> None:
    """Make SQLite itself fail an insert into ``table`` (from another connection)."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            f"CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} WHEN {when} "
            "BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
    conn.close()


def test_a_sqlite_failure_mid_replace_rolls_everything_back(path: Path) -> None:
    with SqliteStore(path) as store:
        store.replace_positions("u", [position("RELIANCE"), position("TCS")])
        _fail_inserts(path, "positions", "NEW.symbol = 'BOOM'")
        with pytest.raises(sqlite3.DatabaseError, match="boom"):
            store.replace_positions("u", [position("SBIN"), position("BOOM"), position("ITC")])
        assert [r["symbol"] for r in store.load_positions("u")] == ["RELIANCE", "TCS"]
        # The store is still usable after the rollback.
        store.replace_positions("u", [position("SBIN")])
        assert [r["symbol"] for r in store.load_positions("u")] == ["SBIN"]


def test_positions_survive_a_reopen(path: Path) -> None:
    with SqliteStore(path) as store:
        store.save_position(position())
    with SqliteStore(path) as store:
        assert store.load_positions() == [position()]


# --- open_store ---------------------------------------------------------------------------------


def test_open_store_accepts_sqlite_urls_and_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cases = {
        "sqlite:///rel/a.db": tmp_path / "rel" / "a.db",
        f"sqlite:///{tmp_path / 'abs' / 'b.db'}": tmp_path / "abs" / "b.db",
        str(tmp_path / "plain" / "c.db"): tmp_path / "plain" / "c.db",
        "d.db": tmp_path / "d.db",
    }
    for url, expected in cases.items():
        store = open_store(url)
        store.save_position(position())
        store.close()
        assert expected.exists(), url
    memory = open_store("sqlite://")
    memory.save_position(position())
    assert memory.load_positions() == [position()]
    memory.close()


def test_open_store_rejects_other_schemes_without_echoing_secrets() -> None:
    with pytest.raises(ValueError, match="unsupported store url: redis://") as info:
        open_store("redis://:secret@localhost/0")
    assert "secret" not in str(info.value)


# --- row codecs ---------------------------------------------------------------------------------


def test_the_row_codecs_round_trip_an_alert_in_column_order() -> None:
    fired = alert(
        triggered=True, triggered_at=T0, price=2510.0, message="m", armed=False, fire_count=2
    )
    fields = rows.alert_fields(fired)
    assert tuple(fields) == rows.ALERT_COLUMNS
    assert rows.alert_from_row(fields) == fired
    with pytest.raises(ValueError, match="naive"):
        rows.alert_fields(alert(triggered_at=datetime(2025, 1, 27, 10, 0)))
    with pytest.raises(ValueError, match="unknown alert category"):
        rows.category_of("moon")


def test_the_defaults_bound_the_events_kept(path: Path) -> None:
    with SqliteStore(path) as store:
        assert store.max_events_per_symbol == defaults.MAX_EVENTS_PER_SYMBOL
