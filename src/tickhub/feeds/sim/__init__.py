"""Simulated NSE market: the default feed, seeded and reproducible.

The folder splits the simulation by reason to change: ``session`` is the trading calendar,
``instrument`` the model of one instrument (price process, trades, order book), ``market`` the pure
clock-free market that drives them on shared factors (``SimMarket.advance_to``), ``pacing`` moves
it in step with an injected ``Clock`` (``MarketPacer``, also the Kite emulator's), ``past`` the
minute bars of the sessions before the start (``SimFeed.past``, what the chart and indicators
start from), and ``feed`` is the Feed around it (``SimFeed``). The same seed, instruments,
start and sequence of ``advance_to`` calls give exactly the same ticks, and the same past.
"""

from __future__ import annotations

from tickhub.feeds.sim.feed import SimFeed
from tickhub.feeds.sim.market import SimMarket
from tickhub.feeds.sim.pacing import MarketPacer
from tickhub.feeds.sim.session import (
    SESSION_SECONDS,
    add_session_time,
    default_start,
    session_start,
)

__all__ = [
    "SESSION_SECONDS",
    "MarketPacer",
    "SimFeed",
    "SimMarket",
    "add_session_time",
    "default_start",
    "session_start",
]
