"""Every default and policy number in one place, named.

Settings (``tickhub.app.config``) take their defaults from here, and so do the components that
can be built without settings (tests, benchmarks, the library API), so that a default is never
written twice. A constant whose name has no setting beside it is a policy of the code: changing
it changes behaviour the tests pin, so it lives here with the reason for its value.

Units: seconds for times, bytes for sizes, per second for rates.
"""

from __future__ import annotations

from typing import Final

# --- network (the seed's names) ----------------------------------------------------------------
HOST: Final = "0.0.0.0"
PORT: Final = 8000
"""``PORT``; the service listens on ``PORT + LISTEN_PORT_OFFSET`` (8081) unless ``WS_PORT``."""
LISTEN_PORT_OFFSET: Final = 81
CORS_ORIGINS: Final = (
    "http://localhost:3000",
    "http://127.0.0.1:3000",
    "http://localhost:5173",
    "http://127.0.0.1:5173",
    "http://localhost:8000",
    "http://127.0.0.1:8000",
)
"""The dev servers front ends run on (React/CRA, Vite, the seed's own port)."""

# --- feeds ------------------------------------------------------------------------------------
SIM_SEED: Final = 42
SIM_SPEED: Final = 1.0
SIM_TICK_RATE: Final = 4.0
"""Ticks per second per instrument; about what a busy instrument sends in Kite's full mode."""
REPLAY_SPEED: Final = 1.0
KITE_URL: Final = "wss://ws.kite.trade"
KITE_EMULATOR_PORT: Final = 8765
"""Where ``tickhub kite-emulator`` listens unless ``--port``."""
SIM_INDEX_SYMBOL: Final = "NIFTY 50"
"""The index the sim makes the market factor itself (with a little noise)."""
SIM_STEP: Final = 0.1
"""Clock seconds the sim waits between advances: ten batches of ticks a second."""
KITE_MODE: Final = "full"
"""The mode of a Kite subscription that asks for none (``ltp`` < ``quote`` < ``full``)."""
KITE_MAX_CONNECTIONS: Final = 3
KITE_MAX_PER_CONNECTION: Final = 3000
"""Kite's limits: 3 ticker connections per api_key, 3,000 instruments on each."""
KITE_STALE_AFTER: Final = 10.0
"""Seconds without a frame (the socket is dead) or, in market hours, a tick (``stale``)."""
KITE_STUCK_FACTOR: Final = 3
"""A Kite connection without ticks for this many ``stale_after`` in market hours is reconnected."""
KITE_BACKOFF_INITIAL: Final = 1.0
KITE_BACKOFF_MAX: Final = 60.0
"""Kite reconnects wait ``uniform(0, min(BACKOFF_MAX, BACKOFF_INITIAL * 2**attempt))``."""
KITE_CONNECT_TIMEOUT: Final = 10.0
KITE_TOKEN_POLL_INTERVAL: Final = 5.0
"""Seconds between reads of the token file while Kite's access token is rejected or missing."""
KITE_ERROR_LOG_INTERVAL: Final = 10.0
"""Each kind of Kite stream error is logged at most once per this many seconds (all counted)."""
RECORD_PROGRESS_INTERVAL: Final = 5.0
"""Seconds between the progress lines of ``tickhub record`` when its output is not a terminal
(a terminal's line is refreshed in place every ``RECORD_PROGRESS_REFRESH``)."""
RECORD_PROGRESS_REFRESH: Final = 0.5

# --- HTTP routes ------------------------------------------------------------------------------
INSTRUMENTS_LIMIT: Final = 20
"""Matches ``/instruments?q=`` returns without a ``limit`` (a search box shows a short list)."""
INSTRUMENTS_MAX_LIMIT: Final = 1000
"""The largest ``limit`` ``/instruments`` accepts; beyond it the answer is 400."""

