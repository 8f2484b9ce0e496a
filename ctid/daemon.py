"""``ctid serve``: builds the running system from configuration and owns its Trio nursery tree
(web server, store writer, hub, outbox worker, connector tasks, reconciliation timers).

The daemon composes and supervises; it does not process calls. The event pipeline is
:mod:`ctid.pipeline` (the one-way flow of DESIGN.md), state sync between instances
:mod:`ctid.sync`, the launcher lease timer :mod:`ctid.leases`, memory housekeeping
:mod:`ctid.housekeeping`. :meth:`Daemon.submit` and the other thin methods below keep the names
the web, hub, command and plugin layers call.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import signal
import uuid
from datetime import timedelta

import trio

from ctid.config.loader import Settings
from ctid.connector import Connector
from ctid.contacts import ContactService
from ctid.crm import CRMAdapter
from ctid.directory import StaticDirectory
from ctid.errors import CtidError
from ctid.housekeeping import housekeep, keep_house
from ctid.leases import LeaseTimer
from ctid.metrics import Metrics
from ctid.model import Call, CallEvent, CallState, call_from_json, utcnow
from ctid.outbox import OutboxWorker
from ctid.pipeline import Pipeline
from ctid.services import Services
from ctid.store import Store
from ctid.store.deadletters import DeadLetters
from ctid.storedcalls import StoredCalls
from ctid.supervise import Supervisor
from ctid.switchboard import Changes, Switchboard
from ctid.sync import SYNC_CHANNEL, InstanceSync
from ctid.webhooks import clean_events

log = logging.getLogger("ctid")


class Daemon:
    """The running ctid: builds every long-lived component, wires them and supervises their tasks."""

    SYNC_CHANNEL = SYNC_CHANNEL  # the backplane channel of state sync between instances (ctid/sync.py)

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
        self._shutdown = trio.Event()
        self.instance_id = uuid.uuid4().hex
        self.clock = utcnow  # wall clock of timers; tests give one driven by trio's MockClock
        from ctid.kpi_live import LiveKPIs

        self.live_kpis = LiveKPIs(self.switchboard, settings.core.reports, clock=lambda: self.clock())
        self.stored_calls = StoredCalls()  # stored calls memory may lack (read before their events)
        # The parts the daemon composes; data flows pipeline -> store / hub / outbox / sync, and
        # sync -> pipeline for what other instances committed. None of them knows the daemon.
        self.sync = InstanceSync(instance_id=self.instance_id, switchboard=self.switchboard, store=self.store,
                                 stored_calls=self.stored_calls, lease_changed=lambda: self.leases.wake())
        self.pipeline = Pipeline(switchboard=self.switchboard, store=self.store, outbox=self.outbox,
                                 metrics=self.metrics, contacts=self.contacts, crm=self.crm,
                                 supervisor=self.supervisor, live_kpis=self.live_kpis, sync=self.sync,
                                 notify=lambda hook_name, **kwargs: pm.notify(hook_name, **kwargs))
        self.sync.events = self.pipeline
        self.leases = LeaseTimer(switchboard=self.switchboard, store=self.store, clock=lambda: self.clock(),
                                 apply_status=self.pipeline.apply_status, sync=self.sync)

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
        self.pipeline.hub = self.hub
        self.sync.backplane = self.hub.backplane
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
        if not self.sync.active:
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
                self.pipeline.nursery = nursery
                await nursery.start(self.store.run_writer)
                await nursery.start(self.outbox.run)
                if self.hub is not None:
                    await nursery.start(self.hub.run)
                    self.pipeline.publishing = True
                    await nursery.start(self.live_kpis.run, self.pipeline.publish_kpis)
                    if self.hub.backplane.kind != "memory":
                        await nursery.start(self.sync.run)
                        nursery.start_soon(self.sync.keep_stored_calls)
                        # login throttle counters are shared by every instance (ctid.auth_throttle)
                        await nursery.start(self.auth.throttle.share, self.hub.backplane, self.instance_id)
                nursery.start_soon(keep_house, self.housekeep)
                from ctid.reports.rollup import keep_built

                nursery.start_soon(keep_built, self.store.engine, self.settings.core.reports, self.store.limiter)
                nursery.start_soon(self.leases.run)
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
        self.pipeline.call_observers(hook_name, services=self.services)

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

    # -- the event pipeline (ctid/pipeline.py), leases (ctid/leases.py), housekeeping ------------
    async def submit(self, events: list[CallEvent]) -> int:
        """Accept events (:class:`ctid.services.EventSink`): the pipeline's ``submit``."""
        return await self.pipeline.submit(events)

    async def apply_status(self, changes: Changes) -> None:
        """Persist and publish a presence change made through the API, the hub or a lapsed lease."""
        await self.pipeline.apply_status(changes)

    async def lease_renewed(self, agent_id: str) -> None:
        """Persist and share an agent's new launcher lease and wake the expiry timer."""
        await self.leases.renewed(agent_id)

    async def _lease_loop(self) -> None:
        await self.leases.run()

    async def expire_leases(self) -> None:
        await self.leases.expire()

    async def housekeep(self, keep: timedelta = timedelta(hours=2)) -> None:
        """End calls the PBX forgot to end, forget old ended calls (ctid/housekeeping.py)."""
        await housekeep(self.switchboard, self.pipeline, self.stored_calls, keep)

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

