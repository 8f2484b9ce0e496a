"""The Reports view: a supervisor picks a report and a period, sees its chart and table (Russian and
English), and downloads it as CSV and XLSX; agents have no Reports tab and get 403 from the API."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import openpyxl
from playwright.sync_api import expect

from .conftest import shot


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _calls(ctid) -> str:
    # both calls within this hour of today (the test checks one hour's row): from hh:00:05 to hh:02:10,
    # up to two minutes ahead of the clock right after the hour (the webhook accepts a day ahead)
    start = datetime.now(UTC).replace(minute=0, second=5, microsecond=0)
    ctid.ring("rp-1", "+79161234567", timestamp=iso(start), group="sales")
    ctid.events({"event": "answer", "call_id": "rp-1", "agent": "101", "timestamp": iso(start + timedelta(seconds=4))},
                {"event": "end", "call_id": "rp-1", "agent": "101", "timestamp": iso(start + timedelta(seconds=94))})
    ctid.ring("rp-2", "+79990001122", agent="102", timestamp=iso(start + timedelta(seconds=100)), group="sales")
    ctid.events({"event": "end", "call_id": "rp-2", "outcome": "missed",
                 "timestamp": iso(start + timedelta(seconds=130))})
    return start.strftime("%H:00")


def test_supervisor_views_and_downloads_a_report(open_page, ctid, tmp_path):
    hour = _calls(ctid)
    boss = open_page("super")
    boss.get_by_role("tab", name="Reports").click()
    boss.get_by_label("Report", exact=True).select_option("by-hour")
    today = datetime.now(UTC).date().isoformat()
    boss.get_by_label("From", exact=True).fill(today)
    boss.get_by_label("To", exact=True).fill(today)
    boss.get_by_role("button", name="Show").click()
    table = boss.locator('table[data-table="by-hour"]')
    expect(table.locator("tbody tr")).to_have_count(25)  # 24 hours and the total
    row = table.locator("tbody tr", has_text=hour)
    expect(row.locator("td").nth(1)).to_have_text("2")  # offered
    expect(row.locator("td").nth(2)).to_have_text("1")  # answered
    expect(table.locator("tr.total td").nth(4)).to_have_text("50.0 %")  # answer rate
    chart = boss.locator('figure.report-chart[data-chart="by-hour"] svg')
    expect(chart.locator(f'rect[data-x="{hour}"][data-series="answered"]')).to_be_visible()
    expect(chart.locator(f'rect[data-x="{hour}"][data-series="missed"]')).to_be_visible()
    expect(boss.locator("details.definitions")).to_contain_text("How the figures are computed")
    shot(boss, "reports-by-hour")

    with boss.expect_download() as csv_download:
        boss.get_by_role("button", name="Download CSV").click()
    path = tmp_path / "report.csv"
    csv_download.value.save_as(path)
    assert csv_download.value.suggested_filename == f"ctid-by-hour-{today}-{today}.csv"
    text = path.read_bytes().decode("utf-8-sig")
    assert text.startswith("Hour,Offered,Answered,Missed,Answer rate (%)")
    assert f"\r\n{hour},2,1,1,50.0," in text

    with boss.expect_download() as xlsx_download:
        boss.get_by_role("button", name="Download XLSX").click()
    xlsx = tmp_path / "report.xlsx"
    xlsx_download.value.save_as(xlsx)
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.read_bytes())).worksheets[0]
    hours = {sheet.cell(y, 1).value: y for y in range(2, 27)}
    assert sheet.cell(hours[hour], 2).value == 2 and sheet.cell(hours["Total"], 5).value == 0.5

    # Another report, in Russian: labels come translated from ctid.
    boss.goto(ctid.url + "/panel/?lang=ru")
    boss.get_by_role("tab", name="Отчёты").click()
    boss.get_by_label("Отчёт", exact=True).select_option("summary")
    boss.get_by_role("button", name="Показать").click()
    summary = boss.locator('table[data-table="summary"]')
    expect(summary.locator("th").first).to_have_text("Поступило")
    expect(summary.locator("tbody tr td").first).to_have_text("2")
    expect(boss.locator("details.definitions dd").nth(1)).to_contain_text("Поступило = входящие звонки")
    assert boss.errors == []


def test_agents_have_no_reports(open_page, ctid):
    alice = open_page("alice")
    expect(alice.get_by_role("tab", name="History")).to_be_visible()
    expect(alice.get_by_role("tab", name="Reports")).to_have_count(0)
    response = ctid.http.get("/api/reports/summary", headers={"Authorization": f"Bearer {ctid.token('alice')}"})
    assert response.status_code == 403 and response.json()["error"] == "forbidden"


def test_section_shortcuts_cover_every_visible_section(open_page):
    """Alt+Shift+n goes to the n-th section the user sees: five for a supervisor (Team, Reports), three
    for an agent; the menu's shortcut list shows that range."""
    boss = open_page("super")
    for key, name in (("5", "Reports"), ("4", "Team"), ("3", "History"), ("1", "Dial")):
        boss.keyboard.press(f"Alt+Shift+{key}")
        tab = boss.get_by_role("tab", name=re.compile(f"^{name}"))
        expect(tab).to_be_focused()
        expect(tab).to_have_attribute("aria-selected", "true")
    boss.keyboard.press("Alt+Shift+5")
    expect(boss.get_by_label("Report", exact=True)).to_be_visible()
    boss.get_by_role("button", name="Menu").click()
    expect(boss.locator("details.shortcuts kbd", has_text="Alt+Shift+1")).to_have_text("Alt+Shift+1…5")

    alice = open_page("alice")
    alice.keyboard.press("Alt+Shift+3")
    expect(alice.get_by_role("tab", name="History")).to_have_attribute("aria-selected", "true")
    for key in ("4", "5"):
        alice.keyboard.press(f"Alt+Shift+{key}")
        expect(alice.get_by_role("tab", name="History")).to_have_attribute("aria-selected", "true")
    expect(alice.get_by_role("tab")).to_have_count(3)
    alice.get_by_role("button", name="Menu").click()
    expect(alice.locator("details.shortcuts kbd", has_text="Alt+Shift+1")).to_have_text("Alt+Shift+1…3")
    assert boss.errors == [] and alice.errors == []


def test_a_language_switch_translates_the_report_shown(open_page):
    """Titles, labels and the definitions come from ctid in the panel's language; switching the
    language asks again, so nothing stays in the previous one."""
    boss = open_page("super")
    boss.get_by_role("tab", name="Reports").click()
    boss.get_by_role("button", name="Show").click()
    definitions = boss.locator("details.definitions dd")
    expect(definitions.nth(1)).to_contain_text("Offered = inbound calls")
    boss.get_by_role("button", name="Menu").click()
    boss.get_by_label("Language").select_option("ru")
    expect(boss.get_by_role("tab", name="Отчёты")).to_have_attribute("aria-selected", "true")
    expect(boss.locator('table[data-table="summary"] th').first).to_have_text("Поступило")
    expect(definitions.nth(1)).to_contain_text("Поступило = входящие звонки")
    expect(definitions.first).not_to_contain_text("Calls belong")
    assert boss.errors == []
