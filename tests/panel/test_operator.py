"""The operator's panel end to end: Chromium against a real ``ctid serve`` and a fake PBX.

Sign-in (and its errors), the screen pop with the directory CRM's contact, call controls reaching the
PBX, reload mid-call, missed calls and "call back", privacy between agents.
"""

from __future__ import annotations

import io
import re
import time
import wave

from playwright.sync_api import expect

from .conftest import shot, sign_in

POP_BUDGET = 2.0  # seconds from the PBX's webhook to the card with the CRM contact on screen


def wav_bytes(seconds: float) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * int(8000 * seconds))
    return buffer.getvalue()


def card(page, number_text: str):
    return page.locator("article.card", has_text=number_text)


def test_wrong_password_shows_an_error_and_no_token_is_kept(open_page):
    page = open_page()
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not-her-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    expect(page.get_by_label("Password")).to_be_focused()
    assert page.evaluate("sessionStorage.getItem('ctid.token') || localStorage.getItem('ctid.token')") is None
    shot(page, "sign-in-error")
    sign_in(page, "alice")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    assert page.errors == []


def test_pop_with_crm_contact_within_budget_and_never_to_another_agent(open_page, ctid):
    alice = open_page("alice")
    bob = open_page("bob")
    started = time.monotonic()
    ctid.ring("pop-1", "+79161234567", agent="101")
    pop = card(alice, "+7 916 123-45-67")
    expect(pop.locator(".contact-name")).to_have_text("Anna Kuznetsova", timeout=POP_BUDGET * 1000)
    elapsed = time.monotonic() - started
    assert elapsed < POP_BUDGET, f"the pop took {elapsed:.2f} s"
    expect(pop.locator(".badge")).to_have_text("Incoming call")
    expect(pop).to_contain_text("Romashka LLC")
    expect(pop).to_contain_text("Owner: Alice Smirnova")
    expect(pop).to_contain_text("+7 495 111-22-33")  # the line that was called
    expect(pop.get_by_role("button", name="Open in CRM")).to_be_visible()
    expect(alice.locator("#announcer")).to_contain_text("Incoming call from +7 916 123-45-67 (Anna Kuznetsova)")
    shot(alice, "pop-desktop")

    # Bob is connected, but the call is Alice's: nothing reaches him, not even after a reload.
    expect(bob.locator("#connection")).to_have_attribute("data-state", "connected")
    bob.wait_for_timeout(300)
    expect(bob.locator("article.card")).to_have_count(0)
    bob.reload()
    bob.wait_for_selector("html[data-ready=true]")
    expect(bob.locator("article.card")).to_have_count(0)

    # "Open in CRM" opens the directory CRM's record link (the panel's own contact page).
    with alice.expect_popup() as popup:
        pop.get_by_role("button", name="Open in CRM").click()
    record = popup.value
    record.wait_for_load_state()
    assert record.url.endswith("/panel/#/contact/c-1")
    expect(record.locator("#contact h2")).to_have_text("Anna Kuznetsova", timeout=5000)

    # A group call rings Alice and Bob; Bob answers: Alice's card goes away, Bob's shows him talking.
    ctid.ring("pop-2", "+79990001100", agent="101", group="sales")
    ctid.ring("pop-2", "+79990001100", agent="102", group="sales")
    expect(card(alice, "+7 999 000-11-00")).to_be_visible()
    expect(card(bob, "+7 999 000-11-00")).to_be_visible()
    ctid.events({"event": "answer", "call_id": "pop-2", "agent": "102"},
                {"event": "leg_end", "call_id": "pop-2", "agent": "101", "outcome": "missed"})
    expect(card(bob, "+7 999 000-11-00").locator(".badge")).to_have_text("Talking")
    expect(card(alice, "+7 999 000-11-00")).to_have_count(0)
    assert alice.errors == [] and bob.errors == []


