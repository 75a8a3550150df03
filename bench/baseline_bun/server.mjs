// The Bun broadcaster: an optional baseline of bench/run.py (Bun from npm, `bun` package).
//
//   bun bench/baseline_bun/server.mjs --symbols 50 [--port 0]
//
// Same wire shape as tickhub's /ws/stream. Fan-out is Bun's own pub/sub (uWebSockets topics):
// each client subscribes its sockets to topics, and every tick is one server.publish(topic,
// message), which frames the message once for all subscribers. uWebSockets may coalesce several
// messages to one socket into one write within a loop iteration: in a burst (`rate R K`) the K
// publishes of a frame run back to back in one loop turn. backpressureLimit = 1 MiB:
// past it a subscriber's messages are dropped (closeOnBackpressureLimit off).
import { FFIType, dlopen, ptr } from 'bun:ffi';
import {
  OUTBOX_BYTES, Pacer, Ticker, ack, announce, heartbeatAck, hrtimeUs, parseArgs, parseBurst,
  parseRate, serveCommands, setClockOffsetUs, welcome,
} from '../baseline_node_ws/common.mjs';

// Bun's hrtime counts from process start: offset it to CLOCK_MONOTONIC (read once through libc).
{
  const libc = dlopen('libc.so.6', {
    clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  });
  const ts = new BigInt64Array(2);
  const before = hrtimeUs();
  libc.symbols.clock_gettime(1 /* CLOCK_MONOTONIC */, ptr(ts));
  const after = hrtimeUs();
  setClockOffsetUs(ts[0] * 1000000n + ts[1] / 1000n - (before + after) / 2n);
  libc.close();
}

const args = parseArgs(process.argv.slice(2));
const ticker = new Ticker(args.symbols);
const counts = ticker.names.map(() => 0); // subscribers per topic
const sockets = new Set();
let clients = 0;
let ids = 0;
let delivered = 0;
let dropped = 0;
let server;

function emit() {
  const [i, payload] = ticker.nextMessage();
  if (counts[i] === 0) return;
  const sent = server.publish(ticker.names[i], payload);
  if (sent !== 0) delivered += counts[i];
  else dropped += counts[i];
}

const pacer = new Pacer(emit, () => ticker.tickClock());
server = Bun.serve({
  hostname: '127.0.0.1',
  port: args.port,
  fetch(req, srv) {
    if (srv.upgrade(req, { data: { topics: new Set(), sent: 0 } })) return undefined;
    return new Response('websocket only', { status: 400 });
  },
  websocket: {
    perMessageDeflate: false,
    sendPings: false,
    idleTimeout: 960,
    backpressureLimit: OUTBOX_BYTES,
    closeOnBackpressureLimit: false,
    maxPayloadLength: 1 << 20,
    open(ws) {
      clients++;
      sockets.add(ws);
      ws.send(welcome(++ids));
      ws.data.sent++;
    },
    message(ws, data) {
      if (typeof data !== 'string') return;
      let msg;
      try {
        msg = JSON.parse(data);
      } catch {
        return;
      }
      if (msg.type === 'subscribe') {
        for (const name of msg.symbols || [msg.symbol]) {
          const t = ticker.index.get(name);
          if (t === undefined) continue;
          if (!ws.data.topics.has(t)) {
            ws.subscribe(name);
            ws.data.topics.add(t);
            counts[t]++;
          }
          ws.send(ack(name));
          ws.data.sent++;
        }
      } else if (msg.type === 'heartbeat') {
        ws.send(heartbeatAck(ws.data.sent));
        ws.data.sent++;
      } else if (msg.type === 'ping') {
        ws.send(JSON.stringify({ type: 'pong', timestamp: new Date().toISOString() }));
      }
    },
    close(ws) {
      sockets.delete(ws);
      for (const t of ws.data.topics) counts[t]--;
      clients--;
    },
  },
});

announce('READY', { port: server.port, pid: process.pid, server: 'bun' });
serveCommands(
  {
    rate: (w) => {
      const burst = parseBurst(w);
      pacer.setRate(parseRate(w[0]), burst);
      return ['OK', { rate: w[0], burst }];
    },
    stats: () => [
      'STATS',
      {
        ticks: pacer.emitted,
        frames: pacer.frames,
        shed: pacer.shed,
        delivered,
        dropped,
        connections: clients,
        paused: [...sockets].filter((ws) => ws.getBufferedAmount() > OUTBOX_BYTES / 2).length,
      },
    ],
  },
  () => {
    pacer.stop();
    server.stop(true);
    process.exit(0);
  },
);
