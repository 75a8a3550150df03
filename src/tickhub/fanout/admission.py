"""Admission: which connections and which client messages the hub takes, and which it refuses.

Both rates are token buckets (:class:`TokenBucket`): connection attempts per address
(``CONNECT_RATE_PER_IP``, ``CONNECT_BURST_FACTOR`` seconds' worth at once) and messages per
client (``MESSAGE_RATE``, ``MESSAGE_BURST`` deep). A refusal is answered, never silent at first,
and a client that keeps sending into a refusing bucket is closed, so a flood costs the server
one error message and then nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from tickhub.core import defaults
from tickhub.core.protocol import CloseCode, ErrorCode, ProtocolError
from tickhub.fanout.limits import HubLimits


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` kept; a request takes one whole token.

    Contract: the bucket starts full at ``now``. :meth:`take` first refills for the time since
    the last call (times are a monotonic clock's seconds, never going back), then takes a token
    and returns ``True`` if one is there, else takes nothing and returns ``False``.
    """

    __slots__ = ("at", "capacity", "rate", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self.at = now

    def take(self, now: float) -> bool:
        """One token if there is one (see the class contract)."""
        tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False


# --- connections -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a connection is refused: the ``error`` it is sent, then the close ``code``."""

    error: ProtocolError
    code: int


class ConnectionAdmission:
    """Connection attempts and open connections per client address.

    Contract: :meth:`admit` is asked once per attempt and counts it against the address's
    connect rate, whether or not it is admitted; an admitted connection is counted open with
    :meth:`opened` and uncounted with :meth:`closed` once its socket is gone (a closing client
    still counts, so closing clients cannot pile up sockets beyond the limit). :meth:`forget_stale`
    bounds the memory kept for addresses seen once.
    """

    __slots__ = ("_attempts", "_limits", "_open")

    def __init__(self, limits: HubLimits) -> None:
        self._limits = limits
        self._open: dict[str, int] = {}
        self._attempts: dict[str, TokenBucket] = {}

    def admit(self, ip: str, mono: float) -> Refusal | None:
        """``None`` if a new connection from ``ip`` may open now, else why not."""
        limits = self._limits
        rate = limits.connect_rate_per_ip
        bucket = self._attempts.get(ip)
        if bucket is None:
            bucket = self._attempts[ip] = TokenBucket(
                rate, rate * defaults.CONNECT_BURST_FACTOR, mono
            )
        if not bucket.take(mono):
            return Refusal(
                ProtocolError(
                    ErrorCode.RATE_LIMITED,
                    f"too many connection attempts from {ip}: limit {rate:g} per second",
                    {"limit": rate, "setting": "CONNECT_RATE_PER_IP"},
                ),
                CloseCode.RATE_LIMITED,
            )
        current = self._open.get(ip, 0)
        if current >= limits.max_connections_per_ip:
            return Refusal(
                ProtocolError(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"connection limit per address reached: {limits.max_connections_per_ip}",
                    {
                        "limit": limits.max_connections_per_ip,
                        "current": current,
                        "setting": "MAX_CONNECTIONS_PER_IP",
                    },
                ),
                CloseCode.LIMIT_EXCEEDED,
            )
        return None

    def opened(self, ip: str) -> None:
        """An admitted connection from ``ip`` is open."""
        self._open[ip] = self._open.get(ip, 0) + 1

    def closed(self, ip: str) -> None:
        """A connection counted by :meth:`opened` is gone."""
        left = self._open.get(ip, 1) - 1
        if left > 0:
            self._open[ip] = left
        else:
            self._open.pop(ip, None)

    def forget_stale(self) -> None:
        """Past ``MAX_TRACKED_ADDRESSES`` addresses, forget every bucket: one not used for a
        second or two would have refilled to full anyway."""
        if len(self._attempts) > defaults.MAX_TRACKED_ADDRESSES:
            self._attempts.clear()


# --- messages ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageVerdict:
    """What to do with one client message under the message rate.

    ``serve``: handle it. ``error``: reply with it first (when serving: how many were dropped
    before; when not: the first refusal of a run). ``close_reason``: close the connection with
    the rate-limit code instead of anything else.
    """

    serve: bool
    error: ProtocolError | None = None
    close_reason: str | None = None


SERVE = MessageVerdict(True)
DROP = MessageVerdict(False)


class MessageRate:
    """One client's message rate: ``message_rate`` a second, ``message_burst`` at once.

    Contract of :meth:`check`: the first refused message of a run of refusals gets a
    ``rate_limited`` error; the next ones get nothing then, and when a message is served again a
    second ``rate_limited`` error says how many were dropped in all (``details.dropped``), before
    its reply.

    Closing: every refusal adds one to a count that drains at ``message_rate`` per second; above
    ``RATE_CLOSE_FACTOR`` bursts the connection is to be closed. Sent at once, that is more than
    that many bursts refused in a row; a flood that the server reads a slice at a time (so that a
    few tokens come back between slices) is closed all the same.
    """

    __slots__ = ("bucket", "dropped", "refusals", "refusals_at", "rejected")

    def __init__(self, bucket: TokenBucket) -> None:
        self.bucket = bucket
        self.rejected = 0  # refused since the last served message
        self.dropped = 0  # refused in all
        self.refusals = 0.0  # refusals not yet drained at the message rate
        self.refusals_at = 0.0

    @classmethod
    def of(cls, limits: HubLimits, now: float) -> MessageRate:
        """A full bucket for a client that connects at ``now``."""
        return cls(TokenBucket(limits.message_rate, limits.message_burst, now))

    def check(self, limits: HubLimits, mono: float) -> MessageVerdict:
        """The verdict on a message that arrives at ``mono`` (see the class contract)."""
        details = {
            "limit": limits.message_rate,
            "burst": limits.message_burst,
            "setting": "MESSAGE_RATE",
        }
        if self.bucket.take(mono):
            dropped, self.rejected = self.rejected, 0
            if dropped > 1:
                return MessageVerdict(
                    True,
                    ProtocolError(
                        ErrorCode.RATE_LIMITED,
                        f"{dropped} messages in a row were not processed (rate limit)",
                        {**details, "dropped": dropped},
                    ),
                )
            return SERVE
        self.rejected += 1
        self.dropped += 1
        drained = (mono - self.refusals_at) * limits.message_rate
        self.refusals = max(0.0, self.refusals - drained) + 1.0
        self.refusals_at = mono
        if self.refusals > defaults.RATE_CLOSE_FACTOR * limits.message_burst:
            return MessageVerdict(
                False,
                close_reason=f"rate limit exceeded repeatedly: {self.dropped} messages dropped",
            )
        if self.rejected == 1:
            return MessageVerdict(
                False,
                ProtocolError(
                    ErrorCode.RATE_LIMITED,
                    f"too many messages: limit {limits.message_rate:g} per second "
                    f"(burst {limits.message_burst}); this message was not processed",
                    {**details, "dropped": 1},
                ),
            )
        return DROP
