"""CPU per candle close of the analysis: the default set, a chosen indicator set, a forming update.

    python bench/analysis_cost.py [--closes 2000] [--out bench/results] [ENTRY ...]

Feeds ``--closes`` closed 1m candles (a seeded random walk) into an ``AnalysisEngine`` that
already keeps ``CANDLE_HISTORY`` candles and, after each close, measures with
``time.process_time`` what the ingest computes for one ``/ws/analysis`` topic of each kind:

- ``default analysis``: the default indicators, the 61 patterns, the risk metrics and the trend
  (what a subscriber that sends no ``indicators`` gets), computed once per close;
- ``indicator set``: the chosen set (the 10 the documentation quotes unless ENTRY arguments are
  given) on the same close, patterns, risk and trend being cached by then;
- ``set, forming update``: the set recomputed with a forming candle appended (at most once per
  ``UPDATE_INTERVAL`` per topic between closes);
- ``N indicator alerts``: ``--alerts`` indicator alerts on the same symbol and interval (each
  set's indicator against the next one, or against a value, five conditions in turn), evaluated
  on the close as the ingest does: their operands make one set, computed once per close (here
  on a separate engine, so that nothing the rows above computed is reused).

Best of 3 passes; prints a table and writes ``analysis_cost.json``. Not a test: it asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from tickhub.core import defaults
from tickhub.core.commands import CreateAnalysisAlert, parse_command, parse_indicators
from tickhub.core.commands.indicators import IndicatorSet
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import IST, Candle, Interval
from tickhub.core.topics import Endpoint
from tickhub.engines.alerts import AlertRules
from tickhub.engines.analysis import AnalysisEngine
from tickhub.ingest.alerts import StoredAlerts
from tickhub.ingest.analysis_alerts import on_analysis_candle

TEN = [
    "sma:50",
    "ema:9",
    "ema:21",
    "rsi:14",
    "macd",
    "bollinger",
    "atr",
    "supertrend:10,3",
    "stoch",
    "adx",
]
"""The 10-indicator set the documentation quotes."""


def walk(n: int, seed: int = 1) -> list[Candle]:
    """``n`` closed 1m candles of a random walk around 2500."""
    rng = random.Random(seed)
    t0 = datetime(2025, 1, 27, 9, 15, tzinfo=IST)
    out, close = [], 2500.0
    for i in range(n):
        open_ = close
        close = round(open_ * (1 + rng.gauss(0, 0.002)), 2)
        high = max(open_, close) + rng.uniform(0, 2)
        low = min(open_, close) - rng.uniform(0, 2)
        start = t0 + i * Interval.M1.delta
        out.append(Candle("RELIANCE", Interval.M1, start, open_, high, low, close, 1000, True))
    return out


def alerts_on(specs: IndicatorSet, count: int) -> StoredAlerts:
    """``count`` indicator alerts of RELIANCE at 1m over the operands of ``specs`` (in memory)."""
    alerts = StoredAlerts(rules=AlertRules(builtin_rules=frozenset(), max_alerts_per_owner=count))
    registry = InstrumentRegistry.bundled()
    names = [s.canonical for s in specs]
    conditions = ["crosses_above", "crosses_below", "above", "below", "crosses_above"]
    for i in range(count):
        msg: dict[str, object] = {
            "type": "create_alert",
            "symbol": "RELIANCE",
            "interval": "1m",
            "indicator": names[i % len(names)],
            "condition": conditions[i % len(conditions)],
            "once": False,
        }
        if i % 2:
            msg["other"] = names[(i + 1) % len(names)]
        else:
            msg["value"] = 50
        request = parse_command(msg, endpoint=Endpoint.ALERTS, registry=registry)
        assert isinstance(request, CreateAnalysisAlert), request
        alerts.create("", request)
    return alerts


def one_pass(specs: IndicatorSet, closes: int, alert_count: int) -> dict[str, float]:
    """CPU microseconds per close of each kind, in one pass over ``closes`` closes."""
    history = defaults.CANDLE_HISTORY
    candles = walk(history + closes)
    engine = AnalysisEngine(maxlen=history, benchmark=None)
    alerting = AnalysisEngine(maxlen=history, benchmark=None)
    for candle in candles[:history]:
        engine.on_candle(candle)
        alerting.on_candle(candle)
    alerts = alerts_on(specs, alert_count)
    alerts_kind = f"{alert_count} indicator alerts"
    spent = {
        "default analysis": 0.0,
        "indicator set": 0.0,
        "set, forming update": 0.0,
        alerts_kind: 0.0,
    }
    clock = time.process_time
    for candle in candles[history:]:
        alerting.on_candle(candle)
        t = clock()
        on_analysis_candle(alerts, alerting, candle, candle.start)
        spent[alerts_kind] += clock() - t
        engine.on_candle(candle)
        t = clock()
        engine.analyze("RELIANCE", Interval.M1)
        spent["default analysis"] += clock() - t
        t = clock()
        engine.analyze("RELIANCE", Interval.M1, indicators=specs)
        spent["indicator set"] += clock() - t
        forming = replace(
            candle, start=candle.start + Interval.M1.delta, close=candle.close + 1, closed=False
        )
        engine.on_candle(forming)
        t = clock()
        engine.analyze("RELIANCE", Interval.M1, include_forming=True, indicators=specs)
        spent["set, forming update"] += clock() - t
    return {kind: seconds / closes * 1e6 for kind, seconds in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--closes", type=int, default=2000)
    parser.add_argument("--alerts", type=int, default=50, help="indicator alerts (default 50)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("entries", nargs="*", default=TEN)
    args = parser.parse_args()
    specs = parse_indicators(list(args.entries))
    if not isinstance(specs, tuple):
        raise SystemExit(f"bad set: {specs.message}")
    passes = [one_pass(specs, args.closes, args.alerts) for _ in range(3)]
    rows = [
        {"kind": kind, "us_per_close": round(min(p[kind] for p in passes), 1)} for kind in passes[0]
    ]
    names = ", ".join(s.canonical for s in specs)
    print(f"set: {names} ({len(specs)} indicators)")
    print(f"{'per candle close':<24} {'CPU us':>8}")
    for row in rows:
        print(f"{row['kind']:<24} {row['us_per_close']:>8.1f}")
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "closes": args.closes,
        "candles_kept": defaults.CANDLE_HISTORY,
        "set": [s.canonical for s in specs],
        "alerts": args.alerts,
        "python": sys.version.split()[0],
    }
    path = args.out / "analysis_cost.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\nbest of 3 passes of {args.closes:,} closes; wrote {path}")


if __name__ == "__main__":
    main()
