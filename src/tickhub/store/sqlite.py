"""The SQLite store: one local file, stdlib ``sqlite3``, WAL journal, ``synchronous=NORMAL``.

Limits: one file on a local disk, so one gateway process at a time writes it (WAL lets readers in
other processes work alongside). With ``synchronous=NORMAL`` a power cut may lose the last
committed transactions but never corrupts the file; an application crash loses nothing.

Each write is one ``BEGIN IMMEDIATE ... COMMIT`` under a lock (the connection may be used from
several threads); any error rolls it back. The schema version lives in ``schema_version``;
migrations run at open, each exactly once, in one transaction, and opening a file written by a
newer tickhub raises ``RuntimeError``. Datetimes are stored as ISO 8601 with their offset.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from tickhub.core import defaults
from tickhub.core.model import Candle, Interval
from tickhub.engines.alerts import Alert, AlertEvent
from tickhub.store.base import ClosedOnExit, MarkRow, PositionRow, TradeRow
from tickhub.store.candle_rows import CANDLE_COLUMNS, candle_from_row, candle_values, epoch_of
from tickhub.store.rows import (
    ALERT_COLUMNS,
    ANALYSIS_COLUMNS,
    POSITION_COLUMNS,
    alert_fields,
    alert_from_row,
    event_from_row,
    event_values,
    position_values,
    replacement_values,
)
from tickhub.store.trade_rows import MARK_COLUMNS, TRADE_COLUMNS, carried_values, trade_values

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS alerts (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            symbol TEXT NOT NULL,
            condition TEXT NOT NULL,
            value REAL,
            once INTEGER NOT NULL,
            note TEXT,
            source TEXT NOT NULL CHECK (source IN ('user', 'builtin')),
            triggered INTEGER NOT NULL,
            triggered_at TEXT,
            price REAL,
            message TEXT,
            armed INTEGER NOT NULL,
            last_price REAL,
            fire_count INTEGER NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS alerts_by_symbol ON alerts (symbol)",
        """CREATE TABLE IF NOT EXISTS alert_events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id TEXT NOT NULL,
            symbol TEXT NOT NULL,
            owner TEXT NOT NULL,
            source TEXT NOT NULL,
            category TEXT NOT NULL,
            triggered_at TEXT NOT NULL,
            price REAL NOT NULL,
            message TEXT NOT NULL,
            alert TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS alert_events_by_symbol ON alert_events (symbol, seq)",
        """CREATE TABLE IF NOT EXISTS positions (
            owner TEXT NOT NULL,
            symbol TEXT NOT NULL,
            quantity INTEGER NOT NULL,
            average_price TEXT NOT NULL,
            product TEXT,
            exchange TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (owner, symbol)
        )""",
    ),
    (
        """CREATE TABLE IF NOT EXISTS candles (
            symbol TEXT NOT NULL,
            interval TEXT NOT NULL,
            start INTEGER NOT NULL,
            open REAL NOT NULL,
            high REAL NOT NULL,
            low REAL NOT NULL,
            close REAL NOT NULL,
            volume INTEGER NOT NULL,
            PRIMARY KEY (symbol, interval, start)
        ) WITHOUT ROWID""",
    ),
    (
        """CREATE TABLE IF NOT EXISTS trades (
            owner TEXT NOT NULL,
            id TEXT NOT NULL,
            seq INTEGER NOT NULL UNIQUE,
            symbol TEXT NOT NULL,
            side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
            quantity INTEGER NOT NULL,
            price TEXT NOT NULL,
            time TEXT NOT NULL,
            product TEXT,
            exchange TEXT,
            PRIMARY KEY (owner, id)
        )""",
        """CREATE TABLE IF NOT EXISTS trade_marks (
            owner TEXT NOT NULL,
            symbol TEXT NOT NULL,
            after_seq INTEGER NOT NULL,
            PRIMARY KEY (owner, symbol)
        )""",
    ),
)
"""Migration ``i`` (0-based) takes the schema from version ``i`` to ``i + 1``; append only."""

SCHEMA_VERSION = len(_MIGRATIONS)


