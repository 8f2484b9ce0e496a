"""Data API reading: call reports as summary events with facts, call cost, employees, statuses.

``get.calls_report`` rows are the authoritative after-call record (a ``summary``); they also carry
the marketing facts (campaign, site, channel, UTM) and the recording hashes. Costs come from
``get.financial_call_legs_report`` as the sum of ``total_charge`` over a session's legs [guess §3.5].

Windows and paging follow the documented caps (§3.1, §5.6): ``date_from``/``date_till`` in the
account's local time, at most 3 months apart; ``limit`` at most 10 000 and ``offset`` at most
100 000, so a window holding more rows than one offset range reaches is split in two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ctid.errors import PBXError
from ctid.model import CallEvent, Direction, EventKind, Outcome
from ctid.phone import normalize
from ctid_comagic.client import RpcClient
from ctid_comagic.events import local_to_utc, utc_to_local

MAX_OFFSET = 100_000  # a window holding more is split [guess §3.1: keep windows at 110k rows or fewer]
MAX_WINDOW = timedelta(days=90)  # "3 months" (-32602 date_interval_limit_reached beyond)
MIN_SPLIT = timedelta(minutes=1)

CALL_FIELDS = [  # the fields ctid reads (the request shape of §3.7 is composed [guess])
    "id", "start_time", "finish_time", "direction", "source", "is_lost", "finish_reason", "wait_duration",
    "talk_duration", "clean_talk_duration", "total_duration", "virtual_phone_number", "contact_phone_number",
    "communication_number", "employees", "first_talked_employee_id", "last_talked_employee_id",
    "last_answered_employee_rating", "campaign_id", "campaign_name", "site_domain_name", "channel",
    "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "tags", "call_records",
    "communication_id", "call_api_external_id", "is_transfer",
]
_BUSY = {"subscriber_busy", "operator_busy", "employee_busy"}
_FAILED = {"no_success_subscriber_call", "no_success_operator_call", "numa_in_black_list", "numa_in_spam_list",
           "no_active_scenario", "not_enough_money", "no_money", "limit_exceeded", "call_not_allowed_on_tp",
           "internal_error", "incorrect_config", "sip_offline", "locked_numb"}


@dataclass(slots=True)
class ReportRow:
    """What ctid takes from one ``get.calls_report`` row."""

    session: str
    started_at: datetime | None
    finished: bool
    direction: Direction
    outcome: Outcome
    wait: float | None
    talk: float | None
    total: float | None
    remote: str | None
    line: str | None
    employee: str | None
    hashes: list[str]
    communication_id: str
    facts: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


MAX_SECONDS = 7 * 86400  # a duration beyond a week is a broken row, not a call


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value <= MAX_SECONDS else None  # also drops NaN and infinities


def _list(value: Any) -> list[Any]:
    """A field the Data API documents as an array; anything else (a broken row) reads as empty."""
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text[:500] or None


def read_row(row: dict[str, Any], tz: ZoneInfo, region: str) -> ReportRow | None:
    """A calls-report row, or None when it is not usable (no id or start time)."""
    session = _text(row.get("id"))
    started = local_to_utc(_text(row.get("start_time")), tz)
    if session is None or started is None:
        return None
    direction = Direction.OUTBOUND if row.get("direction") == "out" else Direction.INBOUND
    talk = _num(row.get("clean_talk_duration"))  # [guess] "talking only": without hold (§3.3)
    if talk is None:
        talk = _num(row.get("talk_duration"))
    reason = _text(row.get("finish_reason")) or ""
    talked = (row.get("last_talked_employee_id") is not None or bool(_num(row.get("talk_duration")))
              or any(isinstance(e, dict) and e.get("is_talked") is True for e in _list(row.get("employees"))))
    if row.get("is_lost") is True or not talked:  # [guess] a 0-second talk is still an answer
        outcome = (Outcome.BUSY if reason in _BUSY else Outcome.FAILED if reason in _FAILED
                   else Outcome.MISSED if direction is Direction.INBOUND else Outcome.NO_ANSWER)
    else:
        outcome = Outcome.ANSWERED
    employee = _text(row.get("last_talked_employee_id"))
    if employee is None:
        rung = [e for e in _list(row.get("employees")) if isinstance(e, dict) and e.get("employee_id") is not None]
        if len(rung) == 1:
            employee = str(rung[0]["employee_id"])
    facts: dict[str, Any] = {}
    campaign_id = row.get("campaign_id")
    if campaign_id not in (None, -1, "-1"):  # -1: the account has no campaigns (§5.13)
        facts["campaign_id"] = str(campaign_id)
        facts["campaign"] = _text(row.get("campaign_name"))
    for name, key in (("site_domain_name", "site"), ("channel", "channel"), ("utm_source", "utm_source"),
                      ("utm_medium", "utm_medium"), ("utm_campaign", "utm_campaign"),
                      ("utm_content", "utm_content"), ("utm_term", "utm_term")):
        if _text(row.get(name)):
            facts[key] = _text(row.get(name))
    tags = [t.get("tag_name") for t in _list(row.get("tags")) if isinstance(t, dict) and t.get("tag_name")]
    if tags:
        facts["tags"] = [str(t)[:200] for t in tags]
    rating = _num(row.get("last_answered_employee_rating"))
    if rating is not None:
        facts["rating"] = rating
    hashes = [h for h in _list(row.get("call_records")) if isinstance(h, str) and h.isalnum() and len(h) <= 64]
    extra = {k: row[k] for k in ("finish_reason", "source", "call_api_external_id", "is_transfer", "talk_duration")
             if row.get(k) is not None}
    return ReportRow(
        session=session, started_at=started, finished=bool(row.get("finish_time")), direction=direction,
        outcome=outcome, wait=_num(row.get("wait_duration")), talk=talk if outcome is Outcome.ANSWERED else 0.0,
        total=_num(row.get("total_duration")), remote=normalize(_text(row.get("contact_phone_number")), region),
        line=normalize(_text(row.get("virtual_phone_number")) or _text(row.get("communication_number")), region),
        employee=employee, hashes=hashes, communication_id=_text(row.get("communication_id")) or session,
        facts={k: v for k, v in facts.items() if v is not None}, extra=extra,
    )


def summary_event(instance: str, row: ReportRow, received_at: datetime, recording: str | None) -> CallEvent:
    """The report row of a finished call as a ``summary`` (its key is the session: one per call)."""
    return CallEvent(
        connector=instance, pbx_call_id=row.session, kind=EventKind.SUMMARY, key=f"report:{row.session}",
        at=row.started_at, received_at=received_at, direction=row.direction, remote_number=row.remote,
        line_number=row.line, agent_login=row.employee, outcome=row.outcome, wait_seconds=row.wait,
        talk_seconds=row.talk, total_seconds=row.total, recording=recording, extra=row.extra, facts=row.facts,
    )


def ongoing_event(instance: str, row: ReportRow, received_at: datetime) -> CallEvent:
    """A call in progress whose notifications never came: it rings from its start time."""
    return CallEvent(
        connector=instance, pbx_call_id=row.session, kind=EventKind.RING, key=f"report-ring:{row.session}",
        at=row.started_at, received_at=received_at, direction=row.direction, remote_number=row.remote,
        line_number=row.line, extra={"from_report": True}, facts=row.facts,
    )


def ongoing_answer(instance: str, row: ReportRow, received_at: datetime) -> CallEvent | None:
    """The answer of a call in progress the report says an employee talks on (``last_talked_employee_id``
    or an employee with ``is_talked``, §3.3), at start + ``wait_duration`` (the wait until the first
    talk); None while nobody has talked. The employee id is the agent's CoMagic login."""
    if row.finished or row.outcome is not Outcome.ANSWERED or row.employee is None:
        return None
    at = row.started_at + timedelta(seconds=row.wait or 0)
    return CallEvent(
        connector=instance, pbx_call_id=row.session, kind=EventKind.ANSWER, key=f"report-answer:{row.session}",
        at=at, received_at=received_at, direction=row.direction, remote_number=row.remote,
        line_number=row.line, agent_login=row.employee, extra={"from_report": True},
    )


