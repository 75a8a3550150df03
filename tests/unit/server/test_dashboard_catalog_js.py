"""The dashboard's picker (src/tickhub/static/indicators.js, run by Node) and the server agree:
for entries at the catalog's defaults, bounds, just past them and at random values, the page
accepts exactly what the grammar (``parse_spec``) accepts, and writes the same canonical entry,
so that the set it subscribes is the set the server acknowledges and keys its topic by."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tickhub.core.commands.indicators import CATALOG, IndicatorError, number_text, parse_spec
from tickhub.fanout.limits import HubLimits
from tickhub.server.indicators import catalog_body

NODE = shutil.which("node")
MODULE = Path(__file__).resolve().parents[3] / "src" / "tickhub" / "static" / "indicators.js"

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

SCRIPT = """
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const { checkEntry } = await import(pathToFileURL(process.argv[1]).href);
const { body, cases } = JSON.parse(readFileSync(0, 'utf8'));
const kinds = new Map(body.indicators.map((k) => [k.name, k]));
const results = cases.map(([name, texts]) => checkEntry(kinds.get(name), texts));
process.stdout.write(JSON.stringify(results));
"""


def cases(seed: int = 17) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)
    out: list[tuple[str, list[str]]] = []
    for kind in CATALOG.values():
        highs = [200.0 if p.high < 0 else p.high for p in kind.params]
        out.append((kind.name, [number_text(p.default) for p in kind.params]))
        for i, p in enumerate(kind.params):
            step = 1.0 if p.integer else 0.001
            for v in (p.low, highs[i], p.low - step, highs[i] + step):
                texts = [number_text(q.default) for q in kind.params]
                texts[i] = number_text(round(v, 3))
                out.append((kind.name, texts))
        for _ in range(30):
            texts = []
            for i, p in enumerate(kind.params):
                if p.integer:
                    texts.append(str(rng.randint(int(p.low) - 1, int(highs[i]) + 1)))
                else:
                    texts.append(number_text(round(rng.uniform(p.low / 2, highs[i] * 1.1), 3)))
            out.append((kind.name, texts))
    return out


def server_says(name: str, texts: list[str]) -> str | None:
    entry = f"{name}:{','.join(texts)}" if texts else name
    try:
        return parse_spec(entry).canonical
    except IndicatorError:
        return None


def test_the_page_takes_and_writes_entries_as_the_server_does() -> None:
    assert NODE is not None
    todo = cases()
    payload = json.dumps({"body": catalog_body(HubLimits()), "cases": todo})
    run = subprocess.run(
        [NODE, "--input-type=module", "-e", SCRIPT, str(MODULE)],
        input=payload,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    results: list[dict[str, Any]] = json.loads(run.stdout)
    refused = 0
    for (name, texts), page in zip(todo, results, strict=True):
        expected = server_says(name, texts)
        assert page.get("entry") == expected, (name, texts, page, expected)
        if expected is None:
            refused += 1
            assert page["error"]  # said, not silently dropped
    assert 0 < refused < len(todo)  # both sides of every bound were tried
