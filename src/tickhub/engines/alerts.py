"""Alert rules and their evaluation for the ``/ws/alerts`` stream (pure: no asyncio, no I/O).

The shell feeds every tick to :meth:`AlertsEngine.on_tick` and every candle update to
:meth:`AlertsEngine.on_candle`; each returns the :class:`AlertEvent` objects that fired. Time comes
only from tick and candle timestamps (exchange time), never from the wall clock, so replays and
tests are deterministic. The engine evaluates whether or not anyone is subscribed, so a crossing
that happened while nobody was connected shows in :meth:`~AlertsEngine.state` and
:meth:`~AlertsEngine.recent_events` later.

User alerts
    ``create(owner, symbol, condition, value, once=True, note=None)``; ``condition`` is one of

    - ``above``: price >= value. A level: fires on the transition from not-above to above. The
      first evaluation after creation (the next tick) counts as a transition when the price is
      already above, so an alert created under the market fires at once.
    - ``below``: price <= value; the mirror of ``above``.
    - ``cross_up``: only an actual crossing, previous price < value <= price. The previous price
      of the first evaluation is the symbol's last price when the alert was created (if known),
      so a crossing right after creation is not missed, and an alert created above the level
      waits for the price to come back under it and cross.
    - ``cross_down``: previous price > value >= price; the mirror of ``cross_up``.
    - ``percent_change``: ``value`` is a percentage against the previous close, absolute: a
      level that is active while ``|change_percent| >= value`` (``Tick.change_percent``, so the
      same rounded figure clients see). Ticks without a previous close are not evaluated.

    ``once=True`` (default): after firing, the alert is ``triggered`` for good; no more events.

    ``once=False``: after firing, the alert is disarmed. It re-arms once the price has moved back
    past the level by the hysteresis band (``AlertRules.hysteresis_percent`` of the level,
    default 0.1 %: for 2500.00, under 2497.50 for ``above``/``cross_up``, over 2502.50 for
    ``below``/``cross_down``; for ``percent_change`` the levels are the prices
    ``prev_close × (1 ± value/100)``). It fires again only when armed *and* the cool-down
    (``AlertRules.cooldown_seconds``, default 60 s of exchange time) since its last firing has
    passed. A level condition still met when the cool-down ends fires on the first tick after it;
    a crossing made during the cool-down is dropped (the alert stays armed for the next one). So
    a price oscillating around a level inside the band fires once. ``triggered`` is true from a
    firing until the alert re-arms; ``triggered_at``/``price``/``message`` keep the last firing.

    A tick at or before an alert's last firing is not evaluated for it, and a tick older than the
    symbol's newest tick is ignored, so a replayed or out-of-order tick never fires twice.

    On the wire, ``Alert.triggered`` (the lasting fired state) is the field ``fired``; the
    wire's ``triggered`` is true only in the message that announces a firing, so that a client
    that notifies on it (as the seed's example does) notifies once per firing.

Built-in rules (:class:`AlertRules`, applied to every symbol; ids ``builtin:<SYMBOL>:<rule>``)
    Price (ticks): ``day_change_up``/``day_change_down`` while the change against the previous
    close is >= +X % / <= -X % (default 2); ``new_day_high``/``new_day_low`` when the price goes
    beyond the day's high/low so far (the exchange's ``Tick.high``/``Tick.low`` and every price
    seen), but only from ``quiet_minutes`` (default 15) after the 09:15 IST open, so the opening
    does not spam; the first tick seen for a day only sets the reference. Day rules start afresh
    (armed, new high/low) on each IST date.

    Volume and breakout (closed candles of ``AlertRules.interval``, default 1m; forming candles
    and other intervals are ignored; a candle not newer than the last closed one is ignored):
    ``volume_spike`` when the candle's volume is above ``volume_multiple`` (3) × the average
    volume of the previous ``volume_lookback`` (20) closed candles; ``breakout_high``/
    ``breakout_low`` when the close is above the highest high / below the lowest low of the
    previous ``breakout_lookback`` (20) candles; ``bollinger_upper``/``bollinger_lower`` when the
    close is outside Bollinger(``bollinger_period``, ``bollinger_width``) = mean ± width ×
    population standard deviation of the last 20 closes, the candle's own close included (as
    TA-Lib's BBANDS). Each needs its full window of history first. A candle rule's time is the
    end of the candle (``start + interval``).

    Built-in rules re-arm with the same hysteresis and cool-down as ``once=False`` user alerts,
    per rule per symbol (for volume, a candle back under the threshold by the band re-arms).
    In :meth:`~AlertsEngine.state` a day rule shows ``triggered`` for the rest of the IST day it
    fired on; a candle rule for the candle it fired on (until the next closed candle).

Persistence
    Given a :class:`~tickhub.store.Store`, the engine loads alerts at start and saves on every
    change: create, delete, firing (the event and the alert's new state in one transaction) and
    re-arming. After a restart over the same store an alert never fires twice for one crossing.
    Built-in rules persist their arming state too (the first time they fire), so a restart does
    not repeat their events; their reference data (day high, candle history) is rebuilt from the
    feed.
"""

