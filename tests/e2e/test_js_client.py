"""The JavaScript client (src/tickhub/static/tickhub.js) under Node's test runner, against a real
service.

tests/js/client.test.mjs unit-tests the client with a fake socket, then drives it against the
service started here. It asks this test to act on the server through a small HTTP control
endpoint (``TICKHUB_CONTROL``): ``/drop`` closes every connection server-side (code 1012),
``/restart`` stops the service and starts a new one on the same port (a new epoch).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_settings
from tests.helpers import REPO_ROOT, node_has_websocket
from tickhub.app.roles import SingleService

ROOT = REPO_ROOT
SCRIPT = ROOT / "tests" / "js" / "client.test.mjs"
NODE = shutil.which("node")


pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
    pytest.mark.skipif(
        NODE is not None and not node_has_websocket(),
        reason="node has no WebSocket (needs Node 20+ with --experimental-websocket, or 22+)",
    ),
]


async def _control_server(actions: dict[str, Callable[[], Awaitable[None]]]) -> asyncio.Server:
    """A one-line HTTP/1.1 server: ``GET /<action>`` runs the action, answers 200 (404 if none)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode("latin-1")
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            match = re.match(r"GET /(\w+)", request_line)
            action = actions.get(match.group(1)) if match else None
            if action is None:
                status, body = "404 Not Found", b"unknown action"
            else:
                await action()
                status, body = "200 OK", b"done"
            head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_js_client_under_node(
    service_factory: Callable[..., Awaitable[SingleService]], tmp_path: Path
) -> None:
    svc = await service_factory()
    port = svc.port
    assert port is not None
    current: dict[str, Any] = {"svc": svc}

    async def drop() -> None:
        current["svc"].hub.close_all(1012, "test")

    async def restart() -> None:
        await current["svc"].stop()
        fresh = SingleService(make_settings(tmp_path, ws_port=port))
        await fresh.start()
        current["svc"] = fresh

    control = await _control_server({"drop": drop, "restart": restart})
    control_port = control.sockets[0].getsockname()[1]
    try:
        proc = await asyncio.create_subprocess_exec(
            NODE or "node",
            "--experimental-websocket",
            "--no-warnings",
            "--test",
            "--test-reporter=tap",
            str(SCRIPT),
            cwd=ROOT,
            env={
                **os.environ,
                "TICKHUB_PORT": str(port),
                "TICKHUB_CONTROL": f"http://127.0.0.1:{control_port}",
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group: the runner and its test child
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 90)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = await proc.communicate()
            pytest.fail("node --test timed out:\n" + out.decode())
    finally:
        control.close()
        await control.wait_closed()
        if current["svc"] is not svc:
            await current["svc"].stop()

    report = out.decode()
    assert proc.returncode == 0, report
    summary = dict(re.findall(r"^# (pass|fail|skipped|cancelled) (\d+)$", report, re.MULTILINE))
    assert summary.get("fail") == "0", report
    assert summary.get("cancelled") == "0", report
    assert summary.get("skipped") == "0", report
    assert "# SKIP" not in report, report  # the tests against the service ran
    assert "ok 5 - client (real service)" in report, report
