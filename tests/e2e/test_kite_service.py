"""The whole service on FEED=kite against the local Kite emulator: all four endpoints stream
Kite-format data, and an expired token reaches clients and /health as auth_failed."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_settings
from tests.helpers import Client, ahttp_get, is_type
from tickhub.app.roles import SingleService
from tickhub.core.instruments import InstrumentRegistry
from tickhub.devtools.kite_emulator import KiteEmulator
from tickhub.feeds.kite.client import KiteFeed

SYMBOLS = ("RELIANCE", "INFY", "NIFTY 50")


async def test_all_endpoints_stream_from_the_kite_emulator(tmp_path: Path) -> None:
    registry = InstrumentRegistry.bundled().subset(SYMBOLS)
    emulator = KiteEmulator(registry, speed=60.0, heartbeat_interval=0.5)
    await emulator.start()
    token_file = tmp_path / "token"
    token_file.write_text(emulator.access_token)
    svc = SingleService(
        make_settings(
            tmp_path,
            feed="kite",
            kite_api_key="test_key",
            kite_token_file=token_file,
            kite_url=emulator.url,
            symbols=",".join(SYMBOLS),
            demo_portfolio=False,
        )
    )
    await svc.start()
    try:
        clients = {}
        for path in ("/ws/stream", "/ws/analysis", "/ws/alerts", "/ws/portfolio"):
            c = await Client.connect(f"ws://127.0.0.1:{svc.port}{path}")
            await c.request({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
            clients[path] = c
        tick = await clients["/ws/stream"].wait_for(
            lambda m: m.get("data_type") == "tick_data" and not m.get("snapshot"), timeout=20
        )
        assert tick["data"]["price"] > 0 and tick["data"]["prev_close"] > 0
        market = await clients["/ws/stream"].wait_for(
            lambda m: m.get("data_type") == "market_data", timeout=20
        )
        assert len(market["data"]["depth"]["buy"]) == 5  # full mode: depth from the 184-byte packet
        for path in ("/ws/analysis", "/ws/alerts", "/ws/portfolio"):
            msg = await clients[path].wait_for(
                lambda m: m.get("type") == "data" and not m.get("snapshot"), timeout=20
            )
            assert msg["symbol"] == "RELIANCE"
        # The feed subscribed upstream what clients want (and the benchmark index), in full mode.
        tokens = {738561, 256265}
        assert tokens <= set(emulator.subscriptions)
        assert emulator.subscriptions[738561] == "full"
        assert svc.port is not None
        status, _, health = await ahttp_get(svc.port, "/health")
        assert status == 200 and health["feed"]["name"] == "kite"
        assert health["feed"]["state"] == "live"

        # The access token expires: clients get a status message, /health turns degraded.
        emulator.expire_token("fresh_token")
        msg = await clients["/ws/stream"].wait_for(
            lambda m: m.get("type") == "status" and m.get("feed") == "auth_failed", timeout=20
        )
        # It says what the user does, in the service's terms, not which method to call.
        assert "expire every morning" in msg["detail"]
        assert f"write the new token to {token_file} (KITE_TOKEN_FILE)" in msg["detail"]
        assert "set_access_token" not in msg["detail"]
        status, _, health = await ahttp_get(svc.port, "/health")
        assert status == 503 and health["feed"]["state"] == "auth_failed"
        # A new token in the token file: the feed resumes by itself.
        token_file.write_text("fresh_token")
        await clients["/ws/stream"].wait_for(
            lambda m: m.get("type") == "status" and m.get("feed") == "live", timeout=30
        )
        await clients["/ws/stream"].wait_for(is_type("data"), timeout=20)
        for c in clients.values():
            await c.close()
    finally:
        await svc.stop()
        await emulator.stop()


async def test_clients_see_reconnecting_then_live_never_market_closed_on_a_reconnect(
    tmp_path: Path,
) -> None:
    """Outside market hours (forced, so the test does not depend on the hour it runs), the
    upstream socket dies and is reopened: clients get ``reconnecting`` then ``live``."""
    registry = InstrumentRegistry.bundled().subset(("RELIANCE", "NIFTY 50"))
    emulator = KiteEmulator(registry, speed=60.0, heartbeat_interval=0.2)
    await emulator.start()
    feed = KiteFeed(
        registry,
        api_key="test_key",
        access_token=emulator.access_token,
        url=emulator.url,
        stale_after=1.0,
        backoff_initial=0.05,
        backoff_max=0.2,
        market_hours=lambda now: False,
    )
    settings = make_settings(
        tmp_path,
        feed="kite",
        kite_api_key="test_key",
        kite_access_token=emulator.access_token,
        kite_url=emulator.url,
        symbols="RELIANCE,NIFTY 50",
        demo_portfolio=False,
    )
    svc = SingleService(settings, registry=registry, feed=feed)
    await svc.start()
    try:
        c = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
        await c.request({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
        await c.wait_for(lambda m: m.get("data_type") == "tick_data" and not m.get("snapshot"))
        emulator.stall()  # the upstream socket goes silent: it is declared dead, then reopened
        statuses: list[str] = []

        def status_until_live_again(m: dict[str, object]) -> bool:
            if m.get("type") == "status":
                statuses.append(str(m["feed"]))
            return "reconnecting" in statuses and statuses[-1] == "live"

        await c.wait_for(status_until_live_again, timeout=20)
        after = statuses[statuses.index("reconnecting") :]
        assert after == ["reconnecting", "live"], statuses
        await c.wait_for(lambda m: m.get("data_type") == "tick_data", timeout=20)
        await c.close()
    finally:
        await svc.stop()
        await emulator.stop()
