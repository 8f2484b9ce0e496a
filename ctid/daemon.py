"""``ctid serve``: builds the running system from configuration and owns its Trio nursery tree
(web server, store writer, hub, outbox worker, connector tasks, reconciliation timers).

The event pipeline (:meth:`Daemon.submit`) is the one-way flow of DESIGN.md: connector events are
reduced by the switchboard, published to the hub at once (the screen pop does not wait for the
database), committed with their CRM jobs in one grouped transaction, and only then acknowledged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
import signal
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import trio

from ctid.config.loader import Settings
from ctid.connector import Connector
from ctid.contacts import ContactService, contact_json
from ctid.crm import CRMAdapter
from ctid.directory import StaticDirectory
from ctid.errors import CtidError, StoreError
from ctid.hub.backplane import sender_prefix
from ctid.metrics import Metrics
from ctid.model import Call, CallEvent, CallState, call_from_json, utcnow
from ctid.outbox import LOG_CALL, RECORDING, TASK, OutboxWorker
from ctid.services import Services
from ctid.store import Store
from ctid.store.deadletters import DeadLetters
from ctid.store.records import OutboxJob
from ctid.storedcalls import StoredCalls
from ctid.supervise import Supervisor
from ctid.switchboard import Changes, Switchboard
from ctid.webhooks import clean_events

log = logging.getLogger("ctid")


class Daemon:
    """The running ctid: every long-lived component and the event pipeline between them."""

    def __init__(self, settings: Settings, pm):
        core = settings.core
        self.settings = settings
        self.pm = pm
        self.metrics = Metrics()
        # every call into plugin code (ctid/supervise.py), recorded with the observers' failures
        self.supervisor = Supervisor(self.metrics, errors=getattr(pm, "errors", None))
        pm.errors.counter = self.metrics.plugin_errors  # plugin failures count in this daemon's /metrics
        pm.reporter = self.supervisor  # observers' failures show in health until they stop (plugin_guard.py)
        self.directory = StaticDirectory(core.agents)
        db = core.database
        from ctid.reports.columns import ReportColumns

        self.store = Store(db.url, pool_size=db.pool_size, commit_batch=db.commit_batch, threads=db.threads,
                           columns=ReportColumns.from_config(core.reports, core.phone.default_region))
        self.dead_letters = DeadLetters(self.store)
        self.switchboard = Switchboard(
            self.directory,
            default_region=core.phone.default_region,
            callback_directions=tuple(core.callbacks.directions) if core.callbacks.enabled else (),
            recording_url=lambda call_id: f"{core.server.url()}/api/calls/{call_id}/recording",
        )
        # Gauges over every call in memory are computed when /metrics is scraped, not per event.
        self.metrics.active_calls.set_function(
            lambda: sum(1 for c in self.switchboard.calls.values() if c.state is not CallState.ENDED))
        self.metrics.agents_available.set_function(lambda: sum(1 for a in self.switchboard.agents.values() if a.free))
        self.public_url = core.server.url()
        self.services = Services(
            directory=self.directory,
            storage_factory=self.store.plugin_storage,
            events=self,
            calls=self,
            public_url=self.public_url,
            data_dir=core.data_dir,
            default_region=core.phone.default_region,
            metrics_registry=self.metrics.registry,
        )
        self.crm: CRMAdapter | None = None
        if settings.crm is not None:
            crm_cls = pm.crm_classes()[settings.crm.plugin]
            self.crm = crm_cls(settings.crm, self.services)
        budget = settings.crm.lookup_budget if settings.crm else 1.5
        ttl = settings.crm.cache_ttl if settings.crm else 300
        self.contacts = ContactService(self.crm, ttl=ttl, budget=budget, supervisor=self.supervisor,
                                       name=settings.crm.plugin if settings.crm else "crm")
        self.services.contacts = self.contacts
        classes = pm.connector_classes()
        self.connectors: dict[str, Connector] = {
            name: classes[cfg.plugin](name, cfg, self.services)
            for name, cfg in settings.connectors.items()
            if cfg.enabled
        }
        self.outbox = OutboxWorker(self.store, self.crm, self.directory, metrics=self.metrics)
        self.outbox.supervisor = self.supervisor
        self.hub = None  # created by open(), once the signing secret is known
        self.auth = None
        from ctid.commands import Commands

        self.commands = Commands(self)
        self.ready = False
        self._nursery: trio.Nursery | None = None
        self._contact_of: dict[str, dict[str, Any]] = {}
        self._shutdown = trio.Event()
        self.instance_id = uuid.uuid4().hex
        self.clock = utcnow  # wall clock of timers; tests give one driven by trio's MockClock
        from ctid.kpi_live import LiveKPIs

        self.live_kpis = LiveKPIs(self.switchboard, settings.core.reports, clock=lambda: self.clock())
        self._publishing = False  # set once the hub runs: changes made before are not published
        self._audience: dict[str, set[str]] = {}  # call id -> agents told about it so far
        self.stored_calls = StoredCalls()  # stored calls memory may lack (read before their events)
        self._stored_token: int | None = None  # backplane continuity when stored_calls was loaded
        self._rows_written: set[str] = set()  # with a backplane: calls whose row this instance wrote
        self._lease_wakeup = trio.Event()  # set when a launcher lease changes: the expiry timer re-reads

    # -- lifecycle -------------------------------------------------------------------------------
    async def open(self) -> None:
        """Open the database (migrating it), load secrets and state. Used by ``run`` and by tests."""
        from ctid.auth import Authenticator
        from ctid.handoff import HandoffCodes

        core = self.settings.core
        core.data_dir.mkdir(parents=True, exist_ok=True)
        await self.store.open()
        from ctid.reports.rederive import rederive

        await rederive(self.store)  # reports.timezone, tariffs or number pools changed: rows follow
        secret = core.auth.secret.get_secret_value() if core.auth.secret else None
        if secret is None:
            secret = await self.store.set_setting_if_absent("auth.secret", secrets.token_urlsafe(32))
        self.auth = Authenticator(core.auth, secret)
        # today's live KPIs survive a restart: seeded from the calls stored since local midnight
        today = await self.store.list_calls(since=self.live_kpis.local_midnight() - timedelta(days=1),
                                            limit=100_000)
        self.live_kpis.seed(call_from_json(c) for c in today)
        self.handoff = HandoffCodes(secret, self.store)
        self.hub = self._make_hub(secret)
        self.services.hub = self.hub  # plugins publish their own hub events (Services.publish_plugin_event)
        presence = await self.store.load_presence()
        for agent_id, (status, since) in presence.items():
            if agent_id in self.switchboard.agents:
                self.switchboard.set_status(agent_id, status, since)
        for agent_id, (source, lease_until) in (await self.store.load_leases()).items():
            if agent_id in self.switchboard.agents:  # a lease that lapsed while ctid was down ends at once
                self.switchboard.restore_lease(agent_id, source, lease_until)
        open_tasks = await self.store.list_tasks(status="open")
        # Ended calls of the last day let late corrections (PBX history) re-derive their tasks exactly.
        recent = await self.store.list_calls(since=utcnow() - timedelta(days=1), limit=100_000, state="ended")
        self.switchboard.restore_tasks(open_tasks, [call_from_json(c) for c in recent])
        if not self._syncing:
            # The only writer: a call id neither in memory nor in this index is new (storedcalls.py).
            horizon = utcnow() - self.stored_calls.window
            self.stored_calls.load(horizon, await self.store.call_ids_updated_since(horizon))

    def _make_hub(self, secret: str):
        from ctid.hub.backplane import backplane_from_url
        from ctid.hub.hub import Hub
        from ctid.hub_backend import DaemonHubBackend

        hub_config = self.settings.core.hub
        return Hub(
            DaemonHubBackend(self),
            backplane_from_url(hub_config.backplane),
            ping_interval=hub_config.ping_interval,
            client_timeout=hub_config.client_timeout,
            max_message_bytes=hub_config.max_message_bytes,
            connection_secret=("hub:" + secret).encode(),
        )

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        import hypercorn.config

        from ctid.hub.asgi import HubFastPath
        from ctid.web.app import create_app
        from ctid.web.fastpath import WebhookFastPath

        await self.open()
        app = create_app(self)
        config = hypercorn.config.Config()
        config.bind = [self.settings.core.server.listen]
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        config.graceful_timeout = 10
        config.keep_alive_timeout = 75
        # Every panel reconnects at once after a restart or a network blip: hypercorn's backlog of
        # 100 reset connections of a 20,000-client burst (bench/connections.py); the kernel caps it
        # at net.core.somaxconn.
        config.backlog = 4096
        # refuse oversize hub frames while reading them, not after buffering hypercorn's 16 MiB default
        config.websocket_max_message_size = self.settings.core.hub.max_message_bytes * 2
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.store.run_writer)
                await nursery.start(self.outbox.run)
                if self.hub is not None:
                    await nursery.start(self.hub.run)
                    self._publishing = True
                    await nursery.start(self.live_kpis.run, self._publish_kpis)
                    if self.hub.backplane.kind != "memory":
                        await nursery.start(self._sync_loop)
                        nursery.start_soon(self._keep_stored_calls)
                        # login throttle counters are shared by every instance (ctid.auth_throttle)
                        await nursery.start(self.auth.throttle.share, self.hub.backplane, self.instance_id)
                nursery.start_soon(self._housekeeping)
                from ctid.reports.rollup import keep_built

                nursery.start_soon(keep_built, self.store.engine, self.settings.core.reports, self.store.limiter)
                nursery.start_soon(self._lease_loop)
                for connector in self.connectors.values():
                    await nursery.start(self._run_connector, connector)
                    if connector.config.reconcile_interval:
                        nursery.start_soon(self._reconcile_loop, connector)
                await nursery.start(self._serve_http, HubFastPath(WebhookFastPath(app, self), self.hub), config)
                self.ready = True
                self._notify("ctid_serve_started")
                log.info("ctid listening on %s (public URL %s)", self.settings.core.server.listen, self.public_url)
                task_status.started(self)
                await self._shutdown.wait()
                self.ready = False
                log.info("ctid shutting down")
                self._notify("ctid_serve_stopping")
                if self.hub is not None:
                    await self.hub.close_all(allow_reconnect=True)
                self._http_stop.set()
                with trio.move_on_after(10):
                    await self._http_done.wait()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                # plugin code too: one failing to close must not keep the others or the store open
                for connector in self.connectors.values():
                    with contextlib.suppress(CtidError):
                        await self.supervisor.call(connector.name, "aclose", connector.aclose)
                if self.crm is not None:
                    with contextlib.suppress(CtidError):
                        await self.supervisor.call(self.contacts.name, "aclose", self.crm.aclose)
                await self.store.aclose()

    def _notify(self, hook_name: str) -> None:
        self._call_observers(hook_name, services=self.services)

    def shutdown(self) -> None:
        self._shutdown.set()

    async def _serve_http(self, app, config, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        from ctid.web.serving import serve

        self._http_stop = trio.Event()
        self._http_done = trio.Event()
        try:
            await serve(app, config, shutdown_trigger=self._http_stop.wait, task_status=task_status,
                        max_body=self.settings.core.server.max_body_bytes)
        except* OSError as group:
            exc = _first_leaf(group)
            raise CtidError(f"cannot listen on {self.settings.core.server.listen}: {exc.strerror or exc}",
                            error_id="listen_failed") from exc
        finally:
            self._http_done.set()

    async def _run_connector(self, connector: Connector, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """A connector's background task, restarted with backoff whenever it fails (supervise.py)."""
        await self.supervisor.keep_running(connector.name, "run", connector.run, task_status=task_status)

    def _spawn(self, where: str, fn, *args: Any) -> None:
        """Start a background task whose failure is logged and counted, never the daemon's end."""

        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception as exc:
                self.supervisor.failed("core", where, exc)

        self._nursery.start_soon(guarded)

    async def _reconcile_loop(self, connector: Connector) -> None:
        """Pull the connector's history every ``reconcile_interval`` seconds over the last
        ``reconcile_lookback`` seconds (calls are matched by start time, so the window must cover
        the longest call), and submit it: lost webhooks are recovered, known events are duplicates.
        A failure is logged once at warning level while it repeats, then again when it changes."""
        interval = connector.config.reconcile_interval or 300
        lookback = timedelta(seconds=connector.config.reconcile_lookback)
        last_error: str | None = None
        while True:
            await trio.sleep(interval)
            try:
                events = await self.supervisor.call(connector.name, "history", connector.history,
                                                    self.clock() - lookback)
                added = await self.submit(clean_events(connector.name, events))
            except CtidError as exc:
                level = logging.DEBUG if str(exc) == last_error else logging.WARNING
                log.log(level, "reconciliation of %s failed: %s", connector.name, exc)
                last_error = str(exc)
                continue
            if last_error is not None:
                log.info("reconciliation of %s works again", connector.name)
                last_error = None
            if added:
                log.info("reconciliation of %s recovered %d events", connector.name, added)

    # -- the event pipeline ----------------------------------------------------------------------
    async def submit(self, events: list[CallEvent]) -> int:
        """Accept events: reduce, publish, commit (with CRM jobs). Returns how many were new."""
        if not events:
            return 0
        for call_id in self._to_restore(events):
            if not self.switchboard.knows_call(call_id):  # another task may have restored it meanwhile
                await self._restore_call(call_id)
        started = trio.current_time()
        changes = self.switchboard.apply(events)
        self._decorate(changes.calls)
        self._decorate_tasks(changes.tasks)
        jobs = self._jobs(changes)
        # Queued before any checkpoint, so commits keep the order of reduction; the pop goes out
        # before the commit is waited for.
        commit = self.store.add_events_nowait(changes.events, changes.calls, outbox=jobs, tasks=changes.tasks)
        if self._syncing:  # before any checkpoint: a sync message from now on must rewrite the row
            self._rows_written.update(call.id for call in changes.calls)
        self._publish_nowait(changes)
        try:
            new_keys = await commit.wait()
        except StoreError:
            # Not stored, so not accepted: forget these events, so the PBX's retry (it got no 200)
            # is taken as new, and panels see the state the database has.
            self._publish_nowait(self.switchboard.retract(changes.events))
            raise
        self.metrics.commit_seconds.observe(trio.current_time() - started)
        if jobs:
            self.outbox.notify()
        if changes.events and self._syncing:
            await self._sync_out({"events": [e.to_json() for e in changes.events]})
        for connector, count in Counter(event.connector for event in changes.events).items():
            self.metrics.events.labels(connector=connector).inc(count)
        duplicates = len(events) - len(changes.events)
        if duplicates:
            self.metrics.duplicates.labels(connector=events[0].connector).inc(duplicates)
        self._observe(changes)
        return len(new_keys) if new_keys is not None else len(changes.events)

    def _to_restore(self, events: list[CallEvent]) -> list[str]:
        """The calls of ``events`` that memory lacks and the store may hold: read before reducing."""
        unknown: dict[str, list[CallEvent]] = {}
        for event in events:
            if not self.switchboard.knows_call(event.call_id):
                unknown.setdefault(event.call_id, []).append(event)
        return [call_id for call_id, its in unknown.items() if self._may_be_stored(call_id, its)]

    async def _restore_call(self, call_id: str) -> None:
        stored = await self.store.events_for_call(call_id)
        if not stored:
            return
        self.switchboard.restore_call(stored)
        data = await self.store.get_call(call_id)
        if data and data.get("contact"):
            self._contact_of[call_id] = data["contact"]

    def _decorate(self, calls: list[Call], *, lookup: bool = True) -> None:
        """Attach what the reducer does not derive from events: the CRM match.
        With ``lookup`` false (state synced from another instance) no CRM lookup is started."""
        for call in calls:
            known = self._contact_of.get(call.id)
            if known is not None:
                call.contact = known
            elif call.remote_number and self.crm is not None:
                cached = self.contacts.cached(call.remote_number)
                if cached is not None:
                    call.contact = self._contact_of[call.id] = contact_json(
                        cached, self.contacts.new_contact_url(call.remote_number)
                    )
                    self.metrics.crm_lookups.labels(result="cache").inc()
                elif lookup and call.state is not CallState.ENDED and self._nursery is not None:
                    call.contact = self._contact_of[call.id] = {"status": "pending", "matches": []}
                    self._spawn("enrich", self._enrich, call.id, call.remote_number)

    def _decorate_tasks(self, tasks) -> list:
        """Give callback tasks the CRM match of their caller (the panel shows who to call back)."""
        decorated = []
        for task in tasks:
            if task.contact is not None or task.status.value != "open":
                continue
            for call_id in reversed(task.missed_calls):
                contact = self._contact_of.get(call_id)
                if contact and contact.get("status") in ("found", "multiple"):
                    task.contact = contact
                    decorated.append(task)
                    break
        return decorated

    async def _enrich(self, call_id: str, number: str) -> None:
        matches = await self.contacts.lookup(number, budget=30)
        self.metrics.crm_lookups.labels(result="error" if matches is None else "crm").inc()
        contact = contact_json(matches, self.contacts.new_contact_url(number))
        self._contact_of[call_id] = contact
        call = self.switchboard.calls.get(call_id)
        if call is None:
            return
        call.contact = contact
        enriched = Changes()
        enriched.calls.append(call)
        enriched.tasks = self._decorate_tasks(t for t in self.switchboard.tasks.values() if t.number == number)
        commit = self.store.add_events_nowait([], [call], tasks=enriched.tasks)
        self._publish_nowait(enriched)
        try:
            await commit.wait()
        except StoreError as exc:  # the pop is enriched; the row gets the contact with the next change
            log.warning("could not store the CRM match of a call: %s", exc)

    def _jobs(self, changes: Changes) -> list[OutboxJob]:
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
    def _publish_nowait(self, changes: Changes) -> None:
        """Queue changes for the panels right away, without a checkpoint: every caller publishes
        right after reducing, so the messages leave in reduction order and a panel never sees an
        older state of a call after a newer one. (A publisher task in between cost the screen pop
        one more round of Trio's scheduler, several ms under load.)"""
        if self.hub is None or not self._publishing:
            return
        try:
            for call in changes.calls:
                self._publish_call(call)
            for agent, _previous in changes.agents:
                self.hub.publish_agent(agent.to_json())
            for task in changes.tasks:
                self.hub.publish_task(task.to_json(), task.owner)
            self.live_kpis.observe(changes)
        except Exception:  # a publishing failure must not fail the webhook nor stop later pops
            log.exception("publishing to the hub failed")

    def _publish_kpis(self, kpis: dict[str, Any]) -> None:
        """``kpisUpdated`` to supervisors and admins (ctid.kpi_live, throttled there)."""
        from ctid.hub.hub import SUPERVISORS

        self.hub.publish("kpisUpdated", kpis, {SUPERVISORS})

    def _publish_call(self, call: Call) -> None:
        """``callUpdated`` to everyone the call ever concerned: an agent whose group ring another
        agent answered is told too, so its screen pop can close."""
        audience = self._audience.setdefault(call.id, set())
        audience |= call.participants()
        self.hub.publish_call(call.to_json(), set(audience))
        if call.state is CallState.ENDED:
            self._audience.pop(call.id, None)

    def _observe(self, changes: Changes) -> None:
        calls = {c.id: c for c in changes.calls}
        for event in changes.events:
            call = calls.get(event.call_id) or self.switchboard.calls.get(event.call_id)
            if call is not None:
                self._call_observers("ctid_call_event", event=event, call=call)
        for call in changes.ended:
            self._call_observers("ctid_call_ended", call=call)
        for agent, previous in changes.agents:
            self._call_observers("ctid_agent_status", agent=agent, previous=previous)
        for task in changes.tasks:
            self._call_observers("ctid_task_updated", task=task)

    def _call_observers(self, hook_name: str, **kwargs: Any) -> None:
        """Call an observer hook through pluggy (its order, its wrappers); an implementation that
        raises is logged, counted and shown in health, and the others still run (ctid/plugins.py)."""
        self.pm.notify(hook_name, **kwargs)

    async def apply_status(self, changes: Changes) -> None:
        """Persist and publish a presence change made through the API, the hub or a lapsed lease."""
        for agent, _previous in changes.agents:
            await self.store.set_presence(agent.id, agent.status.value, agent.status_since or utcnow(),
                                          source=agent.status_source.value, lease_until=agent.lease_until)
        presence = [[a.id, a.status.value, (a.status_since or utcnow()).isoformat(), a.status_source.value,
                     a.lease_until.isoformat() if a.lease_until else None] for a, _ in changes.agents]
        if presence and self._syncing:
            await self._sync_out({"presence": presence})
        self._publish_nowait(changes)
        self._observe(changes)

    # -- the launcher's presence lease (docs/call-model.md) --------------------------------------
    async def lease_renewed(self, agent_id: str) -> None:
        """Persist and share an agent's new lease time (its start and end went through
        ``apply_status`` already) and wake the expiry timer."""
        until = self.switchboard.agents[agent_id].lease_until
        await self.store.set_lease(agent_id, until)
        if self._syncing:
            await self._sync_out({"leases": [[agent_id, until.isoformat() if until else None]]})
        self._lease_wakeup.set()

    async def _lease_loop(self) -> None:
        """Sleep until the earliest lease lapses (``self.clock``), then end the lapsed ones."""
        while True:
            self._lease_wakeup = trio.Event()
            due = self.switchboard.next_lease_expiry()
            if due is not None and due <= self.clock():
                await self.expire_leases()
                continue
            with trio.move_on_after(math.inf if due is None else (due - self.clock()).total_seconds()):
                await self._lease_wakeup.wait()

    async def expire_leases(self) -> None:
        changes = self.switchboard.expire_leases(self.clock())
        for agent, previous in changes.agents:
            log.warning("the launcher lease of agent %s lapsed; presence %s -> %s", agent.id, previous,
                        agent.to_json()["presence"])
        try:
            await self.apply_status(changes)
        except CtidError as exc:  # in memory it has lapsed already; the store catches up on the next change
            log.warning("could not store the lapsed launcher leases: %s", exc)

    # -- state sync between instances ------------------------------------------------------------
    SYNC_CHANNEL = "ctid:sync"
    SYNC_BUFFER = 100_000  # messages (each the events of one commit, ~1 KiB)

    @property
    def _syncing(self) -> bool:
        """Whether other instances may share this one's state (a backplane other than memory)."""
        return self.hub is not None and self.hub.backplane.kind != "memory"

    async def _sync_out(self, message: dict[str, Any]) -> None:
        """Tell other instances (through the backplane) what this one committed, so that their
        in-memory state (snapshot, free agents, presence) matches. Published after the commit."""
        if not self._syncing:
            return
        data = json.dumps({"o": self.instance_id, **message}, separators=(",", ":"), default=str)
        await self.hub.backplane.publish(self.SYNC_CHANNEL, data.encode())

    async def _sync_loop(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        # A lost sync message leaves this instance's state behind the store (and distrusts the
        # stored-calls index): keep a burst's worth while a restore read holds the loop up.
        async with self.hub.backplane.subscribe(self.SYNC_CHANNEL, buffer=self.SYNC_BUFFER) as messages:
            task_status.started()
            own = sender_prefix(self.instance_id)  # how _sync_out's messages begin
            async for data in messages:
                if data.startswith(own):
                    continue  # this instance's own message, echoed by the backplane
                try:
                    message = json.loads(data)
                    if message.get("o") == self.instance_id:
                        continue
                    await self._sync_in(message)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("ignoring a malformed sync message: %s", exc)
                except CtidError as exc:
                    log.warning("could not apply a sync message: %s", exc)
                except Exception:  # one bad message from another instance must not end this one
                    log.exception("could not apply a sync message")

    async def _sync_in(self, message: dict[str, Any]) -> None:
        from ctid.model import Presence

        events = [CallEvent.from_json(e) for e in message.get("events", ())]
        # Committed before it was published: the store has every event of a call restored here.
        # A call the store cannot hold beyond this message (every earlier message arrived) is new.
        unknown = set(self._to_restore(events))
        for call_id in unknown:
            await self._restore_call(call_id)
        changes = self.switchboard.apply([e for e in events if e.call_id not in unknown])
        self._decorate(changes.calls, lookup=False)
        await self._rewrite_rows(changes)
        for agent_id, status, since, *lease in message.get("presence", ()):
            if agent_id in self.switchboard.agents:
                source = lease[0] if lease else "user"
                self.switchboard.set_status(agent_id, Presence(status), datetime.fromisoformat(since), source)
                if lease:
                    self._sync_lease(agent_id, lease[1])
        for agent_id, until in message.get("leases", ()):
            if agent_id in self.switchboard.agents:
                self._sync_lease(agent_id, until)

    def _sync_lease(self, agent_id: str, until: str | None) -> None:
        self.switchboard.set_lease(agent_id, datetime.fromisoformat(until) if until else None)
        self._lease_wakeup.set()

    async def _rewrite_rows(self, changes: Changes) -> None:
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
        mine.calls = [call for call in changes.calls if call.id in self._rows_written]
        if not mine.calls:
            return
        numbers = {call.remote_number for call in mine.calls}
        mine.ended = [call for call in changes.ended if call.id in self._rows_written]
        mine.tasks = [task for task in changes.tasks if task.number in numbers]
        jobs = self._jobs(mine)
        try:
            await self.store.add_events_nowait([], mine.calls, tasks=mine.tasks, outbox=jobs).wait()
        except StoreError as exc:  # the row is rewritten with the call's next event
            log.warning("could not store a call completed by another instance's events: %s", exc)
            return
        if jobs:
            self.outbox.notify()

    def _may_be_stored(self, call_id: str, events: list[CallEvent]) -> bool:
        """Whether the store may hold earlier events of a call memory does not know (storedcalls.py)."""
        if self._syncing and self.hub.backplane.continuity(self.SYNC_CHANNEL) != self._stored_token:
            self.stored_calls.distrust()  # a sync message may have been missed: read every unknown call
            self._stored_token = None
        return self.stored_calls.may_hold(call_id, events)

    async def _keep_stored_calls(self, poll: float = 0.25, spacing: float = 5.0) -> None:
        """With a backplane: load the stored-calls index once the sync subscription is confirmed, and
        again after every gap in it (``Backplane.continuity``). Until then unknown calls are read.
        Loaded after subscribing, so a call another instance commits is in the rows read or arrives
        as a sync message. Loads are ``spacing`` seconds apart at least (a flapping connection or a
        failing database is not hammered); a failure is logged once while it lasts."""
        next_load = trio.current_time()
        failing = False
        while True:
            token = self.hub.backplane.continuity(self.SYNC_CHANNEL)
            stale = token is not None and (token != self._stored_token or not self.stored_calls.trusted)
            if stale and trio.current_time() >= next_load:
                next_load = trio.current_time() + spacing
                horizon = utcnow() - self.stored_calls.window
                try:
                    rows = await self.store.call_ids_updated_since(horizon)
                except StoreError as exc:
                    log.log(logging.DEBUG if failing else logging.WARNING,
                            "could not load the stored-calls index (unknown calls are read meanwhile): %s", exc)
                    failing = True
                else:
                    failing = False
                    if self.hub.backplane.continuity(self.SYNC_CHANNEL) == token:
                        self.stored_calls.load(horizon, rows)
                        self._stored_token = token
                        continue
            await trio.sleep(poll)

    async def _housekeeping(self, interval: float = 300) -> None:
        while True:
            await trio.sleep(interval)
            await self.housekeep()

    async def housekeep(self, keep: timedelta = timedelta(hours=2)) -> None:
        """End calls the PBX forgot to end (a lost webhook would leave an agent busy forever), and
        forget ended calls after a while (they stay in the database) so memory stays bounded."""
        stale = self.switchboard.stale_call_events(utcnow())
        if stale:
            log.warning("ending %d calls the PBX never ended", len({e.call_id for e in stale}))
            try:
                await self.submit(stale)
            except CtidError as exc:
                log.warning("could not end stale calls: %s", exc)
        dropped = self.switchboard.evict(utcnow() - keep)
        self.stored_calls.forgotten(dropped)
        self.stored_calls.prune(utcnow())
        for cache in (self._contact_of, self._audience):
            for call_id in [c for c in cache if not self.switchboard.knows_call(c)]:
                del cache[call_id]
        self._rows_written = {c for c in self._rows_written if self.switchboard.knows_call(c)}
        if dropped:
            log.debug("evicted %d ended calls from memory", len(dropped))

    # -- CallReader for plugins ------------------------------------------------------------------
    async def get_call(self, call_id: str) -> Call | None:
        from ctid.model import call_from_json

        call = self.switchboard.calls.get(call_id)
        if call is not None:
            return call
        data = await self.store.get_call(call_id)
        return call_from_json(data) if data else None

    async def find_call(self, connector: str, pbx_call_id: str) -> Call | None:
        from ctid.model import call_id_for

        return await self.get_call(call_id_for(connector, pbx_call_id))


def _first_leaf(group: BaseException):
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


def install_signal_handlers(daemon: Daemon):
    """Context for ``ctid serve``: SIGTERM / SIGINT begin a graceful shutdown."""

    async def watch(*, task_status=trio.TASK_STATUS_IGNORED):
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            task_status.started()
            async for _ in signals:
                daemon.shutdown()
                return

    return watch

