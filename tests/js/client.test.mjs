// Tests of src/tickhub/static/tickhub.js, run by tests/e2e/test_js_client.py:
//   node --experimental-websocket --test tests/js/client.test.mjs
// The first part drives the client with a fake WebSocket and synthetic messages; the second runs
// against a real service when TICKHUB_PORT is set, with TICKHUB_CONTROL an HTTP endpoint of the
// Python test that can drop every connection (/drop) or restart the service on its port (/restart).
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import {
  SeqTracker,
  TickhubClient,
  TickhubError,
  backoffDelay,
  candlesUrl,
  indicatorSetOf,
  resolveUrl,
  topicOf,
} from '../../src/tickhub/static/tickhub.js';

const PORT = process.env.TICKHUB_PORT;
const CONTROL = process.env.TICKHUB_CONTROL;

// --- helpers -------------------------------------------------------------------------------------

// Every client a test makes is closed at the end, even when the test failed half-way, so that
// no timer or socket keeps the process alive.
const made = new Set();
class Client extends TickhubClient {
  constructor(...args) {
    super(...args);
    made.add(this);
  }
}
after(() => {
  for (const c of made) c.close();
});

function data(symbol, seq, extra = {}) {
  return {
    type: 'data',
    symbol,
    timestamp: '2026-11-26T09:55:44.851Z',
    data_type: 'tick_data',
    seq,
    epoch: 'e1',
    interval: '1m',
    data: { price: 100 + seq },
    ...extra,
  };
}

