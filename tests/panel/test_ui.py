"""Panel behaviour beyond single calls: languages, keyboard use, reconnecting after ctid restarts,
embedding in an iframe, and the page's own modules (SignalR framing, backoff, the KPI tiles' formatting)."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import shot, sign_in, start_ctid, stop_ctid, watch_policy


def test_language_follows_the_browser_and_the_switch_is_remembered(open_page):
    page = open_page(locale="ru-RU")
    expect(page.get_by_role("heading")).to_have_text("Вход в ctid")
    page.get_by_label("Имя пользователя").fill("alice")
    page.get_by_label("Пароль").fill("wrong")
    page.get_by_role("button", name="Войти").click()
    expect(page.get_by_role("alert")).to_have_text("Неверное имя пользователя или пароль.")
    page.get_by_label("Пароль").fill("alice-pw")
    page.get_by_role("button", name="Войти").click()
    page.wait_for_selector("html[data-ready=true]")
    expect(page.locator("#connection")).to_contain_text("На связи")
    expect(page.get_by_role("tab", name="Набор")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "ru"
    shot(page, "russian")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    page.get_by_role("button", name="Меню").click()
    page.get_by_label("Язык").select_option("en")
    expect(page.get_by_role("tab", name="Dial")).to_be_visible()
    expect(page.get_by_label("Language")).to_be_focused()
    page.reload()
    page.wait_for_selector("html[data-ready=true]")
    expect(page.get_by_role("tab", name="History")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "en"


def test_both_languages_have_every_string(open_page):
    page = open_page()
    keys = page.evaluate("import('/panel/js/i18n.js').then((m) => m.KEYS)")
    assert set(keys) == {"en", "ru"}
    assert sorted(keys["en"]) == sorted(keys["ru"])
    used = set()
    import pathlib

    for path in (pathlib.Path(__file__).resolve().parents[2] / "panel" / "js").rglob("*.js"):
        if path.name == "i18n.js":
            continue
        used |= set(re.findall(r'\bt\("(\w+)"', path.read_text()))
    assert used - set(keys["en"]) == set(), "strings used but not translated"


def test_every_panel_module_is_loaded_by_the_page():
    """No dead modules: every file under panel/js/ is reached by imports from the page's entry script
    (a module only tests import, like the former in-browser KPI formulas, fails here)."""
    import pathlib

    panel = pathlib.Path(__file__).resolve().parents[2] / "panel"
    [entry] = re.findall(r'<script type="module" src="([^"]+)"', (panel / "index.html").read_text())
    seen, todo = set(), [(panel / entry).resolve()]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for target in re.findall(r'(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+"(\.{1,2}/[^"]+)"',
                                 module.read_text()):
            todo.append((module.parent / target).resolve())
    assert sorted(p.relative_to(panel).as_posix() for p in (panel / "js").rglob("*.js") if p not in seen) == []


def test_hub_framing_and_backoff(open_page):
    page = open_page()
    result = page.evaluate("""async () => {
      const hub = await import('/panel/js/hub.js');
      return {
        split: hub.splitRecords('{"type":6}\\x1e{"type":1,"target":"a"}\\x1e{"ty'),
        backoff: [0, 1, 2, 3, 4, 5, 6, 7, 12].map((n) => hub.backoffDelay(n, () => 0.5)),
        error: (() => { const e = new hub.HubError('forbidden: not your call'); return [e.errorId, e.message]; })(),
        plain: (() => { const e = new hub.HubError("Unknown hub method 'Fly'"); return [e.errorId, e.message]; })(),
      };
    }""")
    assert result["split"] == [['{"type":6}', '{"type":1,"target":"a"}'], '{"ty']
    assert result["backoff"] == [0, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
    assert result["error"] == ["forbidden", "not your call"]
    assert result["plain"] == ["hub_error", "Unknown hub method 'Fly'"]


def test_kpi_tiles_show_the_servers_figures(open_page):
    """The Team tiles (views/team.js) format ctid's kpisUpdated payload: before the first push, with no
    calls yet (nothing divided by zero), and with figures to round. The formulas themselves are the
    server's (ctid/kpi_live.py, tests/core/test_live_kpis.py); the browser computes none."""
    page = open_page()
    tiles = page.evaluate("""async () => {
      const { renderTeam } = await import('/panel/js/views/team.js');
      const shown = (kpis) => {
        const root = document.createElement('div');
        document.body.append(root);
        renderTeam(root, { state: { agents: new Map(), calls: new Map(), kpis }, act: () => {} });
        const out = Object.fromEntries([...root.querySelectorAll('[data-kpi]')]
          .map((el) => [el.dataset.kpi, el.querySelector('.kpi-value').textContent]));
        root.remove();
        return out;
      };
      const since = new Date(Date.now() - 65000).toISOString();
      return [
        shown(undefined),
        shown({ now: { ringing: 0, oldest_ringing_since: null, agents: { busy: 3, available: 0 } },
                today: { answered: 0, missed: 0, answer_rate: null, service_level: null, asa: null,
                         avg_talk: null } }),
        shown({ now: { ringing: 2, oldest_ringing_since: since, agents: { busy: 1, available: 4 } },
                today: { answered: 2, missed: 1, answer_rate: 2 / 3, service_level: 1 / 3, asa: 13.6,
                         avg_talk: 3725 } }),
      ];
    }""")
    names = ["ringing", "oldest", "busy", "answered", "missed", "answer-rate", "service-level", "asa", "talk"]
    before, empty, busy = tiles
    assert list(before) == names
    assert before == {**dict.fromkeys(names, "—"), "busy": "— / —"}
    assert empty == {"ringing": "0", "oldest": "—", "busy": "3 / 0", "answered": "0", "missed": "0",
                     "answer-rate": "—", "service-level": "—", "asa": "—", "talk": "—"}
    assert re.fullmatch(r"1:0[5-9]", busy.pop("oldest"))  # ticks from the oldest ringing call's start
    assert busy == {"ringing": "2", "busy": "1 / 4", "answered": "2", "missed": "1", "answer-rate": "67 %",
                    "service-level": "33 %", "asa": "0:14", "talk": "1:02:05"}


