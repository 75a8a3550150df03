"""The producer side of numbering: one ``seq`` per topic that grows by one per live message, the
run's ``epoch`` on every message, each payload encoded once with the fields clients read."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from tests.fakes import RecordingBus
from tickhub.ingest.publisher import STATUS_TOPIC, Publisher

TS = datetime(2025, 1, 27, 4, 0, 1, 500000, tzinfo=UTC)


def body(payload: bytes) -> dict[str, object]:
    out: dict[str, object] = orjson.loads(payload)
    return out


def test_seq_starts_at_one_and_grows_by_one_per_topic_independently() -> None:
    bus = RecordingBus()
    pub = Publisher(bus, "ep1")
    for t in ("stream:A:1m", "stream:A:1m", "stream:B:1m", "stream:A:1m", "stream:B:1m"):
        pub.data(t, t.split(":")[1], "tick_data", {}, TS, slot="tick")
    seqs = [(m.topic, m.seq) for m in bus.published]
    assert seqs == [
        ("stream:A:1m", 1),
        ("stream:A:1m", 2),
        ("stream:B:1m", 1),
        ("stream:A:1m", 3),
        ("stream:B:1m", 2),
    ]
    assert [body(m.payload)["seq"] for m in bus.published] == [s for _, s in seqs]
    assert pub.published == 5


WALL = datetime(2026, 12, 4, 18, 40, 0, 250000, tzinfo=UTC)


def test_data_message_fields_and_bus_metadata() -> None:
    bus = RecordingBus()
    pub = Publisher(bus, "run-7", now=lambda: WALL)
    pub.data(
        "stream:INFY:5m",
        "INFY",
        "candle_data",
        {"close": 1.5},
        TS,
        slot="candle:x",
        retain="candle",
        interval="5m",
        snapshot_of="x",
    )
    (msg,) = bus.published
    assert (msg.topic, msg.slot, msg.retain, msg.deliver, msg.drop) == (
        "stream:INFY:5m",
        "candle:x",
        "candle",
        True,
        False,
    )
    assert (msg.seq, msg.epoch) == (1, "run-7")
    assert msg.published_at > 0  # wall time, for the latency metric
    decoded = body(msg.payload)
    assert decoded == {
        "type": "data",
        "symbol": "INFY",
        "timestamp": "2025-01-27T04:00:01.500Z",
        "server_time": "2026-12-04T18:40:00.250Z",
        "data_type": "candle_data",
        "seq": 1,
        "epoch": "run-7",
        "interval": "5m",
        "snapshot_of": "x",
        "data": {"close": 1.5},
    }
    assert list(decoded)[-1] == "data"  # the bulky part last, after what a client routes on


def test_server_time_is_the_wall_clock_at_encoding_beside_the_exchange_timestamp() -> None:
    """``timestamp`` is what the exchange said (TS, in the past); ``server_time`` is when this
    server made the message, read from its clock once per message, for every client alike."""
    bus = RecordingBus()
    walls = iter([WALL, WALL.replace(second=5)])
    pub = Publisher(bus, "e", now=lambda: next(walls))
    pub.data("stream:INFY:1m", "INFY", "tick_data", {}, TS, slot="tick")
    pub.retain_only("stream:INFY:1m", "INFY", "technical_analysis", {}, TS, retain="history")
    first, retained = (body(m.payload) for m in bus.published)
    assert (first["timestamp"], first["server_time"]) == (
        "2025-01-27T04:00:01.500Z",
        "2026-12-04T18:40:00.250Z",
    )
    assert retained["server_time"] == "2026-12-04T18:40:05.250Z"


def test_interval_is_absent_unless_given() -> None:
    bus = RecordingBus()
    Publisher(bus, "e").data("alerts:INFY", "INFY", "alert", {}, TS, slot=None)
    assert "interval" not in body(bus.published[0].payload)
    assert bus.published[0].slot is None  # an event: never conflated


def test_retain_only_reuses_the_current_seq_and_is_not_delivered() -> None:
    bus = RecordingBus()
    pub = Publisher(bus, "e")
    t = "stream:INFY:1m"
    pub.retain_only(t, "INFY", "history", {"candles": []}, TS, retain="history")
    pub.data(t, "INFY", "tick_data", {}, TS, slot="tick")
    pub.data(t, "INFY", "tick_data", {}, TS, slot="tick")
    pub.retain_only(t, "INFY", "history", {"candles": [1]}, TS, retain="history", interval="1m")
    pub.data(t, "INFY", "tick_data", {}, TS, slot="tick")
    first, _, second, history, third = bus.published
    assert (history.seq, body(history.payload)["seq"]) == (0, 2)  # numbered, not counted
    assert body(first.payload)["seq"] == 0
    assert [second.seq, third.seq] == [2, 3]  # no gap left by the retained-only state
    assert (history.deliver, history.retain, history.slot) == (False, "history", None)
    assert body(history.payload)["interval"] == "1m"
    assert pub.published == 3


def test_retained_only_state_reaches_snapshots_not_live_handlers() -> None:
    bus = RecordingBus()
    seen: list[bytes] = []
    bus.subscribe("stream:INFY:1m", lambda m: seen.append(m.payload))
    pub = Publisher(bus, "e")
    pub.retain_only("stream:INFY:1m", "INFY", "history", {}, TS, retain="history")
    assert seen == []
    assert bus.retained_nowait("stream:INFY:1m") == [bus.published[0].payload]


def test_drop_retained_and_status() -> None:
    bus = RecordingBus()
    pub = Publisher(bus, "e")
    pub.drop_retained("portfolio:INFY:@u", "position")
    drop = bus.published[0]
    assert (drop.payload, drop.retain, drop.deliver, drop.drop) == (b"", "position", False, True)
    pub.status(TS, feed="live", detail="ok")
    status = bus.published[1]
    assert (status.topic, status.retain, status.slot) == (STATUS_TOPIC, "status", None)
    assert body(status.payload) == {
        "type": "status",
        "timestamp": "2025-01-27T04:00:01.500Z",
        "feed": "live",
        "detail": "ok",
    }
    assert pub.published == 0  # neither is a numbered data message
