"""Kite ticker wire layer: ``parse`` and ``encode``, checked against kiteconnect 5.2.2.

The official Python client (``KiteTicker._parse_binary``) is the oracle: for any bytes it can
decode, ours must agree field by field. Its quirks are accounted for, not copied: it returns naive
host-local datetimes (compared here through epoch seconds) and turns a 0 timestamp into 1970
where we return ``None``; it crashes on packets shorter than 4 bytes and on truncated frames,
where we skip the packet or raise ``KiteParseError``.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import TESTS_DIR
from tickhub.core.model import IST, Depth, DepthLevel, Instrument, Tick
from tickhub.feeds.kite.encode import (
    HEARTBEAT,
    encode_frame,
    encode_full,
    encode_index_full,
    encode_index_quote,
    encode_ltp,
    encode_packet,
    encode_quote,
    tick_to_kite,
)
from tickhub.feeds.kite.parse import (
    FULL_LENGTH,
    INDEX_FULL_LENGTH,
    INDEX_QUOTE_LENGTH,
    LTP_LENGTH,
    PACKET_LENGTHS,
    QUOTE_LENGTH,
    SEGMENT_CODES,
    SEGMENT_DIVISORS,
    KiteParseError,
    KiteTick,
    TextMessage,
    divisor,
    parse_frame,
    parse_packet,
    parse_text,
    segment_of,
    split_packets,
    to_tick,
)

DATA = TESTS_DIR / "data" / "kite" / "frames.json"
SEGMENTS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12]
IST_OFFSET = timedelta(hours=5, minutes=30)
INFY = Instrument(408065, 1594, "INFY", "INFOSYS", "NSE", "NSE", "EQ")
NIFTY = Instrument(256265, 1001, "NIFTY 50", "NIFTY 50", "NSE", "INDICES", "EQ", 0.05, 0)
UTC_NOW = datetime(2024, 1, 2, 4, 0, tzinfo=UTC)


# --- the oracle ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oracle() -> Any:
    kiteconnect = pytest.importorskip("kiteconnect")
    # An instance without __init__: no connection, no reactor; _parse_binary is pure.
    return kiteconnect.KiteTicker.__new__(kiteconnect.KiteTicker)


_SCALARS = (
    "last_traded_quantity",
    "average_traded_price",
    "volume_traded",
    "total_buy_quantity",
    "total_sell_quantity",
    "change",
    "oi",
    "oi_day_high",
    "oi_day_low",
)


def assert_same_time(ours: datetime | None, theirs: datetime | None) -> None:
    """Ours is tz-aware IST or None for epoch 0; the oracle's is naive host-local."""
    if ours is None:
        assert theirs == datetime.fromtimestamp(0)
        return
    assert ours.utcoffset() == IST_OFFSET
    epoch = ours.timestamp()
    assert epoch == int(epoch)
    assert theirs == datetime.fromtimestamp(int(epoch))


def assert_agrees(ours: KiteTick, theirs: dict[str, Any]) -> None:
    """Field by field; a field the oracle leaves out must be None in ours, and vice versa."""
    assert ours.mode == theirs["mode"]
    assert ours.instrument_token == theirs["instrument_token"]
    assert ours.tradable is theirs["tradable"]
    assert ours.last_price == theirs["last_price"]
    for name in _SCALARS:
        assert getattr(ours, name) == theirs.get(name), name
    ohlc = theirs.get("ohlc", {})
    assert (ours.open, ours.high, ours.low, ours.close) == (
        ohlc.get("open"),
        ohlc.get("high"),
        ohlc.get("low"),
        ohlc.get("close"),
    )
    for name in ("last_trade_time", "exchange_timestamp"):
        if name in theirs:
            assert_same_time(getattr(ours, name), theirs[name])
        else:
            assert getattr(ours, name) is None, name
    if "depth" in theirs:
        assert ours.depth is not None
        for side in ("buy", "sell"):
            expected = [
                DepthLevel(level["price"], level["quantity"], level["orders"])
                for level in theirs["depth"][side]
            ]
            assert list(getattr(ours.depth, side)) == expected, side
    else:
        assert ours.depth is None


def assert_frame_agrees(oracle: Any, frame: bytes) -> list[KiteTick]:
    ours = parse_frame(frame)
    theirs = oracle._parse_binary(frame)
    assert len(ours) == len(theirs)
    for mine, official in zip(ours, theirs, strict=True):
        assert_agrees(mine, official)
    return ours


# --- strategies ---------------------------------------------------------------------------------


