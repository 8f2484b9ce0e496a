"""The supervisor's view end to end: presence changes seen live both ways, the agents board with current
calls, today's KPIs computed by the server and pushed through the hub (kpisUpdated), and everyone's
calls and history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect

from .conftest import shot


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_status_changes_show_on_the_other_signed_in_page(open_page, ctid):
    alice = open_page("alice")
    boss = open_page("super")
    boss.get_by_role("tab", name="Team").click()
    row = boss.locator("li.agent", has_text="Alice Smirnova")
    expect(row.locator(".presence")).to_contain_text("Offline")
    expect(boss.get_by_label("My status")).to_have_count(0)  # a supervisor without a line has no status

    alice.get_by_label("My status").select_option("available")
    expect(row.locator(".presence")).to_contain_text("Available")
    expect(row).to_have_attribute("data-presence", "available")

    # ...and the other way round: the supervisor sets Alice away, her own selector follows.
    boss.get_by_label("Status of Alice Smirnova").select_option("away")
    expect(alice.get_by_label("My status")).to_have_value("away")
    expect(row.locator(".presence")).to_contain_text("Away")

    # A change made elsewhere (the launcher, another tab: here the REST API) reaches both pages.
    ctid.http.put("/api/agents/alice/status", json={"status": "dnd"},
                  headers={"Authorization": f"Bearer {ctid.token('alice')}"}).raise_for_status()
    expect(alice.get_by_label("My status")).to_have_value("dnd")
    expect(row.locator(".presence")).to_contain_text("Do not disturb")
    expect(row.locator(".presence-source")).to_have_count(0)  # set by the person: no note

    # The launcher sets Alice away (her workstation locked; it may once she is available): the board
    # says who did it.
    alice.get_by_label("My status").select_option("available")
    expect(row.locator(".presence")).to_contain_text("Available")
    ctid.http.put("/api/agents/alice/status", json={"status": "away", "source": "launcher", "lease_seconds": 60},
                  headers={"Authorization": f"Bearer {ctid.token('alice')}"}).raise_for_status()
    expect(row.locator(".presence")).to_contain_text("Away")
    expect(row.locator(".presence-source")).to_have_text(" · set by the launcher")
    expect(row.locator(".presence-source")).to_have_attribute("data-source", "launcher")
    boss.get_by_label("Status of Alice Smirnova").select_option("available")
    expect(row.locator(".presence")).to_contain_text("Available")
    expect(row.locator(".presence-source")).to_have_count(0)
    assert alice.errors == [] and boss.errors == []


def test_agents_board_and_live_kpis_for_today(open_page, ctid):
    now = datetime.now(UTC)
    # Earlier today: one answered call (5 s to answer, 60 s talk) and one missed.
    start = now - timedelta(minutes=10)
    if start.astimezone().date() != now.astimezone().date():  # just after midnight: stay within today
        start = now - timedelta(seconds=90)
    ctid.ring("k-1", "+79161234567", timestamp=iso(start))
    ctid.events({"event": "answer", "call_id": "k-1", "agent": "101", "timestamp": iso(start + timedelta(seconds=5))},
                {"event": "end", "call_id": "k-1", "agent": "101", "timestamp": iso(start + timedelta(seconds=65))})
    ctid.ring("k-2", "+79990001122", agent="102", timestamp=iso(start + timedelta(seconds=70)))
    ctid.events({"event": "end", "call_id": "k-2", "outcome": "missed",
                 "timestamp": iso(start + timedelta(seconds=80))})

    boss = open_page("super")
    boss.get_by_role("tab", name="Team").click()
    kpi = lambda name: boss.locator(f'[data-kpi="{name}"] .kpi-value')  # noqa: E731
    expect(kpi("answered")).to_have_text("1")
    expect(kpi("missed")).to_have_text("1")
    expect(kpi("answer-rate")).to_have_text("50 %")
    expect(kpi("asa")).to_have_text("0:05")
    expect(kpi("talk")).to_have_text("1:00")
    expect(kpi("ringing")).to_have_text("0")
    expect(kpi("service-level")).to_have_text("50 %")  # k-1 within 20 s, k-2 abandoned: negative treatment

    # Live: Carol becomes available, a call rings her, she answers; the board and KPIs follow.
    ctid.http.put("/api/agents/carol/status", json={"status": "available"},
                  headers={"Authorization": f"Bearer {ctid.token('carol')}"}).raise_for_status()
    expect(kpi("busy")).to_have_text("0 / 1")
    ctid.ring("k-3", "+74957770000", agent="103")
    expect(kpi("ringing")).to_have_text("1")
    carol_row = boss.locator("li.agent", has_text="Carol Petrova")
    expect(carol_row.locator(".current-call")).to_contain_text("Incoming call: +7 495 777-00-00")
    ctid.events({"event": "answer", "call_id": "k-3", "agent": "103"})
    expect(kpi("ringing")).to_have_text("0")
    expect(kpi("answered")).to_have_text("2")
    expect(kpi("answer-rate")).to_have_text("67 %")
    expect(kpi("service-level")).to_have_text("67 %")
    expect(kpi("busy")).to_have_text("1 / 0")
    expect(carol_row).to_have_attribute("data-presence", "busy")
    expect(carol_row.locator(".current-call")).to_contain_text("Talking: +7 495 777-00-00")
    expect(carol_row.locator(".presence")).to_contain_text("On a call")
    # The supervisor sees every call as a card, with the agent's name.
    expect(boss.locator("article.card", has_text="+7 495 777-00-00")).to_contain_text("Carol Petrova")
    expect(boss.locator("article.card")).to_have_count(1)  # calls that ended before the page opened: KPIs only
    shot(boss, "supervisor-desktop")
    boss.set_viewport_size({"width": 300, "height": 900})
    shot(boss, "supervisor-300px")
    assert boss.evaluate("document.documentElement.scrollWidth") <= 300

    # History: everyone's calls for a supervisor.
    boss.get_by_role("tab", name="History").click()
    expect(boss.locator("li.history-item")).to_have_count(2)
    expect(boss.locator("li.history-item .number")).to_have_text(["+7 999 000-11-22", "+7 916 123-45-67"])
    expect(boss.locator("li.history-item", has_text="+7 999 000-11-22")).to_contain_text("Missed")
    expect(boss.locator("li.history-item", has_text="+7 916 123-45-67")).to_contain_text("Alice Smirnova")
    assert boss.errors == []


def test_rest_additions_the_panel_relies_on(ctid):
    """Snapshot lists each connector's capabilities; /api/calls?order=desc gives the newest first."""
    headers = {"Authorization": f"Bearer {ctid.token('super')}"}
    snapshot = ctid.http.get("/api/snapshot", headers=headers).json()
    assert snapshot["connectors"] == {"office": ["dial", "hangup", "hold", "recordings", "transfer"]}
    for index in range(3):
        ctid.ring(f"order-{index}", f"+7999000000{index}")
    newest = ctid.http.get("/api/calls", params={"order": "desc", "limit": 2}, headers=headers).json()["items"]
    assert [c["pbx_call_id"] for c in newest] == ["order-2", "order-1"]
    oldest = ctid.http.get("/api/calls", params={"limit": 2}, headers=headers).json()["items"]
    assert [c["pbx_call_id"] for c in oldest] == ["order-0", "order-1"]
    bad = ctid.http.get("/api/calls", params={"order": "up"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["error"] == "bad_query"
