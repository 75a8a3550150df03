"""The ``Store`` contract: what alerts, positions and closed candles need to survive a restart.

Every implementation is synchronous, small and fast (a write is one short local transaction);
callers on the event loop call it directly. Each write is one transaction: it happens completely
or not at all, and a row that fails validation raises ``ValueError`` before anything is written.

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

Trade rows (``TradeStore``) have the keys ``owner``, ``id`` (``(owner, id)`` is the key), ``seq``
(``int``: the arrival number, unique over the store), ``symbol``, ``side`` (``"buy"`` |
``"sell"``), ``quantity`` (positive ``int``), ``price`` (``str``: a finite ``Decimal`` as text;
``Decimal`` accepted on write, ``float`` rejected), ``time`` (``str``: ISO 8601 with its offset;
an aware ``datetime`` accepted on write), ``product`` and ``exchange`` (``str | None``). A mark
row has ``owner``, ``symbol`` and ``after_seq`` (``int``): the trades of that owner and symbol
with ``seq <= after_seq`` were recorded before the carried-in position and do not count.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from tickhub.core.model import Candle, Interval
from tickhub.engines.alerts import Alert, AlertEvent

__all__ = [
    "CandleStore",
    "ClosedOnExit",
    "MarkRow",
    "PositionRow",
    "PositionStore",
    "Store",
    "TradeRow",
    "TradeStore",
]

PositionRow = dict[str, object]
"""One position as the store keeps it (keys above)."""


class PositionStore(Protocol):
    """Where positions survive a restart (the portfolio's part of :class:`Store`)."""

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


TradeRow = dict[str, object]
"""One trade as the store keeps it (keys above)."""

MarkRow = dict[str, object]
"""Where one owner's trades in one symbol start to count (keys above)."""


class TradeStore(Protocol):
    """Where trades, and the marks of carried-in positions, survive a restart."""

    def load_trades(self, owner: str | None = None) -> list[TradeRow]:
        """Trade rows of ``owner`` (every owner when ``None``), in arrival order (``seq``)."""
        ...

    def add_trade(self, row: TradeRow) -> None:
        """Insert one trade; ``ValueError`` if ``(owner, id)`` or ``seq`` is taken, or the row
        is invalid, and nothing is written."""
        ...

    def delete_trade(self, owner: str, id: str) -> bool:
        """Remove one trade; ``False`` when there was none."""
        ...

    def load_trade_marks(self, owner: str | None = None) -> list[MarkRow]:
        """Mark rows of ``owner`` (every owner when ``None``), ordered by owner, symbol."""
        ...

    def save_carried(
        self, owner: str, symbol: str, position: PositionRow | None, after_seq: int
    ) -> None:
        """In one transaction: make ``position`` ``owner``'s row in ``symbol`` (``None``:
        delete it) and set the symbol's mark to ``after_seq``."""
        ...


class CandleStore(Protocol):
    """Where closed candles survive a restart (what ``GET /candles`` serves).

    A candle is keyed by ``(symbol, interval, start)``; it is stored exactly as saved and read
    back equal (``start`` as the IST datetime of the same instant). Each store keeps at most
    ``max_candles`` candles per ``(symbol, interval)``, the newest by ``start``.
    """

    def save_candles(self, candles: Sequence[Candle]) -> None:
        """Insert or replace ``candles`` (closed ones only) in one transaction, then prune each
        ``(symbol, interval)`` written to its newest ``max_candles``. A forming candle or an
        invalid field raises ``ValueError`` before anything is written."""
        ...

    def load_candles(
        self,
        symbol: str,
        interval: Interval,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int,
    ) -> list[Candle]:
        """The newest ``limit`` candles of ``symbol`` at ``interval`` whose ``start`` lies in
        ``[start, end]`` (both inclusive, either bound optional), oldest first."""
        ...


class Store(PositionStore, TradeStore, CandleStore, Protocol):
    """What alerts and positions need to survive a restart.

    Every method is synchronous and quick (one short transaction, or one query); each write
    happens completely or not at all, and a row that fails validation raises ``ValueError``
    before anything is written. After :meth:`close`, every call fails.
    """

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

    def close(self) -> None:
        """Release the store; further calls fail."""
        ...


class ClosedOnExit:
    """A store's ``with`` block: ``with SqliteStore(path) as store:`` closes the store when the
    block ends, however it ends. The subclass provides ``close``."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
