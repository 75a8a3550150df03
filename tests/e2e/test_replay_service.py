"""The whole service on FEED=replay: a minute-bar file played back gives exactly its bars as
closed 1m candles on /ws/stream, and the same candles on every run."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from tests.conftest import make_settings
from tests.helpers import TESTS_DIR, Client, ahttp_get
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


async def test_a_finished_replay_is_healthy_and_its_last_bar_closes(tmp_path: Path) -> None:
    with BARS.open() as f:
        last = list(csv.DictReader(f))[-1]
    last_start = _utc(last["Timestamp"])
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
        stream = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/stream")
        await stream.request({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
        analysis = await Client.connect(f"ws://127.0.0.1:{svc.port}/ws/analysis")
        await analysis.request({"type": "subscribe", "symbol": "RELIANCE"}, "subscription")
        seen: dict[str, dict[str, Any]] = {}

        def last_close_and_finished(m: dict[str, Any]) -> bool:
            data = m.get("data") or {}
            if m.get("data_type") == "candle_data" and data["start"] == last_start:
                if data["closed"]:
                    seen["candle"] = data
            elif m.get("type") == "status" and m.get("feed") == "finished":
                seen["status"] = m
            return len(seen) == 2

        await stream.wait_for(last_close_and_finished, timeout=30)
        assert seen["candle"]["close"] == float(last["Close"])
        assert seen["status"]["detail"] == "end of replay"
        # The analysis of that close comes too, as for any closed candle.
        await analysis.wait_for(
            lambda m: (
                m.get("type") == "data"
                and not m.get("snapshot")
                and m["data"]["candle"]["start"] == last_start
                and m["data"]["candle"]["closed"]
            ),
            timeout=30,
        )
        assert svc.port is not None
        status, _, health = await ahttp_get(svc.port, "/health")
        assert (status, health["status"], health["feed"]["state"]) == (200, "ok", "finished")
        await stream.close()
        await analysis.close()
    finally:
        await svc.stop()
