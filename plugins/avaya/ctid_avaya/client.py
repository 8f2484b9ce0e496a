"""The DevLink3 client: one connection per IP Office unit, authenticated, subscribed, kept alive.

Connects over TLS 50796 or TCP 50797, logs in (SHA-1 challenge, or the PLAIN challenge IP Office
may send over TLS), sends the EventRequest and hands every Delta3 text to ``on_texts``. A Test
packet goes out every ``keepalive`` seconds; if the previous one got no TestR the link is dead.
Any failure closes the connection and reconnects with exponential backoff; a refused login waits
``auth_failure_backoff`` (IP Office locks accounts after repeated wrong passwords, reference §2.3).
"""

from __future__ import annotations

import itertools
import logging
import random
import ssl
import struct
from collections import deque
from collections.abc import Awaitable, Callable

import trio

from ctid_avaya import devlink3 as d3
from ctid_avaya.config import DevLink3Config
from ctid_avaya.stats import Stats

log = logging.getLogger(__name__)

AUTH_RESULTS_FATAL = frozenset({0x80000041, 0x80000044, 0x80000003})


class LinkError(Exception):
    """The connection is unusable (closed, corrupt, silent); ``reason`` is the metric label."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class Refused(LinkError):
    """IP Office answered a request with an error result."""

    def __init__(self, what: str, code: int):
        super().__init__("refused", f"{what} refused: {d3.result_text(code)}")
        self.code = code


def tls_context(verify: bool, ca_file=None) -> ssl.SSLContext:
    if verify:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # IP Office's self-signed certificate [config: tls_verify]
    return context


class DevLink3Client:
    def __init__(self, instance: str, host: str, config: DevLink3Config, *,
                 on_texts: Callable[[list[str]], Awaitable[None]],
                 on_subscribed: Callable[[], Awaitable[None]], stats: Stats,
                 open_stream: Callable[[], Awaitable[trio.abc.Stream]] | None = None):
        self.instance = instance
        self.host = host
        self.config = config
        self.on_texts = on_texts
        self.on_subscribed = on_subscribed
        self.stats = stats
        self._open_stream = open_stream or self._connect
        self.authenticated = False
        self.subscribed = False
        self.pbx_type: str | None = None
        self.last_error: str | None = None
        self.last_received: float | None = None  # trio time of the last frame
        self.auth_refused = False
        self._ids = itertools.count(random.randrange(1, 1 << 30))
        self._stream: trio.abc.Stream | None = None
        self._reader = d3.FrameReader()
        self._packets: deque[d3.Packet] = deque()
        self._early: list[d3.Packet] = []
        self._test_pending: int | None = None

    async def _connect(self) -> trio.abc.Stream:
        port = self.config.effective_port()
        if self.config.transport == "tls":
            context = tls_context(self.config.tls_verify, self.config.ca_file)
            return await trio.open_ssl_over_tcp_stream(self.host, port, ssl_context=context)
        return await trio.open_tcp_stream(self.host, port)

    # -- the reconnect loop ----------------------------------------------------------------------
    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        delay = self.config.backoff_initial
        while True:
            got_events = False
            try:
                got_events = await self._session()
            except Refused as exc:
                self._down("refused", str(exc))
                if exc.code in AUTH_RESULTS_FATAL:
                    self.auth_refused = True
                    await trio.sleep(self.config.auth_failure_backoff)
                    continue
            except LinkError as exc:
                self._down(exc.reason, str(exc))
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError) as exc:
                self._down("connect" if not self.authenticated else "broken", describe(exc))
            except trio.TooSlowError:
                self._down("timeout", "IP Office did not answer in time")
            except Exception as exc:  # our own bug must not end the stream task: log, count, retry
                log.exception("%s: devlink3 session failed", self.instance)
                self._down("internal", f"{type(exc).__name__}: {exc}")
            if got_events:
                delay = self.config.backoff_initial
            await trio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.config.backoff_max)

    def _down(self, reason: str, message: str) -> None:
        self.stats.error("devlink3", reason, "%s (reconnecting)", message)
        self.last_error = message
        self.authenticated = self.subscribed = False

    async def _session(self) -> bool:
        """One connection: returns True if it was subscribed (so the backoff starts over)."""
        self._reader = d3.FrameReader()
        self._packets.clear()
        self._early.clear()
        self._test_pending = None
        with trio.fail_after(self.config.connect_timeout):
            stream = await self._open_stream()
        self._stream = stream
        try:
            with trio.fail_after(self.config.connect_timeout):
                await self._login()
                await self._subscribe()
            await self.on_subscribed()
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._keepalive)
                    await self._read_events()
                    nursery.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                raise unwrap(group) from None
        finally:
            self._stream = None
            await _close_quietly(stream)
        return True

    async def probe(self) -> str:
        """One login outside the daemon (``ctid check``): connect, authenticate, hang up; the unit's
        type. Raises what a session would (Refused, LinkError, OSError, trio.TooSlowError)."""
        self._reader = d3.FrameReader()
        self._packets.clear()
        self._early.clear()
        with trio.fail_after(self.config.connect_timeout):
            stream = await self._open_stream()
            self._stream = stream
            try:
                await self._login()
            finally:
                self._stream = None
                self.authenticated = False
                await _close_quietly(stream)
        return self.pbx_type or "IP Office"

    # -- packets ---------------------------------------------------------------------------------
    async def _send(self, ptype: int, body: bytes = b"", request_id: int | None = None) -> int:
        if request_id is None:
            request_id = self._request_id()
        assert self._stream is not None
        await self._stream.send_all(d3.encode_packet(ptype, request_id, body))
        return request_id

    def _request_id(self) -> int:
        return next(self._ids) & 0xFFFFFFFF

    async def _next(self) -> d3.Packet:
        while not self._packets:
            if self._reader.error is not None:
                raise LinkError("bad_frame", f"stream corrupt: {self._reader.error}")
            assert self._stream is not None
            data = await self._stream.receive_some(65536)
            if not data:
                if self._reader.pending():
                    raise LinkError("truncated", f"IP Office closed the link mid-frame "
                                    f"({self._reader.pending()} bytes of a frame lost)")
                raise LinkError("closed", "IP Office closed the link")
            self.last_received = trio.current_time()
            for payload in self._reader.feed(data):
                try:
                    self._packets.append(d3.decode_packet(payload))
                except d3.FrameError as exc:
                    self.stats.error("devlink3", "bad_packet", "packet skipped: %s", exc)
        return self._packets.popleft()

    async def _expect(self, ptype: int, request_id: int) -> d3.Packet:
        while True:
            packet = await self._next()
            if packet.type == ptype and packet.request_id == request_id:
                return packet
            if packet.type == d3.TEST_R:
                continue
            if packet.type == d3.EVENT and self.authenticated:  # an event racing the EventRequestR: kept
                self._early.append(packet)
                continue
            raise LinkError("protocol", f"expected 0x{ptype:08X}, got 0x{packet.type:08X}")

    async def _login(self) -> None:
        cfg = self.config
        password = cfg.password.get_secret_value()
        rid = await self._send(d3.AUTHENTICATE, d3.auth_request(cfg.username, cfg.app_name))
        packet = await self._expect(d3.AUTHENTICATE_R, rid)
        code = _u32(packet.body, 0)
        if code == d3.AUTH_SHA1_CHALLENGE:
            length = _u32(packet.body, 4)
            challenge = packet.body[8: 8 + length]
            if length != 16 or len(challenge) != 16:
                raise LinkError("protocol", f"challenge of {len(challenge)} bytes, expected 16")
            body = struct.pack(">II", d3.AUTH_SHA1_RESPONSE, 20) + d3.sha1_response(challenge, password)
        elif code == d3.AUTH_PLAIN_CHALLENGE:
            if cfg.transport != "tls" or not cfg.allow_plain_password:
                raise LinkError("refused", "IP Office asked for the plain password over an unencrypted link "
                                "(or allow_plain_password is off): not sent")
            body = d3.plain_response(password)
        else:
            raise Refused("login", code)
        rid = await self._send(d3.AUTHENTICATE, body)
        packet = await self._expect(d3.AUTHENTICATE_R, rid)
        code = _u32(packet.body, 0)
        if code != 0:
            raise Refused("login", code)
        for ttype, data in _tuples(packet.body[4:]):
            if ttype == d3.TUPLE_PBX_TYPE:
                self.pbx_type = data.rstrip(b"\x00").decode("utf-8", errors="replace")
        self.authenticated = True
        self.auth_refused = False

    async def _subscribe(self) -> None:
        rid = await self._send(d3.EVENT_REQUEST, d3.event_request(self.config.flags))
        packet = await self._expect(d3.EVENT_REQUEST_R, rid)
        code = _u32(packet.body, 0)
        if code not in (0, 9):
            raise Refused(f"EventRequest {self.config.flags!r}", code)
        self.subscribed = True
        self.last_error = None
        log.info("%s: devlink3 subscribed (%s)", self.instance, self.pbx_type or "IP Office")

    async def _keepalive(self) -> None:
        while True:
            await trio.sleep(self.config.keepalive)
            if self._test_pending is not None:
                raise LinkError("silent", f"no answer to a Test packet within {self.config.keepalive:g} s")
            # pending before the write: the TestR can be read while send_all has not returned yet
            self._test_pending = self._request_id()
            await self._send(d3.TEST, struct.pack(">I", 4) + b"ctid", self._test_pending)

    async def _read_events(self) -> None:
        self._packets.extendleft(reversed(self._early))
        self._early.clear()
        while True:
            packet = await self._next()
            if packet.type == d3.TEST_R:
                if packet.request_id == self._test_pending:
                    self._test_pending = None
                continue
            if packet.type != d3.EVENT:
                continue  # answers to nothing we asked: ignored
            try:
                _ip, _counter, texts = d3.delta3_texts(packet.body)
            except d3.FrameError as exc:
                self.stats.error("devlink3", "bad_event", "event skipped: %s", exc)
                continue
            self.stats.records["devlink3"] += len(texts)
            if texts:
                await self.on_texts(texts)


def describe(exc: BaseException) -> str:
    """``Type: message``, with the cause trio's stream errors wrap (an SSL or socket error)."""
    text = f"{type(exc).__name__}: {exc}".rstrip(": ")
    cause = exc.__cause__ or exc.__context__
    if cause is not None and not str(exc):
        text += f" ({type(cause).__name__}: {cause})"
    return text


def unwrap(group: BaseExceptionGroup) -> BaseException:
    """The one exception inside a nursery's group (the first one if several failed)."""
    while isinstance(group, BaseExceptionGroup) and group.exceptions:
        group = group.exceptions[0]
    return group


def _u32(body: bytes, offset: int) -> int:
    if len(body) < offset + 4:
        raise LinkError("protocol", "answer too short")
    return struct.unpack_from(">I", body, offset)[0]


def _tuples(data: bytes) -> list[tuple[int, bytes]]:
    try:
        return d3.parse_tuples(data)
    except d3.FrameError:
        return []


async def _close_quietly(stream: trio.abc.AsyncResource) -> None:
    """Close ``stream`` within 1 s, even from a cancelled scope; a broken one is already closed enough."""
    with trio.move_on_after(1) as cleanup:
        cleanup.shield = True
        try:
            await stream.aclose()
        except (trio.BrokenResourceError, OSError, ssl.SSLError):
            pass
