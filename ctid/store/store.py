"""The Store: ctid's async persistence API over SQLAlchemy Core, for the daemon running under Trio.

SQL runs in worker threads (``trio.to_thread.run_sync``) limited by a ``trio.CapacityLimiter``.
Event writes go through one writer task that groups concurrent callers into one transaction
(grouped commit); everything else is a short transaction of its own. Every database failure
surfaces as :class:`ctid.errors.StoreError` (``raise ... from`` the driver's exception).

Lifecycle::

    store = Store(config.database.url, pool_size=5, commit_batch=500, threads=4)
    await store.open()                      # creates the engine, migrates to the newest schema
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run_writer)
        new = await store.add_events(events, calls, outbox=[OutboxJob(...)])
    await store.aclose()
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import trio
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ctid.errors import StoreError
from ctid.model import Call, CallEvent, Presence, Task, TaskStatus, call_from_json, task_from_json, utcnow
from ctid.reports.columns import DEFAULT as DEFAULT_COLUMNS
from ctid.reports.columns import ReportColumns
from ctid.store import engine as engines
from ctid.store import migrate
from ctid.store import statements as st
from ctid.store.engine import WRITE
from ctid.store.plugin_storage import SQLPluginStorage
from ctid.store.records import Job, OutboxJob, task_row
from ctid.store.writer import Batch, enqueue_rows, upsert_rows, write_group

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class StoreStats:
    """Counters of the grouped-commit writer (exported as metrics)."""

    commits: int = 0  # successful grouped transactions
    batches: int = 0  # add_events calls committed
    events: int = 0  # new events stored
    failures: int = 0  # failed grouped transactions


class Store:
    """Async access to ctid's database. See the module docstring for the lifecycle.

    :param url: SQLAlchemy URL (``sqlite:///var/ctid.db``, ``sqlite://`` in memory,
        ``postgresql+psycopg://...`` or ``postgresql://...``, ``mssql+pyodbc://...``).
    :param pool_size: connections kept open (ignored for in-memory SQLite).
    :param commit_batch: the most events one grouped commit takes from waiting callers.
    :param threads: worker threads running SQL at once (1 for in-memory SQLite: one connection).
    :param migrate: upgrade the schema to the newest revision on :meth:`open`.
    :param columns: how the report columns of a call row are derived (time zone, tariffs, number
        pools; ``ctid.reports.columns``); UTC and nothing else by default.
    """

    def __init__(
        self, url: str, *, pool_size: int = 5, commit_batch: int = 500, threads: int = 4, migrate: bool = True,
        columns: ReportColumns = DEFAULT_COLUMNS,
    ):
        self.url = engines.normalize_url(url)
        self.pool_size = pool_size
        self.commit_batch = commit_batch
        self.migrate = migrate
        self.columns = columns
        if engines.is_memory_sqlite(self.url):
            threads = 1
        self.limiter = trio.CapacityLimiter(threads)
        self.stats = StoreStats()
        self._engine: Engine | None = None
        self._queue: trio.MemorySendChannel[Batch] | None = None
        # Presence rows are written in the order their writes were asked for: concurrent requests (a
        # lease renewal and a status change) would otherwise race in worker threads and a stale
        # status could land last, to be loaded at the next start. trio.Lock is FIFO.
        self._presence_lock = trio.Lock()

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise StoreError("the store is not open")
        return self._engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def open(self) -> None:
        """Create the engine, migrate (with ``migrate=False``: require the newest schema) and check
        that the database answers."""
        if self._engine is not None:
            return
        self._engine = engines.create(self.url, pool_size=self.pool_size)
        try:
            if self.migrate:
                await self._thread(migrate.upgrade_engine, self._engine)
            else:
                revision = await self._thread(migrate.current_revision, self._engine)
                if revision != migrate.head_revision():
                    raise StoreError(
                        f"the database schema is at revision {revision or 'none'}, this ctid needs "
                        f"{migrate.head_revision()}: run `ctid db upgrade`"
                    )
            await self.ping()
        except BaseException:
            self._engine.dispose()
            self._engine = None
            raise

    async def aclose(self) -> None:
        """Close every connection. Idempotent."""
        if self._engine is not None:
            engine, self._engine = self._engine, None
            engine.dispose()

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def ping(self) -> None:
        """Raise :class:`StoreError` unless the database answers a query on ctid's schema."""
        await self._read(lambda conn: conn.execute(st.ping()).scalar_one())

    # --- plumbing -------------------------------------------------------------------------------

    async def _thread(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)
        except StoreError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {engines.describe_error(exc)}") from exc
        except (UnicodeError, ValueError, TypeError, OverflowError) as exc:
            # A value the driver cannot write (text with lone surrogates, an integer beyond 64 bits):
            # that one transaction fails, as any database error; the writer task lives on.
            log.error("the database driver refused a value: %s: %s", type(exc).__name__, exc, exc_info=exc)
            raise StoreError(f"cannot store a value: {type(exc).__name__}: {exc}", error_id="store_rejected") from exc

    async def _read(self, fn: Callable[[Any], T]) -> T:
        engine = self.engine

        def run() -> T:
            with engine.connect() as conn:
                return fn(conn)

        return await self._thread(run)

    async def _write(self, fn: Callable[[Any], T]) -> T:
        engine = self.engine

        def run() -> T:
            with engine.connect() as conn:
                conn.execution_options(**{WRITE: True})
                with conn.begin():
                    return fn(conn)

        return await self._thread(run)

    # --- events and calls (grouped commit) ------------------------------------------------------

    async def run_writer(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The grouped-commit writer task: ``await nursery.start(store.run_writer)``.

        Takes every waiting :meth:`add_events` batch (up to ``commit_batch`` events) and commits them
        in one transaction. A commit in progress is finished even when the task is cancelled, and
        batches already queued at cancellation are committed before it returns (graceful shutdown).
        """
        if self._queue is not None:
            raise RuntimeError("the store writer is already running")
        send, receive = trio.open_memory_channel[Batch](math.inf)
        self._queue = send
        task_status.started()
        try:
            while True:
                group = [await receive.receive()]
                self._take_more(receive, group)
                with trio.CancelScope(shield=True):
                    await self._commit(group)
        finally:
            self._queue = None
            send.close()
            leftovers: list[Batch] = []
            while True:
                try:
                    leftovers.append(receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            receive.close()
            with trio.CancelScope(shield=True):
                while leftovers:
                    group, leftovers = leftovers[:1], leftovers[1:]
                    while leftovers and sum(b.size for b in group) < self.commit_batch:
                        group.append(leftovers.pop(0))
                    await self._commit(group)

    def _take_more(self, receive: trio.MemoryReceiveChannel[Batch], group: list[Batch]) -> None:
        size = group[0].size
        while size < self.commit_batch:
            try:
                batch = receive.receive_nowait()
            except trio.WouldBlock:
                return
            group.append(batch)
            size += batch.size

    async def _commit(self, group: list[Batch]) -> None:
        """Commit ``group`` in one transaction and wake its callers.

        If that fails and the group has several batches, each is retried alone, so one bad batch
        does not fail its neighbours. A lone batch is retried once after an integrity error: on
        databases without ``ON CONFLICT`` that is another instance storing the same event first,
        and the retry's pre-select sees it.
        """
        try:
            try:
                await self._thread(write_group, self.engine, group, utcnow(), self.columns)
            except StoreError as exc:
                self.stats.failures += 1
                if len(group) == 1 and not isinstance(exc.__cause__, IntegrityError):
                    group[0].error = exc
                    return
                for batch in group:
                    try:
                        await self._thread(write_group, self.engine, [batch], utcnow(), self.columns)
                    except StoreError as single:
                        self.stats.failures += 1
                        batch.error = single
                    else:
                        self._count([batch])
            else:
                self._count(group)
        finally:
            for batch in group:
                batch.done.set()

    def _count(self, group: list[Batch]) -> None:
        self.stats.commits += 1
        self.stats.batches += len(group)
        self.stats.events += sum(len(b.new_keys) for b in group)

    async def add_events(
        self,
        events: Sequence[CallEvent],
        calls: Sequence[Call] = (),
        *,
        tasks: Sequence[Task] = (),
        outbox: Sequence[OutboxJob] = (),
    ) -> set[str]:
        """Persist events with the calls, tasks and outbox jobs they produced, atomically.

        Returns the keys (``records.event_key(connector, key)`` = ``f"{connector}\\x00{key}"``) of the
        events that were new; events already stored are skipped silently (idempotent redelivery).
        Calls and tasks are upserted (the latest state wins); jobs with a known ``dedupe_key`` are
        skipped. Concurrent callers share one transaction (grouped commit through
        :meth:`run_writer`; without a running writer the batch is committed directly). Returns once
        the rows are committed; raises :class:`StoreError` if the transaction failed (nothing of
        this batch is stored then).
        """
        return await self.add_events_nowait(events, calls, tasks=tasks, outbox=outbox).wait()

    def add_events_nowait(
        self,
        events: Sequence[CallEvent],
        calls: Sequence[Call] = (),
        *,
        tasks: Sequence[Task] = (),
        outbox: Sequence[OutboxJob] = (),
    ) -> PendingCommit:
        """Queue rows for the grouped commit *now*, without a checkpoint, and return a handle whose
        ``await handle.wait()`` gives what :meth:`add_events` returns.

        Batches commit in the order they were queued, so a caller that reduces events and queues
        their rows in the same step (no await in between) can do other work (publish to the hub)
        before waiting, and still never has an older call state committed after a newer one.
        """
        batch = Batch(events=list(events), calls=list(calls), tasks=list(tasks), jobs=list(outbox))
        if self._queue is not None:
            self._queue.send_nowait(batch)
            return PendingCommit(self, batch, queued=True)
        return PendingCommit(self, batch, queued=False)

    async def upsert_calls(self, calls: Sequence[Call]) -> None:
        """Store the current state of ``calls`` (not grouped; prefer :meth:`add_events`)."""
        await self.add_events([], calls)

    async def events_for_call(self, call_id: str) -> list[CallEvent]:
        """Every stored event of a call, in the order they were stored."""
        rows = await self._read(lambda conn: conn.execute(st.events_for_call(call_id)).scalars().all())
        return [CallEvent.from_json(payload) for payload in rows]

    async def get_call(self, call_id: str) -> dict[str, Any] | None:
        """The Call JSON of ``call_id``, or ``None``."""
        return await self._read(lambda conn: conn.execute(st.get_call(call_id)).scalar_one_or_none())

    async def find_call(self, connector: str, pbx_call_id: str) -> dict[str, Any] | None:
        """The Call JSON of the PBX's call ``pbx_call_id`` on connector instance ``connector``."""
        stmt = st.find_call(connector, pbx_call_id)
        return await self._read(lambda conn: conn.execute(stmt).scalar_one_or_none())

    async def load_call(self, call_id: str) -> Call | None:
        """Like :meth:`get_call`, as a :class:`Call` object."""
        data = await self.get_call(call_id)
        return call_from_json(data) if data is not None else None

    async def list_calls(
        self,
        since: datetime | None = None,
        limit: int = 100,
        *,
        until: datetime | None = None,
        agent: str | None = None,
        connector: str | None = None,
        pbx_call_id: str | None = None,
        number: str | None = None,
        state: str | None = None,
        descending: bool = False,
        participant: str | None = None,
    ) -> list[dict[str, Any]]:
        """Call JSONs ordered by ``updated_at`` (then id), oldest first unless ``descending``.

        ``since`` (inclusive) / ``until`` (exclusive) bound ``updated_at``; the other arguments
        filter on equality (``number`` is the remote number); ``participant`` keeps the calls that
        agent rang on, talked on or transferred away (ctid.store.participants).
        """
        stmt = st.list_calls(
            since=since, until=until, limit=limit, agent=agent, connector=connector,
            pbx_call_id=pbx_call_id, number=number, state=state, descending=descending, participant=participant,
        )  # fmt: skip
        return await self._read(lambda conn: list(conn.execute(stmt).scalars()))

    async def call_ids_updated_since(self, since: datetime) -> dict[str, datetime]:
        """Call id -> ``updated_at`` of the calls whose row was written at or after ``since``."""
        stmt = st.call_ids_updated_since(since)
        return await self._read(lambda conn: {row.id: row.updated_at for row in conn.execute(stmt)})

    async def recent_calls_for_number(
        self, number: str, since: datetime, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Call JSONs with remote party ``number`` started at or after ``since``, newest first."""
        stmt = st.recent_calls_for_number(number, since, limit)
        return await self._read(lambda conn: list(conn.execute(stmt).scalars()))

    # --- tasks ----------------------------------------------------------------------------------

    async def upsert_tasks(self, tasks: Sequence[Task]) -> None:
        """Insert or overwrite callback tasks (their ``crm_ref`` is kept)."""
        if not tasks:
            return
        now = utcnow()
        rows = {task.id: task_row(task, now) for task in tasks}
        await self._write(lambda conn: upsert_rows(conn, "tasks", list(rows.values())))

    async def get_task(self, task_id: str) -> Task | None:
        row = await self._read(lambda conn: conn.execute(st.get_task(task_id)).first())
        return task_from_json(row.data) if row is not None else None

    async def list_tasks(
        self, status: TaskStatus | str | None = None, owner: str | None = None, *, limit: int = 1000
    ) -> list[Task]:
        """Tasks, most recently updated first, optionally only one status and/or owner."""
        stmt = st.list_tasks(status=str(status) if status else None, owner=owner, limit=limit)
        rows = await self._read(lambda conn: list(conn.execute(stmt).scalars()))
        return [task_from_json(data) for data in rows]

    async def open_task_for_number(self, number: str) -> Task | None:
        """The open callback task for caller ``number`` (the newest if several), or ``None``."""
        stmt = st.open_task_for_number(number, str(TaskStatus.OPEN))
        data = await self._read(lambda conn: conn.execute(stmt).scalar_one_or_none())
        return task_from_json(data) if data is not None else None

    async def get_task_crm_ref(self, task_id: str) -> str | None:
        row = await self._read(lambda conn: conn.execute(st.get_task(task_id)).first())
        return row.crm_ref if row is not None else None

    async def set_task_crm_ref(self, task_id: str, crm_ref: str | None) -> None:
        """Remember the CRM record created for a task."""
        await self._write(lambda conn: conn.execute(st.set_task_crm_ref(task_id, crm_ref)))

    # --- presence -------------------------------------------------------------------------------

    async def set_presence(
        self,
        agent_id: str,
        status: Presence | str,
        at: datetime,
        *,
        source: str = "user",
        lease_until: datetime | None = None,
    ) -> None:
        """Record an agent's status since ``at``, who set it and the launcher's lease, and append
        the status to the presence history. Presence writes land in the order they were called."""
        status, source = str(status), str(source)
        row = (agent_id, status, at, source, lease_until)

        def run(conn: Any) -> None:
            if conn.dialect.name in st.ON_CONFLICT_DIALECTS:
                conn.execute(st.upsert_presence(conn.dialect.name, *row))
            elif conn.execute(st.update_presence(*row)).rowcount == 0:
                conn.execute(st.insert_presence(*row))
            conn.execute(st.insert_presence_history(agent_id, status, at, source))

        async with self._presence_lock:
            await self._write(run)

    async def set_lease(self, agent_id: str, lease_until: datetime | None) -> None:
        """Record the launcher's lease of an agent whose status is stored (a renewal: no history)."""
        async with self._presence_lock:  # in order with set_presence (see __init__)
            await self._write(lambda conn: conn.execute(st.update_lease(agent_id, lease_until)))

    async def load_presence(self) -> dict[str, tuple[Presence, datetime]]:
        """Every agent's stored status and since when: ``{agent_id: (status, since)}``."""
        rows = await self._read(lambda conn: conn.execute(st.load_presence()).all())
        return {row.agent_id: (Presence(row.status), row.since) for row in rows}

    async def load_leases(self) -> dict[str, tuple[str, datetime | None]]:
        """Who set each stored status and the launcher lease held: ``{agent_id: (source, until)}``."""
        rows = await self._read(lambda conn: conn.execute(st.load_leases()).all())
        return {row.agent_id: (row.source or "user", row.lease_until) for row in rows}

    async def presence_history(
        self, agent_id: str, since: datetime | None = None, limit: int = 1000
    ) -> list[tuple[Presence, datetime]]:
        """An agent's status changes ``(status, at)``, oldest first."""
        stmt = st.presence_history_for(agent_id, since, limit)
        rows = await self._read(lambda conn: conn.execute(stmt).all())
        return [(Presence(row.status), row.at) for row in rows]

    # --- outbox ---------------------------------------------------------------------------------

    async def enqueue(
        self,
        kind: str,
        ref: str,
        payload: dict[str, Any],
        dedupe_key: str | None = None,
        *,
        due_at: datetime | None = None,
    ) -> int | None:
        """Queue a job; returns its id, or ``None`` if a job with ``dedupe_key`` already exists."""
        row = OutboxJob(kind, ref, payload, dedupe_key, due_at).row(utcnow())
        ids = await self._write(lambda conn: enqueue_rows(conn, [row]))
        return ids[0]

    async def due_jobs(
        self,
        now: datetime,
        limit: int = 50,
        *,
        lease: float | None = 120.0,
        kinds: Sequence[str] | None = None,
    ) -> list[Job]:
        """Jobs due at ``now``, oldest first.

        With ``lease`` (seconds) the jobs are *claimed*: their next attempt moves to ``now + lease``
        (the returned jobs show it) so other workers (other instances) skip them; a job claimed but
        neither completed, failed nor released (a crashed worker) becomes due again when the lease
        ends. Give back claimed jobs you will not run now with :meth:`release_jobs`.
        ``lease=None`` only looks.
        """
        candidates = await self._read(
            lambda conn: [Job.from_row(r) for r in conn.execute(st.due_jobs(now, limit, kinds))]
        )
        if lease is None or not candidates:
            return candidates
        until = now + timedelta(seconds=lease)

        def claim(conn: Any) -> list[Job]:
            claimed = []
            for job in candidates:
                assert job.next_attempt_at is not None
                if conn.execute(st.claim_job(job.id, job.next_attempt_at, until)).rowcount == 1:
                    claimed.append(dataclasses.replace(job, next_attempt_at=until))
            return claimed

        return await self._write(claim)

    async def release_jobs(self, jobs: Sequence[Job], at: datetime | None = None) -> None:
        """Hand back jobs claimed by :meth:`due_jobs` but not run (e.g. the worker stopped after a
        failure): they are due again at ``at`` (default now) instead of when their lease ends.
        A job whose lease was meanwhile taken over, completed or failed is left alone."""
        when = at or utcnow()

        def release(conn: Any) -> None:
            for job in jobs:
                if job.next_attempt_at is not None:
                    conn.execute(st.release_job(job.id, job.next_attempt_at, when))

        if jobs:
            await self._write(release)

    async def get_job(self, job_id: int) -> Job | None:
        row = await self._read(lambda conn: conn.execute(st.get_job(job_id)).first())
        return Job.from_row(row) if row is not None else None

    async def complete_job(self, job_id: int, *, at: datetime | None = None) -> None:
        """Mark a job done (it leaves the queue)."""
        await self._write(lambda conn: conn.execute(st.complete_job(job_id, at or utcnow())))

    async def fail_job(self, job_id: int, error: str, next_attempt_at: datetime | None) -> None:
        """Record a failed attempt; retry at ``next_attempt_at``, or give up (dead job) when ``None``."""
        await self._write(lambda conn: conn.execute(st.fail_job(job_id, error[:4000], next_attempt_at)))

    async def outbox_stats(self, now: datetime | None = None) -> dict[str, Any]:
        """``{"pending", "due", "done", "dead": int, "next_attempt_at": datetime | None}``."""
        row = await self._read(lambda conn: conn.execute(st.outbox_counts(now or utcnow())).one())
        stats = {name: int(row._mapping[name] or 0) for name in ("pending", "due", "done", "dead")}
        next_at = row.next_attempt_at
        if isinstance(next_at, datetime) or next_at is None:
            stats["next_attempt_at"] = next_at
        else:  # SQLite's MIN() over a DATETIME column comes back as text
            stats["next_attempt_at"] = _sqlite_datetime(next_at)
        return stats

    # --- plugin storage and settings ------------------------------------------------------------

    def plugin_storage(self, plugin: str) -> SQLPluginStorage:
        """A :class:`ctid.services.PluginStorage` for ``plugin`` (usable as ``Services.storage_factory``)."""
        return SQLPluginStorage(self, plugin)

    async def get_setting(self, key: str) -> str | None:
        return await self._read(lambda conn: conn.execute(st.get_setting(key)).scalar_one_or_none())

    async def set_setting_if_absent(self, key: str, value: str) -> str:
        """Store ``value`` under ``key`` unless a value is there; returns the value in the database.

        Race-safe across instances: whoever inserts first wins, everyone gets the winner's value.
        """

        def insert(conn: Any) -> None:
            if conn.dialect.name in st.ON_CONFLICT_DIALECTS:
                conn.execute(st.insert_setting_if_absent(conn.dialect.name, key, value))
            else:
                conn.execute(st.insert_setting(key, value))

        try:
            await self._write(insert)
        except StoreError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
        stored = await self.get_setting(key)
        if stored is None:
            raise StoreError(f"setting {key!r} vanished while being created")
        return stored


class PendingCommit:
    """A batch handed to the grouped-commit writer (see :meth:`Store.add_events_nowait`)."""

    def __init__(self, store: Store, batch: Batch, *, queued: bool):
        self._store, self._batch, self._queued = store, batch, queued

    async def wait(self) -> set[str]:
        """Wait until the batch is committed; return its new event keys or raise ``StoreError``."""
        batch = self._batch
        if self._queued:
            await batch.done.wait()
        elif not batch.done.is_set():
            await self._store._commit([batch])
        if batch.error is not None:
            raise batch.error
        return batch.new_keys


def _sqlite_datetime(value: str) -> datetime:
    from ctid.store.schema import UTCDateTime

    parsed = datetime.fromisoformat(value)
    result = UTCDateTime().process_result_value(parsed, None)
    assert result is not None
    return result