def test_several_matches_give_a_chooser_and_unknown_callers_create_contact(open_page, ctid):
    alice = open_page("alice")
    ctid.ring("multi-1", "+74957770000")
    multi = card(alice, "+7 495 777-00-00")
    expect(multi).to_contain_text("2 records match this number:")
    choices = multi.get_by_role("list", name="Choose the record to open").get_by_role("button")
    expect(choices).to_have_text(["Dmitry Volkov — Vector Trade", "Elena Orlova — Vector Trade"])

    ctid.ring("unknown-1", "+79005554433")
    unknown = card(alice, "+7 900 555-44-33")
    expect(unknown).to_contain_text("Not in the CRM.")
    shot(alice, "pop-several-and-unknown")
    with alice.expect_popup() as popup:
        unknown.get_by_role("button", name="Create contact").click()
    form = popup.value
    form.wait_for_load_state()
    assert "#/contact/new?phone=%2B79005554433" in form.url
    expect(form.get_by_label("Phone")).to_have_value("+79005554433")
    form.get_by_label("Name").fill("Oleg Petrov")
    expect(form.get_by_label("Entry for the contacts file")).to_have_value(
        '- name: "Oleg Petrov"\n  phones: ["+79005554433"]\n')


def test_call_controls_reach_the_pbx_and_the_card_follows_the_call(open_page, ctid, fake_pbx):
    alice = open_page("alice")
    carol = open_page("carol", width=300)
    ctid.ring("ctl-1", "+79161234567")
    pop = card(alice, "+7 916 123-45-67")
    expect(pop.get_by_role("button", name="Hold")).to_have_count(0)  # not while ringing
    expect(pop.get_by_role("button", name="Decline")).to_be_visible()
    ctid.events({"event": "answer", "call_id": "ctl-1", "agent": "101"})
    expect(pop.locator(".badge")).to_have_text("Talking")

    pop.get_by_role("button", name="Hold").click()
    assert fake_pbx.wait_for("hold") == {"command": "hold", "call_id": "ctl-1", "agent": "101"}
    ctid.events({"event": "hold", "call_id": "ctl-1", "agent": "101"})
    expect(pop.locator(".badge")).to_have_text("On hold")
    shot(alice, "call-held")
    pop.get_by_role("button", name="Resume").click()
    assert fake_pbx.wait_for("unhold") == {"command": "unhold", "call_id": "ctl-1", "agent": "101"}
    ctid.events({"event": "unhold", "call_id": "ctl-1", "agent": "101"})
    expect(pop.locator(".badge")).to_have_text("Talking")

    # Transfer to a chosen colleague; the list shows live presence.
    carol.get_by_label("My status").select_option("available")
    expect(carol.get_by_label("My status")).to_have_attribute("data-presence", "available")
    pop.get_by_role("button", name="Transfer", exact=True).click()
    target = pop.get_by_label("Transfer to")
    expect(target).to_be_focused()
    expect(target.locator("option")).to_have_text(
        ["First free colleague", "Carol Petrova — Available", "Bob Ivanov — Offline"])
    shot(alice, "transfer-chooser")
    target.select_option("carol")
    pop.locator("form.transfer").get_by_role("button", name="Transfer").click()
    assert fake_pbx.wait_for("transfer") == {"command": "transfer", "call_id": "ctl-1", "agent": "101",
                                             "target": "103"}
    expect(pop.locator("form.transfer")).to_have_count(0)
    ctid.events({"event": "transfer", "call_id": "ctl-1", "agent": "101", "target": "103"})
    expect(pop).to_contain_text("Transferred to Carol Petrova")
    carol_card = card(carol, "+7 916 123-45-67")
    expect(carol_card).to_contain_text("Anna Kuznetsova")
    expect(carol_card).to_contain_text("Alice Smirnova")  # transferred from
    shot(carol, "transferred-300px")

    # Carol hangs up; then the call ends and her card says so.
    carol_card.get_by_role("button", name="Hang up").click()
    assert fake_pbx.wait_for("hangup") == {"command": "hangup", "call_id": "ctl-1", "agent": "103"}
    ctid.events({"event": "end", "call_id": "ctl-1", "agent": "103"})
    expect(carol_card.locator(".badge")).to_have_text("Answered")
    carol_card.get_by_role("button", name="Close").click()
    expect(card(carol, "+7 916 123-45-67")).to_have_count(0)
    assert fake_pbx.bad_signatures == 0
    assert alice.errors == [] and carol.errors == []


