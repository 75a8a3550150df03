"""Redis high availability: the bus on ``redis+sentinel://`` follows a failover.

The test starts Debian's ``redis-server`` on free loopback ports as one primary, one replica
(``--replicaof``) and three Sentinels (``redis-server <conf> --sentinel``), runs ``serve
--workers 2`` on the Sentinel URL, kills the primary with SIGKILL and waits for the Sentinels'
``+switch-master``. Clients must keep receiving (new ``seq`` values), see only the documented
``status`` messages, and what the failover cost them is counted from their ``seq`` gaps and
printed (run with ``-s`` to read it; docs/operations.md quotes it).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e.cluster.test_workers import ServeWorkers
from tests.helpers import Client, Msg, close_all, free_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SERVICE = "mymaster"
DOWN_AFTER_MS = 500
FAILOVER_TIMEOUT_MS = 2000
SYMBOLS = ["RELIANCE", "TCS", "INFY", "HDFCBANK", "SBIN"]
FEED_STATES = {"starting", "live", "stale", "reconnecting", "market_closed", "stopped"}
STATUSES = {
    ("reconnecting", "message bus unavailable"),
    ("stale", "no heartbeat from the ingest for 5s"),
    *((state, "message bus back") for state in FEED_STATES),
    *((state, "ingest back") for state in FEED_STATES),
}
"""The ``status`` messages docs/protocol.md §5.8 names for a gateway losing the bus or the
ingest and getting it back (with the feed's state as the ingest last reported it)."""


@dataclass
class Sentinels:
    """One primary, one replica, three Sentinels, all on loopback; killed on teardown."""

    primary: int
    replica: int
    sentinels: list[int]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def master(self) -> tuple[str, int] | None:
        client = redis.Redis(port=self.sentinels[0], socket_timeout=2, decode_responses=True)
        try:
            found: Any = client.sentinel_get_master_addr_by_name(SERVICE)
            return None if found is None else (str(found[0]), int(found[1]))
        finally:
            client.close()


def _wait(cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Ask a server until ``cond`` holds: the servers here offer no event for these states."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if cond():
                return
        except redis.RedisError:
            pass
        assert time.monotonic() < deadline, f"not reached within {timeout}s: {what}"
        time.sleep(0.05)


def _start(exe: str, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([exe, *args], stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[Sentinels]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    sentinel_exe = shutil.which("redis-sentinel") or exe
    s = Sentinels(free_port(), free_port(), [free_port() for _ in range(3)])
    plain = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    try:
        s.procs["primary"] = _start(
            exe, ["--port", str(s.primary), *plain], tmp_path / "primary.log"
        )
        s.procs["replica"] = _start(
            exe,
            ["--port", str(s.replica), *plain, "--replicaof", "127.0.0.1", str(s.primary)],
            tmp_path / "replica.log",
        )

        def linked() -> bool:
            info = redis.Redis(port=s.replica, socket_timeout=2).info("replication")
            return info.get("master_link_status") == "up"

        _wait(linked, "the replica in sync with the primary")
        for i, port in enumerate(s.sentinels):
            conf = tmp_path / f"sentinel{i}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {s.primary} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            args = [str(conf)] if sentinel_exe != exe else [str(conf), "--sentinel"]
            s.procs[f"sentinel{i}"] = _start(sentinel_exe, args, tmp_path / f"sentinel{i}.log")
        first = s.procs["sentinel0"]

        def up_or_gone() -> bool:
            return first.poll() is not None or bool(
                redis.Redis(port=s.sentinels[0], socket_timeout=2).ping()
            )

        _wait(up_or_gone, "the first Sentinel answering")
        if first.poll() is not None:
            why = (tmp_path / "sentinel0.log").read_text(errors="replace").strip()[-300:]
            pytest.skip(f"{sentinel_exe} does not run a Sentinel: {why}")

        def known(port: int) -> Callable[[], bool]:
            def check() -> bool:
                client = redis.Redis(port=port, socket_timeout=2)
                try:
                    others: Any = client.sentinel_sentinels(SERVICE)
                    replicas: Any = client.sentinel_slaves(SERVICE)
                    return len(others) == 2 and len(replicas) == 1
                finally:
                    client.close()

            return check

        for port in s.sentinels:  # a failover needs a majority that knows one another
            _wait(known(port), f"sentinel {port} knowing the replica and the other two")
        yield s
    finally:
        for proc in s.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    opened: list[Client] = []
    yield opened
    await close_all(opened)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., ServeWorkers]]:
    started: list[ServeWorkers] = []

    def start(url: str) -> ServeWorkers:
        sw = ServeWorkers(tmp_path / "serve", "tickhub-failover", 2, BUS_URL=url)
        started.append(sw)
        return sw

    yield start
    for sw in started:
        sw.stop()


def _gaps(seen: list[Msg]) -> tuple[int, int]:
    """(missing ``seq``s, live messages) over every topic a client received live."""
    last: dict[tuple[str, str], int] = {}
    missing = live = 0
    for m in seen:
        if m.get("type") != "data" or m.get("snapshot"):
            continue
        topic = (m["symbol"], m["interval"])
        if topic in last and m["seq"] > last[topic] + 1:
            missing += m["seq"] - last[topic] - 1
        last[topic] = max(m["seq"], last.get(topic, 0))
        live += 1
    return missing, live


def _data_past(seq: int) -> Callable[[Msg], bool]:
    return lambda m: m.get("type") == "data" and m["seq"] > seq


def _ack_of(symbol: str) -> Callable[[Msg], bool]:
    return lambda m: m.get("type") == "subscription" and m.get("symbol") == symbol


def _data_of(symbol: str, *, snapshot: bool) -> Callable[[Msg], bool]:
    return lambda m: (
        m.get("type") == "data" and m["symbol"] == symbol and bool(m.get("snapshot")) is snapshot
    )


def _resume_points(seen: list[Msg]) -> dict[str, dict[str, Any]]:
    """The last ``epoch``/``seq`` of each symbol's 1m topic in ``seen``."""
    points: dict[str, dict[str, Any]] = {}
    for m in seen:
        if m.get("type") == "data" and m.get("interval") == "1m":
            held = points.get(m["symbol"])
            if held is None or m["seq"] > held["seq"]:
                points[m["symbol"]] = {"epoch": m["epoch"], "seq": m["seq"]}
    return points


def _switch_watch(sentinel: int) -> Callable[[], str]:
    """Subscribed (now) to that Sentinel's ``+switch-master``; the call blocks until it is
    announced and returns the announcement."""
    client = redis.Redis(port=sentinel, socket_timeout=60)
    pubsub = client.pubsub()  # type: ignore[no-untyped-call]
    pubsub.subscribe("+switch-master")
    confirmed = pubsub.get_message(timeout=10)
    assert confirmed is not None and confirmed["type"] == "subscribe", confirmed

    def wait() -> str:
        try:
            while True:
                msg = pubsub.get_message(timeout=60)
                assert msg is not None, "no +switch-master within 60s"
                if msg["type"] == "message":
                    return bytes(msg["data"]).decode()
        finally:
            pubsub.close()
            client.close()

    return wait


async def _subscribe(port: int, opened: list[Client]) -> Client:
    c = await Client.connect(f"ws://127.0.0.1:{port}/ws/stream")
    opened.append(c)
    await c.recv()
    await c.request({"type": "subscribe", "symbols": SYMBOLS}, "subscription")
    await c.wait_for(lambda m: m.get("type") == "data" and not m.get("snapshot"), 30)
    return c


async def test_the_bus_follows_a_sentinel_failover_and_clients_keep_receiving(
    sentinels: Sentinels, serve: Callable[..., ServeWorkers], clients: list[Client]
) -> None:
    sw = serve(sentinels.url)
    await sw.started()
    watchers = [await _subscribe(sw.port, clients) for _ in range(4)]
    for c in watchers:  # some live data on each before the kill
        target = len(c.seen) + 20
        while len(c.seen) < target:
            await c.recv(30)
    assert sentinels.master() == ("127.0.0.1", sentinels.primary)

    switch = asyncio.create_task(asyncio.to_thread(_switch_watch(sentinels.sentinels[1])))
    before = [len(c.seen) for c in watchers]
    killed_at = time.monotonic()
    sentinels.procs["primary"].send_signal(signal.SIGKILL)
    announced = await switch
    promoted_at = time.monotonic()
    assert announced.endswith(f"127.0.0.1 {sentinels.replica}"), announced
    assert sentinels.master() == ("127.0.0.1", sentinels.replica)

    # Every client keeps receiving: new seq values past what it had at the kill.
    for c, n in zip(watchers, before, strict=True):
        newest = max(m["seq"] for m in c.seen[:n] if m.get("type") == "data")
        await c.wait_for(_data_past(newest + 5), 60)
    statuses = {
        (m["feed"], m["detail"])
        for c, n in zip(watchers, before, strict=True)
        for m in c.seen[n:]
        if m["type"] == "status"
    }
    assert statuses <= STATUSES, statuses

    # What a client that kept its resume points gets back over the failover's gap.
    marks = _resume_points(watchers[0].seen[: before[0]])
    back = await Client.connect(f"ws://127.0.0.1:{sw.port}/ws/stream")
    clients.append(back)
    await back.recv()
    recovered = {}
    for symbol, since in marks.items():
        await back.send({"type": "subscribe", "symbol": symbol, "since": since})
        ack = await back.wait_for(_ack_of(symbol), 30)
        recovered[symbol] = ack["recovered"]
    for symbol, ok in recovered.items():
        # recovered: the missed messages, no snapshot; not: a snapshot (docs/protocol.md §8.1).
        await back.wait_for(_data_of(symbol, snapshot=not ok), 30)

    report: list[dict[str, Any]] = []
    for c, n in zip(watchers, before, strict=True):
        missing, live = _gaps(c.seen)
        report.append({"missing": missing, "live": live, "at_kill": n})
    worst = max(r["missing"] for r in report)
    print(
        f"\nsentinel failover: promotion {promoted_at - killed_at:.2f}s after SIGKILL "
        f"(down-after {DOWN_AFTER_MS} ms); per client missing seqs / live messages: "
        + ", ".join(f"{r['missing']}/{r['live']}" for r in report)
        + f"; statuses seen: {sorted(statuses)}; worst {worst}; resumed from before the "
        f"kill: recovered {sum(recovered.values())} of {len(recovered)} topics"
    )
    assert "serve: stopped" not in sw.output and sw.proc.poll() is None


async def test_the_bus_follows_a_switchover_whose_old_primary_stays_up_as_a_replica(
    sentinels: Sentinels, serve: Callable[..., ServeWorkers], clients: list[Client]
) -> None:
    """``SENTINEL FAILOVER``: the old primary lives on, read-only, with the connections it had;
    the ingest's writes there are refused (READONLY) and must move to the new primary."""
    sw = serve(sentinels.url)
    await sw.started()
    watchers = [await _subscribe(sw.port, clients) for _ in range(2)]
    switch = asyncio.create_task(asyncio.to_thread(_switch_watch(sentinels.sentinels[1])))
    before = [len(c.seen) for c in watchers]
    client = redis.Redis(port=sentinels.sentinels[0], socket_timeout=5)
    try:
        assert client.sentinel_failover(SERVICE)
    finally:
        client.close()
    announced = await switch
    assert announced.endswith(f"127.0.0.1 {sentinels.replica}"), announced

    def demoted() -> bool:
        info: Any = redis.Redis(port=sentinels.primary, socket_timeout=5).info("replication")
        return bool(info["role"] == "slave" and info.get("master_link_status") == "up")

    await asyncio.to_thread(_wait, demoted, "the old primary replicating the new one")
    # Data numbered after the demotion can only have been written to the new primary.
    at_demotion = [len(c.seen) for c in watchers]
    for c, n in zip(watchers, at_demotion, strict=True):
        await c.recv(30)
        newest = max(m["seq"] for m in c.seen[: n + 1] if m.get("type") == "data")
        await c.wait_for(_data_past(newest + 20), 60)
    statuses = {
        (m["feed"], m["detail"])
        for c, n in zip(watchers, before, strict=True)
        for m in c.seen[n:]
        if m["type"] == "status"
    }
    assert statuses <= STATUSES, statuses
    missing = [_gaps(c.seen)[0] for c in watchers]
    print(f"\nsentinel switchover: per client missing seqs {missing}; statuses {sorted(statuses)}")
