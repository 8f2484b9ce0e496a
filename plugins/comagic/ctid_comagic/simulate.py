"""CoMagic's native notifications for ``ctid simulate-call``, rendered from ctid's shipped templates.

Each scenario is the sequence of HTTP notifications an account sends for one call, each body
rendered from :func:`ctid_comagic.templates.template` exactly as the platform renders it (JSON
literals, account-local ``notification_time`` with milliseconds and no offset). The call ends at
the context's start (the moment the notifications are sent), so nothing ends in the future.

CoMagic has no hold or transfer notification (reference §1.3): ``transfer`` is the target's
"waiting" and "talk started" after the first employee talked (ctid reads that as a transfer), and
``hold`` is sent as an answered call (holds are made through ctid's Call API commands, which state
the hold themselves).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ctid.connector import SimulatedRequest, SimulationContext
from ctid.errors import RequestError
from ctid.limits import ascii_digits
from ctid.model import CTID_NAMESPACE
from ctid_comagic.recordings import hash_link
from ctid_comagic.templates import render, template

SCENARIOS = ("answered", "missed", "group", "transfer", "hold", "outbound_no_answer")


def _digits(number: str | None) -> str | None:
    digits = "".join(ch for ch in number or "" if ch.isdigit())
    return digits or None


def local_time(at: datetime, tz: ZoneInfo | None) -> str:
    """``2019-12-16 14:40:47.234``: account-local, milliseconds, no offset (§1.4)."""
    local = at.astimezone(tz or UTC)
    return local.strftime("%Y-%m-%d %H:%M:%S.") + f"{local.microsecond // 1000:03d}"


class _Call:
    """The notifications of one simulated call (each as the variables a template renders)."""

    def __init__(self, instance: str, scenario: str, ctx: SimulationContext, tz: ZoneInfo | None, media: str,
                 duration: int):
        seed = f"{instance}\x00{scenario}\x00{ctx.caller}\x00{ctx.agent}\x00{ctx.start.isoformat()}"
        digest = uuid.uuid5(CTID_NAMESPACE, seed)
        self.session = 100_000_000 + digest.int % 800_000_000
        self.hash = digest.hex
        self.ctx, self.tz, self.media = ctx, tz, media
        self.t0 = ctx.start - timedelta(seconds=duration)
        self.contact = _digits(ctx.caller) or ctx.caller
        self.line = _digits(ctx.line)
        self.legs = 0

    def note(self, kind: str, offset: float, **values: Any) -> tuple[str, dict[str, Any]]:
        base = {"notification_name": f"ctid {kind}", "notification_mnemonic": None,
                "notification_time": local_time(self.t0 + timedelta(seconds=offset), self.tz),
                "call_session_id": self.session, "virtual_phone_number": self.line,
                "contact_phone_number": self.contact, "communication_number": None, "call_source": "va",
                "direction": "in", "external_id": None, "scenario_name": "ctid simulation"}
        return kind, {**base, **values}

    def employee(self, login: str) -> dict[str, Any]:
        return {"employee_id": int(login) if ascii_digits(login) else login, "employee_full_name": f"Employee {login}"}

    def waiting(self, login: str, offset: float, **more: Any):
        self.legs += 1
        return self.note("waiting", offset, leg_id=self.session * 10 + self.legs, **self.employee(login), **more)

    def recording(self, login: str, offset: float, duration: int):
        link = hash_link(self.media, str(self.session), self.hash)
        return self.note("recording_ready", offset, file_link=link, file_duration=duration, **self.employee(login))


def _answered(c: _Call) -> list:
    a = c.ctx.agent
    return [c.note("inbound_call", 0), c.waiting(a, 1), c.note("talk_started", 7, **c.employee(a)),
            c.note("talk_ended", 67, talk_time_duration=60, **c.employee(a)),
            c.note("call_finished", 67, talk_time_duration=60, total_time_duration=67, wait_time_duration=7,
                   **c.employee(a)),
            c.recording(a, 67, 60)]


def _missed(c: _Call) -> list:
    legs = [c.ctx.agent, *c.ctx.others]
    ids = [int(x) if ascii_digits(x) else x for x in legs]
    return [c.note("inbound_call", 0), *[c.waiting(x, 1) for x in legs],
            c.note("lost_call", 25, wait_time_duration=25, employee_ids=ids),
            c.note("call_finished", 25, talk_time_duration=0, total_time_duration=25, wait_time_duration=25)]


def _group(c: _Call) -> list:
    a, legs = c.ctx.agent, [c.ctx.agent, *c.ctx.others]
    return [c.note("inbound_call", 0), *[c.waiting(x, 1) for x in legs],
            c.note("talk_started", 5, **c.employee(a)),
            c.note("talk_ended", 95, talk_time_duration=90, **c.employee(a)),
            c.note("call_finished", 95, talk_time_duration=90, total_time_duration=95, wait_time_duration=5,
                   **c.employee(a)),
            c.recording(a, 95, 90)]


def _transfer(c: _Call) -> list:
    if not c.ctx.others:
        raise RequestError("the transfer scenario needs a second agent", error_id="bad_scenario")
    a, b = c.ctx.agent, c.ctx.others[0]
    return [c.note("inbound_call", 0), c.waiting(a, 1), c.note("talk_started", 4, **c.employee(a)),
            c.waiting(b, 40), c.note("talk_started", 44, **c.employee(b)),
            c.note("talk_ended", 44, talk_time_duration=40, **c.employee(a)),
            c.note("talk_ended", 94, talk_time_duration=50, **c.employee(b)),
            c.note("call_finished", 94, talk_time_duration=90, total_time_duration=94, wait_time_duration=4,
                   **c.employee(b))]


def _outbound_no_answer(c: _Call) -> list:
    a = c.ctx.agent
    return [c.note("outbound", 0, employee_phone_number=None, **c.employee(a)),
            c.note("call_finished", 30, direction="out", call_source="callapi", talk_time_duration=0,
                   total_time_duration=30, wait_time_duration=30, **c.employee(a))]


_BUILDERS: dict[str, tuple[Callable[[_Call], list], int]] = {
    "answered": (_answered, 70), "missed": (_missed, 25), "group": (_group, 97), "transfer": (_transfer, 94),
    "hold": (_answered, 70), "outbound_no_answer": (_outbound_no_answer, 30),
}


def notifications(instance: str, scenario: str, ctx: SimulationContext, *, tz: ZoneInfo | None,
                  media: str) -> list[tuple[str, dict[str, Any]]]:
    """(kind, variables) of each notification of ``scenario``, in sending order."""
    found = _BUILDERS.get(scenario)
    if found is None:
        raise RequestError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}",
                           error_id="bad_scenario")
    builder, duration = found
    return builder(_Call(instance, scenario, ctx, tz, media, duration))


def simulate(instance: str, scenario: str, ctx: SimulationContext, *, path_secret: str, body_secret: str,
             tz: ZoneInfo | None, media: str) -> list[SimulatedRequest]:
    out = []
    for kind, values in notifications(instance, scenario, ctx, tz=tz, media=media):
        body = render(template(kind, body_secret), values).encode()
        description = f"{kind} employee={values.get('employee_id')}" if values.get("employee_id") else kind
        if scenario == "hold" and kind == "call_finished":
            description += " (CoMagic sends no hold notification: simulated as an answered call)"
        out.append(SimulatedRequest(method="POST", path=f"/hooks/{instance}/{path_secret}",
                                    headers={"content-type": "application/json"}, body=body,
                                    description=description))
    return out