# --- streams ----------------------------------------------------------------------------------
UPDATE_INTERVAL: Final = 1.0
"""Seconds between analysis, portfolio and market-data updates of a symbol (ticks: no limit)."""
BATCH_INTERVAL: Final = 0.02
CANDLE_HISTORY: Final = 500
ANALYSIS_HISTORY: Final = 100
HISTORY_SIZE: Final = 1000
"""Messages per topic kept for resume with ``since``."""
HISTORY_AGE: Final = 300.0
"""Seconds a message stays resumable."""
BUS_PREFIX: Final = "tickhub"
GATEWAYS: Final = 2
WORKERS: Final = 1
"""``serve --workers``: gateway processes sharing the one listen port (1: the single process)."""
MAX_WORKERS: Final = 64
ADMIN_HOST: Final = "127.0.0.1"
"""Where a worker's admin port listens: loopback only (it serves what the shared port does)."""
ADMIN_PORT_OFFSET: Final = 100
"""Worker ``n`` of ``serve --workers`` also listens on ``127.0.0.1:ADMIN_PORT + n - 1``, where
``ADMIN_PORT`` is the listen port plus this unless set (8181 upward by default)."""
MAX_EVENTS_PER_SYMBOL: Final = 1000
"""Alert events kept per symbol in the store; older ones are pruned."""
MAX_ALERTS_PER_OWNER: Final = 500
"""User alerts one owner may hold; past it ``create_alert`` answers ``limit_exceeded``."""
MAX_TRADES_PER_OWNER: Final = 10_000
"""Trades one owner may record on ``/ws/portfolio``; past it ``add_trade`` answers
``limit_exceeded`` (every position is rebuilt from its trades at start)."""
ALERT_MEMORY_EVENTS: Final = 100
"""Alert events kept per symbol in memory when alerts run without a store."""
RECENT_ALERT_EVENTS: Final = 10
"""Newest alert events an ``/ws/alerts`` state message carries (``recent_events``)."""
INGEST_FLUSH_PERIOD: Final = 0.1
"""Seconds between the ingest's flushes of throttled updates and due candles."""
CANDLE_RETENTION_ROWS: Final = 10_000
"""Closed candles the store keeps per symbol and interval (26 sessions of 1m candles, 40 years
of 1d ones); older ones are pruned as new ones are written."""
CANDLE_QUEUE: Final = 200_000
"""Closed candles waiting to be written to the store; past it the oldest waiting are dropped
(counted and logged). The default simulated past (3 sessions of 50 instruments, every interval:
about 95,000 candles) fits."""
CANDLE_WRITE_PERIOD: Final = 1.0
"""Seconds between two batched writes of closed candles to the store (off the event loop)."""
CANDLE_WRITE_BATCH: Final = 2_000
"""Closed candles written in one store transaction at the most: the store's lock, which the
event loop's own store calls (alerts, positions, ``GET /candles``) wait for, is held about 10 ms
for a batch this size on SQLite (measured: 2,000 in 9 ms, 20,000 in 83 ms)."""
CANDLES_LIMIT: Final = 500
"""Candles ``GET /candles`` answers with when no ``limit`` is given."""
CANDLES_MAX_LIMIT: Final = 5_000
"""The largest ``limit`` ``GET /candles`` takes (``CANDLES_MAX_LIMIT``)."""
CANDLES_MAX_AGE: Final = 5
"""``Cache-Control: max-age`` of a ``/candles`` answer that may still grow."""
CANDLES_FINAL_MAX_AGE: Final = 86_400
"""``Cache-Control: max-age`` of a ``/candles`` answer that cannot change: its ``to`` is before
the newest closed candle's start."""
SIM_HISTORY_SESSIONS: Final = 3
"""Sessions of minute bars the simulated market has behind it at start (0: none), so that a
fresh start draws a full chart with warm indicators."""
SIM_MAX_HISTORY_SESSIONS: Final = 1_000
"""The most sessions of past ``SIM_HISTORY_SESSIONS`` may ask for (four years)."""
SQLITE_BUSY_TIMEOUT: Final = 5.0
"""Seconds a SQLite write waits for another process's lock before it fails."""

