"""How ctid runs hypercorn: :func:`serve` is ``hypercorn.trio.serve`` with a cheaper keep-alive timer.

hypercorn's connection handler (``hypercorn.trio.tcp_server.TCPServer``) keeps its keep-alive
timeout as a task: every request that begins cancels it, and every response that ends starts a new
one (``Nursery.start``, a lock, a cancel scope). With keep-alive clients (a PBX posting webhooks,
the load balancer in front of ctid) those task operations and the empty write below are over a
third of hypercorn's own CPU per request (bench/httpfloor.py, empty app: 0.41-0.45 -> 0.26-0.27 ms;
bench/README.md "HTTP floor").

:class:`KeepAliveTCPServer` keeps one watchdog task per connection instead and moves its deadline
(a cancel scope's ``deadline``: an assignment) when the connection turns busy or idle. A connection
busy for longer than :data:`BUSY_WATCH` (a WebSocket, a long request) loses its watchdog until it is
idle again, so hub connections keep no extra task (a parked one is ~5.8 KiB: bench/connections.py).
It also skips the empty write h11 produces at the end of every sized body.

Behaviour is hypercorn's: an idle connection is closed ``keep_alive_timeout`` after its last
response; a request in progress is never cut by that timer; on shutdown idle connections close at
once and busy ones after their response (tests/test_serving.py). The handler class is swapped in
``hypercorn.trio.run`` (``worker_serve`` looks it up there for each connection) only when hypercorn
still has the parts it builds on (:func:`install`); otherwise hypercorn's own runs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol import ws_stream
from hypercorn.trio import run as hypercorn_run
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection

log = logging.getLogger(__name__)

#: The methods of hypercorn's handler :class:`KeepAliveTCPServer` builds on (checked before installing;
#: the attributes it reads, ``config``, ``context``, ``idle_task``, are exercised by tests/test_serving.py).
_RELIES_ON = ("run", "protocol_send", "_idle_timeout", "_initiate_server_close", "_read_data", "_close")

#: Seconds a connection closed while the client may still be sending (a request body ctid answered
#: without reading) goes on reading and dropping what arrives before it is closed: closing a socket
#: with unread data makes the kernel send a reset, which can destroy the answer before the client
#: reads it (RFC 9112 §9.6, "lingering close").
LINGER = 2.0

#: Seconds a busy connection keeps its watchdog: requests shorter than this cost no task operation;
#: a connection busy for longer is watched again, with a new task, once it is idle.
BUSY_WATCH = 1.0


class KeepAliveTCPServer(TCPServer):
    """hypercorn's connection handler with one idle watchdog per connection (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lingering = False
        self._busy = False
        self._idle_deadline = trio.current_time() + self.config.keep_alive_timeout  # idle until a request
        self._idle_scope: trio.CancelScope | None = None

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated):
            # Idle: close at the deadline. Busy: the watchdog stops watching at the deadline (a
            # WebSocket or a long request would otherwise keep a parked task for its whole life).
            self._busy = not event.idle
            self._idle_deadline = trio.current_time() + (
                self.config.keep_alive_timeout if event.idle else min(self.config.keep_alive_timeout, BUSY_WATCH))
            if self._idle_scope is not None:
                self._idle_scope.deadline = self._idle_deadline
            elif event.idle:  # the watchdog left during a long busy spell: watch again
                await self.idle_task.restart(self._task_group, self._idle_timeout)
            return
        if isinstance(event, RawData) and not event.data:
            return  # h11's EndOfMessage after a content-length body: nothing to write
        if isinstance(event, Closed):
            # Shielded: the close is often asked for from the app's task, which its framework may be
            # cancelling at that moment (quart-trio cancels a handler when the request ends); a close
            # cut halfway left the socket open and its next request unanswered (issue W2-1).
            with trio.CancelScope(shield=True):
                await self._linger_close()
            return
        await super().protocol_send(event)

    async def _linger_close(self) -> None:
        """Close after the answer: send FIN now, drop what the client still sends, and close the
        socket when it closes its side or :data:`LINGER` seconds later (the watchdog)."""
        if self._lingering:
            return
        self._lingering = True
        try:
            await self.stream.send_eof()
        except (trio.BrokenResourceError, trio.BusyResourceError, trio.ClosedResourceError, AttributeError):
            pass  # gone already, or TLS (no half-close): the watchdog closes it
        await self.protocol.handle(Closed())
        self._busy = False
        self._idle_deadline = trio.current_time() + LINGER
        if self._idle_scope is not None:
            self._idle_scope.deadline = self._idle_deadline
        else:
            await self.idle_task.restart(self._task_group, self._idle_timeout)

    async def _read_data(self) -> None:
        # hypercorn's loop, which also drops what arrives while the connection lingers (the protocol
        # is closed then: fed more data, h11 could wait for a reader that never comes)
        while True:
            try:
                with trio.fail_after(self.config.read_timeout or math.inf):
                    data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError, trio.TooSlowError):
                break
            if data == b"":
                if not self._lingering:
                    await self.protocol.handle(RawData(b""))
                break
            if not self._lingering:
                await self.protocol.handle(RawData(bytes(data)))
        if not self._lingering:
            await self.protocol.handle(Closed())

    async def _idle_timeout(self) -> None:
        # Started when the connection opens (TCPServer.run), and again after a long busy spell;
        # hypercorn started it for every response.
        terminated = self.context.terminated
        while True:
            with trio.CancelScope(deadline=self._idle_deadline) as self._idle_scope:
                await terminated.wait()
            if not terminated.is_set() and trio.current_time() < self._idle_deadline:
                continue  # the deadline moved while its cancellation was on its way
            self._idle_scope = None
            if self._busy:
                # stopping: the response's end closes the connection (H11Protocol._maybe_recycle);
                # busy for BUSY_WATCH: stop watching until the connection is idle again
                return
            break  # idle for keep_alive_timeout, or the server is stopping: close
        with trio.CancelScope(shield=True):
            await self._initiate_server_close()


