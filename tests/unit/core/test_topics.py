"""Topic names: the strings that cross process boundaries, so their exact form is the contract."""

from __future__ import annotations

import pytest

from tickhub.core.model import Interval
from tickhub.core.topics import ALL_SYMBOLS, Endpoint, owner_of, topic


def test_endpoint_paths_are_the_four_websocket_routes() -> None:
    assert [e.path for e in Endpoint] == [
        "/ws/stream",
        "/ws/analysis",
        "/ws/alerts",
        "/ws/portfolio",
    ]


def test_only_stream_and_analysis_depend_on_the_interval() -> None:
    assert {e for e in Endpoint if e.has_interval} == {Endpoint.STREAM, Endpoint.ANALYSIS}


@pytest.mark.parametrize("endpoint", [Endpoint.STREAM, Endpoint.ANALYSIS])
def test_interval_topics_default_to_one_minute_and_ignore_the_owner(endpoint: Endpoint) -> None:
    assert topic(endpoint, "RELIANCE") == f"{endpoint.value}:RELIANCE:1m"
    assert topic(endpoint, "RELIANCE", Interval.M15) == f"{endpoint.value}:RELIANCE:15m"
    assert topic(endpoint, "RELIANCE", Interval.D1, owner="u") == f"{endpoint.value}:RELIANCE:1d"


@pytest.mark.parametrize("endpoint", [Endpoint.ALERTS, Endpoint.PORTFOLIO])
def test_per_user_topics_carry_the_owner_and_ignore_the_interval(endpoint: Endpoint) -> None:
    assert topic(endpoint, "INFY") == f"{endpoint.value}:INFY"
    assert topic(endpoint, "INFY", Interval.H1) == f"{endpoint.value}:INFY"
    assert topic(endpoint, "INFY", owner="alice") == f"{endpoint.value}:INFY:@alice"


def test_symbols_with_spaces_stay_as_they_are() -> None:
    assert topic(Endpoint.STREAM, "NIFTY 50", Interval.M5) == "stream:NIFTY 50:5m"
    assert topic(Endpoint.PORTFOLIO, ALL_SYMBOLS, owner="u") == "portfolio:*:@u"


@pytest.mark.parametrize(
    ("name", "owner"),
    [
        ("alerts:INFY:@alice", "alice"),
        ("portfolio:*:@bob", "bob"),
        ("alerts:INFY", ""),  # the anonymous owner
        ("portfolio:INFY", ""),
        ("alerts:INFY:@", ""),
        ("alerts:INFY:@jwt:carol", "jwt:carol"),  # an owner may hold a colon (a JWT prefix)
        ("stream:INFY:1m", None),
        ("analysis:INFY:1m", None),
        ("status", None),
        ("alerts", None),
    ],
)
def test_owner_of(name: str, owner: str | None) -> None:
    assert owner_of(name) == owner


def test_owner_of_inverts_topic_for_every_owner() -> None:
    for endpoint in (Endpoint.ALERTS, Endpoint.PORTFOLIO):
        for who in ("", "u", "jwt:x"):
            assert owner_of(topic(endpoint, "TCS", owner=who)) == who
