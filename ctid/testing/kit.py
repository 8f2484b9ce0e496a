"""The pieces behind ctid's pytest fixtures, usable on their own: a base daemon configuration, a
webhook poster, a hub opener, a wall clock that follows Trio's mock clock, and :func:`closing_all`
for fixtures that make connectors or adapters.

The fixtures in :mod:`ctid.testing.plugin` wrap these; a plugin's tests that need something the
fixtures do not give (two daemons, a daemon per test parameter) use them directly.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import trio
from trio.testing import MockClock

#: The admin API key of :func:`base_config`.
ADMIN_KEY = "ctid-testing-admin-key-0123456789"
#: Users of :func:`base_config` and their passwords: two agents and a supervisor.
PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "super": "super-password"}
#: The generic connector instance of :func:`base_config` and its webhook secret.
GENERIC_INSTANCE = "office"
GENERIC_SECRET = "ctid-testing-webhook-secret"
#: A fixed start for :class:`WallClock` (mock time 0).
EPOCH = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@functools.cache
def _hash(password: str) -> str:
    from werkzeug.security import generate_password_hash

    return generate_password_hash(password, method="pbkdf2:sha256:1000")  # cheap: tests only


def base_config(tmp_path: Path) -> dict[str, Any]:
    """A complete ``ctid serve`` configuration (as the YAML would be) for tests: SQLite under
    ``tmp_path``, agents ``alice`` (101) and ``bob`` (102) in group ``sales``, users ``alice`` /
    ``bob`` (agents) and ``super`` (supervisor) with :data:`PASSWORDS`, the admin key
    :data:`ADMIN_KEY`, and the generic connector :data:`GENERIC_INSTANCE`. Add your plugin's
    ``connectors.<instance>`` or ``crm`` section, and ``agents.<id>.pbx.<instance>`` logins."""
    users = [
        {"username": "alice", "password_hash": _hash(PASSWORDS["alice"]), "role": "agent", "agent": "alice"},
        {"username": "bob", "password_hash": _hash(PASSWORDS["bob"]), "role": "agent", "agent": "bob"},
        {"username": "super", "password_hash": _hash(PASSWORDS["super"]), "role": "supervisor"},
    ]
    return {
        "database": {"url": f"sqlite:///{tmp_path / 'ctid.db'}"},
        "data_dir": str(tmp_path / "var"),
        "auth": {"users": users, "api_keys": [{"name": "admin", "key": ADMIN_KEY, "role": "admin"}]},
        "agents": {
            "alice": {"name": "Alice", "extension": "101", "groups": ["sales"]},
            "bob": {"name": "Bob", "extension": "102", "groups": ["sales"]},
        },
        "connectors": {GENERIC_INSTANCE: {"plugin": "generic", "secret": GENERIC_SECRET}},
    }


def generic_signer(secret: str = GENERIC_SECRET, header: str = "X-Ctid-Signature") -> Callable[[bytes], dict[str, str]]:
    """Headers signing a body for the generic connector (``sha256=<hex HMAC>``)."""
    from ctid.secret import sign

    return lambda body: {header: sign(secret, body)}


class WebhookPoster:
    """Posts webhooks to one connector instance of a running daemon, signed when ``sign`` is given
    (a function of the body returning the headers to add)."""

    def __init__(self, client: httpx.AsyncClient, instance: str, *,
                 sign: Callable[[bytes], Mapping[str, str]] | None = None) -> None:
        self.client = client
        self.instance = instance
        self.sign = sign

    async def post(self, body: bytes | str | Any, *, subpath: str = "", headers: Mapping[str, str] | None = None,
                   content_type: str | None = None, signed: bool = True, method: str = "POST") -> httpx.Response:
        """Post ``body`` (bytes, text, or anything JSON-serializable) to ``/hooks/<instance>[/subpath]``."""
        if isinstance(body, str):
            raw = body.encode()
        elif isinstance(body, bytes):
            raw = body
        else:
            raw, content_type = json.dumps(body).encode(), content_type or "application/json"
        sent = {"content-type": content_type} if content_type else {}
        if signed and self.sign is not None:
            sent.update(self.sign(raw))
        sent.update(headers or {})
        path = f"/hooks/{self.instance}" + (f"/{subpath.lstrip('/')}" if subpath else "")
        return await self.client.request(method, path, content=raw, headers=sent)

    async def send(self, request: Any) -> httpx.Response:
        """Send a :class:`ctid.connector.SimulatedRequest` as it is (path relative to the server)."""
        return await self.client.request(request.method, request.path, content=request.body, headers=request.headers)


class WallClock:
    """UTC datetimes that follow the test's Trio mock clock: ``start`` at the first reading, then
    ``start`` plus the mock time passed since. The test must run on a mock clock (ask for pytest-trio's
    ``autojump_clock`` or ``mock_clock`` too); on the real clock the first reading raises. Give it to a
    daemon as its wall clock: ``running_daemon(config, clock=ctid_clock)`` (timers, reconciliation,
    outbox retries)."""

    def __init__(self, start: datetime = EPOCH) -> None:
        self.start = start
        self._origin: float | None = None  # read inside the run, on its first use

    def __call__(self) -> datetime:
        if self._origin is None:
            if not isinstance(trio.lowlevel.current_clock(), MockClock):
                raise RuntimeError("ctid_clock needs a Trio mock clock: ask for autojump_clock or mock_clock too")
            self._origin = trio.current_time()
        return self.start + timedelta(seconds=trio.current_time() - self._origin)


@dataclass
class HubOpener:
    """``async with opener("alice") as hub:`` a hub connection as one of :func:`base_config`'s users."""

    app: Any  # RunningDaemon

    @contextlib.asynccontextmanager
    async def __call__(self, username: str, password: str | None = None) -> AsyncIterator[Any]:
        from ctid.hub.client import open_hub

        token = await self.app.token(username, password or PASSWORDS[username])
        async with open_hub(f"{self.app.url}/hub", token) as hub:
            yield hub


@contextlib.asynccontextmanager
async def closing_all() -> AsyncIterator[Callable[[Any], Any]]:
    """``async with closing_all() as keep:`` — ``keep(thing)`` returns ``thing`` and, when the block
    ends, every kept thing is ``aclose()``-d in the order made. A factory fixture::

        @pytest.fixture
        async def make_connector(fake, services):
            async with closing_all() as keep:
                yield lambda **overrides: keep(MyConnector("pbx", make_config(fake, **overrides), services))
    """
    made: list[Any] = []

    def keep(thing: Any) -> Any:
        made.append(thing)
        return thing

    yield keep
    for thing in made:
        await thing.aclose()
