"""``tickhub`` command line: the edge where settings are read and errors become exit codes.

Whatever a command cannot do because of its input (a bad setting, a file that cannot be read or
written, a port in use) ends in one line on stderr naming the cause and a non-zero exit code,
never a traceback: a traceback is for bugs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn, TextIO

import click

from tickhub import __version__
from tickhub.app.config import Settings, load_settings
from tickhub.core import defaults
from tickhub.core.errors import ConfigError, TickhubError

EXIT_CONFIG = 2
EXIT_FAILED = 1
PROG = "tickhub"


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"{PROG}: {message}", err=True)
    sys.exit(code)


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """The CLI's edge: an error of the user's input or the environment becomes one line."""
    try:
        yield
    except ConfigError as exc:
        _fail(str(exc), EXIT_CONFIG)
    except TickhubError as exc:  # a file from outside that cannot be used, a backend down
        _fail(str(exc))
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        _fail(f"{exc.strerror or exc}{where}")


def _settings(env_file: str | None, **overrides: Any) -> Settings:
    """Settings from the environment and ``env_file``, with the command line's options (those
    given, ``None`` meaning not given) taking precedence over both."""
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return load_settings(env_file, **given)
    except ConfigError as exc:
        _fail(str(exc), EXIT_CONFIG)


def _run(coro: object) -> None:
    try:
        import uvloop

        uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - platforms without uvloop
        asyncio.run(coro)  # type: ignore[arg-type]


@click.group(invoke_without_command=True, context_settings={"max_content_width": 100})
@click.version_option(__version__, prog_name="tickhub")
@click.option("--env-file", default=".env", show_default=True, help="dotenv file to read")
@click.pass_context
def main(ctx: click.Context, env_file: str) -> None:
    """tickhub: real-time market data over WebSockets (runs `serve` by default)."""
    ctx.ensure_object(dict)
    ctx.obj["env_file"] = env_file if Path(env_file).exists() else None
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve)


def _serve(ctx: click.Context, role: str, **overrides: Any) -> None:
    from tickhub.app.logs import setup_logging
    from tickhub.app.roles import create_service

    settings = _settings(ctx.obj["env_file"], **overrides)
    setup_logging(settings.log_level, settings.log_format)
    try:
        service = create_service(settings, role)
    except (ValueError, OSError, RuntimeError) as exc:
        _fail(str(exc), EXIT_CONFIG)
    try:
        _run(service.run_forever())
    except OSError as exc:
        _fail(f"cannot listen on {settings.host}:{settings.listen_port}: {exc}")


_FEEDS = ("sim", "replay", "kite")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@main.command(short_help="Run the whole service in one process (the default command).")
@click.option("--host", default=None, help="address to listen on (overrides HOST; default 0.0.0.0)")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="port to listen on (overrides WS_PORT and PORT+81; default 8081)",
)
@click.option(
    "--feed",
    type=click.Choice(_FEEDS),
    default=None,
    help="where ticks come from (overrides FEED; default sim)",
)
@click.option(
    "--symbols",
    default=None,
    metavar="A,B,...",
    help="only these instruments, comma-separated (overrides SYMBOLS; default all bundled)",
)
@click.option(
    "--replay-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="tick or minute-bar CSV for --feed replay (overrides REPLAY_FILE)",
)
@click.option(
    "--sim-speed",
    type=float,
    default=None,
    help="market seconds per real second of --feed sim (overrides SIM_SPEED; default 1)",
)
@click.option(
    "--log-level",
    type=click.Choice(_LOG_LEVELS, case_sensitive=False),
    default=None,
    help="overrides LOG_LEVEL (default INFO)",
)
@click.option(
    "--log-format",
    type=click.Choice(("text", "json")),
    default=None,
    help="overrides LOG_FORMAT (default text)",
)
@click.option(
    "--workers",
    type=click.IntRange(1, defaults.MAX_WORKERS),
    default=None,
    help="gateway processes sharing the port through Redis (overrides WORKERS; default 1)",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None = None,
    port: int | None = None,
    feed: str | None = None,
    symbols: str | None = None,
    replay_file: Path | None = None,
    sim_speed: float | None = None,
    log_level: str | None = None,
    log_format: str | None = None,
    workers: int | None = None,
) -> None:
    """Run the service (feed, engines and WebSocket/HTTP server) in one process.

    Settings come from the environment and the --env-file; an option given here overrides
    both.
    """
    overrides: dict[str, Any] = {
        "host": host,
        "ws_port": port,
        "feed": feed,
        "symbols": symbols,
        "replay_file": replay_file,
        "sim_speed": sim_speed,
        "log_level": log_level,
        "log_format": log_format,
    }
    settings = _settings(ctx.obj["env_file"], **overrides)
    if (workers or settings.workers) > 1:
        from tickhub.app.supervisor import run_workers

        # The workers are processes of their own: they take the options as the environment.
        for name, value in overrides.items():
            if value is not None:
                os.environ[name.upper()] = str(value)
        sys.exit(run_workers(settings, ctx.obj["env_file"], workers or settings.workers))
    _serve(ctx, "all", **overrides)


@main.command(short_help="Run only the feed and the engines, publishing on BUS_URL.")
@click.pass_context
def ingest(ctx: click.Context) -> None:
    """Run the feed and the engines once, publishing on BUS_URL (no client endpoints)."""
    from tickhub.cluster.ingest import other_ingest

    settings = _settings(ctx.obj["env_file"])
    conflict = other_ingest(settings.bus_url, settings.bus_prefix)
    if conflict is not None:
        _fail(conflict, EXIT_CONFIG)
    _serve(ctx, "ingest")


@main.command(short_help="Serve the client endpoints from BUS_URL, beside an ingest.")
@click.pass_context
def gateway(ctx: click.Context) -> None:
    """Serve the WebSocket and HTTP endpoints from BUS_URL (run one or more beside an ingest)."""
    _serve(ctx, "gateway")


@main.command("run-services", short_help="Start an ingest and N gateways over Redis.")
@click.option("--gateways", type=int, default=None, help="gateway processes (default GATEWAYS)")
@click.option(
    "--max-restarts",
    type=click.IntRange(min=0),
    default=defaults.MAX_RESTARTS,
    show_default=True,
    help="restarts of a crashed service within --restart-window before giving up on it",
)
@click.option(
    "--restart-window",
    type=click.FloatRange(min=0, min_open=True),
    default=defaults.RESTART_WINDOW,
    show_default=True,
    help="seconds over which --max-restarts counts",
)
@click.pass_context
def run_services(
    ctx: click.Context, gateways: int | None, max_restarts: int, restart_window: float
) -> None:
    """Start a Redis-backed ingest and N gateways (ports PORT+81 upward); a crashed one is
    restarted; Ctrl-C stops all."""
    from tickhub.app.supervisor import run_cluster

    settings = _settings(ctx.obj["env_file"])
    code = run_cluster(
        settings,
        ctx.obj["env_file"],
        gateways or settings.gateways,
        max_restarts=max_restarts,
        restart_window=restart_window,
    )
    sys.exit(code)


@main.command("check", short_help="Check a running service's protocol; exit 1 on a failure.")
@click.option("--url", default=None, help="service base URL, e.g. ws://localhost:8081")
@click.option("--multi/--single", default=True, help="all four endpoints or /ws/stream only")
@click.option("--symbol", default="RELIANCE", show_default=True)
@click.option("--timeout", default=15.0, show_default=True, help="seconds to wait for each step")
@click.pass_context
def check(ctx: click.Context, url: str | None, multi: bool, symbol: str, timeout: float) -> None:
    """Exercise a running service's protocol and print a pass/fail report (exit 1 on failure)."""
    from tickhub.devtools.checker import run_checks

    if url is None:
        settings = _settings(ctx.obj["env_file"])
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        url = f"ws://{host}:{settings.listen_port}"
    with _one_line_errors():
        ok = asyncio.run(run_checks(url, multi=multi, symbol=symbol, timeout=timeout))
    sys.exit(0 if ok else 1)


