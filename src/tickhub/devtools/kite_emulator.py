"""A local server speaking Kite Connect's ticker protocol, for tests and demos.

``KiteEmulator`` listens on ``ws://HOST:PORT`` and behaves like ``wss://ws.kite.trade``:

- **Handshake.** ``?api_key=...&access_token=...`` must match, else HTTP 403 (as Kite answers a
  bad or expired token). Right after the handshake it sends the text frames Kite has been seen to
  send, ``{"type":"instruments_meta",...}`` and ``{"type":"app_code",...}``.
- **Client messages.** ``{"a":"subscribe","v":[tokens]}`` subscribes in mode ``quote`` (a token
  already subscribed keeps its mode); ``{"a":"mode","v":[mode,[tokens]]}`` changes the mode of
  tokens subscribed *on that connection* (others are ignored, so a client that sends ``mode``
  before ``subscribe`` gets quotes, as with Kite); ``{"a":"unsubscribe","v":[tokens]}``. There
  are no acknowledgements. More than ``max_per_connection`` tokens on one connection: the extra
  ones are refused with a ``{"type":"error"}`` text frame.
- **Data.** A ``SimMarket`` over the registry, advanced every ``step`` clock seconds by ``speed``
  session seconds a clock second (as ``SimFeed`` does). Each step, every connection gets the
  ticks of its subscribed tokens, encoded in its modes by ``encode``, several packets a binary
  frame. A connection that was sent nothing for ``heartbeat_interval`` gets a 1-byte heartbeat.
  Tokens that are not in the registry can be subscribed but never tick.

Market clock across restarts
    With a ``state_file`` (``tickhub kite-emulator`` keeps one in ``DATA_DIR``) the emulator
    writes the market date it has reached there (at start, at each new market day, at stop) and
    a later start without an explicit ``start`` opens the next session after it, so a client
    that reconnects after a restart never sees exchange time go back (nor the day's cumulative
    volume fall within a day); a state file that cannot be read is ignored with a warning.

Shutting down
    ``close()`` ends every connection with a close frame (1001, going away, as a server that is
    shutting down sends) before ``stop()``; ``serve_emulator`` does it on SIGTERM and SIGINT.

Fault controls (plain methods, for tests and demos): ``drop_connections`` (abort every socket),
``stall`` (the sockets open now go silent, no data and no heartbeats, like a half-open TCP
connection; sockets opened later work), ``stall_data`` (the whole upstream has no data:
heartbeats continue, on new sockets too), ``resume`` (ends both stalls), ``send_malformed``,
``send_text``, ``expire_token``. ``connections``, ``subscriptions``, ``messages``,
``handshakes`` and ``wait_until`` are for assertions. Every send goes through a per-connection
queue, so a slow client never holds up the others.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http
import json
import logging
import math
import os
import secrets
import signal
from collections import deque
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tickhub.core import defaults
from tickhub.core.clock import Clock
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import IST, Instrument, Tick
from tickhub.feeds.kite.encode import HEARTBEAT, encode_frame, encode_packet, tick_to_kite
from tickhub.feeds.kite.parse import MODES, KiteMode
from tickhub.feeds.kite.redact import websocket_logger
from tickhub.feeds.sim import MarketPacer, SimMarket, default_start, session_start
from tickhub.runtime.clock import SystemClock

__all__ = ["KiteEmulator", "main", "serve_emulator"]

log = logging.getLogger(__name__)

_PACKETS_PER_FRAME: Final = 200
_OUTBOX_FRAMES: Final = 1_000
_HISTORY: Final = 512
_GOING_AWAY: Final = 1001
_CLOSE_WAIT: Final = 2.0
"""Seconds ``close()`` waits for clients to answer the close frame before aborting them."""


_WS_LOG = websocket_logger(__name__)


class _Close:
    """Outbox item: close the connection gracefully once everything before it is sent."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


_Outgoing = bytes | str | _Close


