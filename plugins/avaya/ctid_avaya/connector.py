"""The Avaya IP Office connector: DevLink3 live events + SMDR call log in, TAPI / AES commands out.

One instance = one IP Office unit. ``run`` holds one DevLink3 connection (the unit allows three,
so ctid fans it out internally) and the SMDR collector, each in its own supervised loop: an
exception is logged, counted and retried with backoff, never ending the other streams.
DevLink3 gives the screen pop and presence (ring, answer, hold, transfer, end by party tracking);
SMDR, which arrives after each call, is the authoritative SUMMARY. Call control is declared per
deployment from the configured backends; without one the connector monitors and logs only.
"""

from __future__ import annotations

import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from datetime import timedelta

import trio

from ctid.connector import Connector, Health, SimulatedRequest, SimulationContext
from ctid.errors import CapabilityError, CtidError, PBXError
from ctid.limits import ascii_digits
from ctid.model import Call, CallEvent, Capability, utcnow
from ctid_avaya import control
from ctid_avaya import simulate as _simulate
from ctid_avaya.calllog import KEEP, CallLog, LegIndex
from ctid_avaya.client import DevLink3Client, LinkError, Refused, describe
from ctid_avaya.collector import SmdrCollector
from ctid_avaya.config import AvayaConfig
from ctid_avaya.delta3 import parse as parse_delta3
from ctid_avaya.smdr import CallGrouper, SmdrRecord
from ctid_avaya.stats import Stats
from ctid_avaya.tracker import Tracker

log = logging.getLogger(__name__)

SUBMIT_ATTEMPTS = 5


