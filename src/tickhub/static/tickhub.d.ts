// Type declarations for tickhub.js, the JavaScript client of the tickhub WebSocket service.
// The wire protocol these types describe is docs/protocol.md.

export const VERSION: string;

export type Interval = '1m' | '3m' | '5m' | '15m' | '30m' | '1h' | '1d';
export type DataType =
  | 'tick_data'
  | 'candle_data'
  | 'market_data'
  | 'technical_analysis'
  | 'alert_data'
  | 'position_data';
export type FeedState =
  | 'starting'
  | 'live'
  | 'stale'
  | 'reconnecting'
  | 'market_closed'
  | 'auth_failed'
  | 'stopped'
  | 'finished';
export type ClientState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';
export type AlertCondition = 'above' | 'below' | 'cross_up' | 'cross_down' | 'percent_change';

/** ISO 8601 UTC with milliseconds: `2025-01-27T10:30:00.000Z`. */
export type Timestamp = string;

export interface Options {
  /** Milliseconds between heartbeats; 0 turns heartbeats and the dead-link check off. Default 15000. */
  heartbeatInterval?: number;
  /** Silence allowed past a heartbeat interval before the connection is dropped. Default 10000. */
  heartbeatTimeout?: number;
  /** A socket not open within this many ms is dropped and retried. Default 10000. */
  connectTimeout?: number;
  /** A request without a reply within this many ms is rejected. Default 10000. */
  requestTimeout?: number;
  /** Reconnect after a close the client did not ask for. Default true. */
  reconnect?: boolean;
  /** First reconnect delay in ms (before jitter). Default 500. */
  minDelay?: number;
  /** Largest reconnect delay in ms. Default 30000. */
  maxDelay?: number;
  /** Growth of the delay per failed attempt. Default 2. */
  factor?: number;
  /** Random fraction of each delay, 0..1. Default 0.5. */
  jitter?: number;
  /** Credentials, sent as `Sec-WebSocket-Protocol: tickhub, token.<token>`; a function is called on every (re)connect. */
  token?: string | null | (() => string | Promise<string>);
  /** Ask for batched delivery (`?batch=1`); batches are unpacked before the events. Default false. */
  batch?: boolean;
  /** A WHATWG WebSocket class; default `globalThis.WebSocket`. */
  WebSocket?: { new (url: string, protocols?: string | string[]): WebSocket } | null;
  /** Randomness of the jitter, `() => [0, 1)`. Default `Math.random`. */
  random?: () => number;
}

export const DEFAULTS: Readonly<Required<Options>>;

// --- server messages ---------------------------------------------------------------------------

export interface Candle {
  interval: Interval;
  start: Timestamp;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  closed: boolean;
  /** = `close`, the last price: a reader of `tick_data`'s `price` finds one on every /ws/stream message. */
  price: number;
}

export interface TickData {
  price: number;
  volume: number;
  change: number;
  change_percent: number;
  open: number;
  high: number;
  low: number;
  prev_close: number;
  last_quantity: number;
  average_price: number;
  buy_quantity: number;
  sell_quantity: number;
  exchange_timestamp: Timestamp;
}

export interface DepthLevel {
  price: number;
  quantity: number;
  orders: number;
}

export interface MarketData extends TickData {
  depth: { buy: DepthLevel[]; sell: DepthLevel[] };
  tradable: boolean;
  oi: number;
}

/** The default set's `technical_indicators` (a subscribe without `indicators`). */
export interface DefaultIndicators {
  sma_20: number | null;
  ema_20: number | null;
  rsi_14: number | null;
  macd: { macd: number | null; signal: number | null; histogram: number | null };
  bollinger: { upper: number | null; middle: number | null; lower: number | null };
  atr_14: number | null;
  vwap: number | null;
  warmup: { needed: number; have: number };
}

/** One value of an indicator set, by indicator (`null` members while warming up). */
export type IndicatorValue =
  | number // sma, ema, rsi, atr, vwap, obv, sar
  | null
  | { macd: number | null; signal: number | null; histogram: number | null }
  | { upper: number | null; middle: number | null; lower: number | null } // bollinger, donchian
  | { value: number | null; direction: 'up' | 'down' | null } // supertrend
  | { k: number | null; d: number | null } // stoch
  | { adx: number | null; plus_di: number | null; minus_di: number | null }
  | {
      pivot: number | null;
      r1: number | null;
      r2: number | null;
      r3: number | null;
      s1: number | null;
      s2: number | null;
      s3: number | null;
    };

/** A chosen set's `technical_indicators`: one member per canonical entry (`"ema:9"`,
 *  `"supertrend:10,3"`), and `warmup`. */
export type SetIndicators = { [entry: string]: IndicatorValue } & {
  warmup: { needed: number; have: number };
};