class _Session:
    """One accepted connection: its subscriptions and its outbox."""

    __slots__ = ("id", "last_sent", "modes", "outbox", "stalled_until", "ws")

    def __init__(self, id: int, ws: ServerConnection, now: float) -> None:
        self.id = id
        self.ws = ws
        self.modes: dict[int, KiteMode] = {}
        self.outbox: asyncio.Queue[_Outgoing] = asyncio.Queue(_OUTBOX_FRAMES)
        self.stalled_until = -math.inf
        self.last_sent = now

    def put(self, item: _Outgoing, now: float) -> None:
        try:
            self.outbox.put_nowait(item)
        except asyncio.QueueFull:
            log.warning("kite emulator: connection %d is not reading; frame dropped", self.id)
            return
        self.last_sent = now


class KiteEmulator:
    """A Kite ticker server on a local port; see the module docstring for its behaviour."""

    def __init__(
        self,
        registry: InstrumentRegistry | Iterable[Instrument],
        *,
        api_key: str = "test_key",
        access_token: str = "test_token",
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = defaults.SIM_SEED,
        speed: float = defaults.SIM_SPEED,
        clock: Clock | None = None,
        heartbeat_interval: float = 2.0,
        start: datetime | None = None,
        step: float = defaults.SIM_STEP,
        tick_rate: float = defaults.SIM_TICK_RATE,
        max_per_connection: int = defaults.KITE_MAX_PER_CONNECTION,
        state_file: Path | None = None,
    ) -> None:
        if not heartbeat_interval > 0:
            raise ValueError(f"heartbeat_interval must be positive: {heartbeat_interval!r}")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._api_key = api_key
        self._access_token = access_token
        self._host = host
        self._port = port
        self._heartbeat_interval = heartbeat_interval
        self._max_per_connection = max_per_connection
        instruments = list(registry)
        self._instrument_count = len(instruments)
        self._state_file = state_file
        begin = start
        if begin is None:
            begin = default_start(self._clock.now())
            reached = _read_state(state_file)
            if reached is not None:
                begin = max(begin, _next_session(reached))
        self._market = SimMarket(instruments, start=begin, seed=seed, tick_rate=tick_rate)
        self._market_day: date | None = None
        self._pacer = MarketPacer(
            self._market, self._clock, speed=speed, step=step, tick_rate=tick_rate
        )
        self._server: Server | None = None
        self._pump: asyncio.Task[None] | None = None
        self._sessions: dict[int, _Session] = {}
        self._writers: set[asyncio.Task[None]] = set()
        self._next_id = 1
        self._data_stalled_until = -math.inf
        self._history: dict[int, deque[Tick]] = {}
        self._changed = asyncio.Event()
        self.handshakes = 0
        """Opening handshakes received, accepted or not."""
        self.rejected_handshakes = 0
        """Handshakes answered with HTTP 403."""
        self.messages: list[tuple[int, dict[str, Any]]] = []
        """Every JSON object clients sent, as ``(connection id, message)``, in arrival order."""
        self.kite_versions: list[str | None] = []
        """The ``X-Kite-Version`` header of every accepted handshake."""

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> int:
        """Start listening and streaming; returns the port."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._server = await serve(
            self._handle,
            self._host,
            self._port,
            process_request=self._process_request,
            compression=None,
            ping_interval=None,
            max_size=2**16,
            logger=_WS_LOG,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self._save_state()
        self._pump = asyncio.create_task(self._run_pump(), name="kite-emulator-pump")
        return self._port

    async def close(self, reason: str = "emulator shutting down") -> None:
        """Stop as a server that shuts down: every client gets a close frame (1001) after what
        was queued for it, then ``stop()``; a client that does not answer within 2 s is
        aborted."""
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.wait({self._pump})
            self._pump = None
        now = self._clock.monotonic()
        for session in self._sessions.values():
            session.put(_Close(_GOING_AWAY, reason), now)
        if self._sessions:
            with contextlib.suppress(TimeoutError):
                await self.wait_until(lambda: not self._sessions, timeout=_CLOSE_WAIT)
        await self.stop()

    async def stop(self) -> None:
        """Stop as if killed: sockets are aborted, not closed; the port is free afterwards."""
        server, pump = self._server, self._pump
        self._server = self._pump = None
        if pump is not None:
            pump.cancel()
            await asyncio.wait({pump})
        if server is not None:
            self._save_state()
        self.drop_connections()
        if server is not None:
            server.close(close_connections=False)
            await server.wait_closed()
        writers = set(self._writers)
        for task in writers:
            task.cancel()
        if writers:
            await asyncio.wait(writers)

    async def __aenter__(self) -> KiteEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """``ws://HOST:PORT``, without credentials."""
        return f"ws://{self._host}:{self._port}"

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def access_token(self) -> str:
        """The token handshakes must carry now."""
        return self._access_token

    @property
    def market(self) -> SimMarket:
        return self._market

    # -- state for assertions -------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """Open connections (handshake done, not yet closed)."""
        return len(self._sessions)

    @property
    def subscriptions(self) -> dict[int, KiteMode]:
        """Token -> mode over all connections (the richest mode if two connections differ)."""
        merged: dict[int, KiteMode] = {}
        for session in self._sessions.values():
            for token, mode in session.modes.items():
                if MODES.index(mode) >= MODES.index(merged.get(token, "ltp")):
                    merged[token] = mode
        return merged

    def connection_subscriptions(self) -> dict[int, dict[int, KiteMode]]:
        """Connection id -> (token -> mode), for every open connection."""
        return {sid: dict(s.modes) for sid, s in self._sessions.items()}

    def recent_ticks(self, token: int) -> list[Tick]:
        """The last ticks the market produced for ``token`` (up to 512), oldest first."""
        return list(self._history.get(token, ()))

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds; it is checked after every handshake, client message
        and connection change. Raises ``TimeoutError``."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    # -- fault controls -------------------------------------------------------------------------

    def drop_connections(self) -> int:
        """Abort every open socket (no close frame, as a network failure); returns how many."""
        sessions = list(self._sessions.values())
        for session in sessions:
            session.ws.transport.abort()
        return len(sessions)

    def stall(self, seconds: float | None = None) -> None:
        """Silence the sockets open now (no data, no heartbeats) for ``seconds`` or until
        ``resume()``; they stay open. Sockets opened later are not affected."""
        until = self._until(seconds)
        for session in self._sessions.values():
            session.stalled_until = until

    def stall_data(self, seconds: float | None = None) -> None:
        """Stop sending ticks on every socket, new ones included, for ``seconds`` or until
        ``resume()``; heartbeats continue (the "socket alive, no data" case)."""
        self._data_stalled_until = self._until(seconds)

    def resume(self) -> None:
        """End ``stall`` and ``stall_data``."""
        self._data_stalled_until = -math.inf
        for session in self._sessions.values():
            session.stalled_until = -math.inf

    def send_malformed(self) -> None:
        """Send every connection a truncated binary frame, a frame holding a packet of unknown
        length (10 bytes) between two valid LTP packets, and a text frame that is not JSON."""
        now = self._clock.monotonic()
        for session in self._sessions.values():
            token = next(iter(session.modes), 408065)
            price = self._last_price(token)
            tick = Tick(symbol="", instrument_token=token, timestamp=self._clock.now(), price=price)
            ltp = encode_packet(tick_to_kite(tick, token, "ltp"))
            good = encode_frame([ltp, ltp])
            session.put(good[:-3], now)
            session.put(encode_frame([ltp, b"\x00" * 10, ltp]), now)
            session.put('{"type": "message", "data": ', now)

    def send_text(self, raw: str) -> None:
        """Send every connection this text frame as is."""
        now = self._clock.monotonic()
        for session in self._sessions.values():
            session.put(raw, now)

    def expire_token(self, new_token: str | None = None) -> str:
        """Retire the current access token: open connections get an error text frame and are
        closed (code 1000); handshakes must then carry ``new_token`` (random if ``None``),
        which is returned."""
        self._access_token = new_token if new_token is not None else secrets.token_hex(16)
        now = self._clock.monotonic()
        for session in self._sessions.values():
            session.put(json.dumps({"type": "error", "data": "access token expired"}), now)
            session.put(_Close(1000, "access token expired"), now)
        return self._access_token

    # -- connections ----------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes += 1
        self._notify()
        query = parse_qs(urlsplit(request.path).query)
        api_key = query.get("api_key", [""])[0]
        token = query.get("access_token", [""])[0]
        if not (
            secrets.compare_digest(api_key, self._api_key)
            and secrets.compare_digest(token, self._access_token)
        ):
            self.rejected_handshakes += 1
            log.info("kite emulator: handshake rejected: invalid api_key or access_token")
            return connection.respond(
                http.HTTPStatus.FORBIDDEN, "invalid api_key or access_token\n"
            )
        self.kite_versions.append(request.headers.get("X-Kite-Version"))
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        now = self._clock.monotonic()
        session = _Session(self._next_id, ws, now)
        self._next_id += 1
        self._sessions[session.id] = session
        writer = asyncio.create_task(
            self._write(session), name=f"kite-emulator-writer-{session.id}"
        )
        self._writers.add(writer)
        writer.add_done_callback(self._writers.discard)
        meta = {"count": self._instrument_count, "etag": f'W/"{self._instrument_count}"'}
        session.put(json.dumps({"type": "instruments_meta", "data": meta}), now)
        stamp = self._clock.now().astimezone(IST).isoformat(timespec="seconds")
        session.put(json.dumps({"type": "app_code", "timestamp": stamp}), now)
        log.debug("kite emulator: connection %d open", session.id)
        self._notify()
        try:
            async for message in ws:
                self._on_message(session, message)
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
            await asyncio.wait({writer})
            del self._sessions[session.id]
            log.debug("kite emulator: connection %d closed", session.id)
            self._notify()

    async def _write(self, session: _Session) -> None:
        ws = session.ws
        with contextlib.suppress(ConnectionClosed):
            while True:
                item = await session.outbox.get()
                if isinstance(item, _Close):
                    await ws.close(item.code, item.reason)
                    return
                await ws.send(item)

    def _on_message(self, session: _Session, message: str | bytes) -> None:
        try:
            decoded = json.loads(message)
        except ValueError:
            log.warning("kite emulator: connection %d sent a frame that is not JSON", session.id)
            return
        if not isinstance(decoded, dict):
            log.warning("kite emulator: connection %d sent JSON that is not an object", session.id)
            return
        self.messages.append((session.id, decoded))
        action, value = decoded.get("a"), decoded.get("v")
        if action == "subscribe":
            for token in _tokens(value):
                if token in session.modes:
                    continue
                if len(session.modes) >= self._max_per_connection:
                    self._refuse(session, token)
                    continue
                session.modes[token] = "quote"
        elif action == "unsubscribe":
            for token in _tokens(value):
                session.modes.pop(token, None)
        elif action == "mode" and isinstance(value, list) and len(value) == 2:
            mode = next((m for m in MODES if m == value[0]), None)
            if mode is not None:
                for token in _tokens(value[1]):
                    if token in session.modes:
                        session.modes[token] = mode
        else:
            log.warning("kite emulator: connection %d sent an unknown message", session.id)
        self._notify()

    def _refuse(self, session: _Session, token: int) -> None:
        text = f"too many instruments: {token} refused (limit {self._max_per_connection})"
        session.put(json.dumps({"type": "error", "data": text}), self._clock.monotonic())

    # -- the market -----------------------------------------------------------------------------

    async def _run_pump(self) -> None:
        async for now, ticks in self._pacer.batches():
            if self._market.now.date() != self._market_day:
                self._save_state()
            for tick in ticks:
                history = self._history.get(tick.instrument_token)
                if history is None:
                    history = self._history[tick.instrument_token] = deque(maxlen=_HISTORY)
                history.append(tick)
            self._broadcast(ticks, now)

    def _broadcast(self, ticks: list[Tick], now: float) -> None:
        data_flows = now >= self._data_stalled_until
        encoded: dict[tuple[int, KiteMode], bytes] = {}  # each tick encoded once per mode
        for session in self._sessions.values():
            if now < session.stalled_until:
                continue
            if data_flows and session.modes:
                packets: list[bytes] = []
                for i, tick in enumerate(ticks):
                    mode = session.modes.get(tick.instrument_token)
                    if mode is None:
                        continue
                    packet = encoded.get((i, mode))
                    if packet is None:
                        packet = encoded[(i, mode)] = self._encode(tick, mode)
                    if packet:
                        packets.append(packet)
                for at in range(0, len(packets), _PACKETS_PER_FRAME):
                    session.put(encode_frame(packets[at : at + _PACKETS_PER_FRAME]), now)
            if now - session.last_sent >= self._heartbeat_interval:
                session.put(HEARTBEAT, now)

    def _encode(self, tick: Tick, mode: KiteMode) -> bytes:
        try:
            return encode_packet(tick_to_kite(tick, tick.instrument_token, mode))
        except ValueError as exc:
            log.warning("kite emulator: cannot encode a tick of %s: %s", tick.symbol, exc)
            return b""

    def _last_price(self, token: int) -> float:
        history = self._history.get(token)
        return history[-1].price if history else 100.0

    # -- helpers --------------------------------------------------------------------------------

    def _save_state(self) -> None:
        """Write the market date reached (atomically: a crash leaves the old file or the new)."""
        self._market_day = self._market.now.date()
        if self._state_file is None:
            return
        body = json.dumps({"market_time": self._market.now.isoformat()})
        temporary = self._state_file.with_name(self._state_file.name + ".tmp")
        try:
            self._state_file.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(body + "\n", encoding="utf-8")
            os.replace(temporary, self._state_file)
        except OSError as exc:
            log.warning("kite emulator: cannot write %s: %s", self._state_file, exc.strerror)

    def _until(self, seconds: float | None) -> float:
        return math.inf if seconds is None else self._clock.monotonic() + seconds

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


