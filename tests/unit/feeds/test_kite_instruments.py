"""The instruments dump fetched through the official kiteconnect client from a local server
that answers like Kite's REST API (its servers are out of reach here)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from tests.fakes import KiteRestStub as _Kite
from tickhub.core.instruments import InstrumentsFileError
from tickhub.feeds.kite.instruments import fetch_registry

DUMP = (
    "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,"
    "lot_size,instrument_type,segment,exchange\n"
    "738561,2885,RELIANCE,RELIANCE INDUSTRIES,1450.5,,0,0.05,1,EQ,NSE,NSE\n"
    "256265,1001,NIFTY 50,NIFTY 50,0,,0,0,0,EQ,INDICES,NSE\n"
    "12345602,48225,NIFTY25JANFUT,NIFTY,23500,2025-01-30,0,0.05,75,FUT,NFO-FUT,NFO\n"
)


@pytest.fixture
def kite_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Kite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Kite.seen.clear()
    _Kite.body = DUMP
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_builds_a_registry_keyed_by_exchange_and_symbol(kite_api: str) -> None:
    registry = fetch_registry("key", "token", root=kite_api)
    assert registry.resolve("RELIANCE").instrument_token == 738561
    assert registry.resolve("NFO:NIFTY25JANFUT").expiry is not None
    assert not registry.resolve("NIFTY 50").tradable
    path, auth = _Kite.seen[0]
    assert path == "/instruments"
    assert auth == "token key:token"  # Kite's header format, sent by the official client


def test_a_broken_row_is_reported_with_its_line(kite_api: str) -> None:
    _Kite.body = DUMP + "notanumber,1,X,X,1,,0,0.05,1,EQ,NSE,NSE\n"
    with pytest.raises(InstrumentsFileError, match=r"kite:.*/instruments: malformed dump"):
        fetch_registry("key", "token", root=kite_api)


def test_a_row_the_official_parser_accepts_is_still_validated(kite_api: str) -> None:
    _Kite.body = DUMP + "5,1,,X,1,,0,0.05,1,EQ,NSE,NSE\n"  # empty tradingsymbol
    with pytest.raises(InstrumentsFileError, match=r"instruments:5: "):
        fetch_registry("key", "token", root=kite_api)
