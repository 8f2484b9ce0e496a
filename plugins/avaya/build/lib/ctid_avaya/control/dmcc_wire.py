"""DMCC XML framing (reference §3.3): version (2 bytes, 0), total length incl. the 8-byte header
(2 bytes, big-endian), invokeID (4 ASCII digits; events use 9999), then the XML payload."""

from __future__ import annotations

import struct

from lxml import etree

EVENT_INVOKE = 9999
CSTA_NS = "http://www.ecma-international.org/standards/ecma-323/csta/ed3"
SESSION_NS = "http://www.ecma-international.org/standards/ecma-354/appl_session"
AVAYA_NS = "http://www.avaya.com/csta"
MAX_MESSAGE = 1 << 20


class WireError(ValueError):
    pass


def encode(invoke: int, xml: str) -> bytes:
    payload = xml.encode("utf-8")
    return struct.pack(">HH", 0, len(payload) + 8) + f"{invoke:04d}".encode() + payload


class Reader:
    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Whole messages as (invokeID, XML bytes); raises WireError on a corrupt header."""
        self._buffer += data
        out = []
        while len(self._buffer) >= 8:
            version, length = struct.unpack_from(">HH", self._buffer)
            invoke = bytes(self._buffer[4:8])
            if version != 0 or length < 8 or length > MAX_MESSAGE or not invoke.isdigit():
                raise WireError(f"bad DMCC header {bytes(self._buffer[:8])!r}")
            if len(self._buffer) < length:
                break
            out.append((int(invoke), bytes(self._buffer[8:length])))
            del self._buffer[:length]
        return out

    def pending(self) -> int:
        return len(self._buffer)


def parse(xml: bytes):
    try:
        return etree.fromstring(xml)
    except etree.XMLSyntaxError as exc:
        raise WireError(f"not XML: {exc}") from exc


def local(element) -> str:
    return etree.QName(element).localname


def find(element, *names: str):
    """The first descendant with the given local names in path order (namespace-agnostic)."""
    current = element
    for name in names:
        current = next((e for e in current.iter() if isinstance(e.tag, str) and local(e) == name
                        and e is not current), None)
        if current is None:
            return None
    return current


def text(element, *names: str) -> str | None:
    found = find(element, *names)
    return found.text.strip() if found is not None and found.text else None


def esc(value: str) -> str:
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))
