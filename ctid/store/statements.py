"""Every SQL statement the Store issues, each built by one function (so tests can compile them all).

Builders take plain values and return SQLAlchemy Core statements; the Store executes them. Where the
best statement differs per database, the builder takes ``dialect`` (the SQLAlchemy dialect name):
SQLite and PostgreSQL get ``INSERT ... ON CONFLICT``, everything else (MS SQL) gets portable
statements that the Store combines with a pre-select inside the transaction.
``BUILDERS`` lists them all; ``tests/test_store_mssql.py`` compiles each one for MS SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Delete,
    Insert,
    Select,
    Update,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from ctid.store import participants
from ctid.store.schema import (
    agents_presence,
    calls,
    events,
    outbox,
    plugin_records,
    presence_history,
    settings,
    tasks,
)

#: Dialects with ``INSERT ... ON CONFLICT`` (and ``RETURNING``).
ON_CONFLICT_DIALECTS = frozenset({"sqlite", "postgresql"})

#: Columns of ``calls`` rewritten by an upsert (all but the primary key).
CALL_COLUMNS = tuple(c.name for c in calls.columns if c.name != "id")
TASK_COLUMNS = ("number", "status", "owner", "data", "updated_at")  # crm_ref is set separately


def _insert_for(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"no ON CONFLICT support for {dialect}")


# --- events -------------------------------------------------------------------------------------


def insert_events_ignoring_duplicates(dialect: str, rows: Sequence[dict[str, Any]] | None = None) -> Insert:
    """Insert event rows; rows whose ``(connector, key)`` exists are skipped. Returns the inserted keys.

    Without ``rows`` the statement is for executemany (``conn.execute(stmt, rows)``): SQLAlchemy
    compiles it once and caches it (a multi-row VALUES statement is compiled anew every time).
    The same holds for the other ``rows`` builders below."""
    stmt = _insert_for(dialect, events)
    stmt = stmt.values(list(rows)) if rows is not None else stmt
    stmt = stmt.on_conflict_do_nothing(index_elements=[events.c.connector, events.c.key])
    return stmt.returning(events.c.connector, events.c.key)


def insert_events() -> Insert:
    """Plain insert of event rows (executemany); used after :func:`existing_event_keys` filtered them."""
    return insert(events)


def existing_event_keys(connector: str, keys: Sequence[str]) -> Select:
    """Which of ``keys`` already exist for ``connector``."""
    return select(events.c.key).where(events.c.connector == connector, events.c.key.in_(list(keys)))


def events_for_call(call_id: str) -> Select:
    return select(events.c.payload).where(events.c.call_id == call_id).order_by(events.c.id)


# --- calls --------------------------------------------------------------------------------------


def upsert_calls(dialect: str, rows: Sequence[dict[str, Any]] | None = None) -> Insert:
    """Insert call rows or overwrite the existing ones (latest state wins)."""
    stmt = _insert_for(dialect, calls)
    stmt = stmt.values(list(rows)) if rows is not None else stmt
    return stmt.on_conflict_do_update(
        index_elements=[calls.c.id], set_={name: stmt.excluded[name] for name in CALL_COLUMNS}
    )


def existing_call_ids(ids: Sequence[str]) -> Select:
    return select(calls.c.id).where(calls.c.id.in_(list(ids)))


def insert_calls() -> Insert:
    return insert(calls)


def update_call() -> Update:
    """Overwrite one call (executemany with ``b_id`` plus every column of :data:`CALL_COLUMNS`)."""
    return (
        update(calls).where(calls.c.id == bindparam("b_id")).values({n: bindparam(n) for n in CALL_COLUMNS})
    )


def get_call(call_id: str) -> Select:
    return select(calls.c.data).where(calls.c.id == call_id)


def find_call(connector: str, pbx_call_id: str) -> Select:
    return select(calls.c.data).where(calls.c.connector == connector, calls.c.pbx_call_id == pbx_call_id)


def list_calls(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    agent: str | None = None,
    connector: str | None = None,
    pbx_call_id: str | None = None,
    number: str | None = None,
    state: str | None = None,
    descending: bool = False,
    participant: str | None = None,
) -> Select:
    """Calls filtered by the given fields, ordered by ``updated_at`` (then id); ``since`` is inclusive.
    ``participant``: calls that agent takes part in (ctid.store.participants), not only as ``agent``."""
    stmt = select(calls.c.data)
    if since is not None:
        stmt = stmt.where(calls.c.updated_at >= since)
    if until is not None:
        stmt = stmt.where(calls.c.updated_at < until)
    if agent is not None:
        stmt = stmt.where(calls.c.agent == agent)
    if participant is not None:
        stmt = stmt.where(or_(calls.c.agent == participant,  # rows written before the column existed
                              calls.c.participants.like(participants.pattern(participant),
                                                        escape=participants.ESCAPE)))
    if connector is not None:
        stmt = stmt.where(calls.c.connector == connector)
    if pbx_call_id is not None:
        stmt = stmt.where(calls.c.pbx_call_id == pbx_call_id)
    if number is not None:
        stmt = stmt.where(calls.c.remote_number == number)
    if state is not None:
        stmt = stmt.where(calls.c.state == state)
    if descending:
        stmt = stmt.order_by(calls.c.updated_at.desc(), calls.c.id.desc())
    else:
        stmt = stmt.order_by(calls.c.updated_at, calls.c.id)
    return stmt.limit(limit)


def call_ids_updated_since(since: datetime) -> Select:
    """Ids and ``updated_at`` of the calls written at or after ``since`` (``updated_at`` is indexed)."""
    return select(calls.c.id, calls.c.updated_at).where(calls.c.updated_at >= since)


def recent_calls_for_number(number: str, since: datetime, limit: int) -> Select:
    """Calls with ``number`` as the remote party that started at or after ``since``, newest first."""
    return (
        select(calls.c.data)
        .where(calls.c.remote_number == number, calls.c.started_at >= since)
        .order_by(calls.c.started_at.desc(), calls.c.id.desc())
        .limit(limit)
    )


# --- tasks --------------------------------------------------------------------------------------


def upsert_tasks(dialect: str, rows: Sequence[dict[str, Any]] | None = None) -> Insert:
    stmt = _insert_for(dialect, tasks)
    stmt = stmt.values(list(rows)) if rows is not None else stmt
    return stmt.on_conflict_do_update(
        index_elements=[tasks.c.id], set_={name: stmt.excluded[name] for name in TASK_COLUMNS}
    )


def existing_task_ids(ids: Sequence[str]) -> Select:
    return select(tasks.c.id).where(tasks.c.id.in_(list(ids)))


def insert_tasks() -> Insert:
    return insert(tasks)


def update_task() -> Update:
    return (
        update(tasks).where(tasks.c.id == bindparam("b_id")).values({n: bindparam(n) for n in TASK_COLUMNS})
    )


def get_task(task_id: str) -> Select:
    return select(tasks.c.data, tasks.c.crm_ref).where(tasks.c.id == task_id)


def list_tasks(*, status: str | None = None, owner: str | None = None, limit: int = 1000) -> Select:
    stmt = select(tasks.c.data)
    if status is not None:
        stmt = stmt.where(tasks.c.status == status)
    if owner is not None:
        stmt = stmt.where(tasks.c.owner == owner)
    return stmt.order_by(tasks.c.updated_at.desc(), tasks.c.id).limit(limit)


def open_task_for_number(number: str, open_status: str) -> Select:
    return (
        select(tasks.c.data)
        .where(tasks.c.number == number, tasks.c.status == open_status)
        .order_by(tasks.c.updated_at.desc(), tasks.c.id)
        .limit(1)
    )


def set_task_crm_ref(task_id: str, crm_ref: str | None) -> Update:
    return update(tasks).where(tasks.c.id == task_id).values(crm_ref=crm_ref)


# --- presence -----------------------------------------------------------------------------------


def upsert_presence(
    dialect: str, agent_id: str, status: str, since: datetime, source: str = "user",
    lease_until: datetime | None = None,
) -> Insert:
    values = {"status": status, "since": since, "source": source, "lease_until": lease_until}
    stmt = _insert_for(dialect, agents_presence).values(agent_id=agent_id, **values)
    return stmt.on_conflict_do_update(index_elements=[agents_presence.c.agent_id], set_=values)


def update_presence(
    agent_id: str, status: str, since: datetime, source: str = "user", lease_until: datetime | None = None
) -> Update:
    return (
        update(agents_presence)
        .where(agents_presence.c.agent_id == agent_id)
        .values(status=status, since=since, source=source, lease_until=lease_until)
    )


def insert_presence(
    agent_id: str, status: str, since: datetime, source: str = "user", lease_until: datetime | None = None
) -> Insert:
    return insert(agents_presence).values(
        agent_id=agent_id, status=status, since=since, source=source, lease_until=lease_until
    )


def update_lease(agent_id: str, lease_until: datetime | None) -> Update:
    return update(agents_presence).where(agents_presence.c.agent_id == agent_id).values(lease_until=lease_until)


def insert_presence_history(agent_id: str, status: str, at: datetime, source: str = "user") -> Insert:
    """Append a status to the history unless that very row (agent, status, since, source) is there:
    a write that changes only the launcher's lease, or the same write repeated, adds nothing."""
    c = presence_history.c
    values = [literal(agent_id, c.agent_id.type).label("agent_id"), literal(status, c.status.type).label("status"),
              literal(at, c.at.type).label("at"), literal(source, c.source.type).label("source")]
    same = select(c.id).where(c.agent_id == agent_id, c.at == at, c.status == status, c.source == source)
    return insert(presence_history).from_select(
        ["agent_id", "status", "at", "source"], select(*values).where(~exists(same)))


