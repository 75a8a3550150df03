"""Persistence for alerts and positions: the ``Store`` contract and :func:`open_store`.

Every implementation is synchronous, small and fast (a write is one short local transaction);
callers on the event loop call it directly. Each write is one transaction: it happens completely
or not at all, and a row that fails validation raises ``ValueError`` before anything is written.

``sqlite:///path`` (or a plain path) is the default and the reference implementation
(:class:`~tickhub.store.sqlite.SqliteStore`), imported only when asked for. ``postgresql://``
(:class:`~tickhub.store.postgres.PostgresStore`) keeps the same data in PostgreSQL, for
deployments where the ingest may move between machines.

Position rows are plain dicts with the keys:

==================  ==========================================================================
``owner``           ``str`` (``""`` is the anonymous owner)
``symbol``          ``str``, non-empty; ``(owner, symbol)`` is the key
``quantity``        ``int`` (negative for a short position; ``bool`` is rejected)
``average_price``   ``str``: a finite ``Decimal`` as text (a ``Decimal`` or ``int`` is accepted
                    on write and stored as text; a ``float`` is rejected, it would round)
``product``         ``str | None`` (optional on write)
``exchange``        ``str | None`` (optional on write)
``updated_at``      ``str``: ISO 8601 (an aware ``datetime`` is accepted on write)
==================  ==========================================================================

Any other key, a missing required key or a value of the wrong type raises ``ValueError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tickhub.engines.alerts import Alert, AlertEvent

__all__ = ["PositionRow", "Store", "open_store"]

PositionRow = dict[str, object]


class Store(Protocol):
    """What the alerts engine and the portfolio need to survive a restart."""

    # --- alerts ---------------------------------------------------------------------------------

    def load_alerts(self) -> list[Alert]:
        """Every saved alert (user and built-in), in the order they were first saved."""
        ...

    def save_alert(self, alert: Alert) -> None:
        """Insert or replace the alert with ``alert.id`` (its first-saved position is kept)."""
        ...

    def delete_alert(self, id: str) -> bool:
        """Remove an alert; ``False`` when there was none. Its past events are kept."""
        ...

    def add_event(self, event: AlertEvent) -> None:
        """Record a firing and save ``event.alert`` (the alert's state after it) in the same
        transaction, so a restart never sees one without the other. Implementations may keep
        only the newest events per symbol."""
        ...

    def events(self, symbol: str, owner: str | None, limit: int) -> list[AlertEvent]:
        """The newest ``limit`` events of ``symbol``, newest first: built-in ones plus the user
        events of ``owner`` (of every owner when ``owner`` is ``None``)."""
        ...

    # --- positions ------------------------------------------------------------------------------

    def load_positions(self, owner: str | None = None) -> list[PositionRow]:
        """Position rows of ``owner`` (every owner when ``None``), ordered by owner, symbol."""
        ...

    def save_position(self, row: PositionRow) -> None:
        """Insert or replace the row with the same ``(owner, symbol)``."""
        ...

    def delete_position(self, owner: str, symbol: str) -> bool:
        """Remove one row; ``False`` when there was none."""
        ...

    def replace_positions(self, owner: str, rows: list[PositionRow]) -> None:
        """Make ``rows`` the whole of ``owner``'s positions, atomically.

        A row's ``owner`` may be omitted (it is ``owner``); another owner, a repeated symbol or
        an invalid row raises ``ValueError`` and changes nothing.
        """
        ...

    def close(self) -> None:
        """Release the store; further calls fail."""
        ...


def open_store(url_or_path: str) -> Store:
    """A store from ``sqlite:///relative/path``, ``sqlite:////absolute/path``, ``sqlite://``
    (in memory), a plain filesystem path, or ``postgresql://`` / ``postgres://`` (a shared
    :class:`~tickhub.store.postgres.PostgresStore`; an optional ``schema`` query parameter names
    its schema, default ``tickhub``). Raises ``ValueError`` for any other scheme."""
    if "://" not in url_or_path:
        path = url_or_path
    else:
        scheme, rest = url_or_path.split("://", 1)
        scheme = scheme.lower()
        if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
            from tickhub.store.postgres import PostgresStore

            return PostgresStore(url_or_path)
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

    return SqliteStore(path)
