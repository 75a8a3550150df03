"""The seed's commands in backend/, run as a user runs them: `cd backend && python <script>.py`.

Each test runs the scripts of a fresh copy of this working tree with an interpreter outside the
project's venv (none activated, none on PATH), over real processes and sockets. The copy's `.venv`
is a symlink to this checkout's, so the scripts find a ready environment without reinstalling it;
tests that need no venv, or a broken one, use a copy of their own. Creating a venv from scratch
(`python -m venv` and `pip install -e '.[dev]'`) took 45 s here with a local wheel cache, too slow
for the suite: its failures are tested instead (a failing `venv` module, no pip, no index).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.helpers import REPO_ROOT

ROOT = REPO_ROOT
VENV = ROOT / ".venv"
STARTUP_SECONDS = 30.0
CLIENT_SECONDS = 120.0
GUARD = "TICKHUB_BOOTSTRAP"
# Not copied: the venv (linked instead), git, runtime data, caches.
SKIP_AT_ROOT = {".venv", ".git", "data", "var", ".hypothesis", "test-artifacts"}
SKIP_ANYWHERE = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules"}
PROBE = """\
import os
import sys

import _bootstrap

if __name__ == "__main__":
    _bootstrap.ensure(__file__)
    import tickhub

    print(os.getpid())
    print(sys.executable)
    print(tickhub.__file__)
    print(os.environ.get("TICKHUB_BOOTSTRAP"))
    print(sys.argv[1:])
    sys.exit(int(sys.argv[1]))
"""


def _outside_venv_path() -> str:
    """PATH without any venv's bin folder, as in a shell where none is activated."""
    entries = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(e for e in entries if e and not (Path(e).parent / "pyvenv.cfg").exists())


def _user_env(**extra: str) -> dict[str, str]:
    dropped = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", GUARD}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["PATH"] = _outside_venv_path()
    env.update(extra)
    return env


def _system_python() -> str | None:
    if Path("/usr/bin/python3").is_file():
        return "/usr/bin/python3"
    return shutil.which("python3", path=_outside_venv_path())


