"""Redis bus: several gateway processes share one producer through Redis pub/sub.

Keys and channels (``prefix`` defaults to ``tickhub``)::

    {prefix}:t:{topic}   pub/sub channel; every message is one envelope (below)
    {prefix}:r:{topic}   hash: retain name -> u64 version (big-endian) + payload
    {prefix}:v           counter: version of the latest retained update (INCR)
    {prefix}:s:{topic}   hash: resume history of the current producer run: e epoch, f floor,
                         l last seq, r:{name} -> "{seq} " + payload (retained state sent live)
    {prefix}:h:{topic}   stream (MAXLEN history_size): recoverable messages (events, candles)
                         of that run; fields s (seq) and m (the published envelope)

Envelope (one PUBLISH payload; integers big-endian, names UTF-8)::

    u8   format = 1
    u8   flags: 0x01 deliver, 0x02 drop, 0x04 slot, 0x08 retain, 0x10 published_at, 0x20 seq
    [f64 seconds]             published_at  when 0x10 (wall clock, for the latency metric)
    [u64 seq, u16 n, n]       seq, epoch    when 0x20
    [u16 n, n bytes]          slot          when 0x04
    [u64 version, u16 n, n]   retain        when 0x08 (version: set by Redis, see below)
    payload                   the rest of the bytes

The writer hands runs of up to 500 queued messages to one Lua script (``_SCRIPT``), so a run
is atomic and costs one command. For each retained message it takes the next version (INCR),
updates the hash (HSET, or HDEL for ``drop``) and publishes the envelope with that version, so
the hash, the versions and the message order never disagree; other messages are just
published. Every numbered message also updates the topic's resume history in the same call,
as ``TopicHistory.record`` would (see ``bus.history``), so history, hash and publish order
agree too. Retained updates are published even with ``deliver=False`` (flag 0x01 clear):
subscribers keep their retained cache with them but do not pass them to handlers. A message
with neither ``retain`` nor ``deliver`` is not sent at all.

Behaviour:

- ``publish`` never blocks or raises: it queues (at most ``max_queue`` messages). When the queue
  is full the oldest conflatable message (``slot`` not ``None``) is dropped and counted in
  ``dropped``; events (``slot=None``) are never dropped, so events alone may exceed the bound.
  A writer task sends everything queued (up to 10,000) in one pipeline per round, in order. A
  batch whose outcome is unknown after a connection loss is sent again: around an outage a
  message may arrive twice, never out of order. Redis refusing an update (out of memory) drops
  that message, logged and counted.
- ``subscribe``/``unsubscribe`` are local and immediate; the reader task SUBSCRIBEs a topic's
  channel for its first handler and UNSUBSCRIBEs it after its last (batched).
- ``retained_nowait`` answers from a cache of each subscribed topic: filled from Redis once the
  subscription is confirmed, then kept current by the envelopes received (versions make the
  merge exact). ``None`` until the first sync, and for topics not subscribed here. During an
  outage the cache keeps the last known values; it is synced again after reconnecting.
  ``retained`` reads Redis (HGETALL, ordered by version), except for a topic subscribed here:
  then it waits for the subscription to be confirmed and synced and answers from the cache, so
  the snapshot lines up with what handlers receive (an update published between ``subscribe``
  and the confirmation is in the snapshot, not delivered live; an event there is missed).
  With a ``gate`` (``SnapshotGate``), a topic it calls pending gets ``None`` from
  ``retained_nowait``, and ``retained`` waits for the gate first.
- ``recover_nowait`` answers from a ``TopicHistory`` that each subscribed topic keeps of the
  numbered messages received since it was subscribed here (restarted after a reconnect, since
  messages may have been missed). When that history does not cover the request (a topic not
  subscribed here, nothing received yet, or a ``seq`` outside it) it returns ``False`` and
  ``recover`` rebuilds the history from Redis (the stream and the history hash), so a client
  resumes exactly on any gateway. ``None`` (a fresh snapshot) for another epoch, a ``seq``
  older than the stream keeps, or when Redis cannot be read.
- ``start`` does not fail when Redis is down: it logs a warning and both tasks keep retrying
  with capped exponential backoff (``connected`` stays ``False``). A rejected password does
  fail ``start``. After a reconnect every topic is subscribed again and queued messages go out.
  ``on_state(connected)`` is called on every change of ``connected``.
- ``flush`` waits until everything handed to the bus before the call has taken effect.
- ``close`` sends what is queued (at most ``close_timeout`` seconds), then stops the tasks.

Limits: single Redis (no cluster); pub/sub is at-most-once, so messages published while a
gateway is disconnected are not delivered to it (retained state is synced again); retained state
lives in Redis: a producer that must survive a Redis restart without persistence publishes its
state again on ``on_state(True)`` (the ingest does).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import random
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

try:
    import redis.asyncio as aioredis
    from redis.asyncio.client import PubSub
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import AuthenticationError, RedisError
except ImportError as exc:  # pragma: no cover - redis is a dependency of tickhub
    raise ImportError("the redis bus needs the 'redis' package: pip install redis") from exc

from tickhub.bus.base import BusMessage, Handler, SnapshotGate
from tickhub.bus.history import TopicHistory, recoverable

log = logging.getLogger(__name__)

FORMAT = 1
DELIVER = 0x01
DROP = 0x02
HAS_SLOT = 0x04
HAS_RETAIN = 0x08
HAS_TIME = 0x10
HAS_SEQ = 0x20
_KNOWN_FLAGS = DELIVER | DROP | HAS_SLOT | HAS_RETAIN | HAS_TIME | HAS_SEQ

_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_F64 = struct.Struct(">d")

# Publishes a run of messages, in order, in one call. KEYS: the version counter, then per message
# the hash of a retained message, then the history hash (and stream) of a message that updates
# the resume history. ARGV: the history stream length, then ten per message: op ("p" publish
# only, "s" set, "d" drop), channel, envelope head (all before the version), retain field
# (u16 length + name), payload, retain name, history op ("" none, "x" drop the state, "n..."
# numbered: 2nd char "r" keeps it as state, 3rd char "h" adds it to the stream), epoch, seq and
# seq - 1 (decimal). Returns how many hash updates Redis refused (out of memory, wrong key type).
_SCRIPT = """
local k, refused, maxlen = 1, 0, tonumber(ARGV[1])
for i = 2, #ARGV, 10 do
  local env = false
  if ARGV[i] == 'p' then
    env = ARGV[i + 2] .. ARGV[i + 4]
  else
    k = k + 1
    local v = struct.pack('>I8', redis.call('INCR', KEYS[1]))
    local r
    if ARGV[i] == 'd' then
      r = redis.pcall('HDEL', KEYS[k], ARGV[i + 5])
    else
      r = redis.pcall('HSET', KEYS[k], ARGV[i + 5], v .. ARGV[i + 4])
    end
    if type(r) == 'table' and r.err then
      refused = refused + 1
    else
      env = ARGV[i + 2] .. v .. ARGV[i + 3] .. ARGV[i + 4]
    end
  end
  if env then
    redis.call('PUBLISH', ARGV[i + 1], env)
  end
  local hop = ARGV[i + 6]
  if hop == 'x' then
    k = k + 1
    if env then
      redis.pcall('HDEL', KEYS[k], 'r:' .. ARGV[i + 5])
    end
  elseif hop ~= '' then
    local sk, hk, seq = KEYS[k + 1], KEYS[k + 2], ARGV[i + 8]
    k = k + 2
    if env then
      local n = tonumber(seq)
      if redis.pcall('HGET', sk, 'e') ~= ARGV[i + 7] then
        -- The producer restarted: its numbering means nothing to old clients.
        redis.pcall('DEL', sk, hk)
        redis.pcall('HSET', sk, 'e', ARGV[i + 7], 'f', ARGV[i + 9], 'l', seq)
      elseif n > tonumber(redis.pcall('HGET', sk, 'l') or '0') then
        redis.pcall('HSET', sk, 'l', seq)
      end
      if string.sub(hop, 2, 2) == 'r' then
        redis.pcall('HSET', sk, 'r:' .. ARGV[i + 5], seq .. ' ' .. ARGV[i + 4])
      end
      if string.sub(hop, 3, 3) == 'h' then
        local len = redis.pcall('XLEN', hk)
        if type(len) == 'number' and len >= maxlen then
          -- What the trim evicts raises the floor: older clients get a fresh snapshot.
          local old = redis.pcall('XRANGE', hk, '-', '+', 'COUNT', len - maxlen + 1)
          if type(old) == 'table' and #old > 0 then
            local f = old[#old][2][2]
            if tonumber(f) > tonumber(redis.pcall('HGET', sk, 'f') or '0') then
              redis.pcall('HSET', sk, 'f', f)
            end
          end
        end
        redis.pcall('XADD', hk, 'MAXLEN', maxlen, '*', 's', seq, 'm', env)
      end
    end
  end
end
return refused
"""
_SCRIPT_SHA = hashlib.sha1(_SCRIPT.encode()).hexdigest()

_MAX_BATCH = 10_000  # messages per pipeline
_PER_CALL = 500  # messages per script call: Redis serves no one else while it runs
_CHUNK = 500  # channels per SUBSCRIBE / hashes per sync transaction

# --- envelope (pure) -----------------------------------------------------------------------------


def _field(name: str) -> bytes:
    raw = name.encode()
    if len(raw) > 0xFFFF:
        raise ValueError(f"name too long: {len(raw)} bytes")
    return _U16.pack(len(raw)) + raw


def _head(message: BusMessage) -> bytes:
    """Format, flags, time and slot: the part of the envelope before the retained version."""
    flags = (DELIVER if message.deliver else 0) | (DROP if message.drop else 0)
    if message.slot is not None:
        flags |= HAS_SLOT
    if message.retain is not None:
        flags |= HAS_RETAIN
    if message.published_at:
        flags |= HAS_TIME
    if message.seq:
        flags |= HAS_SEQ
    head = bytes((FORMAT, flags))
    if message.published_at:
        head += _F64.pack(message.published_at)
    if message.seq:
        head += _U64.pack(message.seq) + _field(message.epoch)
    return head if message.slot is None else head + _field(message.slot)


def encode_envelope(message: BusMessage, version: int = 0) -> bytes:
    """The bytes published for ``message`` (``version`` is set by Redis for retained ones)."""
    head = _head(message)
    if message.retain is None:
        return head + message.payload
    return head + _U64.pack(version) + _field(message.retain) + message.payload


def _read_field(data: bytes, pos: int) -> tuple[str, int]:
    if len(data) < pos + 2:
        raise ValueError("truncated envelope")
    (n,) = _U16.unpack_from(data, pos)
    end = pos + 2 + n
    if len(data) < end:
        raise ValueError("truncated envelope")
    return data[pos + 2 : end].decode(), end


def decode_envelope(topic: str, data: bytes) -> tuple[BusMessage, int]:
    """The message and its retained version (0 without ``retain``); ``ValueError`` if bad."""
    if len(data) < 2 or data[0] != FORMAT:
        raise ValueError("not a tickhub bus envelope")
    flags = data[1]
    if flags & ~_KNOWN_FLAGS:
        raise ValueError(f"unknown envelope flags: {flags:#04x}")
    pos = 2
    slot: str | None = None
    retain: str | None = None
    version = 0
    published_at = 0.0
    seq = 0
    epoch = ""
    if flags & HAS_TIME:
        if len(data) < pos + 8:
            raise ValueError("truncated envelope")
        (published_at,) = _F64.unpack_from(data, pos)
        pos += 8
    if flags & HAS_SEQ:
        if len(data) < pos + 8:
            raise ValueError("truncated envelope")
        (seq,) = _U64.unpack_from(data, pos)
        epoch, pos = _read_field(data, pos + 8)
    if flags & HAS_SLOT:
        slot, pos = _read_field(data, pos)
    if flags & HAS_RETAIN:
        if len(data) < pos + 8:
            raise ValueError("truncated envelope")
        (version,) = _U64.unpack_from(data, pos)
        retain, pos = _read_field(data, pos + 8)
    deliver, drop = bool(flags & DELIVER), bool(flags & DROP)
    message = BusMessage(
        topic,
        data[pos:],
        slot,
        retain,
        deliver,
        drop,
        published_at=published_at,
        seq=seq,
        epoch=epoch,
    )
    return message, version


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs, errors and reprs)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}"
    query = parts.query
    if "password" in query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


# --- state ---------------------------------------------------------------------------------------

_QUEUED, _SENDING, _DONE = 0, 1, 2
_UNCONFIRMED, _SYNCING, _SYNCED = 0, 1, 2


class _Item:
    """One queued message, already encoded as the script arguments that send it."""

    __slots__ = ("argv", "conflatable", "index", "keys", "state")

    def __init__(
        self,
        index: int,
        keys: tuple[str, ...],
        argv: tuple[str | bytes, ...],
        conflatable: bool,
    ) -> None:
        self.index = index
        self.keys = keys
        self.argv = argv
        self.conflatable = conflatable
        self.state = _QUEUED


class _Topic:
    """A subscribed topic: its handlers, its retained cache and its recent history."""

    __slots__ = ("buffer", "handlers", "history", "phase", "since", "synced", "values")

    def __init__(self, history: TopicHistory) -> None:
        self.handlers: list[Handler] = []
        self.history = history
        self.phase = _UNCONFIRMED
        self.synced: asyncio.Event | None = None  # made when ``retained`` waits for a sync
        # Retained updates received while the snapshot is being fetched: (version, name, drop, data)
        self.buffer: list[tuple[int, str, bool, bytes]] = []
        self.since = 0  # the version the snapshot was read at
        self.values: dict[str, bytes] | None = None

    def apply(self, name: str, drop: bool, payload: bytes) -> None:
        if self.values is None:
            return
        # Re-inserted so that values stay in last-update order.
        self.values.pop(name, None)
        if not drop:
            self.values[name] = payload


class BusUnavailableError(ConnectionError):
    """Redis could not answer a request that needs it (``retained``)."""


def _root(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _raise_if_cancelled() -> None:
    """Raise the cancellation the Redis client swallowed (seen when the bus closes while an
    UNSUBSCRIBE is on its way); otherwise a task group waits for the task forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --- the bus -------------------------------------------------------------------------------------


class RedisBus:
    """The ``Bus`` contract over Redis; see the module docstring for keys, format and limits.

    ``url`` is any redis-py URL (``redis://``, ``rediss://``, ``unix://``); it is shown with its
    password masked. ``prefix`` namespaces keys and channels, so several deployments can share
    a Redis. ``max_queue`` bounds the publish queue, ``history_size``/``history_age`` each
    topic's resume history (in Redis and in each subscribed topic's local copy).
    ``on_state(connected)`` hears of every change of ``connected``. Reconnects back off from
    ``reconnect_delay`` to ``max_reconnect_delay``; ``health_interval`` paces the subscriber's
    PINGs (three silent intervals mean a dead connection). Counters: ``published``,
    ``dropped``, ``queued``.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "tickhub",
        max_queue: int = 100_000,
        history_size: int = 1000,
        history_age: float = 300.0,
        on_state: Callable[[bool], None] | None = None,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 5.0,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
        health_interval: float = 5.0,
        close_timeout: float = 5.0,
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1: {max_queue!r}")
        self.url = redact_url(url)
        self.prefix = prefix
        self.on_state = on_state
        self.max_queue = max_queue
        self._history_size = history_size
        self._history_age = history_age
        self.published = 0  # messages written to Redis
        self.dropped = 0  # messages given up: queue overflow, rejected, or published after close
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._connect_timeout = connect_timeout
        self._health_interval = health_interval
        self._command_timeout = command_timeout
        self._close_timeout = close_timeout
        # Commands retry once so a pooled connection left stale by a Redis restart reconnects.
        self._client = self._redis_client(url, f"{prefix}-bus", 1, connect_timeout, command_timeout)
        # The subscriber never retries on its own: the reader notices, resubscribes and resyncs.
        self._sub_client = self._redis_client(
            url, f"{prefix}-bus-sub", 0, connect_timeout, command_timeout
        )
        self._channel_prefix = f"{prefix}:t:".encode()
        self._version_key = f"{prefix}:v"

        # publishing
        self._queue: deque[_Item] = deque()
        self._conflatable: deque[_Item] = deque()
        self._size = 0
        self._last_index = 0
        self._written = 0  # every message with index <= this one has left the queue
        self._write_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._writer_wake = asyncio.Event()
        self._writer_kick = asyncio.Event()  # Redis answers again: stop backing off
        self._writer_ok = True
        self._overflow_logged = False

        # subscribing
        self._topics: dict[str, _Topic] = {}
        self._dirty: dict[str, None] = {}  # topics whose subscription may need a command
        self._sent: set[str] = set()  # SUBSCRIBE sent on this connection, no UNSUBSCRIBE since
        self._unconfirmed: dict[str, int] = {}  # SUBSCRIBE/UNSUBSCRIBE not confirmed yet
        self._sub_wake = asyncio.Event()
        self._tokens = itertools.count(1)
        self._ready_token: int | None = None
        self._barrier_pending: list[asyncio.Future[None]] = []
        self._ping_waiters: deque[tuple[int, list[asyncio.Future[None]]]] = deque()
        self._last_rx = 0.0
        self._reader_ok = False
        self._sync_pending: dict[str, _Topic] = {}
        self._sync_wake = asyncio.Event()
        self._sync_idle = asyncio.Event()
        self._sync_idle.set()

        self.connected = False
        self.gate: SnapshotGate | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._first_outcome: asyncio.Future[BaseException | None] | None = None
        self._closed = False

    @staticmethod
    def _redis_client(
        url: str, name: str, retries: int, connect_timeout: float, timeout: float
    ) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            url,
            retry=Retry(NoBackoff(), retries),
            client_name=name,
            socket_connect_timeout=connect_timeout,
            socket_timeout=timeout,
            socket_keepalive=True,
            health_check_interval=0,
            protocol=2,  # pub/sub replies as plain arrays, and a faster parser than RESP3's
        )

    def __repr__(self) -> str:
        return f"RedisBus({self.url!r}, prefix={self.prefix!r}, connected={self.connected})"

    @property
    def queued(self) -> int:
        """Messages waiting to be written (including the batch being written)."""
        return self._size

    def _channel(self, topic: str) -> bytes:
        return self._channel_prefix + topic.encode()

    def _retained_key(self, topic: str) -> str:
        return f"{self.prefix}:r:{topic}"

    def _state_key(self, topic: str) -> str:
        return f"{self.prefix}:s:{topic}"

    def _stream_key(self, topic: str) -> str:
        return f"{self.prefix}:h:{topic}"

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the reader and writer; wait (at most ``connect_timeout``) for the first try."""
        if self._tasks or self._closed:
            return
        loop = asyncio.get_running_loop()
        self._first_outcome = loop.create_future()
        self._tasks = [
            loop.create_task(self._run_reader(), name=f"redis-bus-reader:{self.prefix}"),
            loop.create_task(self._run_writer(), name=f"redis-bus-writer:{self.prefix}"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._task_done)
        outcome: BaseException | None
        try:
            async with asyncio.timeout(self._connect_timeout + 1.0):
                outcome = await asyncio.shield(self._first_outcome)
        except TimeoutError:
            outcome = TimeoutError(f"no answer in {self._connect_timeout:g}s")
        if isinstance(outcome, AuthenticationError):
            await self.close()
            raise ConnectionError(f"redis bus {self.url}: {outcome}") from outcome
        if outcome is not None:
            log.warning(
                "redis bus %s not reachable (%s); retrying in the background", self.url, outcome
            )

    async def close(self) -> None:
        """Send what is queued (bounded by ``close_timeout``), then stop and disconnect."""
        if self._closed:
            return
        self._closed = True
        if self._tasks and self._size:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._close_timeout):
                    await self._wait_written(self._last_index)
        if self._size:
            log.warning("redis bus %s closed with %d messages unsent", self.url, self._size)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            # The Redis client can swallow a cancellation (seen mid-UNSUBSCRIBE): ask again.
            while not task.done():
                await asyncio.wait({task}, timeout=0.1)
                if not task.done():
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        waiters = [f for _, f in self._write_waiters] + self._barrier_pending
        waiters += [f for _, fs in self._ping_waiters for f in fs]
        for fut in waiters:
            if not fut.done():
                fut.set_exception(ConnectionError("bus is closed"))
        self._write_waiters.clear()
        self._barrier_pending.clear()
        self._ping_waiters.clear()
        self._topics.clear()
        self._sync_idle.set()
        self.connected = False
        await self._client.aclose()
        await self._sub_client.aclose()

    async def flush(self) -> None:
        """Wait until what was handed to the bus before the call has taken effect.

        Queued messages are written to Redis, subscription changes are confirmed, every
        message Redis accepted before (ours included) has been passed to the local handlers,
        and the retained cache of every subscribed topic is synced. Waits through an outage
        (and until ``start``); raises ``ConnectionError`` if the bus is closed meanwhile.
        """
        if self._closed:
            raise ConnectionError("bus is closed")
        await self._wait_written(self._last_index)
        fut = asyncio.get_running_loop().create_future()
        self._barrier_pending.append(fut)
        self._sub_wake.set()
        await fut
        await self._sync_idle.wait()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    def _set_state(self) -> None:
        if self._closed:
            self.connected = False
            return
        connected = self._reader_ok and self._writer_ok
        if connected == self.connected:
            return
        self.connected = connected
        if connected:
            log.info("redis bus connected to %s", self.url)
        else:
            log.warning("redis bus lost its connection to %s; retrying", self.url)
        if self.on_state is not None:
            try:
                self.on_state(connected)
            except Exception:
                log.exception("redis bus on_state callback failed")

    def _delay(self, failures: int) -> float:
        delay = min(self._max_reconnect_delay, self._reconnect_delay * 2.0 ** min(failures - 1, 30))
        return delay * random.uniform(0.5, 1.0)

    # --- publishing ------------------------------------------------------------------------------

    def publish(self, message: BusMessage) -> None:
        """Queue ``message``; never blocks and never raises (problems are logged and counted)."""
        if self._closed:
            self.dropped += 1
            return
        try:
            command = self._command(message)
        except (TypeError, ValueError, UnicodeError, struct.error) as exc:
            log.error("bus message for topic %r rejected: %s", message.topic, exc)
            self.dropped += 1
            return
        if command is None:
            return
        conflatable = message.slot is not None
        if self._size >= self.max_queue and not self._drop_oldest_conflatable() and conflatable:
            self._count_overflow()
            return
        # (An event with no conflatable message to make room for it goes past the bound.)
        self._last_index += 1
        item = _Item(self._last_index, *command, conflatable)
        self._queue.append(item)
        if conflatable:
            self._conflatable.append(item)
        self._size += 1
        self._writer_wake.set()

    def _command(self, m: BusMessage) -> tuple[tuple[str, ...], tuple[str | bytes, ...]] | None:
        """The keys and script arguments that publish ``m`` (``None``: nothing to do)."""
        channel = self._channel(m.topic)
        if m.retain is None:
            if not m.deliver:
                return None
            keys: tuple[str, ...] = ()
            argv: tuple[str | bytes, ...] = ("p", channel, _head(m), b"", bytes(m.payload), "")
        else:
            op = "d" if m.drop else "s"
            keys = (self._retained_key(m.topic),)
            argv = (op, channel, _head(m), _field(m.retain), bytes(m.payload), m.retain)
        # What ``TopicHistory.record`` keeps, kept in Redis for resuming on any gateway.
        if m.seq:
            # Snapshot-only copies (deliver=False) were never sent live: nothing to recover.
            state = "r" if m.deliver and m.retain is not None else "-"
            stream = "h" if m.deliver and recoverable(m.slot) else "-"
            keys += (self._state_key(m.topic), self._stream_key(m.topic))
            hist = ("n" + state + stream, m.epoch, str(m.seq), str(m.seq - 1))
        elif m.drop and m.retain is not None:
            keys += (self._state_key(m.topic),)
            hist = ("x", "", "", "")
        else:
            hist = ("", "", "", "")
        return keys, argv + hist

    def _drop_oldest_conflatable(self) -> bool:
        pending = self._conflatable
        while pending and pending[0].state == _DONE:
            pending.popleft()
        for item in pending:
            if item.state == _QUEUED:  # a batch being written is not ours to drop
                item.state = _DONE
                self._size -= 1
                self._count_overflow()
                if len(self._queue) > 2 * self._size + 1024:
                    # Dropped messages behind a queued event would never reach the head.
                    self._queue = deque(i for i in self._queue if i.state != _DONE)
                return True
        return False

    def _count_overflow(self) -> None:
        self.dropped += 1
        if not self._overflow_logged:
            self._overflow_logged = True
            log.warning(
                "redis bus queue full (%d messages): dropping the oldest conflatable messages",
                self.max_queue,
            )

    async def _wait_written(self, index: int) -> None:
        if self._written >= index:
            return
        fut = asyncio.get_running_loop().create_future()
        self._write_waiters.append((index, fut))
        await fut

    def _take_batch(self) -> list[_Item]:
        queue = self._queue
        while queue and queue[0].state == _DONE:
            queue.popleft()
        batch: list[_Item] = []
        for item in queue:
            if item.state == _QUEUED:
                item.state = _SENDING
                batch.append(item)
                if len(batch) >= _MAX_BATCH:
                    break
        return batch

    def _batch_done(self, batch: list[_Item]) -> None:
        for item in batch:
            item.state = _DONE
        self._size -= len(batch)
        queue = self._queue
        while queue and queue[0].state == _DONE:
            queue.popleft()
        pending = self._conflatable
        while pending and pending[0].state == _DONE:
            pending.popleft()
        self._written = queue[0].index - 1 if queue else self._last_index
        if self._size < self.max_queue // 2:
            self._overflow_logged = False
        if self._write_waiters:
            still: list[tuple[int, asyncio.Future[None]]] = []
            for index, fut in self._write_waiters:
                if index <= self._written:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    still.append((index, fut))
            self._write_waiters = still

    async def _run_writer(self) -> None:
        failures = 0
        while True:
            batch = self._take_batch()
            if not batch:
                self._batch_done(batch)
                self._writer_wake.clear()
                await self._writer_wake.wait()
                continue
            try:
                results = await self._send(batch)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                for item in batch:
                    item.state = _QUEUED
                while self._size > self.max_queue and self._drop_oldest_conflatable():
                    pass
                failures += 1
                if failures == 1:
                    log.warning("redis bus %s: write failed (%s); retrying", self.url, exc)
                self._writer_ok = False
                self._set_state()
                self._writer_kick.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._delay(failures)):
                        await self._writer_kick.wait()
                continue
            except Exception:
                log.exception("redis bus %s: dropping a batch of %d", self.url, len(batch))
                self.dropped += len(batch)
                self._batch_done(batch)
                continue
            failures = 0
            for size, result in zip(range(0, len(batch), _PER_CALL), results, strict=True):
                size = min(_PER_CALL, len(batch) - size)
                refused = result if isinstance(result, int) else size
                if refused:
                    log.error(
                        "redis bus %s: redis refused %d messages: %s", self.url, refused, result
                    )
                self.dropped += refused
                self.published += size - refused
            self._batch_done(batch)
            if not self._writer_ok:
                self._writer_ok = True
                self._set_state()

    async def _send(self, batch: list[_Item]) -> list[object]:
        async with self._client.pipeline(transaction=False) as pipe:
            # Loaded with every batch: a restarted Redis has forgotten it, and a NOSCRIPT
            # halfway through a batch would reorder messages.
            pipe.script_load(_SCRIPT)
            for start in range(0, len(batch), _PER_CALL):
                keys: list[str] = [self._version_key]
                argv: list[str | bytes] = [str(max(1, self._history_size))]
                for item in batch[start : start + _PER_CALL]:
                    keys.extend(item.keys)
                    argv.extend(item.argv)
                pipe.evalsha(_SCRIPT_SHA, len(keys), *keys, *argv)
            results: list[object] = await pipe.execute(raise_on_error=False)
        if isinstance(results[0], Exception):
            raise results[0]
        return results[1:]

    # --- subscribing -----------------------------------------------------------------------------

    def subscribe(self, topic: str, handler: Handler) -> None:
        state = self._topics.get(topic)
        if state is None:
            state = self._topics[topic] = _Topic(self._new_history())
            if topic in self._sent and topic not in self._unconfirmed:
                self._start_sync(topic, state)
            self._dirty[topic] = None
            self._sub_wake.set()
        if handler not in state.handlers:
            state.handlers.append(handler)

    def unsubscribe(self, topic: str, handler: Handler) -> None:
        state = self._topics.get(topic)
        if state is None or handler not in state.handlers:
            return
        state.handlers.remove(handler)
        if not state.handlers:
            del self._topics[topic]
            if state.synced is not None:
                state.synced.set()  # a ``retained`` waiting for it reads Redis instead
            if self._sync_pending.pop(topic, None) is not None:
                self._sync_wake.set()
            self._dirty[topic] = None
            self._sub_wake.set()

    def retained_nowait(self, topic: str) -> list[bytes] | None:
        if self.gate is not None and self.gate.pending(topic):
            return None
        state = self._topics.get(topic)
        if state is None or state.values is None:
            return None
        return list(state.values.values())

    def _new_history(self) -> TopicHistory:
        return TopicHistory(self._history_size, self._history_age)

    def recover_nowait(self, topic: str, epoch: str, seq: int) -> list[bytes] | bool | None:
        state = self._topics.get(topic)
        if state is None or state.phase != _SYNCED or not state.history.epoch:
            return False  # no continuous local history: ask Redis
        history = state.history
        found = history.since(epoch, seq, time.monotonic())
        if found is not None:
            return found
        if epoch != history.epoch:
            return None  # another producer run: Redis holds the same epoch as we do
        return False  # older than our history, or newer than what reached us yet

    async def recover(self, topic: str, epoch: str, seq: int) -> list[bytes] | None:
        found = self.recover_nowait(topic, epoch, seq)
        if found is not False:
            return found if isinstance(found, list) else None
        state = self._topics.get(topic)
        if state is not None and self._reader_ok and state.phase != _SYNCED:
            # Subscribed here: read once the subscription is confirmed, so that every message
            # the read misses is delivered live.
            state.synced = state.synced or asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._command_timeout):
                    await state.synced.wait()
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hgetall(self._state_key(topic))
                pipe.xrange(self._stream_key(topic))
                meta, stream = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("redis bus %s: cannot read the history of %r: %s", self.url, topic, exc)
            return None
        try:
            history = self._stored_history(topic, meta, stream)
        except (ValueError, UnicodeError, KeyError, TypeError) as exc:
            log.warning("redis bus: bad history stored for topic %r: %s", topic, exc)
            return None
        if history is None:
            return None
        return history.since(epoch, seq, time.time())

    def _stored_history(
        self, topic: str, meta: dict[bytes, bytes], stream: list[tuple[bytes, dict[bytes, bytes]]]
    ) -> TopicHistory | None:
        """The ``TopicHistory`` kept in Redis (ages in wall-clock time), ``None`` if empty."""
        if not meta or b"e" not in meta:
            return None
        history = self._new_history()
        history.epoch = meta[b"e"].decode()
        history.floor = int(meta.get(b"f", b"0"))
        now = time.time()
        for _, fields in stream:
            message, _ = decode_envelope(topic, fields[b"m"])
            if message.epoch != history.epoch:
                continue  # written before the producer restarted (a race with the reset)
            at = message.published_at or now
            history.record(history.epoch, message.seq, message.slot, None, message.payload, at)
        state: list[tuple[int, str, bytes]] = []
        for key, value in meta.items():
            if key.startswith(b"r:"):
                raw_seq, _, payload = value.partition(b" ")
                state.append((int(raw_seq), key[2:].decode(), payload))
        for s, name, payload in sorted(state):
            history.state[name] = (s, payload)
        history.last_seq = max(history.last_seq, int(meta.get(b"l", b"0")))
        return history

    async def retained(self, topic: str) -> list[bytes]:
        if self.gate is not None and self.gate.pending(topic):
            await self.gate.wait(topic)
        state = self._topics.get(topic)
        if state is not None and self._reader_ok:
            # Subscribed here: the synced cache is the snapshot that lines up with the messages
            # handlers get. Read before the subscription is confirmed, Redis could miss updates
            # that land in between.
            if state.phase != _SYNCED:
                state.synced = state.synced or asyncio.Event()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._command_timeout):
                        await state.synced.wait()
            if self._topics.get(topic) is state and state.phase == _SYNCED:
                return list(state.values.values()) if state.values is not None else []
        try:
            raw = await self._client.hgetall(self._retained_key(topic))
        except RedisError as exc:
            raise BusUnavailableError(f"redis bus {self.url} unavailable: {exc}") from exc
        # Values start with their big-endian version, so byte order is update order.
        return [value[8:] for value in sorted(raw.values()) if isinstance(value, bytes)]

    # --- reader ----------------------------------------------------------------------------------

    async def _run_reader(self) -> None:
        failures = 0
        while True:
            pubsub = self._sub_client.pubsub()
            try:
                await self._session(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                err = _root(exc)
                if self._reader_ok:
                    failures = 0
                failures += 1
                if self._first_outcome is not None and not self._first_outcome.done():
                    self._first_outcome.set_result(err)
                elif failures == 1:
                    log.warning("redis bus %s: subscriber connection lost (%s)", self.url, err)
                else:
                    log.debug("redis bus %s: reconnect failed (%s)", self.url, err)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                self._session_down()
            await asyncio.sleep(self._delay(failures))

    async def _session(self, pubsub: PubSub) -> None:
        await pubsub.connect()  # type: ignore[no-untyped-call]
        self._last_rx = asyncio.get_running_loop().time()
        self._dirty = dict.fromkeys(self._topics)
        self._ready_token = None
        self._sub_wake.set()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._read_loop(pubsub), name=f"redis-bus-read:{self.prefix}")
            group.create_task(self._control_loop(pubsub), name=f"redis-bus-control:{self.prefix}")
            group.create_task(self._sync_loop(), name=f"redis-bus-sync:{self.prefix}")

    def _session_down(self) -> None:
        self._sent.clear()
        self._unconfirmed.clear()
        for state in self._topics.values():
            state.phase = _UNCONFIRMED
            state.buffer = []
            # Messages published while disconnected are lost to us: the history has a gap.
            state.history = self._new_history()
        self._sync_pending.clear()
        self._sync_idle.set()
        # Barriers not answered yet are answered by the next connection's first PING.
        for _, waiters in self._ping_waiters:
            self._barrier_pending.extend(waiters)
        self._ping_waiters.clear()
        if self._reader_ok:
            self._reader_ok = False
            self._set_state()

    async def _control_loop(self, pubsub: PubSub) -> None:
        """Send SUBSCRIBE/UNSUBSCRIBE for changed topics, and PINGs as barriers and heartbeat."""
        loop = asyncio.get_running_loop()
        next_ping = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_ping - loop.time())):
                    await self._sub_wake.wait()
            self._sub_wake.clear()
            now = loop.time()
            silent = now - self._last_rx
            if silent > 3 * self._health_interval:
                raise ConnectionError(f"no answer from redis in {silent:.0f}s")
            await self._send_subscriptions(pubsub)
            _raise_if_cancelled()
            if self._barrier_pending or self._ready_token is None or now >= next_ping:
                token = next(self._tokens)
                if self._ready_token is None:
                    self._ready_token = token
                self._ping_waiters.append((token, self._barrier_pending))
                self._barrier_pending = []
                await pubsub.execute_command("PING", str(token))
                _raise_if_cancelled()
                next_ping = now + self._health_interval

    async def _send_subscriptions(self, pubsub: PubSub) -> None:
        dirty, self._dirty = list(self._dirty), {}
        add = [t for t in dirty if t in self._topics and t not in self._sent]
        remove = [t for t in dirty if t not in self._topics and t in self._sent]
        for command, topics in (("SUBSCRIBE", add), ("UNSUBSCRIBE", remove)):
            for chunk in _chunks(topics, _CHUNK):
                for topic in chunk:
                    self._unconfirmed[topic] = self._unconfirmed.get(topic, 0) + 1
                if command == "SUBSCRIBE":
                    self._sent.update(chunk)
                else:
                    self._sent.difference_update(chunk)
                await pubsub.execute_command(command, *map(self._channel, chunk))

    async def _read_loop(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        start = len(self._channel_prefix)
        while True:
            msg = await pubsub.get_message(timeout=None)
            self._last_rx = loop.time()
            if msg is None:
                continue
            kind = msg["type"]
            if kind == "message":
                self._on_message(msg["channel"][start:].decode(), msg["data"])
            elif kind in ("subscribe", "unsubscribe"):
                self._on_confirmed(msg["channel"][start:].decode())
            elif kind == "pong" and msg["data"].isdigit():
                self._on_pong(int(msg["data"]))

    def _on_pong(self, token: int) -> None:
        waiters = self._ping_waiters
        while waiters and waiters[0][0] <= token:
            for fut in waiters.popleft()[1]:
                if not fut.done():
                    fut.set_result(None)
        if not self._reader_ok and self._ready_token is not None and token >= self._ready_token:
            self._reader_ok = True
            if self._first_outcome is not None and not self._first_outcome.done():
                self._first_outcome.set_result(None)
            self._writer_kick.set()
            self._set_state()

    def _on_confirmed(self, topic: str) -> None:
        left = self._unconfirmed.pop(topic, 1) - 1
        if left > 0:
            self._unconfirmed[topic] = left
            return
        # Only once every command for the topic is confirmed is the subscription settled.
        state = self._topics.get(topic)
        if state is not None and state.phase == _UNCONFIRMED and topic in self._sent:
            self._start_sync(topic, state)

    def _start_sync(self, topic: str, state: _Topic) -> None:
        state.phase = _SYNCING
        state.buffer = []
        self._sync_pending[topic] = state
        self._sync_idle.clear()
        self._sync_wake.set()

    def _on_message(self, topic: str, data: bytes) -> None:
        state = self._topics.get(topic)
        if state is None:
            return
        try:
            message, version = decode_envelope(topic, data)
        except (ValueError, UnicodeError) as exc:
            log.warning("redis bus: bad envelope on topic %r: %s", topic, exc)
            return
        if message.retain is not None:
            if state.phase == _SYNCED:
                if version > state.since:
                    state.apply(message.retain, message.drop, message.payload)
            elif state.phase == _SYNCING:
                state.buffer.append((version, message.retain, message.drop, message.payload))
                state.apply(message.retain, message.drop, message.payload)
        self._record(state.history, message)
        if not message.deliver:
            return
        for handler in tuple(state.handlers):
            try:
                handler(message)
            except Exception:
                # One failing subscriber must not starve the others.
                log.exception("bus handler failed for topic %s", topic)

    @staticmethod
    def _record(history: TopicHistory, message: BusMessage) -> None:
        """What ``MemoryBus`` records at publish time, recorded here as messages arrive."""
        if message.seq:
            # Snapshot-only copies (deliver=False) were never sent live: nothing to recover.
            retain = message.retain if message.deliver else None
            slot = message.slot if message.deliver else "snapshot-only"
            history.record(
                message.epoch, message.seq, slot, retain, message.payload, time.monotonic()
            )
        elif message.drop and message.retain is not None:
            history.drop_state(message.retain)

    async def _sync_loop(self) -> None:
        """Fetch the retained values of newly confirmed topics, many per transaction."""
        while True:
            await self._sync_wake.wait()
            self._sync_wake.clear()
            while self._sync_pending:
                batch = list(itertools.islice(self._sync_pending.items(), _CHUNK))
                for topic, _ in batch:
                    del self._sync_pending[topic]
                async with self._client.pipeline(transaction=True) as pipe:
                    for topic, _ in batch:
                        pipe.hgetall(self._retained_key(topic))
                    pipe.get(self._version_key)
                    results: list[object] = await pipe.execute(raise_on_error=False)
                raw_since = results[-1]
                since = int(raw_since) if isinstance(raw_since, bytes) else 0
                for (topic, state), raw in zip(batch, results, strict=False):
                    if self._topics.get(topic) is not state or state.phase != _SYNCING:
                        continue
                    if not isinstance(raw, dict):
                        log.error("redis bus: cannot read retained values of %r: %s", topic, raw)
                        raw = {}
                    self._synced(state, raw, since)
            self._sync_idle.set()

    @staticmethod
    def _synced(state: _Topic, raw: dict[bytes, bytes], since: int) -> None:
        values = {
            key.decode(): value[8:] for key, value in sorted(raw.items(), key=lambda kv: kv[1])
        }
        state.values = values
        # Updates received meanwhile that the snapshot already holds are skipped by version.
        for version, name, drop, payload in state.buffer:
            if version > since:
                state.apply(name, drop, payload)
        state.buffer = []
        state.since = since
        state.phase = _SYNCED
        if state.synced is not None:
            state.synced.set()


__all__ = ["BusUnavailableError", "RedisBus", "decode_envelope", "encode_envelope", "redact_url"]
