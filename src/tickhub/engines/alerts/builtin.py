"""Built-in rules: the day rules on ticks and the candle rules on closed candles, per symbol.

A rule's arming state (:class:`_Rule`) persists as an :class:`Alert` with a stable id
(:func:`builtin_id`); its reference data (the day's high and low, the closed candles) is rebuilt
from the feed after a restart. Evaluation computes new states without touching the current ones;
the :class:`~tickhub.engines.alerts.model.Evaluation` carries how to apply them.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from tickhub.core.model import IST, SESSION_OPEN, Candle, Tick
from tickhub.engines.alerts.model import (
    BUILTIN_RULES,
    DAY_RULES,
    RULE_CATEGORY,
    UP_RULES,
    Alert,
    AlertChange,
    AlertEvent,
    AlertRules,
    Evaluation,
    builtin_id,
)
from tickhub.engines.alerts.rules import decide, price_text, rearms
from tickhub.engines.alerts.wire import alert_payload

__all__ = ["BuiltinRules"]


@dataclass(frozen=True, slots=True)
class _Rule:
    """Arming state of one built-in rule for one symbol (mirrors the persisted ``Alert``)."""

    armed: bool = True
    triggered_at: datetime | None = None
    price: float | None = None
    message: str | None = None
    level: float | None = None
    fire_count: int = 0
    candle: datetime | None = None  # start of the candle a candle rule fired on


_UNFIRED = _Rule()


@dataclass(slots=True)
class _Symbol:
    """What the built-in rules remember about one symbol."""

    last_at: datetime | None = None
    last_price: float | None = None
    prev_close: float = 0.0
    day: date | None = None
    high: float | None = None
    low: float | None = None
    candles: deque[Candle] = field(default_factory=deque)
    rules: dict[str, _Rule] = field(default_factory=dict)


_NOTHING_SEEN = _Symbol()  # read only: stands for a symbol no tick or candle has reached yet


class BuiltinRules:
    """The built-in rules of every symbol, and what each symbol's last tick was."""

    def __init__(self, rules: AlertRules) -> None:
        self.rules = rules
        self._band = rules.band
        self._cooldown = rules.cooldown
        self._symbols: dict[str, _Symbol] = {}

    def _symbol(self, symbol: str) -> _Symbol:
        sym = self._symbols.get(symbol)
        if sym is None:
            sym = self._symbols[symbol] = _Symbol()
        return sym

    def last_tick(self, symbol: str) -> tuple[datetime | None, float | None]:
        """The time and price of the newest tick evaluated for ``symbol`` (``None`` before)."""
        sym = self._symbols.get(symbol, _NOTHING_SEEN)
        return sym.last_at, sym.last_price

    def restore(self, alert: Alert) -> None:
        """Take back a rule's persisted state (an alert of another kind is ignored)."""
        if alert.condition not in RULE_CATEGORY:
            return
        sym = self._symbol(alert.symbol)
        sym.rules[alert.condition] = _Rule(
            armed=alert.armed,
            triggered_at=alert.triggered_at,
            price=alert.price,
            message=alert.message,
            level=alert.value,
            fire_count=alert.fire_count,
        )
        if alert.condition in DAY_RULES and alert.triggered_at is not None:
            # Tells the first tick of a later day to start the day rules afresh.
            day = alert.triggered_at.astimezone(IST).date()
            sym.day = day if sym.day is None else max(sym.day, day)

    # --- ticks ----------------------------------------------------------------------------------

    def evaluate_tick(self, tick: Tick, evaluation: Evaluation) -> None:
        """The day rules on ``tick`` (a price float, not older than the last), into
        ``evaluation``; settling it records the tick as the symbol's last."""
        symbol, now, price = tick.symbol, tick.timestamp, tick.price
        day_rules = self._day_rules(tick, evaluation) if self.rules.builtin_rules else None

        def settle() -> None:
            if day_rules is not None:
                day_rules()
            sym = self._symbol(symbol)
            sym.last_at = now
            sym.last_price = price
            if tick.prev_close > 0:
                sym.prev_close = tick.prev_close

        evaluation.settles.append(settle)

    def _roll(self, symbol: str, day: date) -> None:
        """Start the day rules afresh (armed, no high/low yet) on a new IST date."""
        sym = self._symbol(symbol)
        if sym.day == day:
            return
        sym.day = day
        sym.high = sym.low = None
        for rule in DAY_RULES:
            state = sym.rules.get(rule)
            if state is not None and not state.armed:
                sym.rules[rule] = replace(state, armed=True)

    def _day_rules(self, tick: Tick, evaluation: Evaluation) -> Callable[[], None]:
        """Evaluate the day rules into ``evaluation``; returns how to settle the day's
        reference data (the date, the high and the low)."""
        now, price, symbol = tick.timestamp, tick.price, tick.symbol
        sym = self._symbols.get(symbol, _NOTHING_SEEN)
        day = now.astimezone(IST).date()
        new_day = sym.day != day
        high, low = (None, None) if new_day else (sym.high, sym.low)
        step = self._step
        enabled = self.rules.builtin_rules

        states = sym.rules
        if new_day:  # as they will be once the day has rolled over
            states = {
                rule: replace(s, armed=True) if rule in DAY_RULES and not s.armed else s
                for rule, s in states.items()
            }

        if tick.prev_close > 0:
            pc, x, chg = tick.prev_close, self.rules.day_change_percent, tick.change_percent
            up, down = pc * (1 + x / 100), pc * (1 - x / 100)
            if "day_change_up" in enabled:
                step(
                    evaluation,
                    symbol,
                    "day_change_up",
                    states.get("day_change_up", _UNFIRED),
                    now=now,
                    price=price,
                    level=up,
                    active=chg >= x,
                    message=lambda: (
                        f"{symbol} up {chg:.2f}% on the day at {price_text(price)} "
                        f"(previous close {price_text(pc)})"
                    ),
                    day=day,
                )
            if "day_change_down" in enabled:
                step(
                    evaluation,
                    symbol,
                    "day_change_down",
                    states.get("day_change_down", _UNFIRED),
                    now=now,
                    price=price,
                    level=down,
                    active=chg <= -x,
                    message=lambda: (
                        f"{symbol} down {-chg:.2f}% on the day at {price_text(price)} "
                        f"(previous close {price_text(pc)})"
                    ),
                    day=day,
                )
        if high is not None and low is not None:
            quiet_until = datetime.combine(day, SESSION_OPEN, IST) + timedelta(
                minutes=self.rules.quiet_minutes
            )
            open_ = now >= quiet_until
            top, bottom = high, low
            if "new_day_high" in enabled:
                step(
                    evaluation,
                    symbol,
                    "new_day_high",
                    states.get("new_day_high", _UNFIRED),
                    now=now,
                    price=price,
                    level=top,
                    active=open_ and price > top,
                    message=lambda: (
                        f"{symbol} made a new day high at {price_text(price)} "
                        f"(previous high {price_text(top)})"
                    ),
                    day=day,
                )
            if "new_day_low" in enabled:
                step(
                    evaluation,
                    symbol,
                    "new_day_low",
                    states.get("new_day_low", _UNFIRED),
                    now=now,
                    price=price,
                    level=bottom,
                    active=open_ and price < bottom,
                    message=lambda: (
                        f"{symbol} made a new day low at {price_text(price)} "
                        f"(previous low {price_text(bottom)})"
                    ),
                    day=day,
                )
        # The exchange's day high/low cover trades before we started watching.
        new_high = max(x for x in (high, tick.high or None, price) if x is not None)
        new_low = min(x for x in (low, tick.low or None, price) if x is not None)

        def settle() -> None:
            self._roll(symbol, day)
            sym = self._symbol(symbol)
            sym.high, sym.low = new_high, new_low

        return settle

    # --- candles --------------------------------------------------------------------------------

    def evaluate_candle(self, candle: Candle, evaluation: Evaluation) -> None:
        """The candle rules on a closed candle of ``rules.interval`` newer than the last one,
        into ``evaluation``; settling it adds the candle to the symbol's history."""
        sym = self._symbols.get(candle.symbol, _NOTHING_SEEN)
        if self.rules.builtin_rules:
            self._candle_rules(sym, candle, evaluation)
        keep = self.rules.candle_window

        def settle() -> None:
            history = self._symbol(candle.symbol).candles
            history.append(candle)
            while len(history) > keep:
                history.popleft()

        evaluation.settles.append(settle)

    def newest_candle(self, symbol: str) -> datetime | None:
        """The start of the newest closed candle evaluated for ``symbol``."""
        history = self._symbols.get(symbol, _NOTHING_SEEN).candles
        return history[-1].start if history else None

    def _candle_rules(self, sym: _Symbol, candle: Candle, evaluation: Evaluation) -> None:
        rules = self.rules
        symbol, close = candle.symbol, float(candle.close)
        now = candle.start + candle.interval.delta
        history = list(sym.candles)
        label = candle.interval.value

        def step(rule: str, level: float, active: bool, text: str, value: float = close) -> None:
            self._step(
                evaluation,
                symbol,
                rule,
                sym.rules.get(rule, _UNFIRED),
                now=now,
                price=close,
                level=level,
                active=active,
                message=lambda: text,
                candle=candle.start,
                value=value,
            )

        if len(history) >= rules.volume_lookback:
            average = statistics.fmean(c.volume for c in history[-rules.volume_lookback :])
            if average > 0:
                threshold = rules.volume_multiple * average
                step(
                    "volume_spike",
                    threshold,
                    candle.volume > threshold,
                    f"{symbol} {label} volume {candle.volume} is {candle.volume / average:.1f}x "
                    f"the {rules.volume_lookback}-candle average {average:.0f}",
                    candle.volume,
                )
        if len(history) >= rules.breakout_lookback:
            window = history[-rules.breakout_lookback :]
            top, bottom = max(c.high for c in window), min(c.low for c in window)
            n = rules.breakout_lookback
            step(
                "breakout_high",
                top,
                close > top,
                f"{symbol} closed at {price_text(close)} above the {n}-candle high "
                f"{price_text(top)}",
            )
            step(
                "breakout_low",
                bottom,
                close < bottom,
                f"{symbol} closed at {price_text(close)} below the {n}-candle low "
                f"{price_text(bottom)}",
            )
        bands = self._bollinger(history, close)
        if bands is not None:
            upper, lower = bands
            spec = f"({rules.bollinger_period}, {rules.bollinger_width:g})"
            step(
                "bollinger_upper",
                upper,
                close > upper,
                f"{symbol} closed at {price_text(close)} above the upper Bollinger band "
                f"{price_text(upper)} {spec}",
            )
            step(
                "bollinger_lower",
                lower,
                close < lower,
                f"{symbol} closed at {price_text(close)} below the lower Bollinger band "
                f"{price_text(lower)} {spec}",
            )

    def _bollinger(self, history: list[Candle], close: float | None) -> tuple[float, float] | None:
        """(upper, lower) over the last ``bollinger_period`` closes, ending with ``close`` when
        given (a candle being evaluated) or with the newest closed candle."""
        period = self.rules.bollinger_period
        closes = [c.close for c in history[-period:]]
        if close is not None:
            closes = [*closes, close][-period:]
        if len(closes) < period:
            return None
        mean = statistics.fmean(closes)
        width = self.rules.bollinger_width * statistics.pstdev(closes, mean)
        return mean + width, mean - width

    # --- one rule -------------------------------------------------------------------------------

    def _step(
        self,
        evaluation: Evaluation,
        symbol: str,
        rule: str,
        state: _Rule,
        *,
        now: datetime,
        price: float,
        level: float,
        active: bool,
        message: Callable[[], str],
        candle: datetime | None = None,
        day: date | None = None,
        value: float | None = None,
    ) -> None:
        """One evaluation of one built-in rule: re-arm, or fire when armed and cooled down.

        ``value`` (``price`` unless given: a candle's volume) is what re-arms a fired rule once it
        is back past ``level`` by the band, under it for a rule of :data:`UP_RULES`, over it for
        the others. ``day`` (for a day rule) is the IST date whose fresh start applying it implies.
        """
        armed = state.armed
        if (armed and not active) or rule not in self.rules.builtin_rules:
            return
        rearm = not armed and rearms(
            rule in UP_RULES, price if value is None else value, level, self._band
        )
        verdict = decide(armed, active, rearm, state.triggered_at, now, self._cooldown)
        if verdict is None:
            return
        if verdict == "rearm":
            new = replace(state, armed=True)
            change = AlertChange(self._alert(symbol, rule, new))
        else:
            text = message()
            new = _Rule(
                armed=False,
                triggered_at=now,
                price=price,
                message=text,
                level=level,
                fire_count=state.fire_count + 1,
                candle=candle,
            )
            alert = self._alert(symbol, rule, new)
            change = AlertChange(alert, AlertEvent(alert, now, price, text, RULE_CATEGORY[rule]))

        def apply() -> None:
            if day is not None:
                self._roll(symbol, day)
            self._symbol(symbol).rules[rule] = new

        evaluation.add(change, apply)

    @staticmethod
    def _alert(symbol: str, rule: str, state: _Rule) -> Alert:
        return Alert(
            id=builtin_id(symbol, rule),
            symbol=symbol,
            condition=rule,
            value=state.level,
            once=False,
            source="builtin",
            triggered=not state.armed,
            triggered_at=state.triggered_at,
            price=state.price,
            message=state.message,
            armed=state.armed,
            last_price=state.price,
            fire_count=state.fire_count,
        )

    # --- state ----------------------------------------------------------------------------------

    def entries(self, symbol: str, firing: str | None) -> list[tuple[str, dict[str, object]]]:
        """``(list name, payload)`` of every enabled rule of ``symbol``, in
        :data:`BUILTIN_RULES` order: ``value`` is the level in force now (``None`` until known),
        ``fired`` whether it shows as fired, and only the rule whose id is ``firing`` has
        ``triggered`` true."""
        sym = self._symbols.get(symbol, _NOTHING_SEEN)
        levels = self._levels(sym)
        out: list[tuple[str, dict[str, object]]] = []
        for rule in BUILTIN_RULES:
            if rule not in self.rules.builtin_rules:
                continue
            alert = self._alert(symbol, rule, sym.rules.get(rule, _UNFIRED))
            at_level = replace(alert, value=levels.get(rule))
            payload = alert_payload(
                at_level, triggered=alert.id == firing, fired=self._showing(sym, rule)
            )
            out.append((f"{RULE_CATEGORY[rule]}_alerts", payload))
        return out

    def _levels(self, sym: _Symbol) -> dict[str, float | None]:
        """The level each built-in rule compares against now (for ``state``)."""
        rules = self.rules
        x = rules.day_change_percent
        pc = sym.prev_close
        levels: dict[str, float | None] = {
            "day_change_up": pc * (1 + x / 100) if pc > 0 else None,
            "day_change_down": pc * (1 - x / 100) if pc > 0 else None,
            "new_day_high": sym.high,
            "new_day_low": sym.low,
        }
        history = list(sym.candles)
        if len(history) >= rules.volume_lookback:
            average = statistics.fmean(c.volume for c in history[-rules.volume_lookback :])
            levels["volume_spike"] = rules.volume_multiple * average if average > 0 else None
        if len(history) >= rules.breakout_lookback:
            window = history[-rules.breakout_lookback :]
            levels["breakout_high"] = max(c.high for c in window)
            levels["breakout_low"] = min(c.low for c in window)
        bands = self._bollinger(history, None)
        if bands is not None:
            levels["bollinger_upper"], levels["bollinger_lower"] = bands
        return levels

    @staticmethod
    def _showing(sym: _Symbol, rule: str) -> bool:
        """A day rule shows as fired for the rest of the IST day it fired on; a candle rule for
        the candle it fired on (until the next closed candle)."""
        state = sym.rules.get(rule)
        if state is None or state.triggered_at is None:
            return False
        if rule in DAY_RULES:
            return state.triggered_at.astimezone(IST).date() == sym.day
        return bool(sym.candles) and state.candle == sym.candles[-1].start
