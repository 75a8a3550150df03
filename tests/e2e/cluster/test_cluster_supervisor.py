"""``tickhub run-services`` as an operator runs it: real processes over the local Redis (a key
prefix of each test's own), killed with ``kill -9``, and clients that must keep being served."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.conformance.test_bus_contract import REDIS_URL, redis_unavailable
from tests.helpers import Client, Msg, close_all

pytestmark = pytest.mark.redis

STARTUP = 30.0  # seconds for a child to serve; generous for a loaded 2-core machine
MAIN = "from tickhub.app.cli import main; main()"


def _free_port_pair() -> int:
    """A free port whose next one is free too (the second gateway listens there)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise AssertionError("no two consecutive free ports")


class RunServices:
    """One ``run-services`` subprocess; its output lines kept, so a test can wait for one."""

    def __init__(self, tmp: Path, prefix: str, *args: str, **env: str) -> None:
        self.port = _free_port_pair()
        self.lines: list[str] = []
        self.mark = 0  # the index past the line ``line`` found last
        self._cond = threading.Condition()
        environ = {
            **os.environ,
            "BUS_URL": REDIS_URL,
            "BUS_PREFIX": prefix,
            "WS_PORT": str(self.port),
            "HOST": "127.0.0.1",
            "DATA_DIR": str(tmp / "data"),
            "SIM_SPEED": "60",
            # No simulated past: the ingest then heartbeats as soon as the gateways serve, which
            # is when these tests take the cluster as started.
            "SIM_HISTORY_SESSIONS": "0",
            "UPDATE_INTERVAL": "0.2",
            "SHUTDOWN_TIMEOUT": "5",
            **env,
        }
        for name, value in env.items():
            if value == "":
                del environ[name]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MAIN, "run-services", "--gateways", "2", *args],
            cwd=tmp,  # no .env there
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            with self._cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.lines.append("<eof>")
            self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def _wait_line(self, pattern: str, after: int, timeout: float) -> tuple[int, re.Match[str]]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            start = after
            while True:
                for i in range(start, len(self.lines)):
                    found = regex.search(self.lines[i])
                    if found:
                        return i + 1, found
                start = len(self.lines)
                left = deadline - time.monotonic()
                assert left > 0 and "<eof>" not in self.lines, (
                    f"no line matching {pattern!r}:\n" + "\n".join(self.lines)
                )
                self._cond.wait(left)

    async def line(self, pattern: str, after: int = 0, timeout: float = STARTUP) -> re.Match[str]:
        """The first output line from index ``after`` on that matches."""
        index, found = await asyncio.to_thread(self._wait_line, pattern, after, timeout)
        self.mark = index
        return found

    def gateway(self, n: int) -> str:
        return f"gateway-{n}:{self.port + n - 1}"

    async def serving(self, name: str, after: int = 0) -> None:
        await self.line(rf"^\[{re.escape(name)}\] .*serving ws://", after)

    async def started(self) -> None:
        for n in (1, 2):
            await self.serving(self.gateway(n))

    def pid(self, name: str) -> int:
        """The pid of the child's latest start (its line comes before the child serves)."""
        pids = re.findall(rf"started {re.escape(name)} \(pid (\d+)\)", self.output)
        assert pids, self.output
        return int(pids[-1])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # pragma: no cover - a hung test
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    return redis_prefix


@pytest.fixture
def run(tmp_path: Path, prefix: str) -> Iterator[Callable[..., RunServices]]:
    started: list[RunServices] = []

    def start(*args: str, **env: str) -> RunServices:
        rs = RunServices(tmp_path / f"run{len(started)}", prefix, *args, **env)
        started.append(rs)
        return rs

    (tmp_path / "run0").mkdir()
    (tmp_path / "run1").mkdir()
    yield start
    for rs in started:
        rs.stop()


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    opened: list[Client] = []
    yield opened
    await close_all(opened)


def is_data(m: Msg) -> bool:
    return m.get("type") == "data" and not m.get("snapshot")


async def watch(port: int, opened: list[Client], **extra: Any) -> tuple[Client, Msg]:
    """A client of that gateway subscribed to RELIANCE, and its first live data message."""
    c = await Client.connect(f"ws://127.0.0.1:{port}/ws/stream")
    opened.append(c)
    await c.recv()
    ack = await c.request({"type": "subscribe", "symbol": "RELIANCE", **extra}, "subscription")
    c.seen.append(ack)
    return c, await c.wait_for(is_data, 20)


async def close_code(c: Client, timeout: float = 20.0) -> int | None:
    """Read until the connection ends: the close code received, ``None`` without a close frame."""
    try:
        while True:
            await c.recv(timeout)
    except websockets.ConnectionClosed as exc:
        return None if exc.rcvd is None else exc.rcvd.code