def load_presence() -> Select:
    return select(agents_presence.c.agent_id, agents_presence.c.status, agents_presence.c.since)


def load_leases() -> Select:
    return select(agents_presence.c.agent_id, agents_presence.c.source, agents_presence.c.lease_until)


def presence_history_for(agent_id: str, since: datetime | None, limit: int) -> Select:
    stmt = select(presence_history.c.status, presence_history.c.at).where(
        presence_history.c.agent_id == agent_id
    )
    if since is not None:
        stmt = stmt.where(presence_history.c.at >= since)
    return stmt.order_by(presence_history.c.at, presence_history.c.id).limit(limit)


# --- outbox -------------------------------------------------------------------------------------

_JOB_COLUMNS = (
    outbox.c.id,
    outbox.c.kind,
    outbox.c.ref,
    outbox.c.payload,
    outbox.c.created_at,
    outbox.c.attempts,
    outbox.c.next_attempt_at,
    outbox.c.done_at,
    outbox.c.last_error,
    outbox.c.dedupe_key,
)


def enqueue_jobs_ignoring_duplicates(dialect: str, rows: Sequence[dict[str, Any]] | None = None) -> Insert:
    """Insert jobs; a row whose ``dedupe_key`` exists is skipped. Returns the new ids and keys."""
    stmt = _insert_for(dialect, outbox)
    stmt = stmt.values(list(rows)) if rows is not None else stmt
    stmt = stmt.on_conflict_do_nothing(index_elements=[outbox.c.dedupe_key])
    return stmt.returning(outbox.c.id, outbox.c.dedupe_key)


