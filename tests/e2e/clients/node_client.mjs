// Runs one scripted session of session.mjs under Node and prints its reports as JSON lines.
//
//   node --experimental-websocket node_client.mjs builtin <scenario> <url>   Node's WebSocket
//   node node_client.mjs ws <scenario> <url>                                  npm `ws` (tests/package.json)

import { run } from "./session.mjs";

const [client, scenario, url] = process.argv.slice(2);

async function webSocketOf(name) {
  if (name === "builtin") {
    if (typeof globalThis.WebSocket !== "function") throw new Error("node has no global WebSocket");
    return globalThis.WebSocket;
  }
  if (name === "ws") return (await import("ws")).WebSocket;
  throw new Error(`unknown client: ${name}`);
}

const report = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
await run(await webSocketOf(client), scenario, url, report);
