"""The panel's defences: the CIF library only from allowed origins, a strict Content-Security-Policy,
no inline script, no token in any URL, a favicon (docs/panel.md, "Security")."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from playwright.sync_api import expect

from .conftest import CIF_ORIGIN, sign_in, watch_policy

PANEL = Path(__file__).resolve().parents[2] / "panel"


def policy_of(ctid, path: str = "/panel/") -> dict[str, list[str]]:
    response = ctid.http.get(path)
    assert response.status_code == 200
    return {name: values for name, *values in
            (part.split() for part in response.headers["Content-Security-Policy"].split(";"))}


def test_panel_responses_carry_a_strict_policy(ctid):
    for path in ("/panel/", "/panel/js/app.js", "/panel/css/panel.css", "/panel/config.json"):
        policy = policy_of(ctid, path)
        assert policy["script-src"] == ["'self'", CIF_ORIGIN]
        # Dynamics and the configured CRM page may still embed it; nobody else
        assert policy["frame-ancestors"] == ["'self'", CIF_ORIGIN, ctid.url.replace("127.0.0.1", "localhost")]
        assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
        assert not any("unsafe" in value for values in policy.values() for value in values)
    assert ctid.http.get("/panel/config.json").json() == {"cif_origins": [CIF_ORIGIN]}


def test_the_panel_has_no_inline_script_or_handler():
    class Inline(HTMLParser):
        found: list[str] = []

        def handle_starttag(self, tag, attrs):
            names = dict(attrs)
            if tag == "script" and "src" not in names:
                self.found.append("inline <script>")
            self.found += [f"{tag} {name}=" for name in names if name.startswith("on") or name == "style"]

    for page in PANEL.rglob("*.html"):
        parser = Inline()
        parser.feed(page.read_text())
        assert parser.found == [], page
    for script in PANEL.rglob("*.js"):
        text = script.read_text()
        assert not re.search(r"\b(eval|new Function)\s*\(|innerHTML\s*=|setAttribute\(\"on", text), script


def test_a_ucilib_from_another_origin_is_refused_visibly(browser, ctid):
    context = browser.new_context()
    try:
        requested = []
        context.route("https://evil.example/**", lambda route: (requested.append(route.request.url),
                                                                route.fulfill(body="window.pwned = 1")))
        page = context.new_page()
        watch_policy(page)
        page.goto(f"{ctid.url}/panel/?ucilib=https://evil.example/msdyn_ciLibrary.js")
        expect(page.locator(".cif-refused")).to_contain_text("https://evil.example/msdyn_ciLibrary.js")
        expect(page.locator(".cif-refused")).to_have_attribute("role", "alert")
        # An allowed library with a foreign data-crmurl (?base=) is refused too.
        page.goto(f"{ctid.url}/panel/?ucilib={CIF_ORIGIN}/x.js&base=https://evil.example")
        expect(page.locator(".cif-refused")).to_contain_text("https://evil.example")
        sign_in(page, "alice")  # the panel still works, without CIF
        assert requested == [] and page.locator("script[data-cifid]").count() == 0
        assert not page.evaluate("document.documentElement.classList.contains('cif')")
        assert page.evaluate("window.pwned") is None
        # Even a script the panel were tricked into adding would be stopped by the policy.
        page.evaluate("""() => { const s = document.createElement('script');
                                 s.src = 'https://evil.example/direct.js'; document.head.append(s); }""")
        page.wait_for_timeout(200)
        assert requested == [] and page.evaluate("window.pwned") is None
        assert any("Content Security Policy" in text for text in page.csp_violations)
    finally:
        context.close()


def test_favicon_and_no_404_while_the_panel_loads(open_page, ctid):
    response = ctid.http.get("/favicon.ico")
    assert response.status_code == 200 and response.headers["content-type"].startswith("image/svg+xml")
    assert ctid.http.get("/panel/favicon.svg").status_code == 200
    page = open_page("alice")
    expect(page.locator("link[rel=icon]")).to_have_attribute("href", "favicon.svg")
    # open_page's teardown fails on any 404 or policy violation the page met


def test_no_token_in_any_url_of_the_rest_api(ctid):
    token = ctid.token("alice")
    assert ctid.http.get("/api/me", params={"access_token": token}).status_code == 401
    assert ctid.http.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_sign_in_says_how_long_to_wait_after_too_many_wrong_passwords(open_page):
    page = open_page()
    error = page.locator("#login-error")
    page.get_by_label("Username").fill("alice")
    for attempt in range(5):  # auth.throttle.user_failures (default 5) wrong passwords are answered as such
        page.get_by_label("Password").fill(f"guess-{attempt}")
        page.get_by_role("button", name="Sign in").click()
        expect(error).to_have_text("Wrong username or password.")
        page.evaluate("() => { document.getElementById('login-error').textContent = ''; }")
    page.get_by_label("Password").fill("alice-pw")  # even the right one must wait now
    page.get_by_role("button", name="Sign in").click()
    expect(error).to_have_text(re.compile(r"Too many wrong passwords\. Try again in (2\d|30) s\."))
    assert page.locator("html[data-ready=true]").count() == 0