def test_keyboard_only_operation(open_page, ctid, fake_pbx):
    page = open_page("alice")
    ctid.ring("kb-1", "+79161234567")
    ctid.events({"event": "answer", "call_id": "kb-1", "agent": "101"})
    expect(page.locator("article.card .badge")).to_have_text("Talking")
    page.keyboard.press("Alt+Shift+H")
    assert fake_pbx.wait_for("hold")["call_id"] == "kb-1"
    page.keyboard.press("Alt+Shift+T")
    expect(page.get_by_label("Transfer to")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("form.transfer")).to_have_count(0)
    expect(page.get_by_role("button", name="Transfer")).to_be_focused()
    page.keyboard.press("Alt+Shift+E")
    assert fake_pbx.wait_for("hangup")["call_id"] == "kb-1"
    page.keyboard.press("Alt+Shift+S")
    expect(page.get_by_label("My status")).to_be_focused()
    page.keyboard.press("Alt+Shift+D")
    expect(page.get_by_label("Number to call")).to_be_focused()
    page.keyboard.type("+79035550101")
    page.keyboard.press("Enter")
    assert fake_pbx.wait_for("dial")["number"] == "+79035550101"
    # Tabs: arrow keys move between sections, focus follows.
    page.get_by_role("tab", name="Dial").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name=re.compile("Callbacks"))).to_be_focused()
    expect(page.get_by_role("tab", name=re.compile("Callbacks"))).to_have_attribute("aria-selected", "true")
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="History")).to_be_focused()
    page.keyboard.press("Alt+Shift+1")
    expect(page.get_by_role("tab", name="Dial")).to_be_focused()
    # Every control has an accessible name.
    unnamed = page.evaluate("""[...document.querySelectorAll('button, select, input, a[href]')]
        .filter((el) => !(el.getAttribute('aria-label') || el.labels?.length || el.textContent.trim()))
        .map((el) => el.outerHTML)""")
    assert unnamed == []


