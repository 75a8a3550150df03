"""Persistence for alerts, positions and closed candles: the ``Store`` contract, ``open_store``.

The contract and the position row format are in :mod:`tickhub.store.base`; the row codecs both
implementations share in :mod:`tickhub.store.rows`. ``sqlite:///path`` (or a plain path) is the
default and the reference implementation (:class:`~tickhub.store.sqlite.SqliteStore`), imported
only when asked for. ``postgresql://`` (:class:`~tickhub.store.postgres.PostgresStore`) keeps the
same data in PostgreSQL, for deployments where the ingest may move between machines; it needs
psycopg, which is why neither is imported here until opened.
"""

from __future__ import annotations

from tickhub.core import defaults
from tickhub.store.base import CandleStore, PositionRow, PositionStore, Store, TradeStore

__all__ = ["CandleStore", "PositionRow", "PositionStore", "Store", "TradeStore", "open_store"]


def open_store(url_or_path: str, *, max_candles: int = defaults.CANDLE_RETENTION_ROWS) -> Store:
    """A store from ``sqlite:///relative/path``, ``sqlite:////absolute/path``, ``sqlite://``
    (in memory), a plain filesystem path, or ``postgresql://`` / ``postgres://`` (a shared
    :class:`~tickhub.store.postgres.PostgresStore`; an optional ``schema`` query parameter names
    its schema, default ``tickhub``). Raises ``ValueError`` for any other scheme. ``max_candles``
    is the store's candle retention per symbol and interval."""
    if "://" not in url_or_path:
        path = url_or_path
    else:
        scheme, rest = url_or_path.split("://", 1)
        scheme = scheme.lower()
        if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
            from tickhub.store.postgres import PostgresStore

            return PostgresStore(url_or_path, max_candles=max_candles)
        if scheme != "sqlite":
            # Only the scheme: the rest of a URL may hold a password.
            raise ValueError(
                f"unsupported store url: {scheme}:// "
                "(supported: sqlite:///path, a plain path, postgresql://)"
            )
        path = rest[1:] if rest.startswith("/") else rest
        path = path or ":memory:"
    if not path:
        raise ValueError("empty store path")
    from tickhub.store.sqlite import SqliteStore

    return SqliteStore(path, max_candles=max_candles)
