"""What the checks test a JSON value for, and how the report names a value that failed.

Every check shares these, so the report speaks of values one way (``missing``, ``is a string``,
clipped JSON) and judges them one way (the timestamp format, what counts as a number).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tickhub.core.protocol import json_kind

__all__ = [
    "MISSING",
    "TIMESTAMP_FORMAT",
    "Match",
    "Message",
    "Received",
    "any_message",
    "clip",
    "compact",
    "decode",
    "is_timestamp",
    "kind",
    "nonempty_str",
    "number",
    "seq_of",
    "show",
    "types",
]

Message = dict[str, Any]
"""A decoded message: a JSON object."""
Match = Callable[[Message], bool]
"""Which messages a wait is for."""


@dataclass(frozen=True, slots=True)
class Received:
    """One frame as it arrived: when (monotonic seconds), decoded, and as sent."""

    at: float
    msg: Message | None
    """The decoded message, or ``None`` when the server sent something that is not a JSON object."""
    raw: str | bytes


TIMESTAMP_FORMAT = "YYYY-MM-DDTHH:MM:SS.mmmZ"
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


class _Missing:
    def __repr__(self) -> str:
        return "missing"


MISSING: Any = _Missing()
"""The default of ``msg.get(name, MISSING)``: a field absent, told apart from one that is null."""


def any_message(msg: Message) -> bool:
    """Every message matches."""
    return True


def types(*kinds: str) -> Match:
    """Messages whose ``type`` is one of ``kinds``."""
    return lambda msg: msg.get("type") in kinds


def decode(raw: str | bytes) -> Message | None:
    """The JSON object a frame carries, or None: binary frames and non-objects are not protocol."""
    if isinstance(raw, bytes):
        return None  # the protocol is JSON text frames only
    try:
        msg = json.loads(raw)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None


def is_timestamp(value: object) -> bool:
    """Whether ``value`` is a real instant written as ``TIMESTAMP_FORMAT`` (UTC, milliseconds)."""
    if not isinstance(value, str) or _TIMESTAMP.fullmatch(value) is None:
        return False
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return False
    return True


def number(value: object) -> bool:
    """Whether ``value`` is a JSON number (a boolean is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def nonempty_str(value: object) -> bool:
    """Whether ``value`` is a string with something in it."""
    return isinstance(value, str) and value != ""


def seq_of(msg: Message) -> int:
    """The message's ``seq``, -1 when it has none that is an integer."""
    seq = msg.get("seq")
    return seq if isinstance(seq, int) else -1


_KIND_PHRASES = {
    "null": "is null",
    "boolean": "is a boolean",
    "number": "is a number",
    "string": "is a string",
    "array": "is an array",
    "object": "is an object",
}


def kind(value: object) -> str:
    """What a field that failed a check holds, for the report (not the value: it may be long)."""
    if value is MISSING:
        return "missing"
    found = json_kind(value)
    return _KIND_PHRASES.get(found, f"is {found}")


def show(value: object) -> str:
    """A field's value for the report: its JSON, clipped, or ``missing``."""
    if value is MISSING:
        return "missing"
    return clip(json.dumps(value))


def compact(msg: Message) -> str:
    """A message as one line of JSON, to quote it in the report."""
    return json.dumps(msg, separators=(",", ":"))


def clip(text: str, limit: int = 160) -> str:
    """``text`` cut to ``limit`` characters, so that one report line stays one line."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
