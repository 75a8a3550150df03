"""Kite Connect ticker wire format, sans-I/O: frames in, ``KiteTick`` and ``TextMessage`` out.

The server sends three kinds of WebSocket frames:

1. **Heartbeat**: a binary frame of 1 byte, every couple of seconds when there is no data.
   Any binary frame shorter than 2 bytes decodes to no ticks.
2. **Market data**: a binary envelope of N packets, all integers big-endian::

       offset 0      uint16  N, the number of packets (N = 0 is a valid, empty frame)
       offset 2      uint16  L1, the length of packet 1
       offset 4      L1 bytes, packet 1
       offset 4+L1   uint16  L2, the length of packet 2, and so on

   Worked example, one LTP packet for INFY (token 408065) at 1500.25:
   ``00 01 | 00 08 | 00 06 3a 01 | 00 02 4a 09``.
3. **Text**: JSON ``{"type": "order" | "error" | "message", "data": ...}``; the server has
   also been seen to send ``instruments_meta`` and ``app_code`` (see ``parse_text``).

A packet's kind follows from its length alone, as in every official client:

    ======  ====================================  =======
    length  kind                                  mode
    ======  ====================================  =======
    8       LTP (any segment, indices included)   ltp
    28      index quote                           quote
    32      index full (quote + exchange time)    full
    44      quote (tradable instruments)          quote
    184     full (quote + OI + times + depth)     full
    ======  ====================================  =======

Every field is a 32-bit integer, read **unsigned** as the official clients do (the document says
int32). Quote/full packets: 0 token, 4 last price (an LTP packet ends here), 8 last traded
quantity, 12 average traded price, 16 volume traded today (cumulative), 20 total buy quantity,
24 total sell quantity, 28 open, 32 high, 36 low, 40 close (the previous day's; a quote packet
ends here), 44 last trade time, 48 OI, 52 OI day high, 56 OI day low, 60 exchange timestamp,
64-184 depth. Index packets order OHLC differently: 0 token, 4 last price, 8 **high**, 12
**low**, 16 **open**, 20 **close**, 24 a price change that every official client ignores (and so
do we), 28 exchange timestamp (full only). Depth is ten 12-byte entries, bids first (64, 76, 88,
100, 112) then offers (124, 136, 148, 160, 172), best level first; an entry is uint32 quantity,
uint32 price, **uint16** orders and 2 bytes of padding.

``instrument_token & 0xFF`` is the segment. Prices are integers in units of ``1/divisor(segment)``
rupees: 10,000,000 for currency derivatives (cds, 3), 10,000 for BSE currency (bcd, 6) and, as in
kiteconnect 5.2.2, for segment 12 (nco), 100 (paise) otherwise. Quantities, volume, OI and
timestamps are not scaled. Timestamps are epoch seconds; we return them timezone-aware in ``IST``
(the official Python client returns naive host-local times) and ``None`` for 0. Instruments of
the indices segment (9) are not tradable.

``change`` is the percent change against the previous close, ``(last - close) * 100 / close`` and
0 when the close is 0, as pykiteconnect and kiteconnectjs compute it (gokiteconnect's
``NetChange`` is absolute; ``model.Tick.change`` is absolute too and is derived from the prices).

Errors: a packet of any other length is not an error (the official clients skip it too):
``parse_packet`` returns ``None`` and ``parse_frame`` skips it, telling ``on_unknown`` so the
caller can count and log it. An envelope that is cut short (a length header or a packet running
past the end of the frame) is an error, ``KiteParseError`` with the byte offset, and the frame
yields no ticks at all: the whole envelope is checked before any packet is decoded. Bytes after
the N-th packet are ignored, as the official clients do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from struct import Struct
from types import MappingProxyType
from typing import Any, Final, Literal

from tickhub.core.errors import KiteParseError
from tickhub.core.model import IST, Depth, DepthLevel, Instrument, Tick

__all__ = [
    "DEFAULT_DIVISOR",
    "DEPTH_LEVELS",
    "FULL_LENGTH",
    "INDEX_FULL_LENGTH",
    "INDEX_QUOTE_LENGTH",
    "INDICES_SEGMENT",
    "LTP_LENGTH",
    "MODES",
    "PACKET_LENGTHS",
    "QUOTE_LENGTH",
    "SEGMENT_CODES",
    "SEGMENT_DIVISORS",
    "TEXT_KINDS",
    "KiteMode",
    "KiteParseError",
    "KiteTick",
    "TextMessage",
    "divisor",
    "parse_frame",
    "parse_packet",
    "parse_text",
    "percent_change",
    "segment_of",
    "split_packets",
    "to_tick",
]

KiteMode = Literal["ltp", "quote", "full"]
MODES: Final[tuple[KiteMode, ...]] = ("ltp", "quote", "full")

SEGMENT_CODES: Final[Mapping[str, int]] = MappingProxyType(
    {
        "nse": 1,
        "nfo": 2,
        "cds": 3,
        "bse": 4,
        "bfo": 5,
        "bcd": 6,
        "mcx": 7,
        "mcxsx": 8,
        "indices": 9,
        "nco": 12,
    }
)
"""Segment codes (the low byte of an instrument token), as named by pykiteconnect."""

INDICES_SEGMENT: Final = 9
DEFAULT_DIVISOR: Final = 100
_DIVISORS: Final[dict[int, int]] = {3: 10_000_000, 6: 10_000, 12: 10_000}
SEGMENT_DIVISORS: Final[Mapping[int, int]] = MappingProxyType(_DIVISORS)
"""Price divisors of the segments that do not quote in paise; every other segment uses 100."""

LTP_LENGTH: Final = 8
INDEX_QUOTE_LENGTH: Final = 28
INDEX_FULL_LENGTH: Final = 32
QUOTE_LENGTH: Final = 44
FULL_LENGTH: Final = 184
PACKET_LENGTHS: Final = frozenset(
    {LTP_LENGTH, INDEX_QUOTE_LENGTH, INDEX_FULL_LENGTH, QUOTE_LENGTH, FULL_LENGTH}
)
DEPTH_LEVELS: Final = 5

# Packet layouts, shared with ``encode``. Depth entries are "IIH2x": quantity, price, orders, pad.
U16: Final = Struct(">H")
LTP_PACKET: Final = Struct(">2I")
INDEX_QUOTE_PACKET: Final = Struct(">7I")
INDEX_FULL_PACKET: Final = Struct(">8I")
QUOTE_PACKET: Final = Struct(">11I")
FULL_PACKET: Final = Struct(">16I" + "IIH2x" * 2 * DEPTH_LEVELS)
assert LTP_PACKET.size == LTP_LENGTH
assert INDEX_QUOTE_PACKET.size == INDEX_QUOTE_LENGTH
assert INDEX_FULL_PACKET.size == INDEX_FULL_LENGTH
assert QUOTE_PACKET.size == QUOTE_LENGTH
assert FULL_PACKET.size == FULL_LENGTH

TEXT_KINDS: Final = frozenset({"order", "error", "message"})
"""Text message types the Kite documentation defines."""


@dataclass(frozen=True, slots=True)
class KiteTick:
    """One decoded packet, with the field names of pykiteconnect (``ohlc`` flattened).

    Fields a packet kind does not carry are ``None``: an LTP packet has only the first four; an
    index packet adds ``open``/``high``/``low``/``close``/``change`` and, in full mode,
    ``exchange_timestamp``; a quote packet has everything up to ``change``; a full packet has
    every field (timestamps may still be ``None`` when the exchange sent 0). ``depth`` keeps all
    five levels a side as sent, empty levels (all zeros) included.
    """

    mode: KiteMode
    instrument_token: int
    tradable: bool
    last_price: float
    last_traded_quantity: int | None = None
    average_traded_price: float | None = None
    volume_traded: int | None = None
    total_buy_quantity: int | None = None
    total_sell_quantity: int | None = None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    close: float | None = None
    change: float | None = None
    last_trade_time: datetime | None = None
    oi: int | None = None
    oi_day_high: int | None = None
    oi_day_low: int | None = None
    exchange_timestamp: datetime | None = None
    depth: Depth | None = None

    @property
    def segment(self) -> int:
        return self.instrument_token & 0xFF


@dataclass(frozen=True, slots=True)
class TextMessage:
    """A JSON text frame: ``kind`` is its ``type``, ``data`` its ``data`` (``None`` if absent).

    ``message`` is the whole decoded object, for types that carry more than ``data`` (the
    ``app_code`` message has a top-level ``timestamp``). Types outside ``TEXT_KINDS`` are
    returned too, with ``known`` false, so the caller decides to ignore or log them.
    """

    kind: str
    data: Any
    message: dict[str, Any]

    @property
    def known(self) -> bool:
        return self.kind in TEXT_KINDS


def segment_of(token: int) -> int:
    """The segment code of an instrument token (its low byte)."""
    return token & 0xFF


def divisor(segment: int) -> int:
    """What a raw price of ``segment`` is divided by to give rupees."""
    return _DIVISORS.get(segment, DEFAULT_DIVISOR)


def percent_change(last_price: float, close: float) -> float:
    """Percent change against the previous close as the official clients compute it (0 if no
    close)."""
    if close == 0:
        return 0.0
    return (last_price - close) * 100 / close


def split_packets(frame: bytes) -> list[bytes]:
    """The packets of a binary frame, in order; ``[]`` for a heartbeat or an N = 0 frame.

    Raises ``KiteParseError`` with the offset when the envelope runs past the end of the frame.
    """
    return [frame[start:end] for start, end in _spans(frame)]


def parse_packet(packet: bytes) -> KiteTick | None:
    """Decode one packet; ``None`` for a length no official client knows (log and move on)."""
    return _decode(packet, 0, len(packet))


def parse_frame(
    frame: bytes, *, on_unknown: Callable[[bytes], None] | None = None
) -> list[KiteTick]:
    """Decode a binary frame into its ticks, in packet order; ``[]`` for a heartbeat.

    Packets of unknown length are skipped; ``on_unknown`` (if given) is called with each. Raises
    ``KiteParseError`` for a truncated envelope, before decoding any packet.
    """
    ticks: list[KiteTick] = []
    for start, end in _spans(frame):
        tick = _decode(frame, start, end - start)
        if tick is not None:
            ticks.append(tick)
        elif on_unknown is not None:
            on_unknown(frame[start:end])
    return ticks


def parse_text(text: str | bytes) -> TextMessage | None:
    """Decode a JSON text frame; ``None`` for anything that is not a JSON object with a string
    ``type`` (invalid JSON or UTF-8 included). Unknown types come back with ``known`` false."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    if not isinstance(message, dict):
        return None
    kind = message.get("type")
    if not isinstance(kind, str):
        return None
    return TextMessage(kind, message.get("data"), message)