# --- limits per server and per client ---------------------------------------------------------
MAX_CONNECTIONS: Final = 10_000
MAX_CONNECTIONS_PER_IP: Final = 2_000
CONNECT_RATE_PER_IP: Final = 50.0
CONNECT_BURST_FACTOR: Final = 2
"""Connection attempts an address may make at once: this many seconds' worth of its rate."""
MAX_TRACKED_ADDRESSES: Final = 10_000
"""Addresses whose connect rate is tracked; past it, full buckets are forgotten."""
MAX_SUBSCRIPTIONS: Final = 200
MAX_MESSAGE_BYTES: Final = 65_536
MESSAGE_RATE: Final = 50.0
MESSAGE_BURST: Final = 100
RATE_CLOSE_FACTOR: Final = 2
"""A client refused more than this many bursts' worth of messages in a row is closed with 4003."""
OUTBOX_BYTES: Final = 1_048_576
SLOW_CLIENT_GRACE: Final = 30.0
MAX_HELD_EVENTS: Final = 10_000
"""Events held for a paused client before it is treated as too slow."""
IDLE_TIMEOUT: Final = 60.0
AUTH_TIMEOUT: Final = 10.0
SHUTDOWN_TIMEOUT: Final = 10.0
MAX_SYMBOLS_PER_MESSAGE: Final = 200
MAX_INDICATORS_PER_SUBSCRIPTION: Final = 10
"""Indicators one ``/ws/analysis`` subscription may ask for (its ``indicators`` field)."""
MAX_INDICATOR_PERIOD: Final = 200
"""The largest period (candles) an indicator parameter may have: EMA 200 is the longest traders
commonly use, and the analysis keeps ``CANDLE_HISTORY`` (500) candles."""
MAX_INDICATOR_SETS: Final = 64
"""Distinct indicator sets (other than the default one) the server computes at a time, on any
symbol: each costs CPU on every candle update of every symbol subscribed with it."""
MAX_HEADER_BYTES: Final = 16_384
HANDSHAKE_TIMEOUT: Final = 10.0
CLOSE_TIMEOUT: Final = 5.0
SEND_BUFFER_BYTES: Final = 262_144
MAX_FRAME_FACTOR: Final = 16
"""A message over ``max(MAX_FRAME_FACTOR × MAX_MESSAGE_BYTES, MIN_FRAME_LIMIT)`` closes 1009."""
MIN_FRAME_LIMIT: Final = 1_048_576
TRANSPORT_SHARE: Final = 4
"""The transport's buffer holds ``OUTBOX_BYTES / TRANSPORT_SHARE``; held messages the rest."""
RETRY_AFTER: Final = 5
"""Seconds a refused HTTP client (503 at MAX_CONNECTIONS) is told to wait."""
FAILURE_LOG_PERIOD: Final = 60.0
"""An internal error's traceback is logged once per this many seconds per kind."""
PROBE_TIMEOUT: Final = 5.0
"""Seconds the self-test waits for its message's round trip through an asynchronous bus."""
HOUSEKEEPING_PERIOD: Final = 1.0
"""Seconds between the hub's sweeps (idle pings and timeouts, slow clients) at the most."""
SWEEPS_PER_IDLE_TIMEOUT: Final = 4
"""At least this many sweeps per ``IDLE_TIMEOUT``: an idle client is pinged well before it times
out (the ping is due at ``IDLE_PING_SHARE`` of it)."""
IDLE_PING_SHARE: Final = 0.5
"""A client silent for this share of ``IDLE_TIMEOUT`` is pinged (once) before it is closed."""
LISTEN_BACKLOG: Final = 4096
"""Pending connections the listening socket queues: asyncio's 100 drops SYNs when a crowd
reconnects at once (a restart, a network blip); the kernel caps it at ``net.core.somaxconn``."""

# --- cluster ----------------------------------------------------------------------------------
HEARTBEAT_PERIOD: Final = 1.0
DEMAND_REFRESH: Final = 5.0
DEMAND_EXPIRY: Final = 15.0
REQUEST_TIMEOUT: Final = 10.0
PROBE_PERIOD: Final = 5.0
STALE_AFTER: Final = 15.0
RESTART_DELAY: Final = 0.5
MAX_RESTART_DELAY: Final = 8.0
MAX_RESTARTS: Final = 5
"""``run-services`` gives up on a service that exits more than this many times in
``RESTART_WINDOW`` seconds (``--max-restarts``)."""
RESTART_WINDOW: Final = 60.0
SUPERVISOR_POLL: Final = 0.1
"""Seconds between the supervisor's checks of its children."""
SUPERVISOR_GRACE: Final = 5.0
"""Seconds the supervisor waits past ``SHUTDOWN_TIMEOUT`` before it kills a child."""
INGEST_SILENCE: Final = 5.0
"""Seconds without a heartbeat before gateways call the feed stale."""
INGEST_LISTEN: Final = 2.5 * HEARTBEAT_PERIOD
"""Seconds a starting ingest listens for another one's heartbeat: a retained one may be stale."""
READY_TIMEOUT: Final = 2.0
"""Seconds a gateway's first subscriber waits for the ingest to publish the topic's state."""