def test_transfer_to_first_free_and_pbx_errors_are_shown(open_page, ctid, fake_pbx):
    alice = open_page("alice")
    ctid.ring("free-1", "+79161234567")
    ctid.events({"event": "answer", "call_id": "free-1", "agent": "101"})
    pop = card(alice, "+7 916 123-45-67")
    pop.get_by_role("button", name="Transfer", exact=True).click()
    pop.locator("form.transfer").get_by_role("button", name="Transfer").click()
    # Nobody is available: ctid refuses, the panel says why and keeps the chooser open.
    expect(alice.locator("#toast")).to_contain_text("No colleague is free right now.")
    expect(pop.locator("form.transfer")).to_be_visible()
    assert [c for c in fake_pbx.commands if c["command"] == "transfer"] == []
    ctid.http.put("/api/agents/bob/status", json={"status": "available"},
                  headers={"Authorization": f"Bearer {ctid.token('bob')}"}).raise_for_status()
    pop.locator("form.transfer").get_by_role("button", name="Transfer").click()
    assert fake_pbx.wait_for("transfer")["target"] == "102"


def test_reload_mid_call_restores_the_card(open_page, ctid):
    alice = open_page("alice", width=300)
    ctid.ring("reload-1", "+79161234567")
    ctid.events({"event": "answer", "call_id": "reload-1", "agent": "101"})
    expect(card(alice, "+7 916 123-45-67").locator(".badge")).to_have_text("Talking")
    alice.reload()
    alice.wait_for_selector("html[data-ready=true]")
    restored = card(alice, "+7 916 123-45-67")
    expect(restored.locator(".badge")).to_have_text("Talking")
    expect(restored.locator(".contact-name")).to_have_text("Anna Kuznetsova")
    expect(restored.get_by_role("button", name="Hold")).to_be_visible()
    assert re.fullmatch(r"\d+:\d\d", restored.locator(".timer").inner_text())
    shot(alice, "restored-after-reload-300px")
    # Nothing is wider than the side pane.
    assert alice.evaluate("document.documentElement.scrollWidth") <= 300


def test_missed_call_goes_to_callbacks_and_call_back_dials(open_page, ctid, fake_pbx):
    alice = open_page("alice")
    ctid.ring("miss-1", "+79161234567")
    ctid.events({"event": "end", "call_id": "miss-1", "outcome": "missed"})
    missed = card(alice, "+7 916 123-45-67")
    expect(missed.locator(".badge")).to_have_text("Missed")
    tab = alice.get_by_role("tab", name=re.compile("Callbacks"))
    expect(tab).to_contain_text("1")
    tab.click()
    task = alice.locator("li.task", has_text="+7 916 123-45-67")
    expect(task).to_contain_text("Anna Kuznetsova")
    expect(task).to_contain_text("missed 1×")
    shot(alice, "callbacks")
    task.get_by_role("button", name="Call back +7 916 123-45-67").click()
    assert fake_pbx.wait_for("dial") == {"command": "dial", "agent": "101", "number": "+79161234567"}
    # The PBX places the callback; ctid closes the task when that answered call is over.
    ctid.events({"event": "ring", "call_id": "cb-1", "direction": "outbound", "to": "+79161234567", "agent": "101"},
                {"event": "answer", "call_id": "cb-1", "agent": "101"})
    expect(alice.locator("li.task")).to_have_count(1)
    ctid.events({"event": "end", "call_id": "cb-1", "agent": "101"})
    expect(alice.locator("li.task")).to_have_count(0)
    expect(alice.get_by_text("No missed calls to call back.")).to_be_visible()
    expect(tab).not_to_contain_text("1")


