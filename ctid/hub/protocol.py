"""The ASP.NET Core SignalR JSON hub protocol without I/O: record framing, handshake, message codecs.

Wire facts (see docs/hub-protocol.md): every record is one JSON object followed by the record
separator 0x1E; a WebSocket frame may carry several records, and a record may be split across
frames. Message types: 1 Invocation, 2 StreamItem, 3 Completion, 4 StreamInvocation,
5 CancelInvocation, 6 Ping, 7 Close, 8 Ack, 9 Sequence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from ctid import limits

RS = "\x1e"

INVOCATION = 1
STREAM_ITEM = 2
COMPLETION = 3
STREAM_INVOCATION = 4
CANCEL_INVOCATION = 5
PING = 6
CLOSE = 7
ACK = 8
SEQUENCE = 9

#: Hub protocol versions of the "json" protocol we accept (signalrcore sends 0, JS sends 1, 2 = stateful).
SUPPORTED_VERSIONS = (0, 1, 2)

PING_RECORD = '{"type":6}' + RS
HANDSHAKE_OK = "{}" + RS


class ProtocolError(Exception):
    """The peer broke the protocol; the connection is closed with this message as the Close error."""


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is (orjson: every pop is encoded on the hot path, several
    times faster than the standard library's encoder)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:  # text that is not Unicode (lone surrogates): escaped, never a crash
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str)


def _loads(text: str) -> Any:
    """JSON under ctid's input limits (ctid/limits.py): numbers of at most 100 characters, nesting
    at most 32 levels; a violation is a ProtocolError like any malformed record."""
    try:
        return json.loads(text, parse_int=limits.parse_int, parse_float=limits.parse_float,
                          parse_constant=limits.parse_constant)
    except RecursionError:
        raise ProtocolError(f"Error parsing message: nested deeper than {limits.MAX_DEPTH} levels.") from None
    except limits.LimitError as exc:
        raise ProtocolError(f"Error parsing message: {exc}.") from None


def record(message: dict[str, Any]) -> str:
    """One message as a framed record."""
    return dumps(message) + RS


class RecordBuffer:
    """Splits incoming text on 0x1E, keeping a partial tail for the next frame.

    ``max_bytes`` bounds one record (and therefore the tail); a longer one raises ProtocolError.
    """

    __slots__ = ("max_bytes", "_tail")

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._tail = ""

    def feed(self, text: str) -> list[str]:
        data = self._tail + text if self._tail else text
        *records, self._tail = data.split(RS)
        limit = self.max_bytes
        for item in (*records, self._tail):
            # a character is at most 4 bytes in UTF-8: only a long record needs encoding to be measured
            if len(item) * 4 > limit and len(item.encode("utf-8")) > limit:
                raise ProtocolError(f"Message exceeds the maximum size of {limit} bytes.")
        return records

    @property
    def pending(self) -> bool:
        return bool(self._tail)


def parse_handshake(text: str) -> int:
    """Validate a handshake request record; return the protocol version or raise ProtocolError
    with the text ASP.NET uses (sent back as ``{"error": ...}``)."""
    try:
        message = _loads(text)
        limits.check_text(message, text)
    except (ValueError, ProtocolError, limits.LimitError):
        raise ProtocolError("An unexpected error occurred during connection handshake.") from None
    if not isinstance(message, dict):
        raise ProtocolError("An unexpected error occurred during connection handshake.")
    protocol = message.get("protocol")
    version = message.get("version")
    if not isinstance(protocol, str) or isinstance(version, bool) or not isinstance(version, int):
        raise ProtocolError("An unexpected error occurred during connection handshake.")
    if protocol != "json":
        raise ProtocolError(f"The protocol '{protocol}' is not supported.")
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolError(f"The server does not support version {version} of the '{protocol}' protocol.")
    return version


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded hub message; ``raw`` keeps the fields other than ``headers`` (which are dropped
    on purpose: signalrcore copies its bearer token into them, so they are never kept or logged)."""

    type: int
    raw: dict[str, Any]
    refused: limits.LimitError | None = None  # arguments break ctid's input limits: answered, not run

    @property
    def invocation_id(self) -> str | None:
        value = self.raw.get("invocationId")
        return value if isinstance(value, str) else None

    @property
    def target(self) -> str:
        return self.raw.get("target", "")

    @property
    def arguments(self) -> list[Any]:
        return self.raw.get("arguments", [])


def parse_message(text: str) -> Message:
    """Decode one record (without its separator). Raises ProtocolError for anything malformed."""
    try:
        message = _loads(text)
    except ValueError:
        raise ProtocolError("Error parsing message: invalid JSON.") from None
    if not isinstance(message, dict):
        raise ProtocolError("Error parsing message: a message must be a JSON object.")
    message.pop("headers", None)
    refused = None
    try:
        limits.check_text(message, text)
    except limits.LimitError as exc:
        # The fields of the protocol itself must be text; bad arguments get a completion error.
        arguments = message.pop("arguments", None)
        try:
            limits.check(message)
        except limits.LimitError:
            raise ProtocolError(f"Error parsing message: {exc}.") from None
        message["arguments"] = arguments if isinstance(arguments, list) else []
        refused = exc
    kind = message.get("type")
    if isinstance(kind, bool) or not isinstance(kind, int):
        raise ProtocolError("Error parsing message: missing or invalid 'type'.")
    if kind in (INVOCATION, STREAM_INVOCATION):
        if not isinstance(message.get("target"), str) or not message["target"]:
            raise ProtocolError("Error parsing message: missing or invalid 'target'.")
        if not isinstance(message.get("arguments", []), list):
            raise ProtocolError("Error parsing message: 'arguments' must be an array.")
        if "invocationId" in message and not isinstance(message["invocationId"], str):
            raise ProtocolError("Error parsing message: 'invocationId' must be a string.")
    elif kind in (COMPLETION, STREAM_ITEM, CANCEL_INVOCATION):
        if not isinstance(message.get("invocationId"), str):
            raise ProtocolError("Error parsing message: missing or invalid 'invocationId'.")
        if kind == COMPLETION and "result" in message and "error" in message:
            raise ProtocolError("Error parsing message: a completion has both 'result' and 'error'.")
    return Message(kind, message, refused)


def invocation(target: str, arguments: list[Any], invocation_id: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": INVOCATION, "target": target, "arguments": arguments}
    if invocation_id is not None:
        message["invocationId"] = invocation_id
    return message


def completion(invocation_id: str, *, result: Any = None, error: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": COMPLETION, "invocationId": invocation_id}
    if error is not None:
        message["error"] = error
    elif result is not None:
        message["result"] = result
    return message


def close(error: str | None = None, *, allow_reconnect: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"type": CLOSE}
    if error is not None:
        message["error"] = error
    if allow_reconnect:
        message["allowReconnect"] = True
    return message
