"""End to end: a real ``ctid serve`` (in-process) with a CoMagic instance talking to the fake account over
real HTTP: notifications through ``/hooks/cm/<secret>``, commands from the REST API reaching the Call API,
facts readable through REST, recordings served by ctid, ``ctid simulate-call`` driving every scenario."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import trio

from comagic_kit import API_KEY, BODY_SECRET, INSTANCE, PATH_SECRET, employee_rows
from ctid.connector import SimulationContext
from ctid.testing.daemon import running_daemon
from ctid_comagic.templates import render, template
from ctid_comagic.testing.fake_server import FakeComagic, serve

ADMIN_KEY = "comagic-e2e-admin-key-0123"
ANNA_KEY = "comagic-e2e-anna-key-01234"
BORIS_KEY = "comagic-e2e-boris-key-0123"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
ANNA = {"Authorization": f"Bearer {ANNA_KEY}"}
BORIS = {"Authorization": f"Bearer {BORIS_KEY}"}
CALLER = "+79161234567"
HOOK = f"/hooks/{INSTANCE}/{PATH_SECRET}"


@pytest.fixture
async def account(nursery) -> tuple[FakeComagic, str]:
    fake = FakeComagic(api_key=API_KEY, instance=INSTANCE, webhook_secret=PATH_SECRET, body_secret=BODY_SECRET,
                       employees=employee_rows(), timezone="Asia/Yekaterinburg")
    url = await nursery.start(serve, fake)
    return fake, url


def config(tmp_path, url: str, **connector: Any) -> dict[str, Any]:
    return {
        "database": {"url": f"sqlite:///{tmp_path / 'ctid.db'}"},
        "data_dir": str(tmp_path / "var"),
        "auth": {"api_keys": [
            {"name": "admin", "key": ADMIN_KEY, "role": "admin"},
            {"name": "anna", "key": ANNA_KEY, "role": "agent", "agent": "a1"},
            {"name": "boris", "key": BORIS_KEY, "role": "agent", "agent": "a2"},
        ]},
        "agents": {
            "a1": {"name": "Anna", "groups": ["sales"], "pbx": {INSTANCE: "101"}},
            "a2": {"name": "Boris", "groups": ["sales"], "pbx": {INSTANCE: "102"}},
            "a3": {"name": "Vera", "groups": ["support"], "pbx": {INSTANCE: "103"}},
        },
        "connectors": {INSTANCE: {
            "plugin": "comagic", "api_key": API_KEY, "webhook_secret": PATH_SECRET, "body_secret": BODY_SECRET,
            "call_api_url": f"{url}/v4.0", "data_api_url": f"{url}/v2.0", "media_url": url,
            "facts_delay": 0, "recording_delay": 0, "recording_retry_interval": 1, **connector}},
    }


async def ready(app) -> Any:
    connector = app.daemon.connectors[INSTANCE]
    with trio.fail_after(5):
        await connector.account_read.wait()  # the connector reads get.account when it starts
    return connector


async def calls(app) -> dict[str, dict[str, Any]]:
    items = (await app.client.get("/api/calls", headers=ADMIN)).json()["items"]
    return {c["pbx_call_id"]: c for c in items}


async def call(app, session: int) -> dict[str, Any]:
    return (await app.client.get(f"/api/calls/{(await calls(app))[str(session)]['id']}", headers=ADMIN)).json()


async def settle(fake, app, check, within: float = 5.0):
    """Deliver the fake's notifications until ``check(call json)`` holds (post-call pulls run in the daemon)."""
    with trio.fail_after(within):
        while True:
            await fake.deliver(app.client)
            found = await check()
            if found:
                return found
            await trio.sleep(0.02)


