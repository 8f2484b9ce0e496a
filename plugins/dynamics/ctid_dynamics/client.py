"""Dynamics Web API client on httpx: authentication (msal / NTLM), OData headers, error mapping, a concurrency cap.

Every failure leaves this module as :class:`ctid.errors.CRMError`: HTTP errors carry Dynamics' own
error ``code`` and message, 429/503 carry ``retry_after`` from ``Retry-After``, network failures and
token failures say what could not be reached. The outbox worker retries ``retryable`` errors.
"""

from __future__ import annotations

import email.utils
import logging
import ssl
import time
import uuid
import warnings
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
import trio

from ctid.errors import CRMError
from ctid.limits import ascii_digits

from .config import ADFSAuth, ClientCredentialsAuth, DynamicsConfig, NTLMAuth

log = logging.getLogger(__name__)

ODATA_HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}
#: Ask for formatted values and lookup logical names (company names, owner types).
PREFER_ANNOTATIONS = 'odata.include-annotations="*"'
#: Seconds before expiry at which a cached token is refreshed.
TOKEN_MARGIN = 300


def odata_quote(value: str) -> str:
    """A string literal for ``$filter``: single quotes doubled, then enclosed."""
    return "'" + value.replace("'", "''") + "'"


def encode_query(params: Mapping[str, str]) -> str:
    """Percent-encode a query so that ``+`` becomes ``%2B`` and spaces ``%20`` (OData needs both)."""
    return "&".join(f"{quote(key, safe='$')}={quote(value, safe=chr(39) + '(),/')}" for key, value in params.items())


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from_response(response: httpx.Response, what: str) -> CRMError:
    """Translate a Dynamics error answer (``{"error": {"code", "message"}}``) into a CRMError."""
    status = response.status_code
    code: str | None = None
    message = response.reason_phrase or "error"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code") or None
        message = body["error"].get("message") or message
    retryable = status in (401, 408, 429) or status >= 500
    error_id = {
        401: "crm_unauthorized", 403: "crm_forbidden", 404: "crm_not_found", 429: "crm_throttled",
    }.get(status, "crm_unavailable" if status >= 500 else "crm_rejected")
    if status == 401 and not code:
        message = f"{message}: the credentials in crm.auth were refused"
    text = f"Dynamics answered {status} to {what}: {message}" + (f" [{code}]" if code else "")
    error = CRMError(text, error_id=error_id, retry_after=_retry_after(response), retryable=retryable, code=code)
    error.upstream_status = status  # type: ignore[attr-defined]
    return error


def parse_batch_response(response: httpx.Response) -> list[httpx.Response]:
    """The inner responses of a ``$batch`` answer (``multipart/mixed`` of ``application/http`` parts)."""
    content_type = response.headers.get("content-type", "")
    _, _, boundary = content_type.partition("boundary=")
    boundary = boundary.split(";")[0].strip().strip('"')
    if not content_type.startswith("multipart/mixed") or not boundary:
        raise CRMError(f"Dynamics answered a $batch with {content_type or 'no content type'}", error_id="crm_bad_answer")
    answers = []
    for part in response.content.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        _, _, http = part.lstrip(b"\r\n").partition(b"\r\n\r\n")  # skip the part's MIME headers
        head, _, body = http.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        fields = status_line.split(" ", 2)
        if len(fields) < 2 or not ascii_digits(fields[1]):
            raise CRMError(f"unreadable part in a $batch answer: {status_line[:80]!r}", error_id="crm_bad_answer")
        headers = [tuple(h.split(":", 1)) for h in header_lines if ":" in h]
        answers.append(httpx.Response(
            int(fields[1]), headers=[(k.strip(), v.strip()) for k, v in headers], content=body.rstrip(b"\r\n"),
        ))
    return answers


