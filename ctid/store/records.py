"""Conversions between domain objects (CallEvent, Call, Task) and store rows, plus the outbox records."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ctid.model import Call, CallEvent, CallState, Direction, Outcome, Task, TaskStatus, utcnow


def event_key(connector: str, key: str) -> str:
    """The idempotency key :meth:`Store.add_events` reports: connector instance and event key."""
    return f"{connector}\x00{key}"


def event_row(event: CallEvent) -> dict[str, Any]:
    return {
        "connector": event.connector,
        "key": event.key,
        "call_id": event.call_id,
        "kind": str(event.kind),
        "at": event.at,
        "received_at": event.received_at,
        "payload": event.to_json(),
    }


def call_row(call: Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "connector": call.connector,
        "pbx_call_id": call.pbx_call_id,
        "direction": str(call.direction),
        "state": str(call.state),
        "outcome": str(call.outcome) if call.outcome else None,
        "remote_number": call.remote_number,
        "line_number": call.line_number,
        "agent": call.agent,
        "group_name": call.group,
        "started_at": call.started_at,
        "answered_at": call.answered_at,
        "ended_at": call.ended_at,
        "wait_seconds": call.wait_seconds,
        "talk_seconds": call.talk_seconds,
        "hold_seconds": call.hold_seconds,
        "updated_at": call.updated_at or utcnow(),
        "data": call.to_json(),
    }


def task_row(task: Task, now: datetime) -> dict[str, Any]:
    return {
        "id": task.id,
        "number": task.number,
        "status": str(task.status),
        "owner": task.owner,
        "data": task.to_json(),
        "updated_at": now,
    }


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def call_from_json(data: dict[str, Any]) -> Call:
    """Rebuild a :class:`Call` from its public JSON (``Call.to_json()``)."""
    return Call(
        id=data["id"],
        connector=data["connector"],
        pbx_call_id=data["pbx_call_id"],
        direction=Direction(data["direction"]),
        state=CallState(data["state"]),
        outcome=Outcome(data["outcome"]) if data.get("outcome") else None,
        remote_number=data.get("remote_number"),
        line_number=data.get("line_number"),
        agent=data.get("agent"),
        group=data.get("group"),
        ringing_agents=list(data.get("ringing_agents") or []),
        started_at=_dt(data.get("started_at")),
        answered_at=_dt(data.get("answered_at")),
        ended_at=_dt(data.get("ended_at")),
        wait_seconds=data.get("wait_seconds"),
        talk_seconds=data.get("talk_seconds"),
        hold_seconds=data.get("hold_seconds") or 0.0,
        recording_url=data.get("recording_url"),
        contact=data.get("contact"),
        transferred_from=data.get("transferred_from"),
        agents=list(data.get("agents") or []),
        updated_at=_dt(data.get("updated_at")),
    )


def task_from_json(data: dict[str, Any]) -> Task:
    """Rebuild a :class:`Task` from its public JSON (``Task.to_json()``)."""
    return Task(
        id=data["id"],
        number=data["number"],
        status=TaskStatus(data["status"]),
        missed_calls=list(data.get("missed_calls") or []),
        first_missed_at=_dt(data.get("first_missed_at")),
        last_missed_at=_dt(data.get("last_missed_at")),
        owner=data.get("owner"),
        group=data.get("group"),
        line_number=data.get("line_number"),
        contact=data.get("contact"),
        closed_by_call=data.get("closed_by_call"),
        closed_at=_dt(data.get("closed_at")),
    )


@dataclass(frozen=True, slots=True)
class OutboxJob:
    """A job to enqueue. ``dedupe_key``: a job with the same key already queued (or done) is not
    queued again; ``None`` means always queue. ``due_at``: first attempt not before (default: now)."""

    kind: str
    ref: str
    payload: dict[str, Any]
    dedupe_key: str | None = None
    due_at: datetime | None = None

    def row(self, now: datetime) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ref": self.ref,
            "payload": self.payload,
            "created_at": now,
            "attempts": 0,
            "next_attempt_at": self.due_at or now,
            "done_at": None,
            "last_error": None,
            # MS SQL allows a single NULL in a unique index, so "no key" is a unique generated one.
            "dedupe_key": self.dedupe_key if self.dedupe_key is not None else f"auto:{uuid.uuid4()}",
        }


@dataclass(frozen=True, slots=True)
class Job:
    """A stored outbox job. ``next_attempt_at`` is ``None`` once done (``done_at`` set) or given up."""

    id: int
    kind: str
    ref: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    done_at: datetime | None
    last_error: str | None
    dedupe_key: str

    @property
    def dead(self) -> bool:
        """Given up: not done and no further attempt scheduled."""
        return self.done_at is None and self.next_attempt_at is None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        return cls(**row._asdict())