def _version(python: str) -> tuple[int, int] | None:
    """The interpreter's version, or None when it does not run (a pyenv shim for another one)."""
    try:
        result = subprocess.run(
            [python, "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            env=_user_env(),
            check=False,
            timeout=30,
        )
    except OSError:
        return None
    if result.returncode != 0:
        return None
    major, minor = result.stdout.split()
    return int(major), int(minor)


def _interpreters() -> dict[str, tuple[int, int]]:
    """Every `python` a user of this machine may type (python, python3, the system's, older
    ones) that runs, with its version."""
    names = ("python", "python3", "python2", "python2.7", "python3.9", "python3.10")
    found = [shutil.which(name, path=_outside_venv_path()) for name in names]
    found.append(_system_python())
    found += sorted(str(p) for p in (Path.home() / ".pyenv" / "versions").glob("*/bin/python"))
    paths = list(dict.fromkeys(p for p in found if p))
    with ThreadPoolExecutor() as pool:  # at collection time: ask them all at once
        versions = dict(zip(paths, pool.map(_version, paths), strict=True))
    return {path: version for path, version in versions.items() if version is not None}


SYSTEM_PYTHON = _system_python()
INTERPRETERS = _interpreters()  # at collection: the tests are parametrized by what runs here
OLD_INTERPRETERS = [path for path, version in INTERPRETERS.items() if version < (3, 11)]
pytestmark = pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no python3 outside the venv")


def _copy_tree(dest: Path) -> Path:
    def skipped(folder: str, names: list[str]) -> set[str]:
        at_root = SKIP_AT_ROOT if Path(folder) == ROOT else set()
        return {n for n in names if n in at_root or n in SKIP_ANYWHERE}

    shutil.copytree(ROOT, dest, ignore=skipped, symlinks=True)
    return dest


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the working tree whose .venv is this checkout's (nothing is installed)."""
    copy = _copy_tree(tmp_path_factory.mktemp("clone") / "repo")
    (copy / ".venv").symlink_to(VENV, target_is_directory=True)
    sys.path.insert(0, str(copy / "backend"))
    try:
        # The copy's own backend/_bootstrap.py, found on the path just added (not importable
        # statically: the copy's location is known only at run time).
        bootstrap = importlib.import_module("_bootstrap")
        missing: list[str] = bootstrap._missing()
    finally:
        sys.path.remove(str(copy / "backend"))
        sys.modules.pop("_bootstrap", None)
    if missing:  # the scripts would pip-install the copy into the shared venv
        pytest.skip(f"{VENV} lacks {', '.join(missing)}: run `make install`")
    return copy


@pytest.fixture
def bare_repo(tmp_path: Path) -> Path:
    """A copy of the working tree with no .venv at all."""
    return _copy_tree(tmp_path / "repo")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def _health(port: int) -> tuple[int, dict[str, object]] | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/health", timeout=1.0) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 503 while the feed starts: it is listening
        return exc.code, json.loads(exc.read() or b"{}")
    except OSError:
        return None


def _wait_until(predicate: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(what())
        time.sleep(0.05)


class Started:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self.url = f"ws://127.0.0.1:{port}"


def _start(repo: Path, script: str, workdir: Path, **extra: str) -> Started:
    """`cd backend && python3 <script>` in its own session (as a terminal's foreground job, so
    Ctrl-C can be sent to the whole group), then wait until /health answers."""
    assert SYSTEM_PYTHON is not None
    port = _free_port_pair()
    env = _user_env(
        WS_PORT=str(port),
        HOST="127.0.0.1",
        SIM_SPEED="60",
        UPDATE_INTERVAL="0.2",
        DATA_DIR=str(workdir / "data"),
        **extra,
    )
    log = workdir / f"{Path(script).stem}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [SYSTEM_PYTHON, script],
            cwd=repo / "backend",
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = Started(proc, port, log)

    def up() -> bool:
        return proc.poll() is not None or _health(port) is not None

    _wait_until(up, STARTUP_SECONDS, lambda: f"{script} did not start:\n{log.read_text()}")
    if proc.poll() is not None:
        pytest.fail(f"{script} exited with {proc.returncode}:\n{log.read_text()}")
    return started


def _ctrl_c(proc: subprocess.Popen[bytes]) -> int:
    """What Ctrl-C in a terminal does: SIGINT to the foreground process group."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        raise AssertionError("Ctrl-C did not stop the process within 30 s") from None


def _running_program(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return None


@pytest.fixture(scope="module")
def service(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    started = _start(repo, "start_websocket_service.py", tmp_path_factory.mktemp("svc"))
    try:
        yield started
    finally:
        _ctrl_c(started.proc)


def _run(
    python: str, script: str, cwd: Path, *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, script, *args],
        cwd=cwd,
        env=_user_env(**extra),
        capture_output=True,
        text=True,
        timeout=CLIENT_SECONDS,
        check=False,
    )


def _client(repo: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEM_PYTHON is not None
    return _run(SYSTEM_PYTHON, script, repo / "backend", *args)


def _report(result: subprocess.CompletedProcess[str]) -> str:
    """The FAIL lines first, then everything, for an assertion message."""
    fails = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    return "\n".join([*fails, "--- full output ---", result.stdout, result.stderr])


def _summary(output: str) -> tuple[int, int]:
    last = [line for line in output.splitlines() if line.endswith(" failed")]
    assert last, f"no 'N passed, M failed' line in:\n{output}"
    passed, _, failed, _ = last[-1].replace(",", "").split()
    return int(passed), int(failed)


# --- the environment: every python reaches the project's venv, or says what to run -------------


@pytest.mark.parametrize("python", list(INTERPRETERS))
def test_any_python_runs_the_script_with_the_project_venv_in_the_same_process(
    repo: Path, python: str
) -> None:
    (repo / "backend" / "probe.py").write_text(PROBE)
    proc = subprocess.Popen(
        [python, "probe.py", "7", "two words", "--flag"],
        cwd=repo / "backend",
        env=_user_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 7, out + err  # the script's exit code, through the re-execution
    assert err == ""
    pid, executable, module, guard, args = out.splitlines()
    assert int(pid) == proc.pid  # exec, not a child: Ctrl-C and signals reach the script itself
    assert Path(executable) == repo / ".venv" / "bin" / "python"
    assert Path(module) == repo / "src" / "tickhub" / "__init__.py"  # the copy's code
    assert guard == "None"  # not inherited by what the script starts
    assert args == "['7', 'two words', '--flag']"


@pytest.mark.skipif(not OLD_INTERPRETERS, reason="no Python older than 3.11 installed")
@pytest.mark.parametrize("python", OLD_INTERPRETERS or ["none"])
def test_python_older_than_3_11_without_a_venv_says_it_needs_3_11(
    bare_repo: Path, python: str
) -> None:
    version = INTERPRETERS[python]
    result = _run(python, "start_websocket_service.py", bare_repo / "backend")
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    have = ".".join(map(str, version))
    prefix = f"start_websocket_service.py: tickhub needs Python 3.11+, this is Python {have}."
    assert line.startswith(prefix), line
    assert not (bare_repo / ".venv").exists()


def _stub_venv_module(folder: Path) -> Path:
    """A `venv` package that fails as Debian's does without python3-venv."""
    package = folder / "venv"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        "import sys\n"
        "sys.stderr.write('The virtual environment was not created successfully because '\n"
        "                 'ensurepip is not available.\\n')\n"
        "sys.exit(1)\n"
    )
    return folder


def test_missing_venv_module_says_what_to_install_in_one_line(
    bare_repo: Path, tmp_path: Path
) -> None:
    assert SYSTEM_PYTHON is not None
    if INTERPRETERS.get(SYSTEM_PYTHON, (0, 0)) < (3, 11):
        pytest.skip(f"{SYSTEM_PYTHON} is older than 3.11")
    stub = _stub_venv_module(tmp_path / "stub")
    backend = bare_repo / "backend"
    result = _run(SYSTEM_PYTHON, "test_websocket_client.py", backend, PYTHONPATH=str(stub))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    progress, failure = result.stderr.splitlines()
    venv = bare_repo / ".venv"
    assert progress.startswith(f"test_websocket_client.py: creating {venv} with {SYSTEM_PYTHON}")
    assert "(once, as `make install` does" in progress
    assert failure == (
        f"test_websocket_client.py: cannot create {venv}: `{SYSTEM_PYTHON} -m venv` failed (The "
        "virtual environment was not created successfully because ensurepip is not available.): "
        "install Python's venv module (Debian and Ubuntu: apt install python3-venv), then run "
        f"`make install` in {bare_repo}"
    )
    assert not venv.exists()  # a half-made venv would pass for a ready one next time


def test_venv_without_pip_is_entered_then_says_what_to_run(bare_repo: Path) -> None:
    """A venv that exists but lacks the packages: the script moves into it, tries to install
    there, and ends in one line (not a loop) when it cannot."""
    assert SYSTEM_PYTHON is not None
    if INTERPRETERS.get(SYSTEM_PYTHON, (0, 0)) < (3, 11):
        pytest.skip(f"{SYSTEM_PYTHON} is older than 3.11")
    venv = bare_repo / ".venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    result = _run(SYSTEM_PYTHON, "run_services.py", bare_repo / "backend")
    assert result.returncode == 1
    assert result.stdout == ""
    progress, failure = result.stderr.splitlines()
    assert progress.startswith(f"run_services.py: installing the project's packages into {venv}")
    assert failure.startswith(
        f"run_services.py: cannot install the project's packages into {venv}: "
        "`pip install --quiet --upgrade pip` failed ("
    )
    assert "No module named pip" in failure
    assert failure.endswith(f"then run `make install` in {bare_repo}")


def test_a_venv_python_that_is_not_the_venv_ends_in_one_line_not_a_loop(bare_repo: Path) -> None:
    assert SYSTEM_PYTHON is not None
    fake = bare_repo / ".venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text(f'#!/bin/sh\nexec {SYSTEM_PYTHON} "$@"\n')
    fake.chmod(0o755)
    result = _run(SYSTEM_PYTHON, "test_multi_endpoint_client.py", bare_repo / "backend")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line == (
        f"test_multi_endpoint_client.py: {fake} does not run the project's Python "
        f"({SYSTEM_PYTHON}): remove {bare_repo / '.venv'} and run `make install` in {bare_repo}"
    )


@pytest.mark.slow
def test_no_package_index_says_what_to_run_and_the_next_run_resumes(bare_repo: Path) -> None:
    """A real `python -m venv` (about 5 s), then pip against an index that does not answer."""
    assert SYSTEM_PYTHON is not None
    if INTERPRETERS.get(SYSTEM_PYTHON, (0, 0)) < (3, 11):
        pytest.skip(f"{SYSTEM_PYTHON} is older than 3.11")
    offline = {
        "PIP_CONFIG_FILE": os.devnull,  # no configured mirror or wheel folder either
        "PIP_INDEX_URL": f"http://127.0.0.1:{_free_port()}/simple",
        "PIP_FIND_LINKS": "",
        "PIP_RETRIES": "0",
        "PIP_DEFAULT_TIMEOUT": "2",
    }
    backend = bare_repo / "backend"
    venv = bare_repo / ".venv"
    first = _run(SYSTEM_PYTHON, "start_websocket_service.py", backend, **offline)
    assert first.returncode == 1
    progress, failure = first.stderr.splitlines()
    assert progress.startswith(f"start_websocket_service.py: creating {venv}")
    assert failure.startswith(
        f"start_websocket_service.py: cannot install the project's packages into {venv}: "
        "`pip install --quiet -e .[dev]` failed (ERROR: "
    ), failure
    assert "check the network (or proxy) for PyPI" in failure
    assert not (venv / ".installed").exists()
    again = _run(SYSTEM_PYTHON, "start_websocket_service.py", backend, **offline)
    assert again.returncode == 1
    progress, failure = again.stderr.splitlines()
    assert progress.startswith(
        f"start_websocket_service.py: installing the project's packages into {venv}"
    )
    assert "cannot install the project's packages" in failure


# --- the scripts themselves, started with the system's python ----------------------------------


def test_service_answers_health_in_the_process_the_user_started(service: Started) -> None:
    program = _running_program(service.proc.pid)
    if program is not None:  # Linux: the same pid now runs the venv's python
        assert program.endswith("/.venv/bin/python"), program

    def healthy() -> bool:
        answer = _health(service.port)
        return answer is not None and answer[0] == 200

    _wait_until(healthy, STARTUP_SECONDS, lambda: f"/health: {_health(service.port)}")
    answer = _health(service.port)
    assert answer is not None
    assert answer[1]["status"] == "ok"


def test_single_endpoint_client_passes_against_the_service(repo: Path, service: Started) -> None:
    result = _client(repo, "test_websocket_client.py", "--url", service.url, "--timeout", "10")
    out = _report(result)
    assert result.returncode == 0, out
    passed, failed = _summary(result.stdout)
    assert failed == 0 and passed > 0, out
    assert result.stdout.startswith(f"tickhub check {service.url} ")
    assert "/ws/stream" in result.stdout and "/ws/alerts" not in result.stdout
    assert result.stderr == ""


def test_multi_endpoint_client_passes_against_the_service(repo: Path, service: Started) -> None:
    result = _client(repo, "test_multi_endpoint_client.py", "--url", service.url, "--timeout", "10")
    out = _report(result)
    assert result.returncode == 0, out
    passed, failed = _summary(result.stdout)
    assert failed == 0 and passed > 0, out
    for path in ("/ws/stream", "/ws/analysis", "/ws/alerts", "/ws/portfolio"):
        assert f"PASS  {path}" in result.stdout, out


def test_client_fails_readably_when_nothing_listens(repo: Path) -> None:
    url = f"ws://127.0.0.1:{_free_port()}"
    result = _client(repo, "test_websocket_client.py", "--url", url, "--timeout", "3")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"cannot connect to {url}: is the service running?" in result.stdout
    assert "make run" in result.stdout
    assert _summary(result.stdout) == (0, 1)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "script",
    [
        "test_websocket_client.py",
        "test_multi_endpoint_client.py",
        "start_websocket_service.py",
        "run_services.py",
    ],
)
def test_usage_line_names_the_script_as_typed(repo: Path, script: str) -> None:
    result = _client(repo, script, "--help")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == f"Usage: {script} [OPTIONS]"


