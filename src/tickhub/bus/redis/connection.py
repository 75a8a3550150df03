"""How the Redis bus connects: its clients, its reconnect backoff and what it shows of a URL."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


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
    ``ValueError`` for a URL redis-py cannot use.
    """
    return aioredis.Redis.from_url(
        url,
        retry=Retry(NoBackoff(), retries),
        client_name=name,
        socket_connect_timeout=connect_timeout,
        socket_timeout=timeout,
        socket_keepalive=True,
        health_check_interval=0,
        protocol=2,  # pub/sub replies as plain arrays, and a faster parser than RESP3's
    )


def backoff(failures: int, first: float, most: float) -> float:
    """Seconds to wait after ``failures`` failures in a row: doubling from ``first`` up to
    ``most``, jittered down by up to half so that gateways do not reconnect in step."""
    delay = min(most, first * 2.0 ** min(failures - 1, 30))
    return delay * random.uniform(0.5, 1.0)
