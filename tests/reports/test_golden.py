"""Hand-computed figures of the golden history (tests/reports/history.py) in every output format.

Period 2026-03-02 .. 03-03 (Europe/Moscow). Inbound: c1 c2 c3 c4 c5 c6 c8 c9 c10 = 9; c4 is a short
abandon (3 s < 5 s), so offered = 8. Answered c1 c2 c5 c6 c9 = 5; abandoned c3 c8 c10 = 3.
Answer rate 5/8 = 62.5 %. Waits of answered: 10 30 15 8 4 -> ASA 67/5 = 13.4 s; within 20 s: 4,
abandoned within 20 s: c8 -> SL (negative) 4/8 = 50 %. Talk 120 5 600 200 45 -> 970/5 = 194 s.
Cost: c6 states 2.5 RUB, c7 (outbound, mobile, 60 s) priced 1 min x 2.0 -> 4.5.
c5 starts 23:55 on 03-02 and talks past midnight: it counts on 03-02, hour 23.
c3 rang alice and was missed at 09:20:40; bob called the number back at 09:40:00 (c7): called back
in time (1160 s = 19:20), a callback done by bob. c8 was missed; the caller called again (c9).
c10 was never reached. c11 is on 03-04, outside the period.
"""

from __future__ import annotations

import csv
import io
import json

import openpyxl

from ctid.reports.engine import run_report
from ctid.reports.params import parse
from ctid.reports.render import render


async def report(ctx, name, **kw):
    params = parse(name, date_from="2026-03-02", date_to="2026-03-03", **kw)
    return await run_report(ctx, params)


def csv_rows(body: bytes) -> list[list[str]]:
    assert body.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


async def test_summary_in_every_format(golden):
    result = await report(golden, "summary")
    [row] = result.tables[0].rows
    assert row == {"offered": 8, "answered": 5, "missed": 3, "short_abandons": 1, "answer_rate": 0.625,
                   "service_level": 0.5, "asa": 13.4, "avg_talk": 194.0, "outbound": 1, "cost": 4.5}

    data = json.loads(render(result, "json"))
    assert data["tables"][0]["rows"][0]["answer_rate"] == 0.625
    assert [d["term"] for d in data["definitions"]][:3] == ["period", "offered", "answered"]
    assert "short abandons" in data["definitions"][1]["definition"]

    rows = csv_rows(render(result, "csv"))
    header, values = rows[0], rows[1]
    got = dict(zip(header, values, strict=True))
    assert got["Offered"] == "8" and got["Answered"] == "5" and got["Answer rate (%)"] == "62.5"
    assert got["Avg. speed of answer (s)"] == "13.4" and got["Avg. speed of answer"] == "0:13"
    assert got["Avg. talk"] == "3:14" and got["Cost"] == "4.50"
    assert any(r and r[0] == "# service_level" for r in rows)

    text = render(result, "table").decode()
    assert "62.5 %" in text and "50.0 %" in text and "3:14" in text and "Definitions:" in text

    book = openpyxl.load_workbook(io.BytesIO(render(result, "xlsx")))
    sheet = book.worksheets[0]
    cells = {sheet.cell(1, x).value: sheet.cell(2, x) for x in range(1, sheet.max_column + 1)}
    assert cells["Offered"].value == 8 and cells["Answer rate"].value == 0.625
    assert cells["Answer rate"].number_format == "0.0%"
    assert cells["Avg. talk"].value.total_seconds() == 194 and cells["Avg. talk"].number_format == "[h]:mm:ss"
    assert "Definitions" in book.sheetnames

    html = render(result, "html").decode()
    assert "62.5 %" in html and "<dt>service_level</dt>" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "<script" not in html


async def test_by_hour_chart_and_midnight(golden):
    result = await report(golden, "by-hour")
    rows = {r["hour"]: r for r in result.tables[0].rows}
    assert len(rows) == 24
    assert (rows["09:00"]["offered"], rows["09:00"]["answered"], rows["09:00"]["missed"]) == (3, 2, 1)
    assert (rows["10:00"]["offered"], rows["10:00"]["answered"]) == (1, 1)  # c4's short abandon left out
    assert rows["23:00"]["answered"] == 1  # c5, talking past midnight
    assert rows["00:00"]["offered"] == 0
    html = render(result, "html").decode()
    assert html.count("<svg") == 1 and "kozea.github.io" not in html
    book = openpyxl.load_workbook(io.BytesIO(render(result, "xlsx")))
    assert book.worksheets[0].cell(25, 1).value == "23:00"


