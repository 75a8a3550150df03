"""Replies matched to the calls that wait for them: by order and type, acks by symbol."""

from __future__ import annotations

from typing import Any

import pytest

from tickhub.client import ServerError, SubscriptionAck, TickhubError, parse_message
from tickhub.client.replies import AckWaiters, PendingRequests, same_interval


def ack(symbol: str, **extra: Any) -> SubscriptionAck:
    msg = parse_message({"type": "subscription", "status": "subscribed", "symbol": symbol, **extra})
    assert isinstance(msg, SubscriptionAck)
    return msg


def error(**fields: Any) -> ServerError:
    msg = parse_message({"type": "error", "message": "no", **fields})
    assert isinstance(msg, ServerError)
    return msg


def test_intervals_match_the_servers_default_and_endpoints_without_them() -> None:
    assert same_interval(None, "1m") and same_interval("5m", "5m")
    assert same_interval("5m", None)  # /ws/alerts ignores intervals
    assert not same_interval(None, "5m") and not same_interval("1m", "5m")


async def test_acks_resolve_by_symbol_whoever_sent_the_subscribe() -> None:
    waits = AckWaiters()
    first = waits.add("subscribe", ["reliance", "INFY"], None)
    second = waits.add("subscribe", ["TCS"], "5m")
    waits.ack(ack("TCS", interval="1m"))  # another interval: not this call's
    waits.ack(ack("INFY", interval="1m"))
    waits.ack(ack("RELIANCE", interval="1m", requested="reliance"))
    assert [a.symbol for a in await first] == ["RELIANCE", "INFY"]
    assert not second.done()
    waits.ack(ack("TCS", interval="5m"))
    assert [a.interval for a in await second] == ["5m"]
    assert not waits.waiting()


async def test_a_refused_symbol_fails_the_call_with_the_acks_of_the_others() -> None:
    waits = AckWaiters()
    call = waits.add("subscribe", ["RELIANCE", "NOPE", "ALSO"], None)
    waits.ack(ack("RELIANCE", interval="1m"))
    assert waits.error(error(code="unknown_symbol", symbols=["NOPE", "ALSO"], request="subscribe"))
    with pytest.raises(TickhubError) as refused:
        await call
    assert refused.value.code == "unknown_symbol"
    assert [a.symbol for a in refused.value.details["acks"]] == ["RELIANCE"]


async def test_a_refusal_of_the_whole_message_fails_the_oldest_call() -> None:
    waits = AckWaiters()
    call = waits.add("subscribe", ["RELIANCE"], "2m")
    assert not waits.error(error(code="not_subscribed", symbol="X", request="unsubscribe"))
    assert waits.error(error(code="unknown_interval", request="subscribe"))
    with pytest.raises(TickhubError, match="no"):
        await call


async def test_replies_go_to_the_oldest_sent_request_of_their_type() -> None:
    pending = PendingRequests()
    unsent = pending.add({"type": "list_alerts"})
    a = pending.add({"type": "list_alerts"})
    b = pending.add({"type": "create_alert"})
    a.sent = b.sent = True
    reply = parse_message({"type": "alerts", "alerts": []})
    assert pending.settle("alerts", reply)
    assert a.future.result() is reply and not unsent.future.done()
    assert pending.fail(error(code="unknown_type", details={"type": "create_alert"}))
    assert isinstance(b.future.exception(), TickhubError)
    pending.drop(TickhubError("gone", "connection_closed"), only_sent=True)
    assert pending.unsent() == [unsent] and not unsent.future.done()
    with pytest.raises(ValueError, match="no reply is known"):
        pending.add({"type": "heartbeat"})
