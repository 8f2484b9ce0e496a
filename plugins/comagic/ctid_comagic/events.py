"""Parsing CoMagic notifications (rendered from ctid's templates) and turning them into call events.

A notification is a JSON body (POST) or a query string (GET) rendered from one of
:mod:`ctid_comagic.templates`. Every variable is checked against its documented type; a variable
no template has, a missing required one, or one the platform left unrendered (``{{name}}``) is an
:class:`InvalidNotification` naming the field, which the connector answers with 400.

Times are account-local without an offset (reference §1.4, §5.2): they are read in the account's
time zone from ``get.account`` (never assumed). Until that zone is known an event carries no ``at``
(the core orders it by receipt) and keeps the local text in ``extra.local_time``.

Mapping (reference §6): inbound call → ``ring`` of the caller's leg; waiting for answer → ``ring``
of the employee's leg; talk started → ``answer``; talk ended → ``leg_end``; call finished and
lost call → ``end``; outbound call → ``ring`` of the employee's outbound leg; recording ready →
``facts`` (it changes nothing but the recording). There is no transfer notification [guess §1.3]: a later
talk by another employee is a transfer to the core (docs/call-model.md §4), and transfers ctid makes
through the Call API are emitted by the connector itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from ctid.model import CallEvent, Direction, EventKind
from ctid.phone import normalize
from ctid_comagic.templates import KINDS, VARIABLES, unrendered

MAX_BODY = 64 * 1024
MAX_TEXT = 500

#: Variable types: id (integer, also as digits), int (seconds), text, phone, time, ids, texts, bool, url.
TYPES: dict[str, str] = {
    "notification_name": "text", "notification_mnemonic": "text", "notification_time": "time",
    "call_session_id": "id", "virtual_phone_number": "phone", "contact_phone_number": "phone",
    "communication_number": "phone", "scenario_name": "text", "contact_id": "id", "contact_full_name": "text",
    "external_id": "text", "employee_full_name": "text", "employee_id": "id", "call_source": "text",
    "direction": "direction", "leg_id": "id", "leg_ids": "ids", "talk_time_duration": "int",
    "total_time_duration": "int", "wait_time_duration": "int", "tag_names": "texts", "tag_ids": "ids",
    "employee_ids": "ids", "file_link": "url", "file_duration": "int", "employee_phone_number": "phone",
    # seen in the wild (reference §1.3), accepted for admins who add them
    "is_transfer": "bool", "last_talked_employee_id": "id", "notification_timestamp": "int",
    "start_time": "time", "called_phone_number": "phone", "calling_phone_number": "phone",
    "extension_phone_number": "phone", "call_status": "text",
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "inbound_call": ("call_session_id", "notification_time", "contact_phone_number"),
    "waiting": ("call_session_id", "notification_time", "employee_id"),
    "talk_started": ("call_session_id", "notification_time", "employee_id"),
    "talk_ended": ("call_session_id", "notification_time", "employee_id"),
    "call_finished": ("call_session_id", "notification_time"),
    "lost_call": ("call_session_id", "notification_time"),
    "recording_ready": ("call_session_id", "file_link"),
    "outbound": ("call_session_id", "notification_time", "employee_id", "contact_phone_number"),
}
assert set(REQUIRED) == set(KINDS) and all(set(v) <= set(TYPES) for v in VARIABLES.values())
_CONTROL = ("ctid_event", "ctid_secret")
_TIME_FORMS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S")


class InvalidNotification(ValueError):
    """A notification ctid cannot read; the message names the field (answered with 400)."""


@dataclass(slots=True)
class Notification:
    kind: str
    secret: str
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def session(self) -> str:
        return str(self.values["call_session_id"])

    def get(self, name: str) -> Any:
        return self.values.get(name)


def _decode(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY:
        raise InvalidNotification(f"body: larger than {MAX_BODY} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidNotification("body: not UTF-8") from exc
    name = unrendered(text)
    if name is not None:
        raise InvalidNotification(f"{name}: the template variable {{{{{name}}}}} was not rendered "
                                  "(not a variable of this event in the cabinet)")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidNotification(f"body: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidNotification("body: must be a JSON object")
    return data


def parse(method: str, body: bytes, query: dict[str, str]) -> Notification:
    """Read and check a notification (POST JSON body, or GET query string)."""
    if method.upper() == "GET" or not body.strip():
        raw: dict[str, Any] = dict(query)
        as_text = True
    else:
        raw = _decode(body)
        as_text = False
    kind = raw.get("ctid_event")
    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidNotification(f"ctid_event: expected one of {', '.join(KINDS)} (paste the template as shipped)")
    secret = raw.get("ctid_secret")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name in _CONTROL:
            continue
        if not isinstance(name, str) or name not in TYPES:
            raise InvalidNotification(f"{str(name)[:60]}: not a variable ctid's templates use")
        values[name] = _typed(name, value, as_text)
    for name in REQUIRED[kind]:
        if values.get(name) is None:
            raise InvalidNotification(f"{name}: required for {kind}")
    return Notification(kind, secret if isinstance(secret, str) else "", values)


def _typed(name: str, value: Any, as_text: bool) -> Any:
    kind = TYPES[name]
    if as_text and isinstance(value, str):
        value = _from_text(kind, value)
    if value is None:
        return None
    bad = InvalidNotification(f"{name}: {str(value)[:40]!r} is not a valid {kind}")
    if kind in ("id", "int"):
        if isinstance(value, str) and _ascii_digits(value.strip()) and len(value.strip()) <= 19:
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
            raise bad
        return value
    if kind == "ids":
        if not isinstance(value, list) or len(value) > 100:
            raise bad
        return [_typed_one(name, item, bad) for item in value]
    if kind == "texts":
        if not isinstance(value, list) or len(value) > 100 or not all(isinstance(v, str) for v in value):
            raise bad
        return [v[:MAX_TEXT] for v in value]
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise bad
    text = str(value).strip()
    if len(text) > (2000 if kind == "url" else MAX_TEXT):
        raise InvalidNotification(f"{name}: too long")
    if kind == "phone":
        # E.164 digits; SIP ports may send extensions, post-dial digits come after dots (§2.6)
        digits = text.split("...", 1)[0].lstrip("+")
        if text and (not _ascii_digits(digits) or len(digits) > 20):
            raise bad
        return digits or None
    if kind == "direction":
        if text not in ("in", "out", "internal", ""):
            raise bad
        return text or None
    if kind == "time":
        return _check_time(name, text)
    if kind == "url":
        if text and not text.lower().startswith(("https://", "http://")):
            raise bad
        return text or None
    return text or None


def _typed_one(name: str, item: Any, bad: InvalidNotification) -> int:
    if isinstance(item, str) and _ascii_digits(item.strip()) and len(item.strip()) <= 19:
        item = int(item)
    if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < 2**63:
        raise bad
    return item


def _ascii_digits(text: str) -> bool:
    """Digits 0-9 only: ``str.isdigit`` also holds for "³", which ``int()`` refuses (a raise, not a 400)."""
    return text.isascii() and text.isdigit()


def _from_text(kind: str, text: str) -> Any:
    """A GET value: the platform renders text; lists as JSON or comma-separated [guess]."""
    text = text.strip()
    if text == "" or text.lower() == "null":
        return None
    if kind in ("ids", "texts"):
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                return text  # rejected by the type check
        return [part.strip() for part in text.split(",") if part.strip()]
    if kind == "bool":
        return {"true": True, "false": False, "1": True, "0": False}.get(text.lower(), text)
    return text


def _check_time(name: str, text: str) -> str:
    if _parse_local(text) is None:
        raise InvalidNotification(f"{name}: {text[:40]!r} is not a time like 2019-12-16 14:40:47.234")
    return text


def _parse_local(text: str) -> datetime | None:
    """A time the platform wrote, or None; years outside 2000-2100 are not a call's (and year 9999
    overflows when moved to UTC from a zone west of it)."""
    parsed: datetime | None = None
    for form in _TIME_FORMS:
        try:
            parsed = datetime.strptime(text, form)
            break
        except ValueError:
            continue
    if parsed is None:
        try:  # an offset the platform does not send today, honoured if it ever does
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None
    return parsed if 2000 <= parsed.year <= 2100 else None


def local_to_utc(text: str | None, tz: ZoneInfo | None) -> datetime | None:
    """An account-local time as UTC; None without a known zone (never assumed)."""
    if not text:
        return None
    parsed = _parse_local(text)
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        if tz is None:
            return None
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def utc_to_local(value: datetime, tz: ZoneInfo, *, ceil: bool = False) -> str:
    """A UTC time as the Data API writes dates: ``YYYY-MM-DD hh:mm:ss`` in the account's zone.

    ``ceil``: the end of a window, rounded up to the whole second (a call that started at
    12:00:00.600 is not "before 12:00:00").
    """
    if ceil and value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def _direction(value: str | None) -> Direction | None:
    return {"in": Direction.INBOUND, "out": Direction.OUTBOUND, "internal": Direction.INTERNAL}.get(value or "")


def to_event(instance: str, note: Notification, *, tz: ZoneInfo | None, region: str, received_at: datetime,
             consult: bool = False) -> CallEvent:
    """The one call event a notification stands for (``consult``: a consultation leg's talk)."""
    v = note.values
    employee = str(v["employee_id"]) if v.get("employee_id") is not None else None
    local = v.get("notification_time")
    legs = ",".join(str(x) for x in v.get("leg_ids") or [])
    # [guess §1.2] idempotent by session + event (+ employee, legs, time): a repeat is a duplicate
    key = f"{note.session}:{note.kind}:{employee or ''}:{v.get('leg_id') or legs}:{local or ''}"
    kind = {
        "inbound_call": EventKind.RING, "waiting": EventKind.RING, "outbound": EventKind.RING,
        "talk_started": EventKind.ANSWER, "talk_ended": EventKind.LEG_END,
        "call_finished": EventKind.END, "lost_call": EventKind.END, "recording_ready": EventKind.FACTS,
    }[note.kind]
    direction = _direction(v.get("direction"))
    if note.kind == "inbound_call":
        direction = Direction.INBOUND
    elif note.kind == "outbound":
        direction = Direction.OUTBOUND
    extra: dict[str, Any] = {"notification": note.kind}
    for name in ("notification_name", "notification_mnemonic", "scenario_name", "call_source", "external_id",
                 "contact_full_name", "talk_time_duration", "total_time_duration", "wait_time_duration",
                 "employee_ids", "leg_ids", "is_transfer"):
        if v.get(name) is not None:
            extra[name] = v[name]
    if local and tz is None:
        extra["local_time"] = local  # the account's zone is not known yet: ordered by receipt
    if consult and kind is EventKind.ANSWER:
        kind = EventKind.RING  # the consulted colleague talks to the operator, not to the customer
        extra["consultation"] = True
    facts: dict[str, Any] = {}
    if v.get("tag_names"):
        facts["tags"] = list(v["tag_names"])
    line = v.get("virtual_phone_number") or v.get("communication_number")  # SIP-ported numbers (§1.3)
    return CallEvent(
        connector=instance,
        pbx_call_id=note.session,
        kind=kind,
        key=key,
        at=local_to_utc(local, tz),
        received_at=received_at,
        direction=direction,
        remote_number=normalize(v.get("contact_phone_number"), region) if v.get("contact_phone_number") else None,
        line_number=normalize(line, region) if line else None,
        agent_login=employee if note.kind not in ("inbound_call", "call_finished", "lost_call") else None,
        leg_id=str(v["leg_id"]) if note.kind == "waiting" and v.get("leg_id") is not None else None,
        extra=extra,
        facts=facts,
    )


def parse_query(raw: str) -> dict[str, str]:
    return dict(parse_qsl(raw, keep_blank_values=True))
