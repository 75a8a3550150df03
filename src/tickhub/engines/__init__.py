"""Engines: candles, analysis, alerts and portfolio turn ticks into what the streams carry.

Pure computation on core types: no asyncio, network or database. An engine returns what changed;
the ingest decides what to publish and persist.
"""
