"""CPU cost per candle close of an indicator set, measured with ``time.process_time``.

Feeds ``--closes`` closed 1m candles (a seeded random walk) into an ``AnalysisEngine`` that
already keeps ``CANDLE_HISTORY`` candles, and after each close computes the analysis once with
the default set and once with the chosen set, as the ingest does for one topic of each. Prints
the CPU time per close of each, and of the set's indicators alone (the difference).

    PYTHONPATH=src .venv/bin/python scripts/indicator_set_cost.py [--closes 2000] [ENTRY ...]
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import datetime

from tickhub.core import defaults
from tickhub.core.commands import parse_indicators
from tickhub.core.model import IST, Candle, Interval
from tickhub.engines.analysis import AnalysisEngine

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--closes", type=int, default=2000)
    parser.add_argument("entries", nargs="*", default=TEN)
    args = parser.parse_args()
    specs = parse_indicators(list(args.entries))
    if not isinstance(specs, tuple):
        raise SystemExit(f"bad set: {specs}")
    history = defaults.CANDLE_HISTORY
    candles = walk(history + args.closes)
    engine = AnalysisEngine(maxlen=history, benchmark=None)
    for c in candles[:history]:
        engine.on_candle(c)
    default_cpu = set_cpu = 0.0
    for c in candles[history:]:
        engine.on_candle(c)
        t = time.process_time()
        engine.analyze("RELIANCE", Interval.M1)
        default_cpu += time.process_time() - t
        t = time.process_time()
        engine.analyze("RELIANCE", Interval.M1, indicators=specs)
        set_cpu += time.process_time() - t
    n = args.closes
    print(f"set: {', '.join(s.canonical for s in specs)} ({len(specs)} indicators)")
    print(f"closes: {n}, candles kept: {history}")
    print(f"default analysis per close: {default_cpu / n * 1e6:.0f} us CPU")
    print(f"set on the same close (patterns, risk, trend cached): {set_cpu / n * 1e6:.0f} us CPU")


if __name__ == "__main__":
    main()
