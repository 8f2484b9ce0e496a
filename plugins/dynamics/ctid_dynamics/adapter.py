"""The Dynamics CRM adapter: phone lookups, phonecall logging, callback tasks and recording links over the Web API.

Every write is idempotent through a deterministic record id (uuid5 of the ctid id) sent as
``PATCH /set(id)`` with ``If-None-Match: *``: a 412 means the record exists, and the adapter then
only brings it to the wanted state. So the outbox worker may repeat any call after any failure.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import trio

from ctid.connector import Health
from ctid.crm import LOG_CALL, LOOKUP, RECORDINGS, SALES_FACTS, TASKS, ContactMatch, CRMAdapter, CRMFact
from ctid.errors import ConfigError, CRMError
from ctid.model import Agent, Call, Direction, Task
from ctid.phone import normalize, variants

from . import payloads
from .client import DynamicsClient, error_from_response, odata_quote
from .config import DynamicsConfig, EntityConfig

log = logging.getLogger(__name__)

FORMATTED = "@OData.Community.Display.V1.FormattedValue"
#: Follow-up callback tasks per ctid task (a person closing each one while the caller keeps missing).
MAX_FOLLOW_UPS = 20
LOOKUP_TYPE = "@Microsoft.Dynamics.CRM.lookuplogicalname"


class DynamicsAdapter(CRMAdapter):
    """ctid's CRM adapter for Dynamics 365 (online) and Dynamics CRM 2016+ (on-premises)."""

    plugin_name = "dynamics"
    Config = DynamicsConfig
    capabilities = frozenset({LOOKUP, LOG_CALL, TASKS, RECORDINGS, SALES_FACTS})

    def __init__(self, config: DynamicsConfig, services: Any, *, transport: Any = None):
        super().__init__(config, services)
        self.config: DynamicsConfig = config
        self._check_group_managers()
        self.client = DynamicsClient(config, transport=transport)
        self._users: dict[str, str | None] = {}  # crm_user (email / DOMAIN\\user) -> systemuserid
        self._user_agents: dict[str, str] = {}  # systemuserid -> agent id, for resolved names
        self._users_lock = trio.Lock()

    def _check_group_managers(self) -> None:
        """``callback_task.group_managers`` must name configured agents who are Dynamics users (the
        plugin's config model cannot see ``agents:``, so this is checked when the adapter is built)."""
        directory = self.services.directory
        known = sorted(agent.id for agent in directory.agents())
        for group, agent_id in self.config.callback_task.group_managers.items():
            path = f"crm.callback_task.group_managers.{group}"
            agent = directory.get(agent_id)
            if agent is None:
                raise ConfigError(
                    f"unknown agent {agent_id!r}; the agents are {', '.join(known) or '(none)'}", path=path
                )
            if not agent.crm_user:
                raise ConfigError(
                    f"agent {agent_id!r} has no crm_user, so callback tasks cannot be assigned to them in Dynamics",
                    path=path,
                )
            if not any(group in (other.groups or []) for other in directory.agents()):
                log.warning("%s: no agent is in group %r", path, group)

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- helpers ---------------------------------------------------------------------------------
    @property
    def region(self) -> str:
        return self.config.default_region or getattr(self.services, "default_region", None) or "RU"

    @property
    def entity_sets(self) -> dict[str, str]:
        configured = {name: str(entity.entity_set) for name, entity in self.config.entities.items()}
        return {"contact": "contacts", "account": "accounts", "lead": "leads", **configured}

    def record_url(self, entity: str, record_id: str) -> str:
        url = f"{self.config.url}/main.aspx?etn={entity}&id={record_id}&pagetype=entityrecord"
        return url + (f"&appid={self.config.app_id}" if self.config.app_id else "")

    def _agent(self, agent_id: str | None) -> Agent | None:
        return self.services.directory.get(agent_id) if agent_id else None

    def _agent_for_user(self, user_id: str | None) -> str | None:
        if not user_id:
            return None
        directory = self.services.directory
        for candidate in (user_id, user_id.lower(), user_id.upper(), "{" + user_id + "}"):
            agent_id = directory.agent_for_crm_user(candidate)
            if agent_id:
                return agent_id
        return self._user_agents.get(user_id.lower())

    async def _resolve_users(self) -> None:
        """Map the directory's non-GUID ``crm_user`` values (e-mail, UPN, ``DOMAIN\\user``) to
        systemuserids with one query, once; GUIDs need no query."""
        pending = sorted({
            agent.crm_user.strip() for agent in self.services.directory.agents()
            if agent.crm_user and not payloads.is_guid(agent.crm_user) and agent.crm_user.strip() not in self._users
        })
        if not pending:
            return
        async with self._users_lock:
            pending = [name for name in pending if name not in self._users]
            if not pending:
                return
            clauses = [f"{column} eq {odata_quote(name)}" for name in pending
                       for column in ("domainname", "internalemailaddress")]
            data = await self.client.get_json("systemusers", {
                "$select": "systemuserid,domainname,internalemailaddress", "$filter": " or ".join(clauses),
            })
            rows = data.get("value", [])
            for name in pending:
                ids = {str(row["systemuserid"]).lower() for row in rows
                       if name.lower() in (str(row.get("domainname") or "").lower(),
                                           str(row.get("internalemailaddress") or "").lower())}
                if len(ids) != 1:
                    log.warning("crm_user %r matches %d Dynamics users; calls are not bound to it", name, len(ids))
                self._users[name] = ids.pop() if len(ids) == 1 else None
            for agent in self.services.directory.agents():
                user_id = self._users.get((agent.crm_user or "").strip())
                if user_id:
                    self._user_agents[user_id] = agent.id

    async def _user_id(self, agent: Agent | None) -> str | None:
        """The agent's systemuserid: ``crm_user`` itself when it is a GUID, else resolved by
        ``domainname`` / ``internalemailaddress``."""
        if agent is None or not agent.crm_user:
            return None
        crm_user = agent.crm_user.strip()
        if payloads.is_guid(crm_user):
            return crm_user.strip("{}").lower()
        if crm_user not in self._users:
            await self._resolve_users()
        return self._users.get(crm_user)

    # -- lookup ----------------------------------------------------------------------------------
    async def lookup(self, phone: str) -> list[ContactMatch]:
        """Records whose phone columns equal a spelling of ``phone``: the GETs of all entity sets in
        one ``$batch`` (or in parallel with ``batch_lookups: false``)."""
        values = variants(phone, self.region)
        if not values:
            return []
        queries = {name: self._lookup_query(entity, phone, values) for name, entity in self.config.entities.items()}
        found: dict[str, Any] = {}
        errors: list[CRMError] = []

        async def resolve_users() -> None:  # once per process: owners are shown as agent ids
            try:
                await self._resolve_users()
            except CRMError as exc:
                log.warning("cannot map Dynamics users to agents yet: %s", exc)

        async def fetch(names: list[str]) -> None:
            try:
                if len(names) > 1:
                    answers = await self.client.batch_get(
                        [(str(self.config.entities[name].entity_set), queries[name]) for name in names],
                        annotations=True,
                    )
                    found.update(zip(names, answers, strict=True))
                else:
                    entity_set = str(self.config.entities[names[0]].entity_set)
                    found[names[0]] = await self.client.get_json(entity_set, queries[names[0]], annotations=True)
            except CRMError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(resolve_users)
            if self.config.batch_lookups:
                nursery.start_soon(fetch, list(queries))
            else:
                for name in queries:
                    nursery.start_soon(fetch, [name])
        if errors:
            raise errors[0]
        per_entity = [self._matches(name, found[name]) for name in queries]
        if self.config.lookup_mode == "first":
            return next((matches for matches in per_entity if matches), [])
        return [match for matches in per_entity for match in matches]

    def _lookup_query(self, entity: EntityConfig, phone: str, values: list[str]) -> dict[str, str]:
        """``$select``/``$filter``/``$top`` of one entity: ``eq`` on every phone column and spelling."""
        if entity.normalized_field:
            fields, values = [entity.normalized_field], [normalize(phone, self.region) or phone.strip()]
        else:
            fields = entity.phone_fields
        select = [entity.id_field, entity.name_field, "_ownerid_value", *fields]
        if entity.company_field:
            select.append(entity.company_field)
        return {
            "$select": ",".join(dict.fromkeys(select)),  # type: ignore[arg-type]
            "$filter": " or ".join(f"{field} eq {odata_quote(value)}" for field in fields for value in values),
            "$top": str(self.config.max_matches),
        }

    def _matches(self, name: str, data: dict[str, Any]) -> list[ContactMatch]:
        entity = self.config.entities[name]
        fields = [entity.normalized_field] if entity.normalized_field else entity.phone_fields
        matches = []
        for row in data.get("value", []):
            record_id = str(row.get(entity.id_field, "")).lower()
            company = None
            if entity.company_field:
                company = row.get(entity.company_field + FORMATTED) or row.get(entity.company_field)
                if company is not None and payloads.is_guid(str(company)):
                    company = None
            owner_user = row.get("_ownerid_value")
            owner_type = row.get("_ownerid_value" + LOOKUP_TYPE, "systemuser")
            matches.append(ContactMatch(
                id=record_id,
                entity=name,
                name=row.get(entity.name_field) or row.get(entity.name_field + FORMATTED) or "",
                company=company,
                owner=self._agent_for_user(owner_user) if owner_type == "systemuser" else None,
                url=self.record_url(name, record_id),
                phones=[row[field] for field in fields if row.get(field)],
                extra={
                    "owner_crm_id": owner_user,
                    "owner_type": owner_type,
                    "owner_name": row.get("_ownerid_value" + FORMATTED),
                },
            ))
        return matches

    def new_contact_url(self, phone: str) -> str | None:
        extraqs = f"{self.config.new_contact_field}={normalize(phone, self.region) or phone.strip()}"
        url = (f"{self.config.url}/main.aspx?etn={self.config.new_contact_entity}&pagetype=entityrecord"
               f"&extraqs={quote(extraqs, safe='')}")
        return url + (f"&appid={self.config.app_id}" if self.config.app_id else "")

    async def _match_for(self, number: str | None) -> tuple[ContactMatch | None, int]:
        """The one record a number belongs to (None when 0 or N), and how many matched."""
        if not number:
            return None, 0
        matches = await self.lookup(number)
        return (matches[0] if len(matches) == 1 else None), len(matches)

    async def sales_facts(self, phones: Sequence[str], since: datetime, until: datetime) -> list[CRMFact]:
        """Contacts, leads and opportunities of these callers (ctid_dynamics.sales)."""
        from .sales import sales_facts

        return await sales_facts(self, phones, since, until)

    # -- idempotent writes -------------------------------------------------------------------------
    async def _read(self, entity_set: str, record_id: str, columns: list[str]) -> dict[str, Any] | None:
        """The record's ``columns``, or None when it does not exist."""
        response = await self.client.call(
            "GET", f"{entity_set}({record_id})", ok=(200, 404), params={"$select": ",".join(dict.fromkeys(columns))}
        )
        return None if response.status_code == 404 else response.json()

    async def _state(self, entity_set: str, record_id: str) -> tuple[int, int] | None:
        data = await self._read(entity_set, record_id, ["statecode", "statuscode"])
        return None if data is None else (int(data["statecode"]), int(data["statuscode"]))

    async def _set_state(self, entity_set: str, record_id: str, state: tuple[int, int]) -> None:
        """SetState by PATCH of both codes; an already closed record (400) in the wanted state is done."""
        response = await self.client.request(
            "PATCH", f"{entity_set}({record_id})",
            json={"statecode": state[0], "statuscode": state[1]}, headers={"If-Match": "*"},
        )
        if response.status_code in (200, 204):
            return
        if response.status_code == 400 and await self._state(entity_set, record_id) == state:
            return  # a close retried after its answer was lost
        raise error_from_response(response, f"closing {entity_set}({record_id})")

    async def _write_activity(
        self, entity_set: str, record_id: str, body: dict[str, Any], close: tuple[int, int] | None,
        *, update_keys: set[str] | None = None,
    ) -> str:
        """Create the activity (create-only PATCH), or bring an existing one up to date, then close it.

        An existing record is read back (state and the columns ``body`` writes). Closed in the wanted
        state with the wanted columns, it is left alone (the retry case). Otherwise (PBX history
        corrected the times or the outcome) a closed record, read-only in Dynamics, is reopened
        (SetState to Open), its stale columns are written, and it is closed again. Each step
        leaves a state the next attempt recognises, so a lost answer anywhere is repaired by a retry.
        Returns "created", "updated" or "unchanged".
        """
        path = f"{entity_set}({record_id})"
        response = await self.client.request("PATCH", path, json=body, headers={"If-None-Match": "*"})
        if response.status_code in (200, 201, 204):
            outcome = "created"
        elif response.status_code == 412:
            update = body if update_keys is None else {k: v for k, v in body.items() if k in update_keys}
            wanted = payloads.comparable(update)
            current = await self._read(entity_set, record_id, ["statecode", "statuscode", *wanted])
            if current is None:
                raise CRMError(f"{path} answered 412 but cannot be read", error_id="crm_conflict")
            state = (int(current["statecode"]), int(current["statuscode"]))
            if close is None and state[0] != 0:
                return "closed"  # closed in Dynamics (by a person, or by close_callback_task): leave it
            stale = payloads.stale_columns(current, wanted)
            if not stale and (close is None or state == close):
                return "unchanged"
            if state[0] != 0:
                await self._set_state(entity_set, record_id, payloads.open_state(entity_set))
            if stale:
                await self.client.call("PATCH", path, json=update, headers={"If-Match": "*"})
            outcome = "updated"
        else:
            error = error_from_response(response, f"creating {path}")
            if response.status_code == 404:
                # A bound record (contact, user) vanished since the lookup; the retry looks up afresh.
                error.retryable = True
            raise error
        if close is not None:
            await self._set_state(entity_set, record_id, close)
        return outcome

    # -- call logging ----------------------------------------------------------------------------
    async def log_call(self, call: Call, agent: Agent | None) -> str | None:
        """One phonecall per ctid call, closed as made / received / missed; safe to repeat."""
        if call.direction is Direction.INTERNAL and not self.config.phonecall.log_internal:
            return None
        agent = agent or self._agent(call.agent)
        match, count = await self._match_for(call.remote_number)
        agent_user = await self._user_id(agent)
        others = []  # the agents who talked before a transfer
        for other_id in call.agents:
            other = self._agent(other_id)
            if other is not None and (agent is None or other.id != agent.id):
                others.append((other.name, await self._user_id(other)))
        activity_id = payloads.phonecall_id(call.id)
        body = payloads.phonecall_body(
            call, config=self.config, agent_name=agent.name if agent else None, agent_user=agent_user,
            match=match, match_count=count, entity_sets=self.entity_sets, others=others,
        )
        outcome = await self._write_activity(
            "phonecalls", activity_id, body, payloads.phonecall_state(call, self.config)
        )
        log.info("phonecall %s for call %s: %s", activity_id, call.id, outcome)
        return activity_id

    # -- callback tasks --------------------------------------------------------------------------
    async def _task_owner(self, task: Task, owner: Agent | None, match: ContactMatch | None) -> str | None:
        settings = self.config.callback_task
        for rule in settings.owner_rule:
            if rule == "contact_owner" and match is not None:
                if match.extra.get("owner_type", "systemuser") == "systemuser" and match.extra.get("owner_crm_id"):
                    return str(match.extra["owner_crm_id"]).lower()
            elif rule == "agent":
                user = await self._user_id(owner or self._agent(task.owner))
                if user:
                    return user
            elif rule == "group_manager" and task.group in settings.group_managers:
                user = await self._user_id(self._agent(settings.group_managers[task.group]))  # type: ignore[index]
                if user:
                    return user
        return settings.default_owner

    async def create_callback_task(self, task: Task, owner: Agent | None) -> str | None:
        """The open callback task of ``task.number``; a repeat miss updates it instead of adding one.

        If a person closed the task in Dynamics (completed or cancelled it) before the caller missed
        again, that task stays as they left it and a follow-up task is opened for the new miss (due
        ``due_in`` hours after it); a miss from before the close (a late or repeated job) changes
        nothing. Follow-ups have deterministic ids (the n-th of the ctid task), so retries find them.
        """
        match, count = await self._match_for(task.number)
        owner_user = await self._task_owner(task, owner, match)
        missed_at = task.last_missed_at or task.first_missed_at
        previous_closed_at = None
        for follow_up in range(MAX_FOLLOW_UPS + 1):
            record_id = payloads.task_record_id(task.id, follow_up)
            body = payloads.task_body(
                task, config=self.config, match=match, match_count=count,
                entity_sets=self.entity_sets, owner_user=owner_user, previous_closed_at=previous_closed_at,
            )
            # On a repeat miss refresh the text only: a person may have reassigned or rescheduled it.
            outcome = await self._write_activity(
                "tasks", record_id, body, None, update_keys={"subject", "description", "prioritycode"}
            )
            if outcome != "closed":
                log.info("callback task %s for %s: %s", record_id, task.number, outcome)
                return record_id
            closed_at = await self._closed_at("tasks", record_id)
            if missed_at is None or closed_at is None or missed_at <= closed_at:
                log.info("callback task %s for %s was closed in Dynamics after the last miss; left alone",
                         record_id, task.number)
                return record_id
            previous_closed_at = closed_at
        raise CRMError(
            f"callback task of {task.number} was closed in Dynamics {MAX_FOLLOW_UPS} times; no further follow-up",
            error_id="crm_conflict",
        )

    async def _closed_at(self, entity_set: str, record_id: str) -> datetime | None:
        """When a closed record was last modified (its close, as closed activities are read-only)."""
        data = await self._read(entity_set, record_id, ["modifiedon"])
        value = (data or {}).get("modifiedon")
        return datetime.fromisoformat(value) if value else None

    async def close_callback_task(self, task: Task) -> None:
        """Complete the task and its open follow-ups. If Dynamics never got it (its create job was
        parked, or the jobs came out of order) it is created first, so the CRM still shows the
        callback and a late create finds it completed instead of opening it."""
        for follow_up in range(MAX_FOLLOW_UPS + 1):
            record_id = payloads.task_record_id(task.id, follow_up)
            current = await self._state("tasks", record_id)
            if current is None:
                if follow_up:
                    return
                await self.create_callback_task(task, None)
            elif current[0] != 0:
                continue  # completed or cancelled already (by us earlier, or by a person)
            await self._set_state("tasks", record_id, payloads.TASK_COMPLETED)

    # -- recordings ------------------------------------------------------------------------------
    async def attach_recording(self, call: Call, url: str) -> None:
        activity_id = payloads.phonecall_id(call.id)
        if self.config.recording.mode == "note":
            path = f"annotations({payloads.note_id(call.id)})"
            response = await self.client.request(
                "PATCH", path, json=payloads.note_body(call, url, activity_id), headers={"If-None-Match": "*"}
            )
            if response.status_code in (200, 201, 204, 412):
                return
            if response.status_code == 404:
                raise CRMError(
                    f"phonecall {activity_id} of call {call.id} is not in Dynamics yet; recording not attached",
                    error_id="crm_not_ready", retryable=True,
                )
            raise error_from_response(response, f"attaching the recording of call {call.id}")
        await self._set_url_field(call, activity_id, url)

    async def _set_url_field(self, call: Call, activity_id: str, url: str) -> None:
        field = self.config.recording.url_field
        path = f"phonecalls({activity_id})"
        response = await self.client.call("GET", path, ok=(200, 404), params={"$select": f"statecode,statuscode,{field}"})
        if response.status_code == 404:
            raise CRMError(
                f"phonecall {activity_id} of call {call.id} is not in Dynamics yet; recording not attached",
                error_id="crm_not_ready", retryable=True,
            )
        data = response.json()
        if data.get(field) == url:
            return
        state = (int(data["statecode"]), int(data["statuscode"]))
        if state[0] != 0:  # closed activities are read-only: reopen, write, close again
            await self._set_state("phonecalls", activity_id, payloads.open_state("phonecalls"))
        await self.client.call("PATCH", path, json={field: url}, headers={"If-Match": "*"})
        if state[0] != 0:
            await self._set_state("phonecalls", activity_id, state)

    # -- health ----------------------------------------------------------------------------------
    async def health(self) -> Health:
        checks: dict[str, str] = {}
        failure: str | None = None
        if self.client.tokens is not None:
            try:
                await self.client.tokens.token()
                checks["token"] = "ok"
            except CRMError as exc:
                checks["token"] = str(exc)
                return Health(ok=False, detail=str(exc), checks=checks)
        try:
            who = await self.client.get_json("WhoAmI")
            checks["whoami"] = f"ok: user {who.get('UserId')}"
        except CRMError as exc:
            detail = str(exc)
            if getattr(exc, "upstream_status", None) == 404:
                detail += (f" (is {self.config.url} the organization URL, and does it serve Web API"
                           f" v{self.config.api_version}?)")
            checks["whoami"] = detail
            return Health(ok=False, detail=detail, checks=checks)
        # The searched tables, and the ones ctid writes (reading them proves the role reaches them).
        tables = [(name, str(entity.entity_set), str(entity.id_field)) for name, entity in self.config.entities.items()]
        tables += [("phonecall", "phonecalls", "activityid"), ("task", "tasks", "activityid")]
        if self.config.recording.mode == "note":
            tables.append(("annotation", "annotations", "annotationid"))
        for name, entity_set, key in tables:
            try:
                await self.client.get_json(entity_set, {"$select": key, "$top": "1"})
                checks[name] = "ok"
            except CRMError as exc:
                checks[name] = str(exc)
                failure = failure or f"{name}: {exc}"
        if failure:
            return Health(ok=False, detail=failure, checks=checks)
        return Health(ok=True, detail=f"{self.config.api_url} answers as user {who.get('UserId')}", checks=checks)
