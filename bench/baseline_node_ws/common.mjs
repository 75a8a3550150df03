// What the JS broadcasters share: the universe, the message, the pacer and the control channel.
// Mirrors bench/benchfeed.py, bench/pacer.py and bench/control.py (see their docstrings).
import readline from 'node:readline';

export const OUTBOX_BYTES = 1 << 20; // tickhub's default OUTBOX_BYTES: past it a client is skipped
const EPOCH = '0badcafe';
const STEPS = 21;
const MARKET_START_MS = Date.UTC(2025, 0, 27, 4, 30); // 10:00 IST
const PERIOD_MS = 1;
const SLICE_MS = 2;
const MAX_LAG_S = 0.05;

const round = (x, d) => Math.round(x * 10 ** d) / 10 ** d;
export const symbol = (i) => `SYM${String(i).padStart(4, '0')}`;
export const basePrice = (i) => round(100.0 + ((i * 7919) % 3900) + 0.05 * (i % 20), 2);
// The publish stamp: CLOCK_MONOTONIC microseconds, as Python's time.monotonic_ns() and the load
// client read it. Node's hrtime is CLOCK_MONOTONIC; a runtime whose hrtime starts elsewhere (Bun:
// at process start) sets the offset once with setClockOffsetUs.
let clockOffsetUs = 0n;
export const setClockOffsetUs = (us) => {
  clockOffsetUs = us;
};
export const hrtimeUs = () => process.hrtime.bigint() / 1000n;
export const nowUs = () => Number(process.hrtime.bigint() / 1000n + clockOffsetUs);
const monoMs = () => Number(process.hrtime.bigint()) / 1e6;

export function parseArgs(argv) {
  const out = { port: 0, symbols: 50 };
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = Number(argv[i + 1]);
  return out;
}

// The tick_data messages of one universe, numbered per topic, same shape as tickhub's.
export class Ticker {
  constructor(count) {
    this.names = Array.from({ length: count }, (_, i) => symbol(i));
    this.index = new Map(this.names.map((n, i) => [n, i]));
    this.seq = new Array(count).fill(0);
    this.volume = new Array(count).fill(0);
    this.bases = this.names.map((_, i) => basePrice(i));
    this.parts = this.bases.map((base) =>
      Array.from({ length: STEPS }, (_, k) => {
        const p = round(base + 0.05 * (k - Math.floor(STEPS / 2)), 2);
        const change = round(p - base, 4);
        return [
          `"price":${p},`,
          `,"change":${change},"change_percent":${round((change * 100.0) / base, 2)},` +
            `"open":${base},"high":${round(base * 1.01, 2)},"low":${round(base * 0.99, 2)},` +
            `"prev_close":${base}`,
        ];
      }),
    );
    this.next = 0;
    this.round = 0;
    this.t0 = monoMs();
    this.ts = new Date(MARKET_START_MS).toISOString();
  }

  tickClock() {
    this.ts = new Date(MARKET_START_MS + (monoMs() - this.t0)).toISOString();
  }

  // Returns [topic index, payload string] of the next tick, round robin over the universe.
  nextMessage() {
    const i = this.next;
    const seq = ++this.seq[i];
    const vol = (this.volume[i] += 25);
    const [head, tail] = this.parts[i][this.round % STEPS];
    const ts = this.ts;
    const payload =
      `{"type":"data","symbol":"${this.names[i]}","timestamp":"${ts}","data_type":"tick_data",` +
      `"seq":${seq},"epoch":"${EPOCH}","interval":"1m","data":{${head}"volume":${vol}${tail},` +
      `"last_quantity":${nowUs()},"average_price":${this.bases[i]},"buy_quantity":250000,` +
      `"sell_quantity":240000,"exchange_timestamp":"${ts}"}}`;
    if (++this.next === this.names.length) {
      this.next = 0;
      this.round++;
    }
    return [i, payload];
  }
}

