"""The alerts engine driven with its store: every change is made durable before it is applied.

The engine is pure and returns what would change; here each change is written first (a firing
and the alert's new state in one transaction) and applied only once written. So a crash or a
failed write never leaves a firing that the store does not know of: after a restart over the same
store an alert never fires twice for one crossing, and a write that failed is retried by the next
tick. Without a store, the engine simply keeps everything in memory.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime

from tickhub.core import defaults
from tickhub.core.commands import CreateAlert, CreateAnalysisAlert
from tickhub.core.model import Candle, Tick
from tickhub.core.protocol import ProtocolError
from tickhub.engines.alerts import Alert, AlertEvent, AlertRules, AlertsEngine, Evaluation
from tickhub.engines.alerts.analysis import Frame
from tickhub.store import Store

__all__ = ["StoredAlerts"]


class StoredAlerts:
    """User alerts and built-in rules over ticks and candles, persisted in ``store``.

    Loads the saved alerts at construction. Every method that changes state raises what the
    store raises, and then nothing that failed to be written has changed. ``rules`` and
    ``new_id`` are the engine's (:class:`~tickhub.engines.alerts.AlertsEngine`).
    """

    def __init__(
        self,
        store: Store | None = None,
        rules: AlertRules | None = None,
        *,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self.store = store
        # With a store, recent events are read from it: the engine need not keep them too.
        memory = defaults.ALERT_MEMORY_EVENTS if store is None else 0
        self.engine = AlertsEngine(rules, new_id=new_id, memory_events=memory)
        if store is not None:
            self.engine.restore(store.load_alerts())

    @property
    def rules(self) -> AlertRules:
        """The engine's rule settings."""
        return self.engine.rules

    # --- requests -------------------------------------------------------------------------------

    def create(
        self, owner: str | None, request: CreateAlert | CreateAnalysisAlert
    ) -> Alert | ProtocolError:
        """Add a user alert, saved before it is returned (the error is
        :meth:`AlertsEngine.prepare`'s)."""
        alert = self.engine.prepare(owner, request)
        if isinstance(alert, ProtocolError):
            return alert
        if self.store is not None:
            self.store.save_alert(alert)
        self.engine.add(alert)
        return alert

    def delete(self, owner: str | None, id: str) -> bool | ProtocolError:
        """Remove one of ``owner``'s alerts from the store, then from the engine: ``True``, or
        the error of :meth:`AlertsEngine.owned`. Its past events are kept."""
        alert = self.engine.owned(owner, id)
        if isinstance(alert, ProtocolError):
            return alert
        if self.store is not None:
            self.store.delete_alert(alert.id)
        self.engine.remove(alert.id)
        return True

    # --- evaluation -----------------------------------------------------------------------------

    def on_tick(self, tick: Tick) -> builtins.list[AlertEvent]:
        """Evaluate a tick; the firings, each saved with its alert."""
        return self._persist(self.engine.evaluate_tick(tick))

    def on_candle(self, candle: Candle) -> builtins.list[AlertEvent]:
        """Evaluate a closed candle; the firings, each saved with its alert."""
        return self._persist(self.engine.evaluate_candle(candle))

    def on_analysis(self, frame: Frame, at: datetime) -> builtins.list[AlertEvent]:
        """Evaluate the analysis alerts of the frame's candle; the firings, each saved with its
        alert (a re-arming saved alone)."""
        return self._persist(self.engine.evaluate_analysis(frame, at))

    def _persist(self, evaluation: Evaluation) -> builtins.list[AlertEvent]:
        store = self.store
        if store is None:
            return self.engine.commit(evaluation)
        written = 0
        try:
            for change in evaluation.changes:
                if change.event is not None:
                    store.add_event(change.event)
                else:
                    store.save_alert(change.alert)
                written += 1
        except BaseException:
            # What was written is applied, so it is not evaluated (and written) twice.
            self.engine.commit(evaluation, written)
            raise
        return self.engine.commit(evaluation)

    # --- queries --------------------------------------------------------------------------------

    def get(self, id: str) -> Alert | None:
        """The user alert with ``id``, whoever owns it."""
        return self.engine.get(id)

    def state(
        self, symbol: str, owner: str | None = None, *, firing: str | None = None
    ) -> dict[str, builtins.list[object]]:
        """The ``alert_data`` payload (:meth:`AlertsEngine.state`)."""
        return self.engine.state(symbol, owner, firing=firing)

    def recent_events(
        self, symbol: str, owner: str | None = None, limit: int = 20
    ) -> builtins.list[AlertEvent]:
        """The last firings for ``symbol``: ``owner``'s (``None`` = ``""``) and built-in ones,
        newest first (from the store when there is one, so firings before a restart count)."""
        if self.store is not None:
            return self.store.events(symbol, owner or "", limit)
        return self.engine.recent_events(symbol, owner, limit)

    def all(self) -> builtins.list[Alert]:
        """Every user alert of every owner."""
        return self.engine.all()

    def list(self, owner: str | None, symbol: str | None = None) -> builtins.list[Alert]:
        """``owner``'s user alerts (``None`` = ``""``), optionally for one symbol, oldest first."""
        return self.engine.list(owner, symbol)
