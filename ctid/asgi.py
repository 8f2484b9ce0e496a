"""The ASGI plumbing of small HTTP apps that need no framework: fake upstream servers in tests and a
plugin's own little service (the Avaya TAPI bridge), so each writes only what it answers::

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        body = await read_body(receive)
        await respond(send, 200, {"content-type": "text/plain"}, b"ok")

Serve such an app with hypercorn (``hypercorn.trio.serve``; in tests :func:`ctid.testing.fakes.serve`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


async def lifespan(receive: Any, send: Any) -> None:
    """Answer the ASGI lifespan protocol (startup, then shutdown) and return at shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive: Any) -> bytes:
    """The whole body of the HTTP request (every ``http.request`` message until the last)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def respond(send: Any, status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Send a whole HTTP response: ``status``, ``headers`` (names and values as text) and ``body``."""
    await send({"type": "http.response.start", "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in headers.items()]})
    await send({"type": "http.response.body", "body": body})
