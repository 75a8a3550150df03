"""Numbering and encoding of ``data`` messages on the producer side.

Every topic has its own ``seq`` that increases by one per message, and an ``epoch`` that names this
producer run: a client that sees ``seq`` jump knows it missed messages, and a new ``epoch`` tells it
the numbering restarted. Numbering happens once, where messages are produced, so every gateway
delivers the same ``seq`` for the same message. Each message is encoded exactly once here, with
``server_time`` (the server's wall clock when it was made) beside ``timestamp`` (the exchange time
it is about), into the one encoding every client receives.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tickhub.bus import Bus, BusMessage
from tickhub.core import protocol

STATUS_TOPIC = "status"


class Publisher:
    def __init__(
        self, bus: Bus, epoch: str, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.bus = bus
        self.epoch = epoch
        self._now = now  # the server's wall clock, for ``server_time``
        self._seq: dict[str, int] = {}
        self.published = 0

    def data(
        self,
        topic: str,
        symbol: str,
        data_type: str,
        data: dict[str, Any],
        ts: datetime,
        *,
        slot: str | None,
        retain: str | None = None,
        interval: str | None = None,
        **extra: Any,
    ) -> None:
        seq = self._seq.get(topic, 0) + 1
        self._seq[topic] = seq
        payload = self._encode(seq, symbol, data_type, data, ts, interval, extra)
        self.bus.publish(
            BusMessage(
                topic,
                payload,
                slot,
                retain,
                published_at=time.time(),
                seq=seq,
                epoch=self.epoch,
            )
        )
        self.published += 1

    def retain_only(
        self,
        topic: str,
        symbol: str,
        data_type: str,
        data: dict[str, Any],
        ts: datetime,
        *,
        retain: str,
        interval: str | None = None,
    ) -> None:
        """State that only new subscribers need (chart history): kept for snapshots, not sent
        live, and numbered with the topic's current ``seq`` since it is not a new message."""
        seq = self._seq.get(topic, 0)
        payload = self._encode(seq, symbol, data_type, data, ts, interval, {})
        self.bus.publish(BusMessage(topic, payload, None, retain, deliver=False))

    def _encode(
        self,
        seq: int,
        symbol: str,
        data_type: str,
        data: dict[str, Any],
        ts: datetime,
        interval: str | None,
        extra: dict[str, Any],
    ) -> bytes:
        msg: dict[str, Any] = {
            "type": "data",
            "symbol": symbol,
            "timestamp": protocol.iso(ts),
            "server_time": protocol.iso(self._now()),
            "data_type": data_type,
            "seq": seq,
            "epoch": self.epoch,
        }
        if interval is not None:
            msg["interval"] = interval
        if extra:
            msg.update(extra)
        msg["data"] = data
        return protocol.encode(msg)

    def drop_retained(self, topic: str, retain: str) -> None:
        """Forget one retained value (a position that no longer exists)."""
        self.bus.publish(BusMessage(topic, b"", None, retain, deliver=False, drop=True))

    def status(self, now: datetime, **fields: Any) -> None:
        """A feed/service ``status`` message for every connected client."""
        self.bus.publish(
            BusMessage(STATUS_TOPIC, protocol.reply(now, "status", **fields), None, "status")
        )
