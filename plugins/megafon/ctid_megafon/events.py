"""MegaFon CRM pushes and history rows turned into ctid ``CallEvent``s.

The PBX posts ``cmd=event|history|contact|rating`` as form fields or JSON (see
``reference/megafon.md`` §3). This module only parses and normalizes; verification (token, source
address) and side effects (contact lookup, recordings) live in :mod:`ctid_megafon.connector`.

Facts the mapping relies on:

* ``event`` has no timestamp, so ``at`` stays ``None`` and the core uses the receipt time.
* On ``event`` the state is ``type`` and the direction is ``direction``; on ``history`` ``type`` is
  the direction. Values drift in casing (``missed``/``Missed``), so every vocabulary is compared
  case-insensitively.
* ``user`` may be ``login@tenant``, a group login ``g_<uuid>@tenant`` or the switch itself (``pbx``):
  only real logins become ``agent_login``; a non-empty user never means "answered", only ``status`` does.
* History ``duration`` already includes ``wait``: total = duration, talk = duration - wait.
* Idempotency keys derive from what a post says, not from when it arrived: the same post (in any
  field order) always yields the same key, so redelivered pushes are harmless. (A second ring of
  the same phone in one call is byte-identical too; :mod:`ctid_megafon.legs` numbers the rings.)
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ctid.limits import LimitError, form_pairs
from ctid.model import CallEvent, Direction, EventKind, Outcome
from ctid.phone import normalize

COMMANDS = ("event", "history", "contact", "rating")
MAX_FIELDS = 100
MAX_VALUE = 4000

#: Required fields per command (brandup's validation tests, relaxed where the 2018 spec's own
#: examples omit a field: ``direction`` on events, ``diversion`` on outgoing history).
REQUIRED = {
    "event": ("type", "callid", "phone", "user"),
    "history": ("type", "callid", "phone", "user", "start", "duration", "status"),
    "contact": ("callid", "phone"),
    "rating": ("callid", "rating"),
}

#: Longest values accepted for identifiers (a callid seen in the field is 16-25 characters; a user
#: may be ``g_<uuid>@<tenant>``).
MAX_CALLID = 100
MAX_USER = 128
MAX_EXT = 32
_PHONE_SEPARATORS = re.compile(r"[\s().\-]")
_PHONE = re.compile(r"\+?[0-9]{1,20}")
_CALLID = re.compile(r"[\x21-\x7e]+")  # printable ASCII without spaces

#: Users that are not people: the switch itself and self-service endpoints.
NON_AGENT_USERS = frozenset({"pbx", "ivr", "fax", "system", "vm", "voicemail"})


class InvalidParameters(ValueError):
    """The push is malformed; answered 400 ``{"error": "Invalid parameters"}``."""


class Fields:
    """A push's fields with case-insensitive names; empty values count as missing."""

    def __init__(self, raw: dict[str, str]):
        self.raw = raw
        self._map = {key.lower(): value.strip() for key, value in raw.items()}

    def get(self, name: str) -> str | None:
        value = self._map.get(name.lower())
        return value if value else None

    def require(self, *names: str) -> None:
        missing = [name for name in names if self.get(name) is None]
        if missing:
            raise InvalidParameters(f"missing field(s): {', '.join(missing)}")

    def check(self) -> None:
        """Refuse values that cannot be what the PBX sends (reference §3.2-3.5).

        Phones are E.164 digits, optionally with ``+`` (``79101234567``, ``+79990001122``, or an
        extension like ``701``; spaces, dashes, dots and brackets are tolerated); call ids are short
        printable tokens; ``user`` and ``ext`` are bounded.
        """
        for name in ("phone", "diversion"):
            value = self.get(name)
            if value is not None and (len(value) > 40 or not _PHONE.fullmatch(_PHONE_SEPARATORS.sub("", value))):
                raise InvalidParameters(f"{name}: {value[:40]!r} is not a phone number")
        for name in ("callid", "second_callid"):
            value = self.get(name)
            if value is not None and (len(value) > MAX_CALLID or not _CALLID.fullmatch(value)):
                raise InvalidParameters(f"{name}: {value[:40]!r} is not a call id (printable, at most {MAX_CALLID})")
        for name, limit in (("user", MAX_USER), ("ext", MAX_EXT)):
            value = self.get(name)
            if value is not None and (len(value) > limit or not value.isprintable()):
                raise InvalidParameters(f"{name}: {value[:40]!r} is too long or not printable (at most {limit})")

    def canonical(self) -> str:
        """The fields as one stable string (names lower-cased, sorted, without the token)."""
        items = sorted((k, v) for k, v in self._map.items() if k != "crm_token")
        return json.dumps(items, ensure_ascii=False, separators=(",", ":"))