def tokens(segment: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[int]:
    segments = st.sampled_from(SEGMENTS) if segment is None else segment
    return st.builds(lambda et, seg: (et << 8) | seg, st.integers(0, 2**24 - 1), segments)


@st.composite
def raw_packets(draw: st.DrawFn, length: int | None = None, token: int | None = None) -> bytes:
    """Random bytes of a known packet length (every field value possible, padding too)."""
    size = draw(st.sampled_from(sorted(PACKET_LENGTHS))) if length is None else length
    body = draw(st.binary(min_size=size - 4, max_size=size - 4))
    return struct.pack(">I", draw(tokens()) if token is None else token) + body


@st.composite
def unknown_packets(draw: st.DrawFn, min_size: int = 0) -> bytes:
    size = draw(st.integers(min_size, 250).filter(lambda n: n not in PACKET_LENGTHS))
    return draw(st.binary(min_size=size, max_size=size))


def _raw(length: int, token: int, **values: int) -> bytes:
    """A packet of zeros but for the token and the named uint32 fields at their offsets."""
    offsets = {"last": 4, "b8": 8, "b12": 12, "b16": 16, "b20": 20, "b24": 24, "b28": 28}
    offsets |= {"b40": 40, "b44": 44, "b60": 60}
    data = bytearray(length)
    struct.pack_into(">I", data, 0, token)
    for name, value in values.items():
        struct.pack_into(">I", data, offsets[name], value)
    return bytes(data)


@st.composite
def consistent_packets(draw: st.DrawFn) -> bytes:
    """Packets as the service sends them: index packets for the indices segment only, quote and
    full packets for the others, LTP packets for all."""
    length = draw(st.sampled_from(sorted(PACKET_LENGTHS)))
    if length in (INDEX_QUOTE_LENGTH, INDEX_FULL_LENGTH):
        segments = st.just(9)
    elif length == LTP_LENGTH:
        segments = st.sampled_from(SEGMENTS)
    else:
        segments = st.sampled_from([s for s in SEGMENTS if s != 9])
    return draw(raw_packets(length, draw(tokens(segments))))


def _decoded(packet: bytes) -> KiteTick:
    kt = parse_packet(packet)
    assert kt is not None
    return kt


def kite_ticks() -> st.SearchStrategy[KiteTick]:
    """Any KiteTick the service can send: decoded from random consistent packets."""
    return consistent_packets().map(_decoded)


# --- worked example and golden frames -----------------------------------------------------------

WORKED_EXAMPLE = bytes.fromhex("0001000800063a0100024a09")


def test_worked_example_decodes_to_infy_at_1500_25(oracle: Any) -> None:
    (tick,) = assert_frame_agrees(oracle, WORKED_EXAMPLE)
    assert tick == KiteTick("ltp", 408065, True, 1500.25)
    assert segment_of(tick.instrument_token) == 1 == tick.segment
    assert 408065 == (1594 << 8) | 1


def test_worked_example_encodes_byte_for_byte() -> None:
    assert encode_frame([encode_ltp(408065, 1500.25)]) == WORKED_EXAMPLE
    assert encode_frame([encode_packet(KiteTick("ltp", 408065, True, 1500.25))]) == WORKED_EXAMPLE


def _golden() -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = json.loads(DATA.read_text())["frames"]
    return frames


def _as_oracle_tick(expected: dict[str, Any]) -> dict[str, Any]:
    tick = dict(expected)
    for name in ("last_trade_time", "exchange_timestamp"):
        if name in tick:
            tick[name] = datetime.fromtimestamp(tick[name])
    return tick


@pytest.mark.parametrize("golden", _golden(), ids=lambda g: g["name"])
def test_golden_frames_decode_as_expected_by_us_and_the_official_client(
    oracle: Any, golden: dict[str, Any]
) -> None:
    frame = bytes.fromhex(golden["hex"])
    expected = [_as_oracle_tick(t) for t in golden["ticks"]]
    ours = parse_frame(frame)
    assert len(ours) == len(expected)
    for mine, want in zip(ours, expected, strict=True):
        assert_agrees(mine, want)
    theirs = oracle._parse_binary(frame)
    assert len(theirs) == len(expected)
    for official, want in zip(theirs, expected, strict=True):
        assert official == want


def _reencodable(golden: dict[str, Any]) -> bool:
    frame = bytes.fromhex(golden["hex"])
    return len(frame) >= 2 and all(len(p) in PACKET_LENGTHS for p in split_packets(frame))


@pytest.mark.parametrize(
    "golden", [g for g in _golden() if _reencodable(g)], ids=lambda g: g["name"]
)
def test_golden_frames_reencode_byte_for_byte(golden: dict[str, Any]) -> None:
    frame = bytes.fromhex(golden["hex"])
    assert encode_frame([encode_packet(kt) for kt in parse_frame(frame)]) == frame


# --- every packet kind and segment against the official client ----------------------------------


@pytest.mark.parametrize("length", sorted(PACKET_LENGTHS))
@pytest.mark.parametrize("segment", SEGMENTS)
@settings(max_examples=25)
@given(data=st.data())
def test_every_packet_kind_and_segment_agrees_with_the_official_client(
    oracle: Any, length: int, segment: int, data: st.DataObject
) -> None:
    token = data.draw(tokens(st.just(segment)))
    packet = data.draw(raw_packets(length, token))
    (tick,) = assert_frame_agrees(oracle, encode_frame([packet]))
    assert tick == parse_packet(packet)
    assert tick.tradable is (segment != 9)


@settings(max_examples=300)
@given(packet=raw_packets(token=None), segment=st.integers(0, 255))
def test_any_segment_byte_agrees_with_the_official_client(
    oracle: Any, packet: bytes, segment: int
) -> None:
    packet = packet[:3] + bytes([segment]) + packet[4:]
    assert_frame_agrees(oracle, encode_frame([packet]))


@settings(max_examples=200)
@given(
    packets=st.lists(st.one_of(raw_packets(), unknown_packets(min_size=4)), max_size=12),
    trailing=st.binary(max_size=3),
)
def test_multi_packet_frames_with_mixed_and_unknown_lengths_agree(
    oracle: Any, packets: list[bytes], trailing: bytes
) -> None:
    frame = encode_frame(packets) + trailing
    skipped: list[bytes] = []
    ours = parse_frame(frame, on_unknown=skipped.append)
    assert_frame_agrees(oracle, frame)
    assert split_packets(frame) == packets
    assert skipped == [p for p in packets if len(p) not in PACKET_LENGTHS]
    assert len(ours) + len(skipped) == len(packets)


@settings(max_examples=100)
@given(packets=st.lists(unknown_packets(), max_size=6))
def test_unknown_lengths_are_skipped_even_below_four_bytes(packets: list[bytes]) -> None:
    # The official client reads a token before looking at the length and crashes on these.
    skipped: list[bytes] = []
    assert parse_frame(encode_frame(packets), on_unknown=skipped.append) == []
    assert skipped == packets
    assert all(parse_packet(p) is None for p in packets)


def test_legacy_164_byte_full_packet_is_ignored(oracle: Any) -> None:
    packet = _raw(164, 408065, last=150025)
    assert parse_packet(packet) is None
    assert_frame_agrees(oracle, encode_frame([packet]))


@pytest.mark.parametrize("frame", [b"", b"\x00", b"\xff", HEARTBEAT, b"\x00\x00", b"\x00\x00\x07"])
def test_heartbeats_and_empty_frames_give_no_ticks(oracle: Any, frame: bytes) -> None:
    assert parse_frame(frame) == []
    assert split_packets(frame) == []
    assert oracle._parse_binary(frame) == []


@settings(max_examples=50)
@given(
    frames=st.lists(
        st.one_of(st.just(HEARTBEAT), st.lists(raw_packets(), max_size=4)), min_size=1, max_size=8
    )
)
def test_heartbeats_interleaved_with_data_frames(
    oracle: Any, frames: list[bytes | list[bytes]]
) -> None:
    total = 0
    for item in frames:
        frame = item if isinstance(item, bytes) else encode_frame(item)
        total += len(assert_frame_agrees(oracle, frame))
    assert total == sum(len(item) for item in frames if isinstance(item, list))


# --- layout details the official client's history got wrong -------------------------------------


def _full_with_depth(token: int = 408065, padding: bytes = b"\x00\x00") -> bytes:
    head = _raw(64, token, last=150025, b40=149000)
    entries = b"".join(
        struct.pack(">II", 1000 + i, 150000 + (i if i >= 5 else -i) * 5)
        + struct.pack(">H", 10 + i)
        + padding
        for i in range(10)
    )
    return head + entries


def test_depth_bids_start_at_64_and_asks_at_124(oracle: Any) -> None:
    packet = _full_with_depth()
    assert struct.unpack_from(">I", packet, 64)[0] == 1000  # first bid quantity
    assert struct.unpack_from(">I", packet, 124)[0] == 1005  # first ask quantity
    (tick,) = assert_frame_agrees(oracle, encode_frame([packet]))
    assert tick.depth == Depth(
        buy=tuple(DepthLevel((150000 - i * 5) / 100, 1000 + i, 10 + i) for i in range(5)),
        sell=tuple(DepthLevel((150000 + i * 5) / 100, 1000 + i, 10 + i) for i in range(5, 10)),
    )


def test_depth_orders_are_two_bytes_and_padding_is_skipped(oracle: Any) -> None:
    packet = bytearray(_full_with_depth())
    struct.pack_into(">H", packet, 64 + 8, 16)  # best bid: 16 orders, then zero padding
    assert struct.unpack_from(">I", packet, 64 + 8)[0] == 16 << 16 == 1048576  # the 4-byte misread
    (tick,) = assert_frame_agrees(oracle, encode_frame([bytes(packet)]))
    assert tick.depth is not None
    assert tick.depth.buy[0].orders == 16
    # Padding that is not zero changes nothing.
    noisy = parse_packet(_full_with_depth(padding=b"\xff\xff"))
    assert noisy == parse_packet(_full_with_depth())


def test_depth_entries_are_twelve_bytes_apart() -> None:
    # A parser stepping 10 bytes would read the 2nd bid's quantity from the 1st bid's padding.
    tick = parse_packet(_full_with_depth(padding=b"\xab\xcd"))
    assert tick is not None and tick.depth is not None
    assert [level.quantity for level in tick.depth.buy + tick.depth.sell] == list(range(1000, 1010))


def test_index_packets_order_ohlc_as_high_low_open_close(oracle: Any) -> None:
    # 8 high, 12 low, 16 open, 20 close, 24 the ignored change, 28 exchange timestamp.
    packet = _raw(32, 256265, last=1967545, b8=1970010, b12=1960155, b16=1965000, b20=1961020)
    packet = packet[:24] + struct.pack(">II", 0xDEADBEEF, 1700000000)
    (tick,) = assert_frame_agrees(oracle, encode_frame([packet]))
    assert (tick.open, tick.high, tick.low, tick.close) == (19650.0, 19700.10, 19601.55, 19610.20)
    assert tick.mode == "full" and not tick.tradable
    assert tick.change == (19675.45 - 19610.20) * 100 / 19610.20
    assert tick.exchange_timestamp == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert tick.volume_traded is None and tick.depth is None
    quote = parse_packet(packet[:28])
    assert quote == replace(tick, mode="quote", exchange_timestamp=None)


def test_quote_packet_field_offsets() -> None:
    packet = _raw(44, 408065, last=150025, b8=7, b12=149950, b16=12345, b20=600, b24=700)
    packet = packet[:28] + struct.pack(">4I", 149000, 151000, 148000, 149500)
    tick = parse_packet(packet)
    assert tick == KiteTick(
        "quote",
        408065,
        True,
        1500.25,
        last_traded_quantity=7,
        average_traded_price=1499.50,
        volume_traded=12345,
        total_buy_quantity=600,
        total_sell_quantity=700,
        open=1490.0,
        high=1510.0,
        low=1480.0,
        close=1495.0,
        change=(1500.25 - 1495.0) * 100 / 1495.0,
    )


def test_fields_are_read_unsigned(oracle: Any) -> None:
    packet = _raw(44, 408065, last=0xFFFFFFFF, b16=0x80000000)
    (tick,) = assert_frame_agrees(oracle, encode_frame([packet]))
    assert tick.last_price == 42949672.95
    assert tick.volume_traded == 2**31


def test_zero_close_gives_zero_change_and_zero_times_give_none(oracle: Any) -> None:
    (tick,) = assert_frame_agrees(oracle, encode_frame([_raw(184, 408065, last=150025)]))
    assert tick.change == 0.0
    assert tick.last_trade_time is None and tick.exchange_timestamp is None


# --- segments and divisors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        (1, 100),
        (2, 100),
        (3, 10_000_000),
        (4, 100),
        (5, 100),
        (6, 10_000),
        (7, 100),
        (8, 100),
        (9, 100),
        (12, 10_000),
        (0, 100),
        (255, 100),
    ],
)
def test_divisor_per_segment(segment: int, expected: int) -> None:
    assert divisor(segment) == expected
    assert SEGMENT_DIVISORS.get(segment, 100) == expected


