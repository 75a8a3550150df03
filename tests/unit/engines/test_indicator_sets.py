"""Indicator sets: every indicator at chosen parameters against a formula written here, to 1e-6,
on every prefix of a fixed series, so that the warm-up length (the first non-null index) is
checked as well as the values."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from itertools import pairwise
from typing import Any, cast

import pytest

from tests.unit.engines.test_analysis import candle, random_walk
from tickhub.core.commands import IndicatorSpec, parse_indicators, warmup_of
from tickhub.core.commands.indicators import parse_spec
from tickhub.core.model import IST, Candle, Interval
from tickhub.engines.analysis import AnalysisEngine
from tickhub.engines.analysis.engine import Analysis
from tickhub.engines.analysis.sets import compute_set, prices_of

TOL = 1e-6
SERIES = random_walk(90, seed=11)
Opt = float | None
Ref = list[Any]


# --- reference formulas, independent of TA-Lib ---------------------------------------------------


def ref_sma(x: Sequence[float], p: int) -> list[Opt]:
    return [None if i < p - 1 else sum(x[i - p + 1 : i + 1]) / p for i in range(len(x))]


def ref_ema(x: Sequence[Opt], p: int) -> list[Opt]:
    """EMA of the non-null values of ``x``, seeded with the SMA of the first ``p`` of them."""
    out: list[Opt] = [None] * len(x)
    start = next((i for i, v in enumerate(x) if v is not None), len(x))
    values = [float(v) for v in x[start:] if v is not None]
    if len(values) < p:
        return out
    k = 2.0 / (p + 1)
    ema = sum(values[:p]) / p
    out[start + p - 1] = ema
    for i, v in enumerate(values[p:], start=start + p):
        ema += k * (v - ema)
        out[i] = ema
    return out


def ref_rsi(x: Sequence[float], p: int) -> list[Opt]:
    out: list[Opt] = [None] * len(x)
    changes = [b - a for a, b in pairwise(x)]
    if len(changes) < p:
        return out
    gain = sum(max(c, 0.0) for c in changes[:p]) / p
    loss = sum(max(-c, 0.0) for c in changes[:p]) / p
    out[p] = 100.0 * gain / (gain + loss)
    for i, c in enumerate(changes[p:], start=p + 1):
        gain = (gain * (p - 1) + max(c, 0.0)) / p
        loss = (loss * (p - 1) + max(-c, 0.0)) / p
        out[i] = 100.0 * gain / (gain + loss)
    return out


def true_ranges(c: Sequence[Candle]) -> list[float]:
    """Index i >= 1: the true range of candle i (element 0 is unused)."""
    return [0.0] + [
        max(b.high - b.low, abs(b.high - a.close), abs(b.low - a.close)) for a, b in pairwise(c)
    ]


def ref_atr(c: Sequence[Candle], p: int) -> list[Opt]:
    """Wilder's ATR: the mean of the first ``p`` true ranges, then smoothed."""
    out: list[Opt] = [None] * len(c)
    tr = true_ranges(c)
    if len(c) <= p:
        return out
    atr = sum(tr[1 : p + 1]) / p
    out[p] = atr
    for i in range(p + 1, len(c)):
        atr = (atr * (p - 1) + tr[i]) / p
        out[i] = atr
    return out


def ref_macd(x: Sequence[float], fast: int, slow: int, signal: int) -> list[Any]:
    # Both averages start where the slow one does: the fast one is seeded with the SMA of the
    # ``fast`` closes ending there (as TA-Lib does).
    slow_ema = ref_ema(x, slow)
    fast_ema: list[Opt] = [None] * (slow - fast)
    fast_ema += ref_ema(x[slow - fast :], fast)
    line: list[Opt] = [
        None if s is None or f is None else f - s for f, s in zip(fast_ema, slow_ema, strict=True)
    ]
    sig = ref_ema(line, signal)
    return [
        {"macd": m, "signal": s, "histogram": m - s}
        if s is not None and m is not None
        else {"macd": m if s is not None else None, "signal": None, "histogram": None}
        for m, s in zip(line, sig, strict=True)
    ]


def ref_bollinger(x: Sequence[float], p: int, k: float) -> list[Any]:
    out: list[Any] = []
    for i in range(len(x)):
        if i < p - 1:
            out.append({"upper": None, "middle": None, "lower": None})
            continue
        window = x[i - p + 1 : i + 1]
        mean = sum(window) / p
        sd = (sum((v - mean) ** 2 for v in window) / p) ** 0.5  # population deviation
        out.append({"upper": mean + k * sd, "middle": mean, "lower": mean - k * sd})
    return out