// Credit-based pacing: see bench/pacer.py. In a burst (burst = K > 1) items come in frames of K at
// rate / K frames per second, the K of a frame emitted back to back in one callback (one loop
// turn), then onFrame; credit, shedding and the time slice count frames, emitted and shed items.
export class Pacer {
  constructor(emit, onBatch, onFrame) {
    this.emit = emit;
    this.onBatch = onBatch;
    this.onFrame = onFrame;
    this.rate = 0;
    this.burst = 1;
    this.emitted = 0;
    this.frames = 0;
    this.shed = 0;
    this.credit = 0;
    this.last = 0;
    this.timer = null;
    this.immediate = null;
  }

  setRate(rate, burst = 1) {
    this.stop();
    this.rate = rate;
    this.burst = Math.max(1, Math.floor(burst));
    this.credit = 0;
    this.last = monoMs();
    if (rate > 0) this.immediate = setImmediate(() => this.fire());
  }

  stop() {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = this.immediate = null;
  }

  fire() {
    this.timer = this.immediate = null;
    const now = monoMs();
    const k = this.burst;
    let credit;
    if (this.rate === Infinity) {
      credit = Infinity;
    } else {
      const framesPerS = this.rate / k;
      credit = this.credit + ((now - this.last) / 1000) * framesPerS;
      const cap = Math.max(1, framesPerS * MAX_LAG_S);
      if (credit > cap) {
        this.shed += Math.floor(credit - cap) * k;
        credit = cap;
      }
    }
    this.last = now;
    if (credit >= 1) this.onBatch();
    const deadline = now + SLICE_MS;
    const onFrame = this.onFrame;
    let n = 0; // frames
    if (k === 1 && !onFrame) {
      while (credit >= 1) {
        this.emit();
        credit -= 1;
        n++;
        if ((n & 7) === 0 && monoMs() >= deadline) break;
      }
    } else {
      const stride = Math.max(1, Math.floor(8 / k)); // the clock about every 8 items
      while (credit >= 1) {
        for (let j = 0; j < k; j++) this.emit();
        if (onFrame) onFrame();
        credit -= 1;
        n++;
        if (n % stride === 0 && monoMs() >= deadline) break;
      }
    }
    this.emitted += n * k;
    this.frames += n;
    this.credit = credit === Infinity ? 0 : credit;
    if (credit >= 1) this.immediate = setImmediate(() => this.fire());
    else this.timer = setTimeout(() => this.fire(), PERIOD_MS);
  }
}

export function announce(kind, fields) {
  process.stdout.write(`${kind} ${JSON.stringify(fields)}\n`);
}

// Answer control commands on stdin; `quit` or end of input calls onQuit.
export function serveCommands(handlers, onQuit) {
  const rl = readline.createInterface({ input: process.stdin });
  let done = false;
  const quit = () => {
    if (!done) {
      done = true;
      onQuit();
    }
  };
  rl.on('line', (line) => {
    const words = line.trim().split(/\s+/);
    if (!words[0]) return;
    if (words[0] === 'quit') return quit();
    const handler = handlers[words[0]];
    if (!handler) return announce('ERROR', { message: `unknown command: ${words[0]}` });
    const [kind, body] = handler(words.slice(1));
    announce(kind, body);
  });
  rl.on('close', quit);
}

export const parseRate = (word) => (word === 'max' ? Infinity : Number(word));
// The burst of a `rate` command's words ([rate, K]): 1 when not given (see bench/control.py).
export const parseBurst = (words) =>
  words.length > 1 ? Math.max(1, Math.floor(Number(words[1]))) : 1;

export function welcome(id) {
  return JSON.stringify({
    type: 'connection',
    status: 'connected',
    timestamp: new Date().toISOString(),
    message: 'WebSocket connection established successfully',
    endpoint: '/ws/stream',
    connection_id: `${process.pid.toString(16)}-${id}`,
    protocol_version: 1,
  });
}

export const ack = (name) =>
  JSON.stringify({
    type: 'subscription',
    status: 'subscribed',
    symbol: name,
    timestamp: new Date().toISOString(),
    interval: '1m',
  });

export const heartbeatAck = (sent) =>
  JSON.stringify({
    type: 'heartbeat',
    status: 'ack',
    timestamp: new Date().toISOString(),
    sent,
    dropped: 0,
    conflated: 0,
  });
