"""The simulated exchange's trading calendar: when the market is open and how time skips nights.

The market trades 09:15-15:30 IST on weekdays (exchange holidays are ignored). This is its own
module because the calendar changes for reasons of its own (holidays, a pre-open, a different
exchange) and is shared by the market model, the feed's pacing and the Kite emulator.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from tickhub.core.model import IST, SESSION_CLOSE, SESSION_OPEN

__all__ = [
    "SESSION_SECONDS",
    "add_session_time",
    "as_ist",
    "default_start",
    "next_weekday",
    "session_close",
    "session_open",
    "session_start",
]

SESSION_SECONDS = 22_500.0
"""Length of one continuous session, 09:15-15:30."""


def session_open(day: date) -> datetime:
    """09:15 IST of ``day``, whether or not ``day`` trades."""
    return datetime.combine(day, SESSION_OPEN, IST)


def session_close(day: date) -> datetime:
    """15:30 IST of ``day``, whether or not ``day`` trades."""
    return datetime.combine(day, SESSION_CLOSE, IST)


def next_weekday(day: date) -> date:
    """The first trading day after ``day``."""
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def as_ist(t: datetime) -> datetime:
    """``t`` in IST; a naive time raises ``ValueError``, as an unknown zone cannot be guessed."""
    if t.tzinfo is None:
        raise ValueError(f"time must be timezone-aware: {t!r}")
    return t.astimezone(IST)


def session_start(t: datetime) -> datetime:
    """The first session instant at or after ``t``, in IST: ``t`` itself during a session."""
    t = as_ist(t)
    day = t.date()
    if day.weekday() < 5 and t < session_close(day):
        return max(t, session_open(day))
    return session_open(next_weekday(day))


def default_start(now: datetime) -> datetime:
    """Where ``SimFeed`` starts when not told: the sim always shows a live session.

    During a session (09:15-15:30 IST on a weekday) it is ``now``; otherwise 09:15 IST of today, or
    of the next weekday at a weekend, so that a demo at night still sees a market moving.
    """
    t = as_ist(now)
    day = t.date()
    if day.weekday() >= 5:
        return session_open(next_weekday(day))
    if session_open(day) <= t < session_close(day):
        return t
    return session_open(day)


def add_session_time(t: datetime, seconds: float) -> datetime:
    """``t`` moved ``seconds`` of trading time forward, skipping nights and weekends.

    Passing 15:30 continues at the next weekday's 09:15; exactly 15:30 is still the same day.
    """
    if seconds <= 0:
        return t
    cur = as_ist(t)
    while True:
        day = cur.date()
        close = session_close(day)
        if day.weekday() < 5 and cur < close:
            cur = max(cur, session_open(day))
            left = (close - cur).total_seconds()
            if seconds <= left:
                return cur + timedelta(seconds=seconds)
            seconds -= left
        cur = session_open(next_weekday(day))
