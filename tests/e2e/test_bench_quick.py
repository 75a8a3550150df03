"""The benchmark harness works end to end in its quick mode (it asserts nothing about speed)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

ROOT = REPO_ROOT


@pytest.mark.timeout(300)
@pytest.mark.skipif(shutil.which("gcc") is None, reason="the load client is built with gcc")
def test_quick_benchmark_runs_and_writes_results(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "bench/run.py",
            "--quick",
            "--out",
            str(tmp_path),
            "--servers",
            "tickhub,picows",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    servers = {row["server"] for row in results["rows"]}
    assert {"tickhub", "picows"} <= servers
    clients = [r for r in results["rows"] if r["scenario"] == "clients"]
    assert clients and all(r["delivered"] > 0 for r in clients)
    # The burst path once: every server paced in frames of K ticks handed over in one turn.
    burst = [r for r in results["rows"] if r["scenario"] == "burst"]
    assert {r["server"] for r in burst} == {"tickhub", "picows"}
    for row in burst:
        assert row["burst"] == results["plan"]["burst"] == 50
        assert row["delivered"] > 0 and not row.get("error"), row["notes"]
        assert row["ticks_per_frame"] == 50
    assert any(g["goal"].startswith("B. burst") for g in results["goals"])
    assert "msgs/CPU-s" in proc.stdout  # the table was printed


def _script(out: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One in-process cost script of ``bench/``, writing into ``out``; it must succeed."""
    proc = subprocess.run(
        [sys.executable, script, *args, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.timeout(120)
def test_analysis_cost_runs_and_writes_its_table(tmp_path: Path) -> None:
    proc = _script(tmp_path, "bench/analysis_cost.py", "--closes", "20", "--alerts", "5")
    results = json.loads((tmp_path / "analysis_cost.json").read_text())
    kinds = [row["kind"] for row in results["rows"]]
    assert kinds == [
        "default analysis",
        "indicator set",
        "set, forming update",
        "5 indicator alerts",
    ]
    assert all(row["us_per_close"] > 0 for row in results["rows"])
    assert len(results["meta"]["set"]) == 10
    assert "CPU us" in proc.stdout


@pytest.mark.timeout(120)
def test_trades_cost_runs_and_writes_its_table(tmp_path: Path) -> None:
    _script(tmp_path, "bench/trades_cost.py", "--trades", "50")
    results = json.loads((tmp_path / "trades_cost.json").read_text())
    assert [row["kind"] for row in results["rows"]] == [
        "add_trade mean",
        "add_trade, last tenth",
        "value() after",
    ]
    assert all(row["us"] > 0 for row in results["rows"])
