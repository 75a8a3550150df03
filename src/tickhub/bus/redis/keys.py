"""Where the Redis bus keeps things: the names of its keys and channels.

``prefix`` (``BUS_PREFIX``, ``tickhub`` by default) namespaces them, so that several deployments
can share one Redis::

    {prefix}:t:{topic}   pub/sub channel; every message is one envelope (``codec``)
    {prefix}:r:{topic}   hash: retain name -> u64 version (big-endian) + payload
    {prefix}:v           counter: version of the latest retained update (INCR)
    {prefix}:s:{topic}   hash: resume history of the current producer run: e epoch, f floor,
                         l last seq, r:{name} -> "{seq} " + payload (retained state sent live)
    {prefix}:h:{topic}   stream (MAXLEN history_size): recoverable messages (events, candles)
                         of that run; fields s (seq) and m (the published envelope)

Gateways of one deployment find each other's data only through these names: changing one is a
change of the wire format between processes.
"""

from __future__ import annotations


class Keys:
    """The key and channel names of one ``prefix``."""

    __slots__ = ("channel_prefix", "prefix", "version")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        # What every channel starts with: cut off to get the topic of a received message.
        self.channel_prefix = f"{prefix}:t:".encode()
        # The counter that versions every retained update, across all topics.
        self.version = f"{prefix}:v"

    def channel(self, topic: str) -> bytes:
        return self.channel_prefix + topic.encode()

    def retained(self, topic: str) -> str:
        return f"{self.prefix}:r:{topic}"

    def state(self, topic: str) -> str:
        """The resume history hash (epoch, floor, last seq, retained state)."""
        return f"{self.prefix}:s:{topic}"

    def stream(self, topic: str) -> str:
        """The resume history stream (recoverable messages)."""
        return f"{self.prefix}:h:{topic}"
