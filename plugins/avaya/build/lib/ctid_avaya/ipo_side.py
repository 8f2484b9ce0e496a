"""The IP Office side of a DevLink3 connection: login check, EventRequest, Test answers, events.

Used by the fake IP Office of the tests and by ``ctid simulate-call``, which plays the unit
towards a running ctid. Strict as the reference allows: nothing is sent before the client speaks,
only Test is answered before login, a wrong password or unknown user gets ``0x80000041``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

import trio

from ctid_avaya import devlink3 as d3


class SessionClosed(Exception):
    pass


@dataclass
class IpoSession:
    stream: trio.abc.Stream
    users: dict[str, str]
    plain: bool = False  # ask for the PLAIN password (TLS only, as IP Office does)
    pbx_ip: bytes = b"\x7f\x00\x00\x01"
    pbx_type: str = "Avaya IP500v2 11.1.3.0 build 7"
    accepted_flags: frozenset[str] = frozenset({"", "-SIPTrack", "-CMExtn", "-CONN", "-SCN", "-CD2", "-TEXT"})
    refuse_login: int | None = None  # e.g. 0x80000042 limits exceeded, 0x80000044 licence missing
    answer_tests: bool = True
    username: str | None = None
    authenticated: bool = False
    subscribed: bool = False
    counter: int = 0
    tests: int = 0
    _reader: d3.FrameReader = field(default_factory=d3.FrameReader)
    _packets: list[d3.Packet] = field(default_factory=list)
    _send_lock: trio.Lock = field(default_factory=trio.Lock)

    async def _next(self) -> d3.Packet:
        while not self._packets:
            if self._reader.error is not None:
                raise SessionClosed(f"client sent corrupt bytes: {self._reader.error}")
            data = await self.stream.receive_some(65536)
            if not data:
                raise SessionClosed("client closed")
            for payload in self._reader.feed(data):
                self._packets.append(d3.decode_packet(payload))
        return self._packets.pop(0)

    async def _send(self, ptype: int, request_id: int | None, body: bytes) -> None:
        async with self._send_lock:
            await self.stream.send_all(d3.encode_packet(ptype, request_id, body))

    async def _answer_test(self, packet: d3.Packet) -> None:
        self.tests += 1
        if self.answer_tests:
            length = struct.unpack_from(">I", packet.body)[0] if len(packet.body) >= 4 else 0
            payload = packet.body[4:4 + length]
            await self._send(d3.TEST_R, packet.request_id, struct.pack(">II", 0, len(payload)) + payload)

    async def handshake(self) -> None:
        """Login and EventRequest; returns once subscribed. Raises SessionClosed on refusal."""
        challenge = os.urandom(16)
        while not self.subscribed:
            packet = await self._next()
            if packet.type == d3.TEST:
                await self._answer_test(packet)
            elif packet.type == d3.AUTHENTICATE:
                await self._authenticate(packet, challenge)
            elif packet.type == d3.EVENT_REQUEST and self.authenticated:
                length = struct.unpack_from(">H", packet.body)[0]
                flags = packet.body[2:2 + length].rstrip(b"\x00").decode("ascii", errors="replace")
                if any(flag not in self.accepted_flags for flag in flags.split()) and flags:
                    await self._send(d3.EVENT_REQUEST_R, packet.request_id, struct.pack(">IH", 0x80000021, 0))
                    continue
                text = flags.encode() + b"\x00"
                await self._send(d3.EVENT_REQUEST_R, packet.request_id, struct.pack(">IH", 0, len(text)) + text)
                self.subscribed = True
            else:  # anything else before login: IP Office answers "earlier auth failed" [guess] and closes
                await self._send(packet.type | 0x80000000, packet.request_id, struct.pack(">I", 0x80000003))
                raise SessionClosed(f"request 0x{packet.type:08X} before login")

    async def _authenticate(self, packet: d3.Packet, challenge: bytes) -> None:
        (kind,) = struct.unpack_from(">I", packet.body)
        if kind == d3.AUTH_REQUEST:
            self.username = packet.body[4:].split(b"\x00", 1)[0].decode("utf-8", errors="replace")
            if self.refuse_login is not None:
                await self._send(d3.AUTHENTICATE_R, packet.request_id, struct.pack(">I", self.refuse_login))
                raise SessionClosed("login refused")
            if self.plain:
                await self._send(d3.AUTHENTICATE_R, packet.request_id, struct.pack(">I", d3.AUTH_PLAIN_CHALLENGE))
            else:
                await self._send(d3.AUTHENTICATE_R, packet.request_id,
                                 struct.pack(">II", d3.AUTH_SHA1_CHALLENGE, 16) + challenge)
            return
        password = self.users.get(self.username or "")
        if kind == d3.AUTH_SHA1_RESPONSE and not self.plain:
            good = password is not None and packet.body[8:28] == d3.sha1_response(challenge, password)
        elif kind == d3.AUTH_PLAIN_RESPONSE and self.plain:
            good = password is not None and packet.body[8:40] == password.encode()[:32].ljust(32, b"\x00")
        else:
            good = False
        if not good:
            await self._send(d3.AUTHENTICATE_R, packet.request_id, struct.pack(">I", 0x80000041))
            raise SessionClosed("auth failed")
        name = self.pbx_type.encode() + b"\x00"
        await self._send(d3.AUTHENTICATE_R, packet.request_id,
                         struct.pack(">I", 0) + d3.encode_tuple(d3.TUPLE_PBX_TYPE, name))
        self.authenticated = True

    async def send_delta3(self, *texts: str) -> None:
        self.counter += 1
        await self._send(d3.EVENT, None, d3.event_body(self.pbx_ip, self.counter, list(texts)))

    async def send_raw(self, data: bytes) -> None:
        async with self._send_lock:
            await self.stream.send_all(data)

    async def serve_tests(self) -> None:
        """After the handshake: answer Test packets until the client closes."""
        while True:
            packet = await self._next()
            if packet.type == d3.TEST:
                await self._answer_test(packet)
