"""Positions and their P&L: the engine behind ``/ws/portfolio`` (pure: no I/O at all).

A position is ``symbol``, ``quantity`` (an int, negative for a short), ``average_price`` (a
``Decimal`` of at least one paisa) and optionally ``product`` (``CNC``/``MIS``/``NRML``) and
``exchange``. Positions belong to an owner; ``""`` is the default (anonymous) owner.

- ``positions``: the position, made from a checked ``set_position`` (``position_of``; the fields
  and their limits are checked in ``tickhub.core.commands``);
- ``files``: the positions-file formats, CSV and JSON (``parse_positions``);
- ``rows``: positions to and from the store's rows;
- ``valuation``: P&L in ``Decimal`` and the wire payload of ``/ws/portfolio``;
- ``book``: the ``Portfolio`` itself: positions per owner, prices, and the ``PositionChange``
  each operation returns.

Reading a positions file and keeping the store in step with the engine are the ingest's
(``tickhub.ingest.portfolio``).
"""

from tickhub.core.errors import PortfolioFileError
from tickhub.engines.portfolio.book import Portfolio, PositionChange
from tickhub.engines.portfolio.files import parse_positions
from tickhub.engines.portfolio.positions import Position, position_of
from tickhub.engines.portfolio.rows import position_from_row, position_to_row
from tickhub.engines.portfolio.valuation import (
    PnlFields,
    PortfolioTotals,
    PositionFields,
    PositionValue,
)

__all__ = [
    "PnlFields",
    "Portfolio",
    "PortfolioFileError",
    "PortfolioTotals",
    "Position",
    "PositionChange",
    "PositionFields",
    "PositionValue",
    "parse_positions",
    "position_from_row",
    "position_of",
    "position_to_row",
]
