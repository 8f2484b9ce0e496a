"""A small SignalR JSON-protocol client on trio-websocket, for tests, ``ctid watch`` and the launcher.

    async with open_hub("http://127.0.0.1:8080/hub", token) as hub:
        hub.on("callUpdated", lambda call: print(call["id"], call["state"]))
        snapshot = await hub.invoke("Snapshot")
        async for target, arguments in hub.messages():
            ...

``negotiate`` (POST ``{url}/negotiate?negotiateVersion=1``) is done with httpx unless
``skip_negotiation``; the token goes in ``Authorization: Bearer``.
"""

from __future__ import annotations

import inspect
import itertools
import json
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import trio
import trio_websocket

from ctid.errors import AuthError, CtidError
from ctid.hub import protocol as p


class HubError(CtidError):
    """The server answered an invocation with an error; ``error_id`` is the part before ':'."""

    error_id = "hub_error"
    status = 400

    def __init__(self, message: str):
        error_id, sep, _rest = message.partition(":")
        super().__init__(message, error_id=error_id if sep and error_id.isidentifier() else None)


class HubConnectionError(CtidError):
    """The hub could not be reached, refused the connection, or the connection was lost."""

    error_id = "hub_unavailable"
    status = 502


class HubClosed(HubConnectionError):
    """The server closed the connection (``error`` / ``allow_reconnect`` from its Close message)."""

    def __init__(self, error: str | None = None, allow_reconnect: bool = False, *, lost: bool = False):
        if lost:
            super().__init__(f"connection to the hub lost: {error}" if error else "connection to the hub lost")
        else:
            super().__init__(f"hub closed the connection: {error}" if error else "hub closed the connection")
        self.error = error
        self.allow_reconnect = allow_reconnect
        #: True when the connection dropped without a Close message (network, server timeout)
        self.lost = lost


def _ws_url(url: str, query: dict[str, str]) -> str:
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    existing = parts.query + ("&" if parts.query and query else "")
    return urlunsplit((scheme, parts.netloc, parts.path, existing + urlencode(query), ""))


async def negotiate(
    url: str, token: str, *, http_timeout: float = 10.0, http: httpx.AsyncClient | None = None
) -> dict[str, Any]:
    """POST ``{url}/negotiate?negotiateVersion=1``; return the negotiate response. Pass ``http``
    to reuse a client (building one loads the CA store, tens of milliseconds)."""
    parts = urlsplit(url)
    query = (parts.query + "&" if parts.query else "") + "negotiateVersion=1"
    negotiate_url = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/negotiate", query, ""))
    headers = {"Authorization": f"Bearer {token}"}
    try:
        if http is not None:
            response = await http.post(negotiate_url, headers=headers, timeout=http_timeout)
        else:
            # plain http needs no CA store; https verifies certificates as usual
            async with httpx.AsyncClient(timeout=http_timeout, verify=parts.scheme == "https") as own:
                response = await own.post(negotiate_url, headers=headers)
    except httpx.HTTPError as exc:
        raise HubConnectionError(f"negotiate failed: {exc}") from exc
    if response.status_code == 401:
        raise AuthError("the hub refused the access token")
    if response.status_code != 200:
        raise HubConnectionError(f"negotiate failed: HTTP {response.status_code}")
    body = response.json()
    if "error" in body:
        raise HubConnectionError(f"negotiate failed: {body['error']}")
    return body


