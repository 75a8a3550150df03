"""Which instrument tokens the Kite feed carries, on which connection, in which mode.

Kite takes at most 3,000 instruments on a connection and 3 connections per api_key, and
pykiteconnect-style clients resubscribe everything after a reconnect. This module holds that
bookkeeping apart from the sockets, so that a change to the limits or to how changes are batched
touches nothing that connects or reads.

Subscriptions
    ``subscribe``/``unsubscribe`` are reference-counted per instrument token: the upstream
    subscription is made by the first subscribe and dropped when the count returns to 0. A token
    lives on one connection, the lowest-numbered one with room (connection 0 is always open, the
    others only while they hold tokens). Past ``max_connections * max_per_connection`` tokens the
    extra instruments are refused: logged as an error, listed in ``rejected`` and in the status
    detail, and not subscribed; a later ``unsubscribe`` clears them from ``rejected``.
    Changes are not sent one by one: each connection diffs what it wants against what it told
    the server (``plan_subscriptions``), so the calls made in one event-loop turn go out as one
    ``unsubscribe``, one ``subscribe`` and one ``mode`` message per mode. After every
    (re)connect the same diff against an empty server side resubscribes every token in its mode
    (``subscribe``, then ``mode`` grouped by mode, as pykiteconnect's ``resubscribe`` does). A
    token's mode is the richest any subscriber asked for (``ltp`` < ``quote`` < ``full``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tickhub.core.model import Instrument
from tickhub.feeds.kite.connection import Connection
from tickhub.feeds.kite.parse import MODES, KiteMode

__all__ = ["SubscriptionBook", "apply_message", "plan_subscriptions"]


def plan_subscriptions(
    desired: Mapping[int, KiteMode], upstream: Mapping[int, KiteMode]
) -> list[dict[str, Any]]:
    """The messages that take a connection from ``upstream`` (what the server was told) to
    ``desired``: one ``unsubscribe``, one ``subscribe``, then one ``mode`` per mode (sorted),
    each omitted when empty; tokens in ascending order. New tokens always get a ``mode``
    message, since Kite's default after ``subscribe`` is undocumented."""
    removed = sorted(t for t in upstream if t not in desired)
    added = sorted(t for t in desired if t not in upstream)
    by_mode: dict[KiteMode, list[int]] = {}
    for token in sorted(desired):
        mode = desired[token]
        if token not in upstream or upstream[token] != mode:
            by_mode.setdefault(mode, []).append(token)
    messages: list[dict[str, Any]] = []
    if removed:
        messages.append({"a": "unsubscribe", "v": removed})
    if added:
        messages.append({"a": "subscribe", "v": added})
    for mode in sorted(by_mode):
        messages.append({"a": "mode", "v": [mode, by_mode[mode]]})
    return messages


def apply_message(message: Mapping[str, Any], upstream: dict[int, KiteMode]) -> None:
    """Record in ``upstream`` what the server holds once it has read ``message`` (one of
    ``plan_subscriptions``'): Kite's own default after ``subscribe`` is ``quote``."""
    action, value = message["a"], message["v"]
    if action == "unsubscribe":
        for token in value:
            upstream.pop(token, None)
    elif action == "subscribe":
        for token in value:
            upstream.setdefault(token, "quote")
    else:
        mode, tokens = value
        for token in tokens:
            upstream[token] = mode


class SubscriptionBook:
    """The reference counts of the subscribed tokens and their place on ``connections``.

    ``add`` counts one reference per instrument: a new token goes, in ``mode``, to the
    lowest-numbered connection with fewer than ``max_per_connection`` tokens; a known token's
    mode is raised to ``mode`` if richer, never lowered. Instruments that find no room are
    returned, kept in ``rejected`` (key -> instrument) and not placed. ``remove`` drops one
    reference per instrument and frees the token at zero; an instrument that was not placed is
    cleared from ``rejected``. Every change to a connection's ``desired`` sets its ``dirty``
    event. ``refs`` (token -> count) is never rebound, so the frame handler may keep it to tell
    subscribed tokens from tokens in flight after an unsubscribe. Nothing here blocks or logs.
    """

    def __init__(self, connections: Sequence[Connection], max_per_connection: int) -> None:
        self.connections = connections
        self.max_per_connection = max_per_connection
        self.refs: dict[int, int] = {}
        self.rejected: dict[str, Instrument] = {}
        self._connection_of: dict[int, Connection] = {}

    @property
    def limit(self) -> int:
        """How many tokens all the connections may carry together."""
        return len(self.connections) * self.max_per_connection

    def add(self, instruments: Iterable[Instrument], mode: KiteMode) -> list[Instrument]:
        """Add a reference to each instrument; returns those refused for lack of room."""
        refused: list[Instrument] = []
        for instrument in instruments:
            token = instrument.instrument_token
            conn = self._connection_of.get(token)
            if conn is not None:
                self.refs[token] += 1
                if MODES.index(mode) > MODES.index(conn.desired[token]):
                    conn.desired[token] = mode
                    conn.dirty.set()
                continue
            conn = next(
                (c for c in self.connections if len(c.desired) < self.max_per_connection), None
            )
            if conn is None:
                refused.append(instrument)
                continue
            self.refs[token] = 1
            conn.desired[token] = mode
            self._connection_of[token] = conn
            self.rejected.pop(instrument.key, None)
            conn.dirty.set()
        for instrument in refused:
            self.rejected[instrument.key] = instrument
        return refused

    def remove(self, instruments: Iterable[Instrument]) -> None:
        """Drop a reference to each instrument; the last one takes its token off its connection."""
        for instrument in instruments:
            token = instrument.instrument_token
            conn = self._connection_of.get(token)
            if conn is None:
                self.rejected.pop(instrument.key, None)
                continue
            self.refs[token] -= 1
            if self.refs[token] > 0:
                continue
            del self.refs[token]
            del self._connection_of[token]
            del conn.desired[token]
            conn.dirty.set()

    def desired(self) -> dict[int, KiteMode]:
        """Token -> mode of every subscribed token, over all connections."""
        return {t: mode for c in self.connections for t, mode in c.desired.items()}
