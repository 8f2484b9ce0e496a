"""Redis pub/sub backplane for several ctid instances, speaking RESP2 over Trio streams.

Why not redis-py: its asyncio client does not run under Trio, and its sync client would need one
thread blocked in ``get_message`` plus thread hand-offs, which defeats Trio's cancellation and
leaks sockets on shutdown. Pub/sub needs only four commands (AUTH, PUBLISH, SUBSCRIBE, PING), so
a small RESP2 codec on ``trio`` streams keeps everything inside the daemon's nursery.

Two connections: one publishes (pipelined batches), one subscribes. Each reconnects with
exponential backoff. While Redis is down, published messages wait in a bounded buffer (oldest
dropped first, counted in ``health()["dropped"]``) and are flushed when Redis returns; messages
other instances published during the outage are lost, as with ASP.NET's Redis backplane.
"""

from __future__ import annotations

import logging
import ssl
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import trio

from ctid.hub.backplane import MemoryBackplane

log = logging.getLogger("ctid.hub.redis")


class RedisProtocolError(Exception):
    pass


def encode_command(*parts: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class RespReader:
    """Reads RESP2 replies from a Trio stream. ``-ERR`` replies are returned as RedisProtocolError
    instances (not raised), so a caller can match them to its pipelined commands."""

    def __init__(self, stream: trio.abc.ReceiveStream):
        self._stream = stream
        self._buffer = bytearray()

    async def _fill(self) -> None:
        chunk = await self._stream.receive_some(65536)
        if not chunk:
            raise trio.BrokenResourceError("redis closed the connection")
        self._buffer += chunk

    async def _line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            await self._fill()
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    async def _exact(self, size: int) -> bytes:
        while len(self._buffer) < size + 2:
            await self._fill()
        data = bytes(self._buffer[:size])
        del self._buffer[: size + 2]
        return data

    async def read(self) -> Any:
        line = await self._line()
        prefix, rest = line[:1], line[1:]
        if prefix == b"+":
            return rest.decode()
        if prefix == b"-":
            return RedisProtocolError(rest.decode(errors="replace"))
        if prefix == b":":
            return int(rest)
        if prefix == b"$":
            size = int(rest)
            return None if size < 0 else await self._exact(size)
        if prefix == b"*":
            size = int(rest)
            return None if size < 0 else [await self.read() for _ in range(size)]
        raise RedisProtocolError(f"unexpected reply from redis: {line[:40]!r}")


class RedisBackplane:
    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        buffer: int = 1000,
        backoff_min: float = 0.1,
        backoff_max: float = 5.0,
        connect_timeout: float = 3.0,
        health_interval: float = 10.0,
    ):
        self.url = url
        self._target = _parse_url(url)
        self._queue: deque[tuple[int, str, bytes]] = deque()
        self._sequence = 0
        self._buffer = buffer
        self._wakeup = trio.Event()
        self._backoff = (backoff_min, backoff_max)
        self._connect_timeout = connect_timeout
        self._health_interval = health_interval
        self._local = MemoryBackplane(buffer=buffer)  # fans received messages out to this process
        self._channels_changed = trio.Event()
        self._confirmed: set[str] = set()  # channels Redis confirmed on the current subscriber connection
        self._subscriptions = 0  # subscriber connections that ended (each may have missed messages)
        self.publisher_connected = False
        self.subscriber_connected = False
        self.dropped = 0
        self.last_error: str | None = None

    # -- public API ------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keep_connected, self._publisher, "publisher")
            nursery.start_soon(self._keep_connected, self._subscriber, "subscriber")
            task_status.started()

    async def publish(self, channel: str, data: bytes) -> None:
        self.publish_nowait(channel, data)

    def publish_nowait(self, channel: str, data: bytes) -> None:
        if len(self._queue) >= self._buffer:
            self._queue.popleft()
            self.dropped += 1
        self._sequence += 1
        self._queue.append((self._sequence, channel, data))
        self._wakeup.set()

    @asynccontextmanager
    async def subscribe(self, channel: str, *, buffer: int | None = None) -> AsyncIterator[AsyncIterator[bytes]]:
        is_new = channel not in self._local.channels()
        async with self._local.subscribe(channel, buffer=buffer) as messages:
            if is_new:
                self._subscriptions += 1  # what came while nobody here listened was not kept
                self._channels_changed.set()
            yield messages

    def continuity(self, channel: str) -> int | None:
        """Changes when the subscriber connection ends or the local buffer drops a message; None
        until Redis confirmed the subscription on the current connection."""
        local = self._local.continuity(channel)
        if channel not in self._confirmed or local is None:
            return None
        return self._subscriptions + local

    def health(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ok": self.publisher_connected and self.subscriber_connected,
            "url": _redact(self.url),
            "buffered": len(self._queue),
            "dropped": self.dropped + self._local.dropped,
            "error": None if self.publisher_connected and self.subscriber_connected else self.last_error,
        }

    # -- connections -----------------------------------------------------------------------

    async def _keep_connected(self, session: Any, name: str) -> None:
        delay = self._backoff[0]
        while True:
            try:
                async with await self._connect() as stream:
                    reader = RespReader(stream)
                    await self._auth(stream, reader)
                    delay = self._backoff[0]
                    await session(stream, reader)
            except* (OSError, trio.BrokenResourceError, trio.TooSlowError, RedisProtocolError) as group:
                self.last_error = _first_error(group)
                log.warning("redis backplane %s: %s; retrying in %.1fs", name, self.last_error, delay)
            except* Exception as group:  # a surprise must not take the daemon down: local delivery goes on
                self.last_error = _first_error(group)
                log.error("redis backplane %s failed: %s; retrying in %.1fs", name, self.last_error, delay,
                          exc_info=group)
            finally:
                setattr(self, f"{name}_connected", False)
            await trio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])

    async def _connect(self) -> trio.abc.Stream:
        target = self._target
        with trio.fail_after(self._connect_timeout):
            if target["unix"]:
                return await trio.open_unix_socket(target["unix"])
            stream: trio.abc.Stream = await trio.open_tcp_stream(target["host"], target["port"])
            if target["tls"]:
                stream = trio.SSLStream(stream, ssl.create_default_context(), server_hostname=target["host"])
                await stream.do_handshake()
            return stream

    async def _auth(self, stream: trio.abc.Stream, reader: RespReader) -> None:
        if self._target["password"] is None:
            return
        parts = ["AUTH"] + ([self._target["username"]] if self._target["username"] else [])
        await stream.send_all(encode_command(*parts, self._target["password"]))
        with trio.fail_after(self._connect_timeout):
            reply = await reader.read()
        if isinstance(reply, RedisProtocolError):
            raise RedisProtocolError(f"AUTH failed: {reply}")

    async def _publisher(self, stream: trio.abc.Stream, reader: RespReader) -> None:
        self.publisher_connected = True
        while True:
            while not self._queue:
                self._wakeup = trio.Event()
                with trio.move_on_after(self._health_interval) as idle:
                    await self._wakeup.wait()
                if idle.cancelled_caught:  # detect a dead connection while idle
                    await stream.send_all(encode_command("PING"))
                    with trio.fail_after(self._connect_timeout):
                        await reader.read()
            batch = [self._queue[index] for index in range(min(100, len(self._queue)))]
            await stream.send_all(b"".join(encode_command("PUBLISH", ch, data) for _, ch, data in batch))
            with trio.fail_after(self._connect_timeout):
                for _ in batch:
                    reply = await reader.read()
                    if isinstance(reply, RedisProtocolError):
                        raise reply
            # only now: a batch interrupted by a failure is sent again after reconnecting
            while self._queue and self._queue[0][0] <= batch[-1][0]:
                self._queue.popleft()

    async def _subscriber(self, stream: trio.abc.Stream, reader: RespReader) -> None:
        last_reply = trio.current_time()

        async def read_replies() -> None:
            nonlocal last_reply
            while True:
                reply = await reader.read()
                last_reply = trio.current_time()
                if isinstance(reply, RedisProtocolError):
                    raise reply
                if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                    self._deliver(reply[1].decode(), reply[2])
                elif isinstance(reply, list) and len(reply) == 3 and reply[0] == b"subscribe":
                    self._confirmed.add(reply[1].decode())  # from now on its messages reach us

        subscribed: set[str] = set()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_replies)
                while True:
                    self._channels_changed = trio.Event()
                    wanted = self._local.channels() - subscribed
                    if wanted:
                        await stream.send_all(encode_command("SUBSCRIBE", *sorted(wanted)))
                        subscribed |= wanted
                    self.subscriber_connected = True
                    with trio.move_on_after(self._health_interval):
                        await self._channels_changed.wait()
                    if trio.current_time() - last_reply > 2 * self._health_interval + self._connect_timeout:
                        raise trio.TooSlowError("redis stopped answering PING")
                    await stream.send_all(encode_command("PING"))
        finally:  # whatever was published from now until the next connection's SUBSCRIBE is lost
            self._confirmed.clear()
            self._subscriptions += 1

    def _deliver(self, channel: str, data: bytes) -> None:
        self._local.deliver(channel, data)


def _first_error(group: BaseExceptionGroup) -> str:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def _parse_url(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"unsupported backplane URL scheme {parts.scheme!r}")
    query = parse_qs(parts.query)
    password = unquote(parts.password) if parts.password else (query.get("password") or [None])[0]
    return {
        "tls": parts.scheme == "rediss",
        "unix": parts.path if parts.scheme == "unix" else None,
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 6379,
        "username": unquote(parts.username) if parts.username else None,
        "password": password,
    }


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url
