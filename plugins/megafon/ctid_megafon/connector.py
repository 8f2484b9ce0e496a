"""The MegaFon virtual PBX connector: CRM-API webhooks in, REST v1 / legacy commands out.

Inbound, the PBX posts ``cmd=event|history|contact|rating`` to ``/hooks/<instance>`` with the
``crm_token`` in the body (reference §3). ``event`` pushes become leg events (ring, answer,
transfer, leg end), ``history`` the authoritative ``summary``, ``contact`` is answered at once with
the CRM's name for the caller and the owner's PBX login. Outbound, ctid can click-to-call, switch
DND, pull history for reconciliation, download recordings and import the PBX's users and groups.
Hold, transfer and hangup are not offered by this API, so they are not declared.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import trio

from ctid.connector import (
    Connector,
    Health,
    SimulatedRequest,
    SimulationContext,
    WebhookRequest,
    WebhookResult,
)
from ctid.errors import CtidError, PBXError, RequestError
from ctid.model import Call, CallEvent, Capability, Direction, EventKind, call_id_for, utcnow
from ctid.netallow import address_allowed
from ctid.phone import normalize
from ctid.secret import secrets_equal
from ctid_megafon import simulate as _simulate
from ctid_megafon.client import MegafonClient, PbxGroup, PbxUserInfo
from ctid_megafon.config import MegafonConfig
from ctid_megafon.events import (
    COMMANDS,
    REQUIRED,
    Fields,
    InvalidParameters,
    Summary,
    dial_digits,
    event_from_push,
    parse_body,
    summary_from_push,
)
from ctid_megafon.legs import LegTracker
from ctid_megafon.recordings import RecordingStore
from ctid_megafon.transfers import Transfers, joined, remember

log = logging.getLogger(__name__)

MAX_DOWNLOADS = 2  # recordings downloaded at the same time (the tenant's host is not ours to flood)


def _answer(status: int, error: str, message: str) -> WebhookResult:
    """The PBX's documented error answers (``{"error": "Invalid token"}`` ...) plus our detail."""
    return WebhookResult(status=status, body={"error": error, "message": message})


@dataclass(slots=True)
class DirectoryImport:
    """The PBX's users and groups, and the ``agents`` config they suggest."""

    instance: str
    users: list[PbxUserInfo]
    groups: list[PbxGroup]

    def suggested_agents(self) -> dict[str, dict[str, Any]]:
        member_of: dict[str, list[str]] = {}
        for group in self.groups:
            for login in group.users:
                member_of.setdefault(login, []).append(group.name or group.id)
        agents = {}
        for user in self.users:
            entry: dict[str, Any] = {"name": user.name or user.login, "pbx": {self.instance: user.login}}
            if user.ext:
                entry["extension"] = user.ext
            if member_of.get(user.login):
                entry["groups"] = member_of[user.login]
            agents[user.login] = entry
        return agents

    def to_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "users": [u.to_json() for u in self.users],
            "groups": [g.to_json() for g in self.groups],
            "agents": self.suggested_agents(),
        }


