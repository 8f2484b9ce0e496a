"""The launcher's trio program in-process against an in-process ctid: logon, the tray menu (status,
open panel, quit, sign out) as pystray's thread delivers it, the tray icon following the status, and
what quitting and signing out leave behind."""

from __future__ import annotations

import trio
from test_cli_doctor_hub import ctid_config

from ctid.testing.daemon import eventually, running_daemon
from ctid_launcher.app import Launcher
from ctid_launcher.config import Settings
from ctid_launcher.credentials import TokenStore, token_from_login
from ctid_launcher.session.fake import FileWatcher
from ctid_launcher.tray.base import NullTray


async def test_logon_and_the_tray_menu(tmp_path, monkeypatch):
    monkeypatch.setenv("CTID_LAUNCHER_KEYRING", "file")
    async with running_daemon(ctid_config(tmp_path)) as app:
        answer = (await app.client.post("/api/auth/token", json={"username": "alice", "password": "alice-pw"})).json()
        tokens = TokenStore(app.url, "alice")
        tokens.save(token_from_login(answer["access_token"], answer["expires_in"]))
        settings = Settings(server=app.url, username="alice", agent="alice", lease_seconds=30)
        session = tmp_path / "session.txt"
        session.write_text("")

        def alice() -> dict:
            return app.daemon.switchboard.agents["alice"].to_json()

        def check(predicate):
            async def probe():
                return predicate()
            return probe

        async def menu(launcher: Launcher, *action: str) -> None:  # from another thread, like pystray's
            await trio.to_thread.run_sync(launcher._on_tray_action, action)

        opened: list[str] = []
        tray = NullTray()
        launcher = Launcher(settings, tokens, FileWatcher(session), tray=tray, opener=opened.append,
                            notify=lambda title, text: None)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(launcher.run)
            await eventually(check(lambda: alice()["status"] == "available" and launcher.connected), within=15)
            assert alice()["status_source"] == "launcher" and alice()["lease_until"]
            await eventually(check(lambda: tray.shown[-1][0] == "available"), within=15)
            assert tray.shown[-1][1] == "ctid: Available — set by the launcher"

            await menu(launcher, "status", "dnd")  # chosen by the person: source user
            await eventually(check(lambda: (alice()["status"], alice()["status_source"]) == ("dnd", "user")), within=15)
            await eventually(check(lambda: tray.shown[-1][0] == "dnd"), within=15)

            # changed elsewhere (the panel, a supervisor): the hub tells the launcher, the icon follows
            await app.client.put("/api/agents/alice/status", json={"status": "away"},
                                 headers={"Authorization": f"Bearer {answer['access_token']}"})
            await eventually(check(lambda: tray.shown[-1] == ("away", "ctid: Away — set by you")), within=15)
            await menu(launcher, "status", "dnd")
            await eventually(check(lambda: tray.shown[-1][0] == "dnd"), within=15)

            await menu(launcher, "open_panel")
            await eventually(check(lambda: opened), within=15)
            assert opened[0].startswith(f"{app.url}/panel/#code=") and answer["access_token"] not in opened[0]

            await menu(launcher, "quit")
        assert (alice()["status"], alice()["lease_until"]) == ("dnd", None)  # quit: the lease ended, status kept

        again = Launcher(settings, tokens, FileWatcher(session), tray=NullTray(), opener=opened.append,
                         notify=lambda title, text: None)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(again.run)
            await eventually(check(lambda: again.connected), within=15)
            assert alice()["status"] == "dnd"  # logon does not override a DND chosen by hand
            await menu(again, "sign_out")
        assert (alice()["status"], alice()["status_source"], alice()["lease_until"]) == ("offline", "user", None)
        assert tokens.load() is None
