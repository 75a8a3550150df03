"""Reference-counted demand: the feed hears only the first want and the last release of an
instrument, whether the want comes from client topics or from what the engines pin."""

from __future__ import annotations

import pytest

from tests.fakes import ScriptedFeed
from tickhub.core.instruments import InstrumentRegistry
from tickhub.ingest.demand import Demand


@pytest.fixture(scope="module")
def registry() -> InstrumentRegistry:
    return InstrumentRegistry.bundled()


@pytest.fixture
def feed() -> ScriptedFeed:
    return ScriptedFeed()


@pytest.fixture
def demand(feed: ScriptedFeed, registry: InstrumentRegistry) -> Demand:
    return Demand(feed, registry)


def test_the_feed_hears_the_first_want_and_the_last_release_only(
    demand: Demand, feed: ScriptedFeed
) -> None:
    demand.on_topic("stream:INFY:1m", True)
    demand.on_topic("analysis:INFY:5m", True)
    demand.on_topic("alerts:INFY:@u", True)
    assert feed.calls == [("subscribe", ["INFY"])]
    demand.on_topic("stream:INFY:1m", False)
    demand.on_topic("alerts:INFY:@u", False)
    assert feed.calls == [("subscribe", ["INFY"])]
    assert demand.active == frozenset({"INFY"})
    demand.on_topic("analysis:INFY:5m", False)
    assert feed.calls == [("subscribe", ["INFY"]), ("unsubscribe", ["INFY"])]
    assert demand.active == frozenset()


@pytest.mark.parametrize(
    "topic", ["portfolio:*:@u", "_probe:INFY", "status", "stream:NOSUCHCO:1m", "stream"]
)
def test_topics_that_name_no_instrument_are_ignored(
    demand: Demand, feed: ScriptedFeed, topic: str
) -> None:
    demand.on_topic(topic, True)
    assert feed.calls == []
    assert demand.active == frozenset()


def test_a_release_without_a_want_does_not_go_negative(demand: Demand, feed: ScriptedFeed) -> None:
    demand.on_topic("stream:TCS:1m", False)
    assert feed.calls == []
    demand.on_topic("stream:TCS:1m", True)
    assert feed.calls == [("subscribe", ["TCS"])]  # one want suffices, no debt carried


def test_pinned_instruments_stay_wanted_whatever_clients_do(
    demand: Demand, feed: ScriptedFeed
) -> None:
    demand.pin(["RELIANCE", "NIFTY 50"])
    assert feed.calls == [("subscribe", ["NIFTY 50", "RELIANCE"])]  # one batch, sorted
    demand.on_topic("stream:RELIANCE:1m", True)
    demand.on_topic("stream:RELIANCE:1m", False)
    assert len(feed.calls) == 1
    assert demand.active == frozenset({"RELIANCE", "NIFTY 50"})


def test_pin_replaces_the_set_and_releases_only_what_nobody_wants(
    demand: Demand, feed: ScriptedFeed
) -> None:
    demand.pin(["RELIANCE", "INFY"])
    demand.on_topic("stream:INFY:1m", True)
    demand.pin(["TCS", "NOSUCHCO"])  # an unknown symbol is not pinned
    assert feed.calls[1:] == [("subscribe", ["TCS"]), ("unsubscribe", ["RELIANCE"])]
    assert demand.active == frozenset({"INFY", "TCS"})
    demand.pin([])
    assert feed.calls[-1] == ("unsubscribe", ["TCS"])


def test_subscribed_tokens_follow_the_registry(
    demand: Demand, feed: ScriptedFeed, registry: InstrumentRegistry
) -> None:
    demand.on_topic("stream:INFY:1m", True)
    demand.pin(["NIFTY 50"])
    assert feed.subscribed == {
        registry.resolve("INFY").instrument_token,
        registry.resolve("NIFTY 50").instrument_token,
    }
