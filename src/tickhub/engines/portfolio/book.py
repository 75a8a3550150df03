"""The portfolio's state: positions per owner, the latest prices, and what each change did.

The engine keeps this in memory only. Every operation that changes positions returns a
``PositionChange`` (or, for trades, a ``TradeChange``) saying what it did, so the caller (the
ingest) can persist exactly that, and ``undo`` it should persisting fail: memory and store then
stay as they were.

Trades (``add_trade``) build positions FIFO (``ledger``). A symbol with trades has a ``Book``:
its carried-in position (what ``set_position`` last set there), the arrival number ``mark``
after which trades count (the last one assigned when ``set_position``/``remove_position`` set
the carried-in position: trades recorded before it no longer count toward the position, but
stay listed), and every trade. The position held is the book's FIFO result. A symbol the
counted trades made flat stays listed (quantity 0, its realised P&L) while it has counted trades
of today's IST date, until the next IST day.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

from tickhub.core.commands import MAX_QUANTITY
from tickhub.core.model import IST, Tick
from tickhub.core.protocol import ErrorCode, ProtocolError
from tickhub.engines.portfolio.ledger import DayFigures, Ledger, day_figures, extended, fifo
from tickhub.engines.portfolio.positions import Position
from tickhub.engines.portfolio.trades import Trade
from tickhub.engines.portfolio.valuation import (
    Holding,
    PortfolioTotals,
    PositionValue,
    holding_of,
    portfolio_totals,
    position_value,
    price_from_tick,
)

__all__ = ["Book", "Portfolio", "PositionChange", "TradeChange"]


class Book:
    """One owner's trades in one symbol, with the carried-in position they apply on top of.

    Immutable once made (a change makes a new book), so a change can hold the old one for
    ``undo``. ``ledger`` is the FIFO of the carried-in position and the counted trades (``None``
    when no trade counts); the day figures are kept for the last ``today`` asked.
    """

    __slots__ = ("_day", "carried", "ledger", "mark", "symbol", "trades")

    def __init__(
        self,
        symbol: str,
        carried: Position | None,
        mark: int,
        trades: tuple[Trade, ...],
        *,
        ledger: Ledger | None = None,
    ) -> None:
        """``ledger``: the FIFO of these, when the caller already has it (else it is made)."""
        self.symbol = symbol
        self.carried = carried
        self.mark = mark
        self.trades = trades
        if ledger is None:
            counted = [t for t in trades if t.seq > mark]
            ledger = fifo(carried, counted) if counted else None
        self.ledger: Ledger | None = ledger
        self._day: tuple[date, DayFigures] | None = None

    def day(self, today: date) -> DayFigures | None:
        """The ledger's figures for ``today`` (``None`` without counted trades)."""
        if self.ledger is None:
            return None
        if self._day is None or self._day[0] != today:
            self._day = (today, day_figures(self.ledger, today))
        return self._day[1]

    def position(self) -> Position | None:
        """The position held: the FIFO result, or the carried-in one when no trade counts."""
        ledger = self.ledger
        if ledger is None:
            return self.carried
        avg = ledger.average_price
        if avg is None:
            return None
        product, exchange = _last_labels(self.carried, ledger.trades)
        return Position(self.symbol, ledger.quantity, avg, product, exchange)

    def traded_on(self, today: date) -> bool:
        """Whether a counted trade falls on ``today`` (from the day figures, kept per day)."""
        day = self.day(today)
        return day is not None and day.traded

    def quantity(self) -> int:
        return self.ledger.quantity if self.ledger is not None else 0


def _last_labels(
    carried: Position | None, trades: tuple[Trade, ...]
) -> tuple[str | None, str | None]:
    """Product and exchange of the position: the latest counted trade's that has one, else the
    carried-in position's."""
    product = carried.product if carried is not None else None
    exchange = carried.exchange if carried is not None else None
    for trade in trades:
        product = trade.product or product
        exchange = trade.exchange or exchange
    return product, exchange


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
    mark: int | None = None
    """Set on a symbol with trades: the arrival number after which its trades count now (to be
    stored with the carried-in position, at once)."""
    book_before: Book | None = None


@dataclass(frozen=True, slots=True)
class TradeChange:
    """What ``add_trade``/``delete_trade`` did: ``added`` or ``deleted``, in ``symbol``;
    ``book_before`` and ``held_before`` are what ``Portfolio.undo_trade`` puts back."""

    owner: str
    symbol: str
    added: Trade | None = None
    deleted: Trade | None = None
    book_before: Book | None = None
    held_before: Position | None = None


