"""The raw picows broadcaster: the floor any Python fan-out on picows can reach.

    python bench/baseline_picows.py --symbols 50 [--port 0] [--cork]

Same wire shape as tickhub's ``/ws/stream`` (welcome, one ``subscription`` ack per symbol,
``heartbeat`` acks, ``data``/``tick_data`` messages with a per-topic ``seq`` and the publish stamp
in ``last_quantity``), none of the work: no snapshots, no candles, no engines, no bus. Per tick it
formats one message of the same size, frames it once, and writes the same bytes to every
subscriber's transport (``transport.underlying_transport.write``); in a burst (``rate R K``) the K
messages of a frame go out back to back in one loop turn, each framed and written as it comes. A
client whose write buffer passes 1 MiB (tickhub's default ``OUTBOX_BYTES``) is skipped until it
drains (counted as dropped), so a stalled client cannot grow memory without bound. Speaks the
control channel of ``control.py``.

``--cork`` (``picows-cork``): in a burst each client's frames are gathered and written once, joined,
after the frame's last message: one write per client per burst, as tickhub and Bun do. The floor of
a corked Python fan-out, to set tickhub's burst figure against.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import struct
import time
from datetime import UTC, datetime

import orjson
import uvloop
from benchfeed import MARKET_START, base_price, symbol
from control import announce, parse_burst, parse_rate, raise_nofile, serve_commands
from pacer import Pacer
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

OUTBOX_BYTES = 1_048_576
EPOCH = "0badcafe"
_STEPS = 21
_PACK_16 = struct.Struct("!BBH").pack


def frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return _PACK_16(0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


def iso(ts: datetime) -> str:
    return f"{ts:%Y-%m-%dT%H:%M:%S}.{ts.microsecond // 1000:03d}Z"


class Client(WSListener):
    __slots__ = ("corked", "paused", "raw", "sent", "server", "topics", "transport")

    def __init__(self, server: Broadcaster) -> None:
        self.server = server
        self.transport: WSTransport | None = None
        self.raw: asyncio.Transport | None = None
        self.paused = False
        self.topics: set[int] = set()
        self.sent = 0
        self.corked: list[bytes] | None = None

    def reply(self, msg: dict[str, object]) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, orjson.dumps(msg))
        self.sent += 1

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.raw = transport.underlying_transport
        self.raw.set_write_buffer_limits(high=OUTBOX_BYTES)
        self.server.clients += 1
        self.reply(
            {
                "type": "connection",
                "status": "connected",
                "timestamp": iso(datetime.now(UTC)),
                "message": "WebSocket connection established successfully",
                "endpoint": "/ws/stream",
                "connection_id": f"{os.getpid():x}-{self.server.clients}",
                "protocol_version": 1,
            }
        )

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        for t in self.topics:
            self.server.topics[t].pop(self, None)
        self.topics.clear()
        self.server.clients -= 1
        self.raw = None

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if frame.msg_type != WSMsgType.TEXT:
            return
        msg = orjson.loads(frame.get_payload_as_bytes())
        kind = msg.get("type")
        now = iso(datetime.now(UTC))
        if kind == "subscribe":
            names = msg.get("symbols") or [msg.get("symbol")]
            for name in names:
                t = self.server.index.get(name)
                if t is None:
                    continue
                self.server.topics[t][self] = None
                self.topics.add(t)
                self.reply(
                    {
                        "type": "subscription",
                        "status": "subscribed",
                        "symbol": name,
                        "timestamp": now,
                        "interval": "1m",
                    }
                )
        elif kind == "heartbeat":
            self.reply(
                {
                    "type": "heartbeat",
                    "status": "ack",
                    "timestamp": now,
                    "sent": self.sent,
                    "dropped": 0,
                    "conflated": 0,
                }
            )
        elif kind == "ping":
            self.reply({"type": "pong", "timestamp": now})


class Broadcaster:
    def __init__(self, count: int, cork: bool = False) -> None:
        self.names = [symbol(i) for i in range(count)]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.topics: list[dict[Client, None]] = [{} for _ in range(count)]
        self.seq = [0] * count
        self.volume = [0] * count
        bases = [base_price(i) for i in range(count)]
        self.prices = []
        for base in bases:
            row = []
            for k in range(_STEPS):
                p = round(base + 0.05 * (k - _STEPS // 2), 2)
                change = round(p - base, 4)
                row.append(
                    f'"price":{p},"VOL","change":{change},'
                    f'"change_percent":{round(change * 100.0 / base, 2)},"open":{base},'
                    f'"high":{round(base * 1.01, 2)},"low":{round(base * 0.99, 2)},'
                    f'"prev_close":{base}'
                )
            self.prices.append([r.split('"VOL"') for r in row])
        self.bases = bases
        self.clients = 0
        self.next = 0
        self.round = 0
        self.delivered = 0
        self.dropped = 0
        self.ts = iso(MARKET_START)
        self.t0 = time.monotonic()
        self.cork = cork
        self._corked: list[Client] = []
        self.pacer = Pacer(
            self.emit, on_batch=self.tick_clock, on_frame=self.uncork if cork else None
        )

    def uncork(self) -> None:
        """After a burst's last message: each client's frames of the burst in one write."""
        clients, self._corked = self._corked, []
        for client in clients:
            frames, client.corked = client.corked, None
            if frames and client.raw is not None:
                client.raw.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def tick_clock(self) -> None:
        self.ts = iso(
            datetime.fromtimestamp(MARKET_START.timestamp() + time.monotonic() - self.t0, UTC)
        )

    def emit(self) -> None:
        i = self.next
        seq = self.seq[i] = self.seq[i] + 1
        vol = self.volume[i] = self.volume[i] + 25
        head, tail = self.prices[i][self.round % _STEPS]
        ts = self.ts
        payload = (
            f'{{"type":"data","symbol":"{self.names[i]}","timestamp":"{ts}",'
            f'"data_type":"tick_data","seq":{seq},"epoch":"{EPOCH}","interval":"1m",'
            f'"data":{{{head}"volume":{vol}{tail},"last_quantity":{time.monotonic_ns() // 1000},'
            f'"average_price":{self.bases[i]},"buy_quantity":250000,"sell_quantity":240000,'
            f'"exchange_timestamp":"{ts}"}}}}'
        ).encode()
        data = frame(payload)
        written = 0
        if self.cork:
            corked = self._corked
            for client in self.topics[i]:
                if client.paused:
                    self.dropped += 1
                    continue
                frames = client.corked
                if frames is None:
                    client.corked = [data]
                    corked.append(client)
                else:
                    frames.append(data)
                written += 1
        else:
            for client in self.topics[i]:
                if client.paused:
                    self.dropped += 1
                    continue
                client.raw.write(data)  # type: ignore[union-attr]
                written += 1
        self.delivered += written
        i += 1
        if i == len(self.names):
            i = 0
            self.round += 1
        self.next = i


async def main(args: argparse.Namespace) -> None:
    raise_nofile()
    hub = Broadcaster(args.symbols, cork=args.cork)

    def route(request: WSUpgradeRequest) -> Client:
        return Client(hub)

    server = await ws_create_server(route, "127.0.0.1", args.port, enable_auto_ping=False)
    port = server.sockets[0].getsockname()[1]
    announce("READY", port=port, pid=os.getpid(), server="picows-cork" if args.cork else "picows")

    def rate(words: list[str]) -> tuple[str, dict[str, object]]:
        burst = parse_burst(words)
        hub.pacer.set_rate(parse_rate(words[0]), burst)
        return "OK", {"rate": words[0], "burst": burst}

    def stats(words: list[str]) -> tuple[str, dict[str, object]]:
        return "STATS", {
            "ticks": hub.pacer.emitted,
            "frames": hub.pacer.frames,
            "shed": hub.pacer.shed,
            "delivered": hub.delivered,
            "dropped": hub.dropped,
            "connections": hub.clients,
            "paused": len({c for t in hub.topics for c in t if c.paused}),
        }

    try:
        await serve_commands({"rate": rate, "stats": stats})
    finally:
        hub.pacer.stop()
        server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--cork", action="store_true", help="one write per client per burst")
    uvloop.run(main(parser.parse_args()))