def ref_stoch(c: Sequence[Candle], fastk: int, slowk: int, slowd: int) -> list[Any]:
    raw: list[Opt] = []
    for i in range(len(c)):
        if i < fastk - 1:
            raw.append(None)
            continue
        window = c[i - fastk + 1 : i + 1]
        hh, ll = max(w.high for w in window), min(w.low for w in window)
        raw.append(0.0 if hh == ll else 100.0 * (c[i].close - ll) / (hh - ll))

    def sma_of(values: list[Opt], p: int) -> list[Opt]:
        out: list[Opt] = []
        for i in range(len(values)):
            w = values[max(0, i - p + 1) : i + 1]
            out.append(None if len(w) < p or None in w else sum(v for v in w if v) / p)
        return out

    k = sma_of(raw, slowk)
    d = sma_of(k, slowd)
    return [{"k": kv if dv is not None else None, "d": dv} for kv, dv in zip(k, d, strict=True)]


def ref_adx(c: Sequence[Candle], p: int) -> list[Any]:
    """Wilder: +DM/-DM and TR summed over p-1 moves, then smoothed; DI from the p-th move; ADX
    the mean of the first p DX, then smoothed."""
    n = len(c)
    out: list[Any] = [{"adx": None, "plus_di": None, "minus_di": None} for _ in range(n)]
    plus = minus = tr = 0.0
    dxs: list[float] = []
    adx: float | None = None
    for i in range(1, n):
        up, down = c[i].high - c[i - 1].high, c[i - 1].low - c[i].low
        pdm = up if up > 0 and up > down else 0.0
        mdm = down if down > 0 and down > up else 0.0
        t = true_ranges(c[i - 1 : i + 1])[1]
        if i < p:
            plus, minus, tr = plus + pdm, minus + mdm, tr + t
            continue
        plus, minus, tr = plus - plus / p + pdm, minus - minus / p + mdm, tr - tr / p + t
        pdi, mdi = 100.0 * plus / tr, 100.0 * minus / tr
        dx = 100.0 * abs(pdi - mdi) / (pdi + mdi) if pdi + mdi else 0.0
        dxs.append(dx)
        if len(dxs) == p:
            adx = sum(dxs) / p
        elif len(dxs) > p and adx is not None:
            adx = (adx * (p - 1) + dx) / p
        out[i] = {"adx": adx, "plus_di": pdi, "minus_di": mdi}
    return out


def ref_obv(c: Sequence[Candle]) -> list[Opt]:
    obv = float(c[0].volume)
    out: list[Opt] = [obv]
    for a, b in pairwise(c):
        obv += b.volume if b.close > a.close else -b.volume if b.close < a.close else 0
        out.append(obv)
    return out


def ref_sar(c: Sequence[Candle], step: float, top: float) -> list[Opt]:
    """Wilder's parabolic SAR; the first trend is short when the second candle's low fell more
    than its high rose (a -DM), else long; starting at the first candle's extreme."""
    out: list[Opt] = [None] * len(c)
    if len(c) < 2:
        return out
    down = c[0].low - c[1].low
    long_ = not (down > 0 and c[1].high - c[0].high < down)
    sar = c[0].low if long_ else c[0].high
    ep = c[1].high if long_ else c[1].low
    af = step
    for i in range(1, len(c)):
        prev, cur = c[i - 1], c[i]
        if long_ and cur.low <= sar:
            long_, sar, af, ep = False, max(ep, prev.high, cur.high), step, cur.low
            out[i] = sar
            sar = max(sar + af * (ep - sar), prev.high, cur.high)
        elif not long_ and cur.high >= sar:
            long_, sar, af, ep = True, min(ep, prev.low, cur.low), step, cur.high
            out[i] = sar
            sar = min(sar + af * (ep - sar), prev.low, cur.low)
        elif long_:
            out[i] = sar
            if cur.high > ep:
                ep, af = cur.high, min(af + step, top)
            sar = min(sar + af * (ep - sar), prev.low, cur.low)
        else:
            out[i] = sar
            if cur.low < ep:
                ep, af = cur.low, min(af + step, top)
            sar = max(sar + af * (ep - sar), prev.high, cur.high)
    return out


def ref_donchian(c: Sequence[Candle], p: int) -> list[Any]:
    out: list[Any] = []
    for i in range(len(c)):
        if i < p - 1:
            out.append({"upper": None, "middle": None, "lower": None})
            continue
        hi = max(x.high for x in c[i - p + 1 : i + 1])
        lo = min(x.low for x in c[i - p + 1 : i + 1])
        out.append({"upper": hi, "middle": (hi + lo) / 2, "lower": lo})
    return out


