"""Server-to-client WebSocket frames, built once and written to many clients (RFC 6455 §5.2)."""

from __future__ import annotations

import struct

_PACK_16 = struct.Struct("!BBH").pack
_PACK_64 = struct.Struct("!BBQ").pack


def text_frame(payload: bytes) -> bytes:
    """A complete text frame: FIN set, unmasked (a server never masks, §5.1)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return _PACK_16(0x81, 126, n) + payload
    return _PACK_64(0x81, 127, n) + payload
