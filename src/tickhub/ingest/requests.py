"""Endpoint-specific requests: alerts (create/list/delete), positions (set/remove/list) and
trades (add/list/delete).

A request reaches :meth:`Requests.handle_command` already checked, as its command
(``tickhub.core.commands``): from the hub in the same process, which parsed it, or through
:meth:`Requests.handle` with the raw message a gateway forwarded over the bus (``cluster/``),
which parses it here the same way. What is left to answer is what depends on state: an alert
quota, an alert or a position that does not exist. Each change is persisted in the store before
the reply (alerts through :class:`~tickhub.ingest.alerts.StoredAlerts`), and the affected stream
is republished at once so every subscriber sees it. Replies go to whatever has a ``user`` and a
``send``: a hub session, or the collector that carries them back to a gateway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from tickhub.core import protocol
from tickhub.core.clock import Clock
from tickhub.core.commands import (
    REQUEST_ENDPOINTS,
    AddTrade,
    Command,
    CreateAlert,
    CreateAnalysisAlert,
    DeleteAlert,
    DeleteTrade,
    ListAlerts,
    ListPositions,
    ListTrades,
    RemovePosition,
    SetPosition,
    parse_command,
)
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.protocol import ErrorCode, ProtocolError
from tickhub.core.topics import Endpoint
from tickhub.engines.alerts import alert_payload
from tickhub.engines.portfolio import position_of, trade_payload
from tickhub.ingest.pipeline import Ingest

log = logging.getLogger(__name__)


class Replier(Protocol):
    """Where a request's answer goes: the client's session, or a stand-in that carries it."""

    user: str

    def send(self, payload: bytes) -> None:
        """Send one encoded message to the client; never blocks."""
        ...


class HandlerHost(Protocol):
    """A hub that serves a request type through a handler of its typed command."""

    def add_command_handler(
        self, endpoint: Endpoint, kind: str, handler: Callable[[Any, Command], None]
    ) -> None:
        """Serve ``kind`` on ``endpoint`` with ``handler(session, command)``."""
        ...


class Requests:
    """The alert and position requests of every client, on the ingest's engines and store.

    Contract: every request gets exactly one reply (``alert``, ``alerts``, ``position``,
    ``positions``, or an ``error`` with ``request`` = its type); a request that raises is
    answered ``internal_error`` and logged. ``on_change`` is told after every change made.
    """

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
        for kind, endpoint in REQUEST_ENDPOINTS.items():
            hub.add_command_handler(endpoint, kind, self.handle_command)

    def handle(self, kind: str, session: Replier, msg: Mapping[str, Any]) -> None:
        """Serve a raw request of type ``kind`` (as a gateway forwards it): parsed and checked
        as the hub would, then :meth:`handle_command`; a bad one is answered with its error."""
        endpoint = REQUEST_ENDPOINTS[kind]
        command = parse_command(msg, endpoint=endpoint, registry=self.registry)
        if isinstance(command, ProtocolError):
            self._error(session, command, kind)
            return
        self.handle_command(session, command)

    def handle_command(self, session: Replier, command: Command) -> None:
        """Serve one checked request; any other command is a caller's bug (``TypeError``,
        answered ``internal_error``)."""
        try:
            match command:
                case CreateAlert() | CreateAnalysisAlert():
                    self.create_alert(session, command)
                case ListAlerts():
                    self.list_alerts(session, command)
                case DeleteAlert():
                    self.delete_alert(session, command)
                case SetPosition():
                    self.set_position(session, command)
                case RemovePosition():
                    self.remove_position(session, command)
                case ListPositions():
                    self.list_positions(session, command)
                case AddTrade():
                    self.add_trade(session, command)
                case ListTrades():
                    self.list_trades(session, command)
                case DeleteTrade():
                    self.delete_trade(session, command)
                case _:
                    raise TypeError(f"not a request: {command.type!r}")
        except Exception:
            log.exception("request %r failed", command.type)
            self._error(
                session, ProtocolError(ErrorCode.INTERNAL_ERROR, "internal error"), command.type
            )

    # --- helpers -------------------------------------------------------------------------------

    def _reply(self, session: Replier, kind: str, **fields: Any) -> None:
        session.send(protocol.reply(self.clock.now(), kind, **fields))

    def _error(self, session: Replier, err: ProtocolError, request: str) -> None:
        session.send(protocol.error(self.clock.now(), err, request=request))

    # --- alerts --------------------------------------------------------------------------------

    def create_alert(self, session: Replier, command: CreateAlert | CreateAnalysisAlert) -> None:
        created = self.ingest.alerts.create(session.user, command)
        if isinstance(created, ProtocolError):
            self._error(session, created, command.type)
            return
        self._reply(session, "alert", status="created", alert=alert_payload(created))
        self._on_change()
        self.ingest.publish_alerts(command.symbol, session.user)

    def list_alerts(self, session: Replier, command: ListAlerts) -> None:
        alerts = self.ingest.alerts.list(session.user, command.symbol)
        self._reply(session, "alerts", alerts=[alert_payload(a) for a in alerts])

    def delete_alert(self, session: Replier, command: DeleteAlert) -> None:
        existing = self.ingest.alerts.get(command.id)
        result = self.ingest.alerts.delete(session.user, command.id)
        if isinstance(result, ProtocolError):
            self._error(session, result, command.type)
            return
        self._reply(session, "alert", status="deleted", id=command.id)
        self._on_change()
        if existing is not None:
            self.ingest.publish_alerts(existing.symbol, session.user)

    # --- positions -----------------------------------------------------------------------------

    def set_position(self, session: Replier, command: SetPosition) -> None:
        position = position_of(command)
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

    def remove_position(self, session: Replier, command: RemovePosition) -> None:
        symbol = command.symbol
        if not self.ingest.positions.remove_position(session.user, symbol):
            self._error(
                session,
                ProtocolError(
                    ErrorCode.NOT_FOUND, f"no position in {symbol!r}", {"symbol": symbol}
                ),
                command.type,
            )
            return
        self._reply(session, "position", status="removed", symbol=symbol)
        self._on_change()
        self.ingest.forget_position(symbol, session.user)
        self.ingest.publish_portfolio(symbol, session.user)

    def list_positions(self, session: Replier, command: ListPositions) -> None:
        portfolio = self.ingest.portfolio
        rows = [
            dict(portfolio.value(session.user, symbol)["position"])
            for symbol in portfolio.held_symbols(session.user)
        ]
        self._reply(
            session, "positions", positions=rows, portfolio=dict(portfolio.totals(session.user))
        )

    # --- trades --------------------------------------------------------------------------------

    def add_trade(self, session: Replier, command: AddTrade) -> None:
        user, symbol = session.user, command.symbol
        was_listed = self.ingest.portfolio.is_listed(user, symbol)
        result = self.ingest.positions.add_trade(user, command)
        if isinstance(result, ProtocolError):
            self._error(session, result, command.type)
            return
        status, trade = result
        self._reply(
            session,
            "trade",
            status=status,
            trade=trade_payload(user, trade),
            position=dict(self.ingest.portfolio.value(user, trade.symbol)),
        )
        if status == "added":
            self._after_trade(user, symbol, was_listed)

    def list_trades(self, session: Replier, command: ListTrades) -> None:
        trades = self.ingest.portfolio.trades(session.user, command.symbol)
        self._reply(session, "trades", trades=[trade_payload(session.user, t) for t in trades])

    def delete_trade(self, session: Replier, command: DeleteTrade) -> None:
        user = session.user
        existing = self.ingest.portfolio.trade(user, command.id)
        was_listed = existing is not None and self.ingest.portfolio.is_listed(user, existing.symbol)
        result = self.ingest.positions.delete_trade(user, command.id)
        if result is None:
            result = ProtocolError(
                ErrorCode.NOT_FOUND, f"no trade {command.id!r}", {"id": command.id}
            )
        if isinstance(result, ProtocolError):
            self._error(session, result, command.type)
            return
        self._reply(
            session,
            "trade",
            status="deleted",
            id=command.id,
            position=dict(self.ingest.portfolio.value(user, result.symbol)),
        )
        self._after_trade(user, result.symbol, was_listed)

    def _after_trade(self, user: str, symbol: str, was_listed: bool) -> None:
        """A trade changed ``symbol``'s position: announce it, on ``*`` too (a position that
        is no longer listed leaves ``*``)."""
        self._on_change()
        if was_listed and not self.ingest.portfolio.is_listed(user, symbol):
            self.ingest.forget_position(symbol, user)
        self.ingest.publish_portfolio(symbol, user)
