"""GET /api/reports/{name} through a running daemon: supervisors only, downloads, stable 400 ids, and
fuzzed parameters never give a 5xx."""

from __future__ import annotations

import io
import json
from urllib.parse import quote

import openpyxl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctid.testing.daemon import running_daemon

from .conftest import AGENT_KEY, API_KEY, PASSWORDS, post_events

ADMIN = {"Authorization": f"Bearer {API_KEY}"}
AGENT = {"Authorization": f"Bearer {AGENT_KEY}"}


async def test_reports_for_supervisors_only_with_downloads(config):
    async with running_daemon(config) as app:
        await post_events(app, [
            {"event": "ring", "call_id": "r1", "from": "+79161234567", "agent": "101",
             "timestamp": "2026-03-02T09:00:00Z", "group": "sales"},
            {"event": "answer", "call_id": "r1", "agent": "101", "timestamp": "2026-03-02T09:00:06Z"},
            {"event": "end", "call_id": "r1", "timestamp": "2026-03-02T09:01:06Z"},
        ])
        denied = await app.client.get("/api/reports/summary", headers=AGENT)
        assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
        assert (await app.client.get("/api/reports", headers=AGENT)).status_code == 403
        assert (await app.client.get("/api/reports/summary")).status_code == 401

        token = await app.token("super", PASSWORDS["super"])
        boss = {"Authorization": f"Bearer {token}"}
        in_url = await app.client.get("/api/reports", params={"access_token": token})
        assert in_url.status_code == 401  # a token is never taken from a URL (docs/security.md)
        catalogue = (await app.client.get("/api/reports", headers=boss)).json()["items"]
        assert "funnel" in [item["name"] for item in catalogue]
        query = {"from": "2026-03-02", "to": "2026-03-02"}
        data = (await app.client.get("/api/reports/summary", params=query, headers=boss)).json()
        row = data["tables"][0]["rows"][0]
        assert (row["offered"], row["answered"], row["asa"], row["avg_talk"]) == (1, 1, 6.0, 60.0)
        assert data["definitions"][0]["term"] == "period"

        csv_body = await app.client.get("/api/reports/summary", params={**query, "format": "csv"}, headers=ADMIN)
        assert csv_body.headers["content-type"].startswith("text/csv")
        assert 'filename="ctid-summary-2026-03-02-2026-03-02.csv"' in csv_body.headers["content-disposition"]
        assert csv_body.content.startswith("\ufeff".encode())
        xlsx = await app.client.get("/api/reports/by-hour", params={**query, "format": "xlsx"}, headers=ADMIN)
        book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
        assert book.worksheets[0].cell(1, 1).value == "Hour"
        html = await app.client.get("/api/reports/by-hour", params={**query, "format": "html", "lang": "ru"},
                                    headers=ADMIN)
        assert "<svg" in html.text and "По часам" in html.text

        spec = (await app.client.get("/openapi.json")).json()
        assert "/api/reports/{name}" in spec["paths"]


async def test_bad_parameters_are_400_with_stable_ids(config):
    async with running_daemon(config) as app:
        cases = [
            ("/api/reports/nope", {}, "unknown_report"),
            ("/api/reports/summary", {"from": "2026-03-05", "to": "2026-03-01"}, "bad_period"),
            ("/api/reports/summary", {"from": "yesterday"}, "bad_period"),
            ("/api/reports/summary", {"from": "2020-01-01", "to": "2026-01-01"}, "period_too_long"),
            ("/api/reports/summary", {"format": "pdf"}, "bad_format"),
            ("/api/reports/by-hour", {"group_by": "agent"}, "bad_group_by"),
            ("/api/reports/summary", {"lang": "de"}, "bad_lang"),
        ]
        for path, params, error in cases:
            response = await app.client.get(path, params=params, headers=ADMIN)
            assert response.status_code == 400, (path, params, response.text)
            assert response.json()["error"] == error


_TEXT = st.one_of(st.none(), st.text(max_size=30), st.sampled_from(["2026-03-02", "2026-13-01", "0001-01-01",
                                                                    "9999-12-31", "summary", "day", "agent"]))


async def test_fuzzed_parameters_never_fail_the_server(config):
    async with running_daemon(config) as app:
        seen = []

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(name=st.one_of(st.sampled_from(["summary", "queue", "missed", "funnel", "campaigns", "load"]),
                              st.text(min_size=1, max_size=20)),
               params=st.fixed_dictionaries({}, optional={k: _TEXT for k in (
                   "from", "to", "group_by", "agent", "group", "format", "lang")}))
        def check(name, params):
            seen.append((name, {k: v for k, v in params.items() if v is not None}))

        check()
        for name, params in seen:
            response = await app.client.get(f"/api/reports/{quote(name, safe='')}", params=params, headers=ADMIN)
            assert response.status_code < 500, (name, params, response.text)
            if response.status_code >= 400:
                assert set(json.loads(response.text)) == {"error", "message"}
