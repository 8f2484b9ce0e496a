"""The peer of the screen-pop benchmark: what a team would build instead on a mainstream Python
realtime stack. A minimal python-socketio server (ASGI, under uvicorn with uvloop/httptools) that
takes the same MegaFon pushes at ``POST /hooks/mf``, checks the ``crm_token``, maps the PBX user to
an agent and emits ``callUpdated`` to that agent's room. Socket.IO clients connect with
``auth={"token": <agent key>}``; an unknown token is refused. Nothing is persisted.

    python bench/peer.py --port 8090 --agents 50
"""

from __future__ import annotations

import argparse
import hmac
import json
import sys
from pathlib import Path
from urllib.parse import parse_qsl

import socketio
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CRM_TOKEN, agent_ids, agent_key, login_of  # noqa: E402

STATES = {"INCOMING": "ringing", "ACCEPTED": "talking", "COMPLETED": "ended", "CANCELLED": "ended"}


def build_app(agents: int) -> socketio.ASGIApp:
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[])
    agent_of_token = {agent_key(a): a for a in agent_ids(agents)}
    agent_of_login = {login_of(a): a for a in agent_ids(agents)}
    token = CRM_TOKEN.encode()

    @sio.event
    async def connect(sid, environ, auth):
        agent = agent_of_token.get((auth or {}).get("token", ""))
        if agent is None:
            raise socketio.exceptions.ConnectionRefusedError("unauthorized")
        await sio.enter_room(sid, f"agent:{agent}")

    async def webhook(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        fields = dict(parse_qsl(body.decode()))
        status, answer = 200, {}
        if not hmac.compare_digest(fields.get("crm_token", "").encode(), token):
            status, answer = 401, {"error": "Invalid token"}
        elif fields.get("cmd") == "event":
            agent = agent_of_login.get(fields.get("user", ""))
            if agent is not None:
                call = {"id": fields["callid"], "pbx_call_id": fields["callid"], "agent": agent,
                        "state": STATES.get(fields.get("type", ""), "ringing"),
                        "remote_number": "+" + fields.get("phone", ""), "direction": "inbound"}
                await sio.emit("callUpdated", call, room=f"agent:{agent}")
        payload = json.dumps(answer).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})

    async def other(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "http" and scope["path"].startswith("/hooks/"):
            return await webhook(scope, receive, send)
        if scope["type"] == "http" and scope["path"] == "/healthz":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return socketio.ASGIApp(sio, other_asgi_app=other)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--agents", type=int, default=50)
    args = parser.parse_args()
    uvicorn.run(build_app(args.agents), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False, backlog=4096)


if __name__ == "__main__":
    main()
