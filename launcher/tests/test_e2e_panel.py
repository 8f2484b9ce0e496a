"""The launcher's presence seen in the web panel, end to end: a real ``ctid serve``, the real
``ctid-launcher`` process (scripted session file), and Debian's Chromium driven by Playwright with a
supervisor watching the agents board and the agent signed in to her own panel in a second browser
context. A fake lock shows "Away" on the board and unlock "Available" again; a DND the agent picks in
her panel survives lock/unlock; ``kill -9`` of the launcher shows her away once its lease lapses.

Every wait polls the page (Playwright's ``expect``) or the API with a bounded timeout; nothing sleeps a
fixed time. The DND step proves "nothing else happened" with a barrier: the launcher applies session and
hub events in one queue, in order, so once the lock and unlock are queued (its log) the agent's next
choice in the panel is applied after them; a MutationObserver on the supervisor's page records every
presence the board showed in between.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ctid.testing import services
from launcher_support import PASSWORDS, LauncherProcess

LEASE = 5  # seconds: the launcher's shortest lease (Settings.lease_seconds), renewed every third of it
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "launcher"

# Every presence alice's row on the board shows, in order (the board is re-rendered on each hub event).
RECORD_BOARD = """() => {
  window.boardHistory = [];
  const note = () => {
    const row = document.querySelector('li.agent[data-agent-id="alice"]');
    const now = row ? row.dataset.presence : null;
    if (now && window.boardHistory[window.boardHistory.length - 1] !== now) window.boardHistory.push(now);
  };
  note();
  new MutationObserver(note).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


@pytest.fixture
def browser():
    with services.chromium() as browser:
        yield browser


def wait_until(check: Callable[[], Any], what: str, within: float = 10) -> Any:
    """Poll ``check`` (another process changes the state: there is nothing to wait on) until truthy."""
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        time.sleep(0.05)


def signed_in_panel(browser, url: str, user: str):
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-US")
    page = context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.goto(f"{url}/panel/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORDS[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("html[data-ready=true]", timeout=10_000)
    return page


def test_lock_dnd_and_kill_as_the_supervisor_sees_them(ctid_server, browser, tmp_path):
    from playwright.sync_api import expect

    url = ctid_server.url
    launcher = LauncherProcess(tmp_path, url)
    assert launcher.cli("login", "--server", url, "--user", "alice", "--password-stdin",
                        stdin=PASSWORDS["alice"]).returncode == 0
    settings_file = launcher.home / "settings.json"
    settings_file.write_text(json.dumps({**json.loads(settings_file.read_text()), "lease_seconds": LEASE}))
    http = httpx.Client(base_url=url, timeout=10)
    token = http.post("/api/auth/token", json={"username": "super", "password": PASSWORDS["super"]}).json()

    def alice() -> dict:
        items = http.get("/api/agents", headers={"Authorization": f"Bearer {token['access_token']}"}).json()["items"]
        return next(a for a in items if a["id"] == "alice")

    def alice_is(status: str, source: str) -> dict | None:
        agent = alice()
        return agent if (agent["status"], agent["status_source"]) == (status, source) else None

    def logged(text: str, times: int) -> bool:
        return launcher.log.read_text().count(text) >= times

    boss = signed_in_panel(browser, url, "super")
    boss.get_by_role("tab", name="Team").click()
    row = boss.locator('li.agent[data-agent-id="alice"]')
    expect(row).to_have_attribute("data-presence", "offline")
    agent = signed_in_panel(browser, url, "alice")
    my_status = agent.get_by_label("My status")

    launcher.start()
    try:
        # logon (the session is unlocked): the launcher makes alice available, the board shows it
        expect(row).to_have_attribute("data-presence", "available", timeout=20_000)
        expect(row.locator(".presence")).to_contain_text("Available")

        # (1) the workstation locks: away on the board, in her own panel and in /api/agents
        launcher.session_event("lock")
        expect(row).to_have_attribute("data-presence", "away")
        expect(row.locator(".presence")).to_contain_text("Away")
        expect(my_status).to_have_value("away")
        assert alice_is("away", "launcher"), alice()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        boss.screenshot(path=str(ARTIFACTS / "board-away-locked.png"), full_page=True)
        launcher.session_event("unlock")
        expect(row).to_have_attribute("data-presence", "available")
        expect(row.locator(".presence")).to_contain_text("Available")
        assert alice_is("available", "launcher"), alice()

        # (2) alice picks DND in her panel; a lock and an unlock leave it, on the board and in the API
        my_status.click()
        my_status.select_option("dnd")
        expect(row).to_have_attribute("data-presence", "dnd")
        expect(row.locator(".presence")).to_contain_text("Do not disturb")
        dnd = wait_until(lambda: alice_is("dnd", "user"), "DND from the panel in /api/agents")
        boss.evaluate(RECORD_BOARD)
        unlocks = launcher.log.read_text().count("session: unlocked")
        launcher.session_event("lock")
        launcher.session_event("unlock")
        wait_until(lambda: logged("session: unlocked", unlocks + 1), "the launcher queued the lock and unlock")
        assert alice() == dnd  # nothing about her changed, not even status_since
        # the barrier: her next choice is applied by the launcher after the lock and unlock
        my_status.select_option("available")
        expect(row).to_have_attribute("data-presence", "available")
        assert wait_until(lambda: alice_is("available", "user"), "available from the panel")
        launcher.session_event("lock")  # ... and the launcher still follows the lock over it
        expect(row).to_have_attribute("data-presence", "away")
        assert boss.evaluate("window.boardHistory") == ["dnd", "available", "away"]
        log = launcher.log.read_text()
        assert log.count("status -> away (launcher)") == 2, log  # the two locks over "available"
        assert "ctid kept the status the person set" not in log  # it did not even try over the DND
        launcher.session_event("unlock")
        expect(row).to_have_attribute("data-presence", "available")

        # (3) kill -9: no sign-off; once the lease lapses ctid makes alice away, and the board shows it
        launcher.proc.send_signal(signal.SIGKILL)
        launcher.proc.wait(5)
        killed = time.monotonic()
        expect(row).to_have_attribute("data-presence", "away", timeout=(LEASE + 5) * 1000)
        expect(row.locator(".presence")).to_contain_text("Away")
        expect(my_status).to_have_value("away")
        assert time.monotonic() - killed <= LEASE + 2  # the lease, not a later sweep
        lapsed = alice_is("away", "lease")
        assert lapsed and lapsed["lease_until"] is None, alice()
        assert boss.errors == [] and agent.errors == []
    finally:
        if launcher.proc.poll() is None:
            launcher.proc.kill()
            launcher.proc.wait(5)
        http.close()
        print(launcher.log.read_text()[-3000:])
