"""Pure builders of Dynamics record ids and request bodies (phonecall, task, note) from ctid's objects."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from ctid.crm import ContactMatch
from ctid.model import CTID_NAMESPACE, Call, Direction, Outcome, Task, iso, utcnow

from .config import DynamicsConfig

#: statecode -> valid statuscodes of activities (phonecall.md, task.md).
PHONECALL_OPEN = (0, 1)
PHONECALL_MADE = (1, 2)
PHONECALL_RECEIVED = (1, 4)
PHONECALL_CANCELLED = (2, 3)
TASK_OPEN = (0, 2)  # Not Started
TASK_COMPLETED = (1, 5)



def open_state(entity_set: str) -> tuple[int, int]:
    """The state/status that reopens a closed activity (SetState to Open)."""
    return PHONECALL_OPEN if entity_set == "phonecalls" else TASK_OPEN


#: activity party participationtypemask values for a phone call.
PARTY_FROM = 1
PARTY_TO = 2

SUBJECT_MAX = 200
DESCRIPTION_MAX = 2000
PHONENUMBER_MAX = 200
NOTETEXT_MAX = 100_000


def phonecall_id(call_id: str) -> str:
    """The deterministic activityid of a ctid call's phonecall: retries hit the same record."""
    return str(uuid.uuid5(CTID_NAMESPACE, f"dynamics\x00phonecall\x00{call_id}"))


def task_record_id(task_id: str, follow_up: int = 0) -> str:
    """The activityid of a ctid task's Dynamics task; ``follow_up`` n >= 1 is the n-th task opened
    because the caller missed again after a person closed the previous one in Dynamics."""
    if follow_up:
        return str(uuid.uuid5(CTID_NAMESPACE, f"dynamics\x00task\x00{task_id}\x00{follow_up}"))
    return str(uuid.uuid5(CTID_NAMESPACE, f"dynamics\x00task\x00{task_id}"))


def note_id(call_id: str) -> str:
    return str(uuid.uuid5(CTID_NAMESPACE, f"dynamics\x00recording\x00{call_id}"))


def is_guid(value: str | None) -> bool:
    if not value:
        return False
    try:
        uuid.UUID(value.strip("{}"))
    except ValueError:
        return False
    return True


def bind(entity_set: str, record_id: str) -> str:
    """An ``@odata.bind`` value: ``/entityset(guid)``."""
    return f"/{entity_set}({record_id.strip('{}')})"


def bound_id(value: str) -> str:
    """The record id of an ``@odata.bind`` value ``/entityset(guid)``."""
    return value.rpartition("(")[2].rstrip(")").lower()


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    """The columns of a write body as Dynamics returns them on a GET: plain columns, plus the
    ``_ownerid_value`` / ``_regardingobjectid_value`` lookups of its binds (activity parties are not
    compared; they follow the owner and the regarding record)."""
    wanted: dict[str, Any] = {}
    for key, value in body.items():
        if key == "ownerid@odata.bind":
            wanted["_ownerid_value"] = bound_id(value)
        elif key.startswith("regardingobjectid_") and key.endswith("@odata.bind"):
            wanted["_regardingobjectid_value"] = bound_id(value)
        elif "@" not in key and not key.endswith("_activity_parties"):
            wanted[key] = value
    return wanted


def _instant(value: Any) -> datetime | None:
    if isinstance(value, str) and len(value) >= 19 and value[10:11] == "T":
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def same_value(stored: Any, wanted: Any) -> bool:
    """Whether a stored column already holds the wanted value: date-times compare as instants within
    a second (Dynamics answers ``...:00Z`` for ``...:00.250Z``), text ignores line-ending
    differences, ids case."""
    if stored == wanted:
        return True
    if isinstance(stored, str) and isinstance(wanted, str):
        stored_at, wanted_at = _instant(stored), _instant(wanted)
        if stored_at is not None and wanted_at is not None:  # Dataverse may keep whole seconds only
            return abs((stored_at - wanted_at).total_seconds()) < 1
        if is_guid(wanted):
            return stored.strip("{}").lower() == wanted.strip("{}").lower()
        return stored.replace("\r\n", "\n").strip() == wanted.replace("\r\n", "\n").strip()
    return wanted in ("", None) and stored in ("", None)


