"""Alert rules and their evaluation for the ``/ws/alerts`` stream (pure: no asyncio, no I/O).

The shell feeds every tick to :meth:`AlertsEngine.on_tick` and every candle update to
:meth:`AlertsEngine.on_candle`; each returns the :class:`AlertEvent` objects that fired. Time comes
only from tick and candle timestamps (exchange time), never from the wall clock, so replays and
tests are deterministic. The engine evaluates whether or not anyone is subscribed, so a crossing
that happened while nobody was connected shows in :meth:`~AlertsEngine.state` and
:meth:`~AlertsEngine.recent_events` later.

User alerts
    ``create(owner, CreateAlert(symbol, condition, value, once=True, note=None))``; ``condition``
    is one of

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
      level that is active while ``|Tick.change_percent| >= value``. That figure is rounded to 4
      decimals, finer than the 2 of the ``change_percent`` clients see on ``/ws/stream``: a tick
      shown there as 2.00 % may be 1.9951 % here, and does not reach a 2 % alert. Ticks without a
      previous close are not evaluated.

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
    In :meth:`~AlertsEngine.state` a day rule shows ``fired`` for the rest of the IST day it
    fired on; a candle rule for the candle it fired on (until the next closed candle).

Persistence
    The engine has no store and does no I/O. Whatever changes alert state that must survive a
    restart (a created or deleted alert, a firing with the alert's new state, a re-arming) is
    returned first (``prepare``, ``owned``, an :class:`Evaluation` of :class:`AlertChange`) and
    applied only when the caller commits it, so the caller can write it to a store in between:
    :class:`tickhub.ingest.alerts.StoredAlerts` does, loads the saved alerts at start
    (:meth:`AlertsEngine.restore`), and so an alert never fires twice for one crossing across a
    restart. Built-in rules persist their arming state too (the first time they fire), so a
    restart does not repeat their events; their reference data (day high, candle history) is
    rebuilt from the feed.

Modules: :mod:`.model` (the data), :mod:`.wire` (payloads; requests arrive checked, as
:class:`~tickhub.core.commands.CreateAlert`), :mod:`.rules` (the
arming rule both kinds share), :mod:`.user`, :mod:`.builtin`, :mod:`.analysis` (indicator and
pattern alerts, evaluated on candles from values the caller computes), :mod:`.engine` (the face).
"""

from __future__ import annotations

from tickhub.engines.alerts.engine import AlertsEngine
from tickhub.engines.alerts.model import (
    BUILTIN_RULES,
    CONDITIONS,
    Alert,
    AlertChange,
    AlertEvent,
    AlertRules,
    Category,
    Evaluation,
    Source,
    builtin_id,
)
from tickhub.engines.alerts.wire import alert_payload, event_payload

__all__ = [
    "BUILTIN_RULES",
    "CONDITIONS",
    "Alert",
    "AlertChange",
    "AlertEvent",
    "AlertRules",
    "AlertsEngine",
    "Category",
    "Evaluation",
    "Source",
    "alert_payload",
    "builtin_id",
    "event_payload",
]
