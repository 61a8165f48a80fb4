// Plain WebSocket client on Debian's node `ws` package, driven by test_node_ws.py.
// Usage: node plain_client.js <ws base url> <examples ws base url>
// (prints one JSON line of results, exits 0; 1 on failure)
"use strict";
const WebSocket = require("ws");

const base = process.argv[2];
const examplesBase = process.argv[3];
const deadline = setTimeout(() => { console.error("timed out"); process.exit(1); }, 15000);

function open(path, root = base) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(root + path);
    const inbox = [];
    const waiters = [];
    ws.on("message", (data, isBinary) => {
      const item = isBinary ? { binary: [...data] } : JSON.parse(data.toString());
      const waiter = waiters.shift();
      if (waiter) waiter(item); else inbox.push(item);
    });
    ws.next = () => new Promise((res) => { const item = inbox.shift(); if (item !== undefined) res(item); else waiters.push(res); });
    ws.on("open", () => resolve(ws));
    ws.on("unexpected-response", (req, res) => {
      let body = "";
      res.on("data", (c) => { body += c; });
      res.on("end", () => reject(new Error(`HTTP ${res.statusCode} ${body}`)));
    });
    ws.on("error", reject);
  });
}

(async () => {
  const results = {};
  const greet = await open("/greet/nodeuser", examplesBase);
  greet.send(JSON.stringify({ name: "Alice" }));
  results.greeting = await greet.next();
  greet.send("{broken");
  results.greetingError = await greet.next();
  greet.close();

  const a = await open("/chat/node-room?user=a");
  results.aJoined = await a.next();
  const b = await open("/chat/node-room?user=b");
  results.bJoinedAtB = await b.next();
  results.bJoinedAtA = await a.next();
  b.send(JSON.stringify({ body: "hi from node" }));
  results.messageAtA = await a.next();
  results.messageAtB = await b.next();
  b.close();
  results.bLeftAtA = await a.next();
  a.close();

  try {
    await open("/ws/forbidden:topic");
    results.refused = "not refused";
  } catch (error) {
    results.refused = error.message;
  }
  console.log(JSON.stringify(results));
  clearTimeout(deadline);
  process.exit(0);
})().catch((error) => { console.error(error); process.exit(1); });