def test_segment_codes_match_the_official_client(oracle: Any) -> None:
    official = {k: v for k, v in type(oracle).EXCHANGE_MAP.items() if k != "bsecds"}
    assert dict(SEGMENT_CODES) == official


@pytest.mark.parametrize(
    ("segment", "raw", "price"),
    [(3, 831234000, 83.1234), (6, 831234, 83.1234), (12, 1234567, 123.4567), (7, 612345, 6123.45)],
)
def test_cds_bcd_nco_and_mcx_prices(oracle: Any, segment: int, raw: int, price: float) -> None:
    token = (4711 << 8) | segment
    (tick,) = assert_frame_agrees(oracle, encode_frame([_raw(8, token, last=raw)]))
    assert tick.last_price == price
    assert encode_ltp(token, price) == _raw(8, token, last=raw)


# --- truncated and malformed frames -------------------------------------------------------------


def test_truncated_packet_reports_its_offset() -> None:
    frame = encode_frame([encode_ltp(408065, 1500.25), encode_ltp(408065, 1500.30)])[:-3]
    with pytest.raises(KiteParseError, match="offset 14") as caught:
        parse_frame(frame)
    assert caught.value.offset == 14
    assert "packet 2 of 2" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_missing_length_header_reports_its_offset() -> None:
    with pytest.raises(KiteParseError, match="offset 2") as caught:
        split_packets(b"\x00\x01\x00")
    assert caught.value.offset == 2
    with pytest.raises(KiteParseError) as caught:
        parse_frame(b"\x00\x02" + b"\x00\x00" + b"\x00")  # an empty packet, then half a header
    assert caught.value.offset == 4