#: The key :class:`BoundedWebsocketBuffer` sets in the ``websocket.receive`` event of a message that
#: was larger than ``websocket_max_message_size`` (its value: the message's size in bytes).
TOO_LARGE = "ctid.too_large"


class BoundedWebsocketBuffer(ws_stream.WebsocketBuffer):
    """hypercorn's buffer of one incoming WebSocket message, telling the app about an oversized one.

    hypercorn closes the connection with 1009 the moment a message grows past
    ``websocket_max_message_size``, so the hub could never send the error record its protocol
    promises (docs/hub-protocol.md: a handshake larger than the limit gets ``{"error": ...}``, a
    message a Close with an error). This buffer drops what it kept of such a message, discards the
    rest as it arrives (memory stays bounded), and hands the app an empty message marked
    :data:`TOO_LARGE` when it ends; the app answers and closes.
    """

    def __init__(self, max_length: int) -> None:
        super().__init__(max_length)
        self.too_large = False

    def extend(self, event: Any) -> None:
        if self.too_large:
            self.length += len(event.data)
            return
        try:
            super().extend(event)
        except ws_stream.FrameTooLargeError:
            self.too_large = True
            self.value = None

    def clear(self) -> None:
        super().clear()
        self.too_large = False

    def to_message(self) -> dict:
        if self.too_large:
            return {"type": "websocket.receive", "bytes": None, "text": None, TOO_LARGE: self.length}
        return super().to_message()


