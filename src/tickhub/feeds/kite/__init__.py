"""Kite Connect ticker feed (Zerodha's market-data WebSocket), in the nautilus adapter shape.

- ``parse``: the pure wire layer, bytes and JSON text frames in, ``KiteTick`` / ``TextMessage``
  out, plus ``to_tick`` from a ``KiteTick`` to the domain ``Tick``. No I/O, no asyncio.
- ``encode``: the reverse, ``Tick`` / ``KiteTick`` to packets and frames, for the exchange emulator
  and tests.
- ``client``: the asyncio shell that connects, subscribes, reconnects and calls ``parse``.
- ``emulator``: a local Kite ticker server built on ``encode``, for tests and demos.

The wire format is described byte by byte in ``parse``. This package imports nothing on its own:
import ``tickhub.feeds.kite.parse`` or ``.encode`` for the pure layers; only ``client`` and
``emulator`` pull in a network library.
"""
