"""The operator panel in Chromium against a real ``ctid serve`` process and the fake CoMagic account over HTTP:
answer (on the phone), hold, resume, transfer to the first free colleague and hang up a CoMagic call; each
reaches the fake's Call API and the call record shows it; a PBX refusal shows a clear message.

Chromium is Debian's (``/usr/bin/chromium``, ``CTID_CHROMIUM`` overrides); without it the test skips with
the reason, or fails when ``CI`` is set (as the core's panel tests do).
"""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path

import httpx
import pytest
import trio
import yaml

from comagic_kit import API_KEY, BODY_SECRET, INSTANCE, PATH_SECRET, employee_rows
from ctid.testing import services
from ctid.testing.daemon import ServeProcess, free_port
from ctid_comagic.testing.fake_server import FakeComagic, serve

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "panel-comagic"


@functools.cache
def _hash(password: str) -> str:
    from werkzeug.security import generate_password_hash

    return generate_password_hash(password, method="pbkdf2:sha256:1000")  # cheap on purpose: tests only


class Account:
    """The fake account served by hypercorn in a thread of its own, delivering notifications to ctid."""

    def __init__(self, deliver_to: str) -> None:
        self.fake = FakeComagic(api_key=API_KEY, instance=INSTANCE, webhook_secret=PATH_SECRET,
                                body_secret=BODY_SECRET, employees=employee_rows())
        self._started = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self.thread = threading.Thread(target=trio.run, args=(self._main, deliver_to), daemon=True)
        self.thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the fake CoMagic account did not start")

    async def _main(self, deliver_to: str) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as self._scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(functools.partial(serve, self.fake, deliver_to=deliver_to))
                self._started.set()

    def close(self) -> None:
        if self._token is not None and self._scope is not None:
            trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self.thread.join(10)

    def wait_for(self, method: str, count: int = 1, timeout: float = 5) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # requests come from another process: poll briefly
            found = self.fake.received(method)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"the Call API never got {method!r}; it got {[r.method for r in self.fake.requests]}")


@pytest.fixture
def browser():
    with services.chromium() as browser:
        yield browser


