"""Analysis alerts driven from the candles: a frame of values from the analysis engine's series,
evaluated by the alerts engine and saved before it is applied.

The frame reads the analysis engine's cached indicator-set computation: the operands of every
alert of one (symbol, interval) make one set, computed once per close and shared with the
``/ws/analysis`` subscribers of the same set. The values on the candle before (for crossings) come
from the history too, so nothing but ``last_candle`` needs remembering across a restart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tickhub.core.commands import IndicatorSet
from tickhub.core.model import Candle
from tickhub.engines.alerts import AlertEvent, AlertsEngine
from tickhub.engines.alerts.analysis import Frame
from tickhub.engines.analysis import AnalysisEngine
from tickhub.engines.analysis.pivots import session_of
from tickhub.ingest.alerts import StoredAlerts

__all__ = ["analysis_frame", "on_analysis_candle"]


def on_analysis_candle(
    alerts: StoredAlerts, analysis: AnalysisEngine, candle: Candle, at: datetime | None
) -> list[AlertEvent]:
    """Evaluate the analysis alerts of a candle update already given to ``analysis`` (a closed
    one, or a forming one for the alerts that ask for it); the firings, each saved with its
    alert. ``at`` is the time of a firing (the market's time; the candle's start if unknown)."""
    engine = alerts.engine
    if not engine.watches(candle.symbol, candle.interval, forming=not candle.closed):
        return []
    frame = analysis_frame(analysis, candle, engine)
    if frame is None:
        return []
    return alerts.on_analysis(frame, at if at is not None else candle.start)


def analysis_frame(analysis: AnalysisEngine, candle: Candle, engine: AlertsEngine) -> Frame | None:
    """The frame of ``candle`` for the alerts ``engine`` holds; ``None`` when the analysis engine
    did not take the candle as its newest (an older or a stale one)."""
    symbol, interval = candle.symbol, candle.interval
    needs = engine.analysis_needs(symbol, interval)
    specs = needs.specs
    closed = analysis.history(symbol, interval, 2)
    if candle.closed:
        if not closed or closed[-1].start != candle.start:
            return None
        newest = closed[-1]
        before = closed[-2] if len(closed) == 2 else None
        values = _values(analysis, newest, specs, forming=False)
        before_values = None
        if before is not None:
            before_values = analysis.set_values_before(symbol, interval, specs) if specs else {}
        patterns = analysis.closed_patterns(symbol, interval) if needs.patterns else []
    else:
        forming = analysis.forming(symbol, interval)
        if forming is None or forming.start != candle.start:
            return None
        newest = forming
        before = closed[-1] if closed else None
        values = _values(analysis, newest, specs, forming=True)
        before_values = _values(analysis, before, specs, forming=False) if before else None
        patterns = analysis.patterns_with_forming(symbol, interval) if needs.patterns else []
    session = before_session = None
    if needs.sessions:
        session = analysis.previous_session(symbol, interval, session_of(newest))
        if before is not None:
            before_session = analysis.previous_session(symbol, interval, session_of(before))
    return Frame(
        candle=newest,
        values=values,
        session=session,
        before=before,
        before_values=before_values,
        before_session=before_session,
        patterns=[{"name": p["name"], "direction": p["direction"]} for p in patterns],
    )


def _values(
    analysis: AnalysisEngine, candle: Candle, specs: IndicatorSet, *, forming: bool
) -> dict[str, Any]:
    if not specs:
        return {}
    return analysis.set_values(candle.symbol, candle.interval, specs, include_forming=forming)