def test_a_count_larger_than_the_packets_is_truncation() -> None:
    frame = b"\x00\x02" + encode_frame([encode_ltp(408065, 1.0)])[2:]
    with pytest.raises(KiteParseError) as caught:
        parse_frame(frame)
    assert caught.value.offset == len(frame)


def test_a_declared_length_past_the_end_is_truncation() -> None:
    frame = b"\x00\x01\x00\xb8" + encode_ltp(408065, 1.0)  # says 184, holds 8
    with pytest.raises(KiteParseError, match="declares 184 bytes, 8 remain") as caught:
        parse_frame(frame)
    assert caught.value.offset == 4


@settings(max_examples=100)
@given(packets=st.lists(raw_packets(), min_size=1, max_size=5), data=st.data())
def test_every_proper_prefix_of_a_frame_is_a_parse_error(
    packets: list[bytes], data: st.DataObject
) -> None:
    frame = encode_frame(packets)
    cut = data.draw(st.integers(2, len(frame) - 1))
    with pytest.raises(KiteParseError) as caught:
        parse_frame(frame[:cut])
    assert 2 <= caught.value.offset <= cut


@settings(max_examples=500)
@given(frame=st.binary(max_size=400))
def test_arbitrary_bytes_never_crash(frame: bytes) -> None:
    try:
        ticks = parse_frame(frame)
    except KiteParseError as exc:
        assert 0 <= exc.offset <= len(frame)
    else:
        assert all(isinstance(t, KiteTick) for t in ticks)