def existing_dedupe_keys(keys: Sequence[str]) -> Select:
    return select(outbox.c.dedupe_key).where(outbox.c.dedupe_key.in_(list(keys)))


def insert_jobs() -> Insert:
    return insert(outbox)


def job_ids_for_keys(keys: Sequence[str]) -> Select:
    return select(outbox.c.id, outbox.c.dedupe_key).where(outbox.c.dedupe_key.in_(list(keys)))


def due_jobs(now: datetime, limit: int, kinds: Sequence[str] | None = None) -> Select:
    """Live jobs whose ``next_attempt_at`` has come, in the order they were queued (so the CRM
    receives activities in order even after a retried job)."""
    stmt = select(*_JOB_COLUMNS).where(outbox.c.next_attempt_at <= now)
    if kinds:
        stmt = stmt.where(outbox.c.kind.in_(list(kinds)))
    return stmt.order_by(outbox.c.id).limit(limit)


def claim_job(job_id: int, seen_next_attempt_at: datetime, lease_until: datetime) -> Update:
    """Move a due job's next attempt to the end of its lease, unless another worker already did."""
    return (
        update(outbox)
        .where(outbox.c.id == job_id, outbox.c.next_attempt_at == seen_next_attempt_at)
        .values(next_attempt_at=lease_until)
    )


def release_job(job_id: int, leased_until: datetime, at: datetime) -> Update:
    """Hand a claimed job back (due at ``at``) if its lease is still the one this worker took."""
    return (
        update(outbox)
        .where(outbox.c.id == job_id, outbox.c.next_attempt_at == leased_until)
        .values(next_attempt_at=at)
    )


def get_job(job_id: int) -> Select:
    return select(*_JOB_COLUMNS).where(outbox.c.id == job_id)


def complete_job(job_id: int, done_at: datetime) -> Update:
    return (
        update(outbox)
        .where(outbox.c.id == job_id)
        .values(done_at=done_at, next_attempt_at=None, attempts=outbox.c.attempts + 1, last_error=None)
    )