# -- body parsing -----------------------------------------------------------------------------------


def _flat(data: Any) -> dict[str, str]:
    if not isinstance(data, dict):
        raise InvalidParameters("JSON body must be an object")
    out: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[str(key)] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            out[str(key)] = str(value)
        else:
            raise InvalidParameters(f"field {key!r} must be a scalar")
    return out


def _json(body: bytes) -> dict[str, str]:
    try:
        return _flat(json.loads(body))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidParameters(f"body is not valid JSON: {exc}") from exc


def _form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidParameters("form body is not UTF-8") from exc
    text = "&".join(part for part in text.strip().split("&") if part)  # tolerate stray '&'
    try:  # a percent-escape that is not UTF-8 is a 400 bad_encoding (LimitError), as in a JSON body
        pairs = form_pairs(text, strict_parsing=bool(text))
    except LimitError:
        raise
    except ValueError as exc:
        raise InvalidParameters(f"body is not form-encoded: {exc}") from exc
    return dict(pairs)


def parse_body(method: str, content_type: str, body: bytes, query: dict[str, str]) -> Fields:
    """Fields of a push: the query string (GET pushes) overlaid by a form or JSON body.

    The parser follows ``Content-Type`` and falls back to the other format (the PBX documents form
    fields, the newer spec shows JSON; mikopbx accepts both the same way).
    """
    fields: dict[str, str] = dict(query)
    stripped = body.strip()
    if stripped:
        looks_json = stripped[:1] in (b"{", b"[")
        first, second = (_json, _form) if ("json" in content_type or looks_json) else (_form, _json)
        try:
            fields.update(first(stripped))
        except InvalidParameters as first_error:
            try:
                fields.update(second(stripped))
            except InvalidParameters:
                raise first_error from None
    if len(fields) > MAX_FIELDS:
        raise InvalidParameters(f"too many fields ({len(fields)})")
    for key, value in fields.items():
        if len(value) > MAX_VALUE or len(key) > 100:
            raise InvalidParameters(f"field {key[:40]!r} is too long")
    return Fields(fields)


# -- values -----------------------------------------------------------------------------------------