class HubClient:
    """A connected hub client; create it with :func:`open_hub`.

    Events go to the handlers registered with :meth:`on` and into the :meth:`messages` queue;
    a program that only uses handlers never drains that queue, so it holds at most ``BUFFER``
    unread events; later ones skip the queue (handlers still run) and are counted in ``dropped``.
    """

    BUFFER = 1000

    def __init__(self, ws: trio_websocket.WebSocketConnection, *, ping_interval: float, server_timeout: float):
        self._ws = ws
        self._ping_interval = ping_interval
        self._server_timeout = server_timeout
        self._ids = itertools.count()
        self._pending: dict[str, tuple[trio.Event, list[Any]]] = {}
        self._handlers: dict[str, list[Callable[..., Any]]] = {}
        self._events_send, self._events_receive = trio.open_memory_channel[tuple[str, list[Any]]](self.BUFFER)
        #: server invocations not queued for messages() because nobody was reading (see BUFFER)
        self.dropped = 0
        self._last_sent = trio.current_time()
        self._last_received = trio.current_time()
        self._buffer = p.RecordBuffer(16 * 1024 * 1024)
        self._wake = trio.Event()
        self.connection_id: str | None = None
        self.closed: HubClosed | None = None

    def on(self, target: str, handler: Callable[..., Any]) -> None:
        """Call ``handler(*arguments)`` (sync or async) for server invocations of ``target``
        (matched case-insensitively, as the JS client does)."""
        self._handlers.setdefault(target.lower(), []).append(handler)

    def messages(self) -> AsyncIterator[tuple[str, list[Any]]]:
        """Every server invocation as ``(target, arguments)``, until the connection ends
        (``async for target, arguments in hub.messages(): ...``)."""
        return self._events_receive

    async def next_message(self) -> tuple[str, list[Any]]:
        """The next server invocation; raises HubClosed once the connection has ended."""
        try:
            return await self._events_receive.receive()
        except trio.EndOfChannel:
            raise self.closed or HubClosed() from None

    async def _send(self, message: dict[str, Any]) -> None:
        self._last_sent = trio.current_time()
        try:
            await self._ws.send_message(p.record(message))
        except trio_websocket.ConnectionClosed as exc:
            raise self.closed or HubConnectionError("connection lost") from exc

    async def invoke(self, method: str, *args: Any) -> Any:
        """Call a hub method and wait for its Completion; raises HubError for an error result."""
        invocation_id = str(next(self._ids))
        done, slot = trio.Event(), []
        self._pending[invocation_id] = (done, slot)
        try:
            await self._send(p.invocation(method, list(args), invocation_id))
            await done.wait()
        finally:
            self._pending.pop(invocation_id, None)
        message = slot[0]
        if isinstance(message, CtidError):
            raise message
        if "error" in message:
            raise HubError(message["error"])
        return message.get("result")

    async def send(self, method: str, *args: Any) -> None:
        """Call a hub method without waiting (no invocation id, no Completion)."""
        await self._send(p.invocation(method, list(args)))

    async def _handshake(self) -> None:
        await self._ws.send_message(p.dumps({"protocol": "json", "version": 1}) + p.RS)
        records: list[str] = []
        while not records:
            data = await self._ws.get_message()
            records = self._buffer.feed(data if isinstance(data, str) else data.decode())
        answer = json.loads(records[0])
        if answer.get("error"):
            raise HubConnectionError(f"handshake refused: {answer['error']}")
        await self._dispatch(records[1:])

    async def _reader(self) -> None:
        try:
            while True:
                data = await self._ws.get_message()
                self._last_received = trio.current_time()
                await self._dispatch(self._buffer.feed(data if isinstance(data, str) else data.decode()))
        except trio_websocket.ConnectionClosed:
            if self.closed is None:
                self.closed = HubClosed(lost=True)
        finally:
            self._finish()

    async def _dispatch(self, records: list[str]) -> None:
        for text in records:
            message = json.loads(text)
            kind = message.get("type")
            if kind == p.COMPLETION and message.get("invocationId") in self._pending:
                done, slot = self._pending[message["invocationId"]]
                slot.append(message)
                done.set()
            elif kind == p.INVOCATION:
                target, arguments = message.get("target", ""), message.get("arguments", [])
                try:
                    self._events_send.send_nowait((target, arguments))
                except trio.WouldBlock:
                    self.dropped += 1
                for handler in self._handlers.get(target.lower(), []):
                    result = handler(*arguments)
                    if inspect.isawaitable(result):
                        await result
            elif kind == p.CLOSE:
                self.closed = HubClosed(message.get("error"), bool(message.get("allowReconnect")))
                await self._ws.aclose()

    def _finish(self) -> None:
        self._events_send.close()
        for done, slot in self._pending.values():
            slot.append(self.closed or HubConnectionError("connection lost"))
            done.set()
        self._wake.set()

    async def _keepalive(self) -> None:
        while True:
            if trio.current_time() - self._last_received > self._server_timeout:
                self.closed = HubClosed("Server timeout elapsed without receiving a message from the server.", lost=True)
                await self._ws.aclose()
                return
            if trio.current_time() - self._last_sent >= self._ping_interval:
                try:
                    await self._send({"type": p.PING})
                except HubConnectionError:
                    return  # the reader reports why the connection ended
            await trio.sleep_until(min(self._last_sent + self._ping_interval,
                                       self._last_received + self._server_timeout + 0.001))

    async def wait_closed(self) -> HubClosed:
        """Wait until the connection ends; return why."""
        await self._wake.wait()
        return self.closed or HubClosed()