# --- round trips --------------------------------------------------------------------------------


def _without_ignored_bytes(packet: bytes) -> bytes:
    """Blank what the parser ignores: depth padding, the index packet's change field."""
    data = bytearray(packet)
    if len(data) == FULL_LENGTH:
        for i in range(10):
            data[64 + 12 * i + 10 : 64 + 12 * i + 12] = b"\x00\x00"
    elif len(data) in (INDEX_QUOTE_LENGTH, INDEX_FULL_LENGTH):
        data[24:28] = b"\x00\x00\x00\x00"
    return bytes(data)


@settings(max_examples=500)
@given(packet=consistent_packets())
def test_bytes_parse_then_encode_to_the_same_bytes(packet: bytes) -> None:
    kt = parse_packet(packet)
    assert kt is not None
    assert _without_ignored_bytes(encode_packet(kt)) == _without_ignored_bytes(packet)


@settings(max_examples=500)
@given(kt=kite_ticks())
def test_kite_tick_encode_then_parse_is_identity(kt: KiteTick) -> None:
    assert parse_packet(encode_packet(kt)) == kt


@settings(max_examples=50)
@given(ticks=st.lists(kite_ticks(), max_size=20))
def test_frame_encode_then_parse_is_identity(ticks: list[KiteTick]) -> None:
    assert parse_frame(encode_frame([encode_packet(kt) for kt in ticks])) == ticks


_EPOCHS = st.integers(1, 2**32 - 1)


