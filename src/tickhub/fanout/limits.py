"""The limits one hub enforces per server and per client, with their defaults.

Settings (``tickhub.app.config``) build a :class:`HubLimits` from the environment; tests,
benchmarks and the library API build one in code. Either way a default is the one named in
:mod:`tickhub.core.defaults`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tickhub.core import defaults


def transport_bytes(outbox_bytes: int) -> int:
    """Where a client's transport buffer pauses it: ``1 / TRANSPORT_SHARE`` of its budget. The
    kernel's socket buffer is in front of it, and the held messages (the latest per slot) behind
    it get the rest of the budget."""
    return outbox_bytes // defaults.TRANSPORT_SHARE


@dataclass(frozen=True, slots=True)
class HubLimits:
    """What one hub allows; each field is the setting of the same name in upper case."""

    max_connections: int = defaults.MAX_CONNECTIONS
    max_connections_per_ip: int = defaults.MAX_CONNECTIONS_PER_IP
    connect_rate_per_ip: float = defaults.CONNECT_RATE_PER_IP
    max_subscriptions: int = defaults.MAX_SUBSCRIPTIONS
    max_message_bytes: int = defaults.MAX_MESSAGE_BYTES
    message_rate: float = defaults.MESSAGE_RATE
    message_burst: int = defaults.MESSAGE_BURST
    slow_client_grace: float = defaults.SLOW_CLIENT_GRACE
    max_held_events: int = defaults.MAX_HELD_EVENTS
    idle_timeout: float = defaults.IDLE_TIMEOUT
    auth_timeout: float = defaults.AUTH_TIMEOUT
    outbox_bytes: int = defaults.OUTBOX_BYTES
    max_symbols_per_message: int = defaults.MAX_SYMBOLS_PER_MESSAGE
    max_indicators_per_subscription: int = defaults.MAX_INDICATORS_PER_SUBSCRIPTION
    max_indicator_period: int = defaults.MAX_INDICATOR_PERIOD
    max_indicator_sets: int = defaults.MAX_INDICATOR_SETS

    @property
    def held_bytes(self) -> int:
        """What a paused client may have held for it: the part of OUTBOX_BYTES that its
        transport buffer does not use (:func:`transport_bytes`)."""
        return self.outbox_bytes - transport_bytes(self.outbox_bytes)
