"""Test helpers: a real WebSocket client with "wait for the message" semantics."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import websockets

TESTS_DIR = Path(__file__).resolve().parent
"""``tests/``: data files, JavaScript scripts and pages live under it."""
REPO_ROOT = TESTS_DIR.parent

ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
Msg = dict[str, Any]


class Client:
    """A websockets client that keeps every message it read, so tests can wait for one."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.seen: list[Msg] = []

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> Client:
        # A test client that stopped reading has the server's close frame queued behind the
        # messages it left unread: a closing handshake would wait out the library's 10 s.
        kwargs.setdefault("close_timeout", 1)
        ws = await websockets.connect(url, max_size=None, **kwargs)
        return cls(ws)

    async def send(self, msg: Msg | str | bytes) -> None:
        await self.ws.send(msg if isinstance(msg, str | bytes) else json.dumps(msg))

    async def recv(self, timeout: float = 10.0) -> Msg:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        msg: Msg = json.loads(raw)
        self.seen.append(msg)
        return msg

    async def wait_for(self, pred: Callable[[Msg], bool], timeout: float = 10.0) -> Msg:
        """Read until a message matches ``pred``; fail on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(
                    f"no matching message within {timeout}s; last: {self.seen[-3:]}"
                )
            msg = await self.recv(left)
            if pred(msg):
                return msg

    async def request(self, msg: Msg, reply_type: str, timeout: float = 10.0) -> Msg:
        await self.send(msg)
        return await self.wait_for(lambda m: m.get("type") == reply_type, timeout)

    async def close(self) -> None:
        await self.ws.close()


async def close_all(clients: Iterable[Client]) -> None:
    """Close every client at once: each closing handshake may wait up to its close timeout."""
    await asyncio.gather(*(c.close() for c in clients))


def is_type(kind: str, **fields: Any) -> Callable[[Msg], bool]:
    def pred(m: Msg) -> bool:
        return m.get("type") == kind and all(m.get(k) == v for k, v in fields.items())

    return pred


def http_get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


async def ahttp_get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    return await asyncio.to_thread(http_get, port, path, headers)


async def wait_until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait for a condition on server state, checked every few milliseconds, bounded."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def closed_with(client: Client, timeout: float = 15.0) -> int:
    """Read until the server closes the connection; the close code it sent."""
    try:
        while True:
            await client.recv(timeout)
    except websockets.ConnectionClosed as exc:
        assert exc.rcvd is not None, "closed without a close frame"
        return exc.rcvd.code


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve_process(tmp_path: Path, port: int, **settings: str) -> asyncio.subprocess.Process:
    """``tickhub serve`` as its own process (for what a test must measure from outside: its
    RSS, its sockets, its exit), answering on ``port`` when this returns."""
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "WS_PORT": str(port),
        "DATA_DIR": str(tmp_path),
        "SIM_SPEED": "60",
        "SIM_HISTORY_SESSIONS": "0",
        "DEMO_PORTFOLIO": "false",
        **{k.upper(): v for k, v in settings.items()},
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from tickhub.app.cli import main; main()",
        "--env-file",
        "/nonexistent",
        "serve",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    for _ in range(300):
        try:
            await asyncio.to_thread(http_get, port, "/health")
            return proc
        except OSError:
            if proc.returncode is not None:
                raise AssertionError("service exited during start") from None
            await asyncio.sleep(0.05)
    raise AssertionError("service did not start")


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def unsent_bytes(port: int) -> int:
    """Bytes the kernel still holds to send on the server side of ``port``, in any state (an
    orphaned socket the server closed but the kernel keeps, FIN-WAIT-1 with its send queue,
    shows here and nowhere in the process)."""
    out = subprocess.run(
        ["ss", "-tanH", f"( sport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout
    rows = [line.split() for line in out.splitlines() if line.strip()]
    return sum(int(row[2]) for row in rows if row[0] != "LISTEN")  # LISTEN's is its backlog


def established(port: int) -> int:
    """TCP connections in ESTABLISHED state on the server side of ``port``, as ``ss`` sees
    them (the kernel's view: a socket the server forgot but did not close still shows)."""
    out = subprocess.run(
        ["ss", "-tnH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(1 for line in out.splitlines() if line.strip())


NODE = shutil.which("node")


@functools.cache
def node_has_websocket() -> bool:
    """Whether this Node has the built-in WebSocket (Node 22; Node 20 behind a flag)."""
    if NODE is None:
        return False
    probe = subprocess.run(
        [
            NODE,
            "--experimental-websocket",
            "-e",
            "process.exit(typeof WebSocket === 'function' ? 0 : 1)",
        ],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


TRADE_FIELDS = frozenset(
    {
        "buy_quantity",
        "sell_quantity",
        "day_buy_quantity",
        "day_sell_quantity",
        "day_buy_price",
        "day_sell_price",
        "trades",
        "realized",
        "day_realized",
        "realized_pnl",
        "day_realized_pnl",
    }
)
"""The fields positions built from trades added to ``position``, ``pnl`` and ``portfolio``."""


def seed_view(fields: Any) -> dict[str, Any]:
    """A ``position``, ``pnl`` or ``portfolio`` object with only the fields it always had."""
    return {k: v for k, v in dict(fields).items() if k not in TRADE_FIELDS}
