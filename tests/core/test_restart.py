"""A restart loses nothing: presence, open callback tasks and calls carry over, and late events for
calls begun before the restart land on the same call."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ctid.builtins.generic import sign
from ctid.testing.daemon import running_daemon

from .conftest import API_KEY, SECRET

ADMIN = {"Authorization": f"Bearer {API_KEY}"}
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


async def post(app, events):
    body = json.dumps(events).encode()
    response = await app.client.post("/hooks/office", content=body, headers={"X-Ctid-Signature": sign(SECRET, body)})
    assert response.status_code == 200, response.text


def ev(kind, call_id, seconds, **fields):
    return {"event": kind, "call_id": call_id, "timestamp": (T0 + timedelta(seconds=seconds)).isoformat(), **fields}


async def test_state_survives_a_restart(config):
    async with running_daemon(config) as app:
        await post(app, [ev("ring", "r-1", 0, **{"from": "+79990001122"}, agent="101"), ev("end", "r-1", 20)])
        await post(app, [ev("ring", "r-2", 100, **{"from": "+79161234567"}, agent="102"),
                         ev("answer", "r-2", 105, agent="102")])
        response = await app.client.put("/api/agents/carol/status", json={"status": "away"}, headers=ADMIN)
        assert response.status_code == 200

    async with running_daemon(config) as app:
        agents = {a["id"]: a for a in (await app.client.get("/api/agents", headers=ADMIN)).json()["items"]}
        assert agents["carol"]["status"] == "away"
        # a second miss from the same number updates the task created before the restart
        await post(app, [ev("ring", "r-3", 300, **{"from": "+79990001122"}, agent="101"), ev("end", "r-3", 310)])
        tasks = (await app.client.get("/api/tasks", headers=ADMIN)).json()["items"]
        assert [(t["number"], t["status"], t["missed_count"]) for t in tasks] == [("+79990001122", "open", 2)]
        # the call that was talking when ctid stopped ends now, with the right durations
        await post(app, [ev("end", "r-2", 165)])
        calls = {c["pbx_call_id"]: c for c in (await app.client.get("/api/calls", headers=ADMIN)).json()["items"]}
        assert (calls["r-2"]["state"], calls["r-2"]["outcome"], calls["r-2"]["talk_seconds"]) == (
            "ended", "answered", 60.0)
        assert calls["r-2"]["contact"]["status"] == "found"
        # reaching the caller closes the task
        await post(app, [ev("ring", "r-4", 400, **{"from": "+79990001122"}, agent="101", direction="inbound"),
                         ev("answer", "r-4", 402, agent="101"), ev("end", "r-4", 430)])
        tasks = (await app.client.get("/api/tasks", headers=ADMIN)).json()["items"]
        calls = {c["pbx_call_id"]: c for c in (await app.client.get("/api/calls", headers=ADMIN)).json()["items"]}
        assert [(t["status"], t["closed_by_call"]) for t in tasks] == [("done", calls["r-4"]["id"])]