export interface CandlePattern {
  /** One of the 61 TA-Lib patterns, e.g. `doji`, `engulfing`, `three_inside` (docs/protocol.md). */
  name: string;
  direction: 'bullish' | 'bearish' | 'neutral';
  start: Timestamp;
  /** TA-Lib's |signal|: 100; 80 for the weaker engulfing/harami forms; 200 for a confirmed hikkake. */
  strength?: number;
}

export interface TechnicalAnalysis {
  technical_indicators: DefaultIndicators | SetIndicators;
  /** Set subscriptions only: the set's canonical entries, sorted (absent for the default set). */
  indicators?: string[];
  patterns: CandlePattern[];
  risk_metrics: {
    window: number;
    realised_volatility: number | null;
    var_95: number | null;
    max_drawdown: number | null;
    beta: number | null;
  };
  trend: 'bullish' | 'bearish' | 'neutral';
  interval: Interval;
  candle: Candle;
  /** Snapshot only: the last closed candles, oldest first. */
  history?: Candle[];
}

export interface Alert {
  id: string;
  symbol: string;
  type: string;
  condition: AlertCondition | AnalysisCondition;
  value: number | null;
  /** True only in the event message announcing this alert's firing (once per firing). */
  triggered: boolean;
  /** In its fired state: a `once` alert for good, a re-arming one until it re-arms. */
  fired: boolean;
  triggered_at: Timestamp | null;
  price: number | null;
  message: string | null;
  once: boolean;
  note: string | null;
  source: 'user' | 'builtin';
  armed: boolean;
  fire_count: number;
  category: 'price' | 'volume' | 'breakout' | 'indicator' | 'pattern';
  owner?: string;
  /** Analysis alerts only (category `indicator` or `pattern`). */
  interval?: Interval;
  indicator?: string | null;
  other?: string | null;
  forming?: boolean;
  /** Pattern alerts only; `direction` null means any. */
  pattern?: string;
  direction?: 'bullish' | 'bearish' | 'neutral' | null;
  /** The last firing's left and right values (indicator alerts; null until it fires). */
  values?: { left: number; right: number } | null;
  candle_start?: Timestamp | null;
}

export interface AlertData {
  price_alerts: Alert[];
  volume_alerts: Alert[];
  breakout_alerts: Alert[];
  indicator_alerts: Alert[];
  pattern_alerts: Alert[];
  /** State messages. */
  recent_events?: Alert[];
  /** Event messages (`event: "triggered"`): the alert that fired. */
  alert?: Alert;
}

export interface Position {
  symbol: string;
  quantity: number;
  average_price: number;
  last_price: number | null;
  current_value: number;
  invested_value: number;
  product: string | null;
  exchange: string | null;
  /** From the trades counted toward the position (0 and null without trades). */
  buy_quantity: number;
  sell_quantity: number;
  day_buy_quantity: number;
  day_sell_quantity: number;
  day_buy_price: number | null;
  day_sell_price: number | null;
  trades: number;
}

export interface PortfolioTotals {
  total_value: number;
  total_invested: number;
  total_pnl: number;
  total_pnl_percent: number;
  day_pnl: number;
  positions: number;
  priced: number;
  realized_pnl: number;
  day_realized_pnl: number;
}

export interface PositionData {
  position: Position;
  pnl: {
    unrealized: number;
    unrealized_percent: number;
    day: number;
    day_percent: number;
    realized: number;
    day_realized: number;
  };
  portfolio: PortfolioTotals;
}

/** A recorded trade (positions are built from trades FIFO). */
export interface Trade {
  id: string;
  symbol: string;
  side: 'buy' | 'sell';
  quantity: number;
  price: number;
  time: Timestamp;
  product: string | null;
  exchange: string | null;
  owner: string;
}

export interface NewTrade {
  symbol: string;
  side: 'buy' | 'sell';
  quantity: number;
  price: number | string;
  /** ISO 8601 with its offset (or a Date); default now. */
  time?: string | Date;
  product?: 'CNC' | 'MIS' | 'NRML' | string;
  exchange?: string;
  /** The client's id: the same id again answers the stored trade (`exists`). */
  id?: string;
}

export interface TradeReply {
  type: 'trade';
  timestamp: Timestamp;
  status: 'added' | 'exists' | 'deleted';
  trade?: Trade;
  id?: string;
  position: PositionData;
}

interface DataMessageBase<T extends DataType, D> {
  type: 'data';
  symbol: string;
  /** Exchange time of the update (the market's clock, Asia/Kolkata, written in UTC). */
  timestamp: Timestamp;
  /** The server's wall clock when it made the message (snapshots and resumes keep theirs). */
  server_time: Timestamp;
  data_type: T;
  seq: number;
  epoch: string;
  interval?: Interval;
  subscription?: '*';
  event?: 'triggered';
  /** /ws/portfolio `*` topic: the position was removed (quantity 0). */
  removed?: true;
  snapshot?: true;
  data: D;
}

