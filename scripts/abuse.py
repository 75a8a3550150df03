"""Abuse suite: attackers against one ``tickhub serve`` while well-behaved clients measure.

Starts the service as a subprocess (simulated feed, default settings, data in a temporary
folder) on a free port and runs the attacks of issue 11 one after another against it:

- ``churn``: waves of connections that subscribe and leave, half with a closing handshake,
  half with a reset;
- ``floods``: clients sending thousands of pings at once and never reading (closed 4003);
- ``large-frames``: connections each sending one 1 MB frame, then idling without reading;
- ``non-reading``: hundreds of clients subscribed to every symbol that never read (closed 4001);
- ``idle``: clients that send nothing and read nothing (closed 4002);
- ``amplification``: one raw client with a 4 KiB receive buffer sending a subscribe naming
  10,000 unknown symbols 100 times, then 45 times a second (within the default message rate).

``non-reading`` and ``idle`` wait for the server to close its clients; each runs on a server of
its own with one deadline lowered (``SLOW_CLIENT_GRACE=3``, ``IDLE_TIMEOUT=10``) so that the wait
takes seconds, not minutes. ``CLOSE_TIMEOUT`` keeps its default there: the deadline being checked
(close timeout plus sweep period, protocol §12) is the real one. Attackers are raw sockets (the
attacker sets its own receive buffer and never reads) bound to 127.0.0.2 and up, so the
per-address connection limits, at their defaults, are not what stops them; observers connect
from 127.0.0.1.

During every scenario a separate process keeps a few observer clients on ``/ws/stream`` that
read everything and send ``ping`` every 100 ms (round trip from the echoed ``timestamp``), polls
``/health``, and samples the server's VmRSS every 100 ms. After the attacker has closed (and a
bounded settle wait) the script counts the server's ESTABLISHED sockets to attacker addresses
(``ss``), its open fds (``/proc/PID/fd``) and attacker sessions (``/connections``).

Bounds (options; the first three are issue 11's): peak RSS under 200 MB (large frames: within
50 MB of the start, they may not pin memory; non-reading: start + clients x OUTBOX_BYTES +
50 MB, the per-connection budget); RSS after the attack within 50 MB of its start; observers'
ping p99 under 50 ms, and /health p99 under 100 ms, with no failure (``churn``, ``large-frames``
and ``non-reading``: under 1 s, see :data:`BUSY`); no attacker socket, session or extra fd left
after the settle. After a server-initiated close: every socket gone from
ESTABLISHED within CLOSE_TIMEOUT + sweep period (+ 0.5 s for the sampling) whatever the peer
does, under 1 MB of Send-Q left in the closed sockets, and the fds back.

Prints a table, writes JSON (``--out``), exits 1 when a bound is exceeded. Not part of
``make test``: ``make abuse`` (``ARGS=--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import multiprocessing
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import connect as ws_connect

OBSERVER_IP = "127.0.0.1"
ATTACKER_IPS = tuple(f"127.0.0.{i}" for i in range(2, 34))
OBSERVER_SYMBOLS = ("RELIANCE", "INFY", "TCS", "HDFCBANK", "SBIN")
ENDPOINTS = ("/ws/stream", "/ws/analysis", "/ws/alerts", "/ws/portfolio")
# Settings of the second server; everything else keeps its default.
# The servers: one with default settings, two with one deadline lowered each.
SERVERS = {"default": {}, "slow": {"SLOW_CLIENT_GRACE": "3"}, "idle": {"IDLE_TIMEOUT": "10"}}
# Scenarios whose attack is work the server must do for every byte or client (500 handshakes at
# once; 200 MB of frames parsed; fan-out of every symbol to hundreds of clients until they are
# paused), on the same two cores as the attackers: the observers' latency bound there is that no
# one waits a second (ping and /health p99, ms), where the others keep --ping-p99-ms.
BUSY = {"churn": 1000.0, "large-frames": 1000.0, "non-reading": 1000.0}
# Environment passed through to the servers: nothing that could carry a tickhub setting.
PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")


# --- probes ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


@dataclass(frozen=True, slots=True)
class Sock:
    state: str
    peer_ip: str
    peer_port: int
    send_q: int


def _sockets(port: int) -> list[Sock]:
    """The server's ends of its TCP connections (local port ``port``), every state but LISTEN."""
    out = subprocess.run(
        ["ss", "-tanH", "sport", "=", f":{port}"], capture_output=True, text=True, check=True
    ).stdout
    socks = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[0] == "LISTEN":
            continue
        ip, _, peer_port = parts[4].rpartition(":")
        socks.append(Sock(parts[0], ip, int(peer_port), int(parts[2])))
    return socks


def _attacker_sockets(port: int) -> tuple[int, dict[str, int], int]:
    """ESTABLISHED sockets to attacker addresses, the other states by name, their Send-Q bytes."""
    estab = 0
    other: Counter[str] = Counter()
    send_q = 0
    for s in _sockets(port):
        if s.peer_ip == OBSERVER_IP:
            continue
        send_q += s.send_q
        if s.state == "ESTAB":
            estab += 1
        else:
            other[s.state] += 1
    return estab, dict(other), send_q


