"""The Kite feed's subscription book without sockets: placement, reference counts, modes, room."""

from __future__ import annotations

from tickhub.core.instruments import InstrumentRegistry
from tickhub.feeds.kite.connection import Connection
from tickhub.feeds.kite.subscriptions import SubscriptionBook, apply_message, plan_subscriptions

REGISTRY = InstrumentRegistry.bundled().subset(["RELIANCE", "INFY", "TCS", "SBIN"])
RELIANCE, INFY, TCS, SBIN = (REGISTRY.resolve(n) for n in ("RELIANCE", "INFY", "TCS", "SBIN"))


def book(connections: int = 2, per_connection: int = 2) -> SubscriptionBook:
    return SubscriptionBook([Connection(i) for i in range(connections)], per_connection)


def test_tokens_fill_the_lowest_connection_with_room_and_the_rest_are_refused() -> None:
    b = book()
    refused = b.add([RELIANCE, INFY, TCS, SBIN, RELIANCE], "quote")
    assert refused == []
    first, second = b.connections
    assert set(first.desired) == {RELIANCE.instrument_token, INFY.instrument_token}
    assert set(second.desired) == {TCS.instrument_token, SBIN.instrument_token}
    assert b.refs[RELIANCE.instrument_token] == 2
    assert b.limit == 4

    small = book(connections=1, per_connection=1)
    assert small.add([RELIANCE, INFY], "full") == [INFY]
    assert set(small.rejected) == {"NSE:INFY"}
    small.remove([INFY])  # an unsubscribe of a refused instrument clears it
    assert small.rejected == {}


def test_the_last_reference_frees_the_token_and_its_room() -> None:
    b = book(connections=1, per_connection=1)
    b.add([RELIANCE], "full")
    b.add([RELIANCE], "full")
    b.remove([RELIANCE])
    assert b.desired() == {RELIANCE.instrument_token: "full"}
    b.remove([RELIANCE])
    assert b.desired() == {} and b.refs == {}
    assert b.add([INFY], "full") == []


def test_a_token_takes_the_richest_mode_asked_for_and_every_change_sets_dirty() -> None:
    b = book()
    conn = b.connections[0]
    b.add([RELIANCE], "quote")
    assert conn.dirty.is_set()
    conn.dirty.clear()
    b.add([RELIANCE], "ltp")  # poorer: nothing changes
    assert not conn.dirty.is_set()
    assert conn.desired[RELIANCE.instrument_token] == "quote"
    b.add([RELIANCE], "full")
    assert conn.dirty.is_set()
    assert conn.desired[RELIANCE.instrument_token] == "full"


def test_applying_the_plan_brings_the_server_side_to_what_is_desired() -> None:
    desired = {3: "full", 1: "quote", 2: "ltp"}
    upstream = {1: "full", 9: "quote"}
    for message in plan_subscriptions(desired, upstream):  # type: ignore[arg-type]
        apply_message(message, upstream)  # type: ignore[arg-type]
    assert upstream == desired
    assert plan_subscriptions(desired, upstream) == []  # type: ignore[arg-type]
