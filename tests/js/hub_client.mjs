// Drives ctid's hub with the official @microsoft/signalr client (run by tests/hub/test_js_client.py).
// Usage: node hub_client.mjs <hub url> <token>
// Writes one JSON object per line to stdout; reads one command per line from stdin
// ("publish-done", "restart-done", "stop") so the Python test can act between the steps.
import * as readline from "node:readline";
import * as signalR from "@microsoft/signalr";

const [url, token] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify({ ...obj, at: Date.now() }) + "\n");
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const command = async () => (await lines.next()).value;
const watchdog = setTimeout(() => { out({ event: "timeout" }); process.exit(2); }, 20000);

function waitFor(predicate) {
  return new Promise((resolve) => {
    const check = setInterval(() => { if (predicate()) { clearInterval(check); resolve(); } }, 5);
  });
}

try {
  const received = [];
  const negotiated = new signalR.HubConnectionBuilder()
    .withUrl(url, { accessTokenFactory: () => token })
    .withAutomaticReconnect([0, 200, 500])
    .configureLogging(signalR.LogLevel.Error)
    .build();
  negotiated.on("callupdated", (call) => { received.push(["negotiated", call.id]); out({ event: "callUpdated", conn: "negotiated", call }); });
  negotiated.onreconnecting((error) => out({ event: "reconnecting", error: String(error) }));
  let reconnected = false;
  negotiated.onreconnected((connectionId) => { reconnected = true; out({ event: "reconnected", connectionId }); });
  await negotiated.start();
  out({ event: "started", conn: "negotiated", connectionId: negotiated.connectionId });

  const direct = new signalR.HubConnectionBuilder()
    .withUrl(url, { accessTokenFactory: () => token, skipNegotiation: true, transport: signalR.HttpTransportType.WebSockets })
    .configureLogging(signalR.LogLevel.Error)
    .build();
  direct.on("callUpdated", (call) => { received.push(["direct", call.id]); out({ event: "callUpdated", conn: "direct", call }); });
  await direct.start();
  out({ event: "started", conn: "direct", connectionId: direct.connectionId });

  const invoke = async (conn, method, ...args) => {
    try {
      const result = await conn.invoke(method, ...args);
      out({ event: "invoked", method, result: result === undefined ? null : result });
      return result;
    } catch (error) {
      out({ event: "invoked", method, error: String(error.message) });
      return undefined;
    }
  };
  await invoke(negotiated, "SetStatus", "available");
  const dialed = await invoke(negotiated, "Dial", "+74951234567");
  await invoke(negotiated, "Hold", dialed.call_id);
  await invoke(negotiated, "Unhold", dialed.call_id);
  await invoke(direct, "Transfer", dialed.call_id, "alice");
  await invoke(direct, "Snapshot");
  await invoke(direct, "Hangup", dialed.call_id);
  await invoke(direct, "Hangup", "no-such-call");
  await invoke(direct, "LaunchRockets");
  await negotiated.send("SetStatus", "away");
  await invoke(negotiated, "Snapshot"); // ordered after the send

  out({ event: "ready" });
  if (await command() !== "publish-done") throw new Error("expected publish-done");
  await waitFor(() => received.length >= 2);

  out({ event: "ready-for-restart" });
  if (await command() !== "restart-done") throw new Error("expected restart-done");
  await waitFor(() => reconnected && negotiated.state === signalR.HubConnectionState.Connected);
  out({ event: "after-restart", state: negotiated.state, direct: direct.state });
  if (await command() !== "publish-done") throw new Error("expected publish-done");
  await waitFor(() => received.some(([conn, id]) => conn === "negotiated" && id === "after-restart"));

  if (await command() !== "stop") throw new Error("expected stop");
  await negotiated.stop();
  await direct.stop();
  out({ event: "done" });
  clearTimeout(watchdog);
  process.exit(0);
} catch (error) {
  out({ event: "error", error: String(error && error.stack || error) });
  process.exit(1);
}
