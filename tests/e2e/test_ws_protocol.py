"""The seed protocol, round trip, on every endpoint of a real server over real sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest
import websockets

from tests.helpers import ISO_MS_Z, Client, is_type
from tickhub.app.roles import SingleService

ENDPOINTS = ["/ws/stream", "/ws/analysis", "/ws/alerts", "/ws/portfolio"]


def data_for(symbol: str, live: bool = True) -> Any:
    return lambda m: (
        m.get("type") == "data"
        and m.get("symbol") == symbol
        and (not live or not m.get("snapshot"))
    )


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_welcome_message_matches_seed(connect: Any, path: str) -> None:
    client: Client = await connect(path)
    msg = await client.recv()
    assert msg["type"] == "connection"
    assert msg["status"] == "connected"
    assert msg["message"] == "WebSocket connection established successfully"
    assert ISO_MS_Z.match(msg["timestamp"]), msg["timestamp"]
    assert msg["endpoint"] == path
    assert msg["connection_id"]
    assert msg["protocol_version"] == 1


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_subscribe_acks_sends_snapshot_then_live_data(connect: Any, path: str) -> None:
    client: Client = await connect(path)
    await client.recv()
    await client.send({"type": "subscribe", "symbol": "RELIANCE"})
    ack = await client.wait_for(is_type("subscription"))
    assert ack == {
        **ack,
        "type": "subscription",
        "status": "subscribed",
        "symbol": "RELIANCE",
    }
    assert ISO_MS_Z.match(ack["timestamp"])
    live = await client.wait_for(data_for("RELIANCE"), timeout=15)
    assert ISO_MS_Z.match(live["timestamp"])
    assert isinstance(live["seq"], int) and live["seq"] >= 1
    assert live["epoch"]
    data = live["data"]
    if path == "/ws/stream":
        assert live["data_type"] in {"tick_data", "candle_data", "market_data"}
    elif path == "/ws/analysis":
        assert isinstance(data["technical_indicators"], dict)
        assert isinstance(data["patterns"], list)
        assert isinstance(data["risk_metrics"], dict)
        assert data["interval"] == "1m"
    elif path == "/ws/alerts":
        for key in ("price_alerts", "volume_alerts", "breakout_alerts"):
            assert isinstance(data[key], list)
    else:
        assert "current_value" in data["position"]
        assert "unrealized" in data["pnl"] and "day" in data["pnl"]


async def test_stream_snapshot_follows_ack_and_has_tick_and_candle(
    connect: Any, service: SingleService
) -> None:
    client: Client = await connect()
    await client.recv()
    # Wait until the feed has produced state for the symbol, so the snapshot is not empty.
    await _wait_ticks(service, "INFY")
    await client.send({"type": "subscribe", "symbol": "INFY"})
    await client.wait_for(is_type("subscription"))
    kinds = set()
    while True:
        msg = await client.recv()
        if not msg.get("snapshot"):
            break
        assert msg["symbol"] == "INFY"
        kinds.add(msg["data_type"])
    assert {"tick_data", "candle_data"} <= kinds


async def _wait_ticks(service: SingleService, symbol: str) -> None:
    import asyncio

    for _ in range(200):
        if symbol in service.ingest.last_ticks and service.ingest.candles.current(symbol, _m1()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no tick for {symbol}")


def _m1() -> Any:
    from tickhub.core.model import Interval

    return Interval.M1


async def test_tick_data_fields_and_change_consistent_with_prev_close(connect: Any) -> None:
    client: Client = await connect()
    await client.send({"type": "subscribe", "symbol": "TCS"})
    msg = await client.wait_for(
        lambda m: m.get("data_type") == "tick_data" and not m.get("snapshot")
    )
    d = msg["data"]
    for field in (
        "price",
        "volume",
        "change",
        "change_percent",
        "open",
        "high",
        "low",
        "prev_close",
        "last_quantity",
        "average_price",
        "buy_quantity",
        "sell_quantity",
        "exchange_timestamp",
    ):
        assert field in d, field
    assert d["change"] == pytest.approx(d["price"] - d["prev_close"], abs=1e-6)
    assert d["change_percent"] == pytest.approx(
        (d["price"] - d["prev_close"]) / d["prev_close"] * 100, abs=0.005
    )
    assert d["low"] <= d["price"] <= d["high"]
    assert ISO_MS_Z.match(d["exchange_timestamp"])


async def test_candle_and_market_data_shapes(connect: Any) -> None:
    client: Client = await connect()
    await client.send({"type": "subscribe", "symbol": "HDFCBANK", "interval": "1m"})
    candle = await client.wait_for(lambda m: m.get("data_type") == "candle_data")
    c = candle["data"]
    assert c["interval"] == "1m" and candle["interval"] == "1m"
    assert ISO_MS_Z.match(c["start"])
    assert c["low"] <= min(c["open"], c["close"]) <= max(c["open"], c["close"]) <= c["high"]
    assert isinstance(c["closed"], bool) and c["volume"] >= 0
    market = await client.wait_for(lambda m: m.get("data_type") == "market_data")
    depth = market["data"]["depth"]
    assert len(depth["buy"]) == 5 and len(depth["sell"]) == 5
    assert depth["buy"][0]["price"] < depth["sell"][0]["price"]


async def test_closed_candle_is_sent_with_closed_flag(connect: Any) -> None:
    client: Client = await connect()
    await client.send({"type": "subscribe", "symbol": "SBIN"})
    # SIM_SPEED=60: one market minute per second, so a 1m candle closes within ~1 s.
    closed = await client.wait_for(
        lambda m: m.get("data_type") == "candle_data" and m["data"]["closed"], timeout=15
    )
    assert closed["data"]["interval"] == "1m"


async def test_seq_increases_by_one_per_topic(connect: Any) -> None:
    client: Client = await connect()
    await client.send({"type": "subscribe", "symbol": "ITC"})
    await client.wait_for(is_type("subscription"))
    seqs: list[int] = []
    while len(seqs) < 25:
        msg = await client.wait_for(is_type("data"))
        seqs.append(msg["seq"])
    live = [s for s in seqs]
    # Snapshot messages repeat the latest seq of each retained value; from the first live
    # message on, every message is the next number.
    snapshots = [m for m in client.seen if m.get("snapshot")]
    start = len(snapshots)
    tail = live[start:]
    assert tail == list(range(tail[0], tail[0] + len(tail)))


async def test_unsubscribe_acks_and_stops_data_for_that_symbol(connect: Any) -> None:
    client: Client = await connect()
    await client.send({"type": "subscribe", "symbols": ["RELIANCE", "INFY"]})
    await client.wait_for(data_for("RELIANCE"))
    await client.send({"type": "unsubscribe", "symbol": "RELIANCE"})
    ack = await client.wait_for(is_type("subscription", status="unsubscribed"))
    assert ack["symbol"] == "RELIANCE"
    assert ISO_MS_Z.match(ack["timestamp"])
    index = len(client.seen)
    # INFY keeps flowing; none of what follows the ack may be RELIANCE.
    for _ in range(20):
        await client.wait_for(data_for("INFY"))
    after = client.seen[index:]
    assert not [m for m in after if m.get("symbol") == "RELIANCE" and m.get("type") == "data"]


async def test_subscribe_many_symbols_acks_each(connect: Any) -> None:
    client: Client = await connect()
    await client.send({"type": "subscribe", "symbols": ["RELIANCE", "infy", "NSE:TCS", "INFY"]})
    acks = [await client.wait_for(is_type("subscription")) for _ in range(3)]
    assert [a["symbol"] for a in acks] == ["RELIANCE", "INFY", "TCS"]
    assert acks[1]["requested"] == "infy" and acks[2]["requested"] == "NSE:TCS"
    listed = await client.request({"type": "list_subscriptions"}, "subscriptions")
    assert listed["symbols"] == ["RELIANCE", "INFY", "TCS"]
    assert all(s["interval"] == "1m" for s in listed["subscriptions"])


async def test_subscribe_with_interval_gets_that_interval(connect: Any) -> None:
    client: Client = await connect("/ws/analysis")
    await client.send({"type": "subscribe", "symbol": "RELIANCE", "interval": "5m"})
    ack = await client.wait_for(is_type("subscription"))
    assert ack["interval"] == "5m"
    msg = await client.wait_for(data_for("RELIANCE", live=False))
    assert msg["interval"] == "5m" and msg["data"]["interval"] == "5m"


async def test_heartbeat_ack_and_ping_pong(connect: Any) -> None:
    client: Client = await connect()
    await client.recv()
    hb = await client.request({"type": "heartbeat", "timestamp": 1706352600.123}, "heartbeat")
    assert hb["status"] == "ack" and ISO_MS_Z.match(hb["timestamp"])
    assert {"sent", "dropped", "conflated"} <= hb.keys()
    pong = await client.request({"type": "ping", "timestamp": 1706352600.123}, "pong")
    assert ISO_MS_Z.match(pong["timestamp"])
    assert pong["client_timestamp"] == 1706352600.123


BAD_INPUTS: list[tuple[str, str | bytes, str, str | None]] = [
    ("invalid_json", "{not json", "invalid_json", "Invalid JSON format"),
    ("array", "[1, 2]", "invalid_message", None),
    ("string", '"hello"', "invalid_message", None),
    ("number", "42", "invalid_message", None),
    ("no_type", '{"symbol": "RELIANCE"}', "missing_field", None),
    ("type_not_string", '{"type": 5}', "invalid_field", None),
    ("unknown_type", '{"type": "fly"}', "unknown_type", "unknown message type: 'fly'"),
    ("missing_symbol", '{"type": "subscribe"}', "missing_field", None),
    ("empty_symbol", '{"type": "subscribe", "symbol": ""}', "missing_field", None),
    ("symbol_not_string", '{"type": "subscribe", "symbol": 7}', "invalid_field", None),
    ("symbols_not_list", '{"type": "subscribe", "symbols": "RELIANCE"}', "invalid_field", None),
    (
        "unknown_symbol",
        '{"type": "subscribe", "symbol": "RELIANCEX"}',
        "unknown_symbol",
        "unknown symbol: 'RELIANCEX'",
    ),
    (
        "bad_interval",
        '{"type": "subscribe", "symbol": "RELIANCE", "interval": "7m"}',
        "unknown_interval",
        None,
    ),
    ("not_subscribed", '{"type": "unsubscribe", "symbol": "INFY"}', "not_subscribed", None),
    ("oversized", json.dumps({"type": "ping", "pad": "x" * 70_000}), "message_too_large", None),
    ("binary_frame", b'{"type": "ping"}', "unsupported_frame", None),
]


@pytest.mark.parametrize(
    ("case", "raw", "code", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
async def test_bad_input_gets_error_and_connection_stays_usable(
    connect: Any, case: str, raw: str | bytes, code: str, message: str | None
) -> None:
    client: Client = await connect()
    await client.recv()
    await client.send(raw)
    err = await client.wait_for(is_type("error"))
    assert err["code"] == code
    assert ISO_MS_Z.match(err["timestamp"])
    assert err["message"]
    if message is not None:
        assert err["message"] == message
    pong = await client.request({"type": "ping"}, "pong")
    assert pong["type"] == "pong"


async def test_fragmented_message_is_reassembled(connect: Any) -> None:
    client: Client = await connect()
    await client.recv()
    await client.ws.send(iter(['{"type": "sub', 'scribe", "symbol": ', '"INFY"}']))
    ack = await client.wait_for(is_type("subscription"))
    assert ack["symbol"] == "INFY"


async def test_fragmented_oversized_message_is_refused(connect: Any) -> None:
    client: Client = await connect()
    await client.recv()
    await client.ws.send(iter(["x" * 40_000, "y" * 40_000]))
    err = await client.wait_for(is_type("error"))
    assert err["code"] == "message_too_large"
    assert (await client.request({"type": "ping"}, "pong"))["type"] == "pong"


async def test_subscription_limit_is_an_error_not_a_silent_drop(service_factory: Any) -> None:
    svc = await service_factory(max_subscriptions=2)
    client = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
    await client.send({"type": "subscribe", "symbols": ["RELIANCE", "INFY", "TCS"]})
    err = await client.wait_for(is_type("error"))
    assert err["code"] == "limit_exceeded" and err["symbol"] == "TCS"
    assert err["details"] == {"limit": 2, "current": 2, "setting": "MAX_SUBSCRIPTIONS"}
    listed = await client.request({"type": "list_subscriptions"}, "subscriptions")
    assert listed["symbols"] == ["RELIANCE", "INFY"]
    await client.close()


async def test_connection_limit_refuses_handshake(service_factory: Any) -> None:
    svc = await service_factory(max_connections=1)
    first = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
    await first.recv()
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
    assert info.value.response.status_code == 503
    assert json.loads(info.value.response.body)["code"] == "limit_exceeded"
    await first.close()