def test_reconnects_after_ctid_restarts_and_rebuilds_its_state(open_page, ctid, fake_pbx, tmp_path):
    page = open_page("alice")
    connection = page.locator("#connection")
    expect(connection).to_have_attribute("data-state", "connected")
    port = int(ctid.url.rsplit(":", 1)[1])
    stop_ctid(ctid)  # SIGTERM: ctid closes every hub connection with allowReconnect
    expect(connection).to_have_attribute("data-state", "reconnecting")
    expect(connection).to_contain_text(re.compile(r"Offline, retrying in \d+ s|Reconnecting"))
    shot(page, "reconnecting")
    again = start_ctid(tmp_path, fake_pbx, port=port)
    try:
        page.get_by_role("button", name="Retry now").click()
        expect(connection).to_have_attribute("data-state", "connected", timeout=10000)
        # The state is rebuilt from Snapshot(), and new events reach the page again.
        again.ring("after-restart", "+79161234567")
        expect(page.locator("article.card .contact-name")).to_have_text("Anna Kuznetsova")
        assert page.errors == []
    finally:
        page.context.close()  # first: ctid's graceful stop waits (up to 10 s) for a connected browser
        stop_ctid(again)


def test_works_inside_an_iframe_and_a_crm_page_can_ask_it_to_dial(browser, ctid, fake_pbx):
    # A page served by Playwright counts as public; a public page framing a private address needs
    # Chromium's local network access permission (docs/panel.md: the same holds for a real CRM).
    context = browser.new_context(viewport={"width": 1200, "height": 800}, permissions=["local-network-access"])
    try:
        # The CRM page is another origin than the panel (localhost vs 127.0.0.1).
        crm = ctid.url.replace("127.0.0.1", "localhost")
        panel = f"{ctid.url}/panel/?crm={crm}"
        host = f"""<!doctype html><title>CRM</title>
          <iframe id="ctid" title="ctid" src="{panel}" style="width:320px;height:700px;border:1px solid #999"></iframe>"""
        context.route(f"{crm}/host.html", lambda route: route.fulfill(content_type="text/html", body=host))
        page = context.new_page()
        watch_policy(page)  # the panel's frame-ancestors lets this CRM page (panel.frame_ancestors) frame it
        page.goto(f"{crm}/host.html")
        frame = page.frame_locator("#ctid")
        frame.get_by_label("Username").fill("alice")
        frame.get_by_label("Password").fill("alice-pw")
        frame.get_by_role("button", name="Sign in").click()
        expect(frame.locator("#connection")).to_have_attribute("data-state", "connected")
        ctid.ring("frame-1", "+79161234567")
        expect(frame.locator("article.card .contact-name")).to_have_text("Anna Kuznetsova")
        shot(page, "iframe-in-crm-page")
        page.evaluate("""document.getElementById('ctid').contentWindow.postMessage(
            {type: 'ctid.dial', number: '+79035550101'}, '*')""")
        assert fake_pbx.wait_for("dial")["number"] == "+79035550101"
        assert page.csp_violations == []
    finally:
        context.close()


def test_panel_login_page_at_300px(open_page):
    page = open_page(width=300)
    expect(page.get_by_role("heading", name="Sign in to ctid")).to_be_visible()
    shot(page, "sign-in-300px")
    assert page.evaluate("document.documentElement.scrollWidth") <= 300
    page.get_by_label("Language").select_option("ru")  # the language can be chosen before signing in
    expect(page.get_by_role("heading")).to_have_text("Вход в ctid")
    expect(page.get_by_label("Язык")).to_be_focused()
    page.get_by_label("Язык").select_option("en")
    sign_in(page, "super")
    expect(page.get_by_role("tab", name="Team")).to_be_visible()


