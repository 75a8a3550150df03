"""Soak test: thousands of clients connecting, subscribing, stalling and leaving at random.

Starts the service as a subprocess (simulated market at speed 60), runs the crowd for
``--duration`` seconds, lets it leave, then checks what the service reports:

- no leaked connections or subscriptions (``/connections``, ``/metrics``),
- its RSS back near the baseline measured before the crowd came,
- no error codes or close codes other than the expected ones.

Prints a summary and exits non-zero if a check fails. Not part of ``make test``: ``make soak``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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
        while len(running) < clients and time.monotonic() < deadline:
            task = asyncio.create_task(_client(url, stats, random.Random(rng.random()), deadline))
            running.add(task)
            task.add_done_callback(running.discard)
            if len(running) % 50 == 0:
                await asyncio.sleep(0)  # let handshakes progress
        await asyncio.sleep(0.1)
    if running:
        await asyncio.wait(running, timeout=30)
    for task in running:
        task.cancel()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=2000, help="concurrent clients")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of churn")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rss-tolerance", type=float, default=0.25, help="allowed RSS growth")
    args = ap.parse_args()

    port = _free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "WS_PORT": str(port),
        "SIM_SPEED": "60",
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
            "from tickhub.cli import main; main()",
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
        time.sleep(2.0)  # let the first candles form: the baseline includes the market state
        base_rss = _rss_kib(proc.pid)
        stats = Stats()
        started = time.monotonic()
        asyncio.run(_crowd(f"ws://127.0.0.1:{port}", args.clients, args.duration, args.seed, stats))
        elapsed = time.monotonic() - started
        peak_rss = _rss_kib(proc.pid)
        # The server notices closed sockets and slow clients within a few seconds.
        leftover = None
        for _ in range(100):
            leftover = _get(port, "/connections")
            if leftover["total"] == 0 and leftover["topics"] == 0:
                break
            time.sleep(0.2)
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
        f"RSS back within {args.rss_tolerance:.0%} of baseline": end_rss
        <= base_rss * (1 + args.rss_tolerance),
        "only expected error codes": set(server_errors) <= EXPECTED_ERRORS,
        "only expected close codes": set(server_closes) <= EXPECTED_CLOSES,
        "service healthy afterwards": health["status"] == "ok",
        "clean exit on SIGTERM": code == 0,
        "client-side failures below 1%": sum(stats.failures.values())
        <= 0.01 * max(1, stats.sessions),
    }
    print(
        f"soak: {stats.sessions} sessions over {elapsed:.0f}s, up to {args.clients} at once, "
        f"{stats.messages} messages read"
    )
    print(f"  RSS KiB: baseline {base_rss}, peak {peak_rss}, after {end_rss}")
    print(f"  server errors by code: {dict(server_errors)}")
    print(f"  server closes by code: {dict(server_closes)}")
    print(f"  client-side closes: {dict(stats.closes)}, failures: {dict(stats.failures)}")
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    passed = sum(checks.values())
    print(f"{passed} passed, {len(checks) - passed} failed")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
