"""The portfolio engine kept in step with its store, and the positions file that seeds it.

The engine (``tickhub.engines.portfolio``) holds positions in memory and returns what each
operation changed; ``StoredPortfolio`` writes that change to the store and, should the store
fail, undoes it in the engine, so memory and store never disagree. This is the only place that
reads positions from the store (``load``) or from a file (``load_positions_file``).

Sources and their precedence
    A positions file (``load_positions_file``: CSV or JSON) is parsed completely before anything
    is applied; any broken row raises ``PortfolioFileError`` naming the file and the line (CSV) or
    the item (JSON). The file *seeds* an owner: ``StoredPortfolio.seed`` applies it only when the
    owner holds no positions yet (after ``load()`` from the store), so it fills the store on first
    run and later changes made over the protocol, which are saved to the store, win across
    restarts. Editing the file later does not re-seed; to start over from the file, clear that
    owner's stored positions (an owner whose last position was removed is seeded again on the
    next start) or call ``StoredPortfolio.replace``, which always replaces.

Trades
    ``add_trade``/``delete_trade`` record and forget trades (``TradeStore``), each write before
    the engine's change is kept; ``load`` rebuilds every position from the stored carried-in
    positions, marks and trades, so a restart shows the same positions and realised P&L. A
    ``set_position``/``remove_position`` on a symbol with trades stores the carried-in position
    and its mark in one transaction (``save_carried``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

from tickhub.core import defaults
from tickhub.core.commands import AddTrade, trade_time_error
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import IST
from tickhub.core.protocol import ErrorCode, ProtocolError
from tickhub.engines.portfolio import (
    Portfolio,
    PortfolioFileError,
    Position,
    PositionChange,
    Trade,
    parse_positions,
    position_from_row,
    position_to_row,
    trade_from_row,
    trade_to_row,
)
from tickhub.store import PositionStore, TradeStore

__all__ = [
    "DEMO_PORTFOLIO",
    "StoredPortfolio",
    "demo_portfolio_file",
    "load_positions_file",
]

DEMO_PORTFOLIO: Final = "data/demo_portfolio.csv"
"""The packaged demo portfolio (NIFTY 50 names, one short), so the stream is alive on first run."""


class StoredPortfolio:
    """The writes to a ``Portfolio``, each saved to the store (when there is one) as well.

    A store failure raises and leaves both memory and store as they were. ``load()`` replaces
    memory with the store's rows; call it before ``seed``. ``now`` stamps ``updated_at`` on stored
    rows (pass the service clock's ``now``). Reads and ticks go to ``portfolio``, the engine.
    """

    def __init__(
        self,
        store: PositionStore | None = None,
        *,
        now: Callable[[], datetime],
        trades: TradeStore | None = None,
        max_trades: int = defaults.MAX_TRADES_PER_OWNER,
    ) -> None:
        self.store = store
        self.trade_store = trades
        self.max_trades = max_trades
        # "Today" for the day figures is the exchange's: the IST date of the newest tick (of the
        # service clock before the first), so that a replayed or simulated session has its days.
        self.portfolio = Portfolio(today=lambda: self.exchange_now().astimezone(IST).date())
        self._now = now

    def exchange_now(self) -> datetime:
        """The exchange's time: the newest tick's, else the service clock's."""
        market = self.portfolio.market_time()
        return market if market is not None else self._now()

    def load(self) -> int:
        """Replace the positions in memory with the store's (no store: keep them); the count.

        Raises ``ValueError`` for a corrupt row, before changing anything."""
        if self.store is None:
            return sum(len(self.portfolio.positions(o)) for o in self.portfolio.owners())
        count = self.portfolio.restore(position_from_row(r) for r in self.store.load_positions())
        if self.trade_store is not None:
            trades = [trade_from_row(r) for r in self.trade_store.load_trades()]
            marks = [_mark_of(r) for r in self.trade_store.load_trade_marks()]
            self.portfolio.restore_trades(trades, marks)
            count = sum(len(self.portfolio.positions(o)) for o in self.portfolio.owners())
        return count

    def add_trade(self, owner: str, command: AddTrade) -> tuple[str, Trade] | ProtocolError:
        """Record the trade ``command`` asks for: ``("added", trade)``, or ``("exists",
        trade)`` when its ``id`` was recorded before (nothing changes), or why not
        (``invalid_field`` for its time, ``limit_exceeded``). Saved before it is kept."""
        portfolio = self.portfolio
        if command.id is not None:
            existing = portfolio.trade(owner, command.id)
            if existing is not None:
                return "exists", existing
        now = self.exchange_now()
        time = command.time if command.time is not None else now
        late = trade_time_error(time, now, wall=self._now())
        if late is not None:
            return late
        if portfolio.trade_count(owner) >= self.max_trades:
            return ProtocolError(
                ErrorCode.LIMIT_EXCEEDED,
                f"trade limit reached ({self.max_trades} per owner)",
                {"limit": self.max_trades},
            )
        trade_id = command.id
        while trade_id is None or portfolio.trade(owner, trade_id) is not None:
            trade_id = "t_" + secrets.token_hex(6)
        product = None if command.product is None else command.product.value
        trade = Trade(
            trade_id,
            command.symbol,
            command.side.value,
            command.quantity,
            command.price,
            time,
            portfolio.next_seq(),
            product,
            command.exchange,
        )
        change = portfolio.add_trade(owner, trade)
        if isinstance(change, ProtocolError):
            return change
        assert change.added is not None
        if self.trade_store is not None:
            try:
                self.trade_store.add_trade(trade_to_row(owner, change.added))
            except BaseException:
                portfolio.undo_trade(change)
                raise
        return "added", change.added

    def delete_trade(self, owner: str, trade_id: str) -> Trade | ProtocolError | None:
        """Forget ``owner``'s trade ``trade_id``: the trade, ``None`` if there is none, or why
        not (``limit_exceeded``). Deleted from the store before it is forgotten."""
        change = self.portfolio.delete_trade(owner, trade_id)
        if change is None or isinstance(change, ProtocolError):
            return change
        if self.trade_store is not None:
            try:
                self.trade_store.delete_trade(owner, trade_id)
            except BaseException:
                self.portfolio.undo_trade(change)
                raise
        return change.deleted

    def set_position(self, owner: str, position: Position) -> PositionChange:
        """Add or overwrite ``owner``'s position in its symbol; quantity 0 removes it."""
        change = self.portfolio.set_position(owner, position)
        self._persist(change)
        return change

    def remove_position(self, owner: str, symbol: str) -> bool:
        """Forget ``owner``'s position in ``symbol``; false if neither memory nor store had it."""
        change = self.portfolio.remove_position(owner, symbol)
        deleted = self._persist(change)
        return bool(change.before) or deleted

    def replace(self, owner: str, positions: Iterable[Position]) -> PositionChange:
        """Make ``positions`` (zero quantities skipped) all that ``owner`` holds, atomically in
        the store; ``ValueError`` if a symbol appears twice."""
        change = self.portfolio.replace(owner, positions)
        self._persist(change)
        return change

    def seed(self, owner: str, positions: Iterable[Position]) -> bool:
        """``replace`` only if ``owner`` holds nothing yet (the file-seeds-the-store rule)."""
        change = self.portfolio.seed(owner, positions)
        if change is None:
            return False
        self._persist(change)
        return True

    def _persist(self, change: PositionChange) -> bool:
        """Write ``change`` to the store, undoing it in memory if that fails; true if a stored
        row was deleted."""
        if change.mark is not None and self.trade_store is not None:
            try:
                _write_carried(self.trade_store, change, self._now())
            except BaseException:
                self.portfolio.undo(change)
                raise
            return bool(change.removed)
        if self.store is None:
            return False
        try:
            return _write(self.store, change, self._now())
        except BaseException:
            self.portfolio.undo(change)
            raise


def _write(store: PositionStore, change: PositionChange, now: datetime) -> bool:
    owner = change.owner
    if change.whole:
        store.replace_positions(owner, [position_to_row(owner, p, now) for p in change.saved])
        return False
    for position in change.saved:
        store.save_position(position_to_row(owner, position, now))
    deleted = False
    for symbol in change.removed:
        deleted = store.delete_position(owner, symbol) or deleted
    return deleted


def _write_carried(store: TradeStore, change: PositionChange, now: datetime) -> None:
    """A carried-in position of a symbol with trades, and its mark, in one transaction."""
    assert change.mark is not None
    owner = change.owner
    if change.saved:
        (position,) = change.saved
        store.save_carried(
            owner, position.symbol, position_to_row(owner, position, now), change.mark
        )
    else:
        (symbol,) = change.removed
        store.save_carried(owner, symbol, None, change.mark)


def _mark_of(row: dict[str, object]) -> tuple[str, str, int]:
    owner, symbol, after = row.get("owner"), row.get("symbol"), row.get("after_seq")
    if not isinstance(owner, str) or not isinstance(symbol, str) or not isinstance(after, int):
        raise ValueError(f"bad stored trade mark: {row!r}")
    return owner, symbol, after


def load_positions_file(
    path: str | os.PathLike[str] | Traversable, registry: InstrumentRegistry
) -> list[Position]:
    """Read and parse a positions file (see ``parse_positions``); raises ``PortfolioFileError``,
    also when the file cannot be read."""
    if isinstance(path, (str, os.PathLike)):
        source = os.fspath(path)
        try:
            with open(source, "rb") as file:
                data = file.read()
        except OSError as exc:
            raise PortfolioFileError(source, None, f"cannot read ({exc.strerror})") from None
    else:
        source = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise PortfolioFileError(source, None, f"cannot read ({exc.strerror})") from None
    return parse_positions(data, registry, source)


def demo_portfolio_file() -> Traversable:
    """The packaged demo portfolio, for ``load_positions_file``."""
    return resources.files("tickhub").joinpath(DEMO_PORTFOLIO)
