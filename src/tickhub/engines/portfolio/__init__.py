"""Positions and their P&L: the engine behind ``/ws/portfolio`` (pure: no I/O at all).

A position is ``symbol``, ``quantity`` (an int, negative for a short), ``average_price`` (a
``Decimal`` of at least one paisa) and optionally ``product`` (``CNC``/``MIS``/``NRML``) and
``exchange``. Positions belong to an owner; ``""`` is the default (anonymous) owner.

- ``positions``: the position, made from a checked ``set_position`` (``position_of``; the fields
  and their limits are checked in ``tickhub.core.commands``);
- ``files``: the positions-file formats, CSV and JSON (``parse_positions``);
- ``rows``: positions to and from the store's rows;
- ``valuation``: P&L in ``Decimal`` and the wire payload of ``/ws/portfolio``;
- ``trades``: a trade (one fill), its wire object and its store row;
- ``ledger``: FIFO, one symbol's position from its carried-in position and its trades;
- ``book``: the ``Portfolio`` itself: positions and trades per owner, prices, and the
  ``PositionChange``/``TradeChange`` each operation returns.

Reading a positions file and keeping the store in step with the engine are the ingest's
(``tickhub.ingest.portfolio``).
"""

from tickhub.core.errors import PortfolioFileError
from tickhub.engines.portfolio.book import Book, Portfolio, PositionChange, TradeChange
from tickhub.engines.portfolio.files import parse_positions
from tickhub.engines.portfolio.ledger import Ledger, fifo
from tickhub.engines.portfolio.positions import Position, position_of
from tickhub.engines.portfolio.rows import position_from_row, position_to_row
from tickhub.engines.portfolio.trades import Trade, trade_from_row, trade_payload, trade_to_row
from tickhub.engines.portfolio.valuation import (
    PnlFields,
    PortfolioTotals,
    PositionFields,
    PositionValue,
)

__all__ = [
    "Book",
    "Ledger",
    "PnlFields",
    "Portfolio",
    "PortfolioFileError",
    "PortfolioTotals",
    "Position",
    "PositionChange",
    "PositionFields",
    "PositionValue",
    "Trade",
    "TradeChange",
    "fifo",
    "parse_positions",
    "position_from_row",
    "position_of",
    "position_to_row",
    "trade_from_row",
    "trade_payload",
    "trade_to_row",
]
