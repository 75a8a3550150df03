"""The ingest's CPU per tick, whole and without each engine: what a tick costs before fan-out.

    python bench/ingest_cost.py [--symbols 50] [--ticks 20000] [--out bench/results]

Runs the real producer (``tickhub.app.roles`` with ``BenchFeed``'s ticks, one subscriber per
symbol's stream topic so the tick messages are encoded and published, as in the scenarios of
``run.py``) in this process, hands it ``--ticks`` ticks round robin over the symbols, and reads
``time.process_time`` around them. Then the same with one part replaced by nothing at a time
(the alert rules, the portfolio, the candles, the tick message), so the table shows what each
part costs. No sockets: the subscribers are peers that drop what they are sent. The figure is
the per-tick term of the cost model in README.md (**Findings**).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from benchfeed import BenchFeed, write_instruments

from tickhub.app.config import load_settings
from tickhub.app.roles import create_service
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.topics import Endpoint

VARIANTS = ("all", "no alerts", "no portfolio", "no candles", "no tick message", "none of them")


class DropPeer:
    """A subscriber that takes frames and keeps nothing."""

    def send(self, payload: bytes) -> None:
        return None

    def send_frame(self, frame: bytes) -> None:
        return None

    def close(self, code: int, reason: str) -> None:
        return None

    def ping(self) -> None:
        return None


async def measure(variant: str, symbols: int, ticks: int) -> float:
    """CPU microseconds per tick of the producer with ``variant``'s parts left out."""
    data = Path(tempfile.mkdtemp(prefix="tickhub-ingest-cost-"))
    instruments = write_instruments(data / "instruments.csv", symbols)
    settings = load_settings(
        None,
        host="127.0.0.1",
        ws_port=0,
        instruments_file=instruments,
        data_dir=data,
        demo_portfolio=False,
        update_interval=60.0,
        log_level="WARNING",
        max_connections_per_ip=100_000,
        connect_rate_per_ip=1_000_000.0,
    )
    registry = InstrumentRegistry.load_csv(instruments)
    feed = BenchFeed(list(registry))
    service: Any = create_service(settings, "all", registry=registry, feed=feed)
    await service.start()
    try:
        ingest, hub = service.ingest, service.hub
        for inst in registry:
            session = hub.connect(DropPeer(), Endpoint.STREAM, "127.0.0.1:1")
            assert session is not None
            hub.receive(
                session, b'{"type":"subscribe","symbol":"%s"}' % inst.tradingsymbol.encode()
            )
        leave_out = {
            "no alerts": ("alerts",),
            "no portfolio": ("portfolio",),
            "no candles": ("candles",),
            "no tick message": ("stream",),
            "none of them": ("alerts", "portfolio", "candles", "stream"),
        }.get(variant, ())
        if "alerts" in leave_out:
            ingest.alerts.on_tick = lambda tick: ()
        if "portfolio" in leave_out:
            ingest.portfolio.on_tick = lambda tick: None
        if "candles" in leave_out:
            ingest.candles.on_tick = lambda tick: []
        if "stream" in leave_out:
            ingest._publish_stream = lambda *args, **kwargs: None
        feed._on_tick = ingest.on_tick
        for _ in range(2 * symbols):  # every symbol's first tick (its first candles) unmeasured
            feed._emit()
        start = time.process_time()
        for _ in range(ticks):
            feed._emit()
        return (time.process_time() - start) / ticks * 1e6
    finally:
        await service.stop()


async def main(args: argparse.Namespace) -> None:
    rows = []
    for variant in VARIANTS:
        best = min([await measure(variant, args.symbols, args.ticks) for _ in range(3)])
        rows.append({"variant": variant, "us_per_tick": round(best, 1)})
    full = rows[0]["us_per_tick"]
    print(f"{'producer':<16} {'CPU us/tick':>12} {'saved':>8}")
    for row in rows:
        saved = full - row["us_per_tick"]
        print(f"{row['variant']:<16} {row['us_per_tick']:>12.1f} {saved:>8.1f}")
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"symbols": args.symbols, "ticks": args.ticks, "python": sys.version.split()[0]}
    path = args.out / "ingest_cost.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\nbest of 3 runs of {args.ticks:,} ticks over {args.symbols} symbols; wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--ticks", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    uvloop.run(main(parser.parse_args()))
