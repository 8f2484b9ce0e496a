"""The CRM outbox worker: in-order delivery through outages, Retry-After, parking refused jobs.

Time is Trio's MockClock, moved by hand, and the worker's wall clock is derived from it. The store's
SQL runs in threads, so an auto-jumping clock could pass a deadline while a query still runs: the
tests move time only once the worker is parked (``wait_parked``), which is deterministic.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trio
import trio.testing

from ctid.crm import CRMAdapter, CRMConfig
from ctid.errors import CRMError
from ctid.model import Call, CallState, Direction, Outcome, Task
from ctid.outbox import LOG_CALL, TASK, OutboxWorker
from ctid.store import OutboxJob, Store

EPOCH = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def mock_now() -> datetime:
    return EPOCH + timedelta(seconds=trio.current_time())


class FlakyCRM(CRMAdapter):
    """Records what arrives; fails while ``down`` (503 with Retry-After), refuses ``refuse`` refs."""

    plugin_name = "flaky"

    def __init__(self):
        super().__init__(CRMConfig(plugin="flaky"), services=None)
        self.logged: list[str] = []
        self.tasks: list[tuple[str, str]] = []
        self.attempts = 0
        self.down = False
        self.retry_after: float | None = 30
        self.refuse: set[str] = set()

    async def log_call(self, call, agent):
        self.attempts += 1
        if self.down:
            raise CRMError("503 Service Unavailable", retry_after=self.retry_after)
        if call.id in self.refuse:
            raise CRMError("400 bad record", retryable=False)
        self.logged.append(call.id)

    async def create_callback_task(self, task, owner):
        self.tasks.append(("open", task.id))

    async def close_callback_task(self, task):
        self.tasks.append(("done", task.id))


def call(i: int) -> Call:
    return Call(id=f"call-{i}", connector="office", pbx_call_id=str(i), direction=Direction.INBOUND,
                state=CallState.ENDED, outcome=Outcome.ANSWERED, remote_number="+79161234567",
                started_at=EPOCH, ended_at=EPOCH + timedelta(seconds=60))


class _Directory:
    def get(self, agent_id):
        return None


@pytest.fixture
def clock():
    return trio.testing.MockClock()


@pytest.fixture
async def store():
    async with Store("sqlite://") as store:
        yield store


async def queue_calls(store, numbers):
    for i in numbers:
        await store.add_events([], [call(i)], outbox=[OutboxJob(LOG_CALL, f"call-{i}", {}, f"log:{i}", mock_now())])


async def start(nursery, worker):
    await nursery.start(worker.run)
    await worker.wait_parked()


async def advance(clock, worker, seconds: float):
    """Move time on, let the worker run what became due, and wait until it sleeps again."""
    clock.jump(seconds)
    await trio.testing.wait_all_tasks_blocked()
    await worker.wait_parked()


async def test_an_outage_delays_but_keeps_order_and_loses_nothing(store, clock, nursery):
    crm = FlakyCRM()
    worker = OutboxWorker(store, crm, _Directory(), clock=mock_now)
    crm.down = True
    await queue_calls(store, [1, 2, 3])
    await start(nursery, worker)
    assert crm.attempts == 1  # the head job failed; nothing behind it was tried
    for _ in range(3):  # three Retry-After periods pass while the CRM is down
        await advance(clock, worker, 30)
    assert crm.logged == [] and crm.attempts == 4
    await queue_calls(store, [4, 5])  # more activities arrive during the outage
    worker.notify()
    await advance(clock, worker, 10)
    assert crm.attempts == 4, "a later job overtook the failed head job"
    crm.down = False
    await advance(clock, worker, 20)
    assert crm.logged == ["call-1", "call-2", "call-3", "call-4", "call-5"]
    stats = await store.outbox_stats(mock_now())
    assert (stats["pending"], stats["done"], stats["dead"]) == (0, 5, 0)


async def test_backoff_without_retry_after_grows(store, clock, nursery):
    crm = FlakyCRM()
    crm.retry_after = None
    crm.down = True
    worker = OutboxWorker(store, crm, _Directory(), clock=mock_now)
    await queue_calls(store, [1])
    await start(nursery, worker)
    times = [trio.current_time()]
    for delay in (2, 4, 8, 16):
        await advance(clock, worker, delay - 0.5)
        assert crm.attempts == len(times), "retried before its backoff"
        await advance(clock, worker, 0.5)
        times.append(trio.current_time())
        assert crm.attempts == len(times)
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == [2, 4, 8, 16]


async def test_a_refused_job_is_parked_and_does_not_block_the_queue(store, clock, nursery):
    crm = FlakyCRM()
    crm.refuse = {"call-1"}
    worker = OutboxWorker(store, crm, _Directory(), clock=mock_now)
    await queue_calls(store, [1, 2])
    await start(nursery, worker)
    await advance(clock, worker, 2)
    await advance(clock, worker, 4)
    assert crm.logged == ["call-2"]
    assert crm.attempts == 4  # call-1 tried max_refusals (3) times, then parked; then call-2
    stats = await store.outbox_stats(mock_now())
    assert (stats["dead"], stats["done"]) == (1, 1)


async def test_task_jobs_open_and_close(store, clock, nursery):
    crm = FlakyCRM()
    worker = OutboxWorker(store, crm, _Directory(), clock=mock_now)
    task = Task(id="t-1", number="+79161234567")
    await store.add_events([], [], outbox=[OutboxJob(TASK, "t-1", task.to_json(), "task:t-1:open", mock_now())])
    task.status = task.status.DONE
    await store.add_events([], [], outbox=[OutboxJob(TASK, "t-1", task.to_json(), "task:t-1:done", mock_now())])
    await start(nursery, worker)
    assert crm.tasks == [("open", "t-1"), ("done", "t-1")]


async def test_the_worker_survives_a_database_outage(store, clock, nursery, monkeypatch):
    from ctid.errors import StoreError

    crm = FlakyCRM()
    worker = OutboxWorker(store, crm, _Directory(), clock=mock_now)
    await queue_calls(store, [1])
    real_due_jobs = store.due_jobs
    outage = {"left": 2}

    async def due_jobs(*args, **kwargs):
        if outage["left"]:
            outage["left"] -= 1
            raise StoreError("connection refused")
        return await real_due_jobs(*args, **kwargs)

    monkeypatch.setattr(store, "due_jobs", due_jobs)
    await start(nursery, worker)
    await advance(clock, worker, 5)
    assert crm.logged == [] and outage["left"] == 0
    await advance(clock, worker, 5)  # the database is back
    assert crm.logged == ["call-1"]