async def calls(client: RpcClient, since: datetime, until: datetime, tz: ZoneInfo, *, limit: int,
                ongoing: bool = True, session: str | None = None) -> list[dict[str, Any]]:
    """Every calls-report row that started in ``[since, until]``, all pages, windows split as needed."""
    out: dict[Any, dict[str, Any]] = {}  # by id: windows share their boundary second (both ends included)
    windows = _windows(since, until)
    while windows:
        low, high = windows.pop(0)
        params: dict[str, Any] = {"date_from": utc_to_local(low, tz), "date_till": utc_to_local(high, tz, ceil=True),
                                  "fields": CALL_FIELDS, "include_ongoing_calls": ongoing,
                                  "sort": [{"field": "start_time", "order": "asc"}]}
        if session is not None:
            params["filter"] = {"field": "id", "operator": "=", "value": int(session) if session.isascii() and session.isdigit() else session}
        rows, total = await client.rows("get.calls_report", {**params, "offset": 0}, limit=limit)
        if total > MAX_OFFSET + limit and high - low > MIN_SPLIT:
            middle = low + (high - low) / 2
            windows[:0] = [(low, middle), (middle, high)]
            continue
        out.update((row.get("id"), row) for row in rows)
        offset = len(rows)
        while rows and offset < total and offset <= MAX_OFFSET:
            rows, total = await client.rows("get.calls_report", {**params, "offset": offset}, limit=limit)
            out.update((row.get("id"), row) for row in rows)
            offset += len(rows)
    return list(out.values())