def to_tick(kt: KiteTick, instrument: Instrument, received_at: datetime) -> Tick:
    """The domain ``Tick`` of a decoded packet for ``instrument``.

    ``timestamp`` is the exchange timestamp, else the last trade time, else ``received_at`` (which
    must be timezone-aware; LTP and index quote packets carry no time), all in ``IST``. Fields the
    packet lacks become the ``Tick`` defaults (0), so an LTP tick has volume 0: do not take it for
    a reset of the day's volume. Empty depth levels (all zeros) are dropped.
    """
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise ValueError(f"received_at must be timezone-aware, got {received_at!r}")
    timestamp = kt.exchange_timestamp
    if timestamp is None:
        timestamp = kt.last_trade_time
        if timestamp is None:
            timestamp = received_at.astimezone(IST)
    depth = kt.depth
    if depth is not None:
        depth = Depth(
            tuple(level for level in depth.buy if level != _EMPTY_LEVEL),
            tuple(level for level in depth.sell if level != _EMPTY_LEVEL),
        )
    return Tick(
        symbol=instrument.tradingsymbol,
        instrument_token=kt.instrument_token,
        timestamp=timestamp,
        price=kt.last_price,
        volume=kt.volume_traded or 0,
        last_quantity=kt.last_traded_quantity or 0,
        average_price=kt.average_traded_price or 0.0,
        buy_quantity=kt.total_buy_quantity or 0,
        sell_quantity=kt.total_sell_quantity or 0,
        open=kt.open or 0.0,
        high=kt.high or 0.0,
        low=kt.low or 0.0,
        prev_close=kt.close or 0.0,
        last_trade_time=kt.last_trade_time,
        oi=kt.oi or 0,
        depth=depth,
        tradable=kt.tradable,
    )


