"""Kite ticker wire format, the server's side: ticks to packets and frames (for the emulator).

The exact inverse of ``parse`` (see its docstring for the layout): prices are multiplied by the
segment's divisor and rounded to an integer, timestamps become epoch seconds (``None`` is sent as
0), and every field must fit an unsigned 32-bit integer (orders: 16 bits) or ``ValueError`` names
it. Negative prices cannot be sent: the official clients read every field unsigned.

``tick_to_kite`` turns a domain ``Tick`` into the ``KiteTick`` a client would decode, already
quantized to the wire (prices in whole units of the divisor, whole-second IST timestamps, five
depth levels a side), so ``parse_packet(encode_packet(kt)) == kt`` for any ``kt`` it returns.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Final, TypedDict

from tickhub.core.model import IST, Depth, DepthLevel, Tick
from tickhub.feeds.kite.parse import (
    DEPTH_LEVELS,
    FULL_PACKET,
    INDEX_FULL_PACKET,
    INDEX_QUOTE_PACKET,
    INDICES_SEGMENT,
    LTP_PACKET,
    MODES,
    QUOTE_PACKET,
    U16,
    KiteMode,
    KiteTick,
    divisor,
    percent_change,
)

__all__ = [
    "HEARTBEAT",
    "encode_frame",
    "encode_full",
    "encode_index_full",
    "encode_index_quote",
    "encode_ltp",
    "encode_packet",
    "encode_quote",
    "tick_to_kite",
]

HEARTBEAT: Final = b"\x00"
"""The 1-byte binary frame the server sends when it has no data."""

_UINT32_MAX: Final = 0xFFFF_FFFF
_UINT16_MAX: Final = 0xFFFF
_EMPTY_LEVEL: Final = DepthLevel(0.0, 0, 0)


def encode_ltp(token: int, last_price: float) -> bytes:
    """An 8-byte LTP packet."""
    div = _divisor_of(token)
    return LTP_PACKET.pack(_token(token), _price("last_price", last_price, div))


def _quote_fields(
    div: int,
    last_price: float,
    last_traded_quantity: int,
    average_traded_price: float,
    volume_traded: int,
    total_buy_quantity: int,
    total_sell_quantity: int,
    open: float,
    high: float,
    low: float,
    close: float,
) -> tuple[int, ...]:
    """Bytes 4-44, shared by the quote and the full packet."""
    return (
        _price("last_price", last_price, div),
        _uint("last_traded_quantity", last_traded_quantity),
        _price("average_traded_price", average_traded_price, div),
        _uint("volume_traded", volume_traded),
        _uint("total_buy_quantity", total_buy_quantity),
        _uint("total_sell_quantity", total_sell_quantity),
        _price("open", open, div),
        _price("high", high, div),
        _price("low", low, div),
        _price("close", close, div),
    )


def encode_quote(
    token: int,
    *,
    last_price: float,
    last_traded_quantity: int = 0,
    average_traded_price: float = 0.0,
    volume_traded: int = 0,
    total_buy_quantity: int = 0,
    total_sell_quantity: int = 0,
    open: float = 0.0,
    high: float = 0.0,
    low: float = 0.0,
    close: float = 0.0,
) -> bytes:
    """A 44-byte quote packet (tradable instruments)."""
    div = _divisor_of(token)
    return QUOTE_PACKET.pack(
        _token(token),
        *_quote_fields(
            div,
            last_price,
            last_traded_quantity,
            average_traded_price,
            volume_traded,
            total_buy_quantity,
            total_sell_quantity,
            open,
            high,
            low,
            close,
        ),
    )


def encode_full(
    token: int,
    *,
    last_price: float,
    last_traded_quantity: int = 0,
    average_traded_price: float = 0.0,
    volume_traded: int = 0,
    total_buy_quantity: int = 0,
    total_sell_quantity: int = 0,
    open: float = 0.0,
    high: float = 0.0,
    low: float = 0.0,
    close: float = 0.0,
    last_trade_time: datetime | None = None,
    oi: int = 0,
    oi_day_high: int = 0,
    oi_day_low: int = 0,
    exchange_timestamp: datetime | None = None,
    depth: Depth | None = None,
) -> bytes:
    """A 184-byte full packet; missing depth levels (up to five a side) are sent as zeros."""
    div = _divisor_of(token)
    levels: list[int] = []
    for side, name in _sides(depth or Depth()):
        if len(side) > DEPTH_LEVELS:
            raise ValueError(f"depth.{name} has {len(side)} levels, at most {DEPTH_LEVELS} fit")
        for i in range(DEPTH_LEVELS):
            level = side[i] if i < len(side) else _EMPTY_LEVEL
            where = f"depth.{name}[{i}]"
            levels.append(_uint(f"{where}.quantity", level.quantity))
            levels.append(_price(f"{where}.price", level.price, div))
            levels.append(_uint(f"{where}.orders", level.orders, _UINT16_MAX))
    return FULL_PACKET.pack(
        _token(token),
        *_quote_fields(
            div,
            last_price,
            last_traded_quantity,
            average_traded_price,
            volume_traded,
            total_buy_quantity,
            total_sell_quantity,
            open,
            high,
            low,
            close,
        ),
        _epoch("last_trade_time", last_trade_time),
        _uint("oi", oi),
        _uint("oi_day_high", oi_day_high),
        _uint("oi_day_low", oi_day_low),
        _epoch("exchange_timestamp", exchange_timestamp),
        *levels,
    )


def encode_index_quote(
    token: int,
    *,
    last_price: float,
    open: float = 0.0,
    high: float = 0.0,
    low: float = 0.0,
    close: float = 0.0,
) -> bytes:
    """A 28-byte index quote packet (high, low, open, close order on the wire)."""
    return INDEX_QUOTE_PACKET.pack(*_index_fields(token, last_price, open, high, low, close))


def encode_index_full(
    token: int,
    *,
    last_price: float,
    open: float = 0.0,
    high: float = 0.0,
    low: float = 0.0,
    close: float = 0.0,
    exchange_timestamp: datetime | None = None,
) -> bytes:
    """A 32-byte index full packet: the index quote plus the exchange timestamp."""
    return INDEX_FULL_PACKET.pack(
        *_index_fields(token, last_price, open, high, low, close),
        _epoch("exchange_timestamp", exchange_timestamp),
    )


def encode_packet(kt: KiteTick) -> bytes:
    """The packet ``parse_packet`` decodes back to ``kt``: its kind follows ``kt.mode`` and
    ``kt.tradable`` (not tradable: an index packet); fields that are ``None`` are sent as 0.

    The decoder takes ``tradable`` from the token's segment, so a tick whose ``tradable`` disagrees
    with its segment (an index packet under an NSE token, which Kite never sends) does not come
    back unchanged.
    """
    token = kt.instrument_token
    if kt.mode == "ltp":
        return encode_ltp(token, kt.last_price)
    if kt.mode not in MODES:
        raise ValueError(f"unknown mode: {kt.mode!r}")
    ohlc: _Ohlc = {
        "open": kt.open or 0.0,
        "high": kt.high or 0.0,
        "low": kt.low or 0.0,
        "close": kt.close or 0.0,
    }
    if not kt.tradable:
        if kt.mode == "quote":
            return encode_index_quote(token, last_price=kt.last_price, **ohlc)
        return encode_index_full(
            token, last_price=kt.last_price, exchange_timestamp=kt.exchange_timestamp, **ohlc
        )
    quote: _Quote = {
        "last_price": kt.last_price,
        "last_traded_quantity": kt.last_traded_quantity or 0,
        "average_traded_price": kt.average_traded_price or 0.0,
        "volume_traded": kt.volume_traded or 0,
        "total_buy_quantity": kt.total_buy_quantity or 0,
        "total_sell_quantity": kt.total_sell_quantity or 0,
    }
    if kt.mode == "quote":
        return encode_quote(token, **quote, **ohlc)
    return encode_full(
        token,
        **quote,
        **ohlc,
        last_trade_time=kt.last_trade_time,
        oi=kt.oi or 0,
        oi_day_high=kt.oi_day_high or 0,
        oi_day_low=kt.oi_day_low or 0,
        exchange_timestamp=kt.exchange_timestamp,
        depth=kt.depth,
    )


class _Ohlc(TypedDict):
    open: float
    high: float
    low: float
    close: float


class _Quote(TypedDict):
    """What a quote packet adds to the price and OHLC (a full packet starts with it too)."""

    last_price: float
    last_traded_quantity: int
    average_traded_price: float
    volume_traded: int
    total_buy_quantity: int
    total_sell_quantity: int


def encode_frame(packets: Sequence[bytes]) -> bytes:
    """The binary envelope around ``packets`` (no packets: the N = 0 frame ``00 00``)."""
    if len(packets) > _UINT16_MAX:
        raise ValueError(f"too many packets for one frame: {len(packets)} (max {_UINT16_MAX})")
    parts = [U16.pack(len(packets))]
    for number, packet in enumerate(packets, 1):
        if len(packet) > _UINT16_MAX:
            raise ValueError(f"packet {number} too long for a frame: {len(packet)} bytes")
        parts.append(U16.pack(len(packet)))
        parts.append(packet)
    return b"".join(parts)


def tick_to_kite(tick: Tick, instrument_token: int, mode: KiteMode | str) -> KiteTick:
    """What a Kite client would decode for ``tick`` sent in ``mode`` under ``instrument_token``.

    The token's segment decides the divisor and the packet family (indices: index packets,
    ``tradable`` false), whatever ``tick.tradable`` says, as a client decides from the token.
    Prices are rounded to the divisor, timestamps truncated to whole seconds in ``IST``
    (``exchange_timestamp`` is ``tick.timestamp``), depth padded or cut to five levels a side
    (``None`` becomes empty levels, as Kite sends them). A ``Tick`` carries no OI range, so
    ``oi_day_high`` and ``oi_day_low`` are both ``tick.oi``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode: {mode!r} (allowed: {', '.join(MODES)})")
    segment = instrument_token & 0xFF
    div = divisor(segment)
    tradable = segment != INDICES_SEGMENT
    last = _quantize(tick.price, div)
    if mode == "ltp":
        return KiteTick("ltp", instrument_token, tradable, last)
    close = _quantize(tick.prev_close, div)
    open_, high, low = (_quantize(p, div) for p in (tick.open, tick.high, tick.low))
    change = percent_change(last, close)
    if not tradable:
        return KiteTick(
            "full" if mode == "full" else "quote",
            instrument_token,
            False,
            last,
            open=open_,
            high=high,
            low=low,
            close=close,
            change=change,
            exchange_timestamp=_whole_second(tick.timestamp) if mode == "full" else None,
        )
    quote = KiteTick(
        "quote",
        instrument_token,
        True,
        last,
        last_traded_quantity=tick.last_quantity,
        average_traded_price=_quantize(tick.average_price, div),
        volume_traded=tick.volume,
        total_buy_quantity=tick.buy_quantity,
        total_sell_quantity=tick.sell_quantity,
        open=open_,
        high=high,
        low=low,
        close=close,
        change=change,
    )
    if mode == "quote":
        return quote
    depth = tick.depth or Depth()
    return dataclasses.replace(
        quote,
        mode="full",
        last_trade_time=_whole_second(tick.last_trade_time),
        oi=tick.oi,
        oi_day_high=tick.oi,
        oi_day_low=tick.oi,
        exchange_timestamp=_whole_second(tick.timestamp),
        depth=Depth(_five(depth.buy, div), _five(depth.sell, div)),
    )


