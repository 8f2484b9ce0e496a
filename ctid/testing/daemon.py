"""Run a real ctid daemon inside a Trio test: from a config dict to a listening server.

    async with running_daemon(config_dict) as app:
        response = await app.client.post("/hooks/office", ...)
        app.daemon.switchboard.calls ...

``app.client`` is an ``httpx.AsyncClient`` bound to the daemon's URL; ``app.token(user, password)``
logs in; ``app.api_key_headers`` uses the first API key of the config.
"""

from __future__ import annotations

import contextlib
import copy
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningDaemon:
    daemon: Any
    url: str
    client: httpx.AsyncClient

    async def token(self, username: str, password: str) -> str:
        response = await self.client.post("/api/auth/token", json={"username": username, "password": password})
        response.raise_for_status()
        return response.json()["access_token"]

    async def headers_for(self, username: str, password: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(username, password)}"}

    @property
    def api_key_headers(self) -> dict[str, str]:
        key = self.daemon.settings.core.auth.api_keys[0].key.get_secret_value()
        return {"Authorization": f"Bearer {key}"}


@contextlib.asynccontextmanager
async def running_daemon(
    config: dict[str, Any], *, base_dir: Path | None = None, plugins: list[Any] = (), clock: Any = None
) -> AsyncIterator[RunningDaemon]:
    """Start ``ctid serve`` in-process on a free port with ``config`` (a dict shaped like the YAML).

    ``plugins`` are extra plugin objects (modules or instances with ``@hookimpl`` methods) registered
    before the configuration is validated, as an installed plugin would be. ``clock`` (a function
    returning UTC datetimes, e.g. :class:`ctid.testing.kit.WallClock`) replaces the wall clock of
    the daemon's timers and of its CRM outbox.
    """
    from ctid.config.loader import load_config_dict
    from ctid.daemon import Daemon
    from ctid.plugins import get_plugin_manager

    config = copy.deepcopy(config)
    port = free_port()
    config.setdefault("server", {})["listen"] = f"127.0.0.1:{port}"
    pm = get_plugin_manager()
    for plugin in plugins:
        pm.register(plugin)
    settings = load_config_dict(config, pm, base_dir=base_dir or ".")
    pm.ensure_enabled_ok(settings)
    daemon = Daemon(settings, pm)
    if clock is not None:
        daemon.clock = daemon.outbox.clock = clock
    url = f"http://127.0.0.1:{port}"
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            try:
                yield RunningDaemon(daemon, url, client)
            finally:
                daemon.shutdown()


async def eventually(check, *, within: float = 5.0, interval: float = 0.02):
    """Poll the async ``check()`` until it returns a truthy value; return that value.

    For state that crosses a process or network boundary (another instance, Redis, a subprocess),
    where there is no event to wait on. Fails with ``trio.TooSlowError`` after ``within`` seconds.
    """
    with trio.fail_after(within):
        while True:
            value = await check()
            if value:
                return value
            await trio.sleep(interval)


class ServeProcess:
    """A ``ctid serve`` subprocess (real CLI, real signals), for end-to-end tests.

    ``start()`` returns once ``/readyz`` answers 200 and raises ``RuntimeError`` with the log when
    the process exits or is not ready within ``ready_within`` seconds. ``stop()`` sends SIGTERM and
    waits (killing after ``grace`` seconds); it returns the exit code.
    """

    def __init__(self, config_path: Path, *, port: int | None = None, log_path: Path | None = None,
                 env: dict[str, str] | None = None):
        self.config_path = Path(config_path)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path or self.config_path.with_suffix(f".{self.port}.log"))
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self, ready_within: float = 30) -> ServeProcess:
        import os
        import sys
        import time

        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ctid", "serve", "--config", str(self.config_path),
                 "--listen", f"127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})},
            )
        deadline = time.monotonic() + ready_within
        while True:  # a real process starting up: there is no clock to mock
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"ctid serve did not become ready:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, grace: float = 15) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