async def test_commands_from_the_rest_api_reach_the_call_api_and_the_call_shows_them(tmp_path, account):
    fake, url = account
    async with running_daemon(config(tmp_path, url)) as app:
        await ready(app)
        session = fake.incoming(CALLER[1:], [101, 102])
        fake.answer(session, 101)
        await fake.deliver(app.client)
        c = await call(app, session)
        assert (c["state"], c["agent"]) == ("talking", "a1")
        assert (await app.client.post(f"/api/calls/{c['id']}/hold", headers=ANNA)).status_code == 200
        assert (await call(app, session))["state"] == "held"
        assert (await app.client.post(f"/api/calls/{c['id']}/unhold", headers=ANNA)).status_code == 200
        assert (await call(app, session))["state"] == "talking"
        # The PBX refuses: a clear API error with a stable id and the operator's words.
        fake.refuse["hold.call"] = "invalid_state"
        refused = await app.client.post(f"/api/calls/{c['id']}/hold", headers=ANNA)
        assert refused.status_code == 409
        assert refused.json() == {"error": "pbx_refused:invalid_state", "message": (
            "CoMagic hold.call: the call is not in a state that allows this [invalid_state]")}
        # Transfer to the first free colleague: hold.call, make.call, transfer.talk.
        response = await app.client.put("/api/agents/a2/status", json={"status": "available"}, headers=BORIS)
        assert response.status_code == 200
        response = await app.client.post(f"/api/calls/{c['id']}/transfer", json={"to": "free"}, headers=ANNA)
        assert response.status_code == 200, response.text
        assert response.json()["to"] == "a2"
        assert [r.method for r in fake.received(api="call")][-3:] == ["hold.call", "make.call", "transfer.talk"]
        assert fake.received("make.call")[-1].params["to"] == "202"
        c = await call(app, session)
        assert (c["agent"], c["transferred_from"], c["state"]) == ("a2", "a1", "talking")
        fake.answer(session, 102)
        assert (await app.client.post(f"/api/calls/{c['id']}/hangup", headers=BORIS)).status_code == 200
        assert fake.received("release.call")[-1].params["call_session_id"] == session
        ended = await settle(fake, app, lambda: _ended(app, session))
        assert (ended["outcome"], ended["agent"], ended["agents"]) == ("answered", "a2", ["a1", "a2"])
        assert ended["hold_seconds"] > 0


async def _ended(app, session: int, *, billed: bool = False):
    c = await call(app, session)
    return c if c["state"] == "ended" and (not billed or c["facts"].get("cost") is not None) else None


async def test_campaign_utm_and_cost_are_readable_through_rest_and_recordings_are_served(tmp_path, account):
    fake, url = account
    async with running_daemon(config(tmp_path, url)) as app:
        await ready(app)
        session = fake.incoming(CALLER[1:], [101], cost=2.4, marketing={
            "campaign_id": 12, "campaign_name": "Brand search", "channel": "paid", "utm_source": "google",
            "utm_medium": "cpc", "utm_campaign": "brand", "site_domain_name": "example.ru"})
        fake.answer(session, 101)
        fake.hang_up(session)
        fake.recordings[fake.record_hash(fake.sessions[session])] = b"ID3-e2e"
        c = await settle(fake, app, lambda: _ended(app, session, billed=True))
        assert c["facts"] == {"campaign_id": "12", "campaign": "Brand search", "channel": "paid",
                              "utm_source": "google", "utm_medium": "cpc", "utm_campaign": "brand",
                              "site": "example.ru", "cost": 2.4, "currency": "RUB"}
        assert c["recording_url"] == f"{app.url}/api/calls/{c['id']}/recording"
        audio = await app.client.get(f"/api/calls/{c['id']}/recording", headers=ANNA)
        assert (audio.status_code, audio.content, audio.headers["content-type"]) == (200, b"ID3-e2e", "audio/mpeg")
        assert "system/media" not in (await app.client.get(f"/api/calls/{c['id']}", headers=ANNA)).text