class TokenSource:
    """OAuth tokens from msal (client credentials or AD FS), cached; msal's blocking calls run in a thread."""

    def __init__(self, config: DynamicsConfig):
        self._config = config
        self._auth: ClientCredentialsAuth | ADFSAuth = config.auth  # type: ignore[assignment]
        self._app: Any = None
        self._session: Any = None
        self._lock = trio.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        #: Wall clock for token expiry (tokens carry wall-clock lifetimes); tests replace it.
        self.clock = time.time
        #: How many tokens were fetched from the identity provider (not from a cache).
        self.fetched = 0

    @property
    def scopes(self) -> list[str]:
        auth = self._auth
        if auth.scope:
            return [auth.scope]
        suffix = "user_impersonation" if isinstance(auth, ADFSAuth) else ".default"
        return [f"{self._config.url}/{suffix}"]

    def _http_client(self) -> Any:
        import requests

        if self._session is not None:
            return self._session
        session = requests.Session()
        if self._config.ca_bundle:
            session.trust_env = False  # else REQUESTS_CA_BUNDLE would override our CA
            session.verify = str(self._config.ca_bundle)
        self._session = session
        return session

    def _build_app(self) -> Any:
        import msal

        auth = self._auth
        if isinstance(auth, ClientCredentialsAuth):
            if auth.certificate is not None:
                credential: Any = {
                    "private_key": auth.certificate.read_text(),
                    "thumbprint": auth.thumbprint,
                }
            else:
                credential = auth.client_secret.get_secret_value()  # type: ignore[union-attr]
            return msal.ConfidentialClientApplication(
                auth.client_id,
                client_credential=credential,
                authority=auth.authority_url(),
                instance_discovery=auth.instance_discovery,
                http_client=self._http_client(),
                timeout=self._config.timeout,
            )
        if auth.client_secret is not None:
            return msal.ConfidentialClientApplication(
                auth.client_id,
                client_credential=auth.client_secret.get_secret_value(),
                authority=auth.authority,
                http_client=self._http_client(),
                timeout=self._config.timeout,
            )
        return msal.PublicClientApplication(
            auth.client_id, authority=auth.authority, http_client=self._http_client(), timeout=self._config.timeout
        )

    def _acquire(self) -> dict[str, Any]:
        """Blocking: build the msal app once, then ask it for a token (msal checks its own cache first)."""
        if self._app is None:
            self._app = self._build_app()
        auth = self._auth
        if isinstance(auth, ADFSAuth) and auth.username:
            accounts = self._app.get_accounts(username=auth.username)
            if accounts:
                result = self._app.acquire_token_silent(self.scopes, account=accounts[0])
                if result and "access_token" in result:
                    return result
            with warnings.catch_warnings():
                # msal discourages the password grant for public clients; with AD FS it is often the
                # only grant that issues Dynamics tokens (see the README), so it is a choice, not news.
                warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"msal\.")
                warnings.filterwarnings("ignore", message=".*deprecated for public client flows", category=DeprecationWarning)
                return self._app.acquire_token_by_username_password(
                    auth.username, auth.password.get_secret_value(), scopes=self.scopes  # type: ignore[union-attr]
                )
        return self._app.acquire_token_for_client(scopes=self.scopes)

    async def token(self) -> str:
        async with self._lock:
            if self._token and self.clock() < self._expires_at - TOKEN_MARGIN:
                return self._token
            if self._token:
                # Near expiry: drop msal's copy too, so the token is renewed now rather than later.
                self._token = None
                await self._forget_in_msal()
            authority = getattr(self._auth, "authority", None) or self._auth.authority_url()  # type: ignore[union-attr]
            try:
                result = await trio.to_thread.run_sync(self._acquire)
            except ValueError as exc:  # msal: bad authority / OIDC discovery failed
                raise CRMError(
                    f"token authority {authority} rejected: {str(exc).splitlines()[0]}",
                    error_id="crm_auth_failed",
                ) from exc
            except Exception as exc:  # requests' connection errors and the like, raised inside msal
                import requests

                detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if isinstance(exc, requests.RequestException):
                    message = f"cannot reach token authority {authority}: {detail}"
                else:
                    message = f"token request to {authority} failed: {detail}"
                raise CRMError(message, error_id="crm_auth_failed") from exc
            if "access_token" not in result:
                error = result.get("error", "unknown_error")
                description = (result.get("error_description") or "").splitlines()
                raise CRMError(
                    f"token request to {authority} failed: {error}: {description[0] if description else ''}".rstrip(": "),
                    error_id="crm_auth_failed",
                    code=error,
                )
            if result.get("token_source") != "cache":
                self.fetched += 1
            self._token = result["access_token"]
            self._expires_at = self.clock() + float(result.get("expires_in") or 3600)
            return self._token

    async def invalidate(self, refused: str) -> None:
        """Forget ``refused`` (Dynamics answered 401 to it) so the next call fetches a fresh token.
        Several requests refused at once cause one refresh, not one each."""
        async with self._lock:
            if self._token != refused:
                return
            self._token = None
            await self._forget_in_msal()

    async def _forget_in_msal(self) -> None:
        app = self._app
        if app is None:
            return
        if hasattr(app, "remove_tokens_for_client"):  # confidential clients
            await trio.to_thread.run_sync(app.remove_tokens_for_client)
        if isinstance(self._auth, ADFSAuth) and self._auth.username:  # the service account's tokens
            for account in await trio.to_thread.run_sync(app.get_accounts):
                await trio.to_thread.run_sync(app.remove_account, account)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


