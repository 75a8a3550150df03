// The Node `ws` broadcaster: a baseline of bench/run.py.
//
//   node bench/baseline_node_ws/server.mjs --symbols 50 [--port 0] [--cork 1]
//
// Same wire shape as tickhub's /ws/stream (welcome, one `subscription` ack per symbol, heartbeat
// acks, tick_data messages with a per-topic seq and the publish stamp in last_quantity). Per tick
// it builds one message, frames it once with ws's Sender.frame, and writes the same Buffer to
// every subscriber's socket (ws._socket.write); a socket with more than 1 MiB buffered is
// skipped (counted as dropped). Speaks the control channel of bench/control.py.
//
// --cork 1 (the node-ws-cork variant): per burst (one frame of K ticks, `rate R K`), the first
// write to a socket in the burst calls socket.cork(), and right after the burst's last message
// every corked socket is uncorked once, so each socket gets the burst's messages in one writev:
// the best a Node user would write. Same messages, same framing, same skip rule.
import { Sender, WebSocketServer } from 'ws';
import {
  OUTBOX_BYTES, Pacer, Ticker, ack, announce, heartbeatAck, parseArgs, parseBurst, parseRate,
  serveCommands, welcome,
} from './common.mjs';

const args = parseArgs(process.argv.slice(2));
const cork = args.cork === 1;
const name = cork ? 'node-ws-cork' : 'node-ws';
const ticker = new Ticker(args.symbols);
const topics = ticker.names.map(() => new Set());
let clients = 0;
let ids = 0;
let delivered = 0;
let dropped = 0;
const corked = []; // clients whose socket is corked in the current burst
const FRAME_OPTIONS = { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false };

function emit() {
  const [i, payload] = ticker.nextMessage();
  const frame = Buffer.concat(Sender.frame(Buffer.from(payload), FRAME_OPTIONS));
  for (const client of topics[i]) {
    const sock = client.sock;
    if (sock.writableLength > OUTBOX_BYTES) {
      dropped++;
      continue;
    }
    if (cork && !client.corked) {
      sock.cork();
      client.corked = true;
      corked.push(client);
    }
    sock.write(frame);
    delivered++;
  }
}

// After each burst (node-ws-cork): one uncork per socket written to in it.
function uncorkAll() {
  for (const client of corked) {
    client.corked = false;
    client.sock.uncork();
  }
  corked.length = 0;
}

const pacer = new Pacer(emit, () => ticker.tickClock(), cork ? uncorkAll : undefined);
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: args.port,
  perMessageDeflate: false,
  clientTracking: false,
  maxPayload: 1 << 20,
});

wss.on('connection', (ws) => {
  const client = { ws, sock: ws._socket, topics: new Set(), sent: 0, corked: false };
  clients++;
  const reply = (text) => {
    ws.send(text);
    client.sent++;
  };
  reply(welcome(++ids));
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    let msg;
    try {
      msg = JSON.parse(data.toString());
    } catch {
      return;
    }
    if (msg.type === 'subscribe') {
      for (const name of msg.symbols || [msg.symbol]) {
        const t = ticker.index.get(name);
        if (t === undefined) continue;
        topics[t].add(client);
        client.topics.add(t);
        reply(ack(name));
      }
    } else if (msg.type === 'heartbeat') {
      reply(heartbeatAck(client.sent));
    } else if (msg.type === 'ping') {
      reply(JSON.stringify({ type: 'pong', timestamp: new Date().toISOString() }));
    }
  });
  ws.on('close', () => {
    for (const t of client.topics) topics[t].delete(client);
    clients--;
  });
  ws.on('error', () => {});
});

wss.on('listening', () => {
  announce('READY', { port: wss.address().port, pid: process.pid, server: name });
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
          paused: [...new Set(topics.flatMap((t) => [...t]))].filter(
            (c) => c.sock.writableLength > OUTBOX_BYTES,
          ).length,
        },
      ],
    },
    () => {
      pacer.stop();
      process.exit(0);
    },
  );
});
