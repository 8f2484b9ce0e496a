"""The ``generic`` connector: ctid's own signed JSON webhook, for any PBX that can send HTTP.

Wire format (documented for PBX integrators in ``docs/generic-webhook.md``)::

    POST /hooks/<instance>
    Content-Type: application/json
    X-Ctid-Signature: sha256=<hex HMAC-SHA256 of the raw body with the instance's secret>

    {"event": "ring", "call_id": "1700000000.42", "timestamp": "2026-11-25T10:00:00Z",
     "direction": "inbound", "from": "+79161234567", "to": "+74951234567",
     "agent": "101", "group": "sales"}

The body is one event object, a list of them, or ``{"events": [...]}``. Commands (dial, hold,
unhold, transfer, hangup) are POSTed, signed the same way, to the optional ``command_url``; without
it the connector declares no command capabilities.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ctid import hookimpl
from ctid import secret as secret_helpers
from ctid.builtins.generic_recordings import RecordingLinks, allowed_host, fetch, fetchable
from ctid.connector import (
    Connector,
    ConnectorConfig,
    Health,
    SimulatedRequest,
    SimulationContext,
    WebhookRequest,
    WebhookResult,
)
from ctid.errors import AuthError, PBXError, RequestError
from ctid.facts import clean_facts
from ctid.limits import ascii_digits, loads
from ctid.model import Call, CallEvent, Capability, Direction, EventKind, Outcome
from ctid.secret import SecretValue

#: The plugin contract this plugin is written for (ctid.CONTRACT_VERSION, checked at load).
CTID_CONTRACT = "2.0"

SCENARIOS = ("answered", "missed", "group", "transfer", "hold", "outbound_no_answer")
_COMMANDS = frozenset({Capability.DIAL, Capability.HOLD, Capability.TRANSFER, Capability.HANGUP})


class GenericConfig(ConnectorConfig):
    plugin: Literal["generic"] = "generic"
    secret: SecretValue = Field(description="Shared secret for the HMAC-SHA256 signature of webhooks.")
    signature_header: str = Field(default="X-Ctid-Signature")
    command_url: str | None = Field(default=None, description="Where ctid POSTs signed commands.")
    command_timeout: float = Field(default=5, gt=0)
    max_events: int = Field(default=500, ge=1, description="Most events accepted in one request.")
    recording_timeout: float = Field(default=30, gt=0, description="Seconds to fetch a recording from its recording_url.")
    max_recording_bytes: int = Field(default=200_000_000, ge=1024, description="Largest recording fetched.")
    recording_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts ctid may fetch recordings from (recording_url and each redirect), e.g. "
                    "[pbx.example.com, 10.0.0.5]; empty: any host the PBX names.")

    @field_validator("recording_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        hosts = []
        for host in value:
            host = host.strip().lower()
            if not host or any(c in host for c in "/@ \t?#") or host.count(":") > 1 and not host.startswith("["):
                raise ValueError(f"{host!r} is not a host name or address (no scheme, path or port)")
            hosts.append(host.strip("[]"))
        return hosts


class GenericEvent(BaseModel):
    """One event of the generic webhook."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    event: Literal["ring", "answer", "hold", "unhold", "transfer", "leg_end", "end", "facts"]
    call_id: str = Field(min_length=1, max_length=150)
    id: str | None = Field(default=None, max_length=150, description="Event id (idempotency key).")
    timestamp: datetime | float | None = None
    direction: Direction | None = None
    from_: str | None = Field(default=None, alias="from", max_length=64)
    to: str | None = Field(default=None, max_length=64)
    agent: str | None = Field(default=None, max_length=100)
    group: str | None = Field(default=None, max_length=100)
    target: str | None = Field(default=None, max_length=100)
    outcome: Outcome | None = None
    recording_url: str | None = Field(default=None, max_length=2000)

    @field_validator("recording_url")
    @classmethod
    def _fetchable(cls, value: str | None) -> str | None:
        if value is not None and not fetchable(value):
            raise ValueError("must be an http:// or https:// URL ctid can fetch the recording from")
        return value
    facts: dict[str, Any] | None = Field(default=None, description="Facts about the call (ctid.facts).")

    @field_validator("timestamp", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # lax pydantic would read true as Unix time 1
            raise ValueError("must be an ISO 8601 time or Unix seconds, not true/false")
        return value

    def at(self, now: datetime) -> datetime | None:
        """The event's time in UTC; ValueError unless between 2000 and a day after ``now``."""
        value = self.timestamp
        if value is None:
            return None
        latest = now + _AHEAD
        if isinstance(value, float | int):
            if not _EARLIEST.timestamp() <= value <= latest.timestamp():  # also refuses nan
                ms = _EARLIEST.timestamp() <= value / 1000 <= latest.timestamp()
                hint = " (milliseconds? send seconds)" if ms else ""
                raise ValueError(f"{value} is {_implausible(now)}{hint}")
            return datetime.fromtimestamp(value, UTC)
        if value.tzinfo is None:
            raise ValueError("timestamp needs a time zone (use Z for UTC)")
        value = value.astimezone(UTC)
        if not _EARLIEST <= value <= latest:
            raise ValueError(f"{value.isoformat()} is {_implausible(now)}")
        return value


_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_AHEAD = timedelta(days=1)


def _implausible(now: datetime) -> str:
    return f"not plausible: before 2000 or more than a day ahead of ctid's clock ({now.isoformat()})"


#: ``sha256=<hex HMAC-SHA256>`` of a body (ctid's one signature helper, :func:`ctid.secret.sign`).
sign = secret_helpers.sign


def _describe_validation(exc: ValidationError, index: int) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    prefix = f"events[{index}]" + (f".{where}" if where else "")
    return f"{prefix}: {err['msg']}"


class GenericConnector(Connector):
    plugin_name = "generic"
    Config = GenericConfig
    scenarios = SCENARIOS
    accepts_webhooks = True
    config: GenericConfig

    def __init__(self, name, config, services):
        super().__init__(name, config, services)
        self._secret = config.secret.get_secret_value()
        self._header = config.signature_header.lower()
        self._http: httpx.AsyncClient | None = None
        self._recordings = RecordingLinks(name, services)

    @property
    def capabilities(self) -> frozenset[Capability]:  # type: ignore[override]
        return (_COMMANDS if self.config.command_url else frozenset()) | {Capability.RECORDINGS}

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- inbound ---------------------------------------------------------------------------------
    async def handle_webhook(self, request: WebhookRequest) -> WebhookResult:
        if request.method != "POST":
            raise RequestError("use POST", error_id="method_not_allowed", status=405)
        given = request.headers.get(self._header, "")
        if not given:
            raise AuthError(f"missing {self.config.signature_header} header", error_id="signature_missing")
        if not secret_helpers.verify_signature(self._secret, request.body, given):
            raise AuthError("signature does not match the body", error_id="bad_signature")
        data = loads(request.body)  # JSON in UTF-8 only (no UTF-16), within ctid's input limits
        if isinstance(data, dict) and "events" in data:
            data = data["events"]
        items = data if isinstance(data, list) else [data]
        if not items:
            raise RequestError("no events in the body", error_id="no_events")
        if len(items) > self.config.max_events:
            raise RequestError(f"more than {self.config.max_events} events", error_id="too_many_events")
        events = [self._event(item, index, request) for index, item in enumerate(items)]
        for event in events:
            if event.recording:
                await self._recordings.remember(event.pbx_call_id, event.recording)
        return WebhookResult(events=events, status=200, body={"accepted": len(events)})

    def _event(self, item: Any, index: int, request: WebhookRequest) -> CallEvent:
        if not isinstance(item, dict):
            raise RequestError(f"events[{index}]: must be an object", error_id="bad_event")
        try:
            parsed = GenericEvent.model_validate(item)
            at = parsed.at(request.received_at)
        except ValidationError as exc:
            raise RequestError(_describe_validation(exc, index), error_id="bad_event") from exc
        except (ValueError, OverflowError, OSError) as exc:
            raise RequestError(f"events[{index}].timestamp: {exc}", error_id="bad_event") from exc
        if parsed.event == "transfer" and not parsed.target:
            raise RequestError(f"events[{index}].target: required for transfer", error_id="bad_event")
        if parsed.recording_url and not allowed_host(httpx.URL(parsed.recording_url).host, self.config.recording_hosts):
            raise RequestError(f"events[{index}].recording_url: host not in this connector's recording_hosts",
                               error_id="bad_event")
        if parsed.id is None and parsed.timestamp is None:
            # the key of an event without id is a hash of it: without a timestamp a second identical
            # event (a second hold) could not be told from a retry of the first and would be dropped
            raise RequestError(
                f"events[{index}]: needs an `id` or a `timestamp` (idempotency)", error_id="bad_event"
            )
        key = parsed.id or hashlib.sha256(
            json.dumps(item, sort_keys=True, separators=(",", ":"), default=str).encode()
        ).hexdigest()[:40]
        try:
            facts = clean_facts(parsed.facts)
        except RequestError as exc:
            raise RequestError(f"events[{index}].{exc}", error_id="bad_event") from exc
        if parsed.event == "facts" and not facts:
            raise RequestError(f"events[{index}].facts: required for a facts event", error_id="bad_event")
        outbound = parsed.direction is Direction.OUTBOUND
        remote, line = (parsed.to, parsed.from_) if outbound else (parsed.from_, parsed.to)
        return CallEvent(
            connector=self.name,
            pbx_call_id=parsed.call_id,
            kind=EventKind(parsed.event),
            key=key,
            at=at,
            received_at=request.received_at,
            direction=parsed.direction,
            remote_number=remote,
            line_number=line,
            agent_login=parsed.agent,
            target_login=parsed.target,
            group=parsed.group,
            outcome=parsed.outcome,
            recording=parsed.recording_url,
            facts=facts,
        )

    # -- commands --------------------------------------------------------------------------------
    async def _command(self, command: str, **fields: Any) -> dict[str, Any]:
        if not self.config.command_url:
            raise PBXError("no command_url configured", error_id="capability_missing", status=409)
        body = json.dumps({"command": command, **fields}, separators=(",", ":")).encode()
        headers = {"content-type": "application/json", self.config.signature_header: sign(self._secret, body)}
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.config.command_timeout)
        try:
            response = await self._http.post(self.config.command_url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise PBXError(f"PBX command endpoint unreachable: {exc}", error_id="pbx_unreachable") from exc
        if response.status_code >= 400:  # one vocabulary for PBX errors (ctid.errors.PBX_STATUS)
            text = response.text[:200].strip()
            status = response.status_code
            if status == 429:
                wait = response.headers.get("retry-after", "")
                raise PBXError(f"the PBX asks to slow down ({command}): HTTP 429 {text}", error_id="pbx_throttled",
                               retry_after=float(wait) if ascii_digits(wait) else None)
            if status >= 500:
                raise PBXError(f"the PBX failed {command}: HTTP {status} {text}", error_id="pbx_failed")
            raise PBXError(f"PBX refused {command}: HTTP {status} {text}", error_id="pbx_refused", retryable=False)
        try:
            return response.json() if response.content else {}
        except ValueError:
            return {}

    async def dial(self, agent_login: str, number: str) -> str | None:
        self.require(Capability.DIAL)
        answer = await self._command("dial", agent=agent_login, number=number)
        call_id = answer.get("call_id")
        return str(call_id) if call_id is not None else None

    async def hold(self, call: Call, agent_login: str) -> None:
        self.require(Capability.HOLD)
        await self._command("hold", call_id=call.pbx_call_id, agent=agent_login)

    async def unhold(self, call: Call, agent_login: str) -> None:
        self.require(Capability.HOLD)
        await self._command("unhold", call_id=call.pbx_call_id, agent=agent_login)

    async def transfer(self, call: Call, agent_login: str, target_login: str) -> None:
        self.require(Capability.TRANSFER)
        await self._command("transfer", call_id=call.pbx_call_id, agent=agent_login, target=target_login)

    async def hangup(self, call: Call, agent_login: str) -> None:
        self.require(Capability.HANGUP)
        await self._command("hangup", call_id=call.pbx_call_id, agent=agent_login)

    async def recording(self, call: Call) -> tuple[bytes, str] | None:
        """The recording at the ``recording_url`` the PBX gave, fetched now (ctid.builtins.generic_recordings)."""
        url = await self._recordings.url(call.pbx_call_id)
        if url is None:
            return None
        async with httpx.AsyncClient(timeout=self.config.recording_timeout, follow_redirects=True, max_redirects=3,
                                     event_hooks={"request": [self._check_recording_host]}) as http:
            return await fetch(http, url, max_bytes=self.config.max_recording_bytes)

    async def _check_recording_host(self, request: httpx.Request) -> None:
        """Every request of a recording fetch, redirects included, goes only to ``recording_hosts``."""
        if not allowed_host(request.url.host, self.config.recording_hosts):
            raise PBXError(f"recording host {request.url.host!r} is not in recording_hosts",
                           error_id="recording_host_refused", status=502)

    async def health(self) -> Health:
        checks = {"webhook": "signed with HMAC-SHA256 (secret configured)"}
        if not self.config.command_url:
            checks["commands"] = "none (no command_url)"
            return Health(ok=True, detail="webhook only", checks=checks)
        try:
            await self._command("ping")
        except PBXError as exc:
            checks["commands"] = str(exc)
            return Health(ok=False, detail=str(exc), checks=checks)
        checks["commands"] = f"{self.config.command_url} answers"
        return Health(ok=True, detail="webhook and commands", checks=checks)

    # -- simulation ------------------------------------------------------------------------------
    def simulate(self, scenario: str, context: SimulationContext) -> list[SimulatedRequest]:
        if scenario not in SCENARIOS:
            raise RequestError(
                f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}", error_id="bad_scenario"
            )
        steps = _SCENARIO_STEPS[scenario](context)
        call_id = f"sim-{context.start.timestamp():.6f}-{scenario}"
        # the call ends at ``start`` (now, by default): no event time lies in the future
        base = context.start - timedelta(seconds=max(offset for offset, _, _ in steps))
        requests = []
        for index, (offset, event, fields) in enumerate(steps):
            body_obj = {
                "event": event,
                "call_id": call_id,
                "id": f"{call_id}-{index}",
                "timestamp": (base + timedelta(seconds=offset)).isoformat().replace("+00:00", "Z"),
                **fields,
            }
            if context.group and "group" not in body_obj:
                body_obj["group"] = context.group
            body = json.dumps(body_obj, separators=(",", ":")).encode()
            headers = {"content-type": "application/json", self.config.signature_header: sign(self._secret, body)}
            requests.append(
                SimulatedRequest("POST", f"/hooks/{self.name}", headers, body, description=f"{event} +{offset}s")
            )
        return requests


