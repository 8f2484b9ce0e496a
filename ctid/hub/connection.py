"""One hub connection over an accepted WebSocket: handshake, record framing, keep-alive Pings,
the client timeout, invocation dispatch to the backend, and an outbound queue.

It needs only ``receive() -> str | bytes``, ``send(str)`` and ``close(code)`` from the socket,
so it is tested with an in-memory socket under Trio's MockClock as well as over real WebSockets.

An idle connection costs one task (the one reading the socket) and no timer of its own: one
:class:`KeepAlive` task serves the Pings and client timeouts of every connection of a hub, and the
tasks that write to the socket and run invocations exist only while there is something to do.
Tens of thousands of panels stay connected mostly idle, so what an idle connection holds is what
the hub's memory and garbage-collection time are made of (bench/README.md, Connections).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Callable
from typing import Any, Protocol

import trio

from ctid.errors import CtidError
from ctid.hub import protocol as p
from ctid.hub.interfaces import HUB_METHODS, HubBackend, Principal

log = logging.getLogger("ctid.hub")

_METHODS = {name.lower(): name for name in HUB_METHODS}
MAX_PENDING_INVOCATIONS = 64


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


class Disconnected(Exception):
    """Raised by a socket's ``receive`` when the peer has gone: the connection ends quietly."""


class _Closed(Exception):
    """Internal: the connection is over; unwinds the reader."""


class KeepAlive:
    """The Ping and client-timeout clock of every connection of a hub, in one task.

    Each connection has at most one live entry in a heap: the next time it may need a Ping or may
    have timed out. When it comes due, the connection looks at its own send and receive times and
    says when to look again; sending or receiving in between only moves the real deadline later,
    so nothing is rescheduled per message. Deadlines that fall within ``resolution`` seconds of
    the previous wake-up are served together (a Ping is then up to that much late), so 20,000
    connections cost ~10 wake-ups a second instead of one per connection per interval.
    """

    def __init__(self, resolution: float = 0.1):
        self.resolution = resolution
        self._heap: list[list[Any]] = []  # [when, order, connection or None once it has ended]
        self._order = itertools.count()
        self._sleep: trio.CancelScope | None = None
        self._last_wake = -math.inf

    def schedule(self, conn: HubConnection, when: float) -> None:
        """Look at ``conn`` at ``when`` at the latest (an earlier entry stays in force)."""
        entry = conn._keepalive_entry
        if entry is not None and entry[0] <= when:
            return
        entry = [when, next(self._order), conn]
        conn._keepalive_entry = entry
        heapq.heappush(self._heap, entry)
        if self._sleep is not None and when < self._sleep.deadline:
            self._sleep.deadline = max(when, self._last_wake + self.resolution)

    @staticmethod
    def forget(conn: HubConnection) -> None:
        """``conn`` has ended: its entry no longer holds it (the entry itself is dropped when due)."""
        entry, conn._keepalive_entry = conn._keepalive_entry, None
        if entry is not None:
            entry[2] = None

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        heap = self._heap
        while True:
            with trio.CancelScope() as self._sleep:
                if heap:
                    self._sleep.deadline = max(heap[0][0], self._last_wake + self.resolution)
                await trio.sleep_forever()
            self._sleep = None
            now = self._last_wake = trio.current_time()
            while heap and heap[0][0] <= now:
                entry = heapq.heappop(heap)
                conn = entry[2]
                if conn is None or conn._keepalive_entry is not entry:
                    continue  # the connection has ended, or an earlier entry superseded this one
                conn._keepalive_entry = None
                when = conn._keepalive(now)
                if when is not None:
                    self.schedule(conn, when)


