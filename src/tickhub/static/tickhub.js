/**
 * tickhub.js: a small client for the tickhub WebSocket service.
 *
 * An ES module with no dependencies and no build step: serve it as it is and import it
 * (`import { connect } from '/static/tickhub.js'`). Runs in browsers and in Node 22+
 * (Node 20 with `--experimental-websocket`), or anywhere a WHATWG `WebSocket` is passed in.
 *
 *   const client = connect('ws://localhost:8081/ws/stream');      // or connect('/ws/stream') in a page
 *   client.on('data', (msg, meta) => console.log(msg.symbol, msg.data_type, msg.data));
 *   client.on('gap', (gap) => console.warn(`${gap.topic}: ${gap.missed} missed`));
 *   client.subscribe(['RELIANCE', 'INFY'], { interval: '5m' });
 *
 * What it does for you (the wire protocol is docs/protocol.md):
 *
 * - heartbeat: sends `{"type":"heartbeat"}` every `heartbeatInterval` ms; when nothing at all has
 *   arrived for `heartbeatInterval + heartbeatTimeout` ms the connection is taken for dead and
 *   dropped, which starts a reconnect.
 * - reconnect: after any close it did not ask for, it reconnects with exponential backoff and
 *   jitter (`backoffDelay`). Close codes 4500-4999 mean "do not reconnect until something
 *   changes" and stop it (4501, token expired, reconnects when `token` is a function: a new
 *   token is asked for).
 * - resubscribe: after a reconnect it subscribes again to everything subscribed, one `subscribe`
 *   per topic carrying `"since": {"epoch": ..., "seq": ...}`, the last message seen on the topic
 *   (docs/protocol.md §8). The server answers `"recovered": true` in the ack and sends what was
 *   missed (candles and alert events one by one, state as its latest value, so `gap` events
 *   report the replaced state), or `"recovered": false` and a snapshot (another epoch, or too far
 *   back): the snapshot's first message then has `meta.reset`, drop what you hold. A server
 *   that does not know `since` ignores it and sends a snapshot. Either way the topic continues.
 * - gaps: every `data` message is numbered per topic (`seq`, under an `epoch`). The client keeps
 *   the last `seq` per topic and emits `gap` when a live message skips numbers (a slow link whose
 *   older updates the server replaced, or state left out of a recovery). A topic is
 *   `SYMBOL@interval` on /ws/stream and /ws/analysis (`SYMBOL@interval[ema:9,rsi:14]` for an
 *   indicator set: each set is its own topic), `SYMBOL` on /ws/alerts and /ws/portfolio,
 *   and `*` for messages of a portfolio `*` subscription (they carry `"subscription": "*"`).
 *   Snapshot messages carry their original, non-consecutive numbers and never make a gap. A new
 *   `epoch` (the server restarted) resets the topic: `meta.reset` is true.
 * - batches: with `batch: true` the client asks for batched delivery (`?batch=1`: one frame every
 *   few milliseconds holding many messages); batches are unpacked, so listeners see the same
 *   messages either way.
 * - requests: `createAlert`, `listAlerts`, `deleteAlert`, `setPosition`, `removePosition`,
 *   `listPositions` and `ping` return promises. The server answers requests in the order it
 *   reads them, so a reply is matched to the oldest pending request expecting its `type`; an
 *   `error` whose `request` names the request type rejects that request with a `TickhubError`.
 *
 * Events (`client.on(name, listener)` returns a function that removes the listener):
 *
 *   open          {reconnect: boolean, reconnects: number}     socket open (subscriptions sent)
 *   welcome       the server's `connection` message
 *   data          (message, meta): meta = {topic, snapshot, stale, reset, gap}
 *   gap           {topic, symbol, interval, epoch, last, seq, missed, indicators}
 *   status        the server's `status` message (feed state)
 *   error         a server `error` message not answered to a request
 *   subscription  a `subscription` ack
 *   heartbeat     a heartbeat ack ({sent, dropped, conflated})
 *   message       every message, parsed, before the events above
 *   close         {code, reason, wasClean, willReconnect}
 *   reconnecting  {attempt, delay}: a reconnect is scheduled in `delay` ms
 *   state         the new `client.state`
 */

export const VERSION = '0.1.0';

