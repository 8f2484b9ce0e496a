"""A thin JSON-RPC 2.0 client for CoMagic's Call API (v4.0) and Data API (v2.0): auth, errors, points.

No maintained Python SDK exists (reference §4), so this is the small client the reference suggests [guess §4]:

- **auth**: a permanent key, or ``login.user`` sessions that live one hour, renewed
  ``token_renew_margin`` seconds before ``expire_at`` and once more when the platform says the
  token is invalid (the bug of third-party clients that re-send the same token, §4);
- **errors** are read from ``error.data.mnemonic``, never from ``code`` (§2.7), and become
  :class:`~ctid.errors.PBXError` with the stable id ``pbx_refused:<mnemonic>`` (or ``pbx_unauthorized``,
  ``pbx_throttled`` ...) and a sentence an operator understands;
- **points**: every answer's ``metadata.limits`` is remembered per API; when the minute or day
  budget is spent, requests are not sent until it resets: background work waits, commands fail at
  once with ``retry_after`` (never hammer, §2.3).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import trio

from ctid.errors import PBXError
from ctid_comagic.config import ComagicConfig

log = logging.getLogger(__name__)

Api = Literal["call", "data"]

#: Mnemonics an operator may meet, in words (others show the platform's own message).
PLAIN = {
    "invalid_state": "the call is not in a state that allows this",
    "call_session_not_found": "the call no longer exists on the PBX",
    "employee_not_found": "no such employee on the PBX",
    "no_active_phone_number": "the employee has no active phone number",
    "contact_in_blacklist": "the number is on the PBX's black list",
    "component_disabled": "this feature is not included in the account's tariff",
    "ip_not_whitelisted": "ctid's address is not on the account's API IP whitelist",
    "forbidden": "the API user is not allowed to do this",
    "limit_exceeded": "the account's API points are spent; try again later",
    "account_inactive": "the CoMagic account is inactive",
    "virtual_phone_number_not_found": "the virtual number is not the account's",
    "leg_not_found": "that call leg no longer exists",
}
_AUTH = {"access_token_expired", "access_token_blocked", "access_token_invalid", "auth_error"}
_RETRYABLE = {"internal_error", "limit_exceeded"}


@dataclass(slots=True)
class Limits:
    """The last ``metadata.limits`` of one API, with the clock time each budget resets."""

    minute_remaining: int | None = None
    minute_reset_at: float = 0.0
    day_remaining: int | None = None
    day_reset_at: float = 0.0
    minute_limit: int | None = None
    day_limit: int | None = None

    def update(self, limits: Any, now: float) -> None:
        if not isinstance(limits, dict):
            return
        number = _int_or_none
        self.minute_limit, self.day_limit = number(limits.get("minute_limit")), number(limits.get("day_limit"))
        self.minute_remaining = number(limits.get("minute_remaining"))
        self.day_remaining = number(limits.get("day_remaining"))
        self.minute_reset_at = now + (number(limits.get("minute_reset")) or 0)
        self.day_reset_at = now + (number(limits.get("day_reset")) or 0)

    def wait(self, now: float) -> float:
        """Seconds until a request may be sent (0 when points are left or the budget has reset)."""
        waits = []
        if self.minute_remaining is not None and self.minute_remaining <= 0 and self.minute_reset_at > now:
            waits.append(self.minute_reset_at - now)
        if self.day_remaining is not None and self.day_remaining <= 0 and self.day_reset_at > now:
            waits.append(self.day_reset_at - now)
        return max(waits, default=0.0)

    def spent(self, now: float, seconds: float = 60.0) -> None:
        """The platform said ``limit_exceeded``: nothing more this minute (it names no reset time)."""
        self.minute_remaining = 0
        self.minute_reset_at = max(self.minute_reset_at, now + seconds)

    def to_json(self) -> dict[str, Any]:
        return {"minute_remaining": self.minute_remaining, "minute_limit": self.minute_limit,
                "day_remaining": self.day_remaining, "day_limit": self.day_limit}


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isascii() and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def rpc_error(api: Api, method: str, error: dict[str, Any]) -> PBXError:
    """A JSON-RPC ``error`` object as a :class:`PBXError`, keyed by ``data.mnemonic``."""
    data = error.get("data") if isinstance(error.get("data"), dict) else {}
    mnemonic = str(data.get("mnemonic") or "unknown_error")[:64]
    message = str(error.get("message") or "")[:300]
    field = data.get("field")
    words = PLAIN.get(mnemonic, message or mnemonic)
    where = f" (field {field})" if field else ""
    text = f"CoMagic {method}: {words}{where} [{mnemonic}]"
    if mnemonic in _AUTH:
        return PBXError(text, error_id="pbx_unauthorized", retryable=False, code=mnemonic)
    if mnemonic == "limit_exceeded":
        return PBXError(text, error_id="pbx_throttled", retryable=True, code=mnemonic, retry_after=60)
    if mnemonic == "ip_not_whitelisted":
        return PBXError(text, error_id="pbx_forbidden", retryable=False, code=mnemonic)
    return PBXError(text, error_id=f"pbx_refused:{mnemonic}", retryable=mnemonic in _RETRYABLE, code=mnemonic)


class RpcClient:
    """Both APIs of one account. ``transport`` lets tests plug in the fake (``httpx.ASGITransport``)."""

    def __init__(self, config: ComagicConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], float] = time.time):
        self.config = config
        self.clock = clock  # wall clock (unix seconds): session tokens carry a unix expire_at
        self._http = httpx.AsyncClient(timeout=config.timeout, transport=transport, follow_redirects=False)
        self._ids = itertools.count(1)
        self._tokens: dict[Api, tuple[str, float]] = {}
        self._login_lock = {"call": trio.Lock(), "data": trio.Lock()}
        self.limits: dict[Api, Limits] = {"call": Limits(), "data": Limits()}
        self.app_id: Any = None

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- transport -------------------------------------------------------------------------------
    async def _post(self, api: Api, method: str, params: dict[str, Any]) -> dict[str, Any]:
        url = self.config.endpoint(api)
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        content = json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=UTF-8"}  # httpx sets Content-Length
        try:
            response = await self._http.post(url, content=content, headers=headers)
        except httpx.TimeoutException as exc:
            raise PBXError(f"CoMagic {method}: no answer within {self.config.timeout:g}s",
                           error_id="pbx_timeout") from exc
        except httpx.HTTPError as exc:
            raise PBXError(f"CoMagic {method}: cannot reach {httpx.URL(url).host}: {exc}",
                           error_id="pbx_unreachable") from exc
        try:
            answer = response.json()
        except (ValueError, UnicodeDecodeError):
            answer = None
        if not isinstance(answer, dict) or ("result" not in answer and "error" not in answer):
            raise PBXError(f"CoMagic {method}: HTTP {response.status_code}, not a JSON-RPC answer",
                           error_id="pbx_bad_answer", retryable=response.status_code >= 500)
        return answer

    async def _token(self, api: Api) -> str:
        key = self.config.api_key
        if key is not None:
            return key.get_secret_value()
        async with self._login_lock[api]:
            token = self._tokens.get(api)
            if token is not None and self.clock() < token[1] - self.config.token_renew_margin:
                return token[0]
            password = self.config.password.get_secret_value() if self.config.password else ""
            answer = await self._post(api, "login.user", {"login": self.config.login, "password": password})
            if "error" in answer:
                raise rpc_error(api, "login.user", answer["error"] if isinstance(answer["error"], dict) else {})
            data = _data(answer)
            access, expire = data.get("access_token"), _int_or_none(data.get("expire_at"))
            if not isinstance(access, str) or not access:
                raise PBXError("CoMagic login.user: no access_token in the answer", error_id="pbx_bad_answer")
            if data.get("app_id") is not None:
                self.app_id = data["app_id"]
            # The platform documents one hour; a missing expire_at is read as exactly that.
            self._tokens[api] = (access, float(expire) if expire else self.clock() + 3600)
            log.info("CoMagic %s API: new session token, expires at %s", api, expire)
            return access

    async def call(self, api: Api, method: str, params: dict[str, Any] | None = None, *,
                   wait: bool = False) -> dict[str, Any]:
        """``result`` of ``method``. ``wait``: sleep through a spent points budget instead of failing."""
        limits = self.limits[api]
        pause = limits.wait(trio.current_time())
        if pause > 0:
            if not wait:
                raise PBXError(f"CoMagic {method}: API points spent, not sending for {pause:.0f}s [limit_exceeded]",
                               error_id="pbx_throttled", retry_after=pause, code="limit_exceeded")
            log.info("CoMagic %s API: points spent, waiting %.0fs", api, pause)
            await trio.sleep(pause)
        for attempt in (1, 2):
            token = await self._token(api)
            answer = await self._post(api, method, {**(params or {}), "access_token": token})
            result = answer.get("result")
            error = answer.get("error")
            if isinstance(result, dict):
                limits.update((result.get("metadata") or {}).get("limits")
                              if isinstance(result.get("metadata"), dict) else None, trio.current_time())
                return result
            if not isinstance(error, dict):  # neither a result object nor an error object
                raise PBXError(f"CoMagic {method}: a JSON-RPC answer without a result object or an error",
                               error_id="pbx_bad_answer")
            failure = rpc_error(api, method, error)
            if failure.code == "limit_exceeded":
                limits.spent(trio.current_time())
            if failure.code == "access_token_invalid" and self.config.api_key is None and attempt == 1:
                self._tokens.pop(api, None)  # the session ended early: log in again, once
                continue
            raise failure
        raise AssertionError("unreachable")  # pragma: no cover

    async def logout(self) -> None:
        for api, (token, _) in list(self._tokens.items()):
            try:
                await self._post(api, "logout.user", {"access_token": token})
            except PBXError:
                pass
            self._tokens.pop(api, None)

    # -- Call API --------------------------------------------------------------------------------
    async def control(self, method: str, session: str, **params: Any) -> dict[str, Any]:
        """A call-control method (hold.call, transfer.talk ...) on one call session."""
        result = await self.call("call", method, {"call_session_id": _session(session), **params})
        return _data({"result": result})

    async def start_employee_call(self, params: dict[str, Any]) -> str | None:
        data = _data({"result": await self.call("call", "start.employee_call", params)})
        value = data.get("call_session_id")
        return str(value) if value is not None else None

    # -- Data API --------------------------------------------------------------------------------
    async def data(self, method: str, params: dict[str, Any] | None = None, *, wait: bool = True) -> dict[str, Any]:
        return await self.call("data", method, params, wait=wait)

    async def account(self) -> dict[str, Any]:
        rows = (await self.data("get.account", wait=False)).get("data")
        row = rows[0] if isinstance(rows, list) and rows else rows
        if not isinstance(row, dict):
            raise PBXError("CoMagic get.account: unexpected answer", error_id="pbx_bad_answer")
        return row

    async def rows(self, method: str, params: dict[str, Any], *, limit: int, wait: bool = True) -> tuple[list, int]:
        """One page: (rows, metadata.total_items)."""
        result = await self.data(method, {**params, "limit": limit}, wait=wait)
        rows = result.get("data")
        if not isinstance(rows, list):
            raise PBXError(f"CoMagic {method}: expected a list of rows", error_id="pbx_bad_answer")
        meta = result.get("metadata") if isinstance(result.get("metadata"), dict) else {}
        total = _int_or_none(meta.get("total_items"))
        return [row for row in rows if isinstance(row, dict)], total if total is not None else len(rows)


def _data(answer: dict[str, Any]) -> dict[str, Any]:
    result = answer.get("result")
    data = result.get("data") if isinstance(result, dict) else None
    return data if isinstance(data, dict) else {}


def _session(value: str) -> int | str:
    """Call session ids are numbers on the wire (§2.5)."""
    return int(value) if str(value).isascii() and str(value).isdigit() else value
