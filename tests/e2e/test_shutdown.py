"""SIGTERM: going-away close for every client, exit 0, and no acknowledged write lost."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
import websockets

from tests.helpers import REPO_ROOT, Client, free_port, serve_process

ROOT = REPO_ROOT


async def _serve(tmp_path: Path, port: int) -> asyncio.subprocess.Process:
    return await serve_process(
        tmp_path, port, connect_rate_per_ip="10000", message_rate="10000", message_burst="10000"
    )


async def test_sigterm_closes_clients_with_going_away_and_loses_no_acknowledged_write(
    tmp_path: Path,
) -> None:
    port = free_port()
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
