"""End to end against a real ``ctid serve`` (subprocess, SQLite) and the real ``ctid-launcher``
(subprocess, signed in through its CLI, no tray, a scripted session file, the browser replaced by a
recorder through ``BROWSER``): the CRM pop-up, lock → away seen in /api/agents and by a supervisor's
hub connection, unlock, a DND set the way the panel sets it surviving lock/unlock, and ``kill -9``
ending the lease."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from pathlib import Path

import httpx
import trio

from ctid.builtins.generic import sign
from ctid.hub.client import open_hub
from ctid.testing.daemon import eventually
from launcher_support import PASSWORDS, SECRET, LauncherProcess


async def _webhook(client: httpx.AsyncClient, url: str, events: list[dict]) -> None:
    body = json.dumps(events).encode()
    response = await client.post(f"{url}/hooks/office", content=body, headers={"X-Ctid-Signature": sign(SECRET, body)})
    assert response.status_code == 200, response.text


async def test_launcher_end_to_end(ctid_server, tmp_path):
    url = ctid_server.url
    launcher = LauncherProcess(tmp_path, url)
    done = launcher.cli("login", "--server", url, "--user", "alice", "--password-stdin", stdin=PASSWORDS["alice"])
    assert done.returncode == 0, done.stderr
    assert "Signed in" in done.stdout and "file" in done.stdout  # no keyring in CI: the 0600 file
    settings_file = launcher.home / "settings.json"
    settings = json.loads(settings_file.read_text())
    assert settings["agent"] == "alice"
    settings["lease_seconds"] = 5
    settings_file.write_text(json.dumps(settings))
    wrong = launcher.cli("login", "--server", url, "--user", "alice", "--password-stdin", stdin="nope")
    assert wrong.returncode == 1 and wrong.stderr.startswith("ctid-launcher: Sign-in failed")

    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        super_token = (await client.post("/api/auth/token", json={"username": "super",
                                                                  "password": PASSWORDS["super"]})).json()["access_token"]
        alice_token = (await client.post("/api/auth/token", json={"username": "alice",
                                                                  "password": PASSWORDS["alice"]})).json()["access_token"]
        admin = {"Authorization": f"Bearer {super_token}"}

        async def alice() -> dict:
            items = (await client.get("/api/agents", headers=admin)).json()["items"]
            return next(a for a in items if a["id"] == "alice")

        async def alice_is(status: str, source: str | None = None) -> dict | None:
            agent = await alice()
            ok = agent["status"] == status and (source is None or agent["status_source"] == source)
            return agent if ok else None

        board: list[dict] = []  # what the supervisor's board receives

        async def until(check, what: str, within: float = 10):
            try:
                return await eventually(check, within=within)
            except trio.TooSlowError:
                raise AssertionError(f"not within {within} s: {what}; alice is {await alice()}; "
                                     f"opened {launcher.urls()}; board {[a['status'] for a in board]}") from None

        launcher.start()
        try:
            async with open_hub(f"{url}/hub", super_token) as board_hub, open_hub(f"{url}/hub", alice_token) as panel:
                board_hub.on("agentUpdated", lambda agent: board.append(agent) if agent["id"] == "alice" else None)
                # logon: the session is unlocked, so the launcher makes alice available, with a lease
                started = await until(lambda: alice_is("available", "launcher"), "available at logon", 20)
                assert started["lease_until"] is not None

                # a call rings alice: exactly one browser URL, the contact's CRM record
                now = datetime.now(UTC).isoformat()
                base = {"call_id": "e2e-1", "from": "+79161234567", "agent": "101", "timestamp": now}
                await _webhook(client, url, [{**base, "event": "ring", "id": "r1"}])
                await until(lambda: trio.to_thread.run_sync(launcher.urls), "the CRM record opened")
                await _webhook(client, url, [{**base, "event": "answer", "id": "a1"}])
                await until(lambda: _busy(alice), "alice on the call")
                await _webhook(client, url, [{**base, "event": "end", "id": "e1"}])
                await until(lambda: _busy(alice, False), "the call ended")
                await trio.sleep(1.0)  # later updates of the same call must open nothing more
                assert launcher.urls() == [f"{url}/panel/#/contact/c-1"]

                # started again from the menu or a shortcut: it says so and opens the panel signed in
                # (a one-time code, redeemed here as the panel would); at logon (--autostart) nothing
                run_again = ["run", "--no-tray", "--session-source", f"fake:{launcher.session}"]
                again = await trio.to_thread.run_sync(lambda: launcher.cli(*run_again))
                assert again.returncode == 0, again.stderr
                assert again.stdout.splitlines() == ["ctid-launcher is already running for this user.",
                                                     "The panel is opened in the browser."]
                panel_url = launcher.urls()[-1]
                assert panel_url.startswith(f"{url}/panel/#code=")
                redeemed = await client.post("/api/auth/handoff/redeem",
                                             json={"code": panel_url.split("#code=", 1)[1]})
                assert redeemed.status_code == 200 and redeemed.json()["user"]["subject"] == "alice"
                again = await trio.to_thread.run_sync(lambda: launcher.cli(*run_again, "--autostart"))
                assert again.returncode == 0 and again.stdout.splitlines() == [
                    "ctid-launcher is already running for this user."]
                assert len(launcher.urls()) == 2

                # the workstation locks: away (set by the launcher), on /api/agents and on the board
                launcher.session_event("lock")
                await until(lambda: alice_is("away", "launcher"), "away when locked")
                await until(lambda: _seen(board, "away"), "away on the supervisor's board", 15)
                launcher.session_event("unlock")
                await until(lambda: alice_is("available", "launcher"), "available again when unlocked")
                await until(lambda: _seen(board, "available", after="away"), "available on the board", 15)

                # DND chosen in the panel (hub SetStatus, as the panel does) survives lock / unlock
                await panel.invoke("SetStatus", "dnd")
                await until(lambda: alice_is("dnd", "user"), "DND from the panel", 15)
                launcher.session_event("lock")
                launcher.session_event("unlock")
                await until(lambda: trio.to_thread.run_sync(_logged, launcher.log, "session: unlocked", 2),
                            "the launcher saw the second unlock")
                await trio.sleep(0.5)
                assert (await alice())["status"] == "dnd"

                # available again by hand; then the launcher is killed: its lease lapses → away
                await panel.invoke("SetStatus", "available")
                await until(lambda: alice_is("available", "user"), "available from the panel", 15)
                launcher.proc.send_signal(signal.SIGKILL)
                launcher.proc.wait(5)
                lapsed = await until(lambda: alice_is("away", "lease"), "away after the lease lapsed", 12)
                assert lapsed["lease_until"] is None
        finally:
            if launcher.proc.poll() is None:
                launcher.proc.kill()
                launcher.proc.wait(5)
            print(launcher.log.read_text()[-3000:])


async def _busy(alice, busy: bool = True) -> bool:
    return (await alice())["busy"] is busy


async def _seen(board: list[dict], status: str, after: str | None = None) -> bool:
    statuses = [a["status"] for a in board]
    if after is not None:
        if after not in statuses:
            return False
        statuses = statuses[len(statuses) - 1 - statuses[::-1].index(after):]
    return status in statuses


def _logged(path: Path, text: str, times: int) -> bool:
    return path.read_text().count(text) >= times


async def test_reconnects_and_restores_available_after_ctid_was_down(ctid_server, tmp_path):
    """ctid stops for longer than the lease: at its restart the lapsed lease makes alice away (source
    lease); the launcher reconnects with backoff, sees that, and restores available."""
    from ctid.testing.daemon import ServeProcess

    url = ctid_server.url
    launcher = LauncherProcess(tmp_path, url)
    assert launcher.cli("login", "--server", url, "--user", "alice", "--password-stdin",
                        stdin=PASSWORDS["alice"]).returncode == 0
    settings_file = launcher.home / "settings.json"
    settings_file.write_text(json.dumps({**json.loads(settings_file.read_text()), "lease_seconds": 5}))
    async with httpx.AsyncClient(timeout=10) as client:
        token = (await client.post(f"{url}/api/auth/token",
                                   json={"username": "super", "password": PASSWORDS["super"]})).json()

    async def alice() -> dict | None:
        """Alice on /api/agents, or None while ctid is down, starting or stopping."""
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                response = await client.get(f"{url}/api/agents",
                                            headers={"Authorization": f"Bearer {token['access_token']}"})
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        return next(a for a in response.json()["items"] if a["id"] == "alice")

    async def alice_is(status: str, source: str) -> bool:
        agent = await alice()
        return agent is not None and (agent["status"], agent["status_source"]) == (status, source)

    launcher.start()
    second = None
    try:
        await eventually(lambda: alice_is("available", "launcher"), within=20)
        await eventually(lambda: trio.to_thread.run_sync(_logged, launcher.log, "connected to the hub", 1), within=10)
        await trio.to_thread.run_sync(ctid_server.stop)  # returns once the process has exited
        # ctid is down longer than the 5 s lease, counted from its exit (no renewal is accepted after
        # it): a real process, nothing to wait on. The lapse itself does not depend on this margin.
        await trio.sleep(7)
        second = ServeProcess(ctid_server.config_path, port=ctid_server.port, log_path=tmp_path / "second.log")
        await trio.to_thread.run_sync(second.start)  # returns once /readyz answers
        # the launcher learns of the lapse from its next lease renewal (every 5/3 s) or the hub, and
        # restores available; reconnecting to the hub can take one backoff step (at most ~19 s) more
        await eventually(lambda: alice_is("available", "launcher"), within=30)
        await eventually(lambda: trio.to_thread.run_sync(_logged, launcher.log, "connected to the hub", 2), within=30)
        log = launcher.log.read_text()
        assert "reconnecting in" in log
        assert "the launcher lease of agent alice lapsed" in second.log()  # ended at ctid's start
        assert log.count("status -> available (launcher)") >= 2  # restored after the lapse
    finally:
        launcher.proc.kill()
        launcher.proc.wait(5)
        if second is not None:
            second.stop()
            print("--- ctid after the restart ---\n" + second.log()[-3000:])
        print("--- the launcher ---\n" + launcher.log.read_text()[-4000:])