async def test_wrong_secret_garbage_and_unknown_layouts_store_nothing(tmp_path, account):
    fake, url = account
    async with running_daemon(config(tmp_path, url)) as app:
        await ready(app)
        good = {"call_session_id": 1, "notification_time": "2026-12-01 12:00:00.000", "contact_phone_number": "7916"}
        json_header = {"content-type": "application/json"}
        for path, body in ((f"/hooks/{INSTANCE}/not-the-secret-000000", render(template("inbound_call", BODY_SECRET), good)),
                           (HOOK, render(template("inbound_call", "wrong-body-secret-000"), good))):
            response = await app.client.post(path, content=body.encode(), headers=json_header)
            assert (response.status_code, response.json()["error"]) == (401, "unauthorized")
        response = await app.client.post(HOOK, content=b"garbage{", headers=json_header)
        assert (response.status_code, response.json()["error"]) == (400, "invalid_notification")
        response = await app.client.post(HOOK, content=b"\x00garbage", headers=json_header)  # NUL: the boundary's
        assert (response.status_code, response.json()["error"]) == (400, "bad_encoding")
        odd = render(template("inbound_call", BODY_SECRET), good).replace('"scenario_name"', '"scenario_nam"')
        response = await app.client.post(HOOK, content=odd.encode(), headers=json_header)
        assert response.status_code == 400 and response.json()["message"].startswith("scenario_nam:")
        assert await calls(app) == {}


async def test_health_reports_credentials_zone_employees_and_points(tmp_path, account):
    fake, url = account
    async with running_daemon(config(tmp_path, url)) as app:
        connector = await ready(app)
        health = await connector.health()
        assert health.ok, health
        assert health.checks["timezone"] == "account time zone Asia/Yekaterinburg"
        assert health.checks["employees"] == "3 employees readable"
        assert "this minute" in health.checks["points_data"]
        fake.api_key = "rotated-key-0000000000"
        health = await connector.health()
        assert not health.ok and "[access_token_invalid]" in health.detail


async def test_simulated_scenarios_through_a_running_ctid(tmp_path, account):
    fake, url = account
    async with running_daemon(config(tmp_path, url, facts_delay=3600)) as app:
        connector = await ready(app)
        ids = {}
        for index, (scenario, others) in enumerate([
            ("answered", []), ("missed", ["102", "103"]), ("group", ["102"]), ("transfer", ["102"]),
            ("hold", []), ("outbound_no_answer", []),
        ]):
            context = SimulationContext(caller=CALLER, agent="101", others=others, line="+74950000001")
            context.start = context.start - timedelta(minutes=3 * (10 - index))
            for req in connector.simulate(scenario, context):
                response = await app.client.request(req.method, req.path, headers=req.headers, content=req.body)
                assert response.status_code == 200, (req.description, response.text)
                ids[scenario] = req.body
        got = {s: (c["state"], c["outcome"], c["agent"], c["transferred_from"])
               for s, c in zip(ids, sorted((await calls(app)).values(), key=lambda c: c["started_at"]), strict=True)}
        assert got == {
            "answered": ("ended", "answered", "a1", None), "missed": ("ended", "missed", None, None),
            "group": ("ended", "answered", "a1", None), "transfer": ("ended", "answered", "a2", "a1"),
            "hold": ("ended", "answered", "a1", None), "outbound_no_answer": ("ended", "no_answer", "a1", None),
        }
        answered = sorted((await calls(app)).values(), key=lambda c: c["started_at"])[0]
        assert (answered["wait_seconds"], answered["talk_seconds"]) == (7, 60)
        tasks = (await app.client.get("/api/tasks", headers=ADMIN)).json()["items"]
        assert [(t["number"], t["missed_count"], t["status"]) for t in tasks] == [(CALLER, 1, "done")]


