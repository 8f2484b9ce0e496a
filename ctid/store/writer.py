"""Grouped commits: the transaction that persists many callers' events, calls, tasks and jobs at once.

:class:`Batch` is one caller's contribution; :func:`write_group` (run in a worker thread) writes a
group of batches in ONE transaction and records which event keys were new. Idempotency: events whose
``(connector, key)`` is already stored, or appears earlier in the same group, are skipped, never an
error. SQLite and PostgreSQL use ``INSERT ... ON CONFLICT``; other databases (MS SQL) pre-select the
existing keys inside the transaction (a concurrent instance winning the race surfaces as an
IntegrityError, and the Store retries).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import trio
from sqlalchemy import Connection, Engine

from ctid.model import Call, CallEvent, Task
from ctid.reports.columns import DEFAULT, ReportColumns
from ctid.store import statements as st
from ctid.store.engine import WRITE
from ctid.store.records import OutboxJob, call_row, event_key, event_row, task_row

#: Rows per multi-row INSERT / keys per IN list (stays under every database's parameter limit:
#: MS SQL 2100 parameters per statement, SQLite 32766, PostgreSQL 65535).
CHUNK = 500
IN_CHUNK = 500


@dataclass(eq=False)
class Batch:
    """One caller's rows for a grouped commit; ``done`` is set once committed or failed."""

    events: Sequence[CallEvent]
    calls: Sequence[Call] = ()
    tasks: Sequence[Task] = ()
    jobs: Sequence[OutboxJob] = ()
    done: trio.Event = field(default_factory=trio.Event)
    new_keys: set[str] = field(default_factory=set)
    error: BaseException | None = None

    @property
    def size(self) -> int:
        return len(self.events) + len(self.calls) + len(self.tasks) + len(self.jobs)


@functools.cache
def _many(builder: Callable[[str], Any], dialect: str) -> Any:
    """The executemany form of an ON CONFLICT builder, built once per dialect (building an upsert
    costs more than running it; the compiled form is then cached by SQLAlchemy)."""
    return builder(dialect)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def write_group(engine: Engine, group: Sequence[Batch], now: datetime, columns: ReportColumns = DEFAULT) -> None:
    """Write every batch of ``group`` in one transaction (blocking; call from a worker thread).

    On success each batch's ``new_keys`` holds the keys of its events that were stored now.
    Raises the database's exception on failure, after rolling everything back.
    """
    for batch in group:
        batch.new_keys = set()
    with engine.connect() as conn:
        conn.execution_options(**{WRITE: True})
        with conn.begin():
            _write_events(conn, group)
            calls: dict[str, dict[str, Any]] = {}
            tasks: dict[str, dict[str, Any]] = {}
            jobs: list[OutboxJob] = []
            for batch in group:  # later batches (and later items) win
                for call in batch.calls:
                    calls[call.id] = call_row(call, columns)
                for task in batch.tasks:
                    tasks[task.id] = task_row(task, now)
                jobs.extend(batch.jobs)
            upsert_rows(conn, "calls", list(calls.values()))
            upsert_rows(conn, "tasks", list(tasks.values()))
            enqueue_rows(conn, [job.row(now) for job in jobs])


def _write_events(conn: Connection, group: Sequence[Batch]) -> None:
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    owner: dict[str, Batch] = {}
    for batch in group:
        for event in batch.events:
            key = event_key(event.connector, event.key)
            if key in seen:
                continue
            seen.add(key)
            owner[key] = batch
            rows.append(event_row(event))
    for key in insert_events(conn, rows):
        owner[key].new_keys.add(key)


def insert_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert event rows (unique keys), skipping stored ones; returns the keys inserted."""
    dialect = conn.dialect.name
    inserted: set[str] = set()
    if dialect in st.ON_CONFLICT_DIALECTS:
        for chunk in _chunks(rows, CHUNK):
            result = conn.execute(_many(st.insert_events_ignoring_duplicates, dialect), list(chunk))
            inserted.update(event_key(connector, key) for connector, key in result)
        return inserted
    by_connector: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_connector.setdefault(row["connector"], []).append(row)
    fresh: list[dict[str, Any]] = []
    for connector, group in by_connector.items():
        existing: set[str] = set()
        for chunk in _chunks([row["key"] for row in group], IN_CHUNK):
            existing.update(conn.execute(st.existing_event_keys(connector, chunk)).scalars())
        fresh.extend(row for row in group if row["key"] not in existing)
    if fresh:
        conn.execute(st.insert_events(), fresh)
    return {event_key(row["connector"], row["key"]) for row in fresh}


_UPSERT = {
    "calls": (st.upsert_calls, st.existing_call_ids, st.insert_calls, st.update_call),
    "tasks": (st.upsert_tasks, st.existing_task_ids, st.insert_tasks, st.update_task),
}


def upsert_rows(conn: Connection, table: str, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or overwrite ``calls`` / ``tasks`` rows by primary key (ids must be unique in ``rows``)."""
    if not rows:
        return
    upsert, existing_ids, insert, update = _UPSERT[table]
    dialect = conn.dialect.name
    if dialect in st.ON_CONFLICT_DIALECTS:
        for chunk in _chunks(rows, CHUNK):
            conn.execute(_many(upsert, dialect), list(chunk))
        return
    existing: set[str] = set()
    for chunk in _chunks([row["id"] for row in rows], IN_CHUNK):
        existing.update(conn.execute(existing_ids(chunk)).scalars())
    new = [row for row in rows if row["id"] not in existing]
    old = [
        {"b_id": row["id"], **{k: v for k, v in row.items() if k != "id"}}
        for row in rows
        if row["id"] in existing
    ]
    if new:
        conn.execute(insert(), new)
    if old:
        conn.execute(update(), old)


def enqueue_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int | None]:
    """Insert outbox rows; returns each row's new id, or ``None`` where its dedupe key already existed
    (or appeared earlier in ``rows``)."""
    if not rows:
        return []
    dialect = conn.dialect.name
    unique: dict[str, dict[str, Any]] = {}
    for row in rows:
        unique.setdefault(row["dedupe_key"], row)
    ids: dict[str, int] = {}
    if dialect in st.ON_CONFLICT_DIALECTS:
        for chunk in _chunks(list(unique.values()), CHUNK):
            result = conn.execute(_many(st.enqueue_jobs_ignoring_duplicates, dialect), list(chunk))
            ids.update((key, job_id) for job_id, key in result)
    else:
        existing: set[str] = set()
        for chunk in _chunks(list(unique), IN_CHUNK):
            existing.update(conn.execute(st.existing_dedupe_keys(chunk)).scalars())
        fresh = [row for key, row in unique.items() if key not in existing]
        if fresh:
            conn.execute(st.insert_jobs(), fresh)
            for chunk in _chunks([row["dedupe_key"] for row in fresh], IN_CHUNK):
                ids.update((key, job_id) for job_id, key in conn.execute(st.job_ids_for_keys(chunk)))
    result_ids: list[int | None] = []
    claimed: set[str] = set()
    for row in rows:
        key = row["dedupe_key"]
        if key in ids and key not in claimed and unique[key] is row:
            claimed.add(key)
            result_ids.append(ids[key])
        else:
            result_ids.append(None)
    return result_ids
