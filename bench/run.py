"""Benchmark tickhub's /ws/stream fan-out against a raw picows broadcaster and Node ws (and Bun).

    .venv/bin/python bench/run.py [--quick] [--clients 100,1000,...] [--out bench/results]

Each server runs alone in its own process pinned to CPU 0; the C load client (bench/loadgen)
runs pinned to CPU 1. Server CPU comes from /proc/<pid>/stat (utime + stime) over the
measurement window, RSS from /proc/<pid>/status. Every ratio compares servers measured in this
run, one after the other, under the same load. Prints one table, writes
<out>/<timestamp>.json, <out>/latest.json and a chart. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import report
from procs import Proc, ProcError, Procs, cpu_share_probe, nofile_limit

BENCH = Path(__file__).resolve().parent
LOADGEN_SRC = BENCH / "loadgen" / "loadgen.c"
LOADGEN = BENCH / "build" / "loadgen"
NODE_DIR = BENCH / "baseline_node_ws"
BUN_DIR = BENCH / "baseline_bun"
SUBS = 10
FD_RESERVE = 100  # descriptors a server needs besides its connections


@dataclass(frozen=True)
class Scenario:
    scenario: str  # clients | symbols | stall | batch | burst | peak | memory | scaleout | workers
    clients: int
    symbols: int = 50
    subs: int = SUBS
    stalled: int = 0
    load: int | str = 50_000  # deliveries/s to the reading clients, or "max"
    warmup: float = 2.0
    duration: float = 6.0
    stall_wait: float = 0.0  # longest wait for the server to report every stalled client paused
    batch: bool = False  # clients ask for tickhub's opt-in batching
    burst: int = 1  # ticks per frame, handed over in one loop turn (the burst scenario: K)

    @property
    def subscribers_per_tick(self) -> float:
        return self.clients * min(self.subs, self.symbols) / self.symbols

    @property
    def rate(self) -> str:
        """The servers' tick rate (ticks/s over all symbols) for this load."""
        if self.scenario == "memory":
            return "0"
        if self.load == "max":
            return "max"
        return f"{float(self.load) / self.subscribers_per_tick:.3f}"

    @property
    def rate_command(self) -> str:
        """The control-channel command that starts this scenario's ticks (control.py)."""
        return f"rate {self.rate}" + (f" {self.burst}" if self.burst > 1 else "")


@dataclass(frozen=True)
class Server:
    name: str
    argv: list[str]
    version: str


# --- environment ------------------------------------------------------------------------------


def build_loadgen() -> None:
    if LOADGEN.exists() and LOADGEN.stat().st_mtime >= LOADGEN_SRC.stat().st_mtime:
        return
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        sys.exit("bench: a C compiler (gcc or cc) is needed to build the load client")
    LOADGEN.parent.mkdir(exist_ok=True)
    subprocess.run([cc, "-O2", "-Wall", "-o", str(LOADGEN), str(LOADGEN_SRC)], check=True)