/** The next `event` whose arguments pass `pred`, or a failure after `timeout` ms. */
function next(client, event, pred = () => true, timeout = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} event within ${timeout} ms`));
    }, timeout);
    const off = client.on(event, (...args) => {
      if (!pred(...args)) return;
      clearTimeout(timer);
      off();
      resolve(args.length > 1 ? args : args[0]);
    });
  });
}

/** A fake server and the WebSocket class that connects to it (no network). */
function fakeNetwork({ refuse = 0 } = {}) {
  const net = { sockets: [], refuse, onmessage: null };
  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      net.sockets.push(this);
      setTimeout(() => {
        if (net.refuse > 0) {
          net.refuse -= 1;
          this._closed(1006, '', false);
          return;
        }
        this.readyState = 1;
        this.onopen?.({});
        this.deliver({ type: 'connection', status: 'connected', connection_id: `c-${net.sockets.length}` });
      }, 0);
    }
    send(text) {
      if (this.readyState !== 1) throw new Error('not open');
      const msg = JSON.parse(text);
      this.sent.push(msg);
      net.onmessage?.(this, msg);
    }
    close(code = 1000, reason = '') {
      if (this.readyState >= 2) return;
      this.readyState = 2;
      setTimeout(() => this._closed(code, reason, true), 0);
    }
    // server side
    deliver(msg) {
      if (this.readyState === 1) this.onmessage?.({ data: JSON.stringify(msg) });
    }
    drop(code = 1006, reason = '') {
      this._closed(code, reason, false);
    }
    _closed(code, reason, wasClean) {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.onclose?.({ code, reason, wasClean });
    }
  }
  net.WebSocket = FakeWebSocket;
  net.last = () => net.sockets[net.sockets.length - 1];
  return net;
}

const fast = { minDelay: 1, maxDelay: 5, heartbeatInterval: 0, requestTimeout: 2000 };

// --- pure parts ----------------------------------------------------------------------------------

describe('SeqTracker', () => {
  test('consecutive messages make no gap', () => {
    const t = new SeqTracker();
    for (let seq = 1; seq <= 5; seq++) {
      const meta = t.observe(data('RELIANCE', seq));
      assert.equal(meta.gap, null);
      assert.equal(meta.stale, false);
      assert.equal(meta.topic, 'RELIANCE@1m');
    }
    assert.deepEqual(t.position('RELIANCE@1m'), { epoch: 'e1', seq: 5 });
  });

  test('a live message that skips numbers is a gap of the missing count', () => {
    const t = new SeqTracker();
    t.observe(data('RELIANCE', 10));
    const meta = t.observe(data('RELIANCE', 14));
    assert.deepEqual(meta.gap, {
      topic: 'RELIANCE@1m', symbol: 'RELIANCE', interval: '1m', epoch: 'e1', last: 10, seq: 14, missed: 3, indicators: null,
    });
    assert.equal(t.observe(data('RELIANCE', 15)).gap, null);
  });

  test('snapshot messages carry their own numbers and make no gap', () => {
    const t = new SeqTracker();
    assert.equal(t.observe(data('RELIANCE', 43, { snapshot: true })).gap, null);
    assert.equal(t.observe(data('RELIANCE', 45, { snapshot: true })).gap, null);
    assert.equal(t.observe(data('RELIANCE', 49, { snapshot: true })).gap, null);
    assert.equal(t.observe(data('RELIANCE', 50)).gap, null);
  });

  test('a message not above the last seen is stale, and changes nothing', () => {
    const t = new SeqTracker();
    t.observe(data('RELIANCE', 7));
    assert.equal(t.observe(data('RELIANCE', 7)).stale, true);
    assert.equal(t.observe(data('RELIANCE', 3, { snapshot: true })).stale, true);
    assert.equal(t.observe(data('RELIANCE', 8)).gap, null);
  });

  test('expectFresh makes the next message a reset even in the same epoch', () => {
    const t = new SeqTracker();
    t.observe(data('RELIANCE', 50));
    t.expectFresh('RELIANCE@1m');
    const meta = t.observe(data('RELIANCE', 20, { snapshot: true }));
    assert.equal(meta.reset, true);
    assert.equal(meta.stale, false);
    assert.equal(t.observe(data('RELIANCE', 21)).gap, null);
  });

  test('a new epoch resets the topic', () => {
    const t = new SeqTracker();
    t.observe(data('RELIANCE', 900));
    const meta = t.observe(data('RELIANCE', 1, { epoch: 'e2' }));
    assert.equal(meta.reset, true);
    assert.equal(meta.gap, null);
    assert.equal(meta.stale, false);
    assert.deepEqual(t.position('RELIANCE@1m'), { epoch: 'e2', seq: 1 });
  });

  test('intervals, plain symbols and the * subscription are separate topics', () => {
    const t = new SeqTracker();
    t.observe(data('RELIANCE', 1));
    assert.equal(t.observe(data('RELIANCE', 50, { interval: '5m' })).gap, null);
    const alerts = { ...data('RELIANCE', 9), interval: undefined, data_type: 'alert_data' };
    assert.equal(t.observe(alerts).topic, 'RELIANCE');
    const star = { ...data('INFY', 30), interval: undefined, subscription: '*' };
    assert.equal(t.observe(star).topic, '*');
    assert.equal(t.observe({ ...star, symbol: 'TCS', seq: 31 }).gap, null);
    assert.equal(t.observe({ ...star, symbol: 'TCS', seq: 33 }).gap.missed, 1);
    assert.equal(t.observe(data('RELIANCE', 2)).gap, null);
  });

  test('forget drops one interval or every interval of a symbol', () => {
    const t = new SeqTracker();
    t.observe(data('RELIANCE', 1));
    t.observe(data('RELIANCE', 1, { interval: '5m' }));
    t.forget('RELIANCE', '5m');
    assert.equal(t.position('RELIANCE@5m'), undefined);
    assert.notEqual(t.position('RELIANCE@1m'), undefined);
    t.forget('RELIANCE');
    assert.equal(t.position('RELIANCE@1m'), undefined);
  });

  test('an indicator set is part of the topic, from the ack or the message', () => {
    const set = ['ema:9', 'rsi:14'];
    assert.equal(topicOf({ symbol: 'RELIANCE', interval: '5m', indicators: set }), 'RELIANCE@5m[ema:9,rsi:14]');
    assert.equal(topicOf({ symbol: 'RELIANCE', interval: '5m', data: { indicators: set } }), 'RELIANCE@5m[ema:9,rsi:14]');
    assert.deepEqual(indicatorSetOf({ data: {} }), null);
    const t = new SeqTracker();
    t.observe(data('RELIANCE', 5, { interval: '5m' }));
    t.observe(data('RELIANCE', 1, { interval: '5m', data: { indicators: set } }));
    t.observe(data('RELIANCE', 1, { interval: '15m', data: { indicators: set } }));
    t.forget('RELIANCE', '5m');
    assert.deepEqual([...t.topics.keys()], ['RELIANCE@15m[ema:9,rsi:14]']);
  });

  test('topicOf names topics as the protocol does', () => {
    assert.equal(topicOf({ symbol: 'NIFTY 50', interval: '15m' }), 'NIFTY 50@15m');
    assert.equal(topicOf({ symbol: 'INFY' }), 'INFY');
    assert.equal(topicOf({ symbol: 'INFY', subscription: '*' }), '*');
    assert.equal(topicOf({ type: 'subscription', symbol: '*' }), '*');
  });
});

describe('backoffDelay', () => {
  test('grows by the factor, is capped, and the jitter stays within its fraction', () => {
    const o = { minDelay: 100, maxDelay: 1000, factor: 2, jitter: 0.5 };
    assert.equal(backoffDelay(0, o, () => 0.999999), 100);
    assert.equal(backoffDelay(0, o, () => 0), 50);
    assert.equal(backoffDelay(2, o, () => 0.999999), 400);
    assert.equal(backoffDelay(10, o, () => 0.999999), 1000);
    assert.equal(backoffDelay(10, o, () => 0), 500);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(3, o);
      assert.ok(d >= 400 && d <= 800, `delay ${d}`);
    }
  });

  test('no jitter gives the exact delay', () => {
    assert.equal(backoffDelay(3, { minDelay: 10, maxDelay: 1e6, factor: 3, jitter: 0 }), 270);
  });
});

test('resolveUrl keeps ws URLs, maps http, and refuses what it cannot place', () => {
  assert.equal(resolveUrl('ws://h:1/ws/stream'), 'ws://h:1/ws/stream');
  assert.equal(resolveUrl('https://h/ws/alerts'), 'wss://h/ws/alerts');
  assert.throws(() => resolveUrl('/ws/stream'), TypeError); // no page here to resolve against
});

// --- the client against a fake server ------------------------------------------------------------

describe('client (fake server)', () => {
  test('candlesUrl maps the WebSocket URL to GET /candles with the query', () => {
    assert.equal(
      candlesUrl('ws://h:1/ws/stream?batch=1', ' reliance ', { interval: '5m', limit: 10 }),
      'http://h:1/candles?symbol=reliance&interval=5m&limit=10',
    );
    assert.equal(
      candlesUrl('wss://h/ws/analysis', 'TCS', { from: new Date(Date.UTC(2025, 0, 27, 3, 45)), to: 1737980000 }),
      'https://h/candles?symbol=TCS&from=2025-01-27T03%3A45%3A00.000Z&to=1737980000',
    );
  });

  test('emits data with its meta, and a gap when a live message skips numbers', async () => {
    const net = fakeNetwork();
    const c = new Client('ws://fake/ws/stream', { ...fast, WebSocket: net.WebSocket }).connect();
    await next(c, 'open');
    const gaps = [];
    const metas = [];
    c.on('gap', (g) => gaps.push(g));
    c.on('data', (msg, meta) => metas.push(meta));
    const s = net.last();
    s.deliver(data('RELIANCE', 43, { snapshot: true }));
    s.deliver(data('RELIANCE', 45, { snapshot: true }));
    s.deliver(data('RELIANCE', 46));
    s.deliver(data('RELIANCE', 50));
    s.deliver(data('RELIANCE', 49));
    assert.equal(metas.length, 5);
    assert.deepEqual(metas.map((m) => m.snapshot), [true, true, false, false, false]);
    assert.equal(gaps.length, 1);
    assert.equal(gaps[0].missed, 3);
    assert.equal(metas[3].gap, gaps[0]);
    assert.equal(metas[4].stale, true);
    c.close();
  });

  test('replies are matched to requests by type; errors reject the request they answer', async () => {
    const net = fakeNetwork();
    net.onmessage = (ws, msg) => {
      setTimeout(() => {
        ws.deliver(data('RELIANCE', 1, { data_type: 'alert_data', interval: undefined, data: {} }));
        if (msg.type === 'create_alert' && msg.symbol === 'NOPE') {
          ws.deliver({ type: 'error', code: 'unknown_symbol', message: "unknown symbol: 'NOPE'", request: 'create_alert', details: { symbol: 'NOPE' } });
        } else if (msg.type === 'create_alert') {
          ws.deliver({ type: 'alert', status: 'created', alert: { id: 'a_1', symbol: msg.symbol } });
        } else if (msg.type === 'list_alerts') {
          ws.deliver({ type: 'alerts', alerts: [{ id: 'a_1' }] });
        } else if (msg.type === 'delete_alert') {
          ws.deliver({ type: 'alert', status: 'deleted', id: msg.id });
        }
      }, 0);
    };
    const c = new Client('ws://fake/ws/alerts', { ...fast, WebSocket: net.WebSocket });
    // Made before the connection is open: sent once it is.
    const created = c.createAlert({ symbol: 'RELIANCE', condition: 'above', value: 1 });
    c.connect();
    const listed = c.listAlerts();
    const refused = c.createAlert({ symbol: 'NOPE', condition: 'above', value: 1 });
    const deleted = c.deleteAlert('a_1');
    const analysis = c.createAlert({
      symbol: 'RELIANCE', condition: 'crosses_above', indicator: 'ema:9', other: 'ema:21', interval: '5m', forming: true,
    });
    assert.equal((await created).id, 'a_1');
    assert.deepEqual(await listed, [{ id: 'a_1' }]);
    await assert.rejects(refused, (err) => err instanceof TickhubError && err.code === 'unknown_symbol');
    assert.equal(await deleted, 'a_1');
    assert.equal((await analysis).id, 'a_1');
    assert.deepEqual(
      net.last().sent.map((m) => m.type),
      ['create_alert', 'list_alerts', 'create_alert', 'delete_alert', 'create_alert'],
    );
    assert.deepEqual(net.last().sent.at(-1), {
      type: 'create_alert', symbol: 'RELIANCE', condition: 'crosses_above', indicator: 'ema:9', other: 'ema:21', interval: '5m', forming: true,
    });
    c.close();
  });

  test('a request on a connection that drops is rejected; one made while down waits', async () => {
    const net = fakeNetwork();
    const c = new Client('ws://fake/ws/portfolio', { ...fast, WebSocket: net.WebSocket }).connect();
    await next(c, 'open');
    const lost = c.listPositions();
    net.last().drop(1012, 'restart');
    await assert.rejects(lost, (err) => err.code === 'connection_closed');
    const later = c.listPositions();
    await next(c, 'open');
    assert.equal(net.last().sent.at(-1).type, 'list_positions');
    net.last().deliver({ type: 'positions', positions: [], portfolio: { total_value: 0 } });
    assert.deepEqual(await later, { positions: [], portfolio: { total_value: 0 } });
    c.close();
  });

  test('resubscribes after a reconnect, with since = the last seq seen per topic', async () => {
    const net = fakeNetwork();
    net.onmessage = (ws, msg) => {
      if (msg.type !== 'subscribe') return;
      for (const symbol of msg.symbols ?? [msg.symbol]) {
        ws.deliver({
          type: 'subscription', status: 'subscribed', symbol: symbol.toUpperCase(),
          interval: msg.interval ?? '1m', ...(symbol !== symbol.toUpperCase() ? { requested: symbol } : {}),
        });
      }
    };
    const c = new Client('ws://fake/ws/stream', { ...fast, WebSocket: net.WebSocket }).connect();
    c.subscribe(['reliance', 'INFY']);
    c.subscribe('TCS', { interval: '5m' });
    await next(c, 'open');
    const first = net.last();
    assert.deepEqual(first.sent, [{ type: 'subscribe', symbols: ['reliance', 'INFY'] }, { type: 'subscribe', symbol: 'TCS', interval: '5m' }]);
    first.deliver(data('RELIANCE', 41));
    first.deliver(data('RELIANCE', 42));
    first.deliver(data('TCS', 7, { interval: '5m' }));
    const reconnecting = next(c, 'reconnecting');
    const reopened = next(c, 'open');
    first.drop(1006);
    assert.equal(c.state, 'reconnecting');
    assert.ok((await reconnecting).delay >= 0);
    assert.deepEqual(await reopened, { reconnect: true, reconnects: 1 });
    const resent = net.last().sent;
    assert.deepEqual(resent, [
      { type: 'subscribe', symbol: 'RELIANCE', since: { epoch: 'e1', seq: 42 } },
      { type: 'subscribe', symbol: 'TCS', interval: '5m', since: { epoch: 'e1', seq: 7 } },
      { type: 'subscribe', symbol: 'INFY' }, // nothing seen yet: a plain subscribe
    ]);
    c.close();
  });

  test('indicator sets: one topic per set, resumed each with its own since; a refused set is dropped', async () => {
    const net = fakeNetwork();
    const canonical = { 'RSI,ema:09': ['ema:9', 'rsi:14'], 'supertrend:10,3,ema:21': ['ema:21', 'supertrend:10,3'] };
    net.onmessage = (ws, msg) => {
      if (msg.type !== 'subscribe') return;
      if (msg.indicators?.includes('ichimoku')) {
        ws.deliver({ type: 'error', code: 'unknown_indicator', message: "unknown indicator: 'ichimoku'", details: { indicator: 'ichimoku' }, request: 'subscribe' });
        return;
      }
      const set = msg.indicators ? canonical[msg.indicators.join(',')] ?? msg.indicators : undefined;
      ws.deliver({ type: 'subscription', status: 'subscribed', symbol: msg.symbol, interval: msg.interval ?? '1m', ...(set ? { indicators: set } : {}) });
    };
    const analysis = (seq, set) => data('RELIANCE', seq, { data_type: 'technical_analysis', data: set ? { indicators: set } : {} });
    const c = new Client('ws://fake/ws/analysis', { ...fast, WebSocket: net.WebSocket }).connect();
    await next(c, 'open');
    const metas = [];
    const gaps = [];
    c.on('data', (m, meta) => metas.push(meta.topic));
    c.on('gap', (g) => gaps.push(g));
    c.subscribe('RELIANCE');
    c.subscribe('RELIANCE', { interval: '1m', indicators: ['RSI', 'ema:09'] });
    c.subscribe('RELIANCE', { interval: '1m', indicators: ['supertrend:10,3', 'ema:21'] });
    assert.deepEqual(net.last().sent.at(1), { type: 'subscribe', symbol: 'RELIANCE', interval: '1m', indicators: ['RSI', 'ema:09'] });
    const fastSet = ['ema:9', 'rsi:14'];
    const slowSet = ['ema:21', 'supertrend:10,3'];
    const first = net.last();
    first.deliver(analysis(10));
    first.deliver(analysis(3, fastSet));
    first.deliver(analysis(4, fastSet));
    first.deliver(analysis(1, slowSet));
    first.deliver(analysis(3, slowSet)); // one message of this set replaced: its own gap
    assert.deepEqual(metas, [
      'RELIANCE@1m', 'RELIANCE@1m[ema:9,rsi:14]', 'RELIANCE@1m[ema:9,rsi:14]',
      'RELIANCE@1m[ema:21,supertrend:10,3]', 'RELIANCE@1m[ema:21,supertrend:10,3]',
    ]);
    assert.deepEqual(gaps.map((g) => [g.topic, g.last, g.seq, g.indicators]), [
      ['RELIANCE@1m[ema:21,supertrend:10,3]', 1, 3, slowSet],
    ]);
    assert.deepEqual(c.subscriptions, [
      { symbol: 'RELIANCE' },
      { symbol: 'RELIANCE', interval: '1m', indicators: fastSet },
      { symbol: 'RELIANCE', interval: '1m', indicators: slowSet },
    ]);
    const refused = next(c, 'error');
    c.subscribe('RELIANCE', { interval: '1m', indicators: ['ichimoku'] });
    assert.equal((await refused).code, 'unknown_indicator');
    assert.equal(c.subscriptions.length, 3);
    const reopened = next(c, 'open');
    first.drop(1006);
    await reopened;
    assert.deepEqual(net.last().sent, [
      { type: 'subscribe', symbol: 'RELIANCE', since: { epoch: 'e1', seq: 10 } },
      { type: 'subscribe', symbol: 'RELIANCE', interval: '1m', indicators: fastSet, since: { epoch: 'e1', seq: 4 } },
      { type: 'subscribe', symbol: 'RELIANCE', interval: '1m', indicators: slowSet, since: { epoch: 'e1', seq: 3 } },
    ]);
    assert.throws(() => c.subscribe('RELIANCE', { indicators: [] }), TypeError);
    c.close();
  });

  test('unsubscribed topics are not resubscribed; refused symbols are dropped', async () => {
    const net = fakeNetwork();
    net.onmessage = (ws, msg) => {
      if (msg.type === 'subscribe' && msg.symbol === 'NOPE') {
        ws.deliver({ type: 'error', code: 'unknown_symbol', message: 'unknown symbol', symbol: 'NOPE', request: 'subscribe' });
      }
    };
    const c = new Client('ws://fake/ws/stream', { ...fast, WebSocket: net.WebSocket }).connect();
    await next(c, 'open');
    c.subscribe('RELIANCE');
    c.subscribe('INFY');
    const refused = next(c, 'error');
    c.subscribe('NOPE');
    assert.equal((await refused).code, 'unknown_symbol');
    c.unsubscribe('INFY');
    assert.deepEqual(c.subscriptions, [{ symbol: 'RELIANCE' }]);
    const reopened = next(c, 'open');
    net.last().drop(1011);
    await reopened;
    assert.deepEqual(net.last().sent, [{ type: 'subscribe', symbol: 'RELIANCE' }]);
    c.close();
  });

  test('keeps trying with backoff while the server refuses connections', async () => {
    const net = fakeNetwork({ refuse: 3 });
    const delays = [];
    const c = new Client('ws://fake/ws/stream', { ...fast, WebSocket: net.WebSocket, random: () => 0.999 });
    c.on('reconnecting', (r) => delays.push(r));
    c.connect();
    const opened = await next(c, 'open');
    assert.deepEqual(delays.map((d) => d.attempt), [1, 2, 3]);
    assert.deepEqual(delays.map((d) => d.delay), [1, 2, 4]);
    assert.equal(opened.reconnect, false); // never open before: a first connection
    assert.equal(net.sockets.length, 4);
    assert.equal(c.welcome.type, 'connection'); // the fake welcomes right after the open
    assert.equal(c.attempt, 0); // reset by the welcome
    c.close();
  });

  test('close codes 4500-4999 stop reconnecting; 4501 retries with a token function', async () => {
    const net = fakeNetwork();
    const c = new Client('ws://fake/ws/stream', { ...fast, WebSocket: net.WebSocket, token: 'k1' }).connect();
    await next(c, 'open');
    assert.deepEqual(net.last().protocols, ['tickhub', 'token.k1']);
    const closed = next(c, 'close');
    net.last().drop(4500, 'auth failed');
    assert.equal((await closed).willReconnect, false);
    assert.equal(c.state, 'closed');

    let n = 0;
    const d = new Client('ws://fake/ws/stream', { ...fast, WebSocket: net.WebSocket, token: async () => `t${++n}` }).connect();
    await next(d, 'open');
    const again = next(d, 'open');
    net.last().drop(4501, 'token expired');
    await again;
    assert.deepEqual(net.last().protocols, ['tickhub', 'token.t2']);
    d.close();
  });

  test('sends heartbeats, and drops a link that stays silent', async () => {
    const net = fakeNetwork();
    const c = new Client('ws://fake/ws/stream', {
      ...fast, WebSocket: net.WebSocket, heartbeatInterval: 20, heartbeatTimeout: 30,
    }).connect();
    await next(c, 'open');
    const first = net.last();
    const closed = await next(c, 'close', () => true, 2000);
    assert.equal(closed.reason, 'heartbeat timeout');
    assert.ok(first.sent.some((m) => m.type === 'heartbeat' && typeof m.timestamp === 'number'));
    await next(c, 'open');
    assert.equal(c.reconnects, 1);
    c.close();
  });

  test('a batch frame is unpacked into its messages, in order', async () => {
    const net = fakeNetwork();
    const c = new Client('ws://fake/ws/stream', { ...fast, WebSocket: net.WebSocket, batch: true }).connect();
    assert.equal(c.url, 'ws://fake/ws/stream?batch=1');
    await next(c, 'open');
    const seqs = [];
    const gaps = [];
    c.on('data', (m) => seqs.push(m.seq));
    c.on('gap', (g) => gaps.push(g));
    net.last().deliver({ type: 'batch', count: 3, messages: [data('RELIANCE', 1), data('RELIANCE', 2), data('RELIANCE', 4)] });
    assert.deepEqual(seqs, [1, 2, 4]);
    assert.equal(gaps.length, 1);
    c.close();
  });

  test('a refused resume (recovered: false) makes the snapshot that follows a reset', async () => {
    const net = fakeNetwork();
    const c = new Client('ws://fake/ws/portfolio', { ...fast, WebSocket: net.WebSocket }).connect();
    c.subscribe('*');
    await next(c, 'open');
    const star = (symbol, seq, extra = {}) => ({ ...data(symbol, seq), interval: undefined, subscription: '*', ...extra });
    net.last().deliver({ type: 'subscription', status: 'subscribed', symbol: '*' });
    net.last().deliver(star('INFY', 40));
    const reopened = next(c, 'open');
    net.last().drop(1006);
    await reopened;
    assert.deepEqual(net.last().sent, [{ type: 'subscribe', symbol: '*', since: { epoch: 'e1', seq: 40 } }]);
    const metas = [];
    c.on('data', (m, meta) => metas.push(meta));
    net.last().deliver({ type: 'subscription', status: 'subscribed', symbol: '*', recovered: false });
    net.last().deliver(star('INFY', 30, { snapshot: true }));
    net.last().deliver(star('TCS', 33, { snapshot: true }));
    net.last().deliver(star('TCS', 34));
    assert.deepEqual(metas.map((m) => [m.reset, m.stale, m.gap]), [[true, false, null], [false, false, null], [false, false, null]]);
    c.close();
  });

  test('close() is final: no reconnect, state closed', async () => {
    const net = fakeNetwork();
    const c = new Client('ws://fake/ws/stream', { ...fast, WebSocket: net.WebSocket }).connect();
    await next(c, 'open');
    c.close();
    assert.equal(c.state, 'closed');
    await new Promise((r) => setTimeout(r, 30)); // would be long enough for a 1-5 ms backoff
    assert.equal(net.sockets.length, 1);
  });
});

// --- the client against a real service -----------------------------------------------------------

const live = { skip: PORT ? false : 'TICKHUB_PORT not set (run through tests/e2e/test_js_client.py)' };
const url = (path) => `ws://127.0.0.1:${PORT}${path}`;