from __future__ import annotations

import builtins
import math
import secrets
import statistics
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Final, Literal

from tickhub.core.model import IST, SESSION_OPEN, Candle, Interval, Tick
from tickhub.core.protocol import ErrorCode, ProtocolError, clip, iso, shown

if TYPE_CHECKING:
    from tickhub.store import Store

__all__ = [
    "BUILTIN_RULES",
    "CONDITIONS",
    "NOTE_MAX_LENGTH",
    "PERCENT_RANGE",
    "PRICE_RANGE",
    "VALUE_DECIMALS",
    "Alert",
    "AlertEvent",
    "AlertRules",
    "AlertsEngine",
    "Category",
    "Source",
    "alert_payload",
    "builtin_id",
    "event_payload",
]

Category = Literal["price", "volume", "breakout"]
Source = Literal["user", "builtin"]

CONDITIONS = ("above", "below", "cross_up", "cross_down", "percent_change")
"""User alert conditions, in the order error messages list them."""

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

NOTE_MAX_LENGTH = 200

PRICE_RANGE: Final = (Decimal("0.01"), Decimal(10) ** 9)
"""An alert's price level, inclusive: one paisa to 10^9 rupees (the range of a position's
average price; far above any NSE quote)."""

PERCENT_RANGE: Final = (Decimal("0.01"), Decimal(100))
"""A ``percent_change`` level, inclusive: a price cannot fall more than 100 %, and NSE's widest
daily price band is 20 %."""

VALUE_DECIMALS: Final = 2
"""Decimals an alert level may have: NSE quotes equities in steps of 0.05, but a level may be
set at any paisa (and a percentage at any hundredth)."""

_STEP = Decimal(1).scaleb(-VALUE_DECIMALS)

