"""The SMDR collector: IP Office's CSV stream over TCP, in either direction (reference §1.1).

``listen``: ctid accepts the unit's connection (IP Office "send mode", SMDR IP Address = ctid);
only the unit's address (or ``allowed_peers``) may send. ``connect``: IP Office listens and ctid
connects, reconnecting with backoff (the unit then sends its buffered records at once). Either way
the bytes are buffered and split into lines; a bad line is skipped with a log line and a metric,
a partial line left when the peer closes is logged (it was never a record).
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import Awaitable, Callable

import trio

from ctid_avaya.config import SmdrConfig
from ctid_avaya.smdr import LineSplitter, SmdrError, SmdrRecord, decode, parse_record
from ctid_avaya.stats import Stats

log = logging.getLogger(__name__)


class SmdrCollector:
    def __init__(self, instance: str, host: str, config: SmdrConfig, *,
                 on_record: Callable[[SmdrRecord], Awaitable[None]], stats: Stats):
        self.instance = instance
        self.host = host
        self.config = config
        self.on_record = on_record
        self.stats = stats
        self.last_record: float | None = None  # trio time
        self.connected = 0
        self.port: int | None = None  # the bound port in listen mode
        self.last_error: str | None = None

    # -- one connection, whichever side opened it --------------------------------------------------
    async def read_stream(self, stream: trio.abc.Stream, peer: str) -> None:
        splitter = LineSplitter(self.config.max_line)
        self.connected += 1
        try:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, OSError) as exc:
                    self.stats.error("smdr", "broken", "%s: connection broken: %s", peer, exc)
                    break
                if not data:
                    break
                oversized = splitter.oversized
                for line in splitter.feed(data):
                    await self._line(line, peer)
                if splitter.oversized > oversized:
                    self.stats.error("smdr", "oversized", "%s: a line over %d bytes skipped", peer,
                                     self.config.max_line)
            rest = splitter.pending()
            if rest:
                self.stats.error("smdr", "truncated", "%s: closed mid-record; partial line dropped: %r",
                                 peer, rest[:120])
        finally:
            self.connected -= 1

    async def _line(self, line: bytes, peer: str) -> None:
        text = decode(line)
        try:
            record = parse_record(text)
        except SmdrError as exc:
            self.stats.error("smdr", "bad_line", "%s: line skipped (%s): %r", peer, exc, text[:160])
            return
        self.stats.records["smdr"] += 1
        self.last_record = trio.current_time()
        try:
            await self.on_record(record)  # store outages are retried and counted inside (connector._submit)
        except Exception as exc:  # our bug on this record: skip it, keep the records behind it
            log.exception("%s: smdr: record from %s failed: %r", self.instance, peer, text[:160])
            self.stats.error("smdr", "internal", "%s: record skipped (%s: %s)", peer, type(exc).__name__, exc)

    # -- listen mode -----------------------------------------------------------------------------
    async def serve(self, host: str, port: int, *, check_peer: bool = True,
                    task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host or None)
        bound = listeners[0].socket.getsockname()[1]
        task_status.started(bound)

        async def handler(stream: trio.SocketStream) -> None:
            peer = _peer(stream)
            if check_peer and not self._allowed(peer):
                self.stats.error("smdr", "refused_peer", "connection from %s refused (not the unit)", peer)
                await stream.aclose()
                return
            log.info("%s: smdr: %s connected", self.instance, peer)
            try:
                async with stream:
                    await self.read_stream(stream, peer)
            except Exception as exc:  # one connection's failure never stops the listener
                log.exception("%s: smdr connection from %s failed", self.instance, peer)
                self.stats.error("smdr", "internal", "%s: %s", peer, exc)

        await trio.serve_listeners(handler, listeners)

    def _allowed(self, peer: str) -> bool:
        allowed = self.config.allowed_peers or [self.host]
        address = peer.rsplit(":", 1)[0].strip("[]")
        for entry in allowed:
            try:
                if ipaddress.ip_address(address) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                if entry == address:
                    return True
        return False

    async def run_listen(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        host, port = self.config.listen_address()
        async with trio.open_nursery() as nursery:
            self.port = await nursery.start(self.serve, host, port)
            task_status.started(self.port)

    # -- connect mode ----------------------------------------------------------------------------
    async def run_connect(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        delay = self.config.backoff_initial
        port = self.config.port
        while True:
            try:
                stream = await trio.open_tcp_stream(self.host, port)
            except OSError as exc:
                self.last_error = f"cannot connect to {self.host}:{port}: {exc}"
                self.stats.error("smdr", "connect", "%s", self.last_error)
            else:
                self.last_error = None
                delay = self.config.backoff_initial
                try:
                    async with stream:
                        await self.read_stream(stream, f"{self.host}:{port}")
                except Exception as exc:  # our own bug: log, count, reconnect
                    log.exception("%s: smdr stream failed", self.instance)
                    self.stats.error("smdr", "internal", "%s", exc)
                self.stats.error("smdr", "closed", "%s:%s closed the SMDR link (reconnecting)", self.host, port)
            await trio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.config.backoff_max)


def _peer(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
        return f"{host}:{port}"
    except (OSError, AttributeError):
        return "?"
