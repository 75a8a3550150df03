"""CPU of recording trades: ``add_trade`` as one symbol's trades grow, and valuing the position.

    python bench/trades_cost.py [--trades 5000] [--out bench/results]

Records ``--trades`` trades (55 % buys, 1-20 shares, prices around 1500, one a second, all on
one IST day) on one symbol of the portfolio engine, in time order as a trader records them, and
reads ``time.process_time``: the mean per ``add_trade``, the mean over the last tenth (the cost
at the largest book), and one ``value()`` of the position afterwards (its day figures read all of
the day's trades once). Prints a table and writes ``trades_cost.json``. Not a test.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tickhub.core.model import IST
from tickhub.engines.portfolio import Portfolio, Trade


def measure(count: int) -> dict[str, float]:
    t0 = datetime(2026, 12, 2, 9, 15, tzinfo=IST)
    rng = random.Random(1)
    portfolio = Portfolio(today=lambda: t0.date())
    spent: list[float] = []
    for i in range(count):
        side = "buy" if rng.random() < 0.55 else "sell"
        price = Decimal(1500) + Decimal(rng.randint(-500, 500)) / 100
        when = t0 + timedelta(seconds=i)
        trade = Trade(f"t{i}", "INFY", side, rng.randint(1, 20), price, when, 0)
        start = time.process_time()
        portfolio.add_trade("", trade)
        spent.append(time.process_time() - start)
    start = time.process_time()
    portfolio.value("", "INFY")
    value = time.process_time() - start
    tail = spent[-max(1, count // 10) :]
    return {
        "add_trade mean": sum(spent) / count * 1e6,
        "add_trade, last tenth": sum(tail) / len(tail) * 1e6,
        "value() after": value * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    runs = [measure(args.trades) for _ in range(3)]
    rows = [{"kind": k, "us": round(min(r[k] for r in runs), 1)} for k in runs[0]]
    print(f"{'one symbol, ' + format(args.trades, ',') + ' trades':<26} {'CPU us':>9}")
    for row in rows:
        print(f"{row['kind']:<26} {row['us']:>9.1f}")
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"trades": args.trades, "python": sys.version.split()[0]}
    path = args.out / "trades_cost.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\nbest of 3 runs; wrote {path}")


if __name__ == "__main__":
    main()