def _inbound(ctx: SimulationContext) -> dict[str, Any]:
    fields = {"direction": "inbound", "from": ctx.caller}
    if ctx.line:
        fields["to"] = ctx.line
    return fields


def _answered(ctx):
    return [(0, "ring", {**_inbound(ctx), "agent": ctx.agent}), (7, "answer", {"agent": ctx.agent}),
            (67, "end", {"agent": ctx.agent})]


def _missed(ctx):
    return [(0, "ring", {**_inbound(ctx), "agent": ctx.agent}), (25, "end", {"outcome": "missed"})]


def _group(ctx):
    legs = [ctx.agent, *ctx.others] if ctx.others else [ctx.agent]
    steps = [(0, "ring", {**_inbound(ctx), "agent": login}) for login in legs]
    steps.append((5, "answer", {"agent": ctx.agent}))
    steps += [(5, "leg_end", {"agent": login, "outcome": "missed"}) for login in legs if login != ctx.agent]
    steps.append((95, "end", {"agent": ctx.agent}))
    return steps


def _transfer(ctx):
    if not ctx.others:
        raise RequestError("the transfer scenario needs a second agent (--transfer-to)", error_id="bad_scenario")
    target = ctx.others[0]
    return [(0, "ring", {**_inbound(ctx), "agent": ctx.agent}), (4, "answer", {"agent": ctx.agent}),
            (34, "transfer", {"agent": ctx.agent, "target": target}), (94, "end", {"agent": target})]


def _hold(ctx):
    return [(0, "ring", {**_inbound(ctx), "agent": ctx.agent}), (3, "answer", {"agent": ctx.agent}),
            (23, "hold", {"agent": ctx.agent}), (38, "unhold", {"agent": ctx.agent}),
            (63, "end", {"agent": ctx.agent})]


def _outbound_no_answer(ctx):
    fields = {"direction": "outbound", "to": ctx.caller, "agent": ctx.agent}
    if ctx.line:
        fields["from"] = ctx.line
    return [(0, "ring", fields), (30, "end", {"outcome": "no_answer"})]


_SCENARIO_STEPS = {
    "answered": _answered,
    "missed": _missed,
    "group": _group,
    "transfer": _transfer,
    "hold": _hold,
    "outbound_no_answer": _outbound_no_answer,
}


@hookimpl
def ctid_register_connectors():
    return [GenericConnector]
