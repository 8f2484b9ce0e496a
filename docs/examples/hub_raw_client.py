"""A ctid hub client written from the wire protocol alone (docs/hub-protocol.md), with no SignalR
library: negotiate with httpx, then the JSON hub protocol over a trio-websocket connection.

    pip install httpx trio trio-websocket
    python hub_raw_client.py http://127.0.0.1:8080/hub "$CTID_TOKEN" [--max-events N]

Prints the Snapshot, then one line per callUpdated / agentUpdated / taskUpdated event.
"""

from __future__ import annotations

import argparse
import json
from urllib.parse import quote

import httpx
import trio
from trio_websocket import open_websocket_url

RS = "\x1e"  # every message ends with the ASCII record separator


def frame(message: dict) -> str:
    return json.dumps(message) + RS


async def main(url: str, token: str, max_events: int | None) -> None:
    # 1. negotiate: which transport, and a connection token any ctid instance accepts
    async with httpx.AsyncClient() as http:
        reply = await http.post(f"{url}/negotiate?negotiateVersion=1", headers={"Authorization": f"Bearer {token}"})
    reply.raise_for_status()
    negotiated = reply.json()
    if "error" in negotiated:
        raise SystemExit(f"negotiate refused: {negotiated['error']}")

    # 2. WebSocket to the same URL with ?id=<connectionToken>; the token as header (or ?access_token=)
    ws_url = url.replace("http", "ws", 1) + "?id=" + quote(negotiated["connectionToken"])
    async with open_websocket_url(ws_url, extra_headers=[(b"Authorization", f"Bearer {token}".encode())]) as ws:
        # 3. handshake: {"protocol":"json","version":1}<RS>, answered by {}<RS> (or {"error":...})
        await ws.send_message(frame({"protocol": "json", "version": 1}))
        buffer = ""
        while RS not in buffer:
            buffer += await ws.get_message()
        handshake, buffer = buffer.split(RS, 1)
        if json.loads(handshake).get("error"):
            raise SystemExit(f"handshake refused: {handshake}")

        # 4. an Invocation with an invocationId gets a Completion (type 3) with the same id
        await ws.send_message(frame({"type": 1, "invocationId": "0", "target": "Snapshot", "arguments": []}))

        async def keep_alive() -> None:  # a Ping at least every 15 s tells the server we are alive
            while True:
                await trio.sleep(15)
                await ws.send_message(frame({"type": 6}))

        seen = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_alive)
            while True:
                # 5. a frame may carry several messages, and a message may span frames
                *records, buffer = (buffer + await ws.get_message()).split(RS)
                for record in records:
                    message = json.loads(record)
                    kind = message["type"]
                    if kind == 3 and message["invocationId"] == "0":
                        if "error" in message:
                            raise SystemExit(f"Snapshot failed: {message['error']}")
                        print("snapshot", json.dumps(message.get("result")), flush=True)
                    elif kind == 1:  # callUpdated / agentUpdated / taskUpdated, one argument
                        print(message["target"], json.dumps(message["arguments"][0]), flush=True)
                        seen += 1
                        if max_events is not None and seen >= max_events:
                            await ws.send_message(frame({"type": 7}))  # polite goodbye
                            nursery.cancel_scope.cancel()
                    elif kind == 7:  # the server closes; allowReconnect says whether to come back
                        print("closed", json.dumps(message), flush=True)
                        nursery.cancel_scope.cancel()
                    # type 6 (Ping) needs no answer


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--max-events", type=int, default=None)
    args = parser.parse_args()
    trio.run(main, args.url.rstrip("/"), args.token, args.max_events)
