"""One hub connection over an accepted WebSocket: handshake, record framing, keep-alive Pings,
the client timeout, invocation dispatch to the backend, and an outbound queue with one writer.

It needs only ``receive() -> str | bytes``, ``send(str)`` and ``close(code)`` from the socket,
so it is tested with an in-memory socket under Trio's MockClock as well as over real WebSockets.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Protocol

import trio

from ctid.errors import CtidError
from ctid.hub import protocol as p
from ctid.hub.interfaces import HUB_METHODS, HubBackend, Principal

log = logging.getLogger("ctid.hub")

_METHODS = {name.lower(): name for name in HUB_METHODS}


class Socket(Protocol):
    async def receive(self) -> str | bytes | None: ...

    async def send(self, data: str) -> None: ...

    async def close(self, code: int, reason: str = "") -> None: ...


class Settings(Protocol):
    ping_interval: float
    client_timeout: float
    handshake_timeout: float
    max_message_bytes: int
    send_queue: int


class _Closed(Exception):
    """Internal: the connection is over; unwinds the reader."""


class HubConnection:
    def __init__(
        self,
        socket: Socket,
        principal: Principal,
        connection_id: str,
        backend: HubBackend,
        settings: Settings,
        *,
        on_ready: Callable[[HubConnection], None] = lambda conn: None,
    ):
        self.socket = socket
        self.principal = principal
        self.connection_id = connection_id
        self.backend = backend
        self.settings = settings
        self.on_ready = on_ready
        self.handshake_version: int | None = None
        self._out_send, self._out_receive = trio.open_memory_channel[str | None](settings.send_queue)
        self._invocations_send, self._invocations_receive = trio.open_memory_channel[p.Message](64)
        self._buffer = p.RecordBuffer(settings.max_message_bytes)
        self._last_sent = trio.current_time()
        self._last_received = trio.current_time()
        self._timeout_armed = False
        self._closing = False
        self._wake_timer = trio.Event()
        self._cancel_scope: trio.CancelScope | None = None
        self.close_error: str | None = None

    # -- outbound --------------------------------------------------------------------------

    def send_record(self, text: str) -> bool:
        """Queue one framed record (or several) without blocking. A client that cannot keep up
        is disconnected rather than slowing down the publisher. Returns False if not queued."""
        if self._closing:
            return False
        try:
            self._out_send.send_nowait(text)
        except trio.WouldBlock:
            log.warning("hub connection %s: send queue full, disconnecting", self.connection_id)
            self.close_error = "Client too slow: send queue overflow."
            self._abort()
            return False
        self._last_sent = trio.current_time()
        return True

    def close(self, error: str | None = None, *, allow_reconnect: bool = False, message: bool = True) -> None:
        """Send Close (with ``error`` / ``allowReconnect``) after what is queued, then close the
        socket. ``message=False`` skips the Close message (the client said goodbye first)."""
        if self._closing:
            return
        self.close_error = error
        if message and self.handshake_version is not None:
            self.send_record(p.record(p.close(error, allow_reconnect=allow_reconnect)))
        self._closing = True
        try:
            self._out_send.send_nowait(None)
        except trio.WouldBlock:
            self._abort()

    def _abort(self) -> None:
        self._closing = True
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()

    async def _writer(self) -> None:
        async for item in self._out_receive:
            frame = [] if item is None else [item]
            while item is not None:  # batch what is already queued into one frame
                try:
                    item = self._out_receive.receive_nowait()
                except trio.WouldBlock:
                    break
                if item is not None:
                    frame.append(item)
            try:
                if frame:
                    await self.socket.send("".join(frame))
                if item is None:
                    await self.socket.close(1000)
            except Exception as exc:  # the peer is gone: nothing left to tell it
                log.debug("hub connection %s: send failed: %r", self.connection_id, exc)
                self._abort()
                return
            if item is None:
                self._abort()
                return

    # -- lifecycle -------------------------------------------------------------------------

    async def serve(self) -> None:
        """Run until the client leaves, breaks the protocol, times out, or the hub closes it."""
        with trio.CancelScope() as scope:
            self._cancel_scope = scope
            if self._closing:
                scope.cancel()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer)
                try:
                    await self._handshake()
                    self.on_ready(self)
                    nursery.start_soon(self._timer)
                    nursery.start_soon(self._invoker)
                    await self._read_loop()
                except _Closed:
                    pass
                except p.ProtocolError as exc:
                    log.info("hub connection %s: protocol error: %s", self.connection_id, exc)
                    self.close(str(exc))
                except Exception:  # a bug here must cost one connection, politely
                    log.exception("hub connection %s failed", self.connection_id)
                    self.close("An unexpected error occurred.")
                await trio.sleep_forever()  # the writer ends the connection after the Close

    async def _receive_text(self) -> str:
        data = await self.socket.receive()
        self._last_received = trio.current_time()
        if data is None:  # quart-trio hands over an empty binary frame as None
            return ""
        if isinstance(data, bytes):  # JSON in a binary frame: accept it as UTF-8 text
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                raise p.ProtocolError("Binary frame is not valid UTF-8 JSON.") from None
        return data

    async def _handshake(self) -> None:
        records: list[str] = []
        with trio.move_on_after(self.settings.handshake_timeout) as timeout:
            while not records:
                try:
                    records = self._buffer.feed(await self._receive_text())
                except p.ProtocolError:
                    records = []
                    break
        if timeout.cancelled_caught or not records:
            self._handshake_failed("Handshake was canceled.")
        try:
            self.handshake_version = p.parse_handshake(records[0])
        except p.ProtocolError as exc:
            self._handshake_failed(str(exc))
        self.send_record(p.HANDSHAKE_OK)
        for text in records[1:]:
            await self._handle(text)

    def _handshake_failed(self, error: str) -> None:
        log.info("hub connection %s: handshake failed: %s", self.connection_id, error)
        self.send_record(p.dumps({"error": error}) + p.RS)
        self.close(error)
        raise _Closed

    async def _read_loop(self) -> None:
        while not self._closing:
            for text in self._buffer.feed(await self._receive_text()):
                await self._handle(text)

    async def _handle(self, text: str) -> None:
        if self._closing:
            raise _Closed
        message = p.parse_message(text)
        kind = message.type
        if kind == p.PING:
            if not self._timeout_armed:
                self._timeout_armed = True
                self._wake_timer.set()
        elif kind == p.INVOCATION:
            try:
                self._invocations_send.send_nowait(message)
            except trio.WouldBlock:
                raise p.ProtocolError("Too many pending invocations.") from None
        elif kind == p.STREAM_INVOCATION:
            if message.invocation_id is not None:
                error = f"Streaming is not supported: '{message.target}' cannot be streamed."
                self.send_record(p.record(p.completion(message.invocation_id, error=error)))
        elif kind == p.CLOSE:
            self.close(message=False)
            raise _Closed
        elif kind in (p.COMPLETION, p.STREAM_ITEM, p.CANCEL_INVOCATION, p.ACK, p.SEQUENCE):
            pass  # we never call the client with an id, stream, or use stateful reconnect
        else:
            raise p.ProtocolError(f"Unknown message type: {kind}")

    # -- timers ----------------------------------------------------------------------------

    async def _timer(self) -> None:
        """Ping after ``ping_interval`` without sending; drop the client after ``client_timeout``
        without receiving, counted only once the client has sent its first Ping (as ASP.NET)."""
        interval, timeout = self.settings.ping_interval, self.settings.client_timeout
        while True:
            now = trio.current_time()
            deadline = self._last_received + timeout if self._timeout_armed else math.inf
            if now >= deadline:
                self.close("Server timeout elapsed without receiving a message from the client.")
                return
            if now >= self._last_sent + interval:
                self.send_record(p.PING_RECORD)
            self._wake_timer = trio.Event()
            with trio.move_on_at(min(self._last_sent + interval, deadline)):
                await self._wake_timer.wait()

    # -- invocations -----------------------------------------------------------------------

    async def _invoker(self) -> None:
        """Invocations run one at a time, in order (ASP.NET's default), while the reader goes on
        reading Pings."""
        async for message in self._invocations_receive:
            result = await self._invoke(message)
            if message.invocation_id is not None and result is not None:
                self.send_record(result)

    async def _invoke(self, message: p.Message) -> str | None:
        invocation_id, target = message.invocation_id, message.target
        if message.raw.get("streamIds"):
            return p.record(p.completion(invocation_id or "", error="Client streaming is not supported."))
        method = _METHODS.get(target.lower())
        if method is None:
            return p.record(p.completion(invocation_id or "", error=f"Unknown hub method '{target}'"))
        try:
            result = await self.backend.invoke(self.principal, method, list(message.arguments))
            return p.record(p.completion(invocation_id or "", result=result))
        except CtidError as exc:
            return p.record(p.completion(invocation_id or "", error=f"{exc.error_id}: {exc}"))
        except Exception:
            log.exception("hub method %s failed (connection %s)", method, self.connection_id)
            error = f"internal: An unexpected error occurred invoking '{method}' on the server."
            return p.record(p.completion(invocation_id or "", error=error))

    def __repr__(self) -> str:  # never includes tokens or headers
        return f"<HubConnection {self.connection_id} {self.principal.subject}>"

