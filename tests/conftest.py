from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from tests.helpers import Client
from tickhub.app.config import Settings, load_settings
from tickhub.app.roles import SingleService

# Hypothesis's per-example deadline is a timing assertion: on a loaded machine (CI shares its
# cores) a correct example can take longer than 200 ms. Properties are checked, not speed.
hypothesis_settings.register_profile("tickhub", deadline=None)
hypothesis_settings.load_profile("tickhub")


def make_settings(tmp_path: Any, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "ws_port": 0,
        "sim_speed": 60.0,
        "update_interval": 0.2,
        "data_dir": tmp_path,
        "cors_origins": "http://allowed.example:3000",
        # Tests open hundreds of connections from one address at once.
        "connect_rate_per_ip": 100_000,
        # No simulated past: tests count candles and snapshots from the start; the tests of the
        # past (tests/e2e/test_candles_http.py) turn it on.
        "sim_history_sessions": 0,
    }
    base.update(overrides)
    return load_settings(None, **base)


@pytest.fixture
async def service_factory(tmp_path: Any) -> AsyncIterator[Callable[..., Any]]:
    started: list[SingleService] = []

    async def start(**overrides: Any) -> SingleService:
        svc = SingleService(make_settings(tmp_path, **overrides))
        await svc.start()
        started.append(svc)
        return svc

    yield start
    for svc in started:
        await svc.stop()


@pytest.fixture
async def service(service_factory: Callable[..., Any]) -> SingleService:
    svc: SingleService = await service_factory()
    return svc


@pytest.fixture
async def connect(service: SingleService) -> AsyncIterator[Callable[..., Any]]:
    clients: list[Client] = []

    async def open_(path: str = "/ws/stream", **kwargs: Any) -> Client:
        client = await Client.connect(f"ws://127.0.0.1:{service.port}{path}", **kwargs)
        clients.append(client)
        return client

    yield open_
    for c in clients:
        await c.close()


# Fixtures shared across files (a Redis key prefix of one's own, cleaned up afterwards).
from tests.conformance.test_bus_contract import redis_prefix  # noqa: E402, F401
