"""What a connection and the server that accepted it agree on: the limits, an accepted upgrade,
and the calls a connection makes back to its server.

It is its own module so that :mod:`.connection` needs nothing from :mod:`.app` (which creates
connections): the server is, to a connection, anything that offers :class:`ConnectionHost`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar

from tickhub.core import defaults
from tickhub.core.topics import Endpoint
from tickhub.fanout import transport_bytes
from tickhub.fanout.hub import Hub
from tickhub.server.http import HttpRequest, HttpResponse


def frame_limit(max_message_bytes: int) -> int:
    """The size past which a message closes the connection (1009) instead of being refused
    with ``message_too_large``: small overruns get an answer, a flood of bytes does not."""
    return max(max_message_bytes * defaults.MAX_FRAME_FACTOR, defaults.MIN_FRAME_LIMIT)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one connection may hold; every field has a setting (``config.py``)."""

    handshake_timeout: float = defaults.HANDSHAKE_TIMEOUT  # request head, and keep-alive idle
    close_timeout: float = defaults.CLOSE_TIMEOUT  # closing handshake, then the socket is aborted
    max_header_bytes: int = defaults.MAX_HEADER_BYTES  # request line and headers; 431 beyond
    max_message_bytes: int = defaults.MAX_MESSAGE_BYTES  # refused with message_too_large
    max_frame_bytes: int = frame_limit(defaults.MAX_MESSAGE_BYTES)  # closes with 1009 beyond
    # transport buffer high-water mark (a share of OUTBOX_BYTES)
    outbox_bytes: int = transport_bytes(defaults.OUTBOX_BYTES)
    send_buffer_bytes: int = defaults.SEND_BUFFER_BYTES  # the kernel's send buffer (0: its own)


@dataclass(frozen=True, slots=True)
class Upgrade:
    """An accepted WebSocket handshake: the endpoint, the 101's headers and what the URL and
    subprotocol header carried."""

    endpoint: Endpoint
    headers: list[tuple[str, str]]
    token: str | None
    batch: bool


C = TypeVar("C", contravariant=True)
"""The connection type the host is called with."""


class ConnectionHost(Protocol[C]):
    """The server as one of its connections ``C`` sees it.

    A connection reports each state change of its socket (``opened``, ``upgraded``, ``lost``)
    exactly once and in that order, asks for the answer to every request it parsed, and counts
    what it wrote and aborted in ``writes`` and ``aborted``.
    """

    hub: Hub
    limits: ServerLimits
    writes: int
    aborted: int

    def opened(self, conn: C) -> bool:
        """A new socket; ``False``: refuse it (its address holds too many)."""
        ...

    def upgraded(self, conn: C) -> None:
        """The socket is now a WebSocket (counted by the hub from here on)."""
        ...

    def lost(self, conn: C) -> None:
        """The socket is gone; no call about ``conn`` follows."""
        ...

    def corked(self, conn: C) -> None:
        """``conn`` queued its first frame of this turn of the event loop: flush it later."""
        ...

    def count_http(self, status: int) -> None:
        """An HTTP response with ``status`` was sent."""
        ...

    def is_upgrade(self, request: HttpRequest) -> bool:
        """Whether ``request`` asks for a WebSocket."""
        ...

    def upgrade(self, request: HttpRequest, conn: C) -> HttpResponse | Upgrade:
        """The handshake accepted, or the HTTP answer refusing it."""
        ...

    def respond(self, request: HttpRequest) -> HttpResponse:
        """The answer to any request that is not a WebSocket handshake; never raises."""
        ...

    def cors_headers(self, request: HttpRequest) -> dict[str, str]:
        """Headers that let the request's origin read the response (none if not allowed)."""
        ...
