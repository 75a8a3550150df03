from __future__ import annotations

import gzip
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from tickhub.core.instruments import (
    KITE_COLUMNS,
    InstrumentRegistry,
    InstrumentsFileError,
    UnknownSymbolError,
    parse_instruments_csv,
)
from tickhub.core.model import Instrument

HEADER = ",".join(KITE_COLUMNS)

# Segment codes as in pykiteconnect's EXCHANGE_MAP: instrument_token & 0xFF.
SEGMENT_CODES = {"NSE": 1, "NFO": 2, "CDS": 3, "BSE": 4, "BFO": 5, "BCD": 6, "MCX": 7, "INDICES": 9}

KNOWN_TOKENS = {
    "RELIANCE": 738561,
    "INFY": 408065,
    "TCS": 2953217,
    "HDFCBANK": 341249,
    "ICICIBANK": 1270529,
    "SBIN": 779521,
    "NIFTY 50": 256265,
    "NIFTY BANK": 260105,
}

SAMPLE_ROWS = (
    "738561,2885,RELIANCE,RELIANCE INDUSTRIES,1500.0,,0.0,0.05,1,EQ,NSE,NSE",
    "128083204,500325,RELIANCE,RELIANCE INDUSTRIES,1499.5,,0.0,0.05,1,EQ,BSE,BSE",
    "136442372,532978,BAJAJFINSV,BAJAJ FINSERV,2050.0,,0.0,0.05,1,EQ,BSE,BSE",
    "256265,1001,NIFTY 50,NIFTY 50,26000.0,,0.0,0.0,0,EQ,INDICES,NSE",
    "12345602,48225,NIFTY26DEC26000CE,NIFTY,120.5,2026-12-29,26000.0,0.05,65,CE,NFO-OPT,NFO",
    "53490439,208947,GOLDM26JANFUT,GOLDM,76000.0,2026-01-05,0.0,1.0,1,FUT,MCX-FUT,MCX",
)


def dump(*rows: str, header: str = HEADER) -> bytes:
    return "\n".join((header, *rows)).encode() + b"\n"


GOOD_ROW = SAMPLE_ROWS[0].split(",")


def with_field(column: str, value: str) -> str:
    """The good RELIANCE row with one field replaced."""
    fields = list(GOOD_ROW)
    fields[KITE_COLUMNS.index(column)] = value
    return ",".join(fields)


@pytest.fixture
def sample() -> InstrumentRegistry:
    return InstrumentRegistry(parse_instruments_csv(dump(*SAMPLE_ROWS), "sample.csv"))


@pytest.fixture(scope="module")
def bundled() -> InstrumentRegistry:
    return InstrumentRegistry.bundled()


def make(symbol: str, exchange: str = "NSE", token: int = 1) -> Instrument:
    return Instrument(
        instrument_token=token,
        exchange_token=token >> 8,
        tradingsymbol=symbol,
        name=symbol,
        exchange=exchange,
        segment=exchange,
        instrument_type="EQ",
    )


# --- parsing ---------------------------------------------------------------------------------


def test_parse_reads_every_column() -> None:
    option = parse_instruments_csv(dump(SAMPLE_ROWS[4]))[0]
    assert option == Instrument(
        instrument_token=12345602,
        exchange_token=48225,
        tradingsymbol="NIFTY26DEC26000CE",
        name="NIFTY",
        exchange="NFO",
        segment="NFO-OPT",
        instrument_type="CE",
        tick_size=0.05,
        lot_size=65,
        last_price=120.5,
        expiry=date(2026, 12, 29),
        strike=26000.0,
    )


def test_parse_accepts_empty_strike_and_expiry_and_crlf() -> None:
    text = HEADER + "\r\n408065,1594,INFY,INFOSYS,1550,,,0.05,1,EQ,NSE,NSE\r\n"
    (infy,) = parse_instruments_csv(text.encode())
    assert (infy.expiry, infy.strike, infy.last_price) == (None, 0.0, 1550.0)


def test_parse_accepts_reordered_and_extra_columns() -> None:
    columns = ["extra", *reversed(KITE_COLUMNS)]
    values = dict(zip(KITE_COLUMNS, SAMPLE_ROWS[0].split(","), strict=True))
    row = ",".join(["x", *(values[c] for c in reversed(KITE_COLUMNS))])
    (reliance,) = parse_instruments_csv(dump(row, header=",".join(columns)))
    assert (reliance.key, reliance.instrument_token) == ("NSE:RELIANCE", 738561)


