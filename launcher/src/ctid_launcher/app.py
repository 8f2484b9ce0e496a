"""The launcher itself: a trio program that connects the session watcher, ctid (REST and hub), the
presence policy, the tray and the browser.

Tasks: the connection (REST bootstrap, then the hub's events; reconnects with backoff), the
presence lease (renewed every third of its length), the token (refreshed before it expires), the
session watcher, the tray's menu actions, and one policy task that applies events in order and
carries out the policy's commands over REST.
"""

from __future__ import annotations

import logging
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import trio

from ctid_launcher import hub as hubclient
from ctid_launcher import policy
from ctid_launcher.api import Api, ApiError, Unreachable
from ctid_launcher.browser import Pop, Popper, open_url
from ctid_launcher.config import Settings
from ctid_launcher.credentials import Token, TokenStore, token_from_login
from ctid_launcher.i18n import t
from ctid_launcher.policy import Event, Kind
from ctid_launcher.session.base import SessionWatcher
from ctid_launcher.tray.base import Action, NullTray, Tray

log = logging.getLogger(__name__)


class NotSignedIn(Exception):
    pass


def desktop_notify(title: str, text: str) -> None:
    """A desktop notification where the tray cannot show one (Linux: ``notify-send``)."""
    if sys.platform.startswith("linux") and shutil.which("notify-send"):
        subprocess.Popen(["notify-send", "--app-name=ctid", title, text],  # noqa: S603,S607
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Launcher:
    RECONNECT_MAX = 60.0  # seconds between reconnection attempts, at most

    def __init__(self, settings: Settings, tokens: TokenStore, watcher: SessionWatcher, *,
                 tray: Tray | None = None, opener: Callable[[str], Any] = open_url,
                 notify: Callable[[str, str], None] | None = None, clock: Callable[[], float] = time.time):
        self.settings, self.tokens, self.watcher = settings, tokens, watcher
        self.tray: Tray = tray or NullTray()
        self.opener, self.clock = opener, clock
        self._notify_fallback = notify or desktop_notify
        self.state = policy.State(on_login=settings.on_login)
        self.connected = False
        self.signed_in = True
        self.api: Api | None = None
        self.token: Token | None = None
        self._events_send, self._events = trio.open_memory_channel[Event](1000)
        self._actions_send, self._actions = trio.open_memory_channel[Action](100)
        self._quit = trio.Event()
        self._end: Kind | None = None  # how the launcher ends: LOGOFF (offline) or None (quit: keep status)
        self._started = False
        self._trio_token: trio.lowlevel.TrioToken | None = None
        self.popper = Popper(settings.agent, settings.open_on, self._open, self._notify_pop)

    # -- plumbing ---------------------------------------------------------------------------------
    def feed(self, event: Event) -> None:
        """Queue a policy event (trio thread)."""
        self._events_send.send_nowait(event)

    def _on_tray_action(self, action: Action) -> None:
        """From the tray's thread."""
        try:
            trio.from_thread.run_sync(self._actions_send.send_nowait, action, trio_token=self._trio_token)
        except (trio.RunFinishedError, trio.WouldBlock):
            pass

    def _show(self) -> None:
        icon, reason = policy.tray_view(self.state, connected=self.connected, signed_in=self.signed_in)
        self.tray.show(icon, f"ctid: {t(icon)} — {t(reason)}")

    def _notify(self, title: str, text: str) -> None:
        self.tray.notify(title, text)
        if not getattr(self.tray, "HAS_NOTIFICATION", False):
            self._notify_fallback(title, text)

    def _notify_pop(self, pop: Pop) -> None:
        who = pop.contact or (t("new_contact") if pop.url else t("unknown_caller"))
        self._notify(t("incoming"), f"{pop.caller} — {who}")

    def _open(self, url: str) -> None:
        self.opener(url)

    def quit(self, end: Kind | None = None) -> None:
        self._end = end
        self._quit.set()

    # -- run ----------------------------------------------------------------------------------------
    async def run(self) -> None:
        self.token = self.tokens.load()
        if self.token is None:
            raise NotSignedIn(t("not_signed_in"))
        self._trio_token = trio.lowlevel.current_trio_token()
        self.api = Api(self.settings.server, self.token.value)
        self.tray.start(self._on_tray_action)
        self._show()
        log.info("ctid-launcher for agent %s at %s; session source: %s", self.settings.agent, self.settings.server,
                 getattr(self.watcher, "description", "?"))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._policy_loop)
                nursery.start_soon(self._connection_loop)
                nursery.start_soon(self._lease_loop)
                nursery.start_soon(self._token_loop)
                nursery.start_soon(self._action_loop)
                nursery.start_soon(self._watch_session)
                await self._quit.wait()
                with trio.move_on_after(5):
                    await self._finish()
                nursery.cancel_scope.cancel()
        finally:
            self.tray.stop()
            await self.api.aclose()

    async def _finish(self) -> None:
        """Sign-off: offline where the policy allows (logoff, shutdown, SIGTERM), then end the lease."""
        commands: list[policy.Command] = [policy.EndLease()]
        if self._end is Kind.LOGOFF:
            self.state, commands = policy.step(self.state, Event(Kind.LOGOFF))
        await self._execute(commands)

    async def _watch_session(self) -> None:
        def emit(event: Event) -> None:
            log.info("session: %s%s", event.kind.value, " (locked)" if event.locked else "")
            self.feed(event)

        try:
            await self.watcher.watch(emit)
        except Exception:  # noqa: BLE001 - without a lock source the launcher still pops the CRM
            log.exception("the session watcher failed; the workstation lock is not followed")

    # -- the policy ---------------------------------------------------------------------------------
    async def _policy_loop(self) -> None:
        async for event in self._events:
            if event.kind is Kind.LOGOFF:
                self.quit(Kind.LOGOFF)
                continue
            self.state, commands = policy.step(self.state, event)
            await self._execute(commands)
            self._show()

    async def _execute(self, commands: list[policy.Command]) -> None:
        agent = self.settings.agent
        for command in commands:
            try:
                if isinstance(command, policy.SetStatus):
                    log.info("status -> %s (%s)", command.status, command.source)
                    data = await self.api.set_status(agent, command.status, command.source, self.settings.lease_seconds)
                    self._told(data)
                else:
                    await self.api.end_lease(agent)
            except ApiError as exc:
                if exc.error_id == "status_set_by_user":
                    log.info("ctid kept the status the person set: %s", exc.message)
                    await self._refresh_agent()
                else:
                    log.warning("ctid refused %s: %s", command, exc)
            except Unreachable as exc:
                log.warning("could not reach ctid for %s: %s (applied again once connected)", command, exc)
                if isinstance(command, policy.SetStatus):
                    self.state = policy.undelivered(self.state, command)

    def _told(self, agent: dict[str, Any]) -> None:
        """ctid's word on the agent (REST answer or hub event): queue what differs from the policy's
        view, so that every change goes through the policy task in order."""
        status, source = agent.get("status"), agent.get("status_source")
        source = source if source in (policy.USER, policy.LAUNCHER, policy.LEASE) else policy.USER
        if status in policy.STATUSES and (status, source) != (self.state.status, self.state.source):
            self.feed(Event(Kind.STATUS, status=status, source=source))
        busy = bool(agent.get("busy"))
        if busy != self.state.on_call:
            self.feed(Event(Kind.CALL_STARTED if busy else Kind.CALL_ENDED))

    async def _refresh_agent(self) -> None:
        try:
            self._told(await self.api.agent(self.settings.agent))
        except (ApiError, Unreachable) as exc:
            log.warning("could not read the agent's status: %s", exc)

    # -- ctid ------------------------------------------------------------------------------------------
    async def _connection_loop(self) -> None:
        delay = 1.0
        while True:
            try:
                agent = await self.api.agent(self.settings.agent)
                self.signed_in = True
                if not self._started:
                    self.state = policy.State(on_login=self.settings.on_login)
                    self._told(agent)
                    self._started = True
                    self.feed(Event(Kind.STARTED, locked=await self.watcher.locked()))
                else:
                    self._told(agent)
                await self._renew_lease()
                async with hubclient.connect(self.settings.hub_url, self.api.token) as hub:
                    self.connected, delay = True, 1.0
                    self._show()
                    log.info("connected to the hub")
                    # what changed while connecting: the agent, and calls already ringing it
                    snapshot = await self.api.snapshot()
                    for agent in snapshot.get("agents", []):
                        if agent.get("id") == self.settings.agent:
                            self._told(agent)
                    for call in snapshot.get("calls", []):
                        self.popper.call_updated(call)
                    async for target, arguments in hub.events():
                        if not arguments or not isinstance(arguments[0], dict):
                            continue
                        if target == "agentUpdated" and arguments[0].get("id") == self.settings.agent:
                            self._told(arguments[0])
                        elif target == "callUpdated":
                            call = arguments[0]
                            log.info("call %s %s %s contact %s", call.get("id"), call.get("direction"),
                                     call.get("state"), (call.get("contact") or {}).get("status"))
                            self.popper.call_updated(call)
                    log.warning("the hub connection ended")
            except hubclient.HubAuthError as exc:
                log.warning("%s", exc)
            except (hubclient.HubDown, Unreachable) as exc:
                log.warning("ctid unreachable: %s", exc)
            except BaseExceptionGroup as group:  # ctid went away under the hub's reader and this loop at once
                lost = [exc for exc in hubclient.leaves(group) if not isinstance(exc, trio.Cancelled)]
                if not lost or not all(isinstance(exc, hubclient.HubDown | Unreachable) for exc in lost):
                    raise  # (a cancellation from outside is raised again by the sleep below)
                log.warning("ctid unreachable: %s", "; ".join(dict.fromkeys(str(exc) for exc in lost)))
            except ApiError as exc:
                log.warning("ctid refused: %s", exc)
                if exc.status == 401:
                    self.signed_in = False
            self.connected = False
            self._show()
            wait = delay * random.uniform(0.8, 1.2)
            log.info("reconnecting in %.0f s", wait)
            await trio.sleep(wait)
            delay = min(delay * 2, self.RECONNECT_MAX)

    async def _renew_lease(self) -> None:
        try:
            self._told(await self.api.renew_lease(self.settings.agent, self.settings.lease_seconds))
        except (ApiError, Unreachable) as exc:
            log.warning("could not renew the presence lease: %s", exc)

    async def _lease_loop(self) -> None:
        while True:
            await trio.sleep(self.settings.lease_seconds / 3)
            if self._started:
                await self._renew_lease()

    async def _token_loop(self, every: float = 60) -> None:
        while True:
            await trio.sleep(every)
            if self.token is None or not self.token.due_for_refresh(self.clock()):
                continue
            try:
                answer = await self.api.refresh()
            except (ApiError, Unreachable) as exc:
                log.warning("could not refresh the access token: %s", exc)
                continue
            self.token = token_from_login(answer["access_token"], answer.get("expires_in"))
            self.api.token = self.token.value
            self.tokens.save(self.token)
            log.info("access token refreshed")

    # -- the tray's menu ------------------------------------------------------------------------------
    async def _action_loop(self) -> None:
        async for action in self._actions:
            log.info("menu: %s", " ".join(action))
            if action[0] == "status" and action[1] in policy.STATUSES:
                self.feed(Event(Kind.CHOSEN, status=action[1]))
            elif action[0] == "open_panel":
                try:
                    self._open(await self.api.panel_url())
                except (ApiError, Unreachable) as exc:
                    log.warning("could not open the panel: %s", exc)
            elif action[0] == "sign_out":
                await self._execute([policy.SetStatus(policy.OFFLINE, policy.USER)])
                self.tokens.delete()
                self.signed_in = False
                self.quit()
            elif action[0] == "quit":
                self.quit()
