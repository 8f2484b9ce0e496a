// A minimal agent panel on the official ASP.NET Core SignalR client, talking to ctid's hub.
//
//   npm install @microsoft/signalr
//   node hub_panel.js http://127.0.0.1:8080/hub "$CTID_TOKEN" [maxEvents]
//
// The same code runs in a browser (load @microsoft/signalr's browser bundle; the token then
// travels as ?access_token= on the WebSocket, which ctid accepts).
const signalR = require("@microsoft/signalr");

const [url, token, maxEvents] = process.argv.slice(2);
let seen = 0;

const connection = new signalR.HubConnectionBuilder()
  .withUrl(url, { accessTokenFactory: () => token })
  .withAutomaticReconnect() // ctid sends Close{allowReconnect:true} when it restarts
  .configureLogging(signalR.LogLevel.Warning)
  .build();

function show(kind) {
  return async (item) => {
    console.log(kind, JSON.stringify(item));
    seen += 1;
    if (maxEvents && seen >= Number(maxEvents)) await connection.stop();
  };
}

connection.on("callUpdated", show("callUpdated")); // screen pop: state "ringing"
connection.on("agentUpdated", show("agentUpdated"));
connection.on("taskUpdated", show("taskUpdated"));

async function rebuild() {
  // After a (re)connect, Snapshot returns the current calls, agents and open tasks.
  const snapshot = await connection.invoke("Snapshot");
  console.log("snapshot", JSON.stringify(snapshot));
}
connection.onreconnected(rebuild);

(async () => {
  try {
    await connection.start();
    await rebuild();
  } catch (error) {
    console.error(`cannot connect: ${error.message}`);
    process.exit(1);
  }
})();