def _get(port: int, path: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
        body: bytes = resp.read()
    return body


def _closes(port: int) -> dict[str, int]:
    """``tickhub_closes_total`` by close code: every close the server started, counted when sent."""
    closes = {}
    for line in _get(port, "/metrics").decode().splitlines():
        if line.startswith('tickhub_closes_total{code="'):
            closes[line.split('"')[1]] = int(float(line.split()[-1]))
    return closes


def _attacker_sessions(port: int) -> int:
    report = json.loads(_get(port, "/connections"))
    return sum(1 for c in report["connections"] if not c["remote"].startswith(OBSERVER_IP + ":"))


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _delta(now: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in sorted(now.items()) if v != before.get(k, 0)}


# --- the servers ----------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    env: dict[str, str]
    log_path: Path
    data_dir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    exit_code: int | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def close_deadline(self) -> float:
        """CLOSE_TIMEOUT plus the sweep period: how long a closed socket may live (protocol §12)."""
        idle = float(self.env.get("IDLE_TIMEOUT", "60"))
        sweep = min(1.0, idle / 4) if idle > 0 else 1.0
        return float(self.env.get("CLOSE_TIMEOUT", "5")) + sweep

    def start(self) -> None:
        self.port = _free_port()
        env = {k: os.environ[k] for k in PASSTHROUGH if k in os.environ}
        env |= {"HOST": "127.0.0.1", "WS_PORT": str(self.port), "DATA_DIR": str(self.data_dir)}
        env |= self.env
        log = self.log_path.open("ab")
        cmd = [sys.executable, "-c", "from tickhub.app.cli import main; main()"]
        self.proc = subprocess.Popen(
            [*cmd, "--env-file", "/nonexistent", "serve"], env=env, stdout=log, stderr=log
        )
        log.close()
        for _ in range(300):
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {self.name} exited with {self.proc.returncode}")
            with contextlib.suppress(OSError):
                _get(self.port, "/health", timeout=2)
                return
            time.sleep(0.1)
        raise RuntimeError(f"server {self.name} did not answer /health within 30s")

    def stop(self) -> None:
        if self.proc is None or self.exit_code is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.exit_code = self.proc.wait(10)


# --- observers (their own process, so the attackers' CPU does not bias their clocks) ------


class Monitor:
    """Observers pinging, a /health poller and an RSS sampler, recording between begin and end."""

    def __init__(self, pipe: Pipe, observers: int, ping_interval: float) -> None:
        self.pipe = pipe
        self.observers = observers
        self.ping_interval = ping_interval
        self.ping_timeout = 2.0
        self.health_interval = 0.2
        self.health_timeout = 5.0
        self.port = 0
        self.pid = 0
        self.tasks: list[asyncio.Task[None]] = []
        self.ready: set[int] = set()
        self.all_ready = asyncio.Event()
        self.recording = False
        self._reset()

    def _reset(self) -> None:
        self.rtts: list[float] = []
        self.pings = 0
        self.ping_failures: Counter[str] = Counter()
        self.health: list[float] = []
        self.health_failures: Counter[str] = Counter()
        self.rss_peak = 0
        self.rss_samples = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

        def readable() -> None:
            try:
                commands.put_nowait(self.pipe.recv())
            except (EOFError, OSError):
                loop.remove_reader(self.pipe.fileno())
                commands.put_nowait(("quit",))

        loop.add_reader(self.pipe.fileno(), readable)
        while True:
            cmd = await commands.get()
            if cmd[0] == "begin":
                self.pipe.send(await self._begin(cmd[1], cmd[2]))
            elif cmd[0] == "end":
                self.recording = False
                self.pipe.send(self._stats())
            else:
                await self._stop_tasks()
                with contextlib.suppress(OSError):
                    self.pipe.send("bye")
                return

    async def _stop_tasks(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        self.ready.clear()
        self.all_ready.clear()

    async def _begin(self, port: int, pid: int) -> dict[str, Any]:
        if port != self.port:
            await self._stop_tasks()
            self.port, self.pid = port, pid
            self.tasks = [
                asyncio.create_task(self._observer(i), name=f"observer-{i}")
                for i in range(self.observers)
            ]
            self.tasks.append(asyncio.create_task(self._health_loop(), name="health"))
            self.tasks.append(asyncio.create_task(self._rss_loop(), name="rss"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_ready.wait(), 15)
        self._reset()
        self.recording = True
        return {"observers": len(self.ready)}

    def _stats(self) -> dict[str, Any]:
        return {
            "ping": {
                "sent": self.pings,
                "answered": len(self.rtts),
                "p50_ms": _pct(self.rtts, 50),
                "p99_ms": _pct(self.rtts, 99),
                "max_ms": max(self.rtts, default=None),
                "failures": sum(self.ping_failures.values()),
                "failure_kinds": dict(self.ping_failures),
            },
            "health": {
                "polls": len(self.health) + sum(self.health_failures.values()),
                "p50_ms": _pct(self.health, 50),
                "p99_ms": _pct(self.health, 99),
                "max_ms": max(self.health, default=None),
                "failures": sum(self.health_failures.values()),
                "failure_kinds": dict(self.health_failures),
            },
            "rss_peak_kib": self.rss_peak,
            "rss_samples": self.rss_samples,
        }

    async def _observer(self, i: int) -> None:
        url = f"ws://127.0.0.1:{self.port}/ws/stream"
        symbol = OBSERVER_SYMBOLS[i % len(OBSERVER_SYMBOLS)]
        while True:
            pending: dict[int, float] = {}
            try:
                async with ws_connect(url, open_timeout=10, close_timeout=2) as ws:
                    await ws.send(orjson.dumps({"type": "subscribe", "symbol": symbol}).decode())
                    reader = asyncio.create_task(self._read(i, ws, pending), name=f"read-{i}")
                    try:
                        seq = 0
                        while not reader.done():
                            seq += 1
                            pending[seq] = time.perf_counter()
                            await ws.send(orjson.dumps({"type": "ping", "timestamp": seq}).decode())
                            if self.recording:
                                self.pings += 1
                            self._expire(pending)
                            await asyncio.sleep(self.ping_interval)
                        if self.recording:
                            self.ping_failures["observer closed by the server"] += 1
                    finally:
                        reader.cancel()
                        await asyncio.gather(reader, return_exceptions=True)
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                if self.recording:
                    self.ping_failures[f"observer {type(exc).__name__}"] += 1
            self.ready.discard(i)
            self.all_ready.clear()
            await asyncio.sleep(0.5)

    async def _read(self, i: int, ws: Any, pending: dict[int, float]) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                msg = orjson.loads(raw)
                if msg.get("type") != "pong":
                    continue
                sent = pending.pop(msg.get("client_timestamp"), None)
                if sent is None:
                    continue
                self.ready.add(i)
                if len(self.ready) >= self.observers:
                    self.all_ready.set()
                if self.recording:
                    self.rtts.append((time.perf_counter() - sent) * 1000)

    def _expire(self, pending: dict[int, float]) -> None:
        now = time.perf_counter()
        for seq, sent in list(pending.items()):
            if now - sent > self.ping_timeout:
                del pending[seq]
                if self.recording:
                    self.ping_failures[f"no pong within {self.ping_timeout:g}s"] += 1

    async def _health_loop(self) -> None:
        while True:
            started = time.perf_counter()
            try:
                status = await asyncio.wait_for(self._get_health(), self.health_timeout)
                kind = None if status == 200 else f"HTTP {status}"
            except TimeoutError:
                kind = f"no answer within {self.health_timeout:g}s"
            except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
                kind = type(exc).__name__
            elapsed = time.perf_counter() - started
            if self.recording:
                if kind is None:
                    self.health.append(elapsed * 1000)
                else:
                    self.health_failures[kind] += 1
            await asyncio.sleep(max(0.0, self.health_interval - elapsed))

    async def _get_health(self) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            return int(head.split(b" ", 2)[1])
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _rss_loop(self) -> None:
        while True:
            if self.recording:
                self.rss_peak = max(self.rss_peak, _rss_kib(self.pid))
                self.rss_samples += 1
            await asyncio.sleep(0.1)


def _monitor_main(pipe: Pipe, observers: int, ping_interval: float) -> None:
    asyncio.run(Monitor(pipe, observers, ping_interval).run())


# --- a raw WebSocket client: the attacker controls its buffers and never reads -------------


class HandshakeError(Exception):
    """The server did not switch protocols."""


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame; the key is zero, which leaves the payload as is (RFC 6455 §5.3)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + b"\0\0\0\0" + payload


def text(message: dict[str, Any]) -> bytes:
    return frame(orjson.dumps(message))


CLOSE_1000 = frame(struct.pack("!H", 1000), opcode=0x8)


class Raw:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.port = int(sock.getsockname()[1])

    @classmethod
    async def open(cls, port: int, path: str, source: str, rcvbuf: int) -> Raw:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Before connect(), so the window the attacker advertises is small from the start.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.bind((source, 0))
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", port))
            key = base64.b64encode(os.urandom(16)).decode()
            request = (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            )
            await loop.sock_sendall(sock, request.encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = await loop.sock_recv(sock, 1024)
                if not chunk:
                    raise HandshakeError("connection closed during the handshake")
                head += chunk
            status = head.split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                raise HandshakeError(f"handshake refused: {status.decode(errors='replace')}")
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    async def send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def drain_until_eof(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(timeout):
                while await loop.sock_recv(self.sock, 65536):
                    pass

    def reset(self) -> None:
        """Close with a reset (linger 0), as a vanishing client would."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


async def open_many(
    port: int,
    n: int,
    path_for: Callable[[int], str],
    rcvbuf: int,
    rate: float,
    failures: Counter[str],
) -> list[Raw]:
    """``n`` connections spread over the attacker addresses, at most ``rate`` attempts a second."""

    async def one(i: int) -> Raw | None:
        try:
            async with asyncio.timeout(15):
                return await Raw.open(
                    port, path_for(i), ATTACKER_IPS[i % len(ATTACKER_IPS)], rcvbuf
                )
        except (OSError, TimeoutError, HandshakeError) as exc:
            failures[str(exc) if isinstance(exc, HandshakeError) else type(exc).__name__] += 1
            return None

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one(i), name=f"connect-{i}"))
        if i % 10 == 9:
            await asyncio.sleep(10 / rate)
    return [r for r in await asyncio.gather(*tasks) if r is not None]


async def send_all(
    socks: Iterable[Raw], data: bytes, timeout: float, failures: Counter[str]
) -> int:
    """Send ``data`` on every socket; a send the server refuses or never takes is counted."""

    async def one(r: Raw) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await r.send(data)
            return True
        except TimeoutError:
            failures[f"send blocked over {timeout:g}s"] += 1
        except OSError as exc:
            failures[type(exc).__name__] += 1
        return False

    return sum(await asyncio.gather(*(one(r) for r in socks)))


# --- scenarios ------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    value: str


@dataclass
class Result:
    name: str
    server: str
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    rss_start_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_after_mb: float = 0.0
    settle_s: float = 0.0
    seconds: float = 0.0
    server_cpu: float = 0.0
    load_avg: float = 0.0
    fds_start: int = 0
    fds_after: int = 0
    sockets_after: int = 0
    sockets_other_states: dict[str, int] = field(default_factory=dict)
    send_q_after: int = 0
    sessions_after: int = 0
    server_closes: dict[str, int] = field(default_factory=dict)
    log_tracebacks: int = 0
    log_bytes: int = 0
    observers: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str, ok: bool, value: str) -> None:
        self.checks.append(Check(name, ok, value))

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)


@dataclass
class Plan:
    churn_waves: int
    churn_clients: int
    flood_clients: int
    flood_pings: int
    frame_clients: int
    frame_bytes: int
    frame_hold: float
    non_reading: int
    idle: int
    amplification_seconds: float


FULL = Plan(5, 500, 50, 5000, 200, 1_000_000, 10.0, 300, 200, 30.0)
QUICK = Plan(3, 200, 20, 5000, 200, 1_000_000, 3.0, 100, 100, 10.0)


@dataclass
class Scenario:
    name: str
    server: str
    description: str
    attack: Callable[[Suite, Result, Server], Awaitable[None]]


class Suite:
    def __init__(self, args: argparse.Namespace, plan: Plan, pipe: Pipe, workdir: Path) -> None:
        self.args = args
        self.plan = plan
        self.pipe = pipe
        self.servers = {
            name: Server(name, dict(env), args.out.parent / f"server-{name}.log", workdir / name)
            for name, env in SERVERS.items()
        }
        self.sockets: list[Raw] = []
        self.closes_before: dict[str, int] = {}
        self.symbols: list[str] = []

    def monitor(self, *cmd: Any) -> Any:
        self.pipe.send(cmd)
        if not self.pipe.poll(60):
            raise RuntimeError("the observer process did not answer within 60s")
        return self.pipe.recv()

    def close_attackers(self) -> None:
        for r in self.sockets:
            r.reset()
        self.sockets.clear()

    async def run(self, scn: Scenario) -> Result:
        srv = self.servers[scn.server]
        res = Result(scn.name, srv.name, scn.description)
        info = self.monitor("begin", srv.port, srv.pid)
        if info["observers"] < self.args.observers:
            res.extra["observers_ready"] = info["observers"]
        res.rss_start_mb = _rss_kib(srv.pid) / 1024
        res.fds_start = _fds(srv.pid)
        closes_before = self.closes_before = await asyncio.to_thread(_closes, srv.port)
        log_offset = srv.log_path.stat().st_size
        res.load_avg = os.getloadavg()[0]
        cpu0, wall0 = _cpu_s(srv.pid), time.monotonic()
        try:
            await scn.attack(self, res, srv)
        except (OSError, HandshakeError, TimeoutError) as exc:
            res.check("attack ran to its end", False, f"{type(exc).__name__}: {exc}")
        finally:
            self.close_attackers()
        res.settle_s = await self._settle(res, srv)
        stats = self.monitor("end")
        res.seconds = time.monotonic() - wall0
        res.server_cpu = (_cpu_s(srv.pid) - cpu0) / res.seconds
        res.rss_peak_mb = max(stats["rss_peak_kib"] / 1024, res.rss_after_mb, res.rss_peak_mb)
        res.observers = {"ping": stats["ping"], "health": stats["health"]}
        res.server_closes = _delta(await asyncio.to_thread(_closes, srv.port), closes_before)
        with srv.log_path.open("rb") as f:
            f.seek(log_offset)
            tail = f.read()
        res.log_bytes = len(tail)
        res.log_tracebacks = tail.count(b"Traceback (most recent call last)")
        self._common_checks(res, stats)
        return res

    async def _settle(self, res: Result, srv: Server) -> float:
        """Wait (bounded) until what the attacker held is released; record what is left."""
        start = time.monotonic()
        near = res.rss_start_mb + self.args.rss_near_mb
        while True:
            estab, other, send_q = await asyncio.to_thread(_attacker_sockets, srv.port)
            sessions = await asyncio.to_thread(_attacker_sessions, srv.port)
            rss = _rss_kib(srv.pid) / 1024
            fds = _fds(srv.pid)
            done = (
                estab == 0
                and sessions == 0
                and rss <= near
                and fds <= res.fds_start + self.args.fd_slack
            )
            if done or time.monotonic() - start >= self.args.settle:
                break
            await asyncio.sleep(0.5)
        res.sockets_after, res.sockets_other_states, res.send_q_after = estab, other, send_q
        res.sessions_after, res.rss_after_mb, res.fds_after = sessions, rss, fds
        return time.monotonic() - start

    def _peak_bound(self, res: Result) -> tuple[str, float]:
        """MAX_RSS_MB, except where the attack has its own: large frames may not pin memory, and
        each non-reading client may hold up to OUTBOX_BYTES (the per-connection budget)."""
        a = self.args
        if res.name == "large-frames":
            return (
                f"peak RSS within {a.rss_near_mb:g} MB of its start",
                res.rss_start_mb + a.rss_near_mb,
            )
        if res.name == "non-reading":
            outbox = int(self.servers[res.server].env.get("OUTBOX_BYTES", "1048576"))
            budget = self.plan.non_reading * outbox / 2**20
            n = self.plan.non_reading
            label = f"peak RSS under start + {n} x OUTBOX_BYTES + {a.rss_near_mb:g} MB"
            return label, max(a.max_rss_mb, res.rss_start_mb + budget + a.rss_near_mb)
        return f"peak RSS under {a.max_rss_mb:g} MB", a.max_rss_mb

    def _common_checks(self, res: Result, stats: dict[str, Any]) -> None:
        a = self.args
        label, bound = self._peak_bound(res)
        res.check(label, res.rss_peak_mb < bound, f"{res.rss_peak_mb:.0f} MB (bound {bound:.0f})")
        res.check(
            f"RSS after within {a.rss_near_mb:g} MB of its start",
            res.rss_after_mb <= res.rss_start_mb + a.rss_near_mb,
            f"{res.rss_start_mb:.0f} -> {res.rss_after_mb:.0f} MB",
        )
        res.check("no attacker socket left", res.sockets_after == 0, f"{res.sockets_after}")
        res.check("no attacker session left", res.sessions_after == 0, f"{res.sessions_after}")
        res.check(
            f"fds back within {a.fd_slack} of the start",
            res.fds_after <= res.fds_start + a.fd_slack,
            f"{res.fds_start} -> {res.fds_after}",
        )
        ping, health = stats["ping"], stats["health"]
        p99 = ping["p99_ms"]
        ping_bound = max(a.ping_p99_ms, BUSY.get(res.name, 0.0))
        health_bound = max(a.health_p99_ms, BUSY.get(res.name, 0.0))
        res.check(
            f"observers' ping p99 under {ping_bound:g} ms",
            p99 is not None and p99 < ping_bound,
            "no pong" if p99 is None else f"{p99:.1f} ms",
        )
        res.check("no observer ping failed", ping["failures"] == 0, f"{ping['failures']}")
        hp99 = health["p99_ms"]
        res.check(
            f"/health p99 under {health_bound:g} ms",
            hp99 is not None and hp99 < health_bound,
            "no answer" if hp99 is None else f"{hp99:.1f} ms",
        )
        res.check("no /health poll failed", health["failures"] == 0, f"{health['failures']}")

    async def await_server_closes(self, res: Result, srv: Server, n: int, timeout: float) -> None:
        """Wait for the server to close ``n`` attacker connections that never read, and check that
        every socket is gone within the close deadline of its close.

        ``tickhub_closes_total`` counts a close when the server sends it (counted from the start of
        the scenario: the attackers' own closes are not sent before this). Every 0.25 s the number
        of closes so far and the attacker sockets still ESTABLISHED are sampled; a sample taken
        at ``t`` may show at most ``n - k`` sockets, ``k`` being the closes counted at least one
        deadline before ``t``. The excess is reported as overdue sockets.
        """
        deadline = srv.close_deadline + self.args.close_slack
        base = sum(self.closes_before.values())
        history: list[tuple[float, int, int]] = []
        started = time.monotonic()
        all_closed: float | None = None
        first_close: float | None = None
        while True:
            k = sum((await asyncio.to_thread(_closes, srv.port)).values()) - base
            estab, _other, _q = await asyncio.to_thread(_attacker_sockets, srv.port)
            now = time.monotonic()
            history.append((now, k, estab))
            if first_close is None and k > 0:
                first_close = now
            if all_closed is None and k >= n:
                all_closed = now
            if all_closed is not None and now >= all_closed + deadline:
                break
            if all_closed is None and now - started > timeout:
                break
            await asyncio.sleep(0.25)
        overdue = 0
        for t, _k, estab in history:
            closed_long_ago = max((k for tp, k, _e in history if tp <= t - deadline), default=0)
            overdue = max(overdue, estab - (n - closed_long_ago))
        estab, other, send_q = await asyncio.to_thread(_attacker_sockets, srv.port)
        fds = _fds(srv.pid)
        gone = next((t for t, k, e in history if k >= n and e == 0), None)
        res.extra |= {
            "attackers": n,
            "closed_by_server": history[-1][1],
            "first_close_s": None if first_close is None else round(first_close - started, 2),
            "all_closed_s": None if all_closed is None else round(all_closed - started, 2),
            "sockets_gone_s": None if gone is None else round(gone - started, 2),
            "deadline_s": deadline,
            "overdue_sockets": overdue,
            "sockets_at_deadline": estab,
            "other_states_at_deadline": other,
            "send_q_at_deadline": send_q,
            "fds_at_deadline": fds,
        }
        res.check(
            "server closed every attacker",
            history[-1][1] >= n,
            f"{history[-1][1]} of {n} within {timeout:g}s",
        )
        res.check(
            f"each socket gone within {deadline:g}s of its close",
            overdue <= 0,
            f"{max(overdue, 0)} overdue, {estab} ESTABLISHED at the end",
        )
        res.check(
            f"Send-Q of the closed sockets under {self.args.max_send_q_mb:g} MB after the deadline",
            send_q <= self.args.max_send_q_mb * 2**20,
            f"{send_q / 2**20:.1f} MB in {sum(other.values()) + estab} sockets {other}",
        )
        res.check(
            f"fds within {self.args.fd_slack} of the start after the deadline",
            fds <= res.fds_start + self.args.fd_slack,
            f"{res.fds_start} -> {fds}",
        )


async def churn(s: Suite, res: Result, srv: Server) -> None:
    p = s.plan
    res.params = {"waves": p.churn_waves, "clients": p.churn_clients, "dwell_s": 0.5}
    rng = random.Random(11)
    failures: Counter[str] = Counter()
    waves = []
    for _ in range(p.churn_waves):
        started = time.monotonic()
        paths = [rng.choice(ENDPOINTS) for _ in range(p.churn_clients)]
        socks = await open_many(
            srv.port,
            p.churn_clients,
            paths.__getitem__,
            s.args.rcvbuf,
            s.args.connect_rate,
            failures,
        )
        s.sockets.extend(socks)
        for r in socks:
            syms = rng.sample(s.symbols, 3)
            with contextlib.suppress(OSError):
                await r.send(text({"type": "subscribe", "symbols": syms}))
        await asyncio.sleep(0.5)  # the clients' dwell time, not a synchronisation
        graceful = socks[: len(socks) // 2]
        for r in graceful:
            with contextlib.suppress(OSError):
                await r.send(CLOSE_1000)
        await asyncio.gather(*(r.drain_until_eof(5.0) for r in graceful))
        s.close_attackers()
        left = 0
        for _ in range(40):
            left = await asyncio.to_thread(_attacker_sessions, srv.port)
            if left == 0:
                break
            await asyncio.sleep(0.25)
        waves.append(
            {"connected": len(socks), "seconds": round(time.monotonic() - started, 2), "left": left}
        )
    res.extra |= {"waves": waves, "connect_failures": dict(failures)}


async def floods(s: Suite, res: Result, srv: Server) -> None:
    p = s.plan
    res.params = {"clients": p.flood_clients, "pings_each": p.flood_pings}
    failures: Counter[str] = Counter()
    socks = await open_many(
        srv.port,
        p.flood_clients,
        lambda i: "/ws/stream",
        s.args.rcvbuf,
        s.args.connect_rate,
        failures,
    )
    s.sockets.extend(socks)
    burst = text({"type": "ping"}) * p.flood_pings
    sent = await send_all(socks, burst, 15.0, failures)
    res.extra |= {"floods_sent": sent, "attack_failures": dict(failures)}
    await s.await_server_closes(res, srv, len(socks), timeout=30.0)


async def large_frames(s: Suite, res: Result, srv: Server) -> None:
    p = s.plan
    res.params = {"clients": p.frame_clients, "frame_bytes": p.frame_bytes, "hold_s": p.frame_hold}
    failures: Counter[str] = Counter()
    socks = await open_many(
        srv.port,
        p.frame_clients,
        lambda i: "/ws/stream",
        s.args.rcvbuf,
        s.args.connect_rate,
        failures,
    )
    s.sockets.extend(socks)
    prefix, suffix = b'{"type":"ping","pad":"', b'"}'
    payload = prefix + b"x" * (p.frame_bytes - len(prefix) - len(suffix)) + suffix
    sent = await send_all(socks, frame(payload), 30.0, failures)
    await asyncio.sleep(p.frame_hold)  # the attackers idle with their sockets open
    estab, _other, send_q = await asyncio.to_thread(_attacker_sockets, srv.port)
    res.extra |= {
        "frames_sent": sent,
        "attack_failures": dict(failures),
        "sockets_open_while_idling": estab,
        "send_q_while_idling": send_q,
        "fds_while_idling": _fds(srv.pid),
    }


async def non_reading(s: Suite, res: Result, srv: Server) -> None:
    p = s.plan
    res.params = {
        "clients": p.non_reading,
        "symbols_each": len(s.symbols),
        "heartbeating": p.non_reading // 2,
        "settings": srv.env,
    }
    failures: Counter[str] = Counter()
    socks = await open_many(
        srv.port,
        p.non_reading,
        lambda i: "/ws/stream" if i % 2 == 0 else "/ws/analysis",
        s.args.rcvbuf,
        s.args.connect_rate,
        failures,
    )
    s.sockets.extend(socks)
    sent = await send_all(socks, text({"type": "subscribe", "symbols": s.symbols}), 10.0, failures)
    res.extra |= {"subscribed": sent, "attack_failures": dict(failures)}
    stop = asyncio.Event()

    # Half of them stay silent, half send a heartbeat every 2 s and go on after the server's
    # close frame, which they never read: the socket must go either way.
    beating_socks = socks[1::2]

    async def keepalive() -> None:
        beat = text({"type": "heartbeat"})
        while not stop.is_set():
            await send_all(beating_socks, beat, 2.0, Counter())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)

    beating = asyncio.create_task(keepalive(), name="keepalive")
    grace = float(srv.env.get("SLOW_CLIENT_GRACE", "30"))
    try:
        await s.await_server_closes(res, srv, len(socks), timeout=grace + 60)
    finally:
        stop.set()
        await beating


async def idle(s: Suite, res: Result, srv: Server) -> None:
    p = s.plan
    res.params = {"clients": p.idle, "settings": srv.env}
    failures: Counter[str] = Counter()
    socks = await open_many(
        srv.port, p.idle, lambda i: "/ws/stream", s.args.rcvbuf, s.args.connect_rate, failures
    )
    s.sockets.extend(socks)
    res.extra |= {"attack_failures": dict(failures)}
    await s.await_server_closes(
        res, srv, len(socks), timeout=float(srv.env.get("IDLE_TIMEOUT", "60")) + 30
    )


def unknown_symbols(n: int) -> list[str]:
    """Three-character names starting with a digit: no listed symbol looks like that, and 10,000
    of them make a subscribe of about 60 KB, under MAX_MESSAGE_BYTES."""
    chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    names = (d + a + b for d in "0123456789" for a in chars for b in chars)
    return [next(names) for _ in range(n)]


async def amplification(s: Suite, res: Result, srv: Server) -> None:
    seconds = s.plan.amplification_seconds
    message = text({"type": "subscribe", "symbols": unknown_symbols(10_000)})
    res.params = {
        "symbols": 10_000,
        "message_bytes": len(message),
        "burst": 100,
        "rate": 45,
        "seconds": seconds,
        "rcvbuf": 4096,
    }
    abort_kib = s.args.rss_abort_mb * 1024
    sent = connections = server_closed = stalls = 0
    peak = 0
    aborted: str | None = None
    raw: Raw | None = None
    started = time.monotonic()
    k = 0
    while time.monotonic() < started + seconds and aborted is None:
        if raw is None:
            raw = await Raw.open(srv.port, "/ws/stream", ATTACKER_IPS[0], 4096)
            s.sockets.append(raw)
            connections += 1
            burst = 100
        else:
            burst = 1
            target = started + k / 45
            if target > time.monotonic():
                await asyncio.sleep(target - time.monotonic())
            k += 1
        try:
            for _ in range(burst):
                async with asyncio.timeout(5):
                    await raw.send(message)
                sent += 1
        except TimeoutError:
            stalls += 1  # the server stopped reading this client: drop it and come back
            raw.reset()
            s.sockets.remove(raw)
            raw = None
        except OSError:
            server_closed += 1
            raw.reset()
            s.sockets.remove(raw)
            raw = None
            await asyncio.sleep(0.2)
        rss = _rss_kib(srv.pid)
        peak = max(peak, rss)
        if rss > abort_kib:
            aborted = f"stopped after {time.monotonic() - started:.1f}s: RSS {rss // 1024} MB"
    res.rss_peak_mb = peak / 1024
    res.extra |= {
        "messages_sent": sent,
        "bytes_sent": sent * len(message),
        "connections": connections,
        "closed_by_server": server_closed,
        "sends_blocked_5s": stalls,
        "aborted": aborted,
        "attack_s": round(time.monotonic() - started, 1),
    }


SCENARIOS = {
    "churn": Scenario(
        "churn", "default", "waves of clients that subscribe, stay 0.5 s and leave", churn
    ),
    "floods": Scenario(
        "floods", "default", "each client sends thousands of pings at once, never reads", floods
    ),
    "large-frames": Scenario(
        "large-frames", "default", "one 1 MB frame per connection, then idling", large_frames
    ),
    "non-reading": Scenario(
        "non-reading", "slow", "subscribed to every symbol, never read", non_reading
    ),
    "idle": Scenario("idle", "idle", "send nothing, read nothing", idle),
    "amplification": Scenario(
        "amplification",
        "default",
        "subscribe naming 10,000 unknown symbols: 100 at once, then 45/s, never reads",
        amplification,
    ),
}


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def print_table(results: list[Result]) -> None:
    head = (
        f"{'scenario':<14}{'server':<9}{'RSS MB start/peak/after':>25}{'socks':>7}"
        f"{'fds start/after':>17}{'ping p50/p99/max ms (fail)':>30}"
        f"{'health p50/p99/max ms (fail)':>32}  result"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        ping, health = r.observers["ping"], r.observers["health"]
        rss = f"{r.rss_start_mb:.0f}/{r.rss_peak_mb:.0f}/{r.rss_after_mb:.0f}"
        pings = f"{_fmt(ping['p50_ms'])}/{_fmt(ping['p99_ms'])}/{_fmt(ping['max_ms'], 0)}"
        pings += f" ({ping['failures']})"
        healths = f"{_fmt(health['p50_ms'])}/{_fmt(health['p99_ms'])}/{_fmt(health['max_ms'], 0)}"
        healths += f" ({health['failures']})"
        failed = sum(not c.ok for c in r.checks)
        print(
            f"{r.name:<14}{r.server:<9}{rss:>25}{r.sockets_after:>7}"
            f"{f'{r.fds_start}/{r.fds_after}':>17}{pings:>30}{healths:>32}"
            f"  {'PASS' if failed == 0 else f'FAIL ({failed})'}"
        )
    for r in results:
        print(f"\n{r.name}: {r.description}; {json.dumps(r.params)}")
        print(
            f"  {r.seconds:.0f}s, server CPU {r.server_cpu:.0%} of a core, load {r.load_avg:.2f}; "
            f"server closes by code: {r.server_closes}; tracebacks logged: {r.log_tracebacks}"
        )
        if r.sockets_other_states or r.send_q_after:
            print(f"  after: other socket states {r.sockets_other_states}, Send-Q {r.send_q_after}")
        print(f"  {json.dumps(r.extra)}")
        for c in r.checks:
            print(f"  {'PASS' if c.ok else 'FAIL'}  {c.name}: {c.value}")


async def _main(args: argparse.Namespace, suite: Suite, names: list[str]) -> list[Result]:
    results = []
    for i, name in enumerate(names):
        scn = SCENARIOS[name]
        srv = suite.servers[scn.server]
        if srv.proc is None:
            srv.start()
            listed = json.loads(_get(srv.port, "/instruments"))
            suite.symbols = [instrument["symbol"] for instrument in listed]
        print(f"[{time.strftime('%H:%M:%S')}] {name} on the {srv.name} server ...", flush=True)
        try:
            res = await suite.run(scn)
        except OSError as exc:
            if srv.proc is None or srv.proc.poll() is None:
                raise
            suite.close_attackers()
            res = Result(scn.name, srv.name, scn.description)
            res.observers = suite.monitor("end")
            res.check("server survived", False, f"exited with {srv.proc.returncode} ({exc})")
            results.append(res)
            break
        results.append(res)
        later = {SCENARIOS[n].server for n in names[i + 1 :]}
        for other in suite.servers.values():
            if other.proc is not None and other.name not in later:
                other.stop()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer clients, shorter attacks")
    ap.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, run in this order (default: {','.join(SCENARIOS)})",
    )
    ap.add_argument("--out", type=Path, default=Path("test-artifacts/abuse/abuse.json"))
    ap.add_argument("--observers", type=int, default=3)
    ap.add_argument("--ping-interval", type=float, default=0.1, help="seconds between pings")
    ap.add_argument("--max-rss-mb", type=float, default=200.0, help="peak RSS bound")
    ap.add_argument(
        "--rss-near-mb", type=float, default=50.0, help="RSS after may exceed its start by this"
    )
    ap.add_argument("--ping-p99-ms", type=float, default=50.0, help="observers' ping p99 bound")
    ap.add_argument("--health-p99-ms", type=float, default=100.0, help="/health p99 bound")
    ap.add_argument(
        "--close-slack",
        type=float,
        default=0.5,
        help="seconds added to CLOSE_TIMEOUT + sweep for the sampling (every 0.25 s)",
    )
    ap.add_argument("--fd-slack", type=int, default=10, help="fds after may exceed the start by")
    ap.add_argument(
        "--max-send-q-mb",
        type=float,
        default=1.0,
        help="unsent bytes the server's closed sockets may still hold after the deadline",
    )
    ap.add_argument("--settle", type=float, default=15.0, help="longest wait after the attack")
    ap.add_argument(
        "--rss-abort-mb", type=float, default=2000.0, help="stop the amplification above this"
    )
    ap.add_argument("--rcvbuf", type=int, default=4096, help="attackers' SO_RCVBUF")
    ap.add_argument(
        "--connect-rate", type=float, default=400.0, help="attacker connection attempts per second"
    )
    args = ap.parse_args()
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario: {unknown[0]!r}")
    plan = QUICK if args.quick else FULL
    if not shutil.which("ss"):
        print("abuse: ss (iproute2) is needed to count sockets", file=sys.stderr)
        return 2
    with contextlib.suppress(Exception):
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    monitor = ctx.Process(
        target=_monitor_main, args=(child, args.observers, args.ping_interval), daemon=True
    )
    monitor.start()
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="tickhub-abuse-") as tmp:
        suite = Suite(args, plan, parent, Path(tmp))
        try:
            results = asyncio.run(_main(args, suite, names))
        finally:
            suite.close_attackers()
            for srv in suite.servers.values():
                srv.stop()
            with contextlib.suppress(Exception):
                suite.monitor("quit")
            monitor.join(10)
    print_table(results)
    passed = all(r.passed for r in results)
    report = {
        "started": started.isoformat(),
        "quick": args.quick,
        "bounds": {
            "max_rss_mb": args.max_rss_mb,
            "rss_near_mb": args.rss_near_mb,
            "ping_p99_ms": args.ping_p99_ms,
            "health_p99_ms": args.health_p99_ms,
            "close_slack_s": args.close_slack,
            "fd_slack": args.fd_slack,
        },
        "servers": {
            s.name: {"settings": s.env, "log": str(s.log_path), "exit_code": s.exit_code}
            for s in suite.servers.values()
            if s.proc is not None
        },
        "scenarios": [asdict(r) | {"passed": r.passed} for r in results],
        "passed": passed,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    failed = [r.name for r in results if not r.passed]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed; report: {args.out}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
