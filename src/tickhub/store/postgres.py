"""The PostgreSQL store: one schema in a shared database, psycopg 3, one synchronous connection.

For deployments where the ingest role moves between machines: every process that opens the same
URL and schema sees the same alerts, events and positions. Semantics are those of
:class:`~tickhub.store.sqlite.SqliteStore`, row validation included (both use
:mod:`tickhub.store.rows`).

Limits: a call blocks its caller for its round trips to the server, on the event loop too. Bound
them in the URL (``connect_timeout`` defaults to 10 s; add ``tcp_user_timeout`` or
``options=-c%20statement_timeout%3D2000``). One connection per store, used under a lock.

URL: ``postgresql://`` or ``postgres://`` (``postgresql+psycopg://`` is accepted), anything libpq
takes, plus an optional ``schema`` query parameter (default ``tickhub``). Passwords never appear in
a ``repr``, an error or a log (:mod:`tickhub.store.postgres_url`).

Each write is one transaction; any error rolls it back. Concurrent ``replace_positions`` calls
for one owner are serialised with an advisory lock, so the last one wins whole. Migrations run at
open under an advisory lock (several processes may start at once), each exactly once, in one
transaction, and only when the schema is behind: a role with DML rights alone can open a schema
migrated by an administrator. A schema written by a newer tickhub raises ``RuntimeError``.
Datetimes are stored as ISO 8601 text with their offset, exactly as SQLite stores them; names sort
bytewise (``COLLATE "C"``), as in SQLite.

A lost connection is reopened on the next call. A read retries once on a fresh connection. A
write whose connection dies before ``BEGIN`` completes is retried once (nothing was applied); one
that dies later raises :class:`StoreUnavailableError` naming the operation, since it may or may
not have been committed.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, LiteralString, TypeVar

try:
    import psycopg
    from psycopg import sql
    from psycopg.rows import DictRow, dict_row
except ImportError as exc:  # pragma: no cover - psycopg is a dependency
    raise ImportError(
        "the PostgreSQL store needs psycopg 3: pip install 'psycopg[binary]'"
    ) from exc

from tickhub.core import defaults
from tickhub.core.errors import StoreUnavailableError
from tickhub.core.model import Candle, Interval
from tickhub.engines.alerts import Alert, AlertEvent
from tickhub.store.base import ClosedOnExit, MarkRow, PositionRow, TradeRow
from tickhub.store.candle_rows import candle_from_row, candle_values, epoch_of
from tickhub.store.postgres_url import (
    check_schema,
    conninfo_params,
    redact_url,
    secrets_of,
    split_url,
)
from tickhub.store.rows import (
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

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_MIGRATIONS: tuple[tuple[LiteralString, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS {s}.alerts (
            id text PRIMARY KEY,
            seq bigint GENERATED ALWAYS AS IDENTITY,
            owner text NOT NULL,
            symbol text NOT NULL,
            condition text NOT NULL,
            value double precision,
            once boolean NOT NULL,
            note text,
            source text NOT NULL CHECK (source IN ('user', 'builtin')),
            triggered boolean NOT NULL,
            triggered_at text,
            price double precision,
            message text,
            armed boolean NOT NULL,
            last_price double precision,
            fire_count bigint NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS alerts_by_symbol ON {s}.alerts (symbol)",
        """CREATE TABLE IF NOT EXISTS {s}.alert_events (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            alert_id text NOT NULL,
            symbol text NOT NULL,
            owner text NOT NULL,
            source text NOT NULL,
            category text NOT NULL,
            triggered_at text NOT NULL,
            price double precision NOT NULL,
            message text NOT NULL,
            alert text NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS alert_events_by_symbol ON {s}.alert_events (symbol, seq)",
        """CREATE TABLE IF NOT EXISTS {s}.positions (
            owner text COLLATE "C" NOT NULL,
            symbol text COLLATE "C" NOT NULL,
            quantity bigint NOT NULL,
            average_price text NOT NULL,
            product text,
            exchange text,
            updated_at text NOT NULL,
            PRIMARY KEY (owner, symbol)
        )""",
    ),
    (
        """CREATE TABLE IF NOT EXISTS {s}.candles (
            symbol text COLLATE "C" NOT NULL,
            interval text COLLATE "C" NOT NULL,
            start bigint NOT NULL,
            open double precision NOT NULL,
            high double precision NOT NULL,
            low double precision NOT NULL,
            close double precision NOT NULL,
            volume bigint NOT NULL,
            PRIMARY KEY (symbol, interval, start)
        )""",
    ),
    (
        """CREATE TABLE IF NOT EXISTS {s}.trades (
            owner text COLLATE "C" NOT NULL,
            id text COLLATE "C" NOT NULL,
            seq bigint NOT NULL UNIQUE,
            symbol text COLLATE "C" NOT NULL,
            side text NOT NULL CHECK (side IN ('buy', 'sell')),
            quantity bigint NOT NULL,
            price text NOT NULL,
            time text NOT NULL,
            product text,
            exchange text,
            PRIMARY KEY (owner, id)
        )""",
        """CREATE TABLE IF NOT EXISTS {s}.trade_marks (
            owner text COLLATE "C" NOT NULL,
            symbol text COLLATE "C" NOT NULL,
            after_seq bigint NOT NULL,
            PRIMARY KEY (owner, symbol)
        )""",
    ),
)
"""Migration ``i`` (0-based) takes the schema from version ``i`` to ``i + 1``; append only.
``{s}`` is the quoted schema name."""