def _windows(since: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
    """``[since, until]`` cut into windows the Data API accepts (at most 3 months each)."""
    windows, start = [], since
    while start < until:
        end = min(start + MAX_WINDOW, until)
        windows.append((start, end))
        start = end
    return windows


async def costs(client: RpcClient, since: datetime, until: datetime, tz: ZoneInfo, *, limit: int,
                session: str | None = None) -> dict[str, float]:
    """Σ ``total_charge`` per call session of the legs that started in the window [guess §3.5]."""
    legs: dict[Any, dict[str, Any]] = {}  # by leg: windows share their boundary second
    for low, high in _windows(since, until):
        params: dict[str, Any] = {"date_from": utc_to_local(low, tz), "date_till": utc_to_local(high, tz, ceil=True),
                                  "fields": ["call_session_id", "leg_id", "total_charge", "start_time"]}
        if session is not None:
            params["filter"] = {"field": "call_session_id", "operator": "=",
                                "value": int(session) if session.isascii() and session.isdigit() else session}
        offset, total = 0, 1
        while offset < total and offset <= MAX_OFFSET:
            rows, total = await client.rows("get.financial_call_legs_report", {**params, "offset": offset},
                                            limit=limit)
            if not rows:
                break
            offset += len(rows)
            legs.update(((row.get("call_session_id"), row.get("leg_id")), row) for row in rows)
    sums: dict[str, float] = {}
    for row in legs.values():
        charge = row.get("total_charge")
        if isinstance(charge, str):
            try:
                charge = float(charge)
            except ValueError:
                charge = None
        if row.get("call_session_id") is None or isinstance(charge, bool) or not isinstance(charge, int | float) \
                or not math.isfinite(charge):
            continue
        key = str(row["call_session_id"])
        sums[key] = round(sums.get(key, 0.0) + float(charge), 4)
    return sums


def cost_event(instance: str, session: str, cost: float, currency: str, received_at: datetime) -> CallEvent:
    """The call's cost as a ``facts`` event (a changed bill is a new event: its key holds the amount)."""
    return CallEvent(connector=instance, pbx_call_id=session, kind=EventKind.FACTS,
                     key=f"cost:{session}:{cost:.4f}", received_at=received_at,
                     facts={"cost": cost, "currency": currency})


async def employees(client: RpcClient, *, limit: int = 1000) -> list[dict[str, Any]]:
    fields = ["id", "login", "full_name", "first_name", "last_name", "email", "status_id", "groups",
              "phone_numbers", "extension"]
    out: list[dict[str, Any]] = []
    offset, total = 0, 1
    while offset < total and offset <= MAX_OFFSET:
        rows, total = await client.rows("get.employees", {"fields": fields, "offset": offset}, limit=limit, wait=False)
        if not rows:
            break
        out.extend(rows)
        offset += len(rows)
    return out


def dial_target(employee: dict[str, Any]) -> str | None:
    """What ``make.call``'s ``to`` takes for an employee: the extension, else an active number [guess]."""
    extension = employee.get("extension")
    if isinstance(extension, dict) and extension.get("extension_phone_number"):
        return str(extension["extension_phone_number"])
    for phone in employee.get("phone_numbers") or []:
        if isinstance(phone, dict) and phone.get("phone_number") and phone.get("status", "active") == "active":
            return str(phone["phone_number"])
    return None


async def status_id(client: RpcClient, mnemonic: str) -> int:
    """The id of the employee status called ``mnemonic`` (``get.statuses``) [guess]."""
    rows, _ = await client.rows("get.statuses", {"fields": ["id", "mnemonic", "name"]}, limit=100, wait=False)
    for row in rows:
        if row.get("mnemonic") == mnemonic and isinstance(row.get("id"), int):
            return row["id"]
    raise PBXError(f"CoMagic get.statuses: no status {mnemonic!r} on this account",
                   error_id="pbx_refused:status_not_found", retryable=False, code="status_not_found")
