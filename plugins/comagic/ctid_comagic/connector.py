"""The CoMagic / UIS connector: notifications in, Call API commands out, Data API reconciliation.

Inbound, the account's HTTP notifications (rendered from ctid's templates, :mod:`.templates`) arrive
at ``/hooks/<instance>/<webhook_secret>`` and become per-leg call events (:mod:`.events`). Outbound,
the Call API clicks-to-call, holds, transfers (blind and consultative, :mod:`.transfers`) and hangs
up; the Data API gives the account's time zone, the authoritative call report with campaign, site,
channel and UTM facts, the call cost, and the employees (:mod:`.reports`). Recordings are fetched by
ctid and served under its own URL (:mod:`.recordings`).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import trio

from ctid.connector import Connector, Health, SimulatedRequest, SimulationContext, WebhookRequest, WebhookResult
from ctid.errors import CtidError, PBXError, RequestError
from ctid.model import Call, CallEvent, CallState, Capability, call_id_for, utcnow
from ctid.netallow import address_allowed
from ctid.secret import secrets_equal
from ctid_comagic import reports
from ctid_comagic import simulate as _simulate
from ctid_comagic.client import RpcClient
from ctid_comagic.config import ComagicConfig
from ctid_comagic.events import InvalidNotification, Notification, parse, to_event
from ctid_comagic.recordings import RecordingStore, hash_link
from ctid_comagic.transfers import CallControl

log = logging.getLogger(__name__)

ACCOUNT_RETRY = (5, 300)  # first and longest pause between get.account attempts, seconds


def _answer(status: int, error: str, message: str) -> WebhookResult:
    return WebhookResult(status=status, body={"error": error, "message": message})


class ComagicConnector(Connector):
    plugin_name = "comagic"
    Config = ComagicConfig
    capabilities = frozenset({Capability.DIAL, Capability.HOLD, Capability.TRANSFER, Capability.HANGUP,
                              Capability.DND, Capability.RECORDINGS, Capability.HISTORY})
    #: Transfer modes this connector offers (``ctid.commands`` asks before a consultative transfer).
    transfer_modes = ("blind", "consult")
    scenarios = _simulate.SCENARIOS
    accepts_webhooks = True
    config: ComagicConfig

    def __init__(self, name, config, services, *, transport: httpx.AsyncBaseTransport | None = None,
                 clock=None, now=utcnow):
        super().__init__(name, config, services)
        self._path_secret = config.webhook_secret.get_secret_value().encode()
        self._body_secret = config.body_secret.get_secret_value().encode()
        self._networks = list(config.allowed_networks)
        self._transport = transport
        self._clock = clock  # unix wall clock of session tokens (tests pass the fake's)
        self.now = now  # UTC "now" of the events ctid states itself and of report windows
        self._client: RpcClient | None = None
        self._media: httpx.AsyncClient | None = None
        self.tz: ZoneInfo | None = None
        self.account: dict[str, Any] = {}
        self.account_read = trio.Event()  # set once the account's time zone is known
        self._targets: dict[str, str] = {}  # employee id -> make.call target
        self._statuses: dict[str, int] = {}  # status mnemonic -> get.statuses id
        self.recordings = RecordingStore(name, config, services)
        self.control = CallControl(name, lambda: self.client, config, self._submit, self._storage, self._dial_target,
                                   now=lambda: self.now())
        self._jobs_in, self._jobs_out = trio.open_memory_channel[tuple[str, float, str, str]](10_000)
        self._busy: set[tuple[str, str]] = set()

    @property
    def client(self) -> RpcClient:
        if self._client is None:
            kwargs = {"clock": self._clock} if self._clock is not None else {}
            self._client = RpcClient(self.config, transport=self._transport, **kwargs)
        return self._client

    @property
    def media(self) -> httpx.AsyncClient:
        if self._media is None:
            self._media = httpx.AsyncClient(timeout=max(self.config.timeout, 30), transport=self._transport)
        return self._media

    async def aclose(self) -> None:
        for closing in (self._client, self._media):
            if closing is not None:
                await closing.aclose()
        self._client = self._media = None
        for channel in (self._jobs_in, self._jobs_out):
            channel.close()

    def _storage(self):
        try:
            return self.services.storage("comagic")
        except RuntimeError:
            return None

    async def _submit(self, events: list[CallEvent]) -> int:
        if self.services.events is None or not events:
            return 0
        return await self.services.events.submit(events)

    # -- background work -------------------------------------------------------------------------
    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Read the account's time zone, then run delayed recording downloads and post-call fact pulls."""
        try:
            planned = await self.recordings.planned()
        except CtidError as exc:
            log.warning("%s: planned recording downloads not resumed: %s", self.name, exc)
            planned = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._account_loop)
            now = utcnow()
            for session, call_id, due_at in planned:
                self._schedule("recording", max((due_at - now).total_seconds(), 0.0), session, call_id)
            nursery.start_soon(self._jobs_loop)
            task_status.started()

    async def _account_loop(self) -> None:
        pause = ACCOUNT_RETRY[0]
        while self.tz is None:
            try:
                await self.read_account()
                return
            except CtidError as exc:
                log.warning("%s: account time zone not read (notifications are ordered by receipt "
                            "until it is): %s", self.name, exc)
            await trio.sleep(pause)
            pause = min(pause * 2, ACCOUNT_RETRY[1])

    async def read_account(self) -> ZoneInfo:
        """``get.account``: the account's IANA time zone (Data API times are local, §3.1)."""
        account = await self.client.account()
        name = account.get("timezone")
        try:
            tz = ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise PBXError(f"CoMagic get.account: unknown time zone {name!r}", error_id="pbx_bad_answer",
                           retryable=False) from exc
        self.account, self.tz = account, tz
        self.account_read.set()
        return tz

    async def _zone(self) -> ZoneInfo:
        return self.tz if self.tz is not None else await self.read_account()

    def _schedule(self, job: str, delay: float, session: str, call_id: str) -> None:
        try:
            self._jobs_in.send_nowait((job, trio.current_time() + delay, session, call_id))
        except (trio.WouldBlock, trio.ClosedResourceError):
            log.info("%s: %s job for %s left to reconciliation", self.name, job, session)

    async def _jobs_loop(self) -> None:
        async with trio.open_nursery() as nursery:
            async for job, due, session, call_id in self._jobs_out:
                if (job, session) not in self._busy:
                    self._busy.add((job, session))
                    nursery.start_soon(self._job, job, due, session, call_id)

    async def _job(self, job: str, due: float, session: str, call_id: str) -> None:
        try:
            await trio.sleep_until(due)
            if job == "recording":
                try:
                    await self.recordings.fetch(self.media, session, call_id)
                finally:
                    await self.recordings.unplan(session)
            else:
                await self._submit(await self.call_report(session))
        except (CtidError, OSError) as exc:  # logged; reconciliation and on-demand fetches remain
            log.warning("%s: %s of call %s: %s", self.name, job, session, exc)
        finally:
            self._busy.discard((job, session))

    # -- inbound ---------------------------------------------------------------------------------
    async def handle_webhook(self, request: WebhookRequest) -> WebhookResult:
        if request.method.upper() not in ("POST", "GET"):
            result = _answer(405, "method_not_allowed", "notifications are POST (or GET)")
            result.headers["allow"] = "POST, GET"
            return result
        if not address_allowed(request.remote_addr, self._networks):
            return _answer(403, "forbidden", f"source address {request.remote_addr} is not allowed")
        if not secrets_equal(request.subpath.strip("/"), self._path_secret):
            return _answer(401, "unauthorized", "unknown notification URL (the secret path segment does not match)")
        try:
            note = parse(request.method, request.body, request.query)
        except InvalidNotification as exc:
            return _answer(400, "invalid_notification", str(exc))
        if not secrets_equal(note.secret, self._body_secret):
            return _answer(401, "unauthorized", "ctid_secret is missing or does not match")
        try:
            events = [await self._event(note, request.received_at)]
        except RequestError as exc:  # a fact that does not pass ctid.facts' checks
            return _answer(400, "invalid_notification", str(exc))
        # [guess §1.2] answered at once; delivery is at-most-once, so reconciliation recovers the rest
        return WebhookResult(events=events, status=200, body={"status": "ok"})

    async def _event(self, note: Notification, received_at: datetime) -> CallEvent:
        event = to_event(self.name, note, tz=self.tz, region=self.services.default_region, received_at=received_at)
        if note.kind == "talk_started" and event.agent_login is not None and await self.control.consultation_talk(
                note.session, event.agent_login, event.at):
            event = to_event(self.name, note, tz=self.tz, region=self.services.default_region,
                             received_at=received_at, consult=True)
        call_id = call_id_for(self.name, note.session)
        if note.kind == "recording_ready":
            link = note.get("file_link")
            if self.recordings.allowed(link):
                if await self.recordings.remember(note.session, call_id, link):
                    await self._plan_download(note.session, call_id)
                event = _replace(event, recording=self.services.recording_url(call_id))
            else:
                log.warning("%s: recording link of %s is not on the media host; ignored", self.name, note.session)
        if note.kind in ("call_finished", "lost_call"):
            self._schedule("report", self.config.facts_delay, note.session, call_id)
        return event

    async def _plan_download(self, session: str, call_id: str) -> None:
        delay = self.config.recording_delay
        await self.recordings.plan(session, call_id, utcnow() + timedelta(seconds=delay))
        self._schedule("recording", delay, session, call_id)

    # -- Data API: reports, reconciliation, facts ------------------------------------------------
    async def _report_events(self, rows: list[dict[str, Any]], tz: ZoneInfo, costs: dict[str, float]) -> list[CallEvent]:
        now = self.now()
        out: list[CallEvent] = []
        media = self.config.endpoint("media")
        for raw in rows:
            row = reports.read_row(raw, tz, self.services.default_region)
            if row is None:
                continue
            if not row.finished:
                # Only a call ctid never heard of rings from the report: its report start (whole seconds)
                # must not re-time a known one. An employee talking on it answers it, unless ctid already
                # has it beyond ringing (then the notifications' times stand).
                stored = await self._stored(row.session)
                if stored is None:
                    out.append(reports.ongoing_event(self.name, row, now))
                if stored is None or stored.state is CallState.RINGING:
                    answer = reports.ongoing_answer(self.name, row, now)
                    out.extend([answer] if answer is not None else [])
                continue
            call_id = call_id_for(self.name, row.session)
            recording = None
            if row.hashes:
                if await self.recordings.remember(row.session, call_id, hash_link(media, row.communication_id,
                                                                                   row.hashes[0])):
                    await self._plan_download(row.session, call_id)
                recording = self.services.recording_url(call_id)
            out.append(reports.summary_event(self.name, row, now, recording))
            if row.session in costs:
                out.append(reports.cost_event(self.name, row.session, costs[row.session], self.config.currency, now))
        return out

    async def _stored(self, session: str) -> Call | None:
        """The call ctid has for ``session``, or None (unknown, or the store cannot say)."""
        reader = self.services.calls
        if reader is None:
            return None
        try:
            return await reader.find_call(self.name, session)
        except CtidError:
            return None

    async def history(self, since: datetime) -> list[CallEvent]:
        """Summaries (with campaign, UTM and cost facts) of calls since ``since``; ongoing calls ring."""
        tz = await self._zone()
        until = self.now()
        rows = await reports.calls(self.client, since, until, tz, limit=self.config.report_limit)
        costs = await reports.costs(self.client, since, until, tz, limit=self.config.report_limit)
        return await self._report_events(rows, tz, costs)

    async def call_report(self, session: str, *, lookback: timedelta = timedelta(days=1)) -> list[CallEvent]:
        """One call's report row and cost (the post-call pull ``facts_delay`` after it ended)."""
        tz = await self._zone()
        until = self.now()
        rows = await reports.calls(self.client, until - lookback, until, tz, limit=10, session=session)
        costs = await reports.costs(self.client, until - lookback, until, tz, limit=100, session=session)
        return await self._report_events([r for r in rows if str(r.get("id")) == session], tz, costs)

    # -- commands --------------------------------------------------------------------------------
    def _employee(self, login: str) -> int:
        """An agent's login on a CoMagic instance is the employee id notifications carry [guess §3.6]."""
        if not (login.isascii() and login.isdigit()):
            raise RequestError(f"CoMagic logins are employee ids (digits), not {login!r}", error_id="no_pbx_login")
        return int(login)

    async def _dial_target(self, login: str) -> str:
        """What make.call dials to reach employee ``login`` (cached from get.employees)."""
        employee = self._employee(login)
        if login not in self._targets:
            for row in await reports.employees(self.client):
                target = reports.dial_target(row)
                if row.get("id") is not None and target:
                    self._targets[str(row["id"])] = target
        if login not in self._targets:
            raise PBXError(f"CoMagic: employee {employee} has no extension or active number to transfer to",
                           error_id="pbx_refused:no_active_phone_number", retryable=False,
                           code="no_active_phone_number")
        return self._targets[login]

    async def dial(self, agent_login: str, number: str) -> str | None:
        self.require(Capability.DIAL)
        digits = "".join(ch for ch in number if ch.isdigit())
        if not 3 <= len(digits) <= 20:
            raise RequestError(f"cannot dial {number!r}", error_id="bad_number")
        external_id = uuid.uuid4().hex  # start.employee_call: employees show in reports [guess §2.5]
        params: dict[str, Any] = {"first_call": "employee", "contact": digits, "external_id": external_id,
                                  "employee": {"id": self._employee(agent_login)}, "direction": "out"}
        if self.config.virtual_phone_number:
            params["virtual_phone_number"] = self.config.virtual_phone_number
        session = await self.client.start_employee_call(params)
        storage = self._storage()
        if storage is not None:
            await storage.put("dial", f"{self.name}:{external_id}", {"call_session_id": session,
                                                                     "employee": agent_login, "contact": digits})
        return session

    async def hold(self, call: Call, agent_login: str) -> None:
        self.require(Capability.HOLD)
        await self.control.hold(call, agent_login)

    async def unhold(self, call: Call, agent_login: str) -> None:
        self.require(Capability.HOLD)
        await self.control.unhold(call, agent_login)

    async def transfer(self, call: Call, agent_login: str, target_login: str, mode: str = "blind") -> None:
        self.require(Capability.TRANSFER)
        if mode == "consult":
            await self.control.consult(call, agent_login, target_login)
        else:
            await self.control.transfer(call, agent_login, target_login)

    async def complete_transfer(self, call: Call, agent_login: str) -> str:
        return await self.control.complete(call, agent_login)

    async def cancel_transfer(self, call: Call, agent_login: str) -> str:
        return await self.control.cancel(call, agent_login)

    async def hangup(self, call: Call, agent_login: str) -> None:
        self.require(Capability.HANGUP)
        await self.control.hangup(call)

    async def set_dnd(self, agent_login: str, enabled: bool) -> None:
        """Mirror presence to the employee's status (``update.employees`` with a ``get.statuses`` id) [guess]."""
        self.require(Capability.DND)
        mnemonic = self.config.dnd_status if enabled else self.config.available_status
        if mnemonic not in self._statuses:  # get.statuses costs points: once per status
            self._statuses[mnemonic] = await reports.status_id(self.client, mnemonic)
        status = self._statuses[mnemonic]
        await self.client.data("update.employees", {"id": self._employee(agent_login), "status_id": status},
                               wait=False)

    async def recording(self, call: Call) -> tuple[bytes, str] | None:
        self.require(Capability.RECORDINGS)
        return await self.recordings.fetch(self.media, call.pbx_call_id, call.id, attempts=1)

    async def import_users(self) -> dict[str, Any]:
        """The account's employees as ctid ``agents:`` entries (``ctid comagic import-users``)."""
        rows = await reports.employees(self.client)
        agents: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row.get("id") is None:
                continue
            entry: dict[str, Any] = {"name": row.get("full_name") or row.get("login") or str(row["id"]),
                                     "pbx": {self.name: str(row["id"])}}
            extension = row.get("extension") if isinstance(row.get("extension"), dict) else {}
            if extension.get("extension_phone_number"):
                entry["extension"] = str(extension["extension_phone_number"])
            groups = [g.get("group_name") or str(g.get("group_id")) for g in row.get("groups") or [] if isinstance(g, dict)]
            if groups:
                entry["groups"] = groups
            agents[str(row.get("login") or row["id"])] = entry
        return {"instance": self.name, "employees": rows, "agents": agents}

    async def health(self) -> Health:
        checks = {"webhook": f"notifications go to /hooks/{self.name}/<webhook_secret>"}
        ok = True
        try:
            tz = await self.read_account()
            checks["credentials"] = "accepted (" + ("API key" if self.config.api_key else "login session") + ")"
            checks["timezone"] = f"account time zone {tz.key}"
        except CtidError as exc:
            return Health(ok=False, detail=f"CoMagic Data API unusable: {exc}",
                          checks={**checks, "credentials": str(exc), "timezone": "not read"})
        try:
            employees = await reports.employees(self.client)
            checks["employees"] = f"{len(employees)} employees readable"
        except CtidError as exc:
            ok = False
            checks["employees"] = str(exc)
        for api, limits in self.client.limits.items():
            if limits.minute_remaining is not None or limits.day_remaining is not None:
                checks[f"points_{api}"] = (f"{limits.minute_remaining}/{limits.minute_limit} this minute, "
                                           f"{limits.day_remaining}/{limits.day_limit} today")
                if limits.day_remaining == 0:
                    ok = False
        return Health(ok=ok, detail="ok" if ok else "CoMagic: " + "; ".join(
            v for k, v in checks.items() if k in ("employees", "points_data", "points_call")), checks=checks)

    # -- simulation ------------------------------------------------------------------------------
    def simulate(self, scenario: str, context: SimulationContext) -> list[SimulatedRequest]:
        """Notifications in the account's local time (read from get.account when not known yet)."""
        return _simulate.simulate(self.name, scenario, context, path_secret=self._path_secret.decode(),
                                  body_secret=self._body_secret.decode(), tz=self._simulation_zone(),
                                  media=self.config.endpoint("media"))

    def _simulation_zone(self) -> ZoneInfo | None:
        if self.tz is not None:
            return self.tz
        try:
            trio.lowlevel.current_task()
            return None  # inside a running Trio loop (a test): the caller reads the account first
        except RuntimeError:
            pass

        async def read() -> ZoneInfo:
            client = RpcClient(self.config, transport=self._transport)
            try:
                return ZoneInfo(str((await client.account()).get("timezone")))
            finally:
                await client.aclose()

        try:  # `ctid simulate-call` is a plain process: one blocking read
            self.tz = trio.run(read)
        except (CtidError, ZoneInfoNotFoundError, ValueError) as exc:
            log.warning("%s: account time zone not read (%s); simulated times are UTC", self.name, exc)
        return self.tz


def _replace(event: CallEvent, **changes: Any) -> CallEvent:
    import dataclasses

    return dataclasses.replace(event, **changes)