class ClosingWSStream(ws_stream.WSStream):
    """hypercorn's WebSocket stream, which tells the peer why before it drops a broken connection.

    When wsproto finds a frame that breaks RFC 6455 (unmasked, a reserved opcode, text that is not
    UTF-8, a bad close code) it reports a close with the reason's code, but hypercorn then closed the
    TCP connection without a Close frame: the client saw 1006 (abnormal closure). This stream sends
    the Close frame with wsproto's code (1002 protocol error, 1007 invalid data) first (§7.1.7).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._failed_with: int | None = None  # the close code of a protocol error wsproto reported
        forward = self.send

        async def send(event: Any) -> None:
            if isinstance(event, ws_stream.StreamClosed) and self._failed_with is not None:
                code, self._failed_with = self._failed_with, None
                await self._send_wsproto_event(CloseConnection(code=code))
            await forward(event)

        self.send = send

    async def _handle_events(self) -> None:
        connection = self.connection
        if not getattr(connection, "_ctid_watched", False):
            events = connection.events

            def watched() -> Any:
                for event in events():
                    if isinstance(event, CloseConnection) and connection.state is ConnectionState.OPEN:
                        self._failed_with = event.code  # not a close the peer sent: its frame was bad
                    yield event

            connection.events = watched
            connection._ctid_watched = True
        await super()._handle_events()


def _install_websocket_stream() -> bool:
    import hypercorn.protocol.h11 as h11_protocol

    current = getattr(h11_protocol, "WSStream", None)
    if current is ClosingWSStream:
        return True
    if current is not ws_stream.WSStream or not callable(getattr(current, "_handle_events", None)):
        log.debug("hypercorn's WebSocket stream is not the one ctid knows; using it unchanged")
        return False
    h11_protocol.WSStream = ClosingWSStream
    return True


def _install_websocket_buffer() -> bool:
    current = getattr(ws_stream, "WebsocketBuffer", None)
    if current is BoundedWebsocketBuffer:
        return True
    if (current is None or not hasattr(ws_stream, "FrameTooLargeError")
            or not all(callable(getattr(current, name, None)) for name in ("extend", "clear", "to_message"))):
        log.debug("hypercorn's WebSocket buffer is not the one ctid knows; oversized messages close with 1009")
        return False
    ws_stream.WebsocketBuffer = BoundedWebsocketBuffer
    return True


def install() -> bool:
    """Make hypercorn on Trio use :class:`KeepAliveTCPServer` (process-wide; idempotent). Returns
    whether it is in use: false when this hypercorn lacks what it builds on."""
    current = getattr(hypercorn_run, "TCPServer", None)
    if current is KeepAliveTCPServer:
        return True
    if current is not TCPServer or not all(callable(getattr(TCPServer, name, None)) for name in _RELIES_ON):
        log.debug("hypercorn's connection handler is not the one ctid knows; using it unchanged")
        return False
    hypercorn_run.TCPServer = KeepAliveTCPServer
    return True


class AnswerAfterBody:
    """ASGI wrapper: an answer given before its request's body arrived keeps the connection usable.

    An app may answer before reading the body (401 before the JSON, 404, 405, 413). HTTP/1.1 has no
    way to reuse the connection until the client has sent that body, and hypercorn then closed it in
    a way that could be cut off halfway (issue W2-1: the next request was never answered). Here:

    - a body the server would accept (``Content-Length`` at most ``max_body``): the end of the answer
      waits until the body has arrived (the app's framework reads it meanwhile; at most
      :data:`BODY_WAIT` seconds), so the request completes normally and the connection is reused;
    - a larger or unsized body: the answer carries ``Connection: close``, and the connection is closed
      after it without waiting for the body (lingering, :data:`LINGER`).
    """

    BODY_WAIT = 10.0

    def __init__(self, app: Any, max_body: int):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("http_version") not in ("1.0", "1.1"):
            await self.app(scope, receive, send)  # HTTP/2 streams end on their own (no Connection header)
            return
        length: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            name = name.lower()
            if name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"transfer-encoding":
                chunked = True
        if not chunked and not length:
            await self.app(scope, receive, send)  # no body: nothing to wait for
            return
        arrived = trio.Event()
        drain = not chunked and length is not None and 0 < length <= self.max_body

        async def tracked_receive() -> dict:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                arrived.set()
            return message

        async def guarded_send(message: dict) -> None:
            kind = message["type"]
            if kind == "http.response.start" and not arrived.is_set() and not drain:
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            elif kind == "http.response.body" and not message.get("more_body"):
                if drain and not arrived.is_set():
                    with trio.move_on_after(self.BODY_WAIT):
                        await arrived.wait()
                # The answer's end may close the connection (their body not read): hypercorn does that
                # from this task, which the framework may be cancelling now (quart-trio does as the
                # request ends); a close cut halfway wedged the connection, even with hypercorn's own
                # handler. Shielded, bounded in time.
                with trio.CancelScope(shield=True, deadline=trio.current_time() + self.BODY_WAIT):
                    await send(message)
                return
            await send(message)

        await self.app(scope, tracked_receive, guarded_send)


async def serve(app: Any, config: Any, *, shutdown_trigger: Callable[[], Awaitable[Any]] | None = None,
                task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED, max_body: int | None = None) -> None:
    """``hypercorn.trio.serve`` with :class:`KeepAliveTCPServer` when it can be installed, and with
    ``app`` behind :class:`AnswerAfterBody` when ``max_body`` (``server.max_body_bytes``) is given."""
    install()
    _install_websocket_buffer()
    _install_websocket_stream()
    if max_body is not None:
        app = AnswerAfterBody(app, max_body)
    await hypercorn_serve(app, config, shutdown_trigger=shutdown_trigger, task_status=task_status)
