"""What the client raises: one exception type, carrying the server's stable error code.

A server ``error`` answering a request becomes a :class:`TickhubError` with the reply kept, so a
caller branches on ``code`` (docs/protocol.md §13) and never parses ``message``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ClientStopped", "TickhubError"]


class TickhubError(Exception):
    """An error answered by the server (``code`` is its error code) or met by the client
    (``closed``, ``timeout``, ``not_connected``, ``connect_failed``, ``stopped``)."""

    def __init__(
        self,
        message: str,
        code: str,
        details: Mapping[str, Any] | None = None,
        reply: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details: Mapping[str, Any] = details or {}
        self.reply = reply


class ClientStopped(TickhubError):
    """The connection ended for good: a close code that says "do not reconnect as is"
    (4500-4999), a refused handshake, or ``max_attempts`` reconnects without success."""

    def __init__(self, message: str, close_code: int | None, reason: str = "") -> None:
        super().__init__(message, "stopped", {"close_code": close_code, "reason": reason})
        self.close_code = close_code
        self.reason = reason
