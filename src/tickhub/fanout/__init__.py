"""Fan-out: sessions, subscriptions, admission, snapshot and resume, from the bus to the peers."""

from tickhub.core.protocol import CloseCode
from tickhub.fanout.hub import Hub
from tickhub.fanout.limits import HubLimits, transport_bytes
from tickhub.fanout.session import Peer, Session, Subscription

__all__ = ["CloseCode", "Hub", "HubLimits", "Peer", "Session", "Subscription", "transport_bytes"]