async def test_by_day_puts_the_midnight_call_on_its_first_day(golden):
    result = await report(golden, "answer-rate", group_by="day")
    rows = {r["day"]: r for r in result.tables[0].rows}
    assert (rows["2026-03-02"]["offered"], rows["2026-03-02"]["answered"]) == (5, 4)  # c1 c2 c3 c5 c6
    assert (rows["2026-03-03"]["offered"], rows["2026-03-03"]["answered"]) == (3, 1)
    assert rows["2026-03-03"]["answer_rate"] == 1 / 3
    assert result.tables[0].totals["outbound_rate"] == 1.0
    book = openpyxl.load_workbook(io.BytesIO(render(result, "xlsx")))
    assert book.worksheets[0].cell(2, 1).is_date


async def test_service_level_treatments(golden):
    for treatment, expected in (("negative", 4 / 8), ("ignore", 4 / 5), ("positive", 5 / 8)):
        golden.settings = golden.settings.model_copy(update={"abandon_treatment": treatment})
        result = await report(golden, "service-level", group_by="none")
        assert result.tables[0].rows[0]["service_level"] == expected, treatment


async def test_agents_transfers_and_callbacks_by_someone_else(golden):
    result = await report(golden, "agents")
    rows = {r["agent"]: r for r in result.tables[0].rows}
    alice, bob = rows["Alice Smirnova"], rows["Bob Ivanov"]
    assert (alice["answered"], alice["missed"], alice["answer_rate"]) == (3, 1, 0.75)
    assert alice["avg_talk"] == 255.0 and alice["callbacks"] == 0
    assert (bob["answered"], bob["transfers"], bob["short_calls"], bob["short_share"]) == (2, 1, 1, 0.5)
    assert (bob["outbound"], bob["outbound_connected"], bob["callbacks"], bob["callback_avg"]) == (1, 1, 1, 1160.0)
    assert (bob["rating"], bob["ratings"], bob["avg_hold"]) == (4.5, 2, 10.0)
    got = csv_rows(render(result, "csv"))
    assert got[0][0] == "Agent" and {r[0] for r in got[1:3]} == {"Alice Smirnova", "Bob Ivanov"}


async def test_missed_and_follow_up(golden):
    result = await report(golden, "missed")
    totals = result.tables[0].totals
    assert (totals["missed"], totals["called_back_in_sla"], totals["called_back_late"], totals["customer_called"],
            totals["not_reached"]) == (3, 1, 0, 1, 1)
    assert totals["reached_in_sla"] == 1 / 3 and totals["callback_avg"] == 1160.0
    assert totals["callback_median"] == 1140  # nearest rank over whole minutes: 19 min
    assert [r["number"] for r in result.table("followups").rows] == ["+79161110010"]
    text = render(result, "table").decode()
    assert "19:20" in text and "+79161110010" in text
    assert len(openpyxl.load_workbook(io.BytesIO(render(result, "xlsx"))).sheetnames) == 3


async def test_campaigns_cost_and_funnel(golden):
    campaigns = await report(golden, "campaigns")
    rows = {r["campaign"]: r for r in campaigns.tables[0].rows}
    assert (rows["Spring"]["offered"], rows["Spring"]["new_contacts"], rows["Spring"]["cost"]) == (2, 2, 2.5)
    assert (rows["Autumn"]["offered"], rows["Autumn"]["spend"], rows["Autumn"]["leads"]) == (1, 100.0, 1)
    assert (rows["Autumn"]["won"], rows["Autumn"]["revenue"], rows["Autumn"]["roi"]) == (1, 1000.0, 9.0)

    cost = await report(golden, "cost")
    by = {r["direction"]: r for r in cost.tables[0].rows}
    assert (by["outbound"]["cost"], by["outbound"]["priced"]) == (2.0, 1)

    funnel = await report(golden, "funnel")
    stages = [(r["stage"], r["count"]) for r in funnel.tables[0].rows]
    assert stages == [("Offered", 8), ("Answered", 5), ("Target calls", 4), ("Target callers", 4),
                      ("Contacts", 0), ("Leads", 1), ("Opportunities", 1), ("Won", 1), ("Revenue", 1000.0)]
    assert funnel.tables[0].rows[1]["conversion"] == 5 / 8
    ru = await report(golden, "funnel", lang="ru")
    assert ru.title == "Воронка продаж" and ru.tables[0].rows[0]["stage"] == "Поступило"