def stale_columns(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The wanted columns whose stored value differs."""
    return [key for key, value in wanted.items() if not same_value(stored.get(key), value)]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def render(template: str, values: dict[str, Any]) -> str:
    """``template`` with ``{name}`` fields filled. The configuration model has checked the template
    (:func:`ctid_dynamics.config.check_template`); an unknown field still renders empty, never an error."""
    return " ".join(template.format_map(_Blank(values)).split())


def answered(call: Call) -> bool:
    return call.outcome is Outcome.ANSWERED or (call.outcome is None and call.answered_at is not None)


def phonecall_state(call: Call, config: DynamicsConfig) -> tuple[int, int]:
    """statecode/statuscode that close the call's phonecall: made, received, or the missed setting."""
    outbound = call.direction is not Direction.INBOUND
    if answered(call):
        return PHONECALL_MADE if outbound else PHONECALL_RECEIVED
    settings = config.phonecall
    if settings.missed_status == "cancelled":
        state = PHONECALL_CANCELLED
    else:
        state = PHONECALL_MADE if outbound else PHONECALL_RECEIVED
    if settings.missed_statuscode is not None:
        state = (state[0], settings.missed_statuscode)
    return state


def _label(call: Call) -> str:
    if call.direction is Direction.OUTBOUND:
        return "Outgoing call to" if answered(call) else "Unanswered call to"
    if call.direction is Direction.INTERNAL:
        return "Internal call with"
    return "Incoming call from" if answered(call) else "Missed call from"


def _seconds(value: float | None) -> str:
    return f"{value:.0f} s" if value is not None else "-"


def phonecall_body(
    call: Call,
    *,
    config: DynamicsConfig,
    agent_name: str | None,
    agent_user: str | None,
    match: ContactMatch | None,
    match_count: int,
    entity_sets: dict[str, str],
    others: Sequence[tuple[str, str | None]] = (),
) -> dict[str, Any]:
    """The phonecall's columns. ``match`` is set only when exactly one record matched the number:
    with N matches nothing is bound (no regarding, no party) so no call lands on the wrong record.
    ``agent_*`` is the agent who owns the call (the last one, after transfers); ``others`` are the
    (name, systemuserid) of the other agents who talked on it, added as To parties.
    """
    number = call.remote_number or ""
    outbound = call.direction is not Direction.INBOUND
    values = {
        "label": _label(call), "number": number or "a withheld number", "name": match.name if match else "",
        "agent": agent_name or "", "line": call.line_number or "", "group": call.group or "",
        "outcome": call.outcome.value if call.outcome else "",
    }
    lines = [
        f"{_label(call)} {number or 'a withheld number'}",
        f"Outcome: {values['outcome'] or '-'}",
        f"Agent: {agent_name or '-'}" + (f" (also: {', '.join(name for name, _ in others)})" if others else ""),
        f"Line: {call.line_number or '-'}" + (f", group {call.group}" if call.group else ""),
        f"Waited: {_seconds(call.wait_seconds)}, talked: {_seconds(call.talk_seconds)}",
    ]
    if match_count > 1:
        lines.append(f"{match_count} CRM records share this number; not linked to any of them.")
    if call.recording_url:
        lines.append(f"Recording: {call.recording_url}")
    lines.append(f"ctid call {call.id}")
    talk = call.talk_seconds or 0
    body: dict[str, Any] = {
        "subject": _clip(render(config.phonecall.subject, values) or f"Call {number}", SUBJECT_MAX),
        "phonenumber": number[:PHONENUMBER_MAX],
        "directioncode": outbound,
        "description": _clip("\n".join(lines), DESCRIPTION_MAX),
        "actualstart": iso(call.started_at),
        "actualend": iso(call.ended_at),
        "actualdurationminutes": math.ceil(talk / 60) if talk > 0 else 0,
    }
    parties: list[dict[str, Any]] = []
    if match is not None:
        parties.append({
            f"partyid_{match.entity}@odata.bind": bind(entity_sets[match.entity], match.id),
            "participationtypemask": PARTY_TO if outbound else PARTY_FROM,
        })
        body[f"regardingobjectid_{match.entity}_phonecall@odata.bind"] = bind(entity_sets[match.entity], match.id)
    if agent_user:
        parties.append({
            "partyid_systemuser@odata.bind": bind("systemusers", agent_user),
            "participationtypemask": PARTY_FROM if outbound else PARTY_TO,
        })
        body["ownerid@odata.bind"] = bind("systemusers", agent_user)
    for user in dict.fromkeys(user for _, user in others if user and user != agent_user):
        parties.append({"partyid_systemuser@odata.bind": bind("systemusers", user), "participationtypemask": PARTY_TO})
    if parties:
        body["phonecall_activity_parties"] = parties
    if config.recording.mode == "url_field" and call.recording_url:
        body[config.recording.url_field] = call.recording_url  # type: ignore[index]
    return body


def task_body(
    task: Task,
    *,
    config: DynamicsConfig,
    match: ContactMatch | None,
    match_count: int,
    entity_sets: dict[str, str],
    owner_user: str | None,
    now: datetime | None = None,
    previous_closed_at: datetime | None = None,
) -> dict[str, Any]:
    """The callback task's columns; ``ownerid``/regarding only when known (see :func:`phonecall_body`).

    ``previous_closed_at`` makes it a follow-up: the caller missed again after a person closed the
    previous task at that time; it is due ``due_in`` hours after the latest miss.
    """
    settings = config.callback_task
    first = task.first_missed_at or now or utcnow()
    values = {
        "number": task.number, "name": match.name if match else "", "count": task.missed_count or 1,
        "first_missed": first.strftime("%Y-%m-%d %H:%M UTC"),
        "last_missed": (task.last_missed_at or first).strftime("%Y-%m-%d %H:%M UTC"),
        "group": task.group or "", "line": task.line_number or "",
    }
    lines = [
        f"Call back {task.number}" + (f" ({match.name})" if match else ""),
        f"Missed calls: {task.missed_count}, first {values['first_missed']}, last {values['last_missed']}",
    ]
    if previous_closed_at is not None:
        lines.append(f"Missed again after the previous callback task was closed in Dynamics "
                     f"({previous_closed_at.strftime('%Y-%m-%d %H:%M UTC')}).")
    if task.group or task.line_number:
        lines.append(f"Line: {task.line_number or '-'}" + (f", group {task.group}" if task.group else ""))
    if match_count > 1:
        lines.append(f"{match_count} CRM records share this number; not linked to any of them.")
    lines.append(f"ctid task {task.id}")
    due_from = (task.last_missed_at or first) if previous_closed_at is not None else first
    body: dict[str, Any] = {
        "subject": _clip(render(settings.subject, values) or f"Call back {task.number}", SUBJECT_MAX),
        "description": _clip("\n".join(lines), DESCRIPTION_MAX),
        "scheduledend": iso(due_from + timedelta(hours=settings.due_in)),
        "prioritycode": settings.priority,
    }
    if match is not None:
        body[f"regardingobjectid_{match.entity}_task@odata.bind"] = bind(entity_sets[match.entity], match.id)
    if owner_user:
        body["ownerid@odata.bind"] = bind("systemusers", owner_user)
    return body


def note_body(call: Call, url: str, activity_id: str) -> dict[str, Any]:
    return {
        "subject": "Call recording",
        "notetext": _clip(f"Recording of the call ({call.remote_number or 'unknown number'}): {url}", NOTETEXT_MAX),
        "isdocument": False,
        "objectid_phonecall@odata.bind": bind("phonecalls", activity_id),
    }
