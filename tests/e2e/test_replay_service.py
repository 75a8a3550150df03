"""The whole service on FEED=replay: a minute-bar file played back gives exactly its bars as
closed 1m candles on /ws/stream, and the same candles on every run."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from tests.conftest import make_settings
from tests.helpers import TESTS_DIR, Client
from tickhub.app.roles import SingleService

BARS = TESTS_DIR / "data" / "replay" / "reliance_1m.csv"


async def _closed_candles(tmp_path: Path, n: int) -> list[dict[str, Any]]:
    svc = SingleService(
        make_settings(
            tmp_path,
            feed="replay",
            replay_file=BARS,
            replay_symbol="RELIANCE",
            replay_speed=240,
            demo_portfolio=False,
        )
    )
    await svc.start()
    try:
        c = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
        await c.request({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
        closed: list[dict[str, Any]] = []
        while len(closed) < n:
            msg = await c.wait_for(
                lambda m: m.get("data_type") == "candle_data" and m["data"]["closed"], timeout=30
            )
            closed.append(msg["data"])
        await c.close()
        return closed
    finally:
        await svc.stop()


async def test_replayed_bars_come_back_as_identical_candles_every_run(tmp_path: Path) -> None:
    with BARS.open() as f:
        bars = list(csv.DictReader(f))
    # Bar times are IST; candles carry their start in UTC.
    expected = {
        _utc(b["Timestamp"]): (
            float(b["Open"]),
            float(b["High"]),
            float(b["Low"]),
            float(b["Close"]),
            int(float(b["Volume"])),
        )
        for b in bars
    }
    runs = [await _closed_candles(tmp_path / name, 4) for name in ("a", "b")]
    for closed in runs:
        for candle in closed:
            o, h, low, c, v = expected[candle["start"]]
            assert (candle["open"], candle["high"], candle["low"], candle["close"]) == (
                o,
                h,
                low,
                c,
            )
            # The replay's first synthetic tick carries cumulative volume 0, so even the first
            # bar's volume is counted in full.
            assert candle["volume"] == v
    # The feed starts before the client subscribes: compare the candles both runs saw.
    a = {c["start"]: c for c in runs[0]}
    b = {c["start"]: c for c in runs[1]}
    common = a.keys() & b.keys()
    assert common and all(a[k] == b[k] for k in common)


def _utc(ist: str) -> str:
    from datetime import datetime

    from tickhub.core.model import IST
    from tickhub.core.protocol import iso

    return iso(datetime.fromisoformat(ist).replace(tzinfo=IST))
