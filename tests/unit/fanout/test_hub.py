"""The hub's fan-out rules with peers that record what they are sent (no network needed)."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes import RecordingPeer, SlowBus
from tickhub.bus import BusMessage
from tickhub.bus.memory import MemoryBus
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.topics import Endpoint
from tickhub.fanout import CloseCode, Hub, HubLimits
from tickhub.runtime.clock import ManualClock
from tickhub.server import text_frame


def _hub(**limits: Any) -> tuple[Hub, MemoryBus, ManualClock]:
    bus = MemoryBus()
    clock = ManualClock()
    hub = Hub(bus, InstrumentRegistry.bundled(), clock, text_frame, HubLimits(**limits))
    return hub, bus, clock


def _data(seq: int, kind: str) -> bytes:
    return json.dumps({"type": "data", "symbol": "INFY", "seq": seq, "data_type": kind}).encode()


def test_frame_is_built_once_and_shared_by_every_subscriber() -> None:
    hub, bus, _ = _hub()
    peers = [RecordingPeer() for _ in range(3)]
    for p in peers:
        s = hub.connect(p, Endpoint.STREAM, "t")
        assert s is not None
        hub.receive(s, b'{"type":"subscribe","symbol":"INFY"}')
    bus.publish(BusMessage("stream:INFY:1m", _data(1, "tick_data"), "tick"))
    last = [p.frames[-1] for p in peers]
    assert last[0] is last[1] is last[2]  # the same bytes object: encoded and framed once


def test_paused_client_keeps_latest_per_slot_in_update_order_and_events_all() -> None:
    hub, bus, _ = _hub()
    peer = RecordingPeer()
    s = hub.connect(peer, Endpoint.STREAM, "t")
    assert s is not None
    hub.receive(s, b'{"type":"subscribe","symbol":"INFY"}')
    before = len(peer.frames)
    hub.pause(s)
    t = "stream:INFY:1m"
    bus.publish(BusMessage(t, _data(1, "tick_data"), "tick"))
    bus.publish(BusMessage(t, _data(2, "candle_data"), "candle:a"))
    bus.publish(BusMessage(t, _data(3, "tick_data"), "tick"))
    bus.publish(BusMessage(t, _data(4, "event"), None))
    bus.publish(BusMessage(t, _data(5, "event"), None))
    assert len(peer.frames) == before  # nothing written while paused
    hub.resume(s)
    sent = [m["seq"] for m in peer.messages()[before:]]
    assert sent == [2, 3, 4, 5]  # tick 1 replaced by tick 3; order follows the latest updates
    assert s.conflated == 1 and s.dropped == 1


def test_client_paused_past_grace_is_closed_with_slow_consumer_code() -> None:
    hub, _, clock = _hub(slow_client_grace=5.0)
    peer = RecordingPeer()
    s = hub.connect(peer, Endpoint.STREAM, "t")
    assert s is not None
    hub.pause(s)
    clock.advance(4.0)
    assert hub.check_slow_clients() == 0
    clock.advance(2.0)
    assert hub.check_slow_clients() == 1
    assert peer.closed is not None and peer.closed[0] == CloseCode.SLOW_CONSUMER
    # It counts against the connection limits until its socket is gone (the server layer
    # reports that), so closing clients cannot pile up sockets past the limits.
    assert len(hub) == 1 and s.closing and not s.subs
    hub.disconnect(s)
    assert len(hub) == 0


def test_too_many_held_events_closes_the_client() -> None:
    hub, bus, _ = _hub(max_held_events=3)
    peer = RecordingPeer()
    s = hub.connect(peer, Endpoint.ALERTS, "t")
    assert s is not None
    hub.receive(s, b'{"type":"subscribe","symbol":"INFY"}')
    hub.pause(s)
    for i in range(4):
        bus.publish(BusMessage("alerts:INFY", _data(i, "event"), None))
    assert peer.closed is not None and peer.closed[0] == CloseCode.SLOW_CONSUMER


def test_last_unsubscribe_releases_the_bus_topic() -> None:
    hub, _bus, _ = _hub()
    a, b = RecordingPeer(), RecordingPeer()
    sa = hub.connect(a, Endpoint.STREAM, "t")
    assert sa is not None
    sb = hub.connect(b, Endpoint.STREAM, "t")
    assert sb is not None
    events: list[tuple[str, bool]] = []
    hub.demand_listeners.append(lambda t, w: events.append((t, w)))
    hub.receive(sa, b'{"type":"subscribe","symbol":"INFY"}')
    hub.receive(sb, b'{"type":"subscribe","symbol":"INFY"}')
    hub.receive(sa, b'{"type":"unsubscribe","symbol":"INFY"}')
    assert events == [("stream:INFY:1m", True)]
    hub.disconnect(sb)
    assert events == [("stream:INFY:1m", True), ("stream:INFY:1m", False)]
    assert hub.topics() == {}


async def test_live_messages_wait_for_a_slow_snapshot_and_it_never_comes_after_them() -> None:
    import asyncio

    bus = SlowBus()
    hub = Hub(bus, InstrumentRegistry.bundled(), ManualClock(), text_frame, HubLimits())
    t = "stream:INFY:1m"
    bus.publish(BusMessage(t, _data(5, "candle_data"), "candle:a", "candle", seq=5))
    bus.publish(BusMessage(t, _data(6, "tick_data"), "tick", "tick", seq=6))
    peer = RecordingPeer()
    s = hub.connect(peer, Endpoint.STREAM, "t")
    assert s is not None
    hub.receive(s, b'{"type":"subscribe","symbol":"INFY"}')
    # While the snapshot is fetched, a newer tick (7) arrives: it replaces retained tick 6, so
    # it is part of the snapshot (as in one process) and is not sent again live.
    bus.publish(BusMessage(t, _data(7, "tick_data"), "tick", "tick", seq=7))
    bus.release.set()
    for _ in range(50):
        await asyncio.sleep(0)
    data = [m for m in peer.messages() if m["type"] == "data"]
    assert [(m["seq"], bool(m.get("snapshot"))) for m in data] == [(5, True), (7, True)]


def test_clients_of_a_public_topic_share_one_subscription_and_per_user_topics_do_not() -> None:
    hub, _, _ = _hub()
    a, b = (hub.connect(RecordingPeer(), Endpoint.STREAM, "t") for _ in range(2))
    assert a is not None and b is not None
    for s in (a, b):
        hub.receive(s, b'{"type":"subscribe","symbols":["INFY","TCS"]}')
    for t in ("stream:INFY:1m", "stream:TCS:1m"):
        assert a.subs[t] is b.subs[t]  # one object, one topic string, for every client
    x, y = (hub.connect(RecordingPeer(), Endpoint.ALERTS, "t") for _ in range(2))
    assert x is not None and y is not None
    x.user, y.user = "alice", "bob"
    for s in (x, y):
        hub.receive(s, b'{"type":"subscribe","symbol":"INFY"}')
    assert list(x.subs) == ["alerts:INFY:@alice"] and list(y.subs) == ["alerts:INFY:@bob"]
