"""The wire protocol, sans-I/O: decode what a client sends, encode what the server sends.

The seed's messages (``connection``, ``subscription``, ``heartbeat``, ``pong``, ``data``,
``error``) keep their names, fields and texts exactly; everything added is an extra field or an
extra message type, so clients written against the seed keep working. Errors are values
(:class:`ProtocolError`) carrying a stable machine-readable ``code`` beside the seed's ``message``;
exceptions are for the edges (``tickhub.core.errors``). Each message type's fields are checked
once, into a typed command, by ``tickhub.core.commands``. Full reference: ``docs/protocol.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import orjson

from tickhub.core import defaults

PROTOCOL_VERSION = 1
WELCOME_TEXT = "WebSocket connection established successfully"


class ErrorCode(str, Enum):
    INVALID_JSON = "invalid_json"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    UNKNOWN_SYMBOL = "unknown_symbol"
    UNKNOWN_INTERVAL = "unknown_interval"
    NOT_SUBSCRIBED = "not_subscribed"
    LIMIT_EXCEEDED = "limit_exceeded"
    MESSAGE_TOO_LARGE = "message_too_large"
    UNSUPPORTED_FRAME = "unsupported_frame"
    NOT_FOUND = "not_found"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    UPGRADE_REQUIRED = "upgrade_required"
    INTERNAL_ERROR = "internal_error"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    AUTH_REQUIRED = "auth_required"
    AUTH_FAILED = "auth_failed"
    AUTH_EXPIRED = "auth_expired"
    TOO_MANY_SYMBOLS = "too_many_symbols"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    BAD_REQUEST = "bad_request"
    INVALID_PARAMETER = "invalid_parameter"
    UNKNOWN_INDICATOR = "unknown_indicator"
    INVALID_INDICATOR_PARAMETER = "invalid_indicator_parameter"
    TOO_MANY_INDICATORS = "too_many_indicators"


class CloseCode:
    """WebSocket close codes the server sends, with what a client should do about them.

    1000-1999 are the standard codes. 4000-4499: the client may reconnect (with backoff);
    4500-4999: it should not reconnect until something changes (credentials, configuration).
    """

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down or restarting: reconnect
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011  # a fault on our side while handling this client: reconnect
    SLOW_CONSUMER = 4001  # the client did not read fast enough: reconnect, resume with `since`
    IDLE_TIMEOUT = 4002  # no message or pong within IDLE_TIMEOUT: reconnect
    RATE_LIMITED = 4003  # too many messages or connection attempts: reconnect after a pause
    AUTH_FAILED = 4500  # credentials missing or wrong: fix them first
    AUTH_EXPIRED = 4501  # token expired: reconnect with a new token
    AUTH_TIMEOUT = 4502  # no `auth` message within AUTH_TIMEOUT
    LIMIT_EXCEEDED = 4503  # connections per address (the total limit is HTTP 503 at handshake)

    RECONNECT = range(4000, 4500)
    DO_NOT_RECONNECT = range(4500, 5000)


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """A client mistake, answered with an ``error`` message; the connection stays open."""

    code: ErrorCode
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)


# --- time ---------------------------------------------------------------------------------------


def iso(ts: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``: ``2025-01-27T10:30:00.000Z``."""
    # isoformat is C; strftime through an f-string took 1.6x as long (two calls per tick).
    return ts.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


# --- decoding -----------------------------------------------------------------------------------


def decode(raw: bytes | str) -> dict[str, Any] | ProtocolError:
    """Parse one client message: a JSON object with a string ``type``."""
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ProtocolError(ErrorCode.INVALID_JSON, "Invalid JSON format")
    if not isinstance(msg, dict):
        return ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            f"message must be a JSON object, got {json_kind(msg)}",
        )
    kind = type_of(msg)
    return kind if isinstance(kind, ProtocolError) else msg


