"""Fixtures for the hub tests: a fake daemon backend and a hub served by hypercorn on a free port."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import hypercorn.trio
import pytest
import trio
from hypercorn.config import Config
from quart_trio import QuartTrio

from ctid.errors import AuthError, ForbiddenError, NotFoundError, RequestError
from ctid.hub import Hub
from ctid.hub.asgi import HubFastPath


@dataclass(frozen=True)
class FakePrincipal:
    subject: str
    role: str
    agent: str | None


TOKENS = {
    "tok-alice": FakePrincipal("alice", "agent", "alice"),
    "tok-bob": FakePrincipal("bob", "agent", "bob"),
    "tok-sue": FakePrincipal("sue", "supervisor", None),
    "tok-admin": FakePrincipal("root", "admin", None),
    "tok-lead": FakePrincipal("lead", "supervisor", "lead"),  # a supervisor who also takes calls
}


@dataclass
class FakeBackend:
    """Authenticates the tokens above and records invocations; behaves like the daemon's rules:
    an agent may act only on its own calls."""

    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    invocations: list[tuple[str, str, list[Any]]] = field(default_factory=list)
    removed: set[str] = field(default_factory=set)  # subjects resolve() no longer knows
    changed: dict[str, FakePrincipal] = field(default_factory=dict)  # subject -> as configured now

    async def authenticate(self, token: str) -> FakePrincipal:
        await trio.lowlevel.checkpoint()
        if token not in TOKENS:
            raise AuthError("invalid or expired token")
        return TOKENS[token]

    async def resolve(self, subject: str) -> FakePrincipal:
        await trio.lowlevel.checkpoint()
        for principal in TOKENS.values():
            if principal.subject == subject and subject not in self.removed:
                return self.changed.get(subject, principal)
        raise AuthError("no such user any more", error_id="bad_token")

    def _own_call(self, principal: FakePrincipal, call_id: Any) -> dict[str, Any]:
        call = self.calls.get(call_id) if isinstance(call_id, str) else None
        if call is None:
            raise NotFoundError(f"no call {call_id!r}")
        if principal.role == "agent" and call["agent"] != principal.agent:
            raise ForbiddenError("not your call")
        return call

    async def invoke(self, principal: FakePrincipal, method: str, args: list[Any]) -> Any:
        await trio.lowlevel.checkpoint()
        self.invocations.append((principal.subject, method, list(args)))
        if method == "SetStatus":
            if args not in (["available"], ["away"], ["dnd"], ["offline"]):
                raise RequestError(f"bad status {args!r}", error_id="invalid_status")
            return {"agent": principal.agent, "status": args[0]}
        if method == "Dial":
            if len(args) != 1 or not isinstance(args[0], str):
                raise RequestError("Dial(number) takes one phone number", error_id="invalid_arguments")
            call_id = f"call-{len(self.calls) + 1}"
            self.calls[call_id] = {"id": call_id, "agent": principal.agent, "state": "ringing"}
            return {"call_id": call_id}
        if method in ("Hold", "Unhold", "Hangup"):
            call = self._own_call(principal, args[0] if args else None)
            call["state"] = {"Hold": "held", "Unhold": "talking", "Hangup": "ended"}[method]
            return None
        if method == "Transfer":
            call = self._own_call(principal, args[0] if args else None)
            call["agent"] = args[1] if len(args) > 1 else None
            return None
        if method == "Snapshot":
            visible = [c for c in self.calls.values() if principal.role != "agent" or c["agent"] == principal.agent]
            return {"calls": visible, "agents": [], "tasks": []}
        raise AssertionError(f"hub passed an unexpected method {method!r}")


def make_app(hub: Hub) -> QuartTrio:
    app = QuartTrio("ctid-hub-test")
    hub.mount(app, "/hub")
    return app


@asynccontextmanager
async def serve_app(app: Any, port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` with hypercorn in a nursery; yield its base URL."""
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(lambda task_status: hypercorn.trio.serve(
            app, config, shutdown_trigger=stop.wait, task_status=task_status))
        yield binds[0]
        stop.set()


@asynccontextmanager
async def running_hub(hub: Hub, *, fast: bool = True) -> AsyncIterator[str]:
    """Run the hub's background work and serve it as ``ctid serve`` does (the WebSocket through
    :class:`HubFastPath`; ``fast=False``: through the Quart route); yield ``http://127.0.0.1:port/hub``."""
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        app = make_app(hub)
        async with serve_app(HubFastPath(app, hub) if fast else app) as base:
            yield f"{base}/hub"
        nursery.cancel_scope.cancel()


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture(params=["fast", "quart"])
async def hub_url(request: pytest.FixtureRequest, backend: FakeBackend) -> AsyncIterator[str]:
    """The hub's URL, served through the fast path and through the Quart route: same behaviour."""
    hub = Hub(backend, ping_interval=15, client_timeout=30, max_message_bytes=4096)
    async with running_hub(hub, fast=request.param == "fast") as url:
        url_with_hub = url
        yield url_with_hub


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
