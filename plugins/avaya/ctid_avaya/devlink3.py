"""DevLink3 wire format: frames, packets, tuples and the login hash (reference §2.4).

Big-endian throughout. A frame is ``0x49``, the total length (header included) in 2 bytes, or in 3
bytes with the top bit set when it exceeds 0x7FFF, then the payload: packet type (4), request id
(4, absent on events) and the body. Used by the client and by the fake IP Office alike.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

DISCRIMINATOR = 0x49
MAX_FRAME = 1 << 20  # far above any Delta3 record; a bigger length means the stream is corrupt

TEST = 0x002A0001
TEST_R = 0x802A0001
AUTHENTICATE = 0x00300001
AUTHENTICATE_R = 0x80300001
EVENT_REQUEST = 0x00300011
EVENT_REQUEST_R = 0x80300011
EVENT = 0x10300011
READ_FILE = 0x00300041
READ_FILE_R = 0x80300041

AUTH_REQUEST = 0x00000001
AUTH_SHA1_CHALLENGE = 0x00000002
AUTH_PLAIN_CHALLENGE = 0x00000001  # the result field of AuthenticateR over TLS [doc]
AUTH_SHA1_RESPONSE = 0x00000050
AUTH_PLAIN_RESPONSE = 0x00000051
TUPLE_APP_NAME = 0x007E0001
TUPLE_PBX_TYPE = 0x007D0001
TUPLE_DEVLINK_VARIANT = 0x007D0002
TUPLE_DELTA3 = 0x00760001
TUPLE_SIPTRACK = 0x00760003
TUPLE_CMEXTN = 0x00760004

RESULTS = {
    0x00000000: "success",
    0x00000009: "partial success",
    0x80000001: "payload too long",
    0x80000002: "stream integrity lost",
    0x80000003: "earlier auth failed",
    0x80000021: "unknown flag",
    0x80000022: "insufficient licence",
    0x80000023: "feature not available",
    0x80000041: "auth failed",
    0x80000042: "limits exceeded",
    0x80000043: "retry later",
    0x80000044: "licence missing",
}


class FrameError(ValueError):
    """The byte stream is not DevLink3 (bad discriminator or length): the connection is unusable."""


def result_text(code: int) -> str:
    return f"0x{code:08X} {RESULTS.get(code, 'unknown result')}"


def encode_frame(payload: bytes) -> bytes:
    total = len(payload) + 3
    if total <= 0x7FFF:
        return bytes([DISCRIMINATOR]) + total.to_bytes(2, "big") + payload
    total = len(payload) + 4
    return bytes([DISCRIMINATOR, 0x80 | (total >> 15), (total >> 8) & 0x7F, total & 0xFF]) + payload


class FrameReader:
    """Accumulates received bytes and yields whole payloads, whatever the TCP segmentation."""

    def __init__(self, max_frame: int = MAX_FRAME):
        self._buffer = bytearray()
        self.max_frame = max_frame
        #: set once the stream is corrupt; frames decoded before the bad bytes were still returned
        self.error: FrameError | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Whole payloads in ``data`` (plus what was buffered). On corrupt bytes, returns the frames
        before them and sets :attr:`error`: the connection must then be dropped."""
        if self.error is not None:
            return []
        self._buffer += data
        frames: list[bytes] = []
        try:
            self._split(frames)
        except FrameError as exc:
            self.error = exc
            self._buffer.clear()
        return frames

    def _split(self, frames: list[bytes]) -> None:
        while self._buffer:
            if self._buffer[0] != DISCRIMINATOR:  # checked on the first byte: no waiting for a length
                raise FrameError(f"frame starts with 0x{self._buffer[0]:02X}, not 0x49")
            if len(self._buffer) < 3:
                break
            if self._buffer[1] & 0x80:
                if len(self._buffer) < 4:
                    break
                header = 4
                total = ((self._buffer[1] & 0x7F) << 15) | (self._buffer[2] << 8) | self._buffer[3]
            else:
                header = 3
                total = (self._buffer[1] << 8) | self._buffer[2]
            if total < header + 4 or total > self.max_frame:
                raise FrameError(f"frame length {total} is impossible")
            if len(self._buffer) < total:
                break
            frames.append(bytes(self._buffer[header:total]))
            del self._buffer[:total]

    def pending(self) -> int:
        """Bytes of an unfinished frame."""
        return len(self._buffer)