def _read_state(path: Path | None) -> datetime | None:
    """The market time a previous run reached, or ``None`` (no file, or one not understood)."""
    if path is None:
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        reached = datetime.fromisoformat(raw["market_time"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("kite emulator: ignoring %s (%s): the market starts afresh", path, exc)
        return None
    if reached.tzinfo is None:
        log.warning("kite emulator: ignoring %s: market_time has no time zone", path)
        return None
    return reached


def _next_session(t: datetime) -> datetime:
    """The open of the first session on a day after ``t``'s (IST)."""
    day = t.astimezone(IST).date() + timedelta(days=1)
    return session_start(datetime.combine(day, time(0), IST))


def _tokens(value: object) -> list[int]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, int) and not isinstance(v, bool) and v >= 0]


async def serve_emulator(
    host: str,
    port: int,
    api_key: str,
    access_token: str,
    registry: InstrumentRegistry,
    speed: float,
    state_file: Path | None = None,
) -> None:
    """Run a ``KiteEmulator`` until cancelled, SIGTERM or SIGINT (the ``tickhub kite-emulator``
    command); the signals close every client with 1001 before returning."""
    emulator = KiteEmulator(
        registry,
        api_key=api_key,
        access_token=access_token,
        host=host,
        port=port,
        speed=speed,
        state_file=state_file,
    )
    await emulator.start()
    log.info(
        "kite emulator listening on %s?api_key=%s&access_token=... (%d instruments, speed %g)",
        emulator.url,
        api_key,
        len(registry),
        speed,
    )
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stopping.set)
            handled.append(sig)
    try:
        await stopping.wait()
        log.info("kite emulator: shutting down, closing %d connection(s)", emulator.connections)
        await emulator.close()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await emulator.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m tickhub.devtools.kite_emulator``: the bundled instruments on a local port."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=defaults.KITE_EMULATOR_PORT)
    parser.add_argument("--api-key", default="test_key")
    parser.add_argument("--access-token", default="test_token")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--state-file", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(message)s")
    registry = InstrumentRegistry.bundled()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve_emulator(
                args.host,
                args.port,
                args.api_key,
                args.access_token,
                registry,
                args.speed,
                args.state_file,
            )
        )


if __name__ == "__main__":
    main()
