"""End to end: a real ``ctid serve`` (in-process) with a MegaFon instance talking to the fake tenant
over real HTTP; the simulated native pushes go through ``/hooks/mf`` and show up in the REST API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
import trio

from ctid.connector import SimulationContext
from ctid.testing.daemon import running_daemon
from ctid_megafon.testing.fake_server import FakeMegafon, Recording, serve
from megafon_kit import API_KEY, TOKEN

ADMIN_KEY = "megafon-e2e-admin-key-0123"
ANNA_KEY = "megafon-e2e-anna-key-01234"
VERA_KEY = "megafon-e2e-vera-key-01234"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CALLER = "+79161234567"

CONTACTS = """
- {id: c-1, name: Anna Kuznetsova, company: Romashka LLC, phones: ["+79161234567"], owner: a2}
"""


@pytest.fixture
async def tenant(nursery) -> tuple[FakeMegafon, str]:
    fake = FakeMegafon(api_key=API_KEY, users=[
        {"login": "anna", "name": "Anna", "ext": "701"}, {"login": "boris", "name": "Boris", "ext": "702"},
    ])
    url = await nursery.start(serve, fake)
    return fake, url


def config(tmp_path, url: str) -> dict[str, Any]:
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text(CONTACTS)
    return {
        "database": {"url": f"sqlite:///{tmp_path / 'ctid.db'}"},
        "data_dir": str(tmp_path / "var"),
        "auth": {"api_keys": [
            {"name": "admin", "key": ADMIN_KEY, "role": "admin"},
            {"name": "anna", "key": ANNA_KEY, "role": "agent", "agent": "a1"},
            {"name": "vera", "key": VERA_KEY, "role": "agent", "agent": "a3"},
        ]},
        "agents": {
            "a1": {"name": "Anna", "extension": "701", "groups": ["sales"], "pbx": {"mf": "anna"}},
            "a2": {"name": "Boris", "extension": "702", "groups": ["sales"], "pbx": {"mf": "boris"}},
            "a3": {"name": "Vera", "extension": "703", "groups": ["sales"], "pbx": {"mf": "vera"}},
        },
        "connectors": {"mf": {"plugin": "megafon", "crm_token": TOKEN, "api_url": url, "api_key": API_KEY}},
        "crm": {"plugin": "directory", "contacts": str(contacts)},
    }


async def _calls(app) -> dict[str, dict[str, Any]]:
    items = (await app.client.get("/api/calls", headers=ADMIN)).json()["items"]
    return {c["pbx_call_id"]: c for c in items}


async def test_simulated_scenarios_through_a_running_ctid(tmp_path, tenant):
    fake, url = tenant
    async with running_daemon(config(tmp_path, url)) as app:
        connector = app.daemon.connectors["mf"]
        ids, links = {}, {}
        for index, (scenario, others) in enumerate([
            ("answered", []), ("missed", ["boris", "vera"]), ("group", ["boris", "vera"]),
            ("transfer", ["boris"]), ("hold", []), ("outbound_no_answer", []),
        ]):
            context = SimulationContext(caller=CALLER, agent="anna", others=others, line="+74950000001",
                                        group="sales" if scenario == "group" else None)
            # a distinct call per scenario, three minutes apart (longer than any scenario's call, whose
            # history starts `duration` before context.start; history has whole-second start times)
            context.start = context.start.replace(microsecond=0) - timedelta(minutes=3 * (10 - index))
            requests = connector.simulate(scenario, context)
            for req in requests:
                response = await app.client.request(req.method, req.path, headers=req.headers, content=req.body)
                assert response.status_code == 200, (req.description, response.text)
                fields = dict(parse_qsl(req.body.decode()))
                if fields["cmd"] == "contact":
                    # The directory CRM knows the caller; the owner a2 is `boris` on this tenant.
                    assert response.json() == {"contact_name": "Anna Kuznetsova", "responsible": "boris"}
                else:
                    assert response.json() == {}
                if fields.get("link"):
                    links[scenario] = fields["link"]
            ids[scenario] = dict(parse_qsl(requests[-1].body.decode()))["callid"]
        calls = await _calls(app)
        got = {s: (calls[i]["state"], calls[i]["outcome"], calls[i]["agent"]) for s, i in ids.items()}
        assert got == {
            "answered": ("ended", "answered", "a1"),
            "missed": ("ended", "missed", None),
            "group": ("ended", "answered", "a1"),
            "transfer": ("ended", "answered", "a2"),
            "hold": ("ended", "answered", "a1"),
            "outbound_no_answer": ("ended", "no_answer", "a1"),
        }
        answered = calls[ids["answered"]]
        assert (answered["wait_seconds"], answered["talk_seconds"]) == (7, 60)
        assert answered["remote_number"] == CALLER and answered["line_number"] == "+74950000001"
        assert answered["recording_url"] == f"{app.url}/api/calls/{answered['id']}/recording"
        assert calls[ids["transfer"]]["transferred_from"] == "a1"
        assert calls[ids["outbound_no_answer"]]["direction"] == "outbound"
        # The missed call opened a callback task; the next answered call from that number closed it.
        tasks = (await app.client.get("/api/tasks", headers=ADMIN)).json()["items"]
        assert [(t["number"], t["missed_count"], t["status"]) for t in tasks] == [(CALLER, 1, "done")]
        assert tasks[0]["missed_calls"] == [calls[ids["missed"]]["id"]]
        assert tasks[0]["closed_by_call"] == calls[ids["group"]]["id"]

        # The recording is served by ctid, fetched from the tenant with the API key.
        path = links["answered"].split(url, 1)[1]
        fake.recordings[path] = Recording(b"ID3-e2e-audio")
        response = await app.client.get(f"/api/calls/{answered['id']}/recording", headers=ADMIN)
        assert response.status_code == 200 and response.content == b"ID3-e2e-audio"
        assert response.headers["content-type"] == "audio/mpeg"
        assert fake.received("recording")[-1].headers["x-api-key"] == API_KEY


async def test_wrong_token_and_garbage_store_nothing(tmp_path, tenant):
    _, url = tenant
    async with running_daemon(config(tmp_path, url)) as app:
        form = {"content-type": "application/x-www-form-urlencoded"}
        response = await app.client.post("/hooks/mf", headers=form,
                                         content=b"cmd=event&type=INCOMING&phone=1&user=anna&callid=x&crm_token=bad")
        assert (response.status_code, response.json()["error"]) == (401, "Invalid token")
        response = await app.client.post("/hooks/mf", headers=form,
                                         content=f"cmd=history&type=in&crm_token={TOKEN}&duration=zz".encode())
        assert (response.status_code, response.json()["error"]) == (400, "Invalid parameters")
        response = await app.client.post("/hooks/mf", headers=form, content=f"cmd=nope&crm_token={TOKEN}".encode())
        assert response.status_code == 400
        assert await _calls(app) == {}


async def test_click_to_call_reaches_the_tenant_and_pbx_errors_are_clear(tmp_path, tenant):
    fake, url = tenant
    async with running_daemon(config(tmp_path, url)) as app:
        response = await app.client.post("/api/calls", json={"number": "8 (916) 123-45-67"},
                                         headers={"Authorization": f"Bearer {ANNA_KEY}"})
        assert response.status_code == 200, response.text
        (command,) = fake.received("rest", "/crmapi/v1/makecall")
        assert command.json == {"phone": "79161234567", "user": "anna"}
        assert command.headers["x-api-key"] == API_KEY
        # vera has no user on the tenant: the PBX's 404 becomes a clear API error
        response = await app.client.post("/api/calls", json={"number": "+79161234567"},
                                         headers={"Authorization": f"Bearer {VERA_KEY}"})
        assert response.status_code == 502
        assert response.json()["error"] == "pbx_not_found"
        assert response.json()["message"] == "MegaFon makecall: HTTP 404: User not found"


async def test_health_through_the_real_http_server(tmp_path, tenant):
    fake, url = tenant
    async with running_daemon(config(tmp_path, url)) as app:
        health = await app.daemon.connectors["mf"].health()
        assert health.ok and "2 users readable" in health.checks["api"]
        fake.history_enabled = False
        health = await app.daemon.connectors["mf"].health()
        assert health.ok and "501" in health.checks["history"]
        with trio.fail_after(5):
            assert (await app.client.get("/readyz")).status_code == 200


async def test_ctid_simulate_call_cli_drives_every_scenario(tmp_path, tenant):
    """``ctid simulate-call --connector mf`` (the real CLI) against the running daemon."""
    import yaml
    from typer.testing import CliRunner

    from ctid.cli import _register
    from ctid.cli import app as cli

    _, url = tenant
    settings = config(tmp_path, url)
    path = tmp_path / "ctid.yaml"
    path.write_text(yaml.safe_dump(settings))
    _register()
    async with running_daemon(settings) as app:
        runs = [("answered", []), ("missed", []), ("group", []), ("transfer", ["--transfer-to", "a2"]),
                ("hold", []), ("outbound_no_answer", [])]
        for scenario, more in runs:
            args = ["simulate-call", "--config", str(path), "--connector", "mf", "--scenario", scenario,
                    "--from", CALLER, "--to", "a1", "--url", app.url, *more]
            result = await trio.to_thread.run_sync(CliRunner().invoke, cli, args)
            assert result.exit_code == 0, result.output
            assert result.output.count("200 POST /hooks/mf") >= 3
        calls = sorted((c["direction"], c["outcome"], c["agent"], c["transferred_from"])
                       for c in (await _calls(app)).values())
    assert calls == sorted([
        ("inbound", "answered", "a1", None), ("inbound", "missed", None, None), ("inbound", "answered", "a1", None),
        ("inbound", "answered", "a2", "a1"), ("inbound", "answered", "a1", None),
        ("outbound", "no_answer", "a1", None),
    ])


async def test_dnd_presence_is_mirrored_to_the_tenant_when_dnd_sync_is_on(tmp_path, tenant):
    fake, url = tenant
    settings = config(tmp_path, url)
    settings["connectors"]["mf"]["dnd_sync"] = True
    anna = {"Authorization": f"Bearer {ANNA_KEY}"}
    async with running_daemon(settings) as app:
        response = await app.client.put("/api/agents/a1/status", json={"status": "dnd"}, headers=anna)
        assert response.status_code == 200, response.text
        assert fake.dnd == {"anna": True}
        response = await app.client.put("/api/agents/a1/status", json={"status": "available"}, headers=anna)
        assert response.status_code == 200
        assert fake.dnd == {"anna": False}
        assert [c.method for c in fake.received("rest", "/crmapi/v1/users/anna/dnd")] == ["POST", "DELETE"]
