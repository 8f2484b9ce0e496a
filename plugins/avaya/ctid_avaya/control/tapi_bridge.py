"""``ctid avaya tapi-bridge``: the TAPI engine on a Windows host, served to ctid over HTTP.

``POST /v1/{dial,hold,unhold,transfer,hangup}`` with a JSON body (extension, number / remote,
target) and ``GET /v1/health``, all behind ``Authorization: Bearer <token>``. A PBX refusal is 409
``{"error": "pbx_refused", "message": ...}``; bad input 400; a wrong token 401.
"""

from __future__ import annotations

import json
import logging

import trio

from ctid.asgi import lifespan, read_body, respond
from ctid.errors import CtidError
from ctid.secret import secrets_equal
from ctid_avaya.control.tapi import TapiEngine

log = logging.getLogger(__name__)

COMMANDS = {
    "dial": ("extension", "number"),
    "hold": ("extension",),
    "unhold": ("extension",),
    "transfer": ("extension", "target"),
    "hangup": ("extension",),
}


def make_app(engine: TapiEngine, token: str):
    """A small ASGI application (no framework needed for six routes)."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        status, answer = await _handle(engine, token, scope, await read_body(receive))
        data = json.dumps(answer).encode()
        await respond(send, status, {"content-type": "application/json", "content-length": str(len(data))}, data)

    return app


async def _handle(engine: TapiEngine, token: str, scope, body: bytes) -> tuple[int, dict]:
    headers = dict(scope.get("headers") or [])
    given = headers.get(b"authorization", b"").decode("latin-1")
    if not secrets_equal(given, f"Bearer {token}"):
        return 401, {"error": "unauthorized", "message": "bad or missing bearer token"}
    path = scope.get("path", "")
    if scope.get("method") == "GET" and path == "/v1/health":
        ready = engine.started.is_set()
        return (200 if ready else 503), {"ok": ready, "lines": len(engine.lines)}
    command = path.removeprefix("/v1/")
    if scope.get("method") != "POST" or command not in COMMANDS:
        return 404, {"error": "not_found", "message": f"no route {scope.get('method')} {path}"}
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return 400, {"error": "bad_json", "message": "the body is not JSON"}
    if not isinstance(data, dict):
        return 400, {"error": "bad_json", "message": "the body must be an object"}
    for name in COMMANDS[command]:
        if not isinstance(data.get(name), str) or not data[name]:
            return 400, {"error": "bad_request", "message": f"'{name}' is required"}
    remote = data.get("remote") if isinstance(data.get("remote"), str) else None
    try:
        if command == "dial":
            await engine.dial(data["extension"], data["number"])
        elif command == "transfer":
            await engine.transfer(data["extension"], remote, data["target"])
        else:
            await getattr(engine, command)(data["extension"], remote)
    except CtidError as exc:
        return exc.status, {"error": exc.error_id, "message": str(exc)}
    return 200, {"status": "ok"}


async def serve(engine: TapiEngine, host: str, port: int, token: str, *,
                task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run the engine and the HTTP server until cancelled."""
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        urls = await nursery.start(hypercorn_serve, make_app(engine, token), config)
        task_status.started(urls)
