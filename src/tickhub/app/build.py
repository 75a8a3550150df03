"""Each component built from the settings, one function per component.

This is the only place where settings become constructor arguments: nothing below the app layer
reads configuration. The roles (:mod:`tickhub.app.roles`) call these functions and wire what they
return together; a function here builds and never starts anything.
"""

from __future__ import annotations

from collections.abc import Callable

from tickhub.app.config import Settings
from tickhub.bus import Bus, create_bus
from tickhub.core.clock import Clock
from tickhub.core.instruments import InstrumentRegistry
from tickhub.fanout import Hub, HubLimits, transport_bytes
from tickhub.fanout.auth import JWT_USER_PREFIX, Authenticator, parse_api_keys
from tickhub.feeds.base import Feed
from tickhub.ingest.alerts import StoredAlerts
from tickhub.ingest.candle_history import CandleHistory
from tickhub.ingest.candle_writer import CandleWriter
from tickhub.ingest.pipeline import Ingest
from tickhub.ingest.portfolio import StoredPortfolio, demo_portfolio_file, load_positions_file
from tickhub.server import ServerLimits, WebSocketServer, text_frame
from tickhub.server.candles import CandleLimits, CandleSource, CandlesRoute
from tickhub.server.host import frame_limit
from tickhub.server.routes import RouteOptions
from tickhub.server.static import static_response
from tickhub.store import Store, open_store

# --- shared by every role ----------------------------------------------------------------------


def build_registry(settings: Settings) -> InstrumentRegistry:
    """The instruments: bundled, from a CSV file, or from Kite; cut to ``SYMBOLS`` if set."""
    source = settings.instruments_source or ("file" if settings.instruments_file else "bundled")
    if source == "file":
        if settings.instruments_file is None:
            raise ValueError("INSTRUMENTS_SOURCE=file needs INSTRUMENTS_FILE")
        registry = InstrumentRegistry.load_csv(settings.instruments_file)
    elif source == "kite":
        from tickhub.feeds.kite.instruments import fetch_registry

        if settings.kite_api_key is None or settings.kite_access_token is None:
            raise ValueError("INSTRUMENTS_SOURCE=kite needs KITE_API_KEY and KITE_ACCESS_TOKEN")
        registry = fetch_registry(
            settings.kite_api_key.get_secret_value(),
            settings.kite_access_token.get_secret_value(),
            root=settings.kite_api_url,
        )
    else:
        registry = InstrumentRegistry.bundled()
    if settings.symbols:
        registry = registry.subset(settings.symbols)
    return registry


def build_bus(settings: Settings) -> Bus:
    """The producer-to-fan-out channel: in memory, or Redis for a cluster."""
    return create_bus(
        settings.bus_url,
        history_size=settings.history_size,
        history_age=settings.history_age,
        prefix=settings.bus_prefix,
    )


# --- the producer (single process and ingest) --------------------------------------------------


def build_feed(settings: Settings, registry: InstrumentRegistry, clock: Clock) -> Feed:
    """The configured upstream: simulated, replayed from a file, or Kite's ticker."""
    if settings.feed == "sim":
        from tickhub.feeds.sim import SimFeed

        return SimFeed(
            list(registry),
            seed=settings.sim_seed,
            speed=settings.sim_speed,
            start=settings.sim_start,
            clock=clock,
            tick_rate=settings.sim_tick_rate,
            history_sessions=settings.sim_history_sessions,
        )
    if settings.feed == "replay":
        from tickhub.feeds.replay.feed import ReplayFeed

        assert settings.replay_file is not None  # checked by Settings
        return ReplayFeed(
            settings.replay_file,
            registry,
            speed=settings.replay_speed or None,
            loop=settings.replay_loop,
            clock=clock,
            symbol=settings.replay_symbol,
        )
    if settings.feed == "kite":
        from tickhub.feeds.kite.client import KiteFeed

        assert settings.kite_api_key is not None  # checked by Settings
        token = settings.kite_access_token
        return KiteFeed(
            registry,
            api_key=settings.kite_api_key.get_secret_value(),
            access_token=token.get_secret_value() if token is not None else None,
            token_file=settings.kite_token_file,
            url=settings.kite_url,
            clock=clock,
            default_mode=settings.kite_mode,
        )
    raise ValueError(f"unsupported feed: {settings.feed!r}")


def build_store(settings: Settings) -> Store:
    """Where alerts and positions survive a restart: ``STORE_URL``, else SQLite in ``DATA_DIR``."""
    url = settings.store_url.get_secret_value() if settings.store_url is not None else None
    return open_store(
        url or str(settings.data_dir / "tickhub.sqlite3"),
        max_candles=settings.candle_retention_rows,
    )


def build_candle_writer(settings: Settings, store: Store) -> CandleWriter:
    """Closed candles to the store, batched off the event loop."""
    return CandleWriter(store, queue_size=settings.candle_queue)


def build_alerts(store: Store) -> StoredAlerts:
    return StoredAlerts(store)