def _going_away_code(url: str, stop: Callable[[], int]) -> tuple[int | None, int]:
    """Connect, read the welcome, press Ctrl-C; the close code the client got, the exit code."""
    with connect(url, open_timeout=10) as ws:
        welcome = json.loads(ws.recv(timeout=10))
        assert welcome["type"] == "connection", welcome
        exit_code = stop()
        try:
            while True:
                ws.recv(timeout=10)
        except ConnectionClosed as closed:
            return (closed.rcvd.code if closed.rcvd else None), exit_code


def test_ctrl_c_stops_the_service_cleanly(repo: Path, tmp_path: Path) -> None:
    started = _start(repo, "start_websocket_service.py", tmp_path)
    try:
        code, exit_code = _going_away_code(
            f"{started.url}/ws/stream", lambda: _ctrl_c(started.proc)
        )
    finally:
        _ctrl_c(started.proc)
    log = started.log.read_text()
    assert code == 1001, log
    assert exit_code == 0, log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log


@pytest.mark.redis
def test_run_services_starts_an_ingest_and_two_gateways_and_stops_on_ctrl_c(
    repo: Path, tmp_path: Path
) -> None:
    started = _start(
        repo, "run_services.py", tmp_path, BUS_PREFIX=f"tickhub-test-{uuid.uuid4().hex[:8]}"
    )
    try:
        log = started.log.read_text()
        if "no Redis answers" in log:
            pytest.skip("no Redis: run_services fell back to the single-process service")
        assert "starting 3 services" in log
        second = started.port + 1
        _wait_until(
            lambda: _health(second) is not None,
            STARTUP_SECONDS,
            lambda: started.log.read_text(),
        )
        for url in (started.url, f"ws://127.0.0.1:{second}"):
            result = _client(repo, "test_multi_endpoint_client.py", "--url", url, "--timeout", "15")
            assert result.returncode == 0, _report(result)
        code, exit_code = _going_away_code(
            f"{started.url}/ws/stream", lambda: _ctrl_c(started.proc)
        )
    finally:
        _ctrl_c(started.proc)
    out = started.log.read_text()
    assert code == 1001, out
    assert exit_code == 0, out
    assert "[ingest]" in out and f"[gateway-2:{second}]" in out
    assert "run_services: stopped" in out
    assert "Traceback" not in out