async def test_load_from_presence_history(golden):
    result = await report(golden, "load", group_by="agent")
    [alice] = [r for r in result.tables[0].rows if r["agent"] == "Alice Smirnova"]
    assert (alice["available_h"], alice["away_h"]) == (9 * 3600, 3600)
    assert alice["handle_h"] == 120 + 600 + 45  # c1, c5 and c9 (c6 was answered by bob first)


async def test_load_carries_the_status_from_before_the_period(golden):
    """Alice went away at 12:00 and came back at 13:00 on 03-02: a period starting at 03-02 12:00
    cannot be asked for, but 03-03 starts with her last status of 03-02 (offline: nothing counted)."""
    result = await run_report(golden, parse("load", date_from="2026-03-03", date_to="2026-03-03", group_by="agent"))
    assert [r for r in result.tables[0].rows if r["available_h"]] == []
    result = await run_report(golden, parse("load", date_from="2026-03-02", date_to="2026-03-02", group_by="day"))
    [day] = result.tables[0].rows
    assert (day["day"], day["available_h"], day["away_h"]) == ("2026-03-02", 9 * 3600, 3600)


def cyrillic(text: str) -> bool:
    return any("а" <= ch.lower() <= "я" or ch in "ёЁ" for ch in text)


def test_every_definition_has_english_and_russian():
    """A definition added in one language only (or left untranslated) fails here."""
    from ctid.config.models import ReportsConfig
    from ctid.reports.definitions import NOTES, TEXTS, all_definitions

    from .conftest import SETTINGS

    assert set(TEXTS) == set(NOTES) == {"en", "ru"}
    assert set(NOTES["en"]) == set(NOTES["ru"]) and all(cyrillic(text) for text in NOTES["ru"].values())
    for settings in (SETTINGS, ReportsConfig(abandon_treatment="ignore", answered_min_talk_seconds=3),
                     ReportsConfig(abandon_treatment="positive")):
        en, ru = all_definitions(settings, "en"), all_definitions(settings, "ru")
        assert set(en) == set(ru)
        for term in en:
            assert not cyrillic(en[term]), term
            assert cyrillic(ru[term]) and ru[term] != en[term], term
        # the settings' values are filled in both languages
        assert f"{settings.service_level_seconds:g} с" in ru["service_level"]
        assert settings.abandon_treatment in ru["service_level"]


async def test_russian_definitions_in_every_format(golden):
    ru = await report(golden, "summary", lang="ru")
    en = await report(golden, "summary")
    assert [t for t, _ in ru.definitions] == [t for t, _ in en.definitions]
    offered = dict(ru.definitions)["offered"]
    assert offered.startswith("Поступило = ") and "5 с" in offered
    assert all(cyrillic(text) for _, text in ru.definitions)

    data = json.loads(render(ru, "json"))
    assert data["definitions"][1] == {"term": "offered", "definition": offered}

    rows = csv_rows(render(ru, "csv"))
    assert ["# offered", offered] in rows

    text = render(ru, "table").decode()
    assert "Определения:" in text and "Definitions" not in text and "Поступило = " in text

    book = openpyxl.load_workbook(io.BytesIO(render(ru, "xlsx")))
    sheet = book["Определения"]
    cells = {sheet.cell(y, 1).value: sheet.cell(y, 2).value for y in range(1, sheet.max_row + 1)}
    assert cells["offered"] == offered and "Definitions" not in book.sheetnames

    html = render(ru, "html").decode()
    assert "<h2>Определения</h2>" in html and f"<dd>{offered}</dd>" in html

    for name in ("agents", "missed", "cost", "load", "campaigns", "funnel", "queue"):
        result = await report(golden, name, lang="ru")
        assert all(cyrillic(text) for _, text in result.definitions), name


async def test_notes_follow_the_language(golden):
    """Why CRM figures are empty is said in the report's language too."""
    from dataclasses import replace

    no_crm = replace(golden, sales_facts=None)
    ru = await report(no_crm, "funnel", lang="ru")
    assert ru.notes == ["не настроена CRM с данными о продажах: показатели CRM пусты"]
    assert "Примечание: не настроена CRM" in render(ru, "table").decode()
    en = await report(no_crm, "campaigns")
    assert en.notes == ["no CRM with sales facts is configured: CRM figures are empty"]