def test_parse_handles_quoted_fields() -> None:
    row = with_field("name", '"MAHINDRA, ""M&M"" LTD"')
    (instrument,) = parse_instruments_csv(dump(row))
    assert instrument.name == 'MAHINDRA, "M&M" LTD'


def test_malformed_quoting_is_rejected_naming_the_line() -> None:
    row = with_field("name", '"RELIANCE"X')
    with pytest.raises(InstrumentsFileError, match=r"^d\.csv:3: malformed CSV"):
        parse_instruments_csv(dump(SAMPLE_ROWS[3], row), "d.csv")


def test_parse_skips_blank_lines() -> None:
    assert len(parse_instruments_csv(dump(SAMPLE_ROWS[0], "", SAMPLE_ROWS[3]))) == 2


def test_parse_header_only_gives_no_instruments() -> None:
    assert parse_instruments_csv(dump()) == []


def test_parse_detects_gzip_by_magic_bytes() -> None:
    plain = dump(*SAMPLE_ROWS)
    assert parse_instruments_csv(gzip.compress(plain)) == parse_instruments_csv(plain)


# --- broken files ------------------------------------------------------------------------------


NON_NEGATIVE_INT = "expected a non-negative integer, got"
NON_NEGATIVE_NUMBER = "expected a non-negative number, got"
BAD_DATE = "expected YYYY-MM-DD or empty, got"


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        (",".join(GOOD_ROW[:-1]), "expected 12 columns, got 11"),
        (",".join([*GOOD_ROW, "X"]), "expected 12 columns, got 13"),
        (
            with_field("instrument_token", "73856x"),
            f"instrument_token: {NON_NEGATIVE_INT} '73856x'",
        ),
        (with_field("instrument_token", "-1"), f"instrument_token: {NON_NEGATIVE_INT} '-1'"),
        (with_field("instrument_token", "1_000"), f"instrument_token: {NON_NEGATIVE_INT} '1_000'"),
        (
            with_field("instrument_token", "0"),
            "instrument_token: expected a positive integer, got '0'",
        ),
        (with_field("exchange_token", "2885.0"), f"exchange_token: {NON_NEGATIVE_INT} '2885.0'"),
        (with_field("expiry", "2026-13-01"), f"expiry: {BAD_DATE} '2026-13-01'"),
        (with_field("expiry", "29-12-2026"), f"expiry: {BAD_DATE} '29-12-2026'"),
        (with_field("expiry", "20261229"), f"expiry: {BAD_DATE} '20261229'"),
        (with_field("last_price", "abc"), f"last_price: {NON_NEGATIVE_NUMBER} 'abc'"),
        (with_field("last_price", "nan"), f"last_price: {NON_NEGATIVE_NUMBER} 'nan'"),
        (with_field("tick_size", "-0.05"), f"tick_size: {NON_NEGATIVE_NUMBER} '-0.05'"),
        (with_field("tick_size", ""), f"tick_size: {NON_NEGATIVE_NUMBER} ''"),
        (with_field("lot_size", "1.5"), f"lot_size: {NON_NEGATIVE_INT} '1.5'"),
        (with_field("tradingsymbol", " "), "tradingsymbol: must not be empty"),
        (with_field("exchange", ""), "exchange: must not be empty"),
    ],
)
def test_broken_row_names_file_line_and_problem(bad_row: str, reason: str) -> None:
    data = dump(SAMPLE_ROWS[3], SAMPLE_ROWS[4], bad_row, SAMPLE_ROWS[5])
    with pytest.raises(InstrumentsFileError) as caught:
        parse_instruments_csv(data, "dump.csv")
    assert (caught.value.source, caught.value.line, caught.value.reason) == ("dump.csv", 4, reason)
    assert str(caught.value) == f"dump.csv:4: {reason}"


def test_broken_row_in_gzipped_file_names_the_line() -> None:
    data = gzip.compress(dump(*SAMPLE_ROWS[:2], "1,2,3"))
    with pytest.raises(InstrumentsFileError, match=r"^day\.csv\.gz:4: expected 12 columns, got 3$"):
        parse_instruments_csv(data, "day.csv.gz")


