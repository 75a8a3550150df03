"""Candle history per (symbol, interval) and the analysis the ``/ws/analysis`` stream sends.

Pure and synchronous: the shell feeds every candle update to ``on_candle`` and calls ``analyze``
when it wants a message. An analysis is::

    {"technical_indicators": Indicators, "patterns": [Pattern, ...], "risk_metrics": RiskMetrics,
     "trend": "bullish" | "bearish" | "neutral", "interval": "1m"}

Values are floats, ``None``, strings and lists/dicts of them, except each pattern's ``start``,
which stays a timezone-aware ``datetime`` for the wire layer to format.

What reads what:

- indicators and trend: the closed candles, plus the forming one when ``include_forming``;
- patterns and risk metrics: closed candles only (risk also reads the benchmark's closed candles).

Caching: everything computed from closed candles alone (patterns, risk metrics, the indicators
without the forming candle, the price arrays and the session VWAP sums) is computed at most once
per closed candle, so an ``analyze`` after a forming update only reruns the TA-Lib indicators on
arrays with one value appended. Returned objects may be shared with the cache: do not mutate them.

Updates: a closed candle is appended; one with the same start as the newest closed candle replaces
it (a correction); an older one is ignored. A forming candle is remembered as current until its
bucket closes; one for a bucket already closed is ignored.
"""

from __future__ import annotations

from collections import deque
from datetime import date
from typing import Any, TypedDict

import numpy as np

from tickhub.core.commands.indicators import IndicatorSet, set_key
from tickhub.core.model import Candle, Interval
from tickhub.engines.analysis.indicators import (
    LOOKBACK,
    FloatArray,
    Indicators,
    SessionVwap,
    indicators_from_prices,
    tail,
)
from tickhub.engines.analysis.patterns import (
    PATTERN_CONTEXT,
    Pattern,
    detect_patterns,
    patterns_on,
)
from tickhub.engines.analysis.pivots import previous_session, session_of
from tickhub.engines.analysis.risk import RISK_WINDOW, RiskMetrics, risk_metrics
from tickhub.engines.analysis.sets import Prices, compute_set, lookback, with_candle
from tickhub.engines.analysis.trend import Trend, classify_trend

DEFAULT_MAXLEN = 500
"""Closed candles kept per (symbol, interval): more than a 1m session (375) and ``LOOKBACK``."""

DEFAULT_BENCHMARK = "NIFTY 50"


class Analysis(TypedDict):
    """One ``/ws/analysis`` payload for a symbol and interval."""

    technical_indicators: Indicators | dict[str, Any]
    patterns: list[Pattern]
    risk_metrics: RiskMetrics
    trend: Trend
    interval: str


