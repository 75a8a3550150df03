"""Endpoint-specific requests: alerts (create/list/delete) and positions (set/remove/list).

The hub hands these request types to :meth:`Requests.handle` (directly in one process, or
through the bus from a gateway to the ingest process, see ``cluster.py``). Each change is
persisted in the store before the reply (alerts through
:class:`~tickhub.ingest.alerts.StoredAlerts`), and the affected stream is republished at once so
every subscriber sees it. Replies go to whatever has a ``user`` and a ``send``: a hub session, or
the collector that carries them back to a gateway.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol

from tickhub.core import protocol
from tickhub.core.clock import Clock
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.protocol import ErrorCode, ProtocolError
from tickhub.core.topics import Endpoint
from tickhub.engines.alerts import alert_payload
from tickhub.engines.portfolio import parse_position
from tickhub.ingest.pipeline import Ingest

log = logging.getLogger(__name__)

KINDS: dict[str, Endpoint] = {
    "create_alert": Endpoint.ALERTS,
    "list_alerts": Endpoint.ALERTS,
    "delete_alert": Endpoint.ALERTS,
    "set_position": Endpoint.PORTFOLIO,
    "remove_position": Endpoint.PORTFOLIO,
    "list_positions": Endpoint.PORTFOLIO,
}
"""The request types served here, and the endpoint that accepts each."""


class Replier(Protocol):
    user: str

    def send(self, payload: bytes) -> None: ...


class HandlerHost(Protocol):
    def add_handler(self, endpoint: Endpoint, kind: str, handler: Callable[..., None]) -> None: ...


class Requests:
    def __init__(
        self,
        registry: InstrumentRegistry,
        clock: Clock,
        ingest: Ingest,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.ingest = ingest
        self._on_change = on_change or (lambda: None)

    def register(self, hub: HandlerHost) -> None:
        """Serve every request type on its endpoint of a hub in the same process."""
        for kind, endpoint in KINDS.items():
            hub.add_handler(endpoint, kind, functools.partial(self.handle, kind))

    def handle(self, kind: str, session: Replier, msg: dict[str, Any]) -> None:
        method: Callable[[Replier, dict[str, Any]], None] = getattr(self, kind)
        try:
            method(session, msg)
        except Exception:
            log.exception("request %r failed", kind)
            self._error(session, ProtocolError(ErrorCode.INTERNAL_ERROR, "internal error"), kind)

    # --- helpers -------------------------------------------------------------------------------

    def _reply(self, session: Replier, kind: str, **fields: Any) -> None:
        session.send(protocol.reply(self.clock.now(), kind, **fields))

    def _error(self, session: Replier, err: ProtocolError, request: str) -> None:
        session.send(protocol.error(self.clock.now(), err, request=request))

    def _symbol(self, session: Replier, msg: dict[str, Any], request: str) -> str | None:
        raw = msg.get("symbol")
        if raw is None or raw == "":
            self._error(
                session,
                ProtocolError(
                    ErrorCode.MISSING_FIELD, "missing field: 'symbol'", {"field": "symbol"}
                ),
                request,
            )
            return None
        if not isinstance(raw, str):
            self._error(
                session,
                ProtocolError(
                    ErrorCode.INVALID_FIELD, "field 'symbol' must be a string", {"field": "symbol"}
                ),
                request,
            )
            return None
        instrument = self.registry.get(raw)
        if instrument is None:
            self._error(
                session,
                ProtocolError(
                    ErrorCode.UNKNOWN_SYMBOL,
                    f"unknown symbol: {protocol.shown(raw)}",
                    {"symbol": protocol.clip(raw)},
                ),
                request,
            )
            return None
        return instrument.symbol

    # --- alerts --------------------------------------------------------------------------------

    def create_alert(self, session: Replier, msg: dict[str, Any]) -> None:
        symbol = self._symbol(session, msg, "create_alert")
        if symbol is None:
            return
        created = self.ingest.alerts.create(
            session.user,
            symbol,
            msg.get("condition"),
            msg.get("value"),
            msg.get("once", True),
            msg.get("note"),
        )
        if isinstance(created, ProtocolError):
            self._error(session, created, "create_alert")
            return
        self._reply(session, "alert", status="created", alert=alert_payload(created))
        self._on_change()
        self.ingest.publish_alerts(symbol, session.user)

    def list_alerts(self, session: Replier, msg: dict[str, Any]) -> None:
        symbol: str | None = None
        if msg.get("symbol") not in (None, ""):
            symbol = self._symbol(session, msg, "list_alerts")
            if symbol is None:
                return
        alerts = self.ingest.alerts.list(session.user, symbol)
        self._reply(session, "alerts", alerts=[alert_payload(a) for a in alerts])

    def delete_alert(self, session: Replier, msg: dict[str, Any]) -> None:
        alert_id = msg.get("id")
        existing = self.ingest.alerts.get(alert_id) if isinstance(alert_id, str) else None
        result = self.ingest.alerts.delete(session.user, alert_id)
        if isinstance(result, ProtocolError):
            self._error(session, result, "delete_alert")
            return
        self._reply(session, "alert", status="deleted", id=alert_id)
        self._on_change()
        if existing is not None:
            self.ingest.publish_alerts(existing.symbol, session.user)

    # --- positions -----------------------------------------------------------------------------

    def set_position(self, session: Replier, msg: dict[str, Any]) -> None:
        position = parse_position(msg, self.registry)
        if isinstance(position, ProtocolError):
            self._error(session, position, "set_position")
            return
        portfolio = self.ingest.portfolio
        self.ingest.positions.set_position(session.user, position)
        saved = portfolio.position(session.user, position.symbol)
        status = "saved" if saved is not None else "removed"
        self._reply(
            session,
            "position",
            status=status,
            symbol=position.symbol,
            position=dict(portfolio.value(session.user, position.symbol)["position"]),
        )
        if saved is None:
            self.ingest.forget_position(position.symbol, session.user)
        self._on_change()
        self.ingest.publish_portfolio(position.symbol, session.user)

    def remove_position(self, session: Replier, msg: dict[str, Any]) -> None:
        symbol = self._symbol(session, msg, "remove_position")
        if symbol is None:
            return
        if not self.ingest.positions.remove_position(session.user, symbol):
            self._error(
                session,
                ProtocolError(
                    ErrorCode.NOT_FOUND, f"no position in {symbol!r}", {"symbol": symbol}
                ),
                "remove_position",
            )
            return
        self._reply(session, "position", status="removed", symbol=symbol)
        self._on_change()
        self.ingest.forget_position(symbol, session.user)
        self.ingest.publish_portfolio(symbol, session.user)

    def list_positions(self, session: Replier, msg: dict[str, Any]) -> None:
        portfolio = self.ingest.portfolio
        rows = [
            dict(portfolio.value(session.user, p.symbol)["position"])
            for p in portfolio.positions(session.user)
        ]
        self._reply(
            session, "positions", positions=rows, portfolio=dict(portfolio.totals(session.user))
        )