CONTRAST_JS = """() => {
  const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const [r, g, b, a = 1] = parse(getComputedStyle(el).backgroundColor);
      if (a > 0.5) return [r, g, b];
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const text = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent.trim()).join('');
    if (!text || !el.checkVisibility() || el.closest('.sr-only')) continue;
    const style = getComputedStyle(el);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    out.push({text: text.slice(0, 30), fg: parse(style.color).slice(0, 3), bg: background(el), large,
              opacity: Number(style.opacity)});
  }
  return out;
}"""


def _luminance(rgb: list[float]) -> float:
    def channel(value: float) -> float:
        value /= 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_text_contrast_meets_wcag_aa(open_page, ctid):
    page = open_page("super")
    ctid.ring("contrast-1", "+79161234567", agent="101")
    ctid.ring("contrast-2", "+74957770000", agent="102")
    ctid.events({"event": "answer", "call_id": "contrast-2", "agent": "102"},
                {"event": "hold", "call_id": "contrast-2", "agent": "102"})
    ctid.ring("contrast-3", "+79005554433", agent="103")
    ctid.events({"event": "end", "call_id": "contrast-3", "outcome": "missed"})
    expect(page.locator("article.card")).to_have_count(3)
    page.get_by_role("tab", name="Team").click()
    expect(page.locator(".kpi")).to_have_count(9)  # every tile of the live KPIs (views/team.js)
    failures = []
    for item in page.evaluate(CONTRAST_JS):
        if item["opacity"] < 1:
            continue  # disabled controls are exempt (WCAG 1.4.3)
        lighter, darker = sorted((_luminance(item["fg"]), _luminance(item["bg"])), reverse=True)
        ratio = (lighter + 0.05) / (darker + 0.05)
        if ratio < (3 if item["large"] else 4.5):
            failures.append((item["text"], round(ratio, 2), item["fg"], item["bg"]))
    assert failures == []


def test_the_connection_stays_up_while_idle(open_page):
    """ctid pings every 0.5 s here and drops clients silent for 2 s: the panel keeps answering."""
    page = open_page()
    negotiations = []
    page.on("request", lambda request: negotiations.append(request.url) if "/hub/negotiate" in request.url else None)
    sign_in(page, "alice")
    page.wait_for_timeout(4000)  # a real server's real timers: two client timeouts of silence
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    assert len(negotiations) == 1


def test_a_same_origin_dynamics_page_opens_records_with_xrm(browser, ctid):
    """Framed by a Dynamics page it can reach (same origin), the panel opens records with Xrm.Navigation."""
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    try:
        host = """<!doctype html><title>Dynamics</title><script>
          window.opened = [];
          window.Xrm = {Navigation: {openForm: (options, parameters) => {
            window.opened.push([options, parameters || null]); return Promise.resolve({}); }}};
        </script><iframe id="ctid" title="ctid" src="/panel/" style="width:320px;height:700px"></iframe>"""
        context.route(f"{ctid.url}/crm/host.html", lambda route: route.fulfill(content_type="text/html", body=host))
        page = context.new_page()
        page.goto(f"{ctid.url}/crm/host.html")
        frame = page.frame_locator("#ctid")
        frame.get_by_label("Username").fill("alice")
        frame.get_by_label("Password").fill("alice-pw")
        frame.get_by_role("button", name="Sign in").click()
        expect(frame.locator("#connection")).to_have_attribute("data-state", "connected")
        ctid.ring("xrm-1", "+79161234567")
        frame.get_by_role("button", name="Open in CRM").click()
        ctid.ring("xrm-2", "+79005554433")
        frame.get_by_role("button", name="Create contact").click()
        page.wait_for_function("() => window.opened.length === 2")
        assert page.evaluate("window.opened") == [
            [{"entityName": "contact", "entityId": "c-1"}, None],
            [{"entityName": "contact"}, {"telephone1": "+79005554433"}],
        ]
    finally:
        context.close()
