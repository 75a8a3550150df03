"""``tickhub run-services``: one Redis-backed ingest and N gateways, as child processes.

Each child's output is prefixed with its name (``ingest``, ``gateway-1:8081``...). A child that
crashes (non-zero exit, or killed by a signal) is started again after a backoff that doubles from
``RESTART_DELAY`` to ``MAX_RESTART_DELAY`` while the others keep serving; one that crashes more
than ``max_restarts`` times within ``restart_window`` seconds is given up on, said in one line.
A child that exits cleanly, or with the configuration-error code, is not restarted (starting it
again cannot help). Ctrl-C or SIGTERM stops them all: gateways first (their clients get 1001),
then the ingest; a kill past the shutdown timeout.

Which bus it uses, and why, is its first line: ``BUS_URL`` when it names a Redis; when
``BUS_URL`` is not set (its in-process default cannot join processes), the Redis on the default
address if one answers; otherwise, or with ``BUS_URL=memory://`` set, the single-process service.
It refuses to start an ingest where another live ingest publishes on the same ``BUS_PREFIX``.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, NoReturn

from tickhub.app.config import Settings
from tickhub.core import defaults

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
EXIT_CONFIG = 2  # the children's exit code for bad settings (see cli.py): never restarted

_out = threading.Lock()


def _say(line: str) -> None:
    with _out:
        sys.stdout.write(f"run_services: {line}\n")
        sys.stdout.flush()


def _redis_answers(url: str) -> bool:
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _pump(name: str, stream: IO[bytes]) -> None:
    for raw in iter(stream.readline, b""):
        with _out:
            sys.stdout.write(f"[{name}] {raw.decode(errors='replace')}")
            sys.stdout.flush()


def run_cluster(
    settings: Settings,
    env_file: str | None,
    gateways: int,
    *,
    max_restarts: int = defaults.MAX_RESTARTS,
    restart_window: float = defaults.RESTART_WINDOW,
) -> int:
    command = [sys.executable, "-c", "from tickhub.app.cli import main; main()"]
    if env_file:
        command += ["--env-file", str(Path(env_file).resolve())]
    prefix = settings.bus_prefix
    explicit = "bus_url" in settings.model_fields_set
    bus_url = settings.bus_url
    in_process = bus_url.split("://", 1)[0].lower() == "memory"
    if in_process and explicit:
        _say(
            f"bus {bus_url} (BUS_URL), which joins no processes: starting the single-process "
            "service (set BUS_URL to a Redis to run an ingest and gateways)"
        )
        _serve_instead(command)
    if in_process:
        bus_url = DEFAULT_REDIS
    if not _redis_answers(bus_url):
        where = "BUS_URL" if explicit else "the default address (BUS_URL is not set)"
        _say(
            f"no Redis answers at {_redact(bus_url)}, {where}: starting the single-process "
            "service instead (set BUS_URL to a Redis to run an ingest and gateways)"
        )
        _serve_instead(command)
    why = (
        "BUS_URL"
        if explicit
        else "BUS_URL is not set and its in-process default joins no processes; a Redis "
        "answers at the default address"
    )
    _say(f"bus {_redact(bus_url)} with BUS_PREFIX {prefix!r} ({why})")

    from tickhub.cluster.ingest import other_ingest

    conflict = other_ingest(bus_url, prefix)
    if conflict is not None:
        _say(f"not starting: {conflict}")
        return EXIT_CONFIG
    base = settings.listen_port
    plan: list[_Child] = [_Child("ingest", [*command, "ingest"], {"BUS_URL": bus_url})]
    for i in range(gateways):
        port = base + i
        env = {"BUS_URL": bus_url, "WS_PORT": str(port)}
        plan.append(_Child(f"gateway-{i + 1}:{port}", [*command, "gateway"], env))
    names = ", ".join(child.name for child in plan)
    _say(f"starting {len(plan)} services over {_redact(bus_url)}: {names}")
    policy = _Policy(max_restarts, restart_window)
    return _supervise(plan, settings.shutdown_timeout + defaults.SUPERVISOR_GRACE, policy)


def _serve_instead(command: list[str]) -> NoReturn:
    """Become the single-process service (same pid, so signals reach it directly)."""
    sys.stdout.flush()
    os.execv(command[0], [*command, "serve"])


@dataclass(frozen=True, slots=True)
class _Policy:
    max_restarts: int
    window: float

    def delay(self, crashes: int) -> float:
        return min(defaults.MAX_RESTART_DELAY, defaults.RESTART_DELAY * 2.0 ** max(0, crashes - 1))


@dataclass
class _Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    pump: threading.Thread | None = None
    crashes: collections.deque[float] = field(default_factory=collections.deque)
    restart_at: float | None = None
    done: bool = False  # exited for good: cleanly, misconfigured, or given up on
    failed: bool = False

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us; we pass it on in order
        )
        assert self.proc.stdout is not None
        self.pump = threading.Thread(
            target=_pump, args=(self.name, self.proc.stdout), name=f"pump:{self.name}", daemon=True
        )
        self.pump.start()
        self.restart_at = None

    def exited(self, code: int, now: float, policy: _Policy) -> None:
        """Decide what follows an exit: a restart after a backoff, or nothing more."""
        self.proc = None
        how = _describe(code)
        if code == 0:
            self.done = True
            _say(f"{self.name} exited cleanly; not restarting it")
            return
        if code == EXIT_CONFIG:
            self.done = self.failed = True
            _say(f"{self.name} {how} (a configuration error): not restarting it")
            return
        self.crashes.append(now)
        while self.crashes and now - self.crashes[0] > policy.window:
            self.crashes.popleft()
        n = len(self.crashes)
        if n > policy.max_restarts:
            self.done = self.failed = True
            _say(
                f"{self.name} {how}: it crashed {n} times within {policy.window:g}s (limit "
                f"{policy.max_restarts} restarts, --max-restarts): giving up on it; the others "
                "keep running"
            )
            return
        delay = policy.delay(n)
        self.restart_at = now + delay
        _say(
            f"{self.name} {how}; restarting it in {delay:g}s "
            f"(restart {n} of {policy.max_restarts} within {policy.window:g}s)"
        )


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with {code}"


def _supervise(plan: Sequence[_Child], grace: float, policy: _Policy) -> int:
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for child in plan:
            child.start()
            assert child.proc is not None
            _say(f"started {child.name} (pid {child.proc.pid})")
        while not stopping.is_set():
            now = time.monotonic()
            for child in plan:
                if child.proc is not None:
                    code = child.proc.poll()
                    if code is not None:
                        child.exited(code, now, policy)
                elif child.restart_at is not None and now >= child.restart_at:
                    child.start()
                    assert child.proc is not None
                    _say(f"restarted {child.name} (pid {child.proc.pid})")
            if all(child.done for child in plan):
                _say("every service has stopped")
                break
            stopping.wait(defaults.SUPERVISOR_POLL)
        running = [c for c in plan if c.proc is not None and c.proc.poll() is None]
        for child in reversed(running):  # gateways first, then the ingest
            assert child.proc is not None
            child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in running:
            assert child.proc is not None
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        for child in plan:
            if child.pump is not None:
                child.pump.join(timeout=1.0)  # their last lines before ours
        _say("stopped")
        return 1 if any(child.failed for child in plan) else 0
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _redact(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