def _sides(depth: Depth) -> tuple[tuple[Sequence[DepthLevel], str], ...]:
    return ((depth.buy, "buy"), (depth.sell, "sell"))


def _index_fields(
    token: int, last_price: float, open: float, high: float, low: float, close: float
) -> tuple[int, ...]:
    div = _divisor_of(token)
    raw_last = _price("last_price", last_price, div)
    raw_close = _price("close", close, div)
    return (
        _token(token),
        raw_last,
        _price("high", high, div),
        _price("low", low, div),
        _price("open", open, div),
        raw_close,
        # The absolute change the document lists at 24..28; clients ignore it. Two's complement.
        (raw_last - raw_close) & _UINT32_MAX,
    )


def _divisor_of(token: int) -> int:
    return divisor(token & 0xFF)


def _token(token: int) -> int:
    return _uint("instrument_token", token)


def _uint(name: str, value: int, maximum: int = _UINT32_MAX) -> int:
    if not 0 <= value <= maximum:
        raise ValueError(f"{name} out of range 0..{maximum}: {value!r}")
    return value


def _price(name: str, value: float, div: int) -> int:
    if not math.isfinite(value):
        raise ValueError(f"{name} is not a finite price: {value!r}")
    raw = round(value * div)
    if not 0 <= raw <= _UINT32_MAX:
        raise ValueError(f"{name} out of range for the wire (divisor {div}): {value!r}")
    return raw


def _epoch(name: str, value: datetime | None) -> int:
    if value is None:
        return 0
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")
    return _uint(name, math.floor(value.timestamp()))


def _quantize(price: float, div: int) -> float:
    return round(price * div) / div if math.isfinite(price) else price


def _whole_second(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"tick times must be timezone-aware, got {value!r}")
    epoch = math.floor(value.timestamp())
    return datetime.fromtimestamp(epoch, IST) if epoch else None


def _five(levels: Sequence[DepthLevel], div: int) -> tuple[DepthLevel, ...]:
    chosen = [
        DepthLevel(_quantize(d.price, div), d.quantity, d.orders) for d in levels[:DEPTH_LEVELS]
    ]
    chosen += [_EMPTY_LEVEL] * (DEPTH_LEVELS - len(chosen))
    return tuple(chosen)
