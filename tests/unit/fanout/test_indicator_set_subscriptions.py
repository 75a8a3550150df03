"""Analysis subscriptions of indicator sets in the hub: one topic per set, bounded bookkeeping."""

from __future__ import annotations

import json

from tests.fakes import RecordingPeer
from tickhub.bus.memory import MemoryBus
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.topics import Endpoint
from tickhub.fanout import Hub, HubLimits
from tickhub.fanout.session import Session
from tickhub.runtime.clock import ManualClock
from tickhub.server import text_frame

SET = "analysis:INFY:1m|ema:9;rsi:14"


def _hub(**limits: int) -> Hub:
    return Hub(
        MemoryBus(), InstrumentRegistry.bundled(), ManualClock(), text_frame, HubLimits(**limits)
    )


def _send(hub: Hub, session: Session, msg: dict[str, object]) -> None:
    hub.receive(session, json.dumps(msg).encode())


def _connect(hub: Hub) -> tuple[Session, RecordingPeer]:
    peer = RecordingPeer()
    session = hub.connect(peer, Endpoint.ANALYSIS, "t")
    assert session is not None
    return session, peer


def test_subscribers_of_one_set_share_its_topic_and_the_set_leaves_with_them() -> None:
    hub = _hub()
    events: list[tuple[str, bool]] = []
    hub.demand_listeners.append(lambda t, w: events.append((t, w)))
    sessions = [_connect(hub)[0] for _ in range(3)]
    spellings = [["ema:9", "rsi:14"], ["RSI:14", "ema:9"], ["rsi", "ema:09", "ema:9"]]
    for session, indicators in zip(sessions, spellings, strict=True):
        _send(hub, session, {"type": "subscribe", "symbol": "INFY", "indicators": indicators})
    assert hub.topics() == {SET: 3}
    assert events == [(SET, True)]  # one demand for the set: one computation upstream
    subs = [next(iter(s.subs.values())) for s in sessions]
    assert subs[1] is subs[2]  # shared once the set is in use
    for session in sessions:
        _send(hub, session, {"type": "unsubscribe", "symbol": "INFY"})
    assert hub.topics() == {} and events[-1] == (SET, False)
    # Nothing of the set is kept once no topic uses it.
    dispatch = hub._dispatch
    assert dispatch._set_topics == {} and dispatch._set_subs == {}


def test_a_refused_subscription_keeps_nothing_of_its_set() -> None:
    hub = _hub(max_subscriptions=1)
    session, peer = _connect(hub)
    _send(hub, session, {"type": "subscribe", "symbol": "TCS"})
    for n in range(5, 25):
        _send(hub, session, {"type": "subscribe", "symbol": "INFY", "indicators": [f"ema:{n}"]})
    errors = [m for m in peer.messages() if m.get("type") == "error"]
    assert len(errors) == 20 and {e["code"] for e in errors} == {"limit_exceeded"}
    assert {e["details"]["setting"] for e in errors} == {"MAX_SUBSCRIPTIONS"}
    assert hub._dispatch._set_topics == {} and hub._dispatch._set_subs == {}


def test_the_set_bound_counts_sets_in_use_across_symbols() -> None:
    hub = _hub(max_indicator_sets=2)
    session, peer = _connect(hub)
    for symbol, indicators in (("INFY", ["ema:9"]), ("TCS", ["ema:9"]), ("TCS", ["sma:5"])):
        _send(hub, session, {"type": "subscribe", "symbol": symbol, "indicators": indicators})
    _send(hub, session, {"type": "subscribe", "symbol": "INFY", "indicators": ["obv"]})
    errors = [m for m in peer.messages() if m.get("type") == "error"]
    assert [e["details"] for e in errors] == [
        {"limit": 2, "current": 2, "setting": "MAX_INDICATOR_SETS"}
    ]
    assert len(session.subs) == 3