class DynamicsClient:
    """A thin Web API client: ``request`` sends one OData request and maps failures to CRMError."""

    def __init__(self, config: DynamicsConfig, *, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self.base = config.api_url
        self.tokens = TokenSource(config) if not isinstance(config.auth, NTLMAuth) else None
        auth: httpx.Auth | None = None
        if isinstance(config.auth, NTLMAuth):
            from httpx_ntlm import HttpNtlmAuth

            auth = HttpNtlmAuth(f"{config.auth.domain}\\{config.auth.username}", config.auth.password.get_secret_value())
        verify: Any = True
        if config.ca_bundle:
            verify = ssl.create_default_context(cafile=str(config.ca_bundle))
        self._http = httpx.AsyncClient(
            auth=auth,
            verify=verify,
            transport=transport,
            timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
            limits=httpx.Limits(max_connections=config.max_concurrency),
            headers=ODATA_HEADERS,
        )
        self._limiter = trio.CapacityLimiter(config.max_concurrency)
        #: Requests sent to the Web API (not counting token requests).
        self.sent = 0

    async def aclose(self) -> None:
        await self._http.aclose()
        if self.tokens is not None:
            self.tokens.close()

    def url(self, path: str, params: Mapping[str, str] | None = None) -> str:
        url = f"{self.base}/{path.lstrip('/')}"
        return f"{url}?{encode_query(params)}" if params else url

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; return any HTTP answer. Raise CRMError when no answer came or auth failed."""
        url = self.url(path, params)
        what = f"{method} {path.split('?')[0]}"
        async with self._limiter:
            for attempt in (1, 2):
                sent_headers = dict(headers or {})
                if method == "GET":
                    sent_headers.setdefault("If-None-Match", "null")
                token = None
                if self.tokens is not None:
                    token = await self.tokens.token()
                    sent_headers["Authorization"] = f"Bearer {token}"
                try:
                    self.sent += 1
                    response = await self._http.request(method, url, json=json, content=content, headers=sent_headers)
                except httpx.TimeoutException as exc:
                    raise CRMError(
                        f"Dynamics at {self.config.url} did not answer {what} in time ({type(exc).__name__})",
                        error_id="crm_timeout",
                    ) from exc
                except httpx.TransportError as exc:
                    raise CRMError(
                        f"cannot reach Dynamics at {self.config.url}: {type(exc).__name__}: {exc}",
                        error_id="crm_unreachable",
                    ) from exc
                if response.status_code == 401 and self.tokens is not None and token and attempt == 1:
                    log.info("Dynamics refused the token on %s; fetching a new one", what)
                    await self.tokens.invalidate(token)
                    continue
                return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 204), **kwargs: Any) -> httpx.Response:
        """``request`` that raises CRMError unless the status is in ``ok``."""
        response = await self.request(method, path, **kwargs)
        if response.status_code not in ok:
            raise error_from_response(response, f"{method} {path.split('?')[0]}")
        return response

    async def batch_get(
        self, requests: list[tuple[str, Mapping[str, str]]], *, annotations: bool = False
    ) -> list[Any]:
        """Several GETs in one ``$batch`` round trip; the JSON bodies in order. The first failed
        part raises its CRMError (Dynamics stops a batch at the first error)."""
        boundary = f"batch_{uuid.uuid4()}"
        lines: list[str] = []
        for path, params in requests:
            lines += [f"--{boundary}", "Content-Type: application/http", "Content-Transfer-Encoding: binary", "",
                      f"GET {self.url(path, params)} HTTP/1.1", "Accept: application/json"]
            if annotations:
                lines.append(f"Prefer: {PREFER_ANNOTATIONS}")
            lines += ["", ""]
        lines += [f"--{boundary}--", ""]
        response = await self.call(
            "POST", "$batch", ok=(200,), content="\r\n".join(lines).encode(),
            headers={"Content-Type": f'multipart/mixed; boundary="{boundary}"'},
        )
        answers = parse_batch_response(response)
        results = []
        for (path, _), answer in zip(requests, answers, strict=False):
            if answer.status_code != 200:
                raise error_from_response(answer, f"GET {path} (in $batch)")
            results.append(answer.json())
        if len(answers) < len(requests):
            raise CRMError(f"Dynamics answered {len(answers)} of {len(requests)} requests of a $batch",
                           error_id="crm_bad_answer")
        return results

    async def get_json(self, path: str, params: Mapping[str, str] | None = None, *, annotations: bool = False) -> Any:
        headers = {"Prefer": PREFER_ANNOTATIONS} if annotations else None
        response = await self.call("GET", path, ok=(200,), params=params, headers=headers)
        try:
            return response.json()
        except ValueError as exc:
            raise CRMError(
                f"Dynamics answered GET {path} with something that is not JSON; is {self.config.url} a Dynamics organization URL?",
                error_id="crm_bad_answer",
            ) from exc
