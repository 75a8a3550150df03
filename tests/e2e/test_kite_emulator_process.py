"""`tickhub kite-emulator` as its own process: SIGTERM closes its clients with 1001 (going away),
and the market it streams after a restart continues after the one before, never back in time."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from datetime import datetime
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.helpers import free_port
from tickhub.feeds.kite.parse import parse_frame

RELIANCE_TOKEN = 738561
START_SECONDS = 60.0


async def _start(tmp_path: Path, port: int, state: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "SYMBOLS": "RELIANCE", "DATA_DIR": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "tickhub.app.cli", "--env-file", "/nonexistent"),
        *("kite-emulator", "--port", str(port), "--speed", "60", "--state-file", str(state)),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(START_SECONDS):
        while True:
            if proc.returncode is not None:
                raise AssertionError("kite-emulator exited during start")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return proc
            except OSError:
                await asyncio.sleep(0.05)  # not listening yet: nothing to wait on but time


async def _client(port: int) -> ClientConnection:
    ws = await connect(f"ws://127.0.0.1:{port}?api_key=test_key&access_token=test_token")
    await ws.send(json.dumps({"a": "subscribe", "v": [RELIANCE_TOKEN]}))
    await ws.send(json.dumps({"a": "mode", "v": ["full", [RELIANCE_TOKEN]]}))
    return ws


async def _exchange_times(ws: ClientConnection, n: int) -> list[datetime]:
    """The exchange timestamps of the next ``n`` full-mode ticks."""
    seen: list[datetime] = []
    async with asyncio.timeout(30):
        while len(seen) < n:
            frame = await ws.recv()
            if isinstance(frame, bytes):
                seen += [t.exchange_timestamp for t in parse_frame(frame) if t.exchange_timestamp]
    return seen


async def test_sigterm_closes_clients_with_1001_and_a_restart_continues_the_market(
    tmp_path: Path,
) -> None:
    port = free_port()
    state = tmp_path / "emulator-state.json"
    proc = await _start(tmp_path, port, state)
    try:
        ws = await _client(port)
        before = await _exchange_times(ws, 20)
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                while True:
                    await ws.recv()
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "closed without a close frame"
            assert closed.rcvd.code == 1001
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert datetime.fromisoformat(json.loads(state.read_text())["market_time"]) >= before[-1]

    proc = await _start(tmp_path, port, state)
    try:
        ws = await _client(port)
        after = await _exchange_times(ws, 20)
        await ws.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    # The restart opened a later session: time went on, so the day's candles can close.
    assert min(after) > max(before)
    assert min(after).date() > max(before).date()