SCHEMA_VERSION = len(_MIGRATIONS)

# First keys of the two-key advisory locks (the second is a hash of the schema / owner).
_MIGRATION_LOCK = 0x74680001
_POSITIONS_LOCK = 0x74680002

_UPSERT_ALERT: LiteralString = (
    "INSERT INTO {s}.alerts (id, owner, symbol, condition, value, once, note, source, triggered, "
    "triggered_at, price, message, armed, last_price, fire_count, interval, spec, last_candle, "
    "last_values) VALUES (%(id)s, %(owner)s, "
    "%(symbol)s, %(condition)s, %(value)s, %(once)s, %(note)s, %(source)s, %(triggered)s, "
    "%(triggered_at)s, %(price)s, %(message)s, %(armed)s, %(last_price)s, %(fire_count)s, "
    "%(interval)s, %(spec)s, %(last_candle)s, %(last_values)s) "
    "ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, symbol = excluded.symbol, "
    "condition = excluded.condition, value = excluded.value, once = excluded.once, "
    "note = excluded.note, source = excluded.source, triggered = excluded.triggered, "
    "triggered_at = excluded.triggered_at, price = excluded.price, message = excluded.message, "
    "armed = excluded.armed, last_price = excluded.last_price, fire_count = excluded.fire_count, "
    "interval = excluded.interval, spec = excluded.spec, last_candle = excluded.last_candle, "
    "last_values = excluded.last_values"
)
_UPSERT_CANDLE: LiteralString = (
    "INSERT INTO {s}.candles (symbol, interval, start, open, high, low, close, volume) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (symbol, interval, start) DO UPDATE SET "
    "open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, "
    "volume = excluded.volume"
)
_PRUNE_CANDLES: LiteralString = (
    "DELETE FROM {s}.candles WHERE symbol = %(symbol)s AND interval = %(interval)s AND start <= ("
    "SELECT start FROM {s}.candles WHERE symbol = %(symbol)s AND interval = %(interval)s "
    "ORDER BY start DESC LIMIT 1 OFFSET %(keep)s)"
)
_SELECT_CANDLES: LiteralString = (
    "SELECT symbol, interval, start, open, high, low, close, volume FROM {s}.candles "
    "WHERE symbol = %(symbol)s AND interval = %(interval)s "
    "AND (%(from)s::bigint IS NULL OR start >= %(from)s) "
    "AND (%(to)s::bigint IS NULL OR start <= %(to)s) "
    "ORDER BY start DESC LIMIT %(limit)s"
)
_UPSERT_POSITION: LiteralString = (
    "INSERT INTO {s}.positions (owner, symbol, quantity, average_price, product, exchange, "
    "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (owner, symbol) DO UPDATE SET "
    "quantity = excluded.quantity, average_price = excluded.average_price, "
    "product = excluded.product, exchange = excluded.exchange, updated_at = excluded.updated_at"
)