/** Options and their defaults (all times in milliseconds). */
export const DEFAULTS = Object.freeze({
  heartbeatInterval: 15000, // 0 turns heartbeats (and the dead-connection check) off
  heartbeatTimeout: 10000, // silence allowed past a heartbeat interval before the link is dead
  connectTimeout: 10000, // a socket not open by then is dropped and retried
  requestTimeout: 10000, // a request with no reply by then is rejected
  reconnect: true,
  minDelay: 500, // first reconnect delay (before jitter)
  maxDelay: 30000, // largest reconnect delay
  factor: 2, // growth of the delay per failed attempt
  jitter: 0.5, // fraction of each delay that is random: delay in [(1 - jitter) x d, d]
  token: null, // string, or () => string | Promise<string>: sent as `Sec-WebSocket-Protocol: tickhub, token.<token>`
  batch: false, // ask the server to batch data messages (`?batch=1`)
  WebSocket: null, // a WHATWG WebSocket class; default globalThis.WebSocket
  random: Math.random, // the jitter's randomness (tests pass a fixed one)
});

const REQUEST_REPLIES = {
  create_alert: 'alert',
  delete_alert: 'alert',
  list_alerts: 'alerts',
  set_position: 'position',
  remove_position: 'position',
  list_positions: 'positions',
  add_trade: 'trade',
  delete_trade: 'trade',
  list_trades: 'trades',
};

const CONNECTING = 0;
const OPEN = 1;

/** An error answered by the server (`code` is its stable error code) or raised by the client. */
export class TickhubError extends Error {
  constructor(message, code, details = undefined, reply = undefined) {
    super(message);
    this.name = 'TickhubError';
    this.code = code;
    this.details = details;
    this.reply = reply;
  }
}

/**
 * The delay before reconnect attempt `attempt` (0 for the first): exponential, capped, jittered.
 * `d = min(maxDelay, minDelay * factor ** attempt)`, then a random value in `[(1 - jitter) d, d]`
 * so that many clients dropped at once do not come back at once.
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const o = { ...DEFAULTS, ...options };
  const d = Math.min(o.maxDelay, o.minDelay * o.factor ** Math.max(0, attempt));
  const j = Math.min(1, Math.max(0, o.jitter));
  return Math.round(d * (1 - j) + d * j * random());
}

/**
 * The indicator set of an /ws/analysis ack (`indicators`) or data message (`data.indicators`),
 * canonical as the server sends it; `null` for the default set (docs/protocol.md §6.2.1).
 */
export function indicatorSetOf(msg) {
  const set = msg.indicators ?? msg.data?.indicators;
  return Array.isArray(set) && set.length > 0 ? set : null;
}

/** The topic a `data` message (or a subscription ack) belongs to; see the module comment. */
export function topicOf(msg) {
  if (msg.subscription === '*' || msg.symbol === '*') return '*';
  if (!msg.interval) return msg.symbol;
  const set = indicatorSetOf(msg);
  return `${msg.symbol}@${msg.interval}${set ? `[${set.join(',')}]` : ''}`;
}

/**
 * Per-topic `seq`/`epoch` bookkeeping (pure: no I/O, no timers).
 *
 * `observe(msg)` returns `{topic, snapshot, stale, reset, gap}`:
 * - `reset`: drop what you hold for the topic, the messages that follow replace it: the epoch
 *   changed (the server restarted), or a resume was refused (`expectFresh`).
 * - `stale`: same epoch and `seq` not above the last seen: not newer than what was delivered.
 * - `gap`: a live message skipped numbers: `{topic, symbol, interval, epoch, last, seq, missed}`.
 */
export class SeqTracker {
  constructor() {
    this.topics = new Map();
  }

  observe(msg) {
    const topic = topicOf(msg);
    const snapshot = msg.snapshot === true;
    const meta = { topic, snapshot, stale: false, reset: false, gap: null };
    const { seq, epoch } = msg;
    if (!Number.isInteger(seq)) return meta;
    const last = this.topics.get(topic);
    if (last === undefined || last.epoch !== epoch || last.fresh) {
      meta.reset = last !== undefined;
      this.topics.set(topic, { epoch, seq, fresh: false });
      return meta;
    }
    if (seq <= last.seq) {
      meta.stale = true;
      return meta;
    }
    if (!snapshot && seq > last.seq + 1) {
      meta.gap = {
        topic,
        symbol: msg.symbol,
        interval: msg.interval,
        epoch,
        last: last.seq,
        seq,
        missed: seq - last.seq - 1,
        indicators: indicatorSetOf(msg),
      };
    }
    last.seq = seq;
    return meta;
  }

