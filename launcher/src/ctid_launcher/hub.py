"""A small client of ctid's hub (ASP.NET Core SignalR, JSON protocol, over trio-websocket):
negotiate, handshake, pings, and the server's events. docs/hub-protocol.md is the wire contract.

The launcher keeps its own copy (rather than importing ``ctid.hub.client``) so that it installs on
an operator's PC without the server's dependencies.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import trio
import trio_websocket

RS = "\x1e"
INVOCATION, COMPLETION, PING, CLOSE = 1, 3, 6, 7


class HubDown(Exception):
    """The hub could not be reached or the connection ended."""


class HubAuthError(HubDown):
    """The hub refused the token (HTTP 401): sign in again or refresh the token."""


def _ws_url(url: str, connection_token: str | None) -> str:
    parts = urlsplit(url)
    query = urlencode({"id": connection_token}) if connection_token else ""
    return urlunsplit(({"https": "wss"}.get(parts.scheme, "ws"), parts.netloc, parts.path, query, ""))


class Hub:
    """An open hub connection: ``events()`` yields ``(target, arguments)`` until it ends."""

    def __init__(self, ws: trio_websocket.WebSocketConnection, ping_interval: float, server_timeout: float):
        self._ws = ws
        self._ping_interval, self._server_timeout = ping_interval, server_timeout
        self._tail = ""
        self._last_received = trio.current_time()
        self._ids = 0
        self._send_events, self._events = trio.open_memory_channel[tuple[str, list[Any]]](1000)

    async def _send(self, message: dict[str, Any]) -> None:
        await self._ws.send_message(json.dumps(message, separators=(",", ":")) + RS)

    def _records(self, data: str | bytes) -> list[dict[str, Any]]:
        """The complete records in ``data`` (a partial one waits for the next frame); HubDown for a
        frame that is not the SignalR JSON protocol."""
        try:
            text = self._tail + (data if isinstance(data, str) else data.decode())
            *records, self._tail = text.split(RS)
            messages = [json.loads(r) for r in records if r]
        except ValueError as exc:  # bad UTF-8 or JSON
            raise HubDown(f"the hub sent a malformed frame: {exc}") from exc
        return [m for m in messages if isinstance(m, dict)]

    async def _handshake(self) -> None:
        await self._ws.send_message(json.dumps({"protocol": "json", "version": 1}) + RS)
        records: list[dict[str, Any]] = []
        while not records:
            records = self._records(await self._ws.get_message())
        if records[0].get("error"):
            raise HubDown(f"handshake refused: {records[0]['error']}")
        for message in records[1:]:
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") == INVOCATION:
            target, arguments = message.get("target"), message.get("arguments")
            if not isinstance(target, str) or not isinstance(arguments, list):
                return
            try:
                self._send_events.send_nowait((target, arguments))
            except trio.WouldBlock:
                pass  # the launcher reads as fast as they come; a burst beyond 1000 is dropped
        elif message.get("type") == CLOSE:
            raise HubDown(f"the hub closed the connection: {message.get('error') or 'no reason'}")

    async def _reader(self) -> None:
        try:
            while True:
                data = await self._ws.get_message()
                self._last_received = trio.current_time()
                for message in self._records(data):
                    self._dispatch(message)
        except trio_websocket.ConnectionClosed as exc:
            raise HubDown("the hub connection was lost") from exc
        finally:
            self._send_events.close()

    async def _keepalive(self) -> None:
        while True:
            await trio.sleep(self._ping_interval)
            if trio.current_time() - self._last_received > self._server_timeout:
                raise HubDown(f"no message from the hub for {self._server_timeout:.0f} s")
            try:
                await self._send({"type": PING})
            except trio_websocket.ConnectionClosed as exc:
                raise HubDown("the hub connection was lost") from exc

    def events(self) -> AsyncIterator[tuple[str, list[Any]]]:
        return self._events


def leaves(group: BaseExceptionGroup) -> list[BaseException]:
    """The exceptions in ``group`` and its nested groups."""
    found: list[BaseException] = []
    pending = [group]
    while pending:
        for exc in pending.pop().exceptions:
            (pending if isinstance(exc, BaseExceptionGroup) else found).append(exc)
    return found


@asynccontextmanager
async def _nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery whose one real error comes out as itself (not in an ExceptionGroup). Several (the
    reader and the caller both saw the connection go) stay a group: see ``leaves``."""
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except BaseExceptionGroup as group:
        real = [exc for exc in leaves(group) if not isinstance(exc, trio.Cancelled)]
        if len(real) == 1:
            raise real[0] from None
        raise


async def negotiate(url: str, token: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(url.rstrip("/") + "/negotiate?negotiateVersion=1",
                                       headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise HubDown(f"negotiate failed: {exc}") from exc
    if response.status_code == 401:
        raise HubAuthError("the hub refused the access token")
    if response.status_code != 200:
        raise HubDown(f"negotiate failed: HTTP {response.status_code}")
    return response.json()


@asynccontextmanager
async def connect(url: str, token: str, *, ping_interval: float = 15.0,
                  server_timeout: float = 30.0) -> AsyncIterator[Hub]:
    """Connect to ``{server}/hub``; the connection ends (HubDown) when the hub goes away."""
    answer = await negotiate(url, token)
    ws_url = _ws_url(url, answer.get("connectionToken") or answer.get("connectionId"))
    try:
        async with trio_websocket.open_websocket_url(
            ws_url, extra_headers=[(b"Authorization", f"Bearer {token}".encode())], connect_timeout=10,
        ) as ws:
            hub = Hub(ws, ping_interval, server_timeout)
            with trio.fail_after(10):
                await hub._handshake()
            async with _nursery() as nursery:
                nursery.start_soon(hub._reader)
                nursery.start_soon(hub._keepalive)
                yield hub
                nursery.cancel_scope.cancel()
    except trio_websocket.ConnectionRejected as exc:
        if exc.status_code == 401:
            raise HubAuthError("the hub refused the access token") from exc
        raise HubDown(f"the hub refused the WebSocket: HTTP {exc.status_code}") from exc
    except (trio_websocket.HandshakeError, trio.TooSlowError, OSError) as exc:
        raise HubDown(f"cannot connect to the hub: {exc}") from exc