@pytest.fixture
def ctid(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    account = Account(url)
    base = account.fake.base_url
    config = {
        "server": {"listen": f"127.0.0.1:{port}", "public_url": url},
        "database": {"url": f"sqlite:///{tmp_path / 'ctid.db'}"},
        "data_dir": str(tmp_path / "var"),
        "auth": {"users": [{"username": name, "password_hash": _hash(PASSWORDS[name]), "role": "agent",
                            "agent": name} for name in PASSWORDS]},
        "agents": {
            "alice": {"name": "Alice Smirnova", "groups": ["sales"], "pbx": {INSTANCE: "101"}},
            "bob": {"name": "Bob Ivanov", "groups": ["sales"], "pbx": {INSTANCE: "102"}},
            "carol": {"name": "Carol Petrova", "groups": ["support"], "pbx": {INSTANCE: "103"}},
        },
        "connectors": {INSTANCE: {"plugin": "comagic", "api_key": API_KEY, "webhook_secret": PATH_SECRET,
                                  "body_secret": BODY_SECRET, "call_api_url": f"{base}/v4.0",
                                  "data_api_url": f"{base}/v2.0", "media_url": base, "facts_delay": 3600}},
    }
    path = tmp_path / "ctid.yaml"
    path.write_text(yaml.safe_dump(config))
    server = ServeProcess(path, port=port, log_path=tmp_path / "serve.log")
    try:
        server.start()
    except RuntimeError as exc:
        account.close()
        pytest.fail(str(exc))
    yield server, account
    server.stop()
    account.close()


def sign_in(browser, url: str, user: str):
    page = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-US").new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.goto(url + "/panel/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORDS[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("html[data-ready=true]", timeout=10_000)
    return page


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_an_operator_handles_a_comagic_call_from_the_panel(browser, ctid):
    from playwright.sync_api import expect

    server, account = ctid
    fake = account.fake
    http = httpx.Client(base_url=server.url, timeout=10)

    def token(user: str) -> dict[str, str]:
        answer = http.post("/api/auth/token", json={"username": user, "password": PASSWORDS[user]}).json()
        return {"Authorization": f"Bearer {answer['access_token']}"}

    alice = sign_in(browser, server.url, "alice")
    bob = sign_in(browser, server.url, "bob")
    session = fake.incoming("79161234567", [101])
    card = alice.locator("article.card", has_text="+7 916 123-45-67")
    expect(card.locator(".badge")).to_have_text("Incoming call")

    fake.answer(session, 101)  # Alice picks up her phone: CoMagic says "talk started"
    expect(card.locator(".badge")).to_have_text("Talking")

    card.get_by_role("button", name="Hold").click()
    account.wait_for("hold.call")
    expect(card.locator(".badge")).to_have_text("On hold")
    shot(alice, "comagic-held")
    card.get_by_role("button", name="Resume").click()
    account.wait_for("unhold.call")
    expect(card.locator(".badge")).to_have_text("Talking")

    # The PBX refuses: the operator reads why, and the call stays as it was.
    fake.refuse["hold.call"] = "invalid_state"
    card.get_by_role("button", name="Hold").click()
    expect(alice.locator("#toast")).to_contain_text(
        "The phone system refused: CoMagic hold.call: the call is not in a state that allows this")
    expect(card.locator(".badge")).to_have_text("Talking")
    shot(alice, "comagic-refused")

    # A consultative transfer to Carol, cancelled: Alice talks to her first, then goes back to the caller.
    card.get_by_role("button", name="Transfer", exact=True).click()
    card.get_by_label("Transfer to").select_option("carol")
    card.get_by_label("Talk to the colleague first").check()
    card.locator("form.transfer").get_by_role("button", name="Transfer").click()
    account.wait_for("make.call")
    assert fake.received("make.call")[-1].params["to"] == "79160000103"  # Carol has no extension
    expect(card.locator(".badge")).to_have_text("On hold")
    fake.answer(session, 103)  # Carol picks up and talks to Alice; the customer waits
    expect(card.get_by_role("button", name="Resume")).to_have_count(0)
    shot(alice, "comagic-consulting")
    card.get_by_role("button", name="Back to the caller").click()
    account.wait_for("restore.talk")
    expect(card.locator(".badge")).to_have_text("Talking")
    expect(card.get_by_role("button", name="Complete transfer")).to_have_count(0)

    # Transfer to the first free colleague: Bob is available.
    bob.get_by_label("My status").select_option("available")
    expect(bob.get_by_label("My status")).to_have_attribute("data-presence", "available")
    card.get_by_role("button", name="Transfer", exact=True).click()
    expect(card.get_by_label("Transfer to")).to_have_value("free")
    expect(card.get_by_label("Talk to the colleague first")).not_to_be_checked()
    card.locator("form.transfer").get_by_role("button", name="Transfer").click()
    account.wait_for("transfer.talk")
    assert [r.method for r in fake.requests if r.api == "call"][-3:] == ["hold.call", "make.call", "transfer.talk"]
    assert fake.received("make.call")[-1].params["to"] == "202"  # Bob's extension
    expect(card).to_contain_text("Transferred to Bob Ivanov")
    bob_card = bob.locator("article.card", has_text="+7 916 123-45-67")
    expect(bob_card.locator(".badge")).to_have_text("Talking")
    fake.answer(session, 102)  # Bob's phone picks up the transferred customer

    bob_card.get_by_role("button", name="Hang up").click()
    account.wait_for("release.call")
    expect(bob_card.locator(".badge")).to_have_text("Answered")
    shot(bob, "comagic-ended")

    calls = http.get("/api/calls", headers=token("bob")).json()["items"]
    (record,) = [c for c in calls if c["pbx_call_id"] == str(session)]
    assert (record["state"], record["outcome"], record["agent"], record["transferred_from"]) == (
        "ended", "answered", "bob", "alice")
    assert record["agents"] == ["alice", "bob"] and record["hold_seconds"] > 0
    assert alice.errors == [] and bob.errors == []
    http.close()
