"""Conversions from domain objects (CallEvent, Call, Task) to store rows, plus the outbox records.

(Rows back to objects: ``ctid.model.call_from_json`` / ``task_from_json``.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ctid.model import Call, CallEvent, Task, utcnow
from ctid.reports.columns import DEFAULT, ReportColumns
from ctid.store import participants


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


def call_row(call: Call, columns: ReportColumns = DEFAULT) -> dict[str, Any]:
    """The ``calls`` row of ``call``, with the report columns ``columns`` derives (ctid.reports.columns)."""
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
        "participants": participants.key(call.participants()),
        **columns.values(call),
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
