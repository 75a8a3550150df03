"""The simulated market's past: minute bars of the sessions before its start, from its seed.

Without a past, every start of the sim opens an empty chart whose indicators need half an hour
of candles to warm up. So the sim can tell what its instruments did in the ``sessions`` trading
days before the start's day: one OHLCV bar a minute, 09:15-15:29, per instrument. The bars end
where the live market begins: each instrument's last past close is the previous close the live
market opens from (its first day's gap then moves it, as any night does).

The model is the live one at minute scale: log returns load on a market and a banking factor
shared by all instruments, plus the instrument's own noise, with the volatilities and betas of
:class:`~tickhub.feeds.sim.instrument.SimInstrument` (drawn from the same seed); each night adds
the same gap variance as the live market's. Highs and lows reach past the open and close by a
random share of the minute's volatility; volume follows the intraday U of real sessions around
the instrument's daily volume. Indices have no volume.

Deterministic: the same seed, instruments, start and ``sessions`` give the same bars, on streams
of their own (``"<seed>:past:..."``), so the past never changes the live ticks.

The bars are closed 1m candles; the ingest rolls them up to every interval
(``tickhub.engines.candles.roll_up``) and gives them to the engines as their history. (Played
as ticks, the way a replayed bar file is, four ticks a bar through the candle engine, the
default past cost over four seconds of start-up; rolled up, a fraction of one.)
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from tickhub.core import defaults
from tickhub.core.model import Candle, Instrument, Interval
from tickhub.feeds.sim.instrument import SimInstrument
from tickhub.feeds.sim.session import SESSION_SECONDS, session_open, session_start

__all__ = ["MAX_SESSIONS", "MINUTES_PER_SESSION", "past_bars", "past_days"]

MINUTES_PER_SESSION = int(SESSION_SECONDS // 60)
"""Bars a session has: 09:15 to 15:29."""

_MINUTE = 60.0
_GAP_SECONDS = 1_800.0  # the live market's night: the variance of half an hour of trading
_WICK = 0.6  # highs and lows reach this many minute-volatilities past the body, at most ~2x
MAX_SESSIONS = defaults.SIM_MAX_HISTORY_SESSIONS
"""Sessions of past the sim generates at the most."""


def past_days(start: datetime, sessions: int) -> list[date]:
    """The ``sessions`` trading days before the day of ``session_start(start)``, oldest first."""
    if sessions < 0:
        raise ValueError(f"sessions must not be negative: {sessions}")
    if sessions > MAX_SESSIONS:
        raise ValueError(f"sessions must be at most {MAX_SESSIONS}: {sessions}")
    day = session_start(start).date()
    days: list[date] = []
    probe = day - timedelta(days=1)
    while len(days) < sessions:
        if probe.weekday() < 5:
            days.append(probe)
        probe -= timedelta(days=1)
    days.reverse()
    return days


def past_bars(
    instruments: Sequence[Instrument],
    *,
    start: datetime,
    sessions: int,
    seed: int,
    tick_rate: float,
    index_symbol: str,
) -> dict[str, list[Candle]]:
    """The past of each instrument by symbol: closed 1m candles, oldest first."""
    days = past_days(start, sessions)
    if not days or not instruments:
        return {}
    minutes = len(days) * MINUTES_PER_SESSION
    # The factors' steps: one per minute, and a night's gap before each day but the first.
    market = random.Random(f"{seed}:past:market")
    bank = random.Random(f"{seed}:past:bank")
    root = math.sqrt(_MINUTE)
    night = math.sqrt(_GAP_SECONDS)
    firsts = {d * MINUTES_PER_SESSION for d in range(1, len(days))}
    dm = [market.gauss() * root for _ in range(minutes)]
    db = [bank.gauss() * root for _ in range(minutes)]
    gaps_m = [market.gauss() * night if k in firsts else 0.0 for k in range(minutes)]
    gaps_b = [bank.gauss() * night if k in firsts else 0.0 for k in range(minutes)]
    starts = [
        session_open(day) + timedelta(minutes=m) for day in days for m in range(MINUTES_PER_SESSION)
    ]
    return {
        inst.symbol: _instrument_bars(
            inst,
            SimInstrument(inst, seed, tick_rate, index_symbol),
            random.Random(f"{seed}:past:{inst.instrument_token}"),
            starts,
            dm,
            db,
            gaps_m,
            gaps_b,
        )
        for inst in instruments
    }


def _instrument_bars(
    inst: Instrument,
    model: SimInstrument,
    rng: random.Random,
    starts: list[datetime],
    dm: list[float],
    db: list[float],
    gaps_m: list[float],
    gaps_b: list[float],
) -> list[Candle]:
    load_m, load_b = model.load_m, model.load_b
    noise = model.sigma * math.sqrt(_MINUTE)
    night_noise = model.sigma * math.sqrt(_GAP_SECONDS)
    minute_vol = math.sqrt((load_m**2 + load_b**2) * _MINUTE + noise**2)
    gauss, random_ = rng.gauss, rng.random
    # Log prices at each minute's open (x) and close (x + step); forward, then shifted so that
    # the last close is the live market's first previous close.
    opens: list[float] = []
    closes: list[float] = []
    x = 0.0
    for k in range(len(starts)):
        gap = gaps_m[k] * load_m + gaps_b[k] * load_b
        if gap:
            x += gap + night_noise * gauss()
        opens.append(x)
        x += load_m * dm[k] + load_b * db[k] + noise * gauss()
        closes.append(x)
    shift = math.log(model.prev_close) - x
    daily = model.volume_rate * SESSION_SECONDS
    lot = model.lot
    half = (MINUTES_PER_SESSION - 1) / 2
    bars: list[Candle] = []
    for k, begin in enumerate(starts):
        o = model.price(model.to_steps(math.exp(opens[k] + shift)))
        c = model.price(model.to_steps(math.exp(closes[k] + shift)))
        up = math.exp(minute_vol * _WICK * random_())
        down = math.exp(-minute_vol * _WICK * random_())
        h = max(model.price(model.to_steps(max(o, c) * up)), o, c)
        low = min(model.price(model.to_steps(min(o, c) * down)), o, c)
        volume = 0
        if inst.tradable:
            # The intraday U: busier at the open and the close (the profile averages 1).
            m = k % MINUTES_PER_SESSION
            shape = 0.6 + 1.2 * ((m - half) / half) ** 2
            mean = daily / MINUTES_PER_SESSION * shape * math.exp(0.5 * gauss() - 0.125)
            volume = max(1, round(mean / lot)) * lot
        bars.append(Candle(inst.symbol, Interval.M1, begin, o, h, low, c, volume, True))
    return bars
