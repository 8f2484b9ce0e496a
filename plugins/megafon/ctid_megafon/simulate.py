"""MegaFon's native wire traffic for ``ctid simulate-call``: the form posts the PBX would send.

Each scenario yields the pushes of one call in the order a real tenant sends them: ``contact``
while the caller waits (inbound), one ``event`` per leg (``CANCELLED`` for every group member who
did not win), ``TRANSFERRED`` with ``second_callid`` (the target's leg posts under that id, and
its ``INCOMING`` overtakes the ``TRANSFERRED``, as legs race on a real tenant), and the closing ``history`` with status,
``duration`` (including ``wait``) and the recording ``link``. The history's ``start`` lies
``duration`` seconds before the context's start (the moment the pushes are sent), so a simulated
call never ends in the future.

``hold`` cannot be expressed: MegaFon reports no hold events, so that scenario is an answered call
(its description says so) and ctid's hold time stays 0 for MegaFon calls.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, timedelta
from urllib.parse import urlencode

from ctid.connector import SimulatedRequest, SimulationContext
from ctid.errors import RequestError
from ctid.model import CTID_NAMESPACE

SCENARIOS = ("answered", "missed", "group", "transfer", "hold", "outbound_no_answer")

Push = dict[str, str]


def _digits(number: str | None) -> str | None:
    if not number:
        return None
    digits = "".join(ch for ch in number if ch.isdigit())
    return digits or None


class _Call:
    """Builds the pushes of one simulated call."""

    def __init__(self, instance: str, scenario: str, ctx: SimulationContext, recording_base: str):
        self.ctx = ctx
        seed = f"{instance}\x00{scenario}\x00{ctx.caller}\x00{ctx.agent}\x00{ctx.start.isoformat()}"
        self.callid = uuid.uuid5(CTID_NAMESPACE, seed).hex[:16].upper()
        self.phone = _digits(ctx.caller) or ctx.caller
        self.line = _digits(ctx.line)
        self.recording_base = recording_base.rstrip("/")

    def common(self, direction: str = "in", callid: str | None = None) -> Push:
        push = {"callid": callid or self.callid, "phone": self.phone}
        if self.line and direction == "in":
            push["diversion"] = self.line
        if self.ctx.group:
            push["groupRealName"] = self.ctx.group
        return push

    def contact(self) -> Push:
        push = {"cmd": "contact", "callid": self.callid, "phone": self.phone}
        if self.line:
            push["diversion"] = self.line
        return push

    def event(self, state: str, user: str, direction: str = "in", callid: str | None = None, **more: str) -> Push:
        return {"cmd": "event", "type": state, "user": user, "direction": direction,
                **self.common(direction, callid), **more}

    def history(self, status: str, user: str, duration: int, wait: int, direction: str = "in",
                link: bool = True) -> Push:
        # The pushes are sent at once, at ctx.start: the call must have ended by then, so it started
        # `duration` seconds earlier (a start of ctx.start would end the call in the future).
        started = self.ctx.start.astimezone(UTC) - timedelta(seconds=duration)
        push = {
            "cmd": "history",
            "type": direction,
            "status": status,
            "user": user,
            "start": started.strftime("%Y%m%dT%H%M%SZ"),
            "duration": str(duration),
            "wait": str(wait),
            **self.common(direction),
        }
        if direction == "out" and self.line:
            push["diversion"] = self.line
        if link:
            day = started.strftime("%Y-%m-%d")
            push["link"] = f"{self.recording_base}/api/v2/call-records/record/{day}/{self.callid.lower()}/call.mp3"
        return push


def _answered(c: _Call) -> list[Push]:
    a = c.ctx.agent
    return [c.contact(), c.event("INCOMING", a), c.event("ACCEPTED", a), c.event("COMPLETED", a),
            c.history("Success", a, duration=67, wait=7)]


def _missed(c: _Call) -> list[Push]:
    legs = [c.ctx.agent, *c.ctx.others]
    pushes = [c.contact()]
    pushes += [c.event("INCOMING", login) for login in legs]
    pushes += [c.event("CANCELLED", login) for login in legs]
    # Live tenants name the switch itself as `user` of a missed call.
    pushes.append(c.history("missed", "pbx", duration=25, wait=25, link=False))
    return pushes


def _group(c: _Call) -> list[Push]:
    winner, legs = c.ctx.agent, [c.ctx.agent, *c.ctx.others]
    pushes = [c.contact()]
    pushes += [c.event("INCOMING", login) for login in legs]
    pushes.append(c.event("ACCEPTED", winner))
    pushes += [c.event("CANCELLED", login) for login in legs if login != winner]
    pushes += [c.event("COMPLETED", winner), c.history("Success", winner, duration=95, wait=5)]
    return pushes


def _transfer(c: _Call) -> list[Push]:
    if not c.ctx.others:
        raise RequestError("the transfer scenario needs a second agent", error_id="bad_scenario")
    a, b = c.ctx.agent, c.ctx.others[0]
    # The leg rung at the target has a call id of its own, named by TRANSFERRED's second_callid;
    # its INCOMING races the TRANSFERRED and, as here, may arrive first.
    second = uuid.uuid5(CTID_NAMESPACE, f"{c.callid}\x00transfer").hex[:16].upper()
    return [c.contact(), c.event("INCOMING", a), c.event("ACCEPTED", a),
            c.event("INCOMING", b, callid=second),
            c.event("TRANSFERRED", a, second_callid=second), c.event("COMPLETED", a),
            c.event("ACCEPTED", b, callid=second), c.event("COMPLETED", b, callid=second),
            c.history("Success", b, duration=94, wait=4)]


def _outbound_no_answer(c: _Call) -> list[Push]:
    a = c.ctx.agent
    return [c.event("OUTGOING", a, direction="out"), c.event("CANCELLED", a, direction="out"),
            c.history("NotAvailable", a, duration=30, wait=30, direction="out", link=False)]


_BUILDERS: dict[str, Callable[[_Call], list[Push]]] = {
    "answered": _answered,
    "missed": _missed,
    "group": _group,
    "transfer": _transfer,
    "hold": _answered,
    "outbound_no_answer": _outbound_no_answer,
}


def _describe(push: Push) -> str:
    if push["cmd"] == "event":
        return f"event {push['type']} user={push['user']}"
    if push["cmd"] == "history":
        return f"history {push['type']} {push['status']} duration={push['duration']}"
    return push["cmd"]


def simulate(
    instance: str, scenario: str, ctx: SimulationContext, *, crm_token: str, recording_base: str
) -> list[SimulatedRequest]:
    """The form posts of ``scenario``, addressed to ``/hooks/<instance>`` and carrying the token."""
    builder = _BUILDERS.get(scenario)
    if builder is None:
        raise RequestError(
            f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}", error_id="bad_scenario"
        )
    call = _Call(instance, scenario, ctx, recording_base)
    out = []
    for push in builder(call):
        body = urlencode({**push, "crm_token": crm_token}).encode()
        description = _describe(push)
        if scenario == "hold" and push["cmd"] == "history":
            description += " (MegaFon reports no hold: simulated as an answered call)"
        out.append(
            SimulatedRequest(
                method="POST",
                path=f"/hooks/{instance}",
                headers={"content-type": "application/x-www-form-urlencoded"},
                body=body,
                description=description,
            )
        )
    return out
