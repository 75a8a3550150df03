"""``search_instruments``: what ``/instruments?q=`` answers, ranked (pure)."""

from __future__ import annotations

from tickhub.core.instruments import (
    KITE_COLUMNS,
    InstrumentRegistry,
    parse_instruments_csv,
    search_instruments,
)

ROWS = (
    "1,1,SBINEQ,SBIN EQUITY FUND,1.0,,0.0,0.05,1,EQ,NSE,NSE",
    "2,2,STATEBK,STATE BANK,1.0,,0.0,0.05,1,EQ,NSE,NSE",
    "3,3,XBANKX,SOMETHING,1.0,,0.0,0.05,1,EQ,NSE,NSE",
    "4,4,SBIN,STATE BANK OF INDIA,1.0,,0.0,0.05,1,EQ,NSE,NSE",
    "5,5,OTHER,SBIN HOLDINGS,1.0,,0.0,0.05,1,EQ,NSE,NSE",
    "6,6,ALPHA,THE BANKERS,1.0,,0.0,0.05,1,EQ,NSE,NSE",
)
INSTRUMENTS = parse_instruments_csv("\n".join((",".join(KITE_COLUMNS), *ROWS)).encode())


def symbols(query: str, limit: int | None = None) -> list[str]:
    return [i.symbol for i in search_instruments(INSTRUMENTS, query, limit)]


def test_exact_symbol_then_symbol_prefix_then_name_prefix_then_substrings() -> None:
    assert symbols("sbin") == ["SBIN", "SBINEQ", "OTHER"]
    assert symbols("bank") == ["XBANKX", "STATEBK", "SBIN", "ALPHA"]


def test_case_and_surrounding_spaces_do_not_matter() -> None:
    assert symbols("  Sbin ") == symbols("SBIN") == symbols("sbin")


def test_within_a_rank_the_registry_order_is_kept() -> None:
    # Symbols starting with S, then names starting with S (SOMETHING, SBIN HOLDINGS), then the
    # rest that holds an S anywhere (THE BANKERS), each group in registry order.
    assert symbols("s") == ["SBINEQ", "STATEBK", "SBIN", "XBANKX", "OTHER", "ALPHA"]


def test_a_blank_query_matches_everything_in_order() -> None:
    assert symbols("") == [i.symbol for i in INSTRUMENTS]
    assert symbols("   ", limit=2) == ["SBINEQ", "STATEBK"]


def test_limit_cuts_after_ranking_and_no_match_is_empty() -> None:
    assert symbols("bank", limit=2) == ["XBANKX", "STATEBK"]
    assert symbols("bank", limit=0) == []
    assert symbols("zzz") == []


def test_on_the_bundled_universe_rel_finds_reliance_first() -> None:
    bundled = InstrumentRegistry.bundled()
    found = [i.symbol for i in search_instruments(bundled, "REL")]
    assert found[0] == "RELIANCE"
    # Prefix matches first: every bank whose symbol holds BANK comes before SBIN, which only
    # has it in its name.
    banks = [i.symbol for i in search_instruments(bundled, "bank")]
    assert banks[-1] == "SBIN" and {"HDFCBANK", "NIFTY BANK", "AXISBANK"} <= set(banks)