def type_of(msg: Mapping[str, Any]) -> str | ProtocolError:
    """A message's ``type``: a non-empty string, else the error answered for it."""
    kind = msg.get("type")
    if kind is None or kind == "":
        return ProtocolError(ErrorCode.MISSING_FIELD, "missing field: 'type'", {"field": "type"})
    if not isinstance(kind, str):
        return ProtocolError(
            ErrorCode.INVALID_FIELD, "field 'type' must be a string", {"field": "type"}
        )
    return kind


MAX_SYMBOL_LENGTH = 64
"""Longer names cannot be instruments (Kite's longest trading symbols are about 30 characters);
they are refused rather than echoed back in errors."""

ECHO_LENGTH = 64
"""A client's string is echoed back in an error at most this long (then cut, with ``...``)."""


def symbols_of(
    msg: Mapping[str, Any], limit: int = defaults.MAX_SYMBOLS_PER_MESSAGE
) -> list[str] | ProtocolError:
    """The symbols a subscribe/unsubscribe names: ``symbol`` (seed) and/or ``symbols`` (list),
    at most ``limit`` of them (MAX_SYMBOLS_PER_MESSAGE)."""
    out: list[str] = []
    if "symbol" in msg:
        sym = msg["symbol"]
        if not isinstance(sym, str):
            return ProtocolError(
                ErrorCode.INVALID_FIELD, "field 'symbol' must be a string", {"field": "symbol"}
            )
        if sym.strip():
            out.append(sym.strip())
        elif "symbols" not in msg:
            return ProtocolError(
                ErrorCode.MISSING_FIELD, "field 'symbol' is empty", {"field": "symbol"}
            )
    if "symbols" in msg:
        syms = msg["symbols"]
        if not isinstance(syms, list) or not all(isinstance(s, str) for s in syms):
            return ProtocolError(
                ErrorCode.INVALID_FIELD,
                "field 'symbols' must be a list of strings",
                {"field": "symbols"},
            )
        if len(syms) + len(out) > limit:
            return ProtocolError(
                ErrorCode.TOO_MANY_SYMBOLS,
                f"too many symbols in one message: {len(syms) + len(out)} (at most {limit})",
                {
                    "limit": limit,
                    "count": len(syms) + len(out),
                    "setting": "MAX_SYMBOLS_PER_MESSAGE",
                },
            )
        out.extend(s.strip() for s in syms if s.strip())
        if not out:
            return ProtocolError(
                ErrorCode.MISSING_FIELD, "field 'symbols' is empty", {"field": "symbols"}
            )
    if not out:
        return ProtocolError(
            ErrorCode.MISSING_FIELD, "missing field: 'symbol'", {"field": "symbol"}
        )
    long = next((s for s in out if len(s) > MAX_SYMBOL_LENGTH), None)
    if long is not None:
        return ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"symbol names are at most {MAX_SYMBOL_LENGTH} characters: {shown(long)}",
            {"field": "symbols" if "symbols" in msg else "symbol", "limit": MAX_SYMBOL_LENGTH},
        )
    # Keep order, drop repeats: one ack per distinct symbol.
    return list(dict.fromkeys(out))


def client_timestamp(msg: Mapping[str, Any]) -> str | int | float | ProtocolError | None:
    """``ping``'s optional ``timestamp``, echoed in the ``pong``: a string or a number only."""
    if "timestamp" not in msg:
        return None
    value = msg["timestamp"]
    if isinstance(value, str) and len(value) <= ECHO_LENGTH:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return ProtocolError(
        ErrorCode.INVALID_FIELD,
        f"field 'timestamp' must be a string of at most {ECHO_LENGTH} characters or a number",
        {"field": "timestamp"},
    )


def clip(value: str) -> str:
    """A client's string, cut to :data:`ECHO_LENGTH` characters for an error."""
    return value if len(value) <= ECHO_LENGTH else value[:ECHO_LENGTH] + "..."


def shown(value: object) -> str:
    """A client's value as an error message shows it: a clipped repr of a string or number,
    the JSON kind of anything else (a structure is never echoed)."""
    if isinstance(value, str):
        return repr(clip(value))
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        return clip(repr(value))
    return f"a JSON {json_kind(value)}"


