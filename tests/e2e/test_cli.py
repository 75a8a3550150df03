"""`tickhub serve` options and `tickhub record` output, run as a user runs them: a process of its
own, its stdout and stderr read as a terminal or a log file would show them."""

from __future__ import annotations

import csv
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, free_port, http_get

TICKHUB = [sys.executable, "-m", "tickhub.app.cli", "--env-file", "/nonexistent"]
REPLAY_TICKS = REPO_ROOT / "tests" / "data" / "replay" / "ticks_sample.csv"
START_SECONDS = 60.0


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FEED", "WS_PORT", "PORT", "HOST")}
    env.update(DATA_DIR=str(tmp_path), SIM_SPEED="60", DEMO_PORTFOLIO="false", **extra)
    return env


def _wait_for_health(proc: subprocess.Popen[str], port: int) -> dict[str, object]:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}: {proc.communicate()[1]}")
        try:
            _, _, body = http_get(port, "/health")
            assert isinstance(body, dict)
            return body
        except OSError:
            time.sleep(0.05)  # polling a socket that is not listening yet: nothing to wait on
    pytest.fail("serve did not answer /health")


def test_serve_options_override_the_environment(tmp_path: Path) -> None:
    port, env_port = free_port(), free_port()
    env = _env(tmp_path, FEED="sim", WS_PORT=str(env_port), HOST="0.0.0.0", SYMBOLS="INFY")
    proc = subprocess.Popen(
        [
            *TICKHUB,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--feed",
            "replay",
            "--replay-file",
            str(REPLAY_TICKS),
            "--symbols",
            "RELIANCE",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = _wait_for_health(proc, port)
        feed = health["feed"]
        assert isinstance(feed, dict) and feed["name"] == "replay"
        _, _, instruments = http_get(port, "/instruments")
        symbols = {i["symbol"] for i in instruments}
        assert symbols == {"RELIANCE"}
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert " INFO " not in err  # --log-level warning took effect


def _record(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TICKHUB, "record", *args],
        env=_env(tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_record_prints_progress_lines_and_a_summary_and_logs_stopped_once(
    tmp_path: Path,
) -> None:
    out = tmp_path / "ticks.csv"
    result = _record(
        tmp_path, str(out), "--duration", "1.6", "--progress-every", "0.5", SYMBOLS="RELIANCE"
    )
    assert result.returncode == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("recording to")]
    assert len(progress) >= 2
    assert all(" ticks written, " in line and line.endswith("s elapsed") for line in progress)
    with out.open() as f:
        rows = len(list(csv.reader(f))) - 1
    assert result.stdout.startswith(f"recorded {rows} ticks to {out} in ")
    assert rows > 0
    stopped = [line for line in result.stderr.splitlines() if "feed sim: stopped" in line]
    assert len(stopped) == 1 and stopped[0].endswith("feed sim: stopped"), stopped


def test_record_on_a_terminal_refreshes_one_line_in_place(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [*TICKHUB, "record", str(tmp_path / "t.csv"), "--duration", "1.2"],
            env=_env(tmp_path, SYMBOLS="RELIANCE", LOG_LEVEL="WARNING"),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
        )
        stdout, _ = proc.communicate(timeout=60)
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal's other end is closed: all was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert proc.returncode == 0
    text = shown.decode()
    assert text.count("\rrecording to ") >= 2  # rewritten, not appended line after line
    assert text.rstrip("\r\n").count("\n") == 0
    assert stdout.startswith("recorded ")


def test_record_to_an_unwritable_path_is_one_line_and_a_failing_exit_code(
    tmp_path: Path,
) -> None:
    target = tmp_path / "missing" / "folder" / "ticks.csv"
    result = _record(tmp_path, str(target), "--duration", "1", LOG_LEVEL="WARNING")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"tickhub: {target}: cannot write (No such file or directory)"
    ]


def test_a_missing_replay_file_is_one_line_for_record_and_serve(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    expected = [f"tickhub: {missing}: cannot read (No such file or directory)"]
    result = _record(tmp_path, str(tmp_path / "out.csv"), FEED="replay", REPLAY_FILE=str(missing))
    assert (result.returncode, result.stderr.splitlines()) == (2, expected)
    serve = subprocess.run(
        [*TICKHUB, "serve", "--port", "0", "--feed", "replay", "--replay-file", str(missing)],
        env=_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (serve.returncode, serve.stderr.splitlines()) == (2, expected)


def test_first_install_says_what_it_does_and_shows_pips_progress(tmp_path: Path) -> None:
    for name in ("Makefile", "pyproject.toml"):
        (tmp_path / name).write_bytes((REPO_ROOT / name).read_bytes())
    plan = subprocess.run(
        ["make", "-n", "install"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert any("about a minute" in line and line.startswith("echo ") for line in plan)
    install = [line for line in plan if "pip install" in line and "-e " in line]
    assert install and all("--quiet" not in line for line in install)
