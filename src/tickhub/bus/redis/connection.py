"""How the Redis bus connects: its clients, its reconnect backoff and what it shows of a URL."""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from tickhub.bus.redis.sentinel import is_sentinel_url, parse_sentinel_url


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs, errors and reprs)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}"
    query = parts.query
    if "password" in query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redis_client(
    url: str, *, name: str, retries: int, connect_timeout: float, timeout: float
) -> aioredis.Redis:
    """A client for ``url`` that retries a failed command ``retries`` times, at once.

    No health checks of its own: the bus notices a dead connection (by its PINGs) and recovers.
    A ``redis+sentinel://`` URL gives a client of the primary its Sentinels name, asked again
    on every new connection (so a reconnect after a failover finds the promoted replica).
    ``ValueError`` for a URL redis-py cannot use.
    """
    options: dict[str, Any] = {
        "retry": Retry(NoBackoff(), retries),
        "client_name": name,
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": timeout,
        "socket_keepalive": True,
        "health_check_interval": 0,
        "protocol": 2,  # pub/sub replies as plain arrays, and a faster parser than RESP3's
    }
    if is_sentinel_url(url):
        target = parse_sentinel_url(url)
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(target.sentinels),
            sentinel_kwargs={
                "socket_connect_timeout": connect_timeout,
                "socket_timeout": timeout,
            },
        )
        client: aioredis.Redis = sentinel.master_for(
            target.service,
            db=target.db,
            username=target.username,
            password=target.password,
            **options,
        )
        return client
    return aioredis.Redis.from_url(url, **options)


def redis_answers(url: str, timeout: float = 2.0) -> bool:
    """Whether a Redis answers a PING at ``url`` now (for a sentinel URL: the primary its
    Sentinels name); never raises."""
    try:
        client: redis.Redis
        if is_sentinel_url(url):
            from redis.sentinel import Sentinel as SyncSentinel

            target = parse_sentinel_url(url)
            sentinel = SyncSentinel(  # type: ignore[no-untyped-call]
                list(target.sentinels),
                sentinel_kwargs={"socket_connect_timeout": timeout, "socket_timeout": timeout},
            )
            client = sentinel.master_for(  # type: ignore[no-untyped-call]
                target.service,
                db=target.db,
                username=target.username,
                password=target.password,
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
            )
        else:
            client = redis.Redis.from_url(
                url, socket_connect_timeout=timeout, socket_timeout=timeout
            )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def backoff(failures: int, first: float, most: float) -> float:
    """Seconds to wait after ``failures`` failures in a row: doubling from ``first`` up to
    ``most``, jittered down by up to half so that gateways do not reconnect in step."""
    delay = min(most, first * 2.0 ** min(failures - 1, 30))
    return delay * random.uniform(0.5, 1.0)