class Portfolio:
    """Positions per owner, the last price and previous close per symbol, and valuations.

    Symbols are the registry's trading symbols, as ticks carry them. ``restore`` fills it from
    the store at start; later changes come from the operations, each returning its
    ``PositionChange``. A zero quantity means flat: ``set_position`` with quantity 0 removes the
    position, and ``replace``/``seed`` skip such rows.
    """

    def __init__(self, today: Callable[[], date] | None = None) -> None:
        self._positions: dict[str, dict[str, Position]] = {}
        self._last: dict[str, Decimal] = {}
        self._prev_close: dict[str, Decimal] = {}
        self._books: dict[str, dict[str, Book]] = {}
        self._trade_ids: dict[str, dict[str, Trade]] = {}
        self._seq = 0  # the last arrival number given to a trade
        self._latest: date | None = None  # the IST date of the newest tick
        self._latest_at: datetime | None = None  # and its time
        self._today = today if today is not None else self._tick_day

    def _tick_day(self) -> date:
        return self._latest if self._latest is not None else date.min

    def market_time(self) -> datetime | None:
        """The exchange time of the newest tick seen (``None`` before the first)."""
        return self._latest_at

    def today(self) -> date:
        """The IST date the day figures are for (the injected ``today``, else the newest
        tick's)."""
        return self._today()

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
        book = self._books.get(owner, {}).get(position.symbol)
        if book is not None:
            return self._carry(owner, position.symbol, position, book)
        held = self._positions.setdefault(owner, {})
        previous = held.get(position.symbol)
        held[position.symbol] = position
        before = () if previous is None else (previous,)
        return PositionChange(owner, saved=(position,), before=before)

    def remove_position(self, owner: str, symbol: str) -> PositionChange:
        """Forget ``owner``'s position in ``symbol``; ``before`` is empty if there was none."""
        book = self._books.get(owner, {}).get(symbol)
        if book is not None:
            # Trades made it flat already: nothing to remove (its carried-in row stays, the
            # trades apply on top of it).
            if self.position(owner, symbol) is None:
                return PositionChange(owner)
            return self._carry(owner, symbol, None, book)
        held = self._positions.get(owner, {})
        previous = held.pop(symbol, None)
        if not held:
            self._positions.pop(owner, None)
        before = () if previous is None else (previous,)
        return PositionChange(owner, removed=(symbol,), before=before)

    def replace(self, owner: str, positions: Iterable[Position]) -> PositionChange:
        """Make ``positions`` (zero quantities skipped) all that ``owner`` holds; ``ValueError``
        if a symbol appears twice or the owner has recorded trades, before anything changes."""
        if self._trade_ids.get(owner):
            raise ValueError(f"owner {owner!r} has recorded trades: set positions one by one")
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
        ``None`` when the owner already holds positions or has recorded trades."""
        if self._positions.get(owner) or self._trade_ids.get(owner):
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
        if change.book_before is not None:
            symbol = (*(p.symbol for p in change.saved), *change.removed)[0]
            self._books.setdefault(change.owner, {})[symbol] = change.book_before

    def positions(self, owner: str) -> list[Position]:
        """``owner``'s positions, by symbol."""
        held = self._positions.get(owner, {})
        return [held[s] for s in sorted(held)]

    def position(self, owner: str, symbol: str) -> Position | None:
        """``owner``'s position in ``symbol``, if any."""
        return self._positions.get(owner, {}).get(symbol)

    def held_symbols(self, owner: str) -> list[str]:
        """The symbols listed for ``owner``, sorted: what a ``*`` subscription and
        ``list_positions`` mean (those held, and those trades made flat today)."""
        held = set(self._positions.get(owner, {}))
        today = self.today()
        for symbol, book in self._books.get(owner, {}).items():
            if symbol not in held and book.traded_on(today):
                held.add(symbol)
        return sorted(held)

    def is_listed(self, owner: str, symbol: str) -> bool:
        """Whether ``symbol`` is one of ``held_symbols(owner)``."""
        if symbol in self._positions.get(owner, {}):
            return True
        book = self._books.get(owner, {}).get(symbol)
        return book is not None and book.traded_on(self.today())

    def unlisted_since(self, day: date) -> list[tuple[str, str]]:
        """``(owner, symbol)`` of the flat symbols listed on ``day`` (counted trades that day)
        that are no longer listed: what the day's end takes off ``*``."""
        today = self.today()
        return [
            (owner, symbol)
            for owner, owned in sorted(self._books.items())
            for symbol, book in sorted(owned.items())
            if symbol not in self._positions.get(owner, {})
            and book.traded_on(day)
            and not book.traded_on(today)
        ]

    # --- trades --------------------------------------------------------------------------------

    def restore_trades(
        self, trades: Iterable[tuple[str, Trade]], marks: Iterable[tuple[str, str, int]]
    ) -> int:
        """Add these ``(owner, trade)`` pairs and ``(owner, symbol, mark)`` marks (read back
        from the store) on top of the positions ``restore`` loaded, which are the carried-in
        ones; rebuilds every book. The count of trades. Nothing changes if an iterable raises."""
        by_symbol: dict[tuple[str, str], list[Trade]] = {}
        ids: dict[str, dict[str, Trade]] = {}
        last = self._seq
        for owner, trade in trades:
            by_symbol.setdefault((owner, trade.symbol), []).append(trade)
            ids.setdefault(owner, {})[trade.id] = trade
            last = max(last, trade.seq)
        marked = {(owner, symbol): mark for owner, symbol, mark in marks}
        last = max([last, *marked.values()])
        books: dict[str, dict[str, Book]] = {}
        for key in {*by_symbol, *marked}:
            owner, symbol = key
            listed = tuple(sorted(by_symbol.get(key, ()), key=lambda t: t.seq))
            carried = self._positions.get(owner, {}).get(symbol)
            books.setdefault(owner, {})[symbol] = Book(symbol, carried, marked.get(key, 0), listed)
        self._books, self._trade_ids, self._seq = books, ids, last
        for owner, owned in books.items():
            for symbol, book in owned.items():
                self._hold(owner, symbol, book.position())
        return sum(len(t) for t in ids.values())

    def next_seq(self) -> int:
        """The arrival number the next trade gets."""
        return self._seq + 1

    def add_trade(self, owner: str, trade: Trade) -> TradeChange | ProtocolError:
        """Record ``trade`` (its ``seq`` is replaced by the next arrival number); a trade of the
        same id already recorded is not recorded again (check with :meth:`trade` first).
        ``limit_exceeded`` when the position would pass ``±MAX_QUANTITY``."""
        if trade.id in self._trade_ids.get(owner, {}):
            raise ValueError(f"trade {trade.id!r} already recorded")
        trade = replace(trade, seq=self._seq + 1)
        symbol = trade.symbol
        book = self._books.get(owner, {}).get(symbol)
        carried = book.carried if book is not None else self.position(owner, symbol)
        mark = book.mark if book is not None else 0
        trades = (book.trades if book is not None else ()) + (trade,)
        # A trade later than every counted one extends the FIFO instead of replaying it.
        ledger = extended(book.ledger, trade) if book is not None and book.ledger else None
        new = Book(symbol, carried, mark, trades, ledger=ledger)
        if abs(new.quantity()) > MAX_QUANTITY:
            return _too_large(symbol)
        self._seq = trade.seq
        change = TradeChange(
            owner, symbol, added=trade, book_before=book, held_before=self.position(owner, symbol)
        )
        self._trade_ids.setdefault(owner, {})[trade.id] = trade
        self._set_book(owner, symbol, new)
        return change

    def delete_trade(self, owner: str, trade_id: str) -> TradeChange | ProtocolError | None:
        """Forget ``owner``'s trade ``trade_id``; ``None`` if the owner has none of that id."""
        trade = self._trade_ids.get(owner, {}).get(trade_id)
        if trade is None:
            return None
        symbol = trade.symbol
        book = self._books[owner][symbol]
        new = Book(
            symbol, book.carried, book.mark, tuple(t for t in book.trades if t.id != trade_id)
        )
        if abs(new.quantity()) > MAX_QUANTITY:
            return _too_large(symbol)
        change = TradeChange(
            owner, symbol, deleted=trade, book_before=book, held_before=self.position(owner, symbol)
        )
        del self._trade_ids[owner][trade_id]
        if not self._trade_ids[owner]:
            del self._trade_ids[owner]
        self._set_book(owner, symbol, new)
        return change

    def undo_trade(self, change: TradeChange) -> None:
        """Put back what ``change`` (the latest change of its owner) replaced."""
        owner, symbol = change.owner, change.symbol
        ids = self._trade_ids.setdefault(owner, {})
        if change.added is not None:
            ids.pop(change.added.id, None)
        if change.deleted is not None:
            ids[change.deleted.id] = change.deleted
        if not ids:
            del self._trade_ids[owner]
        books = self._books.setdefault(owner, {})
        if change.book_before is None:
            books.pop(symbol, None)
        else:
            books[symbol] = change.book_before
        if not books:
            del self._books[owner]
        self._hold(owner, symbol, change.held_before)

    def trade(self, owner: str, trade_id: str) -> Trade | None:
        """``owner``'s trade ``trade_id``, if recorded."""
        return self._trade_ids.get(owner, {}).get(trade_id)

    def trades(self, owner: str, symbol: str | None = None) -> list[Trade]:
        """``owner``'s trades (``symbol``'s only, if given), oldest first: by time, then
        arrival."""
        if symbol is not None:
            book = self._books.get(owner, {}).get(symbol)
            found = list(book.trades) if book is not None else []
        else:
            found = list(self._trade_ids.get(owner, {}).values())
        return sorted(found, key=lambda t: (t.time, t.seq))

    def trade_count(self, owner: str) -> int:
        return len(self._trade_ids.get(owner, {}))

    def has_book(self, owner: str, symbol: str) -> bool:
        """Whether ``owner`` has recorded trades (or a mark) in ``symbol``."""
        return symbol in self._books.get(owner, {})

    def _carry(
        self, owner: str, symbol: str, position: Position | None, book: Book
    ) -> PositionChange:
        """``set_position``/``remove_position`` on a symbol with trades: a new carried-in
        position, and only trades recorded from now on count."""
        before = self.position(owner, symbol)
        new = Book(symbol, position, self._seq, book.trades)
        self._set_book(owner, symbol, new)
        return PositionChange(
            owner,
            saved=(position,) if position is not None else (),
            removed=(symbol,) if position is None else (),
            before=(before,) if before is not None else (),
            mark=self._seq,
            book_before=book,
        )

    def _set_book(self, owner: str, symbol: str, book: Book) -> None:
        if book.trades or book.mark:
            self._books.setdefault(owner, {})[symbol] = book
        else:
            owned = self._books.get(owner, {})
            owned.pop(symbol, None)
            if not owned:
                self._books.pop(owner, None)
        self._hold(owner, symbol, book.position())

    def _hold(self, owner: str, symbol: str, position: Position | None) -> None:
        held = self._positions.setdefault(owner, {})
        if position is None:
            held.pop(symbol, None)
        else:
            held[symbol] = position
        if not held:
            del self._positions[owner]

    def owners(self) -> list[str]:
        """Owners holding at least one position, sorted."""
        return sorted(self._positions)

    # --- prices --------------------------------------------------------------------------------

    def on_tick(self, tick: Tick) -> None:
        """Remember the tick's price and previous close (a zero means unknown and is ignored)."""
        at = tick.timestamp
        if self._latest_at is None or at > self._latest_at:
            self._latest_at = at
            self._latest = at.astimezone(IST).date()
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
        holdings = self._holdings(owner)
        return position_value(
            symbol, holdings.get(symbol), holdings.values(), self._last, self._prev_close
        )

    def totals(self, owner: str) -> PortfolioTotals:
        """Only the ``portfolio`` part of ``value``."""
        return portfolio_totals(self._holdings(owner).values(), self._last, self._prev_close)

    def _holdings(self, owner: str) -> dict[str, Holding]:
        """What is valued for each listed symbol of ``owner``."""
        held = self._positions.get(owner, {})
        books = self._books.get(owner, {})
        today = self.today()
        out: dict[str, Holding] = {}
        for symbol in self.held_symbols(owner):
            book = books.get(symbol)
            ledger = book.ledger if book is not None else None
            if book is None or ledger is None:
                out[symbol] = holding_of(held[symbol])
                continue
            position = held.get(symbol)
            product, exchange = _last_labels(book.carried, ledger.trades)
            out[symbol] = Holding(
                symbol,
                ledger.quantity,
                position.average_price if position is not None else None,
                ledger.cost,
                product,
                exchange,
                ledger,
                book.day(today),
            )
        return out


def _too_large(symbol: str) -> ProtocolError:
    return ProtocolError(
        ErrorCode.LIMIT_EXCEEDED,
        f"the position in {symbol!r} would pass ±{MAX_QUANTITY} shares",
        {"symbol": symbol, "limit": MAX_QUANTITY},
    )