def ref_supertrend(c: Sequence[Candle], p: int, m: float) -> list[Any]:
    """Bands on (high + low) / 2 ± m·ATR; the final upper only falls (unless the previous close
    broke above it), the final lower only rises; the trend starts down and flips on a close
    beyond the band it is watching."""
    atr = ref_atr(c, p)
    out: list[Any] = [{"value": None, "direction": None} for _ in c]
    final_up = final_lo = 0.0
    trend = "down"
    for i, a in enumerate(atr):
        if a is None:
            continue
        mid = (c[i].high + c[i].low) / 2
        up, lo = mid + m * a, mid - m * a
        if i > p:
            prev_close = c[i - 1].close
            up = up if up < final_up or prev_close > final_up else final_up
            lo = lo if lo > final_lo or prev_close < final_lo else final_lo
            if trend == "down" and c[i].close > up:
                trend = "up"
            elif trend == "up" and c[i].close < lo:
                trend = "down"
        final_up, final_lo = up, lo
        out[i] = {"value": lo if trend == "up" else up, "direction": trend}
    return out


# --- the comparison ------------------------------------------------------------------------------


def flat(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [v for k in sorted(value) for v in flat(value[k])]
    return [value]


def close_enough(got: Any, want: Any) -> bool:
    g, w = flat(got), flat(want)
    if len(g) != len(w):
        return False
    for a, b in zip(g, w, strict=True):
        if a is None or b is None or isinstance(a, str) or isinstance(b, str):
            if a != b:
                return False
        elif abs(a - b) > TOL * max(1.0, abs(b)):
            return False
    return True


def served(spec: IndicatorSpec, candles: Sequence[Candle]) -> list[Any]:
    """The set's value of ``spec`` on each prefix of ``candles``."""
    return [
        compute_set((spec,), prices_of(candles[:k]), vwap=None, previous_session=None, have=k)[
            spec.canonical
        ]
        for k in range(1, len(candles) + 1)
    ]


def first_value(values: Sequence[Any]) -> int:
    """The first index where every member has a value."""
    return next(i for i, v in enumerate(values) if all(x is not None for x in flat(v)))


C = SERIES
X = [c.close for c in SERIES]
CASES: dict[str, Callable[[], list[Any]]] = {
    "sma:7": lambda: ref_sma(X, 7),
    "sma:50": lambda: ref_sma(X, 50),
    "ema:9": lambda: ref_ema(X, 9),
    "ema:21": lambda: ref_ema(X, 21),
    "rsi:7": lambda: ref_rsi(X, 7),
    "rsi:21": lambda: ref_rsi(X, 21),
    "atr:5": lambda: ref_atr(C, 5),
    "macd:5,13,4": lambda: ref_macd(X, 5, 13, 4),
    "bollinger:10,1.5": lambda: ref_bollinger(X, 10, 1.5),
    "supertrend:10,3": lambda: ref_supertrend(C, 10, 3.0),
    "supertrend:7,2.5": lambda: ref_supertrend(C, 7, 2.5),
    "stoch:14,3,3": lambda: ref_stoch(C, 14, 3, 3),
    "stoch:5,1,2": lambda: ref_stoch(C, 5, 1, 2),
    "adx:14": lambda: ref_adx(C, 14),
    "adx:6": lambda: ref_adx(C, 6),
    "obv": lambda: ref_obv(C),
    "sar:0.02,0.2": lambda: ref_sar(C, 0.02, 0.2),
    "sar:0.05,0.3": lambda: ref_sar(C, 0.05, 0.3),
    "donchian:20": lambda: ref_donchian(C, 20),
}


@pytest.mark.parametrize("entry", list(CASES))
def test_indicator_matches_its_formula_on_every_prefix(entry: str) -> None:
    spec = parse_spec(entry)
    want = CASES[entry]()
    got = served(spec, SERIES)
    assert first_value(got) == first_value(want) == warmup_of(spec) - 1
    bad = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if not close_enough(g, w)]
    assert bad == [], (entry, bad[:3], got[bad[0]] if bad else None, want[bad[0]] if bad else None)


def test_supertrend_flips_both_ways_on_the_series() -> None:
    """The fixture exercises both trends, so the flip rules are checked, not only one side."""
    directions = {v["direction"] for v in served(parse_spec("supertrend:7,2.5"), SERIES)}
    assert directions == {None, "up", "down"}


def session_candles() -> list[Candle]:
    """Two IST days of 5m candles: 09:15-10:10 on the 2nd of January, 09:15-09:40 on the 3rd."""
    out: list[Candle] = []
    walk = random_walk(20, seed=5)
    for i, c in enumerate(walk):
        day, slot = (0, i) if i < 12 else (1, i - 12)
        start = c.start.replace(hour=9, minute=15) + timedelta(days=day, minutes=5 * slot)
        out.append(
            Candle("RELIANCE", Interval.M5, start, c.open, c.high, c.low, c.close, c.volume, True)
        )
    return out


