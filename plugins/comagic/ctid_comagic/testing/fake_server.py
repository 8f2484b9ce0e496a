"""A local fake CoMagic account: Call API v4.0, Data API v2.0, recording links, notifications sender.

It follows ``reference/comagic.md`` and keeps its documented quirks:

- JSON-RPC 2.0 over POST only; no batches (``-32099 batch_opreations_not_supported``, sic) and no
  notifications (a request without ``id``: ``-32099 notifications_not_supported``);
- errors carry ``error.data.mnemonic`` (``access_token_invalid``, ``ip_not_whitelisted``,
  ``invalid_state``, ``component_disabled``, ``limit_exceeded``, ``date_interval_limit_reached`` ...);
- ``login.user`` sessions expire after one hour (``expire_at`` unix time); keys never expire;
- every answer has ``metadata.limits``; only successful requests spend points, and a spent
  budget answers ``-32029 limit_exceeded``;
- control methods answer ``{"success": "true"}`` (a string) and ``call_session_id`` as a number;
- Data API times are account-local without offset both ways; report windows at most 3 months,
  ``limit`` at most 10 000, ``offset`` at most 100 000; ``include_ongoing_calls`` shows live calls;
- recording links need no token; ``http://`` answers 308 to ``https://``.

Every RPC request is recorded in ``fake.requests`` for assertions. Use it in-process through
``httpx.ASGITransport(app=fake)`` or over HTTP with :func:`serve` (which also delivers notifications).
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import trio

from ctid.asgi import lifespan, read_body, respond
from ctid_comagic.testing.fake_calls import CallModel, Leg, Session, hook_path

CONTROL = {"hold.call", "unhold.call", "make.call", "transfer.talk", "restore.talk", "disconnect.leg",
           "release.call", "list.calls"}


class RpcFailure(Exception):
    def __init__(self, code: int, mnemonic: str, message: str, field_name: str | None = None):
        super().__init__(message)
        self.code, self.mnemonic, self.message, self.field = code, mnemonic, message, field_name


@dataclass
class Request:
    api: str
    method: str
    params: dict[str, Any]
    error: str | None = None


@dataclass
class Budget:
    minute_limit: int = 1000
    day_limit: int = 100_000
    used_minute: int = 0
    used_day: int = 0
    minute_start: float = 0.0

    def limits(self, now: float) -> dict[str, int]:
        if now - self.minute_start >= 60:
            self.minute_start, self.used_minute = now, 0
        return {"day_limit": self.day_limit, "day_remaining": max(self.day_limit - self.used_day, 0),
                "day_reset": 86_400, "minute_limit": self.minute_limit,
                "minute_remaining": max(self.minute_limit - self.used_minute, 0),
                "minute_reset": max(int(60 - (now - self.minute_start)), 0)}


@dataclass
class FakeComagic(CallModel):
    """State of the fake account; mutate it freely in tests."""

    api_key: str = "fake-comagic-key-0123456789"
    login: str = "ctid-api"
    password: str = "fake-password-01"
    timezone: str = "Europe/Moscow"
    host: str = "127.0.0.1"
    instance: str = "cm"
    webhook_secret: str = "path-secret-0123456789"
    body_secret: str = "body-secret-0123456789"
    notify_method: str = "POST"
    employees: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=lambda: [
        {"id": 1, "mnemonic": "available", "name": "Доступен"}, {"id": 2, "mnemonic": "break", "name": "Перерыв"},
        {"id": 3, "mnemonic": "do_not_disturb", "name": "Не беспокоить"},
        {"id": 4, "mnemonic": "not_at_workplace", "name": "Нет на месте"}])
    whitelisted: bool = True
    call_control: bool = True  # the component "Call API Управление вызовами"
    refuse: dict[str, str] = field(default_factory=dict)  # method -> mnemonic of its next answer
    requests: list[Request] = field(default_factory=list)
    recordings: dict[str, bytes] = field(default_factory=dict)  # hash -> audio
    wall: Callable[[], float] = time.time  # unix time for expire_at
    port: int = 0

    def __post_init__(self) -> None:
        self._init_calls()
        self.tokens: dict[str, float] = {}
        self.budgets = {"call": Budget(), "data": Budget()}
        self.hook_path = hook_path(self.instance, self.webhook_secret)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}" if self.port else f"http://{self.host}"

    def received(self, method: str | None = None, api: str | None = None) -> list[Request]:
        return [r for r in self.requests if (method is None or r.method == method) and (api is None or r.api == api)]

    # -- ASGI ------------------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        status, headers, out = self._route(scope, await read_body(receive))
        await respond(send, status, headers, out)

    def _route(self, scope: dict[str, Any], body: bytes) -> tuple[int, dict[str, str], bytes]:
        path = scope["path"]
        if path.startswith("/system/media/"):
            if scope.get("scheme") == "http" and scope.get("headers") and self.host not in ("127.0.0.1", "localhost"):
                return 308, {"location": "https://" + self.host + path}, b""
            parts = [p for p in path.split("/") if p]
            audio = self.recordings.get(parts[-1]) if len(parts) >= 5 else None
            if audio is None:
                return 404, {"content-type": "text/html"}, b"<html>Not found</html>"
            return 200, {"content-type": "audio/mpeg"}, audio
        api = {"/v4.0": "call", "/v2.0": "data"}.get(path)
        if api is None or scope["method"] != "POST":
            return 404, {"content-type": "text/html"}, b"<!DOCTYPE html><html>Not Found</html>"
        try:
            data = json.loads(body)
        except ValueError:
            return _rpc(None, error=(-32700, "parse_error", "Parse error"))
        if isinstance(data, list):
            return _rpc(None, error=(-32099, "batch_opreations_not_supported", "Batch operations not supported"))
        if not isinstance(data, dict) or data.get("jsonrpc") != "2.0" or not isinstance(data.get("method"), str):
            return _rpc(None, error=(-32600, "invalid_request", "Invalid Request"))
        if "id" not in data:
            return _rpc(None, error=(-32099, "notifications_not_supported", "Notifications not supported"))
        params = data.get("params") if isinstance(data.get("params"), dict) else {}
        request = Request(api, data["method"], dict(params))
        self.requests.append(request)
        budget = self.budgets[api]
        try:
            result = self._dispatch(api, data["method"], params)
        except RpcFailure as exc:
            request.error = exc.mnemonic
            return _rpc(data["id"], error=(exc.code, exc.mnemonic, exc.message), field_name=exc.field)
        budget.used_minute += 1
        budget.used_day += 1
        return _rpc(data["id"], result={**result, "metadata": {
            **result.get("metadata", {}), "limits": budget.limits(trio.current_time())}})

    # -- dispatch --------------------------------------------------------------------------------
    def _dispatch(self, api: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if not self.whitelisted:
            raise RpcFailure(-32003, "ip_not_whitelisted", "IP address is not in the whitelist")
        if method == "login.user":
            if params.get("login") != self.login or params.get("password") != self.password:
                raise RpcFailure(-32001, "auth_error", "Wrong login or password")
            token = secrets.token_hex(16)
            self.tokens[token] = self.wall() + 3600
            return {"data": {"access_token": token, "expire_at": int(self.tokens[token]), "app_id": 4242}}
        token = params.get("access_token")
        if token == self.api_key:
            pass
        elif token in self.tokens:
            if self.wall() >= self.tokens[token]:
                raise RpcFailure(-32001, "access_token_invalid", "Access token has been expired")
        else:
            raise RpcFailure(-32001, "access_token_invalid", "Access token is invalid")
        if method == "logout.user":
            self.tokens.pop(token, None)
            return {"data": {}}
        budget = self.budgets[api]
        limits = budget.limits(trio.current_time())
        if limits["minute_remaining"] <= 0 or limits["day_remaining"] <= 0:
            raise RpcFailure(-32029, "limit_exceeded", "Limit exceeded")
        if method in self.refuse:
            mnemonic = self.refuse.pop(method)
            raise RpcFailure(-32004 if mnemonic == "invalid_state" else -32602, mnemonic, f"Refused: {mnemonic}")
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None or (api == "data") != (method.split(".")[0] in ("get", "update")):
            raise RpcFailure(-32601, "method_not_found", f"Method {method} not found")
        if api == "call" and method in CONTROL and not self.call_control:
            raise RpcFailure(-32008, "component_disabled", "Component is disabled")
        return handler(params)

    # -- Call API --------------------------------------------------------------------------------
    def _session(self, params: dict[str, Any], *states: str) -> Session:
        value = params.get("call_session_id")
        if not isinstance(value, int) or isinstance(value, bool):
            raise RpcFailure(-32602, "data_type_error", "Data supplied is of wrong type", "call_session_id")
        s = self.sessions.get(value)
        if s is None or s.state == "ended":
            raise RpcFailure(-32602, "call_session_not_found", "Call session not found", "call_session_id")
        if states and s.state not in states:
            raise RpcFailure(-32004, "invalid_state", f"Method cannot be applied in state {s.state}")
        return s

    def _start_employee_call(self, params: dict[str, Any]) -> dict[str, Any]:
        employee = params.get("employee")
        if not isinstance(employee, dict) or "id" not in employee:
            raise RpcFailure(-32602, "required_parameter_missed", "Required parameter missed", "employee.id")
        row = self.employee(employee["id"])
        if row is None:
            raise RpcFailure(-32602, "employee_not_found", "Employee not found", "employee.id")
        contact = str(params.get("contact") or "")
        if not contact.isdigit():
            raise RpcFailure(-32602, "data_type_error", "Data supplied is of wrong type", "contact")
        s = Session(next(self._ids), "out", contact, params.get("virtual_phone_number"), self.clock.now(),
                    external_id=params.get("external_id"), source="callapi")
        self.sessions[s.id] = s
        s.legs.append(Leg(next(self._legs), None))
        s.rung.append(row["id"])
        s.legs.append(Leg(next(self._legs), row["id"]))
        self._notify("outbound", s, employee_id=row["id"], employee_phone_number=None)
        return {"data": {"call_session_id": s.id}}

    def contact_answers(self, session: int) -> None:
        """The customer of an outbound call picks up: the employee talks."""
        s = self.sessions[session]
        employee = s.rung[0]
        leg = self._leg(s, employee)
        if leg is not None:
            leg.state, leg.answered_at = "talk", self.clock.now()
        s.first_talk, s.state, s.talking = self.clock.now(), "talk", employee
        s.talked.append(employee)
        self._notify("talk_started", s, employee_id=employee, leg_ids=[leg.leg_id for leg in s.legs])

    def _hold_call(self, params: dict[str, Any]) -> dict[str, Any]:
        message = params.get("contact_message")
        if not isinstance(message, dict) or message.get("type") not in ("media", "tts") or not message.get("value"):
            raise RpcFailure(-32602, "required_parameter_missed", "Required parameter missed", "contact_message")
        s = self._session(params, "talk")
        s.state, s.hold_since = "hold", self.clock.now()
        return {"data": {"success": "true"}}

    def _unhold(self, s: Session) -> None:
        if s.hold_since is not None:
            s.hold_seconds += (self.clock.now() - s.hold_since).total_seconds()
            s.hold_since = None

    def _unhold_call(self, params: dict[str, Any]) -> dict[str, Any]:
        s = self._session(params, "hold")
        self._unhold(s)
        s.state = "talk"
        return {"data": {"success": "true"}}

    def _make_call(self, params: dict[str, Any]) -> dict[str, Any]:
        s = self._session(params, "hold")
        row = self.employee(params.get("to"))
        if row is None:
            raise RpcFailure(-32602, "no_active_phone_number", "No active phone number", "to")
        s.state, s.target = "dialing", row["id"]
        self.ring(s.id, row["id"])
        return {"data": {"success": "true"}}

    def _transfer_talk(self, params: dict[str, Any]) -> dict[str, Any]:
        s = self._session(params, "dialing", "operator_talk")
        self._unhold(s)
        previous, target = s.talking, s.target
        if previous is not None:
            self._end_talk(s, previous)
        s.transferred, s.talking, s.target = True, target, None
        if s.state == "operator_talk" and target is not None:
            s.talked.append(target)  # the colleague already talks: now to the customer
        s.state = "talk"
        return {"data": {"success": "true"}}

    def _restore_talk(self, params: dict[str, Any]) -> dict[str, Any]:
        s = self._session(params, "dialing", "operator_talk")
        if s.target is not None:
            leg = self._leg(s, s.target)
            if leg is not None and leg.state == "talk":
                self._end_talk(s, s.target)
            elif leg is not None:
                leg.state = "ended"
        self._unhold(s)
        s.state, s.target = "talk", None
        return {"data": {"success": "true"}}

    def _release_call(self, params: dict[str, Any]) -> dict[str, Any]:
        s = self._session(params)
        self.hang_up(s.id)
        return {"data": {"success": "true"}}

    def _list_calls(self, params: dict[str, Any]) -> dict[str, Any]:
        rows = [{"call_session_id": s.id, "direction": s.direction, "start_time": self.local(s.started_at).replace(" ", "T"),
                 "virtual_phone_number": s.line, "contact_phone_number": s.contact, "external_id": s.external_id,
                 "legs": [{"leg_id": leg.leg_id, "employee_id": leg.employee, "is_operator": leg.employee is not None,
                           "state": {"talk": "Разговор", "dialing": "Дозвон"}.get(leg.state, "Разъединено")}
                          for leg in s.legs]} for s in self.sessions.values() if s.state != "ended"]
        return {"data": rows}

    # -- Data API --------------------------------------------------------------------------------
    def _get_account(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"data": [{"app_id": 4242, "name": "Fake account", "timezone": self.timezone}]}

    def _page(self, rows: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        limit, offset = params.get("limit", 1000), params.get("offset", 0)
        if not isinstance(limit, int) or not 0 < limit <= 10_000:
            raise RpcFailure(-32602, "invalid_parameter_value", "Invalid parameter value", "limit")
        if not isinstance(offset, int) or not 0 <= offset <= 100_000:
            raise RpcFailure(-32602, "invalid_parameter_value", "Invalid parameter value", "offset")
        fields = params.get("fields")
        page = rows[offset:offset + limit]
        if isinstance(fields, list):
            page = [{k: v for k, v in row.items() if k in fields} for row in page]
        return {"data": page, "metadata": {"total_items": len(rows)}}

    def _window(self, params: dict[str, Any]) -> tuple[datetime, datetime]:
        try:  # local times without offset, as the account's zone reads them
            low = datetime.strptime(params["date_from"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=self.tz)
            high = datetime.strptime(params["date_till"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=self.tz)
        except (KeyError, TypeError, ValueError):
            raise RpcFailure(-32602, "invalid_parameter_value", "Invalid date", "date_from") from None
        if high - low > timedelta(days=92):
            raise RpcFailure(-32602, "date_interval_limit_reached", "Date interval limit reached", "date_till")
        return low, high

    def _filtered(self, params: dict[str, Any], name: str, value: Any) -> bool:
        spec = params.get("filter")
        if not isinstance(spec, dict):
            return True
        if spec.get("field") != name or spec.get("operator") != "=":
            raise RpcFailure(-32602, "filter_prohibited", "Filter prohibited", "filter")
        return spec.get("value") == value

    def _get_calls_report(self, params: dict[str, Any]) -> dict[str, Any]:
        low, high = self._window(params)
        ongoing = params.get("include_ongoing_calls") is True
        rows = [self.report_row(s) for s in sorted(self.sessions.values(), key=lambda s: s.started_at)
                if low <= s.started_at <= high and (s.finished_at is not None or ongoing)
                and self._filtered(params, "id", s.id)]
        return self._page(rows, params)

    def _get_financial_call_legs_report(self, params: dict[str, Any]) -> dict[str, Any]:
        low, high = self._window(params)
        rows = [row for s in sorted(self.sessions.values(), key=lambda s: s.started_at)
                if low <= s.started_at <= high and self._filtered(params, "call_session_id", s.id)
                for row in self.financial_rows(s)]
        return self._page(rows, params)

    def _get_employees(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._page(self.employees, params)

    def _get_statuses(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._page(self.statuses, params)

    def _update_employees(self, params: dict[str, Any]) -> dict[str, Any]:
        row = self.employee(params.get("id"))
        if row is None:
            raise RpcFailure(-32602, "entity_not_found", "Entity not found", "id")
        if params.get("status_id") not in [s["id"] for s in self.statuses]:
            raise RpcFailure(-32602, "invalid_parameter_value", "Invalid parameter value", "status_id")
        row["status_id"] = params["status_id"]
        return {"data": {"id": row["id"]}}


def _rpc(request_id: Any, *, result: Any = None, error: tuple[int, str, str] | None = None,
         field_name: str | None = None) -> tuple[int, dict[str, str], bytes]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if error is not None:
        code, mnemonic, message = error
        body["error"] = {"code": code, "message": message, "data": {"mnemonic": mnemonic, "field": field_name,
                                                                    "value": None, "params": {}, "extended_helper": None}}
    else:
        body["result"] = result
    return 200, {"content-type": "application/json; charset=UTF-8"}, json.dumps(body, ensure_ascii=False).encode()


async def serve(fake: FakeComagic, *, deliver_to: str | None = None, host: str = "127.0.0.1", port: int = 0,
                task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``fake`` over HTTP with hypercorn until cancelled; with ``deliver_to`` (ctid's base URL)
    a sender task posts its notifications there in order. ``task_status`` gets the fake's base URL."""
    import httpx

    from ctid.testing import fakes

    async def sender() -> None:
        async with httpx.AsyncClient(base_url=deliver_to, timeout=10) as client:
            while True:  # notifications may be queued from another thread (a sync test): poll
                await fake.deliver(client)
                await trio.sleep(0.02)

    async with trio.open_nursery() as nursery:
        url = await nursery.start(functools.partial(fakes.serve, fake, host=host, port=port))
        fake.port = int(url.rsplit(":", 1)[1])
        if deliver_to:
            nursery.start_soon(sender)
        task_status.started(fake.base_url)