@main.command("record", short_help="Record the configured feed's ticks to a CSV file.")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=None,
    help="seconds to record (default: until Ctrl-C)",
)
@click.option(
    "--progress-every",
    type=click.FloatRange(min=0, min_open=True),
    default=defaults.RECORD_PROGRESS_INTERVAL,
    show_default=True,
    help="seconds between progress lines when stderr is not a terminal",
)
@click.pass_context
def record_cmd(
    ctx: click.Context, path: Path, duration: float | None, progress_every: float
) -> None:
    """Write the ticks the configured feed produces to a CSV file (replay it with FEED=replay).

    While it records, a progress line (ticks written, seconds elapsed) is refreshed in place on
    a terminal and printed every --progress-every seconds otherwise; a summary ends it.
    """
    from tickhub.app.build import build_feed, build_registry
    from tickhub.app.logs import setup_logging
    from tickhub.devtools.record import record
    from tickhub.runtime.clock import SystemClock

    settings = _settings(ctx.obj["env_file"])
    setup_logging(settings.log_level, settings.log_format)
    clock = SystemClock()
    with _one_line_errors():
        try:
            registry = build_registry(settings)
            feed = build_feed(settings, registry, clock)
        except ValueError as exc:
            _fail(str(exc), EXIT_CONFIG)
        if settings.feed != "sim":
            feed.subscribe(registry)
        out = sys.stderr
        line = _ProgressLine(out, path)
        every = defaults.RECORD_PROGRESS_REFRESH if line.in_place else progress_every
        started = time.monotonic()

        async def go() -> int:
            return await record(
                feed, path, duration=duration, clock=clock, progress=line.show, progress_every=every
            )

        try:
            count = asyncio.run(go())
        except KeyboardInterrupt:
            line.end()
            click.echo("stopped", err=True)
            return
        line.end()
    click.echo(f"recorded {count} ticks to {path} in {time.monotonic() - started:.1f}s")


