"""tickhub: one upstream market feed turned into four WebSocket streams for many front ends."""

__version__ = "0.1.0"
