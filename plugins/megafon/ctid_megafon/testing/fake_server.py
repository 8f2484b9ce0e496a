"""A local fake MegaFon tenant (REST CRM API v1 + legacy ``crm_api.wcgp``) as a plain ASGI app.

It follows ``reference/megafon.md`` §4, errors included: a bad key is 401 (REST ``{"message"}``,
legacy ``{"error": "Invalid token"}``), an unknown user 404, ``+`` in ``phone`` 400, history
export switched off 501, unknown paths an HTML page, and a recording that is not written yet 404
until it appears. Throttling is not documented for MegaFon; ``throttle(n)`` makes the next ``n``
requests answer 429 with ``Retry-After`` so clients can be tested against it anyway (``fail`` and
``lose_answers`` script other trouble: ctid's fake-server scaffolding, :mod:`ctid.testing.fakes`).

Use it in-process with ``httpx.ASGITransport(app=fake)`` or serve it with hypercorn
(:func:`serve`). Every request is recorded in ``fake.commands`` for assertions.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trio

from ctid.testing.fakes import Answer, FakeRequest, FakeServer, Fault, json_answer
from ctid.testing.fakes import serve as serve_app

REST = "/crmapi/v1"
LEGACY = "/sys/crm_api.wcgp"
RECORDS = "/api/v2/call-records/"
DATE_FORMS = {"compact": "%Y%m%dT%H%M%SZ", "extended": "%Y-%m-%dT%H:%M:%SZ"}


class Command(FakeRequest):
    """One request the fake received; ``api`` is rest | legacy | recording | other."""

    __slots__ = ()

    @property
    def api(self) -> str:
        path = self.path
        return "rest" if path.startswith(REST) else "legacy" if path == LEGACY else (
            "recording" if path.startswith(RECORDS) else "other")

    @property
    def name(self) -> str:
        if self.api == "legacy":
            return self.form.get("cmd") or self.query.get("cmd") or ""
        return self.path


@dataclass
class Recording:
    data: bytes
    media: str = "audio/mpeg"
    missing_for: int = 0  # answer 404 this many more times (file not written yet)


@dataclass
class FakeMegafon(FakeServer):
    """State of the fake tenant; mutate it freely in tests."""

    request_class = Command

    api_key: str = "fake-api-key-0123456789"
    host: str = "vats100.megapbx.ru"
    users: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # REST rows (uid, type, status, ...)
    history_enabled: bool = True
    history_newest_first: bool = False  # the order (and so which rows a full page keeps) is not documented
    date_forms: tuple[str, ...] = ("compact", "extended")
    page_size: int = 50
    recordings: dict[str, Recording] = field(default_factory=dict)  # path -> recording
    dnd: dict[str, bool] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"https://{self.host}"

    @property
    def commands(self) -> list[Command]:
        return self.requests  # type: ignore[return-value]

    def throttle(self, times: int = 1, retry_after: float = 2, *, after: int = 0) -> None:
        """The next ``times`` requests (after ``after``) answer 429 ``{"message": ...}`` with Retry-After."""
        super().throttle(times, retry_after, after=after)

    def fault_body(self, fault: Fault) -> Any:
        return {"message": {429: "Too Many Requests", 504: "Gateway Timeout"}.get(fault.status,
                                                                                   "Service Unavailable")}

    def add_recording(self, name: str, data: bytes, *, missing_for: int = 0, day: str = "2026-11-25") -> str:
        path = f"{RECORDS}record/{day}/{uuid.uuid4().hex}/{name}"
        self.recordings[path] = Recording(data, missing_for=missing_for)
        return self.base_url + path

    def received(self, api: str | None = None, name: str | None = None) -> list[Command]:
        return [c for c in self.commands if (api is None or c.api == api) and (name is None or c.name == name)]

    def _user(self, ref: str | None) -> dict[str, Any] | None:
        for user in self.users:
            if ref and ref in (str(user.get("login")), str(user.get("ext")), str(user.get("telnum"))):
                return user
        return None

    # -- the API (FakeServer records the request and applies scripted faults first) ----------------
    def handle(self, c: Command) -> Answer:  # type: ignore[override]
        if c.api == "rest":
            if c.headers.get("x-api-key") != self.api_key:
                return _json(401, {"message": "Unauthorized"})
            return self._rest(c, c.path[len(REST):] or "/")
        if c.api == "legacy":
            return self._legacy(c)
        if c.api == "recording" and c.method == "GET":
            if c.headers.get("x-api-key") != self.api_key:
                return _json(401, {"message": "Unauthorized"})
            record = self.recordings.get(c.path)
            if record is None or record.missing_for > 0:
                if record is not None:
                    record.missing_for -= 1
                return _json(404, {"message": "Record not found"})
            return 200, {"content-type": record.media}, record.data
        return 404, {"content-type": "text/html"}, b"<!DOCTYPE html><html><body>Not Found</body></html>"

    # -- REST CRM API v1 -------------------------------------------------------------------------
    def _rest(self, c: Command, path: str) -> tuple[int, dict[str, str], bytes]:
        parts = [p for p in path.split("/") if p]
        if parts == ["makecall"] and c.method == "POST":
            payload = c.json if isinstance(c.json, dict) else c.form
            return self._makecall(payload, legacy=False)
        if parts == ["history", "json"] and c.method == "GET":
            if not self.history_enabled:
                return _json(501, {"message": "Not Implemented"})
            rows = self._history_rows(c.query)
            if isinstance(rows, str):
                return _json(400, {"message": f"Invalid parameters: {rows}"})
            return _json(200, rows)
        if parts in (["users"], ["groups"]) and c.method == "GET":
            return self._page(self.users if parts == ["users"] else self.groups, c.query)
        if len(parts) == 3 and parts[0] == "users" and parts[2] == "dnd":
            user = self._user(parts[1])
            if user is None:
                return _json(404, {"message": "User not found"})
            login = str(user["login"])
            if c.method == "GET":
                return _json(200, {"state": self.dnd.get(login, False)})
            if c.method in ("POST", "DELETE"):
                self.dnd[login] = c.method == "POST"
                return _json(200, {})
        return 404, {"content-type": "text/html"}, b"<!DOCTYPE html><html><body>Not Found</body></html>"

    def _makecall(self, payload: dict[str, Any], *, legacy: bool) -> tuple[int, dict[str, str], bytes]:
        phone, ref = str(payload.get("phone") or ""), str(payload.get("user") or "")
        error = {"error": "Invalid parameters"} if legacy else {"message": "Invalid parameters: phone"}
        if not phone or not phone.isdigit():  # the PBX rejects a leading '+'
            return _json(400, error)
        if self._user(ref) is None:
            return _json(400, {"error": "Invalid parameters: [user]"}) if legacy else _json(
                404, {"message": "User not found"})
        callid = uuid.uuid4().hex[:16].upper()
        if legacy:
            return 200, {"content-type": "text/plain"}, callid.encode()  # the bare CallID
        return _json(200, {"callid": callid, "clid": None})

    def _page(self, items: list[dict[str, Any]], query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        try:
            start = int(query.get("start") or 0)
        except ValueError:
            return _json(400, {"message": "Invalid parameters: start"})
        page = items[start:start + self.page_size]
        nxt = start + self.page_size if start + self.page_size < len(items) else None
        info = {"search": "", "start": start, "limit": self.page_size, "total": len(items), "next": nxt}
        return _json(200, {"items": page, "info": info})

    def _parse_time(self, raw: str | None) -> datetime | None | str:
        if not raw:
            return None
        for name in self.date_forms:
            try:
                return datetime.strptime(raw, DATE_FORMS[name]).replace(tzinfo=UTC)
            except ValueError:
                continue
        return "start" if raw else None

    def _history_rows(self, query: dict[str, str]) -> list[dict[str, Any]] | str:
        start, end = self._parse_time(query.get("start")), self._parse_time(query.get("end"))
        if isinstance(start, str) or isinstance(end, str):
            return "start/end"
        kind = (query.get("type") or "all").lower()
        if kind not in ("all", "in", "out", "missed"):
            return "type"
        try:
            limit = int(query.get("limit") or 100)
        except ValueError:
            return "limit"
        rows = []
        for row in sorted(self.history, key=lambda r: r["start"], reverse=self.history_newest_first):
            at = datetime.fromisoformat(row["start"].replace("Z", "+00:00"))
            if (start and at < start) or (end and at >= end):
                continue
            if kind == "missed" and row.get("status") != "missed" or kind in ("in", "out") and row["type"] != kind:
                continue
            rows.append(row)
        return rows[:limit]

    # -- legacy command API ----------------------------------------------------------------------
    def _legacy(self, c: Command) -> tuple[int, dict[str, str], bytes]:
        params = {**c.query, **c.form}
        if params.get("token") != self.api_key:
            return _json(401, {"error": "Invalid token"})
        cmd = params.get("cmd", "")
        if cmd == "makeCall":
            return self._makecall(params, legacy=True)
        if cmd == "accounts":
            rows = [{"name": u["login"], "realName": u.get("name"), "ext": u.get("ext"), "telnum": u.get("telnum")}
                    for u in self.users]
            return _json(200, rows)
        if cmd == "groups":
            return _json(200, [{"id": g["id"], "realName": g.get("name"), "ext": g.get("ext")} for g in self.groups])
        if cmd == "history":
            if not self.history_enabled:
                return _json(501, {"error": "Not Implemented"})
            rows = self._history_rows(params)
            if isinstance(rows, str):
                return _json(400, {"error": f"Invalid parameters: [{rows}]"})
            return 200, {"content-type": "text/csv"}, _csv(rows).encode()
        if cmd in ("set_dnd", "get_dnd"):
            user = self._user(params.get("user"))
            if user is None:
                return _json(400, {"error": "Invalid parameters: [user]"})
            if cmd == "get_dnd":
                return _json(200, {"state": self.dnd.get(str(user["login"]), False)})
            if params.get("state") not in ("true", "false"):
                return _json(400, {"error": "Invalid parameters: [state]"})
            self.dnd[str(user["login"])] = params["state"] == "true"
            return _json(200, {})
        return _json(400, {"error": "Invalid parameters: [cmd]"})  # also the spec's typo subscribtionstatus


def _csv(rows: list[dict[str, Any]]) -> str:
    """Legacy history CSV: UID,type,client,account,via,start,wait,duration(talk),record."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        missed = str(row.get("status", "")).lower() != "success"
        wait = int(row.get("wait") or 0)
        talk = 0 if missed else max(int(row.get("duration") or 0) - wait, 0)
        kind = "missed" if missed and row["type"] == "in" else row["type"]
        start = datetime.fromisoformat(row["start"].replace("Z", "+00:00")).strftime("%Y%m%dT%H%M%SZ")
        writer.writerow([row["uid"], kind, row.get("client", ""), row.get("user", ""), row.get("diversion", ""),
                         start, wait, talk, row.get("record", "")])
    return out.getvalue()


_json = json_answer


async def serve(fake: FakeMegafon, *, host: str = "127.0.0.1", port: int = 0,
                task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``fake`` over real HTTP with hypercorn until cancelled; ``task_status`` gets the base URL."""
    await serve_app(fake, host=host, port=port, task_status=task_status)