@asynccontextmanager
async def _unwrapping_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery whose single real error is raised as itself, not inside an ExceptionGroup, so a
    caller's ``except HubError`` works around ``async with open_hub(...)``."""
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except BaseExceptionGroup as group:
        leaves: list[BaseException] = []
        pending = [group]
        while pending:
            for exc in pending.pop().exceptions:
                (pending if isinstance(exc, BaseExceptionGroup) else leaves).append(exc)
        real = [exc for exc in leaves if not isinstance(exc, trio.Cancelled)]
        if len(real) == 1:
            raise real[0] from None
        raise


@asynccontextmanager
async def open_websocket(
    url: str, headers: list[tuple[str, str]], *, connect_timeout: float = 10.0
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A trio-websocket client connection that closes its TCP stream on every path (including a
    refused upgrade, where ``trio_websocket.open_websocket_url`` leaks the socket)."""
    parts = urlsplit(url)
    tls = parts.scheme == "wss"
    port = parts.port or (443 if tls else 80)
    host = parts.hostname or "127.0.0.1"
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        with trio.fail_after(connect_timeout):
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
    except (OSError, trio.TooSlowError) as exc:
        raise HubConnectionError(f"cannot connect to {host}:{port}: {exc}") from exc
    async with stream:
        if tls:
            stream = trio.SSLStream(stream, ssl.create_default_context(), server_hostname=host, https_compatible=True)
        async with _unwrapping_nursery() as nursery:
            with trio.fail_after(connect_timeout):
                ws = await trio_websocket.wrap_client_stream(
                    nursery,
                    stream,
                    host if port in (80, 443) else f"{host}:{port}",
                    resource,
                    extra_headers=[(k.encode(), v.encode()) for k, v in headers],
                )
            try:
                yield ws
            finally:
                with trio.move_on_after(2) as cleanup:
                    cleanup.shield = True
                    await ws.aclose()
                nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_hub(
    url: str,
    token: str,
    *,
    skip_negotiation: bool = False,
    ping_interval: float = 15.0,
    server_timeout: float = 30.0,
    connect_timeout: float = 10.0,
    http: httpx.AsyncClient | None = None,
) -> AsyncIterator[HubClient]:
    """Connect to the hub at ``url`` (``http(s)://host:port/hub``) with an access token."""
    query: dict[str, str] = {}
    connection_id = None
    if not skip_negotiation:
        answer = await negotiate(url, token, http_timeout=connect_timeout, http=http)
        query["id"] = answer.get("connectionToken") or answer["connectionId"]
        connection_id = answer["connectionId"]
    headers = [("Authorization", f"Bearer {token}")]
    try:
        async with open_websocket(_ws_url(url, query), headers, connect_timeout=connect_timeout) as ws:
            client = HubClient(ws, ping_interval=ping_interval, server_timeout=server_timeout)
            client.connection_id = connection_id
            with trio.fail_after(connect_timeout):
                await client._handshake()
            async with _unwrapping_nursery() as nursery:
                nursery.start_soon(client._reader)
                nursery.start_soon(client._keepalive)
                try:
                    yield client
                finally:
                    if client.closed is None:
                        with trio.move_on_after(2) as cleanup:
                            cleanup.shield = True
                            try:
                                await ws.send_message(p.record({"type": p.CLOSE}))
                            except trio_websocket.ConnectionClosed:
                                pass
                    nursery.cancel_scope.cancel()
    except trio_websocket.ConnectionRejected as exc:
        if exc.status_code == 401:
            raise AuthError("the hub refused the access token") from exc
        raise HubConnectionError(f"the hub refused the WebSocket: HTTP {exc.status_code}") from exc
    except (trio_websocket.HandshakeError, trio.TooSlowError) as exc:
        raise HubConnectionError(f"cannot connect to the hub: {exc}") from exc
