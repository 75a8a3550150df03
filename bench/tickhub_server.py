"""tickhub under benchmark: the real ``Service`` on 127.0.0.1, fed by :class:`BenchFeed`.

    python bench/tickhub_server.py --symbols 50 [--port 0] [--data-dir DIR]
        [--role all|ingest|gateway --bus-url redis://127.0.0.1:6379/0 --bus-prefix P]

Speaks the control channel of ``control.py``. Settings keep the stream to its tick messages
where settings can: ``UPDATE_INTERVAL=60`` (the maximum) so forming candles and ``market_data``
go out at most once a minute per topic; no demo portfolio; logging at WARNING; the per-address
connection limits raised (all load comes from loopback). Everything else is the default,
including ``OUTBOX_BYTES``, ``SLOW_CLIENT_GRACE``, ``IDLE_TIMEOUT`` and the resume history.

Scale-out (``--role``): ``ingest`` runs BenchFeed and the engines and publishes on the bus (no
port: ``READY`` carries ``"port": null``); ``gateway`` serves clients from the bus (``rate`` is
accepted and ignored: the ingest's feed sets the pace). Both take the same settings as ``all``
plus ``BUS_URL``/``BUS_PREFIX`` (``--bus-url``/``--bus-prefix``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import uvloop
from benchfeed import BenchFeed, write_instruments
from control import announce, parse_burst, parse_rate, raise_nofile, serve_commands

from tickhub.app.config import Settings, load_settings
from tickhub.app.logs import setup_logging
from tickhub.app.roles import create_service
from tickhub.core.instruments import InstrumentRegistry


async def main(args: argparse.Namespace) -> None:
    nofile = raise_nofile()
    own_dir = args.data_dir is None
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="tickhub-bench-"))
    instruments = write_instruments(data_dir / "instruments.csv", args.symbols)
    wanted = {
        "host": "127.0.0.1",
        "ws_port": args.port,
        "instruments_file": instruments,
        "data_dir": data_dir,
        "demo_portfolio": False,
        "update_interval": 60.0,
        "log_level": "WARNING",
        "max_connections": max(10_000, nofile),
        # All the load comes from one to four loopback addresses: per-address limits, meant
        # against abuse from one host, would refuse it.
        "max_connections_per_ip": max(10_000, nofile),
        "connect_rate_per_ip": 1_000_000.0,
        "bus_url": args.bus_url,
        "bus_prefix": args.bus_prefix,
    }
    # Settings change while tickhub grows: pass only the ones this version has.
    settings = load_settings(
        None, **{k: v for k, v in wanted.items() if k in Settings.model_fields}
    )
    setup_logging(settings.log_level, settings.log_format)
    registry = InstrumentRegistry.load_csv(instruments)
    feed = BenchFeed(list(registry)) if args.role != "gateway" else None
    service = create_service(settings, args.role, registry=registry, feed=feed)
    port = await service.start()
    hub, ingest = getattr(service, "hub", None), getattr(service, "ingest", None)
    assert (port is not None and hub is not None) or args.role == "ingest"
    assert ingest is not None or args.role == "gateway"
    announce("READY", port=port, pid=os.getpid(), server="tickhub", role=args.role)

    def rate(words: list[str]) -> tuple[str, dict[str, object]]:
        burst = parse_burst(words)
        if feed is not None:
            feed.set_rate(parse_rate(words[0]), burst)
        return "OK", {"rate": words[0], "burst": burst}

    def stats(words: list[str]) -> tuple[str, dict[str, object]]:
        out: dict[str, object] = {"ticks": 0, "frames": 0, "shed": 0, "delivered": 0}
        if feed is not None and ingest is not None:
            out.update(
                ticks=feed.pacer.emitted,
                frames=feed.pacer.frames,
                shed=feed.pacer.shed,
                published=ingest.publisher.published,
            )
        if hub is not None:
            out.update(
                delivered=hub.messages_out,
                connections=len(hub),
                paused=sum(1 for s in hub.sessions if s.paused),
                dropped=sum(int(s.dropped) for s in hub.sessions),
            )
        return "STATS", out

    try:
        await serve_commands({"rate": rate, "stats": stats})
    finally:
        if feed is not None:
            feed.set_rate(0)
        await service.stop()
        if own_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument(
        "--data-dir", default=None, help="SQLite and instruments (default: a temp dir)"
    )
    parser.add_argument("--role", choices=("all", "ingest", "gateway"), default="all")
    parser.add_argument("--bus-url", default="memory://", help="BUS_URL (scale-out: redis://...)")
    parser.add_argument("--bus-prefix", default="tickhub", help="BUS_PREFIX (unique per run)")
    uvloop.run(main(parser.parse_args()))