@st.composite
def model_ticks(draw: st.DrawFn, paise: bool = True) -> Tick:
    """Ticks as the simulator makes them: prices in paise, tz-aware times, up to 5 levels."""
    # Any float a CDS price (divisor 10**7) can carry, or paise up to 10**7 rupees.
    price = st.integers(1, 10**9).map(lambda p: p / 100) if paise else st.floats(0, 400)
    qty = st.integers(0, 2**32 - 1)
    level = st.builds(DepthLevel, price, qty, st.integers(0, 2**16 - 1))
    sides = st.lists(level, max_size=5).map(tuple)
    at = st.builds(
        lambda s, us, tz: datetime.fromtimestamp(s, tz) + timedelta(microseconds=us),
        _EPOCHS,
        st.integers(0, 999_999),
        st.sampled_from([UTC, IST]),
    )
    return Tick(
        symbol="X",
        instrument_token=1,
        timestamp=draw(at),
        price=draw(price),
        volume=draw(qty),
        last_quantity=draw(qty),
        average_price=draw(price),
        buy_quantity=draw(qty),
        sell_quantity=draw(qty),
        open=draw(price),
        high=draw(price),
        low=draw(price),
        prev_close=draw(price),
        last_trade_time=draw(st.none() | at),
        oi=draw(qty),
        depth=draw(st.none() | st.builds(Depth, sides, sides)),
    )


@settings(max_examples=300)
@given(
    tick=model_ticks(paise=False),
    token=tokens(),
    mode=st.sampled_from(["ltp", "quote", "full"]),
)
def test_tick_to_kite_is_what_the_client_decodes(tick: Tick, token: int, mode: str) -> None:
    kt = tick_to_kite(tick, token, mode)
    assert parse_packet(encode_packet(kt)) == kt
    assert kt.mode == mode and kt.tradable is (segment_of(token) != 9)
    expected_length = {
        ("ltp", True): LTP_LENGTH,
        ("ltp", False): LTP_LENGTH,
        ("quote", True): QUOTE_LENGTH,
        ("quote", False): INDEX_QUOTE_LENGTH,
        ("full", True): FULL_LENGTH,
        ("full", False): INDEX_FULL_LENGTH,
    }
    assert len(encode_packet(kt)) == expected_length[mode, kt.tradable]


def test_packet_kind_follows_the_segment_when_they_disagree() -> None:
    # Kite never sends these; the decoded tick keeps no trace of the packet length, so it
    # encodes as the packet its segment calls for (tradable comes from the token).
    index_packet_for_nse = parse_packet(_raw(28, 408065, last=100, b20=90))
    assert index_packet_for_nse is not None
    assert index_packet_for_nse.tradable and index_packet_for_nse.volume_traded is None
    assert len(encode_packet(index_packet_for_nse)) == QUOTE_LENGTH
    quote_packet_for_index = parse_packet(_raw(44, 256265, last=100))
    assert quote_packet_for_index is not None and not quote_packet_for_index.tradable
    assert len(encode_packet(quote_packet_for_index)) == INDEX_QUOTE_LENGTH


def _whole_second_ist(at: datetime) -> datetime:
    return datetime.fromtimestamp(int(at.timestamp()), IST)


@settings(max_examples=300)
@given(tick=model_ticks())
def test_equity_tick_survives_the_wire(tick: Tick) -> None:
    kt = parse_packet(encode_packet(tick_to_kite(tick, 408065, "full")))
    assert kt is not None
    back = to_tick(kt, INFY, UTC_NOW)
    empty = DepthLevel(0.0, 0, 0)
    depth = tick.depth or Depth()
    expected = replace(
        tick,
        symbol="INFY",
        instrument_token=408065,
        timestamp=_whole_second_ist(tick.timestamp),
        last_trade_time=tick.last_trade_time and _whole_second_ist(tick.last_trade_time),
        depth=Depth(
            tuple(d for d in depth.buy if d != empty), tuple(d for d in depth.sell if d != empty)
        ),
    )
    assert back == expected
    assert back.timestamp.utcoffset() == IST_OFFSET


@settings(max_examples=100)
@given(tick=model_ticks())
def test_index_tick_survives_the_wire(tick: Tick) -> None:
    kt = parse_packet(encode_packet(tick_to_kite(tick, NIFTY.instrument_token, "quote")))
    assert kt is not None
    back = to_tick(kt, NIFTY, UTC_NOW)
    assert (back.price, back.open, back.high, back.low, back.prev_close) == (
        tick.price,
        tick.open,
        tick.high,
        tick.low,
        tick.prev_close,
    )
    assert back.tradable is False and back.volume == 0 and back.depth is None
    assert back.timestamp == UTC_NOW  # an index quote carries no time


def test_tick_to_kite_pads_and_cuts_depth_to_five_levels() -> None:
    levels = tuple(DepthLevel(100.0 + i, i + 1, 1) for i in range(7))
    tick = Tick("INFY", 408065, UTC_NOW, 100.0, depth=Depth(levels[:2], levels))
    kt = tick_to_kite(tick, 408065, "full")
    assert kt.depth is not None
    assert kt.depth.buy == levels[:2] + (DepthLevel(0.0, 0, 0),) * 3
    assert kt.depth.sell == levels[:5]
    assert tick_to_kite(replace(tick, depth=None), 408065, "full").depth == Depth(
        (DepthLevel(0.0, 0, 0),) * 5, (DepthLevel(0.0, 0, 0),) * 5
    )


