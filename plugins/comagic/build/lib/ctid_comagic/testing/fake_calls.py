"""The call side of the fake CoMagic account: sessions, legs, and the notifications they send.

Tests drive calls as the telephone network would (a customer calls, a phone rings, an employee
answers on the handset, the customer hangs up); the Call API methods of :mod:`.fake_server` act on
the same sessions. Every change sends the notification the account's admin configured, rendered
from ctid's shipped templates the way the platform renders them: JSON literals, phones as E.164
digits, ``notification_time`` in the account's time zone with milliseconds and no offset.

Notifications wait in :attr:`CallModel.outbox` until delivered (:meth:`CallModel.deliver`, or the
sender task of :func:`.fake_server.serve`); tests may drop (``lost``), repeat or reorder them there.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from ctid_comagic.templates import query_template, render, render_query, template


@dataclass
class Notification:
    kind: str
    method: str
    path: str  # path and query relative to the receiver's base URL
    body: bytes
    values: dict[str, Any]


@dataclass
class Leg:
    leg_id: int
    employee: int | None  # None: the customer's leg
    state: str = "dialing"  # dialing | talk | ended
    answered_at: datetime | None = None


@dataclass
class Session:
    id: int
    direction: str
    contact: str
    line: str | None
    started_at: datetime
    state: str = "ringing"  # ringing | talk | hold | dialing | operator_talk | ended
    legs: list[Leg] = field(default_factory=list)
    talking: int | None = None  # employee the customer talks to
    target: int | None = None  # make.call target while transferring
    first_talk: datetime | None = None
    finished_at: datetime | None = None
    hold_since: datetime | None = None
    hold_seconds: float = 0.0
    talked: list[int] = field(default_factory=list)
    rung: list[int] = field(default_factory=list)
    external_id: str | None = None
    source: str = "va"
    marketing: dict[str, Any] = field(default_factory=dict)
    cost: float | None = None
    recorded: bool = True
    transferred: bool = False


class Clock:
    """Wall time for the fake (UTC); ``freeze`` then ``advance`` for exact test timelines."""

    def __init__(self) -> None:
        self.frozen: datetime | None = None

    def now(self) -> datetime:
        return self.frozen if self.frozen is not None else datetime.now(UTC)

    def freeze(self, at: datetime) -> None:
        self.frozen = at.astimezone(UTC)

    def advance(self, seconds: float) -> None:
        self.frozen = self.now() + timedelta(seconds=seconds)


class CallModel:
    """Sessions and the notification outbox (mixed into :class:`.fake_server.FakeComagic`)."""

    timezone: str
    body_secret: str
    hook_path: str
    notify_method: str
    employees: list[dict[str, Any]]

    def _init_calls(self) -> None:
        self.clock = Clock()
        self.sessions: dict[int, Session] = {}
        self.outbox: list[Notification] = []
        self.sent: list[Notification] = []
        self.lost: set[str] = set()  # kinds dropped in transit (never delivered)
        self._ids = itertools.count(300_000_001)
        self._legs = itertools.count(900_000_001)
        self._lock = threading.Lock()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local(self, at: datetime, *, ms: bool = True) -> str:
        value = at.astimezone(self.tz)
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        return text + f".{value.microsecond // 1000:03d}" if ms else text

    def employee(self, ref: Any) -> dict[str, Any] | None:
        for row in self.employees:
            numbers = [p.get("phone_number") for p in row.get("phone_numbers") or []]
            extension = (row.get("extension") or {}).get("extension_phone_number")
            if str(ref) in (str(row["id"]), str(extension), *[str(n) for n in numbers]):
                return row
        return None

    # -- notifications ---------------------------------------------------------------------------
    def _notify(self, kind: str, s: Session, **values: Any) -> None:
        employee = values.get("employee_id")
        row = self.employee(employee) if employee is not None else None
        base = {"notification_name": f"ctid-{kind}", "notification_mnemonic": None,
                "notification_time": self.local(self.clock.now()), "call_session_id": s.id,
                "virtual_phone_number": s.line, "contact_phone_number": s.contact, "communication_number": None,
                "external_id": s.external_id, "call_source": s.source, "direction": s.direction,
                "scenario_name": "Main", "contact_id": None, "contact_full_name": None,
                "employee_full_name": row.get("full_name") if row else None}
        values = {**base, **values}
        if self.notify_method == "GET":
            query = render_query(query_template(kind, self.body_secret), values)
            note = Notification(kind, "GET", f"{self.hook_path}?{query}", b"", values)
        else:
            body = render(template(kind, self.body_secret), values).encode()
            note = Notification(kind, "POST", self.hook_path, body, values)
        with self._lock:
            self.outbox.append(note)

    def take(self) -> list[Notification]:
        """Pending notifications, minus the ones lost in transit."""
        with self._lock:
            pending, self.outbox = self.outbox, []
        return [n for n in pending if n.kind not in self.lost]

    async def deliver(self, client: Any) -> list[int]:
        """POST (or GET) every pending notification with ``client`` (an httpx client at ctid)."""
        statuses = []
        for note in self.take():
            headers = {"content-type": "application/json"} if note.method == "POST" else {}
            response = await client.request(note.method, note.path, content=note.body or None, headers=headers)
            self.sent.append(note)
            statuses.append(response.status_code)
        return statuses

    # -- the telephone network -------------------------------------------------------------------
    def incoming(self, contact: str, employees: list[int], *, line: str | None = "74950000001",
                 marketing: dict[str, Any] | None = None, cost: float | None = None) -> int:
        """A customer calls ``line``; each employee's phone rings (a group rings them all)."""
        s = Session(next(self._ids), "in", contact, line, self.clock.now(), marketing=marketing or {}, cost=cost)
        self.sessions[s.id] = s
        s.legs.append(Leg(next(self._legs), None, "talk"))
        self._notify("inbound_call", s)
        for employee in employees:
            self.ring(s.id, employee)
        return s.id

    def ring(self, session: int, employee: int) -> int:
        s = self.sessions[session]
        leg = Leg(next(self._legs), employee)
        s.legs.append(leg)
        s.rung.append(employee)
        self._notify("waiting", s, employee_id=employee, leg_id=leg.leg_id)
        return leg.leg_id

    def _leg(self, s: Session, employee: int) -> Leg | None:
        live = [leg for leg in s.legs if leg.employee == employee and leg.state != "ended"]
        return live[-1] if live else None

    def answer(self, session: int, employee: int) -> None:
        """The employee picks up the handset ("talk started", as the phone would)."""
        s = self.sessions[session]
        leg = self._leg(s, employee)
        if leg is None:
            raise AssertionError(f"employee {employee} is not ringing on {session}")
        leg.state, leg.answered_at = "talk", self.clock.now()
        ids = [s.legs[0].leg_id, leg.leg_id]
        if s.state == "dialing" and employee == s.target:
            s.state = "operator_talk"  # the consulted colleague talks to the operator
        else:
            for other in s.legs:  # the other phones of a group stop ringing
                if other.employee is not None and other.state == "dialing":
                    other.state = "ended"
            if s.first_talk is None:
                s.first_talk = self.clock.now()
            s.state, s.talking = "talk", employee
            s.talked.append(employee)
        self._notify("talk_started", s, employee_id=employee, leg_ids=ids)

    def _end_talk(self, s: Session, employee: int) -> None:
        leg = self._leg(s, employee)
        if leg is None:
            return
        talk = int((self.clock.now() - (leg.answered_at or self.clock.now())).total_seconds())
        leg.state = "ended"
        self._notify("talk_ended", s, employee_id=employee, talk_time_duration=talk,
                     leg_ids=[s.legs[0].leg_id, leg.leg_id])

    def hang_up(self, session: int) -> None:
        """The customer hangs up: talks end, then "lost call" (never answered) and "call finished"."""
        s = self.sessions[session]
        if s.state == "ended":
            return
        for leg in s.legs:
            if leg.employee is not None and leg.state == "talk":
                self._end_talk(s, leg.employee)
            leg.state = "ended"
        self._finish(s)

    def _finish(self, s: Session) -> None:
        now = self.clock.now()
        if s.hold_since is not None:
            s.hold_seconds += (now - s.hold_since).total_seconds()
            s.hold_since = None
        s.state, s.finished_at = "ended", now
        total = int((now - s.started_at).total_seconds())
        wait = int(((s.first_talk or now) - s.started_at).total_seconds())
        talk = int((now - s.first_talk).total_seconds()) if s.first_talk else 0
        if s.first_talk is None and s.direction == "in":
            self._notify("lost_call", s, wait_time_duration=wait, employee_ids=list(s.rung))
        last = s.talked[-1] if s.talked else (s.rung[-1] if s.rung else None)
        self._notify("call_finished", s, employee_id=last, talk_time_duration=talk, total_time_duration=total,
                     wait_time_duration=wait, tag_names=None)
        if s.first_talk is not None and s.recorded:
            self._notify("recording_ready", s, employee_id=last, file_link=self.record_link(s),
                         file_duration=talk, tag_ids=None, tag_names=None)

    def record_link(self, s: Session) -> str:
        return f"{self.base_url}/system/media/talk/{s.id}/{self.record_hash(s)}/"

    @staticmethod
    def record_hash(s: Session) -> str:
        return f"{s.id:032x}"[-32:]

    @property
    def base_url(self) -> str:  # pragma: no cover - defined by the server
        raise NotImplementedError

    # -- report rows -----------------------------------------------------------------------------
    def report_row(self, s: Session) -> dict[str, Any]:
        now = self.clock.now()
        end = s.finished_at or now
        hold = s.hold_seconds + ((now - s.hold_since).total_seconds() if s.hold_since else 0)
        talk = int((end - s.first_talk).total_seconds()) if s.first_talk else 0
        row = {
            "id": s.id, "communication_id": s.id, "start_time": self.local(s.started_at, ms=False),
            "finish_time": self.local(s.finished_at, ms=False) if s.finished_at else None,
            "direction": s.direction, "source": s.source, "is_lost": s.first_talk is None and s.finished_at is not None,
            "finish_reason": ("subscriber_disconnects" if s.first_talk else "timeout") if s.finished_at else None,
            "wait_duration": int(((s.first_talk or end) - s.started_at).total_seconds()),
            "talk_duration": talk, "clean_talk_duration": max(int(talk - hold), 0),
            "total_duration": int((end - s.started_at).total_seconds()),
            "virtual_phone_number": s.line, "contact_phone_number": s.contact, "communication_number": None,
            "employees": [{"employee_id": e, "employee_full_name": (self.employee(e) or {}).get("full_name"),
                           "is_answered": e in s.talked, "is_talked": e in s.talked} for e in dict.fromkeys(s.rung)],
            "first_talked_employee_id": s.talked[0] if s.talked else None,
            "last_talked_employee_id": s.talked[-1] if s.talked else None,
            "last_answered_employee_rating": None, "campaign_id": -1, "campaign_name": None,
            "site_domain_name": None, "channel": None, "tags": [],
            "call_records": [self.record_hash(s)] if s.first_talk and s.recorded and s.finished_at else [],
            "call_api_external_id": s.external_id, "is_transfer": s.transferred,
        }
        for name in ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term"):
            row[name] = None
        row.update(s.marketing)
        return row

    def financial_rows(self, s: Session) -> list[dict[str, Any]]:
        if s.cost is None or s.finished_at is None:
            return []
        half = round(s.cost / 2, 2)
        return [{"call_session_id": s.id, "leg_id": leg.leg_id, "start_time": self.local(s.started_at, ms=False),
                 "total_charge": amount, "direction": s.direction}
                for leg, amount in zip(s.legs[:2], (half, round(s.cost - half, 2)), strict=False)]


def hook_path(instance: str, secret: str) -> str:
    return f"/hooks/{instance}/{quote(secret)}"
