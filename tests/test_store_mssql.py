"""MS SQL Server support without a server: every Store statement, the DDL and the migration compile for
the ``mssql`` dialect, and the portable (no ``ON CONFLICT``) code path MS SQL takes runs for real on
SQLite and PostgreSQL while recording each statement, which is then compiled for MS SQL too."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trio
from sqlalchemy import BigInteger, DateTime, Float, Integer, String, event
from sqlalchemy.dialects import mssql
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.sql import ClauseElement

from ctid.model import Call, CallEvent, EventKind, Presence, Task, call_id_for
from ctid.store import OutboxJob, Store, event_key, migrate
from ctid.store import statements as st
from ctid.store.schema import metadata

MSSQL = mssql.dialect(deprecate_large_types=True)
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ROW = {"connector": "mf", "key": "k1"}

#: Sample arguments for every builder in ``statements.BUILDERS``.
SAMPLES: dict[str, tuple[Any, ...]] = {
    "insert_events": (),
    "existing_event_keys": ("mf", ["k1", "k2"]),
    "events_for_call": ("c1",),
    "existing_call_ids": (["c1"],),
    "insert_calls": (),
    "update_call": (),
    "get_call": ("c1",),
    "find_call": ("mf", "p1"),
    "list_calls": (),
    "call_ids_updated_since": (T0,),
    "recent_calls_for_number": ("+7900", T0, 10),
    "existing_task_ids": (["t1"],),
    "insert_tasks": (),
    "update_task": (),
    "get_task": ("t1",),
    "list_tasks": (),
    "open_task_for_number": ("+7900", "open"),
    "set_task_crm_ref": ("t1", "crm-1"),
    "update_presence": ("anna", "dnd", T0),
    "insert_presence": ("anna", "dnd", T0),
    "update_lease": ("anna", T0),
    "load_leases": (),
    "insert_presence_history": ("anna", "dnd", T0),
    "load_presence": (),
    "presence_history_for": ("anna", T0, 10),
    "existing_dedupe_keys": (["a", "b"],),
    "insert_jobs": (),
    "job_ids_for_keys": (["a"],),
    "due_jobs": (T0, 10, ["log_call"]),
    "claim_job": (1, T0, T0 + timedelta(minutes=2)),
    "release_job": (1, T0, T0),
    "get_job": (1,),
    "complete_job": (1, T0),
    "fail_job": (1, "boom", T0),
    "outbox_counts": (T0,),
    "get_plugin_record": ("p", "k", "x"),
    "update_plugin_record": ("p", "k", "x", {"a": 1}, T0),
    "insert_plugin_record": ("p", "k", "x", {"a": 1}, T0),
    "delete_plugin_record": ("p", "k", "x"),
    "list_plugin_records": ("p", "k", 10),
    "get_setting": ("secret",),
    "insert_setting": ("secret", "v"),
    "ping": (),
}

#: Builders that need ``INSERT ... ON CONFLICT``; MS SQL takes the portable path instead.
ON_CONFLICT_SAMPLES: dict[str, tuple[Any, ...]] = {
    "insert_events_ignoring_duplicates": ([{**ROW, "call_id": "c", "kind": "ring", "payload": {}}],),
    "upsert_calls": ([{"id": "c1", "connector": "mf"}],),
    "upsert_tasks": ([{"id": "t1", "number": "1"}],),
    "upsert_presence": ("anna", "dnd", T0),
    "enqueue_jobs_ignoring_duplicates": ([{"kind": "k", "ref": "r", "dedupe_key": "d"}],),
    "upsert_plugin_record": ("p", "k", "x", {"a": 1}, T0),
    "insert_setting_if_absent": ("secret", "v"),
}


def _compile(stmt: ClauseElement) -> str:
    return str(stmt.compile(dialect=MSSQL))


def test_every_builder_is_listed_and_sampled() -> None:
    public = {
        name
        for name, fn in inspect.getmembers(st, inspect.isfunction)
        if fn.__module__ == st.__name__ and not name.startswith("_")
    }
    listed = {fn.__name__ for fn in st.BUILDERS}
    assert listed == public
    assert set(SAMPLES) | set(ON_CONFLICT_SAMPLES) == listed
    assert not set(SAMPLES) & set(ON_CONFLICT_SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_portable_builders_compile_for_mssql(name: str) -> None:
    sql = _compile(getattr(st, name)(*SAMPLES[name]))
    assert "ON CONFLICT" not in sql and "RETURNING" not in sql and "FILTER" not in sql
    assert "LIMIT" not in sql  # MS SQL spells it TOP / OFFSET ... FETCH


@pytest.mark.parametrize("name", sorted(ON_CONFLICT_SAMPLES))
def test_on_conflict_builders_refuse_mssql(name: str) -> None:
    builder = getattr(st, name)
    with pytest.raises(ValueError, match="ON CONFLICT"):
        builder("mssql", *ON_CONFLICT_SAMPLES[name])
    assert "ON CONFLICT" in str(builder("postgresql", *ON_CONFLICT_SAMPLES[name]).compile())


def test_mssql_specifics_in_compiled_sql() -> None:
    listing = _compile(st.list_calls(since=T0, limit=25, agent="anna", descending=True))
    assert "SELECT TOP __[POSTCOMPILE_param_1] calls.data" in listing
    assert "ORDER BY calls.updated_at DESC, calls.id DESC" in listing
    assert "[key]" in _compile(st.existing_event_keys("mf", ["a"]))  # reserved word quoted
    counts = _compile(st.outbox_counts(T0))
    assert "sum(CASE WHEN" in counts and "coalesce" in counts


def _byte_width(column: Any) -> int:
    kind = column.type
    if isinstance(kind, String):
        assert kind.length is not None, f"{column.table.name}.{column.name}: unbounded text in a key"
        return 2 * kind.length  # NVARCHAR
    if isinstance(kind, BigInteger):
        return 8
    if isinstance(kind, Integer):
        return 4
    if isinstance(kind, DateTime) or isinstance(getattr(kind, "impl", None), DateTime):
        return 10  # DATETIMEOFFSET
    if isinstance(kind, Float):
        return 8
    raise AssertionError(f"{column.table.name}.{column.name}: unexpected key type {kind!r}")


def test_ddl_compiles_and_every_key_fits_mssql_limits() -> None:
    for table in metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=MSSQL))
        assert (
            "NTEXT" not in ddl
            and " TEXT" not in ddl
            and "VARCHAR(max)" not in ddl.replace("NVARCHAR(max)", "")
        )
        for index in table.indexes:
            str(CreateIndex(index).compile(dialect=MSSQL))
            assert sum(_byte_width(c) for c in index.columns) <= 1700, index.name
        for constraint in table.constraints:
            columns = list(getattr(constraint, "columns", []))
            if not columns:
                continue
            width = sum(_byte_width(c) for c in columns)
            limit = 900 if constraint is table.primary_key else 1700  # clustered PK vs nonclustered
            assert width <= limit, f"{constraint.name}: {width} bytes"
    events = str(CreateTable(metadata.tables["events"]).compile(dialect=MSSQL))
    assert "id BIGINT NOT NULL IDENTITY" in events
    assert "received_at DATETIMEOFFSET NOT NULL" in events
    assert "payload NVARCHAR(max) NOT NULL" in events
    assert "CONSTRAINT uq_events_connector_key UNIQUE (connector, [key])" in events
    outbox = str(CreateTable(metadata.tables["outbox"]).compile(dialect=MSSQL))
    assert "dedupe_key NVARCHAR(200) NOT NULL" in outbox  # one NULL per unique index on MS SQL


def test_offline_migration_for_mssql() -> None:
    sql = migrate.upgrade_sql("mssql+pyodbc://ctid:pw@ctid-dsn")
    for table in metadata.sorted_tables:
        assert f"CREATE TABLE {table.name} (" in sql
        for index in table.indexes:
            assert f"CREATE INDEX {index.name} ON {table.name}" in sql
    assert "NTEXT" not in sql and "NVARCHAR(max)" in sql and "DATETIMEOFFSET" in sql
    assert "BEGIN TRANSACTION;" in sql and sql.rstrip().endswith("GO")
    assert "INSERT INTO alembic_version (version_num) OUTPUT inserted.version_num VALUES ('0001');" in sql
    assert "ALTER TABLE agents_presence ADD lease_until DATETIMEOFFSET NULL;" in sql  # 0002


# --- the portable path, executed ------------------------------------------------------------------


def ev(call: str, key: str) -> CallEvent:
    return CallEvent(connector="mf", pbx_call_id=call, kind=EventKind.RING, key=key, at=T0, received_at=T0)


def call_of(pbx_call_id: str, updated: int = 0) -> Call:
    return Call(
        id=call_id_for("mf", pbx_call_id),
        connector="mf",
        pbx_call_id=pbx_call_id,
        remote_number="+7900",
        started_at=T0,
        updated_at=T0 + timedelta(seconds=updated),
    )


@pytest.fixture
def portable(monkeypatch: pytest.MonkeyPatch) -> list[ClauseElement]:
    """Make the Store take the MS SQL code path (no ON CONFLICT) and record the statements it runs."""
    monkeypatch.setattr(st, "ON_CONFLICT_DIALECTS", frozenset())
    return []


def _record(store: Store, seen: list[ClauseElement]) -> None:
    @event.listens_for(store.engine, "before_execute")
    def _before(conn, clause, multiparams, params, options):  # noqa: ANN001, ANN202
        if isinstance(clause, ClauseElement):
            seen.append(clause)


async def test_portable_path_behaves_and_compiles_for_mssql(
    db_url: str, portable: list[ClauseElement]
) -> None:
    async with Store(db_url) as store, trio.open_nursery() as nursery:
        _record(store, portable)
        await nursery.start(store.run_writer)
        job = OutboxJob("log_call", "c1", {"x": 1}, dedupe_key="log:c1", due_at=T0)
        task = Task(id="t1", number="+7900")
        assert await store.add_events([ev("c1", "k1")], [call_of("c1")], tasks=[task], outbox=[job]) == {
            event_key("mf", "k1")
        }
        assert await store.add_events(
            [ev("c1", "k1"), ev("c1", "k2")], [call_of("c1", updated=5)], outbox=[job]
        ) == {event_key("mf", "k2")}
        await store.upsert_tasks([task])
        assert (await store.get_call(call_of("c1").id))["updated_at"] == "2026-03-01T09:00:05.000Z"
        assert len(await store.events_for_call(call_of("c1").id)) == 2

        await store.set_presence("anna", Presence.AWAY, T0)
        await store.set_presence("anna", Presence.DND, T0 + timedelta(seconds=1))
        assert (await store.load_presence())["anna"][0] is Presence.DND
        await store.set_presence("anna", Presence.AVAILABLE, T0, source="launcher", lease_until=T0)
        await store.set_lease("anna", T0 + timedelta(seconds=30))
        assert (await store.load_leases())["anna"] == ("launcher", T0 + timedelta(seconds=30))

        storage = store.plugin_storage("p")
        await storage.put("k", "x", {"a": 1})
        await storage.put("k", "x", {"a": 2})
        assert await storage.get("k", "x") == {"a": 2}

        assert await store.set_setting_if_absent("s", "first") == "first"
        assert await store.set_setting_if_absent("s", "second") == "first"

        assert await store.enqueue("log_call", "c1", {}, dedupe_key="log:c1") is None
        jobs = await store.due_jobs(T0, 10)
        assert [j.dedupe_key for j in jobs] == ["log:c1"]
        await store.complete_job(jobs[0].id)
        assert (await store.outbox_stats())["done"] == 1
        nursery.cancel_scope.cancel()

    assert len(portable) > 15
    for clause in portable:
        if clause.__class__.__name__ in ("TextClause",):  # migration lock / test helpers
            continue
        sql = _compile(clause)
        assert "ON CONFLICT" not in sql and "RETURNING" not in sql


async def test_portable_path_resolves_a_race_between_instances(db_url: str, portable: list) -> None:
    async with Store(db_url) as one, Store(db_url) as two:
        events = [ev(f"c{i}", f"k{i}") for i in range(20)]
        results: list[set[str]] = []

        async def submit(store: Store) -> None:
            results.append(await store.add_events(events))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(submit, one)
            nursery.start_soon(submit, two)
        assert results[0] | results[1] == {event_key("mf", f"k{i}") for i in range(20)}
        assert not results[0] & results[1]