class SqliteStore(ClosedOnExit):
    """:class:`~tickhub.store.base.Store` over one SQLite file (``":memory:"`` for a private one).

    Creates the parent directory. Keeps at most ``max_events_per_symbol`` events per symbol and
    ``max_candles`` candles per symbol and interval.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        max_events_per_symbol: int = defaults.MAX_EVENTS_PER_SYMBOL,
        max_candles: int = defaults.CANDLE_RETENTION_ROWS,
    ) -> None:
        if max_events_per_symbol < 1:
            raise ValueError(f"max_events_per_symbol must be >= 1, got {max_events_per_symbol}")
        if max_candles < 1:
            raise ValueError(f"max_candles must be >= 1, got {max_candles}")
        self.path = str(path)
        self.max_events_per_symbol = max_events_per_symbol
        self.max_candles = max_candles
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) in ``_write``.
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            busy_ms = round(defaults.SQLITE_BUSY_TIMEOUT * 1000)
            self._conn.execute(f"PRAGMA busy_timeout={busy_ms}")
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @property
    def schema_version(self) -> int:
        with self._lock:
            return _version(self._conn)

    # --- transactions and schema ----------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One all-or-nothing transaction."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _migrate(self) -> None:
        with self._write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
            )
            current = _version(conn)
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"store schema version {current} is newer than this tickhub's "
                    f"({SCHEMA_VERSION}): {self.path}"
                )
            for statements in _MIGRATIONS[current:]:
                for statement in statements:
                    conn.execute(statement)
            # Analysis alerts' columns: added to a table made before them, whatever its version
            # (nullable, so every existing row is a price or built-in alert as before).
            have = {row[1] for row in conn.execute("PRAGMA table_info(alerts)")}
            for column in ANALYSIS_COLUMNS:
                if column not in have:
                    conn.execute(f"ALTER TABLE alerts ADD COLUMN {column} TEXT")
            conn.execute(
                "INSERT INTO schema_version (id, version) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                (SCHEMA_VERSION,),
            )

    # --- alerts ---------------------------------------------------------------------------------

    def load_alerts(self) -> list[Alert]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts ORDER BY rowid"
            ).fetchall()
        return [alert_from_row(row) for row in rows]

    def save_alert(self, alert: Alert) -> None:
        values = _alert_values(alert)
        with self._write() as conn:
            _upsert_alert(conn, values)

    def delete_alert(self, id: str) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM alerts WHERE id = ?", (id,)).rowcount > 0

    def add_event(self, event: AlertEvent) -> None:
        symbol = event.alert.symbol
        values = _alert_values(event.alert)
        row = event_values(event, json.dumps(dict(zip(ALERT_COLUMNS, values, strict=True))))
        with self._write() as conn:
            _upsert_alert(conn, values)
            conn.execute(
                "INSERT INTO alert_events (alert_id, symbol, owner, source, category, "
                "triggered_at, price, message, alert) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            conn.execute(
                "DELETE FROM alert_events WHERE symbol = ? AND seq <= (SELECT seq FROM "
                "alert_events WHERE symbol = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (symbol, symbol, self.max_events_per_symbol),
            )

    def events(self, symbol: str, owner: str | None, limit: int) -> list[AlertEvent]:
        if limit <= 0:
            return []
        query = "SELECT category, triggered_at, price, message, alert FROM alert_events "
        params: tuple[object, ...]
        if owner is None:
            query += "WHERE symbol = ? ORDER BY seq DESC LIMIT ?"
            params = (symbol, limit)
        else:
            query += (
                "WHERE symbol = ? AND (source = 'builtin' OR owner = ?) ORDER BY seq DESC LIMIT ?"
            )
            params = (symbol, owner, limit)
        with self._lock:
            rows = self._conn.execute(query, params).fetchall()
        return [event_from_row(row) for row in rows]

    def _owned(
        self, table: str, columns: Sequence[str], order: str, owner: str | None
    ) -> list[dict[str, object]]:
        """The rows of ``table`` (of ``owner``, or every owner's), as dicts of ``columns``."""
        query = f"SELECT {', '.join(columns)} FROM {table}"
        params: tuple[object, ...] = ()
        if owner is not None:
            query += " WHERE owner = ?"
            params = (owner,)
        with self._lock:
            rows = self._conn.execute(f"{query} ORDER BY {order}", params).fetchall()
        return [{key: row[key] for key in columns} for row in rows]

    # --- positions ------------------------------------------------------------------------------

    def load_positions(self, owner: str | None = None) -> list[PositionRow]:
        return self._owned("positions", POSITION_COLUMNS, "owner, symbol", owner)

    def save_position(self, row: PositionRow) -> None:
        values = position_values(row)
        with self._write() as conn:
            conn.execute(_UPSERT_POSITION, values)

    def delete_position(self, owner: str, symbol: str) -> bool:
        with self._write() as conn:
            cursor = conn.execute(
                "DELETE FROM positions WHERE owner = ? AND symbol = ?", (owner, symbol)
            )
            return cursor.rowcount > 0

    def replace_positions(self, owner: str, rows: list[PositionRow]) -> None:
        values = replacement_values(owner, rows)
        with self._write() as conn:
            conn.execute("DELETE FROM positions WHERE owner = ?", (owner,))
            for v in values:
                conn.execute(_UPSERT_POSITION, v)

    # --- trades ---------------------------------------------------------------------------------

    def load_trades(self, owner: str | None = None) -> list[TradeRow]:
        return self._owned("trades", TRADE_COLUMNS, "seq", owner)

    def add_trade(self, row: TradeRow) -> None:
        values = trade_values(row)
        try:
            with self._write() as conn:
                conn.execute(_INSERT_TRADE, values)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" not in str(exc):
                raise
            raise ValueError(f"trade {values[0]!r}/{values[1]!r} not added: {exc}") from None

    def delete_trade(self, owner: str, id: str) -> bool:
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM trades WHERE owner = ? AND id = ?", (owner, id))
            return cursor.rowcount > 0

    def load_trade_marks(self, owner: str | None = None) -> list[MarkRow]:
        return self._owned("trade_marks", MARK_COLUMNS, "owner, symbol", owner)

    def save_carried(
        self, owner: str, symbol: str, position: PositionRow | None, after_seq: int
    ) -> None:
        mark, values = carried_values(owner, symbol, position, after_seq)
        with self._write() as conn:
            if values is None:
                conn.execute(
                    "DELETE FROM positions WHERE owner = ? AND symbol = ?", (owner, symbol)
                )
            else:
                conn.execute(_UPSERT_POSITION, values)
            conn.execute(
                "INSERT INTO trade_marks (owner, symbol, after_seq) VALUES (?, ?, ?) "
                "ON CONFLICT (owner, symbol) DO UPDATE SET after_seq = excluded.after_seq",
                mark,
            )

    # --- candles --------------------------------------------------------------------------------

    def save_candles(self, candles: Sequence[Candle]) -> None:
        rows = [candle_values(c) for c in candles]
        if not rows:
            return
        series = sorted({(row[0], row[1]) for row in rows})
        with self._write() as conn:
            conn.executemany(_UPSERT_CANDLE, rows)
            conn.executemany(
                "DELETE FROM candles WHERE symbol = ?1 AND interval = ?2 AND start <= ("
                "SELECT start FROM candles WHERE symbol = ?1 AND interval = ?2 "
                "ORDER BY start DESC LIMIT 1 OFFSET ?3)",
                [(symbol, interval, self.max_candles) for symbol, interval in series],
            )

    def load_candles(
        self,
        symbol: str,
        interval: Interval,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int,
    ) -> list[Candle]:
        if limit <= 0:
            return []
        query = f"SELECT {', '.join(CANDLE_COLUMNS)} FROM candles WHERE symbol = ? AND interval = ?"
        params: list[object] = [symbol, interval.value]
        if start is not None:
            query += " AND start >= ?"
            params.append(epoch_of(start))
        if end is not None:
            query += " AND start <= ?"
            params.append(epoch_of(end))
        params.append(limit)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY start DESC LIMIT ?", params).fetchall()
        return [candle_from_row(row) for row in reversed(rows)]


_UPSERT_CANDLE = (
    f"INSERT INTO candles ({', '.join(CANDLE_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (symbol, interval, start) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in CANDLE_COLUMNS[3:])
)

_UPSERT_POSITION = (
    f"INSERT INTO positions ({', '.join(POSITION_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (owner, symbol) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in POSITION_COLUMNS[2:])
)


_INSERT_TRADE = (
    f"INSERT INTO trades ({', '.join(TRADE_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in TRADE_COLUMNS)})"
)


def _version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
    return int(row[0]) if row is not None else 0


# --- alerts <-> rows ----------------------------------------------------------------------------


def _upsert_alert(conn: sqlite3.Connection, values: Sequence[object]) -> None:
    columns = ", ".join(ALERT_COLUMNS)
    marks = ", ".join("?" for _ in ALERT_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in ALERT_COLUMNS[1:])
    conn.execute(
        f"INSERT INTO alerts ({columns}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {updates}",
        tuple(values),
    )


def _alert_values(alert: Alert) -> tuple[object, ...]:
    """The column values, booleans as SQLite's integers (so are they in event snapshots)."""
    return tuple(int(v) if isinstance(v, bool) else v for v in alert_fields(alert).values())
