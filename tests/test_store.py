"""Store behaviour on SQLite and PostgreSQL: idempotent events, grouped commits, outbox, presence, tasks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import trio
import trio.testing
from sqlalchemy import event, func, select, text

from ctid.errors import StoreError
from ctid.model import Call, CallEvent, CallState, Direction, EventKind, Outcome, Presence, Task, TaskStatus
from ctid.store import OutboxJob, Store, event_key, migrate
from ctid.store.schema import calls as calls_table
from ctid.store.schema import events as events_table

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def ev(
    pbx_call_id: str, key: str, kind: EventKind = EventKind.RING, *, seconds: int = 0, connector: str = "mf"
):
    return CallEvent(
        connector=connector,
        pbx_call_id=pbx_call_id,
        kind=kind,
        key=key,
        at=T0 + timedelta(seconds=seconds),
        received_at=T0 + timedelta(seconds=seconds, milliseconds=20),
        remote_number="+79001234567",
        agent_login="101",
        extra={"raw": "звонок"},
    )


def call_of(
    pbx_call_id: str, *, state=CallState.RINGING, agent="anna", updated=0, number="+79001234567", **kw
):
    first = ev(pbx_call_id, "x")
    return Call(
        id=first.call_id,
        connector="mf",
        pbx_call_id=pbx_call_id,
        direction=Direction.INBOUND,
        state=state,
        remote_number=number,
        agent=agent,
        started_at=T0,
        updated_at=T0 + timedelta(seconds=updated),
        **kw,
    )


async def count(store: Store, table) -> int:  # noqa: ANN001
    return await store._read(lambda conn: conn.execute(select(func.count()).select_from(table)).scalar_one())


def count_commits(store: Store) -> list[int]:
    commits = [0]

    @event.listens_for(store.engine, "commit")
    def _commit(_conn) -> None:  # noqa: ANN001
        commits[0] += 1

    return commits


# --- events: idempotency and grouped commit ------------------------------------------------------


async def test_events_are_idempotent(store: Store) -> None:
    batch = [
        ev("c1", "k1"),
        ev("c1", "k2", EventKind.ANSWER, seconds=3),
        ev("c1", "k3", EventKind.END, seconds=9),
    ]
    call = call_of("c1", state=CallState.ENDED, outcome=Outcome.ANSWERED, updated=9)

    new = await store.add_events(batch, [call])
    assert new == {event_key("mf", "k1"), event_key("mf", "k2"), event_key("mf", "k3")}

    again = await store.add_events(batch, [call])
    assert again == set()
    assert await count(store, events_table) == 3
    assert await count(store, calls_table) == 1

    stored = await store.events_for_call(call.id)
    assert stored == batch  # round-trips exactly (timestamps, enums, extra with non-ASCII)
    assert (await store.get_call(call.id)) == call.to_json()


async def test_partly_known_batch_reports_only_new_keys(store: Store) -> None:
    await store.add_events([ev("c1", "k1")])
    new = await store.add_events([ev("c1", "k1"), ev("c1", "k2", seconds=1)])
    assert new == {event_key("mf", "k2")}
    # the same key from another connector instance is a different event
    assert await store.add_events([ev("c1", "k1", connector="other")]) == {event_key("other", "k1")}


async def test_concurrent_duplicates_are_new_for_exactly_one_caller(store: Store) -> None:
    results: list[set[str]] = []

    async def submit() -> None:
        results.append(await store.add_events([ev("c9", "dup")]))

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(submit)
    assert sorted(len(r) for r in results) == [0, 0, 0, 0, 1]
    assert await count(store, events_table) == 1


async def test_concurrent_callers_share_transactions(store: Store) -> None:
    commits = count_commits(store)
    results: dict[int, set[str]] = {}

    async def submit(i: int) -> None:
        results[i] = await store.add_events([ev(f"c{i}", f"k{i}")], [call_of(f"c{i}")])

    async with trio.open_nursery() as nursery:
        for i in range(40):
            nursery.start_soon(submit, i)

    assert results == {i: {event_key("mf", f"k{i}")} for i in range(40)}
    assert await count(store, events_table) == 40
    assert await count(store, calls_table) == 40
    assert commits[0] <= 3, f"40 concurrent callers took {commits[0]} transactions"
    assert store.stats.commits == commits[0]
    assert store.stats.batches == 40 and store.stats.events == 40


async def test_commit_batch_bounds_a_group(db_url: str) -> None:
    async with Store(db_url, commit_batch=10) as store, trio.open_nursery() as nursery:
        await nursery.start(store.run_writer)
        commits = count_commits(store)
        async with trio.open_nursery() as callers:
            for i in range(30):
                callers.start_soon(store.add_events, [ev(f"c{i}", f"k{i}")])
        assert commits[0] >= 3
        assert await count(store, events_table) == 30
        nursery.cancel_scope.cancel()


async def test_latest_call_state_wins_within_and_across_groups(store: Store) -> None:
    ringing, talking = call_of("c1", updated=1), call_of("c1", state=CallState.TALKING, updated=2)
    await store.add_events([ev("c1", "k1")], [ringing, talking])
    assert (await store.get_call(ringing.id))["state"] == "talking"
    ended = call_of("c1", state=CallState.ENDED, outcome=Outcome.MISSED, updated=3)
    await store.add_events([], [ended])
    assert (await store.get_call(ringing.id))["state"] == "ended"
    assert await count(store, calls_table) == 1


async def test_failed_transaction_fails_every_waiter_and_keeps_nothing(store: Store) -> None:
    await store._write(lambda conn: conn.execute(text("DROP TABLE events")))
    errors: list[BaseException] = []

    async def submit(i: int) -> None:
        try:
            await store.add_events([ev(f"c{i}", f"k{i}")], [call_of(f"c{i}")])
        except StoreError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(submit, i)
    assert len(errors) == 6
    assert all(isinstance(e.__cause__, Exception) and "database error" in str(e) for e in errors)
    assert await count(store, calls_table) == 0  # the calls of the failed transactions were rolled back


async def test_a_bad_batch_does_not_fail_its_neighbours(store: Store) -> None:
    bad = CallEvent(connector="mf", pbx_call_id="bad", kind=EventKind.RING, key=None)  # type: ignore[arg-type]
    outcome: dict[str, object] = {}

    async def submit(name: str, events: list[CallEvent], calls: list[Call]) -> None:
        try:
            outcome[name] = await store.add_events(events, calls)
        except StoreError as exc:
            outcome[name] = exc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(submit, "good1", [ev("g1", "g1")], [call_of("g1")])
        nursery.start_soon(submit, "bad", [ev("b", "b1"), bad], [call_of("b")])
        nursery.start_soon(submit, "good2", [ev("g2", "g2")], [])
    assert outcome["good1"] == {event_key("mf", "g1")}
    assert outcome["good2"] == {event_key("mf", "g2")}
    assert isinstance(outcome["bad"], StoreError)
    assert await count(store, events_table) == 2  # b1 went down with its batch
    assert await store.find_call("mf", "b") is None


async def test_shutdown_finishes_the_commit_in_hand_and_the_queued_batches(db_url: str) -> None:
    async with Store(db_url) as store:
        # Another connection holds the write lock, so the writer's first commit waits on the database
        # while more callers queue up behind it; then the writer is cancelled and the lock released.
        locker = store.engine.connect()
        locker.execution_options(ctid_write=True)
        held = locker.begin()
        if store.dialect == "postgresql":
            locker.execute(text("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE"))
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run_writer)
            nursery.start_soon(store.add_events, [ev("c0", "k0")])
            await trio.testing.wait_all_tasks_blocked()
            for i in range(1, 6):
                nursery.start_soon(store.add_events, [ev(f"c{i}", f"k{i}")])
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
            held.rollback()
            locker.close()
        assert await count(store, events_table) == 6
        assert store.stats.commits == 2 and store.stats.batches == 6


async def test_add_events_without_writer_commits_directly(db_url: str) -> None:
    async with Store(db_url) as store:
        assert await store.add_events([ev("c1", "k1")]) == {event_key("mf", "k1")}
        assert await store.add_events([ev("c1", "k1")]) == set()


# --- calls --------------------------------------------------------------------------------------


async def test_list_calls_since_limit_and_filters(store: Store) -> None:
    for i in range(6):
        call = call_of(
            f"c{i}", agent="anna" if i % 2 else "boris", updated=i * 10, number=f"+7900000000{i % 3}"
        )
        await store.add_events([ev(f"c{i}", f"k{i}")], [call])

    all_calls = await store.list_calls()
    assert [c["pbx_call_id"] for c in all_calls] == [f"c{i}" for i in range(6)]

    since = T0 + timedelta(seconds=20)  # inclusive
    assert [c["pbx_call_id"] for c in await store.list_calls(since=since)] == ["c2", "c3", "c4", "c5"]
    assert [c["pbx_call_id"] for c in await store.list_calls(since=since, limit=2)] == ["c2", "c3"]
    assert [c["pbx_call_id"] for c in await store.list_calls(since, 10, agent="anna")] == ["c3", "c5"]
    assert [c["pbx_call_id"] for c in await store.list_calls(limit=2, descending=True)] == ["c5", "c4"]
    assert [c["pbx_call_id"] for c in await store.list_calls(until=T0 + timedelta(seconds=10))] == ["c0"]
    assert [c["pbx_call_id"] for c in await store.list_calls(pbx_call_id="c4")] == ["c4"]
    assert await store.list_calls(connector="nope") == []
    # a different offset is the same instant
    moscow = timezone(timedelta(hours=3))
    assert len(await store.list_calls(since=(T0 + timedelta(seconds=50)).astimezone(moscow))) == 1

    found = await store.find_call("mf", "c3")
    assert found is not None and found["agent"] == "anna"
    recent = await store.recent_calls_for_number("+79000000001", T0)
    assert {c["pbx_call_id"] for c in recent} == {"c1", "c4"}
    assert await store.recent_calls_for_number("+79000000001", T0 + timedelta(minutes=1)) == []


async def test_load_call_round_trips_a_call_object(store: Store) -> None:
    call = call_of(
        "c1", state=CallState.ENDED, outcome=Outcome.ANSWERED, ringing_agents=["anna"], agents=["anna"]
    )
    call.answered_at = T0 + timedelta(seconds=4)
    call.talk_seconds = 12.5
    call.contact = {"name": "Иван", "id": "42"}
    await store.add_events([], [call])
    loaded = await store.load_call(call.id)
    assert loaded is not None and loaded.to_json() == call.to_json()
    assert await store.load_call("missing") is None


# --- tasks ---------------------------------------------------------------------------------------


async def test_tasks(store: Store) -> None:
    t1 = Task(
        id="t1", number="+79001", missed_calls=["a"], first_missed_at=T0, last_missed_at=T0, owner="anna"
    )
    t2 = Task(id="t2", number="+79002", owner="boris")
    await store.upsert_tasks([t1, t2])
    await store.set_task_crm_ref("t1", "crm-123")

    assert (await store.get_task("t1")).to_json() == t1.to_json()
    assert (await store.open_task_for_number("+79001")).id == "t1"
    assert [t.id for t in await store.list_tasks(owner="boris")] == ["t2"]

    t1.status, t1.closed_by_call, t1.closed_at = TaskStatus.DONE, "c7", T0 + timedelta(hours=1)
    t1.missed_calls.append("b")
    await store.upsert_tasks([t1])
    assert await store.open_task_for_number("+79001") is None
    assert (await store.get_task("t1")).missed_count == 2
    assert await store.get_task_crm_ref("t1") == "crm-123"  # an upsert keeps the CRM reference
    assert [t.id for t in await store.list_tasks(status=TaskStatus.DONE)] == ["t1"]
    assert {t.id for t in await store.list_tasks()} == {"t1", "t2"}
    assert await store.get_task("nope") is None


async def test_tasks_commit_with_events(store: Store) -> None:
    task = Task(id="t9", number="+79009", missed_calls=["c1"])
    await store.add_events([ev("c1", "k1")], [call_of("c1")], tasks=[task])
    assert (await store.get_task("t9")).missed_calls == ["c1"]


# --- presence ------------------------------------------------------------------------------------


async def test_presence_and_history(store: Store) -> None:
    await store.set_presence("anna", Presence.AVAILABLE, T0)
    await store.set_presence("anna", Presence.DND, T0 + timedelta(minutes=5))
    await store.set_presence("boris", "away", T0 + timedelta(minutes=1))

    assert await store.load_presence() == {
        "anna": (Presence.DND, T0 + timedelta(minutes=5)),
        "boris": (Presence.AWAY, T0 + timedelta(minutes=1)),
    }
    assert await store.presence_history("anna") == [
        (Presence.AVAILABLE, T0),
        (Presence.DND, T0 + timedelta(minutes=5)),
    ]
    assert await store.presence_history("anna", since=T0 + timedelta(minutes=1)) == [
        (Presence.DND, T0 + timedelta(minutes=5))
    ]


async def test_a_write_of_the_same_status_adds_no_history(store: Store) -> None:
    """A launcher lease starting or ending rewrites the agent's unchanged status (with the lease):
    the history (the load report's input) keeps one row per real change, who set it included."""
    await store.set_presence("anna", Presence.AVAILABLE, T0)
    await store.set_presence("anna", Presence.AVAILABLE, T0, lease_until=T0 + timedelta(minutes=1))
    await store.set_presence("anna", Presence.AVAILABLE, T0)
    await store.set_presence("anna", Presence.AVAILABLE, T0, source="launcher")  # who set it changed
    assert await store.presence_history("anna") == [(Presence.AVAILABLE, T0), (Presence.AVAILABLE, T0)]


# --- outbox --------------------------------------------------------------------------------------


async def test_outbox_lifecycle(store: Store) -> None:
    first = await store.enqueue("log_call", "c1", {"call": "c1"}, dedupe_key="log:c1", due_at=T0)
    assert isinstance(first, int)
    assert await store.enqueue("log_call", "c1", {"call": "c1"}, dedupe_key="log:c1", due_at=T0) is None
    later = await store.enqueue("task", "t1", {"task": "t1"}, due_at=T0 + timedelta(hours=1))
    other = await store.enqueue("task", "t2", {}, due_at=T0 + timedelta(seconds=1))  # no key: always queued
    assert len({first, later, other}) == 3

    now = T0 + timedelta(minutes=1)
    due = await store.due_jobs(now, 10)
    assert [j.id for j in due] == [first, other]
    assert due[0].payload == {"call": "c1"} and due[0].attempts == 0 and due[0].kind == "log_call"
    assert await store.due_jobs(now, 10) == []  # claimed (leased) by the first call

    await store.fail_job(first, "CRM said 503", now + timedelta(seconds=30))
    job = await store.get_job(first)
    assert job.attempts == 1 and job.last_error == "CRM said 503" and not job.dead
    assert await store.due_jobs(now + timedelta(seconds=10), 10, lease=None) == []
    assert [j.id for j in await store.due_jobs(now + timedelta(seconds=31), 10)] == [first]
    await store.complete_job(first, at=now + timedelta(seconds=32))
    job = await store.get_job(first)
    assert job.done_at == now + timedelta(seconds=32) and job.next_attempt_at is None and job.attempts == 2
    await store.fail_job(first, "late failure report", now)  # a finished job stays finished
    assert (await store.get_job(first)).done_at is not None

    await store.fail_job(other, "400 bad request", None)  # give up
    assert (await store.get_job(other)).dead

    stats = await store.outbox_stats(now + timedelta(hours=2))
    assert stats == {"pending": 1, "due": 1, "done": 1, "dead": 1, "next_attempt_at": T0 + timedelta(hours=1)}
    assert (await store.outbox_stats(now))["due"] == 0
    # a finished job's dedupe key still blocks re-enqueueing
    assert await store.enqueue("log_call", "c1", {}, dedupe_key="log:c1") is None
    assert [j.kind for j in await store.due_jobs(now + timedelta(hours=2), 10, kinds=["task"])] == ["task"]


async def test_expired_lease_makes_a_job_due_again(store: Store) -> None:
    job_id = await store.enqueue("log_call", "c1", {}, due_at=T0)
    assert [j.id for j in await store.due_jobs(T0, 5, lease=60)] == [job_id]
    assert await store.due_jobs(T0 + timedelta(seconds=59), 5, lease=60) == []
    assert [j.id for j in await store.due_jobs(T0 + timedelta(seconds=61), 5, lease=60)] == [job_id]


async def test_released_jobs_are_due_again_at_once(store: Store) -> None:
    ids = [await store.enqueue("log_call", f"c{i}", {}, due_at=T0) for i in range(3)]
    claimed = await store.due_jobs(T0, 10, lease=120)
    assert [j.id for j in claimed] == ids
    assert all(j.next_attempt_at == T0 + timedelta(seconds=120) for j in claimed)
    await store.fail_job(ids[0], "503", T0 + timedelta(seconds=5))  # the worker stops after a failure
    await store.release_jobs(claimed[1:], at=T0)  # ... and hands back what it did not run
    await store.release_jobs(claimed[:1], at=T0)  # no effect: already failed and rescheduled
    assert [j.id for j in await store.due_jobs(T0 + timedelta(seconds=1), 10, lease=None)] == ids[1:]
    # once the failed job is due again, due jobs come back in queue order (the CRM sees them in order)
    assert [j.id for j in await store.due_jobs(T0 + timedelta(seconds=6), 10, lease=None)] == ids


async def test_outbox_jobs_commit_atomically_with_events(store: Store) -> None:
    job = OutboxJob("log_call", "c1", {"call": "c1"}, dedupe_key="log:c1", due_at=T0)
    await store.add_events([ev("c1", "k1")], [call_of("c1")], outbox=[job, job])
    await store.add_events([ev("c1", "k2", seconds=1)], [call_of("c1")], outbox=[job])
    due = await store.due_jobs(T0, 10, lease=None)
    assert [(j.kind, j.ref, j.dedupe_key) for j in due] == [("log_call", "c1", "log:c1")]

    await store._write(lambda conn: conn.execute(text("DROP TABLE tasks")))
    doomed = OutboxJob("log_call", "c2", {}, dedupe_key="log:c2", due_at=T0)
    with pytest.raises(StoreError):
        await store.add_events(
            [ev("c2", "k1")], [call_of("c2")], tasks=[Task(id="t", number="1")], outbox=[doomed]
        )
    assert len(await store.due_jobs(T0, 10, lease=None)) == 1  # the job of the failed batch was not kept
    assert await store.find_call("mf", "c2") is None


# --- plugin storage and settings -----------------------------------------------------------------


async def test_plugin_storage(store: Store) -> None:
    crm = store.plugin_storage("dynamics")
    other = store.plugin_storage("megafon")
    assert await crm.get("activity", "c1") is None
    await crm.put("activity", "c1", {"id": "A-1", "name": "Звонок"})
    await crm.put("activity", "c2", {"id": "A-2"})
    await crm.put("activity", "c1", {"id": "A-1b"})  # overwrite
    await crm.put("recording", "c1", {"url": "x"})
    await other.put("activity", "c1", {"mine": True})

    assert await crm.get("activity", "c1") == {"id": "A-1b"}
    assert await crm.list("activity") == [("c1", {"id": "A-1b"}), ("c2", {"id": "A-2"})]
    assert await crm.list("activity", limit=1) == [("c1", {"id": "A-1b"})]
    assert await other.list("activity") == [("c1", {"mine": True})]
    await crm.delete("activity", "c1")
    await crm.delete("activity", "never-there")
    assert await crm.get("activity", "c1") is None
    assert await crm.get("recording", "c1") == {"url": "x"}
    with pytest.raises(TypeError):
        await crm.put("activity", "c3", ["not", "an", "object"])  # type: ignore[arg-type]


async def test_settings_race_across_instances(db_url: str) -> None:
    async with Store(db_url) as one, Store(db_url) as two:
        results: list[str] = []

        async def claim(store: Store, value: str) -> None:
            results.append(await store.set_setting_if_absent("token_secret", value))

        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(claim, one if i % 2 else two, f"secret-{i}")
        assert len(set(results)) == 1 and len(results) == 8
        assert await one.get_setting("token_secret") == results[0]
        assert await two.set_setting_if_absent("token_secret", "late") == results[0]
        assert await one.get_setting("missing") is None


# --- lifecycle and errors ------------------------------------------------------------------------


async def test_memory_sqlite_works() -> None:
    async with Store("sqlite://") as store, trio.open_nursery() as nursery:
        await nursery.start(store.run_writer)
        assert await store.add_events([ev("c1", "k1")], [call_of("c1")]) == {event_key("mf", "k1")}
        assert len(await store.list_calls()) == 1
        nursery.cancel_scope.cancel()


async def test_sqlite_file_uses_wal_and_creates_its_directory(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "deep" / "dir" / "ctid.db"
    async with Store(f"sqlite:///{path}") as store:
        mode = await store._read(lambda conn: conn.exec_driver_sql("PRAGMA journal_mode").scalar_one())
        sync = await store._read(lambda conn: conn.exec_driver_sql("PRAGMA synchronous").scalar_one())
        assert mode == "wal" and sync == 1  # NORMAL
    assert path.exists()


def test_urls_are_normalized_or_refused() -> None:
    assert Store("postgresql://u@h/db").url.drivername == "postgresql+psycopg"
    assert Store("postgres://u@h/db").url.drivername == "postgresql+psycopg"
    assert Store("mssql+pyodbc://u:p@dsn").url.drivername == "mssql+pyodbc"
    for bad in ("mysql://u@h/db", "not a url", "postgresql+asyncpg://u@h/db"):
        with pytest.raises(StoreError):
            Store(bad)


async def test_mssql_without_driver_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="pyodbc|driver"):
        await Store("mssql+pyodbc://u:p@dsn").open()


async def test_unreachable_database_is_a_store_error() -> None:
    store = Store("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(StoreError, match="migrate|database"):
        await store.open()
    with pytest.raises(StoreError, match="not open"):
        await store.ping()


async def test_unmigrated_database_is_refused_without_migrate(db_url: str) -> None:
    store = Store(db_url, migrate=False)
    with pytest.raises(StoreError, match=rf"revision none, this ctid needs {migrate.head_revision()}: run `ctid db upgrade`"):
        await store.open()
    async with Store(db_url):
        pass
    async with Store(db_url, migrate=False) as store:
        await store.ping()
        await store._write(lambda conn: conn.execute(text("DROP TABLE settings")))
        with pytest.raises(StoreError, match="database error"):
            await store.ping()


async def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.set_presence("anna", Presence.AWAY, datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "document",
    [
        {"a": 1, "b": "Привет, мир", "c": [1, 2.5, None, True, False]},
        {1: "int key", 2.5: "float key", None: "none key", False: "bool key"},
        {"when": datetime(2026, 11, 26, 1, 2, 3, 456789, tzinfo=UTC)},  # default=str: a space, not "T"
        {"outcome": Outcome.ANSWERED, "state": CallState.RINGING},
        {"separators": "\u2028\u2029", "controls": "\x00\x1f", "quote": '"\\'},
        {"big": 2**70, "negative": -(2**70)},  # beyond orjson's 64 bits: the stdlib encoder
        {"set": {1}},
        ["list", {"nested": {"deep": [[]]}}],
        "text",
    ],
)
def test_json_columns_store_the_text_the_stdlib_encoder_gives(document) -> None:
    import json

    from ctid.store.schema import JSONText

    stored = JSONText().process_bind_param(document, None)
    assert stored == json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=str)
