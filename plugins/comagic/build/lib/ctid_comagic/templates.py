"""The notification templates ctid ships for CoMagic, and the platform's way of rendering them.

CoMagic has no API to create notifications: the account admin writes each one by hand in the
cabinet ("Уведомления"), choosing the event, GET or POST, the URL and a body template of
``{{variable}}`` placeholders (reference §1.1). The platform substitutes JSON literals (numbers,
``null``, quoted strings, arrays) for unquoted placeholders [guess: §1.1, consistent with §1.4].

So ctid defines the shape: one template per event kind, each carrying two constants the admin
pastes as they are: ``"ctid_event"`` (which kind this is: the platform's ``notification_mnemonic``
values are undocumented [guess §1.3], so routing never depends on them) and ``"ctid_secret"``
(the instance's ``body_secret``). ``ctid comagic templates`` prints them with the real values.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

#: The cabinet's event names (RU / EN UI, reference §1.3) per ctid event kind.
EVENT_NAMES: dict[str, tuple[str, str]] = {
    "inbound_call": ("Входящий звонок на виртуальный номер", "Inbound call on a virtual phone number"),
    "waiting": ("Ожидание ответа", "Waiting for the answer"),
    "talk_started": ("Начало разговора", "Talk started"),
    "talk_ended": ("Окончание разговора", "Talk finished"),
    "call_finished": ("Завершение звонка", "Call finished"),
    "lost_call": ("Потерянный звонок", "Lost call"),
    "recording_ready": ("Записанный разговор", "Call recording completed"),
    "outbound": ("Исходящий звонок", "Outbound call"),
}

_COMMON = ["notification_name", "notification_mnemonic", "notification_time", "call_session_id",
           "virtual_phone_number", "contact_phone_number"]

#: The variables of each kind's template: exactly the ones the reference lists per event (§1.3).
VARIABLES: dict[str, list[str]] = {
    "inbound_call": _COMMON + ["communication_number", "scenario_name", "contact_id", "contact_full_name"],
    "waiting": _COMMON + ["external_id", "contact_id", "employee_full_name", "employee_id", "call_source",
                          "direction", "leg_id"],
    "talk_started": _COMMON + ["external_id", "contact_id", "employee_full_name", "employee_id", "call_source",
                               "direction", "leg_ids"],
    "talk_ended": _COMMON + ["external_id", "communication_number", "employee_full_name", "employee_id",
                             "call_source", "direction", "scenario_name", "talk_time_duration", "leg_ids"],
    "call_finished": _COMMON + ["external_id", "communication_number", "employee_full_name", "employee_id",
                                "call_source", "direction", "scenario_name", "talk_time_duration",
                                "total_time_duration", "wait_time_duration", "tag_names"],
    "lost_call": _COMMON + ["scenario_name", "wait_time_duration", "employee_ids", "communication_number",
                            "contact_id", "contact_full_name"],
    "recording_ready": _COMMON + ["scenario_name", "communication_number", "contact_id", "contact_full_name",
                                  "employee_full_name", "employee_id", "file_link", "file_duration", "tag_ids",
                                  "tag_names"],
    "outbound": _COMMON + ["contact_id", "contact_full_name", "employee_full_name", "employee_id",
                           "employee_phone_number"],
}

KINDS = tuple(VARIABLES)
SECRET_PLACEHOLDER = "<body_secret>"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


def template(kind: str, secret: str = SECRET_PLACEHOLDER) -> str:
    """The POST body template of ``kind``, as the admin pastes it (placeholders unquoted)."""
    lines = [f'  "ctid_event": "{kind}"', f'  "ctid_secret": "{secret}"']
    lines += [f'  "{name}": {{{{{name}}}}}' for name in VARIABLES[kind]]
    return "{\n" + ",\n".join(lines) + "\n}"


def query_template(kind: str, secret: str = SECRET_PLACEHOLDER) -> str:
    """The GET query-string variant (prefer POST: hand-written query strings break easily, §5.1)."""
    parts = [f"ctid_event={kind}", f"ctid_secret={quote(secret)}"]
    parts += [f"{name}={{{{{name}}}}}" for name in VARIABLES[kind]]
    return "&".join(parts)


def render(text: str, values: dict[str, Any]) -> str:
    """Substitute JSON literals for ``{{name}}`` as the platform does (unknown names render null)."""
    return _PLACEHOLDER.sub(lambda m: json.dumps(values.get(m.group(1)), ensure_ascii=False), text)


def render_query(text: str, values: dict[str, Any]) -> str:
    """The GET variant: plain text values (null as empty), percent-encoded [guess]."""
    def one(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        if value is None:
            return ""
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        return quote(str(value), safe="")
    return _PLACEHOLDER.sub(one, text)


def unrendered(text: str) -> str | None:
    """The first ``{{name}}`` left in a body: the platform did not know that variable."""
    match = _PLACEHOLDER.search(text)
    return match.group(1) if match else None


def guide(url: str, secret: str = SECRET_PLACEHOLDER) -> str:
    """Every template with the cabinet's event names: what ``ctid comagic templates`` prints."""
    out = [f"# One HTTP notification per event, method POST, URL: {url}",
           "# Paste each body as it is: the placeholders are unquoted on purpose.", ""]
    for kind in KINDS:
        ru, en = EVENT_NAMES[kind]
        out += [f"## {kind}: {ru} / {en}", template(kind, secret), ""]
    return "\n".join(out)
