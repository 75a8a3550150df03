"""``tickhub run-services`` and ``tickhub serve --workers N``: one Redis-backed ingest and N
gateways, as child processes (``run-services``: one port each; ``--workers``: all on one port).

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
import socket
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


_who = ["run_services"]  # what the supervisor's own lines start with: this command's name


def _say(line: str) -> None:
    with _out:
        sys.stdout.write(f"{_who[0]}: {line}\n")
        sys.stdout.flush()


def _redis_answers(url: str) -> bool:
    from tickhub.bus.redis.connection import redis_answers

    return redis_answers(url)


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
    _who[0] = "run_services"
    command = _command(env_file)
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

    conflict = _other_ingest(bus_url, prefix)
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


def run_workers(
    settings: Settings,
    env_file: str | None,
    workers: int,
    *,
    max_restarts: int = defaults.MAX_RESTARTS,
    restart_window: float = defaults.RESTART_WINDOW,
) -> int:
    """``tickhub serve --workers N``: one ingest and ``workers`` gateways that all listen on
    the one configured port (``SO_REUSEPORT``: the kernel spreads new connections over them),
    joined through the Redis bus and supervised as ``run-services``' children are.

    Unlike ``run-services`` it never falls back to one process: asked for several workers, it
    refuses in one line (and a non-zero exit) without a Linux kernel, a fixed port, a Redis
    ``BUS_URL`` or a Redis that answers. Worker ``n`` also listens on loopback at its admin
    port (``ADMIN_PORT + n - 1``), where its own ``/health`` and ``/metrics`` are reached.
    """
    _who[0] = "serve"
    problem = _workers_problem(settings, workers)
    if problem is not None:
        _say(problem)
        return EXIT_CONFIG
    bus_url = settings.bus_url
    if not _redis_answers(bus_url):
        _say(f"--workers {workers}: no Redis answers at {_redact(bus_url)} (BUS_URL)")
        return 1
    conflict = _other_ingest(bus_url, settings.bus_prefix)
    if conflict is not None:
        _say(f"not starting: {conflict}")
        return EXIT_CONFIG
    host, port = settings.host, settings.listen_port
    admin = settings.admin_port_base
    wanted = [(host, port, True)] + [
        (defaults.ADMIN_HOST, admin + i, False) for i in range(workers)
    ]
    for where, number, shared in wanted:
        try:
            _try_bind(where, number, shared=shared)
        except OSError as exc:
            what = "" if shared else " (an admin port: set ADMIN_PORT to move them)"
            _say(f"cannot listen on {where}:{number}{what}: {exc}")
            return 1
    command = _command(env_file)
    env = {"BUS_URL": bus_url, "WS_PORT": str(port)}
    plan = [_Child("ingest", [*command, "ingest"], env)]
    for n in range(1, workers + 1):
        worker_env = {**env, "WORKER_INDEX": str(n), "ADMIN_PORT": str(settings.admin_port_base)}
        plan.append(_Child(f"worker-{n}", [*command, "gateway"], worker_env))
    _say(
        f"one ingest and {workers} workers on {host}:{port} (SO_REUSEPORT) over "
        f"{_redact(bus_url)} with BUS_PREFIX {settings.bus_prefix!r}; admin ports "
        f"127.0.0.1:{admin}-{admin + workers - 1}"
    )
    policy = _Policy(max_restarts, restart_window)
    return _supervise(plan, settings.shutdown_timeout + defaults.SUPERVISOR_GRACE, policy)


def _workers_problem(settings: Settings, workers: int) -> str | None:
    """Why ``serve --workers`` cannot run here as configured, in one line, or ``None``."""
    from tickhub.bus import REDIS_SCHEMES
    from tickhub.bus.redis.sentinel import is_sentinel_url, parse_sentinel_url

    if not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"):
        return (
            f"--workers {workers} shares one port with SO_REUSEPORT, which needs Linux (this "
            f"is {sys.platform}): run one process, or run-services behind a load balancer"
        )
    if settings.listen_port == 0:
        return f"--workers {workers} needs a fixed port to share: set PORT or WS_PORT, not 0"
    scheme = settings.bus_url.split("://", 1)[0].lower()
    if scheme not in REDIS_SCHEMES:
        why = "BUS_URL" if "bus_url" in settings.model_fields_set else "BUS_URL is not set"
        return (
            f"--workers {workers} joins its processes through Redis: set BUS_URL to a Redis "
            f"(redis://127.0.0.1:6379/0 or redis+sentinel://...), not {settings.bus_url} ({why})"
        )
    if is_sentinel_url(settings.bus_url):
        try:
            parse_sentinel_url(settings.bus_url)
        except ValueError as exc:
            return f"invalid BUS_URL {_redact(settings.bus_url)!r}: {exc}"
    return None


def _try_bind(host: str, port: int, *, shared: bool) -> None:
    """Raise the ``OSError`` a worker would get binding ``host:port`` (another program holds
    it; for the ``shared`` port, one that did not set ``SO_REUSEPORT``), before any starts."""
    for family, kind, proto, _, address in socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if shared:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind(address)
        return


def _command(env_file: str | None) -> list[str]:
    command = [sys.executable, "-c", "from tickhub.app.cli import main; main()"]
    if env_file:
        command += ["--env-file", str(Path(env_file).resolve())]
    return command


def _other_ingest(bus_url: str, prefix: str) -> str | None:
    from tickhub.cluster.ingest import other_ingest

    return other_ingest(bus_url, prefix)


def _serve_instead(command: list[str]) -> NoReturn:
    """Become the single-process service (same pid, so signals reach it directly); one
    process whatever ``WORKERS`` says, since this is the fallback of having no Redis."""
    sys.stdout.flush()
    os.execv(command[0], [*command, "serve", "--workers", "1"])


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