class PostgresStore(ClosedOnExit):
    """:class:`~tickhub.store.base.Store` over one schema of a PostgreSQL database.

    ``schema`` (else the URL's ``schema`` parameter, else ``"tickhub"``) is created when missing.
    Keeps at most ``max_events_per_symbol`` events per symbol and ``max_candles`` candles per
    symbol and interval.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        max_events_per_symbol: int = defaults.MAX_EVENTS_PER_SYMBOL,
        max_candles: int = defaults.CANDLE_RETENTION_ROWS,
    ) -> None:
        if max_events_per_symbol < 1:
            raise ValueError(f"max_events_per_symbol must be >= 1, got {max_events_per_symbol}")
        if max_candles < 1:
            raise ValueError(f"max_candles must be >= 1, got {max_candles}")
        self.max_candles = max_candles
        self.url = redact_url(url)
        conninfo, url_schema = split_url(url)
        if schema is not None and url_schema is not None and schema != url_schema:
            raise ValueError(f"schema {schema!r} given, but the url says {url_schema!r}")
        self.schema = check_schema(schema if schema is not None else url_schema or "tickhub")
        self.max_events_per_symbol = max_events_per_symbol
        params = conninfo_params(conninfo, self.url)
        self._secrets = secrets_of(url, params)
        self._conninfo = conninfo
        self._defaults: dict[str, Any] = {
            k: v
            for k, v in (("connect_timeout", 10), ("application_name", "tickhub"))
            if k not in params
        }
        self._schema_id = sql.Identifier(self.schema)
        self._queries: dict[str, sql.Composed] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._conn: psycopg.Connection[DictRow] | None = None
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r}, schema={self.schema!r})"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def schema_version(self) -> int:
        rows = self._read(
            "schema_version", self._sql("SELECT version FROM {s}.schema_version WHERE id = 1")
        )
        return int(rows[0]["version"]) if rows else 0

    # --- connections and transactions -----------------------------------------------------------

    def _sql(self, template: LiteralString) -> sql.Composed:
        query = self._queries.get(template)
        if query is None:
            query = self._queries[template] = sql.SQL(template).format(s=self._schema_id)
        return query

    def _connection(self, operation: str) -> psycopg.Connection[DictRow]:
        """The open connection, opening one if there is none (call under ``_lock``)."""
        if self._closed:
            raise RuntimeError(f"{operation}: store is closed")
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            self._conn = psycopg.connect(
                self._conninfo, autocommit=True, row_factory=dict_row, **self._defaults
            )
        except psycopg.Error as exc:
            detail = self._scrub(str(exc))
            raise StoreUnavailableError(
                f"{operation}: cannot connect to {self.url}: {detail}"
            ) from None
        return self._conn

    def _lost(self, operation: str) -> None:
        self._conn = None
        log.warning("store connection to %s lost during %s", self.url, operation)

    def _read(
        self,
        operation: str,
        query: sql.Composed,
        params: Sequence[object] | Mapping[str, object] = (),
    ) -> list[DictRow]:
        """Run one query, retrying once on a fresh connection if the connection was lost."""
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection(operation)
                try:
                    return conn.execute(query, params).fetchall()
                except psycopg.OperationalError as exc:
                    if not conn.closed:
                        raise  # the query failed, the connection is fine
                    self._lost(operation)
                    if attempt == 2:
                        detail = self._scrub(str(exc))
                        raise StoreUnavailableError(
                            f"{operation}: connection to {self.url} lost: {detail}"
                        ) from None
        raise AssertionError("unreachable")

    def _write(self, operation: str, work: Callable[[psycopg.Cursor[DictRow]], _T]) -> _T:
        """Run ``work`` in one all-or-nothing transaction."""
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection(operation)
                begun = False
                try:
                    with conn.transaction():
                        begun = True
                        with conn.cursor() as cursor:
                            return work(cursor)
                except psycopg.OperationalError:
                    if not conn.closed:
                        raise
                    self._lost(operation)
                    if begun or attempt == 2:
                        raise StoreUnavailableError(
                            f"{operation}: connection to {self.url} lost; the write was not "
                            "confirmed and may not have been applied"
                        ) from None
                    # Only BEGIN reached the dead connection: nothing was applied, start again.
        raise AssertionError("unreachable")

    def _scrub(self, text: str) -> str:
        """A driver message on one line, without any form of the password."""
        text = " ".join(text.split())
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _migrate(self) -> None:
        def migrate(cur: psycopg.Cursor[DictRow]) -> None:
            cur.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_MIGRATION_LOCK, self.schema)
            )
            cur.execute(
                "SELECT to_regnamespace(%s) IS NOT NULL AS schema, "
                "to_regclass(%s) IS NOT NULL AS version_table",
                (
                    self._schema_id.as_string(cur),
                    sql.Identifier(self.schema, "schema_version").as_string(cur),
                ),
            )
            found = cur.fetchone()
            assert found is not None
            if not found["schema"]:
                cur.execute(self._sql("CREATE SCHEMA {s}"))
            if not found["version_table"]:
                cur.execute(
                    self._sql(
                        "CREATE TABLE {s}.schema_version ("
                        "id integer PRIMARY KEY CHECK (id = 1), version integer NOT NULL)"
                    )
                )
            cur.execute(self._sql("SELECT version FROM {s}.schema_version WHERE id = 1"))
            row = cur.fetchone()
            current = int(row["version"]) if row is not None else 0
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"store schema version {current} is newer than this tickhub's "
                    f"({SCHEMA_VERSION}): schema {self.schema!r} at {self.url}"
                )
            if current == SCHEMA_VERSION:
                add_analysis_columns(cur)
                return
            for statements in _MIGRATIONS[current:]:
                for statement in statements:
                    cur.execute(self._sql(statement))
            cur.execute(
                self._sql(
                    "INSERT INTO {s}.schema_version (id, version) VALUES (1, %s) "
                    "ON CONFLICT (id) DO UPDATE SET version = excluded.version"
                ),
                (SCHEMA_VERSION,),
            )
            add_analysis_columns(cur)

        def add_analysis_columns(cur: psycopg.Cursor[DictRow]) -> None:
            # Analysis alerts' columns, added to a table made before them whatever its version
            # (nullable: every existing row is a price or built-in alert as before).
            cur.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = 'alerts'",
                (self.schema,),
            )
            have = {row["column_name"] for row in cur.fetchall()}
            for column in ANALYSIS_COLUMNS:
                if column not in have:
                    cur.execute(
                        sql.SQL("ALTER TABLE {s}.alerts ADD COLUMN {c} text").format(
                            s=self._schema_id, c=sql.Identifier(column)
                        )
                    )

        self._write("open", migrate)

    # --- alerts ---------------------------------------------------------------------------------

    def load_alerts(self) -> list[Alert]:
        rows = self._read(
            "load_alerts",
            self._sql(
                "SELECT id, owner, symbol, condition, value, once, note, source, triggered, "
                "triggered_at, price, message, armed, last_price, fire_count, "
                "interval, spec, last_candle, last_values "
                "FROM {s}.alerts ORDER BY seq"
            ),
        )
        return [alert_from_row(row) for row in rows]

    def save_alert(self, alert: Alert) -> None:
        params = alert_fields(alert)
        self._write("save_alert", lambda cur: cur.execute(self._sql(_UPSERT_ALERT), params))

    def delete_alert(self, id: str) -> bool:
        query = self._sql("DELETE FROM {s}.alerts WHERE id = %s")
        return self._write("delete_alert", lambda cur: cur.execute(query, (id,)).rowcount > 0)

    def add_event(self, event: AlertEvent) -> None:
        alert = event.alert
        params = alert_fields(alert)
        row = event_values(event, json.dumps(params))

        def add(cur: psycopg.Cursor[DictRow]) -> None:
            cur.execute(self._sql(_UPSERT_ALERT), params)
            cur.execute(
                self._sql(
                    "INSERT INTO {s}.alert_events (alert_id, symbol, owner, source, category, "
                    "triggered_at, price, message, alert) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                ),
                row,
            )
            cur.execute(
                self._sql(
                    "DELETE FROM {s}.alert_events WHERE symbol = %(symbol)s AND seq <= ("
                    "SELECT seq FROM {s}.alert_events WHERE symbol = %(symbol)s "
                    "ORDER BY seq DESC LIMIT 1 OFFSET %(keep)s)"
                ),
                {"symbol": alert.symbol, "keep": self.max_events_per_symbol},
            )

        self._write("add_event", add)

    def events(self, symbol: str, owner: str | None, limit: int) -> list[AlertEvent]:
        if limit <= 0:
            return []
        select = "SELECT category, triggered_at, price, message, alert FROM {s}.alert_events "
        if owner is None:
            rows = self._read(
                "events",
                self._sql(select + "WHERE symbol = %s ORDER BY seq DESC LIMIT %s"),
                (symbol, limit),
            )
        else:
            rows = self._read(
                "events",
                self._sql(
                    select + "WHERE symbol = %s AND (source = 'builtin' OR owner = %s) "
                    "ORDER BY seq DESC LIMIT %s"
                ),
                (symbol, owner, limit),
            )
        return [event_from_row(row) for row in rows]

    # --- positions ------------------------------------------------------------------------------

    def load_positions(self, owner: str | None = None) -> list[PositionRow]:
        select = (
            "SELECT owner, symbol, quantity, average_price, product, exchange, updated_at "
            "FROM {s}.positions "
        )
        if owner is None:
            rows = self._read("load_positions", self._sql(select + "ORDER BY owner, symbol"))
        else:
            rows = self._read(
                "load_positions",
                self._sql(select + "WHERE owner = %s ORDER BY owner, symbol"),
                (owner,),
            )
        return [{key: row[key] for key in POSITION_COLUMNS} for row in rows]

    def save_position(self, row: PositionRow) -> None:
        values = position_values(row)
        self._write("save_position", lambda cur: cur.execute(self._sql(_UPSERT_POSITION), values))

    def delete_position(self, owner: str, symbol: str) -> bool:
        query = self._sql("DELETE FROM {s}.positions WHERE owner = %s AND symbol = %s")
        return self._write(
            "delete_position", lambda cur: cur.execute(query, (owner, symbol)).rowcount > 0
        )

    def replace_positions(self, owner: str, rows: list[PositionRow]) -> None:
        values = replacement_values(owner, rows)

        def replace(cur: psycopg.Cursor[DictRow]) -> None:
            # Without it, two concurrent replaces for one owner could leave their union.
            cur.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                (_POSITIONS_LOCK, f"{self.schema}/{owner}"),
            )
            cur.execute(self._sql("DELETE FROM {s}.positions WHERE owner = %s"), (owner,))
            if values:
                cur.executemany(self._sql(_UPSERT_POSITION), values)

        self._write("replace_positions", replace)

    # --- trades ---------------------------------------------------------------------------------

    def load_trades(self, owner: str | None = None) -> list[TradeRow]:
        select = (
            "SELECT owner, id, seq, symbol, side, quantity, price, time, product, exchange "
            "FROM {s}.trades "
        )
        if owner is None:
            rows = self._read("load_trades", self._sql(select + "ORDER BY seq"))
        else:
            rows = self._read(
                "load_trades", self._sql(select + "WHERE owner = %s ORDER BY seq"), (owner,)
            )
        return [{key: row[key] for key in TRADE_COLUMNS} for row in rows]

    def add_trade(self, row: TradeRow) -> None:
        values = trade_values(row)
        query = self._sql(
            "INSERT INTO {s}.trades (owner, id, seq, symbol, side, quantity, price, time, "
            "product, exchange) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        )
        try:
            self._write("add_trade", lambda cur: cur.execute(query, values))
        except psycopg.errors.UniqueViolation as exc:
            detail = self._scrub(str(exc))
            raise ValueError(f"trade {values[0]!r}/{values[1]!r} not added: {detail}") from None

    def delete_trade(self, owner: str, id: str) -> bool:
        query = self._sql("DELETE FROM {s}.trades WHERE owner = %s AND id = %s")
        return self._write("delete_trade", lambda cur: cur.execute(query, (owner, id)).rowcount > 0)

    def load_trade_marks(self, owner: str | None = None) -> list[MarkRow]:
        select = "SELECT owner, symbol, after_seq FROM {s}.trade_marks "
        if owner is None:
            rows = self._read("load_trade_marks", self._sql(select + "ORDER BY owner, symbol"))
        else:
            rows = self._read(
                "load_trade_marks",
                self._sql(select + "WHERE owner = %s ORDER BY owner, symbol"),
                (owner,),
            )
        return [{key: row[key] for key in MARK_COLUMNS} for row in rows]

    def save_carried(
        self, owner: str, symbol: str, position: PositionRow | None, after_seq: int
    ) -> None:
        mark, values = carried_values(owner, symbol, position, after_seq)

        def save(cur: psycopg.Cursor[DictRow]) -> None:
            if values is None:
                cur.execute(
                    self._sql("DELETE FROM {s}.positions WHERE owner = %s AND symbol = %s"),
                    (owner, symbol),
                )
            else:
                cur.execute(self._sql(_UPSERT_POSITION), values)
            cur.execute(
                self._sql(
                    "INSERT INTO {s}.trade_marks (owner, symbol, after_seq) VALUES (%s, %s, %s) "
                    "ON CONFLICT (owner, symbol) DO UPDATE SET after_seq = excluded.after_seq"
                ),
                mark,
            )

        self._write("save_carried", save)

    # --- candles --------------------------------------------------------------------------------

    def save_candles(self, candles: Sequence[Candle]) -> None:
        rows = [candle_values(c) for c in candles]
        if not rows:
            return
        series = sorted({(row[0], row[1]) for row in rows})

        def save(cur: psycopg.Cursor[DictRow]) -> None:
            cur.executemany(self._sql(_UPSERT_CANDLE), rows)
            cur.executemany(
                self._sql(_PRUNE_CANDLES),
                [{"symbol": s, "interval": i, "keep": self.max_candles} for s, i in series],
            )

        self._write("save_candles", save)

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
        params = {
            "symbol": symbol,
            "interval": interval.value,
            "from": None if start is None else epoch_of(start),
            "to": None if end is None else epoch_of(end),
            "limit": limit,
        }
        rows = self._read("load_candles", self._sql(_SELECT_CANDLES), params)
        return [candle_from_row(row) for row in reversed(rows)]
