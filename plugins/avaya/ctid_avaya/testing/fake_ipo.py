"""A fake IP Office unit: a DevLink3 server (login, EventRequest, Delta3 events, connection limit)
and SMDR in both directions (it sends to ctid's listener, or listens for ctid), with a record buffer
that is overwritten when full, a reboot that restarts Call IDs at 1000000, and writes cut at chosen
byte positions (split and coalesced TCP reads)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import trio
import trio.lowlevel

from ctid_avaya.ipo_side import IpoSession, SessionClosed

LIMIT = 3  # DevLink3 connections IP Office accepts


@dataclass
class FakeDevLink3:
    users: dict[str, str]
    plain: bool = False
    in_progress: list[str] = field(default_factory=list)  # Delta3 re-sent after every EventRequest
    sessions: list[IpoSession] = field(default_factory=list)
    logins: int = 0
    refused: int = 0
    answer_tests: bool = True
    subscribed_event: trio.Event = field(default_factory=trio.Event)
    open: int = 0  # connections in any state (a login in progress holds a slot too)

    async def serve(self, *, ssl_context=None, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Listen on a free port (TLS with ``ssl_context``, as port 50796 does); ``started(port)``."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        task_status.started(listeners[0].socket.getsockname()[1])
        if ssl_context is not None:
            listeners = [trio.SSLListener(listener, ssl_context, https_compatible=False) for listener in listeners]
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream) -> None:
        session = IpoSession(stream, self.users, plain=self.plain, answer_tests=self.answer_tests)
        self.open += 1
        if self.open > LIMIT:
            session.refuse_login = 0x80000042  # limits exceeded
        try:
            async with stream:
                await session.handshake()
                self.logins += 1
                self.sessions.append(session)
                for text in self.in_progress:
                    await session.send_delta3(text)
                self.subscribed_event.set()
                await session.serve_tests()
        except SessionClosed:
            self.refused += 0 if session.authenticated else 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self.open -= 1
            if session in self.sessions:
                self.sessions.remove(session)

    def live(self) -> list[IpoSession]:
        return [s for s in self.sessions if s.subscribed]

    async def wait_subscribed(self) -> IpoSession:
        while not self.live():
            self.subscribed_event = trio.Event()
            await self.subscribed_event.wait()
        return self.live()[-1]

    async def send(self, *texts: str) -> None:
        for session in self.live():
            await session.send_delta3(*texts)

    async def drop(self) -> None:
        """The unit goes away (reboot, network): every connection closes."""
        for session in list(self.sessions):
            await session.stream.aclose()


@dataclass
class FakeSmdr:
    """The unit's SMDR output: a buffer of records (oldest overwritten when full)."""

    buffer_size: int = 500
    buffer: deque[bytes] = field(default_factory=deque)
    call_id: int = 1_000_000

    def next_call_id(self) -> int:
        value = self.call_id
        self.call_id += 1
        return value

    def reboot(self) -> None:
        self.call_id = 1_000_000

    def add(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.buffer.append(line.encode("utf-8") + b"\r\n")
            while len(self.buffer) > self.buffer_size:
                self.buffer.popleft()

    # -- send mode: the unit connects to ctid's listener ----------------------------------------
    async def send_to(self, host: str, port: int, *, cuts: Iterable[int] = (), close: bool = True) -> bytes:
        """Connect, write the buffered records cut at the given byte offsets, drain the buffer."""
        data = b"".join(self.buffer)
        self.buffer.clear()
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            last = 0
            for cut in sorted(set(c for c in cuts if 0 < c < len(data))):
                await stream.send_all(data[last:cut])
                await trio.lowlevel.checkpoint()
                last = cut
            await stream.send_all(data[last:])
            if not close:
                await trio.sleep_forever()
        return data

    # -- listen mode: ctid connects to the unit --------------------------------------------------
    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        task_status.started(listeners[0].socket.getsockname()[1])
        self._clients: list = []
        await trio.serve_listeners(self._client, listeners)

    async def _client(self, stream) -> None:
        self._clients.append(stream)
        try:
            while True:
                while self.buffer:
                    await stream.send_all(self.buffer.popleft())
                await trio.sleep(0.01)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._clients.remove(stream)