def test_dialer_history_and_phone_links(open_page, ctid, fake_pbx):
    alice = open_page("alice")
    alice.get_by_label("Number to call").fill("8 (903) 555-01-01")
    alice.get_by_label("Number to call").press("Enter")
    assert fake_pbx.wait_for("dial") == {"command": "dial", "agent": "101", "number": "+79035550101"}
    expect(alice.get_by_text("Your phone rings first, then 8 (903) 555-01-01.")).to_be_visible()
    ctid.ring("hist-1", "+79161234567", recording_url="https://pbx.example/rec/1.mp3")
    ctid.events({"event": "answer", "call_id": "hist-1", "agent": "101"},
                {"event": "end", "call_id": "hist-1", "agent": "101"})
    ctid.ring("hist-2", "+79035550101", agent="102")  # Bob's call: not in Alice's history
    ctid.events({"event": "end", "call_id": "hist-2", "outcome": "missed"})
    alice.get_by_role("tab", name="History").click()
    item = alice.locator("li.history-item", has_text="+7 916 123-45-67")
    expect(item).to_contain_text("Anna Kuznetsova")
    expect(item).to_contain_text("Answered")
    expect(alice.locator("li.history-item")).to_have_count(1)
    # The recording plays from ctid through a short-lived link signed for Alice and this call (an <audio>
    # element cannot send headers, and no token may ever be in a URL).
    audio = item.get_by_label("Recording of the call with +7 916 123-45-67")
    expect(audio).to_have_attribute("src", re.compile(r".*/recording\?u=alice&exp=\d+&sig=[0-9a-f]{64}$"))
    src = audio.get_attribute("src")
    assert src.startswith(ctid.url + "/api/calls/") and "token" not in src
    signed = re.compile(r".*/api/calls/.*/recording\?u=.*")
    alice.route(signed, lambda route: route.fulfill(content_type="audio/wav", body=wav_bytes(seconds=1)))
    audio.evaluate("(a) => a.play()")
    alice.wait_for_function("() => document.querySelector('audio').duration > 0.9")
    # The PBX's recording URL does not answer: ctid says 502, and the panel says it is not available.
    alice.unroute(signed)
    alice.reload()
    alice.wait_for_selector("html[data-ready=true]")
    alice.get_by_role("tab", name="History").click()
    alice.locator("audio").evaluate("(a) => a.play().catch(() => {})")
    expect(item.locator(".no-recording")).to_have_text("The recording is not available.")
    # A phone link in the panel dials through ctid instead of the workstation's tel: handler.
    fake_pbx.commands.clear()
    item.get_by_role("link", name="+7 916 123-45-67").click()
    assert fake_pbx.wait_for("dial")["number"] == "+79161234567"
    # #dial=<number> (e.g. a tel: link handed to the panel) fills the dialer for the operator to confirm.
    alice.goto(ctid.url + "/panel/#dial=tel:%2B79035550102")
    alice.wait_for_selector("html[data-ready=true]")
    expect(alice.get_by_label("Number to call")).to_have_value("+79035550102")
    expect(alice.get_by_label("Number to call")).to_be_focused()
    assert "#" not in alice.url


def test_sign_out_and_token_in_the_url_fragment(open_page, ctid):
    token = ctid.token("alice")
    page = open_page(path=f"/panel/#token={token}")
    page.wait_for_selector("html[data-ready=true]")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    assert "token" not in page.url
    page.get_by_role("button", name="Menu").click()
    expect(page.locator("#menu")).to_contain_text("Signed in as alice (agent)")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to ctid")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Sign in to ctid")).to_be_visible()
    # A forged token: the hub refuses it and the panel asks to sign in again.
    page.goto(ctid.url + "/panel/#token=forged")
    expect(page.get_by_role("alert")).to_have_text("Your session has ended. Please sign in again.")


def test_no_controls_when_the_connector_cannot_command_the_pbx(browser, tmp_path, fake_pbx):
    """The generic connector without command_url declares no capabilities: the panel offers none."""
    from .conftest import start_ctid, stop_ctid

    server = start_ctid(tmp_path, fake_pbx, commands=False)
    context = browser.new_context(viewport={"width": 300, "height": 700})
    try:
        page = context.new_page()
        page.goto(server.url + "/panel/")
        sign_in(page, "alice")
        server.ring("nocap-1", "+79161234567")
        server.events({"event": "answer", "call_id": "nocap-1", "agent": "101"})
        pop = card(page, "+7 916 123-45-67")
        expect(pop.locator(".badge")).to_have_text("Talking")
        expect(pop.locator(".contact-name")).to_have_text("Anna Kuznetsova")
        expect(pop.get_by_role("button")).to_have_text(["Open in CRM"])  # no hold, transfer or hang-up
        expect(page.get_by_label("Number to call")).to_be_disabled()
        expect(page.get_by_text("Calling from the panel is not available for your phone line.")).to_be_visible()
        shot(page, "no-capabilities-300px")
        server.events({"event": "end", "call_id": "nocap-1", "agent": "101"})
        page.get_by_role("tab", name="History").click()
        expect(page.locator("li.history-item .number")).to_have_text("+7 916 123-45-67")
        expect(page.get_by_role("link", name="+7 916 123-45-67")).to_have_count(0)  # nothing to dial with
        assert fake_pbx.commands == []
    finally:
        context.close()
        stop_ctid(server)