_CATEGORY: dict[str, Category] = {
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
_DAY_RULES = frozenset({"day_change_up", "day_change_down", "new_day_high", "new_day_low"})
_UP = frozenset(
    {"day_change_up", "new_day_high", "volume_spike", "breakout_high", "bollinger_upper"}
)
"""Built-in rules that fire above their level (the others fire below it)."""


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Settings of the built-in rules, and the hysteresis and cool-down of every re-arming alert.

    ``builtin_rules`` selects which built-in rules run (all by default; empty disables them).
    ``max_alerts_per_owner`` bounds the user alerts one owner can hold (``limit_exceeded``).
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
    max_alerts_per_owner: int = 500

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
        return timedelta(seconds=self.cooldown_seconds)

    @property
    def band(self) -> float:
        """The hysteresis band as a fraction of the level (0.001 for 0.1 %)."""
        return self.hysteresis_percent / 100.0


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert and its evaluation state (everything the store persists).

    For a user alert ``condition`` is one of :data:`CONDITIONS` and ``value`` its level (a price,
    or a percentage for ``percent_change``). For a built-in rule ``condition`` is the rule name
    and ``value`` the level it fired against (``None`` until it fires); its ``owner`` is ``""``.

    ``triggered_at``, ``price`` and ``message`` describe the last firing; ``armed`` tells whether
    it can fire again; ``last_price`` is the last price evaluated (for crossing detection) as of
    the last save; ``fire_count`` counts firings.
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

    @property
    def category(self) -> Category:
        return "price" if self.source == "user" else _CATEGORY[self.condition]


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
        return self.alert.symbol


def builtin_id(symbol: str, rule: str) -> str:
    return f"builtin:{symbol}:{rule}"


def _new_id() -> str:
    return "a_" + secrets.token_hex(6)


# --- wire payloads ------------------------------------------------------------------------------


def _round(value: object) -> object:
    """Levels derived from averages keep float artefacts; the wire shows 4 decimals."""
    return round(value, 4) if isinstance(value, float) else value


def alert_payload(
    alert: Alert, *, triggered: bool = False, fired: bool | None = None
) -> dict[str, object]:
    """An alert for the wire.

    ``triggered`` is true only where a firing is announced (the event message, on the alert that
    fired), so the seed's ``if (alert.triggered) showNotification(...)`` notifies once per
    firing; the lasting state is ``fired`` (the stored flag unless given) and ``armed``.
    """
    body: dict[str, object] = {
        "id": alert.id,
        "symbol": alert.symbol,
        "type": alert.condition,
        "condition": alert.condition,
        "value": _round(alert.value),
        "triggered": triggered,
        "fired": alert.triggered if fired is None else fired,
        "triggered_at": iso(alert.triggered_at) if alert.triggered_at is not None else None,
        "price": alert.price,
        "message": alert.message,
        "once": alert.once,
        "note": alert.note,
        "source": alert.source,
        "armed": alert.armed,
        "fire_count": alert.fire_count,
        "category": alert.category,
    }
    if alert.source == "user":
        body["owner"] = alert.owner
    else:
        # Built-in rules: ``type`` is the rule, ``condition`` its direction against ``value``.
        body["condition"] = "above" if alert.condition in _UP else "below"
    return body


def event_payload(event: AlertEvent, *, triggered: bool = True) -> dict[str, object]:
    """A firing for the wire: the alert after firing, with this firing's time, price, message
    (``triggered`` false where it is only recalled, as in ``recent_events``)."""
    body = alert_payload(event.alert, triggered=triggered, fired=True)
    body.update(
        triggered_at=iso(event.triggered_at),
        price=event.price,
        message=event.message,
        category=event.category,
    )
    return body


# --- validation ---------------------------------------------------------------------------------


def _invalid(name: str, message: str, **details: object) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_FIELD, message, {"field": name, **details})


def _missing(name: str) -> ProtocolError:
    return ProtocolError(ErrorCode.MISSING_FIELD, f"missing field: {name!r}", {"field": name})