_EMPTY_LEVEL: Final = DepthLevel(0.0, 0, 0)


def _spans(frame: bytes) -> list[tuple[int, int]]:
    size = len(frame)
    if size < 2:
        return []
    (count,) = U16.unpack_from(frame, 0)
    spans: list[tuple[int, int]] = []
    pos = 2
    for number in range(1, count + 1):
        if pos + 2 > size:
            raise KiteParseError(
                f"truncated frame: length of packet {number} of {count} missing at offset {pos} "
                f"(frame is {size} bytes)",
                pos,
            )
        (length,) = U16.unpack_from(frame, pos)
        start = pos + 2
        end = start + length
        if end > size:
            raise KiteParseError(
                f"truncated frame: packet {number} of {count} at offset {start} declares "
                f"{length} bytes, {size - start} remain",
                start,
            )
        spans.append((start, end))
        pos = end
    return spans


def _time(epoch: int) -> datetime | None:
    return datetime.fromtimestamp(epoch, IST) if epoch else None


def _quote_fields(v: tuple[int, ...], div: int, last: float, close: float) -> dict[str, Any]:
    """Bytes 8-44 of a quote or full packet (both start the same way)."""
    return {
        "last_traded_quantity": v[2],
        "average_traded_price": v[3] / div,
        "volume_traded": v[4],
        "total_buy_quantity": v[5],
        "total_sell_quantity": v[6],
        "open": v[7] / div,
        "high": v[8] / div,
        "low": v[9] / div,
        "close": close,
        "change": percent_change(last, close),
    }