async def test_ctid_simulate_call_cli_drives_every_scenario(tmp_path, account):
    """``ctid simulate-call --connector cm`` (the real CLI, which reads the zone from get.account)."""
    import yaml
    from typer.testing import CliRunner

    from ctid.cli import _register
    from ctid.cli import app as cli

    _, url = account
    settings = config(tmp_path, url, facts_delay=3600)
    path = tmp_path / "ctid.yaml"
    path.write_text(yaml.safe_dump(settings))
    _register()
    async with running_daemon(settings) as app:
        await ready(app)
        for scenario, more in [("answered", []), ("missed", []), ("group", []), ("transfer", ["--transfer-to", "a2"]),
                               ("hold", []), ("outbound_no_answer", [])]:
            args = ["simulate-call", "--config", str(path), "--connector", INSTANCE, "--scenario", scenario,
                    "--from", CALLER, "--to", "a1", "--url", app.url, *more]
            result = await trio.to_thread.run_sync(CliRunner().invoke, cli, args)
            assert result.exit_code == 0, result.output
            assert result.output.count(f"200 POST {HOOK}") >= 2
        got = sorted((c["direction"], c["outcome"], c["agent"], c["transferred_from"])
                     for c in (await calls(app)).values())
    assert got == sorted([
        ("inbound", "answered", "a1", None), ("inbound", "missed", "a1", None),  # it rang for a1 alone
        ("inbound", "answered", "a1", None), ("inbound", "answered", "a2", "a1"), ("inbound", "answered", "a1", None),
        ("outbound", "no_answer", "a1", None),
    ])


async def test_presence_is_mirrored_to_the_employee_status_and_click_to_call_starts_an_employee_call(tmp_path, account):
    fake, url = account
    async with running_daemon(config(tmp_path, url, dnd_sync=True)) as app:
        await ready(app)
        response = await app.client.put("/api/agents/a1/status", json={"status": "dnd"}, headers=ANNA)
        assert response.status_code == 200, response.text
        assert fake.employee(101)["status_id"] == 3  # do_not_disturb
        await app.client.put("/api/agents/a1/status", json={"status": "available"}, headers=ANNA)
        assert fake.employee(101)["status_id"] == 1
        assert [r.params["status_id"] for r in fake.received("update.employees")] == [3, 1]
        response = await app.client.post("/api/calls", json={"number": "8 (916) 123-45-67"}, headers=ANNA)
        assert response.status_code == 200, response.text
        (start,) = fake.received("start.employee_call")
        assert response.json()["pbx_call_id"] == str(start_session := next(iter(fake.sessions)))
        assert (start.params["employee"], start.params["contact"], start.params["first_call"]) == (
            {"id": 101}, "79161234567", "employee")
        await fake.deliver(app.client)
        c = await call(app, start_session)
        assert (c["direction"], c["state"], c["agent"]) == ("outbound", "ringing", "a1")
        # an employee the account does not know: the PBX's refusal in words, with a stable id
        fake.employees.pop(0)
        response = await app.client.post("/api/calls", json={"number": "+79161234567"}, headers=ANNA)
        assert (response.status_code, response.json()["error"]) == (409, "pbx_refused:employee_not_found")
        assert response.json()["message"] == "CoMagic start.employee_call: no such employee on the PBX (field employee.id) [employee_not_found]"