def _npm_install(folder: Path, probe: Path, notes: list[str], what: str) -> bool:
    if probe.exists():
        return True
    npm = shutil.which("npm")
    if npm is None:
        notes.append(f"{what} skipped: npm not found")
        return False
    command = "ci" if (folder / "package-lock.json").exists() else "install"
    try:
        subprocess.run(
            [npm, command, "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            check=True,
            capture_output=True,
            timeout=300,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        notes.append(f"{what} skipped: npm {command} failed ({exc})")
        return False
    return probe.exists()


def _version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    except (subprocess.SubprocessError, OSError):
        return None
    return out.stdout.strip() or None


def servers(wanted: list[str], notes: list[str]) -> list[Server]:
    py = sys.executable
    found: list[Server] = []
    for name in wanted:
        if name == "tickhub":
            found.append(
                Server(name, [py, str(BENCH / "tickhub_server.py")], metadata.version("tickhub"))
            )
        elif name in ("picows", "picows-cork"):
            argv = [py, str(BENCH / "baseline_picows.py")]
            version = metadata.version("picows")
            if name == "picows-cork":
                argv.append("--cork")  # one write per client per burst, as tickhub and Bun
                version += ", cork per burst"
            found.append(Server(name, argv, version))
        elif name in ("node-ws", "node-ws-cork"):
            node = shutil.which("node")
            if node is None:
                notes.append(f"{name} skipped: node not found")
                continue
            if not _npm_install(NODE_DIR, NODE_DIR / "node_modules" / "ws", notes, name):
                continue
            ws = json.loads((NODE_DIR / "node_modules" / "ws" / "package.json").read_text())
            node_version = f"node {_version([node, '--version'])}, ws {ws['version']}"
            argv = [node, str(NODE_DIR / "server.mjs")]
            if name == "node-ws-cork":
                argv += ["--cork", "1"]  # cork every socket written to in a burst, uncork after
                node_version += ", cork per burst"
            found.append(Server(name, argv, node_version))
        elif name == "bun":
            bun = BUN_DIR / "node_modules" / ".bin" / "bun"
            if not _npm_install(BUN_DIR, bun, notes, "bun"):
                continue
            bun_version = _version([str(bun), "--version"])
            if bun_version is None:
                notes.append("bun skipped: the npm package installed no working binary")
                continue
            found.append(
                Server(name, [str(bun), str(BUN_DIR / "server.mjs")], f"bun {bun_version}")
            )
        else:
            sys.exit(
                f"bench: unknown server {name!r}"
                " (tickhub, picows, picows-cork, node-ws, node-ws-cork, bun)"
            )
    return found


# --- one run ----------------------------------------------------------------------------------


def _merge_latency(reports: list[dict[str, Any]]) -> dict[str, float | None]:
    hist: dict[int, int] = {}
    for rep in reports:
        for value, count in rep["hist"]:
            hist[value] = hist.get(value, 0) + count
    total = sum(hist.values())
    out: dict[str, float | None] = {}
    for name, q in (("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99), ("p999_ms", 0.999)):
        if not total:
            out[name] = None
            continue
        rank, seen = max(1, int(q * total + 0.999999)), 0
        for value in sorted(hist):
            seen += hist[value]
            if seen >= rank:
                out[name] = value / 1000
                break
    out["max_ms"] = max((r["lat_us"]["max"] for r in reports), default=0) / 1000 if total else None
    return out


def _loadgen_argv(sc: Scenario, port: int, count: int, first: int) -> list[str]:
    argv = [
        str(LOADGEN),
        "--port", str(port),
        "--conns", str(count),
        "--subs", str(sc.subs),
        "--symbols", str(sc.symbols),
        "--first", str(first),
        "--ready-timeout", str(60 + count / 100),
    ]  # fmt: skip
    if sc.batch:
        argv += ["--batch", "1"]
    if sc.stalled:
        argv += ["--stall", str(sc.stalled), "--stall-subs", str(min(sc.symbols, 200))]
    if count > 10_000:
        # Spread source addresses so that ephemeral ports never run short.
        argv += ["--src", ",".join(f"127.0.0.{i}" for i in range(1, 5))]
    return argv


def run_one(
    procs: Procs, server: Server, sc: Scenario, cpus: tuple[set[int], set[int]], tmp: Path
) -> dict[str, Any]:
    row: dict[str, Any] = {**asdict(sc), "rate": sc.rate, "server": server.name, "notes": []}
    data_dir = tmp / f"data-{server.name}-{time.monotonic_ns()}"
    data_dir.mkdir()
    argv = [*server.argv, "--port", "0", "--symbols", str(sc.symbols)]
    if server.name == "tickhub":
        argv += ["--data-dir", str(data_dir)]
    srv = procs.start(server.name, argv, cpus=cpus[0], cwd=data_dir)
    loadgens: list[Proc] = []
    try:
        port = srv.expect("READY", 60)["port"]
        time.sleep(0.5)
        row["rss_start_kib"] = srv.memory_kib()["VmRSS"]
        if sc.scenario != "memory":
            # Ticks flow before clients come, as in a service that has been up for a while: the
            # first tick of each symbol also opens its candle and its market_data (tickhub).
            srv.ask(sc.rate_command, "OK")
        rate_since = time.monotonic()
        total = sc.clients + sc.stalled
        active = [sc.clients]  # one load client process; the fd limit allows ~19,900 connections
        lg = procs.start("loadgen", _loadgen_argv(sc, port, total, 0), cpus=cpus[1], cwd=data_dir)
        loadgens.append(lg)
        ready = lg.expect("READY", 90 + total / 50)
        row["connect_s"] = ready["seconds"]
        if ready["open"] < total or ready["ready"] < active[0]:
            row["notes"].append(
                f"{ready['open']}/{total} open, {ready['ready']}/{active[0]} subscribed"
                + (f": {ready['error']}" if ready["error"] else "")
                + (f": {ready['error_sample'][:100]}" if ready["error_sample"] else "")
            )
        row["open"] = ready["open"]
        if sc.scenario == "memory":
            time.sleep(sc.warmup)
            mem = srv.memory_kib()
            row["rss_end_kib"] = mem["VmRSS"]
            row["rss_per_conn_kib"] = (mem["VmRSS"] - row["rss_start_kib"]) / max(1, ready["open"])
            hb = lg.ask("heartbeat", "HB", 60)
            row["hb_sent"], row["hb_acked"], row["hb_s"] = hb["sent"], hb["acked"], hb["seconds"]
            if hb["acked"] < total:
                row["notes"].append(f"heartbeats answered {hb['acked']}/{total}")
            return row
        # Warm up, and let at least one full round of ticks over the symbols go by.
        one_round = 0.0 if sc.rate == "max" else sc.symbols / float(sc.rate)
        time.sleep(max(sc.warmup, rate_since + 1.5 * one_round - time.monotonic()))
        if sc.stalled:
            # Kernel buffers (up to ~4 MB a socket here) fill before the server's own limit
            # does: measure once the server reports the stalled clients paused.
            deadline = time.monotonic() + sc.stall_wait
            while (paused := srv.ask("stats", "STATS").get("paused", 0)) < sc.stalled:
                if time.monotonic() >= deadline:
                    row["notes"].append(f"only {paused}/{sc.stalled} stalled paused in time")
                    break
                time.sleep(1.0)
            row["stall_wait_s"] = round(time.monotonic() - rate_since, 1)
        stats0 = srv.ask("stats", "STATS")
        cpu0, t0 = srv.cpu_seconds(), time.monotonic()
        for lg in loadgens:
            lg.ask("mark", "MARK")
        time.sleep(sc.duration)
        reports = [lg.ask("report", "REPORT") for lg in loadgens]
        cpu1, t1 = srv.cpu_seconds(), time.monotonic()
        stats1 = srv.ask("stats", "STATS")
        srv.ask("rate 0", "OK")
        row["rss_end_kib"] = srv.memory_kib()["VmRSS"]
        window = reports[0]["window_s"]
        msgs = sum(r["msgs"] for r in reports)
        cpu = cpu1 - cpu0
        row.update(
            window_s=window,
            delivered=msgs,
            delivered_per_s=msgs / window,
            tick_msgs=sum(r["ticks"] for r in reports),
            server_cpu_s=cpu,
            cpu_share=cpu / (t1 - t0),
            msgs_per_cpu_s=msgs / cpu if cpu > 0 else None,
            bytes_per_msg=sum(r["bytes"] for r in reports) / msgs if msgs else None,
            gaps=sum(r["gaps"] for r in reports),
            wrong_topic=sum(r["wrong_topic"] for r in reports),
            errors=sum(r["errors"] for r in reports),
            closed=sum(r["closed"] for r in reports),
            loadgen_cpu_share=sum(r["cpu_s"] for r in reports) / window,
            ticks_per_s=(stats1["ticks"] - stats0["ticks"]) / (t1 - t0),
            frames_per_s=(stats1.get("frames", 0) - stats0.get("frames", 0)) / (t1 - t0),
            ticks_per_frame=_per_frame(stats0, stats1),
            shed=stats1["shed"] - stats0["shed"],
            server_delivered=stats1["delivered"] - stats0["delivered"],
            server_paused=stats1.get("paused"),
            server_dropped=stats1.get("dropped"),
            **_merge_latency(reports),
        )
        hb = loadgens[0].ask("heartbeat", "HB", 60)
        row["hb_sent"], row["hb_acked"] = hb["sent"], hb["acked"]
        _annotate(row, sc, reports)
        return row
    except ProcError as exc:
        row["error"] = str(exc)
        row["notes"].append("FAILED: " + str(exc).splitlines()[0])
        return row
    finally:
        for lg in loadgens:
            procs.stop(lg)
        procs.stop(srv, grace=10.0)


# --- scale-out: one ingest, several gateways over Redis -------------------------------------


BUS_URL = "redis://127.0.0.1:6379/0"
GATEWAY_COUNTS = (1, 2)


def redis_check(url: str) -> str | None:
    """None if a Redis answers at ``url``, else why not."""
    try:
        import redis
    except ImportError:
        return "the redis package is not installed"
    try:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # any failure means: no usable Redis
        return f"no Redis at {url} ({type(exc).__name__}: {exc})"
    return None


class _Redis:
    """The bench's own view of the Redis server: its CPU counters, and cleanup of a prefix."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5)

    def cpu_seconds(self) -> float | None:
        try:
            info = self.client.info("cpu")
            return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        except Exception:
            return None

    def drop_prefix(self, prefix: str) -> int:
        keys = list(self.client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            self.client.delete(*keys)
        return len(keys)

    def close(self) -> None:
        self.client.close()


def run_cluster(
    procs: Procs,
    server: Server,
    sc: Scenario,
    gateways: int,
    cpus: tuple[set[int], set[int]],
    tmp: Path,
    bus_url: str,
    shared_port: bool = False,
) -> dict[str, Any]:
    """One ingest (BenchFeed, RedisBus) and ``gateways`` gateways, all pinned to the server CPU;
    one load client per gateway (pinned to the load CPU), the connections split evenly. With
    ``shared_port`` the gateways are the workers of ``serve --workers``: one port shared with
    ``SO_REUSEPORT`` (``WORKER_INDEX`` set), one load client for every connection, and the
    kernel spreads them."""
    name = f"workers={gateways}" if shared_port else f"ingest+{gateways}gw"
    row: dict[str, Any] = {
        **asdict(sc), "rate": sc.rate, "server": name, "gateways": gateways, "notes": [],
    }  # fmt: skip
    prefix = f"tickhub-bench-{os.getpid()}-{time.monotonic_ns()}"
    row["bus_prefix"] = prefix
    base = tmp / f"data-{name}-{time.monotonic_ns()}"
    base.mkdir()
    common = [
        *server.argv, "--symbols", str(sc.symbols), "--bus-url", bus_url, "--bus-prefix", prefix,
    ]  # fmt: skip
    rds = _Redis(bus_url)
    servers_: list[Proc] = []
    loadgens: list[Proc] = []
    try:
        d = base / "ingest"
        d.mkdir()
        ingest = procs.start(
            "ingest", [*common, "--role", "ingest", "--data-dir", str(d)], cpus=cpus[0], cwd=d
        )
        servers_.append(ingest)
        ingest.expect("READY", 60)
        gws: list[Proc] = []
        port, admin = (_free_port(), _free_port()) if shared_port else (0, 0)
        for k in range(1, gateways + 1):
            d = base / f"gateway-{k}"
            d.mkdir()
            argv = [*common, "--role", "gateway", "--port", str(port), "--data-dir", str(d)]
            env = None
            if shared_port:  # worker k of serve --workers (its admin port on loopback)
                env = {**os.environ, "WORKER_INDEX": str(k), "ADMIN_PORT": str(admin + k - 1)}
            gws.append(procs.start(f"gateway-{k}", argv, cpus=cpus[0], cwd=d, env=env))
        servers_ += gws
        ports = [gw.expect("READY", 60)["port"] for gw in gws]
        if shared_port:
            ports = ports[:1]  # one load client, one port: the kernel picks the worker
        time.sleep(0.5)
        row["rss_start_kib"] = sum(p.memory_kib()["VmRSS"] for p in servers_)
        ingest.ask(sc.rate_command, "OK")
        rate_since = time.monotonic()
        parts = len(ports)
        split = [sc.clients // parts + (k < sc.clients % parts) for k in range(parts)]
        row["clients_per_gateway"] = split
        first = 0
        for k, (port, n) in enumerate(zip(ports, split, strict=True), 1):
            # Client g keeps the subscriptions it has in the single-process run (--first).
            argv = _loadgen_argv(sc, port, n, first)
            loadgens.append(procs.start(f"loadgen-{k}", argv, cpus=cpus[1], cwd=base))
            first += n
        opened = 0
        connect_s = 0.0
        for lg, n in zip(loadgens, split, strict=True):
            ready = lg.expect("READY", 90 + n / 50)
            connect_s = max(connect_s, ready["seconds"])
            opened += ready["open"]
            if ready["open"] < n or ready["ready"] < n:
                row["notes"].append(
                    f"{lg.name}: {ready['open']}/{n} open, {ready['ready']}/{n} subscribed"
                    + (f": {ready['error']}" if ready["error"] else "")
                )
        row["connect_s"], row["open"] = connect_s, opened
        one_round = 0.0 if sc.rate == "max" else sc.symbols / float(sc.rate)
        time.sleep(max(sc.warmup, rate_since + 1.5 * one_round - time.monotonic()))
        ing0 = ingest.ask("stats", "STATS")
        gw0 = [gw.ask("stats", "STATS") for gw in gws]
        redis0 = rds.cpu_seconds()
        cpu0, t0 = [p.cpu_seconds() for p in servers_], time.monotonic()
        for lg in loadgens:
            lg.ask("mark", "MARK")
        time.sleep(sc.duration)
        reports = [lg.ask("report", "REPORT") for lg in loadgens]
        cpu1, t1 = [p.cpu_seconds() for p in servers_], time.monotonic()
        redis1 = rds.cpu_seconds()
        ing1 = ingest.ask("stats", "STATS")
        gw1 = [gw.ask("stats", "STATS") for gw in gws]
        ingest.ask("rate 0", "OK")
        row["rss_end_kib"] = sum(p.memory_kib()["VmRSS"] for p in servers_)
        cpus_s = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
        ingest_cpu, gw_cpu = cpus_s[0], cpus_s[1:]
        window = max(r["window_s"] for r in reports)
        msgs = sum(r["msgs"] for r in reports)
        cpu = sum(cpus_s)
        published = ing1.get("published", 0) - ing0.get("published", 0)
        row.update(
            window_s=window,
            delivered=msgs,
            delivered_per_s=msgs / window,
            delivered_per_gateway=[
                (b["delivered"] - a["delivered"]) / window for a, b in zip(gw0, gw1, strict=True)
            ],
            tick_msgs=sum(r["ticks"] for r in reports),
            server_cpu_s=cpu,
            ingest_cpu_s=ingest_cpu,
            gateway_cpu_s=gw_cpu,
            gateways_cpu_s=sum(gw_cpu),
            redis_cpu_s=(redis1 - redis0) if redis0 is not None and redis1 is not None else None,
            cpu_share=cpu / (t1 - t0),
            msgs_per_cpu_s=msgs / cpu if cpu > 0 else None,
            msgs_per_gateway_cpu_s=msgs / sum(gw_cpu) if sum(gw_cpu) > 0 else None,
            published=published,
            ingest_us_per_published=1e6 * ingest_cpu / published if published else None,
            bytes_per_msg=sum(r["bytes"] for r in reports) / msgs if msgs else None,
            gaps=sum(r["gaps"] for r in reports),
            wrong_topic=sum(r["wrong_topic"] for r in reports),
            errors=sum(r["errors"] for r in reports),
            closed=sum(r["closed"] for r in reports),
            loadgen_cpu_share=sum(r["cpu_s"] for r in reports) / window,
            ticks_per_s=(ing1["ticks"] - ing0["ticks"]) / (t1 - t0),
            shed=ing1["shed"] - ing0["shed"],
            server_delivered=sum(
                b["delivered"] - a["delivered"] for a, b in zip(gw0, gw1, strict=True)
            ),
            server_paused=sum(int(g.get("paused", 0)) for g in gw1),
            server_dropped=sum(int(g.get("dropped", 0)) for g in gw1),
            **_merge_latency(reports),
        )
        hbs = [lg.ask("heartbeat", "HB", 60) for lg in loadgens]
        row["hb_sent"] = sum(h["sent"] for h in hbs)
        row["hb_acked"] = sum(h["acked"] for h in hbs)
        _annotate(row, sc, reports)
        return row
    except ProcError as exc:
        row["error"] = str(exc)
        row["notes"].append("FAILED: " + str(exc).splitlines()[0])
        return row
    finally:
        for lg in loadgens:
            procs.stop(lg)
        for proc in reversed(servers_):  # gateways first, the ingest last
            procs.stop(proc, grace=10.0)
        with contextlib.suppress(Exception):
            row["redis_keys_removed"] = rds.drop_prefix(prefix)
        rds.close()


def run_scaleout(
    procs: Procs,
    server: Server,
    sc: Scenario,
    cpus: tuple[set[int], set[int]],
    tmp: Path,
    bus_url: str,
) -> list[dict[str, Any]]:
    """The single process (role all, memory bus) as the reference, then ingest + K gateways."""
    ref = run_one(procs, server, sc, cpus, tmp)
    ref.update(gateways=0, ingest_cpu_s=None, gateway_cpu_s=[], gateways_cpu_s=None)
    out = [ref]
    for k in GATEWAY_COUNTS:
        print(f"    scaleout ingest+{k}gw (RedisBus)", file=sys.stderr, flush=True)
        out.append(run_cluster(procs, server, sc, k, cpus, tmp, bus_url))
    return out


def run_workers(
    procs: Procs,
    server: Server,
    sc: Scenario,
    cpus: tuple[set[int], set[int]],
    tmp: Path,
    bus_url: str,
) -> list[dict[str, Any]]:
    """``serve --workers 1`` and ``--workers 2`` as their processes run (one ingest, N gateways
    on one SO_REUSEPORT port), at ``sc``'s load (``max``: saturation)."""
    out = []
    for k in GATEWAY_COUNTS:
        print(f"    workers={k} (one port, RedisBus)", file=sys.stderr, flush=True)
        row = run_cluster(procs, server, sc, k, cpus, tmp, bus_url, shared_port=True)
        row["scenario"] = "workers"
        out.append(row)
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _per_frame(stats0: dict[str, Any], stats1: dict[str, Any]) -> float | None:
    """Ticks per frame the server's pacer emitted in the window (K in a burst, 1 otherwise)."""
    frames = stats1.get("frames", 0) - stats0.get("frames", 0)
    return (stats1["ticks"] - stats0["ticks"]) / frames if frames > 0 else None


def _annotate(row: dict[str, Any], sc: Scenario, reports: list[dict[str, Any]]) -> None:
    notes = row["notes"]
    per_frame = row.get("ticks_per_frame")
    if per_frame is not None and abs(per_frame - sc.burst) > 1e-9:
        notes.append(f"{per_frame:g} ticks per frame, not {sc.burst}")
    ticks = row["ticks_per_s"] * row["window_s"]
    if row["shed"] and ticks and row["shed"] > 0.01 * ticks:
        notes.append(f"behind: shed {row['shed'] / (row['shed'] + ticks):.0%} of ticks")
    if sc.load != "max" and row["delivered_per_s"] < 0.95 * float(sc.load):
        notes.append(f"below offered load ({row['delivered_per_s'] / float(sc.load):.0%})")
    if row["gaps"]:
        notes.append(f"{row['gaps']} seq gaps")
    for field in ("wrong_topic", "errors", "closed"):
        if row[field]:
            notes.append(f"{row[field]} {field.replace('_', ' ')}")
    if reports[0]["error_sample"]:
        notes.append(f"error: {reports[0]['error_sample'][:80]}")
    if row["loadgen_cpu_share"] > 0.8:
        notes.append(f"load client busy {row['loadgen_cpu_share']:.0%}")
    if row["hb_acked"] < row["hb_sent"]:
        notes.append(f"heartbeats answered {row['hb_acked']}/{row['hb_sent']}")
    if sc.stalled and row.get("server_paused") is not None:
        notes.append(f"{row['server_paused']} paused at end")


# --- plan -------------------------------------------------------------------------------------


def plan(args: argparse.Namespace) -> tuple[list[Scenario], dict[str, Any]]:
    load = args.load
    if args.quick:
        base = Scenario("clients", clients=50, load=20_000, warmup=1.0, duration=3.0)
        burst = replace(base, scenario="burst", burst=args.burst, duration=2.0)
        scenarios = [base, burst, Scenario("memory", clients=500, warmup=0.5)]
        return scenarios, {"reference": _ref(base), "burst": args.burst}
    most = nofile_limit() - FD_RESERVE
    clients = args.clients or [100, 1000, 5000, 10000]
    d = {"warmup": args.warmup, "duration": args.duration}
    ref = Scenario("clients", clients=1000, load=load, **d)
    out: list[Scenario] = []
    kinds = set(args.only)
    if "clients" in kinds:
        for n in clients:
            if n > most:
                continue
            out += [replace(ref, clients=n)] * (args.repeat if n == ref.clients else 1)
    if "symbols" in kinds:
        out += [replace(ref, scenario="symbols", symbols=s) for s in (10, 50, 500)]
    if "stall" in kinds:
        out += [
            replace(ref, scenario="stall", stalled=k, stall_wait=60.0 if k else 0.0)
            for k in (0, 1, 10, 100)
        ]
    if "batch" in kinds:
        out.append(replace(ref, scenario="batch", batch=True))
    if "burst" in kinds:
        # The reference load in frames of K ticks (K symbols each); --repeat runs, interleaved.
        out += [replace(ref, scenario="burst", burst=args.burst)] * args.repeat
    if "peak" in kinds:
        out.append(replace(ref, scenario="peak", load="max"))
    if "memory" in kinds:
        for n in (5000, 20_000):
            out.append(Scenario("memory", clients=min(n, most), warmup=2.0))
    if "scaleout" in kinds:
        # The reference load; each of the three set-ups runs --repeat times, interleaved.
        out += [replace(ref, scenario="scaleout")] * args.repeat
    if "workers" in kinds:
        # serve --workers 1 and 2 at saturation: what one machine's cores give (shared here).
        out += [replace(ref, scenario="workers", load="max")] * args.repeat
    return out, {"reference": _ref(ref), "burst": args.burst}


def _ref(sc: Scenario) -> dict[str, Any]:
    return {
        "scenario": sc.scenario,
        "clients": sc.clients,
        "symbols": sc.symbols,
        "subs": sc.subs,
        "load": sc.load,
    }


# --- main -------------------------------------------------------------------------------------


def _cpus() -> tuple[set[int], set[int]]:
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return set(available), set(available)
    return {available[0]}, set(available[1:])


def _meta(args: argparse.Namespace, found: list[Server], notes: list[str]) -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    commit = _version(["git", "-C", str(BENCH.parent), "rev-parse", "--short", "HEAD"])
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model,
            "kernel": platform.release(),
            "nofile_hard_limit": nofile_limit(),
        },
        "servers": {s.name: s.version for s in found},
        "python": platform.python_version(),
        "load_client": "bench/loadgen/loadgen.c (C, epoll, one process pinned to CPU 1)",
        "notes": notes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description="tickhub fan-out benchmark against raw picows, Node ws and Bun"
    )
    parser.add_argument("--quick", action="store_true", help="seconds, small numbers (tests)")
    parser.add_argument(
        "--clients", type=lambda s: [int(x) for x in s.split(",")], default=None,
        help="client counts of the clients scenario (default 100,1000,5000,10000)",
    )  # fmt: skip
    parser.add_argument(
        "--servers", type=lambda s: s.split(","), default=None,
        help="default tickhub,picows,picows-cork,node-ws,node-ws-cork,bun (quick: no bun);"
        " the -cork ones run in the burst scenario only",
    )  # fmt: skip
    parser.add_argument(
        "--only", "--scenarios", dest="only", type=lambda s: s.split(","),
        default=["clients", "symbols", "stall", "batch", "burst", "peak", "memory", "scaleout"],
        help="scenario kinds to run (clients,symbols,stall,batch,burst,peak,memory,scaleout;"
        " workers: serve --workers 1 and 2 at saturation, not in the default set)",
    )  # fmt: skip
    parser.add_argument(
        "--burst", type=int, default=50,
        help="burst scenario: ticks per frame, K different symbols handed over in one loop turn"
        " (default 50, like a full-mode Kite frame; 1 to 50)",
    )  # fmt: skip
    parser.add_argument(
        "--load", type=int, default=50_000, help="deliveries/s offered (default 50,000)"
    )
    parser.add_argument(
        "--stall-servers", type=lambda s: s.split(","), default=["tickhub", "picows"],
        help="servers of the stall scenario (default tickhub,picows: each waits ~45 s to fill)",
    )  # fmt: skip
    parser.add_argument("--duration", type=float, default=6.0, help="measurement seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--repeat", type=int, default=3, help="runs of reference and burst")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    if not 1 <= args.burst <= 50:
        parser.error("--burst must be 1 to 50 (K different symbols of the 50 of the scenario)")

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)  # SIGINT too: a background job starts with it ignored

    build_loadgen()
    notes: list[str] = []
    wanted = args.servers or (
        ["tickhub", "picows", "picows-cork", "node-ws", "node-ws-cork"]
        if args.quick
        else ["tickhub", "picows", "picows-cork", "node-ws", "node-ws-cork", "bun"]
    )
    found = servers(wanted, notes)
    scenarios, plan_info = plan(args)
    cpus = _cpus()
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, cpus[1])  # the harness shares the load client's CPU
    bus_url = os.environ.get("BENCH_BUS_URL", BUS_URL)
    if any(sc.scenario in ("scaleout", "workers") for sc in scenarios):
        why = redis_check(bus_url)
        if why is None and not any(s.name == "tickhub" for s in found):
            why = "tickhub is not among --servers"
        if why is not None:
            notes.append(f"scaleout and workers skipped: {why}")
            scenarios = [sc for sc in scenarios if sc.scenario not in ("scaleout", "workers")]
        else:
            notes.append(
                "scaleout: the ingest and every gateway share CPU 0 and the load clients CPU 1"
                " (2 cores: no process gets a core of its own); Redis runs unpinned and its CPU"
                " is reported apart, not in the servers' total"
            )
    args.out.mkdir(parents=True, exist_ok=True)
    meta = _meta(args, found, notes)
    meta["cpu_share_before"] = round(cpu_share_probe(), 3)
    runs: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="tickhub-bench-"))
    started = time.monotonic()
    try:
        with Procs(tmp) as procs:
            for i, sc in enumerate(scenarios, 1):
                if sc.scenario in ("scaleout", "workers"):
                    server = next(s for s in found if s.name == "tickhub")
                    setups = {
                        "scaleout": "tickhub (all), ingest+1gw, ingest+2gw",
                        "workers": "tickhub: --workers 1, --workers 2",
                    }
                    print(
                        f"[{i}/{len(scenarios)}] {sc.scenario} {setups[sc.scenario]}",
                        f"clients={sc.clients} symbols={sc.symbols} load={sc.load}",
                        file=sys.stderr,
                        flush=True,
                    )
                    runner = run_scaleout if sc.scenario == "scaleout" else run_workers
                    runs += runner(procs, server, sc, cpus, tmp, bus_url)
                    continue
                for server in found:
                    if sc.scenario == "stall" and server.name not in args.stall_servers:
                        continue
                    if sc.batch and server.name != "tickhub":
                        continue  # only tickhub has opt-in batching
                    if server.name.endswith("-cork") and sc.burst == 1:
                        continue  # one tick per turn: node-ws with a cork around each write
                    print(
                        f"[{i}/{len(scenarios)}] {sc.scenario} {server.name}",
                        f"clients={sc.clients} symbols={sc.symbols} stalled={sc.stalled}",
                        f"load={sc.load}" + (f" burst={sc.burst}" if sc.burst > 1 else ""),
                        file=sys.stderr,
                        flush=True,
                    )
                    runs.append(run_one(procs, server, sc, cpus, tmp))
    except KeyboardInterrupt:
        print("bench: interrupted; every process stopped", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    meta["cpu_share_after"] = round(cpu_share_probe(), 3)
    meta["seconds"] = round(time.monotonic() - started, 1)
    rows = report.aggregate(runs)
    verdicts = report.goals(rows, plan_info)
    table = report.render_table(rows)
    print(table)
    scaleout = report.scaleout(rows)
    if scaleout:
        print("\nScale-out (one ingest + K gateways over Redis; same load as the reference):")
        print(report.render_scaleout(scaleout))
    workers = report.scaleout(rows, kind="workers")
    if workers:
        print("\nWorkers (serve --workers N: one ingest + N gateways on one port; saturation):")
        print(report.render_scaleout(workers))
    print("\nGoals (ratios within this run):")
    print(report.render_goals(verdicts))
    for note in notes:
        print(f"note: {note}")
    print(
        f"note: a busy thread got {meta['cpu_share_before']:.0%} / {meta['cpu_share_after']:.0%}"
        " of a core before / after the run (the host takes the rest)"
    )
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    document = {"meta": meta, "plan": plan_info, "rows": rows, "runs": runs, "goals": verdicts}
    if scaleout:
        document["scaleout"] = scaleout
    if workers:
        document["workers"] = workers
    chart_path = report.chart(rows, args.out / f"{stamp}.png")
    document["chart"] = chart_path.name
    report.write_json(args.out / f"{stamp}.json", document)
    report.write_json(args.out / "latest.json", document)
    latest_chart = args.out / f"latest{chart_path.suffix}"
    shutil.copyfile(chart_path, latest_chart)
    print(f"\nwrote {args.out / (stamp + '.json')}, {args.out / 'latest.json'}, {chart_path}")
    failed = [r for r in runs if r.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
