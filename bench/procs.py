"""Child processes of a benchmark run: started pinned, read line by line, always cleaned up.

Every child gets its own session (process group), a CPU affinity, the open-file limit raised to
the hard limit, and ``PR_SET_PDEATHSIG`` so that it dies with the harness even if the harness is
killed outright. :class:`Procs` is a context manager: leaving it (normally, on an exception or
on Ctrl-C) asks each child to quit, then terminates and kills whatever is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, TextIO

CLK_TCK = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


class ProcError(RuntimeError):
    """A child did not answer as expected; the message names the child and what was awaited."""


def _child_setup(cpus: set[int] | None) -> None:
    # Runs in the child between fork and exec: only async-signal-safe-ish calls.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if cpus:
        os.sched_setaffinity(0, cpus)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def nofile_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


class Proc:
    """One child speaking a line protocol: ``KIND {json}`` lines on stdout, commands on stdin."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        cpus: set[int] | None,
        log: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = log
        self._log: TextIO = log.open("w")
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=lambda: _child_setup(cpus),
        )
        self.pid = self.popen.pid
        self._buf = b""
        self.lines: list[str] = []  # every stdout line, for the log

    # --- protocol ------------------------------------------------------------------------------

    def send(self, line: str) -> None:
        assert self.popen.stdin is not None
        try:
            self.popen.stdin.write(line.encode() + b"\n")
            self.popen.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise ProcError(f"{self.name}: cannot send {line!r}: {exc}{self._tail()}") from None

    def expect(self, kind: str, timeout: float) -> dict[str, Any]:
        """Read lines until one starts with ``kind``; return its JSON body."""
        deadline = time.monotonic() + timeout
        assert self.popen.stdout is not None
        fd = self.popen.stdout.fileno()
        while True:
            while b"\n" in self._buf:
                raw, self._buf = self._buf.split(b"\n", 1)
                line = raw.decode(errors="replace")
                self.lines.append(line)
                head, _, body = line.partition(" ")
                if head == kind:
                    return json.loads(body) if body else {}
                if head == "ERROR":
                    raise ProcError(f"{self.name}: {line}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProcError(f"{self.name}: no {kind} line within {timeout:g}s{self._tail()}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    code = self.popen.poll()
                    raise ProcError(
                        f"{self.name}: exited (code {code}) before {kind}{self._tail()}"
                    )
                self._buf += chunk

    def ask(self, command: str, kind: str, timeout: float = 30.0) -> dict[str, Any]:
        self.send(command)
        return self.expect(kind, timeout)

    def _tail(self) -> str:
        self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()[-8:]
        except OSError:
            return ""
        return ("\n  stderr: " + "\n  stderr: ".join(text)) if text else ""

    # --- /proc ---------------------------------------------------------------------------------

    def cpu_seconds(self) -> float:
        """utime + stime of the whole process (all threads), from /proc/<pid>/stat."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM from /proc/<pid>/status, in KiB."""
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
        return out

    # --- shutdown ------------------------------------------------------------------------------

    def stop(self, grace: float = 5.0) -> int | None:
        """Ask politely (``quit``, end of input), then SIGTERM, then SIGKILL the process group."""
        p = self.popen
        if p.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert p.stdin is not None
                p.stdin.write(b"quit\n")
                p.stdin.flush()
            with contextlib.suppress(OSError, ValueError):
                p.stdin.close()  # type: ignore[union-attr]
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGTERM)
                try:
                    p.wait(2.0)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    p.wait(2.0)
        # Anything the child left in its group goes too.
        self._signal(signal.SIGKILL)
        with contextlib.suppress(OSError, ValueError):
            if p.stdout is not None:
                p.stdout.close()
        self._log.close()
        return p.returncode

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


class Procs:
    """Every child of a run; ``with Procs(logdir) as procs:`` guarantees their cleanup."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self._live: list[Proc] = []
        self._count = 0

    def start(self, name: str, argv: list[str], *, cpus: set[int] | None, **kw: Any) -> Proc:
        self._count += 1
        log = self.logdir / f"{self._count:03d}-{name}.log"
        proc = Proc(name, argv, cpus=cpus, log=log, **kw)
        self._live.append(proc)
        return proc

    def stop(self, proc: Proc, grace: float = 5.0) -> int | None:
        if proc in self._live:
            self._live.remove(proc)
        return proc.stop(grace)

    def stop_all(self) -> None:
        while self._live:
            self._live.pop().stop(grace=3.0)

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def cpu_share_probe(seconds: float = 0.5) -> float:
    """Fraction of one core a busy thread gets here: below 1 when the host steals time."""
    w0, c0 = time.monotonic(), time.thread_time()
    while time.monotonic() - w0 < seconds:
        pass
    return (time.thread_time() - c0) / (time.monotonic() - w0)