export type DataMessage =
  | DataMessageBase<'tick_data', TickData>
  | DataMessageBase<'candle_data', Candle>
  | DataMessageBase<'market_data', MarketData>
  | DataMessageBase<'technical_analysis', TechnicalAnalysis>
  | DataMessageBase<'alert_data', AlertData>
  | DataMessageBase<'position_data', PositionData>;

export interface WelcomeMessage {
  type: 'connection';
  status: 'connected';
  timestamp: Timestamp;
  message: string;
  endpoint: string;
  connection_id: string;
  protocol_version: number;
}

export interface SubscriptionMessage {
  type: 'subscription';
  status: 'subscribed' | 'unsubscribed';
  symbol: string;
  timestamp: Timestamp;
  interval?: Interval;
  requested?: string;
  /** On acks of a resubscribe with `since`: true when the missed messages follow, false when a snapshot does. */
  recovered?: boolean;
  /** /ws/analysis acks of a subscribe with `indicators`: the set, canonical and sorted. */
  indicators?: string[];
}

export interface StatusMessage {
  type: 'status';
  timestamp: Timestamp;
  feed: FeedState;
  detail: string;
}

export interface ErrorMessage {
  type: 'error';
  message: string;
  timestamp: Timestamp;
  code: string;
  details?: Record<string, unknown>;
  symbol?: string;
  request?: string;
}

export interface HeartbeatAck {
  type: 'heartbeat';
  status: 'ack';
  timestamp: Timestamp;
  sent: number;
  dropped: number;
  conflated: number;
}

export type ServerMessage =
  | DataMessage
  | WelcomeMessage
  | SubscriptionMessage
  | StatusMessage
  | ErrorMessage
  | HeartbeatAck
  | { type: string; [field: string]: unknown };

/** What a batching connection receives; the client unpacks it. */
export interface BatchMessage {
  type: 'batch';
  count: number;
  messages: ServerMessage[];
}

// --- bookkeeping -------------------------------------------------------------------------------

export interface Gap {
  topic: string;
  symbol: string;
  interval?: Interval;
  epoch: string;
  /** The last seq seen before the gap. */
  last: number;
  /** The seq received. */
  seq: number;
  /** Messages not delivered: `seq - last - 1`. */
  missed: number;
  /** The topic's indicator set (/ws/analysis), `null` for the default one. */
  indicators: string[] | null;
}

export interface DataMeta {
  /** `SYMBOL@interval` (stream, analysis; `SYMBOL@interval[ema:9,rsi:14]` for an indicator set),
   * `SYMBOL` (alerts, portfolio) or `*`. */
  topic: string;
  snapshot: boolean;
  /** Same epoch and not newer than a message already delivered on the topic. */
  stale: boolean;
  /** Drop what you hold for the topic, what follows replaces it: its epoch changed (the server
   * restarted) or a resume was refused (`recovered: false`). */
  reset: boolean;
  gap: Gap | null;
}

export function topicOf(message: {
  symbol: string;
  interval?: string;
  subscription?: string;
  indicators?: string[];
  data?: unknown;
}): string;

/** The indicator set of an ack (`indicators`) or data message (`data.indicators`); `null`: the default set. */
export function indicatorSetOf(message: { indicators?: string[]; data?: unknown }): string[] | null;

/** Options of `subscribe`: `indicators` (/ws/analysis) is an indicator set such as
 *  `['ema:9', 'supertrend:10,3']` (docs/protocol.md §6.2.1); each set is a topic of its own. */
export interface SubscribeOptions {
  interval?: Interval;
  indicators?: string[];
}

export class SeqTracker {
  observe(message: DataMessage): DataMeta;
  position(topic: string): { epoch: string; seq: number } | undefined;
  /** The next message of the topic starts it afresh (`meta.reset`). */
  expectFresh(topic: string): void;
  forget(symbol: string, interval?: string): void;
  clear(): void;
}

export function backoffDelay(
  attempt: number,
  options?: Pick<Options, 'minDelay' | 'maxDelay' | 'factor' | 'jitter'>,
  random?: () => number,
): number;

export function resolveUrl(url: string): string;

export class TickhubError extends Error {
  /** The server's error code (`unknown_symbol`, `invalid_field`, ...) or `timeout`, `closed`, `connection_closed`, `not_connected`. */
  code: string;
  details?: Record<string, unknown>;
  reply?: ErrorMessage;
}

