// The official @microsoft/signalr client against a real `ctid serve` (run by
// tests/core/test_official_js_daemon.py). Usage: node daemon_client.mjs <hub url> <token>
// Prints one JSON object per line; reads commands from stdin: "invoke <callId>", "stop".
import * as readline from "node:readline";
import * as signalR from "@microsoft/signalr";

const [url, token] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify({ ...obj, at: Date.now() }) + "\n");
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const watchdog = setTimeout(() => { out({ event: "timeout" }); process.exit(2); }, 60000);

try {
  const conn = new signalR.HubConnectionBuilder()
    .withUrl(url, { accessTokenFactory: () => token })
    .withAutomaticReconnect([0, 250, 500, 1000, 1000, 1000, 2000, 2000, 2000, 2000])
    .configureLogging(signalR.LogLevel.None)
    .build();
  conn.on("callUpdated", (call) => out({ event: "callUpdated", call }));
  conn.on("agentUpdated", (agent) => out({ event: "agentUpdated", agent }));
  conn.on("taskUpdated", (task) => out({ event: "taskUpdated", task }));
  conn.onreconnecting((error) => out({ event: "reconnecting", error: String(error) }));
  conn.onreconnected((connectionId) => out({ event: "reconnected", connectionId }));
  await conn.start();
  out({ event: "started", connectionId: conn.connectionId });

  for (;;) {
    const line = (await lines.next()).value;
    if (line === undefined || line === "stop") break;
    const [verb, ...args] = line.split(" ");
    if (verb === "invoke") {
      const [method, ...rest] = args;
      try {
        const result = await conn.invoke(method, ...rest);
        out({ event: "invoked", method, result: result === undefined ? null : result });
      } catch (error) {
        out({ event: "invoked", method, error: String(error.message) });
      }
    }
  }
  await conn.stop();
  out({ event: "done" });
  clearTimeout(watchdog);
  process.exit(0);
} catch (error) {
  out({ event: "error", error: String((error && error.stack) || error) });
  process.exit(1);
}