_LAYOUTS: Final[dict[int, Struct]] = {
    FULL_LENGTH: FULL_PACKET,
    QUOTE_LENGTH: QUOTE_PACKET,
    LTP_LENGTH: LTP_PACKET,
    INDEX_QUOTE_LENGTH: INDEX_QUOTE_PACKET,
    INDEX_FULL_LENGTH: INDEX_FULL_PACKET,
}


def _decode(buf: bytes, offset: int, length: int) -> KiteTick | None:
    # Every kind starts with the token and the last price; the rest follows from the length.
    layout = _LAYOUTS.get(length)
    if layout is None:
        return None
    v = layout.unpack_from(buf, offset)
    token = v[0]
    segment = token & 0xFF
    div = _DIVISORS.get(segment, DEFAULT_DIVISOR)
    tradable = segment != INDICES_SEGMENT
    last = v[1] / div
    if length in (FULL_LENGTH, QUOTE_LENGTH):
        fields = _quote_fields(v, div, last, v[10] / div)
        if length == QUOTE_LENGTH:
            return KiteTick("quote", token, tradable, last, **fields)
        return KiteTick(
            "full",
            token,
            tradable,
            last,
            **fields,
            last_trade_time=_time(v[11]),
            oi=v[12],
            oi_day_high=v[13],
            oi_day_low=v[14],
            exchange_timestamp=_time(v[15]),
            depth=Depth(
                tuple(DepthLevel(v[i + 1] / div, v[i], v[i + 2]) for i in range(16, 31, 3)),
                tuple(DepthLevel(v[i + 1] / div, v[i], v[i + 2]) for i in range(31, 46, 3)),
            ),
        )
    if length == LTP_LENGTH:
        return KiteTick("ltp", token, tradable, last)
    full = length == INDEX_FULL_LENGTH
    close = v[5] / div
    return KiteTick(
        "full" if full else "quote",
        token,
        tradable,
        last,
        high=v[2] / div,
        low=v[3] / div,
        open=v[4] / div,
        close=close,
        change=percent_change(last, close),
        exchange_timestamp=_time(v[7]) if full else None,
    )