def _kind(value: object) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _level(condition: str, value: object) -> float | ProtocolError:
    """The ``value`` of a new alert: a price in :data:`PRICE_RANGE`, or for ``percent_change`` a
    percentage in :data:`PERCENT_RANGE`, with at most :data:`VALUE_DECIMALS` decimals (checked
    on the number as written, so ``2500.1`` passes and ``5e-324`` or ``2**64`` do not)."""
    if value is None:
        return _missing("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _invalid("value", f"field 'value' must be a number, got {_kind(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        return _invalid("value", f"field 'value' must be a finite number, got {shown(value)}")
    # The shortest repr is the number the sender wrote: 0.1 -> Decimal("0.1").
    exact = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    percent = condition == "percent_change"
    low, high = PERCENT_RANGE if percent else PRICE_RANGE
    what = "a percentage" if percent else "a price"
    if not low <= exact <= high:
        return _invalid(
            "value",
            f"field 'value' must be {what} from {low} to {high:f}, got {shown(value)}",
            min=float(low),
            max=float(high),
        )
    if exact != exact.quantize(_STEP):
        return _invalid(
            "value",
            f"field 'value' must have at most {VALUE_DECIMALS} decimals, got {shown(value)}",
            decimals=VALUE_DECIMALS,
        )
    return float(exact)


# --- evaluation state ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Rule:
    """Arming state of one built-in rule for one symbol (mirrors the persisted ``Alert``)."""

    armed: bool = True
    triggered_at: datetime | None = None
    price: float | None = None
    message: str | None = None
    level: float | None = None
    fire_count: int = 0
    candle: datetime | None = None  # start of the candle a candle rule fired on
    saved: bool = False  # has a row in the store


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

    def rule(self, name: str) -> _Rule:
        state = self.rules.get(name)
        if state is None:
            state = self.rules[name] = _Rule()
        return state


def _cooled(last: datetime | None, now: datetime, cooldown: timedelta) -> bool:
    return last is None or now - last >= cooldown


def _fmt(price: float) -> str:
    return f"{price:.2f}"


# --- engine -------------------------------------------------------------------------------------


class AlertsEngine:
    """User alerts and built-in rules over ticks and closed candles (see the module doc).

    ``store`` (optional) persists alerts and events; without one, state lives in memory only.
    ``new_id`` makes user alert ids (``a_`` + 12 hex digits by default).
    """

    def __init__(
        self,
        store: Store | None = None,
        rules: AlertRules | None = None,
        *,
        new_id: Callable[[], str] = _new_id,
        memory_events: int = 100,
    ) -> None:
        self.rules = rules if rules is not None else AlertRules()
        self._store = store
        self._new_id = new_id
        self._alerts: dict[str, Alert] = {}
        self._by_symbol: dict[str, dict[str, Alert]] = {}
        self._last_price: dict[str, float] = {}  # per user alert id, between saves
        self._symbols: dict[str, _Symbol] = {}
        self._events: dict[str, deque[AlertEvent]] = {}  # only without a store
        self._memory_events = memory_events
        if store is not None:
            for alert in store.load_alerts():
                if alert.source == "user":
                    self._put(alert)
                else:
                    self._restore_builtin(alert)

    # --- user alerts ----------------------------------------------------------------------------

    def create(
        self,
        owner: str | None,
        symbol: object,
        condition: object,
        value: object,
        once: object = True,
        note: object = None,
    ) -> Alert | ProtocolError:
        """Validate and add a user alert, saved before it is returned.

        Errors (``ProtocolError``): ``missing_field`` for a missing symbol, condition or value;
        ``invalid_field`` for an unknown condition, a value that is not a number (a boolean is
        not one) in :data:`PRICE_RANGE` (:data:`PERCENT_RANGE` for ``percent_change``) with at
        most :data:`VALUE_DECIMALS` decimals, a non-boolean ``once``, a ``note`` that is not a
        string of at most 200 characters; ``limit_exceeded`` past ``max_alerts_per_owner``. No
        error echoes a structure the client sent, only its JSON type.
        """
        owner = owner or ""
        if symbol is None or (isinstance(symbol, str) and not symbol.strip()):
            return _missing("symbol")
        if not isinstance(symbol, str):
            return _invalid("symbol", f"field 'symbol' must be a string, got {_kind(symbol)}")
        symbol = symbol.strip()
        if condition is None or condition == "":
            return _missing("condition")
        if not isinstance(condition, str):
            return _invalid(
                "condition", f"field 'condition' must be a string, got {_kind(condition)}"
            )
        name = condition.strip().lower()
        if name not in CONDITIONS:
            allowed = ", ".join(CONDITIONS)
            return _invalid(
                "condition",
                f"unknown condition: {shown(condition)} (allowed: {allowed})",
                allowed=list(CONDITIONS),
            )
        level = _level(name, value)
        if isinstance(level, ProtocolError):
            return level
        if not isinstance(once, bool):
            return _invalid("once", f"field 'once' must be a boolean, got {_kind(once)}")
        if note is not None and not isinstance(note, str):
            return _invalid("note", f"field 'note' must be a string, got {_kind(note)}")
        if note is not None and len(note) > NOTE_MAX_LENGTH:
            return _invalid(
                "note",
                f"field 'note' is too long: {len(note)} characters (at most {NOTE_MAX_LENGTH})",
            )
        held = sum(1 for a in self._alerts.values() if a.owner == owner)
        if held >= self.rules.max_alerts_per_owner:
            return ProtocolError(
                ErrorCode.LIMIT_EXCEEDED,
                f"too many alerts: {held} (at most {self.rules.max_alerts_per_owner})",
                {"limit": self.rules.max_alerts_per_owner},
            )
        alert_id = self._new_id()
        while alert_id in self._alerts:
            alert_id = self._new_id()
        known = self._symbols.get(symbol)
        alert = Alert(
            id=alert_id,
            symbol=symbol,
            condition=name,
            value=level,
            owner=owner,
            once=once,
            note=note or None,
            last_price=known.last_price if known is not None else None,
        )
        if self._store is not None:
            self._store.save_alert(alert)
        self._put(alert)
        return alert

    def delete(self, owner: str | None, id: object) -> bool | ProtocolError:
        """Remove one of ``owner``'s alerts: ``True``, or ``not_found`` (another owner's alert
        is not found either)."""
        owner = owner or ""
        if id is None or id == "":
            return _missing("id")
        if not isinstance(id, str):
            return _invalid("id", f"field 'id' must be a string, got {_kind(id)}")
        alert = self._alerts.get(id)
        if alert is None or alert.owner != owner:
            return ProtocolError(
                ErrorCode.NOT_FOUND, f"unknown alert: {shown(id)}", {"id": clip(id)}
            )
        if self._store is not None:
            self._store.delete_alert(id)
        del self._alerts[id]
        by_symbol = self._by_symbol[alert.symbol]
        del by_symbol[id]
        if not by_symbol:
            del self._by_symbol[alert.symbol]
        self._last_price.pop(id, None)
        return True

    def get(self, id: str) -> Alert | None:
        return self._alerts.get(id)

    # --- evaluation -----------------------------------------------------------------------------

    def on_tick(self, tick: Tick) -> builtins.list[AlertEvent]:
        """Evaluate the tick's symbol: user alerts, then the built-in price rules."""
        price = tick.price
        if not (math.isfinite(price) and price > 0):
            return []
        if type(price) is not float:  # an int from a hand-built tick: events carry floats
            price = float(price)
            tick = replace(tick, price=price)
        sym = self._symbols.get(tick.symbol)
        if sym is None:
            sym = self._symbols[tick.symbol] = _Symbol()
        if sym.last_at is not None and tick.timestamp < sym.last_at:
            return []
        events: builtins.list[AlertEvent] = []
        for alert in builtins.list(self._by_symbol.get(tick.symbol, {}).values()):
            event = self._evaluate_user(alert, tick)
            if event is not None:
                events.append(event)
        if self.rules.builtin_rules:
            events += self._day_rules(sym, tick)
        sym.last_at = tick.timestamp
        sym.last_price = price
        if tick.prev_close > 0:
            sym.prev_close = tick.prev_close
        return events

    def on_candle(self, candle: Candle) -> builtins.list[AlertEvent]:
        """Evaluate a closed candle of ``rules.interval`` for the volume and breakout rules."""
        if not candle.closed or candle.interval != self.rules.interval:
            return []
        sym = self._symbols.get(candle.symbol)
        if sym is None:
            sym = self._symbols[candle.symbol] = _Symbol()
        history = sym.candles
        if history and candle.start <= history[-1].start:
            return []
        events = self._candle_rules(sym, candle) if self.rules.builtin_rules else []
        history.append(candle)
        keep = max(
            self.rules.volume_lookback, self.rules.breakout_lookback, self.rules.bollinger_period
        )
        while len(history) > keep:
            history.popleft()
        return events

    # --- queries --------------------------------------------------------------------------------

    def state(
        self, symbol: str, owner: str | None = None, *, firing: str | None = None
    ) -> dict[str, builtins.list[object]]:
        """The ``alert_data`` payload for ``symbol`` as ``owner`` sees it (``None`` = ``""``).

        ``price_alerts`` holds the owner's user alerts (creation order) then the built-in price
        rules; ``volume_alerts`` and ``breakout_alerts`` the built-in candle rules. Each entry is
        :func:`alert_payload`; built-in entries carry ``value`` = the level currently in force
        (``None`` until known) and no ``owner``. Only the entry whose id is ``firing`` (the
        event being announced) has ``triggered`` true.
        """
        owner = owner or ""
        lists: dict[str, builtins.list[object]] = {
            "price_alerts": [],
            "volume_alerts": [],
            "breakout_alerts": [],
        }
        for alert in self._by_symbol.get(symbol, {}).values():
            if alert.owner == owner:
                lists["price_alerts"].append(alert_payload(alert, triggered=alert.id == firing))
        sym = self._symbols.get(symbol) or _Symbol()
        levels = self._levels(sym)
        for rule in BUILTIN_RULES:
            if rule not in self.rules.builtin_rules:
                continue
            alert = self._builtin_alert(symbol, rule, sym.rules.get(rule))
            at_level = replace(alert, value=levels.get(rule))
            lists[f"{_CATEGORY[rule]}_alerts"].append(
                alert_payload(
                    at_level, triggered=alert.id == firing, fired=self._showing(sym, rule)
                )
            )
        return lists

    def recent_events(
        self, symbol: str, owner: str | None = None, limit: int = 20
    ) -> builtins.list[AlertEvent]:
        """The last events for ``symbol``: ``owner``'s (``None`` = ``""``) and built-in ones,
        newest first."""
        owner = owner or ""
        if self._store is not None:
            return self._store.events(symbol, owner, limit)
        kept = self._events.get(symbol, ())
        mine = [e for e in reversed(kept) if e.alert.source == "builtin" or e.alert.owner == owner]
        return mine[:limit]

    def all(self) -> builtins.list[Alert]:
        """Every user alert of every owner."""
        return builtins.list(self._alerts.values())

    # Last, so that ``list`` means the builtin in the annotations above.
    def list(self, owner: str | None, symbol: str | None = None) -> builtins.list[Alert]:
        """``owner``'s user alerts (``None`` = ``""``), optionally for one symbol, oldest first."""
        owner = owner or ""
        source: Iterable[Alert] = (
            self._alerts.values() if symbol is None else self._by_symbol.get(symbol, {}).values()
        )
        return [a for a in source if a.owner == owner]

    # --- internals: user alerts -----------------------------------------------------------------

    def _put(self, alert: Alert) -> None:
        self._alerts[alert.id] = alert
        self._by_symbol.setdefault(alert.symbol, {})[alert.id] = alert

    def _evaluate_user(self, alert: Alert, tick: Tick) -> AlertEvent | None:
        if alert.triggered and alert.once:
            return None
        now = tick.timestamp
        if alert.triggered_at is not None and now <= alert.triggered_at:
            return None
        price = tick.price
        prev = self._last_price.get(alert.id, alert.last_price)
        event = self._check_user(alert, tick, prev)
        # Only after a successful save: a failed write is retried by the next tick.
        self._last_price[alert.id] = price
        return event

    def _check_user(self, alert: Alert, tick: Tick, prev: float | None) -> AlertEvent | None:
        now, price = tick.timestamp, tick.price
        level = alert.value
        assert level is not None
        band = self.rules.band
        cond = alert.condition
        if cond == "percent_change":
            if tick.prev_close <= 0:
                return None
            active = abs(tick.change_percent) >= level
            up = tick.prev_close * (1 + level / 100)
            down = tick.prev_close * (1 - level / 100)
            rearm = down * (1 + band) < price < up * (1 - band)
        elif cond == "above":
            active, rearm = price >= level, price < level * (1 - band)
        elif cond == "cross_up":
            active = prev is not None and prev < level <= price
            rearm = price < level * (1 - band)
        elif cond == "below":
            active, rearm = price <= level, price > level * (1 + band)
        else:  # cross_down
            active = prev is not None and prev > level >= price
            rearm = price > level * (1 + band)
        if not alert.armed:
            if rearm:
                self._save(replace(alert, armed=True, triggered=False, last_price=price))
            return None
        if not (active and _cooled(alert.triggered_at, now, self.rules.cooldown)):
            return None
        message = self._user_message(alert, tick)
        fired = replace(
            alert,
            triggered=True,
            triggered_at=now,
            price=price,
            message=message,
            armed=False,
            last_price=price,
            fire_count=alert.fire_count + 1,
        )
        event = AlertEvent(fired, now, price, message, "price")
        self._record(event)
        self._put(fired)
        return event

    def _save(self, alert: Alert) -> None:
        if self._store is not None:
            self._store.save_alert(alert)
        self._put(alert)

    def _record(self, event: AlertEvent) -> None:
        """Persist an event and its alert's new state together (or keep it in memory)."""
        if self._store is not None:
            self._store.add_event(event)
        else:
            kept = self._events.get(event.symbol)
            if kept is None:
                kept = self._events[event.symbol] = deque(maxlen=self._memory_events)
            kept.append(event)

    @staticmethod
    def _user_message(alert: Alert, tick: Tick) -> str:
        level = alert.value
        assert level is not None
        s, p, v = alert.symbol, _fmt(tick.price), _fmt(level)
        cond = alert.condition
        if cond == "above":
            return f"{s} at {p} is at or above {v}"
        if cond == "below":
            return f"{s} at {p} is at or below {v}"
        if cond == "cross_up":
            return f"{s} crossed above {v} at {p}"
        if cond == "cross_down":
            return f"{s} crossed below {v} at {p}"
        return (
            f"{s} moved {tick.change_percent:+.2f}% from the previous close "
            f"{_fmt(tick.prev_close)} at {p} (alert at {level:g}%)"
        )

    # --- internals: built-in rules --------------------------------------------------------------

    def _restore_builtin(self, alert: Alert) -> None:
        if alert.condition not in _CATEGORY:
            return
        sym = self._symbols.get(alert.symbol)
        if sym is None:
            sym = self._symbols[alert.symbol] = _Symbol()
        sym.rules[alert.condition] = _Rule(
            armed=alert.armed,
            triggered_at=alert.triggered_at,
            price=alert.price,
            message=alert.message,
            level=alert.value,
            fire_count=alert.fire_count,
            saved=True,
        )
        if alert.condition in _DAY_RULES and alert.triggered_at is not None:
            # Tells the first tick of a later day to start the day rules afresh.
            day = alert.triggered_at.astimezone(IST).date()
            sym.day = day if sym.day is None else max(sym.day, day)

    def _builtin_alert(self, symbol: str, rule: str, state: _Rule | None) -> Alert:
        state = state or _Rule()
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

    def _step(
        self,
        symbol: str,
        sym: _Symbol,
        rule: str,
        *,
        now: datetime,
        price: float,
        level: float,
        active: bool,
        rearm: bool,
        message: Callable[[], str],
        candle: datetime | None = None,
    ) -> AlertEvent | None:
        """One evaluation of one built-in rule: re-arm, or fire when armed and cooled down."""
        if rule not in self.rules.builtin_rules:
            return None
        state = sym.rule(rule)
        if not state.armed:
            if rearm:
                if state.saved and self._store is not None:
                    self._store.save_alert(
                        replace(
                            self._builtin_alert(symbol, rule, state), armed=True, triggered=False
                        )
                    )
                state.armed = True
            return None
        if not (active and _cooled(state.triggered_at, now, self.rules.cooldown)):
            return None
        fired = _Rule(
            armed=False,
            triggered_at=now,
            price=price,
            message=message(),
            level=level,
            fire_count=state.fire_count + 1,
            candle=candle,
            saved=True,
        )
        alert = self._builtin_alert(symbol, rule, fired)
        assert fired.message is not None
        event = AlertEvent(alert, now, price, fired.message, _CATEGORY[rule])
        self._record(event)
        sym.rules[rule] = fired
        return event

    def _day_rules(self, sym: _Symbol, tick: Tick) -> builtins.list[AlertEvent]:
        now, price, symbol = tick.timestamp, tick.price, tick.symbol
        day = now.astimezone(IST).date()
        if sym.day != day:
            sym.day = day
            sym.high = sym.low = None
            for rule in _DAY_RULES:
                state = sym.rules.get(rule)
                if state is not None:
                    state.armed = True
        events: builtins.list[AlertEvent] = []
        band = self.rules.band

        def add(event: AlertEvent | None) -> None:
            if event is not None:
                events.append(event)

        if tick.prev_close > 0:
            pc, x, chg = tick.prev_close, self.rules.day_change_percent, tick.change_percent
            up, down = pc * (1 + x / 100), pc * (1 - x / 100)
            add(
                self._step(
                    symbol,
                    sym,
                    "day_change_up",
                    now=now,
                    price=price,
                    level=up,
                    active=chg >= x,
                    rearm=price < up * (1 - band),
                    message=lambda: (
                        f"{symbol} up {chg:.2f}% on the day at {_fmt(price)} "
                        f"(previous close {_fmt(pc)})"
                    ),
                )
            )
            add(
                self._step(
                    symbol,
                    sym,
                    "day_change_down",
                    now=now,
                    price=price,
                    level=down,
                    active=chg <= -x,
                    rearm=price > down * (1 + band),
                    message=lambda: (
                        f"{symbol} down {-chg:.2f}% on the day at {_fmt(price)} "
                        f"(previous close {_fmt(pc)})"
                    ),
                )
            )
        high, low = sym.high, sym.low
        if high is not None and low is not None:
            quiet_until = datetime.combine(day, SESSION_OPEN, IST) + timedelta(
                minutes=self.rules.quiet_minutes
            )
            open_ = now >= quiet_until
            add(
                self._step(
                    symbol,
                    sym,
                    "new_day_high",
                    now=now,
                    price=price,
                    level=high,
                    active=open_ and price > high,
                    rearm=price < high * (1 - band),
                    message=lambda: (
                        f"{symbol} made a new day high at {_fmt(price)} "
                        f"(previous high {_fmt(high)})"
                    ),
                )
            )
            add(
                self._step(
                    symbol,
                    sym,
                    "new_day_low",
                    now=now,
                    price=price,
                    level=low,
                    active=open_ and price < low,
                    rearm=price > low * (1 + band),
                    message=lambda: (
                        f"{symbol} made a new day low at {_fmt(price)} (previous low {_fmt(low)})"
                    ),
                )
            )
        # The exchange's day high/low cover trades before we started watching.
        sym.high = max(x for x in (high, tick.high or None, price) if x is not None)
        sym.low = min(x for x in (low, tick.low or None, price) if x is not None)
        return events

    def _candle_rules(self, sym: _Symbol, candle: Candle) -> builtins.list[AlertEvent]:
        rules, band = self.rules, self.rules.band
        symbol, close = candle.symbol, float(candle.close)
        now = candle.start + candle.interval.delta
        history = builtins.list(sym.candles)
        events: builtins.list[AlertEvent] = []
        label = candle.interval.value

        def step(rule: str, level: float, active: bool, rearm: bool, text: str) -> None:
            event = self._step(
                symbol,
                sym,
                rule,
                now=now,
                price=close,
                level=level,
                active=active,
                rearm=rearm,
                message=lambda: text,
                candle=candle.start,
            )
            if event is not None:
                events.append(event)

        if len(history) >= rules.volume_lookback:
            average = statistics.fmean(c.volume for c in history[-rules.volume_lookback :])
            if average > 0:
                threshold = rules.volume_multiple * average
                step(
                    "volume_spike",
                    threshold,
                    candle.volume > threshold,
                    candle.volume < threshold * (1 - band),
                    f"{symbol} {label} volume {candle.volume} is {candle.volume / average:.1f}x "
                    f"the {rules.volume_lookback}-candle average {average:.0f}",
                )
        if len(history) >= rules.breakout_lookback:
            window = history[-rules.breakout_lookback :]
            top, bottom = max(c.high for c in window), min(c.low for c in window)
            n = rules.breakout_lookback
            step(
                "breakout_high",
                top,
                close > top,
                close < top * (1 - band),
                f"{symbol} closed at {_fmt(close)} above the {n}-candle high {_fmt(top)}",
            )
            step(
                "breakout_low",
                bottom,
                close < bottom,
                close > bottom * (1 + band),
                f"{symbol} closed at {_fmt(close)} below the {n}-candle low {_fmt(bottom)}",
            )
        bands = self._bollinger(history, close)
        if bands is not None:
            upper, lower = bands
            spec = f"({rules.bollinger_period}, {rules.bollinger_width:g})"
            step(
                "bollinger_upper",
                upper,
                close > upper,
                close < upper * (1 - band),
                f"{symbol} closed at {_fmt(close)} above the upper Bollinger band "
                f"{_fmt(upper)} {spec}",
            )
            step(
                "bollinger_lower",
                lower,
                close < lower,
                close > lower * (1 + band),
                f"{symbol} closed at {_fmt(close)} below the lower Bollinger band "
                f"{_fmt(lower)} {spec}",
            )
        return events

    def _bollinger(
        self, history: builtins.list[Candle], close: float | None
    ) -> tuple[float, float] | None:
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
        history = builtins.list(sym.candles)
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
        """Whether ``state`` shows the rule as ``fired`` (see the module doc)."""
        state = sym.rules.get(rule)
        if state is None or state.triggered_at is None:
            return False
        if rule in _DAY_RULES:
            return state.triggered_at.astimezone(IST).date() == sym.day
        return bool(sym.candles) and state.candle == sym.candles[-1].start