def build_portfolio(
    settings: Settings, store: Store, registry: InstrumentRegistry, clock: Clock
) -> StoredPortfolio:
    """The positions from the store, seeded by the portfolio file (or the demo one) on first run:
    changes made over the protocol win later."""
    portfolio = StoredPortfolio(
        store, now=clock.now, trades=store, max_trades=settings.max_trades_per_owner
    )
    portfolio.load()
    seed_file = settings.portfolio_file or (
        demo_portfolio_file() if settings.feed == "sim" and settings.demo_portfolio else None
    )
    if seed_file is not None:
        portfolio.seed("", load_positions_file(seed_file, registry))
    return portfolio


def build_ingest(
    settings: Settings,
    feed: Feed,
    registry: InstrumentRegistry,
    bus: Bus,
    clock: Clock,
    alerts: StoredAlerts,
    portfolio: StoredPortfolio,
    writer: CandleWriter | None = None,
) -> Ingest:
    return Ingest(
        feed=feed,
        registry=registry,
        bus=bus,
        clock=clock,
        update_interval=settings.update_interval,
        history_size=settings.candle_history,
        snapshot_history=settings.analysis_history,
        alerts=alerts,
        portfolio=portfolio,
        on_closed_candle=writer.add if writer is not None else None,
        on_past=writer.extend if writer is not None else None,
    )


# --- the fan-out (single process and gateway) --------------------------------------------------


def build_authenticator(settings: Settings) -> Authenticator:
    """API keys and JWT (a shared secret or a public key); nothing set: everyone is let in."""
    key: str | None = None
    if settings.jwt_secret is not None:
        key = settings.jwt_secret.get_secret_value()
    elif settings.jwt_public_key_file is not None:
        key = settings.jwt_public_key_file.read_text()
    api_keys = parse_api_keys(settings.api_keys)
    prefix = settings.jwt_user_prefix
    if prefix is None:
        prefix = JWT_USER_PREFIX if api_keys and key is not None else ""
    return Authenticator(
        api_keys=api_keys,
        jwt_key=key,
        jwt_algorithm=settings.jwt_algorithm,
        jwt_audience=settings.jwt_audience,
        jwt_user_prefix=prefix,
    )


def build_hub_limits(settings: Settings) -> HubLimits:
    s = settings
    return HubLimits(
        max_connections=s.max_connections,
        max_connections_per_ip=s.max_connections_per_ip,
        connect_rate_per_ip=s.connect_rate_per_ip,
        max_subscriptions=s.max_subscriptions,
        max_message_bytes=s.max_message_bytes,
        message_rate=s.message_rate,
        message_burst=s.message_burst,
        slow_client_grace=s.slow_client_grace,
        idle_timeout=s.idle_timeout,
        auth_timeout=s.auth_timeout,
        outbox_bytes=s.outbox_bytes,
        max_symbols_per_message=s.max_symbols_per_message,
        max_indicators_per_subscription=s.max_indicators_per_subscription,
        max_indicator_period=s.max_indicator_period,
        max_indicator_sets=s.max_indicator_sets,
    )


def build_hub(settings: Settings, bus: Bus, registry: InstrumentRegistry, clock: Clock) -> Hub:
    return Hub(
        bus, registry, clock, text_frame, build_hub_limits(settings), build_authenticator(settings)
    )


def build_server_limits(settings: Settings) -> ServerLimits:
    s = settings
    return ServerLimits(
        handshake_timeout=s.handshake_timeout,
        close_timeout=s.close_timeout,
        max_header_bytes=s.max_header_bytes,
        max_message_bytes=s.max_message_bytes,
        max_frame_bytes=frame_limit(s.max_message_bytes),
        outbox_bytes=transport_bytes(s.outbox_bytes),
        send_buffer_bytes=s.send_buffer_bytes,
    )


def build_server(
    settings: Settings, hub: Hub, allow_origin: Callable[[str], bool]
) -> WebSocketServer:
    """The server, without routes yet (they report on the server itself: added after); paths
    no route takes are static files."""
    return WebSocketServer(
        hub,
        {},
        allow_origin=allow_origin,
        fallback=static_response,
        limits=build_server_limits(settings),
    )


def build_route_options(settings: Settings) -> RouteOptions:
    key = settings.admin_key
    return RouteOptions(
        feed_name=settings.feed,
        admin_key=key.get_secret_value() if key is not None else None,
        health_details=settings.health_details,
        instruments_limit=settings.instruments_limit,
        instruments_max_limit=settings.instruments_max_limit,
        worker=settings.worker_index or None,
    )


def build_candles_route(
    settings: Settings, source: CandleSource, registry: InstrumentRegistry
) -> CandlesRoute:
    """``GET /candles`` over ``source`` (the store, and the engine where it runs)."""
    return CandlesRoute(
        source,
        registry,
        CandleLimits(default_limit=settings.candles_limit, max_limit=settings.candles_max_limit),
    )


def build_candle_history(store: Store, ingest: Ingest | None = None) -> CandleHistory:
    """The closed candles of the store, and of the engine where this process runs it."""
    return CandleHistory(store, ingest.candles if ingest is not None else None)