async def test_a_killed_gateway_is_restarted_while_the_other_keeps_serving(
    run: Callable[..., RunServices], clients: list[Client]
) -> None:
    rs = run()
    await rs.started()
    a, _ = await watch(rs.port, clients)
    b, _ = await watch(rs.port + 1, clients)
    last = [m for m in b.seen if is_data(m)][-1]
    victim = rs.gateway(2)
    pid = rs.pid(victim)

    os.kill(pid, signal.SIGKILL)
    assert await close_code(b) is None  # its process is gone: no close frame
    at_kill = [m for m in a.seen if is_data(m)][-1]["seq"]
    await a.wait_for(lambda m: is_data(m) and m["seq"] > at_kill, 20)  # the other one serves
    await rs.line(rf"run_services: {victim} was killed by SIGKILL; restarting it in 0\.5s")
    await rs.line(rf"run_services: restarted {victim} \(pid (\d+)\)", rs.mark)
    assert rs.pid(victim) != pid
    await rs.serving(victim, rs.mark)
    assert "stopping all" not in rs.output and rs.proc.poll() is None

    # Its client reconnects to the same port and resumes where it left off.
    since = {"epoch": last["epoch"], "seq": last["seq"]}
    b2, _ = await watch(rs.port + 1, clients, since=since)
    ack = next(m for m in b2.seen if m.get("type") == "subscription")
    assert ack["recovered"] is True
    seqs = [m["seq"] for m in b2.seen if m.get("type") == "data"]
    assert seqs[0] > last["seq"] and seqs == sorted(seqs)
    a_seen = len(a.seen)
    await a.wait_for(is_data)
    assert len(a.seen) > a_seen

    # SIGTERM still stops everything, and every client hears 1001.
    rs.proc.send_signal(signal.SIGTERM)
    assert await close_code(a) == 1001
    assert await close_code(b2) == 1001
    assert rs.stop() == 0
    assert "run_services: stopped" in rs.output


async def test_a_killed_ingest_is_restarted_and_the_gateways_recover(
    run: Callable[..., RunServices], clients: list[Client]
) -> None:
    rs = run()
    await rs.started()
    watchers = [await watch(rs.port, clients), await watch(rs.port + 1, clients)]
    epoch = watchers[0][1]["epoch"]
    pid = rs.pid("ingest")

    os.kill(pid, signal.SIGKILL)
    await rs.line(r"run_services: ingest was killed by SIGKILL; restarting it")
    await rs.line(r"run_services: restarted ingest", rs.mark)
    for c, _ in watchers:
        # The same connections: data of the new ingest run (a new epoch) within seconds.
        fresh = await c.wait_for(lambda m: is_data(m) and m["epoch"] != epoch, 30)
        assert fresh["symbol"] == "RELIANCE"
    assert "another ingest" not in rs.output  # the dead one's heartbeat did not block it
    rs.stop()


async def test_a_service_that_keeps_crashing_is_given_up_on_in_one_line(
    run: Callable[..., RunServices], clients: list[Client]
) -> None:
    rs = run("--max-restarts", "1", "--restart-window", "120")
    await rs.started()
    a, _ = await watch(rs.port, clients)
    victim = rs.gateway(2)
    os.kill(rs.pid(victim), signal.SIGKILL)
    await rs.line(rf"run_services: restarted {victim}")
    await rs.serving(victim, rs.mark)
    os.kill(rs.pid(victim), signal.SIGKILL)
    found = await rs.line(rf"run_services: {victim} was killed by SIGKILL: .*giving up on it")
    assert "crashed 2 times within 120s (limit 1 restarts, --max-restarts)" in found.string
    seq = [m for m in a.seen if is_data(m)][-1]["seq"]
    await a.wait_for(lambda m: is_data(m) and m["seq"] > seq, 20)  # gateway 1 still serves
    assert rs.proc.poll() is None
    assert rs.output.count(f"restarted {victim}") == 1
    assert rs.stop() == 1  # one service failed for good


async def test_a_second_ingest_on_the_same_prefix_is_refused(
    run: Callable[..., RunServices], clients: list[Client], prefix: str, tmp_path: Path
) -> None:
    first = run()
    await first.started()
    pid = first.pid("ingest")
    second = run()
    found = await second.line(r"run_services: not starting: another ingest \(pid (\d+) on ")
    assert int(found.group(1)) == pid
    assert f"BUS_PREFIX {prefix!r}" in found.string
    assert second.proc.wait(timeout=30) == 2
    assert "started" not in second.output  # not a single child
    # ``tickhub ingest`` on its own refuses as well, in one line.
    env = {**os.environ, "BUS_URL": REDIS_URL, "BUS_PREFIX": prefix, "DATA_DIR": str(tmp_path)}
    alone = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", MAIN, "ingest"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert alone.returncode == 2
    assert alone.stderr.startswith(f"tickhub: another ingest (pid {pid} on ")
    assert len(alone.stderr.strip().splitlines()) == 1, alone.stderr
    # The first instance was not disturbed.
    _, first_msg = await watch(first.port, clients)
    assert first_msg["symbol"] == "RELIANCE"


async def test_the_bus_chosen_is_said_with_the_reason(
    run: Callable[..., RunServices], clients: list[Client]
) -> None:
    explicit = run(BUS_URL="memory://")
    found = await explicit.line(r"^run_services: bus ")
    assert found.string == (
        "run_services: bus memory:// (BUS_URL), which joins no processes: starting the "
        "single-process service (set BUS_URL to a Redis to run an ingest and gateways)"
    )
    await explicit.line(r"\(all\) serving ws://")
    assert explicit.stop() == 0  # the service itself got the signal

    if redis_unavailable() is not None or not _default_redis_answers():
        pytest.skip("no Redis at the default address")
    prefix = f"tickhub-test-{uuid.uuid4().hex[:12]}"
    try:
        implicit = run(BUS_URL="", BUS_PREFIX=prefix)
        found = await implicit.line(r"^run_services: bus ")
        assert found.string == (
            f"run_services: bus redis://127.0.0.1:6379/0 with BUS_PREFIX {prefix!r} (BUS_URL "
            "is not set and its in-process default joins no processes; a Redis answers at the "
            "default address)"
        )
        await implicit.started()
        implicit.stop()
    finally:
        _delete_keys("redis://127.0.0.1:6379/0", prefix)


def _default_redis_answers() -> bool:
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _delete_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
