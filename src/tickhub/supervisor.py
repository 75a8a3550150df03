"""``tickhub run-services``: one Redis-backed ingest and N gateways, as child processes.

Each child's output is prefixed with its name (``ingest``, ``gateway-1:8081``...); Ctrl-C or
SIGTERM stops them all (SIGTERM, then a kill past the shutdown timeout). A child that dies stops
the others. Without a Redis to join them, it says so and runs the single-process service.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from tickhub.config import Settings

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


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


def _pump(name: str, stream: object) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        sys.stdout.write(f"[{name}] {raw.decode(errors='replace')}")
        sys.stdout.flush()


def run_cluster(settings: Settings, env_file: str | None, gateways: int) -> int:
    bus_url = settings.bus_url
    if bus_url.startswith("memory"):
        bus_url = DEFAULT_REDIS
    command = [sys.executable, "-c", "from tickhub.cli import main; main()"]
    if env_file:
        command += ["--env-file", str(Path(env_file).resolve())]
    if not _redis_answers(bus_url):
        print(
            f"run-services: no Redis answers at {_redact(bus_url)}: starting the single-process "
            "service instead (set BUS_URL to a Redis to run an ingest and gateways)",
            flush=True,
        )
        return subprocess.call([*command, "serve"])
    base = settings.listen_port
    plan: list[tuple[str, list[str], dict[str, str]]] = [
        ("ingest", [*command, "ingest"], {"BUS_URL": bus_url})
    ]
    for i in range(gateways):
        port = base + i
        plan.append(
            (
                f"gateway-{i + 1}:{port}",
                [*command, "gateway"],
                {"BUS_URL": bus_url, "WS_PORT": str(port)},
            )
        )
    names = ", ".join(name for name, _, _ in plan)
    print(
        f"run_services: starting {len(plan)} services over {_redact(bus_url)}: {names}",
        flush=True,
    )
    return _supervise(plan, settings.shutdown_timeout + 5)


def _supervise(plan: Sequence[tuple[str, list[str], dict[str, str]]], grace: float) -> int:
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for name, argv, extra in plan:
            proc = subprocess.Popen(
                argv,
                env={**os.environ, **extra},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us; we pass it on in order
            )
            threading.Thread(target=_pump, args=(name, proc.stdout), daemon=True).start()
            procs.append((name, proc))
        code = 0
        while not stopping.is_set():
            for name, proc in procs:
                if proc.poll() is not None:
                    print(f"run_services: {name} exited with {proc.returncode}; stopping all")
                    code = 1
                    stopping.set()
                    break
            stopping.wait(0.2)
        for _, proc in reversed(procs):  # gateways first, then the ingest
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _, proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        print("run_services: stopped", flush=True)
        return code
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _redact(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
