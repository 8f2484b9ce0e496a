"""The event pipeline of DESIGN.md: restore → reduce → decorate → publish → commit (with CRM jobs) → observe.

Connector events are reduced by the switchboard, published to the hub at once (the screen pop does
not wait for the database), committed with their CRM jobs in one grouped transaction, and only then
acknowledged. Events another instance committed come in through :meth:`Pipeline.apply_synced`.
The daemon builds one :class:`Pipeline` and hands it what it needs; nothing here knows the daemon.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import trio

from ctid.contacts import ContactService, contact_json
from ctid.crm import CRMAdapter
from ctid.errors import StoreError
from ctid.metrics import Metrics
from ctid.model import Call, CallEvent, CallState, utcnow
from ctid.outbox import LOG_CALL, RECORDING, TASK, OutboxWorker
from ctid.store import Store
from ctid.store.records import OutboxJob
from ctid.supervise import Supervisor
from ctid.switchboard import Changes, Switchboard

if TYPE_CHECKING:
    from ctid.kpi_live import LiveKPIs

log = logging.getLogger("ctid")


class SyncOut(Protocol):
    """What the pipeline needs of instance sync (ctid/sync.py)."""

    @property
    def active(self) -> bool:
        """Whether other instances may share this one's state (a backplane other than memory)."""
        ...

    async def publish(self, message: dict[str, Any]) -> None:
        """Tell other instances what this one committed."""
        ...

    def may_be_stored(self, call_id: str, events: list[CallEvent]) -> bool:
        """Whether the store may hold earlier events of a call memory does not know."""
        ...


