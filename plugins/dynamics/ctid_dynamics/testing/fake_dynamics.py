"""A local fake of the Dynamics 365 Web API plus an Entra ID token endpoint, for tests (quart-trio, ASGI).

It checks requests the way Dynamics does: OData headers, bearer tokens, case-sensitive entity set
names, ``@odata.bind`` syntax and targets, activity party masks, state/status pairs, column types
(Boolean, DateTimeOffset, Int32, String) and MaxLength (``0x80044331``), read-only closed activities, ``If-None-Match``/``If-Match`` semantics, leading-wildcard filters, and answers
with OData error bodies. Tests can make it throttle (429 + Retry-After), fail (5xx), lose answers or
go down (503 on everything): the fault script of ctid's fake-server scaffolding
(:class:`ctid.testing.fakes.FaultScript`) with Dynamics' error bodies. Records live in memory;
every request is recorded for assertions.

Serve it with :func:`serve_fake` (:func:`ctid.testing.fakes.serve` on a free port, TLS from a
throw-away CA, since msal accepts only https authorities).
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import trio
from quart import Response, request
from quart_trio import QuartTrio

from ctid.testing.fakes import Fault, FaultScript, serve, tls_files

from .fake_identity import IdentityMixin
from .fake_schema import (
    BAD_PAYLOAD,
    BAD_QUERY,
    CLOSED_ACTIVITY,
    INVALID_STATE,
    OBJECT_DOES_NOT_EXIST,
    RESOURCE_NOT_FOUND,
    THROTTLED_REQUESTS,
    UNEXPECTED,
    Entity,
    FilterParser,
    ODataError,
    build_entities,
    matches,
)

FORMATTED = "@OData.Community.Display.V1.FormattedValue"
LOOKUP_TYPE = "@Microsoft.Dynamics.CRM.lookuplogicalname"
PARTY_TARGETS = {"contact": "contacts", "account": "accounts", "lead": "leads", "systemuser": "systemusers"}


@dataclass
class Seen:
    """One request the fake received under /api/data."""

    method: str
    path: str  # relative to /api/data/v<version>/
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None
    status: int = 0
    batch: bool = False  # a part of a $batch request (not an HTTP request of its own)


@dataclass
class FakeDynamics(IdentityMixin, FaultScript):
    """The fake organization. ``url`` is set by :func:`serve_fake`."""

    tenant: str = "contoso-tenant"
    client_id: str = "ctid-app"
    client_secret: str = "s3cret"
    api_version: str = "9.2"
    adfs_users: dict[str, str] = field(default_factory=lambda: {"EXAMPLE\\svc-ctid": "service-pw"})
    #: Windows accounts accepted with NTLM (on-prem without IFD), "DOMAIN\\user" -> password.
    ntlm_users: dict[str, str] = field(default_factory=lambda: {"EXAMPLE\\svc-ctid": "service-pw"})
    extra_columns: dict[str, set[str]] = field(default_factory=dict)
    url: str = ""
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    token_requests: int = 0
    http_requests: int = 0  # HTTP requests to the Web API: the round trips ($batch counts once)
    down: bool = False
    #: The organization's clock, for ``createdon`` / ``modifiedon``; tests may replace it.
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self.entities: dict[str, Entity] = build_entities(self.extra_columns)
        self.records = {entity_set: {} for entity_set in self.entities}
        self.tokens: set[str] = set()
        self.certificates: dict[str, Any] = {}
        self._ntlm: dict[Any, Any] = {}  # connection -> NTLM acceptor mid-handshake
        self._ntlm_ok: set[Any] = set()  # connections that completed NTLM (IIS authenticates the connection)
        self.ntlm_handshakes = 0
        self.lost: list[Any] = []  # answers lost_answers() swallowed
        self.app_user = self.add_user("ctid application user", domainname="ctid-app@contoso.example")
        self.app = self._build_app()

    # -- controls --------------------------------------------------------------------------------
    def fault_body(self, fault: Fault) -> Any:
        """Dynamics' OData error of a scripted answer (throttle, fail, lose_answers)."""
        if fault.status == 429:
            return {"error": {"code": THROTTLED_REQUESTS, "message": "Number of requests exceeded the limit of "
                                                                      "6000 over time window of 300 seconds."}}
        return {"error": {"code": UNEXPECTED, "message": "An unexpected error occurred."}}

    def revoke_tokens(self) -> None:
        """Make every issued token invalid (as if it expired)."""
        self.tokens.clear()

    def stamp(self) -> str:
        """Now on the organization's clock, as Dynamics writes ``modifiedon``."""
        return self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # -- seeding and reading ---------------------------------------------------------------------
    def _add(self, entity_set: str, values: dict[str, Any]) -> str:
        entity = self.entities[entity_set]
        record_id = str(uuid.uuid4())
        record = {entity.key: record_id, "_ownerid_value": self.app_user if "ownerid" in entity.navigation else None,
                  "createdon": self.stamp(), "modifiedon": self.stamp()}
        record.update(values)
        self.records[entity_set][record_id] = record
        return record_id

    def add_user(self, fullname: str, *, domainname: str | None = None, email: str | None = None) -> str:
        return self._add("systemusers", {"fullname": fullname, "domainname": domainname,
                                         "internalemailaddress": email, "isdisabled": False})

    def add_account(self, name: str, *, owner: str | None = None, **phones: str) -> str:
        return self._add("accounts", {"name": name, **phones, **({"_ownerid_value": owner} if owner else {})})

    def add_contact(self, fullname: str, *, owner: str | None = None, account: str | None = None, **phones: str) -> str:
        values: dict[str, Any] = {"fullname": fullname, **phones}
        if owner:
            values["_ownerid_value"] = owner
        if account:
            values["_parentcustomerid_value"] = account
        return self._add("contacts", values)

    def add_lead(self, fullname: str, *, companyname: str | None = None, statecode: int = 0,
                 createdon: str | None = None, **phones: str) -> str:
        lead = self._add("leads", {"fullname": fullname, "companyname": companyname, "statecode": statecode,
                                   "statuscode": {0: 1, 1: 3, 2: 4}[statecode], **phones})
        if createdon:
            self.records["leads"][lead]["createdon"] = createdon
        return lead

    def add_opportunity(self, name: str, *, customer: str | None = None, lead: str | None = None,
                        statecode: int = 0, estimatedvalue: float | None = None, actualvalue: float | None = None,
                        actualclosedate: str | None = None, createdon: str | None = None,
                        owner: str | None = None) -> str:
        """An opportunity of a contact or account (``customer``) and/or from a lead."""
        opportunity = self._add("opportunities", {
            "name": name, "statecode": statecode, "statuscode": {0: 1, 1: 3, 2: 4}[statecode],
            "estimatedvalue": estimatedvalue, "actualvalue": actualvalue, "actualclosedate": actualclosedate,
            "_customerid_value": customer, "_originatingleadid_value": lead,
            **({"_ownerid_value": owner} if owner else {})})
        if createdon:
            self.records["opportunities"][opportunity]["createdon"] = createdon
        return opportunity

    def api(self, method: str | None = None, prefix: str = "") -> list[Seen]:
        return [s for s in self.seen if (method is None or s.method == method) and s.path.startswith(prefix)]

    # -- the app ---------------------------------------------------------------------------------
    def _build_app(self) -> QuartTrio:
        app = QuartTrio("fake_dynamics")
        app.add_url_rule("/<tenant>/v2.0/.well-known/openid-configuration", "oidc", self._oidc, methods=["GET"])
        app.add_url_rule("/<tenant>/oauth2/v2.0/token", "token", self._token, methods=["POST"])
        app.add_url_rule("/adfs/.well-known/openid-configuration", "adfs_oidc", self._adfs_oidc, methods=["GET"])
        app.add_url_rule("/adfs/oauth2/token", "adfs_token", self._adfs_token, methods=["POST"])
        app.add_url_rule("/api/data/<version>/", "service", self._api, methods=["GET"], defaults={"rest": ""})
        app.add_url_rule("/api/data/<version>/<path:rest>", "api", self._api,
                         methods=["GET", "POST", "PATCH", "DELETE", "PUT"])
        return app

    async def _api(self, version: str, rest: str) -> Response:
        self.http_requests += 1
        query = dict(parse_qsl(request.query_string.decode("ascii"), keep_blank_values=True))
        raw = await request.get_data()
        headers = {k.lower(): v for k, v in request.headers.items()}
        body = None
        try:
            if raw and "application/json" in headers.get("content-type", ""):
                body = json.loads(raw)
        except ValueError:
            body = {"@invalid-json": raw.decode(errors="replace")}
        seen = Seen(request.method, rest, query, headers, body)
        self.seen.append(seen)
        try:
            if isinstance(body, dict) and "@invalid-json" in body:
                raise ODataError(400, BAD_PAYLOAD, "The request body is not valid JSON.")
            status, data, out_headers = self._handle(request.method, version, rest, query, body, raw, headers)
        except ODataError as exc:
            status, data, out_headers = exc.status, {"error": {"code": exc.code, "message": exc.message}}, exc.headers
        seen.status = status
        if data is None or isinstance(data, bytes):
            response = Response(data or b"", status=status)
            response.headers["OData-Version"] = "4.0"
            for name, value in out_headers.items():
                response.headers[name] = value
            return response
        return self._json(data, status, out_headers)

    def _handle(self, method: str, version: str, rest: str, query: dict[str, str], body: Any, raw: bytes,
                headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        """The outer request: outage and fault injection, authentication, protocol headers."""
        if self.down:
            raise ODataError(503, "", "Service Unavailable")
        fault = self.next_fault()
        if fault is not None and not fault.lose:
            error = self.fault_body(fault)["error"]
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            raise ODataError(fault.status, error["code"], error["message"], headers)
        self._authenticate(headers.get("authorization", ""))
        if version != f"v{self.api_version}":
            raise ODataError(404, RESOURCE_NOT_FOUND, f"Resource not found for the segment '{version}'.")
        self._check_protocol(headers, body, raw, batch=rest == "$batch")
        if rest == "$batch" and method == "POST":
            result = self._batch(raw, headers)
        else:
            result = self._dispatch(method, rest, query, body, headers)
        if fault is not None:  # lose_answers(): done, but the client hears a timeout
            self.lost.append(result)
            raise ODataError(504, "", "Gateway Timeout")
        return result

    @staticmethod
    def _check_protocol(headers: dict[str, str], body: Any, raw: bytes, *, batch: bool) -> None:
        if headers.get("odata-maxversion") != "4.0" or headers.get("odata-version") != "4.0":
            raise ODataError(400, BAD_QUERY, "OData-MaxVersion and OData-Version must be 4.0.")
        if "application/json" not in headers.get("accept", ""):
            raise ODataError(406, BAD_QUERY, "Accept must include application/json.")
        if batch:
            if not headers.get("content-type", "").startswith("multipart/mixed") or "boundary=" not in headers["content-type"]:
                raise ODataError(400, BAD_PAYLOAD, "A $batch request needs Content-Type multipart/mixed with a boundary.")
        elif raw and body is None:
            raise ODataError(415, BAD_PAYLOAD, "Content-Type must be application/json.")

    def _batch(self, raw: bytes, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        """``$batch`` of GET requests (no change sets): run the parts in order, stop at the first error."""
        message = email.message_from_bytes(
            b"Content-Type: " + headers["content-type"].encode() + b"\r\n\r\n" + raw, policy=email.policy.HTTP
        )
        if not message.is_multipart():
            raise ODataError(400, BAD_PAYLOAD, "The $batch body is not a multipart message.")
        parts = list(message.iter_parts())
        if not parts or len(parts) > 1000:
            raise ODataError(400, BAD_PAYLOAD, "A batch holds 1 to 1000 requests.")
        boundary = f"batchresponse_{uuid.uuid4()}"
        out: list[bytes] = []
        for part in parts:
            if part.get_content_type() != "application/http" or part.get("Content-Transfer-Encoding") != "binary":
                raise ODataError(400, BAD_PAYLOAD, "Each batch part needs Content-Type application/http and Content-Transfer-Encoding binary.")
            inner = part.get_payload(decode=True) or b""
            head, _, inner_body = inner.partition(b"\r\n\r\n")
            request_line, *header_lines = head.decode().split("\r\n")
            method, target, _version = request_line.split(" ")
            inner_headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
            path = target.split("/api/data/", 1)[-1].split("/", 1)[-1]
            rest, _, query_string = path.partition("?")
            inner_query = dict(parse_qsl(query_string, keep_blank_values=True))
            seen = Seen(method, rest, inner_query, inner_headers, None, batch=True)
            self.seen.append(seen)
            if method != "GET":
                raise ODataError(400, BAD_PAYLOAD, "This fake's $batch takes GET requests outside change sets only.")
            try:
                inner_headers.setdefault("odata-version", "4.0")
                inner_headers.setdefault("odata-maxversion", "4.0")
                status, data, _ = self._dispatch(method, rest, inner_query, None, inner_headers)
            except ODataError as exc:
                status, data = exc.status, {"error": {"code": exc.code, "message": exc.message}}
            seen.status = status
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Error")
            out.append(
                f"--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; odata.metadata=minimal\r\n"
                f"OData-Version: 4.0\r\n\r\n{json.dumps(data)}\r\n".encode()
            )
            if status >= 400:
                break  # without odata.continue-on-error the first error ends the batch
        out.append(f"--{boundary}--\r\n".encode())
        return 200, b"".join(out), {"Content-Type": f"multipart/mixed; boundary={boundary}"}

    def _dispatch(self, method: str, rest: str, query: dict[str, str], body: Any,
                  headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        """One Web API operation on the in-memory organization."""
        if rest == "":
            return 200, {"value": [{"name": s, "kind": "EntitySet", "url": s} for s in self.entities]}, {}
        if rest == "WhoAmI":
            return 200, {"BusinessUnitId": str(uuid.UUID(int=1)), "UserId": self.app_user,
                         "OrganizationId": str(uuid.UUID(int=2))}, {}
        entity_set, _, key = rest.partition("(")
        if entity_set not in self.entities:
            raise ODataError(404, RESOURCE_NOT_FOUND, f"Resource not found for the segment '{entity_set}'.")
        entity = self.entities[entity_set]
        annotate = 'odata.include-annotations="*"' in headers.get("prefer", "")
        if key:
            if not key.endswith(")"):
                raise ODataError(400, BAD_QUERY, "Bad Request - Error in query syntax.")
            try:
                record_id = str(uuid.UUID(key[:-1]))
            except ValueError:
                raise ODataError(400, BAD_QUERY, f"Unrecognized 'Edm.Guid' literal '{key[:-1]}'.") from None
            if method == "GET":
                return 200, self._read(entity, self._get(entity, record_id), query.get("$select"), annotate), {}
            if method == "PATCH":
                return self._patch(entity, record_id, body, headers)
            if method == "DELETE":
                self._get(entity, record_id)
                del self.records[entity_set][record_id]
                return 204, None, {}
            raise ODataError(405, BAD_QUERY, f"The HTTP method '{method}' is not allowed here.")
        if method == "GET":
            return 200, self._query(entity, query, annotate, self._page_size(headers)), {}
        if method == "POST":
            record_id = str(uuid.uuid4())
            if isinstance(body, dict) and body.get(entity.key):
                record_id = str(uuid.UUID(str(body.pop(entity.key))))
            self._create(entity, record_id, body)
            return 204, None, {"OData-EntityId": f"{self.url}/api/data/v{self.api_version}/{entity_set}({record_id})"}
        raise ODataError(405, BAD_QUERY, f"The HTTP method '{method}' is not allowed here.")

    # -- reads -----------------------------------------------------------------------------------
    def _get(self, entity: Entity, record_id: str) -> dict[str, Any]:
        record = self.records[entity.entity_set].get(record_id)
        if record is None:
            raise ODataError(404, OBJECT_DOES_NOT_EXIST, f"{entity.logical} With Id = {record_id} Does Not Exist")
        return record

    def _name_of(self, record_id: str | None) -> tuple[str, str] | None:
        for entity in self.entities.values():
            record = self.records[entity.entity_set].get(record_id or "")
            if record is not None:
                return entity.logical, str(record.get(entity.name_column or "", ""))
        return None

    def _read(self, entity: Entity, record: dict[str, Any], select: str | None, annotate: bool) -> dict[str, Any]:
        columns = [c for c in (select or "").split(",") if c] or sorted(entity.readable())
        out: dict[str, Any] = {"@odata.etag": 'W/"1"'}
        for column in columns:
            if column not in entity.readable():
                raise ODataError(400, BAD_QUERY, f"Could not find a property named '{column}' on type 'Microsoft.Dynamics.CRM.{entity.logical}'.")
            out[column] = record.get(column)
            if annotate and column.startswith("_") and column.endswith("_value") and record.get(column):
                target = self._name_of(record[column])
                if target:
                    out[column + LOOKUP_TYPE] = target[0]
                    out[column + FORMATTED] = target[1]
        return out

    @staticmethod
    def _page_size(headers: dict[str, str]) -> int:
        """``Prefer: odata.maxpagesize=N`` (Dynamics' default page is 5000 rows)."""
        match = re.search(r"odata\.maxpagesize=(\d+)", headers.get("prefer", ""))
        return max(1, min(int(match.group(1)), 5000)) if match else 5000

    def _query(self, entity: Entity, query: dict[str, str], annotate: bool, page_size: int = 5000) -> dict[str, Any]:
        """Rows of a GET on an entity set; more than a page gives ``@odata.nextLink`` with an opaque
        ``$skiptoken`` (Dynamics' paging cookie; here the offset), which the client follows as is."""
        unknown = set(query) - {"$select", "$filter", "$top", "$orderby", "$skiptoken"}
        if unknown:
            raise ODataError(400, BAD_QUERY, f"The query parameter '{sorted(unknown)[0]}' is not supported.")
        node = FilterParser(query["$filter"], entity).parse() if query.get("$filter") else None
        try:
            top = int(query.get("$top", "5000"))
        except ValueError:
            raise ODataError(400, BAD_QUERY, "Invalid value for $top.") from None
        rows = [r for r in self.records[entity.entity_set].values() if node is None or matches(node, r)][:top]
        try:
            offset = int(query.get("$skiptoken", "0"))
        except ValueError:
            raise ODataError(400, BAD_QUERY, "Invalid paging cookie in $skiptoken.") from None
        page = rows[offset:offset + page_size]
        out: dict[str, Any] = {"value": [self._read(entity, r, query.get("$select"), annotate) for r in page]}
        if offset + page_size < len(rows):
            following = {**query, "$skiptoken": str(offset + page_size)}
            out["@odata.nextLink"] = (f"{self.url}/api/data/v{self.api_version}/{entity.entity_set}?"
                                      + urlencode(following, quote_via=quote))
        return out

    # -- writes ----------------------------------------------------------------------------------
    def _bind(self, entity: Entity, name: str, value: Any) -> tuple[str, str]:
        """Check one ``nav@odata.bind`` and return (lookup column, target id)."""
        nav = name[: -len("@odata.bind")]
        if nav not in entity.navigation:
            raise ODataError(400, BAD_PAYLOAD, f"An undeclared property '{nav}' which only has property annotations in the payload but no property value was found in the payload.")
        column, targets = entity.navigation[nav]
        text = str(value)
        target_set, _, key = text.lstrip("/").partition("(")
        try:
            target_id = str(uuid.UUID(key.rstrip(")")))
        except ValueError:
            raise ODataError(400, BAD_PAYLOAD, f"The @odata.bind value '{text}' is not a valid entity reference.") from None
        if target_set not in targets or not key.endswith(")"):
            raise ODataError(400, BAD_PAYLOAD, f"'{text}' cannot be bound to '{nav}' (expected {' or '.join(targets)}).")
        self._get(self.entities[target_set], target_id)
        return f"_{column}_value", target_id

    def _parties(self, entity: Entity, parties: Any) -> list[dict[str, Any]]:
        if not isinstance(parties, list):
            raise ODataError(400, BAD_PAYLOAD, f"{entity.logical}_activity_parties must be a collection.")
        result = []
        for party in parties:
            binds = [k for k in party if k.endswith("@odata.bind")]
            if len(binds) != 1 or set(party) - {binds[0], "participationtypemask", "addressused"}:
                raise ODataError(400, BAD_PAYLOAD, f"Invalid activity party {party}.")
            logical = binds[0][len("partyid_"): -len("@odata.bind")]
            if not binds[0].startswith("partyid_") or logical not in PARTY_TARGETS:
                raise ODataError(400, BAD_PAYLOAD, f"Undeclared property '{binds[0]}' on activityparty.")
            target_set, _, key = str(party[binds[0]]).lstrip("/").partition("(")
            if target_set != PARTY_TARGETS[logical]:
                raise ODataError(400, BAD_PAYLOAD, f"'{party[binds[0]]}' cannot be bound to partyid_{logical}.")
            try:
                target_id = str(uuid.UUID(key.rstrip(")")))
            except ValueError:
                raise ODataError(400, BAD_PAYLOAD, f"Invalid entity reference '{party[binds[0]]}'.") from None
            self._get(self.entities[target_set], target_id)
            mask = party.get("participationtypemask")
            if mask not in (1, 2):  # a phone call has From (1) and To (2) party lists only
                raise ODataError(400, BAD_PAYLOAD, f"participationtypemask {mask!r} is not valid for a {entity.logical}.")
            result.append({"partyid": target_id, "entity": logical, "participationtypemask": mask})
        return result

    def _apply(self, entity: Entity, record: dict[str, Any], body: Any, *, creating: bool) -> None:
        if not isinstance(body, dict):
            raise ODataError(400, BAD_PAYLOAD, "The request body must be a JSON object.")
        changes: dict[str, Any] = {}
        state = body.get("statecode")
        status = body.get("statuscode")
        for name, value in body.items():
            if name.endswith("@odata.bind"):
                column, target = self._bind(entity, name, value)
                changes[column] = target
            elif name == f"{entity.logical}_activity_parties" and entity.activity:
                changes["parties"] = self._parties(entity, value)
            elif name in ("statecode", "statuscode"):
                continue
            elif name not in entity.columns:
                raise ODataError(400, BAD_PAYLOAD, f"The property '{name}' does not exist on type 'Microsoft.Dynamics.CRM.{entity.logical}'. Make sure to only use property names that are defined by the type or mark the type as open type.")
            else:
                entity.check_value(name, value)
                changes[name] = value
        for code in (state, status):
            if code is not None:
                entity.check_value("statecode", code)
        if entity.states and not creating and (state is not None or status is not None):
            if state is None:
                raise ODataError(400, INVALID_STATE, "statuscode must be sent together with statecode.")
            if status is None:
                status = entity.default_status.get(state)
            if status not in entity.states.get(state, set()):
                raise ODataError(400, INVALID_STATE, f"{status} is not a valid status code for state code {entity.logical}State.{state}.")
            changes["statecode"], changes["statuscode"] = state, status
        elif not entity.states and state is not None:
            changes["statecode"] = state
        record.update(changes)

    def _create(self, entity: Entity, record_id: str, body: Any) -> dict[str, Any]:
        record: dict[str, Any] = {entity.key: record_id, "createdon": self.stamp(), "modifiedon": self.stamp()}
        if "ownerid" in entity.navigation:
            record["_ownerid_value"] = self.app_user
        if entity.states:  # statecode on create is ignored: the record starts open
            record["statecode"], record["statuscode"] = 0, entity.default_status[0]
        self._apply(entity, record, body, creating=True)
        self.records[entity.entity_set][record_id] = record
        return record

    def _patch(self, entity: Entity, record_id: str, body: Any, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        existing = self.records[entity.entity_set].get(record_id)
        if headers.get("if-none-match") == "*" and existing is not None:
            raise ODataError(412, "", "A record with matching key values already exists.")
        if headers.get("if-match") == "*" and existing is None:
            raise ODataError(404, OBJECT_DOES_NOT_EXIST, f"{entity.logical} With Id = {record_id} Does Not Exist")
        representation = "return=representation" in headers.get("prefer", "")
        if existing is None:
            record = self._create(entity, record_id, body)
            return (201, self._read(entity, record, None, False), {}) if representation else (204, None, {})
        if entity.activity and existing.get("statecode", 0) != 0:
            reopen = isinstance(body, dict) and set(body) <= {"statecode", "statuscode"} and body.get("statecode") == 0
            if not reopen:
                raise ODataError(400, CLOSED_ACTIVITY, "Cannot update Closed or Cancelled Activity.")
        updated = dict(existing)
        self._apply(entity, updated, body, creating=False)
        updated["modifiedon"] = self.stamp()
        existing.clear()
        existing.update(updated)
        return (200, self._read(entity, existing, None, False), {}) if representation else (204, None, {})


@asynccontextmanager
async def serve_fake(fake: FakeDynamics, workdir: Path) -> AsyncIterator[Path]:
    """Serve ``fake`` over https on 127.0.0.1 (free port); yield the CA file clients must trust."""
    tls = tls_files(workdir)
    # pyspnego's NTLM acceptor reads its accounts from the file named by NTLM_USER_FILE.
    users_file = workdir / "ntlm-users.txt"
    users_file.write_text("".join(f"{user.replace(chr(92), ':', 1)}:{password}\n" for user, password in fake.ntlm_users.items()))
    previous = os.environ.get("NTLM_USER_FILE")
    os.environ["NTLM_USER_FILE"] = str(users_file)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        fake.url = await nursery.start(lambda task_status: serve(fake.app, tls=tls, shutdown_trigger=stop.wait,
                                                                 task_status=task_status))
        try:
            yield tls.ca
        finally:
            stop.set()
            if previous is None:
                os.environ.pop("NTLM_USER_FILE", None)
            else:
                os.environ["NTLM_USER_FILE"] = previous
