"""The portfolio's state: positions per owner, the latest prices, and what each change did.

The engine keeps this in memory only. Every operation that changes positions returns a
``PositionChange`` saying what it did, so the caller (the ingest) can persist exactly that, and
``undo`` it should persisting fail: memory and store then stay as they were.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from tickhub.core.model import Tick
from tickhub.engines.portfolio.positions import Position
from tickhub.engines.portfolio.valuation import (
    PortfolioTotals,
    PositionValue,
    portfolio_totals,
    position_value,
    price_from_tick,
)

__all__ = ["Portfolio", "PositionChange"]


@dataclass(frozen=True, slots=True)
class PositionChange:
    """What one operation did to one owner's positions.

    ``saved``: positions now held that were added or overwritten. ``removed``: symbols the
    operation made flat, listed even when nothing was held there (a store may still have a row).
    ``whole``: ``saved`` is now everything the owner holds (a replace), to be stored as such, at
    once. ``before``: what the touched symbols held before (for a replace, all the owner held),
    which is what ``Portfolio.undo`` puts back.
    """

    owner: str
    saved: tuple[Position, ...] = ()
    removed: tuple[str, ...] = ()
    whole: bool = False
    before: tuple[Position, ...] = ()


class Portfolio:
    """Positions per owner, the last price and previous close per symbol, and valuations.

    Symbols are the registry's trading symbols, as ticks carry them. ``restore`` fills it from
    the store at start; later changes come from the operations, each returning its
    ``PositionChange``. A zero quantity means flat: ``set_position`` with quantity 0 removes the
    position, and ``replace``/``seed`` skip such rows.
    """

    def __init__(self) -> None:
        self._positions: dict[str, dict[str, Position]] = {}
        self._last: dict[str, Decimal] = {}
        self._prev_close: dict[str, Decimal] = {}

    # --- positions -----------------------------------------------------------------------------

    def restore(self, positions: Iterable[tuple[str, Position]]) -> int:
        """Make these ``(owner, position)`` pairs (read back from the store) all the positions
        held, zero quantities skipped; the count. Nothing changes if the iterable raises."""
        loaded: dict[str, dict[str, Position]] = {}
        for owner, position in positions:
            if position.quantity:
                loaded.setdefault(owner, {})[position.symbol] = position
        self._positions = loaded
        return sum(len(held) for held in loaded.values())

    def set_position(self, owner: str, position: Position) -> PositionChange:
        """Add or overwrite ``owner``'s position in its symbol; quantity 0 removes it."""
        if position.quantity == 0:
            return self.remove_position(owner, position.symbol)
        held = self._positions.setdefault(owner, {})
        previous = held.get(position.symbol)
        held[position.symbol] = position
        before = () if previous is None else (previous,)
        return PositionChange(owner, saved=(position,), before=before)

    def remove_position(self, owner: str, symbol: str) -> PositionChange:
        """Forget ``owner``'s position in ``symbol``; ``before`` is empty if there was none."""
        held = self._positions.get(owner, {})
        previous = held.pop(symbol, None)
        if not held:
            self._positions.pop(owner, None)
        before = () if previous is None else (previous,)
        return PositionChange(owner, removed=(symbol,), before=before)

    def replace(self, owner: str, positions: Iterable[Position]) -> PositionChange:
        """Make ``positions`` (zero quantities skipped) all that ``owner`` holds; ``ValueError``
        if a symbol appears twice, before anything changes."""
        held: dict[str, Position] = {}
        for position in positions:
            if position.symbol in held:
                raise ValueError(f"duplicate symbol: {position.symbol!r}")
            held[position.symbol] = position
        held = {s: p for s, p in held.items() if p.quantity}
        previous = self._positions.get(owner, {})
        if held:
            self._positions[owner] = held
        else:
            self._positions.pop(owner, None)
        return PositionChange(
            owner,
            saved=tuple(held.values()),
            removed=tuple(s for s in previous if s not in held),
            whole=True,
            before=tuple(previous.values()),
        )

    def seed(self, owner: str, positions: Iterable[Position]) -> PositionChange | None:
        """``replace`` only if ``owner`` holds nothing yet (the file-seeds-the-store rule);
        ``None`` when the owner already holds positions."""
        if self._positions.get(owner):
            return None
        return self.replace(owner, positions)

    def undo(self, change: PositionChange) -> None:
        """Put back what ``change`` (the latest change of its owner) replaced."""
        held = {} if change.whole else self._positions.get(change.owner, {})
        for symbol in (*(p.symbol for p in change.saved), *change.removed):
            held.pop(symbol, None)
        for position in change.before:
            held[position.symbol] = position
        if held:
            self._positions[change.owner] = held
        else:
            self._positions.pop(change.owner, None)

    def positions(self, owner: str) -> list[Position]:
        """``owner``'s positions, by symbol."""
        held = self._positions.get(owner, {})
        return [held[s] for s in sorted(held)]

    def position(self, owner: str, symbol: str) -> Position | None:
        """``owner``'s position in ``symbol``, if any."""
        return self._positions.get(owner, {}).get(symbol)

    def held_symbols(self, owner: str) -> list[str]:
        """The symbols ``owner`` holds, sorted: what a ``*`` subscription means."""
        return sorted(self._positions.get(owner, {}))

    def owners(self) -> list[str]:
        """Owners holding at least one position, sorted."""
        return sorted(self._positions)

    # --- prices --------------------------------------------------------------------------------

    def on_tick(self, tick: Tick) -> None:
        """Remember the tick's price and previous close (a zero means unknown and is ignored)."""
        price = price_from_tick(tick.price)
        if price is not None:
            self._last[tick.symbol] = price
        prev = price_from_tick(tick.prev_close)
        if prev is not None:
            self._prev_close[tick.symbol] = prev

    def last_price(self, symbol: str) -> Decimal | None:
        """The symbol's last traded price, once a tick brought one."""
        return self._last.get(symbol)

    def prev_close(self, symbol: str) -> Decimal | None:
        """The symbol's previous close, once a tick brought one."""
        return self._prev_close.get(symbol)

    # --- valuation -----------------------------------------------------------------------------

    def value(self, owner: str, symbol: str) -> PositionValue:
        """The ``/ws/portfolio`` payload for ``owner``'s position in ``symbol`` with the owner's
        totals; a symbol not held answers quantity 0 and zero amounts (not an error)."""
        held = self._positions.get(owner, {})
        return position_value(symbol, held.get(symbol), held.values(), self._last, self._prev_close)

    def totals(self, owner: str) -> PortfolioTotals:
        """Only the ``portfolio`` part of ``value``."""
        held = self._positions.get(owner, {})
        return portfolio_totals(held.values(), self._last, self._prev_close)