def values(analysis: Analysis) -> dict[str, Any]:
    """The ``technical_indicators`` of a set's analysis (keyed by canonical names)."""
    return cast(dict[str, Any], analysis["technical_indicators"])


def analysis_of(candles: Sequence[Candle], entries: list[str]) -> Analysis:
    engine = AnalysisEngine(benchmark=None)
    for c in candles:
        engine.on_candle(c)
    specs = parse_indicators(entries)
    assert isinstance(specs, tuple)
    return engine.analyze("RELIANCE", Interval.M5, indicators=specs)


def test_pivots_come_from_the_previous_sessions_high_low_close() -> None:
    candles = session_candles()
    first_day = [c for c in candles if c.start.astimezone(IST).day == 2]
    h, lo, cl = max(c.high for c in first_day), min(c.low for c in first_day), first_day[-1].close
    p = (h + lo + cl) / 3
    want = {
        "pivot": p,
        "r1": 2 * p - lo,
        "s1": 2 * p - h,
        "r2": p + (h - lo),
        "s2": p - (h - lo),
        "r3": h + 2 * (p - lo),
        "s3": lo - 2 * (h - p),
    }
    got = values(analysis_of(candles, ["pivots"]))["pivots"]
    assert close_enough(got, want)
    # During the first session no previous one is known.
    first = values(analysis_of(first_day, ["pivots"]))["pivots"]
    assert set(first) == set(want) and set(first.values()) == {None}


def test_a_set_reports_each_indicator_under_its_canonical_name_with_warmup() -> None:
    candles = [candle(i, c.open, c.high, c.low, c.close) for i, c in enumerate(SERIES)]
    engine = AnalysisEngine(benchmark=None)
    for c in candles:
        engine.on_candle(c)
    specs = parse_indicators(["EMA:9", "ema:21", "supertrend", "rsi:14", "vwap", " ema:09 "])
    assert isinstance(specs, tuple)
    got = engine.analyze("RELIANCE", Interval.M1, indicators=specs)
    chosen = values(got)
    assert set(chosen) == {"ema:9", "ema:21", "supertrend:10,3", "rsi:14", "vwap", "warmup"}
    assert chosen["warmup"] == {"needed": 21, "have": len(candles)}  # ema:21
    assert close_enough(chosen["ema:21"], ref_ema(X, 21)[-1])
    # The default set's analysis is untouched: the same trend, patterns and risk metrics.
    default = engine.analyze("RELIANCE", Interval.M1)
    assert {k: v for k, v in got.items() if k != "technical_indicators"} == {
        k: v for k, v in default.items() if k != "technical_indicators"
    }
    assert "sma_20" in default["technical_indicators"]


def test_a_set_includes_the_forming_candle_when_asked() -> None:
    candles = list(SERIES)
    engine = AnalysisEngine(benchmark=None)
    for c in candles[:-1]:
        engine.on_candle(c)
    last = candles[-1]
    engine.on_candle(
        Candle(
            last.symbol,
            last.interval,
            last.start,
            last.open,
            last.high,
            last.low,
            last.close,
            last.volume,
            closed=False,
        )
    )
    specs = parse_indicators(["ema:9"])
    assert isinstance(specs, tuple)
    forming = values(engine.analyze("RELIANCE", Interval.M1, True, specs))
    closed = values(engine.analyze("RELIANCE", Interval.M1, False, specs))
    assert close_enough(forming["ema:9"], ref_ema(X, 9)[-1])
    assert close_enough(closed["ema:9"], ref_ema(X[:-1], 9)[-1])
    assert forming["warmup"]["have"] == closed["warmup"]["have"] + 1


def test_pivots_follow_the_session_of_the_candle_analysed() -> None:
    """The first candle of a new session, still forming, already has the previous session's
    pivots; the closed candles alone (all of the first session) have none."""
    candles = session_candles()
    first_day = [c for c in candles if c.start.astimezone(IST).day == 2]
    opening = candles[len(first_day)]
    engine = AnalysisEngine(benchmark=None)
    for c in first_day:
        engine.on_candle(c)
    specs = parse_indicators(["pivots"])
    assert isinstance(specs, tuple)
    assert values(engine.analyze("RELIANCE", Interval.M5, False, specs))["pivots"]["pivot"] is None
    engine.on_candle(
        Candle(opening.symbol, opening.interval, opening.start, opening.open, opening.high,
               opening.low, opening.close, opening.volume, closed=False)
    )  # fmt: skip
    h, lo = max(c.high for c in first_day), min(c.low for c in first_day)
    want = (h + lo + first_day[-1].close) / 3
    forming = values(engine.analyze("RELIANCE", Interval.M5, True, specs))["pivots"]
    assert close_enough(forming["pivot"], want)
    closed = values(engine.analyze("RELIANCE", Interval.M5, False, specs))["pivots"]
    assert closed["pivot"] is None
