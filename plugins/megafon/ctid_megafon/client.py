"""HTTP client of the MegaFon PBX: REST CRM API v1 (``X-API-KEY``) and the legacy ``crm_api.wcgp`` API.

Both generations offer the same operations here (click-to-call, DND, history, users, groups,
recording download); :class:`MegafonClient` picks the wire form from ``api_generation``. Every
failure becomes a :class:`ctid.errors.PBXError` carrying the PBX's own error text and HTTP status,
``retry_after`` when the PBX sent ``Retry-After``, and ``retryable`` only for failures worth retrying.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ctid.errors import PBXError
from ctid_megafon.config import MegafonConfig
from ctid_megafon.events import InvalidParameters, Summary, summaries_from_csv, summary_from_row

#: Date forms the history API is known to accept; the compact one is tried first (mikopbx uses it).
DATE_FORMS = ("%Y%m%dT%H%M%SZ", "%Y-%m-%dT%H:%M:%SZ")
MAX_PAGES = 1000


@dataclass(slots=True)
class PbxUserInfo:
    """A PBX user (employee) as ``/users`` or legacy ``accounts`` lists it."""

    login: str
    name: str | None = None
    ext: str | None = None
    telnum: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"login": self.login, "name": self.name, "ext": self.ext, "telnum": self.telnum, **self.extra}


@dataclass(slots=True)
class PbxGroup:
    """A PBX department (group)."""

    id: str
    name: str | None = None
    ext: str | None = None
    users: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "ext": self.ext, "users": list(self.users)}


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _error_text(response: httpx.Response) -> str:
    """The PBX's own words: JSON ``error``/``message``/``errors``, else the start of the body."""
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        for name in ("error", "message", "Message", "errors"):
            if data.get(name):
                value = data[name]
                return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = response.text.strip()
    if text.lower().startswith(("<!doctype", "<html")):
        return "an HTML page (wrong api_url?)"
    return text[:200] or response.reason_phrase or "no details"


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        return None


_ERROR_IDS = {401: "pbx_unauthorized", 403: "pbx_forbidden", 404: "pbx_not_found", 429: "pbx_throttled",
              501: "pbx_not_implemented"}


