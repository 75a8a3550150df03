"""The seed's JavaScript examples, verbatim, in Node against a real server."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from tests.helpers import TESTS_DIR
from tickhub.app.roles import SingleService

SCRIPT = TESTS_DIR / "js" / "seed_snippets.mjs"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
async def test_seed_javascript_examples_receive_data(service: SingleService) -> None:
    proc = await asyncio.create_subprocess_exec(
        "node",
        "--experimental-websocket",
        "--no-warnings",
        str(SCRIPT),
        env={**os.environ, "TICKHUB_PORT": str(service.port)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "OK " in text
    for name in ("main data", "analysis", "alerts", "portfolio"):
        assert f"Connected to {name} stream" in text
