"""The CRM sync worker: drains the outbox of CRM jobs in order, with retries and backoff.

Jobs are written in the same transaction as the events that caused them, so a CRM outage delays
but never loses an activity; CRM writes are idempotent, so a retry never duplicates one. Jobs run
in the order they were queued: a retryable failure (network, 429, 5xx) stops the pass and the same
job is tried again after its backoff (``Retry-After`` when the CRM sent one). A job the CRM refuses
for good (4xx other than 408/429) is parked with its error after ``max_refusals`` tries, so one bad
record cannot block the queue forever; retryable failures are retried for as long as it takes; ``ctid check`` and ``/metrics`` show parked jobs.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import timedelta

import trio

from ctid.crm import CRMAdapter
from ctid.errors import CtidError, StoreError, UpstreamError
from ctid.model import call_from_json, task_from_json, utcnow

log = logging.getLogger(__name__)

LOG_CALL = "log_call"
TASK = "task"
RECORDING = "attach_recording"


@dataclass
class Backoff:
    base: float = 2.0
    cap: float = 600.0

    def delay(self, attempts: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(max(retry_after, 0.5), 3600.0)
        return min(self.cap, self.base * math.pow(2, max(0, attempts - 1)))


class OutboxWorker:
    def __init__(self, store, crm: CRMAdapter | None, directory, *, batch: int = 50, max_refusals: int = 3,
                 backoff: Backoff | None = None, metrics=None, clock=utcnow):
        self.store = store
        self.crm = crm
        self.directory = directory
        self.batch = batch
        self.max_refusals = max_refusals
        self.backoff = backoff or Backoff()
        self.metrics = metrics
        self.clock = clock  # wall-clock source; tests pass one driven by trio's MockClock
        self.supervisor = None  # the daemon's (ctid/supervise.py): records CRM plugin crashes
        self._wakeup = trio.Event()
        self._delivered = trio.Event()
        self._parked = trio.Event()
        self.delivered = 0

    def notify(self) -> None:
        """New jobs were committed: run a pass now instead of at the next timer."""
        self._wakeup.set()

    async def wait_parked(self) -> None:
        """Wait until the worker has finished a pass and sleeps (until a retry, or idle). Tests
        use it to move a mock clock only when the worker is waiting for time to pass."""
        await self._parked.wait()

    def next_delivery(self) -> trio.Event:
        """An event set when the worker next delivers a job (take it before checking, then wait)."""
        return self._delivered

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED, idle: float = 5.0) -> None:
        task_status.started()
        if self.crm is None:
            await trio.sleep_forever()
        while True:
            self._wakeup = trio.Event()
            try:
                blocked = await self.run_once()
            except StoreError as exc:  # the database is away: jobs wait there, try again later
                log.warning("outbox: database unavailable: %s", exc)
                blocked = idle
            if blocked:
                # The head job failed: nothing behind it may overtake it, so new jobs wait too.
                self._parked.set()
                await trio.sleep(blocked)
            elif blocked is None:
                self._parked.set()
                with trio.move_on_after(idle):
                    await self._wakeup.wait()
            self._parked = trio.Event()

    async def run_once(self) -> float | None:
        """One pass over due jobs, in queue order. Returns the seconds until a failed head job may be
        retried (nothing runs before then), 0 when more jobs are due at once, or None when idle."""
        jobs = await self.store.due_jobs(self.clock(), self.batch)
        for index, job in enumerate(jobs):
            try:
                await self._dispatch(job)
            except UpstreamError as exc:
                attempts = job.attempts + 1
                permanent = not exc.retryable and attempts >= self.max_refusals
                delay = self.backoff.delay(attempts, exc.retry_after)
                await self.store.fail_job(
                    job.id, str(exc), None if permanent else self.clock() + timedelta(seconds=delay),
                )
                log.warning("outbox job %s (%s) failed (attempt %d): %s", job.id, job.kind, attempts, exc)
                if self.metrics:
                    self.metrics.outbox_failures.labels(kind=job.kind).inc()
                if permanent:
                    continue
                # Keep the order: the jobs behind this one become due together with its retry.
                await self.store.release_jobs(jobs[index + 1:], at=self.clock() + timedelta(seconds=delay))
                return delay
            except CtidError as exc:
                log.error("outbox job %s (%s) cannot run: %s", job.id, job.kind, exc)
                await self.store.fail_job(job.id, str(exc), None)
                continue
            except Exception as exc:  # a CRM plugin bug must not stop the worker: park the job
                if self.supervisor is not None:  # logged once, counted, in health (ctid/supervise.py)
                    self.supervisor.failed(getattr(self.crm, "plugin_name", "crm") or "crm", job.kind, exc)
                else:
                    log.exception("outbox job %s (%s) crashed in the CRM plugin", job.id, job.kind)
                await self.store.fail_job(job.id, f"plugin crashed: {type(exc).__name__}: {exc}", None)
                continue
            await self.store.complete_job(job.id)
            self.delivered += 1
            self._delivered.set()
            self._delivered = trio.Event()
            if self.metrics:
                self.metrics.outbox_delivered.labels(kind=job.kind).inc()
        return 0 if len(jobs) >= self.batch else None

    async def _dispatch(self, job: dict) -> None:
        crm = self.crm
        assert crm is not None
        kind, ref, payload = job.kind, job.ref, job.payload or {}
        if kind == LOG_CALL:
            data = await self.store.get_call(ref)
            if data is None:
                return
            call = call_from_json(data)
            await crm.log_call(call, self.directory.get(call.agent) if call.agent else None)
        elif kind == TASK:
            task = task_from_json(payload)
            if task.status.value == "open":
                owner = self.directory.get(task.owner) if task.owner else None
                await crm.create_callback_task(task, owner)
            else:
                await crm.close_callback_task(task)
        elif kind == RECORDING:
            data = await self.store.get_call(ref)
            if data is not None:
                await crm.attach_recording(call_from_json(data), payload["url"])
        else:
            raise CtidError(f"unknown outbox job kind {kind!r}")
