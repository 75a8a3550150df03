"""What an alert is: the rule settings, the alert and its firing, and what an evaluation changed.

Everything here is plain data that the store persists and the wire shows; the behaviour lives in
:mod:`~tickhub.engines.alerts.user` and :mod:`~tickhub.engines.alerts.builtin`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal

from tickhub.core import defaults
from tickhub.core.commands import Condition, Operand
from tickhub.core.model import Interval

__all__ = [
    "BUILTIN_RULES",
    "CONDITIONS",
    "DAY_RULES",
    "RULE_CATEGORY",
    "UP_RULES",
    "Alert",
    "AlertChange",
    "AlertEvent",
    "AlertRules",
    "AnalysisRule",
    "Category",
    "Evaluation",
    "Source",
    "builtin_id",
]

Category = Literal["price", "volume", "breakout", "indicator", "pattern"]
Source = Literal["user", "builtin"]

CONDITIONS: Final = tuple(c.value for c in Condition)
"""User alert conditions (``Alert.condition`` of a user alert), in the order error messages list
them: the names of :class:`tickhub.core.commands.Condition`."""

BUILTIN_RULES = (
    "day_change_up",
    "day_change_down",
    "new_day_high",
    "new_day_low",
    "volume_spike",
    "breakout_high",
    "breakout_low",
    "bollinger_upper",
    "bollinger_lower",
)
"""Built-in rule names, in the order ``state`` lists them."""

RULE_CATEGORY: dict[str, Category] = {
    "day_change_up": "price",
    "day_change_down": "price",
    "new_day_high": "price",
    "new_day_low": "price",
    "volume_spike": "volume",
    "breakout_high": "breakout",
    "breakout_low": "breakout",
    "bollinger_upper": "breakout",
    "bollinger_lower": "breakout",
}
"""The stream list (``<category>_alerts``) each built-in rule shows in."""

DAY_RULES = frozenset({"day_change_up", "day_change_down", "new_day_high", "new_day_low"})
"""Built-in rules evaluated on ticks, which start afresh on each IST date."""

UP_RULES = frozenset(
    {"day_change_up", "new_day_high", "volume_spike", "breakout_high", "bollinger_upper"}
)
"""Built-in rules that fire above their level (the others fire below it)."""


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Settings of the built-in rules, and the hysteresis and cool-down of every re-arming alert.

    ``builtin_rules`` selects which built-in rules run (all by default; empty disables them).
    ``max_alerts_per_owner`` bounds the user alerts one owner can hold (``limit_exceeded``).
    Raises ``ValueError`` for a setting that would make the rules meaningless.
    """

    day_change_percent: float = 2.0
    quiet_minutes: int = 15
    volume_multiple: float = 3.0
    volume_lookback: int = 20
    breakout_lookback: int = 20
    bollinger_period: int = 20
    bollinger_width: float = 2.0
    interval: Interval = Interval.M1
    hysteresis_percent: float = 0.1
    cooldown_seconds: float = 60.0
    builtin_rules: frozenset[str] = frozenset(BUILTIN_RULES)
    max_alerts_per_owner: int = defaults.MAX_ALERTS_PER_OWNER

    def __post_init__(self) -> None:
        positive = {
            "day_change_percent": self.day_change_percent,
            "volume_multiple": self.volume_multiple,
            "bollinger_width": self.bollinger_width,
        }
        for name, number in positive.items():
            if not (math.isfinite(number) and number > 0):
                raise ValueError(f"{name} must be a positive number, got {number!r}")
        for name, number in {
            "hysteresis_percent": self.hysteresis_percent,
            "cooldown_seconds": self.cooldown_seconds,
        }.items():
            if not (math.isfinite(number) and number >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {number!r}")
        if self.quiet_minutes < 0:
            raise ValueError(f"quiet_minutes must be >= 0, got {self.quiet_minutes!r}")
        for name, count in {
            "volume_lookback": self.volume_lookback,
            "breakout_lookback": self.breakout_lookback,
            "bollinger_period": self.bollinger_period,
            "max_alerts_per_owner": self.max_alerts_per_owner,
        }.items():
            if count < 1:
                raise ValueError(f"{name} must be >= 1, got {count!r}")
        unknown = sorted(set(self.builtin_rules) - set(BUILTIN_RULES))
        if unknown:
            allowed = ", ".join(BUILTIN_RULES)
            raise ValueError(f"unknown built-in rule: {unknown[0]!r} (allowed: {allowed})")

    @property
    def cooldown(self) -> timedelta:
        """The cool-down as a duration of exchange time."""
        return timedelta(seconds=self.cooldown_seconds)

    @property
    def band(self) -> float:
        """The hysteresis band as a fraction of the level (0.001 for 0.1 %)."""
        return self.hysteresis_percent / 100.0

    @property
    def candle_window(self) -> int:
        """Closed candles the candle rules need to remember."""
        return max(self.volume_lookback, self.breakout_lookback, self.bollinger_period)


@dataclass(frozen=True, slots=True)
class AnalysisRule:
    """What makes a user alert an analysis alert: evaluated on the candles of ``interval``.

    An indicator alert compares ``indicator`` with ``other``, or with the alert's ``value``
    when ``other`` is ``None``; a pattern alert (``pattern`` set: a pattern name or ``any``)
    fires on a candle with that pattern, of ``direction`` (``None``: any). ``forming``: also
    evaluated on the forming candle's updates.
    """

    interval: Interval
    indicator: Operand | None = None
    other: Operand | None = None
    pattern: str | None = None
    direction: str | None = None
    forming: bool = False

    @property
    def category(self) -> Category:
        return "pattern" if self.pattern is not None else "indicator"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert and its evaluation state (everything the store persists).

    For a user alert ``condition`` is one of :data:`CONDITIONS` and ``value`` its level (a price,
    or a percentage for ``percent_change``). For a built-in rule ``condition`` is the rule name
    and ``value`` the level it fired against (``None`` until it fires); its ``owner`` is ``""``.

    ``triggered_at``, ``price`` and ``message`` describe the last firing; ``armed`` tells whether
    it can fire again; ``last_price`` is the last price evaluated (for crossing detection) as of
    the last save; ``fire_count`` counts firings.

    An analysis alert has a ``rule`` (and ``condition`` one of ``AnalysisCondition``'s names);
    ``last_candle`` is the start of the candle it last fired on (a candle not newer never fires
    it again) and ``values`` the left and right values of that firing (indicator alerts).
    """

    id: str
    symbol: str
    condition: str
    value: float | None
    owner: str = ""
    once: bool = True
    note: str | None = None
    source: Source = "user"
    triggered: bool = False
    triggered_at: datetime | None = None
    price: float | None = None
    message: str | None = None
    armed: bool = True
    last_price: float | None = None
    fire_count: int = 0
    rule: AnalysisRule | None = None
    last_candle: datetime | None = None
    values: tuple[float, float] | None = None

    @property
    def category(self) -> Category:
        """``price`` for a user price alert, ``indicator`` or ``pattern`` for an analysis alert;
        a built-in rule's from :data:`RULE_CATEGORY`."""
        if self.rule is not None:
            return self.rule.category
        return "price" if self.source == "user" else RULE_CATEGORY[self.condition]


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert that fired: ``alert`` is its state after firing.

    A user alert's event is for its ``alert.owner`` only; a built-in one (``alert.source ==
    "builtin"``) is for everyone watching ``alert.symbol``.
    """

    alert: Alert
    triggered_at: datetime
    price: float
    message: str
    category: Category

    @property
    def symbol(self) -> str:
        """The symbol the alert watches."""
        return self.alert.symbol


@dataclass(frozen=True, slots=True)
class AlertChange:
    """A new state of one alert that must survive a restart: ``alert`` as it is now, and
    ``event``, the firing that made it so (``None`` when it only re-armed).

    Whoever keeps alerts durable writes ``event`` with its alert in one transaction (or ``alert``
    alone), and only then lets the engine apply the change: that order is what makes a firing
    happen once across restarts.
    """

    alert: Alert
    event: AlertEvent | None = None


@dataclass(slots=True)
class Evaluation:
    """What one tick or one closed candle changes, computed but not yet applied to the engine.

    ``changes`` are in the order they must be made durable. The engine's ``commit`` applies them;
    given how many of them were persisted, it applies only those, and the rest is evaluated again
    on the next tick (a failed write is retried, never lost and never doubled). An evaluation is
    committed once, before the engine evaluates anything else.
    """

    changes: list[AlertChange] = field(default_factory=list)
    applies: list[Callable[[], None]] = field(default_factory=list)
    """One per change: what applying it does to the engine."""
    always: list[Callable[[], None]] = field(default_factory=list)
    """State that no change depends on (the last price of alerts that did not change)."""
    settles: list[Callable[[], None]] = field(default_factory=list)
    """State applied only when every change was: the references the next evaluation uses."""

    def add(self, change: AlertChange, apply: Callable[[], None]) -> None:
        """Append a change and how to apply it."""
        self.changes.append(change)
        self.applies.append(apply)

    @property
    def events(self) -> list[AlertEvent]:
        """The firings among the changes, in order."""
        return [c.event for c in self.changes if c.event is not None]


def builtin_id(symbol: str, rule: str) -> str:
    """The id of a built-in rule's alert for one symbol: stable, so that its state persists."""
    return f"builtin:{symbol}:{rule}"
