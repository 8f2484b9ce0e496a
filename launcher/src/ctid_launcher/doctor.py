"""``ctid-launcher doctor``: what a support person needs, one line per check, ``ok`` / ``FAIL`` /
``warn`` first, then the fact; exit code 0 when nothing failed."""

from __future__ import annotations

import os
import platform
import sys
import webbrowser
from collections.abc import Callable

import trio

from ctid_launcher import __version__, hub
from ctid_launcher.api import Api, ApiError, Unreachable
from ctid_launcher.autostart import backend as autostart_backend
from ctid_launcher.config import Settings, log_dir, settings_path
from ctid_launcher.credentials import TokenStore
from ctid_launcher.session import watcher_for


async def run_checks(settings: Settings, out: Callable[[str], None], session_source: str | None = None) -> int:
    failures = 0

    def line(state: str, what: str, fact: str) -> None:
        nonlocal failures
        failures += state == "FAIL"
        out(f"{state:4}  {what:16} {fact}")

    line("ok", "version", f"ctid-launcher {__version__}, Python {platform.python_version()}, "
         f"{platform.system()} {platform.release()} ({sys.platform})")
    line("ok", "settings", str(settings_path()))
    line("ok", "logs", str(log_dir() / "ctid-launcher.log"))
    if not settings.server:
        line("FAIL", "server", "not set: run `ctid-launcher login --server URL --user NAME`")
        return failures
    line("ok", "server", f"{settings.server} (user {settings.username or '?'}, agent {settings.agent or '?'})")
    tokens = TokenStore(settings.server, settings.username)
    token = tokens.load()
    line("ok" if token else "FAIL", "token", f"{'kept in' if token else 'none in'} {tokens.where}")
    api = Api(settings.server, token.value if token else None)
    try:
        try:
            status = await api.health()
            line("ok" if status == 200 else "FAIL", "reachable", f"GET /healthz -> HTTP {status}")
        except Unreachable as exc:
            line("FAIL", "reachable", f"{settings.server}: {exc}")
            return failures
        if token:
            try:
                me = await api.me()
                line("ok", "signed in", f"as {me.get('subject')} ({me.get('role')}), agent {me.get('agent')}")
                agent = await api.agent(settings.agent)
                line("ok", "status", f"{agent['status']} (set by {agent.get('status_source', 'user')}), "
                     f"lease until {agent.get('lease_until') or '-'}, busy {agent.get('busy')}")
            except ApiError as exc:
                line("FAIL", "signed in", f"{exc} — sign in again: ctid-launcher login")
            try:
                with trio.fail_after(10):
                    async with hub.connect(settings.hub_url, token.value):
                        line("ok", "hub", f"{settings.hub_url}: connected")
            except (hub.HubDown, trio.TooSlowError) as exc:
                line("FAIL", "hub", f"{settings.hub_url}: {exc or 'timed out'}")
    finally:
        await api.aclose()
    try:
        watcher = watcher_for(session_source)
        locked = await watcher.locked()
        line("ok", "session", f"{watcher.description}; locked now: {locked}")
    except Exception as exc:  # noqa: BLE001 - report, do not crash
        line("warn", "session", f"no lock source: {exc}")
    auto = autostart_backend().status()
    state = "on" if auto.enabled else ("disabled by the user" if auto.registered else "off")
    line("ok" if auto.enabled else "warn", "autostart", f"{state} ({auto.where})")
    try:
        browser = type(webbrowser.get()).__name__
    except webbrowser.Error:
        browser = "none found"
    line("ok", "browser", f"{browser}{' (BROWSER=' + os.environ['BROWSER'] + ')' if 'BROWSER' in os.environ else ''}")
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not display:
        line("warn", "tray", "no DISPLAY: run with --no-tray (terminal server, headless)")
    else:
        line("ok", "tray", f"pystray backend {os.environ.get('PYSTRAY_BACKEND', 'auto')}")
    return failures
