"""The envelope: how one ``BusMessage`` travels as one PUBLISH payload (pure, no I/O).

Integers big-endian, names UTF-8::

    u8   format = 1
    u8   flags: 0x01 deliver, 0x02 drop, 0x04 slot, 0x08 retain, 0x10 published_at, 0x20 seq
    [f64 seconds]             published_at  when 0x10 (wall clock, for the latency metric)
    [u64 seq, u16 n, n]       seq, epoch    when 0x20
    [u16 n, n bytes]          slot          when 0x04
    [u64 version, u16 n, n]   retain        when 0x08 (version: set by Redis, see ``script``)
    payload                   the rest of the bytes

The publish script (``script.lua``) puts the envelope together in Redis from the parts before
and after the version, because only Redis knows the version; so the head
(:func:`envelope_head`) and the retain field (:func:`name_field`) are built here apart.
Every gateway decodes what any producer encodes: this layout is the wire format between them.
"""

from __future__ import annotations

import struct

from tickhub.bus.base import BusMessage

FORMAT = 1
DELIVER = 0x01
DROP = 0x02
HAS_SLOT = 0x04
HAS_RETAIN = 0x08
HAS_TIME = 0x10
HAS_SEQ = 0x20
_KNOWN_FLAGS = DELIVER | DROP | HAS_SLOT | HAS_RETAIN | HAS_TIME | HAS_SEQ

_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_F64 = struct.Struct(">d")

VERSION_SIZE = _U64.size
"""Bytes of the retained version, which also starts every value of a retained hash (so that
their byte order is their update order)."""


def name_field(name: str) -> bytes:
    """``name`` as u16 length + UTF-8 bytes; ``ValueError`` past 65,535 bytes."""
    raw = name.encode()
    if len(raw) > 0xFFFF:
        raise ValueError(f"name too long: {len(raw)} bytes")
    return _U16.pack(len(raw)) + raw


def envelope_head(message: BusMessage) -> bytes:
    """Format, flags, time, seq and slot: the part of the envelope before the retained version."""
    flags = (DELIVER if message.deliver else 0) | (DROP if message.drop else 0)
    if message.slot is not None:
        flags |= HAS_SLOT
    if message.retain is not None:
        flags |= HAS_RETAIN
    if message.published_at:
        flags |= HAS_TIME
    if message.seq:
        flags |= HAS_SEQ
    head = bytes((FORMAT, flags))
    if message.published_at:
        head += _F64.pack(message.published_at)
    if message.seq:
        head += _U64.pack(message.seq) + name_field(message.epoch)
    return head if message.slot is None else head + name_field(message.slot)


def encode_envelope(message: BusMessage, version: int = 0) -> bytes:
    """The bytes published for ``message`` (``version`` is set by Redis for retained ones)."""
    head = envelope_head(message)
    if message.retain is None:
        return head + message.payload
    return head + _U64.pack(version) + name_field(message.retain) + message.payload


def _read_field(data: bytes, pos: int) -> tuple[str, int]:
    if len(data) < pos + 2:
        raise ValueError("truncated envelope")
    (n,) = _U16.unpack_from(data, pos)
    end = pos + 2 + n
    if len(data) < end:
        raise ValueError("truncated envelope")
    return data[pos + 2 : end].decode(), end


def decode_envelope(topic: str, data: bytes) -> tuple[BusMessage, int]:
    """The message and its retained version (0 without ``retain``).

    Raises ``ValueError`` (or ``UnicodeError``) for bytes that are not an envelope of this
    format, so that a reader can skip them without trusting their sender.
    """
    if len(data) < 2 or data[0] != FORMAT:
        raise ValueError("not a tickhub bus envelope")
    flags = data[1]
    if flags & ~_KNOWN_FLAGS:
        raise ValueError(f"unknown envelope flags: {flags:#04x}")
    pos = 2
    slot: str | None = None
    retain: str | None = None
    version = 0
    published_at = 0.0
    seq = 0
    epoch = ""
    if flags & HAS_TIME:
        if len(data) < pos + 8:
            raise ValueError("truncated envelope")
        (published_at,) = _F64.unpack_from(data, pos)
        pos += 8
    if flags & HAS_SEQ:
        if len(data) < pos + 8:
            raise ValueError("truncated envelope")
        (seq,) = _U64.unpack_from(data, pos)
        epoch, pos = _read_field(data, pos + 8)
    if flags & HAS_SLOT:
        slot, pos = _read_field(data, pos)
    if flags & HAS_RETAIN:
        if len(data) < pos + 8:
            raise ValueError("truncated envelope")
        (version,) = _U64.unpack_from(data, pos)
        retain, pos = _read_field(data, pos + 8)
    deliver, drop = bool(flags & DELIVER), bool(flags & DROP)
    message = BusMessage(
        topic,
        data[pos:],
        slot,
        retain,
        deliver,
        drop,
        published_at=published_at,
        seq=seq,
        epoch=epoch,
    )
    return message, version
