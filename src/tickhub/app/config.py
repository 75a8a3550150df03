"""Settings from the environment and a ``.env`` file, read once at the edge (the CLI).

Names follow the seed (``HOST``, ``PORT``, ``CORS_ORIGINS``); the service listens on
``PORT + 81`` unless ``WS_PORT`` is set. A bad value stops the start with a one-line error naming
the variable (:class:`ConfigError`, exit code 2 in the CLI). Every setting is documented with
its default in the README and ``.env.example``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tickhub.core import defaults as d
from tickhub.core.errors import ConfigError

__all__ = ["ConfigError", "Settings", "load_settings"]

_ORIGIN = re.compile(
    r"[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[^\s/\"'\[\],:]+)(:\d{1,5})?", re.IGNORECASE
)
"""An origin as browsers send it (RFC 6454): scheme, host, optional port; no path, no quotes."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- network (seed names) ---
    host: str = d.HOST
    port: int = Field(d.PORT, ge=0, le=65535 - d.LISTEN_PORT_OFFSET)
    ws_port: int | None = Field(None, ge=0, le=65535)
    cors_origins: Annotated[tuple[str, ...], NoDecode] = d.CORS_ORIGINS

    # --- feed ---
    feed: Literal["sim", "replay", "kite"] = "sim"
    instruments_file: Path | None = None
    instruments_source: Literal["bundled", "file", "kite"] | None = None
    kite_api_url: str | None = None
    symbols: Annotated[tuple[str, ...], NoDecode] = ()
    sim_seed: int = d.SIM_SEED
    sim_speed: float = Field(d.SIM_SPEED, gt=0, le=100_000)
    sim_start: datetime | None = None
    sim_tick_rate: float = Field(d.SIM_TICK_RATE, gt=0, le=100)
    sim_history_sessions: int = Field(d.SIM_HISTORY_SESSIONS, ge=0, le=d.SIM_MAX_HISTORY_SESSIONS)
    replay_file: Path | None = None
    replay_speed: float = Field(d.REPLAY_SPEED, ge=0, le=1_000_000)
    replay_loop: bool = False
    replay_symbol: str | None = None
    kite_api_key: SecretStr | None = None
    kite_access_token: SecretStr | None = None
    kite_token_file: Path | None = None
    kite_url: str = d.KITE_URL
    kite_mode: Literal["ltp", "quote", "full"] = d.KITE_MODE

    # --- plumbing ---
    bus_url: str = "memory://"
    gateways: int = Field(d.GATEWAYS, ge=1, le=64)
    workers: int = Field(d.WORKERS, ge=1, le=d.MAX_WORKERS)
    admin_port: int | None = Field(None, ge=1, le=65535)
    worker_index: int = Field(0, ge=0, le=d.MAX_WORKERS)  # set by the supervisor, 0 = none
    bus_prefix: str = Field(d.BUS_PREFIX, min_length=1, max_length=64)
    data_dir: Path = Path("data")
    store_url: SecretStr | None = None  # may hold a database password
    portfolio_file: Path | None = None
    demo_portfolio: bool = True
    max_trades_per_owner: int = Field(d.MAX_TRADES_PER_OWNER, ge=1, le=1_000_000)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    # --- streams ---
    update_interval: float = Field(d.UPDATE_INTERVAL, gt=0, le=60)
    batch_interval: float = Field(d.BATCH_INTERVAL, gt=0, le=1.0)
    candle_history: int = Field(d.CANDLE_HISTORY, ge=10, le=100_000)
    analysis_history: int = Field(d.ANALYSIS_HISTORY, ge=0, le=100_000)
    history_size: int = Field(d.HISTORY_SIZE, ge=0, le=1_000_000)
    history_age: float = Field(d.HISTORY_AGE, ge=0)
    candle_retention_rows: int = Field(d.CANDLE_RETENTION_ROWS, ge=1, le=100_000_000)
    candle_queue: int = Field(d.CANDLE_QUEUE, ge=1, le=10_000_000)
    candles_limit: int = Field(d.CANDLES_LIMIT, ge=1)
    candles_max_limit: int = Field(d.CANDLES_MAX_LIMIT, ge=1, le=1_000_000)

    # --- limits ---
    max_connections: int = Field(d.MAX_CONNECTIONS, ge=1)
    max_connections_per_ip: int = Field(d.MAX_CONNECTIONS_PER_IP, ge=1)
    connect_rate_per_ip: float = Field(d.CONNECT_RATE_PER_IP, gt=0)
    max_subscriptions: int = Field(d.MAX_SUBSCRIPTIONS, ge=1)
    max_message_bytes: int = Field(d.MAX_MESSAGE_BYTES, ge=256, le=16 * 1024 * 1024)
    message_rate: float = Field(d.MESSAGE_RATE, gt=0)
    message_burst: int = Field(d.MESSAGE_BURST, ge=1)
    outbox_bytes: int = Field(d.OUTBOX_BYTES, ge=4096)
    slow_client_grace: float = Field(d.SLOW_CLIENT_GRACE, gt=0)
    idle_timeout: float = Field(d.IDLE_TIMEOUT, ge=0)
    shutdown_timeout: float = Field(d.SHUTDOWN_TIMEOUT, gt=0)
    max_symbols_per_message: int = Field(d.MAX_SYMBOLS_PER_MESSAGE, ge=1, le=10_000)
    max_indicators_per_subscription: int = Field(d.MAX_INDICATORS_PER_SUBSCRIPTION, ge=1, le=64)
    max_indicator_period: int = Field(d.MAX_INDICATOR_PERIOD, ge=2, le=1000)
    max_indicator_sets: int = Field(d.MAX_INDICATOR_SETS, ge=0, le=10_000)
    max_header_bytes: int = Field(d.MAX_HEADER_BYTES, ge=1024, le=1_048_576)
    handshake_timeout: float = Field(d.HANDSHAKE_TIMEOUT, gt=0, le=300)
    close_timeout: float = Field(d.CLOSE_TIMEOUT, gt=0, le=60)
    send_buffer_bytes: int = Field(d.SEND_BUFFER_BYTES, ge=0, le=64 * 1024 * 1024)
    instruments_limit: int = Field(d.INSTRUMENTS_LIMIT, ge=1, le=1_000_000)
    instruments_max_limit: int = Field(d.INSTRUMENTS_MAX_LIMIT, ge=1, le=1_000_000)

    # --- authentication (off unless API_KEYS or a JWT key is set) ---
    api_keys: Annotated[tuple[str, ...], NoDecode] = Field((), repr=False)
    jwt_secret: SecretStr | None = None
    jwt_public_key_file: Path | None = None
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_audience: str | None = None
    jwt_user_prefix: str | None = Field(None, max_length=32)
    auth_timeout: float = Field(d.AUTH_TIMEOUT, gt=0)
    admin_key: SecretStr | None = None
    health_details: bool = False

    @property
    def listen_port(self) -> int:
        return self.ws_port if self.ws_port is not None else self.port + d.LISTEN_PORT_OFFSET

    @property
    def admin_port_base(self) -> int:
        """Worker 1's admin port; worker ``n`` listens on this plus ``n - 1``."""
        if self.admin_port is not None:
            return self.admin_port
        return self.listen_port + d.ADMIN_PORT_OFFSET

    def worker_admin_port(self, worker: int) -> int:
        return self.admin_port_base + worker - 1

    @field_validator("cors_origins", "symbols", "api_keys", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        """``a,b`` or, as pydantic users and many ``.env`` files write lists, ``["a","b"]``."""
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                try:
                    items = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"not a JSON list of strings ({exc.msg})") from None
                if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                    raise ValueError("not a JSON list of strings")
                return tuple(i.strip() for i in items if i.strip())
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*" and not _ORIGIN.fullmatch(origin.rstrip("/")):
                raise ValueError(f"origin {origin!r} must look like http://host:port or be *")
        return tuple(o.rstrip("/") for o in value)

    @model_validator(mode="after")
    def _check_feed(self) -> Settings:
        if self.feed == "replay" and self.replay_file is None:
            raise ValueError("FEED=replay needs REPLAY_FILE")
        if self.feed == "kite" and self.kite_api_key is None:
            raise ValueError("FEED=kite needs KITE_API_KEY")
        if self.jwt_algorithm == "RS256" and self.jwt_secret is not None:
            raise ValueError("JWT_ALGORITHM=RS256 takes JWT_PUBLIC_KEY_FILE, not JWT_SECRET")
        if self.jwt_public_key_file is not None and self.jwt_algorithm != "RS256":
            raise ValueError("JWT_PUBLIC_KEY_FILE needs JWT_ALGORITHM=RS256")
        if self.feed == "kite" and self.kite_access_token is None and self.kite_token_file is None:
            raise ValueError("FEED=kite needs KITE_ACCESS_TOKEN or KITE_TOKEN_FILE")
        if self.instruments_limit > self.instruments_max_limit:
            raise ValueError("INSTRUMENTS_LIMIT must not exceed INSTRUMENTS_MAX_LIMIT")
        if self.candles_limit > self.candles_max_limit:
            raise ValueError(
                f"CANDLES_LIMIT ({self.candles_limit}) must not exceed "
                f"CANDLES_MAX_LIMIT ({self.candles_max_limit})"
            )
        if self.workers > 1 and self.admin_port_base + self.workers - 1 > 65535:
            raise ValueError(
                f"WORKERS={self.workers} needs admin ports {self.admin_port_base} to "
                f"{self.admin_port_base + self.workers - 1}: past 65535 (set ADMIN_PORT lower)"
            )
        return self

    def allows_origin(self, origin: str) -> bool:
        return "*" in self.cors_origins or origin.rstrip("/") in self.cors_origins


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Read settings; raise :class:`ConfigError` with one line naming the bad variable."""
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        err = exc.errors()[0]
        if not err["loc"]:
            # A rule across several settings: its message names them.
            raise ConfigError(
                f"invalid settings: {err['msg'].removeprefix('Value error, ')}"
            ) from None
        name = str(err["loc"][0]).upper()
        value = err.get("input")
        if "secret" in str(err.get("type", "")) or name in _SECRETS:
            value = "***"
        raise ConfigError(f"invalid value for {name}: {value!r} ({err['msg']})") from None


_SECRETS = {"KITE_API_KEY", "KITE_ACCESS_TOKEN", "API_KEYS", "JWT_SECRET", "ADMIN_KEY"}