class Pipeline:
    """Accepts call events and presence changes and moves them forward through the stages."""

    def __init__(self, *, switchboard: Switchboard, store: Store, outbox: OutboxWorker, metrics: Metrics,
                 contacts: ContactService, crm: CRMAdapter | None, supervisor: Supervisor, notify: Callable[..., None],
                 live_kpis: LiveKPIs, sync: SyncOut):
        self.switchboard = switchboard
        self.store = store
        self.outbox = outbox
        self.metrics = metrics
        self.contacts = contacts
        self.crm = crm
        self.supervisor = supervisor
        self.notify = notify  # pluggy's observer hooks (PluginManager.notify)
        self.live_kpis = live_kpis
        self.sync = sync
        self.hub = None  # set once the hub exists (Daemon.open)
        self.publishing = False  # set once the hub runs: changes made before are not published
        self.nursery: trio.Nursery | None = None  # set while the daemon runs: CRM lookups start in it
        self.contact_of: dict[str, dict[str, Any]] = {}
        self.audience: dict[str, set[str]] = {}  # call id -> agents told about it so far
        self.rows_written: set[str] = set()  # with a backplane: calls whose row this instance wrote

    # -- connector events ------------------------------------------------------------------------
    async def submit(self, events: list[CallEvent]) -> int:
        """Accept events: reduce, publish, commit (with CRM jobs). Returns how many were new."""
        if not events:
            return 0
        for call_id in self.to_restore(events):
            if not self.switchboard.knows_call(call_id):  # another task may have restored it meanwhile
                await self.restore_call(call_id)
        started = trio.current_time()
        changes = self.switchboard.apply(events)
        self.decorate(changes.calls)
        self.decorate_tasks(changes.tasks)
        jobs = self.jobs(changes)
        # Queued before any checkpoint, so commits keep the order of reduction; the pop goes out
        # before the commit is waited for.
        commit = self.store.add_events_nowait(changes.events, changes.calls, outbox=jobs, tasks=changes.tasks)
        if self.sync.active:  # before any checkpoint: a sync message from now on must rewrite the row
            self.rows_written.update(call.id for call in changes.calls)
        self.publish_nowait(changes)
        try:
            new_keys = await commit.wait()
        except StoreError:
            # Not stored, so not accepted: forget these events, so the PBX's retry (it got no 200)
            # is taken as new, and panels see the state the database has.
            self.publish_nowait(self.switchboard.retract(changes.events))
            raise
        self.metrics.commit_seconds.observe(trio.current_time() - started)
        if jobs:
            self.outbox.notify()
        if changes.events and self.sync.active:
            await self.sync.publish({"events": [e.to_json() for e in changes.events]})
        for connector, count in Counter(event.connector for event in changes.events).items():
            self.metrics.events.labels(connector=connector).inc(count)
        duplicates = len(events) - len(changes.events)
        if duplicates:
            self.metrics.duplicates.labels(connector=events[0].connector).inc(duplicates)
        self.observe(changes)
        return len(new_keys) if new_keys is not None else len(changes.events)

    def to_restore(self, events: list[CallEvent]) -> list[str]:
        """The calls of ``events`` that memory lacks and the store may hold: read before reducing."""
        unknown: dict[str, list[CallEvent]] = {}
        for event in events:
            if not self.switchboard.knows_call(event.call_id):
                unknown.setdefault(event.call_id, []).append(event)
        return [call_id for call_id, its in unknown.items() if self.sync.may_be_stored(call_id, its)]

    async def restore_call(self, call_id: str) -> None:
        stored = await self.store.events_for_call(call_id)
        if not stored:
            return
        self.switchboard.restore_call(stored)
        data = await self.store.get_call(call_id)
        if data and data.get("contact"):
            self.contact_of[call_id] = data["contact"]

    # -- events another instance committed -------------------------------------------------------
    async def apply_synced(self, events: list[CallEvent]) -> None:
        """Fold events another instance committed (and published after the commit) into memory."""
        # Committed before it was published: the store has every event of a call restored here.
        # A call the store cannot hold beyond this message (every earlier message arrived) is new.
        unknown = set(self.to_restore(events))
        for call_id in unknown:
            await self.restore_call(call_id)
        changes = self.switchboard.apply([e for e in events if e.call_id not in unknown])
        self.decorate(changes.calls, lookup=False)
        await self.rewrite_rows(changes)

    async def rewrite_rows(self, changes: Changes) -> None:
        """Store again the calls this instance wrote that a sync message changed.

        When events of one call reach two instances within the sync delay, each folds and writes the
        call without the other's events, and whichever commit lands last is the row: a partial call
        (an ended call left "ringing", its CRM log and callback task from half the events). Every
        instance that wrote a call therefore writes it again, with its CRM jobs, whenever a sync
        message brings it more of the call's events: each instance's last write is then the full
        fold, the same everywhere, so the row ends complete whatever order the commits land in, and
        the CRM jobs of the full fold carry the same dedupe keys on both (queued once). A call only
        one instance takes costs nothing here: the others never wrote it."""
        mine = Changes()
        mine.calls = [call for call in changes.calls if call.id in self.rows_written]
        if not mine.calls:
            return
        numbers = {call.remote_number for call in mine.calls}
        mine.ended = [call for call in changes.ended if call.id in self.rows_written]
        mine.tasks = [task for task in changes.tasks if task.number in numbers]
        jobs = self.jobs(mine)
        try:
            await self.store.add_events_nowait([], mine.calls, tasks=mine.tasks, outbox=jobs).wait()
        except StoreError as exc:  # the row is rewritten with the call's next event
            log.warning("could not store a call completed by another instance's events: %s", exc)
            return
        if jobs:
            self.outbox.notify()

    # -- presence --------------------------------------------------------------------------------
    async def apply_status(self, changes: Changes) -> None:
        """Persist and publish a presence change made through the API, the hub or a lapsed lease."""
        for agent, _previous in changes.agents:
            await self.store.set_presence(agent.id, agent.status.value, agent.status_since or utcnow(),
                                          source=agent.status_source.value, lease_until=agent.lease_until)
        presence = [[a.id, a.status.value, (a.status_since or utcnow()).isoformat(), a.status_source.value,
                     a.lease_until.isoformat() if a.lease_until else None] for a, _ in changes.agents]
        if presence and self.sync.active:
            await self.sync.publish({"presence": presence})
        self.publish_nowait(changes)
        self.observe(changes)

    # -- what the reducer does not derive: the CRM match and the jobs ----------------------------
    def decorate(self, calls: list[Call], *, lookup: bool = True) -> None:
        """Attach what the reducer does not derive from events: the CRM match.
        With ``lookup`` false (state synced from another instance) no CRM lookup is started."""
        for call in calls:
            known = self.contact_of.get(call.id)
            if known is not None:
                call.contact = known
            elif call.remote_number and self.crm is not None:
                cached = self.contacts.cached(call.remote_number)
                if cached is not None:
                    call.contact = self.contact_of[call.id] = contact_json(
                        cached, self.contacts.new_contact_url(call.remote_number)
                    )
                    self.metrics.crm_lookups.labels(result="cache").inc()
                elif lookup and call.state is not CallState.ENDED and self.nursery is not None:
                    call.contact = self.contact_of[call.id] = {"status": "pending", "matches": []}
                    self.spawn("enrich", self.enrich, call.id, call.remote_number)

    def decorate_tasks(self, tasks: Iterable) -> list:
        """Give callback tasks the CRM match of their caller (the panel shows who to call back)."""
        decorated = []
        for task in tasks:
            if task.contact is not None or task.status.value != "open":
                continue
            for call_id in reversed(task.missed_calls):
                contact = self.contact_of.get(call_id)
                if contact and contact.get("status") in ("found", "multiple"):
                    task.contact = contact
                    decorated.append(task)
                    break
        return decorated

    def spawn(self, where: str, fn, *args: Any) -> None:
        """Start a background task whose failure is logged and counted, never the daemon's end."""

        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception as exc:
                self.supervisor.failed("core", where, exc)

        self.nursery.start_soon(guarded)

    async def enrich(self, call_id: str, number: str) -> None:
        matches = await self.contacts.lookup(number, budget=30)
        self.metrics.crm_lookups.labels(result="error" if matches is None else "crm").inc()
        contact = contact_json(matches, self.contacts.new_contact_url(number))
        self.contact_of[call_id] = contact
        call = self.switchboard.calls.get(call_id)
        if call is None:
            return
        call.contact = contact
        enriched = Changes()
        enriched.calls.append(call)
        enriched.tasks = self.decorate_tasks(t for t in self.switchboard.tasks.values() if t.number == number)
        commit = self.store.add_events_nowait([], [call], tasks=enriched.tasks)
        self.publish_nowait(enriched)
        try:
            await commit.wait()
        except StoreError as exc:  # the pop is enriched; the row gets the contact with the next change
            log.warning("could not store the CRM match of a call: %s", exc)

    def jobs(self, changes: Changes) -> list[OutboxJob]:
        if self.crm is None:
            return []
        jobs = []
        crm = self.crm  # only what the adapter declares is queued (ctid/crm.py)
        for call in changes.ended:
            fingerprint = f"{call.outcome}:{call.agent}:{call.talk_seconds}:{call.wait_seconds}"
            if crm.supports("log_call"):
                jobs.append(OutboxJob(LOG_CALL, call.id, {}, f"log:{call.id}:{fingerprint}"))
            if call.recording_url and crm.supports("recordings"):
                jobs.append(OutboxJob(RECORDING, call.id, {"url": call.recording_url}, f"rec:{call.id}"))
        for task in changes.tasks if crm.supports("tasks") else ():
            data = task.to_json()
            jobs.append(OutboxJob(TASK, task.id, data, f"task:{task.id}:{task.status.value}:{task.missed_count}"))
        return jobs

    # -- publishing ------------------------------------------------------------------------------
    def publish_nowait(self, changes: Changes) -> None:
        """Queue changes for the panels right away, without a checkpoint: every caller publishes
        right after reducing, so the messages leave in reduction order and a panel never sees an
        older state of a call after a newer one. (A publisher task in between cost the screen pop
        one more round of Trio's scheduler, several ms under load.)"""
        if self.hub is None or not self.publishing:
            return
        try:
            for call in changes.calls:
                self.publish_call(call)
            for agent, _previous in changes.agents:
                self.hub.publish_agent(agent.to_json())
            for task in changes.tasks:
                self.hub.publish_task(task.to_json(), task.owner)
            self.live_kpis.observe(changes)
        except Exception:  # a publishing failure must not fail the webhook nor stop later pops
            log.exception("publishing to the hub failed")

    def publish_kpis(self, kpis: dict[str, Any]) -> None:
        """``kpisUpdated`` to supervisors and admins (ctid.kpi_live, throttled there)."""
        from ctid.hub.hub import SUPERVISORS

        self.hub.publish("kpisUpdated", kpis, {SUPERVISORS})

    def publish_call(self, call: Call) -> None:
        """``callUpdated`` to everyone the call ever concerned: an agent whose group ring another
        agent answered is told too, so its screen pop can close."""
        audience = self.audience.setdefault(call.id, set())
        audience |= call.participants()
        self.hub.publish_call(call.to_json(), set(audience))
        if call.state is CallState.ENDED:
            self.audience.pop(call.id, None)

    # -- observers -------------------------------------------------------------------------------
    def observe(self, changes: Changes) -> None:
        calls = {c.id: c for c in changes.calls}
        for event in changes.events:
            call = calls.get(event.call_id) or self.switchboard.calls.get(event.call_id)
            if call is not None:
                self.call_observers("ctid_call_event", event=event, call=call)
        for call in changes.ended:
            self.call_observers("ctid_call_ended", call=call)
        for agent, previous in changes.agents:
            self.call_observers("ctid_agent_status", agent=agent, previous=previous)
        for task in changes.tasks:
            self.call_observers("ctid_task_updated", task=task)

    def call_observers(self, hook_name: str, **kwargs: Any) -> None:
        """Call an observer hook through pluggy (its order, its wrappers); an implementation that
        raises is logged, counted and shown in health, and the others still run (ctid/plugins.py)."""
        self.notify(hook_name, **kwargs)

    # -- memory kept per call --------------------------------------------------------------------
    def forget(self, knows_call: Callable[[str], bool]) -> None:
        """Drop what is kept per call for calls memory no longer holds (housekeeping)."""
        for cache in (self.contact_of, self.audience):
            for call_id in [c for c in cache if not knows_call(c)]:
                del cache[call_id]
        self.rows_written = {c for c in self.rows_written if knows_call(c)}