def test_line_numbers_count_skipped_blank_lines() -> None:
    with pytest.raises(InstrumentsFileError) as caught:
        parse_instruments_csv(dump(SAMPLE_ROWS[0], "", "", "oops"))
    assert caught.value.line == 5


def test_duplicate_key_is_rejected_naming_both_lines() -> None:
    again = SAMPLE_ROWS[0].replace("RELIANCE,RELIANCE", "reliance,RELIANCE")
    with pytest.raises(InstrumentsFileError) as caught:
        parse_instruments_csv(dump(SAMPLE_ROWS[0], SAMPLE_ROWS[3], again), "d.csv")
    assert str(caught.value) == "d.csv:4: duplicate instrument 'NSE:reliance' (first on line 2)"


def test_missing_header_column_is_rejected() -> None:
    header = HEADER.replace(",tick_size", "")
    with pytest.raises(InstrumentsFileError, match=r"^d\.csv:1: header lacks columns: tick_size$"):
        parse_instruments_csv(dump(header=header), "d.csv")


def test_empty_file_is_rejected() -> None:
    with pytest.raises(InstrumentsFileError, match=r"^d\.csv: empty file"):
        parse_instruments_csv(b"", "d.csv")


def test_corrupt_gzip_is_rejected() -> None:
    truncated = gzip.compress(dump(*SAMPLE_ROWS))[:-12]
    with pytest.raises(InstrumentsFileError, match=r"^d\.csv\.gz: corrupt gzip data"):
        parse_instruments_csv(truncated, "d.csv.gz")


def test_non_utf8_is_rejected() -> None:
    with pytest.raises(InstrumentsFileError, match=r"^d\.csv: not UTF-8 text"):
        parse_instruments_csv(dump().replace(b"\n", b",\xff\n"), "d.csv")


def test_load_csv_rejects_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "instruments.csv"
    path.write_bytes(dump(*SAMPLE_ROWS, "x"))
    with pytest.raises(InstrumentsFileError) as caught:
        InstrumentRegistry.load_csv(path)
    assert (caught.value.source, caught.value.line) == (str(path), len(SAMPLE_ROWS) + 2)


def test_load_csv_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"
    with pytest.raises(InstrumentsFileError, match=r"absent\.csv: cannot read"):
        InstrumentRegistry.load_csv(path)


# --- loading -----------------------------------------------------------------------------------


def test_load_csv_from_plain_and_gzipped_paths(tmp_path: Path) -> None:
    plain, packed = tmp_path / "i.csv", tmp_path / "i.csv.gz"
    plain.write_bytes(dump(*SAMPLE_ROWS))
    packed.write_bytes(gzip.compress(dump(*SAMPLE_ROWS)))
    from_plain = InstrumentRegistry.load_csv(plain)
    from_gzip = InstrumentRegistry.load_csv(str(packed))
    assert list(from_plain) == list(from_gzip)
    assert len(from_gzip) == len(SAMPLE_ROWS)


def test_load_csv_gzip_detected_by_content_not_name(tmp_path: Path) -> None:
    misnamed = tmp_path / "instruments.csv"
    misnamed.write_bytes(gzip.compress(dump(*SAMPLE_ROWS)))
    assert InstrumentRegistry.load_csv(misnamed).resolve("RELIANCE").exchange == "NSE"


def test_load_csv_from_binary_file_object() -> None:
    registry = InstrumentRegistry.load_csv(io.BytesIO(gzip.compress(dump(*SAMPLE_ROWS))))
    assert registry.resolve("NIFTY 50").instrument_token == 256265


def test_load_csv_from_text_file_object_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="binary mode"):
        InstrumentRegistry.load_csv(io.StringIO(HEADER))  # type: ignore[arg-type]


def test_load_csv_passes_default_exchanges(tmp_path: Path) -> None:
    path = tmp_path / "i.csv"
    path.write_bytes(dump(*SAMPLE_ROWS))
    registry = InstrumentRegistry.load_csv(path, default_exchanges=["bse"])
    assert registry.resolve("RELIANCE").key == "BSE:RELIANCE"


