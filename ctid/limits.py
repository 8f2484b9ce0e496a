"""Input limits at ctid's boundary: JSON decoding that every entry (webhooks, REST, hub) shares.

Every JSON document a client sends is decoded here, once, with the same rules (docs/input-limits.md):

- UTF-8 only (``json.loads`` of bytes would also take UTF-16 and UTF-32), and no lone surrogate
  code points (``"\\udc00"``): Python keeps them in ``str``, but no database driver, log handler or
  JSON encoder downstream can write them, so they would fail *after* the request was accepted;
  no NUL (``"\\u0000"``) either: PostgreSQL text cannot hold it (SQLite can, so only production failed);
- nesting at most :data:`MAX_DEPTH` levels (deeper input made the C decoder raise RecursionError);
- numbers of at most :data:`MAX_NUMBER_CHARS` characters (thousands of digits made ``int()`` raise
  ValueError, and cost quadratic time), no ``NaN`` / ``Infinity`` (not JSON);
- strings and keys of at most :data:`MAX_STRING_CHARS` characters.

A violation raises :class:`~ctid.errors.RequestError` with a stable ``error`` id (HTTP 400), so it
is refused before anything is acknowledged. The checks that walk the decoded value run only when the
raw text could break a rule (cheap tests on the bytes first): a webhook pays a few microseconds.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from ctid.errors import RequestError

MAX_DEPTH = 32
MAX_NUMBER_CHARS = 100
MAX_STRING_CHARS = 65_536

#: Stable error ids of this module (documented in docs/input-limits.md).
BAD_ENCODING = "bad_encoding"
BAD_JSON = "bad_json"
TOO_DEEP = "too_deep"
NUMBER_TOO_LONG = "number_too_long"
STRING_TOO_LONG = "string_too_long"

_INF = float("inf")
# escapes of a surrogate or of NUL: only they make text _check_string refuses (raw ones are not JSON)
_SURROGATE_ESCAPE = re.compile(rb"\\u(?:[dD][89abcdefABCDEF]|0000)")
_SURROGATE_ESCAPE_TEXT = re.compile(r"\\u(?:[dD][89abcdefABCDEF]|0000)")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_NUL = "text holds a NUL character (U+0000), which PostgreSQL cannot store"


class LimitError(RequestError):
    """Input that breaks one of ctid's input limits (HTTP 400)."""


def ascii_digits(text: str) -> bool:
    """True when ``text`` is one or more ASCII digits 0-9: the test before ``int(text)`` on input from
    outside. ``str.isdigit()`` alone also holds for superscripts (``"³"``, which ``int()`` refuses with
    ValueError) and for other scripts' digits (``"٣"``, which ``int()`` silently reads as 3)."""
    return text.isascii() and text.isdigit()


def parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise LimitError(f"a number has more than {MAX_NUMBER_CHARS} characters", error_id=NUMBER_TOO_LONG)
    return int(text)


def parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise LimitError(f"a number has more than {MAX_NUMBER_CHARS} characters", error_id=NUMBER_TOO_LONG)
    value = float(text)
    if value in (_INF, -_INF):
        raise LimitError(f"{text} is out of a number's range", error_id=NUMBER_TOO_LONG)
    return value


def parse_constant(name: str) -> Any:
    raise LimitError(f"{name} is not a JSON number", error_id=BAD_JSON)


