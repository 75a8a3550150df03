"""When to reconnect and after how long: pure functions, so their bounds can be tested exactly.

The policy is docs/protocol.md §14: 4000-4499 "reconnect as is", 4500-4999 "do not reconnect
until something changes"; everything else (1001 going away, 1006 a dropped link, 1011, 1012)
reconnects. It is the JavaScript client's (``tickhub.js``: ``backoffDelay``,
``_willReconnect``), so both behave alike against one server.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["TOKEN_EXPIRED", "backoff_delay", "should_reconnect"]

TOKEN_EXPIRED = 4501
STOP_CODES = range(4500, 5000)


def backoff_delay(
    attempt: int,
    random: Callable[[], float],
    *,
    min_delay: float,
    max_delay: float,
    factor: float = 2.0,
    jitter: float = 0.5,
) -> float:
    """Seconds before reconnect attempt ``attempt`` (0 for the first).

    ``d = min(max_delay, min_delay * factor ** attempt)``, then a random point of
    ``[(1 - jitter) d, d]``, so that the many clients one restart drops do not all come back in
    the same instant.
    """
    exponent = max(0, attempt)
    # factor ** attempt overflows a float long before any client retries that often
    d = max_delay if exponent > 1000 else min(max_delay, min_delay * factor**exponent)
    j = min(1.0, max(0.0, jitter))
    r = min(1.0, max(0.0, random()))
    return d * (1 - j) + d * j * r


def should_reconnect(code: int | None, *, token_refreshes: bool) -> bool:
    """Whether a connection closed with ``code`` (``None``: no close frame) may be reopened.

    4501 (token expired) reconnects only when the token comes from a function, which is asked
    for a fresh one; the rest of 4500-4999 never does.
    """
    if code == TOKEN_EXPIRED:
        return token_refreshes
    return code not in STOP_CODES
