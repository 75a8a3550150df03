"""The control channel every bench server speaks (the JS servers speak it too).

The server prints ``READY {"port": P, "pid": N}`` once it listens, then reads commands on stdin,
one per line, and answers each on stdout with one line:

    rate <ticks/s | max | 0> [K]  ->  OK {"rate": ..., "burst": K}
    stats                         ->  STATS {...counters...}
    quit, or end of input         ->  the server stops and exits 0

``K`` (default 1) is the burst: ticks come in frames of K, handed over in one loop turn, at
ticks/s / K frames per second (see ``pacer.py``).
"""

from __future__ import annotations

import asyncio
import json
import math
import resource
import sys
from collections.abc import Callable
from typing import Any

Handler = Callable[[list[str]], tuple[str, dict[str, Any]]]


def raise_nofile() -> int:
    """Raise the open-file limit to the hard limit; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def announce(kind: str, **fields: Any) -> None:
    sys.stdout.write(f"{kind} {json.dumps(fields)}\n")
    sys.stdout.flush()


def parse_rate(word: str) -> float:
    return math.inf if word == "max" else float(word)


def parse_burst(words: list[str]) -> int:
    """The burst of a ``rate`` command's words (``[rate, K]``): 1 when not given."""
    return max(1, int(words[1])) if len(words) > 1 else 1


async def serve_commands(handlers: dict[str, Handler]) -> None:
    """Answer commands until ``quit`` or end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        words = line.decode().split()
        if not words:
            continue
        if words[0] == "quit":
            return
        handler = handlers.get(words[0])
        if handler is None:
            announce("ERROR", message=f"unknown command: {words[0]!r}")
            continue
        kind, body = handler(words[1:])
        announce(kind, **body)
