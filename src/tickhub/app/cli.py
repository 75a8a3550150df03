"""``tickhub`` command line: the edge where settings are read and errors become exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import click

from tickhub import __version__
from tickhub.app.config import Settings, load_settings
from tickhub.core import defaults
from tickhub.core.errors import ConfigError

EXIT_CONFIG = 2


def _settings(env_file: str | None) -> Settings:
    try:
        return load_settings(env_file)
    except ConfigError as exc:
        click.echo(f"tickhub: {exc}", err=True)
        sys.exit(EXIT_CONFIG)


def _run(coro: object) -> None:
    try:
        import uvloop

        uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - platforms without uvloop
        asyncio.run(coro)  # type: ignore[arg-type]


@click.group(invoke_without_command=True)
@click.version_option(__version__, prog_name="tickhub")
@click.option("--env-file", default=".env", show_default=True, help="dotenv file to read")
@click.pass_context
def main(ctx: click.Context, env_file: str) -> None:
    """tickhub: real-time market data over WebSockets (runs `serve` by default)."""
    ctx.ensure_object(dict)
    ctx.obj["env_file"] = env_file if Path(env_file).exists() else None
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve)


def _serve(ctx: click.Context, role: str) -> None:
    from tickhub.app.logs import setup_logging
    from tickhub.app.roles import create_service

    settings = _settings(ctx.obj["env_file"])
    setup_logging(settings.log_level, settings.log_format)
    try:
        service = create_service(settings, role)
    except (ValueError, OSError, RuntimeError) as exc:
        click.echo(f"tickhub: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    try:
        _run(service.run_forever())
    except OSError as exc:
        click.echo(
            f"tickhub: cannot listen on {settings.host}:{settings.listen_port}: {exc}", err=True
        )
        sys.exit(1)


@main.command()
@click.option(
    "--workers",
    type=click.IntRange(1, defaults.MAX_WORKERS),
    default=None,
    help="gateway processes sharing the port through Redis (default WORKERS, 1: one process)",
)
@click.pass_context
def serve(ctx: click.Context, workers: int | None = None) -> None:
    """Run the service (feed, engines and WebSocket/HTTP server) in one process."""
    if workers is None:
        workers = _settings(ctx.obj["env_file"]).workers
    if workers > 1:
        from tickhub.app.supervisor import run_workers

        sys.exit(run_workers(_settings(ctx.obj["env_file"]), ctx.obj["env_file"], workers))
    _serve(ctx, "all")


@main.command()
@click.pass_context
def ingest(ctx: click.Context) -> None:
    """Run the feed and the engines once, publishing on BUS_URL (no client endpoints)."""
    from tickhub.cluster.ingest import other_ingest

    settings = _settings(ctx.obj["env_file"])
    conflict = other_ingest(settings.bus_url, settings.bus_prefix)
    if conflict is not None:
        click.echo(f"tickhub: {conflict}", err=True)
        sys.exit(EXIT_CONFIG)
    _serve(ctx, "ingest")


@main.command()
@click.pass_context
def gateway(ctx: click.Context) -> None:
    """Serve the WebSocket and HTTP endpoints from BUS_URL (run one or more beside an ingest)."""
    _serve(ctx, "gateway")


@main.command("run-services")
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


@main.command("check")
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
    ok = asyncio.run(run_checks(url, multi=multi, symbol=symbol, timeout=timeout))
    sys.exit(0 if ok else 1)


@main.command("record")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--duration", type=float, default=None, help="seconds to record (default: until Ctrl-C)"
)
@click.pass_context
def record_cmd(ctx: click.Context, path: Path, duration: float | None) -> None:
    """Write the ticks the configured feed produces to a CSV file (replay it with FEED=replay)."""
    from tickhub.app.build import build_feed, build_registry
    from tickhub.app.logs import setup_logging
    from tickhub.devtools.record import record
    from tickhub.runtime.clock import SystemClock

    settings = _settings(ctx.obj["env_file"])
    setup_logging(settings.log_level, settings.log_format)
    clock = SystemClock()
    registry = build_registry(settings)
    feed = build_feed(settings, registry, clock)
    if settings.feed != "sim":
        feed.subscribe(registry)

    async def go() -> int:
        return await record(feed, path, duration=duration, clock=clock)

    try:
        count = asyncio.run(go())
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
        return
    click.echo(f"recorded {count} ticks to {path}")


@main.command("kite-emulator")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=defaults.KITE_EMULATOR_PORT, show_default=True)
@click.option("--api-key", default="test_key", show_default=True)
@click.option("--access-token", default="test_token", show_default=True)
@click.option("--speed", default=1.0, show_default=True, help="market seconds per real second")
@click.pass_context
def kite_emulator(
    ctx: click.Context, host: str, port: int, api_key: str, access_token: str, speed: float
) -> None:
    """A local server speaking Kite Connect's ticker protocol, for tests and demos."""
    from tickhub.app.build import build_registry
    from tickhub.app.logs import setup_logging
    from tickhub.devtools.kite_emulator import serve_emulator

    settings = _settings(ctx.obj["env_file"])
    setup_logging(settings.log_level, settings.log_format)
    registry = build_registry(settings)
    with contextlib.suppress(KeyboardInterrupt):
        _run(serve_emulator(host, port, api_key, access_token, registry, speed))


@main.command("bench", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def bench(ctx: click.Context) -> None:
    """Run the fan-out benchmark (bench/run.py of a source checkout); options pass through."""
    import subprocess

    script = Path(__file__).resolve().parents[2] / "bench" / "run.py"
    if not script.is_file():
        click.echo("tickhub: bench/run.py not found: run from a source checkout", err=True)
        sys.exit(EXIT_CONFIG)
    sys.exit(subprocess.call([sys.executable, str(script), *ctx.args]))