class MegafonConnector(Connector):
    plugin_name = "megafon"
    Config = MegafonConfig
    capabilities = frozenset({Capability.DIAL, Capability.DND, Capability.RECORDINGS, Capability.HISTORY})
    scenarios = _simulate.SCENARIOS
    accepts_webhooks = True
    config: MegafonConfig

    def __init__(self, name, config, services, *, transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(name, config, services)
        self._token = config.crm_token.get_secret_value().encode()
        self._networks = list(config.allowed_networks)
        self._transport = transport
        self._client: MegafonClient | None = None
        self.legs = LegTracker(name, config.settle_seconds, queue_timeout=config.queue_timeout)
        self.recordings = RecordingStore(name, config, services)
        self.transfers = Transfers(self.legs, config.transfer_race_seconds)
        self._jobs_in, self._jobs_out = trio.open_memory_channel[tuple[float, str, str]](10_000)
        self._downloads = trio.CapacityLimiter(MAX_DOWNLOADS)
        self._downloading: set[str] = set()  # pbx call ids with a download job running
        self._wake = trio.Event()
        self._sleeping_until = float("inf")  # the deadline the settle loop sleeps until

    @property
    def client(self) -> MegafonClient:
        if self._client is None:
            self._client = MegafonClient(self.config, transport=self._transport)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        for channel in (self._jobs_in, self._jobs_out):
            channel.close()

    # -- background work -------------------------------------------------------------------------
    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """The settle window and delayed recording downloads (resuming planned ones), until cancelled."""
        try:  # downloads planned before a restart (read before any new push can plan one)
            planned = await self.recordings.planned()
        except CtidError as exc:
            log.warning("%s: planned recording downloads not resumed: %s", self.name, exc)
            planned = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._settle_loop)
            nursery.start_soon(self._recording_loop, planned)
            task_status.started()

    def _next_deadline(self) -> float:
        deadlines = [d for d in (self.legs.next_deadline(), self.transfers.next_deadline()) if d is not None]
        return min(deadlines, default=float("inf"))

    def _poke(self) -> None:
        """Wake the settle loop if a push brought a deadline before the one it sleeps until.

        Waking it on every push only to find that nothing is due cost a task switch per push.
        """
        if self._next_deadline() < self._sleeping_until:
            self._wake.set()

    async def _settle_loop(self) -> None:
        while True:
            self._sleeping_until = self._next_deadline()
            with trio.move_on_at(self._sleeping_until):
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            events = self._released(now) + self.legs.due(now)
            if events and self.services.events is not None:
                try:
                    await self.services.events.submit(events)
                except CtidError as exc:
                    log.warning("%s: could not submit settled call ends: %s", self.name, exc)

    async def _recording_loop(self, planned: list[tuple[str, str, datetime]]) -> None:
        async with trio.open_nursery() as nursery:
            now = utcnow()
            for pbx_call_id, call_id, due_at in planned:
                delay = max((due_at - now).total_seconds(), 0.0)
                self._start_download(nursery, trio.current_time() + delay, pbx_call_id, call_id)
            async for due, pbx_call_id, call_id in self._jobs_out:
                self._start_download(nursery, due, pbx_call_id, call_id)

    def _start_download(self, nursery: trio.Nursery, due: float, pbx_call_id: str, call_id: str) -> None:
        if pbx_call_id not in self._downloading:
            self._downloading.add(pbx_call_id)
            nursery.start_soon(self._fetch_later, due, pbx_call_id, call_id)

    async def _fetch_later(self, due: float, pbx_call_id: str, call_id: str) -> None:
        try:
            await trio.sleep_until(due)
            try:
                await self.recordings.fetch(self.client, pbx_call_id, call_id, limiter=self._downloads)
            except (CtidError, OSError) as exc:  # a full disk must not stop the connector
                log.warning("%s: recording of call %s not downloaded: %s", self.name, call_id, exc)
            try:  # done, or given up (an on-demand fetch may still find it later)
                await self.recordings.unplan(pbx_call_id)
            except CtidError as exc:
                log.warning("%s: planned download of %s not cleared: %s", self.name, call_id, exc)
        finally:
            self._downloading.discard(pbx_call_id)

    # -- inbound ---------------------------------------------------------------------------------
    async def handle_webhook(self, request: WebhookRequest) -> WebhookResult:
        if request.method.upper() not in ("POST", "GET"):
            result = _answer(405, "Method not allowed", "the CRM URL accepts POST (and GET)")
            result.headers["allow"] = "POST, GET"
            return result
        if not address_allowed(request.remote_addr, self._networks):
            return _answer(403, "Forbidden", f"source address {request.remote_addr} is not allowed")
        try:
            fields = parse_body(request.method, request.content_type, request.body, request.query)
        except InvalidParameters as exc:
            return _answer(400, "Invalid parameters", str(exc))
        if not secrets_equal(fields.get("crm_token"), self.config.crm_token):
            return _answer(401, "Invalid token", "crm_token is missing or does not match")
        cmd = (fields.get("cmd") or "").lower()
        if cmd not in COMMANDS:
            return _answer(400, "Invalid parameters", f"cmd: expected one of {', '.join(COMMANDS)}")
        try:
            if cmd == "contact":
                return await self._contact(fields, request)
            if cmd == "event":
                events = self._event(fields, request)
                if (fields.get("type") or "").upper() == "TRANSFERRED":
                    await self._keep_alias(fields.get("second_callid"))  # type: ignore[arg-type]
            elif cmd == "history":
                events = await self._history_push(fields, request)
            else:
                await self._rating(fields)
                events = []
        except InvalidParameters as exc:
            return _answer(400, "Invalid parameters", f"cmd={cmd}: {exc}")
        return WebhookResult(events=events, status=200, body={})

    def _primary(self, callid: str) -> str:
        return self.transfers.primary(callid)

    def _plugin_storage(self):
        try:
            return self.services.storage("megafon")
        except RuntimeError:
            return None

    async def _primary_stored(self, callid: str) -> str:
        """Like :meth:`_primary`, also asking plugin storage (aliases outlive the process)."""
        aliases = self.transfers.aliases
        if callid in aliases:
            return aliases[callid]
        storage = self._plugin_storage()
        record = await storage.get("alias", f"{self.name}:{callid}") if storage is not None else None
        if record and record.get("primary"):
            remember(aliases, callid, record["primary"])
            return record["primary"]
        return callid

    async def _keep_alias(self, second_callid: str) -> None:
        """Persist a TRANSFERRED leg id, so its later history (even a pulled one) joins the call."""
        storage = self._plugin_storage()
        primary = self.transfers.aliases.get(second_callid)
        if storage is not None and primary:
            await storage.put("alias", f"{self.name}:{second_callid}", {"primary": primary})

    def _event(self, fields: Fields, request: WebhookRequest) -> list[CallEvent]:
        event = event_from_push(self.name, fields, request.received_at, self.services.default_region)
        now = trio.current_time()
        out = self._released(now)  # held legs whose window passed go out with the next push too
        if event.kind is EventKind.TRANSFER:
            # TRANSFERRED names who transferred and the new leg's id, not the target: it waits for
            # the next agent of this call (the second leg's events, perhaps already held here).
            transfer = joined(event, self._primary(event.pbx_call_id))
            early: list[CallEvent] = []
            for held in self.transfers.transferred(transfer):
                early += self._emit(held, now)
            out += self.transfers.released(transfer.leg_id, early)
        elif not self.transfers.hold(event, now):
            out += self._emit(event, now)
        self._poke()
        return out

    def _emit(self, event: CallEvent, now: float) -> list[CallEvent]:
        """A leg event into its primary call, preceded by the pending TRANSFER it is the target of."""
        event = self.legs.observe(joined(event, self._primary(event.pbx_call_id)), now)
        transfer = self.transfers.target(event)  # placed before the (possibly re-timed) event
        return [event] if transfer is None else [self.legs.observe(transfer, now), event]

    def _released(self, now: float) -> list[CallEvent]:
        """Held early legs that no TRANSFERRED claimed within the window: calls of their own."""
        out: list[CallEvent] = []
        for event in self.transfers.expired(now):
            out += self._emit(event, now)
        return out

    async def _summary_events(self, summary: Summary, received_at: datetime) -> list[CallEvent]:
        """A history record as events; records the recording link and plans its download."""
        event = summary.to_event(self.name, received_at)
        primary = await self._primary_stored(summary.callid)
        if primary != summary.callid:
            # The transferred leg's own history: a leg of the primary call, not its summary.
            event = dataclasses.replace(
                event,
                pbx_call_id=primary,
                kind=EventKind.LEG_END,
                at=None,  # ordered by receipt among the live events; its start stays in extra
                leg_id=summary.callid,
                key=f"leg-{event.key}",
                extra={**event.extra, "leg_callid": summary.callid},
            )
        call_id = call_id_for(self.name, event.pbx_call_id)
        if summary.link:
            if primary == summary.callid:
                if await self.recordings.link(summary.callid) != summary.link:  # new: keep it, fetch it
                    await self.recordings.remember(summary.callid, call_id, summary.link)
                    await self._plan_download(summary.callid, call_id)
                event = dataclasses.replace(event, recording=self.services.recording_url(call_id))
            else:
                event = dataclasses.replace(event, recording=None)
        event = self.legs.observe(event, trio.current_time())
        return [event]

    async def _plan_download(self, pbx_call_id: str, call_id: str) -> None:
        """Download after ``recording_delay``; kept in plugin storage, so a restart resumes it."""
        delay = self.config.recording_delay
        await self.recordings.plan(pbx_call_id, call_id, utcnow() + timedelta(seconds=delay))
        due = trio.current_time() + delay
        try:
            self._jobs_in.send_nowait((due, pbx_call_id, call_id))
        except (trio.WouldBlock, trio.ClosedResourceError):
            log.info("%s: recording of %s will be fetched on demand", self.name, call_id)

    async def _history_push(self, fields: Fields, request: WebhookRequest) -> list[CallEvent]:
        summary = summary_from_push(fields, self.services.default_region)
        return await self._summary_events(summary, request.received_at)

    async def _rating(self, fields: Fields) -> None:
        fields.require(*REQUIRED["rating"])
        fields.check()
        try:
            rating = float(fields.get("rating"))  # type: ignore[arg-type]
        except ValueError as exc:
            raise InvalidParameters(f"rating: {fields.get('rating')!r} is not a number") from exc
        if not 0 <= rating <= 100:  # also refuses nan and inf
            raise InvalidParameters(f"rating: {fields.get('rating')!r} is out of range")
        callid = self._primary(fields.get("callid"))  # type: ignore[arg-type]
        storage = self._plugin_storage()
        if storage is None:
            log.info("%s: rating %s for call %s not kept (no plugin storage)", self.name, rating, callid)
            return
        await storage.put("rating", f"{self.name}:{callid}", {
            "call_id": call_id_for(self.name, callid), "rating": rating, "user": fields.get("user"),
            "phone": fields.get("phone"),
        })

    async def _contact(self, fields: Fields, request: WebhookRequest) -> WebhookResult:
        """Answer ``contact`` within the budget: ``{"contact_name", "responsible"}`` or ``{}``."""
        fields.require(*REQUIRED["contact"])
        fields.check()
        callid = fields.get("callid")
        phone = normalize(fields.get("phone"), self.services.default_region)
        ring = CallEvent(
            connector=self.name,
            pbx_call_id=callid,  # type: ignore[arg-type]
            kind=EventKind.RING,
            key=f"contact:{callid}",
            received_at=request.received_at,
            direction=Direction.INBOUND,  # the PBX asks only for incoming calls
            remote_number=phone,
            line_number=normalize(fields.get("diversion"), self.services.default_region),
            extra={"state": "CONTACT"},
        )
        now = trio.current_time()
        events = self._released(now)
        if not self.transfers.hold(ring, now):  # a transfer's second leg may be announced too
            events += self._emit(ring, now)
        self._poke()
        return WebhookResult(events=events, status=200, body=await self._lookup_answer(phone))

    async def _lookup_answer(self, phone: str | None) -> dict[str, Any]:
        contacts = self.services.contacts
        if contacts is None or not phone:
            return {}
        matches = None
        with trio.move_on_after(self.config.contact_budget):
            try:
                matches = await contacts.lookup(phone, budget=self.config.contact_budget)
            except CtidError as exc:
                log.warning("%s: contact lookup failed: %s", self.name, exc)
        if not matches:
            return {}
        # Several records share the number: naming one of them could name the wrong person, so the
        # PBX shows the bare number. Routing to the owner is still right when every record has the
        # same one (whichever record the caller is, that person is responsible).
        answer: dict[str, Any] = {"contact_name": matches[0].name} if len(matches) == 1 else {}
        owners = {m.owner for m in matches}
        if len(owners) == 1 and None not in owners:
            login = self._login_for_owner(owners.pop())  # type: ignore[arg-type]
            if login:
                answer["responsible"] = login
        return answer

    def _login_for_owner(self, owner: str) -> str | None:
        directory = self.services.directory
        agent_id = owner if directory.get(owner) is not None else directory.agent_for_crm_user(owner)
        return directory.login_for_agent(self.name, agent_id) if agent_id else None

    # -- reconciliation --------------------------------------------------------------------------
    async def history(self, since: datetime) -> list[CallEvent]:
        """``summary`` events for calls that started since ``since`` (REST JSON or legacy CSV)."""
        now = utcnow()
        since = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
        summaries = await self.client.history(since, now, region=self.services.default_region)
        events: list[CallEvent] = []
        for summary in summaries:
            events.extend(await self._summary_events(summary, now))
        return events

    # -- commands --------------------------------------------------------------------------------
    async def dial(self, agent_login: str, number: str) -> str | None:
        self.require(Capability.DIAL)
        try:
            e164 = normalize(number, self.services.default_region)
            digits = dial_digits(e164 or number)
        except InvalidParameters as exc:
            raise RequestError(f"cannot dial {number!r}: {exc}", error_id="bad_number") from exc
        return await self.client.make_call(agent_login, digits)

    async def set_dnd(self, agent_login: str, enabled: bool) -> None:
        self.require(Capability.DND)
        await self.client.set_dnd(agent_login, enabled)

    async def recording(self, call: Call) -> tuple[bytes, str] | None:
        """The stored recording, else one download attempt (the background job keeps retrying)."""
        self.require(Capability.RECORDINGS)
        return await self.recordings.fetch(self.client, call.pbx_call_id, call.id, attempts=1)

    async def import_users(self) -> DirectoryImport:
        """The PBX's users and groups (for ``ctid check`` and importing agents into the config)."""
        return DirectoryImport(self.name, await self.client.users(), await self.client.groups())

    async def health(self) -> Health:
        checks = {"webhook": "crm_token configured; POST the PBX pushes to /hooks/" + self.name}
        if self._networks:
            checks["webhook"] += f" from {', '.join(str(n) for n in self._networks)}"
        ok = True
        try:
            users = await self.client.users()
            checks["api"] = f"API key accepted ({self.config.api_generation}); {len(users)} users readable"
            checks["agents"] = self._mapping_report(users)
        except PBXError as exc:
            ok = False
            checks["api"] = str(exc)
        if ok:
            try:
                now = utcnow()
                await self.client.history(now - timedelta(hours=1), now)
                checks["history"] = "history pull works (reconciliation on)"
            except PBXError as exc:
                if exc.code == "501":
                    checks["history"] = "history export is disabled on this tenant (501): no reconciliation"
                else:
                    ok = False
                    checks["history"] = str(exc)
        detail = "ok" if ok else "MegaFon API unusable: " + checks.get("api", "")
        if ok and "disabled" in checks.get("history", ""):
            detail = "ok (history export disabled by the tenant)"
        return Health(ok=ok, detail=detail, checks=checks)

    def _mapping_report(self, users: list[PbxUserInfo]) -> str:
        """How configured agents and PBX users match (a hint, never a failure)."""
        directory = self.services.directory
        known = {u.login.casefold() for u in users} | {u.ext.casefold() for u in users if u.ext}
        mapped, missing = 0, []
        for agent in directory.agents():
            login = directory.login_for_agent(self.name, agent.id)
            if login is None:
                continue
            if login.casefold() in known:
                mapped += 1
            else:
                missing.append(f"{agent.id} ({login})")
        strangers = [u.login for u in users if directory.agent_for_login(self.name, u.login) is None
                     and not (u.ext and directory.agent_for_login(self.name, u.ext))]
        text = f"{mapped} agents mapped"
        if missing:
            text += f"; not on the PBX: {', '.join(missing)}"
        if strangers:
            text += f"; PBX users without an agent: {', '.join(strangers[:20])}"
            text += " (python -m ctid_megafon import-users prints agent entries)"
        return text

    # -- simulation ------------------------------------------------------------------------------
    def simulate(self, scenario: str, context: SimulationContext) -> list[SimulatedRequest]:
        return _simulate.simulate(
            self.name, scenario, context, crm_token=self._token.decode(), recording_base=self.config.api_url
        )