def test_tick_to_kite_rejects_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown mode: 'snap'"):
        tick_to_kite(Tick("INFY", 408065, UTC_NOW, 1.0), 408065, "snap")


# --- encoder checks -----------------------------------------------------------------------------


def test_encoders_produce_the_documented_lengths() -> None:
    at = datetime(2023, 11, 15, 3, 43, 20, tzinfo=IST)
    assert len(encode_ltp(408065, 1.0)) == 8
    assert len(encode_quote(408065, last_price=1.0)) == 44
    assert len(encode_full(408065, last_price=1.0, exchange_timestamp=at)) == 184
    assert len(encode_index_quote(256265, last_price=1.0)) == 28
    assert len(encode_index_full(256265, last_price=1.0, exchange_timestamp=at)) == 32
    assert encode_index_full(256265, last_price=1.0, exchange_timestamp=at)[28:] == struct.pack(
        ">I", 1700000000
    )
    assert encode_frame([]) == b"\x00\x00"


def test_encode_index_quote_writes_the_absolute_change_in_raw_units() -> None:
    packet = encode_index_quote(256265, last_price=99.5, close=100.0)
    assert struct.unpack_from(">i", packet, 24)[0] == -50


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: encode_ltp(408065, -0.01), "last_price out of range"),
        (lambda: encode_ltp(408065, 42949672.96), "last_price out of range"),
        (lambda: encode_ltp(408065, float("nan")), "last_price is not a finite price"),
        (lambda: encode_ltp(2**32, 1.0), "instrument_token out of range"),
        (lambda: encode_quote(408065, last_price=1.0, volume_traded=-1), "volume_traded"),
        (
            lambda: encode_full(408065, last_price=1.0, exchange_timestamp=datetime(2024, 1, 2)),
            "exchange_timestamp must be timezone-aware",
        ),
        (
            lambda: encode_full(408065, last_price=1.0, depth=Depth((DepthLevel(1.0, 1, 1),) * 6)),
            "depth.buy has 6 levels",
        ),
        (
            lambda: encode_full(
                408065, last_price=1.0, depth=Depth(sell=(DepthLevel(1.0, 1, 70000),))
            ),
            r"depth.sell\[0\].orders out of range 0..65535: 70000",
        ),
        (lambda: encode_frame([b"x" * 70000]), "packet 1 too long"),
        (lambda: encode_packet(KiteTick("snap", 408065, True, 1.0)), "unknown mode"),  # type: ignore[arg-type]
    ],
)
def test_encoder_rejects_what_the_wire_cannot_carry(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


# --- to_tick ------------------------------------------------------------------------------------


@pytest.fixture(params=["UTC", "America/New_York", "Asia/Tokyo"])
def host_timezone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


def test_to_tick_gives_ist_times_whatever_the_host_zone(host_timezone: str) -> None:
    packet = encode_full(
        408065,
        last_price=1500.25,
        volume_traded=1234,
        close=1490.0,
        last_trade_time=datetime(2023, 11, 14, 22, 13, 19, tzinfo=UTC),
        exchange_timestamp=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
    )
    assert packet[60:64] == struct.pack(">I", 1700000000)
    kt = parse_packet(packet)
    assert kt is not None
    tick = to_tick(kt, INFY, UTC_NOW)
    # 1700000000 s = 2023-11-14 22:13:20 UTC, which is 03:43:20 on the 15th in India (+05:30).
    assert tick.timestamp.utcoffset() == IST_OFFSET
    assert tick.timestamp.replace(tzinfo=None) == datetime(2023, 11, 15, 3, 43, 20)
    assert tick.timestamp.timestamp() == 1700000000
    assert tick.last_trade_time is not None
    assert tick.last_trade_time.replace(tzinfo=None) == datetime(2023, 11, 15, 3, 43, 19)
    assert tick.symbol == "INFY" and tick.instrument_token == 408065
    assert tick.price == 1500.25 and tick.volume == 1234 and tick.prev_close == 1490.0
    assert tick.change == 10.25


def test_to_tick_timestamp_falls_back_to_trade_time_then_received_at() -> None:
    traded = datetime(2024, 1, 2, 9, 30, tzinfo=IST)
    exchange = datetime(2024, 1, 2, 9, 31, tzinfo=IST)
    full = parse_packet(
        encode_full(408065, last_price=1.0, last_trade_time=traded, exchange_timestamp=exchange)
    )
    assert full is not None
    assert to_tick(full, INFY, UTC_NOW).timestamp == exchange
    assert to_tick(replace(full, exchange_timestamp=None), INFY, UTC_NOW).timestamp == traded
    ltp = parse_packet(encode_ltp(408065, 1.0))
    assert ltp is not None
    stamped = to_tick(ltp, INFY, UTC_NOW).timestamp
    assert stamped == UTC_NOW and stamped.utcoffset() == IST_OFFSET


def test_to_tick_rejects_a_naive_received_at() -> None:
    ltp = KiteTick("ltp", 408065, True, 1.0)
    with pytest.raises(ValueError, match="timezone-aware"):
        to_tick(ltp, INFY, datetime(2024, 1, 2, 9, 30))


def test_to_tick_maps_every_field_and_drops_empty_depth_levels() -> None:
    at = datetime(2024, 1, 2, 10, 0, tzinfo=IST)
    depth = Depth(
        buy=(DepthLevel(99.95, 10, 2), DepthLevel(0.0, 0, 0)),
        sell=(DepthLevel(100.05, 5, 1),),
    )
    kt = KiteTick(
        "full",
        408065,
        True,
        100.0,
        last_traded_quantity=3,
        average_traded_price=99.9,
        volume_traded=1000,
        total_buy_quantity=40,
        total_sell_quantity=50,
        open=99.0,
        high=101.0,
        low=98.0,
        close=97.0,
        change=3.0927835051546393,
        last_trade_time=at,
        oi=7,
        oi_day_high=8,
        oi_day_low=6,
        exchange_timestamp=at,
        depth=depth,
    )
    assert to_tick(kt, INFY, UTC_NOW) == Tick(
        symbol="INFY",
        instrument_token=408065,
        timestamp=at,
        price=100.0,
        volume=1000,
        last_quantity=3,
        average_price=99.9,
        buy_quantity=40,
        sell_quantity=50,
        open=99.0,
        high=101.0,
        low=98.0,
        prev_close=97.0,
        last_trade_time=at,
        oi=7,
        depth=Depth(buy=(DepthLevel(99.95, 10, 2),), sell=(DepthLevel(100.05, 5, 1),)),
        tradable=True,
    )


def test_to_tick_of_an_ltp_packet_has_zero_defaults() -> None:
    tick = to_tick(KiteTick("ltp", 256265, False, 19675.45), NIFTY, UTC_NOW)
    assert (tick.volume, tick.open, tick.prev_close, tick.oi) == (0, 0.0, 0.0, 0)
    assert tick.depth is None and tick.last_trade_time is None and tick.tradable is False


def test_kite_tick_is_frozen_and_slotted() -> None:
    kt = KiteTick("ltp", 408065, True, 1.0)
    assert not hasattr(kt, "__dict__")
    with pytest.raises(AttributeError):
        kt.last_price = 2.0  # type: ignore[misc]
    assert [f.name for f in fields(KiteTick)][:4] == [
        "mode",
        "instrument_token",
        "tradable",
        "last_price",
    ]


# --- text frames --------------------------------------------------------------------------------


def test_order_error_and_message_text_frames() -> None:
    order = parse_text('{"type": "order", "data": {"order_id": "1", "status": "COMPLETE"}}')
    assert order == TextMessage(
        "order",
        {"order_id": "1", "status": "COMPLETE"},
        {"type": "order", "data": {"order_id": "1", "status": "COMPLETE"}},
    )
    assert order.known
    error = parse_text(b'{"type":"error","data":"invalid token"}')
    assert error is not None and error.kind == "error" and error.data == "invalid token"
    message = parse_text('{"type":"message","data":"Markets closed early"}')
    assert message is not None and message.known and message.data == "Markets closed early"


def test_unknown_text_types_are_returned_flagged_unknown() -> None:
    meta = parse_text('{"type":"instruments_meta","data":{"count":95000,"etag":"W/abc"}}')
    assert meta is not None and not meta.known
    assert meta.kind == "instruments_meta" and meta.data == {"count": 95000, "etag": "W/abc"}
    app = parse_text('{"type":"app_code","timestamp":"2025-01-02T09:00:00+05:30"}')
    assert app is not None and not app.known and app.data is None
    assert app.message["timestamp"] == "2025-01-02T09:00:00+05:30"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        '{"type": "order"',
        "[1, 2]",
        '"order"',
        "null",
        '{"data": "no type"}',
        '{"type": 7}',
        b"\xff\xfe\x00",
        "[" * 100_000,
    ],
)
def test_text_frames_that_are_not_typed_json_objects_give_none(text: str | bytes) -> None:
    assert parse_text(text) is None
