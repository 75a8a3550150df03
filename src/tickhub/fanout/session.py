"""A connected client as the hub keeps it: its peer, subscriptions, counters and held messages.

``Session`` has ``__slots__`` and plain attributes because the fan-out loop reads several of them
per message per client; the hub's modules change them directly.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tickhub.core import protocol
from tickhub.core.model import Interval
from tickhub.core.topics import Endpoint
from tickhub.fanout.admission import MessageRate, TokenBucket


class Peer(Protocol):
    """One client connection as the hub sees it (implemented by the server package).

    Contract: no method blocks or raises for a gone client; writes to a closing connection are
    dropped by the peer.
    """

    def send(self, payload: bytes) -> None:
        """Frame and write one text message."""
        ...

    def send_frame(self, frame: bytes) -> None:
        """Write an already framed message (built once for many peers)."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake with ``code``; the hub sends nothing more."""
        ...

    def ping(self) -> None:
        """Send a WebSocket ping (the client's pong counts as activity)."""
        ...


@dataclass(frozen=True, slots=True)
class Subscription:
    """One topic a client receives, and the symbol and interval it asked for it by."""

    symbol: str
    interval: Interval | None
    topic: str


Close = Callable[["Session", int, str], None]
"""Close a client with a code and a reason (the hub's close: counted, logged, retired)."""

SubscriptionChange = Callable[["Session", Subscription], None]
"""Add or drop one subscription of a client (the hub's topic bookkeeping)."""

held_ids = itertools.count()
"""Keys for held messages that are not state (events, direct replies): each is kept, in order."""


class Session:
    """One connected client: its subscriptions, counters and held messages while paused.

    While ``paused``, nothing is written to the peer: direct replies and events queue in
    ``held`` under a unique key, state messages under ``(topic, slot)`` so a newer one replaces
    the older. ``held_bytes`` counts what is held (and batched) against the client's budget;
    ``on_overflow`` is told when it grows.
    """

    __slots__ = (
        "auth_deadline",
        "authenticated",
        "batch",
        "closing",
        "conflated",
        "connected_at",
        "dropped",
        "endpoint",
        "expires_at",
        "held",
        "held_bytes",
        "held_events",
        "id",
        "ip",
        "last_seen",
        "on_overflow",
        "paused",
        "paused_since",
        "peer",
        "pinged",
        "rate",
        "received",
        "remote",
        "sent",
        "subs",
        "user",
    )

    def __init__(
        self,
        sid: str,
        endpoint: Endpoint,
        remote: str,
        peer: Peer,
        now: datetime,
        rate: MessageRate | None = None,
    ) -> None:
        self.id = sid
        self.endpoint = endpoint
        self.remote = remote
        self.peer = peer
        self.connected_at = now
        self.subs: dict[str, Subscription] = {}
        self.user = ""  # the authenticated subject; "" when authentication is off
        # Interned: thousands of clients behind one address share one string.
        self.ip = sys.intern(remote.rsplit(":", 1)[0])
        self.last_seen = 0.0
        self.pinged = False
        # None: a session that never sends (the self-test probe) gets an empty bucket.
        self.rate = rate if rate is not None else MessageRate(TokenBucket(0.0, 0.0, 0.0))
        self.authenticated = True
        self.auth_deadline = 0.0
        self.expires_at: datetime | None = None
        self.closing = False
        # Opt-in batching: data payloads wait here and leave together as one "batch" frame.
        self.batch: list[bytes] | None = None
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self.conflated = 0
        self.paused = False
        self.paused_since = 0.0
        # (topic, slot) -> frame; slot None entries get a unique key so they are all kept.
        self.held: dict[tuple[str, object], bytes] = {}
        self.held_events = 0
        self.held_bytes = 0  # of held and batch; bounded by HubLimits.held_bytes
        self.on_overflow: Callable[[Session], None] | None = None

    def send(self, payload: bytes) -> None:
        """A direct reply (ack, error, snapshot); held like everything else while paused."""
        if self.closing:
            return
        if self.paused:
            self.held[("", next(held_ids))] = payload
            self.held_bytes += len(payload)
            if self.on_overflow is not None:
                self.on_overflow(self)
            return
        self.peer.send(payload)
        self.sent += 1

    def describe(self) -> dict[str, Any]:
        """The client as ``/connections`` shows it."""
        return {
            "id": self.id,
            "endpoint": self.endpoint.path,
            "remote": self.remote,
            "connected_since": protocol.iso(self.connected_at),
            "subscriptions": [
                s.symbol if s.interval is None else f"{s.symbol}@{s.interval.value}"
                for s in self.subs.values()
            ],
            "messages_sent": self.sent,
            "messages_received": self.received,
            "dropped": self.dropped,
            "conflated": self.conflated,
            "paused": self.paused,
            "held_bytes": self.held_bytes,
            "closing": self.closing,
            "user": self.user or None,
            "authenticated": self.authenticated,
        }
