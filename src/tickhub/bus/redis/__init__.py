"""Redis bus: several gateway processes share one producer through Redis pub/sub.

One module per reason to change:

- ``keys``: the names of the keys and channels (the layout several processes share);
- ``codec``: the envelope, one ``BusMessage`` as one PUBLISH payload;
- ``script.lua`` and ``script``: the Lua script that publishes a run of messages atomically,
  and how Python calls it (named operations in, compact arguments out);
- ``writer``: the bounded publish queue and the task that writes it in pipelined batches;
- ``reader``: the subscriber connection, the subscriptions, the barriers and the cache syncs;
- ``subscription``: what is kept per subscribed topic (handlers, retained cache, history);
- ``resume``: the resume history kept in Redis, read back for ``recover``;
- ``connection``: the clients, the reconnect backoff, URLs shown without their password;
- ``sentinel``: ``redis+sentinel://`` URLs, a primary found (and followed) through Sentinels;
- ``bus``: ``RedisBus``, the ``Bus`` contract composed of the above.
"""

from __future__ import annotations

from tickhub.bus.redis.bus import RedisBus
from tickhub.bus.redis.codec import decode_envelope, encode_envelope
from tickhub.bus.redis.connection import redact_url
from tickhub.core.errors import BusUnavailableError

__all__ = ["BusUnavailableError", "RedisBus", "decode_envelope", "encode_envelope", "redact_url"]