# --- lookups -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["RELIANCE", "reliance", "Reliance", " RELIANCE ", "\tRELIANCE\n", "NSE:RELIANCE",
     "nse:Reliance", "nse:reliance", " NSE : RELIANCE "],
)  # fmt: skip
def test_resolve_is_case_insensitive_and_takes_exchange_prefix(
    sample: InstrumentRegistry, name: str
) -> None:
    assert sample.resolve(name).key == "NSE:RELIANCE"


def test_resolve_explicit_exchange_wins_over_default(sample: InstrumentRegistry) -> None:
    assert sample.resolve("bse:reliance").instrument_token == 128083204


def test_resolve_bare_symbol_falls_back_to_bse(sample: InstrumentRegistry) -> None:
    assert sample.resolve("bajajfinsv").key == "BSE:BAJAJFINSV"


def test_resolve_bare_symbol_on_other_exchanges(sample: InstrumentRegistry) -> None:
    assert sample.resolve("nifty26dec26000ce").key == "NFO:NIFTY26DEC26000CE"
    assert sample.resolve("GOLDM26JANFUT").exchange == "MCX"


def test_resolve_other_exchanges_in_alphabetical_order() -> None:
    registry = InstrumentRegistry([make("X", "NFO", 1), make("X", "MCX", 2), make("X", "CDS", 3)])
    assert registry.resolve("x").exchange == "CDS"


def test_resolve_index_with_space(sample: InstrumentRegistry) -> None:
    assert sample.resolve(" nifty 50 ").key == "NSE:NIFTY 50"
    assert sample.resolve("NSE:nifty 50").instrument_token == 256265


def test_default_exchanges_order_is_configurable() -> None:
    instruments = [make("RELIANCE", "NSE", 1), make("RELIANCE", "BSE", 2)]
    assert InstrumentRegistry(instruments).resolve("RELIANCE").exchange == "NSE"
    registry = InstrumentRegistry(instruments, default_exchanges=("bse", "nse"))
    assert registry.default_exchanges == ("BSE", "NSE")
    assert registry.resolve("RELIANCE").exchange == "BSE"
    assert registry.resolve("NSE:RELIANCE").exchange == "NSE"


@pytest.mark.parametrize(
    "name", ["RELIANCEX", "", "   ", "NFO:RELIANCE", "RELIANCE:NSE", ":RELIANCE", "NSE:"]
)
def test_resolve_unknown_symbol_raises(sample: InstrumentRegistry, name: str) -> None:
    with pytest.raises(UnknownSymbolError) as caught:
        sample.resolve(name)
    assert caught.value.name == name
    assert str(caught.value) == f"unknown symbol: {name!r}"
    assert isinstance(caught.value, LookupError)


def test_unknown_symbol_message() -> None:
    assert str(UnknownSymbolError("RELIANCEX")) == "unknown symbol: 'RELIANCEX'"


def test_get_returns_none_for_unknown(sample: InstrumentRegistry) -> None:
    assert sample.get("RELIANCEX") is None
    assert sample.get("nse:reliance") is sample.resolve("RELIANCE")


def test_by_token(sample: InstrumentRegistry) -> None:
    found = sample.by_token(256265)
    assert found is not None and found.key == "NSE:NIFTY 50"
    assert sample.by_token(999) is None


def test_by_token_last_one_wins() -> None:
    expired = make("NIFTY25DECFUT", "NFO", 100)
    current = make("NIFTY26JANFUT", "NFO", 100)
    registry = InstrumentRegistry([expired, current])
    assert registry.by_token(100) is current
    assert registry.resolve("NIFTY25DECFUT") is expired


def test_duplicate_key_in_constructor_is_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate instrument: 'NSE:infy'"):
        InstrumentRegistry([make("INFY", token=1), make("infy", token=2)])


def test_iter_len_and_contains(sample: InstrumentRegistry) -> None:
    assert len(sample) == len(SAMPLE_ROWS)
    assert [i.tradingsymbol for i in sample][:2] == ["RELIANCE", "RELIANCE"]
    assert "reliance" in sample
    assert "BSE:RELIANCE" in sample
    assert "RELIANCEX" not in sample
    assert 738561 not in sample
    assert sample.resolve("NIFTY 50") in sample
    assert make("RELIANCE") not in sample  # same key, different instrument