export interface Events {
  open: (info: { reconnect: boolean; reconnects: number }) => void;
  welcome: (message: WelcomeMessage) => void;
  data: (message: DataMessage, meta: DataMeta) => void;
  gap: (gap: Gap) => void;
  status: (message: StatusMessage) => void;
  error: (message: ErrorMessage) => void;
  subscription: (message: SubscriptionMessage) => void;
  heartbeat: (message: HeartbeatAck) => void;
  message: (message: ServerMessage) => void;
  close: (info: { code: number; reason: string; wasClean: boolean; willReconnect: boolean }) => void;
  reconnecting: (info: { attempt: number; delay: number }) => void;
  state: (state: ClientState) => void;
}

export interface NewAlert {
  symbol: string;
  condition: AlertCondition | AnalysisCondition;
  /** A price alert's level, or an indicator alert's (exactly one of `value` and `other`). */
  value?: number;
  once?: boolean;
  note?: string;
  /** An indicator alert's operands: `rsi:14`, `bollinger.upper:20,2`, `close`, `prev_high`. */
  indicator?: string;
  other?: string;
  interval?: Interval;
  /** A pattern alert (`condition: "pattern"`): a pattern name or `any`. */
  pattern?: string;
  direction?: 'bullish' | 'bearish' | 'neutral';
  forming?: boolean;
}

export type AnalysisCondition = 'crosses_above' | 'crosses_below' | 'above' | 'below' | 'pattern';

export interface NewPosition {
  symbol: string;
  quantity: number;
  average_price?: number | string;
  averagePrice?: number | string;
  product?: 'CNC' | 'MIS' | 'NRML' | string;
  exchange?: string;
}

export class TickhubClient {
  constructor(url: string, options?: Options);
  readonly url: string;
  readonly options: Required<Options>;
  readonly state: ClientState;
  readonly connected: boolean;
  /** Successful reconnections so far. */
  readonly reconnects: number;
  /** Failed attempts since the last welcome. */
  readonly attempt: number;
  readonly connectionId: string | null;
  readonly welcome: WelcomeMessage | null;
  readonly feed: FeedState | null;
  readonly counters: { sent: number; dropped: number; conflated: number } | null;
  readonly tracker: SeqTracker;
  /** What the client keeps subscribed (resubscribed after a reconnect). */
  readonly subscriptions: { symbol: string; interval?: Interval; indicators?: string[] }[];

  on<K extends keyof Events>(type: K, listener: Events[K]): () => void;
  off<K extends keyof Events>(type: K, listener: Events[K]): void;
  once<K extends keyof Events>(type: K): Promise<Parameters<Events[K]>[0]>;

  connect(): this;
  close(code?: number, reason?: string): void;
  send(message: Record<string, unknown>): boolean;

  subscribe(symbols: string | string[], options?: SubscribeOptions): void;
  unsubscribe(symbols: string | string[], options?: { interval?: Interval }): void;

  request<R = ServerMessage>(message: { type: string; [field: string]: unknown }, expect?: string): Promise<R>;
  createAlert(alert: NewAlert): Promise<Alert>;
  listAlerts(symbol?: string): Promise<Alert[]>;
  deleteAlert(id: string): Promise<string>;
  setPosition(position: NewPosition): Promise<{
    type: 'position';
    status: 'saved' | 'removed';
    symbol: string;
    position?: Position;
  }>;
  removePosition(symbol: string): Promise<{ type: 'position'; status: 'removed'; symbol: string }>;
  listPositions(): Promise<{ positions: Position[]; portfolio: PortfolioTotals }>;
  addTrade(trade: NewTrade): Promise<TradeReply>;
  listTrades(symbol?: string): Promise<Trade[]>;
  deleteTrade(id: string): Promise<TradeReply>;
  /** Closed candles from `GET /candles` on this client's server, oldest first. */
  history(symbol: string, options?: HistoryOptions): Promise<Candle[]>;
  /** Round trip in milliseconds. */
  ping(): Promise<number>;
}

/** The query of `GET /candles` (see docs/protocol.md, HTTP routes). */
export interface HistoryOptions {
  /** Default `1m`. */
  interval?: Interval;
  /** Default 500, at most the server's `CANDLES_MAX_LIMIT` (5000): the newest of the range. */
  limit?: number;
  /** Inclusive bounds on the candles' `start`: a Date, ISO 8601 (no offset: IST) or epoch seconds. */
  from?: Date | string | number;
  to?: Date | string | number;
  /** A WHATWG fetch; default `globalThis.fetch`. */
  fetch?: (url: string) => Promise<{ ok: boolean; status: number; json(): Promise<unknown> }>;
}

/** The URL of `GET /candles` on the server of `url` (ws://, wss://, http:// or a path). */
export function candlesUrl(url: string, symbol: string, options?: HistoryOptions): string;
/** `GET /candles` on the server of `url`: the closed candles, oldest first. */
export function fetchCandles(url: string, symbol: string, options?: HistoryOptions): Promise<Candle[]>;

export function connect(url: string, options?: Options): TickhubClient;
export default connect;
