"""The pure core: domain model, clocks, topic names, instruments and the wire protocol.

Nothing here does I/O or imports a layer above it; every other folder builds on these types.
"""