class AnalysisEngine:
    """Bounded closed-candle history per (symbol, interval), the forming candle, and analyses.

    ``benchmark`` names the symbol whose candles of the same interval give each symbol's beta
    (``None``: no beta). ``risk_window`` is the number of returns the risk metrics read.
    """

    def __init__(
        self,
        maxlen: int = DEFAULT_MAXLEN,
        *,
        benchmark: str | None = DEFAULT_BENCHMARK,
        risk_window: int = RISK_WINDOW,
    ) -> None:
        if risk_window < 2:
            raise ValueError(f"risk window must be at least 2 returns: {risk_window}")
        if maxlen <= risk_window:
            raise ValueError(f"maxlen must exceed the risk window ({risk_window}): {maxlen}")
        self.maxlen = maxlen
        self.benchmark = benchmark
        self.risk_window = risk_window
        self._series: dict[tuple[str, Interval], _Series] = {}

    def on_candle(self, candle: Candle) -> None:
        """Record a candle update: closed candles join the history, forming ones are current."""
        key = (candle.symbol, candle.interval)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self.maxlen)
        if candle.closed:
            series.close(candle)
        else:
            series.form(candle)

    def history(self, symbol: str, interval: Interval, n: int) -> list[Candle]:
        """The last ``n`` closed candles, oldest first (fewer if fewer are known)."""
        series = self._series.get((symbol, interval))
        if series is None or n <= 0:
            return []
        return tail(series.closed, n)

    def analyze(
        self,
        symbol: str,
        interval: Interval,
        include_forming: bool = False,
        indicators: IndicatorSet | None = None,
    ) -> Analysis:
        """The analysis of ``symbol`` at ``interval``; an unknown series gives the empty analysis
        (every value ``None``, no patterns, ``neutral``). ``indicators``: the set whose values
        replace the default ``technical_indicators`` (the trend stays the default set's rule)."""
        series = self._series.get((symbol, interval)) or _Series(self.maxlen)
        default, trend = series.indicators(include_forming)
        chosen: Indicators | dict[str, Any] = default
        if indicators is not None:
            chosen = series.indicator_set(indicators, include_forming)
        if series.patterns is None:
            series.patterns = series.detect_patterns()
        return {
            "technical_indicators": chosen,
            "patterns": series.patterns,
            "risk_metrics": self._risk(series, interval),
            "trend": trend,
            "interval": interval.value,
        }

    # --- what analysis alerts read (``tickhub.engines.alerts.analysis``) --------------------

    def forming(self, symbol: str, interval: Interval) -> Candle | None:
        """The forming candle taken as current (``None``: none, or one of a closed bucket)."""
        series = self._series.get((symbol, interval))
        return series.forming if series is not None else None

    def set_values(
        self, symbol: str, interval: Interval, specs: IndicatorSet, *, include_forming: bool
    ) -> dict[str, Any]:
        """The ``technical_indicators`` of ``specs``, as :meth:`analyze` computes them (the
        same cache: once per closed candle and set)."""
        series = self._series.get((symbol, interval)) or _Series(self.maxlen)
        return series.indicator_set(specs, include_forming)

    def set_values_before(
        self, symbol: str, interval: Interval, specs: IndicatorSet
    ) -> dict[str, Any] | None:
        """The values of ``specs`` on the closed candle before the newest (``None`` with fewer
        than two): those computed at its close when they were asked then, else computed now from
        the history without the newest candle (once per closed candle and set)."""
        series = self._series.get((symbol, interval))
        return series.indicator_set_before(specs) if series is not None else None

    def previous_session(
        self, symbol: str, interval: Interval, day: date
    ) -> tuple[float, float, float] | None:
        """High, low and close of the latest session before ``day`` in the closed candles."""
        series = self._series.get((symbol, interval))
        return series.session_before(day) if series is not None else None

    def patterns_with_forming(self, symbol: str, interval: Interval) -> list[Pattern]:
        """The patterns the forming candle would make if it closed now (not cached)."""
        series = self._series.get((symbol, interval))
        if series is None or series.forming is None:
            return []
        return detect_patterns([*tail(series.closed, PATTERN_CONTEXT), series.forming])

    def closed_patterns(self, symbol: str, interval: Interval) -> list[Pattern]:
        """The patterns on the newest closed candle (the cache :meth:`analyze` reports)."""
        series = self._series.get((symbol, interval))
        if series is None:
            return []
        if series.patterns is None:
            series.patterns = series.detect_patterns()
        return series.patterns

    def _risk(self, series: _Series, interval: Interval) -> RiskMetrics:
        benchmark = None
        if self.benchmark is not None:
            benchmark = self._series.get((self.benchmark, interval))
        benchmark_version = benchmark.version if benchmark is not None else -1
        if series.risk is None or series.risk[0] != benchmark_version:
            metrics = risk_metrics(
                series.closed,
                benchmark.closed if benchmark is not None else None,
                interval,
                self.risk_window,
            )
            series.risk = (benchmark_version, metrics)
        return series.risk[1]


