"""The store: schema and migrations, alerts and events, positions, all-or-nothing writes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tickhub.alerts import Alert, AlertEvent
from tickhub.model import IST
from tickhub.store import Store, open_store
from tickhub.store.sqlite import SCHEMA_VERSION, SqliteStore

T0 = datetime(2025, 1, 27, 10, 0, tzinfo=IST)


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    path = tmp_path / "db" / "tickhub.db" if request.param == "file" else ":memory:"
    s = SqliteStore(path)
    yield s
    s.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "tickhub.db"


def alert(id: str = "a_000000000001", **kw: object) -> Alert:
    base: dict[str, object] = {"symbol": "RELIANCE", "condition": "above", "value": 2500.0}
    base.update(kw)
    return Alert(id=id, **base)  # type: ignore[arg-type]


def event(a: Alert, seconds: int = 0, price: float = 2510.0) -> AlertEvent:
    ts = T0 + timedelta(seconds=seconds)
    fired = Alert(
        id=a.id,
        symbol=a.symbol,
        condition=a.condition,
        value=a.value,
        owner=a.owner,
        once=a.once,
        note=a.note,
        source=a.source,
        triggered=True,
        triggered_at=ts,
        price=price,
        message=f"{a.symbol} at {price:.2f}",
        armed=False,
        last_price=price,
        fire_count=a.fire_count + 1,
    )
    return AlertEvent(fired, ts, price, fired.message or "", fired.category)


def position(symbol: str = "RELIANCE", owner: str = "u", **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "owner": owner,
        "symbol": symbol,
        "quantity": 10,
        "average_price": "2450.35",
        "product": "CNC",
        "exchange": "NSE",
        "updated_at": "2025-01-27T10:00:00+05:30",
    }
    row.update(kw)
    return row


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


def test_a_newer_schema_is_refused(path: Path) -> None:
    SqliteStore(path).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE schema_version SET version = 99")
    conn.close()
    with pytest.raises(RuntimeError, match="schema version 99 is newer"):
        SqliteStore(path)


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


def test_add_event_saves_the_alert_state_with_the_event(store: Store) -> None:
    a = alert(owner="u")
    store.save_alert(a)
    e = event(a)
    store.add_event(e)
    assert store.load_alerts() == [e.alert]
    (back,) = store.events("RELIANCE", "u", 10)
    assert back == e
    assert back.triggered_at == T0


def test_events_newest_first_filtered_by_owner_with_builtins(store: Store) -> None:
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


def test_events_keep_only_the_newest_per_symbol(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "t.db", max_events_per_symbol=3) as store:
        a, b = alert("a_1"), alert("a_2", symbol="TCS")
        for i in range(5):
            store.add_event(event(a, seconds=i))
        store.add_event(event(b))
        times = [e.triggered_at for e in store.events("RELIANCE", None, 10)]
        assert times == [T0 + timedelta(seconds=s) for s in (4, 3, 2)]
        assert len(store.events("TCS", None, 10)) == 1


def test_a_failed_event_insert_leaves_the_alert_unchanged(path: Path) -> None:
    with SqliteStore(path) as store:
        a = alert(owner="u")
        store.save_alert(a)
        _fail_inserts(path, "alert_events", "NEW.symbol = 'RELIANCE'")
        with pytest.raises(sqlite3.DatabaseError, match="boom"):
            store.add_event(event(a))
        assert store.load_alerts() == [a]
        assert store.events("RELIANCE", None, 10) == []


# --- positions ----------------------------------------------------------------------------------


def test_positions_round_trip_with_exact_types(store: Store) -> None:
    store.save_position(position())
    store.save_position(position("TCS", quantity=-5, average_price=Decimal("3999.95")))
    store.save_position(position("INFY", owner="v", product=None, exchange=None))
    assert store.load_positions("u") == [
        position("RELIANCE"),
        position("TCS", quantity=-5, average_price="3999.95"),
    ]
    (row,) = store.load_positions("v")
    assert row == position("INFY", owner="v", product=None, exchange=None)
    assert isinstance(row["quantity"], int) and isinstance(row["average_price"], str)
    assert [(r["owner"], r["symbol"]) for r in store.load_positions()] == [
        ("u", "RELIANCE"),
        ("u", "TCS"),
        ("v", "INFY"),
    ]


def test_save_position_upserts_by_owner_and_symbol(store: Store) -> None:
    store.save_position(position())
    store.save_position(position(quantity=25, average_price="2460.1000"))
    assert store.load_positions("u") == [position(quantity=25, average_price="2460.1000")]


def test_optional_fields_default_to_none_and_datetimes_become_iso(store: Store) -> None:
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


def test_delete_position(store: Store) -> None:
    store.save_position(position())
    assert store.delete_position("u", "RELIANCE") is True
    assert store.delete_position("u", "RELIANCE") is False
    assert store.load_positions() == []


def test_replace_positions_replaces_only_that_owner(store: Store) -> None:
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


def test_replace_positions_rejects_other_owners_and_repeats(store: Store) -> None:
    store.save_position(position())
    with pytest.raises(ValueError, match="position owner 'v' in a replace for 'u'"):
        store.replace_positions("u", [position("SBIN"), position("TCS", owner="v")])
    with pytest.raises(ValueError, match="repeated position symbol: 'SBIN'"):
        store.replace_positions("u", [position("SBIN"), position("SBIN", quantity=2)])
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
