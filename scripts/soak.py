"""Soak test: thousands of clients connecting, subscribing, stalling and leaving at random.

Starts the service as a subprocess (simulated market), sends a warm-up wave of clients, then
the measured crowd for ``--duration`` seconds from ``--workers`` load processes, lets it leave,
and checks what the service reports:

- no leaked connections or subscriptions (``/connections``, ``/metrics``),
- its RSS back within a tolerance of what it was after the warm-up wave (the steady state a
  leak would grow from; CPython keeps freed memory, so the cold start is no baseline),
- no error codes or close codes other than the expected ones.

Prints a summary and exits non-zero if a check fails. Not part of ``make test``: ``make soak``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import websockets

ENDPOINTS = ["/ws/stream", "/ws/analysis", "/ws/alerts", "/ws/portfolio"]
SYMBOLS = [
    "RELIANCE",
    "INFY",
    "TCS",
    "HDFCBANK",
    "ICICIBANK",
    "SBIN",
    "ITC",
    "LT",
    "AXISBANK",
    "KOTAKBANK",
    "NIFTY 50",
    "NIFTY BANK",
]
EXPECTED_ERRORS = {"unknown_symbol", "not_subscribed", "invalid_json", "unknown_type"}
EXPECTED_CLOSES = {"1000", "1001", "4001", "4002"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> Any:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
    return body.decode() if path == "/metrics" else json.loads(body)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Stats:
    def __init__(self) -> None:
        self.sessions = 0
        self.messages = 0
        self.errors: Counter[str] = Counter()
        self.closes: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()


async def _client(url: str, stats: Stats, rng: random.Random, deadline: float) -> None:
    """One user: connect, subscribe, read a while (sometimes stall or misbehave), leave."""
    path = rng.choice(ENDPOINTS)
    try:
        async with websockets.connect(url + path, open_timeout=20, max_queue=64) as ws:
            stats.sessions += 1
            syms = rng.sample(SYMBOLS, rng.randint(1, 4))
            await ws.send(json.dumps({"type": "subscribe", "symbols": syms}))
            if rng.random() < 0.1:
                await ws.send("{not json")
            if rng.random() < 0.05:
                await ws.send(json.dumps({"type": "subscribe", "symbol": "NOPE"}))
            stay = min(rng.expovariate(1 / 5.0), max(0.0, deadline - time.monotonic()))
            end = time.monotonic() + stay
            stall = rng.random() < 0.1
            while time.monotonic() < end:
                if stall:
                    await asyncio.sleep(min(1.0, end - time.monotonic()))
                    continue
                try:
                    raw = await asyncio.wait_for(
                        ws.recv(), timeout=max(0.01, end - time.monotonic())
                    )
                except TimeoutError:
                    break
                stats.messages += 1
                msg = json.loads(raw)
                if msg.get("type") == "error":
                    stats.errors[msg["code"]] += 1
            if rng.random() < 0.3:
                await ws.send(json.dumps({"type": "unsubscribe", "symbols": syms}))
    except websockets.ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else 1006
        stats.closes[str(code)] += 1
    except (OSError, TimeoutError) as exc:
        stats.failures[type(exc).__name__] += 1


async def _crowd(url: str, clients: int, duration: float, seed: int, stats: Stats) -> None:
    rng = random.Random(seed)
    deadline = time.monotonic() + duration
    running: set[asyncio.Task[None]] = set()
    while time.monotonic() < deadline:
        # Ramp up gradually so that handshakes do not all land in the same instant.
        room = min(clients - len(running), 50)
        for _ in range(max(0, room)):
            task = asyncio.create_task(_client(url, stats, random.Random(rng.random()), deadline))
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.sleep(0.1)
    if running:
        await asyncio.wait(running, timeout=30)
    for task in running:
        task.cancel()


def _worker(url: str, clients: int, duration: float, seed: int, out: Any) -> None:
    """One load process: its share of the crowd, its counts sent back to the parent."""
    with contextlib.suppress(Exception):
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stats = Stats()
    asyncio.run(_crowd(url, clients, duration, seed, stats))
    out.put(
        {
            "sessions": stats.sessions,
            "messages": stats.messages,
            "errors": dict(stats.errors),
            "closes": dict(stats.closes),
            "failures": dict(stats.failures),
        }
    )


def _wave(url: str, clients: int, duration: float, seed: int, workers: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(url, clients // workers, duration, seed * 100 + i, queue))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=duration + 120) for _ in procs]
    for p in procs:
        p.join(30)
    total: dict[str, Any] = {
        "sessions": 0,
        "messages": 0,
        "errors": Counter(),
        "closes": Counter(),
        "failures": Counter(),
    }
    for r in results:
        total["sessions"] += r["sessions"]
        total["messages"] += r["messages"]
        for key in ("errors", "closes", "failures"):
            total[key].update(r[key])
    return total


def _settle(port: int) -> dict[str, Any]:
    """Wait until the server has noticed every departure (closed sockets, slow clients)."""
    report: dict[str, Any] = {}
    for _ in range(150):
        report = _get(port, "/connections")
        if report["total"] == 0 and report["topics"] == 0:
            break
        time.sleep(0.2)
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=2000, help="concurrent clients")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of churn")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="load processes")
    ap.add_argument(
        "--rss-tolerance", type=float, default=0.10, help="allowed RSS growth over the warm-up"
    )
    args = ap.parse_args()

    port = _free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "WS_PORT": str(port),
        # Real-time market: bounded market state (candle history) barely grows during the run,
        # so RSS growth would be the clients' doing.
        "SIM_SPEED": "1",
        "UPDATE_INTERVAL": "0.5",
        "DEMO_PORTFOLIO": "false",
        "DATA_DIR": f"/tmp/tickhub-soak-{port}",
        "CONNECT_RATE_PER_IP": "100000",
        "MAX_CONNECTIONS_PER_IP": "100000",
        "SLOW_CLIENT_GRACE": "3",
        "OUTBOX_BYTES": "65536",
        "LOG_LEVEL": "WARNING",
    }
    with contextlib.suppress(Exception):
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tickhub.app.cli import main; main()",
            "--env-file",
            "/nonexistent",
            "serve",
        ],
        env=env,
    )
    try:
        for _ in range(200):
            with contextlib.suppress(OSError):
                _get(port, "/health")
                break
            time.sleep(0.1)
        url = f"ws://127.0.0.1:{port}"
        # A warm-up wave first: allocator pools, caches and candle history reach their working
        # size, so the baseline is the steady state a leak would grow from.
        _wave(url, args.clients, args.duration / 4, args.seed + 1, args.workers)
        _settle(port)
        base_rss = _rss_kib(proc.pid)
        cpu0 = _cpu_seconds(proc.pid)
        started = time.monotonic()
        stats = _wave(url, args.clients, args.duration, args.seed, args.workers)
        elapsed = time.monotonic() - started
        cpu = _cpu_seconds(proc.pid) - cpu0
        peak_rss = _rss_kib(proc.pid)
        leftover = _settle(port)
        end_rss = _rss_kib(proc.pid)
        metrics = _get(port, "/metrics")
        health = _get(port, "/health")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)

    server_errors = {
        line.split('"')[1]: float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("tickhub_errors_total{")
    }
    server_closes = {
        line.split('"')[1]: float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("tickhub_closes_total{")
    }
    checks = {
        "no leaked connections": leftover is not None and leftover["total"] == 0,
        "no leaked subscriptions": leftover is not None and leftover["topics"] == 0,
        f"RSS within {args.rss_tolerance:.0%} of the warm-up's": end_rss
        <= base_rss * (1 + args.rss_tolerance),
        "only expected error codes": set(server_errors) <= EXPECTED_ERRORS,
        "only expected close codes": set(server_closes) <= EXPECTED_CLOSES,
        "service healthy afterwards": health["status"] == "ok",
        "clean exit on SIGTERM": code == 0,
        "client-side failures below 1%": sum(stats["failures"].values())
        <= 0.01 * max(1, stats["sessions"]),
    }
    print(
        f"soak: {stats['sessions']} sessions over {elapsed:.0f}s, up to {args.clients} at once, "
        f"{stats['messages']} messages read; server CPU {cpu / elapsed:.0%} of a core"
    )
    print(f"  RSS KiB: after warm-up {base_rss}, peak {peak_rss}, after the wave {end_rss}")
    print(f"  server errors by code: {dict(server_errors)}")
    print(f"  server closes by code: {dict(server_closes)}")
    print(f"  client-side closes: {dict(stats['closes'])}, failures: {dict(stats['failures'])}")
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    passed = sum(checks.values())
    print(f"{passed} passed, {len(checks) - passed} failed")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
