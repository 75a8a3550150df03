"""Network hosts made of Linux network namespaces, for tests that need a real network between
Redis, the ingest and the gateways (and something to break on it).

``Lab`` builds one namespace per host, each with its own ``eth0`` and address in ``SUBNET``,
joined by a bridge in a switch namespace of their own (the machine's own network is never
touched). Names carry the test process's pid and a counter, so concurrent runs do not collide.
``close`` kills every process left in the namespaces, then deletes them; it is safe to call
after a failure half-way through ``start``.

Faults that need no kernel module beyond what a minimal kernel has: ``partition`` puts a
blackhole route on both ends of one pair of hosts (the others keep talking to both),
``reset_tcp`` aborts a host's TCP connections to another (``ss -K``). ``tc ... netem`` is
often missing (a kernel without ``sch_netem``), so ``delay_proxy`` adds latency in user space
instead: a TCP relay that holds every chunk for a fixed time in each direction, in order.

Clients run in a host too: ``Lab.connect_tcp`` opens the socket from a thread that entered the
host's namespace (``setns``), so the WebSocket client of the test process talks over the
namespace's network while the test reads its messages directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

IP = shutil.which("ip") or "/usr/sbin/ip"
SUBNET = "10.77.0"
CLONE_NEWNET = 0x40000000
COMMAND_TIMEOUT = 10.0  # seconds for one ``ip`` command
_runs = itertools.count(1)


class LabUnavailable(Exception):
    """The machine cannot make namespaces (not root, no CAP_NET_ADMIN, no iproute2...)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [IP, *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


def unavailable() -> str | None:
    """Why this machine cannot run the lab, or ``None``: a namespace is made and removed."""
    if not Path(IP).exists():
        return f"iproute2 is not installed ({IP} missing)"
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN) to create network namespaces"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    probe = f"thprobe{os.getpid()}"
    try:
        made = _ip("netns", "add", probe, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"ip netns add failed: {exc}"
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Host:
    """One namespace with one address: ``run`` starts a process inside it."""

    name: str
    ns: str
    ip: str
    procs: list[Proc] = field(default_factory=list)

    def run(self, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Proc:
        proc = Proc(self, argv, log, env)
        self.procs.append(proc)
        return proc


class Proc:
    """A process in a host (``ip netns exec``, which execs it: the pid is the program's), its
    output kept line by line so a test can wait for a line."""

    def __init__(
        self, host: Host, argv: Sequence[str], log: Path, env: dict[str, str] | None
    ) -> None:
        self.host = host
        self.log = log
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.popen = subprocess.Popen(
            [IP, "netns", "exec", host.ns, *argv],
            env=env,
            cwd=log.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        with self.log.open("ab") as out:
            for raw in iter(self.popen.stdout.readline, b""):
                out.write(raw)
                out.flush()
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

    def _wait_line(self, pattern: str, after: int, timeout: float) -> int:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            start = after
            while True:
                for i in range(start, len(self.lines)):
                    if regex.search(self.lines[i]):
                        return i + 1
                start = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or "<eof>" in self.lines:
                    raise AssertionError(
                        f"{self.host.name}: no line matching {pattern!r}:\n" + self.output
                    )
                self._cond.wait(left)

    async def line(self, pattern: str, after: int = 0, timeout: float = 30.0) -> int:
        """Wait for an output line (from index ``after`` on) matching ``pattern``; the index past
        it, for the next wait."""
        return await asyncio.to_thread(self._wait_line, pattern, after, timeout)

    @property
    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def kill(self) -> None:
        """SIGKILL to its process group, and reap it."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=COMMAND_TIMEOUT)

    async def akill(self) -> None:
        await asyncio.to_thread(self.kill)


class Lab:
    """Hosts on one bridge; see the module docstring."""

    def __init__(self, names: Sequence[str]) -> None:
        tag = f"th{os.getpid()}x{next(_runs)}"
        self.switch = f"{tag}-sw"
        self.hosts = {
            name: Host(name, f"{tag}-{name}", f"{SUBNET}.{i}") for i, name in enumerate(names, 1)
        }
        self._made: list[str] = []
        self._threads: dict[str, concurrent.futures.ThreadPoolExecutor] = {}

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def start(self) -> None:
        self._add_ns(self.switch)
        sw = ("-n", self.switch)
        _ip(*sw, "link", "add", "br0", "type", "bridge")
        _ip(*sw, "link", "set", "br0", "up")
        for i, host in enumerate(self.hosts.values(), 1):
            self._add_ns(host.ns)
            port = f"p{i}"
            _ip("link", "add", "eth0", "netns", host.ns, "type", "veth", "peer", "name", port,
                "netns", self.switch)  # fmt: skip
            _ip(*sw, "link", "set", port, "master", "br0")
            _ip(*sw, "link", "set", port, "up")
            on = ("-n", host.ns)
            _ip(*on, "addr", "add", f"{host.ip}/24", "dev", "eth0")
            _ip(*on, "link", "set", "eth0", "up")
            _ip(*on, "link", "set", "lo", "up")

    def _add_ns(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._made.append(ns)

    # --- faults ---------------------------------------------------------------------------------

    def partition(self, a: str, b: str) -> None:
        """Drop every packet between hosts ``a`` and ``b`` (both ways); others are not touched."""
        for here, there in ((a, b), (b, a)):
            _ip("-n", self[here].ns, "route", "add", "blackhole", f"{self[there].ip}/32")

    def reset_tcp(self, host: str, peer: str) -> None:
        """Abort ``host``'s TCP connections to ``peer`` (``ss -K``): its programs see the
        connection fail at once, as after a partition longer than their keepalives."""
        done = subprocess.run(
            ["ip", "netns", "exec", self[host].ns, "ss", "-K", "dst", self[peer].ip],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ss -K in {host}: {done.stderr.strip()}")

    def heal(self, a: str, b: str) -> None:
        for here, there in ((a, b), (b, a)):
            _ip("-n", self[here].ns, "route", "del", "blackhole", f"{self[there].ip}/32")

    # --- clients in a host ----------------------------------------------------------------------

    async def connect_tcp(self, host: str, address: str, port: int) -> socket.socket:
        """A TCP socket of ``host``'s namespace, connected to ``address:port``."""
        pool = self._threads.get(host)
        if pool is None:
            ns = self[host].ns
            pool = concurrent.futures.ThreadPoolExecutor(
                1, f"netns-{host}", initializer=_enter_ns, initargs=(ns,)
            )
            self._threads[host] = pool
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, _connect, address, port)

    # --- teardown -------------------------------------------------------------------------------

    def close(self) -> None:
        """Kill what runs in the hosts, then delete every namespace made (links go with them)."""
        for host in self.hosts.values():
            for proc in host.procs:
                with contextlib.suppress(Exception):
                    proc.kill()
        for ns in reversed(self._made):
            with contextlib.suppress(Exception):
                pids = _ip("netns", "pids", ns, check=False).stdout.split()
                for pid in pids:  # anything still inside was started by this lab
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
            with contextlib.suppress(Exception):
                _ip("netns", "del", ns, check=False)
        self._made.clear()
        for pool in self._threads.values():
            pool.shutdown(wait=False)
        self._threads.clear()


def _enter_ns(ns: str) -> None:
    """Move the calling thread into namespace ``ns`` (``setns`` is per thread)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _connect(address: str, port: int) -> socket.socket:
    sock = socket.create_connection((address, port), timeout=COMMAND_TIMEOUT)
    sock.setblocking(False)
    return sock


@contextlib.contextmanager
def lab(names: Sequence[str]) -> Iterator[Lab]:
    made = Lab(names)
    try:
        made.start()
        yield made
    finally:
        made.close()


DELAY_PROXY = """
import asyncio, sys

async def pipe(reader, writer, delay):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def later():
        while True:
            due, data = await queue.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    task = asyncio.create_task(later())
    while True:
        data = await reader.read(65536)
        queue.put_nowait((loop.time() + delay, data))
        if not data:
            break
    await task

async def main(listen, port, target, target_port, delay):
    async def handle(reader, writer):
        try:
            up_r, up_w = await asyncio.open_connection(target, target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_w, delay), pipe(up_r, writer, delay),
                             return_exceptions=True)
        writer.close()
        up_w.close()

    server = await asyncio.start_server(handle, listen, port)
    print(f"delay proxy {listen}:{port} -> {target}:{target_port} ({delay}s)", flush=True)
    await server.serve_forever()

listen, port, target, target_port, delay = sys.argv[1:]
asyncio.run(main(listen, int(port), target, int(target_port), float(delay)))
"""


def delay_proxy(host: Host, port: int, target: str, delay: float, log: Path) -> Proc:
    """A TCP relay in ``host`` on ``port`` to ``target`` (``address:port``) that delivers every
    chunk ``delay`` seconds late, each way, in order (latency without ``sch_netem``)."""
    address, target_port = target.rsplit(":", 1)
    argv = [sys.executable, "-c", DELAY_PROXY, host.ip, str(port), address, target_port]
    return host.run([*argv, str(delay)], log)
