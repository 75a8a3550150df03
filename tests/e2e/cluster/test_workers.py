"""``tickhub serve --workers N``: one ingest and N gateway processes sharing one port
(``SO_REUSEPORT``) through the local Redis, driven with real WebSocket clients (websockets and
websocket-client), ``kill -9`` and SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket

from tests.conformance.test_bus_contract import REDIS_URL
from tests.e2e.cluster.test_cluster_supervisor import (
    MAIN,
    RunServices,
    _free_port_pair,
    close_code,
    is_data,
    watch,
)
from tests.helpers import Client, Msg, ahttp_get, close_all, free_port

pytestmark = pytest.mark.redis

ENDPOINTS = ("/ws/stream", "/ws/analysis", "/ws/alerts", "/ws/portfolio")


class ServeWorkers(RunServices):
    """One ``serve --workers`` subprocess (the output handling of ``run-services``' helper)."""

    def __init__(self, tmp: Path, prefix: str, workers: int, **env: str) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.admin = _free_port_pair()
        self.workers = workers
        self.lines: list[str] = []
        self.mark = 0
        self._cond = threading.Condition()
        environ = {
            **os.environ,
            "BUS_URL": REDIS_URL,
            "BUS_PREFIX": prefix,
            "WS_PORT": str(self.port),
            "ADMIN_PORT": str(self.admin),
            "HOST": "127.0.0.1",
            "DATA_DIR": str(tmp / "data"),
            "SIM_SPEED": "60",
            "UPDATE_INTERVAL": "0.2",
            "SHUTDOWN_TIMEOUT": "5",
            "CONNECT_RATE_PER_IP": "1000",
            **env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MAIN, "serve", "--workers", str(workers)],
            cwd=tmp,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def admin_port(self, n: int) -> int:
        return self.admin + n - 1

    async def started(self) -> None:
        for n in range(1, self.workers + 1):
            await self.serving(f"worker-{n}")


@pytest.fixture
def serve(tmp_path: Path, redis_prefix: str) -> Iterator[Callable[..., ServeWorkers]]:
    started: list[ServeWorkers] = []

    def start(workers: int = 2, **env: str) -> ServeWorkers:
        sw = ServeWorkers(tmp_path / f"serve{len(started)}", redis_prefix, workers, **env)
        started.append(sw)
        return sw

    yield start
    for sw in started:
        sw.stop()


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    opened: list[Client] = []
    yield opened
    await close_all(opened)


def _local(c: Client) -> str:
    host, port = c.ws.local_address[:2]
    return f"{host}:{port}"


async def _reports(sw: ServeWorkers) -> dict[int, dict[str, Any]]:
    """Each worker's ``/connections``, read on its own admin port."""
    found = {}
    for n in range(1, sw.workers + 1):
        status, _, body = await ahttp_get(sw.admin_port(n), "/connections")
        assert status == 200, body
        found[n] = body
    return found


def _text(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return resp.status, resp.read().decode()


def _sync_client(url: str) -> Msg:
    """websocket-client on one endpoint: its greeting, and on ``/ws/stream`` a data message of
    the symbol it subscribes to."""
    ws = websocket.create_connection(url, timeout=20)
    try:
        first: Msg = json.loads(ws.recv())
        assert first["type"] == "connection" and first["status"] == "connected", first
        if not url.endswith("/ws/stream"):
            return first
        ws.send(json.dumps({"type": "subscribe", "symbol": "RELIANCE"}))
        while True:
            msg: Msg = json.loads(ws.recv())
            if msg.get("type") == "data":
                return msg
    finally:
        ws.close()


async def test_two_workers_share_the_port_and_sigterm_stops_them_all(
    serve: Callable[..., ServeWorkers], clients: list[Client]
) -> None:
    sw = serve(2)
    await sw.started()
    base = f"ws://127.0.0.1:{sw.port}"
    # 40 sockets from 40 source ports: the kernel's hash spreads them over both listeners.
    for i in range(40):
        c = await Client.connect(f"{base}{ENDPOINTS[i % 4]}")
        clients.append(c)
        await c.recv()
    for path in ENDPOINTS:  # a second client library, on the same port
        got = await asyncio.to_thread(_sync_client, f"{base}{path}")
        assert got["type"] == ("data" if path == "/ws/stream" else "connection"), got

    reports = await _reports(sw)
    assert all(r["worker"] == n for n, r in reports.items())
    assert all(r["total"] > 0 for r in reports.values()), {
        n: r["total"] for n, r in reports.items()
    }
    where = {c["remote"]: n for n, r in reports.items() for c in r["connections"]}
    assert all(c["worker"] == n for n, r in reports.items() for c in r["connections"])
    assert {_local(c) for c in clients} <= set(where)  # each client on exactly one worker
    assert sum(r["total"] for r in reports.values()) == len(clients)

    # Each worker's own /health and /metrics on its admin port; the shared port says who answered.
    for n in (1, 2):
        status, _, health = await ahttp_get(sw.admin_port(n), "/health")
        # 200 or 503 by the feed's state (which is not under test): the body names the worker.
        assert status in (200, 503) and health["worker"] == n and health["role"] == "gateway"
        status, metrics = await asyncio.to_thread(_text, sw.admin_port(n), "/metrics")
        assert status == 200 and "# TYPE" in metrics
    status, _, health = await ahttp_get(sw.port, "/health")
    assert status in (200, 503) and health["worker"] in (1, 2)
    for path in ("/test", "/instruments", "/indicators"):
        status, _, _ = await ahttp_get(sw.port, path)
        assert status == 200

    pids = [sw.pid(name) for name in ("ingest", "worker-1", "worker-2")]
    sw.proc.send_signal(signal.SIGTERM)
    codes = await asyncio.gather(*(close_code(c) for c in clients))
    assert set(codes) == {1001}
    assert sw.stop() == 0
    assert "serve: stopped" in sw.output
    assert await asyncio.to_thread(_alive, pids) == []


def _alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` the kernel still has a process for (a zombie counts)."""
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def _closes(seen: list[Msg]) -> set[str]:
    return {
        m["data"]["start"]
        for m in seen
        if m.get("data_type") == "candle_data" and m["data"].get("closed")
    }


def _closing(start: str) -> Callable[[Msg], bool]:
    return lambda m: start in _closes([m])


def _last_seq(c: Client) -> dict[str, Any]:
    last = max((m for m in c.seen if m.get("type") == "data"), key=lambda m: m["seq"])
    return {"epoch": last["epoch"], "seq": last["seq"]}


async def test_a_killed_worker_is_restarted_and_its_clients_resume_on_the_same_port(
    serve: Callable[..., ServeWorkers], clients: list[Client]
) -> None:
    sw = serve(2)
    await sw.started()
    watchers = [(await watch(sw.port, clients))[0] for _ in range(16)]
    for c in watchers:  # every one has seen a candle close before the kill
        await c.wait_for(lambda m: bool(_closes([m])), 30)
    reports = await _reports(sw)
    on_two = {c["remote"] for c in reports[2]["connections"]}
    victims = [c for c in watchers if _local(c) in on_two]
    survivors = [c for c in watchers if _local(c) not in on_two]
    assert victims and survivors, "SO_REUSEPORT put every client on one worker"
    pid = sw.pid("worker-2")

    os.kill(pid, signal.SIGKILL)
    for c in victims:
        assert await close_code(c) is None  # its process is gone: no close frame
    resume_points = [_last_seq(c) for c in victims]
    at_kill = _last_seq(survivors[0])["seq"]
    await survivors[0].wait_for(lambda m: is_data(m) and m["seq"] > at_kill, 20)
    await sw.line(r"serve: worker-2 was killed by SIGKILL; restarting it in 0\.5s")

    # Each reconnects to the same port (worker 1, or worker 2 once restarted) and resumes.
    for old, since in zip(victims, resume_points, strict=True):
        new, _ = await watch(sw.port, clients, since=since)
        ack = next(m for m in new.seen if m.get("type") == "subscription")
        assert ack["recovered"] is True, ack
        seqs = [m["seq"] for m in new.seen if m.get("type") == "data"]
        assert seqs[0] > since["seq"] and seqs == sorted(seqs)
        assert not any(m.get("snapshot") for m in new.seen)
        # No candle close lost: every close a connected client saw in the span is seen here.
        await new.wait_for(lambda m: bool(_closes([m])), 30)
        mine = _closes(old.seen) | _closes(new.seen)
        newest = max(_closes(new.seen))
        ref = survivors[0]
        if newest not in _closes(ref.seen):
            await ref.wait_for(_closing(newest), 30)
        span = {s for s in _closes(ref.seen) if min(mine) <= s <= newest}
        assert span <= mine, sorted(span - mine)

    await sw.line(r"serve: restarted worker-2 \(pid (\d+)\)")
    assert sw.pid("worker-2") != pid
    await sw.serving("worker-2", sw.mark)
    status, _, health = await ahttp_get(sw.admin_port(2), "/health")
    assert status in (200, 503) and health["worker"] == 2


def _serve_once(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "DATA_DIR": str(tmp), "WS_PORT": str(free_port()), **env}
    for name, value in env.items():
        if value == "":
            del environ[name]
    return subprocess.run(
        [sys.executable, "-c", MAIN, "serve", *args],
        cwd=tmp,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("bus_url", "code", "expected"),
    [
        (
            "",
            2,
            r"^serve: --workers 2 joins its processes through Redis: set BUS_URL to a Redis "
            r"\(redis://127\.0\.0\.1:6379/0 or redis\+sentinel://\.\.\.\), not memory:// "
            r"\(BUS_URL is not set\)$",
        ),
        ("memory://", 2, r"^serve: --workers 2 joins its processes through Redis: .*\(BUS_URL\)$"),
        ("redis://127.0.0.1:{free}/0", 1, r"^serve: --workers 2: no Redis answers at redis://"),
        (
            "redis+sentinel://127.0.0.1:{free}/mymaster",
            1,
            r"^serve: --workers 2: no Redis answers at redis\+sentinel://127\.0\.0\.1:\d+/mymaster",
        ),
        (
            "redis+sentinel://u:secret@127.0.0.1:1/",
            2,
            r"^serve: invalid BUS_URL 'redis\+sentinel://\*\*\*@127\.0\.0\.1:1/': no service "
            r"name",
        ),
    ],
)
def test_workers_refuse_without_a_redis_in_one_line(
    tmp_path: Path, bus_url: str, code: int, expected: str
) -> None:
    done = _serve_once(tmp_path, "--workers", "2", BUS_URL=bus_url.format(free=free_port()))
    assert done.returncode == code, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and re.search(expected, lines[0]), done.stdout
    assert "secret" not in done.stdout + done.stderr


def test_bad_worker_counts_are_refused_in_one_line(tmp_path: Path) -> None:
    done = _serve_once(tmp_path, WORKERS="0")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "tickhub: invalid value for WORKERS: '0' (Input should be greater than or equal to 1)"
    )
    done = _serve_once(tmp_path, "--workers", "65")
    assert done.returncode == 2
    assert "Invalid value for '--workers': 65 is not in the range 1<=x<=64." in done.stderr


def test_a_malformed_sentinel_url_is_refused_by_the_single_process_too(tmp_path: Path) -> None:
    done = _serve_once(tmp_path, BUS_URL="redis+sentinel://h1:26379,h2:x/mymaster")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "tickhub: invalid bus url: 'redis+sentinel://h1:26379,h2:x/mymaster' (bad Sentinel "
        "address 'h2:x'; expected redis+sentinel://[[user]:password@]host[:port][,host[:port]"
        "...]/service[/db])"
    )


def test_a_port_held_by_another_program_is_refused_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:  # no SO_REUSEPORT: the port is not shared with it
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = _serve_once(
            tmp_path,
            "--workers",
            "2",
            BUS_URL=REDIS_URL,
            BUS_PREFIX=f"tickhub-test-held-{port}",
            HOST="127.0.0.1",
            WS_PORT=str(port),
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.strip().splitlines() == [
        f"serve: cannot listen on 127.0.0.1:{port}: [Errno 98] Address already in use"
    ]


def test_a_taken_admin_port_is_refused_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        done = _serve_once(
            tmp_path,
            "--workers",
            "2",
            BUS_URL=REDIS_URL,
            BUS_PREFIX=f"tickhub-test-admin-{taken}",
            HOST="127.0.0.1",
            ADMIN_PORT=str(taken - 1),  # worker 2's
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.strip().splitlines() == [
        f"serve: cannot listen on 127.0.0.1:{taken} (an admin port: set ADMIN_PORT to move them): "
        "[Errno 98] Address already in use"
    ]