class _ProgressLine:
    """``tickhub record``'s progress on stderr: one line rewritten in place on a terminal
    (``\r``), else one line per report, so a log file keeps a readable history."""

    def __init__(self, out: TextIO, path: Path) -> None:
        self._out = out
        self._path = path
        self.in_place = out.isatty()
        self._shown = False

    def show(self, ticks: int, elapsed: float) -> None:
        text = f"recording to {self._path}: {ticks} ticks written, {elapsed:.0f}s elapsed"
        if self.in_place:
            self._out.write(f"\r{text}\x1b[K")
            self._shown = True
        else:
            self._out.write(text + "\n")
        self._out.flush()

    def end(self) -> None:
        """Leave the terminal's cursor on a fresh line before the summary."""
        if self._shown:
            self._out.write("\n")
            self._out.flush()
            self._shown = False


@main.command("kite-emulator", short_help="Run a local server speaking Kite's ticker protocol.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=defaults.KITE_EMULATOR_PORT, show_default=True)
@click.option("--api-key", default="test_key", show_default=True)
@click.option("--access-token", default="test_token", show_default=True)
@click.option("--speed", default=1.0, show_default=True, help="market seconds per real second")
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="where the market date reached is kept, so that a restart continues after it "
    "(default: DATA_DIR/kite_emulator.json)",
)
@click.pass_context
def kite_emulator(
    ctx: click.Context,
    host: str,
    port: int,
    api_key: str,
    access_token: str,
    speed: float,
    state_file: Path | None,
) -> None:
    """A local server speaking Kite Connect's ticker protocol, for tests and demos.

    Its market continues across restarts (a restart opens the next session after the one it
    reached); SIGTERM or Ctrl-C closes every client with 1001 (going away).
    """
    from tickhub.app.build import build_registry
    from tickhub.app.logs import setup_logging
    from tickhub.devtools.kite_emulator import serve_emulator

    settings = _settings(ctx.obj["env_file"])
    setup_logging(settings.log_level, settings.log_format)
    registry = build_registry(settings)
    state = state_file if state_file is not None else settings.data_dir / "kite_emulator.json"
    with contextlib.suppress(KeyboardInterrupt), _one_line_errors():
        _run(serve_emulator(host, port, api_key, access_token, registry, speed, state))


@main.command(
    "bench",
    short_help="Run the fan-out benchmark of a source checkout.",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.pass_context
def bench(ctx: click.Context) -> None:
    """Run the fan-out benchmark (bench/run.py of a source checkout); options pass through."""
    import subprocess

    script = Path(__file__).resolve().parents[2] / "bench" / "run.py"
    if not script.is_file():
        _fail("bench/run.py not found: run from a source checkout", EXIT_CONFIG)
    sys.exit(subprocess.call([sys.executable, str(script), *ctx.args]))


def run_script(command: str, prog_name: str, env_file: Path, args: list[str]) -> None:
    """Run one command as a program of its own (the backend/ scripts): its usage line names
    the script as the user typed it, not ``script.py command``."""
    cmd = main.commands[command]
    obj = {"env_file": str(env_file) if env_file.exists() else None}
    cmd.main(args, prog_name=prog_name, obj=obj)


if __name__ == "__main__":
    main(prog_name=PROG)
