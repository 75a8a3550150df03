"""The roles hold exactly their components, and the HTTP routes report on any of them through
the small interface the server layer defines (no role checks, nothing imported from app/)."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_settings
from tests.fakes import ScriptedFeed
from tests.helpers import ahttp_get
from tickhub.app.roles import (
    ROLES,
    GatewayService,
    IngestService,
    SingleService,
    create_service,
)
from tickhub.bus.memory import MemoryBus
from tickhub.server.http import Headers, HttpRequest
from tickhub.server.routes import (
    IngestCounters,
    OwnOrigins,
    Reported,
    bearer_matches,
    public_health,
)


def test_create_service_builds_the_class_of_each_role(tmp_path: Path) -> None:
    kinds = {"all": SingleService, "ingest": IngestService, "gateway": GatewayService}
    assert set(kinds) == set(ROLES)
    for role, kind in kinds.items():
        feed = None if role == "gateway" else ScriptedFeed()
        svc = create_service(
            make_settings(tmp_path / role, demo_portfolio=False), role, feed=feed, bus=MemoryBus()
        )
        assert type(svc) is kind and svc.role == role
        if isinstance(svc, (SingleService, IngestService)):
            svc.producer.close()


def test_unknown_role_and_a_gateway_with_a_feed_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        create_service(make_settings(tmp_path), "both")
    with pytest.raises(ValueError, match="no feed"):
        create_service(make_settings(tmp_path), "gateway", feed=ScriptedFeed())


def test_each_role_holds_only_its_own_components(tmp_path: Path) -> None:
    ingest = IngestService(make_settings(tmp_path / "i"), feed=ScriptedFeed(), bus=MemoryBus())
    gateway = GatewayService(make_settings(tmp_path / "g"), bus=MemoryBus())
    try:
        assert not hasattr(ingest, "hub") and not hasattr(ingest, "server")
        assert not hasattr(gateway, "ingest") and not hasattr(gateway, "feed")
        reported: Reported = gateway  # what the routes see of it
        assert reported.ingest_counters() is None
    finally:
        ingest.producer.close()


async def test_a_single_service_reports_its_ingest_counters(service: SingleService) -> None:
    counters = service.ingest_counters()
    assert isinstance(counters, IngestCounters)
    assert counters.published == service.ingest.publisher.published
    assert service.port is not None
    status, _, body = await ahttp_get(service.port, "/test")
    assert status == 200 and body["messages"]["published"] is not None


async def test_a_gateway_answers_health_and_test_without_an_ingest(tmp_path: Path) -> None:
    gw = GatewayService(make_settings(tmp_path), bus=MemoryBus())
    await gw.start()
    try:
        assert gw.port is not None
        status, _, body = await ahttp_get(gw.port, "/health")
        assert status == 503 and body["role"] == "gateway"
        assert body["feed"] == {"name": "sim", "state": "starting"}
        status, _, body = await ahttp_get(gw.port, "/test")
        assert status == 200 and body["messages"]["published"] is None
    finally:
        await gw.stop()


def _get_text(port: int, path: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()


async def test_a_gateway_answers_metrics_without_a_tick_age_of_its_own(tmp_path: Path) -> None:
    # Its feed section comes from the ingest's heartbeat and has no last_tick_age_seconds.
    gw = GatewayService(make_settings(tmp_path), bus=MemoryBus())
    await gw.start()
    try:
        assert gw.port is not None
        status, content_type, text = await asyncio.to_thread(_get_text, gw.port, "/metrics")
        assert status == 200 and content_type.startswith("text/plain")
        assert "tickhub_feed_last_tick_age_seconds -1" in text
        assert 'tickhub_feed_state{feed="sim",state="starting"} 1' in text
    finally:
        await gw.stop()


def test_public_health_keeps_no_process_details() -> None:
    body: dict[str, Any] = {
        "status": "ok",
        "service": "tickhub",
        "role": "all",
        "version": "0",
        "timestamp": "t",
        "pid": 1,
        "uptime_seconds": 2.0,
        "feed": {"name": "sim", "state": "live", "ticks": 5, "market_time": None},
    }
    assert public_health(body) == {
        "status": "ok",
        "service": "tickhub",
        "role": "all",
        "version": "0",
        "timestamp": "t",
        "feed": {"name": "sim", "state": "live", "market_time": None},
    }


def test_own_origins_follow_the_port_once_known() -> None:
    class Reported:
        port: int | None = None

        def health(self) -> dict[str, Any]:
            return {}

        def ingest_counters(self) -> None:
            return None

    reported = Reported()
    allows = OwnOrigins(reported, lambda origin: origin == "http://app.example")
    assert allows("http://app.example")
    assert not allows("http://localhost:8081")
    reported.port = 8081
    assert allows("http://localhost:8081/") and allows("http://[::1]:8081")
    assert not allows("http://evil.example:8081")


def test_bearer_matches_the_scheme_in_any_case_only() -> None:
    def request(auth: str) -> HttpRequest:
        return HttpRequest("/metrics", "", Headers([("Authorization", auth)]))

    assert bearer_matches(request("Bearer k"), "k")
    assert bearer_matches(request("bEaReR  k "), "k")
    assert not bearer_matches(request("Basic k"), "k")
    assert not bearer_matches(request("Bearer kk"), "k")
