"""Kite Connect ticker feed (Zerodha's market-data WebSocket), in the nautilus adapter shape.

- ``parse``: the pure wire layer, bytes and JSON text frames in, ``KiteTick`` / ``TextMessage``
  out, plus ``to_tick`` from a ``KiteTick`` to the domain ``Tick``. No I/O, no asyncio.
- ``encode``: the reverse, ``Tick`` / ``KiteTick`` to packets and frames, for the exchange emulator
  and tests.
- ``client``: ``KiteFeed``, the asyncio shell around ``parse``, and its status; made of
  ``subscriptions`` (which tokens on which connection, in which mode), ``session`` (connect,
  supervise, back off and reconnect one connection), ``frames`` (frames to ticks, stream errors:
  the hot path), ``tokens`` (where the access token comes from) and ``connection`` (the record of
  one connection slot they share).
- ``tickhub.devtools.kite_emulator``: a local Kite ticker server built on ``encode``, for tests
  and demos.

The wire format is described byte by byte in ``parse``. This package imports nothing on its own:
import ``tickhub.feeds.kite.parse`` or ``.encode`` for the pure layers; only ``client`` and
``session`` (and the emulator) pull in a network library.
"""