def test_symbols_and_keys(sample: InstrumentRegistry) -> None:
    assert sample.symbols() == (
        "RELIANCE",
        "BAJAJFINSV",
        "NIFTY 50",
        "NIFTY26DEC26000CE",
        "GOLDM26JANFUT",
    )
    assert sample.keys()[:2] == ("NSE:RELIANCE", "BSE:RELIANCE")
    assert len(sample.keys()) == len(sample)


def test_empty_registry() -> None:
    registry = InstrumentRegistry([])
    assert len(registry) == 0
    assert list(registry) == []
    assert registry.get("RELIANCE") is None


# --- subset ------------------------------------------------------------------------------------


def test_subset_keeps_named_instruments_in_order(sample: InstrumentRegistry) -> None:
    universe = sample.subset(["nifty 50", "BSE:reliance", "RELIANCE", "NSE:RELIANCE"])
    assert universe.keys() == ("NSE:NIFTY 50", "BSE:RELIANCE", "NSE:RELIANCE")
    assert universe.resolve("RELIANCE").exchange == "NSE"
    assert universe.get("BAJAJFINSV") is None
    assert universe.by_token(256265) is sample.resolve("NIFTY 50")


def test_subset_keeps_default_exchanges(sample: InstrumentRegistry) -> None:
    bse_first = InstrumentRegistry(sample, default_exchanges=("BSE",))
    assert bse_first.subset(["NSE:RELIANCE", "BSE:RELIANCE"]).resolve("RELIANCE").exchange == "BSE"


def test_subset_unknown_name_raises(sample: InstrumentRegistry) -> None:
    with pytest.raises(UnknownSymbolError, match="unknown symbol: 'RELIANCEX'"):
        sample.subset(["RELIANCE", "RELIANCEX"])


# --- the bundled file --------------------------------------------------------------------------


def test_bundled_has_nifty_50_constituents_and_both_indices(bundled: InstrumentRegistry) -> None:
    equities = [i for i in bundled if i.segment == "NSE"]
    indices = [i for i in bundled if i.segment == "INDICES"]
    assert len(equities) >= 50
    assert {i.tradingsymbol for i in indices} == {"NIFTY 50", "NIFTY BANK"}
    assert len(bundled) == len(equities) + len(indices)


@pytest.mark.parametrize(("symbol", "token"), sorted(KNOWN_TOKENS.items()))
def test_bundled_known_tokens(bundled: InstrumentRegistry, symbol: str, token: int) -> None:
    assert bundled.resolve(symbol).instrument_token == token
    assert bundled.by_token(token) is bundled.resolve(symbol)


def test_bundled_tokens_encode_exchange_token_and_segment(bundled: InstrumentRegistry) -> None:
    for i in bundled:
        assert i.instrument_token == i.exchange_token << 8 | SEGMENT_CODES[i.segment], i.key
    assert len({i.instrument_token for i in bundled}) == len(bundled)


def test_bundled_rows_are_nse_cash_or_indices(bundled: InstrumentRegistry) -> None:
    for i in bundled:
        assert (i.exchange, i.instrument_type, i.expiry, i.strike) == ("NSE", "EQ", None, 0.0)
        if i.segment == "INDICES":
            assert not i.tradable
            assert (i.tick_size, i.lot_size) == (0.0, 0), i.key  # as in Kite's dump
        else:
            assert i.tradable
            assert i.lot_size == 1, i.key
            assert i.tick_size in (0.01, 0.05), i.key
            # NSE: 1 paisa below Rs 250 (circular of May 2024), 5 paise from Rs 250.
            assert i.tick_size == (0.01 if i.last_price < 250 else 0.05), i.key


def test_bundled_prices_are_positive_multiples_of_tick(bundled: InstrumentRegistry) -> None:
    for i in bundled:
        assert i.last_price > 0, i.key
        tick = Decimal(str(i.tick_size)) or Decimal("0.05")
        assert Decimal(str(i.last_price)) % tick == 0, i.key


def test_bundled_file_is_the_exact_kite_header() -> None:
    from importlib import resources

    text = resources.files("tickhub").joinpath("data/instruments.csv").read_text("utf-8")
    assert text.splitlines()[0] == (
        "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,"
        "tick_size,lot_size,instrument_type,segment,exchange"
    )


def test_bundled_default_exchanges_argument() -> None:
    assert InstrumentRegistry.bundled(default_exchanges=("BSE",)).default_exchanges == ("BSE",)