def fail_job(job_id: int, error: str, next_attempt_at: datetime | None) -> Update:
    return (
        update(outbox)
        .where(outbox.c.id == job_id, outbox.c.done_at.is_(None))
        .values(attempts=outbox.c.attempts + 1, last_error=error, next_attempt_at=next_attempt_at)
    )


def outbox_counts(now: datetime) -> Select:
    """One row: pending (live), due (live and due now), done, dead (given up) job counts and the
    earliest ``next_attempt_at`` of live jobs."""
    live = outbox.c.next_attempt_at.is_not(None)

    def count_where(*conditions: Any) -> Any:  # portable COUNT(*) FILTER (MS SQL has no FILTER)
        return func.coalesce(func.sum(case((and_(*conditions), 1), else_=0)), 0)

    return select(
        count_where(live).label("pending"),
        count_where(live, outbox.c.next_attempt_at <= now).label("due"),
        count_where(outbox.c.done_at.is_not(None)).label("done"),
        count_where(outbox.c.done_at.is_(None), outbox.c.next_attempt_at.is_(None)).label("dead"),
        func.min(outbox.c.next_attempt_at).label("next_attempt_at"),
    )


# --- plugin records -----------------------------------------------------------------------------


def get_plugin_record(plugin: str, kind: str, key: str) -> Select:
    return select(plugin_records.c.data).where(
        plugin_records.c.plugin == plugin, plugin_records.c.kind == kind, plugin_records.c.key == key
    )


def upsert_plugin_record(dialect: str, plugin: str, kind: str, key: str, data: Any, at: datetime) -> Insert:
    stmt = _insert_for(dialect, plugin_records).values(
        plugin=plugin, kind=kind, key=key, data=data, updated_at=at
    )
    return stmt.on_conflict_do_update(
        index_elements=[plugin_records.c.plugin, plugin_records.c.kind, plugin_records.c.key],
        set_={"data": stmt.excluded.data, "updated_at": stmt.excluded.updated_at},
    )


def update_plugin_record(plugin: str, kind: str, key: str, data: Any, at: datetime) -> Update:
    return (
        update(plugin_records)
        .where(plugin_records.c.plugin == plugin, plugin_records.c.kind == kind, plugin_records.c.key == key)
        .values(data=data, updated_at=at)
    )


def insert_plugin_record(plugin: str, kind: str, key: str, data: Any, at: datetime) -> Insert:
    return insert(plugin_records).values(plugin=plugin, kind=kind, key=key, data=data, updated_at=at)


def delete_plugin_record(plugin: str, kind: str, key: str) -> Delete:
    return delete(plugin_records).where(
        plugin_records.c.plugin == plugin, plugin_records.c.kind == kind, plugin_records.c.key == key
    )


def list_plugin_records(plugin: str, kind: str, limit: int) -> Select:
    return (
        select(plugin_records.c.key, plugin_records.c.data)
        .where(plugin_records.c.plugin == plugin, plugin_records.c.kind == kind)
        .order_by(plugin_records.c.key)
        .limit(limit)
    )


# --- settings and health ------------------------------------------------------------------------


def get_setting(key: str) -> Select:
    return select(settings.c.value).where(settings.c.key == key)


def insert_setting(key: str, value: str) -> Insert:
    return insert(settings).values(key=key, value=value)


def insert_setting_if_absent(dialect: str, key: str, value: str) -> Insert:
    return _insert_for(dialect, settings).values(key=key, value=value).on_conflict_do_nothing()


def ping() -> Select:
    """A query touching ctid's schema, so health also fails when the database is not migrated."""
    return select(func.count()).select_from(settings)


BUILDERS = [
    insert_events_ignoring_duplicates, insert_events, existing_event_keys, events_for_call,
    upsert_calls, existing_call_ids, insert_calls, update_call, get_call, find_call, list_calls,
    call_ids_updated_since, recent_calls_for_number,
    upsert_tasks, existing_task_ids, insert_tasks, update_task, get_task, list_tasks, open_task_for_number,
    set_task_crm_ref,
    upsert_presence, update_presence, insert_presence, update_lease, insert_presence_history, load_presence,
    load_leases, presence_history_for,
    enqueue_jobs_ignoring_duplicates, existing_dedupe_keys, insert_jobs, job_ids_for_keys, due_jobs, claim_job,
    release_job,
    get_job, complete_job, fail_job, outbox_counts,
    get_plugin_record, upsert_plugin_record, update_plugin_record, insert_plugin_record, delete_plugin_record,
    list_plugin_records,
    get_setting, insert_setting, insert_setting_if_absent, ping,
]  # fmt: skip
