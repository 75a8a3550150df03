"""The seed's commands in backend/, run as a user runs them: real processes, real sockets."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

BACKEND = Path(__file__).resolve().parent.parent / "backend"
STARTUP_SECONDS = 30.0
CLIENT_SECONDS = 120.0
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$", re.MULTILINE)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP answer, even 503 while the feed starts, means it is listening
    except OSError:
        return False


class Started:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self.url = f"ws://127.0.0.1:{port}"


def _free_port_pair() -> int:
    """A port whose next one is free too (run_services puts its second gateway there)."""
    for _ in range(50):
        port = _free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


def _start(script: str, workdir: Path) -> Started:
    """Run a backend/ script as the seed does (cwd backend/) and wait until /health answers."""
    port = _free_port_pair()
    env = {
        **os.environ,
        "WS_PORT": str(port),
        "HOST": "127.0.0.1",
        "SIM_SPEED": "60",
        "UPDATE_INTERVAL": "0.2",
        "DATA_DIR": str(workdir / "data"),
    }
    log = workdir / f"{Path(script).stem}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, script], cwd=BACKEND, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    started = Started(proc, port, log)
    deadline = time.monotonic() + STARTUP_SECONDS
    while not _answers(f"http://127.0.0.1:{port}/health"):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(f"{script} did not serve /health on {port}:\n{log.read_text()}")
        time.sleep(0.1)
    return started


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    started = _start("start_websocket_service.py", tmp_path_factory.mktemp("svc"))
    try:
        yield started
    finally:
        _stop(started.proc)


def _client(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=BACKEND,
        capture_output=True,
        text=True,
        timeout=CLIENT_SECONDS,
        check=False,
    )


def _failures(result: subprocess.CompletedProcess[str]) -> str:
    """The FAIL lines first, then everything, for an assertion message."""
    fails = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    return "\n".join([*fails, "--- full output ---", result.stdout, result.stderr])


def _summary(output: str) -> tuple[int, int]:
    found = SUMMARY.findall(output)
    assert found, f"no 'N passed, M failed' line in:\n{output}"
    passed, failed = found[-1]
    return int(passed), int(failed)


def test_single_endpoint_client_passes_against_the_service(service: Started) -> None:
    result = _client("test_websocket_client.py", "--url", service.url, "--timeout", "10")
    out = _failures(result)
    assert result.returncode == 0, out
    passed, failed = _summary(result.stdout)
    assert failed == 0 and passed > 0, out
    assert "0 failed" in result.stdout
    assert "/ws/stream" in result.stdout and "/ws/alerts" not in result.stdout


def test_multi_endpoint_client_passes_against_the_service(service: Started) -> None:
    result = _client("test_multi_endpoint_client.py", "--url", service.url, "--timeout", "10")
    out = _failures(result)
    assert result.returncode == 0, out
    passed, failed = _summary(result.stdout)
    assert failed == 0 and passed > 0, out
    assert "0 failed" in result.stdout
    for path in ("/ws/stream", "/ws/analysis", "/ws/alerts", "/ws/portfolio"):
        assert f"PASS  {path}" in result.stdout, out


def test_client_fails_readably_when_nothing_listens() -> None:
    url = f"ws://127.0.0.1:{_free_port()}"
    result = _client("test_websocket_client.py", "--url", url, "--timeout", "3")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"cannot connect to {url}: is the service running?" in result.stdout
    assert "make run" in result.stdout
    assert _summary(result.stdout) == (0, 1)
    assert "Traceback" not in result.stderr


def test_run_services_starts_an_ingest_and_two_gateways_that_serve(tmp_path: Path) -> None:
    import uuid

    os.environ["BUS_PREFIX"] = f"tickhub-test-{uuid.uuid4().hex[:8]}"
    try:
        started = _start("run_services.py", tmp_path)
    finally:
        del os.environ["BUS_PREFIX"]
    try:
        log = started.log.read_text()
        if "no Redis answers" in log:
            pytest.skip("no Redis: run_services fell back to the single-process service")
        assert "starting 3 services" in log
        second = f"ws://127.0.0.1:{started.port + 1}"
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _answers(f"http://127.0.0.1:{started.port + 1}/health"):
            assert time.monotonic() < deadline, started.log.read_text()
            time.sleep(0.1)
        for url in (started.url, second):
            result = _client("test_multi_endpoint_client.py", "--url", url, "--timeout", "15")
            assert result.returncode == 0, _failures(result)
    finally:
        _stop(started.proc)
    assert started.proc.returncode == 0, started.log.read_text()
    out = started.log.read_text()
    assert "[ingest]" in out and f"[gateway-2:{started.port + 1}]" in out
    assert "run_services: stopped" in out
