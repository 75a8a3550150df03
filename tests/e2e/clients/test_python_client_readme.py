"""The README's Python client examples, run verbatim (extracted from README.md) against a real
service, each as its own program: what a new user copies must work."""

from __future__ import annotations

import asyncio
import os
import re
import sys

import pytest

from tests.helpers import REPO_ROOT
from tickhub.app.roles import SingleService

SECTION = re.compile(r"^## Python client\n(.*?)^## ", re.MULTILINE | re.DOTALL)
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_examples() -> list[str]:
    section = SECTION.search((REPO_ROOT / "README.md").read_text())
    assert section is not None, "README.md has no '## Python client' section"
    return BLOCK.findall(section.group(1))


def test_the_section_has_the_two_examples() -> None:
    examples = readme_examples()
    assert len(examples) == 2
    assert "async with connect(" in examples[0] and "Ticker(" in examples[1]
    assert len(examples[0].strip().splitlines()) <= 16


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (0, r"^RELIANCE \d{4}-\d\d-\d\d \d\d:\d\d:00\+00:00 \d+\.\d+$"),
        (1, r"^RELIANCE at [\d.]+ is at or above 1\.00$"),
    ],
)
async def test_a_readme_example_runs_as_written(
    service: SingleService, index: int, expected: str
) -> None:
    code = readme_examples()[index]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        env={**os.environ, "TICKHUB_URL": f"ws://127.0.0.1:{service.port}"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert any(re.match(expected, line) for line in lines), (lines, err.decode())