@dataclass(frozen=True, slots=True)
class Packet:
    type: int
    request_id: int | None
    body: bytes


def encode_packet(ptype: int, request_id: int | None, body: bytes = b"") -> bytes:
    head = struct.pack(">I", ptype) + (struct.pack(">I", request_id) if request_id is not None else b"")
    return encode_frame(head + body)


def decode_packet(payload: bytes) -> Packet:
    if len(payload) < 4:
        raise FrameError("packet shorter than its type")
    (ptype,) = struct.unpack_from(">I", payload)
    if ptype == EVENT:  # no request id: PBX IP and counter follow
        return Packet(ptype, None, payload[4:])
    if len(payload) < 8:
        raise FrameError(f"packet 0x{ptype:08X} has no request id")
    (request_id,) = struct.unpack_from(">I", payload, 4)
    return Packet(ptype, request_id, payload[8:])


def sha1_response(challenge: bytes, password: str) -> bytes:
    """SHA1(challenge ‖ password as UTF-8, cut to 16 bytes and zero-padded to 16) [doc]."""
    secret = password.encode("utf-8")[:16].ljust(16, b"\x00")
    return hashlib.sha1(challenge + secret).digest()


def plain_response(password: str) -> bytes:
    return struct.pack(">II", AUTH_PLAIN_RESPONSE, 32) + password.encode("utf-8")[:32].ljust(32, b"\x00")


def auth_request(username: str, app_name: str = "") -> bytes:
    body = struct.pack(">I", AUTH_REQUEST) + username.encode("utf-8") + b"\x00"
    if app_name:
        name = app_name.encode("utf-8") + b"\x00"
        body += struct.pack(">IH", TUPLE_APP_NAME, len(name)) + name
    return body


def event_request(flags: str) -> bytes:
    # Spec: len16 = length of the flags including the NUL. Avaya's C# sample halves it; which one a
    # real unit accepts is unverified [guess].
    text = flags.encode("ascii") + b"\x00"
    return struct.pack(">H", len(text)) + text


def parse_tuples(data: bytes) -> list[tuple[int, bytes]]:
    """``type32, len16, data`` tuples; ``len16`` counts the data bytes [guess]. Raises on truncation."""
    tuples = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 6:
            raise FrameError("truncated tuple header")
        ttype, length = struct.unpack_from(">IH", data, offset)
        offset += 6
        if offset + length > len(data):
            raise FrameError(f"tuple 0x{ttype:08X} claims {length} bytes, {len(data) - offset} left")
        tuples.append((ttype, data[offset: offset + length]))
        offset += length
    return tuples


def encode_tuple(ttype: int, data: bytes) -> bytes:
    return struct.pack(">IH", ttype, len(data)) + data


def event_body(pbx_ip: bytes, counter: int, delta3: list[str]) -> bytes:
    body = pbx_ip + struct.pack(">I", counter)
    for text in delta3:
        body += encode_tuple(TUPLE_DELTA3, text.encode("utf-8") + b"\x00")
    return body


def delta3_texts(body: bytes) -> tuple[str, int, list[str]]:
    """An Event body -> (PBX IP, counter, Delta3 texts)."""
    if len(body) < 8:
        raise FrameError("event shorter than its PBX address and counter")
    ip = ".".join(str(b) for b in body[:4])
    (counter,) = struct.unpack_from(">I", body, 4)
    texts = []
    for ttype, data in parse_tuples(body[8:]):
        if ttype == TUPLE_DELTA3:
            texts.append(data.rstrip(b"\x00").decode("utf-8", errors="replace"))
    return ip, counter, texts
