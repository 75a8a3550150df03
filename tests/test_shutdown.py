"""SIGTERM: going-away close for every client, exit 0, and no acknowledged write lost."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest
import websockets

from tests.helpers import Client, http_get

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _serve(tmp_path: Path, port: int) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "WS_PORT": str(port),
        "DATA_DIR": str(tmp_path),
        "SIM_SPEED": "60",
        "DEMO_PORTFOLIO": "false",
        "CONNECT_RATE_PER_IP": "10000",
        "MESSAGE_RATE": "10000",
        "MESSAGE_BURST": "10000",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from tickhub.cli import main; main()",
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


async def test_sigterm_closes_clients_with_going_away_and_loses_no_acknowledged_write(
    tmp_path: Path,
) -> None:
    port = _free_port()
    proc = await _serve(tmp_path, port)
    acked: list[str] = []
    enough = asyncio.Event()
    watcher = await Client.connect(f"ws://127.0.0.1:{port}/ws/stream")
    writer = await Client.connect(f"ws://127.0.0.1:{port}/ws/alerts")

    async def write_until_closed() -> None:
        i = 0
        try:
            while True:
                reply = await writer.request(
                    {
                        "type": "create_alert",
                        "symbol": "RELIANCE",
                        "condition": "above",
                        "value": 5000 + i,
                    },
                    "alert",
                )
                acked.append(reply["alert"]["id"])
                if len(acked) >= 20:
                    enough.set()
                i += 1
        except (websockets.ConnectionClosed, AssertionError, TimeoutError):
            return

    task = asyncio.create_task(write_until_closed())
    await asyncio.wait_for(enough.wait(), 30)
    proc.send_signal(signal.SIGTERM)
    with pytest.raises(websockets.ConnectionClosed) as info:
        while True:
            await watcher.recv(timeout=15)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    await task
    assert await asyncio.wait_for(proc.wait(), 30) == 0

    proc = await _serve(tmp_path, port)
    try:
        c = await Client.connect(f"ws://127.0.0.1:{port}/ws/alerts")
        listed = await c.request({"type": "list_alerts"}, "alerts")
        stored = {a["id"] for a in listed["alerts"]}
        assert set(acked) <= stored
        await c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
