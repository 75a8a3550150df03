"""Candle analysis for the ``/ws/analysis`` stream: indicators, patterns, risk metrics, trend.

Pure (no asyncio, no I/O). ``AnalysisEngine`` keeps the candle history and caches; the functions
it uses work on any sequence of candles.
"""

from __future__ import annotations

from tickhub.engines.analysis.engine import (
    DEFAULT_BENCHMARK,
    DEFAULT_MAXLEN,
    Analysis,
    AnalysisEngine,
)
from tickhub.engines.analysis.indicators import (
    LOOKBACK,
    WARMUP_NEEDED,
    Bollinger,
    Indicators,
    Macd,
    SessionVwap,
    Warmup,
    compute_indicators,
)
from tickhub.engines.analysis.patterns import PATTERNS, Direction, Pattern, detect_patterns
from tickhub.engines.analysis.risk import RISK_WINDOW, RiskMetrics, periods_per_year, risk_metrics
from tickhub.engines.analysis.trend import Trend, classify_trend

__all__ = [
    "DEFAULT_BENCHMARK",
    "DEFAULT_MAXLEN",
    "LOOKBACK",
    "PATTERNS",
    "RISK_WINDOW",
    "WARMUP_NEEDED",
    "Analysis",
    "AnalysisEngine",
    "Bollinger",
    "Direction",
    "Indicators",
    "Macd",
    "Pattern",
    "RiskMetrics",
    "SessionVwap",
    "Trend",
    "Warmup",
    "classify_trend",
    "compute_indicators",
    "detect_patterns",
    "periods_per_year",
    "risk_metrics",
]