def unknown_type(kind: str) -> ProtocolError:
    """The answer to a message ``type`` this endpoint does not serve."""
    return ProtocolError(
        ErrorCode.UNKNOWN_TYPE, f"unknown message type: {shown(kind)}", {"type": clip(kind)}
    )


def listed(names: list[str], most: int = 5) -> str:
    """``'A', 'B', 'C' and 7 more`` for an error message."""
    head = ", ".join(shown(n) for n in names[:most])
    return head if len(names) <= most else f"{head} and {len(names) - most} more"


def since_of(
    msg: Mapping[str, Any], symbols: list[str]
) -> dict[str, tuple[str, int]] | ProtocolError:
    """The resume points of a subscribe: ``"since": {"epoch", "seq"}`` for its one symbol, or
    ``"since": {"<symbol>": {"epoch", "seq"}, ...}`` for several."""
    raw = msg.get("since")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        return ProtocolError(
            ErrorCode.INVALID_FIELD,
            "field 'since' must be an object with 'epoch' and 'seq'",
            {"field": "since"},
        )
    points = raw if "epoch" not in raw and "seq" not in raw else dict.fromkeys(symbols[:1], raw)
    out: dict[str, tuple[str, int]] = {}
    for name, point in points.items():
        if not isinstance(point, dict):
            return ProtocolError(
                ErrorCode.INVALID_FIELD, f"since[{name!r}] must be an object", {"field": "since"}
            )
        epoch, seq = point.get("epoch"), point.get("seq")
        if not isinstance(epoch, str) or not isinstance(seq, int) or isinstance(seq, bool):
            return ProtocolError(
                ErrorCode.INVALID_FIELD,
                "field 'since' needs 'epoch' (string) and 'seq' (integer)",
                {"field": "since"},
            )
        out[str(name).strip()] = (epoch, seq)
    return out


def json_kind(value: object) -> str:
    """The JSON name of a value's type, for an error that must not echo the value itself."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


# --- encoding -----------------------------------------------------------------------------------


def encode(msg: Mapping[str, Any] | list[Any]) -> bytes:
    return orjson.dumps(msg, option=orjson.OPT_NON_STR_KEYS)


def welcome(now: datetime, endpoint: str, connection_id: str) -> bytes:
    return encode(
        {
            "type": "connection",
            "status": "connected",
            "timestamp": iso(now),
            "message": WELCOME_TEXT,
            "endpoint": endpoint,
            "connection_id": connection_id,
            "protocol_version": PROTOCOL_VERSION,
        }
    )


def subscription(now: datetime, status: str, symbol: str, **extra: Any) -> bytes:
    """Ack of a subscribe/unsubscribe; ``status`` is ``subscribed`` or ``unsubscribed``."""
    return encode(
        {"type": "subscription", "status": status, "symbol": symbol, "timestamp": iso(now), **extra}
    )


def heartbeat_ack(now: datetime, **extra: Any) -> bytes:
    return encode({"type": "heartbeat", "status": "ack", "timestamp": iso(now), **extra})


def pong(now: datetime, **extra: Any) -> bytes:
    return encode({"type": "pong", "timestamp": iso(now), **extra})


def error(now: datetime, err: ProtocolError, **extra: Any) -> bytes:
    body: dict[str, Any] = {
        "type": "error",
        "message": err.message,
        "timestamp": iso(now),
        "code": err.code.value,
    }
    if err.details:
        body["details"] = dict(err.details)
    body.update(extra)
    return encode(body)


def reply(now: datetime, kind: str, **fields: Any) -> bytes:
    """Any other server message (``subscriptions``, ``status``, ...): type, timestamp, fields."""
    return encode({"type": kind, "timestamp": iso(now), **fields})


def mark_snapshot(payload: bytes) -> bytes:
    """The same data message with ``"snapshot": true`` added, without decoding it.

    Payloads are always encoded JSON objects, so splicing after the opening brace is exact.
    """
    return b'{"snapshot":true,' + payload[1:]
