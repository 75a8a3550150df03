"""``redis+sentinel://`` URLs: the grammar BUS_URL takes, and the refusals that name the fault."""

from __future__ import annotations

import pytest
from redis.asyncio.sentinel import SentinelConnectionPool

from tickhub.bus import create_bus
from tickhub.bus.redis.connection import redact_url, redis_client
from tickhub.bus.redis.sentinel import SentinelTarget, parse_sentinel_url

GRAMMAR = "expected redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]"


@pytest.mark.parametrize(
    ("url", "target"),
    [
        (
            "redis+sentinel://h1:26380,h2/mymaster/3",
            SentinelTarget((("h1", 26380), ("h2", 26379)), "mymaster", 3),
        ),
        (
            "redis+sentinel://:s%40cret@10.0.0.1,[::1]:5000/cache",
            SentinelTarget((("10.0.0.1", 26379), ("::1", 5000)), "cache", 0, None, "s@cret"),
        ),
        (
            "REDIS+SENTINEL://app:pw@h1/main-1/0",
            SentinelTarget((("h1", 26379),), "main-1", 0, "app", "pw"),
        ),
    ],
)
def test_a_sentinel_url_names_sentinels_service_db_and_credentials(
    url: str, target: SentinelTarget
) -> None:
    assert parse_sentinel_url(url) == target


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://h1:26379", "no service name"),
        ("redis+sentinel:///mymaster", "no Sentinel host"),
        ("redis+sentinel://h1:0/m", "bad Sentinel port in 'h1:0'"),
        ("redis+sentinel://h1:70000/m", "bad Sentinel port in 'h1:70000'"),
        ("redis+sentinel://h1,,h2/m", "bad Sentinel address ''"),
        ("redis+sentinel://h1/m/x", "bad path '/m/x': /service or /service/db"),
        ("redis+sentinel://h1/m/0/1", "bad path '/m/0/1'"),
        ("redis+sentinel://h1/m?db=1", "it takes no query string or fragment"),
        ("redis+sentinel://h1/m%20x", "bad service name 'm x'"),
    ],
)
def test_a_malformed_sentinel_url_is_refused_with_the_grammar(url: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_sentinel_url(url)
    assert str(caught.value).startswith(problem)
    assert str(caught.value).endswith(GRAMMAR)


def test_the_bus_refuses_it_without_showing_the_password() -> None:
    with pytest.raises(ValueError) as caught:
        create_bus("redis+sentinel://u:topsecret@h1:x/m")
    assert "topsecret" not in str(caught.value)
    assert str(caught.value).startswith(
        "invalid bus url: 'redis+sentinel://u:***@h1:x/m' (bad Sentinel address 'h1:x'"
    )
    assert redact_url("redis+sentinel://u:pw@h1,h2/m") == "redis+sentinel://u:***@h1,h2/m"


async def test_a_sentinel_client_asks_the_sentinels_for_the_primary() -> None:
    client = redis_client(
        "redis+sentinel://:pw@h1,h2:26380/mymaster/2",
        name="t",
        retries=1,
        connect_timeout=1.0,
        timeout=1.0,
    )
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool) and pool.is_master
        assert pool.service_name == "mymaster"
        sentinels = [
            (
                s.connection_pool.connection_kwargs["host"],
                s.connection_pool.connection_kwargs["port"],
            )
            for s in pool.sentinel_manager.sentinels
        ]
        assert sentinels == [("h1", 26379), ("h2", 26380)]
        assert pool.connection_kwargs["db"] == 2 and pool.connection_kwargs["password"] == "pw"
        # The Sentinels are asked without the primary's password.
        sentinel_kwargs = pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs
        assert sentinel_kwargs["password"] is None
    finally:
        await client.aclose()
