"""The daemon through HTTP: webhooks, REST, auth, commands, errors (in-process `ctid serve`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import trio

from ctid.builtins.generic import sign
from ctid.connector import SimulationContext
from ctid.testing.daemon import running_daemon

from .conftest import AGENT_KEY, API_KEY, PASSWORDS, SECRET, make_config

ADMIN = {"Authorization": f"Bearer {API_KEY}"}
START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)


async def post_events(app, events, secret=SECRET, instance="office"):
    body = json.dumps(events).encode()
    return await app.client.post(f"/hooks/{instance}", content=body,
                                 headers={"content-type": "application/json", "X-Ctid-Signature": sign(secret, body)})


async def simulate(app, scenario, caller="+79161234567", agent="101", others=(), start=START):
    conn = app.daemon.connectors["office"]
    ctx = SimulationContext(caller=caller, agent=agent, others=list(others), line="+74951112233",
                            group="sales", start=start)
    call_ids = set()
    for req in conn.simulate(scenario, ctx):
        response = await app.client.post(req.path, content=req.body, headers=req.headers)
        assert response.status_code == 200, response.text
        call_ids.add(json.loads(req.body)["call_id"])
    [pbx_call_id] = call_ids
    return pbx_call_id


async def call_by_pbx_id(app, pbx_call_id):
    items = (await app.client.get("/api/calls", headers=ADMIN)).json()["items"]
    [call] = [c for c in items if c["pbx_call_id"] == pbx_call_id]
    return call


async def test_every_scenario_gives_the_right_call(config):
    async with running_daemon(config) as app:
        answered = await call_by_pbx_id(app, await simulate(app, "answered"))
        assert (answered["state"], answered["outcome"], answered["agent"]) == ("ended", "answered", "alice")
        assert (answered["wait_seconds"], answered["talk_seconds"]) == (7.0, 60.0)
        assert answered["remote_number"] == "+79161234567"
        assert answered["contact"]["status"] == "found"
        assert answered["contact"]["matches"][0]["name"] == "Anna Kuznetsova"

        group = await call_by_pbx_id(app, await simulate(app, "group", agent="102", others=["101", "103"],
                                                         start=START + timedelta(minutes=2)))
        assert (group["outcome"], group["agent"], group["talk_seconds"]) == ("answered", "bob", 90.0)

        transfer = await call_by_pbx_id(app, await simulate(app, "transfer", others=["103"],
                                                            start=START + timedelta(minutes=4)))
        assert (transfer["agent"], transfer["transferred_from"], transfer["outcome"]) == ("carol", "alice", "answered")

        hold = await call_by_pbx_id(app, await simulate(app, "hold", start=START + timedelta(minutes=6)))
        assert (hold["hold_seconds"], hold["talk_seconds"], hold["wait_seconds"]) == (15.0, 45.0, 3.0)

        outbound = await call_by_pbx_id(app, await simulate(app, "outbound_no_answer", caller="+79035550101",
                                                            start=START + timedelta(minutes=8)))
        assert (outbound["direction"], outbound["outcome"], outbound["talk_seconds"]) == (
            "outbound", "no_answer", None)

        missed = await call_by_pbx_id(app, await simulate(app, "missed", caller="+79990001122",
                                                          start=START + timedelta(minutes=10)))
        assert (missed["outcome"], missed["wait_seconds"]) == ("missed", 25.0)
        assert missed["contact"]["status"] == "unknown"
        assert "+79990001122" in missed["contact"]["new_contact_url"].replace("%2B", "+")
        tasks = (await app.client.get("/api/tasks?status=open", headers=ADMIN)).json()["items"]
        assert [(t["number"], t["missed_count"], t["owner"]) for t in tasks] == [("+79990001122", 1, "alice")]


async def test_redelivery_changes_nothing(config):
    async with running_daemon(config) as app:
        events = [{"event": "ring", "call_id": "dup-1", "id": "e1", "from": "+79161234567", "agent": "101",
                   "timestamp": START.isoformat()},
                  {"event": "end", "call_id": "dup-1", "id": "e2", "timestamp": (START + timedelta(seconds=9)).isoformat()}]
        assert (await post_events(app, events)).status_code == 200
        first = await call_by_pbx_id(app, "dup-1")
        for _ in range(3):
            assert (await post_events(app, events)).status_code == 200
            assert (await post_events(app, list(reversed(events)))).status_code == 200
        again = await call_by_pbx_id(app, "dup-1")
        assert {k: v for k, v in again.items() if k != "updated_at"} == {
            k: v for k, v in first.items() if k != "updated_at"}
        stored = await app.daemon.store.events_for_call(first["id"])
        assert len(stored) == 2
        tasks = (await app.client.get("/api/tasks", headers=ADMIN)).json()["items"]
        assert len(tasks) == 1 and tasks[0]["missed_count"] == 1


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [
        (b"{nope", None, 400, "bad_json"),
        (b'{"event": "ring", "call_id": "x", "bogus": 1}', None, 400, "bad_event"),
        (b'{"event": "ring", "call_id": "x"}', {"X-Ctid-Signature": "sha256=deadbeef"}, 401, "bad_signature"),
        (b'{"event": "ring", "call_id": "x"}', {}, 401, "signature_missing"),
    ],
)
async def test_bad_webhooks_are_4xx_and_store_nothing(config, body, headers, status, error):
    async with running_daemon(config) as app:
        if headers is None:
            headers = {"X-Ctid-Signature": sign(SECRET, body)}
        response = await app.client.post("/hooks/office", content=body, headers=headers)
        assert response.status_code == status
        assert response.json()["error"] == error
        assert (await app.client.get("/api/calls", headers=ADMIN)).json()["items"] == []


async def test_unknown_instance_and_oversize_body(config):
    config["server"] = {"max_body_bytes": 2048}
    async with running_daemon(config) as app:
        response = await app.client.post("/hooks/nowhere", content=b"{}")
        assert (response.status_code, response.json()["error"]) == (404, "unknown_instance")
        big = json.dumps([{"event": "ring", "call_id": f"c{i}"} for i in range(200)]).encode()
        response = await app.client.post("/hooks/office", content=big,
                                         headers={"X-Ctid-Signature": sign(SECRET, big)})
        assert (response.status_code, response.json()["error"]) == (413, "body_too_large")
        assert (await app.client.get("/api/calls", headers=ADMIN)).json()["items"] == []


async def test_auth(config):
    async with running_daemon(config) as app:
        assert (await app.client.get("/api/calls")).status_code == 401
        assert (await app.client.post("/api/calls", content=b"{broken")).status_code == 401
        for bad in ({"number": "+79161234567", "agent": {"a": 1}}, {"number": "+79161234567", "agent": ["x"]},
                    {"number": 79161234567}):
            response = await app.client.post("/api/calls", json=bad, headers={"Authorization": f"Bearer {API_KEY}"})
            assert response.status_code == 400, (bad, response.text)
        response = await app.client.get("/api/calls", headers={"Authorization": "Bearer forged.token"})
        assert (response.status_code, response.json()["error"]) == (401, "bad_token")
        response = await app.client.post("/api/auth/token", json={"username": "alice", "password": "wrong"})
        assert (response.status_code, response.json()["error"]) == (401, "bad_credentials")
        response = await app.client.post("/api/auth/token", json={"username": "nobody", "password": "x"})
        assert response.status_code == 401
        response = await app.client.post("/api/auth/token", content=b"[]")
        assert (response.status_code, response.json()["error"]) == (400, "bad_json")
        response = await app.client.post("/api/auth/token", json={"username": "alice",
                                                                   "password": PASSWORDS["alice"]})
        body = response.json()
        assert body["token_type"] == "bearer" and body["expires_in"] > 0
        me = await app.client.get("/api/me", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert me.json() == {"subject": "alice", "role": "agent", "agent": "alice"}
        me = await app.client.get("/api/me", headers={"Authorization": f"Bearer {AGENT_KEY}"})
        assert me.json()["agent"] == "alice"


async def test_agents_see_and_command_only_their_own_calls(config, fake_pbx):
    async with running_daemon(config) as app:
        events = [{"event": "ring", "call_id": "own-1", "from": "+79161234567", "agent": "101",
                   "timestamp": START.isoformat()},
                  {"event": "answer", "call_id": "own-1", "agent": "101",
                   "timestamp": (START + timedelta(seconds=3)).isoformat()}]
        assert (await post_events(app, events)).status_code == 200
        call = await call_by_pbx_id(app, "own-1")
        alice = await app.headers_for("alice", PASSWORDS["alice"])
        bob = await app.headers_for("bob", PASSWORDS["bob"])
        assert (await app.client.get(f"/api/calls/{call['id']}", headers=alice)).status_code == 200
        response = await app.client.get(f"/api/calls/{call['id']}", headers=bob)
        assert (response.status_code, response.json()["error"]) == (403, "forbidden")
        response = await app.client.post(f"/api/calls/{call['id']}/hold", headers=bob)
        assert response.status_code == 403
        assert [c["pbx_call_id"] for c in (await app.client.get("/api/calls", headers=bob)).json()["items"]] == []
        assert [c["pbx_call_id"] for c in (await app.client.get("/api/calls", headers=alice)).json()["items"]] == [
            "own-1"]
        response = await app.client.put("/api/agents/alice/status", json={"status": "away"}, headers=bob)
        assert response.status_code == 403
        assert fake_pbx.commands == []


async def test_commands_reach_the_connector(config, fake_pbx):
    async with running_daemon(config) as app:
        alice = await app.headers_for("alice", PASSWORDS["alice"])
        for agent in ("bob", "carol"):
            response = await app.client.put(f"/api/agents/{agent}/status", json={"status": "available"},
                                            headers=ADMIN)
            assert response.status_code == 200 and response.json()["status"] == "available"
        events = [{"event": "ring", "call_id": "cmd-1", "from": "+79161234567", "agent": "101", "group": "sales",
                   "timestamp": START.isoformat()},
                  {"event": "answer", "call_id": "cmd-1", "agent": "101",
                   "timestamp": (START + timedelta(seconds=3)).isoformat()}]
        assert (await post_events(app, events)).status_code == 200
        call_id = (await call_by_pbx_id(app, "cmd-1"))["id"]
        for action in ("hold", "unhold"):
            response = await app.client.post(f"/api/calls/{call_id}/{action}", headers=alice)
            assert response.status_code == 200, response.text
        response = await app.client.post(f"/api/calls/{call_id}/transfer", json={"to": "free"}, headers=alice)
        assert response.status_code == 200, response.text
        assert response.json()["to"] in ("bob", "carol")
        response = await app.client.post(f"/api/calls/{call_id}/hangup", headers=alice)
        assert response.status_code == 200
        response = await app.client.post("/api/calls", json={"number": "8 (916) 000-11-22"}, headers=alice)
        assert response.status_code == 200 and response.json()["number"] == "+79160001122"
        sent = [(c["command"], c.get("agent"), c.get("call_id"), c.get("target"), c.get("number"))
                for c in fake_pbx.commands]
        assert sent[:2] == [("hold", "101", "cmd-1", None, None), ("unhold", "101", "cmd-1", None, None)]
        assert sent[2][0] == "transfer" and sent[2][3] in ("102", "103")
        assert sent[3] == ("hangup", "101", "cmd-1", None, None)
        assert sent[4] == ("dial", "101", None, None, "+79160001122")
        assert all(c["_signature"].startswith("sha256=") for c in fake_pbx.commands)

        # one vocabulary for PBX errors (ctid.errors.PBX_STATUS): a refusal, a failure, throttling
        fake_pbx.fail_with = 422
        response = await app.client.post(f"/api/calls/{call_id}/hold", headers=alice)
        assert (response.status_code, response.json()["error"]) == (409, "pbx_refused")
        fake_pbx.fail_with = 503
        response = await app.client.post(f"/api/calls/{call_id}/hold", headers=alice)
        assert (response.status_code, response.json()["error"]) == (502, "pbx_failed")
        fake_pbx.fail_with = 429
        response = await app.client.post(f"/api/calls/{call_id}/hold", headers=alice)
        assert (response.status_code, response.json()["error"]) == (429, "pbx_throttled")
        fake_pbx.fail_with = None
        response = await app.client.post("/api/calls", json={"number": "call me"}, headers=alice)
        assert (response.status_code, response.json()["error"]) == (400, "bad_number")
        response = await app.client.post(f"/api/calls/{call_id}/transfer", json={"to": "nobody"}, headers=alice)
        assert (response.status_code, response.json()["error"]) == (404, "agent_not_found")


async def test_missing_capability_is_409(tmp_path):
    config = make_config(tmp_path)  # no command_url: the generic connector offers no commands
    async with running_daemon(config) as app:
        events = [{"event": "ring", "call_id": "cap-1", "from": "+79161234567", "agent": "101",
                   "timestamp": START.isoformat()},
                  {"event": "answer", "call_id": "cap-1", "agent": "101", "timestamp": START.isoformat()}]
        await post_events(app, events)
        call_id = (await call_by_pbx_id(app, "cap-1"))["id"]
        response = await app.client.post(f"/api/calls/{call_id}/hold", headers=ADMIN)
        assert (response.status_code, response.json()["error"]) == (409, "capability_missing:hold")
        response = await app.client.post("/api/calls", json={"number": "+79160001122", "agent": "alice"},
                                         headers=ADMIN)
        assert (response.status_code, response.json()["error"]) == (409, "capability_missing:dial")


async def test_status_and_bad_queries(config):
    async with running_daemon(config) as app:
        alice = await app.headers_for("alice", PASSWORDS["alice"])
        response = await app.client.put("/api/agents/alice/status", json={"status": "dnd"}, headers=alice)
        assert response.json()["status"] == "dnd"
        response = await app.client.put("/api/agents/alice/status", json={"status": "sleeping"}, headers=alice)
        assert (response.status_code, response.json()["error"]) == (400, "bad_status")
        response = await app.client.put("/api/agents/zed/status", json={"status": "away"}, headers=ADMIN)
        assert response.status_code == 404
        agents = (await app.client.get("/api/agents", headers=alice)).json()["items"]
        assert {a["id"]: a["status"] for a in agents} == {"alice": "dnd", "bob": "offline", "carol": "offline"}
        for query in ("since=yesterday", "limit=0", "limit=x", "state=sleeping",
                      "since=0001-01-01T00:00:00%2B05:00", "since=9999-12-31T23:59:59-05:00"):
            response = await app.client.get(f"/api/calls?{query}", headers=ADMIN)
            assert (response.status_code, response.json()["error"]) == (400, "bad_query"), query
        assert (await app.client.get("/api/nothing", headers=ADMIN)).json()["error"] == "not_found"
        assert (await app.client.delete("/api/calls", headers=ADMIN)).status_code == 405


async def test_since_and_limit(config):
    async with running_daemon(config) as app:
        for i in range(5):
            await post_events(app, [{"event": "ring", "call_id": f"s-{i}", "agent": "101",
                                     "timestamp": START.isoformat()}])
            await trio.sleep(0.01)
        items = (await app.client.get("/api/calls?limit=3", headers=ADMIN)).json()["items"]
        assert [c["pbx_call_id"] for c in items] == ["s-0", "s-1", "s-2"]
        since = items[-1]["updated_at"]
        later = (await app.client.get("/api/calls", params={"since": since}, headers=ADMIN)).json()["items"]
        assert [c["pbx_call_id"] for c in later] == ["s-2", "s-3", "s-4"]


async def test_operations_endpoints(config):
    async with running_daemon(config) as app:
        assert (await app.client.get("/healthz")).json() == {"status": "ok"}
        ready = (await app.client.get("/readyz")).json()
        assert ready["status"] == "ready" and ready["hub"]["backplane"]["kind"] == "memory"
        await simulate(app, "answered")
        metrics = (await app.client.get("/metrics")).text
        assert 'ctid_events_accepted_total{connector="office"} 3.0' in metrics
        assert "ctid_hub_connections 0.0" in metrics and "ctid_backplane_up 1.0" in metrics
        spec = (await app.client.get("/openapi.json")).json()
        assert spec["openapi"].startswith("3.")
        documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
        from ctid.web.openapi import quart_to_openapi

        app_routes = set()
        for rule in app.daemon.web_app.url_map.iter_rules():
            if rule.websocket or rule.endpoint in ("panel", "root") or rule.rule.startswith("/hub"):
                continue
            path = quart_to_openapi(rule.rule).replace("{call_id}", "{id}").replace("{agent_id}", "{id}")
            if "{subpath}" in path:
                continue
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                app_routes.add((path.replace("{instance}", "{instance}"), method.lower()))
        missing = app_routes - documented
        assert not missing, f"routes missing from openapi.json: {sorted(missing)}"


async def test_crm_activity_is_logged_through_the_outbox(config):
    async with running_daemon(config) as app:
        pbx_call_id = await simulate(app, "answered")
        call = await call_by_pbx_id(app, pbx_call_id)
        storage = app.daemon.store.plugin_storage("directory")
        with trio.fail_after(5):
            while True:
                delivered = app.daemon.outbox.next_delivery()
                if (record := await storage.get("activity", call["id"])) is not None:
                    break
                await delivered.wait()
        assert record["contact_id"] == "c-1" and record["outcome"] == "answered" and record["agent"] == "alice"


async def test_a_callback_task_knows_the_caller(config):
    async with running_daemon(config) as app:
        await simulate(app, "missed", caller="+79161234567")

        async def task_with_contact():
            tasks = (await app.client.get("/api/tasks?status=open", headers=ADMIN)).json()["items"]
            return tasks if tasks and tasks[0]["contact"] else None

        from ctid.testing.daemon import eventually

        [task] = await eventually(task_with_contact)
        assert task["contact"]["matches"][0]["name"] == "Anna Kuznetsova"