class AvayaConnector(Connector):
    plugin_name = "avaya"
    Config = AvayaConfig
    capabilities = frozenset()  # per instance: see __init__
    scenarios = _simulate.SCENARIOS
    config: AvayaConfig

    def __init__(self, name, config, services):
        super().__init__(name, config, services)
        self.stats = Stats(name, services.metrics_registry)
        self.index = LegIndex(timedelta(seconds=config.smdr.join_tolerance))
        self.tracker = Tracker(name, config.zone, self.index, login_for=self.login_for,
                               hunt_groups=config.hunt_groups)
        self.calllog = CallLog(name, config.zone, self.index, login_for=self.login_for,
                               hunt_groups=config.hunt_groups)
        self._groups: list[tuple[list[SmdrRecord], bool]] = []
        self.grouper = CallGrouper(lambda records, complete: self._groups.append((records, complete)),
                                   timeout=config.smdr.group_timeout, tolerance=config.smdr.join_tolerance)
        self.backends = [control.build(entry, name) for entry in config.control]
        self.routes: dict[Capability, control.ControlBackend] = {}
        for backend in self.backends:
            for capability in backend.capabilities:
                self.routes.setdefault(capability, backend)
        self.capabilities = frozenset(self.routes)  # shadows the class attribute: declared per deployment
        self.devlink3: DevLink3Client | None = None
        if config.devlink3 is not None and config.devlink3.enabled:
            self.devlink3 = DevLink3Client(name, config.host, config.devlink3, on_texts=self._on_texts,
                                           on_subscribed=self._on_subscribed, stats=self.stats)
        self.smdr: SmdrCollector | None = None
        if config.smdr.enabled:
            self.smdr = SmdrCollector(name, config.host, config.smdr, on_record=self._on_record, stats=self.stats)
        self.simulation_ports: dict[str, int] = {}
        self._nursery: trio.Nursery | None = None
        self._submit_lock = trio.Lock()
        self.lost_events = 0
        self.started_at: float | None = None  # trio time run() began (SMDR's health window starts there)

    # -- logins ----------------------------------------------------------------------------------
    def login_for(self, extension: str) -> str:
        """The login ctid's directory knows for an IP Office extension (``extensions`` maps it)."""
        agent = self.config.extensions.get(extension)
        if agent is not None:
            login = self.services.directory.login_for_agent(self.name, agent)
            if login:
                return login
        return extension

    def extension_for(self, login: str) -> str:
        for extension, agent in self.config.extensions.items():
            if self.services.directory.agent_for_login(self.name, login) == agent:
                return extension
        return login

    # -- running ---------------------------------------------------------------------------------
    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self.started_at = trio.current_time()
        await self._load_legs()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self.devlink3 is not None:
                nursery.start_soon(self._supervise, "devlink3", self.devlink3.run)
            if self.smdr is not None:
                runner = self.smdr.run_listen if self.config.smdr.mode == "listen" else self.smdr.run_connect
                await self._start_supervised(nursery, "smdr", runner)
            for backend in self.backends:
                nursery.start_soon(self._supervise, f"control:{backend.name}", backend.run)
            sim = self.config.simulation
            if sim is not None:
                if sim.devlink3_port is not None and self.config.devlink3 is not None:
                    self.simulation_ports["devlink3"] = await self._start_supervised(
                        nursery, "simulation:devlink3", self._serve_simulated_devlink3, sim.host, sim.devlink3_port)
                if sim.smdr_port is not None and self.smdr is not None:
                    self.simulation_ports["smdr"] = await self._start_supervised(
                        nursery, "simulation:smdr", self._serve_simulated_smdr, sim.host, sim.smdr_port)
            nursery.start_soon(self._supervise, "smdr-groups", self._expire_groups)
            task_status.started()

    async def _start_supervised(self, nursery: trio.Nursery, what: str, fn, *args):
        """Start ``fn`` (a ``task_status`` function) under :meth:`_keep`; its started value or None."""
        return await nursery.start(self._keep, what, fn, *args)

    async def _keep(self, what: str, fn, *args, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Run ``fn`` for ever: a failure (at start, e.g. a taken port, or later) is logged, counted
        and retried with backoff; ``task_status`` is reported once, at the first start or failure."""
        status = task_status
        delay = 1.0
        while True:
            try:
                async with trio.open_nursery() as inner:
                    value = await inner.start(fn, *args)
                    if status is not None:
                        status.started(value)
                        status = None
                    delay = 1.0
                return
            except Exception as exc:
                log.warning("%s: %s failed: %s: %s; restarting", self.name, what, type(exc).__name__, exc,
                            exc_info=not isinstance(exc, OSError))
                self.stats.error("supervisor", what, "%s: %s", type(exc).__name__, exc)
            if status is not None:
                status.started(None)
                status = None
            await trio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 60)

    async def _supervise(self, what: str, fn: Callable[..., Awaitable[None]], *args) -> None:
        """Run ``fn`` for ever: an exception is logged and counted, then retried with backoff."""
        delay = 1.0
        while True:
            try:
                await fn(*args)
                return
            except Exception as exc:
                log.exception("%s: %s failed; restarting in %.0f s", self.name, what, delay)
                self.stats.error("supervisor", what, "%s: %s", type(exc).__name__, exc)
            await trio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 60)

    async def aclose(self) -> None:
        for backend in self.backends:
            try:
                await backend.aclose()
            except Exception:
                log.exception("%s: closing %s failed", self.name, backend.name)

    # -- DevLink3 --------------------------------------------------------------------------------
    async def _on_subscribed(self) -> None:
        self.tracker.begin_resync()
        if self._nursery is not None and self.config.devlink3 is not None:
            self._nursery.start_soon(self._finish_resync, self.tracker.generation)

    async def _finish_resync(self, generation: int) -> None:
        await trio.sleep(self.config.devlink3.resync_grace)
        if generation == self.tracker.generation:
            await self._submit(self.tracker.finish_resync())

    async def _on_texts(self, texts: list[str]) -> None:
        events: list[CallEvent] = []
        for text in texts:
            result = parse_delta3(text)
            for error in result.errors:
                self.stats.error("devlink3", "bad_record", "Delta3 record skipped: %s", error)
            for record in result.records:
                events += self.tracker.feed(record)
        await self._submit(events)

    # -- SMDR ------------------------------------------------------------------------------------
    async def _on_record(self, record: SmdrRecord) -> None:
        self.grouper.add(record, trio.current_time())
        await self._flush_groups()

    async def _flush_groups(self) -> None:
        events: list[CallEvent] = []
        while self._groups:
            records, complete = self._groups.pop(0)
            if not complete:
                self.stats.error("smdr", "incomplete", "Call ID %s closed without its last record (%d records)",
                                 records[0].call_id, len(records))
            events += self.calllog.add_group(records, complete)
        await self._submit(events)

    async def _expire_groups(self) -> None:
        while True:
            await trio.sleep(min(60, self.config.smdr.group_timeout / 4))
            if self.grouper.expire(trio.current_time()):
                await self._flush_groups()

    # -- the leg index in plugin storage ---------------------------------------------------------
    def _storage(self):
        try:
            return self.services.storage(self.plugin_name)
        except RuntimeError:  # no database in this context (tests, ctid check)
            return None

    async def _load_legs(self) -> None:
        """Calls DevLink3 saw before a restart, so their SMDR (and IP Office's re-report) still join."""
        storage = self._storage()
        if storage is None:
            return
        cutoff = utcnow() - KEEP
        try:
            rows = await storage.list(f"legs:{self.name}", limit=20_000)
            for key, value in rows:
                ip, _, leg = key.rpartition("-")
                entries = [e for e in value.get("entries", []) if (e.get("end") or e["start"]) >= cutoff.isoformat()]
                if not entries:
                    await storage.delete(f"legs:{self.name}", key)
                elif ascii_digits(leg):
                    self.index.load((ip, int(leg)), entries)
        except (CtidError, KeyError, ValueError) as exc:
            log.warning("%s: the stored DevLink3/SMDR leg index was not loaded: %s", self.name, exc)

    async def _persist_legs(self) -> None:
        storage = self._storage()
        if storage is None or not self.index.changed:
            self.index.changed.clear()
            return
        changed = list(self.index.changed)
        self.index.changed.clear()
        try:
            for leg in changed:
                await storage.put(f"legs:{self.name}", f"{leg[0]}-{leg[1]}", {"entries": self.index.entries(leg)})
        except CtidError as exc:
            self.stats.error("storage", "legs", "leg index not stored: %s", exc)

    # -- submitting ------------------------------------------------------------------------------
    async def _submit(self, events: list[CallEvent]) -> None:
        """Hand events to ctid; a failing store is retried a few times (the PBX will not resend)."""
        await self._persist_legs()
        if not events:
            return
        sink = self.services.events
        if sink is None:
            return
        delay = 0.5
        for attempt in range(SUBMIT_ATTEMPTS):
            try:
                async with self._submit_lock:
                    await sink.submit(events)
                return
            except CtidError as exc:
                if attempt == SUBMIT_ATTEMPTS - 1:
                    self.lost_events += len(events)
                    self.stats.error("submit", "lost", "%d events not accepted: %s", len(events), exc)
                    return
                await trio.sleep(delay)
                delay *= 2

    # -- simulation sockets ----------------------------------------------------------------------
    async def _serve_simulated_devlink3(self, host: str, port: int, *, task_status=trio.TASK_STATUS_IGNORED):
        listeners = await trio.open_tcp_listeners(port, host=host)
        task_status.started(listeners[0].socket.getsockname()[1])

        async def handler(stream):
            async def accepted():
                return stream

            async def no_resync():
                return None

            client = DevLink3Client(f"{self.name}/simulation", host, self.config.devlink3, on_texts=self._on_texts,
                                    on_subscribed=no_resync, stats=self.stats, open_stream=accepted)
            try:
                await client._session()
            except Exception as exc:  # the simulator hung up: normal at its end
                log.info("%s: simulation link ended: %s", self.name, exc)

        await trio.serve_listeners(handler, listeners)

    async def _serve_simulated_smdr(self, host: str, port: int, *, task_status=trio.TASK_STATUS_IGNORED):
        await self.smdr.serve(host, port, check_peer=False, task_status=task_status)

    # -- commands --------------------------------------------------------------------------------
    def _backend(self, capability: Capability) -> control.ControlBackend:
        self.require(capability)
        return self.routes[capability]

    async def dial(self, agent_login: str, number: str) -> str | None:
        return await self._backend(Capability.DIAL).dial(self.extension_for(agent_login), number)

    async def hold(self, call: Call, agent_login: str) -> None:
        await self._backend(Capability.HOLD).hold(self.extension_for(agent_login), call.remote_number)

    async def unhold(self, call: Call, agent_login: str) -> None:
        await self._backend(Capability.HOLD).unhold(self.extension_for(agent_login), call.remote_number)

    async def transfer(self, call: Call, agent_login: str, target_login: str) -> None:
        await self._backend(Capability.TRANSFER).transfer(self.extension_for(agent_login), call.remote_number,
                                                          self.extension_for(target_login))

    async def hangup(self, call: Call, agent_login: str) -> None:
        await self._backend(Capability.HANGUP).hangup(self.extension_for(agent_login), call.remote_number)

    # -- health ----------------------------------------------------------------------------------
    async def health(self) -> Health:
        if self.started_at is None:
            return await self._probe_health()
        checks: dict[str, str] = {}
        ok = True
        now = trio.current_time()
        if self.devlink3 is not None:
            client = self.devlink3
            if client.subscribed:
                age = now - client.last_received if client.last_received is not None else None
                checks["devlink3"] = f"authenticated, receiving ({client.pbx_type or 'IP Office'}" + (
                    f"; last frame {age:.0f} s ago)" if age is not None else ")")
            else:
                ok = False
                checks["devlink3"] = ("login refused: " if client.auth_refused else "down: ") + (
                    client.last_error or "connecting")
        if self.smdr is not None:
            window = self.config.smdr.seen_window
            last = self.smdr.last_record
            if last is not None and now - last <= window:
                checks["smdr"] = f"last record {now - last:.0f} s ago"
            elif last is None and self.started_at is not None and now - self.started_at <= window \
                    and (self.smdr.port is not None if self.config.smdr.mode == "listen" else self.smdr.connected):
                checks["smdr"] = f"no record yet (started {now - self.started_at:.0f} s ago)"
            else:
                ok = False
                if self.config.smdr.mode == "listen":
                    where = f"listening on port {self.smdr.port}" if self.smdr.port else "not listening"
                else:
                    where = self.smdr.last_error or "connected"
                checks["smdr"] = f"no record within {window:.0f} s ({where})"
        ok = await self._control_checks(checks) and ok
        errors = self.stats.error_count()
        if errors:
            checks["wire_errors"] = str(errors)
        return Health(ok=ok, detail="ok" if ok else "degraded", checks=checks)

    async def _probe_health(self) -> Health:
        """Health of an instance that is not running (``ctid check`` beside ``ctid serve``): one
        DevLink3 login (the unit's own answer, e.g. a wrong password or a missing licence), the SMDR
        setting (its socket belongs to the daemon: connecting here would take records from it), and
        each control backend's check."""
        checks: dict[str, str] = {}
        ok = True
        if self.devlink3 is not None:
            try:
                pbx = await self.devlink3.probe()
                checks["devlink3"] = f"login accepted ({pbx})"
            except Refused as exc:
                ok = False
                checks["devlink3"] = str(exc)  # "login refused: 0x80000041 auth failed"
            except trio.TooSlowError:
                ok = False
                checks["devlink3"] = f"unreachable: no answer within {self.config.devlink3.connect_timeout:g} s"
            except (LinkError, OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
                ok = False
                checks["devlink3"] = f"unreachable: {describe(exc)}"
        if self.smdr is not None:
            smdr = self.config.smdr
            checks["smdr"] = (f"collected by ctid serve (listening on {smdr.listen})" if smdr.mode == "listen"
                              else f"collected by ctid serve (connecting to {self.config.host}:{smdr.port})")
        ok = await self._control_checks(checks) and ok
        return Health(ok=ok, detail="ok" if ok else "degraded", checks=checks)

    async def _control_checks(self, checks: dict[str, str]) -> bool:
        """Each control backend's check into ``checks`` (5 s each); whether all of them answered."""
        ok = True
        for backend in self.backends:
            try:
                with trio.move_on_after(5) as scope:
                    checks[f"control:{backend.name}"] = await backend.check()
                if scope.cancelled_caught:
                    raise PBXError("no answer within 5 s", error_id="pbx_timeout")
            except CtidError as exc:
                ok = False
                checks[f"control:{backend.name}"] = f"unreachable: {exc}"
        if not self.backends:
            checks["control"] = "none configured: monitor and call log only"
        return ok

    # -- simulation ------------------------------------------------------------------------------
    def simulate(self, scenario: str, context: SimulationContext) -> list[SimulatedRequest]:
        if scenario not in self.scenarios:
            raise CapabilityError(f"unknown scenario {scenario!r} (have: {', '.join(self.scenarios)})",
                                  error_id="bad_scenario")
        return _simulate.traffic(self, scenario, context)

    async def send_simulation(self, scenario: str, context: SimulationContext, *, base_url: str,
                              report: Callable[[str], None] = print) -> None:
        await _simulate.send(self, self.simulate(scenario, context), report=report)