class MegafonClient:
    """One tenant's API. ``transport`` lets tests plug in the fake server (``httpx.ASGITransport``)."""

    def __init__(self, config: MegafonConfig, *, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self.rest = config.api_generation == "rest"
        self.base = config.endpoint()
        self._key = config.api_key.get_secret_value()
        self._http = httpx.AsyncClient(timeout=config.timeout, transport=transport, follow_redirects=False)
        self._date_form = 0  # index into DATE_FORMS that the tenant accepts

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- transport -------------------------------------------------------------------------------
    def _fail(self, what: str, response: httpx.Response) -> PBXError:
        status = response.status_code
        retryable = status == 429 or status >= 500 and status != 501
        return PBXError(
            f"MegaFon {what}: HTTP {status}: {_error_text(response)}",
            error_id=_ERROR_IDS.get(status, "pbx_refused" if status < 500 else "pbx_failed"),
            retry_after=_retry_after(response),
            retryable=retryable,
            code=str(status),
        )

    async def _send(self, what: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise PBXError(f"MegaFon {what}: no answer within {self.config.timeout:g}s", error_id="pbx_timeout") from exc
        except httpx.HTTPError as exc:
            raise PBXError(f"MegaFon {what}: cannot reach {urlsplit(url).netloc}: {exc}", error_id="pbx_unreachable") from exc
        if response.status_code >= 400:
            raise self._fail(what, response)
        return response

    @staticmethod
    def _body(what: str, response: httpx.Response) -> Any:
        """Decoded JSON, rejecting error objects sent with HTTP 200 and HTML pages."""
        if not response.content.strip():
            return None
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError):
            text = response.text.strip()
            if text.lower().startswith(("<!doctype", "<html")):
                raise PBXError(f"MegaFon {what}: got an HTML page instead of JSON (wrong api_url?)",
                               error_id="pbx_bad_answer", retryable=False) from None
            return text  # legacy makeCall answers a bare CallID
        if isinstance(data, dict) and (data.get("error") or (data.get("errors") and not data.get("items"))):
            raise PBXError(f"MegaFon {what}: {_error_text(response)}", error_id="pbx_refused", retryable=False)
        return data

    async def _rest(self, what: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"X-API-KEY": self._key, "Accept": "application/json"}
        response = await self._send(what, method, self.base + path, headers=headers, **kwargs)
        return self._body(what, response)

    async def _legacy(self, what: str, cmd: str, **params: Any) -> httpx.Response:
        data = {"cmd": cmd, "token": self._key, **{k: v for k, v in params.items() if v is not None}}
        return await self._send(what, "POST", self.base, data=data)

    # -- commands --------------------------------------------------------------------------------
    async def make_call(self, user: str, phone: str) -> str | None:
        """Ring ``user`` (login, extension or direct number), then ``phone`` (digits, no ``+``)."""
        if self.rest:
            data = await self._rest("makecall", "POST", "/makecall", json={"phone": phone, "user": user})
        else:
            data = self._body("makeCall", await self._legacy("makeCall", "makeCall", phone=phone, user=user))
        if isinstance(data, dict):  # {"callid": ...} (REST) or {"CallID": ...}; some tenants send neither
            value = data.get("callid") or data.get("CallID") or data.get("callId")
            return _str(value)
        if isinstance(data, str | int):
            return _str(data).strip('"') if _str(data) else None  # type: ignore[union-attr]
        return None

    async def set_dnd(self, user: str, enabled: bool) -> None:
        if self.rest:
            await self._rest("dnd", "POST" if enabled else "DELETE", f"/users/{_path(user)}/dnd")
        else:
            self._body("set_dnd", await self._legacy("set_dnd", "set_dnd", user=user, state="true" if enabled else "false"))

    async def get_dnd(self, user: str) -> bool:
        if self.rest:
            data = await self._rest("dnd", "GET", f"/users/{_path(user)}/dnd")
        else:
            data = self._body("get_dnd", await self._legacy("get_dnd", "get_dnd", user=user))
        return bool(isinstance(data, dict) and data.get("state") in (True, "true", 1, "1"))

    # -- directory -------------------------------------------------------------------------------
    async def _paged(self, what: str, path: str) -> list[dict[str, Any]]:
        """Follow ``info.next`` of ``{items, info}`` pages (an offset, or a URL with ``start=``)."""
        items: list[dict[str, Any]] = []
        start: Any = 0
        for _ in range(MAX_PAGES):
            data = await self._rest(what, "GET", path, params={"start": start} if start else None)
            if isinstance(data, list):  # some tenants answer a bare list
                return items + [item for item in data if isinstance(item, dict)]
            if not isinstance(data, dict) or not isinstance(data.get("items"), list):
                raise PBXError(f"MegaFon {what}: unexpected answer (no 'items')", error_id="pbx_bad_answer")
            items.extend(item for item in data["items"] if isinstance(item, dict))
            info = data.get("info") if isinstance(data.get("info"), dict) else {}
            nxt = info.get("next")
            if isinstance(nxt, str) and "start=" in nxt:
                nxt = nxt.split("start=", 1)[1].split("&", 1)[0]
            if nxt in (None, "", False) or str(nxt) == str(start) or not data["items"]:
                return items
            start = nxt
        raise PBXError(f"MegaFon {what}: more than {MAX_PAGES} pages", error_id="pbx_bad_answer")

    async def users(self) -> list[PbxUserInfo]:
        if self.rest:
            rows = await self._paged("users", "/users")
            login_key, name_key = "login", "name"
        else:  # legacy `accounts`: `name` is the login, `realName` the person
            rows = self._body("accounts", await self._legacy("accounts", "accounts")) or []
            login_key, name_key = "name", "realName"
        users = []
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, dict):
                continue
            login = _str(row.get(login_key))
            if not login:
                continue
            extra = {k: row[k] for k in ("email", "status", "role", "dnd", "mobile") if row.get(k) is not None}
            users.append(PbxUserInfo(login, _str(row.get(name_key)), _str(row.get("ext")), _str(row.get("telnum")), extra))
        return users

    async def groups(self) -> list[PbxGroup]:
        if self.rest:
            rows = await self._paged("groups", "/groups")
        else:
            rows = self._body("groups", await self._legacy("groups", "groups")) or []
        groups = []
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, dict):
                continue
            gid = _str(row.get("id"))
            if not gid:
                continue
            members = [
                str(u.get("login")) for u in row.get("users") or [] if isinstance(u, dict) and u.get("login")
            ]
            groups.append(PbxGroup(gid, _str(row.get("name") or row.get("realName")), _str(row.get("ext")), members))
        return groups

    # -- history ---------------------------------------------------------------------------------
    async def history(self, start: datetime, end: datetime, *, region: str = "RU") -> list[Summary]:
        """Finished calls that started in ``[start, end)``, all pages, oldest first, no duplicates.

        The API has no offset and its row order is not documented, so a full page is continued by
        time windows: the rows of a full page span ``[first, last]`` of its order; when the page is
        oldest-first the rest is at or after the newest start seen, when newest-first at or before
        the oldest one, and when the order cannot be told (one instant) both sides are asked.
        Boundary instants are asked again and their rows dropped by ``uid``.
        """
        seen: dict[str, Summary] = {}
        windows = [(start, end)]
        for _ in range(MAX_PAGES):  # a bound, not an expected count: one page is the usual pull
            if not windows:
                break
            low, high = windows.pop()
            rows = await self._history_page(low, high, region)
            fresh = [row for row in rows if row.callid not in seen]
            for row in fresh:
                seen[row.callid] = row
            starts = [row.start for row in rows if row.start is not None]
            if len(rows) < self.config.history_limit or not fresh or not starts:
                continue
            oldest, newest = min(starts), max(starts)
            older = (low, oldest + timedelta(seconds=1))  # the instant itself again: rows there may be cut
            newer = (newest, high)
            ascending, descending = starts[0] < starts[-1], starts[0] > starts[-1]
            for window, wanted in ((older, not ascending), (newer, not descending)):
                # asked only if it may hold rows this page did not, and is smaller than this window
                if wanted and window[0] < window[1] and window != (low, high) and (
                        window[0] > low or window[1] < high):
                    windows.append(window)
        return sorted(seen.values(), key=lambda s: (s.start or start, s.callid))

    async def _history_page(self, start: datetime, end: datetime, region: str) -> list[Summary]:
        limit = self.config.history_limit
        while True:
            form = DATE_FORMS[self._date_form]
            window = {"start": _fmt(start, form), "end": _fmt(end, form), "type": "all", "limit": limit}
            try:
                if self.rest:
                    data = await self._rest("history", "GET", "/history/json", params=window)
                else:
                    response = await self._legacy("history", "history", **window)
                    return summaries_from_csv(response.text, region)
            except PBXError as exc:
                # A tenant that rejects one date form gets the other (both are seen in the field).
                if exc.code == "400" and self._date_form + 1 < len(DATE_FORMS):
                    self._date_form += 1
                    continue
                raise
            except InvalidParameters as exc:
                raise PBXError(f"MegaFon history: {exc}", error_id="pbx_bad_answer", retryable=False) from exc
            break
        if data is None:
            return []
        if not isinstance(data, list):
            raise PBXError("MegaFon history: expected a JSON array", error_id="pbx_bad_answer", retryable=False)
        out = []
        for row in data:
            if not isinstance(row, dict):
                continue
            try:
                out.append(summary_from_row(row, region))
            except InvalidParameters as exc:
                raise PBXError(f"MegaFon history: bad row {row.get('uid')!r}: {exc}",
                               error_id="pbx_bad_answer", retryable=False) from exc
        return out

    # -- recordings ------------------------------------------------------------------------------
    async def download(self, link: str) -> tuple[bytes, str] | None:
        """The recording at ``link``, or None while it does not exist yet (404).

        The API key is sent only to the tenant's own host, never to a foreign host named in a push.
        """
        parts = urlsplit(link)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PBXError(f"MegaFon recording: not an http(s) link: {link[:80]!r}", error_id="pbx_bad_answer",
                           retryable=False)
        headers = {"X-API-KEY": self._key} if parts.hostname.lower() == self.config.api_host() else {}
        try:
            response = await self._send("recording", "GET", link, headers=headers)
        except PBXError as exc:
            if exc.code in ("404", "410"):
                return None
            raise
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media in ("", "application/octet-stream", "binary/octet-stream"):
            media = _media_for(parts.path)
        if media.startswith(("text/html", "application/json")):
            raise PBXError("MegaFon recording: got a page instead of audio", error_id="pbx_bad_answer")
        return response.content, media


def _media_for(path: str) -> str:
    lowered = path.lower()
    for suffix, media in ((".mp3", "audio/mpeg"), (".wav", "audio/wav"), (".ogg", "audio/ogg")):
        if lowered.endswith(suffix):
            return media
    return "audio/mpeg"


def _fmt(value: datetime, form: str) -> str:
    return value.astimezone(UTC).strftime(form)


def _path(login: str) -> str:
    return quote(login, safe="@._-")
