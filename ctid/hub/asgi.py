"""The hub's WebSocket served straight from ASGI, in front of the Quart app: ``GET /hub`` upgrades.

Through Quart, every open hub connection also holds Quart's websocket object with its header
multidict, a websocket context, a memory channel and two more tasks, and every frame in or out
passes through them: a third of an idle connection's memory, and a share of the CPU that
20,000 connections' keep-alive traffic costs (bench/README.md, Connections). A hub connection
needs none of it. :class:`HubFastPath` admits and serves the WebSocket at the hub's path with the
same checks and the same answers as the Quart route (:meth:`Hub._websocket`, which stays for apps
that mount the hub without this wrapper), and hands everything else to the app unchanged:
negotiate and other HTTP requests, other WebSocket paths, a query string that is not UTF-8.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl

import werkzeug.urls  # noqa: F401  # registers the "werkzeug.url_quote" codec error handler Quart's args use

from ctid.hub.connection import Disconnected, HubConnection
from ctid.hub.hub import Hub
from ctid.hub.protocol import ProtocolError
from ctid.web.serving import TOO_LARGE

log = logging.getLogger("ctid.hub")


class AsgiSocket:
    """An accepted-or-not ASGI WebSocket, as :class:`HubConnection` uses a socket (and as
    quart-trio's websocket behaves): text or bytes in, text out, close with a code."""

    __slots__ = ("_receive", "_send", "accepted", "closed", "gone")

    def __init__(self, receive: Any, send: Any):
        self._receive = receive
        self._send = send
        self.accepted = False
        self.closed = False
        self.gone = False  # the client disconnected

    async def accept(self) -> None:
        if not self.accepted:
            self.accepted = True
            await self._send({"type": "websocket.accept", "headers": [], "subprotocol": None})

    async def receive(self) -> str | bytes | None:
        while True:
            event = await self._receive()
            kind = event["type"]
            if kind == "websocket.receive":
                if event.get(TOO_LARGE):  # ctid.web.serving.BoundedWebsocketBuffer: answered, then closed
                    raise ProtocolError(f"Message exceeds the maximum size ({event[TOO_LARGE]} bytes).")
                return event.get("bytes") or event.get("text")  # as Quart: an empty binary frame is None
            if kind == "websocket.disconnect":
                self.gone = True
                raise Disconnected
            # websocket.connect: nothing to do (the hub accepts once it has admitted the client)

    async def send(self, data: str) -> None:
        await self._send({"type": "websocket.send", "bytes": None, "text": data})

    async def close(self, code: int, reason: str = "") -> None:
        if self.closed:
            raise RuntimeError("Cannot close websocket multiple times")
        await self._send({"type": "websocket.close", "code": code, "reason": reason})
        self.closed = True


class HubFastPath:
    """ASGI app: WebSocket upgrades at ``hub.path`` served here, everything else by ``app``.
    Without a hub (``None``) or before ``hub.mount``, it passes everything through."""

    def __init__(self, app: Any, hub: Hub | None):
        self.app = app
        self.hub = hub

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        hub = self.hub
        if (hub is None or scope["type"] != "websocket" or scope["path"] != hub.path
                or scope.get("root_path")):
            await self.app(scope, receive, send)
            return
        try:
            query = scope.get("query_string", b"").decode()
        except UnicodeDecodeError:  # Quart answers that one
            await self.app(scope, receive, send)
            return
        args: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True, errors="werkzeug.url_quote"):
            args.setdefault(key, value)  # the first value, as MultiDict.get
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name.lower() == b"authorization":
                headers["Authorization"] = value.decode("latin-1")
                break  # the first one, as Headers.get
        socket = AsgiSocket(receive, send)
        try:
            admitted = await hub.admit(headers, args, socket)
        except Exception:  # as the app's error handler: logged, a JSON 500
            log.exception("unexpected error on WebSocket %s", scope["path"])
            admitted = {"error": "internal", "message": "internal error; see the server log"}, 500
        if not isinstance(admitted, HubConnection):
            await self._refuse(scope, send, *admitted)
            return
        await hub.serve_connection(admitted, socket.accept)
        if socket.accepted and not socket.closed and not socket.gone:  # as Quart when a handler returns
            await socket.close(1000)  # (Quart's handler is cancelled when the client disconnects)

    @staticmethod
    async def _refuse(scope: dict, send: Any, body: dict[str, str], status: int) -> None:
        """An HTTP answer instead of the upgrade, as Quart sends a handler's ``(dict, status)``."""
        if "websocket.http.response" not in (scope.get("extensions") or {}):
            await send({"type": "websocket.close", "code": 1000})  # the server answers 403
            return
        data = (json.dumps(body, separators=(",", ":"), sort_keys=True) + "\n").encode()  # as Quart's JSON provider
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": data, "more_body": False})
