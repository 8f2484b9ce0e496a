"""Scaffolding for local fake upstream servers (a PBX's or a CRM's API) that plugin tests run against.

ctid tests plugins against fakes that speak the upstream's documented wire format, errors included,
never against mocks. What every such fake needs is here, so each plugin writes only the API itself:

- :class:`FaultScript`: scripted trouble. ``throttle(times, retry_after, after=)`` answers 429 with
  ``Retry-After``, ``fail(times, status, retry_after, after=)`` answers 5xx, ``lose_answers(times,
  after=)`` carries a request out and answers 504 (the client cannot know the write happened), and
  ``down`` answers 503 to everything. The body of each scripted answer is the upstream's own error
  format: override :meth:`FaultScript.fault_body`.
- :class:`FakeServer`: a plain ASGI app built on it that records every request
  (:class:`FakeRequest`: method, path, query, headers, body, parsed JSON / form, the Trio clock
  time and the answered status) and hands the rest to :meth:`FakeServer.handle`.
- :func:`serve` / :func:`serving`: serve any ASGI app (a :class:`FakeServer`, a quart-trio app)
  with hypercorn on a free port of 127.0.0.1, optionally over TLS from a throw-away CA
  (:func:`tls_files`, needs ``trustme``), and give its base URL.

Use a fake in-process with ``httpx.AsyncClient(transport=httpx.ASGITransport(app=fake))`` or over
real HTTP with ``async with serving(fake) as url``.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import trio

from ctid.asgi import lifespan, read_body, respond

Answer = tuple[int, dict[str, str], bytes]


@dataclass(slots=True)
class Fault:
    """One scripted answer: ``None`` slots in the script let requests through."""

    status: int
    retry_after: float | None = None
    lose: bool = False  # carry the request out, then answer ``status`` (504): the answer is lost


class FaultScript:
    """Scripted throttling, failures and lost answers, consumed one per request in order.

    A mixin without ``__init__`` (fakes are often dataclasses): its state is created on first use.
    """

    down: bool = False  # answer 503 to everything while set

    @property
    def faults(self) -> deque[Fault | None]:
        script = self.__dict__.get("_fault_script")
        if script is None:
            script = self.__dict__["_fault_script"] = deque()
        return script

    def throttle(self, times: int = 1, retry_after: float = 1, *, after: int = 0) -> None:
        """``times`` requests, after the next ``after`` ones, get 429 with ``Retry-After``."""
        self.faults.extend([None] * after)
        self.faults.extend([Fault(429, retry_after)] * times)

    def fail(self, times: int = 1, status: int = 503, retry_after: float | None = None, *, after: int = 0) -> None:
        """``times`` requests, after the next ``after`` ones, fail with ``status``."""
        self.faults.extend([None] * after)
        self.faults.extend([Fault(status, retry_after)] * times)

    def lose_answers(self, times: int = 1, *, after: int = 0) -> None:
        """``times`` requests, after the next ``after`` ones, are carried out but answered 504."""
        self.faults.extend([None] * after)
        self.faults.extend([Fault(504, lose=True)] * times)

    def next_fault(self) -> Fault | None:
        """The scripted answer for the request now arriving (``down`` first), or None."""
        if self.down:
            return Fault(503)
        return self.faults.popleft() if self.faults else None

    def fault_headers(self, fault: Fault) -> dict[str, str]:
        if fault.retry_after is None:
            return {}
        return {"retry-after": str(int(fault.retry_after) if float(fault.retry_after).is_integer()
                                   else fault.retry_after)}

    def fault_body(self, fault: Fault) -> Any:
        """The upstream's error body for a scripted answer (JSON); override for its wire format."""
        return {"error": {429: "Too Many Requests", 504: "Gateway Timeout"}.get(fault.status, "Service Unavailable")}


@dataclass(slots=True)
class FakeRequest:
    """One request a fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float = 0.0  # trio.current_time() at receipt (MockClock time in tests)
    status: int = 0  # the answered status
    _json: Any = field(default=None, repr=False)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def json(self) -> Any:
        """The body as JSON (None when it is not JSON)."""
        if self._json is None and self.body and "json" in self.content_type:
            try:
                self._json = json.loads(self.body)
            except ValueError:
                self._json = None
        return self._json

    @property
    def form(self) -> dict[str, str]:
        """The body as a form (empty when it is JSON or empty)."""
        if not self.body or "json" in self.content_type:
            return {}
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))


class FakeServer(FaultScript):
    """A plain ASGI fake upstream: records each request in :attr:`requests`, applies the
    :class:`FaultScript`, and answers with :meth:`handle`. Subclasses (dataclasses welcome) set
    :attr:`request_class` to a :class:`FakeRequest` subclass for API-specific properties."""

    request_class: type[FakeRequest] = FakeRequest

    @property
    def requests(self) -> list[FakeRequest]:
        log = self.__dict__.get("_requests")
        if log is None:
            log = self.__dict__["_requests"] = []
        return log

    def handle(self, request: FakeRequest) -> Answer:
        """The answer to ``request``: ``(status, headers, body)``."""
        raise NotImplementedError

    def fault_answer(self, fault: Fault) -> Answer:
        return json_answer(fault.status, self.fault_body(fault), self.fault_headers(fault))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        body = await read_body(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        request = self.request_class(scope["method"], scope["path"], query, headers, body, at=trio.current_time())
        self.requests.append(request)
        status, out_headers, out = self.answer(request)
        request.status = status
        await respond(send, status, out_headers, out)

    def answer(self, request: FakeRequest) -> Answer:
        fault = self.next_fault()
        if fault is not None and not fault.lose:
            return self.fault_answer(fault)
        result = self.handle(request)
        return self.fault_answer(fault) if fault is not None else result


def json_answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
    return status, {"content-type": "application/json", **(headers or {})}, json.dumps(body).encode()


@dataclass(frozen=True, slots=True)
class TLSFiles:
    ca: Path  # the CA certificate clients must trust
    cert: Path
    key: Path


def tls_files(workdir: Path) -> TLSFiles:
    """A throw-away CA and a certificate for 127.0.0.1 / localhost, written under ``workdir``."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = TLSFiles(workdir / "ca.pem", workdir / "cert.pem", workdir / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    cert.private_key_pem.write_to_path(str(files.key))
    with files.cert.open("wb") as out:
        for blob in cert.cert_chain_pems:
            out.write(blob.bytes())
    return files


async def serve(app: Any, *, host: str = "127.0.0.1", port: int = 0, tls: TLSFiles | None = None,
                shutdown_trigger: Any = None, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ASGI ``app`` with hypercorn (a free port by default) until cancelled or
    ``shutdown_trigger`` returns; ``task_status`` gets the base URL (``http(s)://127.0.0.1:<port>``)."""
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = config.errorlog = None
    config.graceful_timeout = 0.2
    if tls is not None:
        config.certfile, config.keyfile = str(tls.cert), str(tls.key)

    async def run(*, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        kwargs = {"shutdown_trigger": shutdown_trigger} if shutdown_trigger is not None else {}
        await hypercorn_serve(app, config, task_status=task_status, **kwargs)

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(run)
        task_status.started(binds[0].rstrip("/"))


@asynccontextmanager
async def serving(app: Any, *, tls: TLSFiles | None = None) -> AsyncIterator[str]:
    """``async with serving(fake) as url:`` — ``app`` served on a free port for the block."""
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(lambda task_status: serve(app, tls=tls, shutdown_trigger=stop.wait,
                                                            task_status=task_status))
        try:
            yield url
        finally:
            stop.set()