def decode_text(body: bytes) -> str:
    """``body`` as UTF-8 (a BOM is refused too: JSON senders must not add one, RFC 8259 §8.1)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LimitError(f"body is not UTF-8: {exc.reason} at byte {exc.start}", error_id=BAD_ENCODING) from exc
    if text.startswith("\ufeff"):
        raise LimitError("body starts with a byte order mark; send UTF-8 without one", error_id=BAD_ENCODING)
    return text


def loads(body: bytes | str) -> Any:
    """Decode a JSON document under ctid's input limits; :class:`LimitError` (400) when it breaks one,
    ``RequestError("bad_json")`` when it is not JSON."""
    if isinstance(body, str):
        text = clean_text(body, limit=len(body))  # a str may hold lone surrogates unescaped
        raw = body.encode("utf-8")
    else:
        text, raw = decode_text(body), body
    try:
        value = json.loads(text, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant)
    except RecursionError as exc:
        raise LimitError(f"JSON nested deeper than {MAX_DEPTH} levels", error_id=TOO_DEEP) from exc
    except json.JSONDecodeError as exc:
        raise RequestError(f"body is not JSON: {exc}", error_id=BAD_JSON) from exc
    check(value, raw)
    return value


def check(value: Any, raw: bytes | None = None) -> None:
    """Check a decoded JSON ``value`` against the limits on depth, strings and surrogates.

    With ``raw`` (the bytes it was decoded from) the walk is skipped when the bytes show it cannot
    break a rule: few brackets, no surrogate escape, a short body.
    """
    if raw is not None and (raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH and len(raw) <= MAX_STRING_CHARS
                            and not _SURROGATE_ESCAPE.search(raw)):
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise LimitError(f"JSON nested deeper than {MAX_DEPTH} levels", error_id=TOO_DEEP)
            if isinstance(item, dict):
                for key, member in item.items():
                    _check_string(key)
                    stack.append((member, depth + 1))
            else:
                stack.extend((member, depth + 1) for member in item)


def check_text(value: Any, text: str) -> None:
    """:func:`check` for a value decoded from the str ``text`` (hub records: wsproto already
    refused text frames that are not UTF-8, so only escapes can make lone surrogates)."""
    if (text.count("[") + text.count("{") <= MAX_DEPTH and len(text) <= MAX_STRING_CHARS
            and not _SURROGATE_ESCAPE_TEXT.search(text)):
        return
    check(value)


def _check_string(text: str) -> None:
    if len(text) > MAX_STRING_CHARS:
        raise LimitError(f"a string has more than {MAX_STRING_CHARS} characters", error_id=STRING_TOO_LONG)
    if _LONE_SURROGATE.search(text):
        raise LimitError("a string holds a lone surrogate code point (not Unicode text)", error_id=BAD_ENCODING)
    if "\x00" in text:
        raise LimitError(_NUL, error_id=BAD_ENCODING)


def looks_like_json(body: bytes, content_type: str) -> bool:
    """Whether a webhook body claims to be JSON (its type, or a first byte ``{`` / ``[``)."""
    return "json" in content_type or body.lstrip()[:1] in (b"{", b"[")


def screen_json(body: bytes, content_type: str) -> Any:
    """The core's check of a webhook body before its connector sees it.

    A body that looks like JSON and decodes as JSON must keep the limits (else :class:`LimitError`);
    its value is returned for the connector (``WebhookRequest.json()``). Anything else (a form, a
    body that is not valid JSON or not UTF-8) returns ``None``: the connector parses and answers it
    in its PBX's own way, and what it finds there is checked again when events are made.
    """
    if not body or not looks_like_json(body, content_type):
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        return loads(text)
    except LimitError:
        raise
    except RequestError:
        return None


def form_pairs(raw: bytes | str, *, strict_parsing: bool = False) -> list[tuple[str, str]]:
    """The ``name=value`` pairs of a query string or an ``application/x-www-form-urlencoded`` body,
    in order. Raw bytes and percent-escapes must be UTF-8 (no lone surrogates) and no name or value
    may hold a NUL: anything else is :class:`LimitError` ``bad_encoding``, as in a JSON body
    (``parse_qsl`` alone turns bad bytes into U+FFFD and the request would be taken with altered
    text). ``ValueError`` when ``strict_parsing`` and a pair has no ``=``."""
    try:
        text = decode_text(raw) if isinstance(raw, bytes) else raw
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=strict_parsing, encoding="utf-8",
                          errors="strict")
    except UnicodeDecodeError as exc:
        raise LimitError(f"a form or query value is not UTF-8: {exc.reason}", error_id=BAD_ENCODING) from exc
    if "\x00" in text or "%00" in text:  # cheap test first: a NUL comes raw or as %00
        for name, value in pairs:
            if "\x00" in name or "\x00" in value:
                raise LimitError(_NUL, error_id=BAD_ENCODING)
    return pairs


def query_args(raw: bytes) -> dict[str, str]:
    """A request's query string as ``{name: first value}`` (as Quart's ``request.args``), refusing
    what :func:`form_pairs` refuses."""
    args: dict[str, str] = {}
    for name, value in form_pairs(raw):
        args.setdefault(name, value)
    return args


def check_target(raw_path: bytes | None, query_string: bytes) -> None:
    """Hold a request's path and query string to the text rules before any handler reads them:
    percent-escapes must be UTF-8 and no name or value may hold a NUL or a lone surrogate, else
    :class:`LimitError` ``bad_encoding``. The HTTP stack alone would decode ``%FF`` into U+FFFD (the
    request taken with altered text) and pass ``%00`` on (PostgreSQL refuses it: a 503 blaming the
    database). ``raw_path`` is the ASGI scope's, as received (``None`` where a server gives none)."""
    if raw_path is not None:
        try:
            path = unquote_to_bytes(raw_path).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LimitError(f"the path is not UTF-8: {exc.reason}", error_id=BAD_ENCODING) from exc
        if "\x00" in path:
            raise LimitError("the path holds a NUL (U+0000)", error_id=BAD_ENCODING)
    form_pairs(query_string)


def clean_text(text: str, limit: int = MAX_STRING_CHARS) -> str:
    """A string from outside that is about to be kept (event fields, headers): refused when it holds
    lone surrogates or is longer than ``limit``."""
    if len(text) > limit:
        raise LimitError(f"a value has more than {limit} characters", error_id=STRING_TOO_LONG)
    if _LONE_SURROGATE.search(text):
        raise LimitError("a value holds a lone surrogate code point (not Unicode text)", error_id=BAD_ENCODING)
    if "\x00" in text:
        raise LimitError(_NUL, error_id=BAD_ENCODING)
    return text