  /** The last `{epoch, seq}` seen on a topic, or undefined. */
  position(topic) {
    const p = this.topics.get(topic);
    return p === undefined ? undefined : { epoch: p.epoch, seq: p.seq };
  }

  /** The next message of `topic` starts it afresh (a snapshot after a refused resume). */
  expectFresh(topic) {
    const p = this.topics.get(topic);
    if (p !== undefined) p.fresh = true;
  }

  /** Forget a symbol's topics: one interval (with its indicator sets), or all of them when `interval` is undefined. */
  forget(symbol, interval = undefined) {
    if (symbol === '*') {
      this.topics.delete('*');
      return;
    }
    if (interval !== undefined) {
      const base = `${symbol}@${interval}`;
      for (const topic of [...this.topics.keys()]) {
        if (topic === base || topic.startsWith(`${base}[`)) this.topics.delete(topic);
      }
      return;
    }
    for (const topic of [...this.topics.keys()]) {
      if (topic === symbol || topic.startsWith(`${symbol}@`)) this.topics.delete(topic);
    }
  }

  clear() {
    this.topics.clear();
  }
}

/** `ws://` / `wss://` URLs as they are; `http(s)://` mapped; a path resolved against the page. */
export function resolveUrl(url) {
  if (/^wss?:\/\//i.test(url)) return url;
  if (/^https?:\/\//i.test(url)) return url.replace(/^http/i, 'ws');
  const loc = globalThis.location;
  if (url.startsWith('/') && loc && loc.host) {
    return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}${url}`;
  }
  throw new TypeError(`not a WebSocket URL: ${JSON.stringify(url)}`);
}

function normalise(symbol) {
  return String(symbol).trim().toUpperCase();
}

function asList(symbols) {
  const list = Array.isArray(symbols) ? symbols : [symbols];
  return list.filter((s) => typeof s === 'string' && s.trim() !== '');
}

function report(err) {
  // A listener's exception must not break the client; surface it like an uncaught one.
  if (typeof globalThis.reportError === 'function') globalThis.reportError(err);
  else setTimeout(() => { throw err; }, 0);
}

/** A client for one endpoint (`/ws/stream`, `/ws/analysis`, `/ws/alerts` or `/ws/portfolio`). */
export class TickhubClient {
  constructor(url, options = {}) {
    this.options = { ...DEFAULTS, ...options };
    this.url = this.options.batch ? withBatch(resolveUrl(url)) : resolveUrl(url);
    this.state = 'idle'; // idle | connecting | open | reconnecting | closed
    this.reconnects = 0; // successful reconnections
    this.attempt = 0; // failed attempts since the last welcome
    this.connectionId = null;
    this.welcome = null;
    this.feed = null; // the latest `status.feed`, if any
    this.counters = null; // the latest heartbeat ack's {sent, dropped, conflated}
    this.tracker = new SeqTracker();
    this._listeners = new Map();
    this._subs = new Map(); // key -> {requested, interval, symbol (server's), topic}
    this._pending = []; // requests: {request, expect, message, sent, resolve, reject, timer}
    this._pings = [];
    this._ws = null;
    this._everOpened = false;
    this._stopped = false;
    this._timers = { reconnect: null, connect: null, heartbeat: null };
    this._lastReceived = 0;
  }

  // --- events --------------------------------------------------------------------------------

  on(type, listener) {
    let set = this._listeners.get(type);
    if (set === undefined) this._listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => this.off(type, listener);
  }

  off(type, listener) {
    this._listeners.get(type)?.delete(listener);
  }

  /** A promise of the next `type` event's first argument. */
  once(type) {
    return new Promise((resolve) => {
      const off = this.on(type, (value) => {
        off();
        resolve(value);
      });
    });
  }

  _emit(type, ...args) {
    const set = this._listeners.get(type);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (err) {
        report(err);
      }
    }
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit('state', state);
  }

  get connected() {
    return this.state === 'open';
  }

  /** Subscriptions as held by the client: `[{symbol, interval, indicators}]` (server spelling once acked). */
  get subscriptions() {
    return [...this._subs.values()].map((s) => ({
      symbol: s.symbol ?? s.requested,
      ...(s.interval ? { interval: s.interval } : {}),
      ...(s.indicators ? { indicators: s.set ?? s.indicators } : {}),
    }));
  }

  // --- lifecycle -----------------------------------------------------------------------------

  /** Open the connection (and keep it open until `close()`). Returns the client. */
  connect() {
    if (typeof (this.options.WebSocket ?? globalThis.WebSocket) !== 'function') {
      throw new TickhubError(
        'no WebSocket implementation: pass options.WebSocket (Node 20: --experimental-websocket)',
        'no_websocket',
      );
    }
    if (this.state === 'idle' || this.state === 'closed') {
      this._stopped = false;
      this._open();
    }
    return this;
  }

  /** Close for good: no reconnect; pending requests are rejected. */
  close(code = 1000, reason = 'client closing') {
    this._stopped = true;
    this._clearTimers();
    const ws = this._ws;
    this._ws = null;
    if (ws !== null) {
      this._detach(ws);
      if (ws.readyState === CONNECTING) {
        // Closing a socket still connecting makes browsers log an error: close it once open.
        ws.onopen = () => ws.close(code, reason);
        ws.onerror = () => {};
      } else {
        try {
          ws.close(code, reason);
        } catch {
          // already closing
        }
      }
    }
    this._failPending(new TickhubError('client closed', 'closed'));
    this._setState('closed');
  }

  async _open() {
    const WS = this.options.WebSocket ?? globalThis.WebSocket;
    this._setState(this._everOpened ? 'reconnecting' : 'connecting');
    let protocols;
    try {
      protocols = await this._protocols();
    } catch (err) {
      report(err);
      this._scheduleReconnect();
      return;
    }
    if (this._stopped) return;
    let ws;
    try {
      ws = protocols === undefined ? new WS(this.url) : new WS(this.url, protocols);
    } catch (err) {
      report(err);
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    ws.onopen = () => this._onOpen(ws);
    ws.onmessage = (event) => this._onMessage(ws, event);
    ws.onclose = (event) => this._onClose(ws, event.code, event.reason, event.wasClean);
    ws.onerror = () => {}; // a close event follows; it carries what there is to know
    this._timers.connect = setTimeout(() => {
      if (ws.readyState === CONNECTING) this._drop(ws, 4000, 'connect timeout');
    }, this.options.connectTimeout);
  }

  async _protocols() {
    const { token } = this.options;
    if (token === null || token === undefined) return undefined;
    const value = typeof token === 'function' ? await token() : token;
    return value ? ['tickhub', `token.${value}`] : undefined;
  }

  _onOpen(ws) {
    if (ws !== this._ws) return;
    clearTimeout(this._timers.connect);
    const reconnect = this._everOpened;
    if (reconnect) this.reconnects += 1;
    this._everOpened = true;
    this._lastReceived = Date.now();
    this._setState('open');
    this._resubscribe();
    for (const p of this._pending) {
      if (!p.sent) this._sendRequest(p);
    }
    this._startHeartbeat(ws);
    this._emit('open', { reconnect, reconnects: this.reconnects });
  }

  _onClose(ws, code, reason, wasClean) {
    if (ws !== this._ws) return;
    this._ws = null;
    this._detach(ws);
    this._clearTimers();
    this._failPending(new TickhubError(`connection closed (${code})`, 'connection_closed'), true);
    const willReconnect = this._willReconnect(code);
    this._emit('close', { code, reason, wasClean, willReconnect });
    if (willReconnect) this._scheduleReconnect();
    else this._setState('closed');
  }

  /** Drop a socket at once (no closing handshake to wait for) and handle it as closed. */
  _drop(ws, code, reason) {
    try {
      ws.close(code, reason);
    } catch {
      // ignore
    }
    this._onClose(ws, code, reason, false);
  }

  _detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
  }

  _willReconnect(code) {
    if (this._stopped || !this.options.reconnect) return false;
    if (code === 4501) return typeof this.options.token === 'function';
    return !(code >= 4500 && code <= 4999);
  }

  _scheduleReconnect() {
    if (this._stopped) return;
    const delay = backoffDelay(this.attempt, this.options, this.options.random);
    this.attempt += 1;
    this._setState('reconnecting');
    this._emit('reconnecting', { attempt: this.attempt, delay });
    clearTimeout(this._timers.reconnect);
    this._timers.reconnect = setTimeout(() => this._open(), delay);
  }

  _clearTimers() {
    clearTimeout(this._timers.reconnect);
    clearTimeout(this._timers.connect);
    clearInterval(this._timers.heartbeat);
  }

  _startHeartbeat(ws) {
    const { heartbeatInterval, heartbeatTimeout } = this.options;
    if (!heartbeatInterval) return;
    clearInterval(this._timers.heartbeat);
    this._timers.heartbeat = setInterval(() => {
      if (ws !== this._ws) return;
      if (Date.now() - this._lastReceived > heartbeatInterval + heartbeatTimeout) {
        this._drop(ws, 4000, 'heartbeat timeout');
        return;
      }
      this._send({ type: 'heartbeat', timestamp: Date.now() / 1000 });
    }, heartbeatInterval);
  }

  // --- messages ------------------------------------------------------------------------------

  _send(message) {
    const ws = this._ws;
    if (ws === null || ws.readyState !== OPEN) return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  /** Send any message as it is (returns false when not connected). */
  send(message) {
    return this._send(message);
  }

  _onMessage(ws, event) {
    if (ws !== this._ws) return;
    this._lastReceived = Date.now();
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch {
      this._emit('error', { type: 'error', code: 'invalid_message', message: 'not JSON' });
      return;
    }
    if (msg === null || typeof msg !== 'object') return;
    if (msg.type === 'batch' && Array.isArray(msg.messages)) {
      for (const inner of msg.messages) {
        if (ws !== this._ws) return; // a listener closed the client
        if (inner !== null && typeof inner === 'object') this._dispatch(inner);
      }
      return;
    }
    this._dispatch(msg);
  }

  _dispatch(msg) {
    this._emit('message', msg);
    switch (msg.type) {
      case 'data': {
        const meta = this.tracker.observe(msg);
        if (meta.gap) this._emit('gap', meta.gap);
        this._emit('data', msg, meta);
        break;
      }
      case 'connection':
        this.welcome = msg;
        this.connectionId = msg.connection_id ?? null;
        this.attempt = 0;
        this._emit('welcome', msg);
        break;
      case 'subscription':
        this._onAck(msg);
        this._emit('subscription', msg);
        break;
      case 'status':
        this.feed = msg.feed ?? null;
        this._emit('status', msg);
        break;
      case 'heartbeat':
        this.counters = { sent: msg.sent, dropped: msg.dropped, conflated: msg.conflated };
        this._emit('heartbeat', msg);
        break;
      case 'pong': {
        const ping = this._pings.shift();
        if (ping) {
          clearTimeout(ping.timer);
          ping.resolve(Date.now() - ping.at);
        }
        break;
      }
      case 'error':
        this._onError(msg);
        break;
      default:
        this._settle(msg);
    }
  }

  _onError(msg) {
    if (typeof msg.request === 'string') {
      const i = this._pending.findIndex((p) => p.sent && p.request === msg.request);
      if (i >= 0) {
        const [p] = this._pending.splice(i, 1);
        clearTimeout(p.timer);
        p.reject(new TickhubError(msg.message, msg.code, msg.details, msg));
        return;
      }
    }
    if (msg.request === 'subscribe' && msg.symbol !== undefined) {
      // A symbol the server refuses (unknown, over a limit) is not resubscribed later.
      const name = normalise(msg.symbol);
      for (const [key, sub] of this._subs) {
        if (normalise(sub.requested) === name) this._subs.delete(key);
      }
    } else if (msg.request === 'subscribe' && SET_ERRORS.has(msg.code)) {
      // A refused indicator set (the whole subscribe refused) is not resubscribed later.
      for (const [key, sub] of this._subs) {
        if (sub.indicators !== null && sub.set === null) this._subs.delete(key);
      }
    }
    this._emit('error', msg);
  }

  _settle(msg) {
    const i = this._pending.findIndex((p) => p.sent && p.expect === msg.type);
    if (i < 0) return;
    const [p] = this._pending.splice(i, 1);
    clearTimeout(p.timer);
    p.resolve(msg);
  }

  _failPending(error, onlySent = false) {
    const keep = [];
    for (const p of this._pending) {
      if (onlySent && !p.sent) {
        keep.push(p); // not on the wire yet: goes out on the next connection
      } else {
        clearTimeout(p.timer);
        p.reject(error);
      }
    }
    this._pending = keep;
    for (const ping of this._pings.splice(0)) {
      clearTimeout(ping.timer);
      ping.reject(error);
    }
  }

  // --- subscriptions -------------------------------------------------------------------------

  /**
   * Subscribe to one symbol or several (`interval` on /ws/stream and /ws/analysis; `'*'` on
   * /ws/portfolio for every position). Kept across reconnects. Acks arrive as `subscription`
   * events; refused symbols as `error` events (and are dropped from the kept list).
   * `indicators` (/ws/analysis): an indicator set such as `['ema:9', 'supertrend:10,3']`
   * instead of the default one (docs/protocol.md §6.2.1). Each set of a symbol and interval is a
   * topic of its own (`RELIANCE@5m[ema:9,supertrend:10,3]`, the set as the server's ack spells
   * it), resumed with its own `since`; a set the server refuses is an `error` event with its code
   * (`unknown_indicator`, `invalid_indicator_parameter`, `too_many_indicators`) and is dropped.
   */
  subscribe(symbols, { interval, indicators } = {}) {
    const list = asList(symbols);
    const asked = indicatorList(indicators);
    const fresh = [];
    for (const requested of list) {
      const key = `${normalise(requested)}@${interval ?? ''}${asked ? `[${asked.join(',')}]` : ''}`;
      if (!this._subs.has(key)) {
        this._subs.set(key, { requested, interval, indicators: asked, set: null, symbol: null, topic: null });
      }
      fresh.push(requested);
    }
    if (fresh.length > 0) this._send(subscribeMessage('subscribe', fresh, interval, asked));
  }

  /** Unsubscribe (without `interval`: every interval of the symbols). */
  unsubscribe(symbols, { interval } = {}) {
    const list = asList(symbols);
    const names = new Set(list.map(normalise));
    for (const [key, sub] of this._subs) {
      const match = names.has(normalise(sub.requested)) || (sub.symbol && names.has(normalise(sub.symbol)));
      if (match && (interval === undefined || sub.interval === interval)) this._subs.delete(key);
    }
    if (list.length > 0) this._send(subscribeMessage('unsubscribe', list, interval));
  }

  _onAck(msg) {
    if (msg.status === 'unsubscribed') {
      this.tracker.forget(msg.symbol, msg.interval);
      return;
    }
    if (msg.status !== 'subscribed') return;
    // Not resumable (another epoch, or too far back): the snapshot that follows replaces all.
    if (msg.recovered === false) this.tracker.expectFresh(topicOf(msg));
    const asked = normalise(msg.requested ?? msg.symbol);
    const set = indicatorSetOf(msg);
    const setKey = set ? set.join(',') : null;
    let claimed = false; // an ack of a set not yet acked answers one subscription, the oldest
    for (const sub of this._subs.values()) {
      const same = normalise(sub.requested) === asked || normalise(sub.requested) === normalise(msg.symbol);
      // No interval asked means the server's default, 1m (acks on /ws/alerts, /ws/portfolio have none).
      const interval = sub.interval ?? (msg.interval === undefined ? undefined : '1m');
      if (!same || interval !== msg.interval) continue;
      if (setKey === null ? sub.indicators !== null : sub.indicators === null) continue;
      if (setKey !== null) {
        const known = sub.set === null ? null : sub.set.join(',');
        if (known !== null ? known !== setKey : claimed) continue;
        if (known === null) claimed = true;
        sub.set = set;
      }
      sub.symbol = msg.symbol;
      sub.topic = topicOf(msg);
    }
  }

  _resubscribe() {
    const plain = new Map(); // interval and set -> symbols, for topics with nothing seen yet
    for (const sub of this._subs.values()) {
      const since = sub.topic === null ? undefined : this.tracker.position(sub.topic);
      const indicators = sub.set ?? sub.indicators ?? null;
      if (since === undefined) {
        const k = JSON.stringify([sub.interval ?? '', indicators]);
        if (!plain.has(k)) plain.set(k, { interval: sub.interval, indicators, symbols: [] });
        plain.get(k).symbols.push(sub.requested);
        continue;
      }
      const msg = subscribeMessage('subscribe', [sub.symbol ?? sub.requested], sub.interval, indicators);
      msg.since = since;
      this._send(msg);
    }
    for (const { interval, indicators, symbols } of plain.values()) {
      this._send(subscribeMessage('subscribe', symbols, interval || undefined, indicators));
    }
  }

  // --- requests ------------------------------------------------------------------------------

  /**
   * Send a request and resolve with its reply (the next message of the expected type), or
   * reject with the `error` the server answered. Requests made while disconnected wait for the
   * connection; a request already sent when the connection drops is rejected (it may or may not
   * have been applied).
   */
  request(message, expect = REQUEST_REPLIES[message.type]) {
    if (!expect) return Promise.reject(new TypeError(`no reply known for ${message.type}`));
    return new Promise((resolve, reject) => {
      const p = { request: message.type, expect, message, sent: false, resolve, reject, timer: null };
      p.timer = setTimeout(() => {
        const i = this._pending.indexOf(p);
        if (i >= 0) this._pending.splice(i, 1);
        reject(new TickhubError(`no reply to ${message.type} within ${this.options.requestTimeout} ms`, 'timeout'));
      }, this.options.requestTimeout);
      this._pending.push(p);
      this._sendRequest(p);
    });
  }

  _sendRequest(p) {
    if (this._send(p.message)) p.sent = true;
  }

  /**
   * /ws/alerts: `{symbol, condition, value?, once?, note?}` -> the created alert; an analysis
   * alert adds `indicator`, `other` (instead of `value`), `interval`, `pattern`, `direction`,
   * `forming`.
   */
  async createAlert({
    symbol, condition, value, once, note, indicator, other, interval, pattern, direction, forming,
  } = {}) {
    const message = { type: 'create_alert', symbol, condition };
    const optional = { value, indicator, other, interval, pattern, direction, forming, once };
    for (const [key, v] of Object.entries(optional)) {
      if (v !== undefined && v !== null) message[key] = v;
    }
    if (note !== undefined && note !== null && note !== '') message.note = note;
    return (await this.request(message)).alert;
  }

  /** /ws/alerts: the user alerts (of one symbol, or all), oldest first. */
  async listAlerts(symbol = undefined) {
    const message = { type: 'list_alerts' };
    if (symbol) message.symbol = symbol;
    return (await this.request(message)).alerts;
  }

  /** /ws/alerts: delete an alert by id; resolves with the id. */
  async deleteAlert(id) {
    return (await this.request({ type: 'delete_alert', id })).id;
  }

  /** /ws/portfolio: `{symbol, quantity, average_price, product?, exchange?}` -> the reply. */
  setPosition({ symbol, quantity, average_price, averagePrice, product, exchange } = {}) {
    const message = { type: 'set_position', symbol, quantity, average_price: average_price ?? averagePrice };
    if (product) message.product = product;
    if (exchange) message.exchange = exchange;
    return this.request(message);
  }

  /** /ws/portfolio: remove a position -> the reply (`status: "removed"`). */
  removePosition(symbol) {
    return this.request({ type: 'remove_position', symbol });
  }

  /** /ws/portfolio: every position and the totals: `{positions, portfolio}`. */
  async listPositions() {
    const reply = await this.request({ type: 'list_positions' });
    return { positions: reply.positions, portfolio: reply.portfolio };
  }

  /**
   * /ws/portfolio: record a trade, `{symbol, side, quantity, price, time?, product?, exchange?,
   * id?}` -> the reply `{status: "added" | "exists", trade, position}`. With an `id` a retry
   * is safe: the same id answers the stored trade (`exists`).
   */
  addTrade({ symbol, side, quantity, price, time, product, exchange, id } = {}) {
    const message = { type: 'add_trade', symbol, side, quantity, price };
    if (time) message.time = time instanceof Date ? time.toISOString() : time;
    if (product) message.product = product;
    if (exchange) message.exchange = exchange;
    if (id !== undefined && id !== null) message.id = id;
    return this.request(message);
  }

  /** /ws/portfolio: the trades (of one symbol, or all), oldest first. */
  async listTrades(symbol = undefined) {
    const message = { type: 'list_trades' };
    if (symbol) message.symbol = symbol;
    return (await this.request(message)).trades;
  }

  /** /ws/portfolio: forget a trade by id -> the reply `{status: "deleted", id, position}`. */
  deleteTrade(id) {
    return this.request({ type: 'delete_trade', id });
  }

  /**
   * Closed candles from `GET /candles` on this client's server, oldest first: the chart's past
   * before the first live candle. `{interval, limit, from, to}` as the route takes them (`from` /
   * `to`: a Date, an ISO 8601 string or epoch seconds). Rejects with a `TickhubError` carrying
   * the server's error code.
   */
  history(symbol, options = {}) {
    return fetchCandles(this.url, symbol, options);
  }

  /** Round trip in milliseconds of a `ping` / `pong`. */
  ping() {
    return new Promise((resolve, reject) => {
      const entry = { at: Date.now(), resolve, reject, timer: null };
      if (!this._send({ type: 'ping', timestamp: entry.at / 1000 })) {
        reject(new TickhubError('not connected', 'not_connected'));
        return;
      }
      entry.timer = setTimeout(() => {
        const i = this._pings.indexOf(entry);
        if (i >= 0) this._pings.splice(i, 1);
        reject(new TickhubError('no pong', 'timeout'));
      }, this.options.requestTimeout);
      this._pings.push(entry);
    });
  }
}

function withBatch(url) {
  const u = new URL(url);
  u.searchParams.set('batch', '1');
  return u.toString();
}

function subscribeMessage(type, symbols, interval, indicators = null) {
  const message = symbols.length === 1 ? { type, symbol: symbols[0] } : { type, symbols };
  if (interval) message.interval = interval;
  if (indicators) message.indicators = indicators;
  return message;
}

/** Errors refusing a whole indicator-set subscribe (docs/protocol.md §6.2.1). */
const SET_ERRORS = new Set([
  'unknown_indicator',
  'invalid_indicator_parameter',
  'too_many_indicators',
  'invalid_field',
  'limit_exceeded',
]);

/** `indicators` as given (trimmed, repeats dropped), `null` for the default set. */
function indicatorList(indicators) {
  if (indicators === undefined || indicators === null) return null;
  const list = typeof indicators === 'string' ? [indicators] : [...indicators];
  if (list.length === 0 || !list.every((i) => typeof i === 'string')) {
    throw new TypeError(`indicators must be a non-empty array of strings such as 'ema:9', got ${JSON.stringify(list)}`);
  }
  return [...new Set(list.map((i) => i.trim()))];
}

/** The HTTP URL of `GET /candles` on the server of `url` (ws://, wss://, http:// or a path). */
export function candlesUrl(url, symbol, { interval, limit, from, to } = {}) {
  const u = new URL(resolveUrl(url));
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  u.pathname = '/candles';
  u.search = '';
  u.searchParams.set('symbol', String(symbol).trim());
  if (interval) u.searchParams.set('interval', interval);
  if (limit !== undefined && limit !== null) u.searchParams.set('limit', String(limit));
  for (const [name, value] of [['from', from], ['to', to]]) {
    if (value === undefined || value === null || value === '') continue;
    u.searchParams.set(name, value instanceof Date ? value.toISOString() : String(value));
  }
  return u.toString();
}

/** `GET /candles` for `symbol` on the server of `url`: its candles, oldest first. */
export async function fetchCandles(url, symbol, options = {}) {
  const fetchImpl = options.fetch ?? globalThis.fetch;
  if (typeof fetchImpl !== 'function') throw new TickhubError('no fetch implementation', 'not_supported');
  const response = await fetchImpl(candlesUrl(url, symbol, options));
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok || !body || !Array.isArray(body.candles)) {
    const code = body?.code ?? `http_${response.status}`;
    throw new TickhubError(body?.message ?? `GET /candles: HTTP ${response.status}`, code, body ?? undefined);
  }
  return body.candles;
}

/** `new TickhubClient(url, options).connect()`. */
export function connect(url, options = {}) {
  return new TickhubClient(url, options).connect();
}

export default connect;
