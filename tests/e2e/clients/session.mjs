// The scripted sessions of the real-client matrix (tests/e2e/clients/test_matrix.py), written once
// against the WHATWG WebSocket interface, so that the same code runs on Node's built-in
// WebSocket, on the npm `ws` package and in Chromium. Nothing here is specific to tickhub's own
// JavaScript client: it is what a user of each of those WebSockets would write.
//
// `run(WebSocketImpl, scenario, url, report)` reports plain objects (the test reads them as JSON
// lines from Node, through an exposed function from the page):
//   {event: "step", step}                   a step of the script passed
//   {event: "ready"}                        (shutdown) subscribed and receiving data
//   {event: "closed", code, reason, clean, errors, rateLimited}
//                                           the close as the WebSocket reported it to its user
//   {event: "failed", step, detail}         a step did not happen in time

const STEP_TIMEOUT_MS = 10_000;
const FLOOD_MESSAGES = 3000;
// Padded (an unknown field, ignored) so that the flood outlasts the socket buffers: the server's
// close comes while this client is still sending.
const FLOOD_PING = JSON.stringify({ type: "ping", timestamp: 1, padding: "x".repeat(1000) });

class StepFailed extends Error {
  constructor(step, detail) {
    super(`${step}: ${detail}`);
    this.step = step;
    this.detail = detail;
  }
}

function open(WebSocketImpl, url) {
  const ws = new WebSocketImpl(url);
  const inbox = [];
  const errors = [];
  let wake = () => {};
  let closedAs = null;
  const opened = new Promise((resolve) => ws.addEventListener("open", resolve, { once: true }));
  const closed = new Promise((resolve) => {
    ws.addEventListener("close", (event) => {
      closedAs = { code: event.code, reason: event.reason, clean: event.wasClean };
      resolve(closedAs);
      wake();
    });
  });
  ws.addEventListener("error", (event) => {
    errors.push(String(event.message ?? event.error?.message ?? event.type));
  });
  ws.addEventListener("message", (event) => {
    inbox.push(JSON.parse(String(event.data)));
    wake();
  });

  async function waitFor(step, predicate, timeoutMs = STEP_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = inbox.findIndex(predicate);
      if (index >= 0) return inbox.splice(0, index + 1).at(-1);
      if (closedAs !== null) {
        throw new StepFailed(step, `closed first: ${JSON.stringify(closedAs)}; errors ${errors}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new StepFailed(step, `nothing matching in ${timeoutMs} ms; last ${JSON.stringify(inbox.slice(-2))}`);
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  async function closedWithin(step, timeoutMs = STEP_TIMEOUT_MS) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new StepFailed(step, `no close in ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  return { ws, inbox, errors, opened, waitFor, closedWithin };
}

const is = (type, fields = {}) => (m) =>
  m.type === type && Object.entries(fields).every(([k, v]) => m[k] === v);

async function welcome(conn, report) {
  await conn.opened;
  await conn.waitFor("welcome", is("connection", { status: "connected", endpoint: "/ws/stream" }));
  report({ event: "step", step: "welcome" });
}

async function subscribe(conn, report) {
  conn.ws.send(JSON.stringify({ type: "subscribe", symbol: "RELIANCE" }));
  await conn.waitFor("subscribed", is("subscription", { status: "subscribed", symbol: "RELIANCE" }));
  report({ event: "step", step: "subscribed" });
  await conn.waitFor("data", is("data", { symbol: "RELIANCE" }));
  report({ event: "step", step: "data" });
}

const scenarios = {
  // The whole session, then a close with 1000.
  async session(conn, report) {
    await welcome(conn, report);
    await subscribe(conn, report);
    conn.ws.send(JSON.stringify({ type: "heartbeat" }));
    await conn.waitFor("heartbeat", is("heartbeat", { status: "ack" }));
    report({ event: "step", step: "heartbeat" });
    conn.ws.send(JSON.stringify({ type: "ping", timestamp: 12345.5 }));
    await conn.waitFor("pong", is("pong", { client_timestamp: 12345.5 }));
    report({ event: "step", step: "pong" });
    conn.ws.send("this is not json");
    await conn.waitFor("invalid_json", is("error", { code: "invalid_json", message: "Invalid JSON format" }));
    report({ event: "step", step: "invalid_json" });
    conn.ws.send(JSON.stringify({ type: "ping", timestamp: "after-error" }));
    await conn.waitFor("pong_after_error", is("pong", { client_timestamp: "after-error" }));
    report({ event: "step", step: "pong_after_error" });
    conn.ws.close(1000, "done");
  },

  // close() with no status code, as browsers' close() and the seed's React hook send it.
  async close_without_status(conn, report) {
    await welcome(conn, report);
    conn.ws.close();
  },

  // Thousands of pings sent without waiting for anything; the server closes for the rate.
  async flood(conn, report) {
    await welcome(conn, report);
    for (let i = 0; i < FLOOD_MESSAGES; i += 1) conn.ws.send(FLOOD_PING);
    report({ event: "step", step: "flooded" });
  },

  // Receiving data when the service stops.
  async shutdown(conn, report) {
    await welcome(conn, report);
    await subscribe(conn, report);
    report({ event: "ready" });
  },
};

export async function run(WebSocketImpl, scenario, url, report) {
  const script = scenarios[scenario];
  if (script === undefined) throw new Error(`unknown scenario: ${scenario}`);
  const conn = open(WebSocketImpl, url);
  try {
    await script(conn, report);
    const closed = await conn.closedWithin("closed");
    const rateLimited = conn.inbox.filter(is("error", { code: "rate_limited" })).length;
    report({ event: "closed", ...closed, errors: conn.errors, rateLimited });
  } catch (error) {
    if (!(error instanceof StepFailed)) throw error;
    report({ event: "failed", step: error.step, detail: error.detail });
    conn.ws.close();
  }
}