class _Series:
    """One (symbol, interval): closed candles, the forming one, and caches valid for ``version``."""

    __slots__ = (
        "_before_last",
        "_closed_indicators",
        "before_sets",
        "closed",
        "columns",
        "forming",
        "patterns",
        "pivot_input",
        "risk",
        "sets",
        "version",
        "vwap",
    )

    def __init__(self, maxlen: int) -> None:
        self.closed: deque[Candle] = deque(maxlen=maxlen)
        self.forming: Candle | None = None
        self.version = 0
        # Session VWAP sums over every closed candle of the session seen, even ones evicted from
        # ``closed``; ``_before_last`` lets a correction of the newest candle replace its term.
        self.vwap = SessionVwap()
        self._before_last = SessionVwap()
        # Open, high, low, close and volume of ``closed``, kept beside it: a close appends to
        # them, instead of every computation building its arrays from the candles again.
        self.columns: tuple[FloatArray, ...] = tuple(np.empty(0) for _ in range(5))
        self._closed_indicators: tuple[Indicators, Trend] | None = None
        self.patterns: list[Pattern] | None = None
        self.risk: tuple[int, RiskMetrics] | None = None
        # Per set key, its values on the closed candles.
        self.sets: dict[str, dict[str, Any]] = {}
        # Per set key, its values on the closed candle before the newest (alerts' crossings).
        self.before_sets: dict[str, dict[str, Any]] = {}
        self.pivot_input: tuple[date, tuple[float, float, float] | None] | None = None

    def close(self, candle: Candle) -> None:
        if self.closed and candle.start < self.closed[-1].start:
            return
        row = (candle.open, candle.high, candle.low, candle.close, float(candle.volume))
        if self.closed and candle.start == self.closed[-1].start:
            self.closed[-1] = candle
            pairs = zip(self.columns, row, strict=True)
            self.columns = tuple(_replace_last(a, v) for a, v in pairs)
        else:
            self.closed.append(candle)
            keep, pairs = len(self.closed), zip(self.columns, row, strict=True)
            self.columns = tuple(np.append(a, v)[-keep:] for a, v in pairs)
            self._before_last = self.vwap
            self.before_sets = self.sets
        self.vwap = self._before_last.add(candle)
        if self.forming is not None and self.forming.start <= candle.start:
            self.forming = None
        self.version += 1
        self._closed_indicators = None
        self.patterns = None
        self.risk = None
        self.sets = {}
        self.pivot_input = None

    def detect_patterns(self) -> list[Pattern]:
        """The patterns on the newest closed candle (:func:`patterns_on` its columns)."""
        if not self.closed:
            return []
        open_, high, low, close, _ = self.columns
        return patterns_on(open_, high, low, close, self.closed[-1].start, with_strength=True)

    def form(self, candle: Candle) -> None:
        if self.closed and candle.start <= self.closed[-1].start:
            return
        self.forming = candle

    def indicators(self, include_forming: bool) -> tuple[Indicators, Trend]:
        if include_forming and self.forming is not None:
            return self._compute(self.forming)
        if self._closed_indicators is None:
            self._closed_indicators = self._compute(None)
        return self._closed_indicators

    def indicator_set(self, specs: IndicatorSet, include_forming: bool) -> dict[str, Any]:
        """A set's values: computed once per closed candle, and on each forming update asked."""
        forming = self.forming if include_forming else None
        if forming is None:
            key = set_key(specs)
            found = self.sets.get(key)
            if found is None:
                found = self.sets[key] = self._compute_set(specs, None)
            return found
        return self._compute_set(specs, forming)

    def _compute_set(self, specs: IndicatorSet, forming: Candle | None) -> dict[str, Any]:
        n = lookback(specs)
        _, high, low, close, volume = self.columns
        prices: Prices = (high[-n:], low[-n:], close[-n:], volume[-n:])
        vwap, have = self.vwap, len(self.closed)
        newest = forming if forming is not None else (self.closed[-1] if self.closed else None)
        if forming is not None:
            prices = with_candle(prices, forming, n)
            vwap, have = vwap.add(forming), have + 1
        session = None
        if newest is not None and any(s.name == "pivots" for s in specs):
            session = self._previous_session(session_of(newest))
        return compute_set(specs, prices, vwap=vwap.value, previous_session=session, have=have)

    def indicator_set_before(self, specs: IndicatorSet) -> dict[str, Any] | None:
        if len(self.closed) < 2:
            return None
        key = set_key(specs)
        found = self.before_sets.get(key)
        if found is None:
            n = lookback(specs)
            _, high, low, close, volume = self.columns
            before = slice(-(n + 1), -1)
            session = None
            if any(s.name == "pivots" for s in specs):
                # As for the newest candle: the whole history is scanned for its previous session.
                earlier = list(self.closed)[:-1]
                session = previous_session(earlier, session_of(earlier[-1]))
            found = self.before_sets[key] = compute_set(
                specs,
                (high[before], low[before], close[before], volume[before]),
                vwap=self._before_last.value,
                previous_session=session,
                have=len(self.closed) - 1,
            )
        return found

    def session_before(self, day: date) -> tuple[float, float, float] | None:
        """The previous session of ``day``: cached for the newest candle's day."""
        if self.closed and session_of(self.closed[-1]) == day:
            return self._previous_session(day)
        return previous_session(self.closed, day)

    def _previous_session(self, today: date) -> tuple[float, float, float] | None:
        """The pivots' input, found once per closed candle and day (a scan of the history)."""
        if self.pivot_input is None or self.pivot_input[0] != today:
            self.pivot_input = (today, previous_session(self.closed, today))
        return self.pivot_input[1]

    def _compute(self, forming: Candle | None) -> tuple[Indicators, Trend]:
        _, high, low, close, _ = self.columns
        high, low, close = high[-LOOKBACK:], low[-LOOKBACK:], close[-LOOKBACK:]
        vwap, have = self.vwap, len(self.closed)
        if forming is not None:
            high = np.append(high, forming.high)[-LOOKBACK:]
            low = np.append(low, forming.low)[-LOOKBACK:]
            close = np.append(close, forming.close)[-LOOKBACK:]
            vwap, have = vwap.add(forming), have + 1
        indicators = indicators_from_prices(high, low, close, vwap=vwap.value, have=have)
        last_close = float(close[-1]) if len(close) else None
        trend = classify_trend(last_close, indicators["ema_20"], indicators["macd"]["histogram"])
        return indicators, trend


def _replace_last(values: FloatArray, value: float) -> FloatArray:
    """A copy of ``values`` with its newest element ``value`` (a correction of the last close):
    a copy, since caches of the previous version may still read the old array."""
    out = values.copy()
    out[-1] = value
    return out