async def test_consultative_transfer_from_the_rest_api_cancelled_then_completed(tmp_path, account):
    fake, url = account
    async with running_daemon(config(tmp_path, url)) as app:
        await ready(app)
        session = fake.incoming(CALLER[1:], [101])
        fake.answer(session, 101)
        await fake.deliver(app.client)
        c = await call(app, session)
        nothing = await app.client.post(f"/api/calls/{c['id']}/transfer/cancel", headers=ANNA)
        assert (nothing.status_code, nothing.json()["error"]) == (409, "no_transfer_in_progress")
        bad = await app.client.post(f"/api/calls/{c['id']}/transfer", json={"to": "a2", "mode": "warm"}, headers=ANNA)
        assert (bad.status_code, bad.json()["error"]) == (400, "bad_transfer_mode")
        response = await app.client.post(f"/api/calls/{c['id']}/transfer", json={"to": "a2", "mode": "consult"},
                                         headers=ANNA)
        assert response.json() == {"status": "consulting", "call_id": c["id"], "to": "a2"}
        fake.answer(session, 102)  # Boris talks to Anna; the customer waits
        await fake.deliver(app.client)
        assert ((await call(app, session))["state"], (await call(app, session))["agent"]) == ("held", "a1")
        again = await app.client.post(f"/api/calls/{c['id']}/unhold", headers=ANNA)
        assert (again.status_code, again.json()["error"]) == (409, "transfer_in_progress")
        response = await app.client.post(f"/api/calls/{c['id']}/transfer/cancel", headers=ANNA)
        assert response.json() == {"status": "cancelled", "call_id": c["id"], "to": "a2"}
        await fake.deliver(app.client)
        c = await call(app, session)
        assert (c["state"], c["agent"], c["transferred_from"]) == ("talking", "a1", None)
        # again, completed this time
        await app.client.post(f"/api/calls/{c['id']}/transfer", json={"to": "a2", "mode": "consult"}, headers=ANNA)
        fake.answer(session, 102)
        response = await app.client.post(f"/api/calls/{c['id']}/transfer/complete", headers=ANNA)
        assert response.json() == {"status": "ok", "call_id": c["id"], "to": "a2"}
        assert [r.method for r in fake.received(api="call")] == [
            "hold.call", "make.call", "restore.talk", "hold.call", "make.call", "transfer.talk"]
        await fake.deliver(app.client)
        c = await call(app, session)
        assert (c["state"], c["agent"], c["transferred_from"], c["agents"]) == ("talking", "a2", "a1", ["a1", "a2"])


async def test_a_lost_notification_is_recovered_by_the_post_call_pull_without_duplicates(tmp_path, account):
    fake, url = account
    async with running_daemon(config(tmp_path, url)) as app:
        await ready(app)
        fake.lost = {"talk_started", "talk_ended"}  # the answer never reaches ctid
        session = fake.incoming(CALLER[1:], [101, 102])
        fake.answer(session, 102)
        fake.hang_up(session)
        c = await settle(fake, app, lambda: _answered(app, session))
        assert (c["outcome"], c["agent"]) == ("answered", "a2")
        tasks = [t for t in (await app.client.get("/api/tasks", headers=ADMIN)).json()["items"] if t["status"] == "open"]
        assert tasks == []  # the transient missed call's task is void
        stored = await app.daemon.store.list_calls(limit=100)
        assert [row["pbx_call_id"] for row in stored] == [str(session)]
        assert await app.daemon.submit(await app.daemon.connectors[INSTANCE].history(
            app.daemon.clock() - timedelta(hours=1))) == 0  # a later pull: every event is a duplicate


async def _answered(app, session: int):
    c = await call(app, session)
    return c if c["outcome"] == "answered" else None


async def test_a_spent_points_budget_is_429_with_retry_after_on_the_rest_api(tmp_path, account):
    """CoMagic's points (§2 limits): once an answer says the minute budget is spent, a command fails
    at once, without a request, as HTTP 429 ``pbx_throttled`` with Retry-After (the PBX error rule)."""
    fake, url = account
    async with running_daemon(config(tmp_path, url)) as app:
        await ready(app)
        session = fake.incoming(CALLER[1:], [101])
        fake.answer(session, 101)
        await fake.deliver(app.client)
        c = await call(app, session)
        budget = fake.budgets["call"]
        budget.minute_limit = budget.used_minute + 1  # the next answer says: no points left this minute
        assert (await app.client.post(f"/api/calls/{c['id']}/hold", headers=ANNA)).status_code == 200
        sent = len(fake.requests)
        response = await app.client.post(f"/api/calls/{c['id']}/unhold", headers=ANNA)
        assert (response.status_code, response.json()["error"]) == (429, "pbx_throttled")
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert len(fake.requests) == sent  # not even sent