class HubConnection:
    __slots__ = (
        "socket", "principal", "connection_id", "backend", "settings", "on_ready", "handshake_version",
        "close_error", "_keepalive_clock", "_keepalive_entry", "_nursery", "_queue", "_writing",
        "_invocations", "_buffer", "_last_sent", "_last_received", "_timeout_armed", "_closing",
    )

    def __init__(
        self,
        socket: Socket,
        principal: Principal,
        connection_id: str,
        backend: HubBackend,
        settings: Settings,
        *,
        keepalive: KeepAlive,
        on_ready: Callable[[HubConnection], None] = lambda conn: None,
    ):
        self.socket = socket
        self.principal = principal
        self.connection_id = connection_id
        self.backend = backend
        self.settings = settings
        self.on_ready = on_ready
        self.handshake_version: int | None = None
        self.close_error: str | None = None
        self._keepalive_clock = keepalive
        self._keepalive_entry: list[Any] | None = None
        self._nursery: trio.Nursery | None = None
        self._queue: list[str | None] = []  # framed records to send; None: close the socket after them
        self._writing = False  # a writer task is running
        self._invocations: list[p.Message] | None = None  # waiting to run; a runner task exists while not None
        self._buffer = p.RecordBuffer(settings.max_message_bytes)
        self._last_sent = self._last_received = trio.current_time()
        self._timeout_armed = False
        self._closing = False

    # -- outbound --------------------------------------------------------------------------

    def send_record(self, text: str) -> bool:
        """Queue one framed record (or several) without blocking. A client that cannot keep up
        is disconnected rather than slowing down the publisher. Returns False if not queued."""
        if self._closing:
            return False
        if len(self._queue) >= self.settings.send_queue:
            log.warning("hub connection %s: send queue full, disconnecting", self.connection_id)
            self.close_error = "Client too slow: send queue overflow."
            self._abort()
            return False
        self._queue.append(text)
        self._last_sent = trio.current_time()
        self._start_writer()
        return True

    def close(self, error: str | None = None, *, allow_reconnect: bool = False, message: bool = True) -> None:
        """Send Close (with ``error`` / ``allowReconnect``) after what is queued, then close the
        socket. ``message=False`` skips the Close message (the client said goodbye first)."""
        if self._closing:
            return
        self.close_error = error
        if message and self.handshake_version is not None:
            self.send_record(p.record(p.close(error, allow_reconnect=allow_reconnect)))
            if self._closing:  # the Close did not fit in the queue: already aborted
                return
        self._closing = True
        self._queue.append(None)
        self._start_writer()

    def _abort(self) -> None:
        self._closing = True
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def _start_writer(self) -> None:
        if not self._writing and self._nursery is not None:
            self._writing = True
            self._nursery.start_soon(self._writer)

    async def _writer(self) -> None:
        """Send what is queued, batched into one frame per wake-up, until the queue is empty."""
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                close = batch[-1] is None  # nothing is queued after the close marker
                frame = "".join(batch[:-1] if close else batch)  # type: ignore[arg-type]
                if frame:
                    await self.socket.send(frame)
                if close:
                    await self.socket.close(1000)
                    self._abort()
                    return
        except Exception as exc:  # the peer is gone: nothing left to tell it
            log.debug("hub connection %s: send failed: %r", self.connection_id, exc)
            self._abort()
        finally:
            self._writing = False

    # -- lifecycle -------------------------------------------------------------------------

    async def serve(self) -> None:
        """Run until the client leaves, breaks the protocol, times out, or the hub closes it."""
        if self._closing:  # closed before it started
            return
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    await self._handshake()
                    self.on_ready(self)
                    self._keepalive_clock.schedule(self, self._next_look())
                    feed = self._buffer.feed
                    while not self._closing:
                        for text in feed(await self._receive_text()):
                            await self._handle(text)
                except _Closed:
                    pass
                except Disconnected:
                    self._abort()
                except p.ProtocolError as exc:
                    log.info("hub connection %s: protocol error: %s", self.connection_id, exc)
                    self.close(str(exc))
                except Exception:  # a bug here must cost one connection, politely
                    log.exception("hub connection %s failed", self.connection_id)
                    self.close("An unexpected error occurred.")
                await trio.sleep_forever()  # the writer ends the connection after the Close
        except Exception:  # a task of this connection failed: it ends alone (never a 1011 for the hub)
            log.exception("hub connection %s failed", self.connection_id)
        finally:  # also when cancelled from outside: nothing may be sent or scheduled any more
            self._closing = True
            self._nursery = None
            self._keepalive_clock.forget(self)

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

    async def _handle(self, text: str) -> None:
        if self._closing:
            raise _Closed
        message = p.parse_message(text)
        kind = message.type
        if kind == p.PING:
            if not self._timeout_armed:
                self._timeout_armed = True
                self._keepalive_clock.schedule(self, self._next_look())
        elif kind == p.INVOCATION:
            self._queue_invocation(message)
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

    # -- keep-alive ------------------------------------------------------------------------

    def _next_look(self) -> float:
        """When the next Ping may be due, or the client may have timed out."""
        when = self._last_sent + self.settings.ping_interval
        if self._timeout_armed:
            when = min(when, self._last_received + self.settings.client_timeout)
        return when

    def _keepalive(self, now: float) -> float | None:
        """Called by the KeepAlive clock: Ping after ``ping_interval`` without sending; drop the
        client after ``client_timeout`` without receiving, counted only once the client has sent
        its first Ping (as ASP.NET). Returns when to look again (None: the connection is over)."""
        if self._closing:
            return None
        if self._timeout_armed and now >= self._last_received + self.settings.client_timeout:
            self.close("Server timeout elapsed without receiving a message from the client.")
            return None
        if now >= self._last_sent + self.settings.ping_interval:
            self.send_record(p.PING_RECORD)
        return None if self._closing else self._next_look()

    # -- invocations -----------------------------------------------------------------------

    def _queue_invocation(self, message: p.Message) -> None:
        """Invocations run one at a time, in order (ASP.NET's default), in a task that exists while
        some are waiting, so the reader goes on reading Pings meanwhile."""
        if self._invocations is None:
            self._invocations = [message]
            assert self._nursery is not None
            self._nursery.start_soon(self._run_invocations)
        elif len(self._invocations) >= MAX_PENDING_INVOCATIONS:
            raise p.ProtocolError("Too many pending invocations.")
        else:
            self._invocations.append(message)

    async def _run_invocations(self) -> None:
        try:
            while self._invocations:
                message = self._invocations.pop(0)
                try:
                    result = await self._invoke(message)
                except Exception:  # a bug answering one invocation: the client hears of it, the rest runs
                    log.exception("hub invocation failed (connection %s)", self.connection_id)
                    error = "internal: An unexpected error occurred on the server."
                    result = p.record(p.completion(message.invocation_id or "", error=error))
                if message.invocation_id is not None and result is not None:
                    self.send_record(result)
        finally:
            self._invocations = None

    async def _invoke(self, message: p.Message) -> str | None:
        invocation_id, target = message.invocation_id, message.target
        if message.raw.get("streamIds"):
            return p.record(p.completion(invocation_id or "", error="Client streaming is not supported."))
        method = _METHODS.get(target.lower())
        if method is None:
            return p.record(p.completion(invocation_id or "", error=f"Unknown hub method '{target}'"))
        if message.refused is not None:  # arguments beyond ctid's input limits (ctid/limits.py)
            exc = message.refused
            return p.record(p.completion(invocation_id or "", error=f"{exc.error_id}: {exc}"))
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
