"""Where the checker points: the service's URL, read leniently, and whether anything listens there.

Kept apart from the checks because it is about the user's command line and the network, not the
protocol: a URL of one endpoint, an ``http://`` URL or a bare ``host:port`` all name the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Target", "parse_target", "reachable"]

_ENDPOINT_SUFFIX = re.compile(r"/ws(/[A-Za-z_]*)?/*$")


@dataclass(frozen=True, slots=True)
class Target:
    """The service to check: the bases its WebSocket and HTTP URLs start with, and its address."""

    ws_base: str
    http_base: str
    host: str
    port: int


def parse_target(url: str) -> Target | str:
    """The target ``url`` names, or a one-line explanation of why it names none."""
    parts = urlsplit(url if "://" in url else f"ws://{url}")
    scheme = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        return f"expected a URL like ws://localhost:8081, got {url!r}"
    try:
        port = parts.port or (443 if scheme == "wss" else 80)
    except ValueError:
        return f"expected a URL with a valid port, got {url!r}"
    # Accept a URL of one endpoint too (ws://host:8081/ws/stream): keep only the prefix before it.
    prefix = _ENDPOINT_SUFFIX.sub("", parts.path).rstrip("/")
    http = "https" if scheme == "wss" else "http"
    return Target(
        ws_base=f"{scheme}://{parts.netloc}{prefix}",
        http_base=f"{http}://{parts.netloc}{prefix}",
        host=parts.hostname,
        port=port,
    )


async def reachable(target: Target, limit: float) -> str | None:
    """None if something accepts TCP connections at the target, else a one-line explanation."""
    hint = "is the service running? start it with `make run`"
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(target.host, target.port), limit)
    except ConnectionRefusedError:
        return f"cannot connect to {target.ws_base}: {hint}"
    except TimeoutError:
        return f"cannot connect to {target.ws_base} (no answer within {limit:g}s): {hint}"
    except OSError as exc:
        return f"cannot connect to {target.ws_base} ({exc.strerror or exc}): {hint}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None
