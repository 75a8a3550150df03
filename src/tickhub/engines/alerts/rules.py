"""The arming rule that user alerts and built-in rules share: hysteresis, cool-down, one firing
per crossing.

An alert is *armed* until it fires. A fired alert re-arms only once the value has moved back past
its level by the hysteresis band, and fires again only when armed and its cool-down (exchange
time since its last firing) has passed, so a value oscillating around a level inside the band
fires once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

__all__ = ["Verdict", "cooled", "decide", "price_text", "rearms"]

Verdict = Literal["fire", "rearm"]


def cooled(last: datetime | None, now: datetime, cooldown: timedelta) -> bool:
    """Whether the cool-down since the last firing (``None``: never fired) is over at ``now``."""
    return last is None or now - last >= cooldown


def decide(
    armed: bool,
    active: bool,
    rearm: bool,
    last: datetime | None,
    now: datetime,
    cooldown: timedelta,
) -> Verdict | None:
    """What one evaluation does: ``"rearm"`` a disarmed alert that moved back past its band,
    ``"fire"`` an armed one whose condition holds after its cool-down, else nothing (``None``).

    Callers skip the call in the common case, an armed alert whose condition does not hold
    (``rearm`` is only read for a disarmed one). A condition met during the cool-down is not
    remembered: a level still met when it ends fires
    on the next evaluation, a crossing made during it is dropped.
    """
    if not armed:
        return "rearm" if rearm else None
    if active and cooled(last, now, cooldown):
        return "fire"
    return None


def rearms(above: bool, value: float, level: float, band: float) -> bool:
    """Whether a fired alert re-arms: one that fires ``above`` its level once ``value`` is under
    it by more than the band (a fraction of the level), one that fires below once it is over."""
    return value < level * (1 - band) if above else value > level * (1 + band)


def price_text(price: float) -> str:
    """A price as messages show it: two decimals, as NSE quotes."""
    return f"{price:.2f}"
