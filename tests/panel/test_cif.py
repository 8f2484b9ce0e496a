"""The panel as a Dynamics 365 CIF v1 channel provider, with a stub ``Microsoft.CIFramework`` injected
into the page that records every call: pops through searchAndOpenRecords / openForm, click-to-act dials,
the panel docks and sets its width; the library can also come from ``?ucilib=``."""

from __future__ import annotations

import json

from playwright.sync_api import expect

from .conftest import CIF_ORIGIN, shot, sign_in, watch_policy

# Records [method, ...arguments] in window.__cif; functions are kept in window.__cifHandlers.
STUB = """
(() => {
  window.__cif = [];
  window.__cifHandlers = {};
  const api = {};
  for (const name of ["setWidth", "setMode", "searchAndOpenRecords", "openForm", "addHandler", "getEnvironment"]) {
    api[name] = (...args) => {
      window.__cif.push([name, ...args.map((a) => (typeof a === "function" ? "<function>" : a))]);
      if (name === "addHandler") window.__cifHandlers[args[0]] = args[1];
      return Promise.resolve(name === "searchAndOpenRecords" ? "{}" : null);
    };
  }
  window.Microsoft = { CIFramework: api };
})();
"""


def cif_calls(page, method: str) -> list[list]:
    return [call[1:] for call in page.evaluate("window.__cif") if call[0] == method]


def test_cif_pop_click_to_act_and_panel_mode(open_page, ctid, fake_pbx):
    page = open_page("alice", width=360, init_script=STUB)
    assert page.evaluate("document.documentElement.classList.contains('cif')")
    assert cif_calls(page, "setWidth") == [[360]]
    assert cif_calls(page, "addHandler") == [["onclicktoact", "<function>"]]
    page.get_by_role("button", name="Menu").click()
    expect(page.get_by_label("Open the caller's CRM record automatically")).to_be_checked()  # default in CIF
    expect(page.locator("#menu")).to_contain_text("Channel Integration Framework")
    page.get_by_role("button", name="Menu").click()

    # A known caller: the panel docks and opens the record ctid found, once.
    popups = []
    page.on("popup", lambda popup: popups.append(popup.url))
    ctid.ring("cif-1", "+79161234567")
    expect(page.locator("article.card .contact-name")).to_have_text("Anna Kuznetsova")
    page.wait_for_function("() => window.__cif.some((c) => c[0] === 'searchAndOpenRecords')")
    assert cif_calls(page, "searchAndOpenRecords") == [
        ["contact", "?$select=fullname,telephone1&$filter=contactid eq c-1", False]]
    assert [1] in cif_calls(page, "setMode")
    ctid.events({"event": "answer", "call_id": "cif-1", "agent": "101"})
    expect(page.locator("article.card .badge")).to_have_text("Talking")
    page.reload()
    page.wait_for_selector("html[data-ready=true]")
    page.wait_for_timeout(200)
    assert cif_calls(page, "searchAndOpenRecords") == []  # not popped again after a reload
    # "Open in CRM" goes through CIF too.
    page.get_by_role("button", name="Open in CRM").click()
    page.wait_for_function("() => window.__cif.some((c) => c[0] === 'searchAndOpenRecords')")

    # An unknown caller: a new contact form with the number prefilled.
    ctid.ring("cif-2", "+79005554433")
    page.wait_for_function("() => window.__cif.some((c) => c[0] === 'openForm')")
    form = cif_calls(page, "openForm")
    assert [[json.loads(a) for a in args] for args in form] == [[{"entityName": "contact"},
                                                                 {"telephone1": "+79005554433"}]]
    shot(page, "cif-360px")

    # A phone icon clicked in Dynamics: onclicktoact with the field's JSON; the panel dials through ctid.
    page.evaluate("""window.__cifHandlers.onclicktoact(JSON.stringify(
        {value: "+79035550101", name: "mobilephone", format: "phone", entityLogicalName: "contact"}))""")
    assert fake_pbx.wait_for("dial") == {"command": "dial", "agent": "101", "number": "+79035550101"}
    assert popups == []  # CIF mode opens records in Dynamics, never windows
    assert page.errors == []


def test_cif_library_from_ucilib_parameter(browser, ctid, fake_pbx):
    """The channel URL may name the library (?ucilib=...); the panel loads it and waits for CIFInitDone."""
    library = f"{CIF_ORIGIN}/webresources/Widget/msdyn_ciLibrary.js"
    context = browser.new_context(viewport={"width": 360, "height": 800})
    try:
        loaded = []

        def serve_library(route) -> None:  # noqa: ANN001
            loaded.append(route.request.url)
            route.fulfill(content_type="text/javascript",
                          body=STUB + "setTimeout(() => window.dispatchEvent(new Event('CIFInitDone')), 50);")

        context.route(library, serve_library)
        page = context.new_page()
        watch_policy(page)
        page.goto(f"{ctid.url}/panel/?ucilib={library}&base={CIF_ORIGIN}")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("alice-pw")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("html[data-ready=true]")
        assert loaded == [library]
        script = page.locator("script[data-cifid=CIFMainLibrary]")
        expect(script).to_have_attribute("data-crmurl", CIF_ORIGIN)
        assert cif_calls(page, "setWidth") == [[360]]
        assert page.csp_violations == []  # the allowed library loads under the panel's policy
    finally:
        context.close()


def test_without_cif_the_panel_degrades_to_links(open_page, ctid):
    page = open_page("alice")
    assert not page.evaluate("document.documentElement.classList.contains('cif')")
    page.get_by_role("button", name="Menu").click()
    expect(page.get_by_label("Open the caller's CRM record automatically")).not_to_be_checked()
    page.get_by_label("Open the caller's CRM record automatically").check()
    # With automatic opening on, a known caller's record opens by itself (a window, not CIF).
    with page.expect_popup() as popup:
        ctid.ring("nocif-1", "+79161234567")
    assert popup.value.url.endswith("/panel/#/contact/c-1")
    assert page.errors == []


def test_automatic_opening_happens_once_with_two_tabs_open(browser, ctid):
    context = browser.new_context()
    try:
        first = context.new_page()
        first.goto(f"{ctid.url}/panel/?autopop=1")
        sign_in(first, "alice")  # "keep me signed in": the second tab is signed in too
        second = context.new_page()
        second.goto(f"{ctid.url}/panel/?autopop=1")
        second.wait_for_selector("html[data-ready=true]")
        opened = []
        context.on("page", lambda page: opened.append(page))
        ctid.ring("twotabs-1", "+79161234567")
        for page in (first, second):
            expect(page.locator("article.card .contact-name")).to_have_text("Anna Kuznetsova")
        first.wait_for_timeout(500)
        assert len(opened) == 1
        opened[0].wait_for_load_state()
        assert opened[0].url.endswith("/panel/#/contact/c-1")
    finally:
        context.close()