async function control(action) {
  const response = await fetch(`${CONTROL}/${action}`);
  assert.equal(response.status, 200, await response.text());
}

/** A WebSocket that records what it sends. */
function recording() {
  const sent = [];
  class Recording extends WebSocket {
    send(text) {
      sent.push(JSON.parse(text));
      super.send(text);
    }
  }
  return { sent, WebSocket: Recording };
}

describe('client (real service)', live, () => {
  test('subscribes, receives live data without gaps, snapshots on resubscribe, heartbeats', async (t) => {
    const c = new Client(url('/ws/stream'), { heartbeatInterval: 100 }).connect();
    t.after(() => c.close());
    const gaps = [];
    c.on('gap', (g) => gaps.push(g));
    c.subscribe('reliance');
    const ack = await next(c, 'subscription');
    assert.equal(ack.symbol, 'RELIANCE');
    assert.equal(ack.requested, 'reliance');
    let live = 0;
    const [last, lastMeta] = await next(c, 'data', (m, meta) => !meta.snapshot && ++live >= 10);
    assert.equal(lastMeta.topic, 'RELIANCE@1m');
    assert.equal(last.symbol, 'RELIANCE');
    // Subscribing again sends the snapshot again: old numbers, so stale, and never a gap.
    c.subscribe('RELIANCE');
    const [snap, snapMeta] = await next(c, 'data', (m, meta) => meta.snapshot);
    assert.equal(snap.symbol, 'RELIANCE');
    assert.equal(snapMeta.gap, null);
    await next(c, 'data', (m, meta) => !meta.snapshot);
    await next(c, 'heartbeat');
    assert.equal(typeof c.counters.sent, 'number');
    assert.ok((await c.ping()) >= 0);
    assert.deepEqual(gaps, []);
  });

  test('reconnects after the server drops it, resumes with since, and data continues', async (t) => {
    const rec = recording();
    const c = new Client(url('/ws/stream'), {
      WebSocket: rec.WebSocket, minDelay: 50, maxDelay: 200, heartbeatInterval: 0, connectTimeout: 2000,
    }).connect();
    t.after(() => c.close());
    c.subscribe('RELIANCE');
    const [before] = await next(c, 'data', (m, meta) => !meta.snapshot && m.data_type === 'tick_data');
    const firstId = (c.welcome ?? (await next(c, 'welcome'))).connection_id;

    const closed = next(c, 'close');
    const reopened = next(c, 'open');
    await control('drop');
    const info = await closed;
    assert.equal(info.code, 1012);
    assert.equal(info.willReconnect, true);
    const gaps = [];
    const after = []; // every data message of the new connection, with its meta
    c.on('gap', (g) => gaps.push(g));
    c.on('data', (m, meta) => after.push([m, meta]));
    assert.deepEqual(await reopened, { reconnect: true, reconnects: 1 });

    const resubscribe = rec.sent.filter((m) => m.type === 'subscribe').at(-1);
    assert.equal(resubscribe.symbol, 'RELIANCE');
    assert.equal(resubscribe.since.epoch, before.epoch);
    assert.ok(resubscribe.since.seq >= before.seq);
    const ack = await next(c, 'subscription');
    assert.equal(ack.status, 'subscribed');
    assert.notEqual(c.connectionId, firstId);
    // A server that resumes answers recovered: true and sends what was missed, numbered after
    // the resume point; one that does not, a snapshot. Either way the topic goes on in order.
    await next(c, 'data', (m, meta) => !meta.snapshot && m.seq > resubscribe.since.seq + 5);
    if (ack.recovered === true) assert.ok(after.every(([, meta]) => !meta.snapshot));
    for (const [m, meta] of after) {
      assert.equal(m.epoch, before.epoch);
      assert.equal(meta.reset, false);
      if (!meta.snapshot) assert.ok(m.seq > resubscribe.since.seq);
    }
    const live = after.filter(([, meta]) => !meta.snapshot).map(([m]) => m.seq);
    assert.deepEqual(live, [...live].sort((a, b) => a - b)); // in order, each once
    assert.equal(new Set(live).size, live.length);
    for (const g of gaps) assert.ok(g.last >= resubscribe.since.seq, JSON.stringify(g));
  });

  test('indicator sets on /ws/analysis: values per set, resumed per set after a drop', async (t) => {
    const rec = recording();
    const c = new Client(url('/ws/analysis'), {
      WebSocket: rec.WebSocket, minDelay: 50, maxDelay: 200, heartbeatInterval: 0, connectTimeout: 2000,
    }).connect();
    t.after(() => c.close());
    const sets = { fast: ['ema:9', 'rsi:14'], slow: ['ema:21', 'supertrend:10,3'] };
    const topics = ['RELIANCE@1m', 'RELIANCE@1m[ema:9,rsi:14]', 'RELIANCE@1m[ema:21,supertrend:10,3]'];
    const seen = new Map(topics.map((topic) => [topic, []]));
    const gaps = [];
    c.on('gap', (g) => gaps.push(g));
    c.on('data', (m, meta) => seen.get(meta.topic)?.push([m, meta]));
    const acks = [];
    c.on('subscription', (a) => acks.push(a));
    c.subscribe('RELIANCE');
    c.subscribe('RELIANCE', { interval: '1m', indicators: ['RSI', 'ema:09'] });
    c.subscribe('RELIANCE', { interval: '1m', indicators: ['supertrend:10,3', 'ema:21'] });
    const refused = next(c, 'error');
    c.subscribe('RELIANCE', { interval: '1m', indicators: ['ema:0'] });
    const error = await refused;
    assert.equal(error.code, 'invalid_indicator_parameter');
    assert.equal(error.details.parameter, 'period');
    const everyTopic = (n) => () => topics.every((topic) => seen.get(topic).length >= n);
    await next(c, 'data', everyTopic(2));
    assert.deepEqual(acks.map((a) => a.indicators ?? null), [null, sets.fast, sets.slow]);
    for (const [m] of seen.get(topics[1])) {
      assert.deepEqual(m.data.indicators, sets.fast);
      assert.deepEqual(Object.keys(m.data.technical_indicators).sort(), ['ema:9', 'rsi:14', 'warmup']);
    }
    for (const [m] of seen.get(topics[2])) {
      assert.deepEqual(Object.keys(m.data.technical_indicators).sort(), ['ema:21', 'supertrend:10,3', 'warmup']);
    }
    assert.ok('sma_20' in seen.get(topics[0])[0][0].data.technical_indicators);
    const before = new Map(topics.map((topic) => [topic, seen.get(topic).at(-1)[0].seq]));

    const reopened = next(c, 'open');
    await control('drop');
    await reopened;
    const resent = rec.sent.filter((m) => m.type === 'subscribe' && m.since !== undefined);
    assert.deepEqual(resent.map((m) => m.indicators ?? null), [null, sets.fast, sets.slow]);
    for (const m of resent) {
      assert.ok(m.since.seq >= before.get(topicOf({ ...m, interval: m.interval ?? '1m' })), JSON.stringify(m));
    }
    const counts = new Map(topics.map((topic) => [topic, seen.get(topic).length]));
    await next(c, 'data', () => topics.every((topic) => seen.get(topic).length >= counts.get(topic) + 2), 20000);
    for (const topic of topics) {
      const live = seen.get(topic).filter(([, meta]) => !meta.snapshot && !meta.reset).map(([m]) => m.seq);
      assert.deepEqual(live, [...live].sort((a, b) => a - b), topic); // in order, each once
      assert.equal(new Set(live).size, live.length, topic);
    }
    assert.ok(gaps.every((g) => topics.includes(g.topic)), JSON.stringify(gaps));
    assert.equal(c.subscriptions.length, 3); // the refused set is not kept
  });

  test('batched delivery is unpacked into the same messages', async (t) => {
    let batches = 0;
    class Counting extends WebSocket {
      set onmessage(handler) {
        super.onmessage = handler === null ? null : (event) => {
          if (event.data.startsWith('{"type":"batch"')) batches += 1;
          handler(event);
        };
      }
    }
    const c = new Client(url('/ws/stream'), { batch: true, heartbeatInterval: 0, WebSocket: Counting }).connect();
    t.after(() => c.close());
    assert.match(c.url, /[?&]batch=1$/);
    const gaps = [];
    c.on('gap', (g) => gaps.push(g));
    c.subscribe(['RELIANCE', 'TCS', 'INFY']);
    const seen = new Set();
    await next(c, 'data', (m, meta) => !meta.snapshot && seen.add(m.symbol) && seen.size === 3);
    let live = 0;
    await next(c, 'data', (m, meta) => !meta.snapshot && ++live >= 20);
    assert.ok(batches > 0, 'no batch frame arrived');
    assert.deepEqual(gaps, []);
  });

  test('alerts and portfolio requests resolve with their replies, errors reject', async (t) => {
    const alerts = new Client(url('/ws/alerts')).connect();
    t.after(() => alerts.close());
    alerts.subscribe('RELIANCE'); // data interleaves with the replies
    const alert = await alerts.createAlert({ symbol: 'RELIANCE', condition: 'above', value: 99999, note: 'node test' });
    assert.match(alert.id, /^a_/);
    assert.equal(alert.condition, 'above');
    assert.equal(alert.note, 'node test');
    const listed = await alerts.listAlerts('RELIANCE');
    assert.ok(listed.some((a) => a.id === alert.id));
    await assert.rejects(
      alerts.createAlert({ symbol: 'NOPE', condition: 'above', value: 1 }),
      (err) => err instanceof TickhubError && err.code === 'unknown_symbol',
    );
    await assert.rejects(alerts.deleteAlert('a_nope'), (err) => err.code === 'not_found');
    assert.equal(await alerts.deleteAlert(alert.id), alert.id);
    alerts.close();

    const portfolio = new Client(url('/ws/portfolio')).connect();
    t.after(() => portfolio.close());
    portfolio.subscribe('*');
    const [star, meta] = await next(portfolio, 'data', (m) => m.subscription === '*');
    assert.equal(meta.topic, '*');
    assert.equal(star.data_type, 'position_data');
    const saved = await portfolio.setPosition({ symbol: 'WIPRO', quantity: 10, average_price: '250.5' });
    assert.equal(saved.status, 'saved');
    assert.equal(saved.position.quantity, 10);
    const { positions, portfolio: totals } = await portfolio.listPositions();
    assert.ok(positions.some((p) => p.symbol === 'WIPRO'));
    assert.equal(typeof totals.total_value, 'number');
    assert.equal((await portfolio.removePosition('WIPRO')).status, 'removed');
    await assert.rejects(portfolio.removePosition('WIPRO'), (err) => err.code === 'not_found');
    // Trades build the position FIFO: bought 10 @ 250.5, sold 4 @ 260 -> 6 held, 38 realised.
    const bought = await portfolio.addTrade({ symbol: 'WIPRO', side: 'buy', quantity: 10, price: '250.5', id: 'js-1' });
    assert.equal(bought.status, 'added');
    assert.equal(bought.trade.id, 'js-1');
    assert.equal(bought.position.position.quantity, 10);
    const retried = await portfolio.addTrade({ symbol: 'WIPRO', side: 'buy', quantity: 10, price: '250.5', id: 'js-1' });
    assert.equal(retried.status, 'exists');
    // A Date is sent as ISO 8601: a second after the buy, which took the exchange's time (the
    // simulated session's clock, not this machine's).
    const later = new Date(Date.parse(bought.trade.time) + 1000);
    const sold = await portfolio.addTrade({ symbol: 'WIPRO', side: 'sell', quantity: 4, price: 260, time: later });
    assert.equal(sold.trade.time, later.toISOString());
    assert.equal(sold.position.position.quantity, 6);
    assert.equal(sold.position.pnl.realized, 38);
    assert.deepEqual((await portfolio.listTrades('WIPRO')).map((x) => x.side), ['buy', 'sell']);
    const deleted = await portfolio.deleteTrade(sold.trade.id);
    assert.equal(deleted.status, 'deleted');
    assert.equal(deleted.position.position.quantity, 10);
    await assert.rejects(portfolio.deleteTrade(sold.trade.id), (err) => err.code === 'not_found');
    await assert.rejects(
      portfolio.addTrade({ symbol: 'WIPRO', side: 'buy', quantity: 0, price: 1 }),
      (err) => err instanceof TickhubError && err.code === 'invalid_field',
    );
    await portfolio.deleteTrade('js-1');
    portfolio.close();
  });

  test('history() reads the closed candles the stream sent from GET /candles', async (t) => {
    const c = new Client(url('/ws/stream'), { heartbeatInterval: 0 }).connect();
    t.after(() => c.close());
    c.subscribe('SBIN');
    const [closed] = await next(c, 'data', (m) => m.data_type === 'candle_data' && m.data.closed, 20000);
    const candles = await c.history('sbin', { limit: 5000 });
    assert.ok(candles.length >= 1);
    assert.deepEqual(candles.find((x) => x.start === closed.data.start), closed.data);
    const starts = candles.map((x) => x.start);
    assert.deepEqual(starts, [...new Set(starts)].sort());
    await assert.rejects(c.history('NOPE'), (err) => err instanceof TickhubError && err.code === 'unknown_symbol');
    await assert.rejects(c.history('SBIN', { interval: '2m' }), (err) => err.code === 'invalid_parameter');
  });

  test('after a restart on the same port the new epoch resets the topic', async (t) => {
    // A connection attempt caught by the restart may hang in the handshake: retry it soon.
    const c = new Client(url('/ws/analysis'), {
      minDelay: 50, maxDelay: 300, heartbeatInterval: 0, connectTimeout: 2000,
    }).connect();
    t.after(() => c.close());
    c.subscribe('INFY');
    const [before] = await next(c, 'data', (m) => m.data_type === 'technical_analysis');
    const seen = []; // every data message from here on, with its meta
    c.on('data', (m, meta) => seen.push([m, meta]));
    const reopened = next(c, 'open', () => true, 20000);
    const acked = next(c, 'subscription', (m) => m.status === 'subscribed', 20000);
    await control('restart');
    await reopened;
    assert.equal((await acked).recovered, false); // another epoch: not resumable
    const [after] = await next(c, 'data', (m) => m.epoch !== before.epoch, 20000);
    const [first, meta] = seen.find(([m]) => m.epoch !== before.epoch);
    assert.equal(first.epoch, after.epoch);
    assert.equal(meta.reset, true);
    assert.equal(meta.topic, 'INFY@1m');
    assert.equal(meta.gap, null);
    assert.equal(c.tracker.position('INFY@1m').epoch, after.epoch);
  });
});