def dial_digits(number: str) -> str:
    """A number as MegaFon's makecall wants it: digits only, no ``+`` (the PBX rejects ``+``)."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if not digits:
        raise InvalidParameters(f"{number!r} has no digits")
    return digits


@dataclass(frozen=True, slots=True)
class PbxUser:
    """What a ``user`` field denotes: an agent login, a group, or nobody (the switch)."""

    raw: str | None
    login: str | None = None
    group: str | None = None


def classify_user(raw: str | None) -> PbxUser:
    if not raw:
        return PbxUser(None)
    local = raw.strip().split("@", 1)[0].strip()
    if not local or local.lower() in NON_AGENT_USERS:
        return PbxUser(raw)
    if local.lower().startswith("g_"):
        return PbxUser(raw, group=local)
    return PbxUser(raw, login=local)


def parse_time(raw: str | None) -> datetime | None:
    """UTC time from the compact push form ``20170703T121110Z``, ISO 8601 or ``YYYY-MM-DD HH:MM:SS``."""
    if not raw:
        return None
    text = raw.strip()
    try:
        if len(text) == 16 and text[8] == "T" and text.endswith("Z"):
            return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidParameters(f"start: {text!r} is not a time (expected 20170703T121110Z)") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_seconds(name: str, raw: str | None) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise InvalidParameters(f"{name}: {raw!r} is not a number") from exc
    if not 0 <= value < 10 * 86400 or value != value:
        raise InvalidParameters(f"{name}: {raw!r} is out of range")
    return value


def _direction(raw: str | None, field: str) -> Direction | None:
    if raw is None:
        return None
    value = raw.lower()
    if value in ("in", "incoming", "inbound"):
        return Direction.INBOUND
    if value in ("out", "outgoing", "outbound"):
        return Direction.OUTBOUND
    if value in ("internal", "inner"):
        return Direction.INTERNAL
    raise InvalidParameters(f"{field}: unknown direction {raw!r}")


def _digest(*parts: Any) -> str:
    text = json.dumps([str(p) if p is not None else None for p in parts], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- status vocabulary ------------------------------------------------------------------------------

_STATUS_IN = {
    "success": Outcome.ANSWERED,
    "missed": Outcome.MISSED,
    "cancel": Outcome.MISSED,
    "noanswer": Outcome.MISSED,
    "busy": Outcome.MISSED,
    "notavailable": Outcome.MISSED,
    "notallowed": Outcome.FAILED,
    "notfound": Outcome.FAILED,
}
_STATUS_OUT = {
    "success": Outcome.ANSWERED,
    "missed": Outcome.NO_ANSWER,
    "cancel": Outcome.NO_ANSWER,
    "noanswer": Outcome.NO_ANSWER,
    "busy": Outcome.BUSY,
    "notavailable": Outcome.NO_ANSWER,
    "notallowed": Outcome.FAILED,
    "notfound": Outcome.FAILED,
}


def outcome_for(status: str | None, direction: Direction) -> Outcome | None:
    """The outcome a history ``status`` states (case and spacing ignored); None when unknown."""
    if not status:
        return None
    token = "".join(ch for ch in status.lower() if ch.isalpha())
    table = _STATUS_OUT if direction is Direction.OUTBOUND else _STATUS_IN
    return table.get(token)


# -- cmd=event --------------------------------------------------------------------------------------

_EVENT_KINDS = {
    "INCOMING": EventKind.RING,
    "OUTGOING": EventKind.RING,
    "ACCEPTED": EventKind.ANSWER,
    "COMPLETED": EventKind.LEG_END,
    "CANCELLED": EventKind.LEG_END,
    "CANCELED": EventKind.LEG_END,
    "TRANSFERRED": EventKind.TRANSFER,
}


def event_from_push(connector: str, fields: Fields, received_at: datetime, region: str = "RU") -> CallEvent:
    """One ``cmd=event`` push as a CallEvent (one leg of the call ``callid``)."""
    fields.require(*REQUIRED["event"])
    fields.check()
    state = fields.get("type").upper()  # type: ignore[union-attr]
    kind = _EVENT_KINDS.get(state)
    if kind is None:
        raise InvalidParameters(f"type: unknown event type {fields.get('type')!r}")
    direction = _direction(fields.get("direction"), "direction") or (
        Direction.OUTBOUND if state == "OUTGOING" else Direction.INBOUND
    )
    callid = fields.get("callid")
    user = classify_user(fields.get("user"))
    outcome = None
    if state == "COMPLETED":
        outcome = Outcome.ANSWERED
    elif kind is EventKind.LEG_END:
        outcome = Outcome.NO_ANSWER if direction is Direction.OUTBOUND else Outcome.MISSED
    second = fields.get("second_callid")
    if kind is EventKind.TRANSFER and not second:
        raise InvalidParameters("second_callid: required with type=TRANSFERRED")
    extra = {
        name: fields.get(name)
        for name in ("ext", "telnum", "telnum_name", "status")
        if fields.get(name) is not None
    }
    extra["state"] = state
    if user.raw and user.login is None:
        extra["pbx_user"] = user.raw
    if second:
        extra["second_callid"] = second
    # What the post says (not when it came): a redelivery, or the same fields reordered, gets this key.
    key = f"event:{callid}:{state}:{(user.raw or '').lower()}:{direction.value}"
    if second:
        key += f":{second}"
    return CallEvent(
        connector=connector,
        pbx_call_id=callid,  # type: ignore[arg-type]
        kind=kind,
        key=key,
        at=None,
        received_at=received_at,
        direction=direction,
        remote_number=normalize(fields.get("phone"), region),
        line_number=normalize(fields.get("diversion") or fields.get("telnum"), region),
        agent_login=user.login,
        group=fields.get("groupRealName") or user.group,
        outcome=outcome,
        # A group login or the switch is a leg of its own, never the caller's leg (which has no id).
        leg_id=second if kind is EventKind.TRANSFER else (f"user:{user.raw}" if user.raw and not user.login else None),
        extra=extra,
    )


# -- history (push, REST pull, legacy CSV) ----------------------------------------------------------


@dataclass(slots=True)
class Summary:
    """One finished call as any history source states it, before it becomes a SUMMARY event."""

    callid: str
    direction: Direction
    outcome: Outcome | None
    status: str | None
    start: datetime | None
    total: float | None
    wait: float | None
    talk: float | None
    phone: str | None
    line: str | None
    user: PbxUser
    group: str | None
    link: str | None
    extra: dict[str, Any]

    def key(self) -> str:
        """Same facts, same key: a history push and the pulled row of the same call agree."""
        digest = _digest(
            self.direction.value,
            self.outcome.value if self.outcome else self.status,
            self.start.isoformat() if self.start else None,
            self.total,
            self.wait,
            self.talk,
            (self.user.raw or "").lower(),
            self.link,
        )
        return f"history:{self.callid}:{digest}"

    def to_event(self, connector: str, received_at: datetime) -> CallEvent:
        answered = self.outcome is Outcome.ANSWERED
        # An inbound call nobody answered names the switch, a group or the last leg in `user`;
        # that is not an agent who talked, so it is kept only as `extra.pbx_user`.
        agent = self.user.login if (answered or self.direction is not Direction.INBOUND) else None
        extra = dict(self.extra)
        if self.status is not None:
            extra["status"] = self.status
        if self.user.raw and agent is None:
            extra["pbx_user"] = self.user.raw
        if self.start is not None:
            extra["started_at"] = self.start.isoformat()
            if self.total is not None:
                extra["ended_at"] = (self.start + timedelta(seconds=self.total)).isoformat()
        return CallEvent(
            connector=connector,
            pbx_call_id=self.callid,
            kind=EventKind.SUMMARY,
            key=self.key(),
            at=self.start,
            received_at=received_at,
            direction=self.direction,
            remote_number=self.phone,
            line_number=self.line,
            agent_login=agent,
            group=self.group or self.user.group,
            outcome=self.outcome,
            wait_seconds=self.wait,
            talk_seconds=self.talk,
            total_seconds=self.total,
            recording=self.link,
            extra=extra,
        )


def _durations(outcome: Outcome | None, total: float | None, wait: float | None):
    """(total, wait, talk): the JSON/push ``duration`` includes ``wait``."""
    if total is None:
        return None, wait, None
    if outcome is Outcome.ANSWERED:
        talk = max(total - wait, 0.0) if wait is not None else None
        return total, wait, talk
    if outcome is None:
        return total, wait, None
    return total, (wait if wait is not None else total), 0.0


def _history_direction(raw: str | None) -> tuple[Direction, str | None]:
    value = (raw or "").lower()
    if value == "missed":  # legacy CSV: type=missed is an inbound call nobody answered
        return Direction.INBOUND, "missed"
    direction = _direction(raw, "type")
    if direction is None:
        raise InvalidParameters("type: required (in or out)")
    return direction, None


def summary_from_push(fields: Fields, region: str = "RU") -> Summary:
    """A ``cmd=history`` push (also sent as GET with a query string)."""
    fields.require(*REQUIRED["history"])
    fields.check()
    return _summary(fields, region, callid="callid", phone="phone", groups=("groupRealName", "group"),
                    link="link", source="push",
                    extra_names=("ext", "telnum", "telnum_name", "rating", "missedStatus", "z_flag"))


def summary_from_row(row: dict[str, Any], region: str = "RU") -> Summary:
    """One call of ``GET /crmapi/v1/history/json`` (REST CRM API v1)."""
    fields = Fields(_flat(row))
    fields.require("uid", "type")
    return _summary(fields, region, callid="uid", phone="client", groups=("group_name",), link="record",
                    source="pull",
                    extra_names=("destination", "telnum_name", "rating", "missedStatus", "note", "user_name"))


def _summary(fields: Fields, region: str, *, callid: str, phone: str, groups: tuple[str, ...], link: str,
             source: str, extra_names: tuple[str, ...]) -> Summary:
    """A history record, pushed or pulled: the two carry the same facts under different names."""
    direction, _ = _history_direction(fields.get("type"))
    status = fields.get("status")
    outcome = outcome_for(status, direction)
    total, wait, talk = _durations(
        outcome, parse_seconds("duration", fields.get("duration")), parse_seconds("wait", fields.get("wait"))
    )
    extra = {name: fields.get(name) for name in extra_names if fields.get(name) is not None}
    extra["source"] = source
    return Summary(
        callid=fields.get(callid),  # type: ignore[arg-type]
        direction=direction,
        outcome=outcome,
        status=status,
        start=parse_time(fields.get("start")),
        total=total,
        wait=wait,
        talk=talk,
        phone=normalize(fields.get(phone), region),
        line=normalize(fields.get("diversion"), region),
        user=classify_user(fields.get("user")),
        group=next((fields.get(name) for name in groups if fields.get(name)), None),
        link=fields.get(link),
        extra=extra,
    )


CSV_COLUMNS = ("UID", "type", "client", "account", "via", "start", "wait", "duration", "record")


def summaries_from_csv(text: str, region: str = "RU") -> list[Summary]:
    """Legacy ``cmd=history`` CSV: ``UID,type,client,account,via,start,wait,duration,record``.

    Here ``duration`` is talk time, ``type`` may be ``missed``, and ``account`` is a login, a group
    name or ``ivr``/``fax`` when no person took the call.
    """
    out = []
    for line_no, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip():
            continue
        if row[0].strip().lower() == "uid":
            continue  # a header line
        if len(row) < 8:
            raise InvalidParameters(f"history CSV line {line_no}: {len(row)} columns, expected 9")
        uid, kind, client, account, via, start, wait_raw, talk_raw = (c.strip() for c in row[:8])
        record = row[8].strip() if len(row) > 8 else ""
        direction, forced = _history_direction(kind)
        wait = parse_seconds("wait", wait_raw)
        talk = parse_seconds("duration", talk_raw)
        user = classify_user(account)
        if forced == "missed" or (direction is Direction.INBOUND and (not talk or user.login is None)):
            outcome = Outcome.MISSED
        elif direction is Direction.OUTBOUND and not talk:
            outcome = Outcome.NO_ANSWER
        else:
            outcome = Outcome.ANSWERED
        total = (wait or 0.0) + (talk or 0.0)
        if outcome is not Outcome.ANSWERED:
            talk = 0.0
        group = account if user.login is None and account and account.lower() not in NON_AGENT_USERS else None
        out.append(
            Summary(
                callid=uid,
                direction=direction,
                outcome=outcome,
                status=None,
                start=parse_time(start),
                total=total,
                wait=wait,
                talk=talk,
                phone=normalize(client, region),
                line=normalize(via, region),
                user=user if outcome is Outcome.ANSWERED or direction is Direction.OUTBOUND else PbxUser(account),
                group=group or user.group,
                link=record or None,
                extra={"source": "pull-csv"},
            )
        )
    return out
